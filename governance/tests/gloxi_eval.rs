//! Gloxi's retrieval against its evaluation set (`corpus/eval.jsonl`): questions a compliance
//! officer would ask, each with the citations they would expect. Prints recall@5 and MRR and
//! holds the targets (recall@5 >= 0.90, MRR >= 0.75).
//!
//! A citation is found when a retrieved passage is it or lies inside it: the expectation
//! `gdpr/art-22` is met by `gdpr/art-22/1`, `eu-ai-act/annex-iii/5b` only by that point.
//! recall@5 is, per question, the share of its expected citations among the first five
//! passages, averaged; MRR is the mean of 1 / the rank of the first passage that meets any.
//!
//! `cargo test -p warden-governance --test gloxi_eval -- --nocapture` shows every miss.

use warden_governance::gloxi::{corpus, Index, Query};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    query: String,
    #[serde(default)]
    context: Option<String>,
    #[serde(default)]
    jurisdiction: Option<String>,
    expected: Vec<String>,
}

fn meets(passage: &str, expected: &str) -> bool {
    passage == expected
        || passage
            .strip_prefix(expected)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[test]
fn retrieval_meets_its_targets_on_the_evaluation_set() {
    let cases: Vec<Case> = include_str!("../corpus/eval.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(cases.len() >= 60, "at least 60 questions");
    let index = Index::build(corpus::passages());
    let all_ids: Vec<&str> = index.passages().iter().map(|p| p.id.as_str()).collect();
    let (mut recall, mut rr) = (0.0, 0.0);
    let mut misses = Vec::new();
    for c in &cases {
        for e in &c.expected {
            assert!(
                all_ids.iter().any(|id| meets(id, e)),
                "{e} names no passage of the corpus"
            );
        }
        let hits = index.search(&Query {
            text: &c.query,
            history: &[],
            jurisdiction: c.jurisdiction.as_deref(),
            sector: c.context.as_deref(),
            limit: 5,
        });
        let ids: Vec<&str> = hits
            .iter()
            .map(|h| index.passage(h.passage).id.as_str())
            .collect();
        let found = c
            .expected
            .iter()
            .filter(|e| ids.iter().any(|id| meets(id, e)))
            .count();
        recall += found as f64 / c.expected.len() as f64;
        if let Some(rank) = ids
            .iter()
            .position(|id| c.expected.iter().any(|e| meets(id, e)))
        {
            rr += 1.0 / (rank + 1) as f64;
        }
        if found < c.expected.len() || !c.expected.iter().any(|e| meets(ids[0], e)) {
            misses.push(format!(
                "{}\n    expected {:?}\n    got      {:?}",
                c.query, c.expected, ids
            ));
        }
    }
    let n = cases.len() as f64;
    let (recall, mrr) = (recall / n, rr / n);
    println!("Gloxi evaluation: {} questions", cases.len());
    println!("recall@5 = {recall:.3} (target >= 0.90)");
    println!("MRR      = {mrr:.3} (target >= 0.75)");
    println!("not perfect ({}):", misses.len());
    for m in &misses {
        println!("  {m}");
    }
    assert!(recall >= 0.90, "recall@5 {recall:.3} < 0.90");
    assert!(mrr >= 0.75, "MRR {mrr:.3} < 0.75");
}
