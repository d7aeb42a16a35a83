//! The RFC 9162 Merkle tree: proof generation over stored nodes, and proof verification.
//!
//! Storage keeps only *complete* subtrees (a node `(level, index)` covers leaves
//! `[index·2^level, (index+1)·2^level)` and exists once all of them are appended). They never
//! change, so a proof for any historical tree size can be built from them: every hash in an
//! RFC 9162 proof is either such a node or the hash of a right-edge range, which folds from at
//! most `log2(n)` of them. A proof therefore touches `O(log n)` stored nodes and never the
//! whole tree.
//!
//! Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2, written with the bit arithmetic of the
//! "inner" and "border" parts of a path so that the proof length is checked exactly: a proof
//! with an extra or a missing hash is rejected, not just one that hashes wrong.

use crate::hash::{empty_root, node_hash, Hash};

/// A complete subtree: `level` 0 is a leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    pub level: u8,
    pub index: u64,
}

impl NodeId {
    pub fn new(level: u8, index: u64) -> NodeId {
        NodeId { level, index }
    }
}

/// Where complete-subtree hashes come from: the store, or an in-memory overlay while a batch is
/// being committed. Fetching a whole list at once lets a store answer in one query.
pub trait NodeSource {
    type Error;
    /// The hashes of `ids`, in order. Every id asked for is a complete subtree of the tree.
    fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, Self::Error>;
}

/// Why a proof could not be built or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("index {index} is outside a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("size {from} cannot be proved consistent with size {to}")]
    BadSizes { from: u64, to: u64 },
    #[error("the proof has {found} hashes; a valid one has {expected}")]
    WrongLength { expected: usize, found: usize },
    #[error("the proof does not lead to the expected root")]
    RootMismatch,
    #[error("the proof must be empty when both sizes are equal")]
    NonEmpty,
}

/// The decomposition of `[begin, end)` into maximal complete subtrees, left to right.
///
/// For the ranges that occur in RFC 9162 (an aligned start, up to the tree's right edge) this is
/// the binary expansion of `end - begin`, so the range's hash is the right fold of the pieces.
pub fn range_nodes(mut begin: u64, end: u64, out: &mut Vec<NodeId>) {
    while begin < end {
        // Largest aligned power of two that starts at `begin` and fits before `end`.
        let align = if begin == 0 {
            63
        } else {
            begin.trailing_zeros()
        };
        let fit = 63 - (end - begin).leading_zeros();
        let level = align.min(fit);
        out.push(NodeId::new(level as u8, begin >> level));
        begin += 1u64 << level;
    }
}

/// Folds the pieces of a range (as from [`range_nodes`]) into the range's hash.
fn fold_right(hashes: &[Hash]) -> Hash {
    let mut iter = hashes.iter().rev();
    let mut acc = *iter.next().expect("a range has at least one node");
    for h in iter {
        acc = node_hash(h, &acc);
    }
    acc
}

/// A proof as a list of ranges whose hashes are the proof's elements, resolved against a source.
#[derive(Default)]
struct Plan {
    /// For each proof element, how many of `ids` belong to it.
    counts: Vec<usize>,
    ids: Vec<NodeId>,
}

impl Plan {
    fn push_range(&mut self, begin: u64, end: u64) {
        let before = self.ids.len();
        range_nodes(begin, end, &mut self.ids);
        self.counts.push(self.ids.len() - before);
    }

    fn resolve<S: NodeSource>(&self, src: &S) -> Result<Vec<Hash>, S::Error> {
        let hashes = src.nodes(&self.ids)?;
        let mut out = Vec::with_capacity(self.counts.len());
        let mut at = 0;
        for &n in &self.counts {
            out.push(fold_right(&hashes[at..at + n]));
            at += n;
        }
        Ok(out)
    }
}

/// Largest power of two strictly less than `n` (`n >= 2`).
fn split_point(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The root hash of the first `size` leaves.
pub fn root<S: NodeSource>(src: &S, size: u64) -> Result<Hash, S::Error> {
    if size == 0 {
        return Ok(empty_root());
    }
    let mut ids = Vec::new();
    range_nodes(0, size, &mut ids);
    Ok(fold_right(&src.nodes(&ids)?))
}

/// The inclusion proof (audit path) of leaf `index` in the tree of `size` leaves, leaf-side first.
pub fn inclusion_proof<S: NodeSource>(
    src: &S,
    index: u64,
    size: u64,
) -> Result<Result<Vec<Hash>, ProofError>, S::Error> {
    if index >= size {
        return Ok(Err(ProofError::IndexOutOfRange { index, size }));
    }
    // RFC 9162 §2.1.3.1, iterative: descend from the root, remembering the sibling ranges.
    let mut siblings = Vec::new();
    let (mut begin, mut end) = (0u64, size);
    while end - begin > 1 {
        let k = split_point(end - begin);
        if index < begin + k {
            siblings.push((begin + k, end));
            end = begin + k;
        } else {
            siblings.push((begin, begin + k));
            begin += k;
        }
    }
    let mut plan = Plan::default();
    for &(b, e) in siblings.iter().rev() {
        plan.push_range(b, e);
    }
    plan.resolve(src).map(Ok)
}

/// The consistency proof between the trees of `from` and `to` leaves (`0 < from <= to`).
pub fn consistency_proof<S: NodeSource>(
    src: &S,
    from: u64,
    to: u64,
) -> Result<Result<Vec<Hash>, ProofError>, S::Error> {
    if from == 0 || from > to {
        return Ok(Err(ProofError::BadSizes { from, to }));
    }
    // RFC 9162 §2.1.4.1 SUBPROOF, iterative; elements are collected root-side first.
    let mut ranges = Vec::new();
    let (mut begin, mut end, mut m, mut whole) = (0u64, to, from, true);
    loop {
        let n = end - begin;
        if m == n {
            if !whole {
                ranges.push((begin, end));
            }
            break;
        }
        let k = split_point(n);
        if m <= k {
            ranges.push((begin + k, end));
            end = begin + k;
        } else {
            ranges.push((begin, begin + k));
            begin += k;
            m -= k;
            whole = false;
        }
    }
    let mut plan = Plan::default();
    for &(b, e) in ranges.iter().rev() {
        plan.push_range(b, e);
    }
    plan.resolve(src).map(Ok)
}

/// How an inclusion path for `index` in a tree of `size` splits: `inner` hashes below the
/// point where the path meets the right edge, then `border` hashes of left siblings above it.
fn decompose(index: u64, size: u64) -> (usize, usize) {
    let inner = 64 - (index ^ (size - 1)).leading_zeros() as usize;
    let border = (index >> inner).count_ones() as usize;
    (inner, border)
}

fn chain_inner(mut seed: Hash, proof: &[Hash], index: u64) -> Hash {
    for (i, h) in proof.iter().enumerate() {
        seed = if (index >> i) & 1 == 0 {
            node_hash(&seed, h)
        } else {
            node_hash(h, &seed)
        };
    }
    seed
}

fn chain_inner_right(mut seed: Hash, proof: &[Hash], index: u64) -> Hash {
    for (i, h) in proof.iter().enumerate() {
        if (index >> i) & 1 == 1 {
            seed = node_hash(h, &seed);
        }
    }
    seed
}

fn chain_border_right(mut seed: Hash, proof: &[Hash]) -> Hash {
    for h in proof {
        seed = node_hash(h, &seed);
    }
    seed
}

/// The root that an inclusion proof implies for `leaf` at `index` in a tree of `size`.
pub fn root_from_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (inner, border) = decompose(index, size);
    if proof.len() != inner + border {
        return Err(ProofError::WrongLength {
            expected: inner + border,
            found: proof.len(),
        });
    }
    let res = chain_inner(*leaf, &proof[..inner], index);
    Ok(chain_border_right(res, &proof[inner..]))
}

/// Checks that `leaf` is at `index` of the tree of `size` leaves whose root is `root`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if root_from_inclusion(index, size, leaf, proof)? == *root {
        Ok(())
    } else {
        Err(ProofError::RootMismatch)
    }
}

/// Checks that the tree of `size1` leaves (root `root1`) is a prefix of the tree of `size2`
/// leaves (root `root2`). A proof from the empty tree is refused: it would prove nothing.
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    proof: &[Hash],
    root1: &Hash,
    root2: &Hash,
) -> Result<(), ProofError> {
    if size1 == 0 || size2 < size1 {
        return Err(ProofError::BadSizes {
            from: size1,
            to: size2,
        });
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(ProofError::NonEmpty);
        }
        return if root1 == root2 {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    // size1 < size2 from here on.
    if proof.is_empty() {
        return Err(ProofError::WrongLength {
            expected: 1,
            found: 0,
        });
    }
    let (inner, border) = decompose(size1 - 1, size2);
    let shift = size1.trailing_zeros() as usize;
    let inner = inner - shift;
    // When size1 is a power of two its root is itself a node of the larger tree and is not sent.
    let (seed, rest) = if size1 == 1u64 << shift {
        (*root1, proof)
    } else {
        (proof[0], &proof[1..])
    };
    if rest.len() != inner + border {
        return Err(ProofError::WrongLength {
            expected: proof.len() - rest.len() + inner + border,
            found: proof.len(),
        });
    }
    let mask = (size1 - 1) >> shift;
    let h1 = chain_border_right(
        chain_inner_right(seed, &rest[..inner], mask),
        &rest[inner..],
    );
    if h1 != *root1 {
        return Err(ProofError::RootMismatch);
    }
    let h2 = chain_border_right(chain_inner(seed, &rest[..inner], mask), &rest[inner..]);
    if h2 != *root2 {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// The right edge of a growing tree: the roots of the maximal complete subtrees of `[0, size)`.
///
/// Appending a leaf completes zero or more interior nodes; they are handed to the caller, which
/// stores them. This is all the state a writer needs in memory, `O(log n)` hashes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// Hashes of the subtrees in `range_nodes(0, size)` order (largest first).
    hashes: Vec<Hash>,
}

impl Frontier {
    pub fn new() -> Frontier {
        Frontier::default()
    }

    /// Rebuilds the frontier of `size` leaves from stored nodes.
    pub fn load<S: NodeSource>(src: &S, size: u64) -> Result<Frontier, S::Error> {
        let ids = Frontier::ids(size);
        let hashes = if ids.is_empty() {
            Vec::new()
        } else {
            src.nodes(&ids)?
        };
        Ok(Frontier { size, hashes })
    }

    /// The node ids a frontier of `size` leaves consists of.
    pub fn ids(size: u64) -> Vec<NodeId> {
        let mut ids = Vec::new();
        range_nodes(0, size, &mut ids);
        ids
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The frontier's subtrees with their ids, largest first.
    pub fn nodes(&self) -> impl Iterator<Item = (NodeId, Hash)> + '_ {
        Frontier::ids(self.size)
            .into_iter()
            .zip(self.hashes.iter().copied())
    }

    /// Appends a leaf; `completed` receives every interior node the leaf completes.
    pub fn push(&mut self, leaf: Hash, mut completed: impl FnMut(NodeId, Hash)) {
        let index = self.size;
        let mut hash = leaf;
        let mut level = 0u8;
        // Each trailing one bit of the old size is a same-sized left neighbour to merge with.
        let mut merges = index.trailing_ones();
        while merges > 0 {
            let left = self.hashes.pop().expect("frontier has a node per set bit");
            hash = node_hash(&left, &hash);
            level += 1;
            completed(NodeId::new(level, index >> level), hash);
            merges -= 1;
        }
        self.hashes.push(hash);
        self.size += 1;
    }

    pub fn root(&self) -> Hash {
        if self.hashes.is_empty() {
            empty_root()
        } else {
            fold_right(&self.hashes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use std::collections::HashMap;
    use std::convert::Infallible;

    /// Every complete node of a tree, computed naively.
    struct Full(HashMap<NodeId, Hash>);

    impl Full {
        fn build(n: u64) -> Full {
            let mut map = HashMap::new();
            let mut f = Frontier::new();
            for i in 0..n {
                let leaf = leaf_hash(&i.to_be_bytes());
                map.insert(NodeId::new(0, i), leaf);
                f.push(leaf, |id, h| {
                    map.insert(id, h);
                });
            }
            Full(map)
        }
    }

    impl NodeSource for Full {
        type Error = Infallible;
        fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, Infallible> {
            Ok(ids.iter().map(|id| self.0[id]).collect())
        }
    }

    /// MTH as RFC 9162 defines it, recursively over the leaf list.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split_point(n as u64) as usize;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    #[test]
    fn roots_match_the_recursive_definition() {
        let leaves: Vec<Hash> = (0..70u64).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let full = Full::build(70);
        let mut f = Frontier::new();
        for n in 0..=70u64 {
            assert_eq!(root(&full, n).unwrap(), mth(&leaves[..n as usize]), "n={n}");
            assert_eq!(f.root(), mth(&leaves[..n as usize]));
            if n < 70 {
                f.push(leaves[n as usize], |_, _| {});
            }
        }
    }

    #[test]
    fn every_proof_up_to_40_verifies() {
        let full = Full::build(40);
        for size in 1..=40u64 {
            let r = root(&full, size).unwrap();
            for i in 0..size {
                let p = inclusion_proof(&full, i, size).unwrap().unwrap();
                verify_inclusion(i, size, &full.0[&NodeId::new(0, i)], &p, &r).unwrap();
            }
            for from in 1..=size {
                let p = consistency_proof(&full, from, size).unwrap().unwrap();
                let r1 = root(&full, from).unwrap();
                verify_consistency(from, size, &p, &r1, &r).unwrap();
            }
        }
    }

    #[test]
    fn frontier_reloads_from_nodes() {
        let full = Full::build(37);
        let mut f = Frontier::new();
        for i in 0..37 {
            f.push(full.0[&NodeId::new(0, i)], |_, _| {});
            assert_eq!(Frontier::load(&full, i + 1).unwrap(), f);
        }
    }
}
