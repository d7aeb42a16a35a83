//! `Idempotency-Key`: a retried write returns the original answer instead of acting twice.
//!
//! Keys are scoped by the API key that sent them (by its hash), so two clients can never see
//! each other's answers. A request reserves its key before it runs; a second request with the
//! same key while the first is still running is refused rather than run twice. Answers that a
//! retry should not repeat (5xx: the failure may be transient) release the key.

use sha2::{Digest, Sha256};

use crate::db::args;
use crate::store::{Store, StoreError};

/// What to do with a request carrying an idempotency key.
#[derive(Debug, PartialEq, Eq)]
pub enum Begin {
    /// First time: run it, then `finish` or `release`.
    New,
    /// Seen before with the same request: answer this.
    Replay { status: u16, body: Vec<u8> },
    /// Seen before with a different request.
    Mismatch,
    /// The first request with this key is still running.
    InProgress,
}

/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

fn scope_of(bearer: &str) -> String {
    hex::encode(Sha256::digest(bearer.as_bytes()))
}

impl Store {
    pub fn idempotency_begin(
        &self,
        bearer: &str,
        key: &str,
        request_hash: &str,
    ) -> Result<Begin, StoreError> {
        let scope = scope_of(bearer);
        let inserted = self.execute(
            "INSERT INTO idempotency (scope, key, request_hash, created_at)
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            args![&scope, key, request_hash, crate::now()],
        )?;
        if inserted == 1 {
            return Ok(Begin::New);
        }
        let row = self.query_opt(
            "SELECT request_hash, status, body FROM idempotency WHERE scope = ?1 AND key = ?2",
            args![&scope, key],
        )?;
        let (hash, status, body): (String, Option<u16>, Option<Vec<u8>>) = match row {
            Some(r) => (r.get(0)?, r.get(1)?, r.get(2)?),
            // Released between the two statements: the next attempt starts afresh.
            None => return Ok(Begin::InProgress),
        };
        Ok(if hash != request_hash {
            Begin::Mismatch
        } else {
            match (status, body) {
                (Some(status), Some(body)) => Begin::Replay { status, body },
                _ => Begin::InProgress,
            }
        })
    }

    pub fn idempotency_finish(
        &self,
        bearer: &str,
        key: &str,
        status: u16,
        body: &[u8],
    ) -> Result<(), StoreError> {
        self.execute(
            "UPDATE idempotency SET status = ?3, body = ?4 WHERE scope = ?1 AND key = ?2",
            args![scope_of(bearer), key, status, body],
        )?;
        Ok(())
    }

    pub fn idempotency_release(&self, bearer: &str, key: &str) -> Result<(), StoreError> {
        self.execute(
            "DELETE FROM idempotency WHERE scope = ?1 AND key = ?2",
            args![scope_of(bearer), key],
        )?;
        Ok(())
    }
}
