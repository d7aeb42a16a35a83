//! The agent registry and the one-call evaluation of seed 004 (KLA): `POST /v1/agents`,
//! `POST /v1/decisions.evaluate`, `GET /v1/lineage/{id}/verify`.
//!
//! Registering an agent inscribes its manifest hash in the ledger (so the signed checkpoints
//! vouch for it) and gives the agent a default intent, under which its one-call evaluations
//! are recorded. An evaluation is judged and inscribed at once; `require_approval` also opens a
//! Decision Desk thread.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use warden_ledger::Entry;
use warden_policy::{Input, Outcome};

use crate::db::args;
use crate::decisions::{new_id, payload_hash, text, Decisions, GovError};
use crate::keys::Principal;
use crate::scope::Scope;

/// `POST /v1/agents`
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterAgent {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub model: String,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub tools: Vec<String>,
    #[serde(default)]
    pub owner: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentRegistered {
    pub agent_id: String,
    pub manifest_hash: String,
    pub registered_at: String,
    /// The intent under which this agent's one-call evaluations are recorded.
    pub default_intent_id: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Agent {
    pub agent_id: String,
    pub name: String,
    pub description: Option<String>,
    pub model: String,
    pub temperature: Option<f64>,
    pub tools: Vec<String>,
    pub owner: Option<String>,
    pub manifest_hash: String,
    pub registered_at: String,
    pub default_intent_id: String,
}

/// `POST /v1/decisions.evaluate`
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Evaluate {
    pub agent_id: String,
    pub action: String,
    #[serde(default)]
    pub context: Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Evaluated {
    /// `allow`, `warn`, `require_approval` or `block`.
    pub decision: String,
    pub reason_codes: Vec<String>,
    pub requires_desk_approval: bool,
    pub decision_id: String,
    /// The Decision Desk thread, for `require_approval`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalation_thread_id: Option<String>,
    pub utilization: f64,
}

/// `GET /v1/lineage/{id}/verify`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Lineage {
    pub lineage_id: String,
    pub anchored: bool,
    pub ledger_index: u64,
    pub leaf_hash: String,
    pub root_hash: String,
    /// RFC 9162 audit path, leaf side first, as `sha256:<hex>`.
    pub merkle_path: Vec<String>,
    pub tree_size: u64,
    /// The signed checkpoint the path leads to, and the whole receipt for `warden verify`.
    #[schema(value_type = Object)]
    pub receipt: warden_ledger::Receipt,
}

fn kla_decision(o: Outcome) -> &'static str {
    match o {
        Outcome::Allow => "allow",
        Outcome::Warn => "warn",
        Outcome::Escalate => "require_approval",
        Outcome::Block => "block",
    }
}

impl Decisions {
    pub async fn register_agent(
        &self,
        p: &Principal,
        req: RegisterAgent,
    ) -> Result<AgentRegistered, GovError> {
        if !p.allows(&Scope::Write) {
            return Err(GovError::Forbidden(Scope::Write));
        }
        text("name", &req.name, 128)?;
        text("model", &req.model, 128)?;
        if let Some(t) = req.temperature {
            if !(0.0..=2.0).contains(&t) {
                return Err(GovError::Invalid {
                    field: "temperature",
                    message: "must be between 0 and 2".into(),
                });
            }
        }
        for tool in &req.tools {
            text("tools", tool, 128)?;
        }
        let manifest = json!({
            "name": req.name, "description": req.description, "model": req.model,
            "temperature": req.temperature, "tools": req.tools, "owner": req.owner,
        });
        let manifest_hash = format!(
            "sha256:{}",
            hex::encode(Sha256::digest(
                warden_ledger::canonical::to_string(&manifest).as_bytes()
            ))
        );
        let exists = self.store.query_opt(
            "SELECT id FROM agents WHERE tenant_id = ?1 AND name = ?2",
            args![&p.tenant, &req.name],
        )?;
        if let Some(row) = exists {
            let id: String = row.get(0)?;
            return Err(GovError::Conflict {
                field: Some("name"),
                message: format!(
                    "name: an agent named {:?} is registered already ({id})",
                    req.name
                ),
            });
        }
        let agent_id = new_id("agt");
        let receipt = self
            .ledger
            .append(Entry::new(
                "agent.registered",
                p.tenant.clone(),
                json!({"agent_id": agent_id, "manifest_hash": manifest_hash, "key_id": p.key_id}),
            ))
            .await?;
        let registered_at = receipt.record.timestamp.clone();
        let default_intent_id = new_id("int");
        self.store.transaction(vec![
            (
                "INSERT INTO intents (id, tenant_id, agency_id, description, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                args![
                    &default_intent_id,
                    &p.tenant,
                    format!("agent:{agent_id}"),
                    format!("default intent of agent {}", req.name),
                    &registered_at
                ],
            ),
            (
                "INSERT INTO agents (id, tenant_id, name, manifest, manifest_hash, default_intent_id,
                     record_hash, registered_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                args![
                    &agent_id,
                    &p.tenant,
                    &req.name,
                    manifest.to_string(),
                    &manifest_hash,
                    &default_intent_id,
                    receipt.record_hash.to_hex(),
                    &registered_at
                ],
            ),
        ])?;
        Ok(AgentRegistered {
            agent_id,
            manifest_hash,
            registered_at,
            default_intent_id,
        })
    }

    pub fn agent(&self, p: &Principal, agent_id: &str) -> Result<Agent, GovError> {
        if !(p.allows(&Scope::Read) || p.allows(&Scope::Auditor)) {
            return Err(GovError::Forbidden(Scope::Read));
        }
        let row = self.store.query_opt(
            "SELECT manifest, manifest_hash, default_intent_id, registered_at
             FROM agents WHERE id = ?1 AND tenant_id = ?2",
            args![agent_id, &p.tenant],
        )?;
        let Some(row) = row else {
            return Err(GovError::NotFound {
                what: "agent",
                id: agent_id.to_owned(),
            });
        };
        let (manifest, manifest_hash, default_intent_id, registered_at): (
            String,
            String,
            String,
            String,
        ) = (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
        let m: Value = serde_json::from_str(&manifest).unwrap_or(Value::Null);
        Ok(Agent {
            agent_id: agent_id.to_owned(),
            name: m["name"].as_str().unwrap_or_default().to_owned(),
            description: m["description"].as_str().map(str::to_owned),
            model: m["model"].as_str().unwrap_or_default().to_owned(),
            temperature: m["temperature"].as_f64(),
            tools: serde_json::from_value(m["tools"].clone()).unwrap_or_default(),
            owner: m["owner"].as_str().map(str::to_owned),
            manifest_hash,
            registered_at,
            default_intent_id,
        })
    }

    /// Judges an action and inscribes the outcome in one call.
    pub async fn evaluate(&self, p: &Principal, req: Evaluate) -> Result<Evaluated, GovError> {
        if !p.allows(&Scope::Write) {
            return Err(GovError::Forbidden(Scope::Write));
        }
        text("action", &req.action, 128)?;
        let intent_id = self.agent(p, &req.agent_id)?.default_intent_id;
        let input = Input {
            decision_type: "decision.evaluate".into(),
            action: Some(req.action.clone()),
            agent_id: Some(req.agent_id.clone()),
            tool: None,
            context: req.context.clone(),
        };
        let evaluation = self.policies.evaluate(&input)?;
        let decision_id = new_id("dec");
        let hash = payload_hash(&req.context);
        let receipt = self
            .ledger
            .append(Entry::new(
                "decision",
                p.tenant.clone(),
                json!({
                    "decision_id": decision_id,
                    "agent_id": req.agent_id,
                    "action": req.action,
                    "verdict": evaluation.verdict.as_str(),
                    "payload_hash": hash,
                    "policy_hash": evaluation.policy_hash,
                    "reason_codes": evaluation.reason_codes,
                    "utilization": evaluation.utilization,
                    "mic_fired": evaluation.mic_fired,
                }),
            ))
            .await?;
        let eval_json = serde_json::to_value(&evaluation).expect("an evaluation serializes");
        self.events.write_with(
            &p.tenant,
            |tx| {
                tx.execute(
                    "INSERT INTO decisions (id, tenant_id, intent_id, agent_id, decision_type,
                         payload, payload_hash, verdict, evaluation, created_at, decision_id,
                         record_index, record_hash, prior_hash, inscribed_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?1, ?11, ?12, ?13, ?10)",
                    args![
                        &decision_id,
                        &p.tenant,
                        &intent_id,
                        &req.agent_id,
                        &req.action,
                        req.context.to_string(),
                        &hash,
                        evaluation.verdict.as_str(),
                        eval_json.to_string(),
                        &receipt.record.timestamp,
                        receipt.index as i64,
                        receipt.record_hash.to_hex(),
                        receipt.prior_hash.to_hex()
                    ],
                )
            },
            |_| {
                crate::decisions::decision_events(
                    &decision_id,
                    &req.action,
                    &req.agent_id,
                    &evaluation,
                )
            },
        )?;
        let escalation_thread_id = if evaluation.verdict == Outcome::Escalate {
            Some(self.open_escalation(&p.tenant, &decision_id, &evaluation.reason_codes)?)
        } else {
            None
        };
        Ok(Evaluated {
            decision: kla_decision(evaluation.verdict).into(),
            reason_codes: evaluation.reason_codes.clone(),
            requires_desk_approval: evaluation.verdict == Outcome::Escalate,
            decision_id,
            escalation_thread_id,
            utilization: evaluation.utilization,
        })
    }

    /// The Merkle proof that a decision (by decision id) is anchored in the ledger.
    pub fn lineage(&self, p: &Principal, lineage_id: &str) -> Result<Lineage, GovError> {
        let f = self.forensics(p, lineage_id)?;
        let Some(receipt) = f.receipt else {
            return Err(GovError::NotFound {
                what: "anchored lineage record",
                id: lineage_id.to_owned(),
            });
        };
        let sha = |h: &warden_ledger::Hash| format!("sha256:{}", h.to_hex());
        Ok(Lineage {
            lineage_id: lineage_id.to_owned(),
            anchored: true,
            ledger_index: receipt.index,
            leaf_hash: sha(&receipt.record.leaf_hash()),
            root_hash: sha(&receipt.checkpoint.root_hash),
            merkle_path: receipt.inclusion_proof.iter().map(sha).collect(),
            tree_size: receipt.checkpoint.tree_size,
            receipt,
        })
    }
}
