//! The OpenAI-compatible data plane: an agent points its OpenAI SDK at Warden
//! (`base_url=http://127.0.0.1:8080/v1`, `api_key=<its Warden key>`) and every call is
//! governed inline: authenticated, scanned by the guardians (redacted or blocked), counted
//! against token limits, judged by policy (`llm.request`), forwarded with the provider's key,
//! its response scanned (streams chunk by chunk), the tool calls the model proposes judged
//! (`tool_call`), and its outcome inscribed in the ledger.
//!
//! The hot path never waits for the store: keys are cached for a few seconds, allowed and
//! blocked calls live in the ledger only, and the ledger record of a call is written while the
//! upstream call is in flight (see [`call`]).

mod auth;
mod bpe;
mod call;
mod error;
mod gloxi;
mod inspect;
mod limits;
mod record;
mod signals;
mod stream;
mod tokens;
mod tools;
mod trace;
mod upstream;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use warden_config::{Config, Durability, ProxyConfig};
use warden_guardians::Guardians;
use warden_policy::LivePolicySet;

pub use error::OpenAiError;
pub use gloxi::{GovernedLlm, AGENT as GLOXI_AGENT};
pub use inspect::{Findings, Route};
pub use limits::{
    redis_unavailable_total, LimitError, Limits, LimitsSetupError, Refusal, Reservation, Snapshot,
    Subject,
};
pub use tokens::{Counted, Tokenizers};
pub use upstream::{Upstream, UpstreamError};

use crate::ApiState;

/// Everything the data plane needs, built once at start-up.
pub struct Plane {
    pub(crate) api: Arc<ApiState>,
    pub(crate) upstreams: Vec<Upstream>,
    pub(crate) client: reqwest::Client,
    pub(crate) guardians: Arc<Guardians>,
    pub(crate) policies: Arc<LivePolicySet>,
    pub(crate) tokenizers: Tokenizers,
    pub(crate) limits: Arc<Limits>,
    pub(crate) config: ProxyConfig,
    pub(crate) durability: Durability,
    /// (tenant, agent) -> the agent's default intent, registered at start.
    pub(crate) intents: HashMap<(String, String), String>,
    pub(crate) auth: auth::AuthCache,
    pub(crate) tenant_labels: signals::LabelBudget,
    pub(crate) model_labels: signals::LabelBudget,
    pub(crate) token_series: signals::TokenSeries,
}

/// Why the data plane could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PlaneError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Tokenizer(#[from] tokens::TokenizerError),
    #[error("guardians: {0}")]
    Guardians(String),
    #[error("agent {agent}: cannot register its intent: {message}")]
    Agent { agent: String, message: String },
    #[error("HTTP client: {0}")]
    Client(String),
    #[error(transparent)]
    Limits(#[from] LimitsSetupError),
}

impl Plane {
    /// Queues a record of this plane's calls. In `batched` mode nobody waits for its fsync, so
    /// it may share one with the rest of `ledger.batched_window`.
    pub(crate) fn inscribe(
        &self,
        entry: warden_ledger::Entry,
    ) -> Result<warden_ledger::Appending, warden_ledger::LedgerError> {
        match self.durability {
            Durability::Sync => self.api.ledger.enqueue(entry),
            Durability::Batched => self.api.ledger.enqueue_lazy(entry),
        }
    }

    /// Builds the data plane from the configuration: reads upstream keys, loads tokenizers,
    /// compiles the guardians and registers the configured agents' intents.
    pub fn new(
        config: &Config,
        api: Arc<ApiState>,
        policies: Arc<LivePolicySet>,
    ) -> Result<Arc<Plane>, PlaneError> {
        let upstreams = config
            .upstreams
            .iter()
            .map(Upstream::from_config)
            .collect::<Result<Vec<_>, _>>()?;
        let guardians = Arc::new(guardians_from(&config.guardians)?);
        let mut intents = HashMap::new();
        for a in &config.agents {
            let id = api
                .decisions
                .ensure_agent_intent(&a.tenant, &a.name, a.intent.as_deref())
                .map_err(|e| PlaneError::Agent {
                    agent: a.name.clone(),
                    message: e.to_string(),
                })?;
            intents.insert((a.tenant.clone(), a.name.clone()), id);
        }
        // One crypto provider for the process (ring); a no-op if the binary installed it.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Redirects are not followed: the upstream is the address the configuration names, and
        // a redirect would carry the agent's call (and, to the same host, the provider's key)
        // somewhere else. Not following also spares a URL parse per call.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| PlaneError::Client(e.to_string()))?;
        let tokenizers = Tokenizers::new(&config.tokenizers)?;
        Ok(Arc::new(Plane {
            auth: auth::AuthCache::new(api.keys.clone()),
            tenant_labels: Default::default(),
            model_labels: Default::default(),
            token_series: Default::default(),
            api,
            upstreams,
            client,
            guardians,
            policies,
            tokenizers,
            limits: Limits::new(&config.limits)?,
            config: config.proxy.clone(),
            durability: config.ledger.durability,
            intents,
        }))
    }

    /// The compiled guardians, shared with the other surfaces (Gloxi).
    pub fn guardians(&self) -> Arc<Guardians> {
        self.guardians.clone()
    }

    /// Whether an upstream serves `model`.
    pub fn serves(&self, model: &str) -> bool {
        upstream::route(&self.upstreams, model).is_some()
    }

    /// The names of the configured upstreams, for readiness reports.
    pub fn upstream_names(&self) -> Vec<String> {
        self.upstreams.iter().map(|u| u.name.clone()).collect()
    }
}

/// Builds the guardians from the `guardians:` settings (an object; empty for the defaults).
pub fn guardians_from(settings: &serde_json::Value) -> Result<Guardians, PlaneError> {
    let cfg: warden_guardians::GuardianConfig = if settings.is_null() {
        Default::default()
    } else {
        serde_json::from_value(settings.clone())
            .map_err(|e| PlaneError::Guardians(e.to_string()))?
    };
    Guardians::new(cfg).map_err(|e| PlaneError::Guardians(e.to_string()))
}

/// The OpenAI routes, plus `/v1/*` for everything else (passthrough or 404 by config).
pub fn router(plane: Arc<Plane>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/responses", post(responses))
        .route("/v1/models", get(call::models))
        .route("/v1/guardians/scan", post(scan))
        .route("/v1/{*rest}", any(other))
        .layer(axum::extract::DefaultBodyLimit::max(
            plane.config.max_body_bytes,
        ))
        .with_state(plane)
}

async fn chat(State(p): State<Arc<Plane>>, headers: HeaderMap, body: Bytes) -> Response {
    call::govern(p, Route::Chat, headers, body).await
}

async fn completions(State(p): State<Arc<Plane>>, headers: HeaderMap, body: Bytes) -> Response {
    call::govern(p, Route::Completions, headers, body).await
}

async fn embeddings(State(p): State<Arc<Plane>>, headers: HeaderMap, body: Bytes) -> Response {
    call::govern(p, Route::Embeddings, headers, body).await
}

async fn responses(State(p): State<Arc<Plane>>, headers: HeaderMap, body: Bytes) -> Response {
    call::govern(p, Route::Responses, headers, body).await
}

/// `POST /v1/guardians/scan` `{"text", "channel"?}`: the guardians' report on one text, as
/// `warden scan` prints it, for tuning thresholds against a running sidecar. Governance API
/// errors (`{code, message, field?}`), any scope.
async fn scan(
    State(p): State<Arc<Plane>>,
    headers: HeaderMap,
    body: Result<
        axum::Json<warden_guardians::ScanRequest>,
        axum::extract::rejection::JsonRejection,
    >,
) -> Response {
    if let Err(e) = p.auth.principal_any(&headers).await {
        return crate::ApiError::new(e.status, "unauthorized", e.message).into_response();
    }
    match body {
        Ok(axum::Json(req)) => axum::Json(p.guardians.scan_request(&req)).into_response(),
        Err(r) => crate::ApiError::from(r).into_response(),
    }
}

async fn other(
    State(p): State<Arc<Plane>>,
    method: Method,
    Path(rest): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match p.config.unknown_paths {
        warden_config::UnknownPaths::NotFound => OpenAiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "unknown_url",
            format!("Warden does not serve {method} /v1/{rest}"),
        )
        .into_response(),
        warden_config::UnknownPaths::Passthrough => {
            call::passthrough(p, method, &rest, headers, body).await
        }
    }
}
