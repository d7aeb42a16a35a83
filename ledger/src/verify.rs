//! Offline verification of an export, with nothing but trusted public keys.
//!
//! The verifier streams the export once: it recomputes every record hash and the chain, grows
//! the Merkle frontier, and at each checkpoint compares root and chain head and checks the
//! signature. Memory stays `O(log n)` whatever the size of the ledger.
//!
//! Where tampering is found it names the first bad index it can be sure of. A record whose
//! stored hash no longer matches its content, a gap, a duplicate or a reordering is pinned to
//! its exact index. A record altered together with every hash after it (so the chain is
//! self-consistent) is caught by the next signed checkpoint; the verifier then reports the first
//! index that no earlier valid checkpoint vouches for.

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::export::{Header, Line, FORMAT};
use crate::hash::{chain_hash, leaf_hash, Hash};
use crate::keys::Keyring;
use crate::merkle::{Frontier, ProofError};
use crate::sigcheck::SigChecker;

/// Why verification failed. [`VerifyError::is_unusable`] separates input that cannot be
/// checked at all (exit code 2) from input that was checked and found invalid (exit code 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("unusable input: {0}")]
    Malformed(String),
    #[error("line {line}: not valid JSON for the export format ({detail})")]
    BadLine { line: usize, detail: String },
    #[error(
        "export is truncated: the header announces {expected} records, the file holds {found}"
    )]
    Truncated { expected: u64, found: u64 },
    #[error("record {index}: its content does not match its record_hash (the record was altered)")]
    RecordHash { index: u64 },
    #[error("record {index}: prior_hash is not the hash of record {prev} (a record was inserted, deleted or reordered)", prev = index.wrapping_sub(1))]
    PriorHash { index: u64 },
    #[error("record at position {expected} carries index {found} (records were deleted, inserted or reordered); first bad index {expected}")]
    IndexGap { expected: u64, found: u64 },
    #[error("checkpoint at size {tree_size}: the records do not hash to its root; first bad index {first_bad} (no valid checkpoint vouches for records from {first_bad} on)")]
    CheckpointRoot { tree_size: u64, first_bad: u64 },
    #[error("checkpoint at size {tree_size}: chain head does not match the last record's hash")]
    CheckpointChain { tree_size: u64 },
    #[error(
        "checkpoint at size {tree_size} appears after {records} records (misplaced or forged)"
    )]
    CheckpointPlacement { tree_size: u64, records: u64 },
    #[error(
        "records {from} to {to} are not covered by any signed checkpoint; first bad index {from}"
    )]
    Unanchored { from: u64, to: u64 },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("record {index}: inclusion proof does not verify: {source}")]
    Inclusion { index: u64, source: ProofError },
    #[error("consistency between sizes {from} and {to} does not verify: {source}")]
    Consistency {
        from: u64,
        to: u64,
        source: ProofError,
    },
}

impl VerifyError {
    pub fn is_unusable(&self) -> bool {
        matches!(
            self,
            VerifyError::Malformed(_) | VerifyError::BadLine { .. } | VerifyError::Truncated { .. }
        )
    }

    /// The first index that can no longer be trusted, where the failure names one.
    pub fn first_bad_index(&self) -> Option<u64> {
        match self {
            VerifyError::RecordHash { index } | VerifyError::PriorHash { index } => Some(*index),
            VerifyError::IndexGap { expected, .. } => Some(*expected),
            VerifyError::CheckpointRoot { first_bad, .. } => Some(*first_bad),
            VerifyError::Unanchored { from, .. } => Some(*from),
            // Early: records before it are missing; late: records were inserted before it.
            VerifyError::CheckpointPlacement { tree_size, records } => {
                Some((*tree_size).min(*records))
            }
            _ => None,
        }
    }
}

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub origin: String,
    pub records: u64,
    pub checkpoints: u64,
    pub root_hash: Hash,
    pub chain_head: Hash,
    pub key_ids: Vec<String>,
}

/// Streams an export line by line.
pub struct ExportVerifier<'k> {
    keys: &'k Keyring,
    header: Option<Header>,
    frontier: Frontier,
    head: Hash,
    checkpoints: u64,
    /// Records up to here are vouched for by a verified checkpoint.
    anchored: u64,
    line: usize,
    key_ids: std::collections::BTreeSet<String>,
    signatures: SigChecker,
}

impl<'k> ExportVerifier<'k> {
    pub fn new(keys: &'k Keyring) -> ExportVerifier<'k> {
        ExportVerifier {
            keys,
            header: None,
            frontier: Frontier::new(),
            head: Hash::ZERO,
            checkpoints: 0,
            anchored: 0,
            line: 0,
            key_ids: Default::default(),
            signatures: SigChecker::new(keys),
        }
    }

    /// Feeds one line (without its newline). After an error the verifier is spent.
    pub fn line(&mut self, text: &str) -> Result<(), VerifyError> {
        self.line_inner(text).map_err(|e| {
            // A forged checkpoint before this point is the first thing wrong with the export.
            match self.signatures.finish() {
                Err(forged) => forged.into(),
                Ok(()) => e,
            }
        })
    }

    fn line_inner(&mut self, text: &str) -> Result<(), VerifyError> {
        self.line += 1;
        let line = self.line;
        if text.trim().is_empty() {
            return Ok(());
        }
        if self.header.is_some() && self.record_as_written(text)? {
            return Ok(());
        }
        let parsed: Line = match text.strip_prefix("{\"type\":\"checkpoint\",") {
            // Checkpoints are frequent; parsing them without the tag dispatch (which buffers
            // the whole object first) is several times faster.
            Some(rest) => serde_json::from_str(&format!("{{{rest}")).map(Line::Checkpoint),
            None => serde_json::from_str(text),
        }
        .map_err(|e| VerifyError::BadLine {
            line,
            detail: e.to_string(),
        })?;
        match (parsed, &self.header) {
            (Line::Header(h), None) => {
                if h.format != FORMAT {
                    return Err(VerifyError::Malformed(format!(
                        "line {line}: format {:?} is not {FORMAT:?}",
                        h.format
                    )));
                }
                self.header = Some(h);
                Ok(())
            }
            (Line::Header(_), Some(_)) => Err(VerifyError::BadLine {
                line,
                detail: "a second header".into(),
            }),
            (_, None) => Err(VerifyError::Malformed(format!(
                "line {line}: the export must start with a header line"
            ))),
            (Line::Record(r), Some(_)) => {
                let (record, prior, record_hash) = r.into_parts();
                self.check_position(record.index, &prior)?;
                let canonical = record.canonical();
                if chain_hash(&prior, canonical.as_bytes()) != record_hash {
                    return Err(VerifyError::RecordHash {
                        index: record.index,
                    });
                }
                self.accept(leaf_hash(canonical.as_bytes()), record_hash);
                Ok(())
            }
            (Line::Checkpoint(cp), Some(h)) => {
                if cp.origin != h.origin {
                    return Err(CheckpointError::WrongOrigin {
                        tree_size: cp.tree_size,
                        expected: h.origin.clone(),
                        found: cp.origin,
                    }
                    .into());
                }
                self.checkpoint(cp)
            }
        }
    }

    /// The fast path for a record line exactly as Warden writes it: the canonical record is the
    /// line minus its `type` and hash members, so it is hashed in place, without parsing it
    /// into a `Value` and serializing it again (5x faster). Sound because nothing but the
    /// hashed bytes is trusted, and those are what the chain and the signed tree commit to; a
    /// line that is not byte-for-byte what Warden wrote cannot match its hash. Returns false,
    /// leaving the line to the general path, when the layout differs or the hash does not
    /// match.
    fn record_as_written(&mut self, text: &str) -> Result<bool, VerifyError> {
        const PREFIX: &str = "{\"type\":\"record\",";
        const SUFFIX_LEN: usize = 162; // ,"prior_hash":"<64>","record_hash":"<64>"}
        if !text.starts_with(PREFIX) || text.len() < PREFIX.len() + SUFFIX_LEN {
            return Ok(false);
        }
        let split = text.len() - SUFFIX_LEN;
        if !text.is_char_boundary(split) || !text[split..].starts_with(",\"prior_hash\":\"") {
            return Ok(false);
        }
        // The index is the first member of the record; the hashes sit at fixed offsets.
        let Some(index) = text[PREFIX.len()..]
            .strip_prefix("\"index\":")
            .and_then(|r| r.split_once(','))
            .and_then(|(digits, _)| digits.parse::<u64>().ok())
        else {
            return Ok(false);
        };
        let suffix = &text.as_bytes()[split..];
        if &suffix[79..96] != b"\",\"record_hash\":\"" || &suffix[160..] != b"\"}" {
            return Ok(false);
        }
        // Hashes are compared as the lowercase hex Warden writes; anything else (or any
        // mismatch) goes to the general path, which parses the line and names the problem.
        if index != self.frontier.size() || suffix[15..79] != self.head.hex_bytes() {
            return Ok(false);
        }
        let inner = &text.as_bytes()[PREFIX.len()..split];
        let (leaf, chain) = hash_record_parts(&self.head, inner);
        if suffix[96..160] != chain.hex_bytes() {
            return Ok(false);
        }
        self.accept(leaf, chain);
        Ok(true)
    }

    fn check_position(&self, index: u64, prior: &Hash) -> Result<(), VerifyError> {
        let expected = self.frontier.size();
        if index != expected {
            return Err(VerifyError::IndexGap {
                expected,
                found: index,
            });
        }
        if *prior != self.head {
            return Err(VerifyError::PriorHash { index: expected });
        }
        Ok(())
    }

    fn accept(&mut self, leaf: Hash, record_hash: Hash) {
        self.frontier.push(leaf, |_, _| {});
        self.head = record_hash;
    }

    fn checkpoint(&mut self, cp: Checkpoint) -> Result<(), VerifyError> {
        let records = self.frontier.size();
        if cp.tree_size != records {
            return Err(VerifyError::CheckpointPlacement {
                tree_size: cp.tree_size,
                records,
            });
        }
        if self.keys.get(&cp.key_id).is_none() || crate::sigcheck::parse_signature(&cp).is_none() {
            // Reports the unknown key or the malformed signature.
            cp.verify(self.keys)?;
        }
        if cp.root_hash != self.frontier.root() || cp.chain_head != self.head {
            // The signature first: a forged checkpoint is reported as forged, and an unsigned
            // claim about the root says nothing about the records.
            cp.verify(self.keys)?;
            if cp.root_hash != self.frontier.root() {
                return Err(VerifyError::CheckpointRoot {
                    tree_size: cp.tree_size,
                    first_bad: self.anchored,
                });
            }
            return Err(VerifyError::CheckpointChain {
                tree_size: cp.tree_size,
            });
        }
        self.anchored = records;
        self.checkpoints += 1;
        if !self.key_ids.contains(&cp.key_id) {
            self.key_ids.insert(cp.key_id.clone());
        }
        // The signature is checked in the background; `finish` reports a bad one.
        self.signatures.push(cp);
        Ok(())
    }

    pub fn finish(mut self) -> Result<Summary, VerifyError> {
        self.signatures.finish()?;
        let header = self
            .header
            .ok_or_else(|| VerifyError::Malformed("the export is empty".into()))?;
        let records = self.frontier.size();
        if records < header.tree_size {
            return Err(VerifyError::Truncated {
                expected: header.tree_size,
                found: records,
            });
        }
        if self.anchored < records {
            return Err(VerifyError::Unanchored {
                from: self.anchored,
                to: records - 1,
            });
        }
        Ok(Summary {
            origin: header.origin,
            records,
            checkpoints: self.checkpoints,
            root_hash: self.frontier.root(),
            chain_head: self.head,
            key_ids: self.key_ids.into_iter().collect(),
        })
    }
}

/// Leaf hash and chain hash of the record `{` + `inner` + `}`.
fn hash_record_parts(prior: &Hash, inner: &[u8]) -> (Hash, Hash) {
    use sha2::{Digest, Sha256};
    let mut leaf = Sha256::new();
    leaf.update([0u8, b'{']);
    leaf.update(inner);
    leaf.update(b"}");
    let mut chain = Sha256::new();
    chain.update(prior.0);
    chain.update(b"{");
    chain.update(inner);
    chain.update(b"}");
    (Hash(leaf.finalize().into()), Hash(chain.finalize().into()))
}

/// Verifies a whole export from a reader of JSON lines.
pub fn verify_export(
    reader: impl std::io::BufRead,
    keys: &Keyring,
) -> Result<Summary, VerifyError> {
    let mut reader = reader;
    let mut v = ExportVerifier::new(keys);
    let mut line = String::with_capacity(1024);
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| VerifyError::BadLine {
                line: v.line + 1,
                detail: e.to_string(),
            })?;
        if n == 0 {
            break;
        }
        v.line(line.trim_end_matches(['\n', '\r']))?;
    }
    v.finish()
}
