//! What the MCP proxy adds to a `tools/call`: the same call of the `upstream` example's `echo`
//! tool, over streamable HTTP on loopback, straight to the upstream and through Warden's `/mcp`
//! (authentication, guardians on arguments and result, policy `mcp.tool_call`, ledger record),
//! interleaved so both see the same machine. Prints p50/p90/p99 of each and the added latency.
//!
//! `cargo bench -p warden-mcp --bench proxy_overhead` (CALLS=N to change the sample, 3000;
//! SLOW_MS=N for the slow tool's time, 5). Three runs: the record awaited until sequenced
//! (`ledger.durability: batched`) and until durable (`sync`) against a tool that answers at
//! once, where the fsync is longer than the upstream's answer and so on the answer's path; and
//! `sync` against a tool that takes SLOW_MS, as real tools do, where the fsync runs while the
//! upstream works.

#[path = "../examples/upstream.rs"]
mod upstream;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{RoleClient, ServiceExt};
use serde_json::json;
use warden_governance::{Decisions, Scope, Store};
use warden_ledger::{Ledger, LedgerOptions};
use warden_mcp::proxy::{
    EscalationMode, Federation, ProxyOptions, UpstreamSpec, UpstreamTransport,
};
use warden_policy::{LivePolicySet, PolicySet};

type Client = RunningService<RoleClient, ()>;

async fn client(url: String, key: Option<String>) -> Client {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url);
    if let Some(k) = key {
        config = config.auth_header(k);
    }
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .unwrap()
}

async fn once(c: &Client, name: &str, delay_ms: u64) -> Duration {
    let args = json!({"text": "the quarterly numbers are in", "delay_ms": delay_ms});
    let started = Instant::now();
    let r = c
        .call_tool(
            CallToolRequestParams::new(name.to_owned())
                .with_arguments(args.as_object().unwrap().clone()),
        )
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(r.is_error, Some(false), "{r:?}");
    took
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

async fn run(durable: bool, delay_ms: u64, calls: usize) {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = listener.local_addr().unwrap();
    tokio::spawn(upstream::serve_http(listener));

    let ledger = Arc::new(
        Ledger::open(LedgerOptions {
            dir: dir.path().join("ledger"),
            postgres: None,
            signing_key: dir.path().join("keys/ledger.key"),
            origin: "bench".into(),
            batch_max: 4096,
            batch_wait: Duration::ZERO,
        })
        .unwrap(),
    );
    let store = Arc::new(Store::open(dir.path()).unwrap());
    store.ensure_tenant("default").unwrap();
    let key = store
        .create_key("default", &[Scope::Mcp], None)
        .unwrap()
        .key;
    let policies = Arc::new(LivePolicySet::new(PolicySet::with_default_pack()));
    let guardians = Arc::new(warden_guardians::Guardians::new(Default::default()).unwrap());
    let federation = Federation::start(
        vec![UpstreamSpec {
            name: "tools".into(),
            transport: UpstreamTransport::Http {
                url: format!("http://{up}/mcp"),
                headers: vec![],
            },
        }],
        guardians,
        policies.clone(),
        ledger.clone(),
        ProxyOptions {
            escalation: EscalationMode::Fail,
            call_timeout: Duration::from_secs(10),
            durable,
            fail_open: false,
        },
    )
    .unwrap();
    let decisions = Arc::new(Decisions::new(
        store.clone(),
        ledger.clone(),
        policies.clone(),
    ));
    let core = Arc::new(warden_mcp::Core {
        webhooks: Arc::new(warden_governance::Webhooks::new(
            store.clone(),
            decisions.events().clone(),
            Default::default(),
            Default::default(),
        )),
        decisions,
        ledger: ledger.clone(),
        policies,
        federation: Some(federation),
        gloxi: Arc::new(warden_governance::gloxi::Gloxi::with_lazy_guardians(
            store.clone(),
            Default::default(),
        )),
    });
    let keys = Arc::new(warden_governance::KeyCache::new(store));
    let app = warden_mcp::http::router(core, keys, Default::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let warden = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let direct = client(format!("http://{up}/mcp"), None).await;
    let proxied = client(format!("http://{warden}/mcp"), Some(key)).await;
    for _ in 0..200 {
        once(&direct, "echo", delay_ms).await;
        once(&proxied, "tools__echo", delay_ms).await;
    }
    let (mut d, mut p) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
    for _ in 0..calls {
        d.push(once(&direct, "echo", delay_ms).await);
        p.push(once(&proxied, "tools__echo", delay_ms).await);
    }
    d.sort();
    p.sort();
    let mode = if durable {
        "sync (durable)"
    } else {
        "batched (sequenced)"
    };
    println!("ledger.durability {mode}, tool answers after {delay_ms} ms, {calls} calls each:");
    for (name, q) in [("p50", 0.50), ("p90", 0.90), ("p99", 0.99)] {
        let (a, b) = (pct(&d, q), pct(&p, q));
        println!(
            "  {name}: direct {:>8.1} us   via Warden {:>8.1} us   added {:>8.1} us",
            us(a),
            us(b),
            us(b) - us(a)
        );
    }
    let _ = direct.cancel().await;
    let _ = proxied.cancel().await;
    ledger.shutdown().await;
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // `cargo test --benches` runs this with --bench absent: keep that quick.
    let calls = if std::env::args().any(|a| a == "--bench") {
        std::env::var("CALLS")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(3000)
    } else {
        50
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let slow = std::env::var("SLOW_MS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(5);
    rt.block_on(run(false, 0, calls));
    rt.block_on(run(true, 0, calls));
    rt.block_on(run(true, slow, calls));
}
