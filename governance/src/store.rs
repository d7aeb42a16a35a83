//! The embedded store of the governance domain (SQLite, `<data_dir>/warden.db`).
//!
//! Its schema moves forward through numbered migrations recorded in `schema_migrations`, so a
//! newer Warden opens an older data directory.
//!
//! Commits use `synchronous=NORMAL` (WAL): durable across a crash of Warden, not across a power
//! loss, where the last commits may roll back. The ledger is the durable record of every
//! decision (its receipts wait for an fsync); syncing this store too would cost an fsync per
//! request under one lock (about 2x less throughput, measured in BENCHMARKS.md). The ledger keeps its own database: records are
//! append-only and written by one thread; this store is ordinary mutable state.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::Connection;

/// The schema, one step per entry; a step is never edited once released, only added to.
const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    secret_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    scopes TEXT NOT NULL,
    label TEXT,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX api_keys_tenant ON api_keys(tenant_id);
",
    "
CREATE TABLE intents (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    agency_id TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE decisions (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    intent_id TEXT NOT NULL REFERENCES intents(id),
    agent_id TEXT NOT NULL,
    decision_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    payload_hash TEXT NOT NULL,
    verdict TEXT NOT NULL,
    evaluation TEXT NOT NULL,
    created_at TEXT NOT NULL,
    decision_id TEXT UNIQUE,
    record_index INTEGER,
    record_hash TEXT,
    prior_hash TEXT,
    inscribed_at TEXT
);
CREATE INDEX decisions_tenant ON decisions(tenant_id, created_at);
",
    "
CREATE TABLE escalations (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    decision_node_id TEXT NOT NULL UNIQUE REFERENCES decisions(id),
    reason_codes TEXT NOT NULL,
    status TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    resolved_by TEXT,
    resolved_at TEXT,
    notes TEXT,
    record_hash TEXT
);
CREATE INDEX escalations_tenant ON escalations(tenant_id, status, opened_at);
",
    "
CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    manifest TEXT NOT NULL,
    manifest_hash TEXT NOT NULL,
    default_intent_id TEXT NOT NULL REFERENCES intents(id),
    record_hash TEXT NOT NULL,
    registered_at TEXT NOT NULL,
    UNIQUE (tenant_id, name)
);
",
    "
CREATE TABLE idempotency (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status INTEGER,
    body BLOB,
    created_at TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);
",
    "
ALTER TABLE api_keys ADD COLUMN agent_id TEXT;
",
    "
CREATE TABLE governance_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    tenant_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    source_table TEXT NOT NULL,
    source_id TEXT NOT NULL,
    trigger_reason TEXT NOT NULL,
    payload TEXT NOT NULL,
    score_before REAL,
    score_after REAL,
    idempotency_key TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (tenant_id, idempotency_key)
);
CREATE INDEX governance_events_type ON governance_events(tenant_id, event_type, seq);
CREATE INDEX governance_events_source ON governance_events(tenant_id, source_id, seq);
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    target_url TEXT NOT NULL,
    event_types TEXT NOT NULL,
    secret_alias TEXT NOT NULL,
    created_at TEXT NOT NULL,
    deleted_at TEXT
);
CREATE INDEX webhooks_tenant ON webhooks(tenant_id, deleted_at);
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    webhook_id TEXT NOT NULL REFERENCES webhooks(id),
    tenant_id TEXT NOT NULL,
    event_seq INTEGER NOT NULL REFERENCES governance_events(seq),
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (webhook_id, event_seq)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(status, next_attempt_ms);
CREATE INDEX webhook_deliveries_tenant ON webhook_deliveries(tenant_id, status, updated_at);
",
    "
CREATE TABLE gloxi_conversations (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    jurisdiction TEXT,
    context TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX gloxi_conversations_tenant ON gloxi_conversations(tenant_id, updated_at);
CREATE TABLE gloxi_turns (
    conversation_id TEXT NOT NULL REFERENCES gloxi_conversations(id),
    seq INTEGER NOT NULL,
    query TEXT NOT NULL,
    answer TEXT NOT NULL,
    citations TEXT NOT NULL,
    mode TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
",
];

pub(crate) const DB_FILE: &str = "warden.db";

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("store {path}: {message}")]
    Sqlite { path: PathBuf, message: String },
    #[error("store {path} has schema version {found}; this Warden knows up to {known}")]
    TooNew {
        path: PathBuf,
        found: usize,
        known: usize,
    },
    #[error("tenant: {0:?} is not a valid tenant id (1 to 64 of a-z, 0-9, '-', '_')")]
    InvalidTenant(String),
    #[error("tenant {0:?} does not exist")]
    UnknownTenant(String),
    #[error("no key {key_id:?} in tenant {tenant:?}")]
    KeyNotFound { tenant: String, key_id: String },
    #[error("scopes: {0}")]
    Scope(#[from] crate::scope::ScopeError),
    #[error("label: at most 200 characters without control characters")]
    InvalidLabel,
    #[error("agent: 1 to 128 characters without spaces or control characters")]
    InvalidAgent,
}

/// The governance store. Cheap to share behind an `Arc`; calls are short and serialized.
pub struct Store {
    pub(crate) conn: Mutex<Connection>,
    pub(crate) path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store in `data_dir` and brings its schema up to date.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Io {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join(DB_FILE);
        let err = |e: rusqlite::Error| StoreError::Sqlite {
            path: path.clone(),
            message: e.to_string(),
        };
        let mut conn = Connection::open(&path).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;
             CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL);",
        )
        .map_err(err)?;
        let applied: usize = conn
            .query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0))
            .map_err(err)?;
        if applied > MIGRATIONS.len() {
            return Err(StoreError::TooNew {
                path,
                found: applied,
                known: MIGRATIONS.len(),
            });
        }
        for (i, step) in MIGRATIONS.iter().enumerate().skip(applied) {
            let tx = conn.transaction().map_err(err)?;
            tx.execute_batch(step).map_err(err)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                rusqlite::params![i as i64 + 1, crate::now()],
            )
            .map_err(err)?;
            tx.commit().map_err(err)?;
            tracing::debug!(version = i + 1, "store migrated");
        }
        Ok(Store {
            conn: Mutex::new(conn),
            path,
        })
    }

    /// A cheap query, for readiness probes.
    pub fn ping(&self) -> Result<(), StoreError> {
        self.conn
            .lock()
            .expect("not poisoned")
            .query_row("SELECT count(*) FROM tenants", [], |_| Ok(()))
            .map_err(self.err())
    }

    pub(crate) fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |e| StoreError::Sqlite {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }
}
