//! The ledger in PostgreSQL: one chain and one tree for any number of Warden processes.
//!
//! **Design: serialized batch integration** (the shape of Trillian's sequencer, without a
//! separate sequencer process). Every Warden keeps its own queue and group commit; to
//! integrate a batch it opens a transaction and takes a transaction-scoped advisory lock
//! (`pg_advisory_xact_lock`, keyed by schema), reads the tip (the latest checkpoint: records and
//! their checkpoint are committed together, so its size and chain head are the tip), and, if
//! another process appended since its own last batch, reloads its Merkle frontier from the
//! stored nodes (one query for `O(log n)` rows). It then hashes the batch onto that tip,
//! inserts the rows in one statement, signs the checkpoint and commits, which releases the
//! lock. Receipts are handed out only after the commit returns, i.e. once PostgreSQL has made
//! the batch durable (`synchronous_commit`, on by default).
//!
//! Why this and not a sequencer lease: there is no leader to elect or fail over. A writer that
//! dies mid-batch (SIGKILL, lost network) dies inside its transaction; PostgreSQL rolls it back
//! and releases the lock when the connection drops, and the next writer carries on from the
//! last committed tip. No fork (one writer at a time extends the tip it read under the lock),
//! no gap or duplicate index (indexes follow the tip; the primary key refuses any other), and
//! no receipt for a record that is not committed. The cost: batches of different processes
//! are integrated one at a time, so throughput is bounded by one transaction's round trips;
//! each process's group commit keeps batches large under load.
//!
//! Checkpoints are signed by whichever process integrated the batch, with its own key (a
//! fleet usually shares one key through a Secret); `warden verify` accepts several keys.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use tokio::sync::mpsc;
use warden_pg::{Client, Pg, PgError};

use crate::checkpoint::Checkpoint;
use crate::error::LedgerError;
use crate::hash::Hash;
use crate::merkle::{Frontier, NodeId, NodeSource};
use crate::store::{node_in_row, node_row, Source, MIGRATIONS};
use crate::writer::{closed_and_done, drain, fail, first, settle, Pending, Queued, Request, Tip};

/// Serializes schema changes and batch integration of the ledger in the current schema.
const LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.warden_ledger'))";

/// Stands for the database in errors (`LedgerError` names a location as a path).
pub(crate) fn location(pg: &Pg) -> PathBuf {
    PathBuf::from(format!("postgres {}", pg.target()))
}

fn store_err(location: &Path) -> impl Fn(PgError) -> LedgerError + '_ {
    move |e| LedgerError::Store {
        path: location.to_owned(),
        message: e.to_string(),
    }
}

/// Creates or upgrades the ledger's tables and checks that they belong to this origin. Several
/// processes starting at once are serialized by the advisory lock.
pub(crate) fn migrate(pg: &Pg, origin: &str) -> Result<(), LedgerError> {
    let loc = location(pg);
    let configured = origin.to_owned();
    let origin = origin.to_owned();
    let found = pg
        .blocking(move |mut c| async move {
            let tx = c.transaction().await?;
            // The lock first: concurrent `CREATE TABLE IF NOT EXISTS` can still collide.
            tx.execute(LOCK, &[]).await?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            )
            .await?;
            tx.execute(
                "INSERT INTO ledger_meta (key, value) VALUES ('origin', $1), ('schema_version', '0')
                 ON CONFLICT (key) DO NOTHING",
                &[&origin],
            )
            .await?;
            let stored: String = tx
                .query_one("SELECT value FROM ledger_meta WHERE key = 'origin'", &[])
                .await?
                .get(0);
            if stored != origin {
                return Ok(Err(stored));
            }
            let version: String = tx
                .query_one(
                    "SELECT value FROM ledger_meta WHERE key = 'schema_version'",
                    &[],
                )
                .await?
                .get(0);
            let applied = version.parse::<usize>().unwrap_or(usize::MAX);
            if applied > MIGRATIONS.len() {
                return Ok(Err(format!("\u{0}schema version {version}")));
            }
            for (i, step) in MIGRATIONS.iter().enumerate().skip(applied) {
                tx.batch_execute(step.postgres).await?;
                tx.execute(
                    "UPDATE ledger_meta SET value = $1 WHERE key = 'schema_version'",
                    &[&(i + 1).to_string()],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(Ok(()))
        })
        .map_err(store_err(&loc))?;
    match found {
        Ok(()) => Ok(()),
        Err(v) if v.starts_with('\u{0}') => Err(LedgerError::Inconsistent {
            path: loc,
            detail: format!("unknown {}; this Warden is older", &v[1..]),
        }),
        Err(stored) => Err(LedgerError::Inconsistent {
            path: loc,
            detail: format!(
                "it was created with origin {stored:?}, but the configuration says {configured:?}"
            ),
        }),
    }
}

/// Read access to the ledger tables, one pooled round trip per call.
pub(crate) struct PgTables {
    pg: Arc<Pg>,
    location: PathBuf,
}

impl PgTables {
    /// Opens the ledger for reading; a database without one is [`LedgerError::NotFound`].
    pub(crate) fn open(pg: Arc<Pg>) -> Result<PgTables, LedgerError> {
        let location = location(&pg);
        let version: Option<String> = pg
            .blocking(|c| async move {
                let exists: bool = c
                    .query_one("SELECT to_regclass('ledger_meta') IS NOT NULL", &[])
                    .await?
                    .get(0);
                if !exists {
                    return Ok(None);
                }
                let row = c
                    .query_opt(
                        "SELECT value FROM ledger_meta WHERE key = 'schema_version'",
                        &[],
                    )
                    .await?;
                Ok(row.map(|r| r.get(0)))
            })
            .map_err(store_err(&location))?;
        match version {
            None => Err(LedgerError::NotFound(location)),
            Some(v) if v == MIGRATIONS.len().to_string() => Ok(PgTables { pg, location }),
            Some(v) => Err(LedgerError::Inconsistent {
                path: location,
                detail: format!(
                    "schema version {v}; this Warden expects {}",
                    MIGRATIONS.len()
                ),
            }),
        }
    }

    fn query<T, F, Fut>(&self, job: F) -> Result<T, LedgerError>
    where
        T: Send + 'static,
        F: FnOnce(Client) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T, PgError>> + Send + 'static,
    {
        self.pg.blocking(job).map_err(store_err(&self.location))
    }

    fn checkpoint_body(
        &self,
        sql: &'static str,
        arg: u64,
    ) -> Result<Option<Checkpoint>, LedgerError> {
        let arg = arg.min(i64::MAX as u64) as i64;
        let body: Option<String> =
            self.query(
                move |c| async move { Ok(c.query_opt(sql, &[&arg]).await?.map(|r| r.get(0))) },
            )?;
        body.map(|b| self.parse_checkpoint(&b)).transpose()
    }
}

impl Source for PgTables {
    fn location(&self) -> &Path {
        &self.location
    }

    fn size(&self) -> Result<u64, LedgerError> {
        let n: Option<i64> = self.query(|c| async move {
            Ok(c.query_one("SELECT max(idx) FROM ledger_records", &[])
                .await?
                .get(0))
        })?;
        Ok(n.map_or(0, |n| n as u64 + 1))
    }

    fn origin(&self) -> Result<String, LedgerError> {
        self.query(|c| async move {
            Ok(
                c.query_one("SELECT value FROM ledger_meta WHERE key = 'origin'", &[])
                    .await?
                    .get(0),
            )
        })
    }

    fn record(&self, index: u64) -> Result<Option<(String, Hash, Hash)>, LedgerError> {
        let rows = self.records(index.saturating_sub(1), index.saturating_add(1))?;
        let mut prior = Hash::ZERO;
        for (idx, body, rh) in rows {
            if idx == index {
                return Ok(Some((body, rh, prior)));
            }
            prior = rh;
        }
        Ok(None)
    }

    fn record_hash(&self, index: u64) -> Result<Hash, LedgerError> {
        match self.records(index, index.saturating_add(1))?.pop() {
            Some((_, _, rh)) => Ok(rh),
            None => Err(LedgerError::Inconsistent {
                path: self.location.clone(),
                detail: format!("record {index} is missing"),
            }),
        }
    }

    fn checkpoint(&self, tree_size: u64) -> Result<Option<Checkpoint>, LedgerError> {
        self.checkpoint_body(
            "SELECT body FROM ledger_checkpoints WHERE tree_size = $1",
            tree_size,
        )
    }

    fn checkpoint_at_most(&self, max_size: u64) -> Result<Option<Checkpoint>, LedgerError> {
        self.checkpoint_body(
            "SELECT body FROM ledger_checkpoints WHERE tree_size <= $1
             ORDER BY tree_size DESC LIMIT 1",
            max_size,
        )
    }

    fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, LedgerError> {
        let ids = ids.to_vec();
        let wanted: Vec<i64> = ids.iter().map(|id| node_row(*id).0).collect();
        let rows = self.query(move |c| async move { node_rows(&**c, wanted).await })?;
        ids.iter()
            .map(|&id| {
                let (row, slot) = node_row(id);
                rows.get(&row)
                    .and_then(|(leaf, nodes)| node_in_row(slot, leaf, nodes))
                    .map(|raw| self.hash(raw))
                    .unwrap_or_else(|| Err(self.missing_node(id)))
            })
            .collect()
    }

    fn records(&self, from: u64, to: u64) -> Result<Vec<(u64, String, Hash)>, LedgerError> {
        let (from, to) = (from as i64, to.min(i64::MAX as u64) as i64);
        let rows: Vec<(i64, String, Vec<u8>)> = self.query(move |c| async move {
            Ok(c.query(
                "SELECT idx, body, record_hash FROM ledger_records
                 WHERE idx >= $1 AND idx < $2 ORDER BY idx",
                &[&from, &to],
            )
            .await?
            .into_iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
        })?;
        rows.into_iter()
            .map(|(i, body, rh)| Ok((i as u64, body, self.hash(&rh)?)))
            .collect()
    }

    fn checkpoints(
        &self,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, LedgerError> {
        let (after, upto, limit) = (
            after as i64,
            upto.min(i64::MAX as u64) as i64,
            limit.min(i64::MAX as usize) as i64,
        );
        self.query(move |c| async move {
            Ok(c.query(
                "SELECT tree_size, body FROM ledger_checkpoints
                 WHERE tree_size > $1 AND tree_size <= $2 ORDER BY tree_size LIMIT $3",
                &[&after, &upto, &limit],
            )
            .await?
            .into_iter()
            .map(|r| (r.get::<_, i64>(0) as u64, r.get(1)))
            .collect())
        })
    }
}

/// `(leaf_hash, nodes)` of each wanted row that exists.
async fn node_rows(
    c: &impl tokio_postgres::GenericClient,
    rows: Vec<i64>,
) -> Result<HashMap<i64, (Vec<u8>, Vec<u8>)>, PgError> {
    Ok(c.query(
        "SELECT idx, leaf_hash, nodes FROM ledger_records WHERE idx = ANY($1)",
        &[&rows],
    )
    .await?
    .into_iter()
    .map(|r| (r.get(0), (r.get(1), r.get(2))))
    .collect())
}

/// The nodes fetched for a frontier, as the Merkle code's node source.
struct Fetched<'a>(&'a HashMap<i64, (Vec<u8>, Vec<u8>)>);

impl NodeSource for Fetched<'_> {
    type Error = String;
    fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, String> {
        ids.iter()
            .map(|&id| {
                let (row, slot) = node_row(id);
                self.0
                    .get(&row)
                    .and_then(|(leaf, nodes)| node_in_row(slot, leaf, nodes))
                    .and_then(|raw| Hash::from_slice(raw).ok())
                    .ok_or_else(|| format!("Merkle node {}/{} is missing", id.level, id.index))
            })
            .collect()
    }
}

/// The writer of one process: its own queue and group commit, batches integrated under the
/// lock (see the module docs).
pub(crate) struct PgWriter {
    pub pg: Arc<Pg>,
    pub key: SigningKey,
    pub origin: String,
    pub tip: Tip,
    pub batch_max: usize,
    pub batch_wait: Duration,
}

impl PgWriter {
    pub fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        let mut batch = Vec::with_capacity(self.batch_max);
        let mut stopping = false;
        while !stopping {
            let Some(stop) = first(&mut rx, &mut batch, self.batch_wait) else {
                break;
            };
            stopping = stop;
            // What queued while the previous batch was committed forms the next one.
            loop {
                stopping |= drain(&mut rx, &mut batch, self.batch_max);
                if !batch.is_empty() {
                    self.commit(std::mem::take(&mut batch));
                }
                if !stopping || closed_and_done(&mut rx, &mut batch) {
                    break;
                }
            }
        }
        tracing::debug!(size = self.tip.frontier.size(), "ledger writer stopped");
    }

    fn commit(&mut self, mut batch: Vec<Queued>) {
        let connections = self.pg.connections();
        let (key, origin) = (self.key.clone(), self.origin.clone());
        let mut tip = self.tip.clone();
        let location = location(&self.pg);
        let job = async move {
            let mut pending = Vec::with_capacity(batch.len());
            let mut new = HashMap::with_capacity(batch.len() * 2);
            let out = match connections.get().await {
                Ok(mut client) => {
                    integrate(
                        &mut client,
                        &mut tip,
                        &mut batch,
                        &mut new,
                        &mut pending,
                        &key,
                        &origin,
                    )
                    .await
                }
                Err(e) => Err(e),
            };
            match out {
                Ok((checkpoint, before)) => {
                    // Committed, hence durable: the receipts can go.
                    for (reply, settled) in settle(pending, checkpoint, new, before) {
                        let _ = reply.send(Ok(settled));
                    }
                    Some(tip)
                }
                Err(e) => {
                    fail(pending, &mut batch, &store_err(&location)(e));
                    None
                }
            }
        };
        match self.pg.run(job) {
            Ok(Some(tip)) => self.tip = tip,
            // The tip is read again under the lock at the next batch.
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "ledger batch could not run"),
        }
    }
}

/// One batch in one transaction: lock, read the tip, catch up if another process appended,
/// sequence, insert, sign, commit. Returns the checkpoint and the frontier before the batch.
async fn integrate(
    client: &mut Client,
    tip: &mut Tip,
    batch: &mut Vec<Queued>,
    new: &mut HashMap<NodeId, Hash>,
    pending: &mut Vec<Pending>,
    key: &SigningKey,
    origin: &str,
) -> Result<(Checkpoint, HashMap<NodeId, Hash>), PgError> {
    let tx = client.transaction().await?;
    tx.execute(LOCK, &[]).await?;
    let last = tx
        .query_opt(
            "SELECT body FROM ledger_checkpoints ORDER BY tree_size DESC LIMIT 1",
            &[],
        )
        .await?;
    let invalid = |detail: String| PgError::Db {
        message: format!("the stored ledger is inconsistent: {detail}"),
        code: None,
    };
    let last: Option<Checkpoint> = last
        .map(|r| serde_json::from_str(r.get(0)))
        .transpose()
        .map_err(|e| invalid(format!("a stored checkpoint is malformed: {e}")))?;
    let (size, head) = last
        .as_ref()
        .map_or((0, Hash::ZERO), |c| (c.tree_size, c.chain_head));
    if size != tip.frontier.size() || head != tip.head {
        // Another process appended since this one last did: start from the stored tip.
        let wanted = Frontier::ids(size)
            .iter()
            .map(|id| node_row(*id).0)
            .collect();
        let rows = node_rows(&*tx, wanted).await?;
        let frontier = Frontier::load(&Fetched(&rows), size).map_err(invalid)?;
        let last = last.expect("a non-empty tip has a checkpoint");
        if frontier.root() != last.root_hash {
            return Err(invalid(format!(
                "the stored tree does not hash to the root of checkpoint {size}"
            )));
        }
        let last_ts = crate::ledger::checkpoint_ms(&last).map_err(invalid)?;
        tracing::debug!(
            from = tip.frontier.size(),
            to = size,
            "ledger tip moved by another writer"
        );
        *tip = Tip {
            frontier,
            head,
            last_ts: last_ts.max(tip.last_ts),
        };
    }
    let before: HashMap<NodeId, Hash> = tip.frontier.nodes().collect();
    let ts = tip.next_timestamp();
    let n = batch.len();
    let (mut idx, mut rh, mut leaf, mut nodes, mut body) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    tip.sequence(batch, ts, new, pending, |row| {
        idx.push(row.index as i64);
        rh.push(row.record_hash.0.to_vec());
        leaf.push(row.leaf.0.to_vec());
        nodes.push(row.completed.to_vec());
        body.push(row.canonical.to_owned());
        Ok(())
    })
    .expect("collecting rows cannot fail");
    tx.execute(
        "INSERT INTO ledger_records (idx, record_hash, leaf_hash, nodes, body)
         SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bytea[], $4::bytea[], $5::text[])",
        &[&idx, &rh, &leaf, &nodes, &body],
    )
    .await?;
    let checkpoint = tip.sign(key, origin, ts);
    let cp_body = serde_json::to_string(&checkpoint).expect("a checkpoint serializes");
    tx.execute(
        "INSERT INTO ledger_checkpoints (tree_size, body) VALUES ($1, $2)",
        &[&(checkpoint.tree_size as i64), &cp_body],
    )
    .await?;
    tx.commit().await?;
    tip.last_ts = ts;
    Ok((checkpoint, before))
}
