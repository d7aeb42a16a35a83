//! JSON-ish input: parsed when it is JSON, otherwise wrapped as string leaves of a small document;
//! every finding's pointer must name a string leaf and its span must lie inside it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use warden_guardians_fuzz::{assert_redacted, channel, engine};

fuzz_target!(|data: &[u8]| {
    let Some((&ch, rest)) = data.split_first() else {
        return;
    };
    let value: Value = serde_json::from_slice(rest).unwrap_or_else(|_| {
        let s = String::from_utf8_lossy(rest).into_owned();
        let mut mid = s.len() / 2;
        while !s.is_char_boundary(mid) {
            mid -= 1;
        }
        let (a, b) = s.split_at(mid);
        json!({"arguments": {"query": a, "items": [b, 1, null, {"nested~/key": s.clone()}]}})
    });
    let r = engine().scan_json(&value, channel(ch));
    assert_eq!(
        r.blocked,
        r.findings
            .iter()
            .any(|f| f.finding.action == warden_guardians::Action::Block)
    );
    for jf in &r.findings {
        let leaf = value
            .pointer(&jf.pointer)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("pointer {:?} names no string leaf", jf.pointer));
        let f = &jf.finding;
        assert!(
            f.start < f.end && f.end <= leaf.len(),
            "bad span {f:?} in {leaf:?}"
        );
        let out = r
            .redacted
            .pointer(&jf.pointer)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("redacted copy lost leaf {:?}", jf.pointer));
        let same_leaf = r
            .findings
            .iter()
            .filter(|o| o.pointer == jf.pointer)
            .map(|o| &o.finding);
        assert_redacted(leaf, out, same_leaf);
    }
});
