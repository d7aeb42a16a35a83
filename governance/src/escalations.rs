//! The Decision Desk: escalation threads opened by `escalate` verdicts and resolved by people.
//!
//! A resolution is itself governed: it is inscribed in the ledger (kind
//! `escalation.resolution`) before it takes effect, so the causal chain decision -> escalate ->
//! human resolution -> final outcome can be proved from the ledger alone. An escalated
//! decision is inscribed only once its thread is resolved, and its record names the resolution.

use serde::{Deserialize, Serialize};
use serde_json::json;
use warden_ledger::Entry;

use crate::db::{args, Row};
use crate::decisions::{Decisions, GovError};
use crate::events::NewEvent;
use crate::keys::Principal;
use crate::scope::Scope;

/// `POST /v1/escalations/{thread_id}/resolve`
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resolve {
    /// `APPROVE` or `REJECT`.
    pub resolution: String,
    /// The human who decided.
    pub resolved_by: String,
    #[serde(default)]
    pub notes: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Resolved {
    pub thread_id: String,
    pub resolution: String,
    pub resolved_at: String,
    /// Hash of the resolution's own ledger record.
    pub record_hash: String,
}

/// A thread on the Decision Desk.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Escalation {
    pub thread_id: String,
    pub decision_node_id: String,
    pub intent_id: String,
    pub agent_id: String,
    pub decision_type: String,
    pub reason_codes: Vec<String>,
    /// `OPEN`, `APPROVE` or `REJECT`.
    pub status: String,
    pub opened_at: String,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<String>,
    pub notes: Option<String>,
}

/// The resolution an escalated decision is inscribed with.
pub(crate) struct Resolution {
    pub thread_id: String,
    pub resolution: String,
    pub record_hash: String,
}

impl Decisions {
    /// Opens the thread of an escalated decision node (called by `propose`).
    pub(crate) fn open_escalation(
        &self,
        tenant: &str,
        node: &str,
        reason_codes: &[String],
    ) -> Result<String, GovError> {
        let thread_id = crate::decisions::new_id("esc");
        self.events.write_with(
            tenant,
            |tx| {
                tx.execute(
                    "INSERT INTO escalations (id, tenant_id, decision_node_id, reason_codes,
                         status, opened_at)
                     VALUES (?1, ?2, ?3, ?4, 'OPEN', ?5)",
                    args![
                        &thread_id,
                        tenant,
                        node,
                        reason_codes.join(","),
                        crate::now()
                    ],
                )
            },
            |_| {
                vec![NewEvent::of(
                    "escalation.opened",
                    "escalations",
                    &thread_id,
                    if reason_codes.is_empty() {
                        "escalate verdict".to_owned()
                    } else {
                        reason_codes.join(", ")
                    },
                    json!({"decision_node_id": node, "reason_codes": reason_codes}),
                )]
            },
        )?;
        Ok(thread_id)
    }

    /// The tenant's threads, newest first; `status` filters (`OPEN`, `APPROVE`, `REJECT`).
    pub fn list_escalations(
        &self,
        p: &Principal,
        status: Option<&str>,
    ) -> Result<Vec<Escalation>, GovError> {
        if !(p.allows(&Scope::Read) || p.allows(&Scope::Auditor)) {
            return Err(GovError::Forbidden(Scope::Read));
        }
        let status = status.map(str::to_ascii_uppercase);
        if let Some(s) = &status {
            if !["OPEN", "APPROVE", "REJECT"].contains(&s.as_str()) {
                return Err(GovError::Invalid {
                    field: "status",
                    message: format!("{s:?} is not OPEN, APPROVE or REJECT"),
                });
            }
        }
        self.store
            .query(
                "SELECT e.id, e.decision_node_id, d.intent_id, d.agent_id, d.decision_type,
                        e.reason_codes, e.status, e.opened_at, e.resolved_by, e.resolved_at, e.notes
                 FROM escalations e JOIN decisions d ON d.id = e.decision_node_id
                 WHERE e.tenant_id = ?1 AND (CAST(?2 AS TEXT) IS NULL OR e.status = ?2)
                 ORDER BY e.opened_at DESC, e.id LIMIT 500",
                args![&p.tenant, status],
            )?
            .iter()
            .map(row_to_escalation)
            .collect()
    }

    /// Open threads across all tenants (for metrics: a count, no tenant data).
    pub fn open_escalations(&self) -> Result<u64, GovError> {
        let n: i64 = match self.store.query_opt(
            "SELECT count(*) FROM escalations WHERE status = 'OPEN'",
            vec![],
        )? {
            Some(r) => r.get(0)?,
            None => 0,
        };
        Ok(n as u64)
    }

    /// One thread of the tenant.
    pub fn escalation(&self, p: &Principal, thread_id: &str) -> Result<Escalation, GovError> {
        if !(p.allows(&Scope::Read) || p.allows(&Scope::Auditor)) {
            return Err(GovError::Forbidden(Scope::Read));
        }
        let row = self.store.query_opt(
            "SELECT e.id, e.decision_node_id, d.intent_id, d.agent_id, d.decision_type,
                    e.reason_codes, e.status, e.opened_at, e.resolved_by, e.resolved_at, e.notes
             FROM escalations e JOIN decisions d ON d.id = e.decision_node_id
             WHERE e.tenant_id = ?1 AND e.id = ?2",
            args![&p.tenant, thread_id],
        )?;
        match row {
            Some(r) => row_to_escalation(&r),
            None => Err(GovError::NotFound {
                what: "escalation thread",
                id: thread_id.to_owned(),
            }),
        }
    }

    /// The thread once it is resolved, or as it is after `wait` (a caller holding an action
    /// until a human decides long-polls this instead of polling). A resolution made by this
    /// process wakes it at once; one made by another process sharing a PostgreSQL store wakes
    /// it through LISTEN/NOTIFY (see [`Decisions::new`]).
    pub async fn wait_escalation(
        &self,
        p: &Principal,
        thread_id: &str,
        wait: std::time::Duration,
    ) -> Result<Escalation, GovError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Listen before looking, so a resolution in between is not missed.
            let notified = self.resolved.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let e = self.escalation(p, thread_id)?;
            if e.status != "OPEN" || tokio::time::Instant::now() >= deadline {
                return Ok(e);
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// Resolves an open thread; the resolution is inscribed before it counts.
    pub async fn resolve_escalation(
        &self,
        p: &Principal,
        thread_id: &str,
        req: Resolve,
    ) -> Result<Resolved, GovError> {
        if !p.allows(&Scope::Admin) {
            return Err(GovError::Forbidden(Scope::Admin));
        }
        let resolution = req.resolution.to_ascii_uppercase();
        if resolution != "APPROVE" && resolution != "REJECT" {
            return Err(GovError::Invalid {
                field: "resolution",
                message: format!("{:?} is not APPROVE or REJECT", req.resolution),
            });
        }
        crate::decisions::text("resolved_by", &req.resolved_by, 200)?;
        if let Some(n) = &req.notes {
            if n.chars().count() > 4000 {
                return Err(GovError::Invalid {
                    field: "notes",
                    message: "at most 4000 characters".into(),
                });
            }
        }
        let row = self.store.query_opt(
            "SELECT decision_node_id, status FROM escalations WHERE id = ?1 AND tenant_id = ?2",
            args![thread_id, &p.tenant],
        )?;
        let Some(row) = row else {
            return Err(GovError::NotFound {
                what: "escalation thread",
                id: thread_id.to_owned(),
            });
        };
        let (node, status): (String, String) = (row.get(0)?, row.get(1)?);
        if status != "OPEN" {
            return Err(GovError::Conflict {
                field: None,
                message: format!("thread {thread_id} was already resolved: {status}"),
            });
        }
        let receipt = self
            .ledger
            .append(Entry::new(
                "escalation.resolution",
                p.tenant.clone(),
                json!({
                    "thread_id": thread_id,
                    "decision_node_id": node,
                    "resolution": resolution,
                    "resolved_by": req.resolved_by,
                    "notes": req.notes,
                    "key_id": p.key_id,
                }),
            ))
            .await?;
        let resolved_at = receipt.record.timestamp.clone();
        let changed = self.events.write_with(
            &p.tenant,
            |tx| {
                tx.execute(
                    "UPDATE escalations SET status = ?1, resolved_by = ?2, resolved_at = ?3,
                         notes = ?4, record_hash = ?5 WHERE id = ?6 AND status = 'OPEN'",
                    args![
                        &resolution,
                        &req.resolved_by,
                        &resolved_at,
                        &req.notes,
                        receipt.record_hash.to_hex(),
                        thread_id
                    ],
                )
            },
            |changed| {
                if *changed == 0 {
                    return Vec::new();
                }
                vec![NewEvent::of(
                    "escalation.resolved",
                    "escalations",
                    thread_id,
                    format!("OPEN -> {resolution}"),
                    json!({
                        "decision_node_id": node,
                        "resolution": resolution,
                        "resolved_by": req.resolved_by,
                        "record_hash": receipt.record_hash.to_hex(),
                    }),
                )]
            },
        )?;
        self.resolved.notify_waiters();
        if changed > 0 {
            // Waiters held by other processes of the fleet look again too.
            if let Err(e) = self.store.notify(RESOLVED_CHANNEL, thread_id) {
                tracing::warn!(error = %e, thread_id, "could not announce the resolution to other replicas; their waiters see it at their deadline");
            }
        }
        if changed == 0 {
            // Resolved concurrently; the first resolution stands and this one's record says so.
            return Err(GovError::Conflict {
                field: None,
                message: format!("thread {thread_id} was resolved concurrently"),
            });
        }
        Ok(Resolved {
            thread_id: thread_id.to_owned(),
            resolution,
            resolved_at,
            record_hash: receipt.record_hash.to_hex(),
        })
    }

    /// The resolution of the node's thread, if it has one and it is resolved.
    pub(crate) fn resolution_of(&self, node: &str) -> Result<Option<Resolution>, GovError> {
        let row = self.store.query_opt(
            "SELECT id, status, record_hash FROM escalations WHERE decision_node_id = ?1",
            args![node],
        )?;
        let row: Option<(String, String, Option<String>)> = match row {
            Some(r) => Some((r.get(0)?, r.get(1)?, r.get(2)?)),
            None => None,
        };
        Ok(match row {
            Some((thread_id, status, Some(record_hash))) if status != "OPEN" => Some(Resolution {
                thread_id,
                resolution: status,
                record_hash,
            }),
            Some((thread_id, _, _)) => {
                return Err(GovError::Conflict {
                    field: Some("verdict"),
                    message: format!(
                        "verdict: the decision awaits its resolution on the Decision Desk (thread {thread_id})"
                    ),
                })
            }
            None => None,
        })
    }
}

/// The channel on which resolutions are announced to the other processes of a fleet.
pub(crate) const RESOLVED_CHANNEL: &str = "warden_escalation_resolved";

fn row_to_escalation(r: &Row) -> Result<Escalation, GovError> {
    Ok(Escalation {
        thread_id: r.get(0)?,
        decision_node_id: r.get(1)?,
        intent_id: r.get(2)?,
        agent_id: r.get(3)?,
        decision_type: r.get(4)?,
        reason_codes: r
            .get::<String>(5)?
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        status: r.get(6)?,
        opened_at: r.get(7)?,
        resolved_by: r.get(8)?,
        resolved_at: r.get(9)?,
        notes: r.get(10)?,
    })
}
