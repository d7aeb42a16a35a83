//! The ledger through the CLI: keygen, append, export, receipt, consistency and `warden verify`
//! with its exit codes (0 valid, 1 invalid, 2 unusable).

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

fn write(path: &Path, s: &str) -> String {
    std::fs::write(path, s).unwrap();
    path.display().to_string()
}

fn verify(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = run(dir, &[&["verify"], args].concat(), "");
    (
        out.status.code().unwrap(),
        text(&out.stdout) + &text(&out.stderr),
    )
}

#[test]
fn keygen_creates_refuses_to_overwrite_and_rotates() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["keygen", "--json"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let first: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(first["key_id"].as_str().unwrap().len(), 16);
    assert!(dir.path().join("keys/ledger.pub").exists());

    let out = run(dir.path(), &["keygen"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("--rotate"),
        "{}",
        text(&out.stderr)
    );

    let out = run(dir.path(), &["keygen", "--rotate", "--json"], "");
    assert!(out.status.success());
    let second: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(first["key_id"], second["key_id"]);
    let retired = dir.path().join(format!(
        "keys/retired/{}.pub",
        first["key_id"].as_str().unwrap()
    ));
    assert!(
        retired.exists(),
        "the old public key is kept for old checkpoints"
    );
}

#[test]
fn appended_records_verify_offline_and_tampering_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input: String = (0..50)
        .map(|i| format!("{{\"amount\": {i}, \"user\": \"usr_{i}\"}}\n"))
        .collect();
    let out = run(
        d,
        &["ledger", "append", "--kind", "refund", "--tenant", "acme"],
        &input,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let receipts: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(receipts.len(), 50);

    // A receipt handed out at append time verifies with the public key alone.
    let pubkey = d.join("keys/ledger.pub").display().to_string();
    let r = write(
        &d.join("r.json"),
        &serde_json::to_string(&receipts[7]).unwrap(),
    );
    assert_eq!(verify(d, &[&r, "--public-key", &pubkey]).0, 0);

    // The export verifies; the key comes from the data directory when not given.
    let out = run(d, &["ledger", "export"], "");
    assert!(out.status.success());
    let export = text(&out.stdout);
    let e = write(&d.join("export.jsonl"), &export);
    let (code, msg) = verify(d, &[&e]);
    assert_eq!(code, 0, "{msg}");
    assert!(msg.starts_with("VALID: export of 50 records"), "{msg}");

    // A changed amount in record 20: invalid, first bad index 20.
    let tampered: String = export
        .lines()
        .map(|l| {
            if l.contains("\"index\":20,") {
                l.replace("\"amount\":", "\"amount\":1") + "\n"
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let t = write(&d.join("tampered.jsonl"), &tampered);
    let out = run(d, &["verify", &t, "--json"], "");
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["first_bad_index"], 20);

    // Truncated (last line cut in half): unusable.
    let cut = write(&d.join("cut.jsonl"), &export[..export.len() - 30]);
    let (code, msg) = verify(d, &[&cut]);
    assert_eq!(code, 2, "{msg}");
    assert!(msg.contains("UNUSABLE"), "{msg}");

    // A stranger's key: invalid (the checkpoints are not signed by a trusted key).
    let other = tempfile::tempdir().unwrap();
    assert!(run(other.path(), &["keygen"], "").status.success());
    let other_pub = other.path().join("keys/ledger.pub").display().to_string();
    let (code, msg) = verify(d, &[&e, "--public-key", &other_pub]);
    assert_eq!(code, 1, "{msg}");
    assert!(msg.contains("not among the trusted keys"), "{msg}");

    // A malformed receipt and a key file that is not a key: unusable.
    let bad = write(
        &d.join("bad.json"),
        r#"{"index": 1, "inclusion_proof": "nope"}"#,
    );
    let (code, msg) = verify(d, &[&bad]);
    assert_eq!(code, 2, "{msg}");
    assert!(msg.contains("malformed receipt"), "{msg}");
    let junk = write(&d.join("junk.pem"), "not a key");
    let (code, msg) = verify(d, &[&e, "--public-key", &junk]);
    assert_eq!(code, 2, "{msg}");
    assert!(msg.contains("junk.pem"), "{msg}");

    // Receipts and consistency claims read back from the store verify too; a forged one does not.
    let out = run(d, &["ledger", "receipt", "42"], "");
    assert!(out.status.success());
    let r42 = write(&d.join("r42.json"), &text(&out.stdout));
    assert_eq!(verify(d, &[&r42]).0, 0);
    let size1 = receipts[0]["checkpoint"]["tree_size"]
        .as_u64()
        .unwrap()
        .to_string();
    let out = run(d, &["ledger", "consistency", "--from", &size1], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let claim = text(&out.stdout);
    let c = write(&d.join("c.json"), &claim);
    let (code, msg) = verify(d, &[&c]);
    assert_eq!(code, 0, "{msg}");
    let mut forged: Value = serde_json::from_str(&claim).unwrap();
    forged["to"]["root_hash"] = Value::String("00".repeat(32));
    let f = write(&d.join("f.json"), &forged.to_string());
    assert_eq!(verify(d, &[&f]).0, 1);

    // Reading a record that does not exist is a clear error.
    let out = run(d, &["ledger", "receipt", "500"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("beyond"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bad_input_lines_are_reported_and_the_rest_appended() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &["ledger", "append"],
        "{\"a\":1}\nnot json\n{\"b\":2}\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("stdin line 2: not JSON"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout).lines().count(), 2);
}

#[test]
fn exporting_without_a_ledger_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["ledger", "export"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no ledger at"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn config_check_reports_every_problem_and_accepts_the_example() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/warden.yaml");
    let out = warden()
        .args(["config", "check", example])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("OK"));

    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        &dir.path().join("bad.yaml"),
        "data_dir: /tmp/x\nledger:\n  batch_max: 0\n  batch_wait: soon\nlog:\n  format: xml\n",
    );
    let out = warden().args(["config", "check", &bad]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    for needle in [
        "bad.yaml:3:14: ledger.batch_max",
        "bad.yaml:4:15: ledger.batch_wait",
        "bad.yaml:6:11: log.format",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}
