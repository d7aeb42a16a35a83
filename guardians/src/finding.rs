//! What a scan reports: findings, per-detector actions, the injection score and the redacted text.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a piece of text sits in an agent's traffic; decides which actions apply and whether the
/// text is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// A prompt or message sent by the agent or its user (the request direction).
    UserInput,
    /// A tool result or retrieved content fed back to the model: untrusted.
    ToolOutput,
    /// The model's answer (the response direction).
    Response,
    /// Arguments of a tool call the model proposes.
    ToolArgs,
}

impl Channel {
    /// Whether text on this channel comes from a party the agent does not control (tool results,
    /// retrieved documents). Injection rules score such text higher.
    pub fn is_untrusted(self) -> bool {
        matches!(self, Channel::ToolOutput)
    }

    /// The serde name (`user_input`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::UserInput => "user_input",
            Channel::ToolOutput => "tool_output",
            Channel::Response => "response",
            Channel::ToolArgs => "tool_args",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The four detectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorId {
    /// Personal data (Presidio entity names).
    Pii,
    /// Credentials (the gitleaks rule set).
    Secrets,
    /// Prompt injection and jailbreaks.
    PromptInjection,
    /// Harmful content categories.
    ContentSafety,
}

impl DetectorId {
    /// All detectors, in report order.
    pub const ALL: [DetectorId; 4] = [
        DetectorId::Pii,
        DetectorId::Secrets,
        DetectorId::PromptInjection,
        DetectorId::ContentSafety,
    ];

    /// The serde name (`pii`, `secrets`, `prompt_injection`, `content_safety`).
    pub fn as_str(self) -> &'static str {
        match self {
            DetectorId::Pii => "pii",
            DetectorId::Secrets => "secrets",
            DetectorId::PromptInjection => "prompt_injection",
            DetectorId::ContentSafety => "content_safety",
        }
    }
}

impl fmt::Display for DetectorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to do with a finding, in increasing severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Report only.
    Flag,
    /// Replace the matched text before it is forwarded or released.
    Redact,
    /// Refuse the whole request / cut the stream.
    Block,
}

impl Action {
    /// The name used in configuration, reports and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Flag => "flag",
            Action::Redact => "redact",
            Action::Block => "block",
        }
    }
}

/// One detection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Which detector produced it.
    pub detector: DetectorId,
    /// Presidio-style entity type (`EMAIL_ADDRESS`, `SECRET`, `INSTRUCTION_OVERRIDE`, `VIOLENCE`...).
    pub entity_type: Cow<'static, str>,
    /// The rule that fired: a gitleaks rule id, an injection rule id, a content lexicon id, or the
    /// PII recognizer.
    pub rule: Cow<'static, str>,
    /// Byte offset of the first byte (in the scanned text; in a stream, from the stream's start).
    pub start: usize,
    /// Byte offset one past the last byte.
    pub end: usize,
    /// Confidence in `0.0..=1.0`.
    pub score: f32,
    /// The action configured for this detector, entity and channel.
    pub action: Action,
}

impl Finding {
    /// The matched text, if `text` is the text that was scanned.
    pub fn text<'t>(&self, text: &'t str) -> Option<&'t str> {
        text.get(self.start..self.end)
    }
}

/// The prompt-injection detector's verdict on one text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InjectionVerdict {
    /// Combined score in `0.0..=1.0` (noisy-OR of the distinct rules that fired, scaled for
    /// untrusted channels).
    pub score: f32,
    /// The evidence: the rule ids that fired, in order of first occurrence.
    pub evidence: Vec<Cow<'static, str>>,
}

/// The strongest action one detector would take on a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectorAction {
    /// The detector.
    pub detector: DetectorId,
    /// Its strongest action over all its findings.
    pub action: Action,
    /// How many findings it reported.
    pub count: usize,
}

/// The result of [`crate::Guardians::scan_text`]; serializes to the line `warden scan` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanReport {
    /// The channel the text was scanned as.
    pub channel: Channel,
    /// All findings, ordered by start offset.
    pub findings: Vec<Finding>,
    /// The injection score and its evidence.
    pub injection: InjectionVerdict,
    /// Per detector that found something: its strongest action.
    pub actions: Vec<DetectorAction>,
    /// The strongest action overall, `None` when nothing was found.
    pub action: Option<Action>,
    /// Whether the text must not be forwarded.
    pub blocked: bool,
    /// The text with every `redact` finding replaced (identical to the input when none).
    pub redacted: String,
}

impl ScanReport {
    /// Whether any detector found anything.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

pub(crate) fn summarize(findings: &[Finding]) -> (Vec<DetectorAction>, Option<Action>) {
    let mut actions: Vec<DetectorAction> = Vec::new();
    for d in DetectorId::ALL {
        let mut count = 0;
        let mut best: Option<Action> = None;
        for f in findings.iter().filter(|f| f.detector == d) {
            count += 1;
            best = best.max(Some(f.action));
        }
        if let Some(action) = best {
            actions.push(DetectorAction {
                detector: d,
                action,
                count,
            });
        }
    }
    let overall = actions.iter().map(|a| a.action).max();
    (actions, overall)
}

/// Among `out[first..]`, keeps the best of each group of overlapping findings (highest score,
/// then longest, then earliest; ties keep their order) and drops the rest.
pub(crate) fn keep_best_non_overlapping(out: &mut Vec<Finding>, first: usize) {
    let new = &mut out[first..];
    if new.len() < 2 {
        return;
    }
    new.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then((b.end - b.start).cmp(&(a.end - a.start)))
            .then(a.start.cmp(&b.start))
    });
    // The kept spans in (start, end) order: they are disjoint, so their ends ascend too, and a
    // span overlaps one of them only if it overlaps the last one that starts before its end.
    let mut taken: Vec<(usize, usize)> = Vec::with_capacity(new.len());
    let mut kept = first;
    for i in first..out.len() {
        let (s, e) = (out[i].start, out[i].end);
        let before = taken.partition_point(|k| k.0 < e);
        if before > 0 && taken[before - 1].1 > s {
            continue;
        }
        taken.insert(taken.partition_point(|k| *k < (s, e)), (s, e));
        out.swap(kept, i);
        kept += 1;
    }
    out.truncate(kept);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The binary search keeps what comparing with every kept finding keeps, in the same order:
    /// on random findings, many of them overlapping, nested, touching or empty.
    #[test]
    fn keeping_the_best_matches_the_pairwise_check() {
        use rand::{Rng, SeedableRng};
        let plain = |out: &mut Vec<Finding>, first: usize| {
            let new = &mut out[first..];
            new.sort_by(|a, b| {
                b.score
                    .total_cmp(&a.score)
                    .then((b.end - b.start).cmp(&(a.end - a.start)))
                    .then(a.start.cmp(&b.start))
            });
            let mut kept: Vec<Finding> = Vec::new();
            for f in new.iter() {
                if kept.iter().all(|k| f.end <= k.start || f.start >= k.end) {
                    kept.push(f.clone());
                }
            }
            out.truncate(first);
            out.extend(kept);
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(19);
        let mut dropped = 0;
        for _ in 0..20_000 {
            let len = rng.random_range(0..30);
            let first = rng.random_range(0..3);
            let out: Vec<Finding> = (0..first + len)
                .map(|i| {
                    let start = rng.random_range(0..60);
                    Finding {
                        detector: DetectorId::Secrets,
                        entity_type: "SECRET".into(),
                        rule: format!("r{i}").into(),
                        start,
                        end: start + rng.random_range(0..12),
                        score: f32::from(rng.random_range(0u8..4)) / 4.0,
                        action: Action::Redact,
                    }
                })
                .collect();
            let (mut got, mut want) = (out.clone(), out);
            keep_best_non_overlapping(&mut got, first);
            plain(&mut want, first);
            assert_eq!(got, want);
            dropped += first + len - got.len();
        }
        assert!(dropped > 50_000, "{dropped}");
    }
}
