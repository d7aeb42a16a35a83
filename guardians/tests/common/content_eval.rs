//! Precision, recall and F1 of the content-safety detector per category on
//! `testdata/content/content.jsonl`. Shared by the `content_eval` test (which asserts floors) and
//! the `eval` example (which prints the same table).
//!
//! An item labelled with category C counts as a true positive for C when the detector reports a
//! C finding anywhere in it, and as a false negative otherwise. A C finding on an item labelled
//! otherwise is a false positive for C, unless C is in the item's `also` list (a second category
//! the text genuinely belongs to, e.g. a hate item that also threatens violence: neither a hit
//! nor a miss).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use warden_guardians::{Channel, DetectorId, Guardians};

/// The categories the detector claims, in report order.
pub const CATEGORIES: [&str; 6] = [
    "VIOLENCE",
    "SELF_HARM",
    "SEXUAL_MINORS",
    "HATE",
    "WEAPONS",
    "ILLICIT_DRUGS",
];

/// One labelled item.
#[derive(Debug, Deserialize)]
pub struct Item {
    pub text: String,
    /// A category from [`CATEGORIES`] or `none`.
    pub label: String,
    pub source: String,
    pub lang: String,
    /// `dev` (looked at while tuning the detector) or `heldout` (not looked at).
    pub split: String,
    #[serde(default)]
    pub also: Vec<String>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Counts {
    pub tp: usize,
    pub fp: usize,
    pub fn_: usize,
}

impl Counts {
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
    fn add(&mut self, o: Counts) {
        self.tp += o.tp;
        self.fp += o.fp;
        self.fn_ += o.fn_;
    }
}

pub fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// What one item scored.
#[derive(Debug)]
pub struct Scored<'a> {
    pub item: &'a Item,
    /// Content-safety categories found in the item (sorted, deduplicated).
    pub found: Vec<String>,
}

/// Per-category counts and the negatives' false-positive rates for one slice of the set.
#[derive(Debug, Default)]
pub struct Report {
    pub per: BTreeMap<&'static str, Counts>,
    /// Negatives (`label == none`) with any content-safety finding, by source: (flagged, total).
    pub negatives: BTreeMap<String, (usize, usize)>,
}

impl Report {
    pub fn get(&self, cat: &str) -> Counts {
        self.per.get(cat).copied().unwrap_or_default()
    }

    /// Micro-averaged counts over every category.
    pub fn micro(&self) -> Counts {
        let mut all = Counts::default();
        for c in self.per.values() {
            all.add(*c);
        }
        all
    }

    /// Share of negatives flagged with any category: (flagged, total).
    pub fn negative_fp(&self) -> (usize, usize) {
        self.negatives
            .values()
            .fold((0, 0), |(a, b), (x, y)| (a + x, b + y))
    }

    pub fn print(&self, title: &str) {
        println!("{title}");
        println!(
            "  {:<14} {:>4} {:>4} {:>4} {:>7} {:>7} {:>7}",
            "category", "TP", "FP", "FN", "P", "R", "F1"
        );
        let row = |name: &str, c: Counts| {
            println!(
                "  {:<14} {:>4} {:>4} {:>4} {:>7.3} {:>7.3} {:>7.3}",
                name,
                c.tp,
                c.fp,
                c.fn_,
                c.precision(),
                c.recall(),
                c.f1()
            );
        };
        for cat in CATEGORIES {
            row(cat, self.get(cat));
        }
        row("micro (all)", self.micro());
        let (f, n) = self.negative_fp();
        println!("  negatives flagged: {:.3} ({f}/{n})", ratio(f, n));
        for (src, (f, n)) in &self.negatives {
            println!("    {:<34} {:.3} ({f}/{n})", src, ratio(*f, *n));
        }
    }
}

pub fn data_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/content/content.jsonl")
}

pub fn load(path: &Path) -> Vec<Item> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{} line {}: {e}", path.display(), i + 1))
        })
        .collect()
}

/// Scans every item as user input with `g`.
pub fn score<'a>(g: &Guardians, items: &'a [Item]) -> Vec<Scored<'a>> {
    items
        .iter()
        .map(|item| {
            let r = g.scan_text(&item.text, Channel::UserInput);
            let mut found: Vec<String> = r
                .findings
                .iter()
                .filter(|f| f.detector == DetectorId::ContentSafety)
                .map(|f| f.entity_type.to_string())
                .collect();
            found.sort();
            found.dedup();
            Scored { item, found }
        })
        .collect()
}

/// Counts the items `keep` selects.
pub fn report(scored: &[Scored<'_>], keep: impl Fn(&Item) -> bool) -> Report {
    let mut rep = Report::default();
    for s in scored.iter().filter(|s| keep(s.item)) {
        for cat in CATEGORIES {
            let c = rep.per.entry(cat).or_default();
            let hit = s.found.iter().any(|f| f == cat);
            if s.item.label == cat {
                if hit {
                    c.tp += 1;
                } else {
                    c.fn_ += 1;
                }
            } else if hit && !s.item.also.iter().any(|a| a == cat) {
                c.fp += 1;
            }
        }
        if s.item.label == "none" {
            let e = rep.negatives.entry(s.item.source.clone()).or_default();
            e.1 += 1;
            if !s.found.is_empty() {
                e.0 += 1;
            }
        }
    }
    rep
}

/// Prints the English report (all items, then dev and held-out), the other-language slice, and,
/// with `verbose`, the misses of `split` (`dev` while tuning: never look at `heldout`).
pub fn print_all(scored: &[Scored<'_>], verbose: Option<&str>) {
    let en = |i: &Item| i.lang == "en";
    let n = scored.iter().filter(|s| en(s.item)).count();
    report(scored, en).print(&format!(
        "Content safety — {n} hand-written English items (testdata/content), any finding of the category"
    ));
    report(scored, |i| en(i) && i.split == "dev").print("  dev split (looked at while tuning)");
    report(scored, |i| en(i) && i.split == "heldout")
        .print("  held-out split (not looked at while tuning)");
    let other = report(scored, |i| i.lang != "en");
    let m = other.micro();
    let (f, n) = other.negative_fp();
    println!(
        "  other languages (es/de/fr; not claimed by the detector): recall {:.3} ({}/{}), negatives flagged {f}/{n}",
        m.recall(),
        m.tp,
        m.tp + m.fn_
    );
    if let Some(split) = verbose {
        for s in scored.iter().filter(|s| s.item.split == split) {
            let want = &s.item.label;
            let missed = want != "none" && !s.found.iter().any(|f| f == want);
            let wrong: Vec<&String> = s
                .found
                .iter()
                .filter(|f| *f != want && !s.item.also.contains(f))
                .collect();
            if missed {
                println!("  CONTENT FN {want}: {:?}", s.item.text);
            }
            if !wrong.is_empty() {
                println!("  CONTENT FP {wrong:?} (label {want}): {:?}", s.item.text);
            }
        }
    }
}
