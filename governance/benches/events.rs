//! Events persisted per second, and webhook deliveries per second to a receiver on loopback,
//! against baselines from the same run: the same receiver posted to directly (plain reqwest,
//! no store, no signing) at the same concurrency.
//!
//! `cargo bench -p warden-governance --bench events [-- EVENTS]` (default 5,000 events). With
//! `WARDEN_BENCH_POSTGRES_URL` set (e.g. `postgres://postgres@127.0.0.1:5432/test`), the same
//! phases run again on PostgreSQL, in a schema of their own that is dropped at the end.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use warden_governance::{
    Dispatcher, DispatcherOptions, Events, NewEvent, Principal, RegisterWebhook, Scope, Store,
    TargetPolicy, WebhookSecrets, Webhooks,
};

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let n: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(5_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    rt.block_on(run(n, store, "SQLite store (WAL, synchronous=NORMAL)"));
    if let Ok(url) = std::env::var("WARDEN_BENCH_POSTGRES_URL") {
        std::env::set_var(warden_pg::testing::ENV, url);
        let db = warden_pg::testing::TestDb::from_env("events bench").unwrap();
        let pg = warden_pg::Pg::connect(&db.url).unwrap();
        let store = Arc::new(Store::postgres(pg).unwrap());
        rt.block_on(run(n, store, "PostgreSQL store (same machine)"));
    }
}

async fn receiver() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |_body: axum::body::Bytes| {
            let c = c.clone();
            async move {
                c.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, count)
}

fn event(i: usize) -> NewEvent {
    let mut e = NewEvent::of(
        "risk_score.changed",
        "agents",
        &format!("agt-{i}"),
        "recomputed",
        json!({"agent": i, "model": "gpt-4o-mini", "drivers": ["pii", "tools"]}),
    );
    e.score_before = Some(40.0);
    e.score_after = Some(71.0);
    e
}

async fn run(n: usize, store: Arc<Store>, engine: &str) {
    store.ensure_tenant("bench").unwrap();
    let events = Arc::new(Events::new(store.clone()));
    println!("events: {n} per phase, 2 tokio workers, {engine}");

    // 1. Persisting, no webhook subscribed.
    let t = Instant::now();
    for i in 0..n {
        events.emit("bench", event(i)).unwrap();
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    println!("persist, no webhook:          {rate:>9.0} events/s");

    // 2. Persisting with one subscribed webhook (an event and its delivery row per commit).
    let (addr, received) = receiver().await;
    let mut secrets = WebhookSecrets::default();
    secrets
        .insert("bench", "a bench secret of 32 bytes......")
        .unwrap();
    let targets = TargetPolicy::new(vec![addr.to_string()]);
    let hooks = Webhooks::new(
        store.clone(),
        events.clone(),
        secrets.clone(),
        targets.clone(),
    );
    let admin = Principal {
        tenant: "bench".into(),
        key_id: "key_bench".into(),
        scopes: vec![Scope::Admin],
        agent: None,
    };
    hooks
        .register(
            &admin,
            RegisterWebhook {
                target_url: format!("http://{addr}/hook"),
                event_types: vec![],
                hmac_secret_alias: "bench".into(),
            },
        )
        .await
        .unwrap();
    let t = Instant::now();
    for i in 0..n {
        events.emit("bench", event(n + i)).unwrap();
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    println!("persist, one webhook:         {rate:>9.0} events/s");

    // 3. Delivering the n queued deliveries: signed, one POST each, outcome saved.
    for concurrency in [4usize, 16] {
        if concurrency != 4 {
            // Queue another n for this round.
            for i in 0..n {
                events.emit("bench", event(2 * n + i)).unwrap();
            }
        }
        let before = received.load(Ordering::Relaxed);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let dispatcher = Dispatcher::new(
            store.clone(),
            events.clone(),
            secrets.clone(),
            targets.clone(),
            DispatcherOptions {
                timeout: Duration::from_secs(10),
                max_attempts: 3,
                retry_base: Duration::from_millis(100),
                retry_max: Duration::from_secs(1),
                endpoint_concurrency: concurrency,
            },
        )
        .unwrap();
        let t = Instant::now();
        let task = dispatcher.spawn(stop_rx);
        while received.load(Ordering::Relaxed) - before < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert!(t.elapsed() < Duration::from_secs(600), "deliveries stalled");
        }
        let rate = n as f64 / t.elapsed().as_secs_f64();
        let _ = stop_tx.send(true);
        let _ = task.await;
        // Let the last outcomes be saved before the next round reads the queue.
        tokio::time::sleep(Duration::from_millis(200)).await;
        println!("deliver, concurrency {concurrency:>2}:      {rate:>9.0} deliveries/s");

        // Baseline: the same receiver, posted to directly at the same concurrency.
        let client = reqwest::Client::new();
        let url = format!("http://{addr}/hook");
        let body =
            serde_json::to_string(&json!({"type": "risk_score.changed", "data": {}})).unwrap();
        let t = Instant::now();
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (client, url, body, next) =
                (client.clone(), url.clone(), body.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    client.post(&url).body(body.clone()).send().await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let rate = n as f64 / t.elapsed().as_secs_f64();
        println!("baseline POST, concurrency {concurrency:>2}: {rate:>9.0} requests/s");
    }
}
