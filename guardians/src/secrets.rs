//! Secrets: the gitleaks rule set (embedded, MIT) loaded as data.
//!
//! How a scan runs: the engine's shared Aho-Corasick pass finds the rules' keywords (ASCII
//! case-insensitive, as gitleaks lowercases); only rules whose keywords occur run their regex;
//! each match's secret (the capture group, as gitleaks picks it) must pass the rule's entropy
//! gate, the global and per-rule allowlists (regexes, stopwords, match/line targets, AND/OR
//! conditions), and Warden's own false-positive filters: placeholders (`XXXX`, `<your-key>`,
//! `${VAR}`, `changeme`), and for the `generic-*` rules UUIDs, hex digests next to hash words and
//! version strings.
//!
//! gitleaks' regexes are Go RE2. They are translated once at start-up: `\b`, `\w`, `\d`, `\s`
//! become their ASCII forms (RE2's meaning, and the fast path of Rust's `regex`), and characters
//! that are literal in RE2 classes but operators in Rust (`[`, `&&`, `--`, `~~`) are escaped.
//! Rules that only match file paths (`pkcs12-file`) do not apply to text and are skipped; any rule
//! whose regex does not parse is a start-up error, not silently dropped.
//!
//! A rule's regex and allowlists are compiled at the first scan whose text holds one of its
//! keywords, not at start-up: most of the 221 rules name one provider's token prefix and never
//! fire in a given deployment, and compiled they held 11 MiB of the sidecar's memory (and 0.2 s
//! of its start-up). The first text that triggers a rule pays its compilation once (0.3 to 6 ms
//! per rule in a release build); a test compiles every embedded rule, so that compilation cannot
//! fail at scan time.
//!
//! What it misses: secrets without a keyword gitleaks knows; secrets split across JSON string
//! leaves; high-entropy strings with no assignment context (gitleaks' generic rule needs a
//! `key = value` shape); private keys longer than the stream hold-back when streaming.

use std::borrow::Cow;
use std::sync::OnceLock;

use regex::Regex;
use regex_automata::util::captures::Captures;
use regex_automata::{meta, Input, Span};
use serde::Deserialize;

use crate::error::GuardianError;
use crate::finding::{Action, DetectorId, Finding};
use crate::keywords::Hit;

/// The embedded gitleaks rule file.
pub const GITLEAKS_TOML: &str = include_str!("../rules/gitleaks.toml");

#[derive(Deserialize)]
struct RuleFile {
    #[serde(default)]
    allowlist: Option<RawAllowlist>,
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawAllowlist {
    #[serde(default)]
    regexes: Vec<String>,
    #[serde(default)]
    stopwords: Vec<String>,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    condition: Option<String>,
    #[serde(default)]
    regex_target: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRule {
    id: String,
    #[serde(default)]
    regex: Option<String>,
    #[serde(default)]
    secret_group: Option<usize>,
    #[serde(default)]
    entropy: Option<f64>,
    #[serde(default)]
    keywords: Vec<String>,
    #[serde(default)]
    allowlists: Vec<RawAllowlist>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Secret,
    Match,
    Line,
}

struct Allowlist {
    regexes: Vec<meta::Regex>,
    /// The stopwords, matched ASCII case-insensitively anywhere in the secret (gitleaks
    /// lowercases both): one automaton, since the generic rule lists about 1,500 of them.
    stopwords: Option<aho_corasick::AhoCorasick>,
    target: Target,
    /// AND: every configured criterion must hold.
    all: bool,
    /// An AND allowlist that includes path criteria never applies to text.
    inert: bool,
}

impl Allowlist {
    fn compile(raw: &RawAllowlist, id: &str) -> Result<Self, GuardianError> {
        let mut regexes = Vec::with_capacity(raw.regexes.len());
        for r in &raw.regexes {
            regexes.push(compile_go(r, &format!("{id}.allowlist"))?);
        }
        let all = raw
            .condition
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case("and"));
        let stopwords = if raw.stopwords.is_empty() {
            None
        } else {
            Some(
                aho_corasick::AhoCorasick::builder()
                    .ascii_case_insensitive(true)
                    .build(raw.stopwords.iter().map(|s| s.to_ascii_lowercase()))?,
            )
        };
        Ok(Allowlist {
            regexes,
            stopwords,
            target: match raw.regex_target.as_deref() {
                Some("match") => Target::Match,
                Some("line") => Target::Line,
                _ => Target::Secret,
            },
            all,
            inert: all && !raw.paths.is_empty(),
        })
    }

    fn allows(&self, secret: &str, whole: &str, line: &str) -> bool {
        if self.inert {
            return false;
        }
        let target = match self.target {
            Target::Secret => secret,
            Target::Match => whole,
            Target::Line => line,
        };
        let regex_hit =
            (!self.regexes.is_empty()).then(|| self.regexes.iter().any(|r| r.is_match(target)));
        let stop_hit = self.stopwords.as_ref().map(|s| s.is_match(secret));
        let checks = [regex_hit, stop_hit];
        let mut present = checks.iter().flatten().peekable();
        if present.peek().is_none() {
            return false;
        }
        if self.all {
            present.all(|h| *h)
        } else {
            present.any(|h| *h)
        }
    }
}

/// gitleaks' `generic-api-key` pattern, for which [`KeywordStart`] applies (checked on the exact
/// text, so a changed rule file falls back to the whole-text search).
const GENERIC_API_KEY: &str = r#"(?i)[\w.-]{0,50}?(?:access|auth|(?-i:[Aa]pi|API)|credential|creds|key|passw(?:or)?d|secret|token)(?:[ \t\w.-]{0,20})[\s'"]{0,3}(?:=|>|:{1,3}=|\|\||:|=>|\?=|,)[\x60'"\s=]{0,5}([\w.=-]{10,150}|[a-z0-9][a-z0-9+/]{11,}={0,3})(?:[\x60'"\s;]|\\[nr]|$)"#;

/// How many bytes of `[\w.-]` may stand before the keyword in a [`GENERIC_API_KEY`] match.
const GENERIC_PREFIX: usize = 50;

/// Where a rule's matches begin, next to its keywords, when that is known: then
/// [`KeywordStart`] searches from the keywords' occurrences instead of the whole text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lead {
    /// [`GENERIC_API_KEY`]: at most [`GENERIC_PREFIX`] bytes of `[\w.-]`, then a keyword.
    Generic,
    /// Every match begins with one of the rule's keywords (`AKIA…`, `ghp_…`, `s.…`): proved from
    /// the pattern by [`begins_with_a_keyword`].
    Keyword,
}

/// Whether every match of `hir` begins with one of `keywords` (ASCII case-insensitively, as the
/// keyword pass finds them). The prefix literals regex-syntax extracts are a proof of it when
/// their set is finite: every match then begins with one of them, so each needs one of the
/// keywords at its start. Unicode case folding makes such a set fail the test by itself: under
/// `(?i)` a `k` is also the Kelvin sign, which is no ASCII keyword.
fn begins_with_a_keyword(hir: &regex_syntax::hir::Hir, keywords: &[String]) -> bool {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    let seq = Extractor::new().kind(ExtractKind::Prefix).extract(hir);
    let Some(literals) = seq.literals() else {
        return false;
    };
    !literals.is_empty()
        && literals.iter().all(|lit| {
            keywords.iter().any(|k| {
                !k.is_empty()
                    && lit
                        .as_bytes()
                        .get(..k.len())
                        .is_some_and(|p| p.eq_ignore_ascii_case(k.as_bytes()))
            })
        })
}

/// A search for a rule whose matches begin at one of its keywords or, for [`Lead::Generic`],
/// at most [`GENERIC_PREFIX`] bytes of `[0-9A-Za-z_.-]` before one: anchored searches from the
/// earliest start each keyword occurrence allows, instead of a lazy DFA over the whole text.
///
/// Why it finds what the whole-text search finds: a match starting at `q` has its keyword at
/// some `j` with `q <= j <= q + 50` and only `[\w.-]` bytes between, so the earliest start `j`
/// allows (not before the previous match's end `at`) is `p(j) = max(at, j - 50, start of the
/// [\w.-] run ending at j)`, and every start from `p(j)` to `j` works for `j`. `p(j)` does not
/// decrease with `j`, so the leftmost match starts at `p(j)` for the first keyword occurrence
/// whose anchored search succeeds, and the anchored search there picks the same match (same
/// start, same preference) as the leftmost-first whole-text search. Texts holding `ſ` (U+017F)
/// or the Kelvin sign (U+212A) take the whole-text search: `(?i)` folds them into `s` and `k`,
/// so a match could then hold no ASCII keyword, or a longer prefix.
///
/// For [`Lead::Keyword`] the prefix is empty: `p(j) = j`, the same argument with a reach of 0,
/// and no text is left to the whole-text search (the keywords were proved from the pattern as
/// it folds case).
///
/// The proof holds for any set of keyword occurrences that contains the keyword of every match,
/// so occurrences that [`may_lead_to_separator`] rules out are skipped without a search.
struct KeywordStart<'r> {
    regex: &'r meta::Regex,
    lead: Lead,
}

impl KeywordStart<'_> {
    fn applies(text: &str) -> bool {
        // One pass for both characters, over their UTF-8 lead bytes (C5 BF, E2 84 AA), where two
        // `contains` were two passes over the text (2% of a scan of mixed text with accents).
        let b = text.as_bytes();
        !memchr::memchr2_iter(0xC5, 0xE2, b).any(|i| {
            let rest = &b[i..];
            rest.starts_with("\u{17F}".as_bytes()) || rest.starts_with("\u{212A}".as_bytes())
        })
    }

    /// The matches (whole span, secret span) a leftmost-first search of the whole text finds,
    /// given the starts of the rule's keyword occurrences in ascending order.
    fn matches(
        &self,
        text: &str,
        starts: impl IntoIterator<Item = usize>,
        secret_group: Option<usize>,
        mut found: impl FnMut((usize, usize), (usize, usize)),
    ) {
        let bytes = text.as_bytes();
        let word = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
        let mut caps = self.regex.create_captures();
        let mut at = 0;
        let mut tried = None;
        let (reach, separator) = match self.lead {
            Lead::Generic => (GENERIC_PREFIX, true),
            Lead::Keyword => (0, false),
        };
        for j in starts {
            if j < at || separator && !may_lead_to_separator(bytes, j) {
                continue;
            }
            let mut p = j;
            while p > at && j - p < reach && word(bytes[p - 1]) {
                p -= 1;
            }
            if tried == Some(p) {
                continue;
            }
            tried = Some(p);
            let input = Input::new(text)
                .range(p..)
                .anchored(regex_automata::Anchored::Yes);
            self.regex.search_captures(&input, &mut caps);
            let Some(whole) = caps.get_match() else {
                continue;
            };
            let secret = match secret_group {
                Some(g) => caps.get_group(g),
                None => (1..caps.group_len())
                    .filter_map(|g| caps.get_group(g))
                    .find(|m| !m.is_empty()),
            }
            .unwrap_or(whole.span());
            found((whole.start(), whole.end()), (secret.start, secret.end));
            at = whole.end();
        }
    }
}

/// How many bytes may stand between the start of a [`GENERIC_API_KEY`] keyword and its
/// separator: the longest keyword (`credential`, 10), `[ \t\w.-]{0,20}` and `[\s'"]{0,3}`.
const GENERIC_TO_SEPARATOR: usize = 10 + 20 + 3;

/// Whether a [`GENERIC_API_KEY`] match could have its keyword at `j`: from the keyword to the
/// separator a match holds only letters, `[ \t\w.-]` and `[\s'"]` (RE2's ASCII classes), at
/// most [`GENERIC_TO_SEPARATOR`] bytes, so the first other byte must come within that reach and
/// start a separator (`=`, `>`, `:`, `||`, `?=`, `,`). A necessary test, not a sufficient one:
/// about 40 instructions where the anchored search it saves costs a few thousand (`token(`,
/// `api.` in code, `key` in prose).
fn may_lead_to_separator(bytes: &[u8], j: usize) -> bool {
    let end = bytes.len().min(j + GENERIC_TO_SEPARATOR + 1);
    bytes
        .get(j..end)
        .into_iter()
        .flatten()
        .copied()
        .find(|&b| {
            !(b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'_' | b'.' | b'-' | b' ' | b'\t' | b'\n' | b'\x0c' | b'\r' | b'\'' | b'"'
                ))
        })
        .is_some_and(|b| matches!(b, b'=' | b'>' | b':' | b'|' | b'?' | b','))
}

/// The starts of the occurrences of the keywords of each rule that [`KeywordStart`] searches,
/// ascending, each once: one pass over the hits for all such rules (one pass per rule was 5% of
/// a scan of mixed text, with five of them triggered). The hits come by end, so each rule's
/// starts are sorted already or nearly, which the sort checks in one pass; sorting all
/// `(rule, start)` pairs at once cost as much as the passes it saved.
fn lead_starts(hits: &[Hit], keyword_leads: &[Vec<u16>]) -> Vec<(u16, Vec<usize>)> {
    let mut by: Vec<(u16, Vec<usize>)> = Vec::new();
    for h in hits {
        for r in &keyword_leads[h.pattern as usize] {
            match by.iter_mut().find(|(x, _)| x == r) {
                Some((_, starts)) => starts.push(h.start),
                None => by.push((*r, vec![h.start])),
            }
        }
    }
    for (_, starts) in &mut by {
        starts.sort_unstable();
        starts.dedup();
    }
    by
}

/// The starts of rule `rule` in [`lead_starts`]' answer.
fn starts_of(lead_starts: &[(u16, Vec<usize>)], rule: u16) -> impl Iterator<Item = usize> + '_ {
    lead_starts
        .iter()
        .find(|(r, _)| *r == rule)
        .into_iter()
        .flat_map(|(_, starts)| starts.iter().copied())
}

/// The secret in a match, as gitleaks picks it: the rule's `secretGroup`, else the first
/// non-empty group, else the whole match.
fn secret_of(caps: &Captures, group: Option<usize>) -> Option<Span> {
    let whole = caps.get_match()?.span();
    Some(
        match group {
            Some(g) => caps.get_group(g),
            None => (1..caps.group_len())
                .filter_map(|g| caps.get_group(g))
                .find(|m| !m.is_empty()),
        }
        .unwrap_or(whole),
    )
}

struct Rule {
    id: Cow<'static, str>,
    /// The regex in the `regex` crate's dialect, parsed at start-up, compiled at first use.
    pattern: String,
    raw_allowlists: Vec<RawAllowlist>,
    compiled: OnceLock<Compiled>,
    /// Set when the rule's matches begin at or a few bytes before a keyword (see
    /// [`KeywordStart`]).
    keyword_start: Option<Lead>,
    secret_group: Option<usize>,
    entropy: Option<f64>,
    generic: bool,
}

/// What a rule needs to scan, built the first time one of its keywords occurs in a text.
struct Compiled {
    regex: meta::Regex,
    has_groups: bool,
    allowlists: Vec<Allowlist>,
}

impl Rule {
    fn compile(&self) -> Result<Compiled, GuardianError> {
        let regex = build_regex(&self.pattern, &self.id)?;
        let allowlists = self
            .raw_allowlists
            .iter()
            .map(|a| Allowlist::compile(a, &self.id))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Compiled {
            has_groups: regex.captures_len() > 1,
            regex,
            allowlists,
        })
    }

    fn compiled(&self) -> &Compiled {
        self.compiled.get_or_init(|| {
            // The rules are the embedded file's, every one of which compiles (tested by
            // `every_embedded_rule_compiles`); the only failure left is a size limit, which
            // does not depend on the text scanned.
            self.compile()
                .unwrap_or_else(|e| panic!("embedded secret rule {}: {e}", self.id))
        })
    }
}

pub(crate) struct SecretsDetector {
    rules: Vec<Rule>,
    /// the keywords, lowercased, in pattern order (matched by the shared automaton)
    keyword_list: Vec<String>,
    /// keyword pattern index -> rules that list it
    keyword_rules: Vec<Vec<u16>>,
    /// keyword pattern index -> rules that list it and that [`KeywordStart`] searches
    keyword_leads: Vec<Vec<u16>>,
    /// rules without keywords: run on every text
    always: Vec<u16>,
    global: Allowlist,
    placeholder: Regex,
    uuid: Regex,
    hexdigest: Regex,
    version: Regex,
}

/// Translates a Go RE2 pattern into the `regex` crate's dialect with RE2's ASCII classes.
pub(crate) fn go_to_rust(p: &str) -> String {
    let chars: Vec<char> = p.chars().collect();
    let mut out = String::with_capacity(p.len() + 16);
    let mut in_class = false;
    let mut class_start = 0usize;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && i + 1 < chars.len() {
            let n = chars[i + 1];
            let rep: Option<&str> = match (in_class, n) {
                (false, 'b') => Some(r"(?-u:\b)"),
                (false, 'B') => Some(r"(?-u:\B)"),
                (false, 'w') => Some("[0-9A-Za-z_]"),
                (true, 'w') => Some("0-9A-Za-z_"),
                (false, 'W') => Some("[^0-9A-Za-z_]"),
                (false, 'd') => Some("[0-9]"),
                (true, 'd') => Some("0-9"),
                (false, 'D') => Some("[^0-9]"),
                (false, 's') => Some(r"[\t\n\f\r ]"),
                (true, 's') => Some(r"\t\n\f\r "),
                (false, 'S') => Some(r"[^\t\n\f\r ]"),
                _ => None,
            };
            match rep {
                Some(r) => out.push_str(r),
                None => {
                    out.push('\\');
                    out.push(n);
                }
            }
            i += 2;
            continue;
        }
        if !in_class {
            if c == '{' {
                // A valid repetition is copied whole; any other brace is a literal in RE2.
                let rest: String = chars[i..].iter().take(24).collect();
                let valid = rest[1..].find('}').is_some_and(|close| {
                    let body = &rest[1..=close];
                    let mut parts = body.splitn(2, ',');
                    let lo = parts.next().unwrap_or("");
                    let hi = parts.next();
                    !lo.is_empty()
                        && lo.bytes().all(|b| b.is_ascii_digit())
                        && hi.is_none_or(|h| h.bytes().all(|b| b.is_ascii_digit()))
                });
                if valid {
                    while i < chars.len() {
                        out.push(chars[i]);
                        i += 1;
                        if chars[i - 1] == '}' {
                            break;
                        }
                    }
                } else {
                    out.push_str(r"\{");
                    i += 1;
                }
                continue;
            }
            if c == '}' {
                out.push_str(r"\}");
                i += 1;
                continue;
            }
            if c == '[' {
                in_class = true;
                out.push('[');
                i += 1;
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                class_start = i;
                // A leading ']' is literal in RE2.
                if chars.get(i) == Some(&']') {
                    out.push_str(r"\]");
                    i += 1;
                }
                continue;
            }
            out.push(c);
            i += 1;
            continue;
        }
        // inside a class
        match c {
            ']' if i > class_start => {
                in_class = false;
                out.push(']');
            }
            '[' if chars.get(i + 1) == Some(&':') => {
                // POSIX class: copy through ":]"
                let mut j = i;
                while j < chars.len() {
                    out.push(chars[j]);
                    if chars[j] == ']' && j > i + 1 {
                        break;
                    }
                    j += 1;
                }
                i = j;
            }
            '[' => out.push_str(r"\["),
            '&' | '~' | '-' if chars.get(i + 1) == Some(&c) => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

/// Compiles a rule set pattern with the engines and limits the `regex` crate would use, except
/// the one-pass DFA. That DFA only speeds up reading a match's groups, which happens on the few
/// matches found (the bounded backtracker reads them instead, with the same result; instructions
/// per scan of the secret-dense bench text unchanged within the noise), and it held 5.2 of the
/// 15.2 MiB of the 221 compiled rules: rules like `glc_[A-Za-z0-9+/]{32,400}` are one-pass, with
/// one DFA state per repetition.
fn compile_go(pattern: &str, id: &str) -> Result<meta::Regex, GuardianError> {
    build_regex(&go_to_rust(pattern), id)
}

/// Builds an already translated pattern (see [`compile_go`] for the configuration).
fn build_regex(pattern: &str, id: &str) -> Result<meta::Regex, GuardianError> {
    meta::Regex::builder()
        .configure(
            meta::Config::new()
                .nfa_size_limit(Some(64 << 20))
                .onepass(false)
                .hybrid_cache_capacity(8 << 20),
        )
        .build(pattern)
        .map_err(|e| GuardianError::Config(format!("pattern {id} does not compile: {e}")))
}

fn shannon_entropy(s: &str) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = f64::from(*c) / n;
            -p * p.log2()
        })
        .sum()
}

impl SecretsDetector {
    pub(crate) fn new(disabled: &[String]) -> Result<Self, GuardianError> {
        let file: RuleFile = toml::from_str(GITLEAKS_TOML)?;
        let mut rules = Vec::with_capacity(file.rules.len());
        let mut kw_index: Vec<String> = Vec::new();
        let mut keyword_rules: Vec<Vec<u16>> = Vec::new();
        let mut always: Vec<u16> = Vec::new();
        for raw in file.rules {
            let Some(pattern) = raw.regex.as_deref() else {
                continue; // path-only rule (pkcs12-file): nothing to match in text
            };
            if disabled.contains(&raw.id) {
                continue;
            }
            let translated = go_to_rust(pattern);
            let hir = regex_syntax::parse(&translated).map_err(|e| {
                GuardianError::Config(format!("pattern {} does not compile: {e}", raw.id))
            })?;
            for a in &raw.allowlists {
                for r in &a.regexes {
                    regex_syntax::parse(&go_to_rust(r)).map_err(|e| {
                        GuardianError::Config(format!(
                            "pattern {}.allowlist does not compile: {e}",
                            raw.id
                        ))
                    })?;
                }
            }
            let idx = u16::try_from(rules.len())
                .map_err(|_| GuardianError::Config("too many secret rules".into()))?;
            for k in &raw.keywords {
                let k = k.to_ascii_lowercase();
                match kw_index.iter().position(|x| *x == k) {
                    Some(p) => keyword_rules[p].push(idx),
                    None => {
                        kw_index.push(k);
                        keyword_rules.push(vec![idx]);
                    }
                }
            }
            let lead = if pattern == GENERIC_API_KEY {
                Some(Lead::Generic)
            } else {
                begins_with_a_keyword(&hir, &raw.keywords).then_some(Lead::Keyword)
            };
            rules.push(Rule {
                keyword_start: lead,
                generic: raw.id.starts_with("generic"),
                id: Cow::Owned(raw.id),
                pattern: translated,
                raw_allowlists: raw.allowlists,
                compiled: OnceLock::new(),
                secret_group: raw.secret_group,
                entropy: raw.entropy,
            });
            if raw.keywords.is_empty() {
                always.push(idx);
            }
        }
        let global = match &file.allowlist {
            Some(a) => Allowlist::compile(a, "global")?,
            None => Allowlist::compile(&RawAllowlist::default(), "global")?,
        };
        let re = |id: &str, p: &str| Regex::new(p).map_err(|e| GuardianError::pattern(id, e));
        if rules.len() > 512 {
            return Err(GuardianError::Config("more than 512 secret rules".into()));
        }
        let keyword_leads = keyword_rules
            .iter()
            .map(|listing| {
                let mut leads: Vec<u16> = listing
                    .iter()
                    .copied()
                    .filter(|r| rules[usize::from(*r)].keyword_start.is_some())
                    .collect();
                leads.dedup();
                leads
            })
            .collect();
        Ok(SecretsDetector {
            always,
            keyword_leads,
            rules,
            keyword_list: kw_index,
            keyword_rules,
            global,
            placeholder: re(
                "secrets.placeholder",
                r"(?i)xxxx|\*\*\*\*|\.\.\.\.|<[^>]*>|\$\{|\{\{|%[a-z_]+%|your[_\-]?(?:api[_\-]?)?(?:key|token|secret|password)|placeholder|changeme|change[_\-]me|redacted|example|dummy|insert[_\-]?|replace[_\-]?me|0{8,}|1234567890|abcdef123456",
            )?,
            uuid: re(
                "secrets.uuid",
                r"(?i)^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
            )?,
            hexdigest: re(
                "secrets.hexdigest",
                r"(?i)^(?:[0-9a-f]{32}|[0-9a-f]{40}|[0-9a-f]{64}|[0-9a-f]{128})$",
            )?,
            version: re(
                "secrets.version",
                r"^v?[0-9]+(?:\.[0-9]+){1,3}(?:[\-+][0-9A-Za-z.\-]+)?$",
            )?,
        })
    }

    /// Number of rules loaded (for the docs and tests).
    pub(crate) fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// The keywords, lowercased, numbered as the hits [`Self::detect_with`] expects.
    pub(crate) fn keyword_list(&self) -> &[String] {
        &self.keyword_list
    }

    /// Appends the secrets in `text`, given the occurrences of this detector's keywords in it.
    pub(crate) fn detect_with(&self, text: &str, hits: &[Hit], out: &mut Vec<Finding>) {
        let mut triggered = [0u64; 8];
        let mut any = false;
        for r in &self.always {
            let r = usize::from(*r);
            triggered[r / 64] |= 1 << (r % 64);
            any = true;
        }
        for m in hits {
            for r in &self.keyword_rules[m.pattern as usize] {
                let r = usize::from(*r);
                triggered[r / 64] |= 1 << (r % 64);
                any = true;
            }
        }
        if !any {
            return;
        }
        let first = out.len();
        let mut applies = None;
        let mut leads = None;
        for (i, rule) in self.rules.iter().enumerate() {
            if triggered[i / 64] & (1 << (i % 64)) == 0 {
                continue;
            }
            let compiled = rule.compiled();
            if let Some(lead) = rule.keyword_start {
                if lead == Lead::Keyword
                    || *applies.get_or_insert_with(|| KeywordStart::applies(text))
                {
                    let leads = leads.get_or_insert_with(|| lead_starts(hits, &self.keyword_leads));
                    let k = KeywordStart {
                        regex: &compiled.regex,
                        lead,
                    };
                    let starts = starts_of(leads, i as u16);
                    k.matches(text, starts, rule.secret_group, |(ws, we), (ss, se)| {
                        self.consider(text, rule, compiled, ws, we, ss, se, out);
                    });
                    continue;
                }
            }
            if compiled.has_groups {
                for caps in compiled.regex.captures_iter(text) {
                    let (Some(whole), Some(secret)) =
                        (caps.get_match(), secret_of(&caps, rule.secret_group))
                    else {
                        continue;
                    };
                    self.consider(
                        text,
                        rule,
                        compiled,
                        whole.start(),
                        whole.end(),
                        secret.start,
                        secret.end,
                        out,
                    );
                }
            } else {
                for m in compiled.regex.find_iter(text) {
                    self.consider(
                        text,
                        rule,
                        compiled,
                        m.start(),
                        m.end(),
                        m.start(),
                        m.end(),
                        out,
                    );
                }
            }
        }
        // Several rules can match the same secret (a provider rule and the generic rule): keep
        // the most specific (highest score, then longest, then first rule).
        crate::finding::keep_best_non_overlapping(out, first);
    }

    #[allow(clippy::too_many_arguments)]
    fn consider(
        &self,
        text: &str,
        rule: &Rule,
        compiled: &Compiled,
        ws: usize,
        we: usize,
        ss: usize,
        se: usize,
        out: &mut Vec<Finding>,
    ) {
        let secret = &text[ss..se];
        let whole = &text[ws..we];
        if secret.is_empty() {
            return;
        }
        if let Some(min) = rule.entropy {
            if shannon_entropy(secret) <= min {
                return;
            }
            if rule.generic && !secret.bytes().any(|b| b.is_ascii_digit()) {
                return;
            }
        }
        let line_start = text[..ws].rfind('\n').map_or(0, |p| p + 1);
        let line_end = text[we..].find('\n').map_or(text.len(), |p| we + p);
        let line = &text[line_start..line_end];
        if self.global.allows(secret, whole, line) {
            return;
        }
        if compiled
            .allowlists
            .iter()
            .any(|a| a.allows(secret, whole, line))
        {
            return;
        }
        if self.placeholder.is_match(secret) {
            return;
        }
        if rule.generic {
            if self.uuid.is_match(secret) || self.version.is_match(secret) {
                return;
            }
            if self.hexdigest.is_match(secret) {
                let l = line.to_ascii_lowercase();
                if [
                    "sha",
                    "md5",
                    "hash",
                    "digest",
                    "checksum",
                    "commit",
                    "integrity",
                    "etag",
                    "rev",
                ]
                .iter()
                .any(|w| l.contains(w))
                {
                    return;
                }
            }
        }
        out.push(Finding {
            detector: DetectorId::Secrets,
            entity_type: Cow::Borrowed("SECRET"),
            rule: rule.id.clone(),
            start: ss,
            end: se,
            score: if rule.generic { 0.7 } else { 0.9 },
            action: Action::Redact,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translation_keeps_meaning() {
        assert_eq!(
            go_to_rust(r"\bab\w[\w.-]\d"),
            r"(?-u:\b)ab[0-9A-Za-z_][0-9A-Za-z_.-][0-9]"
        );
        assert_eq!(go_to_rust(r"[]a]"), r"[\]a]");
        assert_eq!(go_to_rust(r"[a[]"), r"[a\[]");
        assert_eq!(go_to_rust(r"[[:alnum:]_]"), r"[[:alnum:]_]");
        assert_eq!(go_to_rust(r"[\s]\s"), r"[\t\n\f\r ][\t\n\f\r ]");
        assert_eq!(
            go_to_rust(r"\${{[^}]+}}a{2,}b{3}"),
            r"\$\{\{[^}]+\}\}a{2,}b{3}"
        );
    }

    /// The shared keyword pass, over this detector's keywords alone.
    fn keyword_index(d: &SecretsDetector) -> crate::keywords::KeywordIndex {
        crate::keywords::KeywordIndex::new(&[(
            crate::keywords::Owner::Secrets,
            d.keyword_list().to_vec(),
        )])
        .unwrap()
    }

    type Spans = Vec<((usize, usize), (usize, usize))>;

    /// The matches of the keyword-start search and of the whole-text search of `rule` in `t`.
    fn both_searches(
        kw: &crate::keywords::KeywordIndex,
        d: &SecretsDetector,
        i: usize,
        t: &str,
    ) -> (Spans, Spans) {
        let rule = &d.rules[i];
        let regex = &rule.compiled().regex;
        let hits = kw.scan(t);
        let leads = lead_starts(hits.of(crate::keywords::Owner::Secrets), &d.keyword_leads);
        let mut got = Vec::new();
        KeywordStart {
            regex,
            lead: rule.keyword_start.unwrap(),
        }
        .matches(t, starts_of(&leads, i as u16), rule.secret_group, |w, s| {
            got.push((w, s))
        });
        let want = regex
            .captures_iter(t)
            .map(|c| {
                let w = c.get_match().unwrap();
                let s = secret_of(&c, rule.secret_group).unwrap();
                ((w.start(), w.end()), (s.start, s.end))
            })
            .collect();
        (got, want)
    }

    #[test]
    fn keyword_start_finds_what_the_whole_text_search_finds() {
        let d = SecretsDetector::new(&[]).unwrap();
        let i = d
            .rules
            .iter()
            .position(|r| r.id == "generic-api-key")
            .unwrap();
        assert_eq!(d.rules[i].keyword_start, Some(Lead::Generic));
        let kw = keyword_index(&d);
        let mut texts = crate::labelled_texts(&[
            "secrets/benign.jsonl",
            "secrets/generated.jsonl",
            "secrets/providers.jsonl",
            "injection/attacks.jsonl",
            "injection/benign.jsonl",
            "pii/presidio_sentences.jsonl",
        ]);
        // Joined, so that matches meet keywords of neighbouring texts, runs of `[\w.-]` longer
        // than the prefix, and the end of the text.
        let plain: Vec<String> = texts
            .iter()
            .filter(|t| KeywordStart::applies(t))
            .cloned()
            .collect();
        for sep in ["", " ", "_", "\n", "api"] {
            texts.push(plain.join(sep));
        }
        texts.push(format!("{}token={}", "a".repeat(60), "b1".repeat(100)));
        let mut matches = 0;
        for t in &texts {
            if !KeywordStart::applies(t) {
                continue; // the whole-text search runs there
            }
            let (got, want) = both_searches(&kw, &d, i, t);
            assert_eq!(got, want, "rule {i} on {t:?}");
            matches += want.len();
        }
        assert!(matches > 1_000, "{matches}");
        // The texts it leaves to the whole-text search.
        assert!(!KeywordStart::applies("\u{17F}ecret=abcdefghij1234"));
        assert!(!KeywordStart::applies("\u{212A}ey=abcdefghij1234"));
        assert!(KeywordStart::applies("clé=abcdefghij1234"));
        // Characters that share their lead byte (C5, E2) do not count; the two anywhere do.
        assert!(KeywordStart::applies("ő € ⁄ key=abcdefghij1234 ő"));
        assert!(!KeywordStart::applies("ő € key=abcdefghij1234 \u{17F}"));
        assert!(!KeywordStart::applies("€\u{212A}ey=abcdefghij1234"));
    }

    #[test]
    fn rules_that_begin_with_a_keyword_are_searched_from_the_keywords_alone() {
        let d = SecretsDetector::new(&[]).unwrap();
        let leading: Vec<usize> = (0..d.rules.len())
            .filter(|i| d.rules[*i].keyword_start == Some(Lead::Keyword))
            .collect();
        let ids: Vec<&str> = leading.iter().map(|i| &*d.rules[*i].id).collect();
        for id in [
            "aws-access-token",
            "jwt",
            "vault-service-token",
            "github-pat",
        ] {
            assert!(ids.contains(&id), "{id} not in {ids:?}");
        }
        // A keyword the pattern may not begin with (`https://hooks.slack.com`), or one that it
        // folds past ASCII (`(?i)k` is also the Kelvin sign), is no proof.
        for id in ["generic-api-key", "slack-webhook-url"] {
            let r = d.rules.iter().find(|r| r.id == id).unwrap();
            assert_ne!(r.keyword_start, Some(Lead::Keyword), "{id}");
        }
        assert!(!begins_with_a_keyword(
            &regex_syntax::parse(r"(?i)\bkey_[a-z]{4}").unwrap(),
            &["key_".to_owned()]
        ));
        assert!(begins_with_a_keyword(
            &regex_syntax::parse(r"(?i-u)\bkey_[a-z]{4}").unwrap(),
            &["key_".to_owned()]
        ));
        assert!(!begins_with_a_keyword(
            &regex_syntax::parse(r"x?key_[a-z]{4}").unwrap(),
            &["key_".to_owned()]
        ));
        assert!(
            leading.len() > 100,
            "{} of {} rules",
            leading.len(),
            d.rules.len()
        );
        let kw = keyword_index(&d);
        let mut texts = crate::labelled_texts(&[
            "secrets/benign.jsonl",
            "secrets/generated.jsonl",
            "secrets/providers.jsonl",
        ]);
        // Matches next to each other and to other rules' keywords; Unicode that `(?i)` folds
        // into ASCII letters inside a match (`s.` then `ſ`, the Kelvin sign).
        let secrets = texts.clone();
        for sep in ["", " ", "_", "\n"] {
            texts.push(secrets.join(sep));
        }
        let folded = format!("s.{}", "\u{17F}\u{212A}ab".repeat(6));
        texts.push(format!("{folded} x {folded}\n"));
        texts.push(format!("hvs.{} s.s.{folded} ", "a-".repeat(50)));
        let mut matches = 0;
        for &i in &leading {
            let rule = &d.rules[i];
            let mut own = own_samples(rule, 40);
            own.push(own.join(""));
            own.push(own.join(" "));
            for t in texts.iter().chain(&own) {
                let (got, want) = both_searches(&kw, &d, i, t);
                assert_eq!(got, want, "rule {} on {t:?}", rule.id);
                matches += want.len();
            }
        }
        assert!(matches > 5_000, "{matches}");
    }

    /// `n` texts holding a string drawn from `rule`'s own pattern (without its look-arounds,
    /// which the generator cannot draw), one with spaces around it, one with letters.
    fn own_samples(rule: &Rule, n: usize) -> Vec<String> {
        use rand::{Rng, SeedableRng};
        use regex_syntax::hir::{Capture, Hir, HirKind, Repetition};
        fn without_looks(h: &Hir) -> Hir {
            match h.kind() {
                HirKind::Look(_) => Hir::empty(),
                HirKind::Concat(xs) => Hir::concat(xs.iter().map(without_looks).collect()),
                HirKind::Alternation(xs) => {
                    Hir::alternation(xs.iter().map(without_looks).collect())
                }
                HirKind::Repetition(r) => Hir::repetition(Repetition {
                    sub: Box::new(without_looks(&r.sub)),
                    ..r.clone()
                }),
                HirKind::Capture(c) => Hir::capture(Capture {
                    sub: Box::new(without_looks(&c.sub)),
                    ..c.clone()
                }),
                _ => h.clone(),
            }
        }
        // ASCII classes where the pattern allows them (smaller draws), else as written.
        let hir = match regex_syntax::ParserBuilder::new()
            .unicode(false)
            .build()
            .parse(&rule.pattern)
        {
            Ok(h) => h,
            Err(_) => regex_syntax::parse(&rule.pattern).unwrap(),
        };
        let gen = rand_regex::Regex::with_hir(without_looks(&hir), 8).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        (0..n)
            .map(|i| {
                let s: String = rng.sample(&gen);
                if i % 2 == 0 {
                    format!(" {s} ")
                } else {
                    format!("x{s}y")
                }
            })
            .collect()
    }

    /// Random texts built from the pieces a `generic-api-key` match is made of, with keywords
    /// at the greatest reach [`may_lead_to_separator`] allows and just past it.
    fn generic_pieces(rng: &mut rand::rngs::StdRng) -> String {
        use rand::Rng;
        const PIECES: &[&str] = &[
            "token",
            "KEY",
            "Api",
            "aPi",
            "passwd",
            "Password",
            "credential",
            "creds",
            "secret",
            "auth",
            "access",
            " ",
            "\t",
            "\n",
            "\x0b",
            "\x0c",
            "\r",
            "'",
            "\"",
            "=",
            ">",
            ":",
            ":::=",
            "|",
            "||",
            "?",
            "?=",
            ",",
            "=>",
            "(",
            ";",
            "a",
            "Z9",
            "_",
            ".",
            "-",
            "xxxxxxxxxxxxxxxxxxxx",
            "abcdefghij1234567890",
            "Zq8/+Yw3=",
            "é",
            "`",
        ];
        let n = rng.random_range(1..24);
        (0..n)
            .map(|_| PIECES[rng.random_range(0..PIECES.len())])
            .collect()
    }

    #[test]
    fn separator_test_admits_every_keyword_that_reaches_a_separator() {
        use rand::SeedableRng;
        let keyword_to_separator = Regex::new(&go_to_rust(
            r#"^(?i)(?:access|auth|(?-i:[Aa]pi|API)|credential|creds|key|passw(?:or)?d|secret|token)(?:[ \t\w.-]{0,20})[\s'"]{0,3}(?:=|>|:{1,3}=|\|\||:|=>|\?=|,)"#,
        ))
        .unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let (mut reached, mut ruled_out) = (0, 0);
        for _ in 0..200_000 {
            let t = generic_pieces(&mut rng);
            let admitted = may_lead_to_separator(t.as_bytes(), 0);
            if keyword_to_separator.is_match(&t) {
                assert!(admitted, "{t:?}");
                reached += 1;
            } else if !admitted {
                ruled_out += 1;
            }
        }
        assert!(
            reached > 1_000 && ruled_out > 10_000,
            "{reached} {ruled_out}"
        );
        // At the edge of the reach: `credential`, 20 middle bytes, 3 spaces, then `=`.
        let edge = format!("credential{}   =", "y".repeat(20));
        assert!(keyword_to_separator.is_match(&edge));
        assert!(may_lead_to_separator(edge.as_bytes(), 0));
        assert!(!may_lead_to_separator(
            format!("key{}=", "y".repeat(31)).as_bytes(),
            0
        ));
        assert!(!may_lead_to_separator(b"token(", 0));
        assert!(!may_lead_to_separator(b"token", 0));
    }

    #[test]
    fn keyword_start_with_the_separator_test_matches_the_whole_text_search() {
        use rand::SeedableRng;
        let d = SecretsDetector::new(&[]).unwrap();
        let i = d
            .rules
            .iter()
            .position(|r| r.id == "generic-api-key")
            .unwrap();
        let kw = keyword_index(&d);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut matches = 0;
        for _ in 0..20_000 {
            let t: String = (0..4).map(|_| generic_pieces(&mut rng)).collect();
            let (got, want) = both_searches(&kw, &d, i, &t);
            assert_eq!(got, want, "{t:?}");
            matches += want.len();
        }
        assert!(matches > 2_000, "{matches}");
    }

    #[test]
    fn every_embedded_rule_compiles_and_only_when_first_triggered() {
        let d = SecretsDetector::new(&[]).unwrap();
        assert!(d.rules.iter().all(|r| r.compiled.get().is_none()));
        let kw = keyword_index(&d);
        let scan = |t: &str| {
            let hits = kw.scan(t);
            let mut out = Vec::new();
            d.detect_with(t, hits.of(crate::keywords::Owner::Secrets), &mut out);
            out
        };
        assert!(scan("nothing to see here").is_empty());
        assert!(d.rules.iter().all(|r| r.compiled.get().is_none()));
        let found = scan("GITHUB_TOKEN=ghp_8Rz2mXq4Lw7Nc1Vb5Tk9Jd3Hf6Gs0Pa2Ye4U");
        assert_eq!(found.len(), 1, "{found:?}");
        let built: Vec<&str> = d
            .rules
            .iter()
            .filter(|r| r.compiled.get().is_some())
            .map(|r| &*r.id)
            .collect();
        assert!(built.contains(&"github-pat"), "{built:?}");
        assert!(built.len() < 10, "{built:?}");
        // The scan path cannot report an error, so every rule the file holds must compile.
        for r in &d.rules {
            r.compile()
                .unwrap_or_else(|e| panic!("rule {} does not compile: {e}", r.id));
        }
    }

    #[test]
    fn entropy() {
        assert_eq!(shannon_entropy("aaaa"), 0.0);
        assert!((shannon_entropy("ab") - 1.0).abs() < 1e-9);
    }
}
