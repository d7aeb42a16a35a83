//! Arbitrary bytes scanned as text (lossily decoded, and as-is when valid UTF-8) on every channel.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden_guardians_fuzz::{assert_redacted, channel, engine};

fuzz_target!(|data: &[u8]| {
    let Some((&ch, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let r = engine().scan_text(&text, channel(ch));
    for f in &r.findings {
        assert!(f.start < f.end && f.end <= text.len(), "bad span {f:?}");
        assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
        assert!((0.0..=1.0).contains(&f.score), "score out of range {f:?}");
    }
    assert_eq!(
        r.blocked,
        r.findings
            .iter()
            .any(|f| f.action == warden_guardians::Action::Block)
    );
    if r.findings
        .iter()
        .all(|f| f.action != warden_guardians::Action::Redact)
    {
        assert_eq!(r.redacted, text);
    }
    assert_redacted(&text, &r.redacted, &r.findings);
});
