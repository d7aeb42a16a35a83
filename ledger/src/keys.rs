//! Ed25519 signing keys: generation, files, rotation, and the keyring a verifier trusts.
//!
//! Keys are stored as PEM (PKCS #8 for the private key, SubjectPublicKeyInfo for the public key)
//! so that standard tools (`openssl pkey`) can read them. The private key file is created with
//! mode 0600 and never overwritten by accident. On rotation the old public key moves to
//! `retired/<key_id>.pub` beside the new pair: checkpoints signed before the rotation stay
//! verifiable with the keyring built from the directory.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{
    spki::der::pem::LineEnding, DecodePrivateKey, DecodePublicKey, EncodePrivateKey,
    EncodePublicKey,
};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a PEM-encoded Ed25519 {what} key")]
    Format { path: PathBuf, what: &'static str },
    #[error("{path}: a key already exists (rotate it instead of overwriting)")]
    Exists { path: PathBuf },
    #[error("{0}: no public keys found")]
    Empty(PathBuf),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_owned(),
        source,
    }
}

pub fn generate_signing_key() -> SigningKey {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("the operating system's random source is available");
    SigningKey::from_bytes(&seed)
}

/// Hex of the first 8 bytes of SHA-256 over the 32-byte public key.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// Where the public half of the key at `private` lives: the same name with `.pub`.
pub fn public_path(private: &Path) -> PathBuf {
    private.with_extension("pub")
}

pub fn public_key_pem(key: &VerifyingKey) -> String {
    key.to_public_key_pem(LineEnding::LF)
        .expect("an Ed25519 public key always encodes")
}

/// Writes a new key pair; refuses to replace an existing private key.
pub fn write_key_pair(private: &Path, key: &SigningKey) -> Result<(), KeyError> {
    if let Some(dir) = private.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .expect("an Ed25519 key always encodes");
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(private).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyError::Exists {
                path: private.to_owned(),
            }
        } else {
            io_err(private)(e)
        }
    })?;
    f.write_all(pem.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(io_err(private))?;
    let public = public_path(private);
    fs::write(&public, public_key_pem(&key.verifying_key())).map_err(io_err(&public))
}

pub fn load_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    let pem = fs::read_to_string(path).map_err(io_err(path))?;
    #[cfg(unix)]
    if let Ok(meta) = fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "signing key is readable by other users; chmod 600 it");
        }
    }
    SigningKey::from_pkcs8_pem(&pem).map_err(|_| KeyError::Format {
        path: path.to_owned(),
        what: "private",
    })
}

/// Loads the signing key, creating a new pair on first start. Returns whether it was created.
pub fn load_or_create_signing_key(path: &Path) -> Result<(SigningKey, bool), KeyError> {
    if path.exists() {
        return Ok((load_signing_key(path)?, false));
    }
    let key = generate_signing_key();
    write_key_pair(path, &key)?;
    Ok((key, true))
}

/// Replaces the key pair at `private` with a new one and keeps the old public key in
/// `retired/<key_id>.pub`. Returns the new key.
pub fn rotate(private: &Path) -> Result<SigningKey, KeyError> {
    let old = load_signing_key(private)?;
    let dir = private.parent().unwrap_or(Path::new(".")).join("retired");
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let retired = dir.join(format!("{}.pub", key_id(&old.verifying_key())));
    fs::write(&retired, public_key_pem(&old.verifying_key())).map_err(io_err(&retired))?;
    fs::remove_file(private).map_err(io_err(private))?;
    let key = generate_signing_key();
    write_key_pair(private, &key)?;
    Ok(key)
}

pub fn load_public_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    let pem = fs::read_to_string(path).map_err(io_err(path))?;
    VerifyingKey::from_public_key_pem(pem.trim()).map_err(|_| KeyError::Format {
        path: path.to_owned(),
        what: "public",
    })
}

/// The public keys a verifier trusts, by key id.
#[derive(Clone, Debug, Default)]
pub struct Keyring {
    keys: BTreeMap<String, VerifyingKey>,
}

impl Keyring {
    pub fn from_keys(keys: impl IntoIterator<Item = VerifyingKey>) -> Keyring {
        Keyring {
            keys: keys.into_iter().map(|k| (key_id(&k), k)).collect(),
        }
    }

    pub fn from_files<P: AsRef<Path>>(paths: &[P]) -> Result<Keyring, KeyError> {
        let keys = paths
            .iter()
            .map(|p| load_public_key(p.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Keyring::from_keys(keys))
    }

    /// Every `*.pub` in `dir` and in `dir/retired`.
    pub fn from_dir(dir: &Path) -> Result<Keyring, KeyError> {
        let mut paths = Vec::new();
        for d in [dir.to_owned(), dir.join("retired")] {
            let entries = match fs::read_dir(&d) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && d != dir => continue,
                Err(e) => return Err(io_err(&d)(e)),
            };
            for entry in entries {
                let p = entry.map_err(io_err(&d))?.path();
                if p.extension().is_some_and(|e| e == "pub") {
                    paths.push(p);
                }
            }
        }
        if paths.is_empty() {
            return Err(KeyError::Empty(dir.to_owned()));
        }
        Keyring::from_files(&paths)
    }

    pub fn get(&self, key_id: &str) -> Option<&VerifyingKey> {
        self.keys.get(key_id)
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_round_trip_and_rotation_keeps_old_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/ledger.key");
        let (k1, created) = load_or_create_signing_key(&path).unwrap();
        assert!(created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (again, created) = load_or_create_signing_key(&path).unwrap();
        assert!(!created);
        assert_eq!(again.to_bytes(), k1.to_bytes());
        assert!(matches!(
            write_key_pair(&path, &k1),
            Err(KeyError::Exists { .. })
        ));

        let k2 = rotate(&path).unwrap();
        let ring = Keyring::from_dir(&dir.path().join("keys")).unwrap();
        assert!(ring.get(&key_id(&k1.verifying_key())).is_some());
        assert!(ring.get(&key_id(&k2.verifying_key())).is_some());
    }

    #[test]
    fn garbage_key_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pub");
        fs::write(&p, "not a key").unwrap();
        let err = load_public_key(&p).unwrap_err().to_string();
        assert!(
            err.contains("not a PEM-encoded Ed25519 public key"),
            "{err}"
        );
    }
}
