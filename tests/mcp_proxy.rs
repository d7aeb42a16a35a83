//! The MCP proxy with the real binary: an HTTP upstream (the `upstream` example, in this
//! process), a stdio upstream (`warden mcp` on another data directory) and one that is down.
//! One call allowed, one redacted, one blocked by policy, one blocked as untrusted output, one
//! timed out, one escalated and approved through the REST Decision Desk; each inscribed.

mod common;

#[path = "../mcp-server/examples/upstream.rs"]
mod upstream;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, NumberOrString, ProgressNotificationParam,
    ProgressToken, RequestMetaObject,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{json, Value};

/// Counts the progress notifications a held call sends.
#[derive(Clone, Default)]
struct Progress(Arc<AtomicUsize>);

impl ClientHandler for Progress {
    async fn on_progress(
        &self,
        _params: ProgressNotificationParam,
        _ctx: NotificationContext<RoleClient>,
    ) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

type Client = RunningService<RoleClient, Progress>;

async fn call(c: &Client, name: &str, arguments: Value) -> CallToolResult {
    c.call_tool(
        CallToolRequestParams::new(name.to_owned())
            .with_arguments(arguments.as_object().unwrap().clone()),
    )
    .await
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn text(r: &CallToolResult) -> String {
    r.content[0].as_text().expect("text").text.clone()
}

fn refused(r: &CallToolResult) -> Value {
    assert_eq!(r.is_error, Some(true), "{r:?}");
    serde_json::from_str(&text(r)).unwrap()
}

/// A running Warden with the `upstream` example behind `/mcp` as `tools` (plus `extra` YAML
/// under `mcp:`), a key with `mcp,write`, and a connected client.
struct Setup {
    server: Server,
    admin: String,
    data: std::path::PathBuf,
    client: Client,
    progress: Progress,
    _dir: tempfile::TempDir,
}

async fn setup(extra: &str) -> Setup {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = listener.local_addr().unwrap();
    tokio::spawn(upstream::serve_http(listener));

    let dir = tempfile::tempdir().unwrap();
    let policies = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policies");
    let config = dir.path().join("warden.yaml");
    std::fs::write(
        &config,
        format!(
            "policy:\n  dir: {policies}\nmcp:\n{extra}  call_timeout: 2s\n  escalation_timeout: 30s\n  upstreams:\n    - name: tools\n      url: http://{up}/mcp\n    - name: gov\n      command: {bin}\n      args: [--data-dir, {gov}, mcp]\n    - name: dead\n      url: http://127.0.0.1:9/mcp\n",
            bin = env!("CARGO_BIN_EXE_warden"),
            gov = dir.path().join("gov").display(),
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let mut cmd = warden();
    cmd.arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&data);
    let server = Server::start(&mut cmd);
    let mut admin = String::new();
    while !admin.starts_with("wdn_") {
        admin = server
            .stdout
            .recv_timeout(Duration::from_secs(10))
            .unwrap()
            .trim()
            .to_owned();
    }
    let key = create_key(&data, "default", "mcp,write");
    let progress = Progress::default();
    let config =
        StreamableHttpClientTransportConfig::with_uri(format!("http://{}/mcp", server.api))
            .auth_header(key);
    let client = progress
        .clone()
        .serve(StreamableHttpClientTransport::from_config(config))
        .await
        .unwrap();
    Setup {
        server,
        admin,
        data,
        client,
        progress,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn proxied_calls_are_allowed_redacted_blocked_escalated_and_inscribed() {
    let Setup {
        server,
        admin,
        data,
        client: c,
        progress,
        _dir,
    } = setup("").await;

    // Federated tools, prefixed; the payments tool is hidden from this agent by policy; the
    // upstream that is down is left out and does not take the others with it.
    let names: Vec<String> = c
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.into_owned())
        .collect();
    for want in [
        "register_intent",
        "tools__echo",
        "tools__shell",
        "tools__send_email",
        "gov__register_intent",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    assert!(
        !names.iter().any(|n| n == "tools__payments.refund"),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.starts_with("dead__")), "{names:?}");

    // Allowed, with the ledger record's place in _meta.
    let r = call(&c, "tools__echo", json!({"text": "hello"})).await;
    assert_eq!(
        (r.is_error, text(&r).as_str()),
        (Some(false), "hello"),
        "{r:?}"
    );
    let meta = serde_json::to_value(r.meta.as_ref().unwrap()).unwrap();
    assert!(meta["warden/ledger"]["ledger_index"].is_u64(), "{meta}");

    // Redacted: the card in the result never reaches the agent.
    let r = call(&c, "tools__read_card", json!({})).await;
    assert_eq!(r.is_error, Some(false));
    assert!(
        text(&r).contains("[CREDIT_CARD]") && !text(&r).contains("4111"),
        "{r:?}"
    );

    // Blocked by policy, with its reason code.
    let e = refused(&call(&c, "tools__shell", json!({"command": "rm -rf /"})).await);
    assert_eq!(e["code"], "blocked", "{e}");
    assert_eq!(e["reason_codes"], json!(["DESTRUCTIVE_COMMAND"]));
    let r = call(&c, "tools__shell", json!({"command": "ls"})).await;
    assert_eq!(r.is_error, Some(false), "{r:?}");

    // Blocked as untrusted tool output (prompt injection).
    let e = refused(
        &call(
            &c,
            "tools__fetch_page",
            json!({"url": "https://example.com"}),
        )
        .await,
    );
    assert_eq!(e["code"], "blocked", "{e}");
    assert!(
        e["reason_codes"][0]
            .as_str()
            .unwrap()
            .starts_with("GUARDIAN_"),
        "{e}"
    );

    // An upstream that hangs: a timeout, and the proxy goes on.
    let started = std::time::Instant::now();
    let e = refused(&call(&c, "tools__hang", json!({})).await);
    assert_eq!(e["code"], "upstream_timeout", "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // A tool the upstream does not have; an upstream that is down.
    assert_eq!(
        refused(&call(&c, "tools__nope", json!({})).await)["code"],
        "not_found"
    );
    assert_eq!(
        refused(&call(&c, "dead__x", json!({})).await)["code"],
        "upstream_error"
    );

    // The stdio upstream (another Warden's governance tools).
    let r = call(
        &c,
        "gov__register_intent",
        json!({"agency_id": "a", "description": "via proxy"}),
    )
    .await;
    assert_eq!(r.is_error, Some(false), "{r:?}");

    // Escalated: held, with progress notifications, until approved through REST.
    let mut params = CallToolRequestParams::new("tools__send_email").with_arguments(
        json!({"recipient_count": 120, "subject": "Q3"})
            .as_object()
            .unwrap()
            .clone(),
    );
    params.meta = Some(RequestMetaObject::with_progress_token(ProgressToken(
        NumberOrString::String("p1".into()),
    )));
    let peer = c.peer().clone();
    let held = tokio::spawn(async move { peer.call_tool(params).await });
    let thread = loop {
        let (status, body) = get_as(server.api, "/v1/escalations?status=OPEN", &admin);
        assert_eq!(status, 200, "{body}");
        if let Some(t) = body["escalations"].as_array().unwrap().first() {
            assert_eq!(t["decision_type"], "mcp.tool_call");
            assert_eq!(t["reason_codes"], json!(["BULK_EMAIL"]));
            break t["thread_id"].as_str().unwrap().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        !held.is_finished(),
        "the call is held while the thread is open"
    );
    let (status, body) = post(
        server.api,
        &format!("/v1/escalations/{thread}/resolve"),
        &admin,
        json!({"resolution": "APPROVE", "resolved_by": "ops@example.com"}),
    );
    assert_eq!(status, 200, "{body}");
    let r = tokio::time::timeout(Duration::from_secs(10), held)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(text(&r), "sent to 120 recipients", "{r:?}");
    assert!(
        progress.0.load(Ordering::SeqCst) >= 1,
        "progress notifications while held"
    );

    // Every call is in the ledger, without the card number.
    let out = run(&data, &["ledger", "export"], "");
    let export = text_of(&out.stdout);
    let calls: Vec<Value> = export
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["record"]["kind"] == "mcp.tool_call" || v["kind"] == "mcp.tool_call")
        .collect();
    assert!(calls.len() >= 9, "{} records: {export}", calls.len());
    assert!(
        !export.contains("4111"),
        "the card number leaked into the ledger"
    );
    assert!(export.contains("\"outcome\":\"blocked\""), "{export}");
    assert!(export.contains("\"resolution\":\"APPROVE\""), "{export}");

    // The refusals and findings are governance events too.
    let (status, events) = get_as(server.api, "/v1/governance-events?limit=100", &admin);
    assert_eq!(status, 200);
    let of = |t: &str| -> Vec<Value> {
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event_type"] == t && e["source_table"] == "mcp_calls")
            .cloned()
            .collect()
    };
    let violations = of("policy.violation.detected");
    assert!(
        violations
            .iter()
            .any(|v| v["payload"]["reason_codes"] == json!(["DESTRUCTIVE_COMMAND"])),
        "{events}"
    );
    let fired = of("guardian.trigger.fired");
    assert!(
        fired.iter().any(|f| f["trigger_reason"]
            .as_str()
            .unwrap()
            .starts_with("tools__read_card")),
        "{events}"
    );
    assert!(!events.to_string().contains("4111"));
    c.cancel().await.unwrap();
}

fn text_of(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn escalation_can_fail_at_once_and_arguments_are_redacted_before_forwarding() {
    let Setup {
        server,
        admin,
        client: c,
        _dir,
        ..
    } = setup("  escalation: fail\n").await;

    // A card number in the arguments is redacted before the upstream sees it (echo returns
    // what it received).
    let r = call(
        &c,
        "tools__echo",
        json!({"text": "pay with 4111 1111 1111 1111"}),
    )
    .await;
    assert_eq!(text(&r), "pay with [CREDIT_CARD]", "{r:?}");

    // A hidden tool called anyway is still blocked by policy.
    let e = refused(&call(&c, "tools__payments.refund", json!({"amount": 10})).await);
    assert_eq!(e["code"], "blocked", "{e}");
    assert_eq!(e["reason_codes"], json!(["AGENT_NOT_AUTHORIZED"]));

    // escalation: fail refuses at once, naming the Decision Desk thread it opened.
    let started = std::time::Instant::now();
    let e = refused(&call(&c, "tools__send_email", json!({"recipient_count": 500})).await);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(e["code"], "escalation_pending", "{e}");
    assert_eq!(e["reason_codes"], json!(["BULK_EMAIL"]));
    let (status, body) = get_as(server.api, "/v1/escalations?status=OPEN", &admin);
    assert_eq!(status, 200, "{body}");
    let thread = body["escalations"][0]["thread_id"].as_str().unwrap();
    assert!(e["message"].as_str().unwrap().contains(thread), "{e}");
    c.cancel().await.unwrap();
}
