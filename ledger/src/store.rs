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
const SCHEMA_VERSION: &str = "1";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
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
";

/// The row holding node `id` (the row of its rightmost leaf) and the node's slot in it.
fn node_row(id: NodeId) -> (i64, usize) {
    ((((id.index + 1) << id.level) - 1) as i64, id.level as usize)
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
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0; PRAGMA cache_size=-65536;",
    )
    .map_err(&err)?;
    conn.execute_batch(SCHEMA).map_err(&err)?;
    let found: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key='origin'", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(&err)?;
    match found {
        None => {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('origin', ?1), ('schema_version', ?2)",
                params![origin, SCHEMA_VERSION],
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
        Some(_) => check_schema(&conn, &path)?,
    }
    Ok(conn)
}

fn check_schema(conn: &Connection, path: &Path) -> Result<(), LedgerError> {
    let v: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key='schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(LedgerError::store(path))?;
    if v.as_deref() != Some(SCHEMA_VERSION) {
        return Err(LedgerError::Inconsistent {
            path: path.to_owned(),
            detail: format!("unknown schema version {v:?}"),
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

    pub fn size(&self) -> Result<u64, LedgerError> {
        let n: Option<i64> = self
            .conn
            .query_row("SELECT max(idx) FROM records", [], |r| r.get(0))
            .map_err(self.err())?;
        Ok(n.map_or(0, |n| n as u64 + 1))
    }

    pub fn origin(&self) -> Result<String, LedgerError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key='origin'", [], |r| {
                r.get(0)
            })
            .map_err(self.err())
    }

    /// `(body, record_hash)` of the record at `index`, and the prior hash.
    pub fn record(&self, index: u64) -> Result<Option<(String, Hash, Hash)>, LedgerError> {
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
        Ok(Some((body, self.hash(rh)?, prior)))
    }

    pub fn record_hash(&self, index: u64) -> Result<Hash, LedgerError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT record_hash FROM records WHERE idx = ?1")
            .map_err(self.err())?;
        let raw: Vec<u8> = stmt
            .query_row([index as i64], |r| r.get(0))
            .map_err(self.err())?;
        self.hash(raw)
    }

    fn hash(&self, raw: Vec<u8>) -> Result<Hash, LedgerError> {
        Hash::from_slice(&raw).map_err(|e| LedgerError::Inconsistent {
            path: self.path.to_owned(),
            detail: format!("a stored hash is malformed: {e}"),
        })
    }

    pub fn checkpoint(&self, tree_size: u64) -> Result<Option<Checkpoint>, LedgerError> {
        let body: Option<String> = self
            .conn
            .prepare_cached("SELECT body FROM checkpoints WHERE tree_size = ?1")
            .map_err(self.err())?
            .query_row([tree_size as i64], |r| r.get(0))
            .optional()
            .map_err(self.err())?;
        body.map(|b| self.parse_checkpoint(&b)).transpose()
    }

    /// The newest checkpoint whose size is at most `max_size`.
    pub fn checkpoint_at_most(&self, max_size: u64) -> Result<Option<Checkpoint>, LedgerError> {
        let body: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT body FROM checkpoints WHERE tree_size <= ?1 ORDER BY tree_size DESC LIMIT 1",
            )
            .map_err(self.err())?
            .query_row([max_size.min(i64::MAX as u64) as i64], |r| r.get(0))
            .optional()
            .map_err(self.err())?;
        body.map(|b| self.parse_checkpoint(&b)).transpose()
    }

    pub fn parse_checkpoint(&self, body: &str) -> Result<Checkpoint, LedgerError> {
        serde_json::from_str(body).map_err(|e| LedgerError::Inconsistent {
            path: self.path.to_owned(),
            detail: format!("a stored checkpoint is malformed: {e}"),
        })
    }
}

impl NodeSource for Tables<'_> {
    type Error = LedgerError;

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
                    if slot == 0 {
                        r.get(0)
                    } else {
                        let blob = r.get_ref(1)?.as_blob()?;
                        Ok(blob.get((slot - 1) * 32..slot * 32).unwrap_or(&[]).to_vec())
                    }
                })
                .optional()
                .map_err(self.err())?;
            match found {
                Some(raw) if raw.len() == 32 => out.push(self.hash(raw)?),
                _ => {
                    return Err(LedgerError::Inconsistent {
                        path: self.path.to_owned(),
                        detail: format!(
                            "Merkle node at level {} index {} is missing",
                            id.level, id.index
                        ),
                    })
                }
            }
        }
        Ok(out)
    }
}
