//! The MCP proxy with the real binary: an HTTP upstream (the `upstream` example, in this
//! process), a stdio upstream (`warden mcp` on another data directory), the same example again
//! as a stdio upstream (through `warden mcp --connect`, a stdio child relaying to it), and one
//! that is down. One call allowed, one redacted, one blocked by policy, one blocked as
//! untrusted output, one timed out, one escalated and approved through the REST Decision Desk;
//! each inscribed. Progress notifications and cancellations pass through to both kinds of
//! upstream.

mod common;

#[path = "../mcp-server/examples/upstream.rs"]
mod upstream;

use std::time::{Duration, Instant};

use common::*;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResult, ClientRequest, ServerResult,
};
use rmcp::service::{PeerRequestOptions, RequestHandle};
use rmcp::RoleClient;
use serde_json::{json, Value};

type Client = McpClient;

async fn call(c: &Client, name: &str, arguments: Value) -> CallToolResult {
    c.call_tool(
        CallToolRequestParams::new(name.to_owned())
            .with_arguments(arguments.as_object().unwrap().clone()),
    )
    .await
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Starts a call and returns its handle: its request id and the progress token rmcp put on it.
async fn start(c: &Client, name: &str, arguments: Value) -> RequestHandle<RoleClient> {
    let params = CallToolRequestParams::new(name.to_owned())
        .with_arguments(arguments.as_object().unwrap().clone());
    c.peer()
        .send_cancellable_request(
            ClientRequest::CallToolRequest(CallToolRequest::new(params)),
            PeerRequestOptions::no_options(),
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

async fn finish(handle: RequestHandle<RoleClient>) -> CallToolResult {
    match tokio::time::timeout(Duration::from_secs(30), handle.await_response())
        .await
        .expect("an answer within 30s")
        .unwrap()
    {
        ServerResult::CallToolResult(r) => r,
        other => panic!("not a tool result: {other:?}"),
    }
}

/// Polls `f` until it returns `Some`, for at most `limit`.
async fn eventually<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let started = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if started.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The payloads of the `kind` records (`mcp.tool_call`, `mcp.tool_result`) in the ledger of
/// `data`, with their ledger index as `_index`.
fn records_of(data: &std::path::Path, kind: &str) -> Vec<Value> {
    let out = run(data, &["ledger", "export"], "");
    text_of(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "record" && v["kind"] == kind)
        .map(|v| {
            let mut p = v["payload"].clone();
            p["_index"] = v["index"].clone();
            p
        })
        .collect()
}

fn tool_call_records(data: &std::path::Path) -> Vec<Value> {
    records_of(data, "mcp.tool_call")
}

fn text(r: &CallToolResult) -> String {
    r.content[0].as_text().expect("text").text.clone()
}

/// Whether the test card number (or a piece of it) shows. Looks for digit groups with their
/// separator, not a bare "4111": that also turns up inside record hashes and ids by chance.
fn shows_card(s: &str) -> bool {
    ["4111 1111", "1111 1111", "4111111111111111"]
        .iter()
        .any(|p| s.contains(p))
}

fn refused(r: &CallToolResult) -> Value {
    assert_eq!(r.is_error, Some(true), "{r:?}");
    serde_json::from_str(&text(r)).unwrap()
}

/// A running Warden with the `upstream` example behind `/mcp` as `tools` (HTTP) and `piped`
/// (stdio, through `warden mcp --connect`), plus `extra` YAML under `mcp:`, a key with
/// `mcp,write`, and a connected client.
struct Setup {
    server: Server,
    admin: String,
    data: std::path::PathBuf,
    client: Client,
    progress: Progress,
    upstream: upstream::Upstream,
    _dir: tempfile::TempDir,
}

async fn setup(extra: &str) -> Setup {
    setup_with(extra, "2s").await
}

async fn setup_with(extra: &str, call_timeout: &str) -> Setup {
    let policies = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policies");
    setup_full(
        &format!("policy:\n  dir: {policies}\n"),
        extra,
        call_timeout,
        "",
    )
    .await
}

/// As [`setup_with`], with `top` as the top-level YAML before `mcp:` (it must name a policy
/// directory) and `more` upstreams after the usual ones.
async fn setup_full(top: &str, extra: &str, call_timeout: &str, more: &str) -> Setup {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = listener.local_addr().unwrap();
    let upstream = upstream::Upstream::default();
    tokio::spawn(upstream::serve_http_as(listener, upstream.clone()));

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("warden.yaml");
    std::fs::write(
        &config,
        format!(
            "{top}mcp:\n{extra}  call_timeout: {call_timeout}\n  escalation_timeout: 30s\n  upstreams:\n    - name: tools\n      url: http://{up}/mcp\n    - name: gov\n      command: {bin}\n      args: [--data-dir, {gov}, mcp]\n    - name: piped\n      command: {bin}\n      args: [mcp, --connect, \"http://{up}/mcp\", --key, unused]\n    - name: dead\n      url: http://127.0.0.1:9/mcp\n{more}",
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
    let (client, progress) = mcp_client(server.api, &key).await;
    Setup {
        server,
        admin,
        data,
        client,
        progress,
        upstream,
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
        ..
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
        text(&r).contains("[CREDIT_CARD]") && !shows_card(&text(&r)),
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
    let handle = start(
        &c,
        "tools__send_email",
        json!({"recipient_count": 120, "subject": "Q3"}),
    )
    .await;
    let token = handle.progress_token.clone();
    let held = tokio::spawn(finish(handle));
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
        .unwrap();
    assert_eq!(text(&r), "sent to 120 recipients", "{r:?}");
    // Under the call's own token, rising.
    let ticks = progress.of(&token);
    assert!(!ticks.is_empty(), "progress notifications while held");
    assert!(
        ticks.windows(2).all(|w| w[0].0 < w[1].0),
        "progress must rise: {ticks:?}"
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
        !shows_card(&export),
        "the card number leaked into the ledger"
    );
    assert!(export.contains("\"outcome\":\"blocked\""), "{export}");
    assert!(export.contains("\"resolution\":\"APPROVE\""), "{export}");
    // A forwarded call has a second record, how it ended, pointing at the first.
    let results = records_of(&data, "mcp.tool_result");
    let read_card = results
        .iter()
        .find(|r| r["tool"] == "read_card")
        .expect("no mcp.tool_result for read_card");
    assert_eq!(read_card["outcome"], "answered", "{read_card}");
    assert_eq!(read_card["redacted"], true, "{read_card}");
    assert_eq!(
        read_card["result_findings"][0]["entity_type"],
        "CREDIT_CARD"
    );
    let asked = tool_call_records(&data)
        .into_iter()
        .find(|r| r["call_id"] == read_card["call_id"])
        .expect("no mcp.tool_call for read_card");
    assert_eq!(asked["outcome"], "forwarded", "{asked}");
    assert_eq!(read_card["request_index"], asked["_index"], "{read_card}");
    // A call refused before forwarding has no second record.
    let refused_calls: Vec<&Value> = calls
        .iter()
        .filter(|v| v["payload"]["outcome"] == "blocked")
        .collect();
    assert!(!refused_calls.is_empty());
    for c in refused_calls {
        let id = &c["payload"]["call_id"];
        assert!(!results.iter().any(|r| &r["call_id"] == id), "{c}");
    }

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
    assert!(!shows_card(&events.to_string()), "{events}");
    c.cancel().await.unwrap();
}

fn text_of(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A tool-call policy that cannot be evaluated (here: `>` against the upstream's name) refuses
/// the call under `fail_mode: closed` (the default) and lets it through under `open` (here
/// inherited from `proxy.fail_mode`), and the record says the check did not run.
#[tokio::test(flavor = "multi_thread")]
async fn fail_mode_decides_when_the_tool_call_policy_cannot_run() {
    let packs = tempfile::tempdir().unwrap();
    std::fs::write(
        packs.path().join("broken.yaml"),
        "pack: broken\nversion: 1.0.0\ndefault: allow\nrules:\n  - id: server-size\n    match:\n      decision_type: mcp.tool_call\n    when:\n      field: server\n      op: \">\"\n      value: 5\n    outcome: block\n    reason: NEVER\n",
    )
    .unwrap();
    let policy = format!("policy:\n  dir: {}\n", packs.path().display());
    let args = json!({"text": "hello"});

    let closed = setup_full(&policy, "", "2s", "").await;
    let e = refused(&call(&closed.client, "tools__echo", args.clone()).await);
    assert_eq!(e["code"], "policy_unavailable", "{e}");
    let rec = tool_call_records(&closed.data).pop().expect("a record");
    assert_eq!(rec["outcome"], "policy_unavailable", "{rec}");
    assert_eq!(
        rec["checks"],
        json!({"guardians": "ran", "policy": "failed_closed"})
    );
    assert!(records_of(&closed.data, "mcp.tool_result").is_empty());
    closed.client.cancel().await.unwrap();

    let open = setup_full(
        &format!("{policy}proxy:\n  fail_mode: open\n"),
        "",
        "2s",
        "",
    )
    .await;
    let r = call(&open.client, "tools__echo", args).await;
    assert_eq!(r.is_error, Some(false), "{r:?}");
    assert_eq!(text(&r), "hello");
    let rec = tool_call_records(&open.data).pop().expect("a record");
    assert_eq!(rec["outcome"], "forwarded", "{rec}");
    assert_eq!(rec["verdict"], "allow");
    assert_eq!(
        rec["checks"],
        json!({"guardians": "ran", "policy": "failed_open"})
    );
    let ledger = &r.meta.as_ref().unwrap()["warden/ledger"];
    assert_eq!(ledger["ledger_index"], rec["_index"], "{ledger}");
    open.client.cancel().await.unwrap();
}

/// The example policies, a 30 s call timeout, and one more upstream, `name`, at `listener`:
/// its connections wait in the kernel's backlog for as long as nothing accepts them.
async fn setup_backlogged(name: &str, listener: &std::net::TcpListener) -> Setup {
    let policies = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policies");
    setup_full(
        &format!("policy:\n  dir: {policies}\n"),
        "",
        "30s",
        &format!(
            "    - name: {name}\n      url: http://{}/mcp\n",
            listener.local_addr().unwrap()
        ),
    )
    .await
}

/// An upstream that accepts connections and never answers holds up `tools/list` for a few
/// seconds at most, not the 30 s call timeout; the others are listed, and calls to them work.
#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_that_never_answers_does_not_hold_up_tools_list() {
    // Connections complete in the kernel's backlog; nothing ever reads them.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let s = setup_backlogged("hung", &hung).await;
    for round in 0..2 {
        let started = std::time::Instant::now();
        let tools = s.client.list_all_tools().await.unwrap();
        let took = started.elapsed();
        assert!(took < Duration::from_secs(10), "round {round}: {took:?}");
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        assert!(names.contains(&"tools__echo"), "{names:?}");
        assert!(!names.iter().any(|n| n.starts_with("hung__")), "{names:?}");
    }
    let r = call(&s.client, "tools__echo", json!({"text": "still here"})).await;
    assert_eq!(text(&r), "still here");
    s.client.cancel().await.unwrap();
    drop(hung);
}

/// An upstream that was still connecting when the client listed tools is announced with
/// `notifications/tools/list_changed` once it connects, and its tools are listed then.
#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_that_connects_late_is_announced_with_list_changed() {
    // Connections wait in the kernel's backlog until the upstream starts serving.
    let late = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let s = setup_backlogged("late", &late).await;
    let names = |tools: Vec<rmcp::model::Tool>| -> Vec<String> {
        tools.into_iter().map(|t| t.name.into_owned()).collect()
    };
    let first = names(s.client.list_all_tools().await.unwrap());
    assert!(first.contains(&"tools__echo".to_owned()), "{first:?}");
    assert!(!first.iter().any(|n| n.starts_with("late__")), "{first:?}");

    late.set_nonblocking(true).unwrap();
    let late = tokio::net::TcpListener::from_std(late).unwrap();
    tokio::spawn(upstream::serve_http_as(late, upstream::Upstream::default()));
    // Another upstream that was slow to start may be announced first: list again on each
    // announcement until the late one is there.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        assert!(
            s.progress.tools_changed(left).await,
            "no tools/list_changed within 30 s of the upstream starting"
        );
        let now = names(s.client.list_all_tools().await.unwrap());
        if now.contains(&"late__echo".to_owned()) {
            break;
        }
    }
    s.client.cancel().await.unwrap();
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

#[tokio::test(flavor = "multi_thread")]
async fn progress_and_cancellations_pass_through_to_upstreams() {
    // A long call timeout: a cancellation seen upstream can only be the client's.
    let Setup {
        server,
        admin,
        data,
        client: c,
        progress,
        upstream,
        _dir,
    } = setup_with("", "60s").await;

    for up in ["tools", "piped"] {
        // The upstream's progress reaches the client under the client's own token.
        let handle = start(&c, &format!("{up}__progress"), json!({"steps": 4})).await;
        let token = handle.progress_token.clone();
        let r = finish(handle).await;
        assert_eq!(
            (r.is_error, text(&r).as_str()),
            (Some(false), "done in 4 steps"),
            "{up}: {r:?}"
        );
        let want: Vec<_> = (1..=4)
            .map(|i| (f64::from(i), Some(4.0), Some(format!("step {i} of 4"))))
            .collect();
        let got = eventually(Duration::from_secs(5), || {
            let got = progress.of(&token);
            (got.len() >= want.len()).then_some(got)
        })
        .await
        .unwrap_or_else(|| progress.of(&token));
        let mut sorted = got.clone();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert_eq!(sorted, want, "{up}: progress under {token:?}");

        // Cancelling a proxied call: the upstream is told, promptly, and stops.
        let label = format!("{up}-cancelled");
        let handle = start(
            &c,
            &format!("{up}__wait_for_cancel"),
            json!({"label": label}),
        )
        .await;
        assert!(
            eventually(Duration::from_secs(10), || upstream
                .started(&label)
                .then_some(()))
            .await
            .is_some(),
            "{up}: the call never reached the upstream"
        );
        let cancelled_at = Instant::now();
        handle
            .cancel(Some("the user gave up".into()))
            .await
            .unwrap();
        let seen = eventually(Duration::from_secs(10), || upstream.cancelled(&label)).await;
        assert!(
            cancelled_at.elapsed() < Duration::from_secs(5),
            "{up}: the upstream saw the cancellation after {:?}",
            cancelled_at.elapsed()
        );
        let reason = seen
            .unwrap_or_else(|| panic!("{up}: the upstream never saw the cancellation"))
            .unwrap_or_else(|| {
                panic!("{up}: the upstream stopped without notifications/cancelled")
            });
        assert!(reason.contains("cancelled by the client"), "{up}: {reason}");

        // The ledger says the call was forwarded, then that the client cancelled it and that
        // the upstream was told.
        let record = eventually(Duration::from_secs(10), || {
            records_of(&data, "mcp.tool_result")
                .into_iter()
                .find(|r| r["server"] == up && r["tool"] == "wait_for_cancel")
        })
        .await
        .unwrap_or_else(|| panic!("{up}: no record of the cancelled call"));
        let forwarded = tool_call_records(&data)
            .into_iter()
            .find(|r| r["call_id"] == record["call_id"])
            .unwrap_or_else(|| panic!("{up}: no mcp.tool_call record for {record}"));
        assert_eq!(forwarded["outcome"], "forwarded", "{forwarded}");
        assert_eq!(record["request_index"], forwarded["_index"], "{record}");
        assert_eq!(record["outcome"], "cancelled", "{record}");
        assert_eq!(record["error_code"], "cancelled", "{record}");
        assert_eq!(record["cancellation"]["by"], "client", "{record}");
        assert_eq!(record["cancellation"]["stage"], "forwarded", "{record}");
        assert_eq!(
            record["cancellation"]["upstream_notified"], true,
            "{record}"
        );
        assert!(
            record["cancellation"]["upstream_request_id"].is_number(),
            "{record}"
        );

        // The same upstream keeps working.
        let r = call(&c, &format!("{up}__echo"), json!({"text": "still here"})).await;
        assert_eq!(text(&r), "still here", "{up}: {r:?}");
    }

    // A call held for a human can be cancelled too; the upstream never sees it.
    let handle = start(
        &c,
        "tools__send_email",
        json!({"recipient_count": 99, "subject": "held"}),
    )
    .await;
    let open = eventually(Duration::from_secs(10), || {
        let (status, body) = get_as(server.api, "/v1/escalations?status=OPEN", &admin);
        assert_eq!(status, 200, "{body}");
        body["escalations"].as_array().unwrap().first().cloned()
    })
    .await;
    assert!(open.is_some(), "the call was not held");
    handle.cancel(None).await.unwrap();
    let record = eventually(Duration::from_secs(10), || {
        tool_call_records(&data)
            .into_iter()
            .find(|r| r["tool"] == "send_email")
    })
    .await
    .expect("no record of the held call");
    assert_eq!(record["outcome"], "cancelled", "{record}");
    assert_eq!(
        record["cancellation"],
        json!({"by": "client", "stage": "held"}),
        "{record}"
    );

    // The other upstreams are unharmed.
    let r = call(&c, "tools__echo", json!({"text": "after"})).await;
    assert_eq!(text(&r), "after", "{r:?}");
    let r = call(
        &c,
        "gov__register_intent",
        json!({"agency_id": "a", "description": "after cancellations"}),
    )
    .await;
    assert_eq!(r.is_error, Some(false), "{r:?}");
    c.cancel().await.unwrap();
}
