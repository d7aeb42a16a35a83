//! Receipts and consistency claims: the proofs a caller keeps and an auditor checks offline.

use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpoint;
use crate::hash::{leaf_hash, Hash};
use crate::keys::Keyring;
use crate::merkle;
use crate::verify::VerifyError;

/// Proof that a record was durably inscribed: the record, its place in the hash chain, the
/// signed checkpoint of the batch it was committed in, and its inclusion proof in that tree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    pub index: u64,
    pub record_hash: Hash,
    pub prior_hash: Hash,
    pub record: crate::record::Record,
    pub checkpoint: Checkpoint,
    /// RFC 9162 audit path, leaf side first.
    pub inclusion_proof: Vec<Hash>,
}

impl Receipt {
    /// Checks the receipt with nothing but trusted public keys.
    pub fn verify(&self, keys: &Keyring) -> Result<(), VerifyError> {
        let index = self.index;
        if self.record.index != index {
            return Err(VerifyError::Malformed(format!(
                "receipt index {index} differs from its record's index {}",
                self.record.index
            )));
        }
        let canonical = self.record.canonical();
        if crate::hash::chain_hash(&self.prior_hash, canonical.as_bytes()) != self.record_hash {
            return Err(VerifyError::RecordHash { index });
        }
        let cp = &self.checkpoint;
        merkle::verify_inclusion(
            index,
            cp.tree_size,
            &leaf_hash(canonical.as_bytes()),
            &self.inclusion_proof,
            &cp.root_hash,
        )
        .map_err(|source| VerifyError::Inclusion { index, source })?;
        if index + 1 == cp.tree_size && cp.chain_head != self.record_hash {
            return Err(VerifyError::CheckpointChain {
                tree_size: cp.tree_size,
            });
        }
        cp.verify(keys)?;
        Ok(())
    }
}

/// A claim that the ledger of `to` extends the ledger of `from` without rewriting it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyClaim {
    pub from: Checkpoint,
    pub to: Checkpoint,
    pub proof: Vec<Hash>,
}

impl ConsistencyClaim {
    pub fn verify(&self, keys: &Keyring) -> Result<(), VerifyError> {
        self.from.verify(keys)?;
        self.to.verify(keys)?;
        if self.from.origin != self.to.origin {
            return Err(VerifyError::Malformed(format!(
                "the checkpoints are of different ledgers ({:?} and {:?})",
                self.from.origin, self.to.origin
            )));
        }
        merkle::verify_consistency(
            self.from.tree_size,
            self.to.tree_size,
            &self.proof,
            &self.from.root_hash,
            &self.to.root_hash,
        )
        .map_err(|source| VerifyError::Consistency {
            from: self.from.tree_size,
            to: self.to.tree_size,
            source,
        })
    }
}
