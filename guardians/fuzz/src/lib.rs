//! Shared engine and invariants for the fuzz targets in `fuzz_targets/`.
//!
//! The invariants are the ones the crate documents:
//! - no input panics (text, JSON, any chunking of a stream);
//! - redacted output never contains the text of a finding whose action is `redact`, except where
//!   the same text also appears, unredacted, outside every redacted span of the input (a second
//!   occurrence the detectors did not flag, e.g. a number without its context word);
//! - a stream on the `response` channel releases the same text and the same findings as a
//!   whole-text scan when nothing blocks and no finding is longer than the hold-back (the
//!   contract in `src/stream.rs`).

use std::sync::OnceLock;

use warden_guardians::{Action, Channel, Finding, GuardianConfig, Guardians};

/// The default engine, compiled once per process.
pub fn engine() -> &'static Guardians {
    static G: OnceLock<Guardians> = OnceLock::new();
    G.get_or_init(|| Guardians::new(GuardianConfig::default()).expect("default config compiles"))
}

/// A channel chosen by one input byte.
pub fn channel(b: u8) -> Channel {
    match b % 4 {
        0 => Channel::UserInput,
        1 => Channel::ToolOutput,
        2 => Channel::Response,
        _ => Channel::ToolArgs,
    }
}

/// Panics if `redacted` (the redaction of `original`) still contains the text of a redacted
/// finding that does not also occur outside the redacted spans of `original`.
pub fn assert_redacted<'a>(
    original: &str,
    redacted: &str,
    findings: impl IntoIterator<Item = &'a Finding>,
) {
    let redact: Vec<&Finding> = findings
        .into_iter()
        .filter(|f| f.action == Action::Redact)
        .collect();
    if redact.is_empty() {
        return;
    }
    // The input with every redacted span blanked: what may legitimately survive redaction.
    let mut outside = String::with_capacity(original.len());
    let mut spans: Vec<(usize, usize)> = redact.iter().map(|f| (f.start, f.end)).collect();
    spans.sort_unstable();
    let mut pos = 0;
    for (s, e) in spans {
        let s = s.max(pos);
        if s >= e {
            continue;
        }
        outside.push_str(&original[pos..s]);
        outside.push('\u{0}');
        pos = e;
    }
    outside.push_str(&original[pos..]);
    for f in redact {
        let t = f
            .text(original)
            .unwrap_or_else(|| panic!("finding {f:?} is not a span of the input"));
        // A placeholder (`[SECRET]`, `[EMAIL_ADDRESS:…]`) next to kept text can spell a short
        // finding again; such a text is not a leak of the original.
        if t.contains(['[', ']', '*', ':']) || t.len() < 4 {
            continue;
        }
        if redacted.contains(t) && !outside.contains(t) {
            panic!("redacted output still holds {t:?} ({f:?})\ninput: {original:?}\noutput: {redacted:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leak_is_caught_and_a_redaction_passes() {
        let text = "key AKIAIOSFODNN7EXAMPLZ here";
        let r = engine().scan_text(text, Channel::Response);
        assert!(r.findings.iter().any(|f| f.action == Action::Redact));
        assert_redacted(text, &r.redacted, &r.findings);
        // The same text twice with only the first occurrence redacted by the finding: the second
        // copy is outside every span, so it is no leak.
        let twice = format!("{text} {text}");
        let first: Vec<Finding> = r.findings.clone();
        let half = format!("{} {text}", r.redacted);
        assert_redacted(&twice, &half, &first);
        // Output that kept the secret is a leak.
        let leak = std::panic::catch_unwind(|| assert_redacted(text, text, &r.findings));
        assert!(leak.is_err());
    }
}
