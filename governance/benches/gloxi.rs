//! Gloxi's retrieval speed: the time to build the index (what "loads fast" means: it is built
//! from the embedded corpus at start), and the latency of one retrieval over the evaluation
//! questions, as percentiles (p99 is the target: < 5 ms).
//!
//! `cargo bench -p warden-governance --bench gloxi` (`GLOXI_BENCH_ROUNDS`, default 50 rounds
//! of the 81 questions).

use std::time::Instant;

use warden_governance::gloxi::{corpus, Index, Query};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let questions: Vec<(String, Option<String>, Option<String>)> =
        include_str!("../corpus/eval.jsonl")
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("valid line");
                let s = |k: &str| v[k].as_str().map(str::to_owned);
                (s("query").expect("query"), s("context"), s("jurisdiction"))
            })
            .collect();
    let mut builds = Vec::new();
    let mut index = None;
    for _ in 0..5 {
        let t = Instant::now();
        let passages = corpus::passages();
        let built = Index::build(passages);
        builds.push(t.elapsed().as_secs_f64() * 1000.0);
        index = Some(built);
    }
    let index = index.expect("built");
    builds.sort_by(f64::total_cmp);
    println!(
        "index build ({} passages): median {:.1} ms, min {:.1} ms (5 builds)",
        index.passages().len(),
        percentile(&builds, 0.5),
        builds[0]
    );
    let rounds: usize = std::env::var("GLOXI_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(50);
    // Warm-up round.
    for (q, c, j) in &questions {
        let _ = index.search(&Query {
            text: q,
            history: &[],
            jurisdiction: j.as_deref(),
            sector: c.as_deref(),
            limit: 5,
        });
    }
    let mut times = Vec::with_capacity(rounds * questions.len());
    for _ in 0..rounds {
        for (q, c, j) in &questions {
            let t = Instant::now();
            let hits = index.search(&Query {
                text: q,
                history: &[],
                jurisdiction: j.as_deref(),
                sector: c.as_deref(),
                limit: 5,
            });
            times.push(t.elapsed().as_secs_f64() * 1e6);
            assert!(!hits.is_empty());
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "retrieval ({} searches): p50 {:.0} µs, p90 {:.0} µs, p99 {:.0} µs, max {:.0} µs (target p99 < 5 ms)",
        times.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.9),
        percentile(&times, 0.99),
        times[times.len() - 1]
    );
}
