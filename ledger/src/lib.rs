//! Warden's tamper-evident ledger.
//!
//! Every governed outcome becomes a [`Record`]. Records are linked twice: into a SHA-256 hash
//! chain (`record_hash = SHA-256(prior_hash || canonical(record))`, with an all-zero prior for
//! the first) and into an RFC 9162 Merkle tree, whose signed tree heads ([`Checkpoint`]) let
//! anyone prove, offline and with the public key alone, that a record is included
//! ([`Receipt`]), that a later ledger extends an earlier one ([`ConsistencyClaim`]), and that a
//! whole export was not altered ([`verify_export`]).
//!
//! Why both structures: the chain makes any edit break every later hash, which a reader of the
//! raw records sees at once and at the exact index; the tree gives `O(log n)` proofs for one
//! record without handing over the whole ledger.
//!
//! Storage is embedded SQLite with group commit (see [`Ledger`]), or PostgreSQL shared by many
//! Warden processes (see the `pg` module); reads of historical nodes
//! fetch `O(log n)` rows and never load the tree into memory.

pub mod canonical;
mod checkpoint;
mod error;
pub mod export;
pub mod hash;
pub mod keys;
mod ledger;
pub mod merkle;
mod pg;
mod receipt;
mod record;
mod sigcheck;
mod store;
mod verify;
mod writer;

pub use checkpoint::{Checkpoint, CheckpointError};
pub use error::LedgerError;
pub use hash::Hash;
pub use keys::{KeyError, Keyring};
pub use ledger::{Appending, Ledger, LedgerOptions, LedgerReader, Sequenced};
pub use receipt::{ConsistencyClaim, Receipt};
pub use record::{format_timestamp, Entry, EntryError, Record, MAX_LABEL_LEN};
pub use verify::{verify_export, ExportVerifier, Summary, VerifyError};
