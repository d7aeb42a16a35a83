//! Content safety against the hand-written labelled set in `testdata/content/` (see its
//! `SOURCE.md`): prints precision, recall and F1 per category and fails if any falls below its
//! floor. The floors sit just under what the detector measured when they were last set, so a
//! change that loses accuracy fails here; raise them when the detector improves.
//!
//! `cargo test -p warden-guardians --test content_eval -- --nocapture` shows the table;
//! `CONTENT_EVAL_VERBOSE=dev` also lists the dev split's misses (do not tune on `heldout`).

mod common;
#[path = "common/content_eval.rs"]
mod content_eval;

use content_eval::{load, print_all, ratio, report, score, CATEGORIES};

/// (category, precision, recall, F1) floors on the English items, both splits.
const FLOORS: [(&str, f64, f64, f64); 6] = [
    ("VIOLENCE", 0.88, 0.88, 0.88),
    ("SELF_HARM", 0.91, 0.85, 0.88),
    ("SEXUAL_MINORS", 0.91, 0.91, 0.91),
    ("HATE", 0.94, 0.75, 0.83),
    ("WEAPONS", 0.94, 0.88, 0.91),
    ("ILLICIT_DRUGS", 0.94, 0.91, 0.93),
];

/// Micro-averaged F1 floor on the held-out split alone (the honest figure: the detector's
/// cue and proximity rules were written looking at the dev split's misses).
const HELDOUT_MICRO_F1: f64 = 0.88;

/// The most English negatives (news, medical, fiction...) that may be flagged at all.
const MAX_NEGATIVES_FLAGGED: f64 = 0.07;

#[test]
fn content_safety_meets_its_floors() {
    let items = load(&content_eval::data_path());
    assert!(items.len() >= 300, "the set shrank: {} items", items.len());
    let scored = score(common::guardians(), &items);
    let verbose = std::env::var("CONTENT_EVAL_VERBOSE").ok();
    print_all(&scored, verbose.as_deref());

    let en = report(&scored, |i| i.lang == "en");
    let mut failures = Vec::new();
    for (cat, p, r, f1) in FLOORS {
        let c = en.get(cat);
        assert!(c.tp + c.fn_ >= 30, "{cat}: only {} positives", c.tp + c.fn_);
        for (what, got, floor) in [
            ("precision", c.precision(), p),
            ("recall", c.recall(), r),
            ("F1", c.f1(), f1),
        ] {
            if got < floor {
                failures.push(format!("{cat} {what} {got:.3} < floor {floor}"));
            }
        }
    }
    let held = report(&scored, |i| i.lang == "en" && i.split == "heldout").micro();
    if held.f1() < HELDOUT_MICRO_F1 {
        failures.push(format!(
            "held-out micro F1 {:.3} < floor {HELDOUT_MICRO_F1}",
            held.f1()
        ));
    }
    let (flagged, n) = en.negative_fp();
    if ratio(flagged, n) > MAX_NEGATIVES_FLAGGED {
        failures.push(format!(
            "negatives flagged {:.3} ({flagged}/{n}) > {MAX_NEGATIVES_FLAGGED}",
            ratio(flagged, n)
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(FLOORS.map(|f| f.0), CATEGORIES);
}

/// The scoring itself: a finding of the labelled category is a hit, of another a false positive
/// unless the item lists it in `also`.
#[test]
fn scoring_counts_hits_misses_and_also() {
    use content_eval::{Item, Scored};
    let item = |label: &str, also: &[&str]| Item {
        text: String::new(),
        label: label.into(),
        source: "t".into(),
        lang: "en".into(),
        split: "dev".into(),
        also: also.iter().map(|s| s.to_string()).collect(),
    };
    let items = [
        item("HATE", &["VIOLENCE"]),
        item("HATE", &[]),
        item("none", &[]),
    ];
    let found = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    let scored = [
        Scored {
            item: &items[0],
            found: found(&["HATE", "VIOLENCE"]),
        },
        Scored {
            item: &items[1],
            found: found(&["WEAPONS"]),
        },
        Scored {
            item: &items[2],
            found: found(&["VIOLENCE"]),
        },
    ];
    let r = report(&scored, |_| true);
    assert_eq!(
        (r.get("HATE").tp, r.get("HATE").fn_, r.get("HATE").fp),
        (1, 1, 0)
    );
    assert_eq!(r.get("VIOLENCE").fp, 1);
    assert_eq!(r.get("WEAPONS").fp, 1);
    assert_eq!(r.negative_fp(), (1, 1));
}
