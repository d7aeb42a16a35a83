//! Warden's HTTP front. This first part serves the governance REST API: handlers parse,
//! authenticate (in an extractor), call one `warden-governance` function and shape its answer.

pub mod chat;
mod error;
mod events;
mod idempotency;
pub mod metrics;
pub mod openai;
mod ratelimit;

pub use ratelimit::RequestLimits;

/// The `tracing` target of the spans exported to OpenTelemetry (and of nothing else), so that
/// the subscriber can route them to the exporter only.
pub const OTEL_TARGET: &str = "warden_otel";

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use utoipa::OpenApi;
use warden_governance::{
    Decisions, Evaluate, Inscribe, Principal, Propose, RegisterAgent, RegisterIntent, Resolve,
    Store,
};
use warden_ledger::{keys, Ledger};

pub use error::ApiError;

/// Warden's error body, the same for every route.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    /// Machine-readable: `invalid_request`, `unauthorized`, `forbidden`, `not_found`,
    /// `conflict`, `payload_too_large`, `unsupported_media_type`, `unprocessable`,
    /// `rate_limited`, `internal_error`.
    code: String,
    message: String,
    /// The request field at fault, when there is one.
    field: Option<String>,
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}

/// The OpenAPI document of the REST API, served at `/openapi.json` (Swagger UI at `/docs`).
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Warden governance API", description = "Intents, decisions, escalations, agents, ledger proofs and Gloxi's regulatory answers."),
    paths(register_intent, propose, inscribe, forensics, list_escalations, escalation,
        resolve_escalation, register_agent, agent, evaluate, lineage, client_summary, efficiency,
        latest_checkpoint, public_key, events::list_events, events::publish_event,
        events::register_webhook, events::list_webhooks, events::delete_webhook,
        events::dead_letters, events::replay, chat::chat, chat::chat_api),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// The largest request body accepted.
pub const BODY_LIMIT: usize = 1 << 20;

/// What the routes need.
pub struct ApiState {
    pub limits: Arc<RequestLimits>,
    pub store: Arc<Store>,
    /// Authenticated keys, shared with the data plane and `/mcp`.
    pub keys: Arc<warden_governance::KeyCache>,
    pub ledger: Arc<Ledger>,
    /// Shared with the MCP server, so an escalation resolved here wakes a call held there.
    pub decisions: Arc<Decisions>,
    pub webhooks: Arc<warden_governance::Webhooks>,
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
        let principal = state.keys.authenticate(header.trim()).await?;
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
        .merge(events::routes())
        .merge(
            utoipa_swagger_ui::SwaggerUi::new("/docs")
                .config(utoipa_swagger_ui::Config::new(["/openapi.json"])),
        )
        .route("/openapi.json", get(openapi_json))
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

/// `/openapi.json`, built and serialized at the first request and then kept as bytes. Handing
/// the document to Swagger UI at start-up kept `ApiDoc::openapi()` alive for the life of the
/// process: about 1 MiB of heap, for a serialized document of 29 KB. The first request pays
/// for building it (about 1 ms in a release build).
async fn openapi_json() -> Response {
    static DOC: std::sync::OnceLock<axum::body::Bytes> = std::sync::OnceLock::new();
    let doc = DOC.get_or_init(|| {
        serde_json::to_vec(&ApiDoc::openapi())
            .expect("the OpenAPI document serializes")
            .into()
    });
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        doc.clone(),
    )
        .into_response()
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

/// Declare the intent of a governance session (step 1 of 3).
#[utoipa::path(post, path = "/v1/register-intent", request_body = warden_governance::RegisterIntent, responses((status = 201, description = "Intent registered", body = warden_governance::IntentCreated), (status = "4XX", description = "Error", body = ErrorBody)), security(("bearer" = [])))]
async fn register_intent(
    State(s): State<Arc<ApiState>>,
    Auth(p): Auth,
    body: Body<RegisterIntent>,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    let out = blocking(move || s.decisions.register_intent(&p, req)).await?;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// Evaluate a proposed decision against the policy packs (step 2 of 3).
#[utoipa::path(post, path = "/v1/decisions/propose", request_body = warden_governance::Propose, responses((status = 200, description = "Verdict", body = warden_governance::Proposal), (status = "4XX", description = "Error", body = ErrorBody)), security(("bearer" = [])))]
async fn propose(
    State(s): State<Arc<ApiState>>,
    Auth(p): Auth,
    body: Body<Propose>,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    let out = blocking(move || s.decisions.propose(&p, req)).await?;
    Ok(Json(out).into_response())
}

/// Inscribe a judged decision in the ledger (step 3 of 3).
#[utoipa::path(post, path = "/v1/decisions/inscribe", request_body = warden_governance::Inscribe, responses((status = 201, description = "Inscribed in the ledger", body = warden_governance::Inscribed), (status = "4XX", description = "Error", body = ErrorBody)), security(("bearer" = [])))]
async fn inscribe(
    State(s): State<Arc<ApiState>>,
    Auth(p): Auth,
    body: Body<Inscribe>,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    let out = s.decisions.inscribe(&p, req).await?;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// The full record of a decision, with its ledger receipt.
#[utoipa::path(get, path = "/v1/decisions/{id}/forensics", params(("id" = String, Path, description = "decision id or decision node id")), responses((status = 200, description = "The forensic record", body = warden_governance::Forensics), (status = "4XX", description = "Error", body = ErrorBody)), security(("bearer" = [])))]
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
/// List escalation threads.
#[utoipa::path(get, path = "/v1/escalations", params(("status" = Option<String>, Query, description = "OPEN, APPROVE or REJECT")), responses((status = 200, description = "The Decision Desk queue"), (status = "4XX", description = "Error", body = ErrorBody)), security(("bearer" = [])))]
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
/// One escalation thread; `wait` long-polls until it is resolved.
#[utoipa::path(get, path = "/v1/escalations/{thread_id}", params(("thread_id" = String, Path), ("wait" = Option<String>, Query, description = "e.g. 30s, at most 60s")), responses((status = 200, description = "The thread", body = warden_governance::Escalation), (status = "4XX", description = "Error", body = ErrorBody)), security(("bearer" = [])))]
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

/// Approve or reject an escalated decision (admin).
#[utoipa::path(post, path = "/v1/escalations/{thread_id}/resolve", request_body = warden_governance::Resolve, params(("thread_id" = String, Path)), responses((status = 200, description = "Resolved and inscribed", body = warden_governance::Resolved), (status = "4XX", description = "Error", body = ErrorBody)), security(("bearer" = [])))]
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

/// Register an agent; its manifest hash is inscribed.
#[utoipa::path(post, path = "/v1/agents", request_body = warden_governance::RegisterAgent, responses((status = 201, description = "Registered", body = warden_governance::AgentRegistered), (status = "4XX", description = "Error", body = ErrorBody)), security(("bearer" = [])))]
async fn register_agent(
    State(s): State<Arc<ApiState>>,
    Auth(p): Auth,
    body: Body<RegisterAgent>,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    let out = s.decisions.register_agent(&p, req).await?;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// An agent of the registry.
#[utoipa::path(get, path = "/v1/agents/{id}", params(("id" = String, Path)), responses((status = 200, description = "The agent", body = warden_governance::Agent), (status = "4XX", description = "Error", body = ErrorBody)), security(("bearer" = [])))]
async fn agent(
    State(s): State<Arc<ApiState>>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let out = blocking(move || s.decisions.agent(&p, &id)).await?;
    Ok(Json(out).into_response())
}

/// Judge an action and inscribe the outcome in one call.
#[utoipa::path(post, path = "/v1/decisions.evaluate", request_body = warden_governance::Evaluate, responses((status = 200, description = "Judged and inscribed", body = warden_governance::Evaluated), (status = "4XX", description = "Error", body = ErrorBody)), security(("bearer" = [])))]
async fn evaluate(
    State(s): State<Arc<ApiState>>,
    Auth(p): Auth,
    body: Body<Evaluate>,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    let out = s.decisions.evaluate(&p, req).await?;
    Ok(Json(out).into_response())
}

/// Proof that a decision is anchored in the ledger.
#[utoipa::path(get, path = "/v1/lineage/{id}/verify", params(("id" = String, Path)), responses((status = 200, description = "The Merkle proof", body = warden_governance::Lineage), (status = "4XX", description = "Error", body = ErrorBody)), security(("bearer" = [])))]
async fn lineage(
    State(s): State<Arc<ApiState>>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let out = blocking(move || s.decisions.lineage(&p, &id)).await?;
    Ok(Json(out).into_response())
}

/// The seed's `:token` is the agency a `client:<agency_id>` key may view.
/// An agency's client-portal summary.
#[utoipa::path(get, path = "/v1/client/{token}/summary", params(("token" = String, Path, description = "the agency id")), responses((status = 200, description = "The portal summary", body = warden_governance::ClientSummary), (status = "4XX", description = "Error", body = ErrorBody)), security(("bearer" = [])))]
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

/// An agency's governance efficiency score.
#[utoipa::path(get, path = "/v1/governance/efficiency/{agency_id}", params(("agency_id" = String, Path), ("period" = Option<String>, Query, description = "e.g. 30d")), responses((status = 200, description = "The score", body = warden_governance::Efficiency), (status = "4XX", description = "Error", body = ErrorBody)), security(("bearer" = [])))]
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
/// The latest signed checkpoint (public).
#[utoipa::path(get, path = "/v1/ledger/checkpoint", responses((status = 200, description = "The latest signed checkpoint"), (status = "4XX", description = "Error", body = ErrorBody)))]
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

/// The ledger public key (public).
#[utoipa::path(get, path = "/v1/ledger/public-key", responses((status = 200, description = "The ledger public key"), (status = "4XX", description = "Error", body = ErrorBody)))]
async fn public_key(State(s): State<Arc<ApiState>>) -> Response {
    let key = s.ledger.verifying_key();
    Json(json!({
        "key_id": keys::key_id(key),
        "algorithm": "Ed25519",
        "public_key_pem": keys::public_key_pem(key),
    }))
    .into_response()
}
