//! Retrieval: BM25 over passages, with the title as a boosted second field (BM25F-style), a
//! synonym map for regulatory vocabulary, and filters and boosts from the question.
//!
//! The `bm25` crate tokenizes (Unicode words, English stop words, Snowball stemming) and
//! computes each field's saturated term weights; the postings and the scoring loop are ours so
//! that the two fields can be summed per term and a query touches only the postings of its own
//! terms (the crate's `Scorer` rescans every candidate's whole embedding per query term).
//!
//! Boosts, each multiplicative: a regulation the question names (`GDPR`, `AI Act`...), an
//! article it names together with its regulation (`Article 22 GDPR`), the sector given as
//! `context`. A jurisdiction filters (international standards always pass). At most two
//! passages of one article make the top results, so that a question touching several
//! articles is not answered from one.
//!
//! What it can miss: there is no semantic matching beyond the synonym map; a question worded
//! far from the legal text and outside the map ("can my bot sack people?") scores weakly.

use std::collections::HashMap;

use bm25::{Embedder, EmbedderBuilder, Language, LanguageMode};

use super::corpus::Passage;

/// How much a title term weighs against a body term.
const TITLE_BOOST: f32 = 1.6;
/// Weight of terms added by the synonym map.
const SYNONYM_WEIGHT: f32 = 0.5;
/// Weight of the previous question's terms in a follow-up.
const HISTORY_WEIGHT: f32 = 0.35;
const NAMED_REGULATION_BOOST: f32 = 1.8;
const NAMED_ARTICLE_BOOST: f32 = 2.5;
const SECTOR_BOOST: f32 = 1.25;
const PER_ARTICLE: usize = 2;

/// Regulatory phrases and what else they are called in the texts.
const SYNONYMS: &[(&[&str], &str)] = &[
    (
        &[
            "credit scoring",
            "credit score",
            "lending",
            "loan",
            "creditworth",
        ],
        "creditworthiness credit score natural persons",
    ),
    (
        &[
            "hiring",
            "recruit",
            "hr ",
            "job applicant",
            "cv ",
            "cvs ",
            "candidates",
        ],
        "employment recruitment selection workers",
    ),
    (
        &["biometric"],
        "biometric identification facial recognition categorisation",
    ),
    (
        &["facial recognition", "face recognition"],
        "remote biometric identification",
    ),
    (
        &["fine", "penalt", "sanction"],
        "administrative fines penalties infringements",
    ),
    (&["breach"], "personal data breach notification"),
    (
        &[
            "deadline",
            "from when",
            "when do",
            "when does",
            "when will",
            "timeline",
            "apply from",
            "effective date",
            "start to apply",
            "dates ",
        ],
        "apply from date application entry into force",
    ),
    (
        &["chatbot", "chat bot"],
        "interact directly natural persons transparency",
    ),
    (
        &["deepfake", "deep fake", "synthetic"],
        "deep fake image audio video content generated manipulated",
    ),
    (
        &[
            "gpai",
            "foundation model",
            "llm",
            "large language model",
            "general purpose",
        ],
        "general-purpose AI model",
    ),
    (
        &["underwrit", "insurer"],
        "insurance life health pricing risk assessment",
    ),
    (
        &["hospital", "patient", "health data", "phi ", "clinic"],
        "health healthcare ePHI",
    ),
    (
        &[
            "vendor",
            "third party",
            "third-party",
            "supplier",
            "outsourc",
        ],
        "third-party service provider",
    ),
    (&["incident"], "incident reporting notification"),
    (
        &["impact assessment"],
        "fundamental rights impact assessment data protection impact assessment",
    ),
    (
        &["bank", "lender", "investment firm"],
        "financial entities credit institutions",
    ),
    (
        &["ransomware", "cyberattack", "cyber attack", "hack"],
        "cybersecurity incident threat",
    ),
    (
        &["vulnerabilit", "security patch", "security update"],
        "vulnerabilities actively exploited handling",
    ),
    (
        &[
            "logging",
            "logs",
            "record keeping",
            "record-keeping",
            "audit trail",
        ],
        "record-keeping logs automatic recording events",
    ),
    (
        &["explain", "explanation"],
        "meaningful information logic involved explanation",
    ),
    (
        &[
            "automated decision",
            "automated individual",
            "algorithmic decision",
        ],
        "automated individual decision-making profiling solely automated processing",
    ),
    (&["kids", "children", "minor"], "child"),
    (&["esg", "sustainability"], "sustainability reporting"),
    (&["emotion"], "emotion recognition"),
    (
        &["social scoring", "social score"],
        "social behaviour evaluation classification score",
    ),
    (&["police"], "law enforcement"),
    (
        &["student", "exam", "school", "universit", "proctor"],
        "education vocational training",
    ),
    (
        &["open source", "open-source"],
        "free and open-source software",
    ),
    (&["right to be forgotten", "delete"], "erasure"),
    (&["dpo"], "data protection officer"),
    (&["cloud"], "ICT third-party service providers"),
    (
        &["penetration test", "pentest", "red team"],
        "threat-led penetration testing",
    ),
    (&["supply chain"], "supply chain third-party suppliers"),
    (
        &["forbidden", "banned", "prohibit", "not allowed"],
        "prohibited AI practices",
    ),
    (
        &["encrypt"],
        "encryption access control transmission security",
    ),
    (
        &["training data", "dataset", "data quality"],
        "data governance training validation testing data sets",
    ),
    (&["consent"], "consent conditions"),
    (
        &[
            "literacy",
            "staff training",
            "train our staff",
            "train staff",
            "upskill",
        ],
        "AI literacy training",
    ),
    (
        &["watermark", "label"],
        "marked machine-readable format detectable",
    ),
    (&["risk management"], "risk management system"),
    (&["accuracy", "robust"], "accuracy robustness cybersecurity"),
    (
        &["human review", "human in the loop", "oversight"],
        "human oversight",
    ),
    (
        &["technical documentation", "documentation"],
        "technical documentation",
    ),
    (&["ce mark"], "CE marking"),
    (
        &["disaster", "backup", "continuity"],
        "contingency plan backup disaster recovery",
    ),
    (&["password", "login"], "access control authentication"),
    (
        &["define", "definition", "meaning of", "what is meant"],
        "means definitions",
    ),
    (&["contract"], "contractual provisions arrangements"),
    (
        &["accountab", "liable", "liability", "personally responsible"],
        "held liable responsible management bodies",
    ),
    (
        &["grade", "grading", "marking", "assess student"],
        "evaluate learning outcomes",
    ),
    (&["at work", "workplace", "employees"], "workplace workers"),
    (
        &["baa ", "business associate agreement"],
        "business associate contracts arrangements",
    ),
];

/// Names of regulations in questions, and the source they mean.
const NAMES: &[(&[&str], &str)] = &[
    (
        &["ai act", "aia ", "artificial intelligence act", "2024/1689"],
        "eu-ai-act",
    ),
    (&["gdpr", "data protection regulation", "2016/679"], "gdpr"),
    (&["dora", "digital operational resilience"], "dora"),
    (
        &[
            "nis2",
            "nis 2",
            "nis-2",
            "network and information security directive",
        ],
        "nis2",
    ),
    (&["cyber resilience act", "cra "], "cra"),
    (&["csrd", "sustainability reporting directive"], "csrd"),
    (&["hipaa", "security rule", "45 cfr"], "hipaa"),
    (
        &["nist", "ai rmf", "risk management framework"],
        "nist-ai-rmf",
    ),
    (&["42001", "iso/iec", "iso standard", "aims"], "iso-42001"),
    (&["naic", "model bulletin"], "naic"),
    (&["soc 2", "soc2", "trust services"], "soc2"),
];

/// What to retrieve for.
pub struct Query<'a> {
    pub text: &'a str,
    /// Earlier questions of the conversation, most recent last.
    pub history: &'a [String],
    pub jurisdiction: Option<&'a str>,
    pub sector: Option<&'a str>,
    pub limit: usize,
}

/// A passage and its score.
#[derive(Clone, Copy, Debug)]
pub struct Hit {
    pub passage: usize,
    pub score: f32,
}

/// The index: built once from the passages, immutable, shared.
pub struct Index {
    passages: Vec<Passage>,
    embedder: Embedder<u32>,
    /// term -> (passage, field-summed BM25 weight).
    postings: HashMap<u32, Vec<(u32, f32)>>,
    idf: HashMap<u32, f32>,
    by_id: HashMap<String, usize>,
}

fn tokenizer_mode() -> LanguageMode {
    LanguageMode::Fixed(Language::English)
}

impl Index {
    pub fn build(passages: Vec<Passage>) -> Index {
        let bodies: Vec<&str> = passages.iter().map(|p| p.text.as_str()).collect();
        let titles: Vec<String> = passages.iter().map(title_field).collect();
        let title_refs: Vec<&str> = titles.iter().map(String::as_str).collect();
        let body_embedder: Embedder<u32> =
            EmbedderBuilder::with_fit_to_corpus(tokenizer_mode(), &bodies).build();
        let title_embedder: Embedder<u32> =
            EmbedderBuilder::with_fit_to_corpus(tokenizer_mode(), &title_refs).build();
        let mut postings: HashMap<u32, Vec<(u32, f32)>> = HashMap::new();
        for (i, (body, title)) in bodies.iter().zip(&titles).enumerate() {
            let mut weights: HashMap<u32, f32> = HashMap::new();
            // The embedding repeats a term once per occurrence with the same weight.
            for t in body_embedder.embed(body).iter() {
                weights.insert(t.index, t.value);
            }
            let mut title_weights: HashMap<u32, f32> = HashMap::new();
            for t in title_embedder.embed(title).iter() {
                title_weights.insert(t.index, t.value);
            }
            for (term, w) in title_weights {
                *weights.entry(term).or_default() += TITLE_BOOST * w;
            }
            for (term, w) in weights {
                postings.entry(term).or_default().push((i as u32, w));
            }
        }
        let n = passages.len() as f32;
        let idf = postings
            .iter()
            .map(|(term, docs)| {
                let df = docs.len() as f32;
                (*term, (1.0 + (n - df + 0.5) / (df + 0.5)).ln())
            })
            .collect();
        let by_id = passages
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.clone(), i))
            .collect();
        Index {
            by_id,
            passages,
            embedder: body_embedder,
            postings,
            idf,
        }
    }

    pub fn passages(&self) -> &[Passage] {
        &self.passages
    }

    pub fn passage(&self, i: usize) -> &Passage {
        &self.passages[i]
    }

    /// The passage with this id.
    pub fn get(&self, id: &str) -> Option<&Passage> {
        self.by_id.get(id).map(|i| &self.passages[*i])
    }

    fn add_terms(&self, text: &str, weight: f32, into: &mut HashMap<u32, f32>) {
        for t in self.embedder.embed(text).iter() {
            let w = into.entry(t.index).or_default();
            *w = w.max(weight);
        }
    }

    /// The best passages for the question, best first.
    pub fn search(&self, q: &Query<'_>) -> Vec<Hit> {
        let lower = normalize(q.text);
        let mut terms: HashMap<u32, f32> = HashMap::new();
        self.add_terms(&lower, 1.0, &mut terms);
        for (phrases, expansion) in SYNONYMS {
            if phrases.iter().any(|p| mentions(&lower, p)) {
                self.add_terms(expansion, SYNONYM_WEIGHT, &mut terms);
            }
        }
        if let Some(previous) = q.history.last() {
            self.add_terms(previous, HISTORY_WEIGHT, &mut terms);
        }
        let mut named: Vec<&str> = NAMES
            .iter()
            .filter(|(names, _)| names.iter().any(|n| mentions(&lower, n)))
            .map(|(_, source)| *source)
            .collect();
        if named.is_empty() {
            // A follow-up keeps the regulation the conversation is about.
            if let Some(previous) = q.history.last() {
                let prev = normalize(previous);
                named = NAMES
                    .iter()
                    .filter(|(names, _)| names.iter().any(|n| mentions(&prev, n)))
                    .map(|(_, source)| *source)
                    .collect();
            }
        }
        let articles = article_numbers(&lower);
        let annex = annex_named(&lower);

        let mut scores: HashMap<u32, f32> = HashMap::new();
        for (term, qw) in &terms {
            let Some(docs) = self.postings.get(term) else {
                continue;
            };
            let idf = self.idf[term] * qw;
            for (doc, w) in docs {
                *scores.entry(*doc).or_default() += idf * w;
            }
        }
        let mut hits: Vec<Hit> = scores
            .into_iter()
            .filter_map(|(doc, mut score)| {
                let p = &self.passages[doc as usize];
                if let Some(j) = q.jurisdiction {
                    if p.jurisdiction != j && p.jurisdiction != "international" {
                        return None;
                    }
                }
                if named.contains(&p.source.as_str()) {
                    score *= NAMED_REGULATION_BOOST;
                    if p.number.is_some_and(|n| articles.contains(&n))
                        || annex.is_some_and(|a| p.article == a)
                    {
                        score *= NAMED_ARTICLE_BOOST;
                    }
                }
                if let Some(s) = q.sector.filter(|s| *s != "general") {
                    if p.sectors.contains(&s) {
                        score *= SECTOR_BOOST;
                    }
                }
                Some(Hit {
                    passage: doc as usize,
                    score,
                })
            })
            .collect();
        hits.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.passage.cmp(&b.passage))
        });
        let mut per_article: HashMap<(&str, &str), usize> = HashMap::new();
        let mut out = Vec::with_capacity(q.limit);
        for h in hits {
            let p = &self.passages[h.passage];
            let seen = per_article
                .entry((p.source.as_str(), p.article.as_str()))
                .or_default();
            if *seen >= PER_ARTICLE {
                continue;
            }
            *seen += 1;
            out.push(h);
            if out.len() == q.limit {
                break;
            }
        }
        // The best passage brings what it depends on, right after it.
        if let Some(top) = out.first().copied() {
            let mut at = 1;
            for id in &self.passages[top.passage].related {
                let Some(&i) = self.by_id.get(id) else {
                    continue;
                };
                if out.iter().any(|h| h.passage == i) {
                    continue;
                }
                out.insert(
                    at.min(out.len()),
                    Hit {
                        passage: i,
                        score: top.score,
                    },
                );
                at += 1;
            }
            out.truncate(q.limit);
        }
        out
    }
}

/// The question in lower case, possessives dropped, padded with spaces so that phrases match
/// at word starts only.
fn normalize(text: &str) -> String {
    let lower = text
        .to_lowercase()
        .replace(['’', '`'], "'")
        .replace("'s ", " ");
    format!(
        " {} ",
        lower.replace(['?', '!', ',', ';', ':', '"', '(', ')'], " ")
    )
}

/// Whether `phrase` occurs in `lower` (from [`normalize`]) at the start of a word. A phrase
/// written with a trailing space must end a word too.
fn mentions(lower: &str, phrase: &str) -> bool {
    lower.contains(&format!(" {phrase}"))
}

/// The title field: the title, plus the citation itself so that "Annex III" or "GOVERN 1"
/// in a question finds it.
fn title_field(p: &Passage) -> String {
    format!("{} {} {}", p.title, p.article, p.paragraph)
}

/// Article numbers named in a question: `Article 22`, `Art. 6`, `Arts 9-15` (the range's ends).
fn article_numbers(lower: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for marker in ["article ", "articles ", "art. ", "arts. ", "arts ", "art "] {
        let mut from = 0;
        while let Some(i) = lower[from..].find(marker) {
            let start = from + i + marker.len();
            let digits: String = lower[start..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(n) = digits.parse() {
                out.push(n);
            }
            from = start;
        }
    }
    out
}

fn annex_named(lower: &str) -> Option<&'static str> {
    if lower.contains("annex iii") || lower.contains("annex 3") {
        Some("Annex III")
    } else if lower.contains("annex i ") || lower.contains("annex 1 ") {
        Some("Annex I")
    } else {
        None
    }
}
