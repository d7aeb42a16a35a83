//! The ledger handle: open, append, read, export, shut down.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::checkpoint::Checkpoint;
use crate::error::LedgerError;
use crate::export::{record_line, Header, FORMAT};
use crate::hash::Hash;
use crate::keys::{load_or_create_signing_key, Keyring};
use crate::merkle::{self, Frontier, NodeId, NodeSource};
use crate::receipt::{ConsistencyClaim, Receipt};
use crate::record::{Entry, Record};
use crate::store::{self, Tables};
use crate::writer::{Request, Writer};

/// How to open a ledger for writing.
#[derive(Clone, Debug)]
pub struct LedgerOptions {
    /// Directory holding `ledger.db` (and its WAL) and the lock file.
    pub dir: PathBuf,
    /// PEM private key; created with its `.pub` on first start.
    pub signing_key: PathBuf,
    pub origin: String,
    pub batch_max: usize,
    pub batch_wait: Duration,
}

/// The writable ledger. One per data directory: opening takes an exclusive lock.
pub struct Ledger {
    tx: mpsc::Sender<Request>,
    thread: Mutex<Option<JoinHandle<()>>>,
    reader: LedgerReader,
    verifying_key: VerifyingKey,
    key_created: bool,
    _lock: File,
}

impl Ledger {
    /// Opens or creates the ledger, checks that the stored tree, chain and last checkpoint
    /// agree, and starts the writer thread.
    pub fn open(opts: LedgerOptions) -> Result<Ledger, LedgerError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| LedgerError::Io { path, source }
        };
        std::fs::create_dir_all(&opts.dir).map_err(io(&opts.dir))?;
        let lock_path = opts.dir.join("ledger.lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(LedgerError::Locked(opts.dir)),
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
        }
        let (key, key_created) = load_or_create_signing_key(&opts.signing_key)?;
        let conn = store::open_writer(&opts.dir, &opts.origin)?;
        let path = store::db_path(&opts.dir);
        let (frontier, head, last_ts) =
            recover(&conn, &path, &Keyring::from_keys([key.verifying_key()]))?;
        tracing::info!(records = frontier.size(), path = %path.display(), "ledger opened");

        let (tx, rx) = mpsc::channel(opts.batch_max.max(1) * 4);
        let writer = Writer {
            conn,
            wal: opts.dir.join(format!("{}-wal", store::DB_FILE)),
            sync_tx: None,
            unsynced: Default::default(),
            path,
            key: key.clone(),
            origin: opts.origin.clone(),
            frontier,
            head,
            last_ts,
            batch_max: opts.batch_max.max(1),
            batch_wait: opts.batch_wait,
        };
        let thread = std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(io(&opts.dir))?;
        Ok(Ledger {
            tx,
            thread: Mutex::new(Some(thread)),
            reader: LedgerReader::open(&opts.dir)?,
            verifying_key: key.verifying_key(),
            key_created,
            _lock: lock,
        })
    }

    /// Appends one entry; resolves once the batch holding it is durable.
    pub async fn append(&self, entry: Entry) -> Result<Receipt, LedgerError> {
        let started = std::time::Instant::now();
        let prepared = entry.prepare()?;
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Append(prepared, reply, None))
            .await
            .map_err(|_| LedgerError::Closed)?;
        let receipt = rx
            .await
            .map_err(|_| LedgerError::Closed)?
            .map(|settled| settled.into_receipt());
        observe_append("durable", started);
        receipt
    }

    /// Queues one entry and returns at once, so the caller can do other work (forward a request
    /// upstream, say) while the record is written and synced. [`Appending::sequenced`] resolves
    /// when the record has its index and hash (its batch is committed, not yet fsynced);
    /// [`Appending::durable`] when it is on stable storage, with its receipt.
    ///
    /// # Errors
    /// An invalid entry, or a ledger that has shut down.
    pub fn enqueue(&self, entry: Entry) -> Result<Appending, LedgerError> {
        let queued_at = std::time::Instant::now();
        let prepared = entry.prepare()?;
        let (reply, durable) = oneshot::channel();
        let (seq, sequenced) = oneshot::channel();
        match self
            .tx
            .try_send(Request::Append(prepared, reply, Some(seq)))
        {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(LedgerError::Closed),
            Err(mpsc::error::TrySendError::Full(req)) => {
                // The queue is bounded to push back on runaway producers; this caller cannot
                // wait here, so a helper task waits for room instead.
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    let _ = tx.send(req).await;
                });
            }
        }
        Ok(Appending {
            sequenced: Some(sequenced),
            seq_value: None,
            durable,
            queued_at,
        })
    }

    pub fn reader(&self) -> &LedgerReader {
        &self.reader
    }

    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying_key
    }

    /// Whether the writer thread still takes appends (for readiness: a writer that stopped,
    /// say after a panic, must take the process out of service).
    pub fn writer_running(&self) -> bool {
        !self.tx.is_closed()
    }

    /// Whether opening generated a new signing key (first start).
    pub fn key_created(&self) -> bool {
        self.key_created
    }

    /// Commits every append queued so far, then stops the writer. Later appends fail with
    /// [`LedgerError::Closed`]. Blocks until the writer has finished.
    pub fn shutdown_blocking(&self) {
        // A full queue means the writer is busy; it will see the request after the backlog.
        let _ = self.tx.blocking_send(Request::Shutdown);
        if let Some(t) = self.thread.lock().expect("not poisoned").take() {
            let _ = t.join();
        }
    }

    /// [`Ledger::shutdown_blocking`] for async callers.
    pub async fn shutdown(&self) {
        let _ = self.tx.send(Request::Shutdown).await;
        let thread = self.thread.lock().expect("not poisoned").take();
        if let Some(t) = thread {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        if let Some(t) = self.thread.get_mut().expect("not poisoned").take() {
            let _ = self.tx.try_send(Request::Shutdown);
            let _ = t.join();
        }
    }
}

/// Rebuilds the writer's state and checks it against the last checkpoint.
fn recover(
    conn: &Connection,
    path: &Path,
    keys: &Keyring,
) -> Result<(Frontier, Hash, i64), LedgerError> {
    let t = Tables { conn, path };
    let size = t.size()?;
    let inconsistent = |detail: String| LedgerError::Inconsistent {
        path: path.to_owned(),
        detail,
    };
    let Some(cp) = t.checkpoint_at_most(u64::MAX)? else {
        if size > 0 {
            return Err(inconsistent(format!("{size} records but no checkpoint")));
        }
        return Ok((Frontier::new(), Hash::ZERO, 0));
    };
    if cp.tree_size != size {
        return Err(inconsistent(format!(
            "{size} records but the last checkpoint is at size {}",
            cp.tree_size
        )));
    }
    let frontier = Frontier::load(&t, size)?;
    if frontier.root() != cp.root_hash {
        return Err(inconsistent(format!(
            "the stored tree does not hash to the root of checkpoint {size}"
        )));
    }
    let head = t.record_hash(size - 1)?;
    if head != cp.chain_head {
        return Err(inconsistent(format!(
            "the last record hash differs from the chain head of checkpoint {size}"
        )));
    }
    // A checkpoint signed by a retired key cannot be checked here; it was checked when written.
    if keys.get(&cp.key_id).is_some() {
        cp.verify(keys)
            .map_err(|e| inconsistent(format!("last checkpoint: {e}")))?;
    }
    let last_ts = time::OffsetDateTime::parse(
        &cp.timestamp,
        &time::format_description::well_known::Rfc3339,
    )
    .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
    .map_err(|e| inconsistent(format!("last checkpoint timestamp: {e}")))?;
    Ok((frontier, head, last_ts))
}

/// A record's place in the ledger, known once its batch is committed (before the fsync).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sequenced {
    /// Its index.
    pub index: u64,
    /// Its chain hash.
    pub record_hash: Hash,
}

/// An append in flight (see [`Ledger::enqueue`]).
pub struct Appending {
    sequenced: Option<oneshot::Receiver<Sequenced>>,
    seq_value: Option<Sequenced>,
    durable: oneshot::Receiver<Result<crate::writer::Settled, LedgerError>>,
    queued_at: std::time::Instant,
}

/// Records how long an append took to reach `stage` (`sequenced`: committed, not yet synced;
/// `durable`: on stable storage).
fn observe_append(stage: &'static str, since: std::time::Instant) {
    metrics::histogram!("warden_ledger_append_duration_seconds", "stage" => stage)
        .record(since.elapsed().as_secs_f64());
}

impl std::fmt::Debug for Appending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Appending")
            .field("sequenced", &self.seq_value)
            .finish_non_exhaustive()
    }
}

impl Appending {
    /// Waits until the record has its index and hash. Can be awaited again (it remembers).
    ///
    /// # Errors
    /// The batch failed, or the ledger shut down, before the record was sequenced.
    pub async fn sequenced(&mut self) -> Result<Sequenced, LedgerError> {
        if let Some(s) = self.seq_value {
            return Ok(s);
        }
        let rx = self.sequenced.take().ok_or(LedgerError::Closed)?;
        match rx.await {
            Ok(s) => {
                observe_append("sequenced", self.queued_at);
                self.seq_value = Some(s);
                Ok(s)
            }
            // The writer dropped the sender: the batch failed; the durable reply says why.
            Err(_) => match (&mut self.durable).await {
                Ok(Err(e)) => Err(e),
                _ => Err(LedgerError::Closed),
            },
        }
    }

    /// Waits until the record is durable, and returns its receipt.
    ///
    /// # Errors
    /// The batch or its fsync failed, or the ledger shut down first.
    pub async fn durable(self) -> Result<Receipt, LedgerError> {
        let receipt = self
            .durable
            .await
            .map_err(|_| LedgerError::Closed)?
            .map(|settled| settled.into_receipt());
        observe_append("durable", self.queued_at);
        receipt
    }
}

/// Read access to a ledger: proofs, receipts, checkpoints, export. Several may exist beside the
/// writer (SQLite WAL), also in other processes.
pub struct LedgerReader {
    path: PathBuf,
    pool: Mutex<Vec<Connection>>,
    upper: Mutex<HashMap<NodeId, Hash>>,
}

/// Nodes at this level and above (each covering 256 or more records) are kept in memory once
/// read. Complete nodes never change, so the cache needs no invalidation; it holds one entry
/// per 256 records at most (about 160 KiB per million), and proofs then read about half as many
/// rows from the store.
const CACHED_LEVEL: u8 = 8;
const CACHE_MAX: usize = 1 << 18;

/// The store with the cache of upper nodes in front of it.
struct Cached<'a> {
    tables: &'a Tables<'a>,
    upper: &'a Mutex<HashMap<NodeId, Hash>>,
}

impl NodeSource for Cached<'_> {
    type Error = LedgerError;

    fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, LedgerError> {
        let mut out: Vec<Option<Hash>> = {
            let cache = self.upper.lock().expect("not poisoned");
            ids.iter().map(|id| cache.get(id).copied()).collect()
        };
        let missing: Vec<NodeId> = ids
            .iter()
            .zip(&out)
            .filter(|(_, h)| h.is_none())
            .map(|(id, _)| *id)
            .collect();
        if missing.is_empty() {
            return Ok(out.into_iter().flatten().collect());
        }
        let fetched = self.tables.nodes(&missing)?;
        let mut cache = self.upper.lock().expect("not poisoned");
        if cache.len() > CACHE_MAX {
            cache.clear();
        }
        let mut fetched = missing.iter().zip(fetched);
        for slot in out.iter_mut().filter(|h| h.is_none()) {
            let (id, h) = fetched.next().expect("one fetched hash per missing id");
            if id.level >= CACHED_LEVEL {
                cache.insert(*id, h);
            }
            *slot = Some(h);
        }
        Ok(out.into_iter().flatten().collect())
    }
}

impl LedgerReader {
    pub fn open(dir: &Path) -> Result<LedgerReader, LedgerError> {
        let conn = store::open_reader(dir)?;
        Ok(LedgerReader {
            path: store::db_path(dir),
            pool: Mutex::new(vec![conn]),
            upper: Mutex::new(HashMap::new()),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Tables) -> Result<T, LedgerError>) -> Result<T, LedgerError> {
        let pooled = self.pool.lock().expect("not poisoned").pop();
        let conn = match pooled {
            Some(c) => c,
            None => store::open_reader(self.path.parent().unwrap_or(Path::new(".")))?,
        };
        let out = f(&Tables {
            conn: &conn,
            path: &self.path,
        });
        self.pool.lock().expect("not poisoned").push(conn);
        out
    }

    /// Records committed so far.
    pub fn size(&self) -> Result<u64, LedgerError> {
        self.with(|t| t.size())
    }

    pub fn origin(&self) -> Result<String, LedgerError> {
        self.with(|t| t.origin())
    }

    pub fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, LedgerError> {
        self.with(|t| t.checkpoint_at_most(u64::MAX))
    }

    pub fn checkpoint(&self, tree_size: u64) -> Result<Option<Checkpoint>, LedgerError> {
        self.with(|t| t.checkpoint(tree_size))
    }

    /// The record at `index` with its prior hash and record hash.
    pub fn record(&self, index: u64) -> Result<Option<(Record, Hash, Hash)>, LedgerError> {
        self.with(|t| {
            let Some((body, rh, prior)) = t.record(index)? else {
                return Ok(None);
            };
            let record: Record =
                serde_json::from_str(&body).map_err(|e| LedgerError::Inconsistent {
                    path: self.path.clone(),
                    detail: format!("record {index} is not valid JSON: {e}"),
                })?;
            Ok(Some((record, prior, rh)))
        })
    }

    pub fn inclusion_proof(&self, index: u64, tree_size: u64) -> Result<Vec<Hash>, LedgerError> {
        self.with(|t| {
            let size = t.size()?;
            if tree_size > size {
                return Err(LedgerError::BeyondSize {
                    requested: tree_size,
                    size,
                });
            }
            let src = Cached {
                tables: t,
                upper: &self.upper,
            };
            Ok(merkle::inclusion_proof(&src, index, tree_size)??)
        })
    }

    /// A receipt for the record at `index`, proved against the latest checkpoint.
    pub fn receipt(&self, index: u64) -> Result<Receipt, LedgerError> {
        let checkpoint = self
            .latest_checkpoint()?
            .ok_or(LedgerError::NoCheckpoint(index + 1))?;
        let (record, prior_hash, record_hash) =
            self.record(index)?.ok_or(LedgerError::BeyondSize {
                requested: index + 1,
                size: checkpoint.tree_size,
            })?;
        if index >= checkpoint.tree_size {
            return Err(LedgerError::NoCheckpoint(index + 1));
        }
        let inclusion_proof = self.inclusion_proof(index, checkpoint.tree_size)?;
        Ok(Receipt {
            index,
            record_hash,
            prior_hash,
            record,
            checkpoint,
            inclusion_proof,
        })
    }

    /// A consistency claim between the checkpoints at sizes `from` and `to` (latest if `None`).
    pub fn consistency(&self, from: u64, to: Option<u64>) -> Result<ConsistencyClaim, LedgerError> {
        let to_cp = match to {
            Some(n) => self.checkpoint(n)?.ok_or(LedgerError::NoCheckpoint(n))?,
            None => self
                .latest_checkpoint()?
                .ok_or(LedgerError::NoCheckpoint(0))?,
        };
        let from_cp = self
            .checkpoint(from)?
            .ok_or(LedgerError::NoCheckpoint(from))?;
        let proof = self.with(|t| {
            let src = Cached {
                tables: t,
                upper: &self.upper,
            };
            Ok(merkle::consistency_proof(&src, from, to_cp.tree_size)??)
        })?;
        Ok(ConsistencyClaim {
            from: from_cp,
            to: to_cp,
            proof,
        })
    }

    /// Writes the whole ledger as of one snapshot; returns the number of records written.
    pub fn export(&self, out: &mut dyn Write) -> Result<u64, LedgerError> {
        self.with(|t| {
            let err = LedgerError::store(t.path);
            let io = |e: std::io::Error| LedgerError::Io {
                path: PathBuf::from("<export output>"),
                source: e,
            };
            let tx = t.conn.unchecked_transaction().map_err(&err)?;
            let last = t.checkpoint_at_most(u64::MAX)?;
            let size = last.as_ref().map_or(0, |c| c.tree_size);
            let header = Header {
                format: FORMAT.into(),
                origin: t.origin()?,
                tree_size: size,
            };
            let mut line = serde_json::to_string(&crate::export::Line::Header(header))
                .expect("a header serializes");
            line.push('\n');
            out.write_all(line.as_bytes()).map_err(io)?;

            let mut records = tx
                .prepare("SELECT idx, body, record_hash FROM records WHERE idx < ?1 ORDER BY idx")
                .map_err(&err)?;
            let mut cps = tx
                .prepare("SELECT tree_size, body FROM checkpoints WHERE tree_size <= ?1 ORDER BY tree_size")
                .map_err(&err)?;
            let mut rows = records.query([size as i64]).map_err(&err)?;
            let mut cp_rows = cps.query([size as i64]).map_err(&err)?;
            let mut next_cp: Option<(u64, String)> = next_checkpoint(&mut cp_rows, &err)?;
            let mut prior = Hash::ZERO;
            let mut count = 0u64;
            let mut write_cps_up_to = |n: u64,
                                       next_cp: &mut Option<(u64, String)>,
                                       out: &mut dyn Write|
             -> Result<(), LedgerError> {
                while let Some((cs, body)) = next_cp.take() {
                    if cs > n {
                        *next_cp = Some((cs, body));
                        break;
                    }
                    let cp = t.parse_checkpoint(&body)?;
                    let mut l = serde_json::to_string(&crate::export::Line::Checkpoint(cp))
                        .expect("a checkpoint serializes");
                    l.push('\n');
                    out.write_all(l.as_bytes()).map_err(io)?;
                    *next_cp = next_checkpoint(&mut cp_rows, &err)?;
                }
                Ok(())
            };
            while let Some(row) = rows.next().map_err(&err)? {
                let idx: i64 = row.get(0).map_err(&err)?;
                let body: String = row.get(1).map_err(&err)?;
                let rh: Vec<u8> = row.get(2).map_err(&err)?;
                let rh = Hash::from_slice(&rh).map_err(|e| LedgerError::Inconsistent {
                    path: t.path.to_owned(),
                    detail: format!("record {idx}: {e}"),
                })?;
                let mut l = record_line(&body, &prior, &rh);
                l.push('\n');
                out.write_all(l.as_bytes()).map_err(io)?;
                prior = rh;
                count += 1;
                write_cps_up_to(idx as u64 + 1, &mut next_cp, out)?;
            }
            write_cps_up_to(size, &mut next_cp, out)?;
            out.flush().map_err(io)?;
            Ok(count)
        })
    }
}

fn next_checkpoint(
    rows: &mut rusqlite::Rows<'_>,
    err: &impl Fn(rusqlite::Error) -> LedgerError,
) -> Result<Option<(u64, String)>, LedgerError> {
    match rows.next().map_err(err)? {
        Some(r) => Ok(Some((
            r.get::<_, i64>(0).map_err(err)? as u64,
            r.get(1).map_err(err)?,
        ))),
        None => Ok(None),
    }
}
