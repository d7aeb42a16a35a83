//! Intents, decisions and their inscription: the three-step sequence of seed 001
//! (register-intent -> propose -> inscribe) and the forensic record of a decision.
//!
//! A proposal is evaluated against the live policy set and stored as a decision node holding
//! the payload's hash and the verdict. Inscription must present the same payload and verdict
//! (else a conflict: the agent would be inscribing something other than what was judged) and
//! writes the decision into the ledger; the receipt's hashes and position are kept with the
//! node so forensics can hand out a fresh inclusion proof.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use warden_ledger::{Entry, Ledger, LedgerError};
use warden_policy::{EvalError, Input, LivePolicySet, Outcome};

use crate::db::args;
use crate::keys::Principal;
use crate::scope::Scope;
use crate::store::{Store, StoreError};

/// Why a governance operation was refused. Each maps to one HTTP status and one MCP error.
#[derive(Debug, thiserror::Error)]
pub enum GovError {
    #[error("this key lacks the {0} scope")]
    Forbidden(Scope),
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{message}")]
    Conflict {
        field: Option<&'static str>,
        message: String,
    },
    #[error("{0}")]
    Policy(#[from] EvalError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("ledger: {0}")]
    Ledger(#[from] LedgerError),
}

/// `POST /v1/register-intent`
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterIntent {
    pub agency_id: String,
    pub description: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IntentCreated {
    pub intent_id: String,
    pub created_at: String,
}

/// `POST /v1/decisions/propose`
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Propose {
    pub intent_id: String,
    pub decision_type: String,
    pub payload: Value,
    pub agent_id: String,
}

/// One condition as the seed's `mic_conditions` show it, with Warden's detail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MicCondition {
    pub mic_id: String,
    pub condition: String,
    pub label: Option<String>,
    pub threshold: Value,
    pub actual_value: Value,
    /// Whether the condition held for this payload (e.g. `amount > 1000` with 1,250: true).
    pub passed: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Proposal {
    /// `ALLOW`, `WARN`, `ESCALATE` or `BLOCK`.
    pub verdict: String,
    pub decision_node_id: String,
    pub mic_fired: bool,
    pub mic_conditions: Vec<MicCondition>,
    pub governance_utilization: f64,
    pub reason_codes: Vec<String>,
    pub policy_hash: String,
    /// For `ESCALATE`: the Decision Desk thread that must be resolved before inscription.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalation_thread_id: Option<String>,
}

/// `POST /v1/decisions/inscribe`
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Inscribe {
    pub intent_id: String,
    pub decision_node_id: String,
    pub verdict: String,
    pub payload: Value,
    pub agent_id: String,
    pub agency_id: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Inscribed {
    pub decision_id: String,
    pub record_hash: String,
    pub prior_hash: String,
    pub mic_fired: bool,
    pub verdict: String,
    pub inscribed_at: String,
    pub ledger_index: u64,
    /// For an escalated decision: `APPROVE` or `REJECT`, as resolved on the Decision Desk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
}

/// `GET /v1/decisions/{id}/forensics`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Forensics {
    pub decision_id: String,
    pub verdict: String,
    pub decision_type: String,
    pub payload: Value,
    pub mic_conditions: Vec<MicCondition>,
    pub governance_utilization: f64,
    pub reason_codes: Vec<String>,
    pub policy_hash: String,
    pub record_hash: Option<String>,
    pub prior_hash: Option<String>,
    pub inscribed_at: Option<String>,
    pub intent_id: String,
    pub agent_id: String,
    /// The ledger receipt (record, checkpoint, inclusion proof) proved against the latest
    /// checkpoint; `warden verify` accepts it as is.
    #[schema(value_type = Option<Object>)]
    pub receipt: Option<warden_ledger::Receipt>,
}

/// The decision operations over the store, the ledger and the live policies.
pub struct Decisions {
    pub(crate) store: Arc<Store>,
    pub(crate) ledger: Arc<Ledger>,
    pub(crate) policies: Arc<LivePolicySet>,
    /// Woken on every resolution, for callers long-polling a thread.
    pub(crate) resolved: Arc<tokio::sync::Notify>,
    pub(crate) events: Arc<crate::events::Events>,
}

fn verdict_name(o: Outcome) -> String {
    o.as_str().to_ascii_uppercase()
}

fn need(p: &Principal, scope: Scope) -> Result<(), GovError> {
    if p.allows(&scope) {
        Ok(())
    } else {
        Err(GovError::Forbidden(scope))
    }
}

pub(crate) fn text(field: &'static str, v: &str, max: usize) -> Result<(), GovError> {
    if v.trim().is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(GovError::Invalid {
            field,
            message: format!("must be 1 to {max} characters without control characters"),
        });
    }
    Ok(())
}

pub(crate) fn payload_hash(payload: &Value) -> String {
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(
            warden_ledger::canonical::to_string(payload).as_bytes()
        ))
    )
}

pub(crate) fn new_id(prefix: &str) -> String {
    let mut b = [0u8; 12];
    getrandom::fill(&mut b).expect("the operating system's random source is available");
    format!("{prefix}_{}", hex::encode(b))
}

fn mic_conditions(evaluation: &Value) -> Vec<MicCondition> {
    evaluation["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| MicCondition {
            mic_id: c["id"].as_str().unwrap_or_default().to_owned(),
            condition: format!(
                "{} {} {}",
                c["field"].as_str().unwrap_or("expr"),
                c["op"].as_str().unwrap_or_default(),
                c["threshold"]
            ),
            label: c["label"].as_str().map(str::to_owned),
            threshold: c["threshold"].clone(),
            actual_value: c["actual_value"].clone(),
            passed: c["passed"].as_bool().unwrap_or(false),
        })
        .collect()
}

impl Decisions {
    /// With a PostgreSQL store, also listens for resolutions made by other processes, so a
    /// call held here wakes when a reviewer resolves its thread on any replica.
    pub fn new(store: Arc<Store>, ledger: Arc<Ledger>, policies: Arc<LivePolicySet>) -> Self {
        let resolved = Arc::new(tokio::sync::Notify::new());
        if let Some(pg) = store.pg() {
            let wake = resolved.clone();
            // Any notification (and every reconnection, after which some may have been
            // missed) makes the waiters look at their thread again.
            pg.listen(
                crate::escalations::RESOLVED_CHANNEL,
                Arc::new(move |_| wake.notify_waiters()),
            );
        }
        Decisions {
            ledger,
            events: Arc::new(crate::events::Events::new(store.clone())),
            store,
            policies,
            resolved,
        }
    }

    /// The event stream the decisions write to.
    pub fn events(&self) -> &Arc<crate::events::Events> {
        &self.events
    }

    pub fn register_intent(
        &self,
        p: &Principal,
        req: RegisterIntent,
    ) -> Result<IntentCreated, GovError> {
        need(p, Scope::Write)?;
        text("agency_id", &req.agency_id, 128)?;
        text("description", &req.description, 4000)?;
        let intent_id = new_id("int");
        let created_at = crate::now();
        self.store.execute(
            "INSERT INTO intents (id, tenant_id, agency_id, description, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            args![
                &intent_id,
                &p.tenant,
                &req.agency_id,
                &req.description,
                &created_at
            ],
        )?;
        Ok(IntentCreated {
            intent_id,
            created_at,
        })
    }

    fn intent_agency(&self, tenant: &str, intent_id: &str) -> Result<String, GovError> {
        let row = self.store.query_opt(
            "SELECT agency_id FROM intents WHERE id = ?1 AND tenant_id = ?2",
            args![intent_id, tenant],
        )?;
        match row {
            Some(r) => Ok(r.get(0)?),
            None => Err(GovError::NotFound {
                what: "intent",
                id: intent_id.to_owned(),
            }),
        }
    }

    pub fn propose(&self, p: &Principal, req: Propose) -> Result<Proposal, GovError> {
        need(p, Scope::Write)?;
        text("decision_type", &req.decision_type, 128)?;
        text("agent_id", &req.agent_id, 128)?;
        self.intent_agency(&p.tenant, &req.intent_id)?;
        let input = Input {
            decision_type: req.decision_type.clone(),
            action: Some(req.decision_type.clone()),
            agent_id: Some(req.agent_id.clone()),
            tool: None,
            context: req.payload.clone(),
        };
        let evaluation = self.policies.evaluate(&input)?;
        let (id, eval_json) = self.insert_node(
            &p.tenant,
            &req.intent_id,
            &req.agent_id,
            &req.decision_type,
            &req.payload,
            &evaluation,
        )?;
        let escalation_thread_id = if evaluation.verdict == Outcome::Escalate {
            Some(self.open_escalation(&p.tenant, &id, &evaluation.reason_codes)?)
        } else {
            None
        };
        Ok(Proposal {
            escalation_thread_id,
            verdict: verdict_name(evaluation.verdict),
            decision_node_id: id,
            mic_fired: evaluation.mic_fired,
            mic_conditions: mic_conditions(&eval_json),
            governance_utilization: evaluation.utilization,
            reason_codes: evaluation.reason_codes.clone(),
            policy_hash: evaluation.policy_hash.clone(),
        })
    }

    /// Stores a judged proposal as a decision node; returns its id and the evaluation as
    /// stored.
    pub(crate) fn insert_node(
        &self,
        tenant: &str,
        intent_id: &str,
        agent: &str,
        decision_type: &str,
        payload: &Value,
        evaluation: &warden_policy::Evaluation,
    ) -> Result<(String, Value), GovError> {
        let id = new_id("dn");
        let eval_json = serde_json::to_value(evaluation).expect("an evaluation serializes");
        self.events.write_with(
            tenant,
            |tx| {
                tx.execute(
                    "INSERT INTO decisions (id, tenant_id, intent_id, agent_id, decision_type,
                         payload, payload_hash, verdict, evaluation, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    args![
                        &id,
                        tenant,
                        intent_id,
                        agent,
                        decision_type,
                        payload.to_string(),
                        payload_hash(payload),
                        evaluation.verdict.as_str(),
                        eval_json.to_string(),
                        crate::now()
                    ],
                )
            },
            |_| decision_events(&id, decision_type, agent, evaluation),
        )?;
        Ok((id, eval_json))
    }

    pub async fn inscribe(&self, p: &Principal, req: Inscribe) -> Result<Inscribed, GovError> {
        need(p, Scope::Write)?;
        let agency = self.intent_agency(&p.tenant, &req.intent_id)?;
        if agency != req.agency_id {
            return Err(GovError::Conflict {
                field: Some("agency_id"),
                message: format!("agency_id: the intent belongs to agency {agency:?}"),
            });
        }
        let node = self.store.query_opt(
            "SELECT intent_id, agent_id, payload_hash, verdict, evaluation, record_hash
             FROM decisions WHERE id = ?1 AND tenant_id = ?2",
            args![&req.decision_node_id, &p.tenant],
        )?;
        let Some(node) = node else {
            return Err(GovError::NotFound {
                what: "decision node",
                id: req.decision_node_id,
            });
        };
        let (intent_id, agent_id, hash, verdict, evaluation, inscribed): (
            String,
            String,
            String,
            String,
            String,
            Option<String>,
        ) = (
            node.get(0)?,
            node.get(1)?,
            node.get(2)?,
            node.get(3)?,
            node.get(4)?,
            node.get(5)?,
        );
        let conflict = |field: &'static str, message: String| GovError::Conflict {
            field: Some(field),
            message,
        };
        if inscribed.is_some() {
            return Err(conflict(
                "decision_node_id",
                "decision_node_id: already inscribed".into(),
            ));
        }
        if intent_id != req.intent_id {
            return Err(conflict(
                "intent_id",
                "intent_id: the node was proposed under another intent".into(),
            ));
        }
        if agent_id != req.agent_id {
            return Err(conflict(
                "agent_id",
                "agent_id: the node was proposed by another agent".into(),
            ));
        }
        if payload_hash(&req.payload) != hash {
            return Err(conflict(
                "payload",
                "payload: differs from the proposed payload".into(),
            ));
        }
        if !req.verdict.eq_ignore_ascii_case(&verdict) {
            return Err(conflict(
                "verdict",
                format!(
                    "verdict: the proposal was judged {}",
                    verdict.to_ascii_uppercase()
                ),
            ));
        }
        // An escalated decision is inscribed with its resolution, once there is one.
        let resolution = if verdict == Outcome::Escalate.as_str() {
            self.resolution_of(&req.decision_node_id)?
        } else {
            None
        };
        let eval: Value = serde_json::from_str(&evaluation).unwrap_or(Value::Null);
        let decision_id = new_id("dec");
        let receipt = self
            .ledger
            .append(Entry::new(
                "decision",
                p.tenant.clone(),
                json!({
                    "decision_id": decision_id,
                    "decision_node_id": req.decision_node_id,
                    "intent_id": intent_id,
                    "agency_id": agency,
                    "agent_id": agent_id,
                    "verdict": verdict,
                    "payload_hash": hash,
                    "policy_hash": eval["policy_hash"],
                    "reason_codes": eval["reason_codes"],
                    "utilization": eval["utilization"],
                    "mic_fired": eval["mic_fired"],
                    "resolution": resolution.as_ref().map(|r| json!({
                        "thread_id": r.thread_id,
                        "resolution": r.resolution,
                        "record_hash": r.record_hash,
                    })),
                }),
            ))
            .await?;
        let inscribed_at = receipt.record.timestamp.clone();
        self.store.execute(
            "UPDATE decisions SET decision_id = ?1, record_index = ?2, record_hash = ?3,
                 prior_hash = ?4, inscribed_at = ?5 WHERE id = ?6",
            args![
                &decision_id,
                receipt.index as i64,
                receipt.record_hash.to_hex(),
                receipt.prior_hash.to_hex(),
                &inscribed_at,
                &req.decision_node_id
            ],
        )?;
        Ok(Inscribed {
            decision_id,
            record_hash: receipt.record_hash.to_hex(),
            prior_hash: receipt.prior_hash.to_hex(),
            mic_fired: eval["mic_fired"].as_bool().unwrap_or(false),
            verdict: verdict.to_ascii_uppercase(),
            inscribed_at,
            ledger_index: receipt.index,
            resolution: resolution.map(|r| r.resolution),
        })
    }

    /// The full record of a decision, by its decision id or its node id.
    pub fn forensics(&self, p: &Principal, id: &str) -> Result<Forensics, GovError> {
        if !(p.allows(&Scope::Read) || p.allows(&Scope::Auditor)) {
            return Err(GovError::Forbidden(Scope::Read));
        }
        let row = self.store.query_opt(
            "SELECT id, intent_id, agent_id, decision_type, payload, verdict, evaluation,
                    decision_id, record_index, record_hash, prior_hash, inscribed_at
             FROM decisions WHERE tenant_id = ?1 AND (decision_id = ?2 OR id = ?2)",
            args![&p.tenant, id],
        )?;
        let Some(row) = row else {
            return Err(GovError::NotFound {
                what: "decision",
                id: id.to_owned(),
            });
        };
        let node: String = row.get(0)?;
        let intent_id: String = row.get(1)?;
        let agent_id: String = row.get(2)?;
        let decision_type: String = row.get(3)?;
        let payload: String = row.get(4)?;
        let verdict: String = row.get(5)?;
        let evaluation: String = row.get(6)?;
        let decision_id: Option<String> = row.get(7)?;
        let index: Option<i64> = row.get(8)?;
        let record_hash: Option<String> = row.get(9)?;
        let prior_hash: Option<String> = row.get(10)?;
        let inscribed_at: Option<String> = row.get(11)?;
        let eval: Value = serde_json::from_str(&evaluation).unwrap_or(Value::Null);
        let receipt = match index {
            Some(i) => Some(self.ledger.reader().receipt(i as u64)?),
            None => None,
        };
        Ok(Forensics {
            decision_id: decision_id.unwrap_or(node),
            verdict: verdict.to_ascii_uppercase(),
            decision_type,
            payload: serde_json::from_str(&payload).unwrap_or(Value::Null),
            mic_conditions: mic_conditions(&eval),
            governance_utilization: eval["utilization"].as_f64().unwrap_or(0.0),
            reason_codes: serde_json::from_value(eval["reason_codes"].clone()).unwrap_or_default(),
            policy_hash: eval["policy_hash"].as_str().unwrap_or_default().to_owned(),
            record_hash,
            prior_hash,
            inscribed_at,
            intent_id,
            agent_id,
            receipt,
        })
    }
}

/// What a decision announces: that it was made and, when it blocks, a policy violation.
pub(crate) fn decision_events(
    id: &str,
    decision_type: &str,
    agent: &str,
    evaluation: &warden_policy::Evaluation,
) -> Vec<crate::events::NewEvent> {
    use crate::events::NewEvent;
    let verdict = verdict_name(evaluation.verdict);
    let payload = json!({
        "decision_type": decision_type,
        "agent_id": agent,
        "verdict": verdict,
        "reason_codes": evaluation.reason_codes,
        "policy_hash": evaluation.policy_hash,
        "governance_utilization": evaluation.utilization,
        "mic_fired": evaluation.mic_fired,
    });
    let mut made = NewEvent::of(
        "decision.made",
        "decisions",
        id,
        format!("{decision_type}: {verdict}"),
        payload.clone(),
    );
    made.score_after = Some(evaluation.utilization);
    let mut out = vec![made];
    if evaluation.verdict == Outcome::Block {
        let mut v = NewEvent::of(
            "policy.violation.detected",
            "decisions",
            id,
            if evaluation.reason_codes.is_empty() {
                format!("{decision_type} blocked")
            } else {
                evaluation.reason_codes.join(", ")
            },
            payload,
        );
        v.score_after = Some(evaluation.utilization);
        out.push(v);
    }
    out
}
