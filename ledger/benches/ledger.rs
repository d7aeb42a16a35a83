//! Ledger benchmarks: durable appends with 1, 8 and 64 concurrent writers; inclusion-proof
//! generation and full export verification at one million records.
//!
//! `cargo bench -p warden-ledger --bench ledger`; set `WARDEN_BENCH_RECORDS` to change the size
//! of the large ledger (default 1,000,000). Figures and the machine go in BENCHMARKS.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::json;
use warden_ledger::{verify_export, Entry, Keyring, Ledger, LedgerOptions};

fn options(dir: &std::path::Path) -> LedgerOptions {
    LedgerOptions {
        dir: dir.join("ledger"),
        postgres: None,
        signing_key: dir.join("keys/ledger.key"),
        origin: "bench".into(),
        batch_max: 4096,
        batch_wait: Duration::ZERO,
    }
}

/// A decision record of realistic size (about 300 bytes canonical).
fn entry(w: usize, i: usize) -> Entry {
    Entry::new(
        "decision",
        "tenant-a",
        json!({
            "decision_id": format!("dec_{w:04}_{i:08}"),
            "decision_type": "budget_change",
            "verdict": "allow",
            "policy_hash": "sha256:9f8d2e8ab219d0c4c1e6b1f1d6a0b7b1b2d4c3e2f1a0b9c8d7e6f5a4b3c2d1e0",
            "payload_hash": "sha256:0c4c1e6b1f1d6a0b7b1b2d4c3e2f1a0b9c8d7e6f5a4b3c2d1e09f8d2e8ab219d",
            "utilization": 72,
            "agent_id": "agt_9f81a7",
        }),
    )
}

async fn append_concurrently(ledger: &Arc<Ledger>, writers: usize, total: usize) {
    let each = total / writers;
    let mut tasks = Vec::with_capacity(writers);
    for w in 0..writers {
        let l = ledger.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..each {
                l.append(entry(w, i)).await.expect("append");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer task");
    }
}

/// The floor for one writer: a 4 KiB write and fdatasync on the same file system, which is
/// what a lone durable append cannot avoid.
fn baseline(c: &mut Criterion) {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let mut f = std::fs::File::create(dir.path().join("fsync-probe")).unwrap();
    let block = [7u8; 4096];
    c.bench_function("baseline/write_4k_fdatasync", |b| {
        b.iter(|| {
            f.write_all(&block).unwrap();
            f.sync_data().unwrap();
        })
    });
}

fn appends(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("durable_appends");
    group.sample_size(10);
    for (writers, per_sample) in [(1usize, 200usize), (8, 4_000), (64, 64_000)] {
        group.throughput(Throughput::Elements(per_sample as u64));
        group.bench_with_input(BenchmarkId::new("writers", writers), &writers, |b, &w| {
            let dir = tempfile::tempdir().unwrap();
            let ledger = Arc::new(Ledger::open(options(dir.path())).unwrap());
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    rt.block_on(append_concurrently(&ledger, w, per_sample));
                }
                start.elapsed()
            });
            rt.block_on(ledger.shutdown());
        });
    }
    group.finish();
}

fn large(c: &mut Criterion) {
    let records: usize = std::env::var("WARDEN_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(Ledger::open(options(dir.path())).unwrap());
    let start = Instant::now();
    rt.block_on(append_concurrently(&ledger, 64, records));
    let size = ledger.reader().size().unwrap();
    eprintln!(
        "built a ledger of {size} records in {:.1?} ({:.0} appends/s)",
        start.elapsed(),
        size as f64 / start.elapsed().as_secs_f64()
    );

    let reader = ledger.reader();
    let mut group = c.benchmark_group(format!("ledger_{size}"));
    let mut i = 0u64;
    group.bench_function("inclusion_proof", |b| {
        b.iter(|| {
            // A spread of indexes, so the page cache is not always warm for the same path.
            i = (i + 7_919_993) % size;
            reader.inclusion_proof(i, size).unwrap()
        })
    });
    group.bench_function("receipt", |b| {
        b.iter(|| {
            i = (i + 7_919_993) % size;
            reader.receipt(i).unwrap()
        })
    });

    let mut export = Vec::new();
    reader.export(&mut export).unwrap();
    let keys = Keyring::from_dir(&dir.path().join("keys")).unwrap();
    eprintln!("export: {} MB", export.len() / 1_000_000);
    group.sample_size(10);
    group.throughput(Throughput::Elements(size));
    group.bench_function("verify_export", |b| {
        b.iter(|| {
            let s = verify_export(&export[..], &keys).unwrap();
            assert_eq!(s.records, size);
        })
    });
    group.finish();
    rt.block_on(ledger.shutdown());
}

criterion_group!(benches, baseline, appends, large);
criterion_main!(benches);
