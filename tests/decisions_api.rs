//! The decision API over HTTP with the real server: the three-step sequence of seed 001 with its
//! example payloads, forensics whose receipt `warden verify` accepts, and the error codes.

mod common;

use common::*;
use serde_json::{json, Value};

fn intent(addr: std::net::SocketAddr, key: &str) -> String {
    let (status, body) = post(
        addr,
        "/v1/register-intent",
        key,
        json!({"agency_id": "agency-1", "description": "Optimise Q3 ad spend"}),
    );
    assert_eq!(status, 201, "{body}");
    body["intent_id"].as_str().unwrap().to_owned()
}

#[test]
fn register_propose_inscribe_and_verify_the_forensic_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = server_with_admin_key(dir.path());
    let addr = server.api;
    let intent_id = intent(addr, &admin);

    // Seed 001's budget change: allowed, with a utilization that shows the margins.
    let payload = json!({"change_pct": 20, "confidence": 0.91, "sample_size": 1200});
    let (status, proposal) = post(
        addr,
        "/v1/decisions/propose",
        &admin,
        json!({"intent_id": intent_id, "decision_type": "budget_change", "payload": payload, "agent_id": "agt-7"}),
    );
    assert_eq!(status, 200, "{proposal}");
    assert_eq!(proposal["verdict"], "ALLOW");
    assert_eq!(proposal["mic_fired"], false);
    let utilization = proposal["governance_utilization"].as_f64().unwrap();
    assert!(utilization > 0.0 && utilization < 100.0, "{proposal}");
    assert!(!proposal["mic_conditions"].as_array().unwrap().is_empty());
    let node = proposal["decision_node_id"].as_str().unwrap().to_owned();

    let inscribe = json!({"intent_id": intent_id, "decision_node_id": node, "verdict": "ALLOW",
        "payload": payload, "agent_id": "agt-7", "agency_id": "agency-1"});
    let (status, inscribed) = post(addr, "/v1/decisions/inscribe", &admin, inscribe.clone());
    assert_eq!(status, 201, "{inscribed}");
    assert_eq!(
        inscribed["prior_hash"],
        "0".repeat(64),
        "the first record follows genesis"
    );
    let decision_id = inscribed["decision_id"].as_str().unwrap().to_owned();

    // Inscribing the same node twice is a conflict.
    let (status, body) = post(addr, "/v1/decisions/inscribe", &admin, inscribe);
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );

    let (status, forensics) = get_as(
        addr,
        &format!("/v1/decisions/{decision_id}/forensics"),
        &admin,
    );
    assert_eq!(status, 200, "{forensics}");
    assert_eq!(forensics["record_hash"], inscribed["record_hash"]);
    assert_eq!(forensics["payload"], payload);
    let receipt = dir.path().join("receipt.json");
    std::fs::write(&receipt, forensics["receipt"].to_string()).unwrap();
    let pubkey = dir.path().join("keys/ledger.pub");
    let out = run(
        dir.path(),
        &[
            "verify",
            receipt.to_str().unwrap(),
            "--public-key",
            pubkey.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

#[test]
fn escalations_blocks_and_every_error_code() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = server_with_admin_key(dir.path());
    let addr = server.api;
    let intent_id = intent(addr, &admin);
    let propose = |key: &str, decision_type: &str, payload: Value| {
        post(
            addr,
            "/v1/decisions/propose",
            key,
            json!({"intent_id": intent_id, "decision_type": decision_type, "payload": payload, "agent_id": "agt-7"}),
        )
    };

    // Seed 004's refund needs approval; an escalated decision cannot be inscribed without it.
    let (status, p) = propose(
        &admin,
        "execute_refund",
        json!({"amount": 1250.00, "user_id": "usr_22"}),
    );
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["verdict"], "ESCALATE");
    assert_eq!(p["reason_codes"], json!(["AMOUNT_OVER_THRESHOLD"]));
    let (status, body) = post(
        addr,
        "/v1/decisions/inscribe",
        &admin,
        json!({
        "intent_id": intent_id, "decision_node_id": p["decision_node_id"], "verdict": "ESCALATE",
        "payload": {"amount": 1250.00, "user_id": "usr_22"}, "agent_id": "agt-7", "agency_id": "agency-1"}),
    );
    assert_eq!(
        (status, body["field"].as_str()),
        (409, Some("verdict")),
        "{body}"
    );

    // A blocked budget change is inscribed as blocked; a different payload is a conflict.
    let (_, b) = propose(
        &admin,
        "budget_change",
        json!({"change_pct": 60, "confidence": 0.95, "sample_size": 5000}),
    );
    assert_eq!(b["verdict"], "BLOCK");
    let (status, body) = post(
        addr,
        "/v1/decisions/inscribe",
        &admin,
        json!({
        "intent_id": intent_id, "decision_node_id": b["decision_node_id"], "verdict": "BLOCK",
        "payload": {"change_pct": 61, "confidence": 0.95, "sample_size": 5000}, "agent_id": "agt-7", "agency_id": "agency-1"}),
    );
    assert_eq!(
        (status, body["field"].as_str()),
        (409, Some("payload")),
        "{body}"
    );

    // 401: no key, a wrong key.
    let (status, body) = http(
        addr,
        "POST",
        "/v1/register-intent",
        None,
        "application/json",
        b"{}",
    );
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
    let (status, _) = post(addr, "/v1/register-intent", "wdn_nope", json!({}));
    assert_eq!(status, 401);

    // 403: a read-only key of the same tenant cannot propose.
    let reader = json!({"key": create_key(dir.path(), "default", "read")});
    let (status, body) = propose(reader["key"].as_str().unwrap(), "budget_change", json!({}));
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );

    // 404 across tenants: another tenant's admin sees neither the intent nor the decision.
    let other = json!({"key": create_key(dir.path(), "globex", "admin")});
    let (status, body) = propose(
        other["key"].as_str().unwrap(),
        "budget_change",
        json!({"change_pct": 1}),
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    let (status, _) = http(
        addr,
        "GET",
        &format!(
            "/v1/decisions/{}/forensics",
            b["decision_node_id"].as_str().unwrap()
        ),
        other["key"].as_str(),
        "application/json",
        b"",
    );
    assert_eq!(status, 404);

    // 400: a missing field, named.
    let (status, body) = post(
        addr,
        "/v1/register-intent",
        &admin,
        json!({"description": "x"}),
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("agency_id"),
        "{body}"
    );
    // 422: the payload's type does not fit the policy's condition.
    let (status, body) = propose(&admin, "budget_change", json!({"change_pct": "twenty"}));
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("unprocessable")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("change_pct"),
        "{body}"
    );
    // 415 and 413.
    let (status, _) = http(
        addr,
        "POST",
        "/v1/register-intent",
        Some(&admin),
        "text/plain",
        b"{}",
    );
    assert_eq!(status, 415);
    let big = format!(
        "{{\"agency_id\":\"a\",\"description\":\"{}\"}}",
        "x".repeat(2 << 20)
    );
    let (status, _) = http(
        addr,
        "POST",
        "/v1/register-intent",
        Some(&admin),
        "application/json",
        big.as_bytes(),
    );
    assert_eq!(status, 413);
}

#[test]
fn escalations_are_resolved_on_the_decision_desk_and_inscribed_with_their_resolution() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = server_with_admin_key(dir.path());
    let addr = server.api;
    let intent_id = intent(addr, &admin);
    let refund = json!({"amount": 1250.00, "user_id": "usr_22"});
    let escalate = || {
        let (status, p) = post(
            addr,
            "/v1/decisions/propose",
            &admin,
            json!({
            "intent_id": intent_id, "decision_type": "execute_refund", "payload": refund, "agent_id": "agt-7"}),
        );
        assert_eq!(
            (status, p["verdict"].as_str()),
            (200, Some("ESCALATE")),
            "{p}"
        );
        (
            p["decision_node_id"].as_str().unwrap().to_owned(),
            p["escalation_thread_id"].as_str().unwrap().to_owned(),
        )
    };
    let inscribe = |node: &str| {
        post(
            addr,
            "/v1/decisions/inscribe",
            &admin,
            json!({
            "intent_id": intent_id, "decision_node_id": node, "verdict": "ESCALATE",
            "payload": refund, "agent_id": "agt-7", "agency_id": "agency-1"}),
        )
    };
    let get = |path: &str, key: &str| get_as(addr, path, key);

    let (node, thread) = escalate();
    let (status, body) = inscribe(&node);
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains(&thread),
        "{body}"
    );

    let (status, queue) = get("/v1/escalations?status=open", &admin);
    assert_eq!(status, 200, "{queue}");
    let open = queue["escalations"].as_array().unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["thread_id"], thread.as_str());
    assert_eq!(open[0]["reason_codes"], json!(["AMOUNT_OVER_THRESHOLD"]));
    let (status, _) = get("/v1/escalations?status=maybe", &admin);
    assert_eq!(status, 400);

    // Only an admin resolves; the answer must be APPROVE or REJECT.
    let writer = json!({"key": create_key(dir.path(), "default", "write")});
    let resolve = |key: &str, thread: &str, resolution: &str| {
        post(
            addr,
            &format!("/v1/escalations/{thread}/resolve"),
            key,
            json!({"resolution": resolution, "resolved_by": "maria@finance", "notes": "customer verified"}),
        )
    };
    assert_eq!(
        resolve(writer["key"].as_str().unwrap(), &thread, "APPROVE").0,
        403
    );
    let (status, body) = resolve(&admin, &thread, "MAYBE");
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("resolution")),
        "{body}"
    );

    let (status, resolved) = resolve(&admin, &thread, "APPROVE");
    assert_eq!(status, 200, "{resolved}");
    assert_eq!(resolved["resolution"], "APPROVE");
    assert_eq!(resolved["record_hash"].as_str().unwrap().len(), 64);
    assert_eq!(
        resolve(&admin, &thread, "REJECT").0,
        409,
        "a thread is resolved once"
    );

    let (status, inscribed) = inscribe(&node);
    assert_eq!(status, 201, "{inscribed}");
    assert_eq!(inscribed["resolution"], "APPROVE");

    // A rejected one is inscribed too, as rejected: the final outcome is on record.
    let (node2, thread2) = escalate();
    assert_eq!(resolve(&admin, &thread2, "reject").0, 200);
    let (status, inscribed) = inscribe(&node2);
    assert_eq!(
        (status, inscribed["resolution"].as_str()),
        (201, Some("REJECT")),
        "{inscribed}"
    );
    let (_, queue) = get("/v1/escalations?status=open", &admin);
    assert!(
        queue["escalations"].as_array().unwrap().is_empty(),
        "{queue}"
    );

    // The resolutions are in the ledger, which still verifies.
    let out = run(dir.path(), &["ledger", "export"], "");
    let export = text(&out.stdout);
    assert_eq!(
        export.matches("\"kind\":\"escalation.resolution\"").count(),
        2
    );
    let path = dir.path().join("export.jsonl");
    std::fs::write(&path, &export).unwrap();
    assert_eq!(
        run(dir.path(), &["verify", path.to_str().unwrap()], "")
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn the_kla_sequence_register_evaluate_and_verify_lineage() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = server_with_admin_key(dir.path());
    let addr = server.api;
    let manifest = json!({"name": "claims-triage", "description": "Triages inbound insurance claims",
        "model": "gpt-4.1", "temperature": 0.2, "tools": ["lookup_policy", "flag_for_review"]});
    let (status, agent) = post(addr, "/v1/agents", &admin, manifest.clone());
    assert_eq!(status, 201, "{agent}");
    let agent_id = agent["agentId"].as_str().unwrap().to_owned();
    assert!(agent["manifestHash"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    let (status, body) = post(addr, "/v1/agents", &admin, manifest);
    assert_eq!(
        (status, body["field"].as_str()),
        (409, Some("name")),
        "duplicate registration: {body}"
    );
    let (status, body) = post(
        addr,
        "/v1/agents",
        &admin,
        json!({"name": "x", "model": "m", "temperature": 7}),
    );
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("temperature")),
        "{body}"
    );
    let (status, fetched) = get_as(addr, &format!("/v1/agents/{agent_id}"), &admin);
    assert_eq!(status, 200);
    assert_eq!(
        fetched["tools"],
        json!(["lookup_policy", "flag_for_review"])
    );

    // Seed 004's refund of 1,250.00 requires approval.
    let (status, d) = post(
        addr,
        "/v1/decisions.evaluate",
        &admin,
        json!({
        "agentId": agent_id, "action": "execute_refund", "context": {"amount": 1250.00, "user_id": "usr_22"}}),
    );
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["decision"], "require_approval");
    assert_eq!(d["reasonCodes"], json!(["AMOUNT_OVER_THRESHOLD"]));
    assert_eq!(d["requiresDeskApproval"], true);
    let (_, small) = post(
        addr,
        "/v1/decisions.evaluate",
        &admin,
        json!({
        "agentId": agent_id, "action": "execute_refund", "context": {"amount": 20}}),
    );
    assert_eq!(
        (
            small["decision"].as_str(),
            small["requiresDeskApproval"].as_bool()
        ),
        (Some("allow"), Some(false))
    );
    let (status, body) = post(
        addr,
        "/v1/decisions.evaluate",
        &admin,
        json!({
        "agentId": "agt_unknown", "action": "execute_refund", "context": {}}),
    );
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));

    // The lineage proof recomputes to the signed root from the leaf and the path alone.
    let id = d["decisionId"].as_str().unwrap();
    let (status, lineage) = get_as(addr, &format!("/v1/lineage/{id}/verify"), &admin);
    assert_eq!(status, 200, "{lineage}");
    assert_eq!(lineage["anchored"], true);
    let hash = |v: &Value| {
        warden_ledger::Hash::from_hex(v.as_str().unwrap().strip_prefix("sha256:").unwrap()).unwrap()
    };
    let path: Vec<_> = lineage["merklePath"]
        .as_array()
        .unwrap()
        .iter()
        .map(hash)
        .collect();
    warden_ledger::merkle::verify_inclusion(
        lineage["ledgerIndex"].as_u64().unwrap(),
        lineage["treeSize"].as_u64().unwrap(),
        &hash(&lineage["leafHash"]),
        &path,
        &hash(&lineage["rootHash"]),
    )
    .unwrap();
    let receipt = dir.path().join("lineage.json");
    std::fs::write(&receipt, lineage["receipt"].to_string()).unwrap();
    assert_eq!(
        run(dir.path(), &["verify", receipt.to_str().unwrap()], "")
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn client_summary_and_efficiency_score() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = server_with_admin_key(dir.path());
    let addr = server.api;
    let intent_id = intent(addr, &admin);
    for (t, payload) in [
        (
            "budget_change",
            json!({"change_pct": 20, "confidence": 0.91, "sample_size": 1200}),
        ),
        (
            "budget_change",
            json!({"change_pct": 60, "confidence": 0.95, "sample_size": 5000}),
        ),
        ("execute_refund", json!({"amount": 1250.0})),
    ] {
        let (status, _) = post(
            addr,
            "/v1/decisions/propose",
            &admin,
            json!({"intent_id": intent_id, "decision_type": t, "payload": payload, "agent_id": "agt-7"}),
        );
        assert_eq!(status, 200);
    }
    let client_key = |agency: &str| create_key(dir.path(), "default", &format!("client:{agency}"));
    let get = |path: &str, key: &str| get_as(addr, path, key);

    let portal = client_key("agency-1");
    let (status, summary) = get("/v1/client/agency-1/summary", &portal);
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["total_decisions"], 3);
    assert_eq!(summary["decisions_this_month"], 3);
    assert_eq!(summary["false_winners_caught"], 2);
    assert_eq!(summary["recent_decisions"].as_array().unwrap().len(), 3);
    // A client key is read-only and bound to its agency.
    assert_eq!(get("/v1/client/agency-2/summary", &portal).0, 403);
    assert_eq!(
        post(
            addr,
            "/v1/register-intent",
            &portal,
            json!({"agency_id": "a", "description": "d"})
        )
        .0,
        403
    );

    let (status, eff) = get("/v1/governance/efficiency/agency-1", &admin);
    assert_eq!(status, 200, "{eff}");
    assert_eq!(eff["total_decisions_scored"], 3);
    assert_eq!(eff["period"], "30d");
    // One allowed change in the amber band (100), one block and one escalation at 100% (0).
    assert_eq!(eff["amber_band_pct"], 33.3);
    assert_eq!(eff["efficiency_score_pct"], 33.3);
    let (status, body) = get("/v1/governance/efficiency/agency-1?period=soon", &admin);
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("period")),
        "{body}"
    );
}

#[test]
fn idempotency_keys_replay_the_first_answer_and_refuse_a_different_body() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = server_with_admin_key(dir.path());
    let addr = server.api;
    let bearer = format!("Bearer {admin}");
    let send = |idem: &str, bearer: &str, body: Value| {
        http_with(
            addr,
            "POST",
            "/v1/register-intent",
            &[
                ("Authorization", bearer),
                ("Content-Type", "application/json"),
                ("Idempotency-Key", idem),
            ],
            body.to_string().as_bytes(),
        )
    };
    let body = json!({"agency_id": "agency-1", "description": "retry me"});
    let (status, first) = send("k-1", &bearer, body.clone());
    assert_eq!(status, 201, "{first}");
    let (status, again) = send("k-1", &bearer, body.clone());
    assert_eq!(
        (status, &again),
        (201, &first),
        "a retry gets the original answer"
    );
    let (status, other) = send("k-2", &bearer, body.clone());
    assert_eq!(status, 201);
    assert_ne!(
        other["intent_id"], first["intent_id"],
        "a new key acts again"
    );
    let (status, err) = send(
        "k-1",
        &bearer,
        json!({"agency_id": "agency-1", "description": "changed"}),
    );
    assert_eq!(
        (status, err["field"].as_str()),
        (409, Some("Idempotency-Key")),
        "{err}"
    );
    // Keys are per API key: another caller's k-1 is its own.
    let writer = json!({"key": create_key(dir.path(), "default", "write")});
    let (status, theirs) = send(
        "k-1",
        &format!("Bearer {}", writer["key"].as_str().unwrap()),
        body,
    );
    assert_eq!(status, 201);
    assert_ne!(theirs["intent_id"], first["intent_id"]);
    // An oversized key is refused, naming the header.
    let (status, err) = send(&"x".repeat(300), &bearer, json!({}));
    assert_eq!(
        (status, err["field"].as_str()),
        (400, Some("Idempotency-Key"))
    );
}

#[test]
fn each_api_key_is_rate_limited_with_headers_and_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = warden();
    cmd.arg("--data-dir")
        .arg(dir.path())
        .env("WARDEN_SERVER__REQUESTS_PER_MINUTE", "3");
    let server = Server::start(&mut cmd);
    let mut admin = String::new();
    while !admin.starts_with("wdn_") {
        admin = server
            .stdout
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap()
            .trim()
            .to_owned();
    }
    let bearer = format!("Bearer {admin}");
    let call = |bearer: &str| {
        http_full(
            server.api,
            "GET",
            "/v1/escalations",
            &[("Authorization", bearer)],
            b"",
        )
    };
    for left in ["2", "1", "0"] {
        let (status, head, _) = call(&bearer);
        assert_eq!(status, 200, "{head}");
        assert_eq!(header(&head, "x-ratelimit-limit"), Some("3"));
        assert_eq!(header(&head, "x-ratelimit-remaining"), Some(left), "{head}");
        assert!(header(&head, "x-ratelimit-reset").is_some());
    }
    let (status, head, body) = call(&bearer);
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("rate_limited")),
        "{body}"
    );
    let retry: u64 = header(&head, "retry-after").unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "one request every 20 s: {retry}");
    // Another key has its own budget.
    let reader = json!({"key": create_key(dir.path(), "default", "read")});
    let (status, _, _) = call(&format!("Bearer {}", reader["key"].as_str().unwrap()));
    assert_eq!(status, 200);
}

#[test]
fn a_caller_long_polls_an_escalation_until_a_human_resolves_it() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = server_with_admin_key(dir.path());
    let addr = server.api;
    let intent_id = intent(addr, &admin);
    let (_, p) = post(
        addr,
        "/v1/decisions/propose",
        &admin,
        json!({
        "intent_id": intent_id, "decision_type": "execute_refund", "payload": {"amount": 1250.0}, "agent_id": "agt-7"}),
    );
    let thread = p["escalation_thread_id"].as_str().unwrap().to_owned();
    let get = |q: &str| get_as(addr, &format!("/v1/escalations/{thread}{q}"), &admin);

    let start = std::time::Instant::now();
    let (status, e) = get("?wait=500ms");
    assert_eq!((status, e["status"].as_str()), (200, Some("OPEN")));
    assert!(
        start.elapsed() >= std::time::Duration::from_millis(450),
        "it waited"
    );
    assert_eq!(get("?wait=2h").0, 400);

    let waiter = {
        let (admin, thread) = (admin.clone(), thread.clone());
        std::thread::spawn(move || {
            let start = std::time::Instant::now();
            let r = get_as(addr, &format!("/v1/escalations/{thread}?wait=30s"), &admin);
            (r, start.elapsed())
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (status, _) = post(
        addr,
        &format!("/v1/escalations/{thread}/resolve"),
        &admin,
        json!({"resolution": "APPROVE", "resolved_by": "maria@finance"}),
    );
    assert_eq!(status, 200);
    let ((status, e), took) = waiter.join().unwrap();
    assert_eq!(
        (status, e["status"].as_str()),
        (200, Some("APPROVE")),
        "{e}"
    );
    assert!(
        took < std::time::Duration::from_secs(10),
        "woken by the resolution, not the timeout: {took:?}"
    );
    assert_eq!(e["resolved_by"], "maria@finance");
}

#[test]
fn policy_packs_hot_reload_and_an_invalid_change_keeps_the_old_set() {
    let dir = tempfile::tempdir().unwrap();
    let packs = dir.path().join("packs");
    std::fs::create_dir_all(&packs).unwrap();
    let refunds = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/policies/refunds.yaml"
    ))
    .unwrap();
    std::fs::write(packs.join("refunds.yaml"), &refunds).unwrap();
    let mut cmd = warden();
    cmd.arg("--data-dir")
        .arg(dir.path())
        .env("WARDEN_POLICY__DIR", &packs)
        .env("WARDEN_POLICY__RELOAD_INTERVAL", "100ms");
    let server = Server::start(&mut cmd);
    let mut admin = String::new();
    while !admin.starts_with("wdn_") {
        admin = server
            .stdout
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap()
            .trim()
            .to_owned();
    }
    let (_, agent) = post(
        server.api,
        "/v1/agents",
        &admin,
        json!({"name": "refunder", "model": "m"}),
    );
    let evaluate = || {
        let (status, d) = post(
            server.api,
            "/v1/decisions.evaluate",
            &admin,
            json!({
            "agentId": agent["agentId"], "action": "execute_refund", "context": {"amount": 1250.0, "currency": "EUR"}}),
        );
        assert_eq!(status, 200, "{d}");
        d["decision"].as_str().unwrap().to_owned()
    };
    assert_eq!(evaluate(), "require_approval");

    // Raise the threshold: the running Warden picks it up.
    std::fs::write(
        packs.join("refunds.yaml"),
        refunds.replacen("value: 1000\n", "value: 2000\n", 1),
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while evaluate() != "allow" {
        assert!(
            std::time::Instant::now() < deadline,
            "the change was not picked up"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // A broken change is refused with a log line; the last good set stays in force.
    std::fs::write(packs.join("refunds.yaml"), "pack: refunds\nrules: [\n").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        if server
            .logs
            .try_iter()
            .any(|l| l.contains("policy change refused"))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no log line for the refused change"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(evaluate(), "allow");
    drop(server);

    // At start, an invalid directory stops Warden with the problem and its position.
    let out = warden()
        .arg("--data-dir")
        .arg(dir.path())
        .env("WARDEN_POLICY__DIR", &packs)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("refunds.yaml:"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_openapi_document_and_swagger_ui_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = warden();
    cmd.arg("--data-dir").arg(dir.path());
    let server = Server::start(&mut cmd);
    let (status, doc) = get(server.api, "/openapi.json");
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&doc).unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    for path in [
        "/v1/register-intent",
        "/v1/decisions/propose",
        "/v1/decisions/inscribe",
        "/v1/decisions/{id}/forensics",
        "/v1/escalations/{thread_id}/resolve",
        "/v1/agents",
        "/v1/decisions.evaluate",
        "/v1/lineage/{id}/verify",
        "/v1/client/{token}/summary",
        "/v1/governance/efficiency/{agency_id}",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    // Request schemas come from the same types the handlers deserialize.
    let propose = &doc["components"]["schemas"]["Propose"];
    assert_eq!(
        propose["required"],
        json!(["intent_id", "decision_type", "payload", "agent_id"])
    );
    let (status, html) = get(server.api, "/docs/");
    assert_eq!(status, 200);
    assert!(html.contains("Swagger UI"));
    let (status, init) = get(server.api, "/docs/swagger-initializer.js");
    assert_eq!(status, 200);
    assert!(init.contains("/openapi.json"), "{init}");
}

#[test]
fn no_route_lets_one_tenant_read_or_change_anothers_data() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = server_with_admin_key(dir.path());
    let addr = server.api;
    // Tenant `default` creates one of everything.
    let intent_id = intent(addr, &admin);
    let (_, agent) = post(
        addr,
        "/v1/agents",
        &admin,
        json!({"name": "a1", "model": "m"}),
    );
    let agent_id = agent["agentId"].as_str().unwrap().to_owned();
    let (_, p) = post(
        addr,
        "/v1/decisions/propose",
        &admin,
        json!({"intent_id": intent_id,
        "decision_type": "execute_refund", "payload": {"amount": 1250.0}, "agent_id": "x"}),
    );
    let node = p["decision_node_id"].as_str().unwrap().to_owned();
    let thread = p["escalation_thread_id"].as_str().unwrap().to_owned();
    let (_, d) = post(
        addr,
        "/v1/decisions.evaluate",
        &admin,
        json!({"agentId": agent_id, "action": "execute_refund", "context": {"amount": 5}}),
    );
    let decision = d["decisionId"].as_str().unwrap().to_owned();

    // Tenant `globex`, with an admin key, tries every route on those ids.
    let other = json!({"key": create_key(dir.path(), "globex", "admin")});
    let key = other["key"].as_str().unwrap();
    let get = |path: &str| get_as(addr, path, key);
    assert_eq!(get(&format!("/v1/decisions/{node}/forensics")).0, 404);
    assert_eq!(get(&format!("/v1/decisions/{decision}/forensics")).0, 404);
    assert_eq!(get(&format!("/v1/lineage/{decision}/verify")).0, 404);
    assert_eq!(get(&format!("/v1/agents/{agent_id}")).0, 404);
    assert_eq!(get(&format!("/v1/escalations/{thread}")).0, 404);
    let (status, queue) = get("/v1/escalations");
    assert_eq!(
        (status, queue["escalations"].as_array().unwrap().len()),
        (200, 0)
    );
    let (_, summary) = get("/v1/client/agency-1/summary");
    assert_eq!(summary["total_decisions"], 0, "{summary}");
    let (_, eff) = get("/v1/governance/efficiency/agency-1");
    assert_eq!(eff["total_decisions_scored"], 0, "{eff}");
    let change = [
        (
            "/v1/decisions/propose",
            json!({"intent_id": intent_id, "decision_type": "t", "payload": {}, "agent_id": "x"}),
        ),
        (
            "/v1/decisions/inscribe",
            json!({"intent_id": intent_id, "decision_node_id": node, "verdict": "ESCALATE",
            "payload": {"amount": 1250.0}, "agent_id": "x", "agency_id": "agency-1"}),
        ),
        (
            &format!("/v1/escalations/{thread}/resolve") as &str,
            json!({"resolution": "APPROVE", "resolved_by": "intruder"}),
        ),
        (
            "/v1/decisions.evaluate",
            json!({"agentId": agent_id, "action": "execute_refund", "context": {}}),
        ),
    ];
    for (path, body) in change {
        let (status, b) = post(addr, path, key, body);
        assert_eq!(status, 404, "{path}: {b}");
    }
    // And tenant `default` still sees its thread open.
    let (_, e) = get_as(addr, &format!("/v1/escalations/{thread}"), &admin);
    assert_eq!(e["status"], "OPEN");
}
