//! The buckets of the `redis` backend: the same arithmetic as [`super::local`], run by Redis
//! in one Lua script (`buckets.lua`) per check and per settlement. Redis runs
//! a script to completion before any other command, so a check across several buckets is
//! atomic across every replica; the script reads the server's clock (`TIME`), so replicas'
//! clocks do not matter. Requires Redis 5 or later (scripts that write after `TIME`).
//!
//! Keys are `{prefix}:per:only:subject:r|t` (`only` is `*` for a rule without one; `%` and
//! `:` inside names are percent-escaped so no two buckets share a key). The braces make the
//! prefix a hash tag, so the keys of one fleet would share one slot of a Redis Cluster, as a
//! multi-key script requires; this client talks to one Redis server, not to a cluster. A
//! bucket's key expires once it would be full again, so idle keys, agents and models cost
//! nothing.

use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use warden_config::{LimitConfig, LimitFailMode, LimitScope, LimitsConfig};

use super::{Bucket, Check, Kind, Refused, Seen};

/// Operations Redis did not serve (errors and timeouts, and checks made while Redis was
/// considered down): each check among them went to the fail mode, each settlement was dropped.
static UNAVAILABLE: AtomicU64 = AtomicU64::new(0);

/// How many limit operations Redis did not serve since the process started; a monotonic
/// counter for the metrics exporter (`warden_limits_redis_unavailable_total`).
pub fn redis_unavailable_total() -> u64 {
    UNAVAILABLE.load(Ordering::Relaxed)
}

/// After a failure, how long checks go straight to the fail mode before Redis is tried again:
/// so an outage costs one timeout per second, not one per call.
const COOL_DOWN: Duration = Duration::from_secs(1);

/// Redis did not answer; the failure is already counted and logged.
#[derive(Debug)]
pub(super) struct Unavailable;

pub(super) struct SharedBuckets {
    pub(super) conn: ConnectionManager,
    script: Script,
    prefix: String,
    timeout: Duration,
    fail_mode: LimitFailMode,
    /// Milliseconds since `epoch` until which Redis is considered down; 0 while it answers.
    down_until: AtomicU64,
    epoch: Instant,
}

impl SharedBuckets {
    pub(super) fn new(config: &LimitsConfig) -> Result<SharedBuckets, redis::RedisError> {
        let client = redis::Client::open(config.redis_url.expose())?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.redis_timeout))
            .set_response_timeout(Some(config.redis_timeout))
            .set_number_of_retries(1)
            .set_max_delay(COOL_DOWN);
        Ok(SharedBuckets {
            conn: ConnectionManager::new_lazy_with_config(client, manager)?,
            script: Script::new(include_str!("buckets.lua")),
            prefix: config.redis_prefix.clone(),
            timeout: config.redis_timeout,
            fail_mode: config.fail_mode,
            down_until: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    pub(super) fn key(&self, rule: &LimitConfig, subject: &str, kind: Kind) -> String {
        self.key_of(rule.per, rule.only.as_deref(), subject, kind)
    }

    fn key_of(&self, per: LimitScope, only: Option<&str>, subject: &str, kind: Kind) -> String {
        format!(
            "{{{}}}:{}:{}:{}:{}",
            self.prefix,
            per.as_str(),
            only.map_or("*".into(), escape),
            escape(subject),
            match kind {
                Kind::Requests => "r",
                Kind::Tokens => "t",
            }
        )
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Checks and reserves in one script run.
    pub(super) async fn reserve(&self, buckets: &[Bucket<'_>]) -> Result<Check, Unavailable> {
        if buckets.is_empty() {
            return Ok(Check {
                refused: None,
                seen: Vec::new(),
            });
        }
        if self.is_down() {
            UNAVAILABLE.fetch_add(1, Ordering::Relaxed);
            return Err(Unavailable);
        }
        let mut call = self.script.prepare_invoke();
        call.arg("reserve");
        for b in buckets {
            call.key(self.key_of(b.per, b.only, b.subject, b.kind))
                .arg(b.capacity)
                .arg(b.amount);
        }
        let mut conn = self.conn.clone();
        let answer = tokio::time::timeout(self.timeout, call.invoke_async::<Vec<i64>>(&mut conn))
            .await
            .map_err(|_| "no answer within limits.redis_timeout".to_owned())
            .and_then(|r| r.map_err(|e| e.to_string()))
            .and_then(|out| parse_check(&out, buckets.len()));
        match answer {
            Ok(check) => {
                self.answered();
                Ok(check)
            }
            Err(e) => {
                self.failed(&e);
                Err(Unavailable)
            }
        }
    }

    /// Adds `delta` to token buckets `(key, capacity)`.
    pub(super) async fn adjust(&self, buckets: &[(String, u64)], delta: f64) {
        if buckets.is_empty() {
            return;
        }
        let mut call = self.script.prepare_invoke();
        call.arg("adjust").arg(delta);
        for (key, capacity) in buckets {
            call.key(key).arg(*capacity);
        }
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.timeout, call.invoke_async::<i64>(&mut conn)).await {
            Ok(Ok(_)) => self.answered(),
            Ok(Err(e)) => self.failed(&e),
            Err(_) => self.failed(&"no answer within limits.redis_timeout"),
        }
    }

    fn is_down(&self) -> bool {
        let until = self.down_until.load(Ordering::Relaxed);
        until != 0 && self.now_ms() < until
    }

    fn failed(&self, error: &dyn Display) {
        UNAVAILABLE.fetch_add(1, Ordering::Relaxed);
        let until = self.now_ms() + COOL_DOWN.as_millis() as u64;
        if self.down_until.swap(until.max(1), Ordering::Relaxed) == 0 {
            let then = match self.fail_mode {
                LimitFailMode::Local => "limits now count per process (fail_mode local)",
                LimitFailMode::Reject => "limited calls are refused (fail_mode reject)",
            };
            tracing::warn!(
                error = %error,
                "shared limits: Redis is unavailable; {then} until it answers"
            );
        }
    }

    fn answered(&self) {
        if self.down_until.load(Ordering::Relaxed) != 0
            && self.down_until.swap(0, Ordering::Relaxed) != 0
        {
            tracing::info!("shared limits: Redis answers again; limits are shared");
        }
    }
}

/// `%` and `:` as `%25` and `%3A`: a name may hold colons (fine-tuned model names do).
pub(super) fn escape(s: &str) -> String {
    if !s.contains(['%', ':']) {
        return s.to_owned();
    }
    s.replace('%', "%25").replace(':', "%3A")
}

/// Reads the answer of `buckets.lua`'s reserve.
fn parse_check(out: &[i64], buckets: usize) -> Result<Check, String> {
    if out.len() != 3 + 2 * buckets {
        return Err(format!(
            "the reserve script answered {} values for {buckets} buckets",
            out.len()
        ));
    }
    let refused = match (out[0], usize::try_from(out[1])) {
        (1, _) => None,
        (0, Ok(i)) if (1..=buckets).contains(&i) => Some(Refused {
            bucket: i - 1,
            retry_after: u64::try_from(out[2]).ok().map(Duration::from_millis),
        }),
        _ => return Err("the reserve script answered an unknown outcome".to_owned()),
    };
    let seen = out[3..]
        .chunks_exact(2)
        .map(|c| Seen {
            remaining: u64::try_from(c[0]).unwrap_or(0),
            reset: Duration::from_millis(u64::try_from(c[1]).unwrap_or(0)),
        })
        .collect();
    Ok(Check { refused, seen })
}
