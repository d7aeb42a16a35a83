//! Request metrics for every route of the data-plane port: a count by route, method, status
//! and verdict, and the time to the response head by route and verdict. The route is the
//! matched pattern (`/v1/agents/{id}`), never the raw path, and a method outside HTTP's
//! standard ones is counted as `other`, so labels stay bounded.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Counter, Histogram};

/// The handles of one label set. Building the labels and finding their series in the recorder
/// took three strings, two label vectors and two registry lookups a request; the label sets
/// are bounded (matched routes, standard methods, statuses, verdicts), so their handles are
/// kept, by route.
struct Series {
    method: &'static str,
    status: u16,
    verdict: &'static str,
    requests: Counter,
    duration: Histogram,
}

static SERIES: LazyLock<Mutex<HashMap<String, Vec<Series>>>> = LazyLock::new(Default::default);

/// Records one request. The verdict is the data plane's `x-warden-verdict` (`none` elsewhere);
/// for a streamed answer the duration ends at the response head, not the last chunk.
pub async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = method_label(req.method());
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
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let (requests, duration) = series(route, method, resp.status().as_u16(), verdict);
    requests.increment(1);
    duration.record(started.elapsed().as_secs_f64());
    resp
}

/// The method as a label: HTTP's standard methods by name, any other as `other` (a client can
/// send any token as a method, and each would be a new series).
fn method_label(m: &Method) -> &'static str {
    [
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
    ]
    .into_iter()
    .find(|known| *known == m.as_str())
    .unwrap_or("other")
}

fn series(
    route: &str,
    method: &'static str,
    status: u16,
    verdict: &'static str,
) -> (Counter, Histogram) {
    let mut all = SERIES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = all.get(route).and_then(|v| {
        v.iter()
            .find(|s| s.method == method && s.status == status && s.verdict == verdict)
    }) {
        return (s.requests.clone(), s.duration.clone());
    }
    let route_label = route.to_owned();
    let s = Series {
        method,
        status,
        verdict,
        requests: metrics::counter!("warden_http_requests_total", "route" => route_label.clone(), "method" => method, "status" => status.to_string(), "verdict" => verdict),
        duration: metrics::histogram!("warden_http_request_duration_seconds", "route" => route_label, "verdict" => verdict),
    };
    let handles = (s.requests.clone(), s.duration.clone());
    all.entry(route.to_owned()).or_default().push(s);
    handles
}
