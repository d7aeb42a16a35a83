//! What the data plane (the LLM proxy, the MCP proxy) needs from the domain for calls it
//! governs inline: the intent a call is made under, and a Decision Desk thread when policy
//! escalates one. Allowed and blocked calls are not stored here: their record is the ledger
//! entry the data plane inscribes, which keeps the hot path free of store writes.

use serde_json::Value;
use warden_policy::Evaluation;

use crate::db::args;
use crate::decisions::{new_id, Decisions, GovError};
use crate::keys::Principal;

/// The description of the intent an agent gets when none was configured or registered.
const IMPLICIT_INTENT: &str = "calls made without a declared intent";

impl Decisions {
    /// The intent `agent` of `tenant` works under when a call names none: the one with this
    /// description if it exists, else a new one. Idempotent, so it can run at every start.
    pub fn ensure_agent_intent(
        &self,
        tenant: &str,
        agent: &str,
        description: Option<&str>,
    ) -> Result<String, GovError> {
        let description = description.unwrap_or(IMPLICIT_INTENT);
        crate::decisions::text("agent", agent, 128)?;
        crate::decisions::text("intent", description, 4000)?;
        self.store.ensure_tenant(tenant)?;
        let found = self.store.query_opt(
            "SELECT id FROM intents WHERE tenant_id = ?1 AND agency_id = ?2
                 AND description = ?3 ORDER BY created_at LIMIT 1",
            args![tenant, agent, description],
        )?;
        if let Some(row) = found {
            return Ok(row.get(0)?);
        }
        let id = new_id("int");
        self.store.execute(
            "INSERT INTO intents (id, tenant_id, agency_id, description, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            args![&id, tenant, agent, description, crate::now()],
        )?;
        Ok(id)
    }

    /// Whether `intent_id` is one of the caller's tenant's intents (a call naming another
    /// tenant's intent is refused as not found).
    pub fn check_intent(&self, p: &Principal, intent_id: &str) -> Result<(), GovError> {
        let found = self.store.query_opt(
            "SELECT 1 FROM intents WHERE id = ?1 AND tenant_id = ?2",
            args![intent_id, &p.tenant],
        )?;
        found.map(|_| ()).ok_or_else(|| GovError::NotFound {
            what: "intent",
            id: intent_id.to_owned(),
        })
    }

    /// Stores an escalated call as a decision node and opens its Decision Desk thread; the
    /// thread is resolved through the ordinary escalation routes. `payload` is what a
    /// reviewer sees: a summary of the call, never raw prompts.
    ///
    /// Returns `(decision_node_id, thread_id)`.
    pub fn escalate_call(
        &self,
        p: &Principal,
        intent_id: &str,
        agent: &str,
        decision_type: &str,
        payload: &Value,
        evaluation: &Evaluation,
    ) -> Result<(String, String), GovError> {
        let (id, _) = self.insert_node(
            &p.tenant,
            intent_id,
            agent,
            decision_type,
            payload,
            evaluation,
        )?;
        let thread = self.open_escalation(&p.tenant, &id, &evaluation.reason_codes)?;
        Ok((id, thread))
    }
}
