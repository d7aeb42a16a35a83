//! Requests-per-minute and tokens-per-minute limits per key, agent, tenant and model.
//!
//! Each budget is a bucket that refills continuously at `limit / 60 s` up to `limit`. A call
//! reserves one request and its prompt tokens plus the completion budget it asks for, in every
//! bucket that applies, all or nothing under one lock, before it is forwarded; so concurrent
//! calls can never spend more than the buckets hold. When the provider reports the usage, the
//! reservation is settled: unused tokens go back, a completion that used more than reserved
//! (a call without `max_tokens` reserves [`DEFAULT_COMPLETION_RESERVE`]) drives the bucket
//! into debt, which later calls wait out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use warden_config::{glob_match, LimitConfig, LimitScope};

/// Completion tokens reserved for a call that does not cap them.
pub const DEFAULT_COMPLETION_RESERVE: u64 = 1024;

/// Who a call is, for choosing buckets.
pub struct Subject<'a> {
    pub key: &'a str,
    pub agent: &'a str,
    pub tenant: &'a str,
    pub model: &'a str,
}

impl Subject<'_> {
    fn of(&self, scope: LimitScope) -> &str {
        match scope {
            LimitScope::Key => self.key,
            LimitScope::Agent => self.agent,
            LimitScope::Tenant => self.tenant,
            LimitScope::Model => self.model,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    capacity: f64,
    level: f64,
    at: Instant,
}

impl Bucket {
    fn new(capacity: u64, now: Instant) -> Bucket {
        Bucket {
            capacity: capacity as f64,
            level: capacity as f64,
            at: now,
        }
    }

    fn rate(&self) -> f64 {
        self.capacity / 60.0
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.level = (self.level + dt * self.rate()).min(self.capacity);
        self.at = now;
    }

    /// How long until `n` fits.
    fn wait_for(&self, n: f64) -> Duration {
        if self.level >= n {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((n - self.level) / self.rate())
        }
    }

    fn reset(&self) -> Duration {
        self.wait_for(self.capacity)
    }
}

#[derive(Default)]
struct Buckets {
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
}

/// The limits and their buckets.
pub struct Limits {
    rules: Vec<LimitConfig>,
    buckets: Mutex<HashMap<(usize, String), Buckets>>,
}

/// What the `x-ratelimit-*` headers report: the tightest budget that applied.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub requests: Option<(u64, u64, Duration)>,
    pub tokens: Option<(u64, u64, Duration)>,
}

impl Snapshot {
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = Vec::new();
        if let Some((limit, remaining, reset)) = self.requests {
            h.push(("x-ratelimit-limit-requests", limit.to_string()));
            h.push(("x-ratelimit-remaining-requests", remaining.to_string()));
            h.push(("x-ratelimit-reset-requests", duration_text(reset)));
        }
        if let Some((limit, remaining, reset)) = self.tokens {
            h.push(("x-ratelimit-limit-tokens", limit.to_string()));
            h.push(("x-ratelimit-remaining-tokens", remaining.to_string()));
            h.push(("x-ratelimit-reset-tokens", duration_text(reset)));
        }
        h
    }
}

/// OpenAI's style: `6m0s`, `1.5s`, `20ms`.
fn duration_text(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}m{}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// `requests` or `tokens`.
    pub what: &'static str,
    /// The budget's scope and subject, e.g. `tenant acme`.
    pub scope: String,
    pub limit: u64,
    pub asked: u64,
    /// `None` when the call can never fit (it asks for more than the whole budget).
    pub retry_after: Option<Duration>,
    pub snapshot: Snapshot,
}

/// A call's reservation, settled once the usage is known.
pub struct Reservation {
    limits: Arc<Limits>,
    keys: Vec<(usize, String)>,
    reserved_tokens: u64,
    pub snapshot: Snapshot,
}

impl Limits {
    pub fn new(rules: Vec<LimitConfig>) -> Arc<Limits> {
        Arc::new(Limits {
            rules,
            buckets: Mutex::new(HashMap::new()),
        })
    }

    fn applies(rule: &LimitConfig, subject: &str) -> bool {
        match &rule.only {
            None => true,
            Some(only) => glob_match(only, subject),
        }
    }

    /// Reserves one request and `tokens` in every bucket that applies, or none of them.
    // A refusal is the cold path and carries the headers' figures: not worth a box.
    #[allow(clippy::result_large_err)]
    pub fn reserve(
        self: &Arc<Self>,
        who: &Subject<'_>,
        tokens: u64,
    ) -> Result<Reservation, Refusal> {
        let now = Instant::now();
        let keys: Vec<(usize, String)> = self
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| Self::applies(r, who.of(r.per)))
            .map(|(i, r)| (i, who.of(r.per).to_owned()))
            .collect();
        let mut map = self.buckets.lock().expect("not poisoned");
        if map.len() > 100_000 {
            // Full buckets carry no state worth keeping.
            map.retain(|_, b| {
                let full = |x: &Option<Bucket>| {
                    x.is_none_or(|mut b| {
                        b.refill(now);
                        b.level >= b.capacity
                    })
                };
                !(full(&b.requests) && full(&b.tokens))
            });
        }
        // Check everything first.
        for (i, subject) in &keys {
            let rule = &self.rules[*i];
            let b = map.entry((*i, subject.clone())).or_insert_with(|| Buckets {
                requests: rule.requests_per_minute.map(|n| Bucket::new(n, now)),
                tokens: rule.tokens_per_minute.map(|n| Bucket::new(n, now)),
            });
            let scope = format!("{} {subject}", rule.per.as_str());
            let mut refused = None;
            for (what, bucket, asked) in [
                ("requests", &mut b.requests, 1u64),
                ("tokens", &mut b.tokens, tokens),
            ] {
                let Some(bucket) = bucket else { continue };
                bucket.refill(now);
                if bucket.level < asked as f64 {
                    let never = asked as f64 > bucket.capacity;
                    refused = Some(Refusal {
                        what,
                        scope,
                        limit: bucket.capacity as u64,
                        asked,
                        retry_after: (!never).then(|| bucket.wait_for(asked as f64)),
                        snapshot: Snapshot::default(),
                    });
                    break;
                }
            }
            if let Some(refusal) = refused {
                let snapshot = snapshot(&map, &keys, &self.rules);
                return Err(Refusal {
                    snapshot,
                    ..refusal
                });
            }
        }
        for key in &keys {
            let b = map.get_mut(key).expect("created above");
            if let Some(r) = &mut b.requests {
                r.level -= 1.0;
            }
            if let Some(t) = &mut b.tokens {
                t.level -= tokens as f64;
            }
        }
        let snapshot = snapshot(&map, &keys, &self.rules);
        Ok(Reservation {
            limits: self.clone(),
            keys,
            reserved_tokens: tokens,
            snapshot,
        })
    }

    fn adjust(&self, keys: &[(usize, String)], delta: f64) {
        if delta == 0.0 {
            return;
        }
        let now = Instant::now();
        let mut map = self.buckets.lock().expect("not poisoned");
        for key in keys {
            if let Some(t) = map.get_mut(key).and_then(|b| b.tokens.as_mut()) {
                t.refill(now);
                t.level = (t.level + delta).min(t.capacity);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

fn snapshot(
    map: &HashMap<(usize, String), Buckets>,
    keys: &[(usize, String)],
    _rules: &[LimitConfig],
) -> Snapshot {
    let mut s = Snapshot::default();
    for key in keys {
        let Some(b) = map.get(key) else { continue };
        let pick = |cur: &mut Option<(u64, u64, Duration)>, bucket: &Option<Bucket>| {
            if let Some(b) = bucket {
                let remaining = b.level.max(0.0).floor() as u64;
                if cur.is_none_or(|(_, r, _)| remaining < r) {
                    *cur = Some((b.capacity as u64, remaining, b.reset()));
                }
            }
        };
        pick(&mut s.requests, &b.requests);
        pick(&mut s.tokens, &b.tokens);
    }
    s
}

impl Reservation {
    pub fn reserved_tokens(&self) -> u64 {
        self.reserved_tokens
    }

    /// Settles with the tokens actually used (prompt + completion, as the provider reports).
    pub fn settle(self, used: u64) {
        let delta = self.reserved_tokens as f64 - used as f64;
        self.limits.adjust(&self.keys, delta);
    }

    /// Gives every reserved token back (the call never reached the provider).
    pub fn release(self) {
        self.limits.adjust(&self.keys, self.reserved_tokens as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who<'a>(key: &'a str, model: &'a str) -> Subject<'a> {
        Subject {
            key,
            agent: "a",
            tenant: "t",
            model,
        }
    }

    fn rule(
        per: LimitScope,
        only: Option<&str>,
        rpm: Option<u64>,
        tpm: Option<u64>,
    ) -> LimitConfig {
        LimitConfig {
            per,
            only: only.map(str::to_owned),
            requests_per_minute: rpm,
            tokens_per_minute: tpm,
        }
    }

    #[test]
    fn tokens_are_reserved_refused_and_settled() {
        let l = Limits::new(vec![rule(LimitScope::Tenant, None, None, Some(1000))]);
        let r1 = l.reserve(&who("k1", "m"), 600).unwrap();
        assert_eq!(r1.snapshot.tokens.unwrap().1, 400);
        let refused = l.reserve(&who("k2", "m"), 600).err().unwrap();
        assert_eq!(refused.what, "tokens");
        assert!(refused.retry_after.unwrap() > Duration::from_secs(10));
        r1.settle(100); // 500 come back
        let r2 = l.reserve(&who("k2", "m"), 600).unwrap();
        r2.release();
        let never = l.reserve(&who("k1", "m"), 5000).err().unwrap();
        assert_eq!(never.retry_after, None);
    }

    #[test]
    fn requests_per_key_and_only_filters() {
        let l = Limits::new(vec![
            rule(LimitScope::Key, None, Some(2), None),
            rule(LimitScope::Model, Some("gpt-4o*"), Some(1), None),
        ]);
        l.reserve(&who("k1", "o3"), 0).unwrap();
        l.reserve(&who("k1", "o3"), 0).unwrap();
        assert_eq!(
            l.reserve(&who("k1", "o3"), 0).err().unwrap().scope,
            "key k1"
        );
        l.reserve(&who("k2", "gpt-4o-mini"), 0).unwrap();
        // Each model the glob selects has a budget of its own.
        l.reserve(&who("k3", "gpt-4o"), 0).unwrap();
        let r = l.reserve(&who("k4", "gpt-4o-mini"), 0).err().unwrap();
        assert_eq!(r.scope, "model gpt-4o-mini");
        assert_eq!(r.what, "requests");
    }

    /// All or nothing: a refusal by one bucket takes nothing from the others.
    #[test]
    fn a_refused_call_takes_nothing() {
        let l = Limits::new(vec![
            rule(LimitScope::Key, None, None, Some(1000)),
            rule(LimitScope::Tenant, None, None, Some(100)),
        ]);
        assert!(l.reserve(&who("k1", "m"), 500).is_err());
        let ok = l.reserve(&who("k1", "m"), 100).unwrap();
        assert_eq!(ok.snapshot.tokens.unwrap().1, 0);
    }

    #[test]
    fn concurrent_reservations_never_overspend() {
        let l = Limits::new(vec![rule(LimitScope::Tenant, None, None, Some(10_000))]);
        let admitted = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for t in 0..8 {
                let (l, admitted) = (&l, &admitted);
                s.spawn(move || {
                    for _ in 0..200 {
                        let key = format!("k{t}");
                        if let Ok(r) = l.reserve(&who(&key, "m"), 70) {
                            admitted.fetch_add(
                                r.reserved_tokens(),
                                std::sync::atomic::Ordering::Relaxed,
                            );
                            std::mem::forget(r);
                        }
                    }
                });
            }
        });
        // A minute's budget plus what refilled during the test (well under one call's worth).
        let admitted = admitted.into_inner();
        assert!(admitted <= 10_000 + 70, "admitted {admitted}");
        assert!(admitted >= 9_900, "admitted {admitted}");
    }
}
