//! `warden serve` as an operator runs it: zero configuration, health, readiness, clean stop.

mod common;

use common::*;
use serde_json::Value;

#[test]
fn zero_config_serve_starts_answers_probes_and_stops_on_sigterm() {
    let cwd = tempfile::tempdir().unwrap();
    // No --data-dir and no config file: everything defaults, data lands in ./warden-data.
    let mut cmd = warden();
    cmd.current_dir(cwd.path());
    let server = Server::start(&mut cmd);

    let (status, body) = get(server.admin, "/health");
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["status"],
        "ok"
    );

    let (status, body) = get(server.admin, "/ready");
    assert_eq!(status, 200, "{body}");
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["components"]["ledger"]["status"], "up");
    assert_eq!(ready["components"]["store"]["status"], "up");

    let (status, body) = get(server.api, "/v1/ledger/public-key");
    assert_eq!(status, 200);
    let key: Value = serde_json::from_str(&body).unwrap();
    assert!(key["public_key_pem"]
        .as_str()
        .unwrap()
        .contains("BEGIN PUBLIC KEY"));

    let (status, body) = get(server.api, "/v1/ledger/checkpoint");
    assert_eq!(status, 404);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["code"],
        "not_found"
    );

    let (status, body) = get(server.api, "/nope");
    assert_eq!(status, 404);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["code"],
        "not_found"
    );

    let data = cwd.path().join("warden-data");
    assert!(data.join("ledger/ledger.db").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("keys/ledger.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the signing key is private");
    }

    let (status, logs) = server.terminate();
    assert!(status.success(), "exit status {status:?}; logs: {logs:?}");
    assert!(logs.iter().any(|l| l.contains("stopped")), "{logs:?}");
}

#[test]
fn a_second_instance_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = warden();
    cmd.arg("--data-dir").arg(dir.path());
    let first = Server::start(&mut cmd);
    let out = run(
        dir.path(),
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ],
        "",
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("in use by another Warden process"),
        "{}",
        text(&out.stderr)
    );
    drop(first);
}

#[test]
fn an_invalid_configuration_stops_start_up_with_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("warden.yaml");
    std::fs::write(
        &cfg,
        "server:\n  listen: nowhere\nledger:\n  batch_max: lots\n  bacth_wait: 1ms\n",
    )
    .unwrap();
    let out = warden()
        .args(["--config"])
        .arg(&cfg)
        .args(["serve"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("warden.yaml:2:11: server.listen"), "{err}");
    assert!(err.contains("warden.yaml:4:14: ledger.batch_max"), "{err}");
    assert!(err.contains("bacth_wait"), "{err}");
}

#[test]
fn the_first_start_prints_a_bootstrap_admin_key_once_and_never_logs_it() {
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        let mut cmd = warden();
        cmd.arg("--data-dir").arg(dir.path());
        Server::start(&mut cmd)
    };
    let first = start();
    let line = first
        .stdout
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the bootstrap notice");
    assert!(line.contains("shown only this once"), "{line}");
    let key = first
        .stdout
        .recv_timeout(std::time::Duration::from_secs(10))
        .unwrap()
        .trim()
        .to_owned();
    assert!(key.starts_with("wdn_"), "{key}");
    let (_, logs) = first.terminate();
    assert!(
        logs.iter().all(|l| !l.contains(&key)),
        "the key reached the log"
    );

    // The key works for the CLI's view of the store, and a second start prints nothing.
    let out = run(
        dir.path(),
        &["keys", "list", "--tenant", "default", "--json"],
        "",
    );
    let keys: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(keys[0]["scopes"][0], "admin");
    assert_eq!(keys[0]["label"], "bootstrap");
    let second = start();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(second.stdout.try_recv().is_err(), "a key was printed again");
}
