//! SHA-256 digests and the RFC 9162 domain-separated hashes.
//!
//! Leaves and interior nodes are hashed with different one-byte prefixes (`0x00`, `0x01`) so that
//! an interior node can never be passed off as a leaf (second-preimage resistance of the tree).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// A SHA-256 digest. Serialized as 64 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The prior hash of the first record: 32 zero bytes.
    pub const ZERO: Hash = Hash([0; 32]);

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses exactly 64 hex characters (either case).
    pub fn from_hex(s: &str) -> Result<Hash, HashParseError> {
        let mut out = [0u8; 32];
        if s.len() != 64 {
            return Err(HashParseError::Length(s.len()));
        }
        hex::decode_to_slice(s, &mut out).map_err(|_| HashParseError::NotHex)?;
        Ok(Hash(out))
    }

    /// Accepts exactly 32 bytes; anything else is not a SHA-256 digest.
    pub fn from_slice(b: &[u8]) -> Result<Hash, HashParseError> {
        <[u8; 32]>::try_from(b)
            .map(Hash)
            .map_err(|_| HashParseError::Bytes(b.len()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashParseError {
    #[error("expected 64 hex characters, found {0}")]
    Length(usize),
    #[error("expected hex digits")]
    NotHex,
    #[error("expected a 32-byte hash, found {0} bytes")]
    Bytes(usize),
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Hash::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// `SHA-256(0x00 || data)`: the Merkle leaf hash of a record's canonical bytes.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    Hash(h.finalize().into())
}

/// `SHA-256(0x01 || left || right)`: an interior Merkle node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left.0);
    h.update(right.0);
    Hash(h.finalize().into())
}

/// `SHA-256(prior || canonical)`: a link of the hash chain.
pub fn chain_hash(prior: &Hash, canonical: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update(prior.0);
    h.update(canonical);
    Hash(h.finalize().into())
}

/// The root of the empty tree, `SHA-256("")`, as RFC 9162 defines it.
pub fn empty_root() -> Hash {
    Hash(Sha256::digest([]).into())
}
