//! Builds a ledger with concurrent writers, exports it and times offline verification, for
//! profiling the verifier. `cargo run --release -p warden-ledger --example verify_profile [records] [writers]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use warden_ledger::{verify_export, Entry, Keyring, Ledger, LedgerOptions};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let writers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let ledger = Arc::new(
        Ledger::open(LedgerOptions {
            dir: dir.path().join("ledger"),
            postgres: None,
            signing_key: dir.path().join("keys/ledger.key"),
            origin: "profile".into(),
            batch_max: 4096,
            batch_wait: Duration::ZERO,
        })
        .unwrap(),
    );
    rt.block_on(async {
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let l = ledger.clone();
                tokio::spawn(async move {
                    for i in 0..n / writers {
                        l.append(Entry::new("decision", "tenant-a", json!({"w": w, "i": i,
                            "policy_hash": "sha256:9f8d2e8ab219d0c4c1e6b1f1d6a0b7b1b2d4c3e2f1a0b9c8d7e6f5a4b3c2d1e0"})))
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let mut export = Vec::new();
    ledger.reader().export(&mut export).unwrap();
    let checkpoints = export
        .split(|b| *b == b'\n')
        .filter(|l| l.starts_with(b"{\"type\":\"checkpoint\""))
        .count();
    let keys = Keyring::from_dir(&dir.path().join("keys")).unwrap();
    let start = Instant::now();
    let mut v = warden_ledger::ExportVerifier::new(&keys);
    for line in export.split(|b| *b == b'\n') {
        v.line(std::str::from_utf8(line).unwrap()).unwrap();
    }
    let lines_done = start.elapsed();
    let summary = v.finish().unwrap();
    let took = start.elapsed();
    println!("lines {lines_done:.2?}, signatures finished at {took:.2?}");
    let cpu0 = cpu_ms();
    let again = Instant::now();
    let repeat: u32 = std::env::var("REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    for _ in 0..repeat {
        verify_export(&export[..], &keys).unwrap();
    }
    println!(
        "verify_export x{repeat}: {:.2?} wall, {:.0} ms CPU each ({:.2} µs CPU per record)",
        again.elapsed(),
        (cpu_ms() - cpu0) / repeat as f64,
        (cpu_ms() - cpu0) * 1e3 / repeat as f64 / n as f64
    );
    println!(
        "verified {} records and {checkpoints} checkpoints ({} MB) in {took:.2?}: {:.2} µs per record",
        summary.records,
        export.len() / 1_000_000,
        took.as_secs_f64() * 1e6 / summary.records as f64
    );
    rt.block_on(ledger.shutdown());
}

/// CPU time of the whole process (all threads), in milliseconds.
fn cpu_ms() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f: Vec<&str> = s
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
    ticks as f64 * 10.0
}
