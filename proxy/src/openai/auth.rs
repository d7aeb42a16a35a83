//! Keys on the hot path: a store lookup per call would serialize every call on the store's
//! lock, so authenticated keys are cached (by their SHA-256) for [`TTL`]. A revoked key stops
//! working within that time.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use sha2::{Digest, Sha256};
use warden_governance::{AuthError, Principal, Scope, Store};

use super::error::OpenAiError;

/// How long an authenticated key is trusted without asking the store again.
pub const TTL: Duration = Duration::from_secs(5);

pub struct AuthCache {
    store: Arc<Store>,
    map: RwLock<HashMap<[u8; 32], (Principal, Instant)>>,
}

impl AuthCache {
    pub fn new(store: Arc<Store>) -> Self {
        AuthCache {
            store,
            map: RwLock::new(HashMap::new()),
        }
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
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let now = Instant::now();
        let cached = self
            .map
            .read()
            .expect("not poisoned")
            .get(&digest)
            .filter(|(_, at)| now.duration_since(*at) < TTL)
            .map(|(p, _)| p.clone());
        let principal = match cached {
            Some(p) => p,
            None => {
                let store = self.store.clone();
                let key = key.to_owned();
                let p = tokio::task::spawn_blocking(move || store.authenticate(&key))
                    .await
                    .map_err(|_| unauthorized("authentication failed".into()))?
                    .map_err(|e| match e {
                        AuthError::Store(e) => {
                            tracing::error!(error = %e, "key lookup failed");
                            OpenAiError::new(
                                StatusCode::SERVICE_UNAVAILABLE,
                                "api_error",
                                "store_unavailable",
                                "the key store is unavailable; retry",
                            )
                        }
                        other => unauthorized(other.to_string()),
                    })?;
                let mut map = self.map.write().expect("not poisoned");
                if map.len() >= 10_000 {
                    map.retain(|_, (_, at)| now.duration_since(*at) < TTL);
                }
                map.insert(digest, (p.clone(), now));
                p
            }
        };
        Ok(principal)
    }
}
