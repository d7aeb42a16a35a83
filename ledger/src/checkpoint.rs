//! Signed checkpoints (tree heads).
//!
//! A checkpoint commits to the first `tree_size` records twice over: through the Merkle root and
//! through the head of the hash chain. Its signed bytes are a plain-text note in the layout of
//! the C2SP `tlog-checkpoint` format, so they can be read by a person and re-created by any
//! verifier without a JSON library:
//!
//! ```text
//! <origin>\n
//! <tree_size in decimal>\n
//! <root hash, standard base64>\n
//! chain <hex of the last record_hash; 64 zeros for an empty ledger>\n
//! time <RFC 3339 UTC timestamp, millisecond precision>\n
//! ```
//!
//! The signature is Ed25519 (RFC 8032) over exactly those bytes; `key_id` is the hex of the first
//! eight bytes of SHA-256 of the 32-byte public key, so a verifier holding several keys (after
//! rotation) knows which one to use.

use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier};
use serde::{Deserialize, Serialize};

use crate::hash::Hash;
use crate::keys::{key_id, Keyring};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Names the ledger, so a checkpoint of one ledger is never taken for another's.
    pub origin: String,
    pub tree_size: u64,
    pub root_hash: Hash,
    pub chain_head: Hash,
    pub timestamp: String,
    pub key_id: String,
    /// Ed25519 signature over [`Checkpoint::signed_bytes`], standard base64.
    pub signature: String,
}

/// Why a checkpoint is not to be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint at size {tree_size} is signed by key {key_id}, which is not among the trusted keys")]
    UnknownKey { tree_size: u64, key_id: String },
    #[error("checkpoint at size {tree_size}: signature is not valid base64 Ed25519")]
    MalformedSignature { tree_size: u64 },
    #[error(
        "checkpoint at size {tree_size}: signature does not match (forged or altered checkpoint)"
    )]
    BadSignature { tree_size: u64 },
    #[error("checkpoint at size {tree_size}: origin {found:?} where {expected:?} was expected")]
    WrongOrigin {
        tree_size: u64,
        expected: String,
        found: String,
    },
}

impl Checkpoint {
    /// The exact bytes the signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        body(
            &self.origin,
            self.tree_size,
            &self.root_hash,
            &self.chain_head,
            &self.timestamp,
        )
        .into_bytes()
    }

    pub fn sign(
        key: &SigningKey,
        origin: &str,
        tree_size: u64,
        root_hash: Hash,
        chain_head: Hash,
        timestamp: String,
    ) -> Checkpoint {
        let sig = key.sign(body(origin, tree_size, &root_hash, &chain_head, &timestamp).as_bytes());
        Checkpoint {
            origin: origin.to_owned(),
            tree_size,
            root_hash,
            chain_head,
            timestamp,
            key_id: key_id(&key.verifying_key()),
            signature: base64::engine::general_purpose::STANDARD.encode(sig.to_bytes()),
        }
    }

    /// Checks the signature with the keyring's key of the same id.
    pub fn verify(&self, keys: &Keyring) -> Result<(), CheckpointError> {
        let tree_size = self.tree_size;
        let key = keys
            .get(&self.key_id)
            .ok_or_else(|| CheckpointError::UnknownKey {
                tree_size,
                key_id: self.key_id.clone(),
            })?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&self.signature)
            .map_err(|_| CheckpointError::MalformedSignature { tree_size })?;
        let sig = Signature::from_slice(&raw)
            .map_err(|_| CheckpointError::MalformedSignature { tree_size })?;
        key.verify(&self.signed_bytes(), &sig)
            .map_err(|_| CheckpointError::BadSignature { tree_size })
    }
}

fn body(origin: &str, size: u64, root: &Hash, chain: &Hash, timestamp: &str) -> String {
    format!(
        "{origin}\n{size}\n{}\nchain {}\ntime {timestamp}\n",
        base64::engine::general_purpose::STANDARD.encode(root.0),
        chain.to_hex()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::generate_signing_key;

    #[test]
    fn signed_note_layout_is_stable() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let cp = Checkpoint::sign(
            &key,
            "warden",
            3,
            Hash([1; 32]),
            Hash([2; 32]),
            "2026-11-23T12:00:00.000Z".into(),
        );
        let text = String::from_utf8(cp.signed_bytes()).unwrap();
        assert_eq!(
            text,
            format!(
                "warden\n3\nAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\nchain {}\ntime 2026-11-23T12:00:00.000Z\n",
                "02".repeat(32)
            )
        );
        let ring = Keyring::from_keys([key.verifying_key()]);
        cp.verify(&ring).unwrap();
    }

    #[test]
    fn tampering_and_wrong_keys_are_refused() {
        let key = generate_signing_key();
        let cp = Checkpoint::sign(&key, "w", 5, Hash([3; 32]), Hash([4; 32]), "t".into());
        let ring = Keyring::from_keys([key.verifying_key()]);
        let mut bigger = cp.clone();
        bigger.tree_size = 6;
        assert_eq!(
            bigger.verify(&ring),
            Err(CheckpointError::BadSignature { tree_size: 6 })
        );
        let other = Keyring::from_keys([generate_signing_key().verifying_key()]);
        assert!(matches!(
            cp.verify(&other),
            Err(CheckpointError::UnknownKey { .. })
        ));
        let mut garbled = cp.clone();
        garbled.signature = "!!".into();
        assert_eq!(
            garbled.verify(&ring),
            Err(CheckpointError::MalformedSignature { tree_size: 5 })
        );
    }
}
