use std::path::PathBuf;

use crate::keys::KeyError;
use crate::merkle::ProofError;
use crate::record::EntryError;

/// What can go wrong opening, appending to or reading a ledger.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("no ledger at {0} (nothing has been appended yet, or the path is wrong)")]
    NotFound(PathBuf),
    #[error("ledger at {0} is in use by another Warden process")]
    Locked(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ledger store {path}: {message}")]
    Store { path: PathBuf, message: String },
    #[error("ledger store {path} is inconsistent: {detail}")]
    Inconsistent { path: PathBuf, detail: String },
    #[error("signing key: {0}")]
    Key(#[from] KeyError),
    #[error("invalid entry: {0}")]
    Entry(#[from] EntryError),
    #[error("{0}")]
    Proof(#[from] ProofError),
    #[error("tree size {requested} is beyond the ledger's {size} records")]
    BeyondSize { requested: u64, size: u64 },
    #[error("no checkpoint covers tree size {0}")]
    NoCheckpoint(u64),
    #[error("the batch could not be made durable: {0}")]
    Append(String),
    #[error("the ledger is shut down")]
    Closed,
}

impl LedgerError {
    pub(crate) fn store(path: &std::path::Path) -> impl Fn(rusqlite::Error) -> LedgerError + '_ {
        move |e| LedgerError::Store {
            path: path.to_owned(),
            message: e.to_string(),
        }
    }
}
