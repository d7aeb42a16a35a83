//! Fleet mode: several `warden` processes on one PostgreSQL database (`store.url`). Each test
//! gets a schema of its own; without `WARDEN_TEST_POSTGRES_URL` they say they skip.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use warden_pg::testing::TestDb;

/// `warden` on `data` (its own directory), with the store and ledger in `db`.
fn fleet_warden(db: &TestDb, data: &Path) -> Command {
    let mut c = warden();
    c.env("WARDEN_STORE__URL", &db.url)
        .arg("--data-dir")
        .arg(data);
    c
}

/// Starts `warden ledger append` for writer `w`, signing with the shared key.
fn appender(db: &TestDb, root: &Path, w: usize, key: &Path) -> Child {
    fleet_warden(db, &root.join(format!("w{w}")))
        .env("WARDEN_LEDGER__SIGNING_KEY", key)
        .args(["ledger", "append", "--kind", "fleet", "--concurrency", "32"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Every receipt a process printed before it ended (a line cut by a kill is none).
fn receipts(child: &mut Child) -> std::thread::JoinHandle<Vec<Value>> {
    let out = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        out.lines()
            .map_while(Result::ok)
            .map_while(|l| serde_json::from_str::<Value>(&l).ok())
            .collect()
    })
}

/// Three processes append concurrently to one ledger; one is killed with SIGKILL while its
/// batches are in flight. The export verifies, and every receipt any process handed out is
/// in it exactly once, at its index, with its hash.
#[test]
fn three_writers_share_one_chain_and_a_killed_one_loses_no_receipt() {
    let Some(db) =
        TestDb::from_env("three_writers_share_one_chain_and_a_killed_one_loses_no_receipt")
    else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let key = root.path().join("shared/ledger.key");
    let out = run(root.path(), &["keygen", "--out", key.to_str().unwrap()], "");
    assert!(out.status.success(), "{}", text(&out.stderr));

    const EACH: usize = 1_500;
    let mut steady = Vec::new();
    for w in 0..2 {
        let mut child = appender(&db, root.path(), w, &key);
        let mut stdin = child.stdin.take().unwrap();
        std::thread::spawn(move || {
            for i in 0..EACH {
                writeln!(stdin, "{{\"writer\": {w}, \"i\": {i}}}").unwrap();
            }
        });
        let got = receipts(&mut child);
        steady.push((child, got));
    }
    let mut victim = appender(&db, root.path(), 2, &key);
    let mut stdin = victim.stdin.take().unwrap();
    std::thread::spawn(move || {
        for i in 0u64.. {
            if writeln!(stdin, "{{\"writer\": 2, \"i\": {i}}}").is_err() {
                break;
            }
        }
    });
    // Read the victim's receipts as they come; kill it while it is busy appending.
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    let out = BufReader::new(victim.stdout.take().unwrap());
    let reader = std::thread::spawn(move || {
        for line in out.lines() {
            let Ok(line) = line else { break };
            let Ok(v) = serde_json::from_str::<Value>(&line) else {
                break;
            };
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    let mut victim_receipts = Vec::new();
    while victim_receipts.len() < 500 && start.elapsed() < Duration::from_secs(20) {
        if let Ok(v) = rx.recv_timeout(Duration::from_millis(100)) {
            victim_receipts.push(v);
        }
    }
    victim.kill().unwrap(); // SIGKILL, batches in flight
    victim.wait().unwrap();
    reader.join().unwrap();
    victim_receipts.extend(rx.try_iter());
    let mut victim_err = String::new();
    let _ = std::io::Read::read_to_string(victim.stderr.as_mut().unwrap(), &mut victim_err);
    assert!(
        !victim_receipts.is_empty(),
        "the killed writer appended nothing before it was killed: {victim_err}"
    );

    let mut all = victim_receipts.clone();
    let mut ranges = Vec::new();
    for (mut child, got) in steady {
        let status = wait_timeout(&mut child, Duration::from_secs(120)).expect("writer finished");
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err);
        assert!(status.success(), "{err}");
        let got = got.join().unwrap();
        assert_eq!(
            got.len(),
            EACH,
            "every line of a surviving writer got its receipt"
        );
        let idx: Vec<u64> = got.iter().map(|r| r["index"].as_u64().unwrap()).collect();
        ranges.push((*idx.iter().min().unwrap(), *idx.iter().max().unwrap()));
        all.extend(got);
    }
    assert!(
        ranges[0].0 < ranges[1].1 && ranges[1].0 < ranges[0].1,
        "the writers' batches interleave in one chain: {ranges:?}"
    );

    let export = root.path().join("export.jsonl");
    let mut c = fleet_warden(&db, &root.path().join("w0"));
    c.args(["ledger", "export", "--out", export.to_str().unwrap()]);
    let out = run_cmd(c, "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pubkey = root.path().join("shared/ledger.pub");
    let out = run(
        root.path(),
        &[
            "verify",
            export.to_str().unwrap(),
            "--public-key",
            pubkey.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    let text_export = std::fs::read_to_string(&export).unwrap();
    let records: HashMap<u64, Value> = text_export
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["type"] == "record")
        .map(|v| (v["index"].as_u64().unwrap(), v))
        .collect();
    let mut payloads = HashSet::new();
    for r in records.values() {
        assert!(
            payloads.insert(r["payload"].to_string()),
            "a payload is stored twice: {}",
            r["payload"]
        );
    }
    let mut indexes = HashSet::new();
    for r in &all {
        let i = r["index"].as_u64().unwrap();
        assert!(indexes.insert(i), "index {i} was handed out twice");
        let stored = records
            .get(&i)
            .unwrap_or_else(|| panic!("receipted record {i} is missing"));
        assert_eq!(stored["record_hash"], r["record_hash"], "record {i}");
        assert_eq!(stored["payload"], r["record"]["payload"], "record {i}");
    }
    assert!(records.len() >= all.len());
}

/// Two `warden serve` replicas share one store: a call held for review on one (`proxy.
/// escalation: hold`) is released by a resolution made on the other, long before its timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolution_on_one_replica_releases_a_call_held_on_another() {
    let Some(db) = TestDb::from_env("a_resolution_on_one_replica_releases_a_call_held_on_another")
    else {
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (mock, _received) = warden_testkit::spawn().await;
    let root = tempfile::tempdir().unwrap();
    let packs = review_pack(root.path());
    let config = root.path().join("warden.yaml");
    std::fs::write(
        &config,
        format!(
            "upstreams:\n  - name: mock\n    base_url: http://{mock}/v1\n    api_key_env: MOCK_PROVIDER_KEY\n    timeout: 5s\npolicy:\n  dir: {}\nproxy:\n  escalation: hold\n  escalation_timeout: 60s\n",
            packs.display()
        ),
    )
    .unwrap();
    let replica = |name: &str| {
        let mut c = fleet_warden(&db, &root.path().join(name));
        c.env("WARDEN_CONFIG", &config)
            .env("MOCK_PROVIDER_KEY", "sk-provider-secret");
        c
    };
    let (a, b, key) = {
        let (ca, cb) = (replica("a"), replica("b"));
        tokio::task::spawn_blocking(move || {
            // The first replica creates the shared store and prints its admin key; the second
            // finds keys there already and prints none.
            let (mut ca, mut cb) = (ca, cb);
            let a = Server::start(&mut ca);
            let mut key = String::new();
            while !key.starts_with("wdn_") {
                key = a
                    .stdout
                    .recv_timeout(Duration::from_secs(30))
                    .expect("the bootstrap key")
                    .trim()
                    .to_owned();
            }
            let b = Server::start(&mut cb);
            (a, b, key)
        })
        .await
        .unwrap()
    };
    let started = Instant::now();
    let held = held_call(a.api, key.clone(), "released!");
    // The thread is visible on the other replica: one registry.
    let thread = open_thread(b.api, &key).await;
    assert!(!held.is_finished());
    let (status, body) = post(
        b.api,
        &format!("/v1/escalations/{thread}/resolve"),
        &key,
        json!({"resolution": "APPROVE", "resolved_by": "ops@example.com"}),
    );
    assert_eq!(status, 200, "{body}");
    let r = tokio::time::timeout(Duration::from_secs(15), held)
        .await
        .expect("the held call was released well before its 60 s timeout")
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-warden-verdict"], "escalate");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "released!");
    assert!(started.elapsed() < Duration::from_secs(30));

    // Both replicas wrote to the one ledger, each signing with its own key.
    let (status_a, _) = a.terminate();
    let (status_b, _) = b.terminate();
    assert!(status_a.success() && status_b.success());
    let export = root.path().join("export.jsonl");
    let mut c = fleet_warden(&db, &root.path().join("a"));
    c.args(["ledger", "export", "--out", export.to_str().unwrap()]);
    let out = run_cmd(c, "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let export_text = std::fs::read_to_string(&export).unwrap();
    assert!(export_text.contains("\"kind\":\"escalation.resolution\""));
    let out = run(
        root.path(),
        &[
            "verify",
            export.to_str().unwrap(),
            "--public-key",
            root.path().join("a/keys/ledger.pub").to_str().unwrap(),
            "--public-key",
            root.path().join("b/keys/ledger.pub").to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}
