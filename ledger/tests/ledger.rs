//! The ledger through its public API: durable appends, receipts, reopening, export and tamper
//! detection. Each test runs on SQLite and, when `WARDEN_TEST_POSTGRES_URL` is set, on
//! PostgreSQL (in a schema of its own); without the variable the PostgreSQL runs say they skip.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use warden_ledger::{
    verify_export, Entry, Keyring, Ledger, LedgerError, LedgerOptions, LedgerReader, VerifyError,
};
use warden_pg::testing::Fixture;
use warden_pg::{test_on_both, Pg};

fn options(dir: &Path) -> LedgerOptions {
    LedgerOptions {
        dir: dir.join("ledger"),
        postgres: None,
        signing_key: dir.join("keys/ledger.key"),
        origin: "test.warden/ledger".into(),
        batch_max: 64,
        batch_wait: Duration::ZERO,
    }
}

/// What the tests need of a test's fixture (a directory, and a schema on PostgreSQL).
trait Backend {
    fn options(&self) -> LedgerOptions;
    fn reader(&self) -> LedgerReader;
    fn keys(&self) -> Keyring;
    fn export(&self) -> String;
}

impl Backend for Fixture {
    fn options(&self) -> LedgerOptions {
        LedgerOptions {
            postgres: self.pg.clone(),
            ..options(self.dir.path())
        }
    }

    fn reader(&self) -> LedgerReader {
        match &self.pg {
            Some(pg) => LedgerReader::postgres(pg.clone()).unwrap(),
            None => LedgerReader::open(&self.dir.path().join("ledger")).unwrap(),
        }
    }

    fn keys(&self) -> Keyring {
        Keyring::from_dir(&self.dir.path().join("keys")).unwrap()
    }

    fn export(&self) -> String {
        let mut out = Vec::new();
        self.reader().export(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }
}

async fn append_many(
    ledger: &Arc<Ledger>,
    tasks: usize,
    each: usize,
) -> Vec<warden_ledger::Receipt> {
    let mut handles = Vec::new();
    for t in 0..tasks {
        let l = ledger.clone();
        handles.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in 0..each {
                let e = Entry::new(
                    "decision",
                    format!("tenant-{}", t % 3),
                    json!({"task": t, "i": i, "amount": 1250.0, "note": "é \u{1f600}"}),
                );
                out.push(l.append(e).await.unwrap());
            }
            out
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    all.sort_by_key(|r| r.index);
    all
}

fn verify(text: &str, keys: &Keyring) -> Result<warden_ledger::Summary, VerifyError> {
    verify_export(text.as_bytes(), keys)
}

async fn concurrent_appends_get_verifiable_receipts_and_share_batches(b: Fixture) {
    let ledger = Arc::new(Ledger::open(b.options()).unwrap());
    assert!(ledger.key_created());
    let receipts = append_many(&ledger, 16, 25).await;
    let keys = b.keys();
    for (i, r) in receipts.iter().enumerate() {
        assert_eq!(r.index, i as u64, "indexes are dense and unique");
        r.verify(&keys).unwrap();
        assert!(r.checkpoint.tree_size > r.index);
    }
    for w in receipts.windows(2) {
        assert_eq!(w[1].prior_hash, w[0].record_hash, "receipts chain together");
    }
    let checkpoints: std::collections::BTreeSet<u64> =
        receipts.iter().map(|r| r.checkpoint.tree_size).collect();
    assert!(
        checkpoints.len() < receipts.len(),
        "400 concurrent appends were committed in {} batches: no group commit",
        checkpoints.len()
    );
    ledger.shutdown().await;
    let text = b.export();
    let summary = verify(&text, &keys).unwrap();
    assert_eq!(summary.records, 400);
    assert_eq!(summary.checkpoints as usize, checkpoints.len());
    assert_eq!(summary.chain_head, receipts.last().unwrap().record_hash);
}
test_on_both!(async Fixture, concurrent_appends_get_verifiable_receipts_and_share_batches);

async fn reopening_continues_the_chain_and_serves_historical_proofs(b: Fixture) {
    let first = {
        let ledger = Arc::new(Ledger::open(b.options()).unwrap());
        let r = append_many(&ledger, 1, 5).await;
        ledger.shutdown().await;
        r
    };
    let ledger = Arc::new(Ledger::open(b.options()).unwrap());
    assert!(!ledger.key_created());
    let second = append_many(&ledger, 1, 5).await;
    assert_eq!(second[0].index, 5);
    assert_eq!(second[0].prior_hash, first[4].record_hash);

    let keys = b.keys();
    let reader = ledger.reader();
    assert_eq!(reader.size().unwrap(), 10);
    // Every record is provable against the latest checkpoint, and every pair of checkpoints
    // is consistent.
    for i in 0..10 {
        reader.receipt(i).unwrap().verify(&keys).unwrap();
    }
    for from in 1..=10 {
        reader
            .consistency(from, None)
            .unwrap()
            .verify(&keys)
            .unwrap();
        for to in from..=10 {
            reader
                .consistency(from, Some(to))
                .unwrap()
                .verify(&keys)
                .unwrap();
        }
    }
    assert!(matches!(
        reader.receipt(10),
        Err(LedgerError::BeyondSize { .. })
    ));
    assert!(matches!(
        reader.inclusion_proof(3, 11),
        Err(LedgerError::BeyondSize { .. })
    ));
}
test_on_both!(async Fixture, reopening_continues_the_chain_and_serves_historical_proofs);

#[tokio::test]
async fn a_second_writer_and_a_corrupt_store_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(options(dir.path())).unwrap();
    match Ledger::open(options(dir.path())) {
        Err(LedgerError::Locked(p)) => assert!(p.ends_with("ledger")),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a second writer was allowed"),
    }
    drop(ledger);

    let bad = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(bad.path().join("ledger")).unwrap();
    std::fs::write(bad.path().join("ledger/ledger.db"), vec![0x42u8; 8192]).unwrap();
    let err = Ledger::open(options(bad.path())).err().unwrap().to_string();
    assert!(
        err.contains("ledger.db") && err.contains("not a database"),
        "{err}"
    );

    let missing = tempfile::tempdir().unwrap();
    let err = LedgerReader::open(&missing.path().join("nope"))
        .err()
        .unwrap();
    assert!(matches!(err, LedgerError::NotFound(_)), "{err}");
}

async fn wrong_origin_and_bad_entries_are_refused(b: Fixture) {
    let ledger = Ledger::open(b.options()).unwrap();
    let err = ledger
        .append(Entry::new("", "t", json!({})))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid entry: kind: must be 1 to 128 bytes without control characters"
    );
    ledger.shutdown().await;
    let err = ledger
        .append(Entry::new("k", "t", json!({})))
        .await
        .unwrap_err();
    assert!(matches!(err, LedgerError::Closed));
    drop(ledger);
    let mut opts = b.options();
    opts.origin = "other".into();
    let err = Ledger::open(opts).err().unwrap().to_string();
    assert!(err.contains("created with origin"), "{err}");
}
test_on_both!(async Fixture, wrong_origin_and_bad_entries_are_refused);

async fn rotated_keys_keep_old_checkpoints_verifiable(b: Fixture) {
    {
        let ledger = Arc::new(Ledger::open(b.options()).unwrap());
        append_many(&ledger, 1, 3).await;
        ledger.shutdown().await;
    }
    let old_only = b.keys();
    warden_ledger::keys::rotate(&b.dir.path().join("keys/ledger.key")).unwrap();
    {
        let ledger = Arc::new(Ledger::open(b.options()).unwrap());
        append_many(&ledger, 1, 3).await;
        ledger.shutdown().await;
    }
    let text = b.export();
    let summary = verify(&text, &b.keys()).unwrap();
    assert_eq!(summary.key_ids.len(), 2);
    let err = verify(&text, &old_only).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::Checkpoint(warden_ledger::CheckpointError::UnknownKey {
                tree_size: 4,
                ..
            })
        ),
        "{err}"
    );
}
test_on_both!(async Fixture, rotated_keys_keep_old_checkpoints_verifiable);

/// Builds a ledger of 12 records in batches of 3 and returns its export lines.
async fn sample(b: &Fixture) -> Vec<Value> {
    let mut opts = b.options();
    opts.batch_max = 3;
    let ledger = Arc::new(Ledger::open(opts).unwrap());
    // Appends queued together land in batches of at most 3.
    append_many(&ledger, 6, 2).await;
    ledger.shutdown().await;
    b.export()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn join(lines: &[Value]) -> String {
    lines
        .iter()
        .map(|v| serde_json::to_string(v).unwrap() + "\n")
        .collect()
}

fn record_pos(lines: &[Value], index: u64) -> usize {
    lines
        .iter()
        .position(|l| l["type"] == "record" && l["index"] == index)
        .unwrap()
}

async fn every_kind_of_tampering_is_detected_at_the_first_bad_index(b: Fixture) {
    let lines = sample(&b).await;
    let keys = b.keys();
    assert_eq!(verify(&join(&lines), &keys).unwrap().records, 12);

    // A changed record.
    let mut t = lines.clone();
    let p = record_pos(&t, 7);
    t[p]["payload"]["amount"] = json!(1.0);
    assert_eq!(
        verify(&join(&t), &keys).unwrap_err(),
        VerifyError::RecordHash { index: 7 }
    );

    // A changed record whose chain was recomputed by the forger: caught by the checkpoint.
    let mut t = lines.clone();
    let p = record_pos(&t, 7);
    t[p]["payload"]["amount"] = json!(1.0);
    let mut prior = warden_ledger::Hash::from_hex(t[p]["prior_hash"].as_str().unwrap()).unwrap();
    for l in t.iter_mut().skip(p) {
        if l["type"] == "record" {
            let rec: warden_ledger::Record = serde_json::from_value(json!({
                "index": l["index"], "timestamp": l["timestamp"], "kind": l["kind"],
                "tenant": l["tenant"], "payload": l["payload"]}))
            .unwrap();
            l["prior_hash"] = json!(prior.to_hex());
            prior = rec.record_hash(&prior);
            l["record_hash"] = json!(prior.to_hex());
        }
    }
    let err = verify(&join(&t), &keys).unwrap_err();
    assert!(matches!(err, VerifyError::CheckpointRoot { .. }), "{err}");
    assert!(err.first_bad_index().unwrap() <= 7, "{err}");

    // A deleted record.
    let mut t = lines.clone();
    t.remove(record_pos(&t, 4));
    // Record 5 or, when a batch ended at 4, the checkpoint of size 5 follows record 3.
    let err = verify(&join(&t), &keys).unwrap_err();
    assert_eq!(err.first_bad_index(), Some(4), "{err}");

    // An inserted record (a copy of record 2 placed after it).
    let mut t = lines.clone();
    let p = record_pos(&t, 2);
    let copy = t[p].clone();
    t.insert(p + 1, copy);
    assert_eq!(
        verify(&join(&t), &keys).unwrap_err().first_bad_index(),
        Some(3)
    );

    // Two records swapped.
    let mut t = lines.clone();
    let (a, b) = (record_pos(&t, 5), record_pos(&t, 6));
    t.swap(a, b);
    assert_eq!(
        verify(&join(&t), &keys).unwrap_err(),
        VerifyError::IndexGap {
            expected: 5,
            found: 6
        }
    );

    // A forged checkpoint: claims a different root.
    let mut t = lines.clone();
    let p = t.iter().position(|l| l["type"] == "checkpoint").unwrap();
    t[p]["root_hash"] = json!("ab".repeat(32));
    let err = verify(&join(&t), &keys).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::Checkpoint(warden_ledger::CheckpointError::BadSignature { .. })
        ),
        "{err}"
    );

    // A wrong key.
    let stranger =
        Keyring::from_keys([warden_ledger::keys::generate_signing_key().verifying_key()]);
    let err = verify(&join(&lines), &stranger).unwrap_err();
    assert!(
        err.to_string().contains("not among the trusted keys"),
        "{err}"
    );

    // A truncated export: whole lines missing at the end, or a line cut in half.
    let full = join(&lines);
    let cut: String = full
        .lines()
        .take(lines.len() - 3)
        .map(|l| format!("{l}\n"))
        .collect();
    let err = verify(&cut, &keys).unwrap_err();
    assert!(err.is_unusable(), "{err}");
    assert!(err.to_string().contains("truncated"), "{err}");
    let half = &full[..full.len() - 40];
    let err = verify(half, &keys).unwrap_err();
    assert!(
        err.is_unusable() && err.to_string().contains(&format!("line {}", lines.len())),
        "{err}"
    );

    // Records beyond the last checkpoint vouch for nothing.
    let mut t = lines.clone();
    t.pop(); // the last checkpoint
    let anchored = t
        .iter()
        .rev()
        .find(|l| l["type"] == "checkpoint")
        .map(|l| l["tree_size"].as_u64().unwrap())
        .unwrap();
    t[0]["tree_size"] = json!(anchored);
    let err = verify(&join(&t), &keys).unwrap_err();
    assert_eq!(
        err,
        VerifyError::Unanchored {
            from: anchored,
            to: 11
        }
    );

    // Garbage and an empty file are unusable, not invalid.
    assert!(verify("not json\n", &keys).unwrap_err().is_unusable());
    assert!(verify("", &keys).unwrap_err().is_unusable());
}
test_on_both!(async Fixture, every_kind_of_tampering_is_detected_at_the_first_bad_index);

async fn shutdown_commits_what_was_queued_and_refuses_the_rest(b: Fixture) {
    let ledger = Arc::new(Ledger::open(b.options()).unwrap());
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let l = ledger.clone();
            tokio::spawn(async move { l.append(Entry::new("k", "t", json!({ "i": i }))).await })
        })
        .collect();
    // Shut down mid-stream: once the first records are in, with more still coming.
    let start = std::time::Instant::now();
    while ledger.reader().size().unwrap() == 0 && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    ledger.shutdown().await;
    let mut receipted = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => receipted.push(r),
            Err(LedgerError::Closed) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert!(!receipted.is_empty());
    drop(ledger);
    let reader = b.reader();
    assert_eq!(
        reader.size().unwrap(),
        receipted.len() as u64,
        "exactly the receipted records are stored"
    );
    let keys = b.keys();
    for r in &receipted {
        assert_eq!(reader.record(r.index).unwrap().unwrap().2, r.record_hash);
        r.verify(&keys).unwrap();
    }
}
test_on_both!(async Fixture, shutdown_commits_what_was_queued_and_refuses_the_rest);

async fn forged_checkpoint_signatures_are_caught_in_long_exports(b: Fixture) {
    let mut opts = b.options();
    opts.batch_max = 1;
    let ledger = Arc::new(Ledger::open(opts).unwrap());
    // One checkpoint per record: enough checkpoints for the background signature checker.
    append_many(&ledger, 1, 300).await;
    ledger.shutdown().await;
    let keys = b.keys();
    let raw = b.export();
    assert_eq!(verify(&raw, &keys).unwrap().checkpoints, 300);

    // A re-dated checkpoint: root and chain still match, only the signature gives it away.
    let redate = |text: &str, size: u64| -> String {
        text.lines()
            .map(|l| {
                let mut v: Value = serde_json::from_str(l).unwrap();
                if v["type"] == "checkpoint" && v["tree_size"] == size {
                    v["timestamp"] = json!("2000-01-01T00:00:00.000Z");
                    serde_json::to_string(&v).unwrap() + "\n"
                } else {
                    format!("{l}\n")
                }
            })
            .collect()
    };
    let forged = redate(&raw, 150);
    assert_eq!(
        verify(&forged, &keys).unwrap_err(),
        VerifyError::Checkpoint(warden_ledger::CheckpointError::BadSignature { tree_size: 150 })
    );
    // With a later tampered record too, the earlier forged checkpoint is what gets reported.
    let both: String = forged
        .lines()
        .map(|l| {
            if l.contains("\"index\":250,") {
                l.replace("\"task\":0", "\"task\":9") + "\n"
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert_eq!(
        verify(&both, &keys).unwrap_err(),
        VerifyError::Checkpoint(warden_ledger::CheckpointError::BadSignature { tree_size: 150 })
    );
}
test_on_both!(async Fixture, forged_checkpoint_signatures_are_caught_in_long_exports);

async fn proofs_stay_valid_with_the_upper_node_cache_warm(b: Fixture) {
    let ledger = Arc::new(Ledger::open(b.options()).unwrap());
    let receipts = append_many(&ledger, 32, 40).await; // 1,280 records: nodes up to level 10
    let keys = b.keys();
    let reader = ledger.reader();
    for round in 0..2 {
        for i in (0..1280).step_by(37) {
            let r = reader.receipt(i).unwrap();
            r.verify(&keys)
                .unwrap_or_else(|e| panic!("round {round}, record {i}: {e}"));
        }
        for r in receipts.iter().step_by(97) {
            reader
                .consistency(r.checkpoint.tree_size, None)
                .unwrap()
                .verify(&keys)
                .unwrap();
        }
    }
    // A fresh reader (cold cache) builds the same proofs.
    let cold = b.reader();
    for i in [0u64, 255, 256, 511, 1023, 1279] {
        assert_eq!(
            cold.inclusion_proof(i, 1280).unwrap(),
            reader.inclusion_proof(i, 1280).unwrap()
        );
    }
}
test_on_both!(async Fixture, proofs_stay_valid_with_the_upper_node_cache_warm);

/// `enqueue` hands out the place and hash before the fsync, and a receipt that agrees with them
/// once durable; many in flight keep one gap-free chain.
async fn enqueued_appends_are_sequenced_then_durable(b: Fixture) {
    let ledger = Arc::new(Ledger::open(b.options()).unwrap());
    let mut inflight = Vec::new();
    for i in 0..200 {
        let e = Entry::new("llm.request", "default", json!({"i": i}));
        inflight.push(ledger.enqueue(e).unwrap());
    }
    let mut seen = Vec::new();
    for mut a in inflight {
        let s = a.sequenced().await.unwrap();
        assert_eq!(a.sequenced().await.unwrap(), s, "sequenced remembers");
        let receipt = a.durable().await.unwrap();
        assert_eq!(receipt.index, s.index);
        assert_eq!(receipt.record_hash, s.record_hash);
        seen.push(s.index);
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..200).collect::<Vec<u64>>());
    assert!(ledger
        .enqueue(Entry::new("", "default", json!({})))
        .is_err());
    ledger.shutdown().await;
    verify(&b.export(), &b.keys()).unwrap();
}
test_on_both!(async Fixture, enqueued_appends_are_sequenced_then_durable);

/// `settle` gives the record's place either way, the same place its receipt names; once a
/// durable settle returns, a reader can already prove the record.
async fn settle_gives_the_place_sequenced_or_durable(b: Fixture) {
    let ledger = Arc::new(Ledger::open(b.options()).unwrap());
    let quick = ledger
        .enqueue(Entry::new("mcp.tool_call", "default", json!({"i": 0})))
        .unwrap()
        .settle(false)
        .await
        .unwrap();
    let durable = ledger
        .enqueue(Entry::new("mcp.tool_call", "default", json!({"i": 1})))
        .unwrap()
        .settle(true)
        .await
        .unwrap();
    assert_eq!((quick.index, durable.index), (0, 1));
    let receipt = ledger.reader().receipt(1).unwrap();
    assert_eq!(receipt.record_hash, durable.record_hash);
    assert_eq!(
        ledger.reader().receipt(0).unwrap().record_hash,
        quick.record_hash
    );
    ledger.shutdown().await;
    verify(&b.export(), &b.keys()).unwrap();
}
test_on_both!(async Fixture, settle_gives_the_place_sequenced_or_durable);

/// With a commit interval, a lone appender waiting for each receipt is not held; once several
/// append at once, appends that trickle in soon after a commit wait and share the next batch.
#[tokio::test]
async fn a_commit_interval_paces_concurrent_appends_only() {
    let dir = tempfile::tempdir().unwrap();
    let keys = || Keyring::from_dir(&dir.path().join("keys")).unwrap();
    let ledger = Arc::new(Ledger::open(options(dir.path())).unwrap());
    let interval = Duration::from_secs(1);
    ledger.set_commit_interval(interval);
    let started = std::time::Instant::now();
    for i in 0..5 {
        let r = ledger
            .append(Entry::new("t", "default", json!({"i": i})))
            .await
            .unwrap();
        assert_eq!(r.checkpoint.tree_size, i + 1, "one batch per append");
    }
    assert!(
        started.elapsed() < interval,
        "five lone appends took {:?}",
        started.elapsed()
    );
    // A burst: several appenders at once.
    let burst: Vec<_> = (0..50)
        .map(|i| {
            ledger
                .enqueue(Entry::new("t", "default", json!({"b": i})))
                .unwrap()
        })
        .collect();
    for a in burst {
        a.durable().await.unwrap();
    }
    let after_burst = std::time::Instant::now();
    let mut trickle = Vec::new();
    for i in 0..10 {
        trickle.push(
            ledger
                .enqueue(Entry::new("t", "default", json!({"t": i})))
                .unwrap(),
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut sizes = std::collections::BTreeSet::new();
    for a in trickle {
        let r = a.durable().await.unwrap();
        r.verify(&keys()).unwrap();
        sizes.insert(r.checkpoint.tree_size);
    }
    assert_eq!(sizes.into_iter().collect::<Vec<_>>(), [65], "one batch");
    assert!(
        after_burst.elapsed() >= interval / 2,
        "the trickle was not held"
    );
    ledger.shutdown().await;
    let mut out = Vec::new();
    LedgerReader::open(&dir.path().join("ledger"))
        .unwrap()
        .export(&mut out)
        .unwrap();
    let summary = verify(std::str::from_utf8(&out).unwrap(), &keys()).unwrap();
    assert_eq!(summary.records, 65);
}

/// Appenders that each wait for their receipt before appending again are all in the batch
/// once it holds about the recent peak: pacing must not hold such a batch for the interval.
#[tokio::test]
async fn a_commit_interval_does_not_hold_a_batch_that_is_already_full() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(Ledger::open(options(dir.path())).unwrap());
    let interval = Duration::from_secs(2);
    // Returns how many batches the round's eight records were committed in.
    let round = |r: usize| {
        let appends: Vec<_> = (0..8)
            .map(|i| {
                ledger
                    .enqueue(Entry::new("t", "default", json!({"r": r, "i": i})))
                    .unwrap()
            })
            .collect();
        async move {
            let mut batches = std::collections::BTreeSet::new();
            for a in appends {
                batches.insert(a.durable().await.unwrap().checkpoint.tree_size);
            }
            batches.len()
        }
    };
    // Rounds teach the writer that eight appenders are active, once it has seen all eight in
    // one batch. (Until then it may take a round in parts, when it wakes before the last
    // append of the round is queued, and hold the rest: a short interval keeps that brief.)
    ledger.set_commit_interval(Duration::from_millis(20));
    let mut r = 0;
    while round(r).await > 1 {
        r += 1;
        assert!(r < 200, "the writer never took a whole round in one batch");
    }
    ledger.set_commit_interval(interval);
    let started = std::time::Instant::now();
    for r in r + 1..r + 6 {
        assert_eq!(round(r).await, 1, "round {r} was committed in one batch");
    }
    assert!(
        started.elapsed() < interval,
        "five full rounds took {:?}: a full batch was held for the interval",
        started.elapsed()
    );
    ledger.shutdown().await;
}

/// Two writers (two pools, as two processes would have) appending at once to one PostgreSQL
/// ledger: one gap-free chain, every receipt verifies and is in the export exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_writers_sharing_a_ledger_keep_one_chain() {
    let Some(b) = Fixture::postgres("postgres_writers_sharing_a_ledger_keep_one_chain") else {
        return;
    };
    let first = Arc::new(Ledger::open(b.options()).unwrap());
    let second_pg = Pg::connect(&b.db.as_ref().unwrap().url).unwrap();
    let second = Arc::new(
        Ledger::open(LedgerOptions {
            postgres: Some(second_pg),
            ..b.options()
        })
        .unwrap(),
    );
    let (a, c) = tokio::join!(append_many(&first, 8, 25), append_many(&second, 8, 25));
    first.shutdown().await;
    second.shutdown().await;
    let keys = b.keys();
    let mut all: Vec<_> = a.into_iter().chain(c).collect();
    all.sort_by_key(|r| r.index);
    assert_eq!(
        all.iter().map(|r| r.index).collect::<Vec<_>>(),
        (0..400).collect::<Vec<u64>>(),
        "no gap and no duplicate index"
    );
    for w in all.windows(2) {
        assert_eq!(w[1].prior_hash, w[0].record_hash, "no fork");
    }
    for r in &all {
        r.verify(&keys).unwrap();
    }
    let summary = verify(&b.export(), &keys).unwrap();
    assert_eq!(summary.records, 400);
    assert_eq!(summary.chain_head, all.last().unwrap().record_hash);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refuses_edits_bad_urls_and_a_missing_ledger() {
    assert!(matches!(
        Pg::connect("mysql://db/w"),
        Err(warden_pg::PgError::Url(_))
    ));
    assert!(matches!(
        Pg::connect("postgres://db/w?sslmode=require"),
        Err(warden_pg::PgError::Tls)
    ));
    let err = Pg::connect("postgres://u:secret@127.0.0.1:1/w?connect_timeout=2").unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("127.0.0.1:1/w as u") && !msg.contains("secret"),
        "{msg}"
    );
    let Some(b) = Fixture::postgres("postgres_refuses_edits_bad_urls_and_a_missing_ledger") else {
        return;
    };
    let pg = b.pg.clone().unwrap();
    assert!(matches!(
        LedgerReader::postgres(pg.clone()),
        Err(LedgerError::NotFound(_))
    ));
    let ledger = Arc::new(Ledger::open(b.options()).unwrap());
    append_many(&ledger, 1, 3).await;
    ledger.shutdown().await;
    for sql in [
        "UPDATE ledger_records SET body = '{}' WHERE idx = 1",
        "DELETE FROM ledger_checkpoints",
        "TRUNCATE ledger_records",
    ] {
        let err = pg
            .blocking(move |c| async move { Ok(c.batch_execute(sql).await?) })
            .unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    verify(&b.export(), &b.keys()).unwrap();
}

/// Lazy appends (`ledger.durability: batched`: nobody waits for them to be written) get their
/// place at once, but are committed up to half the sync window later and fsynced up to half a
/// window after that, so that one commit and one fsync cover many. An append that someone
/// waits for ends both waits, and so does a shutdown: nothing is left unwritten.
#[tokio::test]
async fn lazy_appends_wait_for_the_sync_window_unless_an_urgent_append_or_a_shutdown_comes() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(options(dir.path())).unwrap();
    let keys = Keyring::from_keys([*ledger.verifying_key()]);
    let window = Duration::from_secs(2);
    ledger.set_sync_window(window);
    let entry = |i: u32| Entry::new("t", "default", json!({"i": i}));

    // Alone: its place at once, its receipt once the syncer's half of the window has passed.
    let started = std::time::Instant::now();
    let mut lazy = ledger.enqueue_lazy(entry(0)).unwrap();
    assert_eq!(lazy.sequenced().await.unwrap().index, 0);
    assert!(started.elapsed() < window / 4, "{:?}", started.elapsed());
    lazy.durable().await.unwrap().verify(&keys).unwrap();
    assert!(
        started.elapsed() >= window / 2,
        "synced after {:?}, within the window",
        started.elapsed()
    );

    // The next one is committed at once (the last commit is long past); one right after it is
    // held by the writer, yet has its place.
    let mut first = ledger.enqueue_lazy(entry(1)).unwrap();
    assert_eq!(first.sequenced().await.unwrap().index, 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(ledger.reader().size().unwrap(), 2);
    let started = std::time::Instant::now();
    let mut held = ledger.enqueue_lazy(entry(2)).unwrap();
    let place = held.sequenced().await.unwrap();
    assert_eq!(place.index, 2);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(ledger.reader().size().unwrap(), 2, "the lazy batch is held");

    // An urgent append ends both waits: the held record is written and synced with it.
    ledger
        .append(entry(3))
        .await
        .unwrap()
        .verify(&keys)
        .unwrap();
    let receipt = held.durable().await.unwrap();
    assert_eq!((receipt.index, receipt.record_hash), (2, place.record_hash));
    receipt.verify(&keys).unwrap();
    first.durable().await.unwrap().verify(&keys).unwrap();
    assert!(
        started.elapsed() < window / 2,
        "the urgent append waited for the window: {:?}",
        started.elapsed()
    );

    // A shutdown writes and syncs what is left, at once.
    let started = std::time::Instant::now();
    let mut lazy = ledger.enqueue_lazy(entry(4)).unwrap();
    lazy.sequenced().await.unwrap();
    ledger.shutdown().await;
    lazy.durable().await.unwrap().verify(&keys).unwrap();
    assert!(started.elapsed() < window / 2, "{:?}", started.elapsed());
    drop(ledger);
    let reader = LedgerReader::open(&dir.path().join("ledger")).unwrap();
    assert_eq!(reader.size().unwrap(), 5);
}

/// A batch that cannot be written fails every record placed in it, and the chain goes on from
/// the last record written: later appends take the failed places again, so nothing is chained
/// to a record that was never written.
#[tokio::test]
async fn after_a_failed_batch_the_chain_goes_on_from_the_last_written_record() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(options(dir.path())).unwrap();
    let keys = Keyring::from_keys([*ledger.verifying_key()]);
    let entry = |i: u32| Entry::new("t", "default", json!({"i": i}));
    ledger.append(entry(0)).await.unwrap();
    ledger.append(entry(1)).await.unwrap();
    // Another writer took the place of the checkpoint at size 4: the batch ending there fails.
    let db = rusqlite::Connection::open(dir.path().join("ledger/ledger.db")).unwrap();
    db.execute(
        "INSERT INTO checkpoints (tree_size, body) VALUES (4, 'not a checkpoint')",
        [],
    )
    .unwrap();
    // Two lazy appends, held together for half the window, placed at 2 and 3.
    ledger.set_sync_window(Duration::from_millis(400));
    let mut lost: Vec<_> = (2..4)
        .map(|i| ledger.enqueue_lazy(entry(i)).unwrap())
        .collect();
    for (a, i) in lost.iter_mut().zip(2..) {
        assert_eq!(a.sequenced().await.unwrap().index, i);
    }
    for a in lost {
        let e = a.durable().await.unwrap_err();
        assert!(matches!(e, LedgerError::Append(_)), "{e:?}");
    }
    db.execute_batch(
        "DROP TRIGGER checkpoints_no_delete; DELETE FROM checkpoints WHERE tree_size = 4;",
    )
    .unwrap();
    // The next records take places 2 and 3, chained to record 1.
    let first = ledger.append(entry(4)).await.unwrap();
    assert_eq!(first.index, 2);
    first.verify(&keys).unwrap();
    let mut next = ledger.enqueue_lazy(entry(5)).unwrap();
    assert_eq!(next.sequenced().await.unwrap().index, 3);
    next.durable().await.unwrap().verify(&keys).unwrap();
    ledger.shutdown().await;
    let mut out = Vec::new();
    ledger.reader().export(&mut out).unwrap();
    let summary = verify(std::str::from_utf8(&out).unwrap(), &keys).unwrap();
    assert_eq!(summary.records, 4, "{summary:?}");
}
