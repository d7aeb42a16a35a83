//! The store of the governance domain: embedded SQLite (`<data_dir>/warden.db`) by default, or
//! a PostgreSQL database shared by a fleet of Warden processes (`store.url`).
//!
//! Its schema moves forward through numbered migrations recorded in `schema_migrations`, so a
//! newer Warden opens an older store. Each step is written for both engines; adding one means
//! appending a [`Migration`] with its SQLite and its PostgreSQL text (the dialects differ in
//! types: `BLOB`/`BYTEA`, `INTEGER`/`BIGINT`). PostgreSQL migrations run under an advisory lock,
//! so replicas starting together apply each step once.
//!
//! Calls are synchronous. With SQLite they run under one lock on the caller's thread, which is
//! the fastest way to reach an embedded database. With PostgreSQL each call is one pooled round
//! trip on the `warden-pg` runtime while the caller waits (see that crate for why).
//!
//! SQLite commits use `synchronous=NORMAL` (WAL): durable across a crash of Warden, not across
//! a power loss, where the last commits may roll back. The ledger is the durable record of every
//! decision (its receipts wait for an fsync); syncing this store too would cost an fsync per
//! request under one lock (about 2x less throughput, measured in BENCHMARKS.md). The ledger
//! keeps its own database (or tables): records are append-only and written by one thread; this
//! store is ordinary mutable state.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use warden_pg::Pg;

use crate::db::{Arg, Row};

/// One schema step in the dialect of each engine.
pub(crate) struct Migration {
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

impl Migration {
    /// A step both engines read the same way.
    const fn both(sql: &'static str) -> Migration {
        Migration {
            sqlite: sql,
            postgres: sql,
        }
    }
}

/// The schema, one step per entry; a step is never edited once released, only added to.
const MIGRATIONS: &[Migration] = &[
    Migration::both(
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
    ),
    Migration {
        sqlite: "
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
        postgres: "
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
    record_index BIGINT,
    record_hash TEXT,
    prior_hash TEXT,
    inscribed_at TEXT
);
CREATE INDEX decisions_tenant ON decisions(tenant_id, created_at);
",
    },
    Migration::both(
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
    ),
    Migration::both(
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
    ),
    Migration {
        sqlite: "
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
        postgres: "
CREATE TABLE idempotency (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status INTEGER,
    body BYTEA,
    created_at TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);
",
    },
    Migration::both(
        "
ALTER TABLE api_keys ADD COLUMN agent_id TEXT;
",
    ),
    Migration {
        sqlite: "
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
        postgres: "
CREATE TABLE governance_events (
    seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    tenant_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    source_table TEXT NOT NULL,
    source_id TEXT NOT NULL,
    trigger_reason TEXT NOT NULL,
    payload TEXT NOT NULL,
    score_before DOUBLE PRECISION,
    score_after DOUBLE PRECISION,
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
    event_seq BIGINT NOT NULL REFERENCES governance_events(seq),
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT NOT NULL,
    last_status INTEGER,
    last_error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (webhook_id, event_seq)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(status, next_attempt_ms);
CREATE INDEX webhook_deliveries_tenant ON webhook_deliveries(tenant_id, status, updated_at);
",
    },
    Migration::both(
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
    ),
    Migration::both(
        "
ALTER TABLE webhook_deliveries ADD COLUMN claim TEXT;
",
    ),
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
    #[error("store in PostgreSQL {target}: {message}")]
    Postgres { target: String, message: String },
    #[error("store: column {index} is not {expected}")]
    Column {
        index: usize,
        expected: &'static str,
    },
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

/// The governance store. Cheap to share behind an `Arc`; calls are short.
pub struct Store {
    backend: Backend,
}

enum Backend {
    Sqlite {
        conn: Mutex<Connection>,
        path: PathBuf,
    },
    Postgres(Arc<Pg>),
}

impl Store {
    /// Opens (creating if needed) the SQLite store in `data_dir` and brings its schema up to
    /// date.
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
        conn.set_prepared_statement_cache_capacity(64);
        // Another process may hold the write lock for a moment (a `warden keys` command while
        // `warden serve` runs): wait for it rather than fail at once.
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
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
            tx.execute_batch(step.sqlite).map_err(err)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                rusqlite::params![i as i64 + 1, crate::now()],
            )
            .map_err(err)?;
            tx.commit().map_err(err)?;
            tracing::debug!(version = i + 1, "store migrated");
        }
        Ok(Store {
            backend: Backend::Sqlite {
                conn: Mutex::new(conn),
                path,
            },
        })
    }

    /// Opens the store in a PostgreSQL database (shared by every Warden of a fleet) and brings
    /// its schema up to date.
    pub fn postgres(pg: Arc<Pg>) -> Result<Store, StoreError> {
        let target = pg.target().to_owned();
        let applied = pg
            .blocking(|mut c| async move {
                let tx = c.transaction().await?;
                // The lock first: concurrent `CREATE TABLE IF NOT EXISTS` can still collide.
                tx.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.warden_store'))",
                    &[],
                )
                .await?;
                tx.batch_execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
                )
                .await?;
                let applied: i64 = tx
                    .query_one("SELECT count(*) FROM schema_migrations", &[])
                    .await?
                    .get(0);
                let applied = applied as usize;
                if applied > MIGRATIONS.len() {
                    return Ok(Err(applied));
                }
                for (i, step) in MIGRATIONS.iter().enumerate().skip(applied) {
                    tx.batch_execute(step.postgres).await?;
                    tx.execute(
                        "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                        &[&(i as i32 + 1), &crate::now()],
                    )
                    .await?;
                    tracing::debug!(version = i + 1, "store migrated");
                }
                tx.commit().await?;
                Ok(Ok(()))
            })
            .map_err(|e| StoreError::Postgres {
                target: target.clone(),
                message: e.to_string(),
            })?;
        if let Err(found) = applied {
            return Err(StoreError::TooNew {
                path: PathBuf::from(format!("postgres {target}")),
                found,
                known: MIGRATIONS.len(),
            });
        }
        Ok(Store {
            backend: Backend::Postgres(pg),
        })
    }

    /// The PostgreSQL pool, when the store is kept there (for LISTEN/NOTIFY).
    pub(crate) fn pg(&self) -> Option<&Arc<Pg>> {
        match &self.backend {
            Backend::Postgres(pg) => Some(pg),
            Backend::Sqlite { .. } => None,
        }
    }

    /// Tells every process listening on `channel` (see `warden_pg::Pg::listen`). A no-op with
    /// SQLite, whose store belongs to one process.
    pub(crate) fn notify(&self, channel: &'static str, payload: &str) -> Result<(), StoreError> {
        if self.pg().is_some() {
            self.execute(
                "SELECT pg_notify(?1, ?2)",
                crate::db::args![channel, payload],
            )?;
        }
        Ok(())
    }

    /// A cheap query, for readiness probes.
    pub fn ping(&self) -> Result<(), StoreError> {
        self.query_opt("SELECT count(*) FROM tenants", vec![])
            .map(drop)
    }

    /// Runs one statement; returns the number of rows it changed.
    pub(crate) fn execute(&self, sql: &'static str, args: Vec<Arg<'_>>) -> Result<u64, StoreError> {
        match &self.backend {
            Backend::Sqlite { conn, path } => {
                let conn = conn.lock().expect("not poisoned");
                conn.prepare_cached(sql)
                    .and_then(|mut st| st.execute(rusqlite::params_from_iter(args.iter())))
                    .map(|n| n as u64)
                    .map_err(sqlite_err(path))
            }
            Backend::Postgres(pg) => {
                let args = owned(args);
                let sql = crate::db::to_postgres(sql);
                run(pg, move |c| async move {
                    let st = c.prepare_cached(&sql).await?;
                    Ok(c.execute(&st, &refs(&args)).await?)
                })
            }
        }
    }

    /// The rows a query returns.
    pub(crate) fn query(
        &self,
        sql: &'static str,
        args: Vec<Arg<'_>>,
    ) -> Result<Vec<Row>, StoreError> {
        match &self.backend {
            Backend::Sqlite { conn, path } => {
                let conn = conn.lock().expect("not poisoned");
                let mut st = conn.prepare_cached(sql).map_err(sqlite_err(path))?;
                let rows = st
                    .query_map(rusqlite::params_from_iter(args.iter()), Row::from_sqlite)
                    .map_err(sqlite_err(path))?;
                rows.collect::<Result<_, _>>().map_err(sqlite_err(path))
            }
            Backend::Postgres(pg) => {
                let args = owned(args);
                let sql = crate::db::to_postgres(sql);
                run(pg, move |c| async move {
                    let st = c.prepare_cached(&sql).await?;
                    let rows = c.query(&st, &refs(&args)).await?;
                    Ok(rows
                        .iter()
                        .map(Row::from_postgres)
                        .collect::<Result<_, _>>()?)
                })
            }
        }
    }

    /// The first row a query returns, if any.
    pub(crate) fn query_opt(
        &self,
        sql: &'static str,
        args: Vec<Arg<'_>>,
    ) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, args)?.into_iter().next())
    }

    /// Runs statements in one transaction: all or none.
    pub(crate) fn transaction(
        &self,
        statements: Vec<(&'static str, Vec<Arg<'_>>)>,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite { conn, path } => {
                let mut conn = conn.lock().expect("not poisoned");
                // Immediate: the write lock is taken at BEGIN, where a busy wait can still
                // succeed, not at the first write of a transaction that has read.
                let tx = conn
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(sqlite_err(path))?;
                for (sql, args) in &statements {
                    tx.prepare_cached(sql)
                        .and_then(|mut st| st.execute(rusqlite::params_from_iter(args.iter())))
                        .map_err(sqlite_err(path))?;
                }
                tx.commit().map_err(sqlite_err(path))
            }
            Backend::Postgres(pg) => {
                let statements: Vec<(String, Vec<Arg<'static>>)> = statements
                    .into_iter()
                    .map(|(sql, args)| (crate::db::to_postgres(sql), owned(args)))
                    .collect();
                run(pg, move |mut c| async move {
                    let tx = c.transaction().await?;
                    for (sql, args) in &statements {
                        let st = tx.prepare_cached(sql).await?;
                        tx.execute(&st, &refs(args)).await?;
                    }
                    Ok(tx.commit().await?)
                })
            }
        }
    }

    /// Runs `f` in one transaction, committed if it returns `Ok` and rolled back otherwise,
    /// for writes that must read what they write (an event's sequence number, an idempotency
    /// key already used) and stay all-or-nothing with the state change they report.
    pub(crate) fn write<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        match &self.backend {
            Backend::Sqlite { conn, path } => {
                let mut conn = conn.lock().expect("not poisoned");
                // Immediate: the write lock is taken at BEGIN, where a busy wait can still
                // succeed, not at the first write of a transaction that has read.
                let tx = conn
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(sqlite_err(path))?;
                let mut t = Tx(TxInner::Sqlite { tx: Some(tx), path });
                let out = f(&mut t)?;
                if let TxInner::Sqlite { tx, .. } = &mut t.0 {
                    if let Some(tx) = tx.take() {
                        tx.commit().map_err(sqlite_err(path))?;
                    }
                }
                Ok(out)
            }
            Backend::Postgres(pg) => {
                let connections = pg.connections();
                let client = pg
                    .run(async move { connections.get().await })
                    .and_then(|c| c)
                    .map_err(pg_err(pg))?;
                let mut t = Tx(TxInner::Postgres {
                    pg,
                    client: Some(client),
                    open: false,
                });
                t.batch("BEGIN")?;
                if let TxInner::Postgres { open, .. } = &mut t.0 {
                    *open = true;
                }
                let out = f(&mut t);
                let end = if out.is_ok() { "COMMIT" } else { "ROLLBACK" };
                let ended = t.batch(end);
                if let (Ok(()), TxInner::Postgres { open, .. }) = (&ended, &mut t.0) {
                    *open = false;
                }
                let out = out?;
                ended?;
                Ok(out)
            }
        }
    }
}

/// A transaction of [`Store::write`]. Statements are those of [`Store::execute`] and
/// [`Store::query`]; with PostgreSQL each is one round trip on the transaction's connection.
pub(crate) struct Tx<'a>(TxInner<'a>);

// One per transaction, on the caller's stack: the size does not matter.
#[allow(clippy::large_enum_variant)]
enum TxInner<'a> {
    Sqlite {
        /// Taken to commit.
        tx: Option<rusqlite::Transaction<'a>>,
        path: &'a Path,
    },
    Postgres {
        pg: &'a Pg,
        /// Lent to each statement's job and given back when it ends.
        client: Option<warden_pg::Client>,
        /// Between BEGIN and a successful COMMIT or ROLLBACK: a connection left in this state
        /// must not go back to the pool.
        open: bool,
    },
}

impl Tx<'_> {
    pub(crate) fn execute(
        &mut self,
        sql: &'static str,
        args: Vec<Arg<'_>>,
    ) -> Result<u64, StoreError> {
        match &mut self.0 {
            TxInner::Sqlite { tx, path } => sqlite_tx(tx)
                .prepare_cached(sql)
                .and_then(|mut st| st.execute(rusqlite::params_from_iter(args.iter())))
                .map(|n| n as u64)
                .map_err(sqlite_err(path)),
            TxInner::Postgres { pg, client, .. } => {
                let (sql, args) = (crate::db::to_postgres(sql), owned(args));
                on_client(pg, client, move |c| async move {
                    let out = async {
                        let st = c.prepare_cached(&sql).await?;
                        Ok(c.execute(&st, &refs(&args)).await?)
                    }
                    .await;
                    (c, out)
                })
            }
        }
    }

    pub(crate) fn query(
        &mut self,
        sql: &'static str,
        args: Vec<Arg<'_>>,
    ) -> Result<Vec<Row>, StoreError> {
        match &mut self.0 {
            TxInner::Sqlite { tx, path } => {
                let mut st = sqlite_tx(tx)
                    .prepare_cached(sql)
                    .map_err(sqlite_err(path))?;
                let rows = st
                    .query_map(rusqlite::params_from_iter(args.iter()), Row::from_sqlite)
                    .map_err(sqlite_err(path))?;
                rows.collect::<Result<_, _>>().map_err(sqlite_err(path))
            }
            TxInner::Postgres { pg, client, .. } => {
                let (sql, args) = (crate::db::to_postgres(sql), owned(args));
                on_client(pg, client, move |c| async move {
                    let out = async {
                        let st = c.prepare_cached(&sql).await?;
                        let rows = c.query(&st, &refs(&args)).await?;
                        Ok(rows
                            .iter()
                            .map(Row::from_postgres)
                            .collect::<Result<_, _>>()?)
                    }
                    .await;
                    (c, out)
                })
            }
        }
    }

    pub(crate) fn query_opt(
        &mut self,
        sql: &'static str,
        args: Vec<Arg<'_>>,
    ) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, args)?.into_iter().next())
    }

    /// Orders this transaction after every other that took the lock `name`, until it ends: an
    /// advisory transaction lock on PostgreSQL, where transactions of several processes would
    /// otherwise commit in another order than they drew their sequence numbers. SQLite has one
    /// writer at a time already.
    pub(crate) fn serialize(&mut self, name: &'static str) -> Result<(), StoreError> {
        if matches!(self.0, TxInner::Postgres { .. }) {
            self.query(
                "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.' || ?1))::text",
                crate::db::args![name],
            )?;
        }
        Ok(())
    }

    fn batch(&mut self, sql: &'static str) -> Result<(), StoreError> {
        match &mut self.0 {
            TxInner::Sqlite { .. } => Ok(()),
            TxInner::Postgres { pg, client, .. } => on_client(pg, client, move |c| async move {
                let out = c.batch_execute(sql).await.map_err(Into::into);
                (c, out)
            }),
        }
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if let TxInner::Postgres {
            client: client @ Some(_),
            open: true,
            ..
        } = &mut self.0
        {
            // Still inside a transaction (its end failed, or a panic): close the connection
            // rather than hand the transaction to the pool's next user.
            if let Some(c) = client.take() {
                drop(warden_pg::Client::take(c));
            }
        }
    }
}

fn sqlite_tx<'t>(tx: &'t Option<rusqlite::Transaction<'_>>) -> &'t rusqlite::Transaction<'t> {
    tx.as_ref().expect("statements run before the commit")
}

/// Lends the transaction's connection to `job` on the pool's runtime and takes it back.
fn on_client<T, F, Fut>(
    pg: &Pg,
    slot: &mut Option<warden_pg::Client>,
    job: F,
) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(warden_pg::Client) -> Fut,
    Fut: std::future::Future<Output = (warden_pg::Client, Result<T, warden_pg::PgError>)>
        + Send
        + 'static,
{
    let Some(client) = slot.take() else {
        return Err(pg_err(pg)(warden_pg::PgError::Closed));
    };
    let (client, out) = pg.run(job(client)).map_err(pg_err(pg))?;
    *slot = Some(client);
    out.map_err(pg_err(pg))
}

fn pg_err(pg: &Pg) -> impl Fn(warden_pg::PgError) -> StoreError + '_ {
    move |e| StoreError::Postgres {
        target: pg.target().to_owned(),
        message: e.to_string(),
    }
}

fn sqlite_err(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::Sqlite {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

fn owned(args: Vec<Arg<'_>>) -> Vec<Arg<'static>> {
    args.into_iter().map(Arg::into_owned).collect()
}

fn refs<'a>(args: &'a [Arg<'static>]) -> Vec<&'a (dyn tokio_postgres::types::ToSql + Sync)> {
    args.iter().map(|a| a as _).collect()
}

fn run<T, F, Fut>(pg: &Pg, job: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(warden_pg::Client) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, warden_pg::PgError>> + Send + 'static,
{
    pg.blocking(job).map_err(pg_err(pg))
}
