//! The data plane's view of the caller: the process's [`KeyCache`], with refusals in OpenAI's
//! error format.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use warden_governance::{AuthError, KeyCache, Principal, Scope};

use super::error::OpenAiError;

pub struct AuthCache {
    keys: Arc<KeyCache>,
}

impl AuthCache {
    pub fn new(keys: Arc<KeyCache>) -> Self {
        AuthCache { keys }
    }

    /// The caller of `headers`, which must hold the `write` scope (agents act).
    pub async fn principal(&self, headers: &HeaderMap) -> Result<Principal, OpenAiError> {
        let principal = self.principal_any(headers).await?;
        if !principal.allows(&Scope::Write) {
            return Err(OpenAiError::new(
                StatusCode::FORBIDDEN,
                "permission_error",
                "forbidden",
                "this key lacks the write scope the data plane needs",
            ));
        }
        Ok(principal)
    }

    /// The caller of `headers`, whatever its scopes.
    pub async fn principal_any(&self, headers: &HeaderMap) -> Result<Principal, OpenAiError> {
        let unauthorized = |m: String| {
            OpenAiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "invalid_api_key",
                m,
            )
        };
        let key = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                unauthorized("send your Warden API key as Authorization: Bearer <key>".into())
            })?;
        self.keys.authenticate(key).await.map_err(|e| match e {
            AuthError::Store(_) | AuthError::Interrupted => {
                tracing::error!(error = %e, "key lookup failed");
                OpenAiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "api_error",
                    "store_unavailable",
                    "the key store is unavailable; retry",
                )
            }
            other => unauthorized(other.to_string()),
        })
    }
}
