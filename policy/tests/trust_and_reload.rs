//! Hash stability, signatures, directory loading, hot reload and table tests.

use std::path::Path;

use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::SigningKey;
use serde_json::json;
use warden_policy::trust::{sig_path, verify_signature};
use warden_policy::{
    key_id, load_pack_file, run_cases, sign_pack, Input, LivePolicySet, Outcome, Pack, PackError,
    PolicySet, TrustPolicy, TrustedKey,
};

const PACK: &str = r#"# Refund limits
pack: refunds
version: 1.0.0
rules:
  - id: big
    when: {field: amount, op: ">", value: 1000}   # the threshold
    outcome: escalate
    reason: AMOUNT_OVER_THRESHOLD
"#;

/// The same pack: other comments, block style, other key order, quoted strings, 1000.0.
const PACK_REFORMATTED: &str = r#"
version: "1.0.0"
pack: 'refunds'
# no comment on the rules
rules:
- outcome: escalate
  id: big
  reason: "AMOUNT_OVER_THRESHOLD"
  when:
    value: 1000.0
    op: '>'
    field: amount
"#;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn trust(keys: &[&SigningKey]) -> TrustPolicy {
    let pems: Vec<String> = keys
        .iter()
        .map(|k| {
            k.verifying_key()
                .to_public_key_pem(Default::default())
                .unwrap()
        })
        .collect();
    TrustPolicy::require_signature_pem(&pems).unwrap()
}

#[test]
fn hash_ignores_formatting_but_not_values() {
    let a = Pack::from_yaml(PACK, "a").unwrap();
    let b = Pack::from_yaml(PACK_REFORMATTED, "b").unwrap();
    assert_eq!(a.hash(), b.hash());
    assert_eq!(a.canonical_json(), b.canonical_json());
    assert!(a.hash().starts_with("sha256:") && a.hash().len() == 7 + 64);
    let changed = Pack::from_yaml(&PACK.replace("1000", "1001"), "c").unwrap();
    assert_ne!(a.hash(), changed.hash());
    let bumped = Pack::from_yaml(&PACK.replace("1.0.0", "1.0.1"), "d").unwrap();
    assert_ne!(a.hash(), bumped.hash());
    assert_eq!(
        a.canonical_json(),
        r#"{"pack":"refunds","rules":[{"id":"big","outcome":"escalate","reason":"AMOUNT_OVER_THRESHOLD","when":{"field":"amount","op":">","value":1000}}],"version":"1.0.0"}"#
    );
}

#[test]
fn key_ids_are_the_first_8_bytes_of_the_public_key_hash() {
    use sha2::{Digest, Sha256};
    let k = key(1).verifying_key();
    assert_eq!(key_id(&k), hex::encode(&Sha256::digest(k.as_bytes())[..8]));
    assert_eq!(key_id(&k).len(), 16);
    assert_eq!(TrustedKey::new(k).id(), key_id(&k));
    assert!(matches!(
        TrustedKey::from_pem("nope"),
        Err(PackError::InvalidKey(_))
    ));
}

#[test]
fn signatures_accept_and_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("refunds.yaml");
    std::fs::write(&path, PACK).unwrap();
    let signer = key(1);
    let other = key(2);

    // Unsigned: fine without a trust requirement, refused with one.
    assert!(load_pack_file(&path, &TrustPolicy::AllowUnsigned).is_ok());
    let err = load_pack_file(&path, &trust(&[&signer])).unwrap_err();
    assert!(matches!(err, PackError::Unsigned { .. }), "{err}");
    assert!(err.to_string().contains("unsigned pack refused"), "{err}");

    // Signed by a trusted key.
    let sig = sign_pack(PACK, &signer).unwrap();
    assert!(sig.starts_with(&format!("{} ", key_id(&signer.verifying_key()))));
    std::fs::write(sig_path(&path), &sig).unwrap();
    let pack = load_pack_file(&path, &trust(&[&other, &signer])).unwrap();
    assert_eq!(
        pack.signed_by(),
        Some(key_id(&signer.verifying_key()).as_str())
    );

    // Reformatting keeps the signature valid (it signs the canonical hash).
    std::fs::write(&path, PACK_REFORMATTED).unwrap();
    assert!(load_pack_file(&path, &trust(&[&signer])).is_ok());

    // An untrusted signer is refused.
    let err = load_pack_file(&path, &trust(&[&other])).unwrap_err();
    assert!(
        matches!(&err, PackError::BadSignature { reason, .. } if reason.contains("is not trusted")),
        "{err}"
    );

    // A changed threshold breaks the signature.
    std::fs::write(&path, PACK.replace("1000", "100000")).unwrap();
    let err = load_pack_file(&path, &trust(&[&signer])).unwrap_err();
    assert!(
        matches!(&err, PackError::BadSignature { reason, .. } if reason.contains("does not match")),
        "{err}"
    );

    // Garbage in the signature file.
    std::fs::write(&path, PACK).unwrap();
    std::fs::write(sig_path(&path), "garbage").unwrap();
    assert!(matches!(
        load_pack_file(&path, &trust(&[&signer])),
        Err(PackError::BadSignature { .. })
    ));
    let id = key_id(&signer.verifying_key());
    std::fs::write(sig_path(&path), format!("{id} !!!notbase64")).unwrap();
    assert!(matches!(
        load_pack_file(&path, &trust(&[&signer])),
        Err(PackError::BadSignature { .. })
    ));
    let pack = Pack::from_yaml(PACK, "p").unwrap();
    assert!(verify_signature(
        &pack,
        "",
        &[TrustedKey::new(signer.verifying_key())],
        Path::new("p")
    )
    .is_err());
    // Invalid packs cannot be signed.
    assert!(sign_pack("pack: [", &signer).is_err());
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn load_dir_skips_cases_and_reports_every_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "refunds.yaml", PACK);
    write(dir.path(), "refunds.cases.yaml", "cases: []\n");
    write(dir.path(), "notes.txt", "not a pack");
    write(dir.path(), "other.yml", "pack: other\nversion: 2.0.0\n");
    let set = PolicySet::load_dir(dir.path(), &TrustPolicy::AllowUnsigned).unwrap();
    assert_eq!(set.packs().len(), 2);
    assert!(set.pack("other").is_some());

    write(
        dir.path(),
        "a-bad.yaml",
        "pack: a\nversion: 1.0.0\nwat: 1\n",
    );
    write(dir.path(), "z-bad.yaml", "pack: z\nversion: nope\n");
    let err = PolicySet::load_dir(dir.path(), &TrustPolicy::AllowUnsigned).unwrap_err();
    assert!(
        matches!(err, PackError::Many(ref v) if v.len() == 2),
        "{err}"
    );
    assert_eq!(err.problems().len(), 2);
    let text = err.to_string();
    assert!(text.contains("a-bad.yaml:3:1: wat: unknown key"), "{text}");
    assert!(
        text.contains("z-bad.yaml:2:10: version: invalid version"),
        "{text}"
    );

    std::fs::remove_file(dir.path().join("z-bad.yaml")).unwrap();
    std::fs::write(
        dir.path().join("a-bad.yaml"),
        "pack: refunds\nversion: 9.0.0\n",
    )
    .unwrap();
    let err = PolicySet::load_dir(dir.path(), &TrustPolicy::AllowUnsigned).unwrap_err();
    assert!(matches!(err, PackError::DuplicatePack { .. }), "{err}");

    assert!(matches!(
        PolicySet::load_dir(&dir.path().join("missing"), &TrustPolicy::AllowUnsigned),
        Err(PackError::Io { .. })
    ));
}

#[test]
fn reload_swaps_valid_sets_and_keeps_the_old_one_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "refunds.yaml", PACK);
    let live = LivePolicySet::from_dir(dir.path(), TrustPolicy::AllowUnsigned).unwrap();
    let input = Input::new("x").with_context(json!({"amount": 5000}));
    assert_eq!(live.evaluate(&input).unwrap().verdict, Outcome::Escalate);
    let before = live.current();

    // Unchanged: a reload is a no-op.
    assert!(!live.reload().unwrap().changed());

    // A valid change is swapped in.
    write(dir.path(), "refunds.yaml", &PACK.replace("1000", "10000"));
    let r = live.reload().unwrap();
    assert!(r.changed());
    assert_eq!(r.previous_hash, before.hash());
    assert_eq!(live.evaluate(&input).unwrap().verdict, Outcome::Allow);
    let good = live.current();

    // An invalid file: the error is returned and the old set stays in force.
    write(
        dir.path(),
        "refunds.yaml",
        "pack: refunds\nversion: 1.0.0\nrules:\n  - id: x\n    outcome: maybe\n",
    );
    let err = live.reload().unwrap_err();
    assert!(
        err.to_string().contains("unknown outcome \"maybe\""),
        "{err}"
    );
    assert_eq!(live.current().hash(), good.hash());
    assert_eq!(live.evaluate(&input).unwrap().verdict, Outcome::Allow);

    // A snapshot taken before a reload stays usable and unchanged.
    assert_eq!(before.evaluate(&input).unwrap().verdict, Outcome::Escalate);

    // reload_with is the pure core.
    let e = live
        .reload_with(|| Err(PackError::InvalidKey("x".into())))
        .unwrap_err();
    assert!(matches!(e, PackError::InvalidKey(_)));
    assert_eq!(live.current().hash(), good.hash());
    live.reload_with(|| Ok(PolicySet::with_default_pack()))
        .unwrap();
    assert_eq!(live.current().packs()[0].id(), "warden-default");

    // Without a directory, reload changes nothing.
    let fixed = LivePolicySet::new(PolicySet::with_default_pack());
    assert!(!fixed.reload().unwrap().changed());
}

#[test]
fn reload_refuses_a_pack_whose_signature_broke() {
    let dir = tempfile::tempdir().unwrap();
    let signer = key(7);
    let path = dir.path().join("refunds.yaml");
    write(dir.path(), "refunds.yaml", PACK);
    std::fs::write(sig_path(&path), sign_pack(PACK, &signer).unwrap()).unwrap();
    let live = LivePolicySet::from_dir(dir.path(), trust(&[&signer])).unwrap();
    let hash = live.current().hash().to_owned();
    write(dir.path(), "refunds.yaml", &PACK.replace("1000", "999999"));
    assert!(matches!(live.reload(), Err(PackError::BadSignature { .. })));
    assert_eq!(live.current().hash(), hash);
}

#[test]
fn live_set_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<LivePolicySet>();
    assert_send_sync::<PolicySet>();
    assert_send_sync::<Pack>();
}

#[test]
fn run_cases_reports_each_case() {
    let set = PolicySet::new([Pack::from_yaml(PACK, "p").unwrap()]).unwrap();
    let cases = r#"
- name: small
  input: {decision_type: x, context: {amount: 5}}
  expect: {verdict: allow}
- name: big
  input: {decision_type: x, context: {amount: 5000}}
  expect: {verdict: escalate, reason_codes: [AMOUNT_OVER_THRESHOLD]}
- name: wrong expectation
  input: {decision_type: x, context: {amount: 5000}}
  expect: {verdict: block}
- name: wrong codes
  input: {decision_type: x, context: {amount: 5000}}
  expect: {verdict: escalate, reason_codes: [OTHER]}
- name: type mismatch
  input: {decision_type: x, context: {amount: "5000"}}
  expect: {verdict: escalate}
"#;
    let report = run_cases(&set, cases, "c.yaml").unwrap();
    assert_eq!((report.passed, report.failed), (2, 3));
    assert!(!report.all_passed());
    let r = &report.cases[2];
    assert_eq!((r.name.as_str(), r.passed), ("wrong expectation", false));
    assert_eq!(r.actual_verdict, Some(Outcome::Escalate));
    assert_eq!(r.expected_verdict, Outcome::Block);
    assert!(report.cases[4]
        .error
        .as_deref()
        .unwrap()
        .contains("expected number, found string"));
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(
        json["cases"][1]["actual_reason_codes"],
        json!(["AMOUNT_OVER_THRESHOLD"])
    );

    // Bad cases files are errors with positions.
    let err = run_cases(&set, "cases:\n  - name: x\n    input: {decision_type: x, bogus: 1}\n    expect: {verdict: perhaps}\n", "c.yaml").unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("c.yaml:3:12: cases[0].input: invalid input: unknown field `bogus`"),
        "{text}"
    );
    assert!(
        text.contains("c.yaml:4:23: cases[0].expect.verdict: unknown verdict \"perhaps\""),
        "{text}"
    );
    assert!(run_cases(&set, "cases: []\n", "c.yaml")
        .unwrap()
        .all_passed());
    assert!(run_cases(&set, "nope: 1\n", "c.yaml").is_err());
}

#[test]
fn the_watcher_reloads_on_change_and_keeps_the_old_set_on_error() {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "refunds.yaml", PACK);
    let live = Arc::new(LivePolicySet::from_dir(dir.path(), TrustPolicy::AllowUnsigned).unwrap());
    let first = live.current().hash().to_owned();
    let results: Arc<Mutex<Vec<Result<String, String>>>> = Arc::default();
    let sink = Arc::clone(&results);
    let watcher = live.watch(Duration::from_millis(20), move |r| {
        sink.lock()
            .unwrap()
            .push(r.map(|r| r.hash).map_err(|e| e.to_string()));
    });
    let wait_until = |done: &dyn Fn() -> bool| {
        let start = Instant::now();
        while !done() {
            assert!(start.elapsed() < Duration::from_secs(10), "no reload seen");
            std::thread::sleep(Duration::from_millis(10));
        }
    };

    // A different size guarantees a visible change even with coarse modification times. (A reload
    // may catch the file half-written and fail; the next poll then loads it whole.)
    write(dir.path(), "refunds.yaml", &PACK.replace("1000", "25000"));
    // The set is swapped before the callback runs: wait for both, the callback reporting the
    // new set's hash.
    wait_until(&|| {
        let now = live.current().hash().to_owned();
        now != first && results.lock().unwrap().last() == Some(&Ok(now))
    });
    let second = live.current().hash().to_owned();

    let seen = results.lock().unwrap().len();
    write(
        dir.path(),
        "refunds.yaml",
        "pack: refunds\nversion: broken\n",
    );
    wait_until(&|| results.lock().unwrap().len() > seen);
    std::thread::sleep(Duration::from_millis(100));
    assert!(results.lock().unwrap().last().unwrap().is_err());
    assert_eq!(live.current().hash(), second);
    drop(watcher);
}
