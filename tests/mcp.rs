//! The MCP server with the real binary and rmcp's own client: streamable HTTP at `/mcp`, stdio
//! (`warden mcp`) and the stdio-to-HTTP relay (`warden mcp --connect`). Tool schemas are checked
//! against the REST API's OpenAPI document, so the two surfaces cannot drift.

mod common;

use std::collections::BTreeSet;

use common::*;
use rmcp::model::{CallToolRequestParams, CallToolResult, JsonObject, ReadResourceRequestParams};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Value};

type Client = RunningService<RoleClient, ()>;

fn tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

async fn http_client(addr: std::net::SocketAddr, key: &str) -> Client {
    tls();
    let config = StreamableHttpClientTransportConfig::with_uri(format!("http://{addr}/mcp"))
        .auth_header(key.to_owned());
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .expect("the MCP client connects")
}

fn args(v: Value) -> JsonObject {
    v.as_object().unwrap().clone()
}

async fn call(c: &Client, name: &str, arguments: Value) -> CallToolResult {
    c.call_tool(CallToolRequestParams::new(name.to_owned()).with_arguments(args(arguments)))
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The structured answer of a successful call.
fn ok(r: CallToolResult) -> Value {
    assert_eq!(r.is_error, Some(false), "{r:?}");
    r.structured_content.expect("structured content")
}

/// The REST error body of a refused call.
fn refused(r: CallToolResult) -> Value {
    assert_eq!(r.is_error, Some(true), "{r:?}");
    let text = r.content[0].as_text().expect("text content").text.clone();
    serde_json::from_str(&text).unwrap()
}

const TOOLS: [&str; 21] = [
    "register_intent",
    "propose_decision",
    "inscribe_decision",
    "evaluate_action",
    "get_forensics",
    "list_escalations",
    "get_escalation",
    "resolve_escalation",
    "register_agent",
    "get_agent",
    "verify_lineage",
    "get_client_summary",
    "get_governance_efficiency",
    "list_governance_events",
    "publish_governance_event",
    "register_webhook",
    "list_webhooks",
    "delete_webhook",
    "list_dead_letters",
    "replay_dead_letters",
    "ask_gloxi",
];

/// Replaces `$ref`s into the OpenAPI components with their schemas.
fn inline(v: &Value, components: &Value) -> Value {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get("$ref") {
                let name = r.rsplit('/').next().unwrap();
                return inline(&components[name], components);
            }
            Value::Object(
                o.iter()
                    .map(|(k, v)| (k.clone(), inline(v, components)))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(|v| inline(v, components)).collect()),
        other => other.clone(),
    }
}

/// Runs register_intent -> propose_decision -> inscribe_decision and checks the answers.
async fn three_steps(c: &Client) -> Value {
    let intent = ok(call(
        c,
        "register_intent",
        json!({"agency_id": "agency-1", "description": "Optimise Q3 ad spend"}),
    )
    .await);
    let intent_id = intent["intent_id"].as_str().unwrap().to_owned();
    let payload = json!({"change_pct": 20, "confidence": 0.91, "sample_size": 1200});
    let proposal = ok(call(
        c,
        "propose_decision",
        json!({"intent_id": intent_id, "decision_type": "budget_change", "payload": payload, "agent_id": "agt-7"}),
    )
    .await);
    assert_eq!(proposal["verdict"], "ALLOW", "{proposal}");
    let inscribed = ok(call(
        c,
        "inscribe_decision",
        json!({"intent_id": intent_id, "decision_node_id": proposal["decision_node_id"],
            "verdict": "ALLOW", "payload": payload, "agent_id": "agt-7", "agency_id": "agency-1"}),
    )
    .await);
    assert_eq!(inscribed["verdict"], "ALLOW");
    assert!(inscribed["record_hash"].as_str().unwrap().len() == 64);
    inscribed
}

#[tokio::test(flavor = "multi_thread")]
async fn http_tools_mirror_rest_and_govern_the_three_steps() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _admin) = server_with_admin_key(dir.path());
    let key = create_key(dir.path(), "default", "mcp,admin");
    let c = http_client(server.api, &key).await;

    let tools = c.list_all_tools().await.unwrap();
    let names: BTreeSet<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, TOOLS.into_iter().collect());

    // Each body tool's input schema is the REST request's schema from /openapi.json.
    let (status, openapi) = get(server.api, "/openapi.json");
    assert_eq!(status, 200);
    let openapi: Value = serde_json::from_str(&openapi).unwrap();
    let components = &openapi["components"]["schemas"];
    for (tool, rest) in [
        ("register_intent", "RegisterIntent"),
        ("propose_decision", "Propose"),
        ("inscribe_decision", "Inscribe"),
        ("evaluate_action", "Evaluate"),
        ("register_agent", "RegisterAgent"),
        ("publish_governance_event", "PublishEvent"),
        ("register_webhook", "RegisterWebhook"),
        ("replay_dead_letters", "Replay"),
    ] {
        let t = tools.iter().find(|t| t.name == tool).unwrap();
        assert_eq!(
            Value::Object((*t.input_schema).clone()),
            inline(&components[rest], components),
            "{tool} drifted from {rest}"
        );
        let a = t.annotations.as_ref().unwrap();
        assert_eq!(a.read_only_hint, Some(false), "{tool}");
    }
    let forensics = tools.iter().find(|t| t.name == "get_forensics").unwrap();
    assert_eq!(
        forensics.annotations.as_ref().unwrap().read_only_hint,
        Some(true)
    );
    assert_eq!(
        Value::Object((**forensics.output_schema.as_ref().unwrap()).clone()),
        inline(&components["Forensics"], components)
    );

    let inscribed = three_steps(&c).await;
    // The proposal is in the event stream, as REST shows it.
    let events = ok(call(
        &c,
        "list_governance_events",
        json!({"event_type": "decision.made", "limit": 10}),
    )
    .await);
    assert_eq!(events["count"], 1, "{events}");
    assert_eq!(events["events"][0]["payload"]["verdict"], "ALLOW");
    let (_, rest) = get_as(
        server.api,
        "/v1/governance-events?event_type=decision.made",
        &key,
    );
    assert_eq!(rest["events"], events["events"]);
    let published = ok(call(
        &c,
        "publish_governance_event",
        json!({"event_type": "risk_score.changed", "source_table": "agents", "source_id": "agt-7",
               "trigger_reason": "recomputed", "score_before": 10, "score_after": 30,
               "idempotency_key": "mcp-1"}),
    )
    .await);
    assert_eq!(published["created"], true);
    let again = ok(call(
        &c,
        "publish_governance_event",
        json!({"event_type": "risk_score.changed", "source_table": "agents", "source_id": "agt-7",
               "trigger_reason": "recomputed", "idempotency_key": "mcp-1"}),
    )
    .await);
    assert_eq!(again["created"], false);
    assert_eq!(again["event"]["id"], published["event"]["id"]);
    let e = refused(call(&c, "list_governance_events", json!({"limit": 500})).await);
    assert_eq!(e["field"], "limit", "{e}");
    // Webhooks: the same checks as REST (no secret is configured here, and internal targets
    // are refused).
    let e = refused(
        call(
            &c,
            "register_webhook",
            json!({"target_url": "https://169.254.169.254/latest", "hmac_secret_alias": "primary"}),
        )
        .await,
    );
    assert_eq!(e["field"], "hmac_secret_alias", "{e}");
    assert_eq!(
        ok(call(&c, "list_webhooks", json!({})).await)["webhooks"],
        json!([])
    );
    assert_eq!(
        ok(call(&c, "list_dead_letters", json!({})).await)["dead_letters"],
        json!([])
    );
    let e = refused(call(&c, "delete_webhook", json!({"webhook_id": "whk_none"})).await);
    assert_eq!(e["code"], "not_found", "{e}");
    let e = refused(
        call(
            &c,
            "replay_dead_letters",
            json!({"delivery_ids": ["msg_none"]}),
        )
        .await,
    );
    assert_eq!(e["code"], "not_found", "{e}");
    assert_eq!(
        ok(call(&c, "replay_dead_letters", json!({})).await)["replayed"],
        0
    );
    let decision_id = inscribed["decision_id"].as_str().unwrap();
    let f = ok(call(&c, "get_forensics", json!({"decision_id": decision_id})).await);
    assert_eq!(f["record_hash"], inscribed["record_hash"]);
    // The same record through REST.
    let (status, rest) = get_as(
        server.api,
        &format!("/v1/decisions/{decision_id}/forensics"),
        &key,
    );
    assert_eq!(status, 200, "{rest}");
    assert_eq!(rest["record_hash"], f["record_hash"]);
    let lineage = ok(call(&c, "verify_lineage", json!({"lineage_id": decision_id})).await);
    assert_eq!(lineage["anchored"], true);

    // Refusals carry REST's codes.
    let e = refused(
        call(
            &c,
            "propose_decision",
            json!({"intent_id": "int_nope", "decision_type": "x", "payload": {}, "agent_id": "a"}),
        )
        .await,
    );
    assert_eq!(e["code"], "not_found", "{e}");
    let e = refused(
        call(
            &c,
            "register_agent",
            json!({"name": "a", "model": "m", "temperature": "hot"}),
        )
        .await,
    );
    assert_eq!(
        (e["code"].as_str(), e["field"].as_str()),
        (Some("invalid_request"), Some("temperature"))
    );
    let e = refused(call(&c, "register_intent", json!({"agency_id": "a"})).await);
    assert!(
        e["message"].as_str().unwrap().contains("description"),
        "{e}"
    );
    let e = refused(
        call(
            &c,
            "get_escalation",
            json!({"thread_id": "esc_x", "wait_seconds": 61}),
        )
        .await,
    );
    assert_eq!(e["field"], "wait_seconds");
    // An unknown tool is a protocol error, not a tool result.
    let err = c
        .call_tool(CallToolRequestParams::new("no_such_tool"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown tool"), "{err}");

    // Resources: the checkpoint and key a client needs to verify receipts.
    let cp = c
        .read_resource(ReadResourceRequestParams::new("warden://ledger/checkpoint"))
        .await
        .unwrap();
    let text = serde_json::to_value(&cp.contents[0]).unwrap()["text"]
        .as_str()
        .unwrap()
        .to_owned();
    let cp: Value = serde_json::from_str(&text).unwrap();
    assert!(cp["tree_size"].as_u64().unwrap() >= 1, "{cp}");
    let packs = c
        .read_resource(ReadResourceRequestParams::new("warden://policy/packs"))
        .await
        .unwrap();
    assert!(serde_json::to_string(&packs)
        .unwrap()
        .contains("policy_hash"));
    c.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_needs_the_mcp_scope_and_the_operation_scope() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _admin) = server_with_admin_key(dir.path());
    // Without the mcp scope: 403 in REST's error shape; without a key: 401.
    let rest_only = create_key(dir.path(), "default", "admin");
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let headers = |key: Option<&str>| {
        let mut h = vec![
            ("Content-Type", "application/json".to_owned()),
            ("Accept", "application/json, text/event-stream".to_owned()),
        ];
        if let Some(k) = key {
            h.push(("Authorization", format!("Bearer {k}")));
        }
        h
    };
    let send = |key: Option<&str>, body: &[u8]| {
        let h = headers(key);
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        http_full(server.api, "POST", "/mcp", &h, body)
    };
    let (status, _, body) = send(None, init.to_string().as_bytes());
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("unauthorized")),
        "{body}"
    );
    let (status, _, body) = send(Some("wdn_not_a_key"), init.to_string().as_bytes());
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("unauthorized")),
        "{body}"
    );
    let (status, _, body) = send(Some(&rest_only), init.to_string().as_bytes());
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );

    // mcp without write: the endpoint opens, the write tools are refused as over REST.
    let reader = create_key(dir.path(), "default", "mcp,read");
    let c = http_client(server.api, &reader).await;
    let e = refused(
        call(
            &c,
            "register_intent",
            json!({"agency_id": "a", "description": "d"}),
        )
        .await,
    );
    assert_eq!(e["code"], "forbidden", "{e}");
    let listed = ok(call(&c, "list_escalations", json!({})).await);
    assert_eq!(listed["escalations"], json!([]));
    c.cancel().await.unwrap();

    // Bad input over the wire: not JSON, an oversized message, an unknown method.
    let mcp = create_key(dir.path(), "default", "mcp,write");
    let (status, _, _) = send(Some(&mcp), b"{not json");
    assert!((400..500).contains(&status), "{status}");
    let big = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"x": "a".repeat(2 << 20)}});
    let (status, _, _) = send(Some(&mcp), big.to_string().as_bytes());
    assert_eq!(status, 413);
    let (status, head, _) = send(Some(&mcp), init.to_string().as_bytes());
    assert_eq!(status, 200);
    let session = header(&head, "mcp-session-id").unwrap().to_owned();
    let mut h = headers(Some(&mcp));
    h.push(("Mcp-Session-Id", session));
    h.push(("MCP-Protocol-Version", "2025-06-18".into()));
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let started = std::time::Instant::now();
    let (status, _, _) = http_full(
        server.api,
        "POST",
        "/mcp",
        &h,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(status, 202);
    let (status, raw) = raw_post(
        server.api,
        &h,
        json!({"jsonrpc": "2.0", "id": 2, "method": "server/no_such_method"}),
    );
    assert_eq!(status, 200, "{raw}");
    assert!(raw.contains("-32601"), "{raw}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // The server is still up.
    assert_eq!(get(server.admin, "/health").0, 200);
}

/// A POST whose answer may be an SSE stream: status and the raw body.
fn raw_post(addr: std::net::SocketAddr, headers: &[(&str, &str)], body: Value) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let body = body.to_string();
    write!(
        s,
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, resp)
}

#[tokio::test(flavor = "multi_thread")]
async fn stdio_serves_the_data_dir_and_the_relay_reaches_a_running_warden() {
    let dir = tempfile::tempdir().unwrap();
    // `warden mcp` on a data directory: the local owner, as an admin of tenant default.
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_warden"));
    cmd.env_remove("WARDEN_CONFIG")
        .arg("--data-dir")
        .arg(dir.path().join("local"))
        .arg("mcp");
    let c = ().serve(TokioChildProcess::new(cmd).unwrap()).await.unwrap();
    let tools = c.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), TOOLS.len());
    three_steps(&c).await;
    let e = refused(call(&c, "get_forensics", json!({"decision_id": "dec_missing"})).await);
    assert_eq!(e["code"], "not_found");
    c.cancel().await.unwrap();

    // `warden mcp --connect`: the same tools, relayed to a running server's /mcp.
    let served = dir.path().join("served");
    let (server, _admin) = server_with_admin_key(&served);
    let key = create_key(&served, "default", "mcp,admin");
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_warden"));
    cmd.env_remove("WARDEN_CONFIG").args([
        "mcp",
        "--connect",
        &format!("http://{}/mcp", server.api),
        "--key",
        &key,
    ]);
    let c = ().serve(TokioChildProcess::new(cmd).unwrap()).await.unwrap();
    assert_eq!(c.list_all_tools().await.unwrap().len(), TOOLS.len());
    let inscribed = three_steps(&c).await;
    // Inscribed in the served instance's ledger.
    let (status, f) = get_as(
        server.api,
        &format!(
            "/v1/decisions/{}/forensics",
            inscribed["decision_id"].as_str().unwrap()
        ),
        &key,
    );
    assert_eq!(status, 200, "{f}");
    c.cancel().await.unwrap();
}

/// Garbage on stdio: a line that is not JSON is ignored (as rmcp and the other official MCP SDKs
/// do, so that two peers cannot answer each other's errors forever), JSON that is not a JSON-RPC
/// message gets -32600, an unknown method -32601; the server keeps answering.
#[test]
fn stdio_survives_bad_lines() {
    use std::io::{BufRead, BufReader, Write};
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
        .env_remove("WARDEN_CONFIG")
        .arg("--data-dir")
        .arg(dir.path())
        .arg("mcp")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"}}});
    let lines = [
        "not json at all".to_owned(),
        "{\"truncated\": ".to_owned(),
        init.to_string(),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string(),
        "{\"foo\": \"bar\"}".to_owned(),
        json!({"jsonrpc": "2.0", "id": 2, "method": "no/such_method"}).to_string(),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}).to_string(),
    ];
    for l in &lines {
        writeln!(stdin, "{l}").unwrap();
    }
    stdin.flush().unwrap();
    let mut answers = Vec::new();
    while answers.len() < 4 {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "stdout closed after {answers:?}"
        );
        answers.push(serde_json::from_str::<Value>(&line).unwrap());
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
    let by_id = |id: i64| answers.iter().find(|a| a["id"] == id).cloned();
    assert!(
        by_id(1).unwrap()["result"]["serverInfo"].is_object(),
        "{answers:?}"
    );
    assert!(
        answers
            .iter()
            .any(|a| a["id"].is_null() && a["error"]["code"] == -32600),
        "{answers:?}"
    );
    assert_eq!(by_id(2).unwrap()["error"]["code"], -32601, "{answers:?}");
    assert!(
        by_id(3).unwrap()["result"]["tools"]
            .as_array()
            .unwrap()
            .len()
            > 5
    );
}

/// `/mcp` counts against the key's `server.requests_per_minute` with the REST API: one
/// budget for both, so neither is a way around the other.
#[test]
fn mcp_and_rest_share_a_keys_request_budget() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = warden();
    cmd.env("WARDEN_SERVER__REQUESTS_PER_MINUTE", "3");
    let (server, _admin) = server_with_admin_key_cmd(cmd, dir.path());
    let key = create_key(dir.path(), "default", "mcp,read");
    let bearer = format!("Bearer {key}");
    let auth = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
    ];
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"}}})
    .to_string();
    let mcp = || http_full(server.api, "POST", "/mcp", &auth, init.as_bytes());
    for left in ["2", "1"] {
        let (status, head, _) = mcp();
        assert_eq!(status, 200, "{head}");
        assert_eq!(header(&head, "x-ratelimit-remaining"), Some(left), "{head}");
    }
    let (status, _, _) = http_full(server.api, "GET", "/v1/escalations", &auth[..1], b"");
    assert_eq!(status, 200);
    let (status, head, body) = mcp();
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("rate_limited")),
        "{body}"
    );
    assert!(header(&head, "retry-after").is_some(), "{head}");
    let (status, _, _) = http_full(server.api, "GET", "/v1/escalations", &auth[..1], b"");
    assert_eq!(status, 429);
}
