//! Property tests: for random ledgers, every inclusion and consistency proof verifies, and any
//! single-bit change to a record, a proof or a root makes verification fail.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use warden_ledger::hash::{leaf_hash, Hash};
use warden_ledger::merkle::{
    consistency_proof, inclusion_proof, root, verify_consistency, verify_inclusion, Frontier,
    NodeId, NodeSource,
};
use warden_ledger::{Entry, Keyring, Ledger, LedgerOptions};

struct Mem(HashMap<NodeId, Hash>);

impl NodeSource for Mem {
    type Error = Infallible;
    fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, Infallible> {
        Ok(ids.iter().map(|id| self.0[id]).collect())
    }
}

fn tree(records: &[Vec<u8>]) -> Mem {
    let mut nodes = HashMap::new();
    let mut f = Frontier::new();
    for (i, r) in records.iter().enumerate() {
        let leaf = leaf_hash(r);
        nodes.insert(NodeId::new(0, i as u64), leaf);
        f.push(leaf, |id, h| {
            nodes.insert(id, h);
        });
    }
    Mem(nodes)
}

fn flip(h: &mut Hash, bit: usize) {
    h.0[(bit / 8) % 32] ^= 1 << (bit % 8);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn inclusion_proofs_verify_and_bit_flips_fail(
        records in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..300),
        pick in any::<prop::sample::Index>(),
        size_pick in any::<prop::sample::Index>(),
        bit in 0usize..256,
        element in any::<prop::sample::Index>(),
    ) {
        let src = tree(&records);
        let n = records.len() as u64;
        let size = 1 + size_pick.index(n as usize) as u64;
        let index = pick.index(size as usize) as u64;
        let r = root(&src, size).unwrap();
        let proof = inclusion_proof(&src, index, size).unwrap().unwrap();
        let leaf = leaf_hash(&records[index as usize]);
        prop_assert!(verify_inclusion(index, size, &leaf, &proof, &r).is_ok());

        // A bit of the record itself.
        let mut rec = records[index as usize].clone();
        rec.push(0);
        let last = rec.len() - 1;
        rec[last] ^= 1 << (bit % 8);
        prop_assert!(verify_inclusion(index, size, &leaf_hash(&rec), &proof, &r).is_err());
        // A bit of the leaf hash, of a proof element, of the root.
        let mut l2 = leaf; flip(&mut l2, bit);
        prop_assert!(verify_inclusion(index, size, &l2, &proof, &r).is_err());
        if !proof.is_empty() {
            let mut p2 = proof.clone();
            let e = element.index(p2.len());
            flip(&mut p2[e], bit);
            prop_assert!(verify_inclusion(index, size, &leaf, &p2, &r).is_err());
        }
        let mut r2 = r; flip(&mut r2, bit);
        prop_assert!(verify_inclusion(index, size, &leaf, &proof, &r2).is_err());
        // The wrong index or size.
        if size > 1 {
            prop_assert!(verify_inclusion((index + 1) % size, size, &leaf, &proof, &r).is_err());
        }
    }

    #[test]
    fn consistency_proofs_verify_and_bit_flips_fail(
        n in 1usize..300,
        a in any::<prop::sample::Index>(),
        b in any::<prop::sample::Index>(),
        bit in 0usize..256,
        element in any::<prop::sample::Index>(),
    ) {
        let records: Vec<Vec<u8>> = (0..n).map(|i| (i as u32).to_be_bytes().to_vec()).collect();
        let src = tree(&records);
        let (x, y) = (1 + a.index(n) as u64, 1 + b.index(n) as u64);
        let (from, to) = (x.min(y), x.max(y));
        let (r1, r2) = (root(&src, from).unwrap(), root(&src, to).unwrap());
        let proof = consistency_proof(&src, from, to).unwrap().unwrap();
        prop_assert!(verify_consistency(from, to, &proof, &r1, &r2).is_ok());
        if !proof.is_empty() {
            let mut p2 = proof.clone();
            let e = element.index(p2.len());
            flip(&mut p2[e], bit);
            prop_assert!(verify_consistency(from, to, &p2, &r1, &r2).is_err());
        }
        let mut bad1 = r1; flip(&mut bad1, bit);
        prop_assert!(verify_consistency(from, to, &proof, &bad1, &r2).is_err());
        let mut bad2 = r2; flip(&mut bad2, bit);
        prop_assert!(verify_consistency(from, to, &proof, &r1, &bad2).is_err());
    }
}

proptest! {
    // Each case opens a real store and fsyncs; keep the count modest.
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn stored_ledgers_prove_every_record_and_reject_altered_receipts(
        batches in prop::collection::vec(1usize..20, 1..8),
        batch_max in 1usize..8,
        bit in 0usize..64,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let opts = LedgerOptions {
            dir: dir.path().join("ledger"),
            postgres: None,
            signing_key: dir.path().join("keys/ledger.key"),
            origin: "prop".into(),
            batch_max,
            batch_wait: Duration::ZERO,
        };
        let ledger = Arc::new(Ledger::open(opts).unwrap());
        let keys = Keyring::from_dir(&dir.path().join("keys")).unwrap();
        let mut receipts = Vec::new();
        rt.block_on(async {
            for (b, count) in batches.iter().enumerate() {
                let tasks: Vec<_> = (0..*count).map(|i| {
                    let l = ledger.clone();
                    tokio::spawn(async move {
                        l.append(Entry::new("k", "t", serde_json::json!({"b": b, "i": i, "s": "x".repeat(i)}))).await.unwrap()
                    })
                }).collect();
                for t in tasks { receipts.push(t.await.unwrap()); }
            }
        });
        let total: usize = batches.iter().sum();
        prop_assert_eq!(receipts.len(), total);
        let reader = ledger.reader();
        let size = reader.size().unwrap();
        prop_assert_eq!(size, total as u64);
        for r in &receipts {
            prop_assert!(r.verify(&keys).is_ok());
            // The same record proved against the latest checkpoint from the store.
            prop_assert!(reader.receipt(r.index).unwrap().verify(&keys).is_ok());
            // Any single-bit change to the record's content is caught.
            let mut bad = r.clone();
            let mut text = serde_json::to_string(&bad.record.payload).unwrap().into_bytes();
            let pos = bit % text.len();
            text[pos] ^= 1 << (bit % 7);
            match serde_json::from_slice(&text) {
                Ok(v) if v != r.record.payload => {
                    bad.record.payload = v;
                    prop_assert!(bad.verify(&keys).is_err());
                }
                _ => {
                    bad.record.tenant.push('x');
                    prop_assert!(bad.verify(&keys).is_err());
                }
            }
        }
        // Every checkpoint is consistent with the latest one.
        let mut sizes: Vec<u64> = receipts.iter().map(|r| r.checkpoint.tree_size).collect();
        sizes.sort(); sizes.dedup();
        for s in sizes {
            prop_assert!(reader.consistency(s, None).unwrap().verify(&keys).is_ok());
        }
        rt.block_on(ledger.shutdown());
    }
}
