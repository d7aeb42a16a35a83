//! PII: format-based recognizers with validation, in the spirit of Microsoft Presidio (and with
//! its entity names).
//!
//! Each recognizer finds candidates with an ASCII regex, then validates them: Luhn and issuer
//! prefixes for cards, country length and mod-97 for IBANs, area/group/serial rules for US SSNs,
//! libphonenumber metadata (the `phonenumber` crate) for phone numbers, address parsers for IPs,
//! base58check / bech32 / EIP-55 checksums for crypto addresses. Context words in a few words
//! around a candidate raise its score (`phone`, `card`, `iban`...) or lower it (`version`,
//! `order`, `invoice`...), as Presidio's context enhancer does.
//!
//! What it misses: names, street addresses, dates and other entities that need a language model
//! (Presidio's spaCy NER); phone numbers that libphonenumber considers invalid, and short local
//! numbers in groups (`469 2020`, `87 47 98`), unless a context word is near; a phone number
//! followed within three words by a street word (`Lane`, `Ave`, `rue`), taken for a house number;
//! numbers split by unusual separators; e-mail addresses obfuscated in ways other
//! than `[at]`/`(at)`/` at ... dot com`; non-ASCII digits.

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use phonenumber::country;
use regex::Regex;
use regex_automata::{meta, Input};
use sha2::{Digest, Sha256};

use crate::bytescan::{next_digit, runs, runs_around};
use crate::config::PiiConfig;
use crate::error::GuardianError;
use crate::finding::{Action, DetectorId, Finding};
use crate::keywords::Hit;

/// The entity types this detector reports.
pub const PII_ENTITIES: [&str; 8] = [
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "IP_ADDRESS",
    "MAC_ADDRESS",
    "CRYPTO",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Entity {
    Email,
    Phone,
    Card,
    Iban,
    Ssn,
    Ip,
    Mac,
    Crypto,
}

impl Entity {
    fn name(self) -> &'static str {
        match self {
            Entity::Email => "EMAIL_ADDRESS",
            Entity::Phone => "PHONE_NUMBER",
            Entity::Card => "CREDIT_CARD",
            Entity::Iban => "IBAN_CODE",
            Entity::Ssn => "US_SSN",
            Entity::Ip => "IP_ADDRESS",
            Entity::Mac => "MAC_ADDRESS",
            Entity::Crypto => "CRYPTO",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Words that make the entity more likely when they appear near a candidate.
    const fn context(self) -> &'static [&'static str] {
        match self {
            Entity::Email => &["email", "mail", "e-mail", "contact", "address"],
            Entity::Phone => &[
                "phone",
                "telephone",
                "tel",
                "cell",
                "mobile",
                "call",
                "fax",
                "contact",
                "office",
                "home",
                "work",
                "landline",
                "dial",
                "sms",
                "message",
                "messages",
                "reach",
                "text",
                "whatsapp",
            ],
            Entity::Card => &[
                "credit",
                "card",
                "cc",
                "visa",
                "mastercard",
                "amex",
                "discover",
                "jcb",
                "diners",
                "maestro",
                "payment",
                "debit",
            ],
            Entity::Iban => &["iban", "bank", "account", "transfer", "wire", "sepa"],
            Entity::Ssn => &["ssn", "social", "security", "ssns", "taxpayer"],
            Entity::Ip => &["ip", "ipv4", "ipv6", "address", "host", "server", "addr"],
            Entity::Mac => &["mac", "ethernet", "hardware", "address", "nic", "wifi"],
            Entity::Crypto => &[
                "wallet", "btc", "bitcoin", "crypto", "eth", "ethereum", "address", "send",
            ],
        }
    }
}

const NEGATIVE_CONTEXT: &[&str] = &[
    "version", "ver", "release", "build", "isbn", "order", "invoice", "tracking", "sku", "serial",
    "ticket", "issue",
];

/// Words right after a number that make it a street address rather than a phone number.
const STREET_WORDS: &[&str] = &[
    "street", "st", "ave", "avenue", "road", "rd", "lane", "drive", "dr", "blvd", "way", "place",
    "court", "square", "rue", "strasse",
];

const ALL_ENTITIES: [Entity; 8] = [
    Entity::Email,
    Entity::Phone,
    Entity::Card,
    Entity::Iban,
    Entity::Ssn,
    Entity::Ip,
    Entity::Mac,
    Entity::Crypto,
];

/// The obfuscated `@` forms that gate the obfuscated-address pattern.
/// (A space in a keyword also matches tabs and line breaks: [`crate::keywords`].)
pub(crate) const AT_HINTS: [&str; 7] = ["[at]", "(at)", "{at}", "<at>", " at ", "[ at ]", "( at )"];

/// The detector's keywords for the shared automaton ([`crate::keywords`]): [`AT_HINTS`], then
/// the phone numbers' context words. A phone candidate's context words are read only when one
/// of them occurs near it, which most rejected candidates (log timestamps, request counters) do
/// not have.
pub(crate) fn keywords() -> Vec<String> {
    AT_HINTS
        .iter()
        .chain(Entity::Phone.context())
        .map(|w| w.to_string())
        .collect()
}

/// Word boundary for ASCII text; works on any haystack without the Unicode slow path.
const B: &str = r"(?-u:\b)";

pub(crate) struct PiiDetector {
    enabled: [bool; 8],
    min_score: f32,
    regions: Vec<country::Id>,
    email: Regex,
    email_obfuscated: Regex,
    /// The detector's [`keywords`], for the unit tests; the engine scans with its shared
    /// automaton.
    #[cfg(test)]
    hints: crate::keywords::KeywordIndex,
    // The patterns below run only inside candidate regions (see `detect`), with the
    // `regex-automata` meta engine, which searches a range while honouring look-around (`\b`)
    // against the bytes outside it.
    phone: meta::Regex,
    /// libphonenumber's validity check with its patterns compiled once ([`crate::phone`]).
    phone_valid: crate::phone::Validator,
    card: meta::Regex,
    iban: meta::Regex,
    ssn: meta::Regex,
    ipv4: meta::Regex,
    ipv6: meta::Regex,
    mac: meta::Regex,
}

fn re(id: &str, pattern: &str) -> Result<Regex, GuardianError> {
    Regex::new(pattern).map_err(|e| GuardianError::pattern(format!("pii.{id}"), e))
}

/// A pattern searched only inside candidate regions, a few bytes each: without a literal
/// prefilter, whose start-up costs more there than the lazy DFA's pass over the region.
fn mre(id: &str, pattern: &str) -> Result<meta::Regex, GuardianError> {
    meta::Regex::builder()
        .configure(meta::Config::new().auto_prefilter(false))
        .build(pattern)
        .map_err(|e| GuardianError::Config(format!("pattern pii.{id} does not compile: {e}")))
}

impl PiiDetector {
    pub(crate) fn new(cfg: &PiiConfig) -> Result<Self, GuardianError> {
        let mut enabled = [true; 8];
        if let Some(list) = &cfg.entities {
            for e in ALL_ENTITIES {
                enabled[e.index()] = list.iter().any(|n| n == e.name());
            }
            if let Some(bad) = list.iter().find(|n| !PII_ENTITIES.contains(&n.as_str())) {
                return Err(GuardianError::Config(format!(
                    "pii.entities: unknown entity type {bad}"
                )));
            }
        }
        for name in cfg.entity_actions.keys() {
            if !PII_ENTITIES.contains(&name.as_str()) {
                return Err(GuardianError::Config(format!(
                    "pii.entity_actions: unknown entity type {name}"
                )));
            }
        }
        let mut regions = Vec::new();
        for r in &cfg.phone_regions {
            let id = country::Id::from_str(&r.to_ascii_uppercase()).map_err(|_| {
                GuardianError::Config(format!("pii.phone_regions: unknown region {r}"))
            })?;
            regions.push(id);
        }
        let open = r"(?:\[|\(|\{|<)";
        let close = r"(?:\]|\)|\}|>)";
        Ok(PiiDetector {
            enabled,
            min_score: cfg.min_score,
            regions,
            email: re(
                "email",
                &format!(
                    r"(?i){B}[a-z0-9][a-z0-9._%+\-]{{0,63}}@(?:[a-z0-9](?:[a-z0-9\-]{{0,61}}[a-z0-9])?\.)+[a-z]{{2,24}}{B}"
                ),
            )?,
            #[cfg(test)]
            hints: crate::keywords::KeywordIndex::new(&[(
                crate::keywords::Owner::Pii,
                keywords(),
            )])?,
            email_obfuscated: re(
                "email_obfuscated",
                &format!(
                    r"(?i){B}[a-z0-9][a-z0-9._%+\-]{{0,63}}(?:[ \t]*{open}[ \t]*at[ \t]*{close}[ \t]*(?:[a-z0-9\-]{{1,63}}[ \t]*(?:{open}[ \t]*(?:dot|\.)[ \t]*{close}|\.)[ \t]*)+[a-z]{{2,24}}|[ \t]+at[ \t]+(?:[a-z0-9\-]{{1,63}}[ \t]+dot[ \t]+)+(?:com|org|net|edu|gov|io|co|uk|de|fr|info|biz|me|us|ca|au){B})"
                ),
            )?,
            phone: mre(
                "phone",
                &format!(
                    r"(?i)(?:\+[1-9]|\(\+?[0-9]|[0-9])[0-9 ().\-/]{{5,20}}[0-9](?:[ \t]?(?:x|ext\.?|extension)[ \t]?[0-9]{{1,6}})?{B}"
                ),
            )?,
            phone_valid: crate::phone::Validator::default(),
            card: mre("card", &format!(r"{B}(?:[0-9][ \-]?){{11,18}}[0-9]{B}"))?,
            iban: mre(
                "iban",
                &format!(r"{B}[A-Z]{{2}}[0-9]{{2}}(?:[ ]?[A-Z0-9]){{11,30}}{B}"),
            )?,
            ssn: mre(
                "ssn",
                &format!(
                    r"{B}(?:[0-9]{{3}}-[0-9]{{2}}-[0-9]{{4}}|[0-9]{{3}} [0-9]{{2}} [0-9]{{4}}|[0-9]{{3}}\.[0-9]{{2}}\.[0-9]{{4}}|[0-9]{{9}}){B}"
                ),
            )?,
            ipv4: mre(
                "ipv4",
                &format!(r"{B}(?:[0-9]{{1,3}}\.){{3}}[0-9]{{1,3}}{B}"),
            )?,
            ipv6: mre(
                "ipv6",
                r"(?i)[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}(?:(?:[0-9]{1,3}\.){3}[0-9]{1,3})?",
            )?,
            mac: mre(
                "mac",
                &format!(
                    r"(?i){B}(?:(?:[0-9a-f]{{2}}:){{5}}[0-9a-f]{{2}}|(?:[0-9a-f]{{2}}-){{5}}[0-9a-f]{{2}}|(?:[0-9a-f]{{4}}\.){{2}}[0-9a-f]{{4}}){B}"
                ),
            )?,
        })
    }

    fn on(&self, e: Entity) -> bool {
        self.enabled[e.index()]
    }

    /// Appends PII findings (action `Flag`, fixed later) to `out`.
    #[cfg(test)]
    pub(crate) fn detect(&self, text: &str, out: &mut Vec<Finding>) {
        self.detect_with(text, &self.hints(text), out);
    }

    /// The occurrences of [`keywords`] in `text`, as the shared automaton reports them.
    #[cfg(test)]
    fn hints(&self, text: &str) -> Vec<Hit> {
        self.hints.scan_for(text, crate::keywords::Owner::Pii)
    }

    /// Appends PII findings; `hints` are the occurrences of [`keywords`] in `text`, by end.
    pub(crate) fn detect_with(&self, text: &str, hints: &[Hit], out: &mut Vec<Finding>) {
        let first = out.len();
        let at_hint = hints.iter().any(|h| (h.pattern as usize) < AT_HINTS.len());
        let bytes = text.as_bytes();
        let has_digit = next_digit(bytes, 0).is_some();
        if self.on(Entity::Email) {
            if memchr_byte(b'@', bytes) {
                for m in self.email.find_iter(text) {
                    self.push(text, out, Entity::Email, m.start(), m.end(), 0.95, "email");
                }
            }
            if at_hint {
                for m in self.email_obfuscated.find_iter(text) {
                    if text[m.range()].contains('@') {
                        continue;
                    }
                    self.push(
                        text,
                        out,
                        Entity::Email,
                        m.start(),
                        m.end(),
                        0.75,
                        "email_obfuscated",
                    );
                }
            }
        }
        if !has_digit {
            self.resolve(out, first);
            return;
        }
        let numeric = self.on(Entity::Card)
            || self.on(Entity::Ssn)
            || self.on(Entity::Ip)
            || self.on(Entity::Phone);
        let digits = digit_regions(bytes);
        if numeric {
            for r in &digits.numeric {
                let (rs, re_) = (r.start, r.end);
                // Each recognizer needs this many digits (and dots) in one run of the region.
                if self.on(Entity::Card) && r.digits >= 12 {
                    for m in num_run_matches(&self.card, text, rs, re_, 12) {
                        if let Some(score) = card_score(&text[m.range()]) {
                            self.push(
                                text,
                                out,
                                Entity::Card,
                                m.start(),
                                m.end(),
                                score,
                                "credit_card",
                            );
                        }
                    }
                }
                if self.on(Entity::Ssn) && r.digits >= 9 && ssn_shaped(&bytes[rs..re_]) {
                    for m in num_run_matches(&self.ssn, text, rs, re_, 9) {
                        if let Some(score) = ssn_score(&text[m.range()]) {
                            self.push(text, out, Entity::Ssn, m.start(), m.end(), score, "us_ssn");
                        }
                    }
                }
                if self.on(Entity::Ip) && r.dots >= 3 {
                    for m in num_run_matches(&self.ipv4, text, rs, re_, 7) {
                        let (s, e) = (m.start(), m.end());
                        // Part of a longer dotted number (a version string, an OID)?
                        let after = &bytes[e..];
                        if bytes[..s].ends_with(b".")
                            || (after.starts_with(b".")
                                && after.get(1).is_some_and(u8::is_ascii_digit))
                        {
                            continue;
                        }
                        if Ipv4Addr::from_str(&text[s..e]).is_ok() {
                            self.push(text, out, Entity::Ip, s, e, 0.8, "ipv4");
                        }
                    }
                }
                if self.on(Entity::Phone) && r.digits >= 6 {
                    for m in num_run_matches(&self.phone, text, rs, re_, 7) {
                        let (s, e) = trim_phone(text, m.start(), m.end());
                        if e <= s {
                            continue;
                        }
                        if (s > 0 && matches!(bytes[s - 1], b':' | b'.' | b'-'))
                            || bytes.get(e) == Some(&b':')
                        {
                            continue;
                        }
                        // Start of a token: not glued to a word, except an escaped `\n`/`\t` before it.
                        if s > 0
                            && (bytes[s - 1].is_ascii_digit()
                                || bytes[s - 1] == b'_'
                                || (bytes[s - 1].is_ascii_alphabetic()
                                    && !escaped_control(bytes, s - 1)))
                        {
                            continue;
                        }
                        // `171 3890 Creekside Lane`: a house number, whatever the context says.
                        if street_follows(bytes, e) {
                            continue;
                        }
                        // The context words are looked up once per candidate: `phone_score`
                        // may ask twice and the finding's score needs them again. Without a
                        // phone word anywhere in the window, no word there is one.
                        let ctx = std::cell::OnceCell::new();
                        let ctx = || *ctx.get_or_init(|| context(text, s, e, Entity::Phone));
                        let (lo, hi) = context_window(text, s, e);
                        let positive = || phone_word_within(hints, lo, hi) && ctx().positive;
                        if let Some(score) = self.phone_score(&text[s..e], positive, self.min_score)
                        {
                            let score = ctx().adjust(score);
                            self.push_scored(out, Entity::Phone, s, e, score, "phone");
                        }
                    }
                }
            }
        }
        if self.on(Entity::Ip) || self.on(Entity::Mac) {
            for (rs, re_, colons) in hex_regions(bytes) {
                let input = || Input::new(text).range(rs..re_);
                // An IPv6 candidate needs `::` or seven colons and three bytes; a MAC address
                // is at least 14 bytes (`xxxx.xxxx.xxxx`).
                let region = &bytes[rs..re_];
                if self.on(Entity::Ip)
                    && colons >= 2
                    && region.len() >= 3
                    && (colons >= 7 || memchr::memmem::find(region, b"::").is_some())
                {
                    for m in self.ipv6.find_iter(input()) {
                        let (s, e) = (m.start(), m.end());
                        let cand = &text[s..e];
                        if cand.len() < 3
                            || !(cand.contains("::") || cand.matches(':').count() == 7)
                        {
                            continue;
                        }
                        let prev_ok = s == 0 || !is_word_byte(bytes[s - 1]);
                        let next_ok = e == bytes.len() || !is_word_byte(bytes[e]);
                        if prev_ok && next_ok && cand != "::" && Ipv6Addr::from_str(cand).is_ok() {
                            self.push(text, out, Entity::Ip, s, e, 0.8, "ipv6");
                        }
                    }
                }
                if self.on(Entity::Mac) && region.len() >= 14 {
                    for m in self.mac.find_iter(input()) {
                        let c = &text[m.range()];
                        // Not all one byte repeated (00:00:00:00:00:00 is a placeholder).
                        let hex: Vec<u8> = c.bytes().filter(u8::is_ascii_hexdigit).collect();
                        if hex.iter().all(|b| *b == hex[0]) {
                            continue;
                        }
                        self.push(text, out, Entity::Mac, m.start(), m.end(), 0.75, "mac");
                    }
                }
            }
        }
        let (iban_on, crypto_on) = (self.on(Entity::Iban), self.on(Entity::Crypto));
        if iban_on || crypto_on {
            let mut skip_to = 0;
            // Every IBAN and crypto address has a digit in its first token.
            for &(s, e) in &digits.tokens {
                let tok = &text[s..e];
                let len = e - s;
                if s < skip_to {
                    continue;
                }
                // IBAN: a token starting with two capitals and two digits (spaces may follow).
                if iban_on
                    && len >= 4
                    && bytes[s].is_ascii_uppercase()
                    && bytes[s + 1].is_ascii_uppercase()
                    && bytes[s + 2].is_ascii_digit()
                    && bytes[s + 3].is_ascii_digit()
                {
                    let end = (s + 48).min(bytes.len());
                    let input = Input::new(text)
                        .range(s..end)
                        .anchored(regex_automata::Anchored::Yes);
                    if let Some(m) = self.iban.find(input) {
                        if let Some(l) = iban_valid_prefix(&text[m.range()]) {
                            self.push(text, out, Entity::Iban, s, s + l, 0.95, "iban");
                            skip_to = s + l;
                            continue;
                        }
                    }
                }
                if !crypto_on || len < 14 {
                    continue;
                }
                let score = if (26..=35).contains(&len) && matches!(bytes[s], b'1' | b'3') {
                    base58check_valid(tok).then_some((0.95, "btc_base58"))
                } else if (14..=90).contains(&len)
                    && (tok[..3].eq_ignore_ascii_case("bc1")
                        || tok[..3].eq_ignore_ascii_case("tb1"))
                {
                    bech32_valid(tok).then_some((0.95, "btc_bech32"))
                } else if len == 42
                    && tok.starts_with("0x")
                    && tok[2..].bytes().all(|b| b.is_ascii_hexdigit())
                {
                    eth_score(tok).map(|s| (s, "eth"))
                } else {
                    None
                };
                if let Some((score, rule)) = score {
                    self.push(text, out, Entity::Crypto, s, e, score, rule);
                }
            }
        }
        self.resolve(out, first);
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &self,
        text: &str,
        out: &mut Vec<Finding>,
        e: Entity,
        start: usize,
        end: usize,
        base: f32,
        rule: &'static str,
    ) {
        let score = adjust_with_context(text, start, end, e, base);
        self.push_scored(out, e, start, end, score, rule);
    }

    /// Appends a finding whose score already includes its context.
    fn push_scored(
        &self,
        out: &mut Vec<Finding>,
        e: Entity,
        start: usize,
        end: usize,
        score: f32,
        rule: &'static str,
    ) {
        if score < self.min_score {
            return;
        }
        out.push(Finding {
            detector: DetectorId::Pii,
            entity_type: Cow::Borrowed(e.name()),
            rule: Cow::Borrowed(rule),
            start,
            end,
            score,
            action: Action::Flag,
        });
    }

    /// Overlapping PII candidates (a card number that also parses as a phone number): keep the
    /// highest score, then the longest.
    fn resolve(&self, out: &mut Vec<Finding>, first: usize) {
        crate::finding::keep_best_non_overlapping(out, first);
    }

    /// Scores a phone candidate. libphonenumber is slow next to a regex, so candidates that could
    /// not reach `min_score` without a context word are rejected before it runs.
    fn phone_score(
        &self,
        cand: &str,
        with_context: impl Fn() -> bool,
        min_score: f32,
    ) -> Option<f32> {
        let digits = cand
            .bytes()
            .take_while(|b| *b != b'x' && *b != b'e' && *b != b'X' && *b != b'E')
            .filter(u8::is_ascii_digit)
            .count();
        let g = DigitGroups::of(cand);
        if !(6..=15).contains(&digits) || looks_like_date_or_version(cand, &g) {
            return None;
        }
        // Six digits (`87 47 98`) are a phone number only next to a context word.
        if digits < 7 && !with_context() {
            return None;
        }
        let international =
            cand.starts_with('+') || cand.starts_with("(+") || cand.starts_with("00");
        if international {
            let normalized;
            let c = if let Some(rest) = cand.strip_prefix("00") {
                normalized = format!("+{rest}");
                normalized.as_str()
            } else {
                cand
            };
            return match phonenumber::parse(None, c) {
                Ok(n) if self.phone_valid.is_valid(&n) => Some(0.75),
                Ok(_) => Some(0.4),
                Err(_) => None,
            };
        }
        let has_sep = cand.bytes().any(|b| !b.is_ascii_digit());
        let groups = g.count;
        // Shapes that only phone numbers tend to have: a trunk prefix 0, an area code in
        // parentheses, three or more groups.
        let short_groups = g.longest <= 4;
        let phone_shaped =
            cand.starts_with('0') || cand.starts_with('(') || (groups >= 3 && short_groups);
        let best_without_context = if digits >= 10 && has_sep {
            0.7
        } else if phone_shaped && has_sep {
            0.55
        } else {
            0.4
        };
        // Whether a context word is near: then any score from 0.35 up passes (context lifts it
        // to 0.6); without one, only scores reaching `min_score` do.
        let context = with_context();
        if best_without_context < min_score && !context {
            return None;
        }
        // Past the first region a valid number scores 0.55 or 0.35: when that cannot pass, only
        // the first region's answer matters (each parse costs microseconds; there are 11 regions
        // by default).
        let later = if phone_shaped && has_sep { 0.55 } else { 0.35 };
        let regions = if later < min_score && !context {
            &self.regions[..self.regions.len().min(1)]
        } else {
            &self.regions[..]
        };
        for (i, r) in regions.iter().enumerate() {
            if let Ok(n) = phonenumber::parse(Some(*r), cand) {
                if self.phone_valid.is_valid(&n) {
                    let primary = i == 0 && digits >= 10 && has_sep;
                    return Some(if primary {
                        0.7
                    } else if phone_shaped && has_sep {
                        0.55
                    } else {
                        0.35
                    });
                }
            }
        }
        // Formatted like a phone number but not valid in any configured region: needs context.
        // So do short local numbers in groups (`469 2020`, `87 47 98`), which libphonenumber
        // cannot place without an area code.
        let local_groups = groups >= 2 && short_groups && (groups >= 3 || digits >= 7);
        if has_sep && (7..=12).contains(&digits) && phone_shaped
            || context && has_sep && digits <= 12 && local_groups
        {
            Some(0.4)
        } else {
            None
        }
    }
}

/// A run of digits and number separators holding at least four digits, extended a little to the
/// right for phone extensions (`x123`, ` ext. 45`): the only places where cards, SSNs, IPv4
/// addresses and phone numbers can start. Adjacent ones are merged (keeping the largest counts
/// of any one run).
struct NumRegion {
    start: usize,
    end: usize,
    digits: usize,
    dots: usize,
}

/// What the digit-based recognizers look at, found from the digits of the text alone.
struct DigitRegions {
    numeric: Vec<NumRegion>,
    /// The word tokens (`[A-Za-z0-9_]+`) that contain a digit and may start an IBAN or a
    /// crypto address ([`iban_or_crypto_shaped`]), in order.
    tokens: Vec<(usize, usize)>,
}

/// Whether the IBAN and crypto checks of [`PiiDetector::detect_with`] can use a word token: an
/// IBAN's starts with two capitals and two digits, a crypto address is at least 14 bytes. The
/// others (`2024`, `01T12`, `8b7d`, `14ms`: most tokens of log lines) are dropped as they are
/// found, instead of being stored and skipped.
fn iban_or_crypto_shaped(tok: &[u8]) -> bool {
    tok.len() >= 14
        || matches!(tok, [a, b, c, d, ..] if a.is_ascii_uppercase()
            && b.is_ascii_uppercase()
            && c.is_ascii_digit()
            && d.is_ascii_digit())
}

/// Bits of [`BYTE_CLASS`]: a number run's bytes (`[0-9 ().\-/+]`), a word's (`[A-Za-z0-9_]`), and
/// a MAC or IPv6 address run's (hex digits, `:`, `-`, `.`).
const NUM: u8 = 1;
const WORD: u8 = 2;
const HEX: u8 = 4;

/// The classes of each byte, for the region walks of [`digit_regions`] and [`hex_regions`]: one
/// load and a test a byte, where the range checks took several compares.
static BYTE_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        if b.is_ascii_digit() || matches!(b, b' ' | b'(' | b')' | b'.' | b'-' | b'/' | b'+') {
            t[i] |= NUM;
        }
        if b.is_ascii_alphanumeric() || b == b'_' {
            t[i] |= WORD;
        }
        if b.is_ascii_hexdigit() || matches!(b, b':' | b'-' | b'.') {
            t[i] |= HEX;
        }
        i += 1;
    }
    t
};

/// Visits each digit (skipping digit-free stretches eight bytes at a time) and grows the number
/// run and the word token around it. A number run starts at its first digit, `(` or `+` and
/// ends where the separators `[0-9 ().\-/+]` end.
fn digit_regions(bytes: &[u8]) -> DigitRegions {
    let is_num = |b: u8| BYTE_CLASS[usize::from(b)] & NUM != 0;
    let is_word = |b: u8| BYTE_CLASS[usize::from(b)] & WORD != 0;
    let n = bytes.len();
    // Room for what text with numbers usually holds (log lines: a number region per 400 bytes),
    // so that the vector doubles once or twice, not ten times.
    let mut out = DigitRegions {
        numeric: Vec::with_capacity(n / 512),
        tokens: Vec::new(),
    };
    let (mut num_done, mut tok_done) = (0, 0);
    let mut i = 0;
    while let Some(p) = next_digit(bytes, i) {
        if p >= num_done {
            let mut s = p;
            while s > 0 && is_num(bytes[s - 1]) {
                s -= 1;
            }
            while !(bytes[s].is_ascii_digit() || matches!(bytes[s], b'(' | b'+')) {
                s += 1;
            }
            let mut e = p;
            let (mut digits, mut dots) = (0, 0);
            for &b in &bytes[s..p] {
                digits += usize::from(b.is_ascii_digit());
                dots += usize::from(b == b'.');
            }
            while e < n && is_num(bytes[e]) {
                digits += usize::from(bytes[e].is_ascii_digit());
                dots += usize::from(bytes[e] == b'.');
                e += 1;
            }
            num_done = e;
            if digits >= 4 {
                let end = (e + 12).min(n);
                match out.numeric.last_mut() {
                    // Every recognizer's match lies within one run (cards, SSNs, IPv4 addresses
                    // and the number part of a phone number are made of the run's characters),
                    // so the region keeps the largest counts of one run, not their sum.
                    Some(last) if last.end >= s => {
                        last.end = end;
                        last.digits = last.digits.max(digits);
                        last.dots = last.dots.max(dots);
                    }
                    _ => out.numeric.push(NumRegion {
                        start: s,
                        end,
                        digits,
                        dots,
                    }),
                }
            }
        }
        if p >= tok_done {
            let mut s = p;
            while s > 0 && is_word(bytes[s - 1]) {
                s -= 1;
            }
            let mut e = p + 1;
            while e < n && is_word(bytes[e]) {
                e += 1;
            }
            tok_done = e;
            if iban_or_crypto_shaped(&bytes[s..e]) {
                out.tokens.push((s, e));
            }
        }
        i = num_done.min(tok_done).max(p + 1);
    }
    out
}

/// The matches of `re` in `text[start..end]`, as its `find_iter` reports them, for a pattern
/// whose matches are never empty and start with at least `min` bytes of one number run ([`NUM`]
/// bytes: the card, SSN, IPv4 and phone patterns). Each search starts at the next run that long,
/// and none is made once no such run is left (the tail of a log line after its last number),
/// where `find_iter` would search to the end of the region for nothing.
fn num_run_matches<'a>(
    re: &'a meta::Regex,
    text: &'a str,
    start: usize,
    end: usize,
    min: usize,
) -> impl Iterator<Item = regex_automata::Match> + 'a {
    let bytes = &text.as_bytes()[..end];
    let mut at = start;
    std::iter::from_fn(move || {
        // No match starts before the run: its first `min` bytes would be a run that long.
        let from = next_num_run(bytes, at, min)?;
        let m = re.find(Input::new(text).range(from..end))?;
        at = m.end();
        Some(m)
    })
}

/// The start of the first run of at least `min` [`NUM`] bytes in `bytes[from..]`.
fn next_num_run(bytes: &[u8], from: usize, min: usize) -> Option<usize> {
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate().skip(from) {
        if BYTE_CLASS[usize::from(b)] & NUM == 0 {
            run = 0;
            continue;
        }
        run += 1;
        if run == min {
            return Some(i + 1 - min);
        }
    }
    None
}

/// Whether `region` could hold what the SSN pattern matches (`ddd-dd-dddd`, `ddd dd dddd`,
/// `ddd.dd.dddd` or nine digits, each between word boundaries): a digit group of nine or more,
/// or groups of at least three, exactly two and at least four digits joined by one and the same
/// separator. Skips the regex on the many number runs (log lines, timestamps) that cannot.
fn ssn_shaped(region: &[u8]) -> bool {
    // (start, end) of the last three maximal digit groups, oldest first: kept in place rather
    // than collected (the region of every log line with a counter and an IPv4 address is
    // checked).
    let mut last: [Option<(usize, usize)>; 3] = [None; 3];
    let mut i = 0;
    while i < region.len() {
        if !region[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let s = i;
        while i < region.len() && region[i].is_ascii_digit() {
            i += 1;
        }
        if i - s >= 9 {
            return true;
        }
        last = [last[1], last[2], Some((s, i))];
        if let [Some(a), Some(b), Some(c)] = last {
            let sep = region[a.1];
            if a.1 - a.0 >= 3
                && b.1 - b.0 == 2
                && c.1 - c.0 >= 4
                && b.0 == a.1 + 1
                && c.0 == b.1 + 1
                && matches!(sep, b'-' | b' ' | b'.')
                && region[b.1] == sep
            {
                return true;
            }
        }
    }
    false
}

/// Maximal runs of hex digits, `:`, `-` and `.` that could hold a MAC or IPv6 address, with the
/// number of colons in each: runs with two colons (found from the colons), and runs of at least
/// 14 bytes (the shortest dash or dot MAC form) with five dashes or two dots.
fn hex_regions(bytes: &[u8]) -> Vec<(usize, usize, usize)> {
    let is_hex = |b: u8| BYTE_CLASS[usize::from(b)] & HEX != 0;
    let mut out = Vec::new();
    let count = |s: usize, e: usize| {
        let (mut colons, mut dashes, mut dots) = (0, 0, 0);
        for b in &bytes[s..e] {
            match b {
                b':' => colons += 1,
                b'-' => dashes += 1,
                b'.' => dots += 1,
                _ => {}
            }
        }
        (colons, dashes, dots)
    };
    for (s, e) in runs_around(bytes, memchr::memchr_iter(b':', bytes), 1, is_hex) {
        let (colons, _, _) = count(s, e);
        if colons >= 2 {
            out.push((s, e, colons));
        }
    }
    for (s, e) in runs(bytes, is_hex, 14) {
        let (colons, dashes, dots) = count(s, e);
        if colons < 2 && (dashes >= 5 || dots >= 2) {
            out.push((s, e, colons));
        }
    }
    out.sort_unstable();
    out
}

/// Whether `bytes[i]` is the letter of a literal `\n`, `\t` or `\r` escape.
fn escaped_control(bytes: &[u8], i: usize) -> bool {
    i > 0 && bytes[i - 1] == b'\\' && matches!(bytes[i], b'n' | b't' | b'r')
}

fn memchr_byte(b: u8, hay: &[u8]) -> bool {
    hay.contains(&b)
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':'
}

/// Drops trailing separators and unbalanced parentheses a greedy candidate regex picked up.
fn trim_phone(text: &str, mut s: usize, mut e: usize) -> (usize, usize) {
    let b = text.as_bytes();
    while e > s && matches!(b[e - 1], b' ' | b'-' | b'.' | b'/' | b'(') {
        e -= 1;
    }
    if e > s && b[e - 1] == b')' {
        let open = b[s..e].iter().filter(|c| **c == b'(').count();
        let close = b[s..e].iter().filter(|c| **c == b')').count();
        if close > open {
            e -= 1;
        }
    }
    while s < e && matches!(b[s], b' ' | b'-' | b'.' | b'/') {
        s += 1;
    }
    (s, e)
}

/// The digit groups (maximal runs of ASCII digits) of a phone candidate, summarised: what
/// [`PiiDetector::phone_score`] and [`looks_like_date_or_version`] ask of them, without
/// collecting them (about 200 candidates a 64 KiB log scan, nearly all rejected).
struct DigitGroups {
    count: usize,
    /// The lengths of the first three groups (0 past the last).
    first: [usize; 3],
    /// The lengths of the longest and shortest group (0 and `usize::MAX` without a group).
    longest: usize,
    shortest: usize,
}

impl DigitGroups {
    fn of(c: &str) -> Self {
        let mut g = DigitGroups {
            count: 0,
            first: [0; 3],
            longest: 0,
            shortest: usize::MAX,
        };
        for run in c.as_bytes().split(|b| !b.is_ascii_digit()) {
            if run.is_empty() {
                continue;
            }
            if g.count < 3 {
                g.first[g.count] = run.len();
            }
            g.count += 1;
            g.longest = g.longest.max(run.len());
            g.shortest = g.shortest.min(run.len());
        }
        g
    }
}

fn looks_like_date_or_version(c: &str, g: &DigitGroups) -> bool {
    // 2024-01-31, 31/01/2024, 2024.01.31, 4/18/1960, and timestamps starting with a date
    if g.count >= 3 {
        let lens = g.first;
        let sep_ok = !c[..c.len().min(10)].contains(' ') && !c.contains('(');
        if sep_ok
            && ((lens[0] == 4 && lens[1] <= 2 && lens[2] <= 2)
                || (lens[0] <= 2 && lens[1] <= 2 && lens[2] == 4))
        {
            return true;
        }
    }
    if c.contains('/') {
        return true;
    }
    // French numbers are written 0X.XX.XX.XX.XX; versions do not look like that.
    let french = g.count == 5 && c.starts_with('0') && g.shortest == 2 && g.longest == 2;
    // dotted numbers with many short groups (1.2.3.4.5)
    c.contains('.') && !c.contains(' ') && !french && g.longest <= 2 && g.count >= 3
}

/// Whether one of the next three words after `end` (within 40 bytes, on the same line) is a
/// street word: the number before `Jasper Ave` or `rue Saint-Antoine` is a house number.
fn street_follows(bytes: &[u8], end: usize) -> bool {
    let hi = (end + 40).min(bytes.len());
    let mut words = 0;
    let mut i = end;
    while i < hi && words < 3 {
        if bytes[i] == b'\n' || bytes[i] == b'\\' {
            return false;
        }
        if !bytes[i].is_ascii_alphabetic() {
            i += 1;
            continue;
        }
        let s = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        words += 1;
        let w = &bytes[s..i];
        if STREET_WORDS
            .iter()
            .any(|sw| sw.len() == w.len() && sw.as_bytes().eq_ignore_ascii_case(w))
        {
            return true;
        }
    }
    false
}

/// For each entity and each first byte (either case), the lengths (bit `len`) of the words that
/// can change the entity's score: its context words, the negative-context words and, for phone
/// numbers, the street words. Most tokens near a candidate (numbers, identifiers, the other
/// entities' words) start with a byte or have a length no such word has, and are passed over
/// without lowercasing or comparing words.
static CONTEXT_FILTER: [[u16; 256]; 8] = {
    const fn add(mut t: [u16; 256], list: &[&str]) -> [u16; 256] {
        let mut i = 0;
        while i < list.len() {
            let w = list[i].as_bytes();
            t[w[0] as usize] |= 1 << w.len();
            t[w[0].to_ascii_uppercase() as usize] |= 1 << w.len();
            i += 1;
        }
        t
    }
    let mut all = [[0u16; 256]; 8];
    let mut e = 0;
    while e < ALL_ENTITIES.len() {
        let entity = ALL_ENTITIES[e];
        let mut t = add(add([0; 256], entity.context()), NEGATIVE_CONTEXT);
        if matches!(entity, Entity::Phone) {
            t = add(t, STREET_WORDS);
        }
        all[entity as usize] = t;
        e += 1;
    }
    all
};

/// The bytes of a word for [`context`]: ASCII letters, digits and `-` (one table load per byte
/// instead of three range checks).
static CONTEXT_TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'-';
        b += 1;
    }
    t
};

/// Whether context words of the entity (`positive`) or negative-context words (`negative`) stand
/// near a span. Negative words count only without a positive one, so `negative` is not looked
/// for past the first positive word.
#[derive(Clone, Copy)]
struct Context {
    positive: bool,
    negative: bool,
}

impl Context {
    /// A base score raised by positive context, or lowered by negative context alone.
    fn adjust(self, base: f32) -> f32 {
        let mut score = base;
        if self.positive {
            score = (score + 0.35).clamp(0.6, 1.0);
        }
        if self.negative && !self.positive {
            score -= 0.3;
        }
        score
    }
}

/// Looks at a few words before and after a span for context words.
fn adjust_with_context(text: &str, start: usize, end: usize, e: Entity, base: f32) -> f32 {
    context(text, start, end, e).adjust(base)
}

/// The bytes [`context`] reads words from: up to 48 before a span and 24 after it.
fn context_window(text: &str, start: usize, end: usize) -> (usize, usize) {
    let lo = floor_boundary(text, start.saturating_sub(48));
    let hi = ceil_boundary(text, (end + 24).min(text.len()));
    (lo, hi)
}

/// Whether one of the phone context words occurs in `lo..hi`, as a keyword hit (`hints`, by end;
/// patterns past [`AT_HINTS`]). Every phone context word that [`context`] finds in that window
/// is such a hit (the same bytes, matched ASCII case-insensitively), so without one the window
/// has no phone context word.
fn phone_word_within(hints: &[Hit], lo: usize, hi: usize) -> bool {
    let from = hints.partition_point(|h| h.end < lo);
    hints[from..]
        .iter()
        .take_while(|h| h.end <= hi)
        .any(|h| h.start >= lo && (h.pattern as usize) >= AT_HINTS.len())
}

/// The context words a few words before and after a span.
fn context(text: &str, start: usize, end: usize, e: Entity) -> Context {
    let bytes = text.as_bytes();
    let (lo, hi) = context_window(text, start, end);
    let filter = &CONTEXT_FILTER[e.index()];
    let mut negative = false;
    for (part, after) in [(&bytes[lo..start], false), (&bytes[end..hi], true)] {
        let tok = |b: u8| CONTEXT_TOKEN[usize::from(b)];
        let mut i = 0;
        while i < part.len() {
            if !tok(part[i]) {
                i += 1;
                continue;
            }
            let mut j = i;
            while j < part.len() && tok(part[j]) {
                j += 1;
            }
            let mut w = &part[i..j];
            // a literal `\n` escape glues an `n` to the next word
            if i > 0 && part[i - 1] == b'\\' && w.len() > 1 && matches!(w[0], b'n' | b't' | b'r') {
                w = &w[1..];
            }
            i = j;
            if w.is_empty() || w.len() > 12 || filter[usize::from(w[0])] & (1 << w.len()) == 0 {
                continue;
            }
            let mut buf = [0u8; 12];
            for (d, s) in buf.iter_mut().zip(w) {
                *d = s.to_ascii_lowercase();
            }
            let w = &buf[..w.len()];
            if listed(e.context(), w) {
                return Context {
                    positive: true,
                    negative,
                };
            } else if listed(NEGATIVE_CONTEXT, w)
                || (after && e == Entity::Phone && listed(STREET_WORDS, w))
            {
                negative = true;
            }
        }
    }
    Context {
        positive: false,
        negative,
    }
}

/// Whether the lowercase word `w` is in `list`; the length and first byte are compared first,
/// which rejects almost every listed word without a slice comparison.
fn listed(list: &[&str], w: &[u8]) -> bool {
    list.iter()
        .any(|c| c.len() == w.len() && c.as_bytes()[0] == w[0] && c.as_bytes() == w)
}

pub(crate) fn floor_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

pub(crate) fn ceil_boundary(text: &str, mut i: usize) -> usize {
    while i < text.len() && !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(*d);
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// Issuer prefixes and lengths (Visa, Mastercard, Amex, Discover, Diners, JCB, UnionPay, Maestro).
fn card_issuer_ok(d: &[u8]) -> bool {
    let n = d.len();
    let p = |k: usize| -> u32 { d[..k].iter().fold(0u32, |a, x| a * 10 + u32::from(*x)) };
    match d[0] {
        4 => matches!(n, 13 | 16 | 19),
        5 => {
            let p2 = p(2);
            ((51..=55).contains(&p2) && n == 16)
                || ((p2 == 50 || (56..=59).contains(&p2)) && (12..=19).contains(&n))
        }
        2 => ((2221..=2720).contains(&p(4)) && n == 16) || (p(4) == 2131 && n == 15),
        1 => p(4) == 1800 && n == 15,
        0 => p(4) == 604 && (12..=19).contains(&n),
        3 => {
            let p2 = p(2);
            let p3 = p(3);
            let p4 = p(4);
            ((p2 == 34 || p2 == 37) && n == 15)
                || (((300..=305).contains(&p3) || p2 == 36 || p2 == 38 || p2 == 39)
                    && (14..=19).contains(&n))
                || ((3500..=3599).contains(&p4) && (16..=19).contains(&n))
        }
        6 => {
            let p2 = p(2);
            let p3 = p(3);
            let p4 = p(4);
            (p4 == 6011
                || (644..=649).contains(&p3)
                || p2 == 65
                || p2 == 62
                || p2 == 60
                || p2 == 63
                || p2 == 67
                || p2 == 64
                || p2 == 66
                || p2 == 68
                || p2 == 69
                || p2 == 61)
                && (12..=19).contains(&n)
        }
        _ => false,
    }
}

fn card_score(cand: &str) -> Option<f32> {
    let mut d = [0u8; 19];
    let mut n = 0;
    let mut seps = 0;
    for b in cand.bytes() {
        if b.is_ascii_digit() {
            if n == 19 {
                return None;
            }
            d[n] = b - b'0';
            n += 1;
        } else {
            seps += 1;
        }
    }
    let d = &d[..n];
    if n < 12 || d.iter().all(|x| *x == d[0]) || !card_issuer_ok(d) || !luhn(d) {
        return None;
    }
    // Unseparated 12-13 digit numbers are often other identifiers: leave them to context.
    if n < 14 && seps == 0 {
        return Some(0.6);
    }
    Some(0.9)
}

fn iban_len(cc: &[u8]) -> Option<usize> {
    const T: &[(&[u8; 2], usize)] = &[
        (b"AD", 24),
        (b"AE", 23),
        (b"AL", 28),
        (b"AT", 20),
        (b"AZ", 28),
        (b"BA", 20),
        (b"BE", 16),
        (b"BG", 22),
        (b"BH", 22),
        (b"BR", 29),
        (b"BY", 28),
        (b"CH", 21),
        (b"CR", 22),
        (b"CY", 28),
        (b"CZ", 24),
        (b"DE", 22),
        (b"DK", 18),
        (b"DO", 28),
        (b"EE", 20),
        (b"EG", 29),
        (b"ES", 24),
        (b"FI", 18),
        (b"FO", 18),
        (b"FR", 27),
        (b"GB", 22),
        (b"GE", 22),
        (b"GI", 23),
        (b"GL", 18),
        (b"GR", 27),
        (b"GT", 28),
        (b"HR", 21),
        (b"HU", 28),
        (b"IE", 22),
        (b"IL", 23),
        (b"IQ", 23),
        (b"IS", 26),
        (b"IT", 27),
        (b"JO", 30),
        (b"KW", 30),
        (b"KZ", 20),
        (b"LB", 28),
        (b"LC", 32),
        (b"LI", 21),
        (b"LT", 20),
        (b"LU", 20),
        (b"LV", 21),
        (b"MC", 27),
        (b"MD", 24),
        (b"ME", 22),
        (b"MK", 19),
        (b"MR", 27),
        (b"MT", 31),
        (b"MU", 30),
        (b"NL", 18),
        (b"NO", 15),
        (b"PK", 24),
        (b"PL", 28),
        (b"PS", 29),
        (b"PT", 25),
        (b"QA", 29),
        (b"RO", 24),
        (b"RS", 22),
        (b"SA", 24),
        (b"SC", 31),
        (b"SE", 24),
        (b"SI", 19),
        (b"SK", 24),
        (b"SM", 27),
        (b"ST", 25),
        (b"SV", 28),
        (b"TL", 23),
        (b"TN", 24),
        (b"TR", 26),
        (b"UA", 29),
        (b"VA", 22),
        (b"VG", 24),
        (b"XK", 20),
    ];
    T.iter().find(|(c, _)| c[..] == *cc).map(|(_, l)| *l)
}

/// If the candidate starts with a valid IBAN, the byte length of that IBAN within the candidate.
fn iban_valid_prefix(cand: &str) -> Option<usize> {
    let b = cand.as_bytes();
    let want = iban_len(&b[..2])?;
    let mut chars = Vec::with_capacity(want);
    let mut byte_len = 0;
    for (i, c) in b.iter().enumerate() {
        if *c == b' ' {
            continue;
        }
        chars.push(*c);
        if chars.len() == want {
            byte_len = i + 1;
            break;
        }
    }
    if chars.len() != want {
        return None;
    }
    // The IBAN must end at a token boundary: the next char may not continue it without a space.
    if let Some(next) = b.get(byte_len) {
        if next.is_ascii_alphanumeric() {
            return None;
        }
    }
    let mut rem: u32 = 0;
    for c in chars[4..].iter().chain(&chars[..4]) {
        let v = if c.is_ascii_digit() {
            u32::from(c - b'0')
        } else {
            u32::from(c - b'A') + 10
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    (rem == 1).then_some(byte_len)
}

fn ssn_score(cand: &str) -> Option<f32> {
    let d: Vec<u8> = cand
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect();
    let area = u32::from(d[0]) * 100 + u32::from(d[1]) * 10 + u32::from(d[2]);
    let group = u32::from(d[3]) * 10 + u32::from(d[4]);
    let serial: u32 = d[5..].iter().fold(0, |a, x| a * 10 + u32::from(*x));
    if area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0 {
        return None;
    }
    if d.iter().all(|x| *x == d[0]) {
        return None;
    }
    const KNOWN_FAKE: [&str; 4] = ["123456789", "078051120", "219099999", "987654320"];
    let flat: String = d.iter().map(|x| char::from(b'0' + x)).collect();
    if KNOWN_FAKE.contains(&flat.as_str()) {
        return None;
    }
    if cand.len() == 9 {
        Some(0.3)
    } else {
        Some(0.6)
    }
}

fn base58_decode(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut out: Vec<u8> = Vec::with_capacity(s.len());
    for c in s.bytes() {
        let mut carry = ALPHABET.iter().position(|a| *a == c)? as u32;
        for byte in out.iter_mut() {
            carry += u32::from(*byte) * 58;
            *byte = (carry & 0xff) as u8;
            carry >>= 8;
        }
        while carry > 0 {
            out.push((carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    for c in s.bytes() {
        if c == b'1' {
            out.push(0);
        } else {
            break;
        }
    }
    out.reverse();
    Some(out)
}

fn base58check_valid(s: &str) -> bool {
    let Some(raw) = base58_decode(s) else {
        return false;
    };
    if raw.len() != 25 {
        return false;
    }
    let (payload, check) = raw.split_at(21);
    let h = Sha256::digest(Sha256::digest(payload));
    h[..4] == *check
}

fn bech32_valid(s: &str) -> bool {
    const CHARSET: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    if s.bytes().any(|b| b.is_ascii_lowercase()) && s.bytes().any(|b| b.is_ascii_uppercase()) {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    let Some(pos) = lower.rfind('1') else {
        return false;
    };
    let (hrp, data) = (&lower[..pos], &lower[pos + 1..]);
    if data.len() < 6 {
        return false;
    }
    let mut values: Vec<u8> = Vec::with_capacity(hrp.len() * 2 + 1 + data.len());
    values.extend(hrp.bytes().map(|b| b >> 5));
    values.push(0);
    values.extend(hrp.bytes().map(|b| b & 31));
    for c in data.bytes() {
        match CHARSET.iter().position(|x| *x == c) {
            Some(v) => values.push(v as u8),
            None => return false,
        }
    }
    const GEN: [u32; 5] = [
        0x3b6a_57b2,
        0x2650_8e6d,
        0x1ea1_19fa,
        0x3d42_33dd,
        0x2a14_62b3,
    ];
    let mut chk: u32 = 1;
    for v in values {
        let top = chk >> 25;
        chk = ((chk & 0x01ff_ffff) << 5) ^ u32::from(v);
        for (i, g) in GEN.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    chk == 1 || chk == 0x2bc8_30a3
}

fn eth_score(s: &str) -> Option<f32> {
    let hex = &s[2..];
    let has_lower = hex.bytes().any(|b| b.is_ascii_lowercase());
    let has_upper = hex.bytes().any(|b| b.is_ascii_uppercase());
    if !(has_lower && has_upper) {
        // No checksum to verify: a bare 160-bit hex value is plausible but not certain.
        return Some(0.5);
    }
    let lower = hex.to_ascii_lowercase();
    let hash = sha3::Keccak256::digest(lower.as_bytes());
    for (i, c) in hex.bytes().enumerate() {
        if c.is_ascii_alphabetic() {
            let nibble = if i % 2 == 0 {
                hash[i / 2] >> 4
            } else {
                hash[i / 2] & 0xf
            };
            if (nibble >= 8) != c.is_ascii_uppercase() {
                return None;
            }
        }
    }
    Some(0.95)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssn_shape_admits_every_ssn_match() {
        use rand::{Rng, SeedableRng};
        let d = det();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let alphabet = b"0123456789012345678901234567890123456789 -.-. x";
        let (mut shaped, mut matched) = (0, 0);
        for _ in 0..100_000 {
            let len = rng.random_range(0..24);
            let t: String = (0..len)
                .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
                .collect();
            let m = d.ssn.is_match(Input::new(&t));
            shaped += usize::from(ssn_shaped(t.as_bytes()));
            matched += usize::from(m);
            assert!(!m || ssn_shaped(t.as_bytes()), "{t:?}");
        }
        // The check must also reject most texts, or it saves nothing.
        assert!(matched > 100 && shaped < 50_000, "{matched} {shaped}");
        assert!(!ssn_shaped(b"48213 200 14ms host=10.0.3.17"));
        assert!(ssn_shaped(b"078-05-1120") && ssn_shaped(b"078051120"));
        assert!(!ssn_shaped(b"078-05.1120"));
    }

    #[test]
    fn num_run_matches_are_find_iter_matches() {
        use rand::{Rng, SeedableRng};
        let d = det();
        let patterns = [(&d.card, 12), (&d.ssn, 9), (&d.ipv4, 7), (&d.phone, 7)];
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let alphabet = b"0123456789012345678901234567890123456789 ().-/+ x ext.:a_\n";
        let mut texts: Vec<String> = (0..20_000)
            .map(|_| {
                let len = rng.random_range(0..48);
                (0..len)
                    .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
                    .collect()
            })
            .collect();
        texts.extend(crate::labelled_texts(&["pii/presidio_sentences.jsonl"]));
        let mut found = 0;
        for t in &texts {
            let s = rng.random_range(0..=t.len());
            let e = rng.random_range(s..=t.len());
            let ranges = [(0, t.len()), (s, e)];
            for (re, min) in patterns {
                for (s, e) in ranges {
                    if !(t.is_char_boundary(s) && t.is_char_boundary(e)) {
                        continue;
                    }
                    let want: Vec<_> = re.find_iter(Input::new(t).range(s..e)).collect();
                    let got: Vec<_> = num_run_matches(re, t, s, e, min).collect();
                    assert_eq!(got, want, "{t:?} {s}..{e}");
                    found += got.len();
                }
            }
        }
        assert!(found > 5_000, "{found}");
    }

    /// What `digit_regions` kept before [`iban_or_crypto_shaped`]: every word token with a digit.
    fn all_digit_tokens(t: &str) -> Vec<(usize, usize)> {
        let b = t.as_bytes();
        let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if !word(b[i]) {
                i += 1;
                continue;
            }
            let s = i;
            while i < b.len() && word(b[i]) {
                i += 1;
            }
            if b[s..i].iter().any(u8::is_ascii_digit) {
                out.push((s, i));
            }
        }
        out
    }

    #[test]
    fn digit_tokens_are_those_the_iban_and_crypto_checks_can_use() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let alphabet = b"0123456789ABCDEFGHIJabcxyz_ .-:\n";
        let mut texts: Vec<String> = (0..20_000)
            .map(|_| {
                let len = rng.random_range(0..60);
                (0..len)
                    .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
                    .collect()
            })
            .collect();
        texts.extend(crate::labelled_texts(&["pii/presidio_sentences.jsonl"]));
        texts.push("DE89 3704 0044 0532 0130 00, Zq12345678901, 1234567890123x".into());
        let (mut kept, mut dropped) = (0, 0);
        for t in &texts {
            let all = all_digit_tokens(t);
            // The IBAN check needs two capitals and two digits first, the crypto checks at least
            // 14 bytes: the tokens failing both, and only those, are dropped.
            let usable: Vec<_> = all
                .iter()
                .copied()
                .filter(|&(s, e)| {
                    let b = &t.as_bytes()[s..e];
                    e - s >= 14
                        || (e - s >= 4
                            && b[..2].iter().all(u8::is_ascii_uppercase)
                            && b[2..4].iter().all(u8::is_ascii_digit))
                })
                .collect();
            assert_eq!(digit_regions(t.as_bytes()).tokens, usable, "{t:?}");
            kept += usable.len();
            dropped += all.len() - usable.len();
        }
        assert!(kept > 2_000 && dropped > 20_000, "{kept} {dropped}");
    }

    #[test]
    fn byte_classes_are_the_documented_sets() {
        for b in 0..=255u8 {
            let class = BYTE_CLASS[usize::from(b)];
            let num = b.is_ascii_digit() || b" ().-/+".contains(&b);
            let word = b.is_ascii_alphanumeric() || b == b'_';
            let hex = b.is_ascii_hexdigit() || b":-.".contains(&b);
            assert_eq!(class & NUM != 0, num, "{b}");
            assert_eq!(class & WORD != 0, word, "{b}");
            assert_eq!(class & HEX != 0, hex, "{b}");
        }
    }

    #[test]
    fn context_filter_admits_every_listed_word() {
        for e in ALL_ENTITIES {
            let street: &[&str] = if e == Entity::Phone {
                STREET_WORDS
            } else {
                &[]
            };
            for w in [e.context(), NEGATIVE_CONTEXT, street].concat() {
                // Words longer than 12 bytes are never compared (see `adjust_with_context`).
                assert!(w.len() <= 12 && *w == w.to_ascii_lowercase(), "{w}");
                for first in [w.as_bytes()[0], w.as_bytes()[0].to_ascii_uppercase()] {
                    let filter = CONTEXT_FILTER[e.index()][usize::from(first)];
                    assert!(filter & (1 << w.len()) != 0, "{w}");
                }
            }
        }
        let text = "Office: 415 555 2671";
        assert!(adjust_with_context(text, 8, text.len(), Entity::Phone, 0.0) > 0.0);
        let text = "Officer: 415 555 2671";
        assert_eq!(
            adjust_with_context(text, 9, text.len(), Entity::Phone, 0.0),
            0.0
        );
    }

    #[test]
    fn digit_groups_summarise_what_a_list_of_groups_says() {
        let mut texts = crate::labelled_texts(&["pii/presidio_sentences.jsonl"]);
        texts.extend(PHONE_WORD_TEXTS.map(String::from));
        texts.push("0X.12.34.56.78 1.2.3.4.5 2024.01.31 31/01/2024 (+33) 1 23 45 67 89 ſ 9".into());
        let mut dated = 0;
        for text in &texts {
            let bounds: Vec<usize> = (0..=text.len())
                .filter(|i| text.is_char_boundary(*i))
                .collect();
            for (k, &s) in bounds.iter().enumerate() {
                for &e in bounds[k..].iter().take(24) {
                    let c = &text[s..e];
                    let groups: Vec<&str> = c
                        .split(|ch: char| !ch.is_ascii_digit())
                        .filter(|g| !g.is_empty())
                        .collect();
                    let g = DigitGroups::of(c);
                    assert_eq!(g.count, groups.len(), "{c:?}");
                    for (i, len) in g.first.iter().enumerate() {
                        assert_eq!(*len, groups.get(i).map_or(0, |g| g.len()), "{c:?}");
                    }
                    assert_eq!(g.longest <= 2, groups.iter().all(|g| g.len() <= 2), "{c:?}");
                    assert_eq!(g.longest <= 4, groups.iter().all(|g| g.len() <= 4), "{c:?}");
                    let all_two = groups.iter().all(|g| g.len() == 2);
                    if g.count > 0 {
                        assert_eq!(g.shortest == 2 && g.longest == 2, all_two, "{c:?}");
                    }
                    // Phone candidates are ASCII up to their extension word.
                    if c.is_ascii() {
                        dated += usize::from(looks_like_date_or_version(c, &g));
                    }
                }
            }
        }
        assert!(dated > 1_000, "{dated}");
    }

    /// Texts where a phone context word decides whether a number is reported: dates, log
    /// timestamps and short local numbers next to a context word in any case or spelling the
    /// tokenizer accepts.
    const PHONE_WORD_TEXTS: [&str; 9] = [
        "call me on 2024-05 or at 2024-05-01T12:00:03Z",
        "Phone: 87 47 98, TEL 469 2020, fax (0) 12 34 56",
        "line one\\nphone 476 1626 and \\tcell 87 47 98",
        "MESSAGE 48213 200 14ms host=10.0.3.17",
        "whatsapp:+44 20 7946 0958; Mobile-phone 0612345678",
        "2024-05-01T12:00:03Z INFO GET /api/v1/users/48213 200 14ms",
        "at home: 555 0199, at work 555-0123 ext. 45, telephone 030 1234567",
        "hotel 48213 200 and network 469 2020 are not context words",
        "office 171 3890 Creekside Lane; reach me 22 33 44 or dial 0800 123 456",
    ];

    #[test]
    fn phone_word_gate_admits_every_context_word() {
        // `context` finding a phone word implies a keyword hit in its window, for every span
        // start and end.
        let d = det();
        let mut texts = crate::labelled_texts(&["pii/presidio_sentences.jsonl"]);
        texts.extend(PHONE_WORD_TEXTS.map(String::from));
        let mut positive = 0;
        for text in &texts {
            let hints = d.hints(text);
            let bounds: Vec<usize> = (0..=text.len())
                .filter(|i| text.is_char_boundary(*i))
                .collect();
            for (k, &s) in bounds.iter().enumerate() {
                for &e in [s, bounds[(k + 3).min(bounds.len() - 1)]].iter() {
                    if context(text, s, e, Entity::Phone).positive {
                        positive += 1;
                        let (lo, hi) = context_window(text, s, e);
                        assert!(phone_word_within(&hints, lo, hi), "{text:?} {s}..{e}");
                    }
                }
            }
        }
        assert!(positive > 1_000, "{positive}");
    }

    #[test]
    fn phone_word_gate_changes_no_finding() {
        // The same findings as with a gate that always lets `context` look: a hit of a phone
        // word (pattern past the hints) at every position.
        let d = det();
        let mut texts = crate::labelled_texts(&["pii/presidio_sentences.jsonl"]);
        texts.extend(PHONE_WORD_TEXTS.map(String::from));
        let mut phones = 0;
        for text in &texts {
            let hints = d.hints(text);
            let mut open = hints.clone();
            open.extend((0..=text.len()).map(|i| Hit {
                pattern: AT_HINTS.len() as u32,
                start: i,
                end: i,
            }));
            open.sort_by_key(|h| h.end);
            let (mut gated, mut all) = (Vec::new(), Vec::new());
            d.detect_with(text, &hints, &mut gated);
            d.detect_with(text, &open, &mut all);
            assert_eq!(gated, all, "{text:?}");
            phones += gated
                .iter()
                .filter(|f| f.entity_type == "PHONE_NUMBER")
                .count();
        }
        assert!(phones > 200, "{phones}");
        // Context words still count next to dates and short numbers.
        let text = PHONE_WORD_TEXTS[1];
        assert!(has(text, "PHONE_NUMBER", "87 47 98") && has(text, "PHONE_NUMBER", "469 2020"));
    }

    fn det() -> PiiDetector {
        PiiDetector::new(&PiiConfig::default()).unwrap()
    }

    fn found(text: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        det().detect(text, &mut out);
        out.sort_by_key(|f| f.start);
        out.iter()
            .map(|f| (f.entity_type.to_string(), text[f.start..f.end].to_string()))
            .collect()
    }

    fn has(text: &str, entity: &str, value: &str) -> bool {
        found(text).iter().any(|(e, v)| e == entity && v == value)
    }

    #[test]
    fn emails_plain_and_obfuscated() {
        assert!(has(
            "write to jane.doe+x@example.co.uk today",
            "EMAIL_ADDRESS",
            "jane.doe+x@example.co.uk"
        ));
        assert!(has(
            "mail: jane [at] example [dot] com",
            "EMAIL_ADDRESS",
            "jane [at] example [dot] com"
        ));
        assert!(has(
            "jane(at)example.org",
            "EMAIL_ADDRESS",
            "jane(at)example.org"
        ));
        assert!(has(
            "reach me: jane at example dot com",
            "EMAIL_ADDRESS",
            "jane at example dot com"
        ));
        // Tabs around the `at` (the ` at ` hint matches them too).
        assert!(has(
            "reach me: jane\tat\texample\tdot\tcom",
            "EMAIL_ADDRESS",
            "jane\tat\texample\tdot\tcom"
        ));
        assert!(found("look at the sky").is_empty());
    }

    #[test]
    fn cards_need_luhn_and_issuer() {
        assert!(has(
            "card 4111 1111 1111 1111 ok",
            "CREDIT_CARD",
            "4111 1111 1111 1111"
        ));
        assert!(has(
            "amex 378282246310005",
            "CREDIT_CARD",
            "378282246310005"
        ));
        assert!(!found("card 4111 1111 1111 1112")
            .iter()
            .any(|(e, _)| e == "CREDIT_CARD"));
        assert!(!found("id 9111111111111111")
            .iter()
            .any(|(e, _)| e == "CREDIT_CARD"));
    }

    #[test]
    fn iban_mod97() {
        assert!(has(
            "pay to GB82 WEST 1234 5698 7654 32 now",
            "IBAN_CODE",
            "GB82 WEST 1234 5698 7654 32"
        ));
        assert!(has(
            "DE89370400440532013000",
            "IBAN_CODE",
            "DE89370400440532013000"
        ));
        assert!(found("GB82WEST12345698765433").is_empty());
    }

    #[test]
    fn ssn_rules() {
        assert!(has("my ssn is 536-90-4399", "US_SSN", "536-90-4399"));
        assert!(found("ref 666-12-3456").iter().all(|(e, _)| e != "US_SSN"));
        assert!(found("ref 900-12-3456").iter().all(|(e, _)| e != "US_SSN"));
        assert!(found("ref 123-00-3456").iter().all(|(e, _)| e != "US_SSN"));
        assert!(found("ref 123-45-6789").iter().all(|(e, _)| e != "US_SSN"));
        assert!(has(
            "social security number 536904399",
            "US_SSN",
            "536904399"
        ));
    }

    #[test]
    fn phones() {
        assert!(has(
            "call +1 (415) 555-2671 please",
            "PHONE_NUMBER",
            "+1 (415) 555-2671"
        ));
        assert!(has("phone: 020 7946 0958", "PHONE_NUMBER", "020 7946 0958"));
        assert!(has(
            "tel +44 20 7946 0958",
            "PHONE_NUMBER",
            "+44 20 7946 0958"
        ));
        assert!(found("released 2024-01-31").is_empty());
        assert!(found("version 1.2.3.4.5").is_empty());
    }

    #[test]
    fn phone_formats_beyond_the_plain_ones() {
        // French dotted national format (not a version string).
        assert!(has(
            "You can call 05.06.52.16.25",
            "PHONE_NUMBER",
            "05.06.52.16.25"
        ));
        assert!(found("version 1.22.33.44.55").is_empty());
        // An extension glued to the number.
        assert!(has(
            "Desk: 275.233.4383x6404",
            "PHONE_NUMBER",
            "275.233.4383x6404"
        ));
        // Short local numbers count only next to a context word.
        assert!(has(
            "stop sending messages to 469 2020",
            "PHONE_NUMBER",
            "469 2020"
        ));
        assert!(has("call me on 92 34 70", "PHONE_NUMBER", "92 34 70"));
        assert!(found("we sold 469 2020 units").is_empty());
        assert!(found("scores were 92 34 70").is_empty());
        // A house number stays one, even after "office is at".
        assert!(found("our office is at 171 3890 Creekside Lane").is_empty());
        assert!(found("call a taxi to 0662 3441 rue Saint-Antoine").is_empty());
    }

    #[test]
    fn network_addresses() {
        assert!(has("host 192.168.10.1 up", "IP_ADDRESS", "192.168.10.1"));
        assert!(found("1.2.3.400").is_empty());
        assert!(has(
            "addr 2001:db8::8a2e:370:7334 up",
            "IP_ADDRESS",
            "2001:db8::8a2e:370:7334"
        ));
        assert!(has(
            "mac 00:1A:2b:3C:4d:5E",
            "MAC_ADDRESS",
            "00:1A:2b:3C:4d:5E"
        ));
        assert!(found("at 12:30:45 today").is_empty());
    }

    #[test]
    fn crypto_checksums() {
        assert!(has(
            "btc 1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
            "CRYPTO",
            "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2"
        ));
        assert!(!has(
            "btc 1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3",
            "CRYPTO",
            "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3"
        ));
        assert!(has(
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
            "CRYPTO",
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
        ));
        assert!(has(
            "eth 0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "CRYPTO",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
        ));
        assert!(!has(
            "eth 0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD",
            "CRYPTO",
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"
        ));
    }
}
