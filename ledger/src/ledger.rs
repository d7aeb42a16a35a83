//! The ledger handle: open, append, read, export, shut down.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
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
use crate::store::{self, Nodes, Source, Tables};
use crate::writer::{Doorbell, Placer, Queued, Request, Tip, Unsynced, Writer};

/// How to open a ledger for writing.
#[derive(Clone, Debug)]
pub struct LedgerOptions {
    /// Directory holding `ledger.db` (and its WAL) and the lock file; unused with `postgres`.
    pub dir: PathBuf,
    /// Keep the ledger in this PostgreSQL database instead, shared with other Warden processes
    /// (see the `pg` module for how many writers keep one chain).
    pub postgres: Option<Arc<warden_pg::Pg>>,
    /// PEM private key; created with its `.pub` on first start.
    pub signing_key: PathBuf,
    pub origin: String,
    pub batch_max: usize,
    pub batch_wait: Duration,
}

/// The writable ledger. With SQLite, one per data directory: opening takes an exclusive lock.
/// With PostgreSQL, any number of processes may append to one database.
pub struct Ledger {
    tx: mpsc::Sender<Request>,
    thread: Mutex<Option<JoinHandle<()>>>,
    reader: LedgerReader,
    verifying_key: VerifyingKey,
    key_created: bool,
    /// The writer's pause between commits, in µs (see [`Ledger::set_commit_interval`]).
    commit_interval: Arc<std::sync::atomic::AtomicU64>,
    /// How long lazy appends may wait for their fsync, in µs (see [`Ledger::set_sync_window`]).
    sync_window: Arc<std::sync::atomic::AtomicU64>,
    /// Places records as they are queued (SQLite); `None` where the writer places them.
    placer: Option<Arc<std::sync::Mutex<Placer>>>,
    /// Told of every append queued, to wake a writer that waits for them.
    bell: Arc<Doorbell>,
    _lock: Option<File>,
}

impl Ledger {
    /// Opens or creates the ledger, checks that the stored tree, chain and last checkpoint
    /// agree, and starts the writer thread.
    pub fn open(opts: LedgerOptions) -> Result<Ledger, LedgerError> {
        if let Some(pg) = &opts.postgres {
            return Ledger::open_postgres(pg.clone(), &opts);
        }
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
        let tip = recover(
            &Tables {
                conn: &conn,
                path: &path,
            },
            &Keyring::from_keys([key.verifying_key()]),
            false,
        )?;
        tracing::info!(records = tip.frontier.size(), path = %path.display(), "ledger opened");

        let commit_interval = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let sync_window = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let placer = Arc::new(std::sync::Mutex::new(Placer::new(&tip)));
        let bell = Arc::new(Doorbell::default());
        let writer = Writer {
            conn,
            commit_interval: commit_interval.clone(),
            sync_window: sync_window.clone(),
            placer: placer.clone(),
            wal: opts.dir.join(format!("{}-wal", store::DB_FILE)),
            sync_tx: None,
            unsynced: Arc::new(Unsynced::new(bell.clone())),
            bell: bell.clone(),
            path,
            key: key.clone(),
            origin: opts.origin.clone(),
            tip,
            batch_max: opts.batch_max.max(1),
            batch_wait: opts.batch_wait,
        };
        let reader = LedgerReader::open(&opts.dir)?;
        let mut ledger = Ledger::start(
            &opts,
            move |rx| writer.run(rx),
            reader,
            &key,
            key_created,
            Some(lock),
        )?;
        ledger.commit_interval = commit_interval;
        ledger.sync_window = sync_window;
        ledger.placer = Some(placer);
        ledger.bell = bell;
        Ok(ledger)
    }

    fn open_postgres(pg: Arc<warden_pg::Pg>, opts: &LedgerOptions) -> Result<Ledger, LedgerError> {
        let (key, key_created) = load_or_create_signing_key(&opts.signing_key)?;
        crate::pg::migrate(&pg, &opts.origin)?;
        let reader = LedgerReader::postgres(pg.clone())?;
        let tip = reader.with(|t| recover(t, &Keyring::from_keys([key.verifying_key()]), true))?;
        tracing::info!(records = tip.frontier.size(), store = %pg.target(), "ledger opened in PostgreSQL");
        let writer = crate::pg::PgWriter {
            pg,
            key: key.clone(),
            origin: opts.origin.clone(),
            tip,
            batch_max: opts.batch_max.max(1),
            batch_wait: opts.batch_wait,
        };
        Ledger::start(
            opts,
            move |rx| writer.run(rx),
            reader,
            &key,
            key_created,
            None,
        )
    }

    /// Starts the writer thread running `run` over the append queue.
    fn start(
        opts: &LedgerOptions,
        run: impl FnOnce(mpsc::Receiver<Request>) + Send + 'static,
        reader: LedgerReader,
        key: &ed25519_dalek::SigningKey,
        key_created: bool,
        lock: Option<File>,
    ) -> Result<Ledger, LedgerError> {
        let (tx, rx) = mpsc::channel(opts.batch_max.max(1) * 4);
        let thread = std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || run(rx))
            .map_err(|source| LedgerError::Io {
                path: opts.dir.clone(),
                source,
            })?;
        Ok(Ledger {
            tx,
            thread: Mutex::new(Some(thread)),
            reader,
            verifying_key: key.verifying_key(),
            key_created,
            commit_interval: Default::default(),
            sync_window: Default::default(),
            placer: None,
            bell: Default::default(),
            _lock: lock,
        })
    }

    /// Appends one entry; resolves once the batch holding it is durable.
    pub async fn append(&self, entry: Entry) -> Result<Receipt, LedgerError> {
        let started = std::time::Instant::now();
        let prepared = entry.prepare()?;
        let (reply, rx) = oneshot::channel();
        let permit = self.tx.reserve().await.map_err(|_| LedgerError::Closed)?;
        let queued = Queued {
            entry: prepared,
            reply,
            seq: None,
            lazy: false,
            placed: None,
        };
        place_and_send(self.placer.as_deref(), queued, |r| permit.send(r));
        self.bell.queued(true);
        let receipt = rx
            .await
            .map_err(|_| LedgerError::Closed)?
            .map(|settled| settled.into_receipt());
        observe_append(Stage::Durable, started);
        receipt
    }

    /// Queues one entry and returns at once, so the caller can do other work (forward a request
    /// upstream, say) while the record is written and synced. [`Appending::sequenced`] resolves
    /// when the record has its index and hash: with SQLite at once (the record is placed as it
    /// is queued), with PostgreSQL once its batch is committed; [`Appending::durable`] when it
    /// is on stable storage, with its receipt.
    ///
    /// # Errors
    /// An invalid entry, or a ledger that has shut down.
    pub fn enqueue(&self, entry: Entry) -> Result<Appending, LedgerError> {
        self.enqueue_as(entry, false)
    }

    /// [`Ledger::enqueue`] for a caller that will not wait for the record to be durable (it
    /// answers once the record is sequenced: `ledger.durability: batched`). Its fsync may wait
    /// up to the sync window ([`Ledger::set_sync_window`]) so that one fsync covers every
    /// batch of that window; an append that is not lazy, or a shutdown, syncs them at once.
    /// [`Appending::durable`] still resolves, up to the window later. With SQLite a batch of
    /// lazy appends is also committed up to half the window later (their place is known at
    /// once), so a crash can lose the lazy records of the last window.
    ///
    /// # Errors
    /// As [`Ledger::enqueue`].
    pub fn enqueue_lazy(&self, entry: Entry) -> Result<Appending, LedgerError> {
        self.enqueue_as(entry, true)
    }

    fn enqueue_as(&self, entry: Entry, lazy: bool) -> Result<Appending, LedgerError> {
        let queued_at = std::time::Instant::now();
        let prepared = entry.prepare()?;
        let (reply, durable) = oneshot::channel();
        // Without a placer (PostgreSQL) the writer tells the place once it has committed it.
        let (seq, sequenced) = match self.placer {
            Some(_) => (None, None),
            None => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            }
        };
        let queued = Queued {
            entry: prepared,
            reply,
            seq,
            lazy,
            placed: None,
        };
        match self.tx.try_reserve() {
            Ok(permit) => {
                let seq_value = place_and_send(self.placer.as_deref(), queued, |r| permit.send(r));
                self.bell.queued(!lazy);
                if seq_value.is_some() {
                    observe_append(Stage::Sequenced, queued_at);
                }
                Ok(Appending {
                    sequenced,
                    seq_value,
                    durable,
                    queued_at,
                })
            }
            Err(mpsc::error::TrySendError::Closed(())) => Err(LedgerError::Closed),
            Err(mpsc::error::TrySendError::Full(())) => {
                // The queue is bounded to push back on runaway producers; this caller cannot
                // wait here, so a helper task waits for room instead, and places the record
                // once it has it.
                let (tx, bell, placer) = (self.tx.clone(), self.bell.clone(), self.placer.clone());
                let (tell, told) = oneshot::channel();
                tokio::spawn(async move {
                    let Ok(permit) = tx.reserve_owned().await else {
                        return;
                    };
                    let placed = place_and_send(placer.as_deref(), queued, |r| {
                        permit.send(r);
                    });
                    if let Some(s) = placed {
                        let _ = tell.send(s);
                    }
                    bell.queued(!lazy);
                });
                Ok(Appending {
                    sequenced: sequenced.or(Some(told)),
                    seq_value: None,
                    durable,
                    queued_at,
                })
            }
        }
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

    /// Sets the shortest time between the starts of two batch commits; zero (the default)
    /// commits as soon as the writer is free. A commit costs about the same for one record as
    /// for a hundred (a transaction, a signed checkpoint, an fsync), so under load a pause of a
    /// millisecond or two lets batches grow and saves most of that cost, at up to this much
    /// latency per append. Only while batches hold more than one record: a lone appender that
    /// waits for each receipt is not paced, a batch that already holds about as many records
    /// as the recent peak is committed at once (so appenders that each wait for their receipt
    /// are not slowed down), and after a quiet spell the next commit starts at once (unlike
    /// `batch_wait`). Takes effect from the next batch. SQLite only: a PostgreSQL
    /// ledger ignores it.
    pub fn set_commit_interval(&self, interval: Duration) {
        let us = u64::try_from(interval.as_micros()).unwrap_or(u64::MAX);
        self.commit_interval
            .store(us, std::sync::atomic::Ordering::Relaxed);
    }

    /// Sets how long the fsync of lazy appends ([`Ledger::enqueue_lazy`]) may wait so that
    /// later batches share it: what a machine crash can lose of them. Zero (the default)
    /// syncs every batch at once. Takes effect from the next fsync. SQLite only: a PostgreSQL
    /// commit is durable when it returns.
    pub fn set_sync_window(&self, window: Duration) {
        let us = u64::try_from(window.as_micros()).unwrap_or(u64::MAX);
        self.sync_window
            .store(us, std::sync::atomic::Ordering::Relaxed);
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
        self.bell.ring();
        if let Some(t) = self.thread.lock().expect("not poisoned").take() {
            let _ = t.join();
        }
    }

    /// [`Ledger::shutdown_blocking`] for async callers.
    pub async fn shutdown(&self) {
        let _ = self.tx.send(Request::Shutdown).await;
        self.bell.ring();
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
            self.bell.ring();
            let _ = t.join();
        }
    }
}

/// Sends `queued` with `send`; with a placer, gives it its place first, under the placer's lock,
/// so that the order of the queue is the order of the chain. Returns the place it gave.
fn place_and_send(
    placer: Option<&std::sync::Mutex<Placer>>,
    mut queued: Queued,
    send: impl FnOnce(Request),
) -> Option<Sequenced> {
    let Some(placer) = placer else {
        send(Request::Append(queued));
        return None;
    };
    let mut placer = placer.lock().expect("not poisoned");
    let placed = placer.place(&queued.entry);
    let place = Sequenced {
        index: placed.index,
        record_hash: placed.record_hash,
    };
    queued.placed = Some(placed);
    send(Request::Append(queued));
    Some(place)
}

/// Rebuilds the writer's state and checks it against the last checkpoint. With `shared`
/// (PostgreSQL), other processes may commit between the reads here, so the tip is the last
/// checkpoint and the store may already hold more records than it covers.
fn recover(t: &dyn Source, keys: &Keyring, shared: bool) -> Result<Tip, LedgerError> {
    let inconsistent = |detail: String| LedgerError::Inconsistent {
        path: t.location().to_owned(),
        detail,
    };
    // The checkpoint first: every record it covers is committed and settled.
    let last = t.checkpoint_at_most(u64::MAX)?;
    let stored = t.size()?;
    let Some(cp) = last else {
        if stored > 0 && !shared {
            return Err(inconsistent(format!("{stored} records but no checkpoint")));
        }
        return Ok(Tip {
            frontier: Frontier::new(),
            head: Hash::ZERO,
            last_ts: 0,
        });
    };
    let size = cp.tree_size;
    if stored < size || (stored > size && !shared) {
        return Err(inconsistent(format!(
            "{stored} records but the last checkpoint is at size {size}"
        )));
    }
    let frontier = Frontier::load(&Nodes(t), size)?;
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
    // A checkpoint signed by a retired key (or, in PostgreSQL, by another process's key) cannot
    // be checked here; it was checked when written.
    if keys.get(&cp.key_id).is_some() {
        cp.verify(keys)
            .map_err(|e| inconsistent(format!("last checkpoint: {e}")))?;
    }
    let last_ts = checkpoint_ms(&cp).map_err(inconsistent)?;
    Ok(Tip {
        frontier,
        head,
        last_ts,
    })
}

/// A checkpoint's time in ms since the epoch.
pub(crate) fn checkpoint_ms(cp: &Checkpoint) -> Result<i64, String> {
    time::OffsetDateTime::parse(
        &cp.timestamp,
        &time::format_description::well_known::Rfc3339,
    )
    .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
    .map_err(|e| format!("checkpoint {} timestamp: {e}", cp.tree_size))
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

/// How far an append has got, for `warden_ledger_append_duration_seconds`.
#[derive(Clone, Copy)]
enum Stage {
    /// Committed, not yet synced.
    Sequenced = 0,
    /// On stable storage.
    Durable = 1,
}

/// Records how long an append took to reach `stage`. Building the label and finding its series
/// in the recorder cost an allocation and a registry lookup per observation, four per proxied
/// call, so the two series' handles are fetched once. Processes that report metrics install
/// their recorder before they open the ledger.
fn observe_append(stage: Stage, since: std::time::Instant) {
    static SERIES: std::sync::OnceLock<[metrics::Histogram; 2]> = std::sync::OnceLock::new();
    let series = SERIES.get_or_init(|| {
        ["sequenced", "durable"].map(
            |stage| metrics::histogram!("warden_ledger_append_duration_seconds", "stage" => stage),
        )
    });
    series[stage as usize].record(since.elapsed().as_secs_f64());
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
                observe_append(Stage::Sequenced, self.queued_at);
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

    /// Waits as long as a caller's promise to its client needs (`ledger.durability`): until
    /// the record is on stable storage when `durable`, else until it has its place. Either way
    /// the place is what the caller attaches to its answer, so both paths return it; callers
    /// that need the receipt itself use [`Appending::durable`].
    ///
    /// # Errors
    /// As [`Appending::durable`] or [`Appending::sequenced`].
    pub async fn settle(mut self, durable: bool) -> Result<Sequenced, LedgerError> {
        if durable {
            self.durable().await.map(|r| Sequenced {
                index: r.index,
                record_hash: r.record_hash,
            })
        } else {
            self.sequenced().await
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
        observe_append(Stage::Durable, self.queued_at);
        receipt
    }
}

/// Read access to a ledger: proofs, receipts, checkpoints, export. Several may exist beside the
/// writer (SQLite WAL, or PostgreSQL), also in other processes.
pub struct LedgerReader {
    backend: ReadBackend,
    upper: Mutex<HashMap<NodeId, Hash>>,
}

enum ReadBackend {
    Sqlite {
        path: PathBuf,
        pool: Mutex<Vec<Connection>>,
    },
    Postgres(crate::pg::PgTables),
}

/// Nodes at this level and above (each covering 256 or more records) are kept in memory once
/// read. Complete nodes never change, so the cache needs no invalidation (not even when other
/// processes append to a shared PostgreSQL ledger); it holds one entry per 256 records at most
/// (about 160 KiB per million), and proofs then read about half as many rows from the store.
const CACHED_LEVEL: u8 = 8;
const CACHE_MAX: usize = 1 << 18;

/// Records and checkpoints read per query by an export.
const EXPORT_PAGE: u64 = 4096;

/// The store with the cache of upper nodes in front of it.
struct Cached<'a> {
    source: &'a dyn Source,
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
        let fetched = self.source.nodes(&missing)?;
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
    /// Opens the SQLite ledger in `dir` for reading.
    pub fn open(dir: &Path) -> Result<LedgerReader, LedgerError> {
        let conn = store::open_reader(dir)?;
        Ok(LedgerReader {
            backend: ReadBackend::Sqlite {
                path: store::db_path(dir),
                pool: Mutex::new(vec![conn]),
            },
            upper: Mutex::new(HashMap::new()),
        })
    }

    /// Opens the ledger kept in PostgreSQL for reading; [`LedgerError::NotFound`] if the
    /// database holds none.
    pub fn postgres(pg: Arc<warden_pg::Pg>) -> Result<LedgerReader, LedgerError> {
        Ok(LedgerReader {
            backend: ReadBackend::Postgres(crate::pg::PgTables::open(pg)?),
            upper: Mutex::new(HashMap::new()),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&dyn Source) -> Result<T, LedgerError>,
    ) -> Result<T, LedgerError> {
        match &self.backend {
            ReadBackend::Postgres(t) => f(t),
            ReadBackend::Sqlite { path, pool } => {
                let pooled = pool.lock().expect("not poisoned").pop();
                let conn = match pooled {
                    Some(c) => c,
                    None => store::open_reader(path.parent().unwrap_or(Path::new(".")))?,
                };
                let out = f(&Tables { conn: &conn, path });
                pool.lock().expect("not poisoned").push(conn);
                out
            }
        }
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
                    path: t.location().to_owned(),
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
                source: t,
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
                source: t,
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

    /// Writes the whole ledger up to its latest checkpoint; returns the number of records
    /// written. Everything below that checkpoint is settled (append-only, and committed with
    /// it), so the export reads it page by page, without holding a transaction open, while
    /// writers carry on.
    pub fn export(&self, out: &mut dyn Write) -> Result<u64, LedgerError> {
        self.with(|t| {
            let io = |e: std::io::Error| LedgerError::Io {
                path: PathBuf::from("<export output>"),
                source: e,
            };
            let size = t.checkpoint_at_most(u64::MAX)?.map_or(0, |c| c.tree_size);
            let header = Header {
                format: FORMAT.into(),
                origin: t.origin()?,
                tree_size: size,
            };
            let mut line = serde_json::to_string(&crate::export::Line::Header(header))
                .expect("a header serializes");
            line.push('\n');
            out.write_all(line.as_bytes()).map_err(io)?;

            let mut prior = Hash::ZERO;
            let mut count = 0u64;
            // Checkpoints not written yet (in order), and the largest size fetched so far.
            let mut cps: std::collections::VecDeque<(u64, String)> = Default::default();
            let mut cps_fetched = 0u64;
            let mut write_cps_up_to = |n: u64, out: &mut dyn Write| -> Result<(), LedgerError> {
                loop {
                    if cps.is_empty() && cps_fetched < n {
                        let page = t.checkpoints(cps_fetched, size, EXPORT_PAGE as usize)?;
                        cps_fetched = page.last().map_or(size, |(s, _)| *s);
                        cps.extend(page);
                    }
                    match cps.front() {
                        Some((s, _)) if *s <= n => {
                            let (_, body) = cps.pop_front().expect("not empty");
                            let cp = t.parse_checkpoint(&body)?;
                            let mut l = serde_json::to_string(&crate::export::Line::Checkpoint(cp))
                                .expect("a checkpoint serializes");
                            l.push('\n');
                            out.write_all(l.as_bytes()).map_err(io)?;
                        }
                        _ => return Ok(()),
                    }
                }
            };
            let mut from = 0u64;
            while from < size {
                let to = (from + EXPORT_PAGE).min(size);
                let page = t.records(from, to)?;
                if page.len() as u64 != to - from {
                    return Err(LedgerError::Inconsistent {
                        path: t.location().to_owned(),
                        detail: format!("records {from} to {} are not all stored", to - 1),
                    });
                }
                for (idx, body, rh) in page {
                    let mut l = record_line(&body, &prior, &rh);
                    l.push('\n');
                    out.write_all(l.as_bytes()).map_err(io)?;
                    prior = rh;
                    count += 1;
                    write_cps_up_to(idx + 1, out)?;
                }
                from = to;
            }
            write_cps_up_to(size, out)?;
            out.flush().map_err(io)?;
            Ok(count)
        })
    }
}
