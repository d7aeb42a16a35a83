//! Warden's HTTP front. This first part serves the governance REST API: handlers parse,
//! authenticate (in an extractor), call one `warden-governance` function and shape its answer.

mod error;
mod idempotency;
mod ratelimit;

pub use ratelimit::RequestLimits;

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use warden_governance::{
    Decisions, Evaluate, Inscribe, Principal, Propose, RegisterAgent, RegisterIntent, Resolve,
    Store,
};
use warden_ledger::{keys, Ledger};

pub use error::ApiError;

/// The largest request body accepted.
pub const BODY_LIMIT: usize = 1 << 20;

/// What the routes need.
pub struct ApiState {
    pub limits: Arc<RequestLimits>,
    pub store: Arc<Store>,
    pub ledger: Arc<Ledger>,
    pub decisions: Decisions,
}

/// The authenticated caller, from `Authorization: Bearer <key>`.
pub struct Auth(pub Principal);

impl FromRequestParts<Arc<ApiState>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ApiState>,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "send the API key as Authorization: Bearer <key>",
                )
            })?;
        let key = header.trim().to_owned();
        let store = state.store.clone();
        let principal = tokio::task::spawn_blocking(move || store.authenticate(&key))
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "authentication failed",
                )
            })??;
        Ok(Auth(principal))
    }
}

type Body<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/v1/register-intent", post(register_intent))
        .route("/v1/decisions/propose", post(propose))
        .route("/v1/decisions/inscribe", post(inscribe))
        .route("/v1/decisions/{id}/forensics", get(forensics))
        .route("/v1/escalations", get(list_escalations))
        .route("/v1/escalations/{thread_id}", get(escalation))
        .route("/v1/agents", post(register_agent))
        .route("/v1/client/{token}/summary", get(client_summary))
        .route("/v1/governance/efficiency/{agency_id}", get(efficiency))
        .route("/v1/agents/{id}", get(agent))
        .route("/v1/decisions.evaluate", post(evaluate))
        .route("/v1/lineage/{id}/verify", get(lineage))
        .route(
            "/v1/escalations/{thread_id}/resolve",
            post(resolve_escalation),
        )
        .route("/v1/ledger/checkpoint", get(latest_checkpoint))
        .route("/v1/ledger/public-key", get(public_key))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::layer,
        ))
        // Outermost: a request over its limit costs nothing else.
        .layer(axum::middleware::from_fn_with_state(
            state.limits.clone(),
            ratelimit::layer,
        ))
        .with_state(state)
}

/// Runs a blocking domain call off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, warden_governance::GovError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "the request failed",
            )
        })?
        .map_err(ApiError::from)
}

async fn register_intent(
    State(s): State<Arc<ApiState>>,
    Auth(p): Auth,
    body: Body<RegisterIntent>,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    let out = blocking(move || s.decisions.register_intent(&p, req)).await?;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

async fn propose(
    State(s): State<Arc<ApiState>>,
    Auth(p): Auth,
    body: Body<Propose>,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    let out = blocking(move || s.decisions.propose(&p, req)).await?;
    Ok(Json(out).into_response())
}

async fn inscribe(
    State(s): State<Arc<ApiState>>,
    Auth(p): Auth,
    body: Body<Inscribe>,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    let out = s.decisions.inscribe(&p, req).await?;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

async fn forensics(
    State(s): State<Arc<ApiState>>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let out = blocking(move || s.decisions.forensics(&p, &id)).await?;
    Ok(Json(out).into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EscalationQuery {
    status: Option<String>,
}

/// The Decision Desk queue.
async fn list_escalations(
    State(s): State<Arc<ApiState>>,
    Auth(p): Auth,
    query: Result<axum::extract::Query<EscalationQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let axum::extract::Query(q) = query
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))?;
    let out = blocking(move || s.decisions.list_escalations(&p, q.status.as_deref())).await?;
    Ok(Json(json!({ "escalations": out })).into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitQuery {
    wait: Option<String>,
}

/// The longest a caller may long-poll a thread in one request.
const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// One thread; `?wait=30s` holds the answer until the thread is resolved (or the time is up).
async fn escalation(
    State(s): State<Arc<ApiState>>,
    Auth(p): Auth,
    Path(thread_id): Path<String>,
    query: Result<axum::extract::Query<WaitQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let axum::extract::Query(q) = query
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))?;
    let wait = match q.wait.as_deref() {
        None => std::time::Duration::ZERO,
        Some(w) => parse_wait(w).filter(|d| *d <= MAX_WAIT).ok_or_else(|| {
            ApiError::field(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "wait",
                "wait: a duration up to 60s, e.g. 30s or 500ms",
            )
        })?,
    };
    let out = s.decisions.wait_escalation(&p, &thread_id, wait).await?;
    Ok(Json(out).into_response())
}

fn parse_wait(w: &str) -> Option<std::time::Duration> {
    if let Some(ms) = w.strip_suffix("ms") {
        return ms.parse().ok().map(std::time::Duration::from_millis);
    }
    w.strip_suffix('s')?
        .parse()
        .ok()
        .map(std::time::Duration::from_secs)
}

async fn resolve_escalation(
    State(s): State<Arc<ApiState>>,
    Auth(p): Auth,
    Path(thread_id): Path<String>,
    body: Body<Resolve>,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    let out = s.decisions.resolve_escalation(&p, &thread_id, req).await?;
    Ok(Json(out).into_response())
}

async fn register_agent(
    State(s): State<Arc<ApiState>>,
    Auth(p): Auth,
    body: Body<RegisterAgent>,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    let out = s.decisions.register_agent(&p, req).await?;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

async fn agent(
    State(s): State<Arc<ApiState>>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let out = blocking(move || s.decisions.agent(&p, &id)).await?;
    Ok(Json(out).into_response())
}

async fn evaluate(
    State(s): State<Arc<ApiState>>,
    Auth(p): Auth,
    body: Body<Evaluate>,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    let out = s.decisions.evaluate(&p, req).await?;
    Ok(Json(out).into_response())
}

async fn lineage(
    State(s): State<Arc<ApiState>>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let out = blocking(move || s.decisions.lineage(&p, &id)).await?;
    Ok(Json(out).into_response())
}

/// The seed's `:token` is the agency a `client:<agency_id>` key may view.
async fn client_summary(
    State(s): State<Arc<ApiState>>,
    Auth(p): Auth,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let out = blocking(move || s.decisions.client_summary(&p, &token)).await?;
    Ok(Json(out).into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PeriodQuery {
    period: Option<String>,
}

async fn efficiency(
    State(s): State<Arc<ApiState>>,
    Auth(p): Auth,
    Path(agency): Path<String>,
    query: Result<axum::extract::Query<PeriodQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let axum::extract::Query(q) = query
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))?;
    let days = match q.period.as_deref() {
        None => 30,
        Some(p) => p
            .strip_suffix('d')
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| {
                ApiError::field(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "period",
                    "period: expected days, e.g. 30d",
                )
            })?,
    };
    let out = blocking(move || s.decisions.efficiency(&p, &agency, days)).await?;
    Ok(Json(out).into_response())
}

/// The latest signed checkpoint: public, so that anyone can check receipts against it.
async fn latest_checkpoint(State(s): State<Arc<ApiState>>) -> Result<Response, ApiError> {
    let cp = blocking(move || Ok(s.ledger.reader().latest_checkpoint()?)).await?;
    match cp {
        Some(cp) => Ok(Json(cp).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "the ledger is empty",
        )),
    }
}

async fn public_key(State(s): State<Arc<ApiState>>) -> Response {
    let key = s.ledger.verifying_key();
    Json(json!({
        "key_id": keys::key_id(key),
        "algorithm": "Ed25519",
        "public_key_pem": keys::public_key_pem(key),
    }))
    .into_response()
}
