//! Turning retrieved passages into an answer: the extractive summary (no LLM), the prompt for
//! retrieval-augmented generation, and the check that a generated answer cites only what was
//! retrieved.
//!
//! Citations are written `[n]`, numbered in order of first use in the answer, and `n` indexes
//! the answer's `citations` list (1-based).

use super::corpus::Passage;

/// Longest quote taken from one passage.
const QUOTE_CHARS: usize = 300;

/// A passage used by an answer.
pub struct Used<'a> {
    pub passage: &'a Passage,
    /// The sentence(s) of the passage the answer relies on.
    pub quote: String,
}

/// When each regulation applies, and the passage that says so (checked by a test against the
/// passage's text).
pub const APPLIES_FROM: &[(&str, &str, &str)] = &[
    (
        "gdpr",
        "gdpr/art-99/2",
        "GDPR: applies since 25 May 2018",
    ),
    (
        "dora",
        "dora/art-64",
        "DORA: applies from 17 January 2025",
    ),
    (
        "nis2",
        "nis2/art-41/1",
        "NIS2: national measures apply from 18 October 2024",
    ),
    (
        "cra",
        "cra/art-71/2",
        "Cyber Resilience Act: applies from 11 December 2027; the reporting obligations of Article 14 from 11 September 2026",
    ),
    (
        "csrd",
        "csrd/art-5/2/a",
        "CSRD: phased in from financial years starting on or after 1 January 2024",
    ),
];

/// The AI Act date that matters for a passage: which of the Art. 113 facts.
fn ai_act_date(p: &Passage) -> Option<(&'static str, &'static str)> {
    let general = (
        "eu-ai-act/art-113/2026-08-02",
        "EU AI Act: the rules for high-risk systems of Annex III, transparency and deployer duties apply from 2 August 2026",
    );
    if p.source != "eu-ai-act" {
        return None;
    }
    if p.article == "Annex I" {
        return Some((
            "eu-ai-act/art-113/2027-08-02",
            "EU AI Act: high-risk rules for AI in products under Annex I (Article 6(1)) apply from 2 August 2027",
        ));
    }
    if p.article == "Annex III" {
        return Some(general);
    }
    match p.number {
        Some(1..=5) => Some((
            "eu-ai-act/art-113/2025-02-02",
            "EU AI Act: prohibited practices and AI literacy apply from 2 February 2025",
        )),
        Some(51..=56 | 64..=70 | 99 | 100) => Some((
            "eu-ai-act/art-113/2025-08-02",
            "EU AI Act: general-purpose AI model obligations, governance and penalties apply from 2 August 2025",
        )),
        Some(113) => None,
        Some(_) => Some(general),
        None => None,
    }
}

/// Who a passage obliges, by the words it uses.
const ACTORS: &[(&str, &str)] = &[
    ("providers", "providers"),
    ("provider ", "providers"),
    ("deployers", "deployers"),
    ("deployer ", "deployers"),
    ("importers", "importers"),
    ("distributors", "distributors"),
    ("controller", "controllers"),
    ("processor", "processors"),
    ("financial entities", "financial entities"),
    ("manufacturers", "manufacturers"),
    (
        "essential and important entities",
        "essential and important entities",
    ),
    ("covered entities", "covered entities"),
    ("business associate", "business associates"),
    ("insurers", "insurers"),
    ("public authorities", "public authorities"),
    ("service organization", "service organizations"),
    ("member states shall", "Member States"),
];

/// The sentences of a text (legal prose: `.` and `;` end units worth quoting).
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    for (i, c) in text.char_indices() {
        let end_here =
            matches!(c, '.' | ';' | ':') && bytes.get(i + 1) == Some(&b' ') && i + 1 - start > 40;
        if end_here {
            out.push(text[start..=i].trim());
            start = i + 1;
        }
    }
    if start < text.len() && !text[start..].trim().is_empty() {
        out.push(text[start..].trim());
    }
    out
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let cut: String = s.chars().take(max).collect();
    let cut = cut.rsplit_once(' ').map_or(cut.as_str(), |(a, _)| a);
    format!("{}…", cut.trim_end_matches([',', ';', ':']))
}

/// The sentence of `text` sharing the most words with the question (ties: the earliest).
pub fn best_quote(text: &str, question_words: &[String]) -> String {
    let mut best = (0usize, "");
    for s in sentences(text) {
        let lower = s.to_lowercase();
        let score = question_words
            .iter()
            .filter(|w| lower.contains(w.as_str()))
            .count();
        if score > best.0 || best.1.is_empty() {
            best = (score, s);
        }
    }
    truncate(best.1, QUOTE_CHARS)
}

/// Lower-cased words of the question worth matching in a sentence (longer than 3 letters,
/// cut to a 5-letter stem so that `credit scoring` matches `credit score`).
pub fn question_words(question: &str) -> Vec<String> {
    question
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 3)
        .map(|w| w.to_lowercase().chars().take(5).collect())
        .collect()
}

/// The extractive answer: a lead sentence, one point per passage, who is obliged and from
/// when, every point citing its passage. `corpus` resolves the date passages it adds.
pub fn extractive<'a>(
    question: &str,
    passages: &[&'a Passage],
    lookup: impl Fn(&str) -> Option<&'a Passage>,
) -> (String, Vec<Used<'a>>) {
    let words = question_words(question);
    let mut used: Vec<Used<'a>> = Vec::new();
    if passages.is_empty() {
        return (
            "Gloxi found nothing in its corpus that answers this question. Try naming the \
             regulation (e.g. GDPR, EU AI Act, DORA, HIPAA) or the activity concerned."
                .to_owned(),
            used,
        );
    }
    let mut out = String::new();
    let cite = |used: &mut Vec<Used<'a>>, p: &'a Passage, quote: String| -> usize {
        if let Some(i) = used.iter().position(|u| u.passage.id == p.id) {
            return i + 1;
        }
        used.push(Used { passage: p, quote });
        used.len()
    };
    let first = passages[0];
    let lead = best_quote(&first.text, &words);
    let n = cite(&mut used, first, lead.clone());
    out.push_str(&format!(
        "In short, per {} ({}): {} [{n}]\n\n",
        first.label(),
        first.title,
        lead
    ));
    for p in &passages[1..] {
        let quote = best_quote(&p.text, &words);
        let n = cite(&mut used, p, quote.clone());
        out.push_str(&format!("- {} ({}): {} [{n}]\n", p.label(), p.title, quote));
    }
    // Who is obliged: each actor once, citing the first passage that names it.
    let mut who: Vec<(String, usize)> = Vec::new();
    for (i, p) in passages.iter().enumerate() {
        let lower = p.text.to_lowercase();
        for (word, actor) in ACTORS {
            if lower.contains(word) && !who.iter().any(|(a, _)| a == actor) {
                who.push(((*actor).to_owned(), i + 1));
            }
        }
    }
    if !who.is_empty() {
        let list: Vec<String> = who
            .iter()
            .take(5)
            .map(|(a, i)| format!("{a} [{i}]"))
            .collect();
        out.push_str(&format!("\nWho is obliged: {}.\n", list.join(", ")));
    }
    // From when: one line per regulation cited, citing the passage that sets the date.
    let mut dates: Vec<(&str, &str)> = Vec::new();
    for p in passages {
        let date = ai_act_date(p).or_else(|| {
            APPLIES_FROM
                .iter()
                .find(|(source, _, _)| *source == p.source)
                .map(|(_, id, line)| (*id, *line))
        });
        if let Some(d) = date {
            if !dates.iter().any(|(id, _)| *id == d.0) {
                dates.push(d);
            }
        }
    }
    let mut lines = Vec::new();
    for (id, line) in dates.into_iter().take(3) {
        if let Some(p) = lookup(id) {
            let quote = truncate(&p.text, QUOTE_CHARS);
            let n = cite(&mut used, p, quote);
            lines.push(format!("{line} [{n}]"));
        }
    }
    if !lines.is_empty() {
        out.push_str(&format!("From when: {}.\n", lines.join("; ")));
    }
    (out.trim_end().to_owned(), used)
}

/// The system prompt for generation: the rules and the numbered passages.
pub fn system_prompt(passages: &[&Passage]) -> String {
    let mut s = String::from(
        "You are Gloxi, Warden's regulatory assistant. Answer the user's question using ONLY \
         the numbered passages below. Cite every paragraph and bullet point with the number of \
         the passage that supports it in square brackets, e.g. [1] or [2][3]. Never cite a \
         number that is not listed below, and never cite anything else. If the passages do not \
         answer the question, say so. Be concise: a one-sentence summary, then bullet points \
         on who is obliged, what they must do and from when.\n\nPassages:\n",
    );
    for (i, p) in passages.iter().enumerate() {
        s.push_str(&format!(
            "[{}] {} ({}): {}\n",
            i + 1,
            p.label(),
            p.title,
            truncate(&p.text, 1500)
        ));
    }
    s
}

/// Why a generated answer was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Invalid {
    /// It cites nothing.
    NoCitations,
    /// It cites a passage that was not retrieved.
    UnknownCitation(usize),
    /// A paragraph or point makes a claim without a citation.
    Uncited(String),
}

impl Invalid {
    pub fn reason(&self) -> String {
        match self {
            Invalid::NoCitations => "the answer cites no passage".into(),
            Invalid::UnknownCitation(n) => {
                format!("the answer cites [{n}], which was not retrieved")
            }
            Invalid::Uncited(line) => format!("a claim has no citation: {}", truncate(line, 80)),
        }
    }
}

/// The `[n]` markers of a text with their byte ranges.
fn markers(text: &str) -> Vec<(std::ops::Range<usize>, usize)> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'[' {
            let digits = bytes[i + 1..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            if digits > 0 && digits < 4 && bytes.get(i + 1 + digits) == Some(&b']') {
                let n = text[i + 1..i + 1 + digits].parse().unwrap_or(0);
                out.push((i..i + digits + 2, n));
                i += digits + 2;
                continue;
            }
        }
        i += 1;
    }
    out
}

/// Checks a generated answer against the `k` passages it was given. On success, returns the
/// answer renumbered so that citations count from 1 in order of first use, and the retrieved
/// passages (0-based) in that order.
pub fn validate(text: &str, k: usize) -> Result<(String, Vec<usize>), Invalid> {
    let found = markers(text);
    if found.is_empty() {
        return Err(Invalid::NoCitations);
    }
    if let Some((_, n)) = found.iter().find(|(_, n)| *n == 0 || *n > k) {
        return Err(Invalid::UnknownCitation(*n));
    }
    for line in text.lines() {
        let l = line.trim().trim_start_matches(['-', '*', '#', ' ']);
        let claim = l.split_whitespace().count() >= 6 && !l.ends_with(':');
        if claim && markers(l).is_empty() {
            return Err(Invalid::Uncited(l.to_owned()));
        }
    }
    let mut order: Vec<usize> = Vec::new();
    for (_, n) in &found {
        if !order.contains(&(n - 1)) {
            order.push(n - 1);
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (range, n) in &found {
        out.push_str(&text[last..range.start]);
        let new = order.iter().position(|o| *o == n - 1).expect("listed") + 1;
        out.push_str(&format!("[{new}]"));
        last = range.end;
    }
    out.push_str(&text[last..]);
    Ok((out, order))
}

/// The 1-based citation numbers a piece of text uses.
pub fn cited_in(text: &str) -> Vec<usize> {
    markers(text).into_iter().map(|(_, n)| n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_rejects_unknown_and_missing_citations_and_renumbers() {
        assert_eq!(
            validate("No citation at all in this answer.", 3),
            Err(Invalid::NoCitations)
        );
        assert_eq!(
            validate("Credit scoring is high-risk under the Act [4].", 3),
            Err(Invalid::UnknownCitation(4))
        );
        assert!(matches!(
            validate(
                "Summary [1].\n- Deployers must monitor the system closely and keep logs.",
                3
            ),
            Err(Invalid::Uncited(_))
        ));
        let (text, order) =
            validate("Summary: high-risk [3].\n- Deployers monitor [1][3].", 3).unwrap();
        assert_eq!(text, "Summary: high-risk [1].\n- Deployers monitor [2][1].");
        assert_eq!(order, vec![2, 0]);
    }

    #[test]
    fn the_dates_quoted_are_in_their_passages() {
        let all = super::super::corpus::passages();
        for (_, id, line) in APPLIES_FROM {
            let p = all
                .iter()
                .find(|p| p.id == *id)
                .unwrap_or_else(|| panic!("{id}"));
            let date = line
                .split("from ")
                .nth(1)
                .or_else(|| line.split("since ").nth(1))
                .unwrap();
            let date: String = date.split(';').next().unwrap().to_owned();
            assert!(
                p.text.contains(date.trim()),
                "{id}: {date} not in {}",
                p.text
            );
        }
    }
}
