//! Keys on the hot path. Every governed call presents its key; asking the store each time puts
//! a store round trip (and, on SQLite, the store's one lock) on every call. Authenticated keys
//! are therefore remembered, by the SHA-256 of the key, for [`TTL`]: a key revoked by another
//! process stops working within that time. Failed lookups are not remembered, so a key created
//! a moment ago works at once.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::keys::{AuthError, Principal};
use crate::store::Store;

/// How long an authenticated key is trusted without asking the store again.
pub const TTL: Duration = Duration::from_secs(5);

/// Entries kept before expired ones are swept; bounds the memory a flood of distinct valid keys
/// can take between sweeps.
const SWEEP_AT: usize = 10_000;

/// Authentication with a short-lived cache in front of [`Store::authenticate`]. One per
/// process, shared by every surface (REST, the OpenAI-compatible data plane, `/mcp`), so a key
/// costs one lookup per [`TTL`] whichever way it comes in.
pub struct KeyCache {
    store: Arc<Store>,
    ttl: Duration,
    map: RwLock<HashMap<[u8; 32], (Principal, Instant)>>,
}

impl KeyCache {
    /// A cache that trusts a key for [`TTL`].
    pub fn new(store: Arc<Store>) -> Self {
        KeyCache::with_ttl(store, TTL)
    }

    /// A cache that trusts a key for `ttl`; zero asks the store every time.
    pub fn with_ttl(store: Arc<Store>, ttl: Duration) -> Self {
        KeyCache {
            store,
            ttl,
            map: RwLock::new(HashMap::new()),
        }
    }

    /// The principal of a presented key (the text after `Bearer `).
    ///
    /// # Errors
    /// As [`Store::authenticate`], or [`AuthError::Interrupted`] if the lookup's task died;
    /// that and [`AuthError::Store`] are the server's failures, not the caller's.
    pub async fn authenticate(&self, presented: &str) -> Result<Principal, AuthError> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let now = Instant::now();
        if let Some(p) = self.cached(&digest, now) {
            return Ok(p);
        }
        let store = self.store.clone();
        let key = presented.to_owned();
        let principal = tokio::task::spawn_blocking(move || store.authenticate(&key))
            .await
            .map_err(|_| AuthError::Interrupted)??;
        let mut map = self.map.write().expect("key cache lock poisoned");
        if map.len() >= SWEEP_AT {
            map.retain(|_, (_, at)| now.duration_since(*at) < self.ttl);
        }
        map.insert(digest, (principal.clone(), now));
        Ok(principal)
    }

    fn cached(&self, digest: &[u8; 32], now: Instant) -> Option<Principal> {
        self.map
            .read()
            .expect("key cache lock poisoned")
            .get(digest)
            .filter(|(_, at)| now.duration_since(*at) < self.ttl)
            .map(|(p, _)| p.clone())
    }
}
