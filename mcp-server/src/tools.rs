//! The governance API as MCP tools: one tool per operation of `warden-governance`, each a thin
//! adapter that parses the arguments into the same request type the REST route uses, calls the
//! same domain function, and returns the same answer as structured content.
//!
//! When a governance operation is added to REST, it is added here too (see ARCHITECTURE.md).

use std::sync::Arc;

use rmcp::model::{CallToolResult, JsonObject, Tool, ToolAnnotations};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use warden_governance::{
    AgentRegistered, ClientSummary, DeadLetter, Efficiency, Escalation, Evaluate, Evaluated,
    EventPage, EventQuery, Forensics, GovError, Inscribe, Inscribed, IntentCreated, Lineage,
    Principal, Proposal, Propose, PublishEvent, Published, RegisterAgent, RegisterIntent,
    RegisterWebhook, Replay, Replayed, Resolve, Resolved, Webhook,
};

use crate::error::ToolError;
use crate::schema;

/// Arguments of `get_forensics` (the REST path parameter).
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GetForensics {
    /// The decision id (`dec_…`) or the decision node id (`dn_…`).
    pub decision_id: String,
}

/// Arguments of `list_escalations` (the REST query).
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListEscalations {
    /// `OPEN`, `APPROVE` or `REJECT`; all threads when absent.
    #[serde(default)]
    pub status: Option<String>,
}

/// Arguments of `get_escalation` (path parameter and query).
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GetEscalation {
    pub thread_id: String,
    /// Wait up to this many seconds (at most 60) for a human to resolve the thread.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 60)]
    pub wait_seconds: Option<u64>,
}

/// Arguments of `get_agent`.
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GetAgent {
    /// The agent id (`agt_…`).
    pub agent_id: String,
}

/// Arguments of `verify_lineage`.
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyLineage {
    /// The decision id whose ledger anchoring to prove.
    pub lineage_id: String,
}

/// Arguments of `get_client_summary`.
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GetClientSummary {
    pub agency_id: String,
}

/// Arguments of `get_governance_efficiency`.
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GetGovernanceEfficiency {
    pub agency_id: String,
    /// The period in days, e.g. `30d` (the default).
    #[serde(default)]
    pub period: Option<String>,
}

/// Arguments of `list_governance_events` (the REST query).
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListGovernanceEvents {
    /// Only events of this type, e.g. `escalation.opened`.
    #[serde(default)]
    pub event_type: Option<String>,
    /// Only events about this source (a decision node, thread, finding...).
    #[serde(default)]
    pub source_id: Option<String>,
    /// Page size, 1 to 100 (default 50).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page, for older events.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// Arguments of `delete_webhook`.
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteWebhook {
    /// The webhook id (`whk_…`).
    pub webhook_id: String,
}

/// What `delete_webhook` answers (REST answers 204 without a body).
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
pub struct Deleted {
    pub webhook_id: String,
    pub deleted: bool,
}

/// Arguments of tools that take none.
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArguments {}

/// Every governance tool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    RegisterIntent,
    ProposeDecision,
    InscribeDecision,
    EvaluateAction,
    GetForensics,
    ListEscalations,
    GetEscalation,
    ResolveEscalation,
    RegisterAgent,
    GetAgent,
    VerifyLineage,
    GetClientSummary,
    GetGovernanceEfficiency,
    ListGovernanceEvents,
    PublishGovernanceEvent,
    RegisterWebhook,
    ListWebhooks,
    DeleteWebhook,
    ListDeadLetters,
    ReplayDeadLetters,
}

/// How a tool affects the world: (read only, destructive, idempotent).
type Hints = (bool, bool, bool);

impl Op {
    pub const ALL: [Op; 20] = [
        Op::RegisterIntent,
        Op::ProposeDecision,
        Op::InscribeDecision,
        Op::EvaluateAction,
        Op::GetForensics,
        Op::ListEscalations,
        Op::GetEscalation,
        Op::ResolveEscalation,
        Op::RegisterAgent,
        Op::GetAgent,
        Op::VerifyLineage,
        Op::GetClientSummary,
        Op::GetGovernanceEfficiency,
        Op::ListGovernanceEvents,
        Op::PublishGovernanceEvent,
        Op::RegisterWebhook,
        Op::ListWebhooks,
        Op::DeleteWebhook,
        Op::ListDeadLetters,
        Op::ReplayDeadLetters,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::RegisterIntent => "register_intent",
            Op::ProposeDecision => "propose_decision",
            Op::InscribeDecision => "inscribe_decision",
            Op::EvaluateAction => "evaluate_action",
            Op::GetForensics => "get_forensics",
            Op::ListEscalations => "list_escalations",
            Op::GetEscalation => "get_escalation",
            Op::ResolveEscalation => "resolve_escalation",
            Op::RegisterAgent => "register_agent",
            Op::GetAgent => "get_agent",
            Op::VerifyLineage => "verify_lineage",
            Op::GetClientSummary => "get_client_summary",
            Op::GetGovernanceEfficiency => "get_governance_efficiency",
            Op::ListGovernanceEvents => "list_governance_events",
            Op::PublishGovernanceEvent => "publish_governance_event",
            Op::RegisterWebhook => "register_webhook",
            Op::ListWebhooks => "list_webhooks",
            Op::DeleteWebhook => "delete_webhook",
            Op::ListDeadLetters => "list_dead_letters",
            Op::ReplayDeadLetters => "replay_dead_letters",
        }
    }

    pub fn from_name(name: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|op| op.name() == name)
    }

    /// The REST route this tool mirrors (for the docs and the drift test).
    pub fn rest_route(self) -> &'static str {
        match self {
            Op::RegisterIntent => "POST /v1/register-intent",
            Op::ProposeDecision => "POST /v1/decisions/propose",
            Op::InscribeDecision => "POST /v1/decisions/inscribe",
            Op::EvaluateAction => "POST /v1/decisions.evaluate",
            Op::GetForensics => "GET /v1/decisions/{id}/forensics",
            Op::ListEscalations => "GET /v1/escalations",
            Op::GetEscalation => "GET /v1/escalations/{thread_id}",
            Op::ResolveEscalation => "POST /v1/escalations/{thread_id}/resolve",
            Op::RegisterAgent => "POST /v1/agents",
            Op::GetAgent => "GET /v1/agents/{id}",
            Op::VerifyLineage => "GET /v1/lineage/{id}/verify",
            Op::GetClientSummary => "GET /v1/client/{token}/summary",
            Op::GetGovernanceEfficiency => "GET /v1/governance/efficiency/{agency_id}",
            Op::ListGovernanceEvents => "GET /v1/governance-events",
            Op::PublishGovernanceEvent => "POST /v1/governance-events",
            Op::RegisterWebhook => "POST /v1/governance-events/webhooks",
            Op::ListWebhooks => "GET /v1/governance-events/webhooks",
            Op::DeleteWebhook => "DELETE /v1/governance-events/webhooks/{id}",
            Op::ListDeadLetters => "GET /v1/governance-events/dead-letters",
            Op::ReplayDeadLetters => "POST /v1/governance-events/dead-letters",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Op::RegisterIntent => "Step 1 of 3 of a governed decision. Declare what you are trying to achieve and for which agency before proposing any decision. Returns an intent_id to pass to propose_decision and inscribe_decision.",
            Op::ProposeDecision => "Step 2 of 3. Submit a decision you intend to take (decision_type plus its parameters in payload) so Warden's policy packs can judge it BEFORE you act. The verdict is ALLOW, WARN, ESCALATE (a human must approve on the Decision Desk; poll get_escalation with the escalation_thread_id) or BLOCK (do not act). Returns decision_node_id, reason_codes and how close the payload came to a policy limit (governance_utilization).",
            Op::InscribeDecision => "Step 3 of 3. Record a judged decision in Warden's tamper-evident ledger once you act on it. Pass exactly the payload and verdict that propose_decision judged; an ESCALATE decision can be inscribed only after its Decision Desk thread is resolved. Returns the ledger record hash and index.",
            Op::EvaluateAction => "Judge an action of a registered agent and record the outcome in the ledger in one call (no separate intent). decision is allow, warn, require_approval (wait for a human: see escalation_thread_id) or block (do not act).",
            Op::GetForensics => "The full record of one decision: its payload, every policy condition evaluated with threshold and actual value, reason codes, and its ledger receipt (verifiable offline with `warden verify`).",
            Op::ListEscalations => "List Decision Desk threads (decisions waiting for or resolved by a human), newest first. Filter with status OPEN, APPROVE or REJECT.",
            Op::GetEscalation => "One Decision Desk thread. Set wait_seconds (up to 60) to wait until a human approves or rejects it instead of polling.",
            Op::ResolveEscalation => "Approve or reject an escalated decision on the Decision Desk (needs an admin key). Only a human reviewer should do this; the resolution is inscribed in the ledger and cannot be undone.",
            Op::RegisterAgent => "Register an agent (name, model, tools) in Warden's registry. Its manifest hash is inscribed in the ledger. Returns agentId, to use with evaluate_action.",
            Op::GetAgent => "An agent of the registry with its manifest and default intent.",
            Op::VerifyLineage => "Prove that a decision is anchored in the ledger: the leaf hash, the Merkle audit path and the signed checkpoint root it leads to.",
            Op::GetClientSummary => "An agency's client-portal summary: decisions this month and in total, decisions stopped before execution (blocked or escalated), and recent decisions.",
            Op::GetGovernanceEfficiency => "An agency's governance efficiency score over a period (default 30d): how often decisions land in the amber band of policy utilization (60-85).",
            Op::ListGovernanceEvents => "The tenant's governance event stream, newest first: decisions made, escalations opened and resolved, policy violations, guardian triggers, rate limits hit, ledger checkpoints and producers' events. Filter by event_type or source_id; page with cursor (next_cursor of the previous page).",
            Op::RegisterWebhook => "Register an HTTPS endpoint to receive the tenant's governance events (needs an admin key), signed per the Standard Webhooks convention with the secret named by hmac_secret_alias. event_types filters (empty: all). Internal and plain-http targets are refused unless the operator allow-listed them.",
            Op::ListWebhooks => "The tenant's registered webhooks (needs an admin key); secrets are never shown, only their alias.",
            Op::DeleteWebhook => "Delete a webhook (needs an admin key); its pending deliveries are cancelled.",
            Op::ListDeadLetters => "Webhook deliveries that failed every attempt (needs an admin key), newest first, with the event, the last HTTP status and error.",
            Op::ReplayDeadLetters => "Queue dead-lettered webhook deliveries again with their attempts reset (needs an admin key); delivery_ids empty: all of them.",
            Op::PublishGovernanceEvent => "Publish an event of another system (finding.state_transition, risk_score.changed, assessment.completed, compliance.threshold.breach, policy.violation.detected, guardian.trigger.fired) to the governance event stream and its webhooks. Pass idempotency_key so that a retry records one event.",
        }
    }

    fn hints(self) -> Hints {
        match self {
            // Additive writes: a new intent, node or agent each time.
            Op::RegisterIntent | Op::ProposeDecision | Op::EvaluateAction => (false, false, false),
            // A repeat is refused as a conflict, so it has no further effect.
            Op::InscribeDecision | Op::RegisterAgent => (false, false, true),
            // Idempotent only with an idempotency_key.
            Op::PublishGovernanceEvent | Op::RegisterWebhook => (false, false, false),
            Op::DeleteWebhook => (false, true, true),
            Op::ReplayDeadLetters => (false, false, false),
            // Irreversible: a human's decision, inscribed.
            Op::ResolveEscalation => (false, true, true),
            Op::GetForensics
            | Op::ListEscalations
            | Op::GetEscalation
            | Op::GetAgent
            | Op::VerifyLineage
            | Op::GetClientSummary
            | Op::GetGovernanceEfficiency
            | Op::ListGovernanceEvents
            | Op::ListWebhooks
            | Op::ListDeadLetters => (true, false, true),
        }
    }

    /// The tool's input schema: the REST request type's schema (path parameters added).
    pub fn input_schema(self) -> JsonObject {
        match self {
            Op::RegisterIntent => schema::of::<RegisterIntent>(),
            Op::ProposeDecision => schema::of::<Propose>(),
            Op::InscribeDecision => schema::of::<Inscribe>(),
            Op::EvaluateAction => schema::of::<Evaluate>(),
            Op::GetForensics => schema::of::<GetForensics>(),
            Op::ListEscalations => schema::of::<ListEscalations>(),
            Op::GetEscalation => schema::of::<GetEscalation>(),
            Op::ResolveEscalation => schema::with_path_param(
                schema::of::<Resolve>(),
                "thread_id",
                "The Decision Desk thread to resolve.",
            ),
            Op::RegisterAgent => schema::of::<RegisterAgent>(),
            Op::GetAgent => schema::of::<GetAgent>(),
            Op::VerifyLineage => schema::of::<VerifyLineage>(),
            Op::GetClientSummary => schema::of::<GetClientSummary>(),
            Op::GetGovernanceEfficiency => schema::of::<GetGovernanceEfficiency>(),
            Op::ListGovernanceEvents => schema::of::<ListGovernanceEvents>(),
            Op::PublishGovernanceEvent => schema::of::<PublishEvent>(),
            Op::RegisterWebhook => schema::of::<RegisterWebhook>(),
            Op::ListWebhooks | Op::ListDeadLetters => schema::of::<NoArguments>(),
            Op::DeleteWebhook => schema::of::<DeleteWebhook>(),
            Op::ReplayDeadLetters => schema::of::<Replay>(),
        }
    }

    /// The tool's output schema: the REST response type's schema.
    pub fn output_schema(self) -> JsonObject {
        match self {
            Op::RegisterIntent => schema::of::<IntentCreated>(),
            Op::ProposeDecision => schema::of::<Proposal>(),
            Op::InscribeDecision => schema::of::<Inscribed>(),
            Op::EvaluateAction => schema::of::<Evaluated>(),
            Op::GetForensics => schema::of::<Forensics>(),
            Op::ListEscalations => schema::list_of::<Escalation>("escalations"),
            Op::GetEscalation => schema::of::<Escalation>(),
            Op::ResolveEscalation => schema::of::<Resolved>(),
            Op::RegisterAgent => schema::of::<AgentRegistered>(),
            Op::GetAgent => schema::of::<warden_governance::Agent>(),
            Op::VerifyLineage => schema::of::<Lineage>(),
            Op::GetClientSummary => schema::of::<ClientSummary>(),
            Op::GetGovernanceEfficiency => schema::of::<Efficiency>(),
            Op::ListGovernanceEvents => schema::of::<EventPage>(),
            Op::PublishGovernanceEvent => schema::of::<Published>(),
            Op::RegisterWebhook => schema::of::<Webhook>(),
            Op::ListWebhooks => schema::list_of::<Webhook>("webhooks"),
            Op::DeleteWebhook => schema::of::<Deleted>(),
            Op::ListDeadLetters => schema::list_of::<DeadLetter>("dead_letters"),
            Op::ReplayDeadLetters => schema::of::<Replayed>(),
        }
    }

    pub fn tool(self) -> Tool {
        let (read_only, destructive, idempotent) = self.hints();
        let mut tool = Tool::new(self.name(), self.description(), self.input_schema());
        tool.title = Some(title(self.name()));
        tool.output_schema = Some(Arc::new(self.output_schema()));
        tool.annotations = Some(
            ToolAnnotations::with_title(title(self.name()))
                .read_only(read_only)
                .destructive(destructive)
                .idempotent(idempotent)
                .open_world(false),
        );
        tool
    }

    /// Runs the operation for `p` with the call's arguments.
    pub async fn call(
        self,
        core: Arc<crate::Core>,
        p: Principal,
        args: Value,
    ) -> Result<CallToolResult, ToolError> {
        let d = core.decisions.clone();
        let hooks = core.webhooks.clone();
        let out = match self {
            Op::RegisterIntent => {
                let req: RegisterIntent = parse(args)?;
                to_value(blocking(move || d.register_intent(&p, req)).await?)
            }
            Op::ProposeDecision => {
                let req: Propose = parse(args)?;
                to_value(blocking(move || d.propose(&p, req)).await?)
            }
            Op::InscribeDecision => {
                let req: Inscribe = parse(args)?;
                to_value(d.inscribe(&p, req).await?)
            }
            Op::EvaluateAction => {
                let req: Evaluate = parse(args)?;
                to_value(d.evaluate(&p, req).await?)
            }
            Op::GetForensics => {
                let a: GetForensics = parse(args)?;
                to_value(blocking(move || d.forensics(&p, &a.decision_id)).await?)
            }
            Op::ListEscalations => {
                let a: ListEscalations = parse(args)?;
                let list = blocking(move || d.list_escalations(&p, a.status.as_deref())).await?;
                json!({ "escalations": list })
            }
            Op::GetEscalation => {
                let a: GetEscalation = parse(args)?;
                let wait = a.wait_seconds.unwrap_or(0);
                if wait > 60 {
                    return Err(ToolError::field(
                        "invalid_request",
                        "wait_seconds",
                        "wait_seconds: at most 60",
                    ));
                }
                let wait = std::time::Duration::from_secs(wait);
                to_value(d.wait_escalation(&p, &a.thread_id, wait).await?)
            }
            Op::ResolveEscalation => {
                let mut args = args;
                let thread_id = take_string(&mut args, "thread_id")?;
                let req: Resolve = parse(args)?;
                to_value(d.resolve_escalation(&p, &thread_id, req).await?)
            }
            Op::RegisterAgent => {
                let req: RegisterAgent = parse(args)?;
                to_value(d.register_agent(&p, req).await?)
            }
            Op::GetAgent => {
                let a: GetAgent = parse(args)?;
                to_value(blocking(move || d.agent(&p, &a.agent_id)).await?)
            }
            Op::VerifyLineage => {
                let a: VerifyLineage = parse(args)?;
                to_value(blocking(move || d.lineage(&p, &a.lineage_id)).await?)
            }
            Op::GetClientSummary => {
                let a: GetClientSummary = parse(args)?;
                to_value(blocking(move || d.client_summary(&p, &a.agency_id)).await?)
            }
            Op::GetGovernanceEfficiency => {
                let a: GetGovernanceEfficiency = parse(args)?;
                let days = match a.period.as_deref() {
                    None => 30,
                    Some(p) => p
                        .strip_suffix('d')
                        .and_then(|d| d.parse().ok())
                        .ok_or_else(|| {
                            ToolError::field(
                                "invalid_request",
                                "period",
                                "period: expected days, e.g. 30d",
                            )
                        })?,
                };
                to_value(blocking(move || d.efficiency(&p, &a.agency_id, days)).await?)
            }
            Op::ListGovernanceEvents => {
                let a: ListGovernanceEvents = parse(args)?;
                let q = EventQuery {
                    event_type: a.event_type,
                    source_id: a.source_id,
                    finding_id: None,
                    limit: a.limit.map(|l| l.to_string()),
                    cursor: a.cursor,
                };
                to_value(blocking(move || d.events().list(&p, q)).await?)
            }
            Op::PublishGovernanceEvent => {
                let req: PublishEvent = parse(args)?;
                to_value(blocking(move || d.events().publish(&p, req)).await?)
            }
            Op::RegisterWebhook => {
                let req: RegisterWebhook = parse(args)?;
                to_value(hooks.register(&p, req).await?)
            }
            Op::ListWebhooks => {
                let _: NoArguments = parse(args)?;
                json!({ "webhooks": blocking(move || hooks.list(&p)).await? })
            }
            Op::DeleteWebhook => {
                let a: DeleteWebhook = parse(args)?;
                let id = a.webhook_id.clone();
                blocking(move || hooks.delete(&p, &a.webhook_id)).await?;
                to_value(Deleted {
                    webhook_id: id,
                    deleted: true,
                })
            }
            Op::ListDeadLetters => {
                let _: NoArguments = parse(args)?;
                json!({ "dead_letters": blocking(move || hooks.dead_letters(&p)).await? })
            }
            Op::ReplayDeadLetters => {
                let req: Replay = parse(args)?;
                to_value(blocking(move || hooks.replay(&p, req)).await?)
            }
        };
        Ok(CallToolResult::structured(out))
    }
}

/// `register_intent` -> `Register intent`.
fn title(name: &str) -> String {
    let mut t = name.replace('_', " ");
    if let Some(first) = t.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    t
}

/// Deserializes the arguments into the request type; the error names the argument at fault.
pub fn parse<T: DeserializeOwned>(args: Value) -> Result<T, ToolError> {
    Ok(serde_path_to_error::deserialize(args)?)
}

fn take_string(args: &mut Value, key: &'static str) -> Result<String, ToolError> {
    match args.as_object_mut().and_then(|o| o.remove(key)) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(ToolError::field(
            "invalid_request",
            key,
            format!("{key}: invalid type: {other}, expected a string"),
        )),
        None => Err(ToolError::field(
            "invalid_request",
            key,
            format!("missing field `{key}`"),
        )),
    }
}

fn to_value<T: Serialize>(v: T) -> Value {
    serde_json::to_value(v).expect("a governance answer serializes")
}

/// Runs a blocking domain call off the async workers, as the REST handlers do.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, GovError> + Send + 'static,
) -> Result<T, ToolError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ToolError::internal)?
        .map_err(ToolError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_object_schemas_and_hints() {
        for op in Op::ALL {
            let t = op.tool();
            assert_eq!(Op::from_name(&t.name), Some(op));
            assert_eq!(t.input_schema["type"], "object", "{}", t.name);
            assert_eq!(t.output_schema.as_ref().unwrap()["type"], "object");
            let a = t.annotations.unwrap();
            assert!(a.read_only_hint.is_some() && a.destructive_hint.is_some());
        }
    }

    #[test]
    fn wrong_argument_types_name_the_field() {
        let e = parse::<RegisterAgent>(json!({"name": "a", "model": "m", "temperature": "hot"}))
            .err()
            .unwrap();
        assert_eq!(e.code, "invalid_request");
        assert_eq!(e.field.as_deref(), Some("temperature"));
        assert!(e.message.starts_with("temperature: invalid type"), "{e}");
        let e = parse::<RegisterIntent>(json!({"agency_id": "a"}))
            .err()
            .unwrap();
        assert!(e.message.contains("description"), "{e}");
    }
}
