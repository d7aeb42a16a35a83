//! A text fed to the streaming scanner in arbitrary chunks. Input layout: one byte for the
//! channel, one for the number of cuts (up to 31), two bytes per cut (a byte offset), then the
//! text (lossily decoded).
//!
//! On every channel: no panic, nothing after a block, no redacted text released. On `response`,
//! when the whole-text scan does not block and no finding is longer than the hold-back, the
//! stream must release exactly the whole scan's redacted text and report the same findings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden_guardians::{Channel, Finding};
use warden_guardians_fuzz::{assert_redacted, channel, engine};

fn key(f: &Finding) -> (String, String, usize, usize, String) {
    (
        f.detector.as_str().to_owned(),
        f.entity_type.to_string(),
        f.start,
        f.end,
        f.rule.to_string(),
    )
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let ch = channel(data[0]);
    let n = usize::from(data[1] % 32);
    let Some(cut_bytes) = data.get(2..2 + 2 * n) else {
        return;
    };
    let text = String::from_utf8_lossy(&data[2 + 2 * n..]);
    let mut cuts: Vec<usize> = cut_bytes
        .chunks_exact(2)
        .map(|c| {
            let mut i = usize::from(u16::from_le_bytes([c[0], c[1]])).min(text.len());
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            i
        })
        .collect();
    cuts.sort_unstable();
    cuts.dedup();

    let g = engine();
    let mut s = g.stream(ch);
    let mut out = String::new();
    let mut findings = Vec::new();
    let mut prev = 0;
    let mut blocked = false;
    for b in cuts.into_iter().chain([text.len()]) {
        let o = s.push(&text[prev..b]);
        if blocked {
            assert!(
                o.text.is_empty() && o.findings.is_empty(),
                "released after a block"
            );
        }
        blocked |= o.blocked;
        out.push_str(&o.text);
        findings.extend(o.findings);
        prev = b;
    }
    let o = s.finish();
    if blocked {
        assert!(o.text.is_empty(), "finish released after a block");
    }
    out.push_str(&o.text);
    findings.extend(o.findings);
    assert!(s.push("more").text.is_empty(), "released after finish");
    assert_redacted(&text, &out, &findings);

    let whole = g.scan_text(&text, ch);
    let hold = g.config().stream.hold_back;
    if ch == Channel::Response
        && !whole.blocked
        && whole.findings.iter().all(|f| f.end - f.start <= hold)
    {
        assert!(!s.is_blocked());
        let mut a: Vec<_> = whole.findings.iter().map(key).collect();
        let mut b: Vec<_> = findings.iter().map(key).collect();
        a.sort();
        b.sort();
        assert_eq!(a, b, "stream findings differ from the whole-text scan");
        assert_eq!(
            out, whole.redacted,
            "stream output differs from the whole-text scan"
        );
    }
});
