//! Throughput and latency of the guardians.
//!
//! ```text
//! cargo bench -p warden-guardians --bench scan
//! ```
//!
//! - `scan_text/mixed_64k`: all four detectors over 64 KiB of mixed text (prose, code, logs, JSON,
//!   a few PII values, secrets and an injection), as one call: throughput per core.
//! - `scan_text/prompt_4k`: one 4 KiB prompt (latency; criterion reports the mean, the p99 is
//!   printed by `latency_p99` below).
//! - `stream/chunk_100b`: the streaming scanner fed 100-byte chunks of the mixed text; time per
//!   chunk, compared with `scan_text` of the same bytes to give the overhead.
//! - `json/tool_result`: a tool result JSON value.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use warden_guardians::{Channel, GuardianConfig, Guardians};

#[path = "support/mixed_text.rs"]
mod mixed_text;
use mixed_text::{mixed, INJECTION, LOG, PII, PROSE, SECRET};

fn bench(c: &mut Criterion) {
    let g = Guardians::new(GuardianConfig::default()).expect("default config");
    let big = mixed(64 * 1024);
    let prompt = mixed(4 * 1024);

    let mut group = c.benchmark_group("scan_text");
    group.throughput(Throughput::Bytes(big.len() as u64));
    group.bench_function("mixed_64k", |b| {
        b.iter(|| black_box(g.scan_text(black_box(&big), Channel::UserInput)))
    });
    group.throughput(Throughput::Bytes(prompt.len() as u64));
    group.bench_function("prompt_4k", |b| {
        b.iter(|| black_box(g.scan_text(black_box(&prompt), Channel::UserInput)))
    });
    let clean = mixed(4 * 1024)
        .replace(INJECTION, "")
        .replace(SECRET, "")
        .replace(PII, "");
    group.throughput(Throughput::Bytes(clean.len() as u64));
    group.bench_function("clean_prompt_4k", |b| {
        b.iter(|| black_box(g.scan_text(black_box(&clean), Channel::UserInput)))
    });
    group.finish();

    let chunks: Vec<&str> = {
        let mut v = Vec::new();
        let mut start = 0;
        while start < big.len() {
            let mut end = (start + 100).min(big.len());
            while !big.is_char_boundary(end) {
                end += 1;
            }
            v.push(&big[start..end]);
            start = end;
        }
        v
    };
    let mut group = c.benchmark_group("stream");
    group.throughput(Throughput::Bytes(big.len() as u64));
    group.bench_function("chunk_100b_whole_64k", |b| {
        b.iter(|| {
            let mut s = g.stream(Channel::Response);
            let mut n = 0;
            for ch in &chunks {
                n += s.push(ch).text.len();
            }
            n += s.finish().text.len();
            black_box(n)
        })
    });
    group.finish();

    let tool: serde_json::Value = serde_json::json!({
        "results": (0..20).map(|i| serde_json::json!({
            "id": i, "title": PROSE, "snippet": LOG, "owner": {"email": "jane.doe@example.com"}
        })).collect::<Vec<_>>()
    });
    let bytes = tool.to_string().len();
    let mut group = c.benchmark_group("json");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("tool_result", |b| {
        b.iter(|| black_box(g.scan_json(black_box(&tool), Channel::ToolOutput)))
    });
    group.finish();

    // p99 latency of a 4 KiB prompt, measured directly (criterion reports means).
    let mut samples: Vec<f64> = (0..5000)
        .map(|_| {
            let t = Instant::now();
            black_box(g.scan_text(black_box(&prompt), Channel::UserInput));
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    let q = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!(
        "latency_p99 prompt_4k: p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs (5000 runs)",
        q(0.5),
        q(0.99),
        q(1.0)
    );
    // Per-chunk streaming cost vs scanning the same bytes once.
    let t = Instant::now();
    let rounds = 20;
    for _ in 0..rounds {
        let mut s = g.stream(Channel::Response);
        for ch in &chunks {
            black_box(s.push(ch));
        }
        black_box(s.finish());
    }
    let per_chunk = t.elapsed().as_secs_f64() * 1e6 / (rounds * chunks.len()) as f64;
    let t = Instant::now();
    for _ in 0..rounds {
        black_box(g.scan_text(&big, Channel::Response));
    }
    let whole_per_100b = t.elapsed().as_secs_f64() * 1e6 / (rounds * chunks.len()) as f64;
    println!(
        "stream per 100-byte chunk: {per_chunk:.2} µs; whole-text scan per 100 bytes: {whole_per_100b:.2} µs; overhead {:.2} µs/chunk",
        per_chunk - whole_per_100b
    );
    // The same with a larger release batch (less rescanning, more latency).
    let mut cfg = GuardianConfig::default();
    cfg.stream.min_release = 1024;
    let g2 = Guardians::new(cfg).expect("config");
    let t = Instant::now();
    for _ in 0..rounds {
        let mut s = g2.stream(Channel::Response);
        for ch in &chunks {
            black_box(s.push(ch));
        }
        black_box(s.finish());
    }
    let per_chunk2 = t.elapsed().as_secs_f64() * 1e6 / (rounds * chunks.len()) as f64;
    println!(
        "stream per 100-byte chunk with min_release=1024: {per_chunk2:.2} µs; overhead {:.2} µs/chunk",
        per_chunk2 - whole_per_100b
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
