//! The single writer and its group commit.
//!
//! Appends from any number of tasks queue on one channel. With SQLite each is given its place
//! and hashes as it is queued ([`Placer`]), so its caller knows them at once. A dedicated
//! thread takes everything queued (up to `batch_max`), writes it in one SQLite transaction with
//! one signed checkpoint, waits for the commit to be durable, and only then hands each caller
//! its receipt. While one
//! batch is being synced the next one accumulates, so the cost of an fsync is shared by every
//! append that arrived during it.
//!
//! The fsync does not stall the writer: SQLite commits with `synchronous=NORMAL` (write-ahead
//! log written, not yet synced) and a second thread, the syncer, fsyncs the log and only then
//! releases the receipts of every batch committed before the fsync began. The next batch is
//! written while the previous one is being synced, and one fsync can cover several batches.
//! A receipt is still never handed out before its record is on stable storage; a crash loses
//! at most batches nobody holds a receipt for, and SQLite's WAL checksums discard a torn tail.
//!
//! Receipts are proved against the batch's own checkpoint without reading the store: every
//! node such a proof needs is either new in this batch or part of the frontier from before it.
//! Each appender builds its own proof from those shared nodes, on its own task, so the writer
//! thread (the bottleneck under load) does not.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use rusqlite::{params, Connection};
use tokio::sync::{mpsc, oneshot};

use crate::checkpoint::Checkpoint;
use crate::error::LedgerError;
use crate::hash::{chain_hash, leaf_hash, Hash};
use crate::merkle::{self, Frontier, NodeId, NodeSource};
use crate::receipt::Receipt;
use crate::record::{format_timestamp, now_ms, PreparedEntry, Record};

// Nearly every message is an append: boxing it would cost an allocation per record to make
// the rare shutdown message smaller.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Request {
    Append(Queued),
    /// Commit what is queued, then stop.
    Shutdown,
}

pub(crate) type Reply = oneshot::Sender<Result<Settled, LedgerError>>;

/// Told the record's place and hash as soon as its batch is committed, before the fsync.
pub(crate) type SeqReply = oneshot::Sender<crate::Sequenced>;

/// One queued append and whoever waits for it.
pub(crate) struct Queued {
    pub entry: PreparedEntry,
    pub reply: Reply,
    pub seq: Option<SeqReply>,
    /// Its fsync may wait for the sync window (see [`crate::Ledger::enqueue_lazy`]).
    pub lazy: bool,
    /// Its place and hash, given when it was queued (SQLite); `None` when the writer places
    /// it (PostgreSQL, where only the database lock knows the chain's end).
    pub placed: Option<Placed>,
}

/// A record's place, time and hashes, fixed when it is queued so that its caller knows them at
/// once (see [`Placer`]).
pub(crate) struct Placed {
    pub index: u64,
    pub timestamp: String,
    pub canonical: String,
    pub leaf: Hash,
    pub record_hash: Hash,
    pub prior: Hash,
}

/// The end of the chain as queued so far: hands each append its place and hash as it is
/// queued, under one lock with the send, so the queue's order is the chain's order. A caller
/// that answers before its record is written (`ledger.durability: batched`) then waits for
/// nothing, and the writer may space its commits out without making anyone wait. When a batch
/// fails, the writer takes the placer back to the last committed record and fails everything
/// queued after it.
pub(crate) struct Placer {
    next: u64,
    head: Hash,
    last_ts: i64,
}

impl Placer {
    pub(crate) fn new(tip: &Tip) -> Placer {
        let mut p = Placer {
            next: 0,
            head: Hash::ZERO,
            last_ts: 0,
        };
        p.reset(tip);
        p
    }

    /// Back to the last committed record.
    pub(crate) fn reset(&mut self, tip: &Tip) {
        self.next = tip.frontier.size();
        self.head = tip.head;
        self.last_ts = self.last_ts.max(tip.last_ts);
    }

    pub(crate) fn place(&mut self, entry: &PreparedEntry) -> Placed {
        let ts = now_ms().max(self.last_ts);
        let timestamp = format_timestamp(ts);
        let index = self.next;
        let canonical = entry.canonical(index, &crate::record::json_string(&timestamp));
        let leaf = leaf_hash(canonical.as_bytes());
        let record_hash = chain_hash(&self.head, canonical.as_bytes());
        let prior = self.head;
        self.next += 1;
        self.head = record_hash;
        self.last_ts = ts;
        Placed {
            index,
            timestamp,
            canonical,
            leaf,
            record_hash,
            prior,
        }
    }
}

/// A committed batch on its way to the syncer.
pub(crate) struct ToSync {
    /// Whether any of its appends is not lazy: then the fsync starts at once.
    urgent: bool,
    receipts: Vec<(Reply, Settled)>,
}

pub(crate) struct Writer {
    pub conn: Connection,
    /// The write-ahead log the syncer makes durable.
    pub wal: PathBuf,
    pub path: PathBuf,
    pub key: SigningKey,
    pub origin: String,
    pub tip: Tip,
    pub batch_max: usize,
    pub batch_wait: Duration,
    /// The shortest time between the starts of two commits, in µs (see
    /// [`crate::Ledger::set_commit_interval`]).
    pub commit_interval: std::sync::Arc<std::sync::atomic::AtomicU64>,
    pub sync_tx: Option<std::sync::mpsc::Sender<ToSync>>,
    /// How long the syncer may hold a batch of lazy appends, in µs (see
    /// [`crate::Ledger::set_sync_window`]).
    pub sync_window: std::sync::Arc<std::sync::atomic::AtomicU64>,
    pub unsynced: std::sync::Arc<Unsynced>,
    pub bell: std::sync::Arc<Doorbell>,
    pub placer: std::sync::Arc<std::sync::Mutex<Placer>>,
}

/// Whether anyone waits for this batch to be durable.
fn urgent(batch: &[Queued]) -> bool {
    batch.iter().any(|q| !q.lazy)
}

/// The longest the writer waits for the appenders of its last batch to come back.
const STRAGGLERS: Duration = Duration::from_micros(250);

/// Moves queued requests into `batch` (up to `max`); true when a shutdown was among them.
pub(crate) fn drain(rx: &mut mpsc::Receiver<Request>, batch: &mut Vec<Queued>, max: usize) -> bool {
    let mut stopping = false;
    while batch.len() < max {
        match rx.try_recv() {
            Ok(Request::Append(q)) => batch.push(q),
            Ok(Request::Shutdown) => {
                rx.close();
                stopping = true;
            }
            Err(_) => break,
        }
    }
    stopping
}

/// After a shutdown, with what was queued taken: whether the queue is done, else moves the next
/// request into `batch`. An appender that reserved its place before the queue closed may still
/// be sending (a tokio permit outlives `close`), so an empty queue is waited on; it is done only
/// once closed with no permit out. Stopping at the first empty look instead left such an
/// appender's request, and the reply it waits for, in a queue nobody read: its `append` never
/// returned while the ledger lived.
pub(crate) fn closed_and_done(rx: &mut mpsc::Receiver<Request>, batch: &mut Vec<Queued>) -> bool {
    if !rx.is_empty() {
        return false;
    }
    match rx.blocking_recv() {
        Some(Request::Append(q)) => {
            batch.push(q);
            false
        }
        Some(Request::Shutdown) => false,
        None => true,
    }
}

/// Waits for the first request of the next batch, then `batch_wait`. Returns whether it was a
/// shutdown, or `None` once every sender is gone.
pub(crate) fn first(
    rx: &mut mpsc::Receiver<Request>,
    batch: &mut Vec<Queued>,
    batch_wait: Duration,
) -> Option<bool> {
    let stopping = match rx.blocking_recv()? {
        Request::Append(q) => {
            batch.push(q);
            false
        }
        Request::Shutdown => {
            rx.close();
            true
        }
    };
    if !batch_wait.is_zero() && !stopping {
        std::thread::sleep(batch_wait);
    }
    Some(stopping)
}

/// The longest the writer sleeps while a sync runs before it looks again (it is woken when the
/// sync ends or its batch fills; this only bounds a missed wake-up).
const SYNC_WAIT_MAX: Duration = Duration::from_millis(5);

/// How fast the estimate of active appenders forgets a burst (per batch).
const PEAK_DECAY: f64 = 0.98;

/// The estimate of active appenders from which commits are paced (see `Writer::pace`).
const PACE_PEAK: f64 = 1.5;

/// The share of the recent peak at which a paced batch counts as full.
const PACE_FULL: f64 = 0.9;

/// Batches with an append that is not lazy, committed but not yet synced, shared by the writer
/// and the syncer: an fsync for them is under way or about to start. (Lazy batches waiting for
/// the sync window are not counted: nothing is about to sync them.)
#[derive(Default)]
pub(crate) struct Unsynced {
    count: std::sync::Mutex<usize>,
    /// Rung when the last unsynced batch is synced.
    bell: std::sync::Arc<Doorbell>,
}

impl Unsynced {
    pub(crate) fn new(bell: std::sync::Arc<Doorbell>) -> Unsynced {
        Unsynced {
            count: Default::default(),
            bell,
        }
    }

    fn add(&self) {
        *self.count.lock().expect("not poisoned") += 1;
    }

    fn done(&self, batches: usize) {
        if batches == 0 {
            return;
        }
        let mut c = self.count.lock().expect("not poisoned");
        *c = c.saturating_sub(batches);
        if *c == 0 {
            drop(c);
            self.bell.ring();
        }
    }

    fn is_syncing(&self) -> bool {
        *self.count.lock().expect("not poisoned") > 0
    }
}

/// Wakes the writer when the appends it waits for have been queued, or a sync has ended, so
/// that a writer holding a batch sleeps until then rather than polling the queue: each poll
/// woke a thread that, on a proxy pinned to one core, preempted the request path (about ten
/// wake-ups per batch at the default commit interval).
pub(crate) struct Doorbell {
    /// Appends queued since the ledger opened, counted once each is in the queue.
    sent: AtomicU64,
    /// Ring when `sent` reaches this; `u64::MAX` while the writer waits for no appends.
    ring_at: AtomicU64,
    /// Ring at any append that someone waits for: the writer holds a batch of lazy ones.
    ring_urgent: std::sync::atomic::AtomicBool,
    writer: std::sync::OnceLock<std::thread::Thread>,
}

impl Default for Doorbell {
    fn default() -> Doorbell {
        Doorbell {
            sent: AtomicU64::new(0),
            ring_at: AtomicU64::new(u64::MAX),
            ring_urgent: Default::default(),
            writer: std::sync::OnceLock::new(),
        }
    }
}

impl Doorbell {
    /// Counts one append that is now in the queue; `urgent` when someone waits for it.
    pub(crate) fn queued(&self, urgent: bool) {
        let sent = self.sent.fetch_add(1, Ordering::SeqCst) + 1;
        if sent >= self.ring_at.load(Ordering::SeqCst)
            || (urgent && self.ring_urgent.load(Ordering::SeqCst))
        {
            self.ring();
        }
    }

    /// Wakes the writer if it sleeps (a shutdown, an ended sync); harmless if it does not.
    pub(crate) fn ring(&self) {
        if let Some(t) = self.writer.get() {
            t.unpark();
        }
    }

    /// Sleeps until `total` appends have been queued since the ledger opened (or, with
    /// `urgent`, one that someone waits for), the bell rings, or `until`. May return early;
    /// callers look again.
    fn wait(&self, total: u64, until: Instant, urgent: bool) {
        self.ring_at.store(total, Ordering::SeqCst);
        self.ring_urgent.store(urgent, Ordering::SeqCst);
        if self.sent.load(Ordering::SeqCst) < total {
            let now = Instant::now();
            if now < until {
                std::thread::park_timeout(until - now);
            }
        }
        self.ring_at.store(u64::MAX, Ordering::SeqCst);
        self.ring_urgent.store(false, Ordering::SeqCst);
    }
}

/// Everything a receipt of this batch can need: its checkpoint, the nodes completed in the
/// batch and the frontier that preceded it. Shared by the batch's appenders, each of which
/// builds its own proof from it on its own task, off the writer's thread.
pub(crate) struct BatchNodes {
    checkpoint: Checkpoint,
    new: HashMap<NodeId, Hash>,
    before: HashMap<NodeId, Hash>,
}

/// A durable record, before its proof is built.
pub(crate) struct Settled {
    record: Record,
    prior: Hash,
    record_hash: Hash,
    batch: std::sync::Arc<BatchNodes>,
}

impl Settled {
    pub(crate) fn into_receipt(self) -> Receipt {
        let size = self.batch.checkpoint.tree_size;
        let inclusion_proof = match merkle::inclusion_proof(&*self.batch, self.record.index, size) {
            Ok(Ok(proof)) => proof,
            Ok(Err(e)) => unreachable!("an appended index is in its tree: {e}"),
            Err(never) => match never {},
        };
        Receipt {
            index: self.record.index,
            record_hash: self.record_hash,
            prior_hash: self.prior,
            record: self.record,
            checkpoint: self.batch.checkpoint.clone(),
            inclusion_proof,
        }
    }
}

impl NodeSource for BatchNodes {
    type Error = std::convert::Infallible;
    fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, Self::Error> {
        Ok(ids
            .iter()
            .map(|id| {
                *self
                    .new
                    .get(id)
                    .or_else(|| self.before.get(id))
                    .expect("a receipt proof only needs new or frontier nodes")
            })
            .collect())
    }
}

pub(crate) struct Pending {
    record: Record,
    prior: Hash,
    record_hash: Hash,
    reply: Reply,
    seq: Option<SeqReply>,
}

impl Writer {
    pub fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        let (sync_tx, sync_rx) = std::sync::mpsc::channel::<ToSync>();
        let wal = self.wal.clone();
        let unsynced = self.unsynced.clone();
        let window = self.sync_window.clone();
        let syncer = std::thread::Builder::new()
            .name("ledger-syncer".into())
            .spawn(move || sync_loop(&wal, sync_rx, &unsynced, &window))
            .expect("the syncer thread starts");
        self.sync_tx = Some(sync_tx);
        let _ = self.bell.writer.set(std::thread::current());
        let mut batch = Vec::with_capacity(self.batch_max);
        let mut stopping = false;
        // Appends taken into committed (or failed) batches: with the batch in hand, how many
        // the writer has received, which the doorbell compares with how many were queued.
        let mut taken = 0u64;
        let mut last_batch = 0usize;
        let mut last_commit: Option<std::time::Instant> = None;
        // Recent largest batch, decaying: how many appenders are active.
        let mut peak = 1.0f64;
        while !stopping {
            let Some(stop) = first(&mut rx, &mut batch, self.batch_wait) else {
                break;
            };
            stopping = stop;
            // Paced only while batches hold more than one record: a lone appender that waits
            // for each receipt before the next append would only be slowed down. Lazy appends
            // wait for nothing, so a batch of them is always paced.
            if !stopping && (peak >= PACE_PEAK || !urgent(&batch)) {
                stopping = self.pace(&mut rx, &mut batch, last_commit, peak, taken);
            }
            // Gather, but only while it is free: a batch is committed as soon as it holds half
            // of the recent peak (so under load one batch is written while the previous one
            // is being synced); short of that, the writer waits while a sync runs if the batch
            // needs one (a batch committed then would wait for the next sync anyway; a batch
            // of lazy appends wants only its place, so it does not wait), then briefly for the
            // appenders of its last batch to come back. A lone appender never waits.
            let target = (peak as usize / 2).clamp(1, self.batch_max);
            let mut stragglers_until = None;
            while !stopping {
                stopping |= drain(&mut rx, &mut batch, self.batch_max);
                if stopping || batch.len() >= target || !urgent(&batch) {
                    break;
                }
                let want = taken + target as u64;
                if self.unsynced.is_syncing() {
                    self.bell.wait(want, Instant::now() + SYNC_WAIT_MAX, false);
                    continue;
                }
                if last_batch <= 1 {
                    break;
                }
                let until = *stragglers_until.get_or_insert_with(|| Instant::now() + STRAGGLERS);
                if Instant::now() >= until {
                    break;
                }
                self.bell.wait(want, until, false);
            }
            // Take what is queued; on shutdown, everything that was queued before it.
            loop {
                stopping |= drain(&mut rx, &mut batch, self.batch_max);
                if !batch.is_empty() {
                    last_batch = batch.len();
                    taken += last_batch as u64;
                    peak = (peak * PEAK_DECAY).max(last_batch as f64);
                    last_commit = Some(Instant::now());
                    stopping |= self.commit(&mut batch, &mut rx);
                }
                if !stopping || closed_and_done(&mut rx, &mut batch) {
                    break;
                }
            }
        }
        // The syncer releases what is left, then stops.
        self.sync_tx = None;
        let _ = syncer.join();
        tracing::debug!(size = self.tip.frontier.size(), "ledger writer stopped");
    }

    /// Holds the batch until `commit_interval` has passed since the last commit began, then
    /// takes what queued meanwhile; true when a shutdown was among it. A commit costs about the
    /// same for one record as for a hundred (a transaction, a signed checkpoint, an fsync), so
    /// under load this turns many small batches into a few large ones. After a quiet spell the
    /// interval has long passed and nothing waits. Nor does a batch that already holds about as
    /// many records as the recent peak: appenders that each wait for their receipt before the
    /// next append are then all in it, and waiting longer would only slow them down.
    ///
    /// A batch of lazy appends only (placed when queued, fsynced within the sync window) waits
    /// for nobody, so it is held for half the sync window instead (the syncer may hold it for
    /// the other half), unless that is shorter, or until it is full or an append that someone
    /// waits for arrives.
    fn pace(
        &self,
        rx: &mut mpsc::Receiver<Request>,
        batch: &mut Vec<Queued>,
        last_commit: Option<Instant>,
        peak: f64,
        taken: u64,
    ) -> bool {
        let interval = Duration::from_micros(self.commit_interval.load(Ordering::Relaxed));
        let lazy_interval =
            interval.max(Duration::from_micros(self.sync_window.load(Ordering::Relaxed)) / 2);
        let Some(last) = last_commit else {
            return false;
        };
        // Nearly the peak: one late appender does not hold the rest.
        let full = ((peak * PACE_FULL).ceil() as usize).clamp(1, self.batch_max);
        loop {
            if drain(rx, batch, self.batch_max) {
                return true;
            }
            let urgent = urgent(batch);
            let (due, full) = if urgent {
                (last + interval, full)
            } else {
                (last + lazy_interval, self.batch_max)
            };
            if Instant::now() >= due || batch.len() >= full {
                return false;
            }
            self.bell.wait(taken + full as u64, due, !urgent);
        }
    }

    /// Commits the batch; true when a shutdown was seen while failing what was queued after
    /// a failed batch.
    fn commit(&mut self, batch: &mut Vec<Queued>, rx: &mut mpsc::Receiver<Request>) -> bool {
        let urgent = urgent(batch);
        let before: HashMap<NodeId, Hash> = self.tip.frontier.nodes().collect();
        let saved = self.tip.clone();
        let mut new = HashMap::with_capacity(batch.len() * 2);
        let mut pending = Vec::with_capacity(batch.len());
        let started = std::time::Instant::now();
        let result = self.write_batch(batch, &mut new, &mut pending);
        metrics::histogram!("warden_ledger_batch_commit_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        if result.is_ok() {
            metrics::counter!("warden_ledger_records_appended_total")
                .increment(pending.len() as u64);
        }
        match result {
            Ok(checkpoint) => {
                let receipts = settle(pending, checkpoint, new, before);
                if let Some(tx) = &self.sync_tx {
                    if urgent {
                        self.unsynced.add();
                    }
                    if tx.send(ToSync { urgent, receipts }).is_err() && urgent {
                        self.unsynced.done(1);
                    }
                }
            }
            Err(e) => {
                self.tip = saved;
                fail(pending, batch, &e);
                // Everything queued since was placed after the failed records: back to the
                // last committed one, and fail the rest, under the placer's lock so that
                // nothing is placed on the lost records meanwhile.
                let mut placer = self.placer.lock().expect("not poisoned");
                placer.reset(&self.tip);
                let stopping = drain(rx, batch, usize::MAX);
                fail(Vec::new(), batch, &e);
                return stopping;
            }
        }
        false
    }

    fn write_batch(
        &mut self,
        batch: &mut Vec<Queued>,
        new: &mut HashMap<NodeId, Hash>,
        pending: &mut Vec<Pending>,
    ) -> Result<Checkpoint, LedgerError> {
        let err = LedgerError::store(&self.path);
        let ts = self.tip.next_timestamp();
        let tx = self.conn.transaction().map_err(&err)?;
        {
            let mut ins_record = tx
                .prepare_cached(
                    "INSERT INTO records (idx, record_hash, leaf_hash, nodes, body) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(&err)?;
            self.tip.sequence(batch, ts, new, pending, |row| {
                ins_record
                    .execute(params![
                        row.index as i64,
                        &row.record_hash.0[..],
                        &row.leaf.0[..],
                        row.completed,
                        row.canonical
                    ])
                    .map(drop)
                    .map_err(&err)
            })?;
        }
        let checkpoint = self.tip.sign(&self.key, &self.origin, ts);
        let body = serde_json::to_string(&checkpoint).expect("a checkpoint serializes");
        tx.prepare_cached("INSERT INTO checkpoints (tree_size, body) VALUES (?1, ?2)")
            .and_then(|mut st| st.execute(params![checkpoint.tree_size as i64, body]))
            .map_err(&err)?;
        tx.commit().map_err(&err)?;
        self.tip.last_ts = ts;
        Ok(checkpoint)
    }
}

/// The end of the chain as this process knows it: enough to sequence the next batch.
#[derive(Clone, Debug)]
pub(crate) struct Tip {
    pub frontier: Frontier,
    /// The last record hash.
    pub head: Hash,
    /// The last checkpoint's time, in ms: timestamps never go backwards, even if a clock does.
    pub last_ts: i64,
}

/// One record of a batch, as a store writes it.
pub(crate) struct Row<'a> {
    pub index: u64,
    pub record_hash: &'a Hash,
    pub leaf: &'a Hash,
    /// The interior nodes its leaf completed, 32 bytes each, lowest first.
    pub completed: &'a [u8],
    pub canonical: &'a str,
}

impl Tip {
    pub(crate) fn next_timestamp(&self) -> i64 {
        now_ms().max(self.last_ts)
    }

    /// Gives each queued entry its index, time and hashes, handing each row to `write` and
    /// noting every node the batch completes in `new`.
    pub(crate) fn sequence(
        &mut self,
        batch: &mut Vec<Queued>,
        ts: i64,
        new: &mut HashMap<NodeId, Hash>,
        pending: &mut Vec<Pending>,
        mut write: impl FnMut(Row<'_>) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError> {
        let timestamp = format_timestamp(ts);
        let timestamp_json = crate::record::json_string(&timestamp);
        let mut completed = Vec::with_capacity(32 * 8);
        for Queued {
            entry,
            reply,
            seq,
            placed,
            ..
        } in batch.drain(..)
        {
            let index = self.frontier.size();
            let (canonical, leaf, record_hash, timestamp) = match placed {
                Some(p) => {
                    // Placed on this very tip: the queue's order is the placer's.
                    assert_eq!(
                        (p.index, p.prior),
                        (index, self.head),
                        "a placed record follows the committed tip"
                    );
                    (p.canonical, p.leaf, p.record_hash, p.timestamp)
                }
                None => {
                    let canonical = entry.canonical(index, &timestamp_json);
                    let leaf = leaf_hash(canonical.as_bytes());
                    let record_hash = chain_hash(&self.head, canonical.as_bytes());
                    (canonical, leaf, record_hash, timestamp.clone())
                }
            };
            new.insert(NodeId::new(0, index), leaf);
            completed.clear();
            self.frontier.push(leaf, |id, h| {
                new.insert(id, h);
                completed.extend_from_slice(&h.0);
            });
            let e = entry.entry;
            pending.push(Pending {
                record: Record {
                    index,
                    timestamp,
                    kind: e.kind,
                    tenant: e.tenant,
                    payload: e.payload,
                },
                prior: self.head,
                record_hash,
                reply,
                seq,
            });
            self.head = record_hash;
            write(Row {
                index,
                record_hash: &record_hash,
                leaf: &leaf,
                completed: &completed,
                canonical: &canonical,
            })?;
        }
        Ok(())
    }

    /// The checkpoint of the tree as it now stands.
    pub(crate) fn sign(&self, key: &SigningKey, origin: &str, ts: i64) -> Checkpoint {
        Checkpoint::sign(
            key,
            origin,
            self.frontier.size(),
            self.frontier.root(),
            self.head,
            format_timestamp(ts),
        )
    }
}

/// Tells each appender of a committed batch its place, and readies its receipt.
pub(crate) fn settle(
    pending: Vec<Pending>,
    checkpoint: Checkpoint,
    new: HashMap<NodeId, Hash>,
    before: HashMap<NodeId, Hash>,
) -> Vec<(Reply, Settled)> {
    let shared = std::sync::Arc::new(BatchNodes {
        checkpoint,
        new,
        before,
    });
    pending
        .into_iter()
        .map(|p| {
            if let Some(seq) = p.seq {
                let _ = seq.send(crate::Sequenced {
                    index: p.record.index,
                    record_hash: p.record_hash,
                });
            }
            let settled = Settled {
                record: p.record,
                prior: p.prior,
                record_hash: p.record_hash,
                batch: shared.clone(),
            };
            (p.reply, settled)
        })
        .collect()
}

/// Tells every appender of a failed batch why; nothing of it was written.
pub(crate) fn fail(pending: Vec<Pending>, batch: &mut Vec<Queued>, e: &LedgerError) {
    tracing::error!(error = %e, "ledger batch failed; nothing of it was written");
    let msg = e.to_string();
    for p in pending {
        let _ = p.reply.send(Err(LedgerError::Append(msg.clone())));
    }
    for q in batch.drain(..) {
        let _ = q.reply.send(Err(LedgerError::Append(msg.clone())));
    }
}

/// Makes committed batches durable and hands out their receipts. It also moves the log's
/// content into the database file (a WAL checkpoint) from time to time, work SQLite would
/// otherwise do on the writer's thread in the middle of a commit.
///
/// A batch that holds only lazy appends is not synced at once: the syncer gathers what is
/// committed within half the sync window after it (the writer may have held it for the other
/// half), so one fsync covers them all (on a VM an fsync costs more CPU than the commit it
/// follows). An urgent batch, or the writer stopping, ends the wait.
fn sync_loop(
    wal: &std::path::Path,
    rx: std::sync::mpsc::Receiver<ToSync>,
    unsynced: &Unsynced,
    window: &AtomicU64,
) {
    let dir = wal.parent().map(std::path::Path::to_owned);
    let mut dir_synced = false;
    let db = wal.with_file_name(crate::store::DB_FILE);
    let checkpointer = rusqlite::Connection::open(&db)
        .map_err(|e| tracing::warn!(error = %e, "no WAL checkpointer; the log will grow"))
        .ok();
    let mut last_checkpoint = std::time::Instant::now();
    // Kept open between syncs (the writer's connection keeps the log file in place while it
    // runs); opened again after a failure.
    let mut log: Option<std::fs::File> = None;
    while let Ok(first) = rx.recv() {
        // Every batch queued now was committed before this fsync starts, so it covers them all.
        let mut ready = vec![first];
        while let Ok(more) = rx.try_recv() {
            ready.push(more);
        }
        if !ready.iter().any(|b| b.urgent) {
            let due = Instant::now() + Duration::from_micros(window.load(Ordering::Relaxed)) / 2;
            while let Some(left) = due.checked_duration_since(Instant::now()) {
                match rx.recv_timeout(left) {
                    Ok(more) => {
                        let urgent = more.urgent;
                        ready.push(more);
                        if urgent {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
            while let Ok(more) = rx.try_recv() {
                ready.push(more);
            }
        }
        let urgent = ready.iter().filter(|b| b.urgent).count();
        let ready: Vec<Vec<(Reply, Settled)>> = ready.into_iter().map(|b| b.receipts).collect();
        let started = std::time::Instant::now();
        let file = match log.take() {
            Some(f) => Ok(f),
            None => std::fs::File::open(wal),
        };
        let mut result = file.and_then(|f| {
            f.sync_data()?;
            log = Some(f);
            Ok(())
        });
        metrics::histogram!("warden_ledger_fsync_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        if result.is_ok() && !dir_synced {
            // The log file's directory entry must survive a crash too.
            if let Some(d) = &dir {
                result = std::fs::File::open(d).and_then(|f| f.sync_all());
            }
            dir_synced = result.is_ok();
        }
        match result {
            Ok(()) => {
                unsynced.done(urgent);
                for (reply, receipt) in ready.into_iter().flatten() {
                    let _ = reply.send(Ok(receipt));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, wal = %wal.display(), "fsync of the ledger log failed");
                unsynced.done(urgent);
                let msg = format!("fsync of {} failed: {e}", wal.display());
                for (reply, _) in ready.into_iter().flatten() {
                    let _ = reply.send(Err(LedgerError::Append(msg.clone())));
                }
                continue;
            }
        }
        if let Some(conn) = &checkpointer {
            if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
                // PASSIVE: copies what it can without waiting for, or blocking, anyone.
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
                }
                last_checkpoint = std::time::Instant::now();
            }
        }
    }
}

/// How often the syncer folds the log into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Entry;

    fn queued() -> (Queued, oneshot::Receiver<Result<Settled, LedgerError>>) {
        let (reply, rx) = oneshot::channel();
        let entry = Entry::new("k", "t", serde_json::json!({ "i": 1 }))
            .prepare()
            .unwrap();
        let q = Queued {
            entry,
            reply,
            seq: None,
            lazy: false,
            placed: None,
        };
        (q, rx)
    }

    /// A queue whose writer has taken the shutdown and everything queued before it, while one
    /// appender still holds a permit it reserved before.
    fn shut_down_with_a_permit_out() -> (
        mpsc::Sender<Request>,
        mpsc::Receiver<Request>,
        mpsc::OwnedPermit<Request>,
    ) {
        let (tx, mut rx) = mpsc::channel::<Request>(8);
        let permit = tx.clone().try_reserve_owned().unwrap();
        tx.try_send(Request::Shutdown).unwrap();
        let mut batch = Vec::new();
        assert!(
            drain(&mut rx, &mut batch, usize::MAX),
            "the shutdown is seen"
        );
        assert!(batch.is_empty() && rx.is_empty());
        (tx, rx, permit)
    }

    /// The shutdown race: an appender has reserved its place, the writer takes the shutdown and
    /// finds the queue empty, and only then does the appender send. Its request must still reach
    /// the writer, and the queue must count as done only after it.
    #[test]
    fn a_permit_taken_before_the_shutdown_is_waited_for() {
        let (tx, mut rx, permit) = shut_down_with_a_permit_out();
        let mut batch = Vec::new();
        let (q, _reply) = queued();
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            permit.send(Request::Append(q));
        });
        assert!(
            !closed_and_done(&mut rx, &mut batch),
            "an empty queue with a permit out is not done"
        );
        assert_eq!(batch.len(), 1, "the late append is taken");
        late.join().unwrap();
        assert!(
            closed_and_done(&mut rx, &mut batch),
            "closed, and no permit out"
        );
        assert_eq!(batch.len(), 1);
        // Nothing new gets in once it is closed.
        assert!(tx.try_reserve().is_err());
    }

    /// A permit given back unused also ends the wait.
    #[test]
    fn a_permit_dropped_unused_ends_the_wait() {
        let (_tx, mut rx, permit) = shut_down_with_a_permit_out();
        let mut batch = Vec::new();
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(permit);
        });
        assert!(closed_and_done(&mut rx, &mut batch));
        assert!(batch.is_empty());
        late.join().unwrap();
    }
}
