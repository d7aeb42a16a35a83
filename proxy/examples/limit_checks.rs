//! Limit checks per second, local buckets against Redis, in one run (BENCHMARKS.md, "Shared
//! limits").
//!
//! `cargo run --release -p warden-proxy --example limit_checks -- [--redis URL] [--seconds S]`
//!
//! Each check is what a governed call does: reserve one request (per key) and its tokens (per
//! tenant) with [`Limits::reserve`], then settle the reservation with the usage. The budgets
//! are large enough that nothing is refused, so every check runs the whole path. With
//! `concurrency` tasks checking back to back, it prints one JSON line per backend and
//! concurrency: checks/s and the reserve latency's p50/p99 (µs). Redis keys go under a prefix
//! of their own, which expire by themselves.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use warden_config::{LimitBackend, LimitConfig, LimitScope, LimitsConfig, RedisUrl};
use warden_proxy::openai::{Limits, Subject};

fn config(backend: LimitBackend, redis: &str) -> LimitsConfig {
    LimitsConfig {
        rules: vec![
            LimitConfig {
                per: LimitScope::Key,
                requests_per_minute: Some(100_000_000),
                ..LimitConfig::default()
            },
            LimitConfig {
                per: LimitScope::Tenant,
                tokens_per_minute: Some(1_000_000_000_000),
                ..LimitConfig::default()
            },
        ],
        backend,
        redis_url: RedisUrl::parse(redis).expect("a redis:// URL"),
        redis_prefix: format!("bench-{}", std::process::id()),
        redis_timeout: Duration::from_secs(2),
        ..LimitsConfig::default()
    }
}

async fn run(limits: Arc<Limits>, concurrency: usize, seconds: f64) -> (u64, Vec<u64>) {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let limits = limits.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("key-{t}");
            let who = Subject {
                key: &key,
                agent: "bench-agent",
                tenant: "bench-tenant",
                model: "gpt-4o-mini",
            };
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let started = Instant::now();
                let r = limits
                    .reserve(&who, 1200)
                    .await
                    .expect("the budgets are never exhausted");
                latencies.push(started.elapsed().as_micros() as u64);
                r.settle(900);
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("a task"));
    }
    all.sort_unstable();
    (all.len() as u64, all)
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    sorted
        .get(((sorted.len().saturating_sub(1)) as f64 * p / 100.0).round() as usize)
        .copied()
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut redis = "redis://127.0.0.1:6379".to_owned();
    let mut seconds = 5.0;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--redis" => redis = args.next().expect("--redis URL"),
            "--seconds" => seconds = args.next().expect("--seconds S").parse().expect("a number"),
            other => {
                panic!("unknown argument {other}; usage: limit_checks [--redis URL] [--seconds S]")
            }
        }
    }
    for concurrency in [1, 32] {
        for (name, backend) in [
            ("local", LimitBackend::Local),
            ("redis", LimitBackend::Redis),
        ] {
            let limits = Limits::new(&config(backend, &redis)).expect("limits");
            // Warm up: the connection and the script's first load.
            run(limits.clone(), 1, 0.2).await;
            let before = warden_proxy::openai::redis_unavailable_total();
            let (checks, lat) = run(limits, concurrency, seconds).await;
            assert_eq!(
                warden_proxy::openai::redis_unavailable_total(),
                before,
                "Redis failed during the run"
            );
            println!(
                "{}",
                json!({
                    "backend": name,
                    "concurrency": concurrency,
                    "checks": checks,
                    "checks_per_s": (checks as f64 / seconds).round(),
                    "p50_us": pct(&lat, 50.0),
                    "p99_us": pct(&lat, 99.0),
                })
            );
        }
    }
}
