//! Detached Ed25519 signatures over a pack's hash, and the trust policy that decides which packs
//! may be loaded.
//!
//! A signature file `<pack>.sig` beside `<pack>` holds one line per signature:
//! `<key id> <base64 signature>`, where the signature is Ed25519 over the UTF-8 bytes of the pack's
//! hash string (`sha256:<hex>`) and the key id is the hex of the first 8 bytes of SHA-256 of the
//! 32-byte public key. Because the hash covers the canonical form, re-indenting a signed pack or
//! editing its comments keeps the signature valid; changing any value does not.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use ed25519_dalek::pkcs8::DecodePublicKey;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::error::PackError;
use crate::pack::Pack;

/// The key id of a public key: hex of the first 8 bytes of SHA-256 of its 32 bytes.
#[must_use]
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// A public key trusted to sign packs.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    id: String,
    key: VerifyingKey,
}

impl TrustedKey {
    /// Wraps a verifying key.
    #[must_use]
    pub fn new(key: VerifyingKey) -> Self {
        TrustedKey {
            id: key_id(&key),
            key,
        }
    }

    /// Reads a PEM `PUBLIC KEY` (SPKI) block.
    ///
    /// # Errors
    /// [`PackError::InvalidKey`] if it is not an Ed25519 SPKI PEM.
    pub fn from_pem(pem: &str) -> Result<Self, PackError> {
        VerifyingKey::from_public_key_pem(pem)
            .map(TrustedKey::new)
            .map_err(|e| PackError::InvalidKey(format!("not an Ed25519 public key PEM: {e}")))
    }

    /// The key id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Which packs may be loaded from disk.
#[derive(Debug, Clone, Default)]
pub enum TrustPolicy {
    /// Any valid pack; signature files are ignored.
    #[default]
    AllowUnsigned,
    /// Only packs with a `<file>.sig` holding a valid signature by one of these keys.
    RequireSignature(Vec<TrustedKey>),
}

impl TrustPolicy {
    /// Requires a signature by one of the keys given as PEM SPKI blocks.
    ///
    /// # Errors
    /// [`PackError::InvalidKey`] for a key that cannot be read.
    pub fn require_signature_pem<S: AsRef<str>>(pems: &[S]) -> Result<Self, PackError> {
        pems.iter()
            .map(|p| TrustedKey::from_pem(p.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map(TrustPolicy::RequireSignature)
    }
}

/// Signs a pack: returns the contents of its `.sig` file (`<key id> <base64>\n`).
///
/// # Errors
/// [`PackError::Invalid`] if `pack_text` is not a valid pack (only valid packs can be signed).
pub fn sign_pack(pack_text: &str, key: &SigningKey) -> Result<String, PackError> {
    let pack = Pack::from_yaml(pack_text, "<pack>")?;
    let sig = key.sign(pack.hash().as_bytes());
    Ok(format!(
        "{} {}\n",
        key_id(&key.verifying_key()),
        base64::engine::general_purpose::STANDARD.encode(sig.to_bytes())
    ))
}

/// Checks a signature file's text against the pack and the trusted keys; returns the id of the key
/// whose signature verified.
///
/// # Errors
/// [`PackError::BadSignature`] (with `path` as given) when no line verifies.
pub fn verify_signature(
    pack: &Pack,
    sig_text: &str,
    keys: &[TrustedKey],
    path: &Path,
) -> Result<String, PackError> {
    let bad = |reason: String| PackError::BadSignature {
        path: path.to_owned(),
        reason,
    };
    let mut reasons = Vec::new();
    for line in sig_text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Some((id, b64)) = line.split_once(char::is_whitespace) else {
            reasons.push("a line is not `<key id> <base64 signature>`".to_owned());
            continue;
        };
        let Some(key) = keys.iter().find(|k| k.id == id) else {
            reasons.push(format!("key {id} is not trusted"));
            continue;
        };
        let sig = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()
            .and_then(|b| Signature::from_slice(&b).ok());
        let Some(sig) = sig else {
            reasons.push(format!(
                "the signature by key {id} is not valid base64 Ed25519"
            ));
            continue;
        };
        if key.key.verify(pack.hash().as_bytes(), &sig).is_ok() {
            return Ok(id.to_owned());
        }
        reasons.push(format!(
            "the signature by key {id} does not match the pack's hash {}",
            pack.hash()
        ));
    }
    if reasons.is_empty() {
        reasons.push("the signature file is empty".to_owned());
    }
    Err(bad(reasons.join("; ")))
}

/// Where the signature of `path` lives: `path` + `.sig`.
#[must_use]
pub fn sig_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

/// Reads, validates and (per `trust`) verifies a pack file.
///
/// # Errors
/// [`PackError::Io`], [`PackError::Invalid`], [`PackError::Unsigned`], [`PackError::BadSignature`].
pub fn load_pack_file(path: &Path, trust: &TrustPolicy) -> Result<Pack, PackError> {
    let text = std::fs::read_to_string(path).map_err(|source| PackError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut pack = Pack::from_yaml(&text, &path.display().to_string())?;
    if let TrustPolicy::RequireSignature(keys) = trust {
        let sp = sig_path(path);
        let sig = match std::fs::read_to_string(&sp) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(PackError::Unsigned {
                    path: path.to_owned(),
                    sig_path: sp,
                })
            }
            Err(source) => return Err(PackError::Io { path: sp, source }),
        };
        pack.signed_by = Some(verify_signature(&pack, &sig, keys, path)?);
    }
    Ok(pack)
}
