//! The governance event stream and its webhooks, end to end: events from the decision API,
//! producers' idempotent events, paging, tenant isolation, signed deliveries to a real receiver
//! on loopback (verified with the `standardwebhooks` crate), retries, the dead-letter queue,
//! delivery after a crash, and SSRF refusals.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use serde_json::{json, Value};

const SECRET_BYTES: &[u8] = b"a test secret of 32 bytes length";

fn secret() -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(SECRET_BYTES)
    )
}

/// A webhook receiver on loopback: checks every signature, fails on demand, and processes
/// each `webhook-id` once (as the Standard Webhooks convention asks of receivers).
struct Receiver {
    addr: SocketAddr,
    state: Arc<ReceiverState>,
    _rt: tokio::runtime::Runtime,
}

#[derive(Default)]
struct ReceiverState {
    /// Answer 500 this many more times.
    fail_next: AtomicUsize,
    /// Answer 500 while set.
    failing: AtomicBool,
    attempts: Mutex<Vec<String>>,
    processed: Mutex<Vec<Value>>,
    bad_signatures: AtomicUsize,
}

impl Receiver {
    fn start() -> Receiver {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let state = Arc::new(ReceiverState::default());
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let st = state.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let st = st.clone();
                    async move {
                        let hook = standardwebhooks::Webhook::new(&secret()).unwrap();
                        if hook.verify(&body, &headers).is_err() {
                            st.bad_signatures.fetch_add(1, Ordering::SeqCst);
                            return axum::http::StatusCode::BAD_REQUEST;
                        }
                        let id = headers["webhook-id"].to_str().unwrap().to_owned();
                        st.attempts.lock().unwrap().push(id.clone());
                        if st.failing.load(Ordering::SeqCst)
                            || st
                                .fail_next
                                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                                    n.checked_sub(1)
                                })
                                .is_ok()
                        {
                            return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                        }
                        let mut done = st.processed.lock().unwrap();
                        if !done.iter().any(|d| d["id"] == id) {
                            let body: Value = serde_json::from_slice(&body).unwrap();
                            done.push(json!({"id": id, "body": body}));
                        }
                        axum::http::StatusCode::NO_CONTENT
                    }
                },
            ),
        );
        rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver {
            addr,
            state,
            _rt: rt,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn processed(&self) -> Vec<Value> {
        self.state.processed.lock().unwrap().clone()
    }

    fn attempts_of(&self, id: &str) -> usize {
        self.state
            .attempts
            .lock()
            .unwrap()
            .iter()
            .filter(|a| *a == id)
            .count()
    }

    fn wait_processed(&self, n: usize, limit: Duration) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let p = self.processed();
            if p.len() >= n || start.elapsed() > limit {
                return p;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `warden` with events configured for a receiver: fast retries, the receiver allow-listed.
fn warden_for(receiver: &Receiver, max_attempts: u32) -> Command {
    let mut cmd = warden();
    cmd.env("TEST_HOOK_SECRET", secret())
        .env(
            "WARDEN_EVENTS__WEBHOOK_SECRETS",
            "[{alias: primary, env: TEST_HOOK_SECRET}]",
        )
        .env("WARDEN_EVENTS__ALLOWED_TARGETS", receiver.addr.to_string())
        .env("WARDEN_EVENTS__RETRY_BASE", "100ms")
        .env("WARDEN_EVENTS__RETRY_MAX", "400ms")
        .env("WARDEN_EVENTS__MAX_ATTEMPTS", max_attempts.to_string())
        .env("WARDEN_EVENTS__DELIVERY_TIMEOUT", "2s");
    cmd
}

fn register(addr: SocketAddr, key: &str, url: &str, types: Value) -> (u16, Value) {
    post(
        addr,
        "/v1/governance-events/webhooks",
        key,
        json!({"target_url": url, "event_types": types, "hmac_secret_alias": "primary"}),
    )
}

fn publish(addr: SocketAddr, key: &str, source: &str, idem: Option<&str>) -> (u16, Value) {
    let mut body = json!({
        "event_type": "finding.state_transition", "source_table": "findings",
        "source_id": source, "trigger_reason": "open -> resolved",
        "payload": {"severity": "high"}, "score_before": 62, "score_after": 66,
    });
    if let Some(k) = idem {
        body["idempotency_key"] = json!(k);
    }
    post(addr, "/v1/governance-events", key, body)
}

fn events(addr: SocketAddr, key: &str, query: &str) -> Value {
    let (status, body) = get_as(addr, &format!("/v1/governance-events{query}"), key);
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
fn decisions_and_escalations_become_events_and_producers_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = server_with_admin_key(dir.path());
    let addr = server.api;
    let (_, intent) = post(
        addr,
        "/v1/register-intent",
        &admin,
        json!({"agency_id": "agency-1", "description": "refunds"}),
    );
    let intent_id = intent["intent_id"].as_str().unwrap();
    let (_, p) = post(
        addr,
        "/v1/decisions/propose",
        &admin,
        json!({"intent_id": intent_id, "decision_type": "execute_refund",
               "payload": {"amount": 1250.0, "user_id": "usr_22"}, "agent_id": "agt-7"}),
    );
    assert_eq!(p["verdict"], "ESCALATE");
    let thread = p["escalation_thread_id"].as_str().unwrap();
    let (_, b) = post(
        addr,
        "/v1/decisions/propose",
        &admin,
        json!({"intent_id": intent_id, "decision_type": "budget_change",
               "payload": {"change_pct": 60, "confidence": 0.95, "sample_size": 5000}, "agent_id": "agt-7"}),
    );
    assert_eq!(b["verdict"], "BLOCK");
    let (status, _) = post(
        addr,
        &format!("/v1/escalations/{thread}/resolve"),
        &admin,
        json!({"resolution": "APPROVE", "resolved_by": "dana@example.com"}),
    );
    assert_eq!(status, 200);

    let all = events(addr, &admin, "");
    let types: Vec<&str> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    // Newest first.
    assert_eq!(
        types,
        [
            "escalation.resolved",
            "policy.violation.detected",
            "decision.made",
            "escalation.opened",
            "decision.made"
        ]
    );
    assert_eq!(all["count"], 5);
    let resolved = &all["events"][0];
    assert_eq!(resolved["source_table"], "escalations");
    assert_eq!(resolved["source_id"], thread);
    assert_eq!(resolved["trigger_reason"], "OPEN -> APPROVE");
    assert_eq!(resolved["payload"]["resolved_by"], "dana@example.com");
    let violation = &all["events"][1];
    assert_eq!(violation["source_id"], b["decision_node_id"]);
    assert_eq!(violation["payload"]["verdict"], "BLOCK");
    assert!(violation["score_after"].as_f64().is_some());

    // Filters, and the seed's path and filter name.
    let made = events(addr, &admin, "?event_type=decision.made");
    assert_eq!(made["count"], 2);
    let (status, by_source) = get_as(
        addr,
        &format!("/api/v1/governance-events?finding_id={thread}"),
        &admin,
    );
    assert_eq!(status, 200);
    assert_eq!(by_source["count"], 2, "{by_source}");

    // A producer retrying with its idempotency key gets one row.
    let (status, first) = publish(addr, &admin, "fnd_1", Some("k-1"));
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["created"], true);
    let (status, again) = publish(addr, &admin, "fnd_1", Some("k-1"));
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["created"], false);
    assert_eq!(again["event"]["id"], first["event"]["id"]);
    assert_eq!(
        events(addr, &admin, "?event_type=finding.state_transition")["count"],
        1
    );
    assert_eq!(first["event"]["score_before"], 62.0);

    // Bad input: each names its field.
    for (body, field) in [
        (
            json!({"event_type": "decision.made", "source_table": "t", "source_id": "s", "trigger_reason": "r"}),
            "event_type",
        ),
        (
            json!({"event_type": "made.up", "source_table": "t", "source_id": "s", "trigger_reason": "r"}),
            "event_type",
        ),
        (
            json!({"event_type": "risk_score.changed", "source_table": "", "source_id": "s", "trigger_reason": "r"}),
            "source_table",
        ),
        (
            json!({"event_type": "risk_score.changed", "source_table": "t", "source_id": "s", "trigger_reason": "r", "payload": [1]}),
            "payload",
        ),
    ] {
        let (status, err) = post(addr, "/v1/governance-events", &admin, body);
        assert_eq!((status, err["field"].as_str()), (400, Some(field)), "{err}");
    }
    for (query, field) in [
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?limit=x", "limit"),
        ("?cursor=nope", "cursor"),
    ] {
        let (status, err) = get_as(addr, &format!("/v1/governance-events{query}"), &admin);
        assert_eq!((status, err["field"].as_str()), (400, Some(field)), "{err}");
    }
    let (status, err) = get_as(addr, "/v1/governance-events?colour=red", &admin);
    assert_eq!(
        (status, err["code"].as_str()),
        (400, Some("invalid_request"))
    );

    // Another tenant sees none of it, and its idempotency keys are its own.
    let other = create_key(dir.path(), "other", "admin");
    assert_eq!(events(addr, &other, "")["count"], 0);
    let (status, theirs) = publish(addr, &other, "fnd_1", Some("k-1"));
    assert_eq!(status, 201);
    assert_ne!(theirs["event"]["id"], first["event"]["id"]);
    assert_eq!(events(addr, &other, "")["count"], 1);
    let (status, _) = get_as(addr, "/v1/governance-events", "wdn_not_a_key");
    assert_eq!(status, 401);
}

#[test]
fn paging_neither_skips_nor_repeats_while_events_are_added() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = server_with_admin_key(dir.path());
    let addr = server.api;
    let mut before = HashSet::new();
    for i in 0..60 {
        let (_, e) = publish(addr, &admin, &format!("fnd_{i}"), None);
        before.insert(e["event"]["id"].as_str().unwrap().to_owned());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, admin) = (stop.clone(), admin.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                publish(addr, &admin, &format!("new_{n}"), None);
                n += 1;
            }
            n
        })
    };
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("?limit=7&cursor={c}"),
            None => "?limit=7".to_owned(),
        };
        let page = events(addr, &admin, &q);
        for e in page["events"].as_array().unwrap() {
            seen.push(e["id"].as_str().unwrap().to_owned());
        }
        // Let the writer add events between pages.
        std::thread::sleep(Duration::from_millis(15));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    stop.store(true, Ordering::SeqCst);
    let written = writer.join().unwrap();
    assert!(written > 0, "events were added while paging");
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "an event was repeated");
    for id in &before {
        assert!(unique.contains(id), "event {id} was skipped");
    }
}

#[test]
fn signed_deliveries_retry_until_processed_once() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = server_with_admin_key_cmd(warden_for(&receiver, 8), dir.path());
    let addr = server.api;

    let (status, hook) = register(
        addr,
        &admin,
        &receiver.url(),
        json!(["finding.state_transition"]),
    );
    assert_eq!(status, 201, "{hook}");
    assert_eq!(hook["hmac_secret_alias"], "primary");
    assert!(
        !hook.to_string().contains("whsec_"),
        "the secret is never echoed"
    );
    let (_, list) = get_as(addr, "/v1/governance-events/webhooks", &admin);
    assert_eq!(list["webhooks"][0]["id"], hook["id"]);

    // The receiver fails twice, then succeeds: one processed delivery, three attempts.
    receiver.state.fail_next.store(2, Ordering::SeqCst);
    let (_, published) = publish(addr, &admin, "fnd_9", Some("once"));
    let done = receiver.wait_processed(1, Duration::from_secs(20));
    assert_eq!(done.len(), 1, "delivered");
    let id = done[0]["id"].as_str().unwrap();
    assert!(id.starts_with("msg_"));
    assert_eq!(receiver.attempts_of(id), 3);
    let body = &done[0]["body"];
    assert_eq!(body["type"], "finding.state_transition");
    assert_eq!(body["data"]["id"], published["event"]["id"]);
    assert_eq!(body["data"]["score_after"], 66.0);

    // Events of other types are not sent to this webhook; nothing is delivered twice.
    publish_type(addr, &admin, "risk_score.changed");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(receiver.processed().len(), 1);
    assert_eq!(receiver.attempts_of(id), 3);
    assert_eq!(receiver.state.bad_signatures.load(Ordering::SeqCst), 0);

    // A deleted webhook gets nothing more.
    let hid = hook["id"].as_str().unwrap();
    let status = delete_webhook(addr, &admin, hid);
    assert_eq!(status, 204);
    publish(addr, &admin, "fnd_10", None);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(receiver.processed().len(), 1);
    let status = delete_webhook(addr, &admin, hid);
    assert_eq!(status, 404);
}

fn delete_webhook(addr: SocketAddr, key: &str, id: &str) -> u16 {
    let path = format!("/v1/governance-events/webhooks/{id}");
    http(addr, "DELETE", &path, Some(key), "application/json", b"").0
}

fn publish_type(addr: SocketAddr, key: &str, event_type: &str) {
    let (status, body) = post(
        addr,
        "/v1/governance-events",
        key,
        json!({"event_type": event_type, "source_table": "agents", "source_id": "agt-1",
               "trigger_reason": "recomputed"}),
    );
    assert_eq!(status, 201, "{body}");
}

#[test]
fn dead_letters_are_listed_and_replayed() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = server_with_admin_key_cmd(warden_for(&receiver, 2), dir.path());
    let addr = server.api;
    receiver.state.failing.store(true, Ordering::SeqCst);
    let (status, _) = register(addr, &admin, &receiver.url(), json!([]));
    assert_eq!(status, 201);
    publish(addr, &admin, "fnd_1", None);

    let start = Instant::now();
    let dead = loop {
        let (status, body) = get_as(addr, "/v1/governance-events/dead-letters", &admin);
        assert_eq!(status, 200);
        if body["count"] == 1 || start.elapsed() > Duration::from_secs(20) {
            break body;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(dead["count"], 1, "{dead}");
    let letter = &dead["dead_letters"][0];
    assert_eq!(letter["attempts"], 2);
    assert_eq!(letter["last_status"], 500);
    assert_eq!(letter["event"]["event_type"], "finding.state_transition");
    let delivery = letter["delivery_id"].as_str().unwrap();

    // Another tenant sees no dead letter and cannot replay this one.
    let other = create_key(dir.path(), "other", "admin");
    let (_, theirs) = get_as(addr, "/v1/governance-events/dead-letters", &other);
    assert_eq!(theirs["count"], 0);
    let (status, _) = post(
        addr,
        "/v1/governance-events/dead-letters",
        &other,
        json!({"delivery_ids": [delivery]}),
    );
    assert_eq!(status, 404);

    receiver.state.failing.store(false, Ordering::SeqCst);
    let (status, replayed) = post(
        addr,
        "/v1/governance-events/dead-letters",
        &admin,
        json!({"delivery_ids": [delivery]}),
    );
    assert_eq!((status, replayed["replayed"].as_u64()), (202, Some(1)));
    let done = receiver.wait_processed(1, Duration::from_secs(10));
    assert_eq!(done.len(), 1);
    assert_eq!(done[0]["id"], delivery, "a replay keeps its webhook-id");
    let (_, after) = get_as(addr, "/v1/governance-events/dead-letters", &admin);
    assert_eq!(after["count"], 0);
}

#[test]
fn retries_pending_at_a_crash_are_delivered_after_restart() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let (mut server, admin) = server_with_admin_key_cmd(warden_for(&receiver, 50), dir.path());
    receiver.state.failing.store(true, Ordering::SeqCst);
    let (status, _) = register(server.api, &admin, &receiver.url(), json!([]));
    assert_eq!(status, 201);
    publish(server.api, &admin, "fnd_1", None);
    let start = Instant::now();
    while receiver.state.attempts.lock().unwrap().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "first attempt made"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server.child.kill().unwrap(); // SIGKILL: no clean shutdown
    server.child.wait().unwrap();
    receiver.state.failing.store(false, Ordering::SeqCst);
    assert!(receiver.processed().is_empty());

    let mut cmd = warden_for(&receiver, 50);
    cmd.arg("--data-dir").arg(dir.path());
    let _server = Server::start(&mut cmd);
    let done = receiver.wait_processed(1, Duration::from_secs(20));
    assert_eq!(
        done.len(),
        1,
        "the pending retry was delivered after the restart"
    );
    assert_eq!(done[0]["body"]["data"]["source_id"], "fnd_1");
}

#[test]
fn ssrf_targets_are_refused_with_their_reason() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = server_with_admin_key_cmd(warden_for(&receiver, 3), dir.path());
    let addr = server.api;
    let port = receiver.addr.port();
    for (url, says) in [
        // Loopback on a port that is not allow-listed.
        (format!("https://127.0.0.1:{}/hook", port + 1), "loopback"),
        ("http://127.0.0.1/hook".to_owned(), "https"),
        (
            "https://169.254.169.254/latest/meta-data/".to_owned(),
            "link-local",
        ),
        // A DNS name resolving to a loopback address.
        ("https://localhost/hook".to_owned(), "loopback"),
        ("https://10.0.0.8/hook".to_owned(), "private"),
        ("https://[::1]/hook".to_owned(), "loopback"),
        ("http://example.com/hook".to_owned(), "https"),
        ("ftp://example.com/hook".to_owned(), "https"),
        ("not a url".to_owned(), "URL"),
    ] {
        let (status, err) = register(addr, &admin, &url, json!([]));
        assert_eq!(
            (status, err["field"].as_str()),
            (400, Some("target_url")),
            "{url}: {err}"
        );
        assert!(
            err["message"].as_str().unwrap().contains(says),
            "{url}: {err}"
        );
    }
    let (status, err) = post(
        addr,
        "/v1/governance-events/webhooks",
        &admin,
        json!({"target_url": receiver.url(), "hmac_secret_alias": "nope"}),
    );
    assert_eq!(
        (status, err["field"].as_str()),
        (400, Some("hmac_secret_alias"))
    );
    assert!(
        err["message"].as_str().unwrap().contains("primary"),
        "{err}"
    );
    let (status, err) = register(addr, &admin, &receiver.url(), json!(["no.such.type"]));
    assert_eq!((status, err["field"].as_str()), (400, Some("event_types")));
    // Registering sends tenant data elsewhere: admin only.
    let reader = create_key(dir.path(), "default", "read");
    let (status, _) = register(addr, &reader, &receiver.url(), json!([]));
    assert_eq!(status, 403);
}

#[test]
fn ledger_checkpoints_are_public_events() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = warden();
    cmd.env("WARDEN_EVENTS__CHECKPOINT_INTERVAL", "200ms");
    let (server, admin) = server_with_admin_key_cmd(cmd, dir.path());
    let addr = server.api;
    let (status, _) = post(
        addr,
        "/v1/register-intent",
        &admin,
        json!({"agency_id": "a", "description": "checkpoints"}),
    );
    assert_eq!(status, 201);
    let (status, _) = post(
        addr,
        "/v1/agents",
        &admin,
        json!({"name": "cp-agent", "description": "checkpoint test", "model": "gpt-4o-mini", "tools": []}),
    );
    assert_eq!(status, 201);
    let other = create_key(dir.path(), "other", "read");
    let start = Instant::now();
    let seen = loop {
        let page = events(addr, &other, "?event_type=ledger.checkpoint");
        if page["count"].as_u64().unwrap() > 0 || start.elapsed() > Duration::from_secs(20) {
            break page;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let cp = &seen["events"][0];
    assert_eq!(cp["source_table"], "ledger", "{seen}");
    assert!(cp["payload"]["tree_size"].as_u64().unwrap() >= 1);
    assert!(!cp["payload"]["signature"].as_str().unwrap().is_empty());
    // The same checkpoint as the public endpoint serves, once the ledger stops growing.
    std::thread::sleep(Duration::from_millis(600));
    let latest = events(addr, &admin, "?event_type=ledger.checkpoint&limit=1");
    let (status, served) = get(addr, "/v1/ledger/checkpoint");
    assert_eq!(status, 200);
    let served: Value = serde_json::from_str(&served).unwrap();
    assert_eq!(
        latest["events"][0]["payload"]["tree_size"],
        served["tree_size"]
    );
    assert_eq!(
        latest["events"][0]["payload"]["root_hash"],
        served["root_hash"]
    );
}
