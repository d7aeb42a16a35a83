//! The governance event stream: every state change other systems react to (a decision made, an
//! escalation opened or resolved, a policy violation, a guardian firing, a limit hit, a ledger
//! checkpoint) becomes a persisted event, so consumers follow the stream or get webhooks instead
//! of polling for status.
//!
//! An event and its webhook deliveries are written in one transaction (an outbox): an event is
//! never stored without the deliveries it owes, and a crash after the commit loses none of
//! them. Each event has an idempotency key unique within its tenant, so a producer that retries
//! yields one row. Pages are read newest first by a sequence number assigned under the store's
//! single writer, so paging by cursor neither skips nor repeats an event while others are added.
//!
//! Events of the public ledger (`ledger.checkpoint`) belong to no tenant and are visible to all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::db::{args, Row};
use crate::decisions::{new_id, GovError};
use crate::keys::Principal;
use crate::scope::Scope;
use crate::store::{Store, StoreError, Tx};

/// The tenant of events everyone may read (the ledger is public).
pub(crate) const PUBLIC_TENANT: &str = "*";

/// The event types of the seed that producers may publish (`POST /v1/governance-events`).
pub const PUBLISHABLE_TYPES: &[&str] = &[
    "policy.violation.detected",
    "assessment.completed",
    "guardian.trigger.fired",
    "compliance.threshold.breach",
    "finding.state_transition",
    "risk_score.changed",
];

/// Types only Warden emits: a producer cannot forge them.
pub const WARDEN_TYPES: &[&str] = &[
    "decision.made",
    "escalation.opened",
    "escalation.resolved",
    "rate_limit.exceeded",
    "ledger.checkpoint",
];

/// The default and largest page.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 100;

/// One event, as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    pub id: String,
    pub event_type: String,
    pub source_table: String,
    pub source_id: String,
    pub trigger_reason: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    pub score_before: Option<f64>,
    pub score_after: Option<f64>,
    pub created_at: String,
}

/// An event to record.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub event_type: String,
    pub source_table: String,
    pub source_id: String,
    pub trigger_reason: String,
    pub payload: Value,
    pub score_before: Option<f64>,
    pub score_after: Option<f64>,
    /// Unique within the tenant: recording the same key again returns the first event.
    pub idempotency_key: String,
}

impl NewEvent {
    /// An event whose idempotency key is its type and source: one per state change.
    pub fn of(
        event_type: &str,
        source_table: &str,
        source_id: &str,
        trigger_reason: impl Into<String>,
        payload: Value,
    ) -> NewEvent {
        NewEvent {
            event_type: event_type.to_owned(),
            source_table: source_table.to_owned(),
            source_id: source_id.to_owned(),
            trigger_reason: trigger_reason.into(),
            payload,
            score_before: None,
            score_after: None,
            idempotency_key: format!("{event_type}:{source_id}"),
        }
    }
}

/// `POST /v1/governance-events`: a producer's event.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishEvent {
    /// One of the seed's types, e.g. `finding.state_transition`.
    pub event_type: String,
    pub source_table: String,
    pub source_id: String,
    pub trigger_reason: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub payload: Value,
    #[serde(default)]
    pub score_before: Option<f64>,
    #[serde(default)]
    pub score_after: Option<f64>,
    /// Retrying with the same key yields the first event (`created: false`); without one, every
    /// call records a new event.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Published {
    pub event: Event,
    /// False when the idempotency key had been used: `event` is the first one.
    pub created: bool,
}

/// `GET /v1/governance-events` filters.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    pub event_type: Option<String>,
    pub source_id: Option<String>,
    /// The seed's name for `source_id`.
    pub finding_id: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventPage {
    pub events: Vec<Event>,
    pub count: usize,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The event stream.
pub struct Events {
    store: Arc<Store>,
    /// Woken whenever deliveries may have become due, for the webhook dispatcher.
    pub(crate) deliveries_added: tokio::sync::Notify,
    /// Last emission (unix seconds) of throttled events, by throttle key.
    throttled: Mutex<HashMap<String, i64>>,
}

impl Events {
    pub fn new(store: Arc<Store>) -> Events {
        Events {
            store,
            deliveries_added: tokio::sync::Notify::new(),
            throttled: Mutex::new(HashMap::new()),
        }
    }

    /// Records an event of `tenant` (or returns the one already recorded under its idempotency
    /// key) with a delivery for every webhook subscribed to it.
    pub fn emit(&self, tenant: &str, e: NewEvent) -> Result<(Event, bool), StoreError> {
        let out = self.store.write(|tx| insert(tx, tenant, &e))?;
        if out.1 {
            self.deliveries_added.notify_one();
        }
        Ok(out)
    }

    /// Runs `write` and records `events` in one transaction, so a state change and the events
    /// announcing it are stored together or not at all.
    pub(crate) fn write_with<T>(
        &self,
        tenant: &str,
        write: impl FnOnce(&mut Tx<'_>) -> Result<T, StoreError>,
        events: impl FnOnce(&T) -> Vec<NewEvent>,
    ) -> Result<T, StoreError> {
        let (out, added) = self.store.write(|tx| {
            let out = write(tx)?;
            let mut added = false;
            for e in events(&out) {
                added |= insert(tx, tenant, &e)?.1;
            }
            Ok::<_, StoreError>((out, added))
        })?;
        if added {
            self.deliveries_added.notify_one();
        }
        Ok(out)
    }

    /// [`Events::emit`] off the caller's path, for the data plane: a failure is logged, not
    /// returned, because the call it describes has already been judged and inscribed.
    pub fn emit_detached(self: &Arc<Self>, tenant: &str, e: NewEvent) {
        let (events, tenant) = (self.clone(), tenant.to_owned());
        let run = move || {
            if let Err(err) = events.emit(&tenant, e) {
                tracing::warn!(error = %err, "a governance event could not be recorded");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn_blocking(run);
            }
            Err(_) => run(),
        }
    }

    /// Like [`Events::emit_detached`], at most once per `window_secs` for one `throttle_key`:
    /// for events a flood would repeat (every refused request of an agent over its limit).
    pub fn emit_throttled(
        self: &Arc<Self>,
        tenant: &str,
        throttle_key: &str,
        window_secs: i64,
        mut e: NewEvent,
    ) {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let window = now - now.rem_euclid(window_secs.max(1));
        {
            let mut seen = self.throttled.lock().expect("not poisoned");
            let key = format!("{tenant}\u{0}{throttle_key}");
            if seen.get(&key).is_some_and(|w| *w == window) {
                return;
            }
            if seen.len() > 10_000 {
                seen.retain(|_, w| *w == window);
            }
            seen.insert(key, window);
        }
        e.idempotency_key = format!("{}:{throttle_key}:{window}", e.event_type);
        self.emit_detached(tenant, e);
    }

    /// A producer's event (scope `write`).
    pub fn publish(&self, p: &Principal, req: PublishEvent) -> Result<Published, GovError> {
        if !p.allows(&Scope::Write) {
            return Err(GovError::Forbidden(Scope::Write));
        }
        if WARDEN_TYPES.contains(&req.event_type.as_str()) {
            return Err(GovError::Invalid {
                field: "event_type",
                message: format!("{:?} is emitted by Warden only", req.event_type),
            });
        }
        if !PUBLISHABLE_TYPES.contains(&req.event_type.as_str()) {
            return Err(GovError::Invalid {
                field: "event_type",
                message: format!(
                    "{:?} is not a known event type; one of {}",
                    req.event_type,
                    PUBLISHABLE_TYPES.join(", ")
                ),
            });
        }
        crate::decisions::text("source_table", &req.source_table, 128)?;
        crate::decisions::text("source_id", &req.source_id, 256)?;
        crate::decisions::text("trigger_reason", &req.trigger_reason, 1000)?;
        for (field, v) in [
            ("score_before", req.score_before),
            ("score_after", req.score_after),
        ] {
            if v.is_some_and(|v| !v.is_finite()) {
                return Err(GovError::Invalid {
                    field,
                    message: "a finite number".into(),
                });
            }
        }
        if !(req.payload.is_object() || req.payload.is_null()) {
            return Err(GovError::Invalid {
                field: "payload",
                message: "an object".into(),
            });
        }
        let key = match req.idempotency_key {
            Some(k) => {
                crate::decisions::text("idempotency_key", &k, 255)?;
                format!("producer:{k}")
            }
            None => format!("producer:{}", new_id("auto")),
        };
        let payload = if req.payload.is_null() {
            Value::Object(Default::default())
        } else {
            req.payload
        };
        let (event, created) = self.emit(
            &p.tenant,
            NewEvent {
                event_type: req.event_type,
                source_table: req.source_table,
                source_id: req.source_id,
                trigger_reason: req.trigger_reason,
                payload,
                score_before: req.score_before,
                score_after: req.score_after,
                idempotency_key: key,
            },
        )?;
        Ok(Published { event, created })
    }

    /// A page of the tenant's events, newest first.
    pub fn list(&self, p: &Principal, q: EventQuery) -> Result<EventPage, GovError> {
        if !(p.allows(&Scope::Read) || p.allows(&Scope::Auditor)) {
            return Err(GovError::Forbidden(Scope::Read));
        }
        let limit = match q.limit.as_deref() {
            None => DEFAULT_LIMIT,
            Some(l) => l
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| GovError::Invalid {
                    field: "limit",
                    message: format!("an integer from 1 to {MAX_LIMIT}"),
                })?,
        };
        let before = match q.cursor.as_deref() {
            None => i64::MAX,
            Some(c) => parse_cursor(c).ok_or_else(|| GovError::Invalid {
                field: "cursor",
                message: "not a cursor this API returned".into(),
            })?,
        };
        if q.source_id.is_some() && q.finding_id.is_some() {
            return Err(GovError::Invalid {
                field: "finding_id",
                message: "give source_id or finding_id, not both".into(),
            });
        }
        let source = q.source_id.or(q.finding_id);
        let rows = self
            .store
            .query(
                "SELECT seq, id, event_type, source_table, source_id, trigger_reason, payload,
                        score_before, score_after, created_at
                 FROM governance_events
                 WHERE tenant_id IN (?1, '*') AND seq < ?2
                   AND (CAST(?3 AS TEXT) IS NULL OR event_type = ?3)
                   AND (CAST(?4 AS TEXT) IS NULL OR source_id = ?4)
                 ORDER BY seq DESC LIMIT ?5",
                args![&p.tenant, before, &q.event_type, &source, limit as i64 + 1],
            )?
            .iter()
            .map(|r| Ok((r.get::<i64>(0)?, row_to_event(r, 1)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let more = rows.len() > limit;
        let mut events = Vec::with_capacity(limit);
        let mut last = None;
        for (seq, e) in rows.into_iter().take(limit) {
            last = Some(seq);
            events.push(e);
        }
        Ok(EventPage {
            count: events.len(),
            events,
            next_cursor: if more {
                last.map(|s| format!("c{s}"))
            } else {
                None
            },
        })
    }
}

/// The event type as a metric label: one of the known types (others cannot be stored).
fn event_type_label(t: &str) -> &'static str {
    PUBLISHABLE_TYPES
        .iter()
        .chain(WARDEN_TYPES)
        .find(|k| **k == t)
        .copied()
        .unwrap_or("other")
}

fn parse_cursor(c: &str) -> Option<i64> {
    c.strip_prefix('c')?.parse().ok().filter(|n| *n > 0)
}

/// Inserts an event and its deliveries inside the caller's transaction; returns the existing
/// event when the idempotency key was used before.
pub(crate) fn insert(
    tx: &mut Tx<'_>,
    tenant: &str,
    e: &NewEvent,
) -> Result<(Event, bool), StoreError> {
    // Before the sequence number is drawn: events then commit in the order of their numbers,
    // so a reader paging by cursor never passes one that commits late.
    tx.serialize("governance_events")?;
    let existing = tx.query_opt(
        "SELECT id, event_type, source_table, source_id, trigger_reason, payload,
                score_before, score_after, created_at
         FROM governance_events WHERE tenant_id = ?1 AND idempotency_key = ?2",
        args![tenant, &e.idempotency_key],
    )?;
    if let Some(row) = existing {
        return Ok((row_to_event(&row, 0)?, false));
    }
    let id = new_id("evt");
    let created_at = crate::now();
    let seq: i64 = tx
        .query_opt(
            "INSERT INTO governance_events (id, tenant_id, event_type, source_table, source_id,
                 trigger_reason, payload, score_before, score_after, idempotency_key, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             RETURNING seq",
            args![
                &id,
                tenant,
                &e.event_type,
                &e.source_table,
                &e.source_id,
                &e.trigger_reason,
                e.payload.to_string(),
                e.score_before,
                e.score_after,
                &e.idempotency_key,
                &created_at
            ],
        )?
        .ok_or(StoreError::Column {
            index: 0,
            expected: "the new event's sequence number",
        })?
        .get(0)?;
    metrics::counter!("warden_governance_events_total", "event_type" => event_type_label(&e.event_type))
        .increment(1);
    crate::webhooks::fan_out(tx, tenant, seq, &e.event_type)?;
    Ok((
        Event {
            id,
            event_type: e.event_type.clone(),
            source_table: e.source_table.clone(),
            source_id: e.source_id.clone(),
            trigger_reason: e.trigger_reason.clone(),
            payload: e.payload.clone(),
            score_before: e.score_before,
            score_after: e.score_after,
            created_at,
        },
        true,
    ))
}

/// An event from the nine columns starting at `from`.
pub(crate) fn row_to_event(r: &Row, from: usize) -> Result<Event, StoreError> {
    let payload: String = r.get(from + 5)?;
    Ok(Event {
        id: r.get(from)?,
        event_type: r.get(from + 1)?,
        source_table: r.get(from + 2)?,
        source_id: r.get(from + 3)?,
        trigger_reason: r.get(from + 4)?,
        payload: serde_json::from_str(&payload).unwrap_or(Value::Null),
        score_before: r.get(from + 6)?,
        score_after: r.get(from + 7)?,
        created_at: r.get(from + 8)?,
    })
}

impl Events {
    /// Emits a public `ledger.checkpoint` event with the latest signed tree head every
    /// `interval` while the ledger grows, so witnesses can follow the ledger without polling.
    pub fn spawn_checkpoint_events(
        self: Arc<Self>,
        ledger: Arc<warden_ledger::Ledger>,
        interval: std::time::Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut last = None;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                let (events, ledger) = (self.clone(), ledger.clone());
                let seen = last;
                let done = tokio::task::spawn_blocking(move || -> Result<Option<u64>, String> {
                    let Some(cp) = ledger
                        .reader()
                        .latest_checkpoint()
                        .map_err(|e| e.to_string())?
                    else {
                        return Ok(None);
                    };
                    if seen == Some(cp.tree_size) {
                        return Ok(seen);
                    }
                    let e = NewEvent::of(
                        "ledger.checkpoint",
                        "ledger",
                        &cp.tree_size.to_string(),
                        format!("tree size {}", cp.tree_size),
                        serde_json::to_value(&cp).expect("a checkpoint serializes"),
                    );
                    events.emit(PUBLIC_TENANT, e).map_err(|e| e.to_string())?;
                    Ok(Some(cp.tree_size))
                })
                .await;
                match done {
                    Ok(Ok(size)) => last = size,
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "ledger.checkpoint event not recorded")
                    }
                    Err(_) => {}
                }
            }
        })
    }
}
