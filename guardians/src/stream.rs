//! The streaming scanner: text in, scanned (and redacted) text out.
//!
//! The scanner keeps a window: up to 128 bytes (at most `hold_back`) of already-released text as
//! look-behind context, then the unreleased text. Each push rescans the window and releases text up to
//! `hold_back` bytes before its end, never cutting through a finding (a match that reaches into
//! the held tail keeps everything from its start held). So any match no longer than `hold_back`
//! is seen whole whatever the chunking, and its redaction happens before release. Findings are
//! reported once, with offsets from the start of the stream.
//!
//! Injection evidence adds up over the stream; evidence is reported once the running score
//! reaches `flag_threshold` (earlier evidence then too), so the findings of a stream equal those
//! of the whole text. Its action follows the running score at the time, so an early fragment may
//! have been released before later evidence pushed the score over `block_threshold`; the block
//! then stops the rest.
//!
//! A block stops release for good: the blocking chunk and everything after it are dropped. The
//! scanner never releases text it has not scanned: there is no error path that flushes the
//! buffer.
//!
//! Costs and limits: the window is rescanned only when `min_release` new bytes wait beyond the
//! hold-back, and it is at most `128 + hold_back + min_release` plus one chunk long, so each byte
//! is scanned about `(128 + hold_back + min_release) / min_release` times (2.5× with the
//! defaults); the latency added is at most `hold_back + min_release` bytes of output.
//! Matches longer than `hold_back` (e.g. a whole PEM private key) are caught only if their first
//! `hold_back` bytes already match.

use std::ops::Deref;

use serde::{Deserialize, Serialize};

use crate::finding::{Action, Channel, DetectorId, Finding};
use crate::injection::{self, Evidence, InjectionDetector};
use crate::pii::floor_boundary;
use crate::Guardians;

/// Released text kept before the next scan's new text: the left context detectors look at when
/// a match starts right after the released part (PII context words up to 48 bytes back, a
/// gitleaks key name and assignment before a secret, one byte for `\b`). Matches themselves
/// never start in released text (a match no longer than `hold_back` that crosses the release
/// point was held back whole), so the look-behind does not need to be `hold_back` long.
const CONTEXT: usize = 128;

/// What one [`StreamScanner::push`] or [`StreamScanner::finish`] releases.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamOutput {
    /// Scanned, redacted text safe to forward (possibly empty).
    pub text: String,
    /// Findings that became final in this step (offsets from the stream's start).
    pub findings: Vec<Finding>,
    /// Whether the stream is blocked: nothing more will be released.
    pub blocked: bool,
    /// The running injection score.
    pub injection_score: f32,
}

/// Scans a stream chunk by chunk; see the module docs for the guarantees.
///
/// `G` is anything that derefs to [`Guardians`]: `&Guardians` or `Arc<Guardians>`.
#[derive(Debug)]
pub struct StreamScanner<G: Deref<Target = Guardians>> {
    g: G,
    channel: Channel,
    buf: String,
    /// Absolute stream offset of `buf[0]`.
    base: usize,
    /// Absolute offset up to which text has been released.
    released: usize,
    blocked: bool,
    finished: bool,
    /// Injection evidence that is final (absolute spans).
    evidence: Vec<Evidence>,
    /// How many of `evidence` have been reported as findings.
    evidence_reported: usize,
    score: f32,
}

impl<G: Deref<Target = Guardians>> StreamScanner<G> {
    /// A scanner over `guardians` for text on `channel`.
    pub fn new(guardians: G, channel: Channel) -> Self {
        StreamScanner {
            g: guardians,
            channel,
            buf: String::new(),
            base: 0,
            released: 0,
            blocked: false,
            finished: false,
            evidence: Vec::new(),
            evidence_reported: 0,
            score: 0.0,
        }
    }

    /// Feeds one chunk; returns the text that may now be released.
    pub fn push(&mut self, chunk: &str) -> StreamOutput {
        if self.blocked || self.finished {
            return self.idle();
        }
        self.buf.push_str(chunk);
        let cfg = &self.g.config().stream;
        if self.base + self.buf.len() < self.released + cfg.hold_back + cfg.min_release.max(1) {
            return self.idle();
        }
        self.step(false)
    }

    /// Scans and releases everything still held. Later pushes release nothing.
    pub fn finish(&mut self) -> StreamOutput {
        if self.blocked || self.finished {
            return self.idle();
        }
        let out = self.step(true);
        self.finished = true;
        out
    }

    /// Whether a block stopped the stream.
    pub fn is_blocked(&self) -> bool {
        self.blocked
    }

    /// The running injection score.
    pub fn injection_score(&self) -> f32 {
        self.score
    }

    /// Bytes released so far (of the input; redaction may change the output length).
    pub fn released(&self) -> usize {
        self.released
    }

    fn idle(&self) -> StreamOutput {
        StreamOutput {
            text: String::new(),
            findings: Vec::new(),
            blocked: self.blocked,
            injection_score: self.score,
        }
    }

    fn step(&mut self, last: bool) -> StreamOutput {
        let g: &Guardians = &self.g;
        let hold = g.config().stream.hold_back;
        let end = self.base + self.buf.len();
        let raw = g.raw_scan(&self.buf, self.channel);
        let base = self.base;
        let mut r = if last {
            end
        } else {
            base + floor_boundary(&self.buf, self.buf.len().saturating_sub(hold))
        };
        // Never cut through a match: hold everything from the start of one that crosses `r`.
        let spans = raw
            .findings
            .iter()
            .map(|f| (f.start, f.end))
            .chain(raw.evidence.iter().map(|e| (e.start, e.end)))
            .map(|(s, e)| (s + base, e + base));
        let spans: Vec<(usize, usize)> = spans.collect();
        loop {
            let mut moved = false;
            for &(s, e) in &spans {
                if s < r && e > r {
                    r = s.max(self.released);
                    moved = true;
                }
            }
            if !moved || r == self.released {
                break;
            }
        }
        let r = r.max(self.released);
        let released = self.released;
        let fresh = |s: usize, e: usize| e > released && e <= r && s < e;

        let mut out: Vec<Finding> = raw
            .findings
            .into_iter()
            .map(|mut f| {
                f.start += base;
                f.end += base;
                f
            })
            .filter(|f| fresh(f.start, f.end))
            .collect();

        for mut e in raw.evidence {
            e.start += base;
            e.end += base;
            if fresh(e.start, e.end)
                && !self
                    .evidence
                    .iter()
                    .any(|x| x.rule == e.rule && x.start == e.start && x.end == e.end)
            {
                self.evidence.push(e);
            }
        }
        let untrusted = self.channel.is_untrusted();
        self.score = InjectionDetector::score(&self.evidence, untrusted);
        let cfg = &g.config().prompt_injection;
        if self.score >= cfg.flag_threshold && self.evidence_reported < self.evidence.len() {
            let mut inj = Vec::new();
            injection::to_findings(
                &self.evidence[self.evidence_reported..],
                self.score,
                cfg,
                self.channel,
                &mut inj,
            );
            self.evidence_reported = self.evidence.len();
            out.extend(inj);
        }
        out.sort_by_key(|a| (a.start, a.end, a.detector));

        if out.iter().any(|f| f.action == Action::Block) {
            self.blocked = true;
            self.buf.clear();
            return StreamOutput {
                text: String::new(),
                findings: out,
                blocked: true,
                injection_score: self.score,
            };
        }

        let mut text = String::with_capacity(r - released);
        let refs: Vec<&Finding> = out
            .iter()
            .filter(|f| f.detector != DetectorId::PromptInjection || f.end > released)
            .collect();
        g.redactor()
            .redact_range(&self.buf, base, released - base, r - base, &refs, &mut text);
        self.released = r;

        // Keep some released text as look-behind context for the next scan.
        let keep_from = floor_boundary(&self.buf, (r - base).saturating_sub(hold.min(CONTEXT)));
        if keep_from > 0 {
            self.buf.drain(..keep_from);
            self.base += keep_from;
        }
        StreamOutput {
            text,
            findings: out,
            blocked: false,
            injection_score: self.score,
        }
    }
}
