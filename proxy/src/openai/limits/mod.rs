//! Requests-per-minute and tokens-per-minute limits per key, agent, tenant and model.
//!
//! Each budget is a bucket that refills continuously at `limit / 60 s` up to `limit`. A call
//! reserves one request and its prompt tokens plus the completion budget it asks for, in every
//! bucket that applies, all or nothing, before it is forwarded; so concurrent calls can never
//! spend more than the buckets hold. When the provider reports the usage, the reservation is
//! settled: unused tokens go back, a completion that used more than reserved (a call without
//! `max_tokens` reserves [`DEFAULT_COMPLETION_RESERVE`]) drives the bucket into debt, which
//! later calls wait out.
//!
//! Where the buckets live is `limits.backend`:
//! - `local` ([`local`]): in this process, under one lock. Each replica limits only the traffic
//!   it sees, so N replicas admit up to N times a budget.
//! - `redis` ([`redis`]): in one Redis, shared by every replica. The same bucket arithmetic
//!   runs inside one Lua script per check, which Redis executes atomically, so replicas cannot
//!   interleave between the check and the reservation; the Redis server's clock drives the
//!   refill, so replicas' clocks need not agree. Settlements run a second script.
//!
//! When Redis does not answer within `limits.redis_timeout`, `limits.fail_mode` decides: `local`
//! counts the call against this process's buckets, `reject` refuses it (503). One log line
//! marks the start of an outage and one its end; [`redis_unavailable_total`] counts every
//! operation Redis did not serve, for the metrics exporter.

mod local;
mod redis;

use std::sync::Arc;
use std::time::Duration;

use warden_config::{glob_match, LimitConfig, LimitFailMode, LimitScope, LimitsConfig};

use local::LocalBuckets;
use redis::SharedBuckets;

pub use redis::redis_unavailable_total;

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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Kind {
    Requests,
    Tokens,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Requests => "requests",
            Kind::Tokens => "tokens",
        }
    }
}

/// A rule that applies to a call, and to whom.
#[derive(Clone, Debug)]
struct Applied {
    rule: usize,
    subject: String,
}

/// One bucket a check takes an amount from.
struct Bucket<'a> {
    rule: usize,
    per: LimitScope,
    only: Option<&'a str>,
    subject: &'a str,
    kind: Kind,
    capacity: u64,
    amount: u64,
}

impl Bucket<'_> {
    fn id(&self) -> (usize, Kind, String) {
        (self.rule, self.kind, self.subject.to_owned())
    }
}

/// A bucket as the headers report it.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Seen {
    remaining: u64,
    reset: Duration,
}

/// The first bucket that could not give its amount.
#[derive(Debug, PartialEq)]
struct Refused {
    bucket: usize,
    /// `None` when the amount is more than the bucket's capacity.
    retry_after: Option<Duration>,
}

/// What a backend answers for one check: refused or not, and each bucket as seen (after the
/// reservation when admitted, before it when refused).
#[derive(Debug, PartialEq)]
struct Check {
    refused: Option<Refused>,
    seen: Vec<Seen>,
}

/// The limits and where their buckets live.
pub struct Limits {
    rules: Vec<LimitConfig>,
    /// The local backend's buckets, or the `local` fail mode's.
    local: LocalBuckets,
    shared: Option<SharedBuckets>,
    fail_mode: LimitFailMode,
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

    fn of(buckets: &[Bucket<'_>], seen: &[Seen]) -> Snapshot {
        let mut s = Snapshot::default();
        for (b, seen) in buckets.iter().zip(seen) {
            let cur = match b.kind {
                Kind::Requests => &mut s.requests,
                Kind::Tokens => &mut s.tokens,
            };
            if cur.is_none_or(|(_, r, _)| seen.remaining < r) {
                *cur = Some((b.capacity, seen.remaining, seen.reset));
            }
        }
        s
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

/// Why a call may not go on.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    /// Over a budget: 429.
    #[error("{} limit reached on {}", .0.what, .0.scope)]
    Exceeded(Refusal),
    /// Redis did not answer and `limits.fail_mode` is `reject`: 503.
    #[error("the shared limits are unavailable")]
    Unavailable,
}

/// The `redis` backend could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("limits.redis_url: {0}")]
pub struct LimitsSetupError(#[source] ::redis::RedisError);

/// Where a reservation was taken, so it is settled there.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Place {
    Local,
    Redis,
}

/// A call's reservation, settled once the usage is known.
pub struct Reservation {
    limits: Arc<Limits>,
    applied: Vec<Applied>,
    reserved_tokens: u64,
    place: Place,
    pub snapshot: Snapshot,
}

impl Limits {
    /// The limits of `config`. The `redis` backend connects lazily: a Redis that is down at
    /// start-up is met by the fail mode, like one that goes down later.
    ///
    /// # Errors
    /// The Redis URL is not one the client accepts.
    pub fn new(config: &LimitsConfig) -> Result<Arc<Limits>, LimitsSetupError> {
        let shared = match config.backend {
            warden_config::LimitBackend::Local => None,
            warden_config::LimitBackend::Redis => {
                Some(SharedBuckets::new(config).map_err(LimitsSetupError)?)
            }
        };
        Ok(Arc::new(Limits {
            rules: config.rules.clone(),
            local: LocalBuckets::default(),
            shared,
            fail_mode: config.fail_mode,
        }))
    }

    fn applies(rule: &LimitConfig, subject: &str) -> bool {
        match &rule.only {
            None => true,
            Some(only) => glob_match(only, subject),
        }
    }

    /// The buckets of the applied rules, requests before tokens within a rule, in rule order:
    /// the order in which they are checked.
    fn buckets<'a>(&'a self, applied: &'a [Applied], tokens: u64) -> Vec<Bucket<'a>> {
        let mut out = Vec::with_capacity(applied.len() * 2);
        for a in applied {
            let rule = &self.rules[a.rule];
            for (kind, capacity, amount) in [
                (Kind::Requests, rule.requests_per_minute, 1),
                (Kind::Tokens, rule.tokens_per_minute, tokens),
            ] {
                if let Some(capacity) = capacity {
                    out.push(Bucket {
                        rule: a.rule,
                        per: rule.per,
                        only: rule.only.as_deref(),
                        subject: &a.subject,
                        kind,
                        capacity,
                        amount,
                    });
                }
            }
        }
        out
    }

    /// Reserves one request and `tokens` in every bucket that applies, or none of them.
    ///
    /// # Errors
    /// [`LimitError::Exceeded`] with the first budget that refused and the figures for the
    /// headers; [`LimitError::Unavailable`] when Redis did not answer and the fail mode is
    /// `reject`.
    pub async fn reserve(
        self: &Arc<Self>,
        who: &Subject<'_>,
        tokens: u64,
    ) -> Result<Reservation, LimitError> {
        let applied: Vec<Applied> = self
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| Self::applies(r, who.of(r.per)))
            .map(|(rule, r)| Applied {
                rule,
                subject: who.of(r.per).to_owned(),
            })
            .collect();
        let buckets = self.buckets(&applied, tokens);
        let (check, place) = match &self.shared {
            None => (self.local.reserve(&buckets), Place::Local),
            Some(shared) => match shared.reserve(&buckets).await {
                Ok(check) => (check, Place::Redis),
                Err(_) => match self.fail_mode {
                    LimitFailMode::Local => (self.local.reserve(&buckets), Place::Local),
                    LimitFailMode::Reject => return Err(LimitError::Unavailable),
                },
            },
        };
        let snapshot = Snapshot::of(&buckets, &check.seen);
        if let Some(refused) = check.refused {
            let b = &buckets[refused.bucket];
            return Err(LimitError::Exceeded(Refusal {
                what: b.kind.as_str(),
                scope: format!("{} {}", b.per.as_str(), b.subject),
                limit: b.capacity,
                asked: b.amount,
                retry_after: refused.retry_after,
                snapshot,
            }));
        }
        Ok(Reservation {
            limits: self.clone(),
            applied,
            reserved_tokens: tokens,
            place,
            snapshot,
        })
    }

    /// Adds `delta` tokens back to the token buckets of `applied` (negative: takes more).
    fn adjust(self: &Arc<Self>, place: Place, applied: Vec<Applied>, delta: f64) {
        if delta == 0.0 {
            return;
        }
        match (place, &self.shared) {
            (Place::Redis, Some(_)) => {
                let limits = self.clone();
                // Settling is not on the call's path: the answer is already on its way.
                let Ok(rt) = tokio::runtime::Handle::try_current() else {
                    return;
                };
                rt.spawn(async move {
                    if let Some(shared) = &limits.shared {
                        let buckets: Vec<(String, u64)> = applied
                            .iter()
                            .filter_map(|a| {
                                let rule = &limits.rules[a.rule];
                                let capacity = rule.tokens_per_minute?;
                                Some((shared.key(rule, &a.subject, Kind::Tokens), capacity))
                            })
                            .collect();
                        shared.adjust(&buckets, delta).await;
                    }
                });
            }
            _ => self.local.adjust(&applied, delta),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

impl Reservation {
    pub fn reserved_tokens(&self) -> u64 {
        self.reserved_tokens
    }

    /// Settles with the tokens actually used (prompt + completion, as the provider reports).
    pub fn settle(self, used: u64) {
        let delta = self.reserved_tokens as f64 - used as f64;
        self.limits.adjust(self.place, self.applied, delta);
    }

    /// Gives every reserved token back (the call never reached the provider).
    pub fn release(self) {
        self.limits
            .adjust(self.place, self.applied, self.reserved_tokens as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use warden_config::LimitBackend;

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

    fn local(rules: Vec<LimitConfig>) -> Arc<Limits> {
        Limits::new(&LimitsConfig {
            rules,
            ..LimitsConfig::default()
        })
        .unwrap()
    }

    /// The local backend never waits: its reservations complete on the first poll.
    #[allow(clippy::result_large_err)] // as `Limits::reserve`: a refusal carries the headers.
    fn reserve(l: &Arc<Limits>, who: &Subject<'_>, tokens: u64) -> Result<Reservation, LimitError> {
        l.reserve(who, tokens)
            .now_or_never()
            .expect("local checks do not wait")
    }

    fn refusal(r: Result<Reservation, LimitError>) -> Refusal {
        match r {
            Err(LimitError::Exceeded(refusal)) => refusal,
            Err(e) => panic!("expected a refusal, got {e}"),
            Ok(_) => panic!("expected a refusal, got a reservation"),
        }
    }

    #[test]
    fn tokens_are_reserved_refused_and_settled() {
        let l = local(vec![rule(LimitScope::Tenant, None, None, Some(1000))]);
        let r1 = reserve(&l, &who("k1", "m"), 600).unwrap();
        assert_eq!(r1.snapshot.tokens.unwrap().1, 400);
        let refused = refusal(reserve(&l, &who("k2", "m"), 600));
        assert_eq!(refused.what, "tokens");
        assert!(refused.retry_after.unwrap() > Duration::from_secs(10));
        r1.settle(100); // 500 come back
        let r2 = reserve(&l, &who("k2", "m"), 600).unwrap();
        r2.release();
        let never = refusal(reserve(&l, &who("k1", "m"), 5000));
        assert_eq!(never.retry_after, None);
    }

    #[test]
    fn requests_per_key_and_only_filters() {
        let l = local(vec![
            rule(LimitScope::Key, None, Some(2), None),
            rule(LimitScope::Model, Some("gpt-4o*"), Some(1), None),
        ]);
        reserve(&l, &who("k1", "o3"), 0).unwrap();
        reserve(&l, &who("k1", "o3"), 0).unwrap();
        assert_eq!(refusal(reserve(&l, &who("k1", "o3"), 0)).scope, "key k1");
        reserve(&l, &who("k2", "gpt-4o-mini"), 0).unwrap();
        // Each model the glob selects has a budget of its own.
        reserve(&l, &who("k3", "gpt-4o"), 0).unwrap();
        let r = refusal(reserve(&l, &who("k4", "gpt-4o-mini"), 0));
        assert_eq!(r.scope, "model gpt-4o-mini");
        assert_eq!(r.what, "requests");
    }

    /// All or nothing: a refusal by one bucket takes nothing from the others.
    #[test]
    fn a_refused_call_takes_nothing() {
        let l = local(vec![
            rule(LimitScope::Key, None, None, Some(1000)),
            rule(LimitScope::Tenant, None, None, Some(100)),
        ]);
        assert!(reserve(&l, &who("k1", "m"), 500).is_err());
        let ok = reserve(&l, &who("k1", "m"), 100).unwrap();
        assert_eq!(ok.snapshot.tokens.unwrap().1, 0);
    }

    #[test]
    fn concurrent_reservations_never_overspend() {
        let l = local(vec![rule(LimitScope::Tenant, None, None, Some(10_000))]);
        let admitted = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for t in 0..8 {
                let (l, admitted) = (&l, &admitted);
                s.spawn(move || {
                    for _ in 0..200 {
                        let key = format!("k{t}");
                        if let Ok(r) = reserve(l, &who(&key, "m"), 70) {
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

    // The Redis backend, against a real server: these run only when WARDEN_TEST_REDIS_URL is
    // set (`.ci/run` sets it), each under a key prefix of its own.

    fn shared(
        url: &str,
        test: &str,
        fail_mode: LimitFailMode,
        rules: Vec<LimitConfig>,
    ) -> Arc<Limits> {
        Limits::new(&LimitsConfig {
            rules,
            backend: LimitBackend::Redis,
            redis_url: warden_config::RedisUrl::parse(url).unwrap(),
            redis_prefix: warden_testkit::unique_redis_prefix(test),
            // Generous: a loaded CI machine must not turn a slow answer into a failure.
            redis_timeout: Duration::from_secs(5),
            fail_mode,
        })
        .unwrap()
    }

    /// The script gives the answers the local buckets give, headers' figures included.
    #[tokio::test]
    async fn the_script_answers_as_the_local_buckets_do() {
        let Some(url) = warden_testkit::test_redis_url() else {
            return;
        };
        let rules = vec![
            rule(LimitScope::Key, None, Some(3), Some(5000)),
            rule(LimitScope::Tenant, None, None, Some(1000)),
            rule(LimitScope::Model, Some("ft:gpt-4o*"), Some(2), None),
        ];
        let r = shared(&url, "same", LimitFailMode::Reject, rules.clone());
        let l = local(rules);
        let calls: [(&str, &str, u64); 7] = [
            ("k1", "ft:gpt-4o:acme:x", 400),
            ("k1", "ft:gpt-4o:acme:x", 400),
            ("k1", "ft:gpt-4o:acme:x", 100), // the model's 2 requests are spent
            ("k2", "o3", 300),
            ("k1", "o3", 100),
            ("k1", "o3", 100),  // key k1's 3 requests are spent
            ("k3", "o3", 9000), // can never fit
        ];
        for (i, (key, model, tokens)) in calls.into_iter().enumerate() {
            let a = r.reserve(&who(key, model), tokens).await;
            let b = reserve(&l, &who(key, model), tokens);
            match (a, b) {
                (Ok(a), Ok(b)) => {
                    for (x, y) in [
                        (a.snapshot.requests, b.snapshot.requests),
                        (a.snapshot.tokens, b.snapshot.tokens),
                    ] {
                        let (x, y) = (x.unwrap(), y.unwrap());
                        assert_eq!((x.0, x.1), (y.0, y.1), "call {i}");
                        assert!(x.2.abs_diff(y.2) < Duration::from_millis(100), "call {i}");
                    }
                }
                (Err(LimitError::Exceeded(a)), Err(LimitError::Exceeded(b))) => {
                    assert_eq!(
                        (a.what, &a.scope, a.limit, a.asked),
                        (b.what, &b.scope, b.limit, b.asked),
                        "call {i}"
                    );
                    assert_eq!(a.retry_after.is_some(), b.retry_after.is_some(), "call {i}");
                    if let (Some(x), Some(y)) = (a.retry_after, b.retry_after) {
                        assert!(x.abs_diff(y) < Duration::from_millis(100), "call {i}");
                    }
                    assert_eq!(
                        a.snapshot.requests.map(|s| s.1),
                        b.snapshot.requests.map(|s| s.1)
                    );
                    assert_eq!(
                        a.snapshot.tokens.map(|s| s.1),
                        b.snapshot.tokens.map(|s| s.1)
                    );
                }
                (a, b) => panic!(
                    "call {i}: redis {:?}, local {:?}",
                    a.map(|_| "admitted"),
                    b.map(|_| "admitted")
                ),
            }
        }
    }

    /// A refusal by the second rule leaves the first rule's bucket untouched in Redis.
    #[tokio::test]
    async fn the_script_is_all_or_nothing() {
        let Some(url) = warden_testkit::test_redis_url() else {
            return;
        };
        let r = shared(
            &url,
            "all-or-nothing",
            LimitFailMode::Reject,
            vec![
                rule(LimitScope::Key, None, None, Some(1000)),
                rule(LimitScope::Tenant, None, None, Some(100)),
            ],
        );
        let refused = match r.reserve(&who("k1", "m"), 500).await {
            Err(LimitError::Exceeded(refusal)) => refusal,
            _ => panic!("expected a refusal"),
        };
        assert_eq!(refused.scope, "tenant t");
        let ok = r.reserve(&who("k1", "m"), 100).await.unwrap();
        // Key k1 still had all 1000 before this call: the refused 500 were never taken.
        assert_eq!(ok.snapshot.tokens.unwrap().1, 0);
        let mut conn = r.shared.as_ref().unwrap().conn.clone();
        let key = r
            .shared
            .as_ref()
            .unwrap()
            .key(&r.rules[0], "k1", Kind::Tokens);
        let level: String = ::redis::cmd("HGET")
            .arg(&key)
            .arg("l")
            .query_async(&mut conn)
            .await
            .unwrap();
        let level: f64 = level.parse().unwrap();
        assert!((900.0..=901.0).contains(&level), "level {level}");
        let ttl: i64 = ::redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        // Refilling 100 of 1000 per minute takes 6 s; the key lives about that long.
        assert!((6000..=7100).contains(&ttl), "ttl {ttl}");
    }

    #[tokio::test]
    async fn settlements_and_releases_reach_redis() {
        let Some(url) = warden_testkit::test_redis_url() else {
            return;
        };
        let r = shared(
            &url,
            "settle",
            LimitFailMode::Reject,
            vec![rule(LimitScope::Tenant, None, None, Some(1000))],
        );
        let first = r.reserve(&who("k1", "m"), 600).await.unwrap();
        assert!(r.reserve(&who("k1", "m"), 600).await.is_err());
        first.settle(100); // 500 go back, from a spawned task
        let second = wait_for_room(&r, 600).await;
        second.release(); // all 600 go back
        let third = wait_for_room(&r, 900).await;
        // Used more than reserved: the bucket goes into debt and the next call waits it out.
        third.settle(1900);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let refused = match r.reserve(&who("k1", "m"), 1).await {
            Err(LimitError::Exceeded(refusal)) => refusal,
            _ => panic!("expected a refusal while in debt"),
        };
        assert!(refused.retry_after.unwrap() > Duration::from_secs(50));
        assert_eq!(refused.snapshot.tokens.unwrap().1, 0);
    }

    async fn wait_for_room(r: &Arc<Limits>, tokens: u64) -> Reservation {
        for _ in 0..100 {
            if let Ok(x) = r.reserve(&who("k1", "m"), tokens).await {
                return x;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the settlement never reached Redis");
    }

    #[tokio::test]
    async fn concurrent_reservations_through_redis_never_overspend() {
        let Some(url) = warden_testkit::test_redis_url() else {
            return;
        };
        let r = shared(
            &url,
            "concurrent",
            LimitFailMode::Reject,
            vec![rule(LimitScope::Tenant, None, None, Some(10_000))],
        );
        let started = std::time::Instant::now();
        let mut tasks = Vec::new();
        for t in 0..8 {
            let r = r.clone();
            tasks.push(tokio::spawn(async move {
                let mut admitted = 0;
                let key = format!("k{t}");
                for _ in 0..100 {
                    match r.reserve(&who(&key, "m"), 70).await {
                        Ok(x) => {
                            admitted += x.reserved_tokens();
                            std::mem::forget(x);
                        }
                        Err(LimitError::Exceeded(_)) => {}
                        Err(LimitError::Unavailable) => panic!("Redis did not answer"),
                    }
                }
                admitted
            }));
        }
        let mut admitted = 0;
        for t in tasks {
            admitted += t.await.unwrap();
        }
        let refilled = (started.elapsed().as_secs_f64() * 10_000.0 / 60.0).ceil() as u64;
        assert!(admitted <= 10_000 + refilled + 70, "admitted {admitted}");
        assert!(admitted >= 10_000 - 70, "admitted {admitted}");
    }

    /// Nothing listens on port 1: the fail mode decides, and the counter counts.
    #[tokio::test]
    async fn an_unreachable_redis_meets_the_fail_mode() {
        let rules = vec![rule(LimitScope::Tenant, None, Some(1), None)];
        let url = "redis://127.0.0.1:1";
        let before = redis_unavailable_total();
        let reject = shared(url, "down-reject", LimitFailMode::Reject, rules.clone());
        assert!(matches!(
            reject.reserve(&who("k1", "m"), 0).await,
            Err(LimitError::Unavailable)
        ));
        // Rules that do not apply need no Redis.
        let none = shared(url, "down-none", LimitFailMode::Reject, Vec::new());
        assert!(none.reserve(&who("k1", "m"), 0).await.is_ok());
        let fallback = shared(url, "down-local", LimitFailMode::Local, rules);
        let first = fallback.reserve(&who("k1", "m"), 0).await.unwrap();
        assert_eq!(first.place, Place::Local);
        // The local buckets hold the limit meanwhile.
        assert!(matches!(
            fallback.reserve(&who("k1", "m"), 0).await,
            Err(LimitError::Exceeded(_))
        ));
        assert!(redis_unavailable_total() >= before + 3);
    }

    #[tokio::test]
    async fn keys_escape_colons_and_percent_signs() {
        let r = shared(
            "redis://127.0.0.1:1",
            "keys",
            LimitFailMode::Local,
            Vec::new(),
        );
        let s = r.shared.as_ref().unwrap();
        let a = s.key(
            &rule(LimitScope::Model, Some("ft:*"), None, None),
            "ft:x:y",
            Kind::Tokens,
        );
        let b = s.key(
            &rule(LimitScope::Model, Some("ft"), None, None),
            "*:ft:x:y",
            Kind::Tokens,
        );
        assert_ne!(a, b);
        assert!(a.ends_with(":model:ft%3A*:ft%3Ax%3Ay:t"), "{a}");
        assert!(a.starts_with("{test-keys-"), "{a}");
        assert_eq!(super::redis::escape("100%"), "100%25");
    }
}
