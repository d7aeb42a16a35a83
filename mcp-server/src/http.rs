//! `/mcp` on the data-plane port: rmcp's streamable HTTP transport behind Warden's API-key
//! authentication.
//!
//! The key arrives as `Authorization: Bearer <key>` on every request and must carry the `mcp`
//! scope; the tools then need the scope of their operation (`write` to propose, `admin` to
//! resolve), as over REST. Refusals use REST's error body and status codes, so a client that
//! speaks to both sees one vocabulary.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use warden_governance::{AuthError, KeyCache, Scope};

use crate::server::{Core, WardenMcp};

/// How `/mcp` is served.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// `Host` values accepted (DNS-rebinding protection); host names match any port. Empty:
    /// any host (for deployments behind a proxy that checks it).
    pub allowed_hosts: Vec<String>,
    /// The largest JSON-RPC message accepted, in bytes; larger ones get 413.
    pub max_body_bytes: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            max_body_bytes: 1 << 20,
        }
    }
}

/// The `/mcp` route, to merge into the data-plane router.
pub fn router(core: Arc<Core>, keys: Arc<KeyCache>, options: HttpOptions) -> Router {
    let mut config =
        StreamableHttpServerConfig::default().with_max_request_body_bytes(options.max_body_bytes);
    config = if options.allowed_hosts.is_empty() {
        config.disable_allowed_hosts()
    } else {
        config.with_allowed_hosts(options.allowed_hosts)
    };
    let handler = WardenMcp::new(core);
    let service = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    Router::new()
        .route_service("/mcp", service)
        .layer(axum::middleware::from_fn_with_state(keys, authenticate))
}

fn refuse(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = Json(json!({"code": code, "message": message.into()}));
    if status == StatusCode::UNAUTHORIZED {
        (status, [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response()
    } else {
        (status, body).into_response()
    }
}

/// Authenticates the key (through the process's [`KeyCache`]) and hands its
/// [`warden_governance::Principal`] to the MCP handler through the request's extensions.
async fn authenticate(State(keys): State<Arc<KeyCache>>, mut req: Request, next: Next) -> Response {
    let Some(key) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send the API key as Authorization: Bearer <key>",
        );
    };
    let principal = match keys.authenticate(key.trim()).await {
        Ok(p) => p,
        Err(e @ (AuthError::Store(_) | AuthError::Interrupted)) => {
            tracing::error!(error = %e, "authentication failed");
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "an internal error occurred; retry with backoff",
            );
        }
        Err(e) => return refuse(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string()),
    };
    if !principal.allows(&Scope::Mcp) {
        return refuse(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this key lacks the mcp scope",
        );
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}
