//! Token limits shared through Redis (`limits.backend: redis`), end to end: three real
//! `warden serve` processes, one Redis, one mock provider. The tests that need Redis run only
//! when `WARDEN_TEST_REDIS_URL` is set (`.ci/run` sets it); each uses a key prefix of its own.
//! The fail-mode tests point at a port where nothing listens and always run.

mod common;

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::{server_with_admin_key_cmd, Server};

/// One Warden with its own data directory, forwarding to `mock`, with `limits` as given.
async fn start(
    dir: &tempfile::TempDir,
    name: &str,
    mock: std::net::SocketAddr,
    limits: &str,
) -> (Server, String) {
    let config = dir.path().join(format!("{name}.yaml"));
    std::fs::write(
        &config,
        format!("upstreams:\n  - name: mock\n    base_url: http://{mock}/v1\n{limits}"),
    )
    .unwrap();
    let data = dir.path().join(name);
    tokio::task::spawn_blocking(move || {
        let mut cmd = common::warden();
        cmd.env("WARDEN_CONFIG", &config);
        server_with_admin_key_cmd(cmd, &data)
    })
    .await
    .unwrap()
}

async fn call(server: &Server, key: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("http://{}/v1/chat/completions", server.api))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn header_u64(r: &reqwest::Response, name: &str) -> u64 {
    r.headers()[name].to_str().unwrap().parse().unwrap()
}

/// The must-show: three processes share one tenant budget under concurrent load, and the
/// tokens they admit together never exceed it by more than one call's reservation (plus what
/// the bucket refilled while the test ran). Without sharing they would admit three budgets.
///
/// The calls stream from a provider that keeps their streams open, so no call settles (and
/// gives unused tokens back) while the others are admitted or refused: what is admitted is
/// bounded by the reservations alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_share_one_token_budget() {
    let Some(url) = warden_testkit::test_redis_url() else {
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (mock, _received) = warden_testkit::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    const BUDGET: u64 = 3000;
    let limits = format!(
        "limits:\n  backend: redis\n  redis_url: {url}\n  redis_prefix: {}\n  redis_timeout: 5s\n  fail_mode: reject\n  rules:\n    - per: tenant\n      tokens_per_minute: {BUDGET}\n",
        warden_testkit::unique_redis_prefix("three")
    );
    let mut wardens = Vec::new();
    for name in ["a", "b", "c"] {
        wardens.push(start(&dir, name, mock, &limits).await);
    }
    let body = json!({"model": "mock-trickle", "max_tokens": 90, "stream": true,
        "messages": [{"role": "user", "content": "say:hi"}]});

    let started = Instant::now();
    // The first call tells what one call reserves: the whole budget less what remains.
    let first = call(&wardens[0].0, &wardens[0].1, &body).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header_u64(&first, "x-ratelimit-limit-tokens"), BUDGET);
    let reservation = BUDGET - header_u64(&first, "x-ratelimit-remaining-tokens");
    assert!(
        (90..200).contains(&reservation),
        "one call reserves {reservation}"
    );

    // 40 concurrent calls on each process: about three budgets' worth.
    let mut tasks = Vec::new();
    for (server, key) in &wardens {
        for _ in 0..40 {
            tasks.push(common::spawn_chat(server.api, key.clone(), body.clone()));
        }
    }
    let mut open = vec![first];
    let mut refused = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        match r.status().as_u16() {
            200 => open.push(r),
            429 => refused.push(r),
            // A 503 here would be Redis slower than redis_timeout on a loaded machine.
            other => panic!("unexpected status {other}: {}", r.text().await.unwrap()),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let admitted = open.len() as u64 * reservation;
    let refilled = (elapsed * BUDGET as f64 / 60.0).ceil() as u64;
    eprintln!(
        "admitted {} calls = {admitted} tokens of a {BUDGET} budget in {elapsed:.2}s (refill {refilled}), refused {}",
        open.len(),
        refused.len()
    );
    assert!(
        admitted <= BUDGET + refilled + reservation,
        "admitted {admitted} tokens: more than the budget {BUDGET} + refill {refilled} + one reservation {reservation}"
    );
    assert!(
        admitted + reservation >= BUDGET,
        "admitted only {admitted} tokens of {BUDGET}"
    );
    // The refusals are the local backend's: 429, OpenAI's error, Retry-After and the headers.
    let r = refused.pop().expect("calls beyond the budget are refused");
    assert!(header_u64(&r, "retry-after") >= 1);
    assert_eq!(header_u64(&r, "x-ratelimit-limit-tokens"), BUDGET);
    assert!(r.headers().contains_key("x-ratelimit-reset-tokens"));
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "rate_limit_exceeded");
    assert_eq!(e["error"]["type"], "tokens");
    drop(open);
}

/// `fail_mode: reject`: a Redis that does not answer refuses limited calls with a 503 that
/// says why, and a log line says so once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_with_fail_mode_reject_answers_503() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (mock, received) = warden_testkit::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let (server, key) = start(
        &dir,
        "reject",
        mock,
        "limits:\n  backend: redis\n  redis_url: redis://127.0.0.1:1\n  fail_mode: reject\n  rules:\n    - per: key\n      requests_per_minute: 100\n",
    )
    .await;
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "say:hi"}]});
    for _ in 0..3 {
        let r = call(&server, &key, &body).await;
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "1");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "limits_unavailable");
    }
    assert!(received.all().is_empty(), "nothing was forwarded");
    let (_, logs) = server.terminate();
    let said = logs
        .iter()
        .filter(|l| l.contains("shared limits: Redis is unavailable"))
        .count();
    assert_eq!(said, 1, "one log line per outage: {logs:#?}");
    assert!(logs.iter().any(|l| l.contains("fail_mode reject")));
}

/// `fail_mode: local`: calls go on, counted against the process's own buckets, which still
/// hold the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_with_fail_mode_local_limits_per_process() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (mock, _received) = warden_testkit::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let (server, key) = start(
        &dir,
        "local",
        mock,
        "limits:\n  backend: redis\n  redis_url: redis://127.0.0.1:1\n  redis_timeout: 100ms\n  rules:\n    - per: key\n      requests_per_minute: 2\n",
    )
    .await;
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "say:hi"}]});
    assert_eq!(call(&server, &key, &body).await.status(), 200);
    let second = call(&server, &key, &body).await;
    assert_eq!(second.status(), 200);
    assert_eq!(header_u64(&second, "x-ratelimit-remaining-requests"), 0);
    assert_eq!(call(&server, &key, &body).await.status(), 429);
    let (_, logs) = server.terminate();
    assert!(
        logs.iter()
            .any(|l| l.contains("shared limits: Redis is unavailable")
                && l.contains("fail_mode local")),
        "{logs:#?}"
    );
    // The URL (which may hold a password) is never logged.
    assert!(!logs
        .iter()
        .any(|l| l.contains("127.0.0.1:1 ") || l.contains("redis://")));
}

/// A shared budget is shared across restarts too: a new process sees what the old one spent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_process_sees_the_budget_already_spent() {
    let Some(url) = warden_testkit::test_redis_url() else {
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (mock, _received) = warden_testkit::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let limits = format!(
        "limits:\n  backend: redis\n  redis_url: {url}\n  redis_prefix: {}\n  redis_timeout: 5s\n  fail_mode: reject\n  rules:\n    - per: tenant\n      requests_per_minute: 3\n",
        warden_testkit::unique_redis_prefix("restart")
    );
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "say:hi"}]});
    let (one, key) = start(&dir, "one", mock, &limits).await;
    for _ in 0..2 {
        assert_eq!(call(&one, &key, &body).await.status(), 200);
    }
    drop(one);
    let (two, key) = start(&dir, "two", mock, &limits).await;
    let r = call(&two, &key, &body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header_u64(&r, "x-ratelimit-remaining-requests"), 0);
    let r = call(&two, &key, &body).await;
    assert_eq!(r.status(), 429);
    let wait = Duration::from_secs(header_u64(&r, "retry-after"));
    assert!(wait >= Duration::from_secs(1) && wait <= Duration::from_secs(20));
}
