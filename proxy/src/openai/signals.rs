//! What a governed call tells the outside world besides its answer and its ledger records:
//! governance events (a guardian fired, policy blocked, a limit was hit) and metrics (guardian
//! triggers, tokens, rate-limit refusals).
//!
//! Events are written off the call's path. Metric labels are bounded: tenants and models are
//! named by the first [`MAX_LABEL_VALUES`] values seen, and any later one is counted as `other`,
//! so that a caller inventing model names cannot grow the metrics without bound.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use metrics::Counter;
use serde_json::json;
use warden_governance::NewEvent;

use super::inspect::Findings;
use super::record::Usage;
use super::Plane;

/// Distinct values a label keeps before the rest are counted as `other`.
pub(crate) const MAX_LABEL_VALUES: usize = 100;

/// The values a label has admitted.
#[derive(Default)]
pub(crate) struct LabelBudget(Mutex<HashSet<String>>);

impl LabelBudget {
    /// `value` if it is known or there is room for it, else `other`.
    pub fn admit<'a>(&self, value: &'a str) -> &'a str {
        let mut seen = self.0.lock().expect("not poisoned");
        if seen.contains(value) {
            return value;
        }
        if seen.len() < MAX_LABEL_VALUES {
            seen.insert(value.to_owned());
            return value;
        }
        "other"
    }
}

/// The input and output token counters of each (tenant, model) label pair, kept rather than
/// built from their labels and looked up in the recorder on every call. Keyed by the admitted
/// labels, so at most `(MAX_LABEL_VALUES + 1)²` pairs.
#[derive(Default)]
pub(crate) struct TokenSeries(Mutex<HashMap<String, ByModel>>);

/// Input and output counters by model, for one tenant.
type ByModel = HashMap<String, (Counter, Counter)>;

impl TokenSeries {
    fn get(&self, tenant: &str, model: &str) -> (Counter, Counter) {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = all.get(tenant).and_then(|m| m.get(model)) {
            return c.clone();
        }
        let (t, m) = (tenant.to_owned(), model.to_owned());
        let c = (
            metrics::counter!("warden_llm_tokens_total", "direction" => "input", "model" => m.clone(), "tenant" => t.clone()),
            metrics::counter!("warden_llm_tokens_total", "direction" => "output", "model" => m.clone(), "tenant" => t.clone()),
        );
        all.entry(t).or_default().insert(m, c.clone());
        c
    }
}

/// Guardian findings of one direction of a call (`request` or `response`).
pub(crate) fn guardians_fired(
    p: &Plane,
    tenant: &str,
    decision_id: &str,
    agent: &str,
    direction: &str,
    findings: &Findings,
) {
    if findings.counts.is_empty() {
        return;
    }
    let action = findings.action.map_or("flag", |a| a.as_str());
    let reason = findings
        .counts
        .iter()
        .map(|(k, n)| format!("{k} x{n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut e = NewEvent::of(
        "guardian.trigger.fired",
        "calls",
        decision_id,
        format!("{direction}: {reason} ({action})"),
        json!({
            "direction": direction,
            "agent_id": agent,
            "action": action,
            "blocked": findings.blocked,
            "redacted": findings.redacted,
            "findings": findings.counts,
            "injection_score": findings.injection_score,
        }),
    );
    e.idempotency_key = format!("guardian.trigger.fired:{decision_id}:{direction}");
    e.score_after = Some(f64::from(findings.injection_score));
    p.api.decisions.events().emit_detached(tenant, e);
}

/// A call refused by policy or the guardians.
pub(crate) fn blocked(
    p: &Plane,
    tenant: &str,
    decision_id: &str,
    agent: &str,
    model: &str,
    reasons: &[String],
    utilization: Option<f64>,
) {
    let mut e = NewEvent::of(
        "policy.violation.detected",
        "calls",
        decision_id,
        if reasons.is_empty() {
            "llm.request blocked".to_owned()
        } else {
            reasons.join(", ")
        },
        json!({"decision_type": "llm.request", "agent_id": agent, "model": model,
               "verdict": "BLOCK", "reason_codes": reasons}),
    );
    e.score_after = utilization;
    p.api.decisions.events().emit_detached(tenant, e);
}

/// A call refused by a rate limit: counted always, announced at most once a minute per
/// agent and limit (a flood of refusals is one event, not thousands).
pub(crate) fn rate_limited(p: &Plane, tenant: &str, agent: &str, scope: &str, what: &str) {
    let per = scope.split(' ').next().unwrap_or("unknown").to_owned();
    metrics::counter!("warden_rate_limit_rejections_total", "surface" => "llm", "per" => per, "limit" => what.to_owned())
        .increment(1);
    p.api.decisions.events().emit_throttled(
        tenant,
        &format!("{agent}:{scope}:{what}"),
        60,
        NewEvent::of(
            "rate_limit.exceeded",
            "limits",
            scope,
            format!("{what} per minute on {scope}"),
            json!({"agent_id": agent, "scope": scope, "limit": what}),
        ),
    );
}

/// Tokens a call used, by direction, model and tenant.
pub(crate) fn tokens(p: &Plane, tenant: &str, model: &str, usage: Usage) {
    let (tenant, model) = (p.tenant_labels.admit(tenant), p.model_labels.admit(model));
    let (input, output) = p.token_series.get(tenant, model);
    input.increment(usage.prompt);
    output.increment(usage.completion);
}
