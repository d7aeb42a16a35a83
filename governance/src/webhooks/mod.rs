//! Webhooks of the governance event stream: registration, the deliveries each event owes, the
//! dead-letter queue, and (in `deliver.rs`) the dispatcher that sends them.
//!
//! A registration names its signing secret by alias; the secrets themselves come from the
//! configuration (`events.webhook_secrets`), so they never pass through the API or the store.
//! Targets are checked against SSRF (`target.rs`) when registered and again, after DNS
//! resolution, at every attempt.

mod deliver;
mod target;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use deliver::{Dispatcher, DispatcherOptions};
pub use target::{TargetError, TargetPolicy};

use crate::db::args;
use crate::decisions::{new_id, GovError};
use crate::events::{Event, Events, PUBLIC_TENANT, PUBLISHABLE_TYPES, WARDEN_TYPES};
use crate::keys::Principal;
use crate::scope::Scope;
use crate::store::{Store, StoreError, Tx};

/// Most webhooks one tenant may register.
const MAX_WEBHOOKS: i64 = 100;

/// The signing secrets, by alias, read from the configuration at start-up.
#[derive(Clone, Default)]
pub struct WebhookSecrets(BTreeMap<String, Vec<u8>>);

impl std::fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

/// Why a configured secret is unusable.
#[derive(Debug, thiserror::Error)]
#[error("events.webhook_secrets[{alias}]: {message}")]
pub struct SecretError {
    pub alias: String,
    pub message: String,
}

impl WebhookSecrets {
    /// Adds a secret: `whsec_<base64>` (the Standard Webhooks form) or a plain string of at
    /// least 16 bytes, used as is.
    pub fn insert(&mut self, alias: &str, secret: &str) -> Result<(), SecretError> {
        use base64::Engine;
        let err = |message: &str| SecretError {
            alias: alias.to_owned(),
            message: message.to_owned(),
        };
        let secret = secret.trim();
        let key = match secret.strip_prefix("whsec_") {
            Some(b64) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| err("a whsec_ secret must be base64 after the prefix"))?,
            None => secret.as_bytes().to_vec(),
        };
        if key.len() < 16 {
            return Err(err("the secret must hold at least 16 bytes"));
        }
        self.0.insert(alias.to_owned(), key);
        Ok(())
    }

    pub(crate) fn get(&self, alias: &str) -> Option<&[u8]> {
        self.0.get(alias).map(Vec::as_slice)
    }

    fn aliases(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// `POST /v1/governance-events/webhooks`
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterWebhook {
    /// `https://...`; plain http only for targets in `events.allowed_targets`.
    pub target_url: String,
    /// The event types to send; empty or absent: all.
    #[serde(default)]
    pub event_types: Vec<String>,
    /// The alias of a secret in `events.webhook_secrets`.
    pub hmac_secret_alias: String,
}

/// A registered webhook (its secret is never shown, only its alias).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Webhook {
    pub id: String,
    pub target_url: String,
    pub event_types: Vec<String>,
    pub hmac_secret_alias: String,
    pub created_at: String,
}

/// A delivery that exhausted its attempts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadLetter {
    pub delivery_id: String,
    pub webhook_id: String,
    pub target_url: String,
    pub event: Event,
    pub attempts: u32,
    /// The HTTP status of the last attempt, if the target answered.
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub failed_at: String,
}

/// `POST /v1/governance-events/dead-letters`: which to send again (none named: all).
#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    #[serde(default)]
    pub delivery_ids: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Replayed {
    /// Deliveries queued again, with their attempts reset.
    pub replayed: usize,
}

/// Webhook registration and the dead-letter queue.
pub struct Webhooks {
    store: Arc<Store>,
    events: Arc<Events>,
    secrets: WebhookSecrets,
    targets: TargetPolicy,
}

impl Webhooks {
    pub fn new(
        store: Arc<Store>,
        events: Arc<Events>,
        secrets: WebhookSecrets,
        targets: TargetPolicy,
    ) -> Webhooks {
        Webhooks {
            store,
            events,
            secrets,
            targets,
        }
    }

    /// Registers a webhook (scope `admin`: it sends the tenant's events elsewhere). The target
    /// is resolved now, so an address Warden would refuse is refused here with its reason.
    pub async fn register(&self, p: &Principal, req: RegisterWebhook) -> Result<Webhook, GovError> {
        if !p.allows(&Scope::Admin) {
            return Err(GovError::Forbidden(Scope::Admin));
        }
        if self.secrets.get(&req.hmac_secret_alias).is_none() {
            let known = self.secrets.aliases();
            return Err(GovError::Invalid {
                field: "hmac_secret_alias",
                message: if known.is_empty() {
                    format!(
                        "{:?} is not configured; no secrets are (events.webhook_secrets)",
                        req.hmac_secret_alias
                    )
                } else {
                    format!(
                        "{:?} is not configured; known aliases: {}",
                        req.hmac_secret_alias,
                        known.join(", ")
                    )
                },
            });
        }
        let mut types = req.event_types.clone();
        types.sort();
        types.dedup();
        for t in &types {
            if !(PUBLISHABLE_TYPES.contains(&t.as_str()) || WARDEN_TYPES.contains(&t.as_str())) {
                return Err(GovError::Invalid {
                    field: "event_types",
                    message: format!(
                        "{t:?} is not an event type; known: {}, {}",
                        PUBLISHABLE_TYPES.join(", "),
                        WARDEN_TYPES.join(", ")
                    ),
                });
            }
        }
        let url = self
            .targets
            .check(&req.target_url)
            .await
            .map_err(|e| GovError::Invalid {
                field: "target_url",
                message: e.to_string(),
            })?;
        let hook = Webhook {
            id: new_id("whk"),
            target_url: url.to_string(),
            event_types: types,
            hmac_secret_alias: req.hmac_secret_alias,
            created_at: crate::now(),
        };
        let event_types = serde_json::to_string(&hook.event_types).expect("strings serialize");
        self.store.write(|tx| {
            // Under the lock a concurrent registration takes too, so two cannot both pass the
            // count on PostgreSQL.
            tx.serialize("webhooks")?;
            let count: i64 = tx
                .query_opt(
                    "SELECT count(*) FROM webhooks WHERE tenant_id = ?1 AND deleted_at IS NULL",
                    args![&p.tenant],
                )?
                .map_or(Ok(0), |r| r.get(0))?;
            if count >= MAX_WEBHOOKS {
                return Err(GovError::Conflict {
                    field: None,
                    message: format!("a tenant may register at most {MAX_WEBHOOKS} webhooks"),
                });
            }
            tx.execute(
                "INSERT INTO webhooks (id, tenant_id, target_url, event_types, secret_alias, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                args![
                    &hook.id,
                    &p.tenant,
                    &hook.target_url,
                    event_types,
                    &hook.hmac_secret_alias,
                    &hook.created_at
                ],
            )?;
            Ok(())
        })?;
        Ok(hook)
    }

    /// The tenant's webhooks.
    pub fn list(&self, p: &Principal) -> Result<Vec<Webhook>, GovError> {
        if !p.allows(&Scope::Admin) {
            return Err(GovError::Forbidden(Scope::Admin));
        }
        self.store
            .query(
                "SELECT id, target_url, event_types, secret_alias, created_at FROM webhooks
                 WHERE tenant_id = ?1 AND deleted_at IS NULL ORDER BY created_at, id",
                args![&p.tenant],
            )?
            .iter()
            .map(|r| {
                Ok(Webhook {
                    id: r.get(0)?,
                    target_url: r.get(1)?,
                    event_types: serde_json::from_str(&r.get::<String>(2)?).unwrap_or_default(),
                    hmac_secret_alias: r.get(3)?,
                    created_at: r.get(4)?,
                })
            })
            .collect()
    }

    /// Deletes a webhook; its pending deliveries are cancelled.
    pub fn delete(&self, p: &Principal, id: &str) -> Result<(), GovError> {
        if !p.allows(&Scope::Admin) {
            return Err(GovError::Forbidden(Scope::Admin));
        }
        let now = crate::now();
        let changed = self.store.write(|tx| {
            let changed = tx.execute(
                "UPDATE webhooks SET deleted_at = ?1
                 WHERE id = ?2 AND tenant_id = ?3 AND deleted_at IS NULL",
                args![&now, id, &p.tenant],
            )?;
            if changed > 0 {
                tx.execute(
                    "UPDATE webhook_deliveries SET status = 'cancelled', updated_at = ?1
                     WHERE webhook_id = ?2 AND status = 'pending'",
                    args![&now, id],
                )?;
            }
            Ok::<_, StoreError>(changed)
        })?;
        if changed == 0 {
            return Err(GovError::NotFound {
                what: "webhook",
                id: id.to_owned(),
            });
        }
        Ok(())
    }

    /// The tenant's dead letters, newest first (at most 500).
    pub fn dead_letters(&self, p: &Principal) -> Result<Vec<DeadLetter>, GovError> {
        if !p.allows(&Scope::Admin) {
            return Err(GovError::Forbidden(Scope::Admin));
        }
        self.store
            .query(
                "SELECT d.id, d.webhook_id, w.target_url, d.attempts, d.last_status, d.last_error,
                        d.updated_at,
                        e.id, e.event_type, e.source_table, e.source_id, e.trigger_reason,
                        e.payload, e.score_before, e.score_after, e.created_at
                 FROM webhook_deliveries d
                 JOIN webhooks w ON w.id = d.webhook_id
                 JOIN governance_events e ON e.seq = d.event_seq
                 WHERE d.tenant_id = ?1 AND d.status = 'dead'
                 ORDER BY d.updated_at DESC, d.id LIMIT 500",
                args![&p.tenant],
            )?
            .iter()
            .map(|r| {
                Ok(DeadLetter {
                    delivery_id: r.get(0)?,
                    webhook_id: r.get(1)?,
                    target_url: r.get(2)?,
                    attempts: r.get(3)?,
                    last_status: r.get(4)?,
                    last_error: r.get(5)?,
                    failed_at: r.get(6)?,
                    event: crate::events::row_to_event(r, 7)?,
                })
            })
            .collect()
    }

    /// Queues dead letters again (all of the tenant's when none are named), attempts reset.
    pub fn replay(&self, p: &Principal, req: Replay) -> Result<Replayed, GovError> {
        if !p.allows(&Scope::Admin) {
            return Err(GovError::Forbidden(Scope::Admin));
        }
        let now = crate::now();
        let now_ms = now_ms();
        let replayed = self.store.write(|tx| {
            if req.delivery_ids.is_empty() {
                return Ok(tx.execute(
                    "UPDATE webhook_deliveries SET status = 'pending', attempts = 0,
                         next_attempt_ms = ?1, updated_at = ?2
                     WHERE tenant_id = ?3 AND status = 'dead'
                       AND webhook_id IN (SELECT id FROM webhooks WHERE deleted_at IS NULL)",
                    args![now_ms, &now, &p.tenant],
                )?);
            }
            let mut replayed = 0;
            for id in &req.delivery_ids {
                let changed = tx.execute(
                    "UPDATE webhook_deliveries SET status = 'pending', attempts = 0,
                         next_attempt_ms = ?1, updated_at = ?2
                     WHERE id = ?3 AND tenant_id = ?4 AND status = 'dead'
                       AND webhook_id IN (SELECT id FROM webhooks WHERE deleted_at IS NULL)",
                    args![now_ms, &now, id, &p.tenant],
                )?;
                if changed == 0 {
                    return Err(GovError::NotFound {
                        what: "dead letter",
                        id: id.clone(),
                    });
                }
                replayed += changed;
            }
            Ok(replayed)
        })?;
        self.events.deliveries_added.notify_one();
        Ok(Replayed {
            replayed: replayed as usize,
        })
    }

    /// Pending deliveries and dead letters, for metrics and readiness.
    pub fn queue_depths(&self) -> Result<QueueDepths, GovError> {
        let row = self.store.query_opt(
            "SELECT coalesce(sum(CASE WHEN status = 'pending' THEN 1 ELSE 0 END), 0),
                    coalesce(sum(CASE WHEN status = 'dead' THEN 1 ELSE 0 END), 0)
             FROM webhook_deliveries WHERE status IN ('pending', 'dead')",
            vec![],
        )?;
        let (pending, dead): (i64, i64) = match row {
            Some(r) => (r.get(0)?, r.get(1)?),
            None => (0, 0),
        };
        Ok(QueueDepths {
            pending: pending as u64,
            dead: dead as u64,
        })
    }
}

/// The sizes of the delivery queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueDepths {
    pub pending: u64,
    pub dead: u64,
}

pub(crate) fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Queues a delivery of event `seq` for every live webhook subscribed to its type: the
/// tenant's, or every tenant's for a public event. Runs in the event's transaction.
pub(crate) fn fan_out(
    tx: &mut Tx<'_>,
    tenant: &str,
    seq: i64,
    event_type: &str,
) -> Result<(), StoreError> {
    let hooks = tx.query(
        "SELECT id, tenant_id, event_types FROM webhooks
         WHERE (tenant_id = ?1 OR ?1 = ?2) AND deleted_at IS NULL",
        args![tenant, PUBLIC_TENANT],
    )?;
    if hooks.is_empty() {
        return Ok(());
    }
    let (now, now_ms) = (crate::now(), now_ms());
    for hook in hooks {
        let (id, owner, types): (String, String, String) =
            (hook.get(0)?, hook.get(1)?, hook.get(2)?);
        let types: Vec<String> = serde_json::from_str(&types).unwrap_or_default();
        if !types.is_empty() && !types.iter().any(|t| t == event_type) {
            continue;
        }
        tx.execute(
            "INSERT INTO webhook_deliveries (id, webhook_id, tenant_id, event_seq,
                 status, attempts, next_attempt_ms, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, 'pending', 0, ?5, ?6, ?6)
             ON CONFLICT DO NOTHING",
            args![new_id("msg"), &id, &owner, seq, now_ms, &now],
        )?;
    }
    Ok(())
}
