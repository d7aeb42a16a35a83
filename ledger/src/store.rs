//! The embedded SQLite store of the ledger.
//!
//! Two append-only tables: `records` and `checkpoints`. A record's row also holds its leaf
//! hash and the interior Merkle nodes its leaf completed: leaf `i` completes node `(l, i >> l)`
//! for every `l` up to the number of trailing one bits of `i`, so node `(l, j)` lives in row
//! `((j + 1) << l) - 1`, at slot `l - 1`. One row per append, one b-tree to maintain, and any
//! node is one primary-key lookup away.
//! Triggers refuse updates and deletes, so even a bug in Warden cannot rewrite history through
//! SQL. WAL mode lets readers (proofs, exports) run beside the single writer. Commits use
//! `synchronous=NORMAL`; the writer's syncer thread fsyncs the log before any receipt is
//! released (see `writer`).

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use crate::checkpoint::Checkpoint;
use crate::error::LedgerError;
use crate::hash::Hash;
use crate::merkle::{NodeId, NodeSource};

pub(crate) const DB_FILE: &str = "ledger.db";
/// The schema, one step per entry, each given for both engines (SQLite here, PostgreSQL in
/// `pg`); `meta.schema_version` counts the steps applied. A step is never edited once released,
/// only added to.
pub(crate) const MIGRATIONS: &[Migration] = &[Migration {
    sqlite: "
CREATE TABLE IF NOT EXISTS records (
    idx INTEGER PRIMARY KEY,
    record_hash BLOB NOT NULL,
    leaf_hash BLOB NOT NULL,
    nodes BLOB NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (tree_size INTEGER PRIMARY KEY, body TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS records_no_update BEFORE UPDATE ON records
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS records_no_delete BEFORE DELETE ON records
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_no_update BEFORE UPDATE ON checkpoints
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_no_delete BEFORE DELETE ON checkpoints
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
",
    postgres: "
CREATE TABLE ledger_records (
    idx BIGINT PRIMARY KEY,
    record_hash BYTEA NOT NULL,
    leaf_hash BYTEA NOT NULL,
    nodes BYTEA NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE ledger_checkpoints (tree_size BIGINT PRIMARY KEY, body TEXT NOT NULL);
CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN RAISE EXCEPTION 'the ledger is append-only'; END $$;
CREATE TRIGGER ledger_records_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON ledger_records
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_checkpoints_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON ledger_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();
",
}];

/// One schema step in the dialect of each engine.
pub(crate) struct Migration {
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

const META: &str = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);";

/// The row holding node `id` (the row of its rightmost leaf) and the node's slot in it.
pub(crate) fn node_row(id: NodeId) -> (i64, usize) {
    ((((id.index + 1) << id.level) - 1) as i64, id.level as usize)
}

/// The node in `slot` of a row holding `leaf` and the `nodes` its leaf completed.
pub(crate) fn node_in_row<'r>(slot: usize, leaf: &'r [u8], nodes: &'r [u8]) -> Option<&'r [u8]> {
    let raw = if slot == 0 {
        leaf
    } else {
        nodes.get((slot - 1) * 32..slot * 32)?
    };
    (raw.len() == 32).then_some(raw)
}

/// What every read needs from a ledger store, whichever engine holds it. Records and
/// checkpoints are append-only and written together, so reads below the size of a visible
/// checkpoint see settled data and need no transaction.
pub(crate) trait Source {
    /// Where the store is, for errors.
    fn location(&self) -> &Path;
    fn size(&self) -> Result<u64, LedgerError>;
    fn origin(&self) -> Result<String, LedgerError>;
    /// `(body, record_hash, prior_hash)` of the record at `index`.
    fn record(&self, index: u64) -> Result<Option<(String, Hash, Hash)>, LedgerError>;
    fn record_hash(&self, index: u64) -> Result<Hash, LedgerError>;
    fn checkpoint(&self, tree_size: u64) -> Result<Option<Checkpoint>, LedgerError>;
    /// The newest checkpoint whose size is at most `max_size`.
    fn checkpoint_at_most(&self, max_size: u64) -> Result<Option<Checkpoint>, LedgerError>;
    /// The hashes of `ids`, in order.
    fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, LedgerError>;
    /// `(index, body, record_hash)` of the records with `from <= index < to`, in order.
    fn records(&self, from: u64, to: u64) -> Result<Vec<(u64, String, Hash)>, LedgerError>;
    /// `(tree_size, body)` of at most `limit` checkpoints with `after < tree_size <= upto`, in
    /// order.
    fn checkpoints(
        &self,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, LedgerError>;

    fn hash(&self, raw: &[u8]) -> Result<Hash, LedgerError> {
        Hash::from_slice(raw).map_err(|e| LedgerError::Inconsistent {
            path: self.location().to_owned(),
            detail: format!("a stored hash is malformed: {e}"),
        })
    }

    fn parse_checkpoint(&self, body: &str) -> Result<Checkpoint, LedgerError> {
        serde_json::from_str(body).map_err(|e| LedgerError::Inconsistent {
            path: self.location().to_owned(),
            detail: format!("a stored checkpoint is malformed: {e}"),
        })
    }

    fn missing_node(&self, id: NodeId) -> LedgerError {
        LedgerError::Inconsistent {
            path: self.location().to_owned(),
            detail: format!(
                "Merkle node at level {} index {} is missing",
                id.level, id.index
            ),
        }
    }
}

/// A [`Source`] as the Merkle code's node source.
pub(crate) struct Nodes<'a>(pub &'a dyn Source);

impl NodeSource for Nodes<'_> {
    type Error = LedgerError;
    fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, LedgerError> {
        self.0.nodes(ids)
    }
}

pub(crate) fn db_path(dir: &Path) -> PathBuf {
    dir.join(DB_FILE)
}

/// Opens (creating if asked) the store and checks that it is a Warden ledger of this origin.
pub(crate) fn open_writer(dir: &Path, origin: &str) -> Result<Connection, LedgerError> {
    std::fs::create_dir_all(dir).map_err(|source| LedgerError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let path = db_path(dir);
    let err = LedgerError::store(&path);
    let conn = Connection::open(&path).map_err(&err)?;
    // The writer only appends: it needs the pages on the right edge of two b-trees and room
    // for one batch's dirty pages (1 MiB holds about 750 records before SQLite spills them to
    // the log early, which is still one transaction; a batch at 10,000 calls a second is about
    // 100). Every page it writes stays in the cache until the cap, so a larger cap only grows
    // the process by that much under load (64 MiB did: the proxy's RSS rose with the ledger;
    // 4 MiB cost 3 MiB of the sidecar's), with no measured speed-up.
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0; PRAGMA cache_size=-1024;",
    )
    .map_err(&err)?;
    conn.execute_batch(META).map_err(&err)?;
    let found: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key='origin'", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(&err)?;
    match found {
        None => {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('origin', ?1), ('schema_version', '0')",
                params![origin],
            )
            .map_err(&err)?;
        }
        Some(o) if o != origin => {
            return Err(LedgerError::Inconsistent {
                path: path.clone(),
                detail: format!(
                    "it was created with origin {o:?}, but the configuration says {origin:?}"
                ),
            });
        }
        Some(_) => {}
    }
    let applied = schema_version(&conn, &path)?;
    for (i, step) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.unchecked_transaction().map_err(&err)?;
        tx.execute_batch(step.sqlite).map_err(&err)?;
        tx.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
            [(i + 1).to_string()],
        )
        .map_err(&err)?;
        tx.commit().map_err(&err)?;
    }
    Ok(conn)
}

/// Steps applied, refusing a store made by a newer Warden.
fn schema_version(conn: &Connection, path: &Path) -> Result<usize, LedgerError> {
    let v: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key='schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(LedgerError::store(path))?;
    match v.as_deref().map(str::parse::<usize>) {
        Some(Ok(n)) if n <= MIGRATIONS.len() => Ok(n),
        _ => Err(LedgerError::Inconsistent {
            path: path.to_owned(),
            detail: format!("unknown schema version {v:?}"),
        }),
    }
}

fn check_schema(conn: &Connection, path: &Path) -> Result<(), LedgerError> {
    if schema_version(conn, path)? != MIGRATIONS.len() {
        return Err(LedgerError::Inconsistent {
            path: path.to_owned(),
            detail: "its schema is older than this Warden; open it for writing once to upgrade"
                .into(),
        });
    }
    Ok(())
}

/// Opens an existing store for reading only; never creates one.
pub(crate) fn open_reader(dir: &Path) -> Result<Connection, LedgerError> {
    let path = db_path(dir);
    if !path.exists() {
        return Err(LedgerError::NotFound(path));
    }
    let err = LedgerError::store(&path);
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(&err)?;
    check_schema(&conn, &path)?;
    Ok(conn)
}

/// A read view over one connection.
pub(crate) struct Tables<'c> {
    pub conn: &'c Connection,
    pub path: &'c Path,
}

impl Tables<'_> {
    fn err(&self) -> impl Fn(rusqlite::Error) -> LedgerError + '_ {
        LedgerError::store(self.path)
    }

    fn body_at_most(&self, max_size: u64) -> Result<Option<String>, LedgerError> {
        self.conn
            .prepare_cached(
                "SELECT body FROM checkpoints WHERE tree_size <= ?1 ORDER BY tree_size DESC LIMIT 1",
            )
            .map_err(self.err())?
            .query_row([max_size.min(i64::MAX as u64) as i64], |r| r.get(0))
            .optional()
            .map_err(self.err())
    }
}

impl Source for Tables<'_> {
    fn location(&self) -> &Path {
        self.path
    }

    fn size(&self) -> Result<u64, LedgerError> {
        let n: Option<i64> = self
            .conn
            .query_row("SELECT max(idx) FROM records", [], |r| r.get(0))
            .map_err(self.err())?;
        Ok(n.map_or(0, |n| n as u64 + 1))
    }

    fn origin(&self) -> Result<String, LedgerError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key='origin'", [], |r| {
                r.get(0)
            })
            .map_err(self.err())
    }

    fn record(&self, index: u64) -> Result<Option<(String, Hash, Hash)>, LedgerError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT body, record_hash FROM records WHERE idx = ?1")
            .map_err(self.err())?;
        let row: Option<(String, Vec<u8>)> = stmt
            .query_row([index as i64], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(self.err())?;
        let Some((body, rh)) = row else {
            return Ok(None);
        };
        let prior = if index == 0 {
            Hash::ZERO
        } else {
            self.record_hash(index - 1)?
        };
        Ok(Some((body, self.hash(&rh)?, prior)))
    }

    fn record_hash(&self, index: u64) -> Result<Hash, LedgerError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT record_hash FROM records WHERE idx = ?1")
            .map_err(self.err())?;
        let raw: Vec<u8> = stmt
            .query_row([index as i64], |r| r.get(0))
            .map_err(self.err())?;
        self.hash(&raw)
    }

    fn checkpoint(&self, tree_size: u64) -> Result<Option<Checkpoint>, LedgerError> {
        let body: Option<String> = self
            .conn
            .prepare_cached("SELECT body FROM checkpoints WHERE tree_size = ?1")
            .map_err(self.err())?
            .query_row([tree_size as i64], |r| r.get(0))
            .optional()
            .map_err(self.err())?;
        body.map(|b| self.parse_checkpoint(&b)).transpose()
    }

    fn checkpoint_at_most(&self, max_size: u64) -> Result<Option<Checkpoint>, LedgerError> {
        self.body_at_most(max_size)?
            .map(|b| self.parse_checkpoint(&b))
            .transpose()
    }

    fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, LedgerError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT leaf_hash, nodes FROM records WHERE idx = ?1")
            .map_err(self.err())?;
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            let (row, slot) = node_row(id);
            let found: Option<Vec<u8>> = stmt
                .query_row([row], |r| {
                    let leaf = r.get_ref(0)?.as_blob()?;
                    let nodes = r.get_ref(1)?.as_blob()?;
                    Ok(node_in_row(slot, leaf, nodes).unwrap_or(&[]).to_vec())
                })
                .optional()
                .map_err(self.err())?;
            match found {
                Some(raw) if raw.len() == 32 => out.push(self.hash(&raw)?),
                _ => return Err(self.missing_node(id)),
            }
        }
        Ok(out)
    }

    fn records(&self, from: u64, to: u64) -> Result<Vec<(u64, String, Hash)>, LedgerError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT idx, body, record_hash FROM records WHERE idx >= ?1 AND idx < ?2 ORDER BY idx",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([from as i64, to.min(i64::MAX as u64) as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })
            .map_err(self.err())?;
        let mut out = Vec::new();
        for row in rows {
            let (idx, body, rh) = row.map_err(self.err())?;
            out.push((idx as u64, body, self.hash(&rh)?));
        }
        Ok(out)
    }

    fn checkpoints(
        &self,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, LedgerError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT tree_size, body FROM checkpoints WHERE tree_size > ?1 AND tree_size <= ?2 \
                 ORDER BY tree_size LIMIT ?3",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map(
                [after as i64, upto.min(i64::MAX as u64) as i64, limit as i64],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?)),
            )
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }
}
