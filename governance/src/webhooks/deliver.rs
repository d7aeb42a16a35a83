//! The dispatcher: sends due deliveries, signed per the Standard Webhooks convention, and
//! schedules retries with exponential backoff and jitter.
//!
//! Its queue is the store's `webhook_deliveries` table, so retries pending when Warden stops are
//! sent after it starts again. Every process of a fleet sharing one PostgreSQL store runs a
//! dispatcher: each claims the deliveries it sends for a lease (twice the attempt timeout plus
//! 5 s), during which the others skip them. A delivery in flight when its process dies is sent
//! again when its lease runs out: delivery is at least once, and the stable `webhook-id` lets
//! receivers drop the repeat.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use super::target::{GuardedResolver, TargetPolicy};
use super::{now_ms, WebhookSecrets};
use crate::db::args;
use crate::events::{row_to_event, Event, Events};
use crate::store::Store;

/// How deliveries are attempted (from `events.*` in the configuration).
#[derive(Clone, Debug)]
pub struct DispatcherOptions {
    pub timeout: Duration,
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub endpoint_concurrency: usize,
}

/// Most due deliveries read per pass.
const BATCH: i64 = 256;
/// A delivery's stored error is cut to this many characters.
const MAX_ERROR: usize = 500;

/// Sends the deliveries of the store.
pub struct Dispatcher {
    store: Arc<Store>,
    events: Arc<Events>,
    secrets: WebhookSecrets,
    targets: TargetPolicy,
    opts: DispatcherOptions,
    client: reqwest::Client,
    in_flight: Mutex<HashSet<String>>,
    endpoints: Mutex<HashMap<String, Arc<Semaphore>>>,
}

struct Due {
    id: String,
    /// The claim of the pass that loaded it: its outcome is saved only while the claim holds.
    claim: String,
    webhook_id: String,
    target_url: String,
    alias: String,
    attempts: u32,
    event: Event,
}

enum Outcome {
    Delivered(u16),
    Failed { status: Option<u16>, error: String },
}

impl Dispatcher {
    /// Needs a rustls crypto provider installed in the process (the binary installs ring).
    pub fn new(
        store: Arc<Store>,
        events: Arc<Events>,
        secrets: WebhookSecrets,
        targets: TargetPolicy,
        opts: DispatcherOptions,
    ) -> Result<Arc<Dispatcher>, reqwest::Error> {
        let client = reqwest::Client::builder()
            .dns_resolver(GuardedResolver(targets.clone()))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(opts.timeout)
            .connect_timeout(opts.timeout)
            .user_agent(concat!("Warden-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Arc::new(Dispatcher {
            store,
            events,
            secrets,
            targets,
            opts,
            client,
            in_flight: Mutex::new(HashSet::new()),
            endpoints: Mutex::new(HashMap::new()),
        }))
    }

    /// Runs until `stop` turns true; deliveries in flight then finish or are retried at the
    /// next start.
    pub fn spawn(self: Arc<Self>, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let woken = self.events.deliveries_added.notified();
                tokio::pin!(woken);
                woken.as_mut().enable();
                let wait = match self.clone().pass().await {
                    Ok(wait) => wait,
                    Err(e) => {
                        tracing::warn!(error = %e, "webhook dispatcher: the store failed; retrying");
                        Duration::from_secs(1)
                    }
                };
                tokio::select! {
                    _ = woken => {}
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        })
    }

    /// Starts every due delivery that has an endpoint slot; returns how long to sleep.
    async fn pass(self: Arc<Self>) -> Result<Duration, crate::StoreError> {
        let this = self.clone();
        let (due, next) = tokio::task::spawn_blocking(move || this.load_due())
            .await
            .expect("the loader does not panic")?;
        // Slots first, then claims for exactly the deliveries that got one: claiming what
        // cannot start now would only have to be given back.
        let mut startable = Vec::new();
        for d in due {
            if self.in_flight.lock().expect("not poisoned").contains(&d.id) {
                continue;
            }
            let slot = self
                .endpoints
                .lock()
                .expect("not poisoned")
                .entry(d.webhook_id.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(self.opts.endpoint_concurrency)))
                .clone()
                .try_acquire_owned();
            if let Ok(permit) = slot {
                startable.push((d, permit));
            }
        }
        if !startable.is_empty() {
            let this = self.clone();
            let claimed = tokio::task::spawn_blocking(move || this.claim(startable))
                .await
                .expect("the claim does not panic")?;
            for (d, permit) in claimed {
                self.start(d, permit);
            }
        }
        let now = now_ms();
        Ok(match next {
            Some(at) if at > now => {
                Duration::from_millis((at - now) as u64).min(Duration::from_secs(5))
            }
            Some(_) => Duration::from_millis(50),
            None => Duration::from_secs(5),
        })
    }

    /// Sends one claimed delivery and saves its outcome, holding its endpoint slot meanwhile.
    fn start(self: &Arc<Self>, d: Due, permit: OwnedSemaphorePermit) {
        self.in_flight
            .lock()
            .expect("not poisoned")
            .insert(d.id.clone());
        let this = self.clone();
        tokio::spawn(async move {
            let id = d.id.clone();
            let outcome = this.attempt(&d).await;
            let this2 = this.clone();
            let saved = tokio::task::spawn_blocking(move || this2.record(&d, outcome)).await;
            if let Ok(Err(e)) = saved {
                tracing::warn!(error = %e, delivery = %id, "webhook delivery outcome not saved; it will be sent again");
            }
            this.in_flight.lock().expect("not poisoned").remove(&id);
            drop(permit);
            this.events.deliveries_added.notify_one();
        });
    }

    /// The due deliveries, oldest first, and when the next pending one falls due.
    fn load_due(&self) -> Result<(Vec<Due>, Option<i64>), crate::StoreError> {
        let now = now_ms();
        let due = self
            .store
            .query(
                "SELECT d.id, d.webhook_id, w.target_url, w.secret_alias, d.attempts,
                        e.id, e.event_type, e.source_table, e.source_id, e.trigger_reason,
                        e.payload, e.score_before, e.score_after, e.created_at
                 FROM webhook_deliveries d
                 JOIN webhooks w ON w.id = d.webhook_id
                 JOIN governance_events e ON e.seq = d.event_seq
                 WHERE d.status = 'pending' AND d.next_attempt_ms <= ?1
                 ORDER BY d.next_attempt_ms, d.event_seq LIMIT ?2",
                args![now, BATCH],
            )?
            .iter()
            .map(|r| {
                Ok(Due {
                    id: r.get(0)?,
                    claim: String::new(),
                    webhook_id: r.get(1)?,
                    target_url: r.get(2)?,
                    alias: r.get(3)?,
                    attempts: r.get(4)?,
                    event: row_to_event(r, 5)?,
                })
            })
            .collect::<Result<Vec<_>, crate::StoreError>>()?;
        let next: Option<i64> = match self.store.query_opt(
            "SELECT min(next_attempt_ms) FROM webhook_deliveries WHERE status = 'pending'",
            vec![],
        )? {
            Some(r) => r.get(0)?,
            None => None,
        };
        Ok((due, next))
    }

    /// Claims deliveries for this dispatcher; returns those it got. A claim moves the row's
    /// next attempt past a lease (twice the attempt timeout plus 5 s), so that dispatchers of
    /// other processes sharing the store skip it: one that loaded the same row finds it no
    /// longer due when it tries to claim it (on PostgreSQL the UPDATE waits for the first
    /// claim's commit and re-checks its condition on the new row).
    fn claim<P>(&self, wanted: Vec<(Due, P)>) -> Result<Vec<(Due, P)>, crate::StoreError> {
        let now = now_ms();
        let lease = self.opts.timeout.saturating_mul(2) + Duration::from_secs(5);
        let until = now + lease.as_millis() as i64;
        let claim = crate::decisions::new_id("claim");
        let won = self.store.write(|tx| {
            wanted
                .iter()
                .map(|(d, _)| {
                    tx.execute(
                        "UPDATE webhook_deliveries SET next_attempt_ms = ?1, claim = ?2
                         WHERE id = ?3 AND status = 'pending' AND next_attempt_ms <= ?4",
                        args![until, &claim, &d.id, now],
                    )
                    .map(|n| n == 1)
                })
                .collect::<Result<Vec<bool>, crate::StoreError>>()
        })?;
        Ok(wanted
            .into_iter()
            .zip(won)
            .filter(|(_, won)| *won)
            .map(|((mut d, p), _)| {
                d.claim = claim.clone();
                (d, p)
            })
            .collect())
    }

    async fn attempt(&self, d: &Due) -> Outcome {
        let failed = |status, error: String| Outcome::Failed { status, error };
        let Some(secret) = self.secrets.get(&d.alias) else {
            return failed(
                None,
                format!("the secret alias {:?} is no longer configured", d.alias),
            );
        };
        let url = match reqwest::Url::parse(&d.target_url) {
            Ok(u) => u,
            Err(e) => return failed(None, format!("target_url: {e}")),
        };
        if let Err(e) = self.targets.check_literal(&url) {
            return failed(None, e.to_string());
        }
        let body = json!({
            "type": d.event.event_type,
            "timestamp": d.event.created_at,
            "data": d.event,
        })
        .to_string();
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let signature = standardwebhooks::Webhook::from_bytes(secret.to_vec())
            .and_then(|w| w.sign(&d.id, timestamp, body.as_bytes()));
        let signature = match signature {
            Ok(s) => s,
            Err(e) => return failed(None, format!("signing failed: {e}")),
        };
        let sent = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(standardwebhooks::HEADER_WEBHOOK_ID, &d.id)
            .header(
                standardwebhooks::HEADER_WEBHOOK_TIMESTAMP,
                timestamp.to_string(),
            )
            .header(standardwebhooks::HEADER_WEBHOOK_SIGNATURE, signature)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(resp) if resp.status().is_success() => Outcome::Delivered(resp.status().as_u16()),
            Ok(resp) => failed(
                Some(resp.status().as_u16()),
                format!("the target answered {}", resp.status()),
            ),
            Err(e) => failed(None, error_chain(&e)),
        }
    }

    /// Saves an attempt's outcome: delivered, a retry later, or a dead letter.
    fn record(&self, d: &Due, outcome: Outcome) -> Result<(), crate::StoreError> {
        let attempts = d.attempts + 1;
        let now = crate::now();
        match outcome {
            Outcome::Delivered(status) => {
                metrics::counter!("warden_webhook_deliveries_total", "outcome" => "delivered")
                    .increment(1);
                self.store.execute(
                    "UPDATE webhook_deliveries SET status = 'delivered', attempts = ?1,
                         last_status = ?2, last_error = NULL, updated_at = ?3
                     WHERE id = ?4 AND claim = ?5 AND status = 'pending'",
                    args![attempts, status, &now, &d.id, &d.claim],
                )?;
            }
            Outcome::Failed { status, error } => {
                let error: String = error.chars().take(MAX_ERROR).collect();
                let dead = attempts >= self.opts.max_attempts;
                let outcome = if dead { "dead_lettered" } else { "failed" };
                metrics::counter!("warden_webhook_deliveries_total", "outcome" => outcome)
                    .increment(1);
                tracing::info!(delivery = %d.id, webhook = %d.webhook_id, attempts, dead, error = %error, "webhook delivery failed");
                let next = now_ms() + self.backoff(attempts).as_millis() as i64;
                self.store.execute(
                    "UPDATE webhook_deliveries SET status = ?1, attempts = ?2, last_status = ?3,
                         last_error = ?4, next_attempt_ms = ?5, updated_at = ?6
                     WHERE id = ?7 AND claim = ?8 AND status = 'pending'",
                    args![
                        if dead { "dead" } else { "pending" },
                        attempts,
                        status,
                        error,
                        next,
                        &now,
                        &d.id,
                        &d.claim
                    ],
                )?;
            }
        }
        Ok(())
    }

    /// The wait after `attempts` failures: base x 2^(attempts-1), capped, times a random
    /// factor in [0.5, 1] so that receivers recovering from an outage are not hit in step.
    fn backoff(&self, attempts: u32) -> Duration {
        let exp = self
            .opts
            .retry_base
            .saturating_mul(1u32 << (attempts.saturating_sub(1)).min(20))
            .min(self.opts.retry_max);
        exp.mul_f64(rand::random_range(0.5..=1.0))
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}
