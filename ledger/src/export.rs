//! The export format: JSON lines an auditor can verify offline.
//!
//! ```text
//! {"type":"header","format":"warden-ledger-export/v1","origin":"warden","tree_size":3}
//! {"type":"record","index":0,"kind":"..","payload":{..},"tenant":"..","timestamp":"..","prior_hash":"00..","record_hash":".."}
//! {"type":"checkpoint","origin":"warden","tree_size":1,"root_hash":"..",...}
//! ...
//! ```
//! Records come in index order; each checkpoint follows the last record it covers. The header
//! is not signed: it only lets a verifier tell a truncated file from a complete one.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::checkpoint::Checkpoint;
use crate::hash::Hash;
use crate::record::Record;

pub const FORMAT: &str = "warden-ledger-export/v1";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub format: String,
    pub origin: String,
    /// Records in the export: the size of its last checkpoint.
    pub tree_size: u64,
}

/// A record line: the record's fields and its chain hashes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordLine {
    pub index: u64,
    pub timestamp: String,
    pub kind: String,
    pub tenant: String,
    pub payload: Value,
    pub prior_hash: Hash,
    pub record_hash: Hash,
}

impl RecordLine {
    pub fn into_parts(self) -> (Record, Hash, Hash) {
        (
            Record {
                index: self.index,
                timestamp: self.timestamp,
                kind: self.kind,
                tenant: self.tenant,
                payload: self.payload,
            },
            self.prior_hash,
            self.record_hash,
        )
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Line {
    Header(Header),
    Record(RecordLine),
    Checkpoint(Checkpoint),
}

/// Builds a record line from the stored canonical body without re-parsing it.
pub(crate) fn record_line(body: &str, prior: &Hash, record_hash: &Hash) -> String {
    debug_assert!(body.starts_with('{') && body.ends_with('}'));
    format!(
        "{{\"type\":\"record\",{},\"prior_hash\":\"{}\",\"record_hash\":\"{}\"}}",
        &body[1..body.len() - 1],
        prior.to_hex(),
        record_hash.to_hex()
    )
}
