//! The tool calls a model proposes, judged before the agent sees them: the guardians scan the
//! arguments (`tool_args`), and policy decides a `tool_call` decision with the tool's name as
//! the action. A call that is blocked (or needs a human, which a response cannot wait for) is
//! withheld from the agent.

use serde_json::{json, Value};
use warden_guardians::Channel;
use warden_policy::{Input, Outcome};

use super::inspect::Findings;
use super::Plane;

pub struct ToolVerdict {
    pub allowed: bool,
    /// The arguments, redacted where the guardians redact.
    pub arguments: String,
    /// For the ledger: name, verdict, reasons, findings.
    pub summary: Value,
    pub findings: Findings,
}

pub fn judge(plane: &Plane, agent: &str, model: &str, name: &str, arguments: &str) -> ToolVerdict {
    let mut findings = Findings::default();
    let mut args = arguments.to_owned();
    findings.scan(&plane.guardians, "/arguments", &mut args, Channel::ToolArgs);
    let parsed: Value = serde_json::from_str(&args).unwrap_or(Value::String(args.clone()));
    let input = Input {
        decision_type: "tool_call".into(),
        action: Some(name.to_owned()),
        agent_id: Some(agent.to_owned()),
        tool: Some(name.to_owned()),
        context: json!({
            "tool": name,
            "model": model,
            "arguments": parsed,
            "findings": findings.policy_view(),
        }),
    };
    let (verdict, reasons, check) = match plane.policies.evaluate(&input) {
        Ok(e) => (e.verdict, e.reason_codes, "ran"),
        Err(e) => {
            tracing::warn!(error = %e, tool = name, "tool-call policy could not run");
            match plane.config.fail_mode {
                warden_config::FailMode::Closed => (
                    Outcome::Block,
                    vec!["POLICY_UNAVAILABLE".to_owned()],
                    "failed_closed",
                ),
                warden_config::FailMode::Open => (Outcome::Allow, Vec::new(), "failed_open"),
            }
        }
    };
    let mut reasons = reasons;
    for r in &findings.reasons {
        if !reasons.contains(r) {
            reasons.push(r.clone());
        }
    }
    let allowed = !findings.blocked && matches!(verdict, Outcome::Allow | Outcome::Warn);
    let shown = if findings.blocked {
        "block"
    } else {
        verdict.as_str()
    };
    ToolVerdict {
        allowed,
        summary: json!({
            "name": name,
            "verdict": shown,
            "withheld": !allowed,
            "reason_codes": reasons,
            "policy": check,
            "arguments_redacted": findings.redacted > 0,
        }),
        arguments: args,
        findings,
    }
}
