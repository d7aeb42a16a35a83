//! The shipped corpus, split into passages.
//!
//! Two sources, both compiled into the binary so that Gloxi works offline and never reads a
//! path at run time:
//! - `corpus/eu-regulations.jsonl`: EUR-Lex article texts (AI Act, GDPR, DORA, NIS2, CRA,
//!   CSRD), one article a line, split here into numbered paragraphs (`1.`, `2.`...) or, for
//!   definitions articles, into their numbered points (`(1)`, `(2)`...), because a compliance
//!   officer cites `Art. 6(2)` or `Art. 3(1)`, not a whole article;
//! - `corpus/facts.jsonl`: structured facts written for Warden (AI Act Annexes I and III and the
//!   Art. 113 dates, NIST AI RMF, ISO/IEC 42001 Annex A, the HIPAA Security Rule, the NAIC
//!   model bulletin, SOC 2), each already one passage with its official reference.
//!
//! What the splitter can miss: titles of articles without numbered paragraphs are found by a
//! heuristic (the first capitalised word that starts a sentence), so a handful are cut a word or
//! two early or late; the text itself is never lost.

use serde::Deserialize;

const EU_JSONL: &str = include_str!("../../corpus/eu-regulations.jsonl");
const FACTS_JSONL: &str = include_str!("../../corpus/facts.jsonl");

/// Jurisdictions a passage can belong to; `international` passages match every filter.
pub const JURISDICTIONS: [&str; 3] = ["eu", "us", "international"];

/// Sectors (`context`) passages are tagged with.
pub const SECTORS: [&str; 10] = [
    "general",
    "financial_services",
    "insurance",
    "healthcare",
    "employment",
    "education",
    "public_sector",
    "law_enforcement",
    "critical_infrastructure",
    "technology",
];

/// One retrievable unit of text with everything needed to cite it.
#[derive(Clone, Debug)]
pub struct Passage {
    /// Stable id, e.g. `eu-ai-act/art-6/2` or `eu-ai-act/annex-iii/5b`.
    pub id: String,
    /// Short name of the regulation or framework, e.g. `eu-ai-act`.
    pub source: String,
    /// Its display name, e.g. `EU AI Act`.
    pub regulation: String,
    /// `Art. 6`, `Annex III`, `45 CFR 164.308`, `GOVERN 1`...
    pub article: String,
    /// `2`, `5(b)`, `(a)(1)`; empty for a whole article.
    pub paragraph: String,
    /// The article's or fact's title.
    pub title: String,
    pub text: String,
    pub jurisdiction: &'static str,
    pub sectors: Vec<&'static str>,
    /// The official link.
    pub link: String,
    /// Article number for EU texts (to match "Article 22" in a question).
    pub number: Option<u32>,
    /// Ids of passages this one depends on, which retrieval brings along when this one ranks
    /// first (the Annex III point and the article that makes it high-risk).
    pub related: Vec<String>,
}

impl Passage {
    /// `EU AI Act Art. 6(2)`, as people write a citation.
    pub fn label(&self) -> String {
        let p = &self.paragraph;
        if p.is_empty() {
            format!("{} {}", self.regulation, self.article)
        } else if p.starts_with('(') {
            format!("{} {}{p}", self.regulation, self.article)
        } else if self.article.starts_with("Art.") {
            // `1(c)` -> `Art. 5(1)(c)`.
            let (head, rest) = p.split_at(p.find('(').unwrap_or(p.len()));
            format!("{} {}({head}){rest}", self.regulation, self.article)
        } else {
            format!("{} {} {p}", self.regulation, self.article)
        }
    }
}

#[derive(Deserialize)]
struct EuArticle {
    celex: String,
    regulation: String,
    short_name: String,
    article: u32,
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fact {
    id: String,
    regulation: String,
    jurisdiction: String,
    sectors: Vec<String>,
    article: String,
    #[serde(default)]
    paragraph: String,
    title: String,
    link: String,
    text: String,
    /// Passages this one refers to (Annex III points -> Art. 6(2)...).
    #[serde(default)]
    related: Vec<String>,
}

fn intern(list: &'static [&'static str], s: &str) -> Option<&'static str> {
    list.iter().copied().find(|x| *x == s)
}

/// Every passage of the shipped corpus, in a stable order.
pub fn passages() -> Vec<Passage> {
    let mut out = Vec::with_capacity(4000);
    for line in EU_JSONL.lines().filter(|l| !l.trim().is_empty()) {
        let a: EuArticle = serde_json::from_str(line).expect("the shipped corpus is valid");
        split_article(&a, &mut out);
    }
    for line in FACTS_JSONL.lines().filter(|l| !l.trim().is_empty()) {
        let f: Fact = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("corpus/facts.jsonl: {e}: {line}"));
        let source = f.id.split('/').next().unwrap_or_default().to_owned();
        out.push(Passage {
            number: f.article.strip_prefix("Art. ").and_then(|n| n.parse().ok()),
            id: f.id,
            source,
            regulation: f.regulation,
            article: f.article,
            paragraph: f.paragraph,
            title: f.title,
            text: f.text,
            jurisdiction: intern(&JURISDICTIONS, &f.jurisdiction).expect("a known jurisdiction"),
            sectors: f
                .sectors
                .iter()
                .map(|s| intern(&SECTORS, s).expect("a known sector"))
                .collect(),
            link: f.link,
            related: f.related,
        });
    }
    out
}

/// Sectors an EU text concerns: its regulation's, plus those its words name.
fn eu_sectors(short: &str, text: &str) -> Vec<&'static str> {
    let mut s = vec![match short {
        "dora" => "financial_services",
        "nis2" => "critical_infrastructure",
        "cra" => "technology",
        _ => "general",
    }];
    let lower = text.to_lowercase();
    for (words, sector) in [
        (
            &["creditworthiness", "credit score", "credit institution"][..],
            "financial_services",
        ),
        (&["insurance"][..], "insurance"),
        (&["health", "medical"][..], "healthcare"),
        (&["employment", "workers", "recruitment"][..], "employment"),
        (&["education", "vocational"][..], "education"),
        (
            &["public authorit", "public assistance"][..],
            "public_sector",
        ),
        (&["law enforcement"][..], "law_enforcement"),
        (&["critical infrastructure"][..], "critical_infrastructure"),
        (&["software", "manufacturer"][..], "technology"),
    ] {
        if words.iter().any(|w| lower.contains(w)) && !s.contains(&sector) {
            s.push(sector);
        }
    }
    s
}

/// Words that often open a sentence right after an article title.
fn starts_sentence(prev: &str, word: &str) -> bool {
    const GLUE: [&str; 16] = [
        "with",
        "of",
        "to",
        "the",
        "and",
        "for",
        "in",
        "under",
        "on",
        "by",
        "from",
        "between",
        "regarding",
        "concerning",
        "a",
        "or",
    ];
    const NAMES: [&str; 8] = [
        "Union",
        "Commission",
        "Board",
        "Council",
        "Parliament",
        "European",
        "Agreements",
        "Office",
    ];
    let mut chars = word.chars();
    let first_upper = chars.next().is_some_and(char::is_uppercase);
    let has_lower = word.chars().skip(1).any(char::is_lowercase);
    first_upper
        && (has_lower || word.len() == 1)
        && !GLUE.contains(&prev)
        && !NAMES.contains(&word)
        && !prev.ends_with(',')
}

/// The title of an article that has no numbered paragraphs, and where its body starts.
fn heuristic_title(text: &str) -> usize {
    let mut prev = "";
    let mut offset = 0;
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 && starts_sentence(prev, word) {
            return offset;
        }
        if offset > 160 {
            break;
        }
        offset += word.len() + 1;
        prev = word;
    }
    text.find(' ').unwrap_or(text.len())
}

/// Positions of ` N. ` (paragraph N) for N = 1, 2, ... in order, when they start a sentence.
fn numbered(text: &str, pattern: impl Fn(usize) -> String) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut from = 0;
    let mut n = 1;
    while let Some(rel) = text[from..].find(&pattern(n)) {
        let at = from + rel;
        let body = at + pattern(n).len();
        let next = text[body..].chars().next();
        if next.is_some_and(|c| c.is_uppercase() || c == '(' || c == '‘' || c.is_ascii_digit()) {
            found.push((at, body));
            from = body;
            n += 1;
        } else {
            from = body;
        }
    }
    found
}

/// Paragraphs longer than this (bytes) with a list of points are split into their points.
const LONG_PARAGRAPH: usize = 1200;

/// Positions of the points ` (a) `, ` (b) `... of a paragraph, in order.
fn lettered(text: &str) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut from = 0;
    for letter in 'a'..='z' {
        let pattern = format!(" ({letter}) ");
        let Some(rel) = text[from..].find(&pattern) else {
            break;
        };
        let at = from + rel;
        found.push((at, at + pattern.len()));
        from = at + pattern.len();
    }
    found
}

fn truncate_words(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    let head = &s[..cut];
    format!("{}…", head.rsplit_once(' ').map_or(head, |(a, _)| a))
}

fn clean(text: &str) -> String {
    let mut t = text.replace('`', "");
    // The closing formula and the footnotes of a final article are not law.
    for end in [
        " Done at Brussels",
        " Done at Strasbourg",
        " Done at Luxembourg",
    ] {
        if let Some(i) = t.find(end) {
            t.truncate(i);
        }
    }
    // Chapter and section headings that follow an article belong to no article.
    for heading in [" CHAPTER ", " SECTION ", " TITLE "] {
        if let Some(i) = t.find(heading) {
            let next = t[i + heading.len()..].chars().next();
            if next.is_some_and(|c| "IVXL0123456789".contains(c)) {
                t.truncate(i);
            }
        }
    }
    t.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn eur_lex(celex: &str, anchor: &str) -> String {
    format!("https://eur-lex.europa.eu/legal-content/EN/TXT/?uri=CELEX:{celex}#{anchor}")
}

fn split_article(a: &EuArticle, out: &mut Vec<Passage>) {
    let mut text = clean(&a.text);
    // CSRD rows repeat their heading ("Article 7 Entry into force...").
    let heading = format!("Article {} ", a.article);
    if let Some(rest) = text.strip_prefix(&heading) {
        text = rest.to_owned();
    }
    let sectors = eu_sectors(&a.short_name, &text);
    let link = eur_lex(&a.celex, &format!("art_{}", a.article));
    let make = |id: String, paragraph: String, title: &str, body: &str| Passage {
        id,
        source: a.short_name.clone(),
        regulation: a.regulation.clone(),
        article: format!("Art. {}", a.article),
        paragraph,
        title: title.to_owned(),
        text: body.trim().to_owned(),
        jurisdiction: "eu",
        sectors: sectors.clone(),
        link: link.clone(),
        number: Some(a.article),
        related: Vec::new(),
    };
    let base = format!("{}/art-{}", a.short_name, a.article);
    let paragraphs = numbered(&text, |n| {
        if n == 1 {
            " 1. ".to_owned()
        } else {
            format!(" {n}. ")
        }
    });
    if paragraphs.first().is_some_and(|(at, _)| *at < 300) {
        let title = text[..paragraphs[0].0].trim().to_owned();
        for (i, (at, body)) in paragraphs.iter().enumerate() {
            let end = paragraphs.get(i + 1).map_or(text.len(), |(next, _)| *next);
            let number = text[*at..*body].trim().trim_end_matches('.').to_owned();
            let paragraph = &text[*body..end];
            let points = lettered(paragraph);
            if paragraph.len() > LONG_PARAGRAPH && points.len() >= 3 {
                // A long list is cited by its points: Art. 5(1)(f). Each point keeps the
                // paragraph's opening words, which say what the list is of.
                let intro = truncate_words(paragraph[..points[0].0].trim(), 300);
                for (j, (at, start)) in points.iter().enumerate() {
                    let end = points.get(j + 1).map_or(paragraph.len(), |(next, _)| *next);
                    let letter = paragraph[*at..*start]
                        .trim()
                        .trim_matches(['(', ')'])
                        .to_owned();
                    out.push(make(
                        format!("{base}/{number}/{letter}"),
                        format!("{number}({letter})"),
                        &title,
                        &format!("{intro} {}", &paragraph[*at..end].trim()),
                    ));
                }
                continue;
            }
            out.push(make(format!("{base}/{number}"), number, &title, paragraph));
        }
        return;
    }
    let cut = heuristic_title(&text);
    let title = text[..cut].trim().to_owned();
    let body = &text[cut..];
    // Definitions: one passage per numbered point, cited as Art. 3(1).
    let points = numbered(body, |n| format!("({n}) "));
    if title == "Definitions" && points.len() > 3 {
        for (i, (_, start)) in points.iter().enumerate() {
            let end = points.get(i + 1).map_or(body.len(), |(next, _)| *next);
            let number = (i + 1).to_string();
            out.push(make(
                format!("{base}/{number}"),
                number,
                &title,
                &body[*start..end],
            ));
        }
        return;
    }
    out.push(make(base, String::new(), &title, body));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn articles_split_into_cited_paragraphs() {
        let all = passages();
        let by_id = |id: &str| {
            all.iter()
                .find(|p| p.id == id)
                .unwrap_or_else(|| panic!("{id}"))
        };
        let p = by_id("eu-ai-act/art-6/2");
        assert_eq!(p.title, "Classification rules for high-risk AI systems");
        assert!(p
            .text
            .starts_with("In addition to the high-risk AI systems"));
        assert_eq!(p.label(), "EU AI Act Art. 6(2)");
        assert_eq!(
            by_id("eu-ai-act/art-5/1/f").label(),
            "EU AI Act Art. 5(1)(f)"
        );
        assert!(by_id("eu-ai-act/art-5/1/f").text.contains("emotions"));
        assert_eq!(
            by_id("hipaa/164.308/a-1").label(),
            "HIPAA Security Rule 45 CFR 164.308(a)(1)"
        );
        assert_eq!(
            by_id("eu-ai-act/annex-iii/5b").label(),
            "EU AI Act Annex III 5(b)"
        );
        let d = by_id("eu-ai-act/art-3/1");
        assert!(d.text.starts_with("‘AI system’ means"), "{}", d.text);
        assert_eq!(by_id("gdpr/art-16").title, "Right to rectification");
        assert_eq!(by_id("nis2/art-44").title, "Repeal");
        let g = by_id("gdpr/art-22/1");
        assert!(g.text.contains("solely on automated processing"));
        assert!(by_id("dora/art-1/1/a")
            .sectors
            .contains(&"financial_services"));
        let ids: std::collections::HashSet<&str> = all.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids.len(), all.len(), "passage ids are unique");
        assert!(!all.iter().any(|p| p.text.is_empty()), "no empty passage");
        assert!(!all.iter().any(|p| p.text.contains("Done at Brussels")));
    }
}
