//! The ledger entries of a governed call: `llm.request` (what was asked, judged and found,
//! written while the upstream call is in flight) and `llm.response` (how it ended: status,
//! usage, latency, response findings, tool calls). Neither holds raw prompts or matched text:
//! hashes, counts and locations only.

use serde_json::{json, Value};
use warden_policy::Evaluation;

use super::inspect::Findings;

/// What a call's request record says about whether each check ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    Ran,
    /// It could not run and `fail_mode: open` let the call through.
    FailedOpen,
}

impl Check {
    fn as_str(self) -> &'static str {
        match self {
            Check::Ran => "ran",
            Check::FailedOpen => "failed_open",
        }
    }
}

pub struct RequestRecord<'a> {
    pub decision_id: &'a str,
    pub route: &'a str,
    pub model: &'a str,
    pub upstream: &'a str,
    pub agent: &'a str,
    pub key_id: &'a str,
    pub intent_id: Option<&'a str>,
    pub body_sha256: &'a str,
    pub prompt_tokens: u64,
    pub counted: super::Counted,
    pub max_tokens: Option<u64>,
    pub stream: bool,
    pub tools: &'a [String],
    pub findings: &'a Findings,
    pub evaluation: Option<&'a Evaluation>,
    pub verdict: &'a str,
    pub reason_codes: &'a [String],
    pub policy_check: Check,
    pub escalation_thread_id: Option<&'a str>,
}

impl RequestRecord<'_> {
    pub fn payload(&self) -> Value {
        json!({
            "decision_id": self.decision_id,
            "route": self.route,
            "model": self.model,
            "upstream": self.upstream,
            "agent_id": self.agent,
            "key_id": self.key_id,
            "intent_id": self.intent_id,
            "request": {
                "body_sha256": self.body_sha256,
                "prompt_tokens": self.prompt_tokens,
                "tokens_counted": self.counted,
                "max_tokens": self.max_tokens,
                "stream": self.stream,
                "tools": self.tools,
            },
            "guardians": findings_json(self.findings),
            "verdict": self.verdict,
            "reason_codes": self.reason_codes,
            "policy_hash": self.evaluation.map(|e| e.policy_hash.as_str()),
            "governance_utilization": self.evaluation.map(|e| e.utilization),
            "checks": {"guardians": "ran", "policy": self.policy_check.as_str()},
            "escalation_thread_id": self.escalation_thread_id,
        })
    }
}

pub fn findings_json(f: &Findings) -> Value {
    json!({
        "scanned": f.scanned,
        "counts": f.counts,
        "injection_score": (f.injection_score * 1000.0).round() / 1000.0,
        "action": f.action,
        "blocked": f.blocked,
        "redacted": f.redacted,
        "spots": f.spots,
    })
}

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    Completed,
    /// The guardians blocked the response (or cut the stream).
    Blocked,
    UpstreamError,
    UpstreamTimeout,
    ClientDisconnected,
}

impl Ending {
    pub fn as_str(self) -> &'static str {
        match self {
            Ending::Completed => "completed",
            Ending::Blocked => "blocked",
            Ending::UpstreamError => "upstream_error",
            Ending::UpstreamTimeout => "upstream_timeout",
            Ending::ClientDisconnected => "client_disconnected",
        }
    }
}

/// Usage as the provider reported it (chat/completions or responses naming).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt: u64,
    pub completion: u64,
}

impl Usage {
    pub fn from_json(u: &Value) -> Option<Usage> {
        let get = |a: &str, b: &str| u.get(a).or_else(|| u.get(b)).and_then(Value::as_u64);
        let prompt = get("prompt_tokens", "input_tokens")?;
        Some(Usage {
            prompt,
            completion: get("completion_tokens", "output_tokens").unwrap_or(0),
        })
    }

    pub fn total(&self) -> u64 {
        self.prompt + self.completion
    }
}

pub struct ResponseRecord<'a> {
    pub decision_id: &'a str,
    pub request_index: Option<u64>,
    pub status: u16,
    pub ending: Ending,
    pub latency_ms: f64,
    pub usage: Option<Usage>,
    pub findings: &'a Findings,
    pub tool_calls: &'a [Value],
}

impl ResponseRecord<'_> {
    pub fn payload(&self) -> Value {
        json!({
            "decision_id": self.decision_id,
            "request_index": self.request_index,
            "status": self.status,
            "outcome": self.ending.as_str(),
            "latency_ms": (self.latency_ms * 1000.0).round() / 1000.0,
            "usage": self.usage.map(|u| json!({
                "prompt_tokens": u.prompt,
                "completion_tokens": u.completion,
                "total_tokens": u.total(),
            })),
            "guardians": findings_json(self.findings),
            "tool_calls": self.tool_calls,
        })
    }
}
