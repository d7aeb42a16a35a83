//! Per-API-key request limits (GCRA, via `governor`), with `X-RateLimit-Limit`,
//! `X-RateLimit-Remaining` and `X-RateLimit-Reset` on every authenticated answer and
//! `Retry-After` on 429.
//!
//! Keys are counted by a hash of the presented bearer token, before it is authenticated: a
//! flood of bad keys is throttled like any other. These limits are per process: the data
//! plane's `limits:` can be shared through Redis (`limits.backend`), these not yet.

use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use sha2::{Digest, Sha256};

use crate::ApiError;

type Limiter = RateLimiter<
    [u8; 16],
    DefaultKeyedStateStore<[u8; 16]>,
    DefaultClock,
    StateInformationMiddleware,
>;

/// The per-key limiter of one Warden process.
pub struct RequestLimits {
    limiter: Limiter,
    per_minute: u32,
}

impl RequestLimits {
    pub fn per_minute(n: u32) -> Self {
        let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        RequestLimits {
            limiter: RateLimiter::keyed(Quota::per_minute(n))
                .with_middleware::<StateInformationMiddleware>(),
            per_minute: n.get(),
        }
    }

    /// `router` behind these limits: how surfaces outside the REST router (`/mcp`) share a
    /// key's budget with it, so one cannot be used to get around the other.
    pub fn guard<S: Clone + Send + Sync + 'static>(
        self: &Arc<Self>,
        router: axum::Router<S>,
    ) -> axum::Router<S> {
        router.layer(axum::middleware::from_fn_with_state(self.clone(), layer))
    }
}

fn set(headers: &mut HeaderMap, name: &'static str, value: u64) {
    headers.insert(name, HeaderValue::from(value));
}

pub async fn layer(State(limits): State<Arc<RequestLimits>>, req: Request, next: Next) -> Response {
    let Some(bearer) = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec())
    else {
        return next.run(req).await;
    };
    let mut key = [0u8; 16];
    key.copy_from_slice(&Sha256::digest(&bearer)[..16]);
    // One cell every 60 s / n: the time to refill the whole bucket is the reset horizon.
    let refill_s = |missing: u32| (u64::from(missing) * 60).div_ceil(u64::from(limits.per_minute));
    match limits.limiter.check_key(&key) {
        Ok(snapshot) => {
            let remaining = snapshot.remaining_burst_capacity();
            let mut resp = next.run(req).await;
            let h = resp.headers_mut();
            set(h, "x-ratelimit-limit", limits.per_minute.into());
            set(h, "x-ratelimit-remaining", remaining.into());
            set(
                h,
                "x-ratelimit-reset",
                refill_s(limits.per_minute - remaining),
            );
            resp
        }
        Err(not_until) => {
            metrics::counter!("warden_rate_limit_rejections_total", "surface" => "api", "per" => "key", "limit" => "requests")
                .increment(1);
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let retry = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let mut resp = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "more than {} requests per minute for this key; retry in {retry} s",
                    limits.per_minute
                ),
            )
            .into_response();
            let h = resp.headers_mut();
            set(h, "retry-after", retry);
            set(h, "x-ratelimit-limit", limits.per_minute.into());
            set(h, "x-ratelimit-remaining", 0);
            set(h, "x-ratelimit-reset", refill_s(limits.per_minute));
            resp
        }
    }
}
