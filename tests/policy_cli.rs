//! `warden policy`: check, table-test and sign packs from the command line.

mod common;

use common::*;

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policies");

#[test]
fn every_example_pack_passes_its_table_tests() {
    let mut packs = 0;
    for entry in std::fs::read_dir(EXAMPLES).unwrap() {
        let cases = entry.unwrap().path();
        let name = cases.file_name().unwrap().to_str().unwrap().to_owned();
        let Some(stem) = name.strip_suffix(".cases.yaml") else {
            continue;
        };
        let pack = cases.with_file_name(format!("{stem}.yaml"));
        let out = run_cmd(
            {
                let mut c = warden();
                c.args(["policy", "test"])
                    .arg(&pack)
                    .arg(&cases)
                    .arg("--json");
                c
            },
            "",
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(out.status.code(), Some(0), "{name}: {report}");
        assert!(report["passed"].as_u64().unwrap() >= 5, "{name}: {report}");
        packs += 1;
    }
    assert_eq!(packs, 5);
}

#[test]
fn a_failing_case_and_a_broken_pack_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases.yaml");
    std::fs::write(
        &cases,
        "cases:\n  - name: refund of 1250 is allowed (wrong on purpose)\n    input: {decision_type: decision.evaluate, action: execute_refund, context: {amount: 1250.0}}\n    expect: {verdict: allow}\n",
    )
    .unwrap();
    let mut c = warden();
    c.args(["policy", "test", "default"]).arg(&cases);
    let out = run_cmd(c, "");
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("FAIL") && stdout.contains("got escalate"),
        "{stdout}"
    );

    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "pack: x\nversion: 1.0.0\nrules:\n  - id: a\n    when: {field: amount, op: greater, value: 3}\n    outcome: block\n    reason: TOO_BIG\n",
    )
    .unwrap();
    let mut c = warden();
    c.args(["policy", "check"]).arg(&bad);
    let out = run_cmd(c, "");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("bad.yaml:5:31: rules[0].when.op: unknown operator \"greater\""),
        "{err}"
    );
}

#[test]
fn signing_writes_a_detached_signature_line() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("policy.key");
    let mut c = warden();
    c.args(["keygen", "--json", "--out"]).arg(&key);
    let out = run_cmd(c, "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let key_id = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let pack = dir.path().join("refunds.yaml");
    std::fs::copy(format!("{EXAMPLES}/refunds.yaml"), &pack).unwrap();
    for _ in 0..2 {
        let mut c = warden();
        c.args(["policy", "sign"]).arg(&pack).arg("--key").arg(&key);
        let out = run_cmd(c, "");
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let sig = std::fs::read_to_string(dir.path().join("refunds.yaml.sig")).unwrap();
    assert_eq!(
        sig.lines().count(),
        1,
        "signing twice with one key keeps one line: {sig}"
    );
    assert!(sig.starts_with(&format!("{key_id} ")), "{sig}");
}
