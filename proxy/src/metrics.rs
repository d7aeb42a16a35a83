//! Request metrics for every route of the data-plane port: a count by route, method, status
//! and verdict, and the time to the response head by route and verdict. The route is the
//! matched pattern (`/v1/agents/{id}`), never the raw path, so labels stay bounded.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// Records one request. The verdict is the data plane's `x-warden-verdict` (`none` elsewhere);
/// for a streamed answer the duration ends at the response head, not the last chunk.
pub async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let resp = next.run(req).await;
    let verdict = resp
        .headers()
        .get("x-warden-verdict")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            ["allow", "warn", "escalate", "block"]
                .into_iter()
                .find(|k| *k == v)
        })
        .unwrap_or("none");
    let status = resp.status().as_u16().to_string();
    metrics::counter!("warden_http_requests_total", "route" => route.clone(), "method" => method, "status" => status, "verdict" => verdict)
        .increment(1);
    metrics::histogram!("warden_http_request_duration_seconds", "route" => route, "verdict" => verdict)
        .record(started.elapsed().as_secs_f64());
    resp
}
