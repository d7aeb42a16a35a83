//! Where an append's CPU time goes: runs 64 concurrent writers and prints the CPU time of the
//! writer thread and of the whole process per append (steadier than wall time on a busy box).
//! `cargo run --release -p warden-ledger --example append_profile [appends]` (set `WRITERS`,
//! `BATCH_WAIT_US`, `COMMIT_INTERVAL_US`)

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use warden_ledger::{Entry, Ledger, LedgerOptions};

fn cpu_ticks(path: &str) -> u64 {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let after = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat; index 11 and 12 after the comm field.
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

fn writer_stat() -> Option<String> {
    for t in std::fs::read_dir("/proc/self/task").ok()? {
        let p = t.ok()?.path();
        if std::fs::read_to_string(p.join("comm")).ok()?.trim() == "ledger-writer" {
            return Some(p.join("stat").display().to_string());
        }
    }
    None
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(128_000);
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
            batch_wait: Duration::from_micros(
                std::env::var("BATCH_WAIT_US")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            ),
        })
        .unwrap(),
    );
    ledger.set_commit_interval(Duration::from_micros(
        std::env::var("COMMIT_INTERVAL_US")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    ));
    // The thread names itself just after it starts.
    let wstat = (0..100)
        .find_map(|_| {
            writer_stat().or_else(|| {
                std::thread::sleep(Duration::from_millis(10));
                None
            })
        })
        .expect("writer thread");
    let (p0, w0, t0) = (
        cpu_ticks("/proc/self/stat"),
        cpu_ticks(&wstat),
        Instant::now(),
    );
    rt.block_on(async {
        let mut tasks = Vec::new();
        let writers: usize = std::env::var("WRITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
        for w in 0..writers {
            let l = ledger.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..n / writers {
                    let e = Entry::new("decision", "tenant-a", json!({"w": w, "i": i, "verdict": "allow",
                        "policy_hash": "sha256:9f8d2e8ab219d0c4c1e6b1f1d6a0b7b1b2d4c3e2f1a0b9c8d7e6f5a4b3c2d1e0"}));
                    l.append(e).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let wall = t0.elapsed();
    let tick = 1e6 / 100.0; // µs per clock tick (USER_HZ = 100)
    let (p, w) = (cpu_ticks("/proc/self/stat") - p0, cpu_ticks(&wstat) - w0);
    println!(
        "{n} appends in {wall:.2?}: {:.0}/s wall; CPU per append: process {:.1} µs, writer thread {:.1} µs",
        n as f64 / wall.as_secs_f64(),
        p as f64 * tick / n as f64,
        w as f64 * tick / n as f64
    );
    rt.block_on(ledger.shutdown());
    let conn = rusqlite::Connection::open(dir.path().join("ledger/ledger.db")).unwrap();
    let batches: i64 = conn
        .query_row("SELECT count(*) FROM checkpoints", [], |r| r.get(0))
        .unwrap();
    println!(
        "{batches} batches, {:.1} appends per batch",
        n as f64 / batches as f64
    );
}
