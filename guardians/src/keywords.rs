//! One keyword automaton for every detector.
//!
//! Each detector gates its expensive work on keywords: the secrets detector on gitleaks' rule
//! keywords, the injection detector on its rules' words, content safety on its lexicon and
//! proximity hints, PII on the `[at]`-style hints of obfuscated e-mail addresses and on phone
//! numbers' context words (read only near a hit). Scanning the text
//! once per detector costs a full Aho-Corasick pass each (≈ 250 MB/s apiece on the project's
//! machine), so [`crate::Guardians`] builds one automaton over the union of the keyword lists and
//! hands each detector the hits that belong to it, with the detector's own pattern numbers. The
//! detectors keep their own automata for text the shared pass does not see (normalised or decoded
//! text in the injection detector, unit tests).
//!
//! All keywords are matched ASCII case-insensitively and overlapping, which is what the secrets
//! and injection detectors ask for; content safety's leftmost-longest lexicon semantics are
//! rebuilt from the overlapping hits ([`leftmost_longest`]).
//!
//! A space in a keyword matches any run of spaces, tabs and line breaks (`system\n\n  prompt`
//! is a hit of `system prompt`): text wraps and is indented, and an attacker can put two spaces
//! where a rule's keyword has one. The automaton reads the text as if every such run were one
//! space, without copying it ([`Table::new`]).

use aho_corasick::MatchKind;
#[cfg(test)]
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind};
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use regex_syntax::hir::{Hir, HirKind};

use crate::error::GuardianError;

/// Consumers of the shared automaton.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Owner {
    Pii = 0,
    Secrets = 1,
    Injection = 2,
    Content = 3,
}

const OWNERS: usize = 4;
const NONE: u32 = u32::MAX;

/// One keyword occurrence, numbered in the owning detector's own keyword list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hit {
    pub pattern: u32,
    pub start: usize,
    pub end: usize,
}

/// The hits of one pass, split by owner, in the order the automaton reports them (by end).
#[derive(Default)]
pub(crate) struct Hits {
    by: [Vec<Hit>; OWNERS],
}

/// Bytes of text per hit for which [`Hits::with_capacity`] makes room: mixed text (prose, code,
/// logs, JSON) holds about one secrets or injection keyword per 100 bytes, so such text needs no
/// doubling (an empty vector doubled about ten times, copying the hits each time; room for one
/// per 128 bytes still doubled once: 0.03 M instructions per 64 KiB scan).
const BYTES_PER_HIT: usize = 64;

impl Hits {
    /// Vectors with room for the hits a text of `len` bytes usually holds.
    fn with_capacity(len: usize) -> Self {
        Self {
            by: std::array::from_fn(|_| Vec::with_capacity(len / BYTES_PER_HIT)),
        }
    }

    pub(crate) fn of(&self, owner: Owner) -> &[Hit] {
        &self.by[owner as usize]
    }
}

pub(crate) struct KeywordIndex {
    /// The automaton as aho-corasick runs it, for the test that checks [`Table`] against it
    /// (built only in tests: a second DFA over 570 keywords is memory and start-up time).
    #[cfg(test)]
    ac: AhoCorasick,
    /// The keywords `ac` was built from, for tests.
    #[cfg(test)]
    patterns: Vec<String>,
    /// The same DFA as one flat transition table, which [`KeywordIndex::scan`] walks.
    table: Table,
    /// For each pattern of `ac`, its number in each owner's list (`NONE` when absent).
    local: Vec<[u32; OWNERS]>,
}

/// An overlapping Aho-Corasick DFA as a flat table: `next[state + class[byte]]` is the next
/// state, premultiplied by the number of classes, and states at or past `first_match` report
/// keywords.
///
/// Why not aho-corasick's own search: its overlapping iterator keeps its position in a state
/// struct and rechecks the input's bounds and anchoring on every byte, about 20 instructions a
/// byte here; this loop is a class load, a table load, a mask and a compare (under 8). `next` is
/// padded to a power of two so that masking an index proves it in bounds: the loop needs no
/// bounds check (a compare and a branch a byte) and no unsafe code. The table is
/// read out of aho-corasick's DFA (through its public `Automaton` trait) by walking every
/// state reachable from the unanchored start state over every byte, so it has the same
/// transitions and reports the same matches in the same order.
struct Table {
    class: [u8; 256],
    stride: usize,
    next: Vec<u32>,
    start: u32,
    first_match: u32,
    /// For each match state (index `state / stride - first_match / stride`), the range of
    /// `matches` it reports.
    match_ranges: Vec<(u32, u32)>,
    /// Each match, in the order aho-corasick reports them.
    matches: Vec<TableMatch>,
}

struct TableMatch {
    pattern: u32,
    len: u32,
    /// The keyword, when it holds a space: its occurrence may be longer than the keyword, and
    /// its start is found by walking back over it ([`start_of`]).
    spaced: Option<Box<[u8]>>,
}

/// The bytes a space in a keyword stands for (the injection rules' `\s`).
pub(crate) fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// A keyword as the automaton holds it: ASCII-lowercased, each run of [`is_space`] bytes one
/// space (a keyword with two spaces in a row could never match).
pub(crate) fn normal_form(keyword: &str) -> String {
    let mut out = String::with_capacity(keyword.len());
    let mut in_space = false;
    for c in keyword.chars() {
        if c.is_ascii() && is_space(c as u8) {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(c.to_ascii_lowercase());
            in_space = false;
        }
    }
    out
}

/// Where an occurrence of `keyword` (in [`normal_form`]) that ends at `end` starts: each of its
/// spaces stands for a whole run of space bytes, and every other byte for one byte.
fn start_of(text: &[u8], end: usize, keyword: &[u8]) -> usize {
    let mut i = end;
    for &k in keyword.iter().rev() {
        i -= 1;
        if k == b' ' {
            while i > 0 && is_space(text[i - 1]) {
                i -= 1;
            }
        }
    }
    i
}

impl Table {
    /// `patterns` are the keywords `dfa` was built from, each in [`normal_form`].
    ///
    /// Two changes to the DFA's transitions make it read every run of space bytes as one space:
    /// a tab or line break goes where a space goes; and a state entered on a space (one whose
    /// keyword prefix ends with a space) stays where it is on further space bytes. A match
    /// state entered on a space would report its keywords again on each further byte, so it
    /// moves instead to a copy of itself that reports nothing. Every other transition is the
    /// DFA's own: the table reports what aho-corasick reports on the text with its space runs
    /// squeezed, at the places those occurrences have in the text itself.
    fn new(dfa: &aho_corasick::dfa::DFA, patterns: &[String]) -> Result<Table, GuardianError> {
        use aho_corasick::automaton::Automaton;
        use aho_corasick::Anchored;
        let bad = |what: &str| GuardianError::Config(format!("keyword automaton: {what}"));
        let start = dfa
            .start_state(Anchored::No)
            .map_err(|e| bad(&e.to_string()))?;
        // Every state reachable from the start, breadth first, with its transitions.
        let mut ids = std::collections::HashMap::new();
        let mut order = vec![start];
        ids.insert(start, 0usize);
        let mut rows: Vec<[usize; 256]> = Vec::new();
        let mut i = 0;
        while i < order.len() {
            let sid = order[i];
            let mut row = [0usize; 256];
            for (b, slot) in row.iter_mut().enumerate() {
                let b = if is_space(b as u8) { b' ' } else { b as u8 };
                let to = dfa.next_state(Anchored::No, sid, b);
                if dfa.is_dead(to) {
                    return Err(bad("an unanchored search reached the dead state"));
                }
                let n = ids.len();
                *slot = *ids.entry(to).or_insert_with(|| {
                    order.push(to);
                    n
                });
            }
            rows.push(row);
            i += 1;
        }
        let mut is_match: Vec<bool> = order.iter().map(|s| dfa.is_match(*s)).collect();
        // The states entered on a space; the start state loops on spaces already when it is one.
        let mut entered_on_space: Vec<usize> = rows.iter().map(|r| r[usize::from(b' ')]).collect();
        entered_on_space.sort_unstable();
        entered_on_space.dedup();
        for t in entered_on_space.into_iter().filter(|&t| t != 0) {
            let stay = if is_match[t] {
                let copy = rows.len();
                rows.push(rows[t]);
                order.push(order[t]);
                is_match.push(false);
                copy
            } else {
                t
            };
            for b in (0..=255u8).filter(|&b| is_space(b)) {
                rows[t][usize::from(b)] = stay;
                rows[stay][usize::from(b)] = stay;
            }
        }
        // Bytes with the same column in every state share a class.
        let mut class = [0u8; 256];
        let mut columns: Vec<Vec<usize>> = Vec::new();
        for (b, c) in class.iter_mut().enumerate() {
            let col: Vec<usize> = rows.iter().map(|r| r[b]).collect();
            let k = match columns.iter().position(|x| *x == col) {
                Some(k) => k,
                None => {
                    columns.push(col);
                    columns.len() - 1
                }
            };
            *c = u8::try_from(k).map_err(|_| bad("too many byte classes"))?;
        }
        let stride = columns.len();
        // Renumber: states without matches first, then match states.
        let mut new_id = vec![0usize; order.len()];
        let mut n = 0;
        for want in [false, true] {
            for (old, m) in is_match.iter().enumerate() {
                if *m == want {
                    new_id[old] = n;
                    n += 1;
                }
            }
        }
        let first_match = is_match.iter().filter(|m| !**m).count();
        let premul = |s: usize| u32::try_from(s * stride).map_err(|_| bad("too many states"));
        // Padded (with zeros, never reached) to a power of two for `to_match`'s mask.
        let mut next = vec![0u32; (order.len() * stride).next_power_of_two()];
        let mut match_ranges = vec![(0u32, 0u32); order.len() - first_match];
        let mut matches = Vec::new();
        for (old, sid) in order.iter().enumerate() {
            let row = new_id[old] * stride;
            for (b, to) in rows[old].iter().enumerate() {
                next[row + usize::from(class[b])] = premul(new_id[*to])?;
            }
            if is_match[old] {
                let from = u32::try_from(matches.len()).map_err(|_| bad("too many matches"))?;
                for k in 0..dfa.match_len(*sid) {
                    let p = dfa.match_pattern(*sid, k);
                    let len = u32::try_from(dfa.pattern_len(p)).map_err(|_| bad("long keyword"))?;
                    let keyword = patterns[p.as_usize()].as_bytes();
                    matches.push(TableMatch {
                        pattern: p.as_u32(),
                        len,
                        spaced: keyword.contains(&b' ').then(|| keyword.into()),
                    });
                }
                let to = u32::try_from(matches.len()).map_err(|_| bad("too many matches"))?;
                match_ranges[new_id[old] - first_match] = (from, to);
            }
        }
        Ok(Table {
            class,
            stride,
            next,
            start: premul(new_id[0])?,
            first_match: premul(first_match)?,
            match_ranges,
            matches,
        })
    }

    /// Calls `hit(pattern, start, end)` for every keyword occurrence, by end, as aho-corasick's
    /// overlapping search reports them.
    fn scan(&self, text: &[u8], mut hit: impl FnMut(u32, usize, usize)) {
        let (mut at, mut s) = (0, self.start);
        while let Some((end, m)) = self.to_match(text, at, s) {
            let (from, to) = self.match_ranges[(m - self.first_match) as usize / self.stride];
            for m in &self.matches[from as usize..to as usize] {
                let start = match &m.spaced {
                    None => end - m.len as usize,
                    Some(k) => start_of(text, end, k),
                };
                hit(m.pattern, start, end);
            }
            (at, s) = (end, m);
        }
    }

    /// Runs from state `s` at `text[at]` to the next match state: the end of the matches and the
    /// state. Kept apart from the match handling so that the loop keeps everything in registers;
    /// eight bytes a round, so the end of the text is checked once per eight bytes.
    #[inline(never)]
    fn to_match(&self, text: &[u8], at: usize, s: u32) -> Option<(usize, u32)> {
        // Every state plus a class is below the unpadded length, so the mask changes no index;
        // it only lets the compiler drop the bounds check.
        let mask = self.next.len() - 1;
        let next = &self.next[..=mask];
        let (class, first_match) = (&self.class, self.first_match as usize);
        let step = |s: usize, b: u8| next[(s + usize::from(class[usize::from(b)])) & mask] as usize;
        let mut s = s as usize;
        let rest = &text[at..];
        let mut rounds = rest.chunks_exact(8);
        let mut end = at;
        for q in &mut rounds {
            for &b in q {
                s = step(s, b);
                end += 1;
                if s >= first_match {
                    return Some((end, s as u32));
                }
            }
        }
        for &b in rounds.remainder() {
            s = step(s, b);
            end += 1;
            if s >= first_match {
                return Some((end, s as u32));
            }
        }
        None
    }
}

impl KeywordIndex {
    /// Builds the union of the owners' lists (each in [`normal_form`]).
    pub(crate) fn new(lists: &[(Owner, Vec<String>)]) -> Result<Self, GuardianError> {
        let mut patterns: Vec<String> = Vec::new();
        let mut local: Vec<[u32; OWNERS]> = Vec::new();
        let mut index = std::collections::HashMap::<String, usize>::new();
        for (owner, list) in lists {
            for (i, k) in list.iter().enumerate() {
                let k = normal_form(k);
                if k.is_empty() || k == " " {
                    return Err(GuardianError::Config(format!(
                        "keyword {:?} of {owner:?} matches nothing or every space",
                        list[i]
                    )));
                }
                let p = *index.entry(k.clone()).or_insert_with(|| {
                    patterns.push(k);
                    local.push([NONE; OWNERS]);
                    patterns.len() - 1
                });
                let slot = &mut local[p][*owner as usize];
                // A keyword listed twice by one owner: the owner's automaton reports it under
                // both numbers; keep the first, which is what its own lookups use.
                if *slot == NONE {
                    *slot = u32::try_from(i)
                        .map_err(|_| GuardianError::Config("too many keywords".into()))?;
                }
            }
        }
        #[cfg(test)]
        let ac = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&patterns)?;
        let dfa = aho_corasick::dfa::DFA::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .start_kind(aho_corasick::StartKind::Unanchored)
            .build(&patterns)?;
        Ok(KeywordIndex {
            #[cfg(test)]
            ac,
            table: Table::new(&dfa, &patterns)?,
            local,
            #[cfg(test)]
            patterns,
        })
    }

    /// One pass over `text`, keeping only `owner`'s hits: for an index built for one owner.
    pub(crate) fn scan_for(&self, text: &str, owner: Owner) -> Vec<Hit> {
        let mut hits = Vec::new();
        self.table.scan(text.as_bytes(), |p, start, end| {
            let id = self.local[p as usize][owner as usize];
            if id != NONE {
                hits.push(Hit {
                    pattern: id,
                    start,
                    end,
                });
            }
        });
        hits
    }

    /// One overlapping pass over `text`.
    pub(crate) fn scan(&self, text: &str) -> Hits {
        let mut hits = Hits::with_capacity(text.len());
        self.table.scan(text.as_bytes(), |p, start, end| {
            let ids = &self.local[p as usize];
            for (o, id) in ids.iter().enumerate() {
                if *id != NONE {
                    hits.by[o].push(Hit {
                        pattern: *id,
                        start,
                        end,
                    });
                }
            }
        });
        hits
    }
}

/// The hits a leftmost-longest search over the same patterns would report, from all the
/// overlapping ones: at each step the match starting leftmost, the longest of those, then the
/// search resumes at its end. `keep` selects the patterns taking part.
pub(crate) fn leftmost_longest(hits: &[Hit], keep: impl Fn(u32) -> bool) -> Vec<Hit> {
    let mut v: Vec<Hit> = hits.iter().copied().filter(|h| keep(h.pattern)).collect();
    v.sort_by_key(|h| (h.start, std::cmp::Reverse(h.end), h.pattern));
    let mut out = Vec::with_capacity(v.len());
    let mut pos = 0;
    for h in v {
        if h.start >= pos {
            pos = h.end;
            out.push(h);
        }
    }
    out
}

/// An upper bound, in bytes, on the length of a match of `pattern`, counting an unbounded
/// repetition (`+`, `*`, `{n,}`) as at most `unbounded` repetitions (or its minimum, if larger).
/// `None` if the pattern does not parse.
///
/// Detectors search a rule's regex only within this distance of a keyword the match must contain;
/// a match stretched by a longer run (e.g. more than `unbounded` spaces where the pattern says
/// `\s+`) may be missed.
pub(crate) fn match_len_bound(pattern: &str, unbounded: u32) -> Option<usize> {
    let hir = parse(pattern)?;
    Some(bound(&hir, unbounded))
}

/// Parses `pattern` allowing classes that match any byte (`(?-u:[^.])`): the detectors compile
/// such patterns to keep their automata small, and their bounds are then in bytes.
fn parse(pattern: &str) -> Option<Hir> {
    regex_syntax::ParserBuilder::new()
        .utf8(false)
        .build()
        .parse(pattern)
        .ok()
}

fn bound(h: &Hir, k: u32) -> usize {
    match h.kind() {
        HirKind::Empty | HirKind::Look(_) => 0,
        HirKind::Literal(l) => l.0.len(),
        HirKind::Class(c) => c.maximum_len().unwrap_or(4),
        HirKind::Repetition(r) => {
            let times = r.max.unwrap_or(r.min.max(k));
            bound(&r.sub, k).saturating_mul(times as usize)
        }
        HirKind::Capture(c) => bound(&c.sub, k),
        HirKind::Concat(v) => v.iter().map(|x| bound(x, k)).fold(0, usize::saturating_add),
        HirKind::Alternation(v) => v.iter().map(|x| bound(x, k)).max().unwrap_or(0),
    }
}

/// Where a rule's keywords sit in its matches, when the pattern's literal prefixes or suffixes
/// show it: `pre`, if known, bounds the bytes a match can have before the start of a keyword
/// occurrence it contains; `post` bounds the bytes after the end of one.
///
/// Most injection rules start with their keyword (`\b(?:pretend|imagine|act)\b...`) or end with
/// it (`...(?:restrictions|filters?)\b`); searching only on that side of a hit, or anchored at
/// it, is much cheaper than a window of the rule's whole match length on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct KeywordPlace {
    pub pre: Option<usize>,
    pub post: Option<usize>,
}

/// Computes [`KeywordPlace`] for `pattern` (matched ASCII case-insensitively, as the keywords
/// are): every match begins with one of the pattern's literal prefixes (ends with one of its
/// suffixes), so if each of those contains a keyword, a match begins at most that far before
/// (ends at most that far after) a keyword occurrence the overlapping pass reports.
///
/// A space in a literal outside the keyword occurrence counts as `space` bytes: callers extract
/// from their pattern with `\s+` written as one space (so that a keyword's words line up with
/// the pattern's), and a match may have a longer run there.
pub(crate) fn keyword_place(pattern: &str, keywords: &[&str], space: usize) -> KeywordPlace {
    let Some(hir) = parse(pattern) else {
        return KeywordPlace::default();
    };
    let kws: Vec<Vec<u8>> = keywords
        .iter()
        .map(|k| k.to_ascii_lowercase().into_bytes())
        .collect();
    // The least distance from the literal's start (or end) to a keyword occurrence in it.
    let dist = |lit: &[u8], from_end: bool| -> Option<usize> {
        let lit = lit.to_ascii_lowercase();
        let mut best: Option<usize> = None;
        for k in &kws {
            if k.is_empty() || k.len() > lit.len() {
                continue;
            }
            for j in 0..=lit.len() - k.len() {
                if lit[j..j + k.len()] == k[..] {
                    let outside = if from_end {
                        &lit[j + k.len()..]
                    } else {
                        &lit[..j]
                    };
                    let spaces = outside.iter().filter(|b| **b == b' ').count();
                    let d = outside.len() + spaces * space.saturating_sub(1);
                    best = Some(best.map_or(d, |b| b.min(d)));
                }
            }
        }
        best
    };
    let side = |kind: ExtractKind, from_end: bool| -> Option<usize> {
        let seq = Extractor::new().kind(kind).limit_total(1024).extract(&hir);
        let lits = seq.literals()?;
        if lits.is_empty() {
            return None;
        }
        let mut worst = 0;
        for l in lits {
            worst = worst.max(dist(l.as_bytes(), from_end)?);
        }
        Some(worst)
    };
    KeywordPlace {
        pre: side(ExtractKind::Prefix, false),
        post: side(ExtractKind::Suffix, true),
    }
}

/// Merges `[start, end)` into a list of windows sorted by start (the new one starts at or after
/// the last one's start).
pub(crate) fn push_window(windows: &mut Vec<(usize, usize)>, start: usize, end: usize) {
    match windows.last_mut() {
        Some(last) if last.1 >= start => last.1 = last.1.max(end),
        _ => windows.push((start, end)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn automaton<I, P>(patterns: I, kind: MatchKind) -> AhoCorasick
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(kind)
            .kind(Some(AhoCorasickKind::DFA))
            .build(patterns)
            .unwrap()
    }

    /// What the table must report: aho-corasick's overlapping matches in `text` with each run
    /// of space bytes squeezed to one space, placed back in `text` (a squeezed space stands for
    /// its whole run at a keyword's start or inside it, for the run's first byte at its end).
    fn squeezed_matches(ac: &AhoCorasick, text: &[u8]) -> Vec<(u32, usize, usize)> {
        let mut squeezed = Vec::with_capacity(text.len());
        let mut at = Vec::with_capacity(text.len());
        let mut i = 0;
        while i < text.len() {
            squeezed.push(if is_space(text[i]) { b' ' } else { text[i] });
            at.push(i);
            i += 1;
            if is_space(text[i - 1]) {
                while i < text.len() && is_space(text[i]) {
                    i += 1;
                }
            }
        }
        ac.find_overlapping_iter(&squeezed[..])
            .map(|m| (m.pattern().as_u32(), at[m.start()], at[m.end() - 1] + 1))
            .collect()
    }

    #[test]
    fn leftmost_longest_matches_the_automaton() {
        let pats = ["gas the", "gas", "the race", "race war", "war"];
        let text = "they said gas the race war now; gas, war, the race";
        let ll = automaton(pats, MatchKind::LeftmostLongest);
        let want: Vec<(usize, usize, usize)> = ll
            .find_iter(text)
            .map(|m| (m.pattern().as_usize(), m.start(), m.end()))
            .collect();
        let idx =
            KeywordIndex::new(&[(Owner::Content, pats.iter().map(|s| s.to_string()).collect())])
                .unwrap();
        let hits = idx.scan(text);
        let got: Vec<(usize, usize, usize)> = leftmost_longest(hits.of(Owner::Content), |_| true)
            .iter()
            .map(|h| (h.pattern as usize, h.start, h.end))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn length_bounds() {
        assert_eq!(match_len_bound(r"abc", 16), Some(3));
        assert_eq!(match_len_bound(r"a{2,5}(?:bc|d)", 16), Some(7));
        assert_eq!(match_len_bound(r"a[ ]+b", 16), Some(18));
        assert_eq!(match_len_bound(r"a\s+b", 16), Some(50)); // \s may be 3 bytes
        assert_eq!(match_len_bound(r"(?-u:\b)x[0-9]{3,}", 2), Some(4));
        assert!(match_len_bound(r"(", 16).is_none());
    }

    #[test]
    fn keyword_places() {
        let p = |pat: &str, kws: &[&str]| {
            let k = keyword_place(pat, kws, 1);
            (k.pre, k.post)
        };
        assert_eq!(
            p(
                r"(?-u:\b)(?:pretend|act)(?-u:\b)[^.]{0,9}x",
                &["pretend", "act"]
            ),
            (Some(0), None)
        );
        // The keyword may sit inside the literal: "play the role" starts 0 bytes in, "xact" 1.
        assert_eq!(
            p(r"(?:xact|play the role) y+", &["act", "play"]),
            (Some(1), None)
        );
        assert_eq!(
            p(
                r"no\s+(?:restrictions|polic(?:y|ies)|rules)",
                &["restriction", "polic", "rules"]
            ),
            (None, Some(3))
        );
        // A literal prefix without a keyword, or a prefix the extractor cannot bound.
        assert_eq!(p(r"(?:take|act)s? on", &["act"]).0, None);
        assert_eq!(p(r"[a-z]+act", &["act"]), (None, Some(0)));
        assert_eq!(p(r"DAN mode", &["dan"]).0, Some(0));
        // Spaces outside the keyword may be longer runs in a match.
        let k = keyword_place(r"pay no attention", &["no attention", "attention"], 16);
        assert_eq!(
            k,
            KeywordPlace {
                pre: Some(19),
                post: Some(0)
            }
        );
    }

    /// The engine's keyword lists, and texts: every labelled text, the bench's mixed text, and
    /// runs of every byte value.
    fn engine_index_and_texts() -> (KeywordIndex, Vec<String>) {
        let g = crate::Guardians::new(crate::GuardianConfig::default()).unwrap();
        let idx = g.keywords;
        let mut texts = crate::labelled_texts(&[
            "content/content.jsonl",
            "injection/attacks.jsonl",
            "injection/benign.jsonl",
            "injection/heldout_attacks.jsonl",
            "pii/presidio_sentences.jsonl",
            "secrets/benign.jsonl",
            "secrets/generated.jsonl",
            "secrets/providers.jsonl",
        ]);
        let all: Vec<u8> = (0u8..=255).chain((0u8..=255).rev()).collect();
        texts.push(String::from_utf8_lossy(&all).into_owned());
        // Keywords of several words, their words apart by runs of spaces, tabs and line breaks
        // (or glued, or apart by a letter), one after another or apart.
        {
            use rand::{Rng, SeedableRng};
            let mut rng = rand::rngs::StdRng::seed_from_u64(11);
            let spaced: Vec<&String> = idx.patterns.iter().filter(|p| p.contains(' ')).collect();
            let gaps = [" ", " ", "  ", "\n", "\t", " \r\n ", "x", ""];
            for _ in 0..3_000 {
                let mut t = String::new();
                for _ in 0..rng.random_range(1..6) {
                    let k = spaced[rng.random_range(0..spaced.len())];
                    for (i, w) in k.split(' ').enumerate() {
                        if i > 0 {
                            t.push_str(gaps[rng.random_range(0..gaps.len())]);
                        }
                        t.push_str(w);
                    }
                    t.push_str(gaps[rng.random_range(0..gaps.len())]);
                }
                texts.push(t);
            }
        }
        texts.push(texts.concat());
        (idx, texts)
    }

    #[test]
    fn table_reports_what_aho_corasick_reports() {
        let (idx, texts) = engine_index_and_texts();
        let mut total = 0;
        let mut stretched = 0;
        for t in &texts {
            let want = squeezed_matches(&idx.ac, t.as_bytes());
            let mut got = Vec::new();
            idx.table.scan(t.as_bytes(), |p, s, e| got.push((p, s, e)));
            assert_eq!(got, want, "{t:?}");
            total += want.len();
            stretched += want
                .iter()
                .filter(|(p, s, e)| e - s != idx.patterns[*p as usize].len())
                .count();
        }
        // Enough hits that a wrong table would show.
        assert!(total > 50_000, "{total}");
        assert!(stretched > 2_000, "{stretched}");
    }

    #[test]
    fn a_space_in_a_keyword_matches_any_run_of_spaces() {
        let idx = KeywordIndex::new(&[
            (
                Owner::Injection,
                vec!["system prompt".into(), "prompt".into()],
            ),
            (Owner::Pii, vec![" at ".into(), "\tat\t".into()]),
        ])
        .unwrap();
        let text = "your  system\r\n\tprompt, mail jane\tat \n example";
        let h = idx.scan(text);
        let inj: Vec<(u32, &str)> = h
            .of(Owner::Injection)
            .iter()
            .map(|h| (h.pattern, &text[h.start..h.end]))
            .collect();
        assert_eq!(inj, vec![(0, "system\r\n\tprompt"), (1, "prompt")],);
        // ` at ` ends at the first space byte after `at`, and reports once; the tab form is the
        // same keyword, reported under its first number.
        let pii: Vec<(u32, &str)> = h
            .of(Owner::Pii)
            .iter()
            .map(|h| (h.pattern, &text[h.start..h.end]))
            .collect();
        assert_eq!(pii, vec![(0, "\tat ")]);
        assert!(KeywordIndex::new(&[(Owner::Content, vec![" \t".into()])]).is_err());
    }

    #[test]
    fn hits_are_split_by_owner_with_local_numbers() {
        let idx = KeywordIndex::new(&[
            (Owner::Secrets, vec!["key".into(), "token".into()]),
            (Owner::Injection, vec!["ignore".into(), "TOKEN".into()]),
        ])
        .unwrap();
        let h = idx.scan("Ignore the Token key");
        let s: Vec<u32> = h.of(Owner::Secrets).iter().map(|h| h.pattern).collect();
        let i: Vec<u32> = h.of(Owner::Injection).iter().map(|h| h.pattern).collect();
        assert_eq!(s, vec![1, 0]);
        assert_eq!(i, vec![0, 1]);
        assert!(h.of(Owner::Pii).is_empty());
    }
}
