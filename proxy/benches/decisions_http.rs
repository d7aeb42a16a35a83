//! Propose + inscribe round trips over HTTP on loopback, against the real router, store,
//! policy engine and durable ledger, with a trivial GET in the same run as the baseline.
//!
//! `cargo bench -p warden-proxy --bench decisions_http` (set `PAIRS` and `CLIENTS`). Prints
//! throughput and latency percentiles; the figures go in BENCHMARKS.md.

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: std::net::SocketAddr) -> Sender {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

async fn call(s: &mut Sender, method: &str, path: &str, key: &str, body: Option<Value>) -> Value {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "bench")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )))
        .unwrap();
    s.ready().await.unwrap();
    let resp = s.send_request(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(
        status.is_success(),
        "{status}: {}",
        String::from_utf8_lossy(&bytes)
    );
    serde_json::from_slice(&bytes).unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn report(name: &str, mut lat: Vec<Duration>, wall: Duration) {
    lat.sort();
    println!(
        "{name:<32} {:>6} ops  {:>8.0} ops/s  p50 {:>8.1?}  p99 {:>8.1?}  max {:>8.1?}",
        lat.len(),
        lat.len() as f64 / wall.as_secs_f64(),
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        lat[lat.len() - 1]
    );
}

fn main() {
    let pairs: usize = std::env::var("PAIRS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(warden_governance::Store::open(dir.path()).unwrap());
        let admin = store.bootstrap().unwrap().unwrap().key;
        let ledger = Arc::new(
            warden_ledger::Ledger::open(warden_ledger::LedgerOptions {
                dir: dir.path().join("ledger"),
                postgres: None,
                signing_key: dir.path().join("keys/ledger.key"),
                origin: "bench".into(),
                batch_max: 4096,
                batch_wait: Duration::ZERO,
            })
            .unwrap(),
        );
        let policies = Arc::new(warden_policy::LivePolicySet::new(
            warden_policy::PolicySet::with_default_pack(),
        ));
        let decisions = Arc::new(warden_governance::Decisions::new(
            store.clone(),
            ledger.clone(),
            policies,
        ));
        let state = Arc::new(warden_proxy::ApiState {
            limits: Arc::new(warden_proxy::RequestLimits::per_minute(1_000_000)),
            store: store.clone(),
            keys: Arc::new(warden_governance::KeyCache::new(store.clone())),
            ledger: ledger.clone(),
            decisions: decisions.clone(),
            webhooks: Arc::new(warden_governance::Webhooks::new(
                store,
                decisions.events().clone(),
                Default::default(),
                Default::default(),
            )),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(axum::serve(listener, warden_proxy::router(state)).into_future());

        let mut s = connect(addr).await;
        let intent = call(&mut s, "POST", "/v1/register-intent", &admin,
            Some(json!({"agency_id": "bench", "description": "bench"}))).await["intent_id"].clone();

        // Baseline: the cheapest authenticated route, same client, same connection handling.
        let mut lat = Vec::new();
        let t = Instant::now();
        for _ in 0..pairs {
            let start = Instant::now();
            call(&mut s, "GET", "/v1/escalations?status=open", &admin, None).await;
            lat.push(start.elapsed());
        }
        report("baseline GET /v1/escalations", lat, t.elapsed());

        for clients in [1usize, 16] {
            let t = Instant::now();
            let mut tasks = Vec::new();
            for c in 0..clients {
                let (admin, intent) = (admin.clone(), intent.clone());
                tasks.push(tokio::spawn(async move {
                    let mut s = connect(addr).await;
                    let mut lat = Vec::new();
                    for i in 0..pairs / clients {
                        let payload = json!({"change_pct": (i % 25), "confidence": 0.91, "sample_size": 1200 + c});
                        let start = Instant::now();
                        let p = call(&mut s, "POST", "/v1/decisions/propose", &admin, Some(json!({
                            "intent_id": intent, "decision_type": "budget_change", "payload": payload, "agent_id": "agt"}))).await;
                        call(&mut s, "POST", "/v1/decisions/inscribe", &admin, Some(json!({
                            "intent_id": intent, "decision_node_id": p["decision_node_id"], "verdict": p["verdict"],
                            "payload": payload, "agent_id": "agt", "agency_id": "bench"}))).await;
                        lat.push(start.elapsed());
                    }
                    lat
                }));
            }
            let mut lat = Vec::new();
            for t in tasks {
                lat.extend(t.await.unwrap());
            }
            report(&format!("propose+inscribe, {clients} client(s)"), lat, t.elapsed());
        }
        ledger.shutdown().await;
    });
}
