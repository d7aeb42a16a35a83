//! Tenants and API keys.
//!
//! A key is shown once, when it is created, and stored only as its SHA-256. A salted slow hash
//! would add nothing: keys are 256 random bits, not passwords, so the hash cannot be reversed by
//! guessing, and a fast hash keeps authentication on every request cheap. Keys carry a short
//! public prefix so that operators can tell them apart in listings without the secret.

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::db::args;
use crate::scope::Scope;
use crate::store::{Store, StoreError};

/// Every key starts with this, so secret scanners (and Warden's own) can recognise one.
pub const KEY_PREFIX: &str = "wdn_";

/// A key as it is handed out, the only time its secret is visible.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedKey {
    pub id: String,
    pub key: String,
    pub tenant: String,
    pub scopes: Vec<Scope>,
    pub created_at: String,
}

/// A key as listed: never the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    pub id: String,
    pub tenant: String,
    /// The first characters of the key, to recognise it.
    pub prefix: String,
    pub scopes: Vec<Scope>,
    pub label: Option<String>,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// Who is calling: the tenant and scopes of an authenticated key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Principal {
    pub tenant: String,
    pub key_id: String,
    pub scopes: Vec<Scope>,
    /// The agent the key belongs to, if it was bound to one (`warden keys create --agent`):
    /// the data plane then attributes every call to it, whatever the request says.
    pub agent: Option<String>,
}

impl Principal {
    /// Whether the key grants `need`. `admin` includes `write`, and `write` includes `read`;
    /// `auditor`, `mcp` and `client:<token>` are granted only by themselves.
    pub fn allows(&self, need: &Scope) -> bool {
        self.scopes.iter().any(|have| {
            have == need
                || matches!(
                    (have, need),
                    (Scope::Admin, Scope::Write | Scope::Read) | (Scope::Write, Scope::Read)
                )
        })
    }
}

/// Why a presented key was not accepted. The message never includes the key.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("not a Warden API key")]
    Malformed,
    #[error("unknown API key")]
    Unknown,
    #[error("API key {key_id} was revoked")]
    Revoked { key_id: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The lookup did not finish (its task was cancelled or panicked); retrying may succeed.
    #[error("the key lookup was interrupted")]
    Interrupted,
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the operating system's random source is available");
    b
}

fn secret_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn valid_tenant(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn scopes_from_db(text: &str) -> Vec<Scope> {
    text.split(',').filter_map(|s| s.parse().ok()).collect()
}

fn scopes_to_db(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl Store {
    /// Creates the tenant if it does not exist yet.
    pub fn ensure_tenant(&self, tenant: &str) -> Result<(), StoreError> {
        if !valid_tenant(tenant) {
            return Err(StoreError::InvalidTenant(tenant.to_owned()));
        }
        self.execute(
            "INSERT INTO tenants (id, created_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            args![tenant, crate::now()],
        )?;
        Ok(())
    }

    /// Creates a key for an existing tenant. The returned secret is not stored anywhere.
    pub fn create_key(
        &self,
        tenant: &str,
        scopes: &[Scope],
        label: Option<&str>,
    ) -> Result<CreatedKey, StoreError> {
        if !valid_tenant(tenant) {
            return Err(StoreError::InvalidTenant(tenant.to_owned()));
        }
        if label.is_some_and(|l| l.chars().count() > 200 || l.chars().any(char::is_control)) {
            return Err(StoreError::InvalidLabel);
        }
        let mut scopes = scopes.to_vec();
        scopes.sort();
        scopes.dedup();
        if scopes.is_empty() {
            return Err(crate::scope::ScopeError(String::new()).into());
        }
        let key = format!(
            "{KEY_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>())
        );
        let id = format!("key_{}", hex::encode(random_bytes::<8>()));
        let created_at = crate::now();
        let exists = self.query_opt("SELECT id FROM tenants WHERE id = ?1", args![tenant])?;
        if exists.is_none() {
            return Err(StoreError::UnknownTenant(tenant.to_owned()));
        }
        self.execute(
            "INSERT INTO api_keys (id, tenant_id, secret_hash, prefix, scopes, label, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            args![
                &id,
                tenant,
                secret_hash(&key),
                &key[..KEY_PREFIX.len() + 6],
                scopes_to_db(&scopes),
                label,
                &created_at
            ],
        )?;
        tracing::info!(tenant, key_id = %id, "API key created");
        Ok(CreatedKey {
            id,
            key,
            tenant: tenant.to_owned(),
            scopes,
            created_at,
        })
    }

    /// Resolves a presented key to its tenant and scopes.
    pub fn authenticate(&self, presented: &str) -> Result<Principal, AuthError> {
        if !presented.starts_with(KEY_PREFIX) || presented.len() > 128 {
            return Err(AuthError::Malformed);
        }
        let Some(row) = self.query_opt(
            "SELECT id, tenant_id, scopes, revoked_at, agent_id FROM api_keys
             WHERE secret_hash = ?1",
            args![secret_hash(presented)],
        )?
        else {
            return Err(AuthError::Unknown);
        };
        let key_id: String = row.get(0)?;
        if row.get::<Option<String>>(3)?.is_some() {
            return Err(AuthError::Revoked { key_id });
        }
        Ok(Principal {
            tenant: row.get(1)?,
            key_id,
            scopes: scopes_from_db(&row.get::<String>(2)?),
            agent: row.get(4)?,
        })
    }

    /// Binds one of the tenant's keys to an agent: calls made with it are that agent's.
    pub fn bind_agent(&self, tenant: &str, key_id: &str, agent: &str) -> Result<(), StoreError> {
        if agent.is_empty()
            || agent.len() > 128
            || agent.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(StoreError::InvalidAgent);
        }
        let changed = self.execute(
            "UPDATE api_keys SET agent_id = ?3 WHERE id = ?1 AND tenant_id = ?2",
            args![key_id, tenant, agent],
        )?;
        if changed == 0 {
            return Err(StoreError::KeyNotFound {
                tenant: tenant.to_owned(),
                key_id: key_id.to_owned(),
            });
        }
        Ok(())
    }

    /// The tenant's keys, oldest first. Only that tenant's.
    pub fn list_keys(&self, tenant: &str) -> Result<Vec<KeyInfo>, StoreError> {
        self.query(
            "SELECT id, tenant_id, prefix, scopes, label, created_at, revoked_at
             FROM api_keys WHERE tenant_id = ?1 ORDER BY created_at, id",
            args![tenant],
        )?
        .into_iter()
        .map(|r| {
            Ok(KeyInfo {
                id: r.get(0)?,
                tenant: r.get(1)?,
                prefix: r.get(2)?,
                scopes: scopes_from_db(&r.get::<String>(3)?),
                label: r.get(4)?,
                created_at: r.get(5)?,
                revoked_at: r.get(6)?,
            })
        })
        .collect()
    }

    /// Revokes one of the tenant's keys; a key of another tenant is "not found".
    pub fn revoke_key(&self, tenant: &str, key_id: &str) -> Result<(), StoreError> {
        let changed = self.execute(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?3)
             WHERE id = ?1 AND tenant_id = ?2",
            args![key_id, tenant, crate::now()],
        )?;
        if changed == 0 {
            return Err(StoreError::KeyNotFound {
                tenant: tenant.to_owned(),
                key_id: key_id.to_owned(),
            });
        }
        tracing::info!(tenant, key_id, "API key revoked");
        Ok(())
    }

    /// On a store without any key: creates tenant `default` and an admin key for it, to be
    /// shown once. Returns `None` when keys exist already.
    pub fn bootstrap(&self) -> Result<Option<CreatedKey>, StoreError> {
        let any = self.query_opt("SELECT 1 FROM api_keys LIMIT 1", vec![])?;
        if any.is_some() {
            return Ok(None);
        }
        self.ensure_tenant("default")?;
        self.create_key("default", &[Scope::Admin], Some("bootstrap"))
            .map(Some)
    }
}
