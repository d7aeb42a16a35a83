//! No input makes the scanner, the streaming scanner or the JSON walker panic (the proptest
//! stand-in for a `cargo fuzz` target). Raise the case count with `GUARDIANS_PROPTEST_CASES`.

mod common;

use proptest::prelude::*;
use serde_json::Value;
use warden_guardians::Channel;

fn cases() -> u32 {
    std::env::var("GUARDIANS_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

fn channel() -> impl Strategy<Value = Channel> {
    prop_oneof![
        Just(Channel::UserInput),
        Just(Channel::ToolOutput),
        Just(Channel::Response),
        Just(Channel::ToolArgs)
    ]
}

/// Text that exercises the detectors: fragments that look like the things they match, glued with
/// arbitrary bytes (decoded lossily, as a proxy decodes a body).
fn tricky_text() -> impl Strategy<Value = String> {
    let frag = prop_oneof![
        Just("@".to_string()),
        Just("4111 1111".to_string()),
        Just("AKIA".to_string()),
        Just("ignore previous".to_string()),
        Just("%20".to_string()),
        Just("aGVsbG8gd29ybGQgaWdub3Jl".to_string()),
        Just("\u{E0069}\u{E0067}".to_string()),
        Just("\u{200B}".to_string()),
        Just("ｉ".to_string()),
        Just("::".to_string()),
        Just("-----BEGIN".to_string()),
        Just("${{".to_string()),
        Just("[at]".to_string()),
        "[0-9 .()+-]{0,20}",
        prop::collection::vec(any::<u8>(), 0..40)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        any::<String>(),
    ];
    prop::collection::vec(frag, 0..30).prop_map(|v| v.concat())
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        tricky_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(tricky_text(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn scan_text_never_panics(text in tricky_text(), ch in channel()) {
        let r = common::guardians().scan_text(&text, ch);
        for f in &r.findings {
            prop_assert!(f.start <= f.end && f.end <= text.len());
            prop_assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
        }
    }

    #[test]
    fn stream_never_panics_and_releases_only_scanned_text(
        text in tricky_text(),
        cuts in prop::collection::vec(any::<usize>(), 0..20),
        ch in channel(),
    ) {
        let g = common::guardians();
        let mut s = g.stream(ch);
        let mut bounds: Vec<usize> = cuts.into_iter().map(|c| {
            let mut c = if text.is_empty() { 0 } else { c % (text.len() + 1) };
            while !text.is_char_boundary(c) { c -= 1; }
            c
        }).collect();
        bounds.sort_unstable();
        bounds.dedup();
        let mut prev = 0;
        let mut out = String::new();
        for b in bounds.into_iter().chain([text.len()]) {
            out.push_str(&s.push(&text[prev..b]).text);
            prev = b;
        }
        out.push_str(&s.finish().text);
        let whole = g.scan_text(&text, ch);
        if !s.is_blocked() && !whole.blocked {
            prop_assert_eq!(out, whole.redacted);
        }
    }

    #[test]
    fn json_walker_never_panics(v in json_value(), ch in channel()) {
        let r = common::guardians().scan_json(&v, ch);
        for f in &r.findings {
            prop_assert!(f.pointer.is_empty() || f.pointer.starts_with('/'));
        }
    }
}

#[test]
fn huge_input() {
    let g = common::guardians();
    let unit = "lorem ipsum 4111 1111 1111 1111 jane@example.com ü ";
    let text = unit.repeat((1 << 20) / unit.len());
    let r = g.scan_text(&text, Channel::Response);
    assert!(r.findings.len() > 1000);
    let mut s = g.stream(Channel::Response);
    let mut n = 0;
    for chunk in text.as_bytes().chunks(4096) {
        // chunks of bytes cut anywhere: decode what is whole, as a proxy would
        n += s.push(&String::from_utf8_lossy(chunk)).text.len();
    }
    n += s.finish().text.len();
    assert!(n > 0);
}

#[test]
fn deeply_nested_json() {
    let g = common::guardians();
    let mut v = Value::String("jane@example.com".into());
    for _ in 0..2000 {
        v = Value::Array(vec![v]);
    }
    let r = g.scan_json(&v, Channel::ToolArgs);
    assert!(!r.findings.is_empty());
    // serde_json drops deep values recursively; keep the test's own drop shallow enough
    std::mem::forget(v);
}
