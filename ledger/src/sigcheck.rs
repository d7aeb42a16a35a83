//! Checkpoint signatures, checked off the verifier's thread and in batches.
//!
//! A ledger written under light load has a checkpoint for almost every record, and an Ed25519
//! verification costs about 40 µs, more than hashing a record. So the verifier does the cheap
//! checks of a checkpoint (placement, root, chain head, a known key, a well-formed signature)
//! in line, and hands the signatures to a worker thread, which checks them in batches
//! (ed25519-dalek's batch verification, about twice as fast per signature) while the records
//! are being hashed. A batch that fails is checked one signature at a time to name the first
//! forged checkpoint.

use std::sync::mpsc;
use std::thread::JoinHandle;

use ed25519_dalek::{Signature, VerifyingKey};

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::keys::Keyring;

const CHUNK: usize = 128;

pub(crate) struct SigChecker {
    keys: Keyring,
    pending: Vec<Checkpoint>,
    tx: Option<mpsc::SyncSender<Vec<Checkpoint>>>,
    worker: Option<JoinHandle<Result<(), CheckpointError>>>,
}

impl SigChecker {
    pub fn new(keys: &Keyring) -> SigChecker {
        SigChecker {
            keys: keys.clone(),
            pending: Vec::with_capacity(CHUNK),
            tx: None,
            worker: None,
        }
    }

    /// Queues a checkpoint whose key is known and whose signature is well-formed.
    pub fn push(&mut self, cp: Checkpoint) {
        self.pending.push(cp);
        if self.pending.len() < CHUNK {
            return;
        }
        let chunk = std::mem::replace(&mut self.pending, Vec::with_capacity(CHUNK));
        if self.tx.is_none() {
            let (tx, rx) = mpsc::sync_channel::<Vec<Checkpoint>>(4);
            let keys = self.keys.clone();
            let spawned = std::thread::Builder::new()
                .name("verify-signatures".into())
                .spawn(move || {
                    for chunk in rx {
                        check(&keys, &chunk)?;
                    }
                    Ok(())
                });
            match spawned {
                Ok(handle) => {
                    self.tx = Some(tx);
                    self.worker = Some(handle);
                }
                // No thread to be had: check here rather than not at all.
                Err(_) => {
                    self.pending = chunk;
                    return;
                }
            }
        }
        if let Some(tx) = &self.tx {
            if let Err(mpsc::SendError(chunk)) = tx.send(chunk) {
                // The worker stopped at a bad signature; `finish` reports it. Keep the chunk
                // so that nothing goes unchecked if it stopped for another reason.
                self.pending.extend(chunk);
            }
        }
    }

    /// Checks everything queued; the first bad signature, by position, wins.
    pub fn finish(&mut self) -> Result<(), CheckpointError> {
        self.tx = None;
        let earlier = match self.worker.take() {
            Some(w) => w.join().unwrap_or_else(|_| {
                panic!("the signature worker panicked");
            }),
            None => Ok(()),
        };
        earlier?;
        let rest = std::mem::take(&mut self.pending);
        check(&self.keys, &rest)
    }
}

fn check(keys: &Keyring, chunk: &[Checkpoint]) -> Result<(), CheckpointError> {
    if chunk.is_empty() {
        return Ok(());
    }
    let mut messages = Vec::with_capacity(chunk.len());
    let mut signatures = Vec::with_capacity(chunk.len());
    let mut verifying: Vec<VerifyingKey> = Vec::with_capacity(chunk.len());
    for cp in chunk {
        let (Some(key), Some(sig)) = (keys.get(&cp.key_id), parse_signature(cp)) else {
            // Not pre-checked: let the plain path name the problem.
            return chunk.iter().try_for_each(|cp| cp.verify(keys));
        };
        messages.push(cp.signed_bytes());
        signatures.push(sig);
        verifying.push(*key);
    }
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    if ed25519_dalek::verify_batch(&refs, &signatures, &verifying).is_ok() {
        return Ok(());
    }
    chunk.iter().try_for_each(|cp| cp.verify(keys))
}

pub(crate) fn parse_signature(cp: &Checkpoint) -> Option<Signature> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&cp.signature)
        .ok()?;
    Signature::from_slice(&raw).ok()
}
