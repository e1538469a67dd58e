//! The Binary Merkle Tree (BMT) hash that addresses every Swarm chunk.
//!
//! Follows Bee `pkg/bmt` (`doc.go`, `hasher_goroutine.go`) and bee-js `src/chunk/bmt.ts`: the
//! payload is zero-padded to 4096 bytes, cut into 128 segments of 32 bytes, and reduced
//! pairwise with legacy Keccak-256 over seven levels (127 inner hashes). The chunk hash is
//! `keccak256(span(8, LE) ‖ root)`, so one full chunk costs exactly 128 Keccak-f[1600]
//! permutations.
//!
//! Every input hashed here is shorter than one Keccak-256 rate block (136 bytes), so the
//! sponge is a single permutation on a stack state, called through the `keccak` crate's
//! `f1600` directly instead of a streaming `Digest`.
//!
//! [`Tree`] keeps all levels so that changing one segment rehashes only its path to the root
//! (7 inner hashes plus the span hash). PSS nonce mining relies on it.

use std::sync::OnceLock;

/// Bytes in a chunk's span prefix.
pub const SPAN_SIZE: usize = 8;
/// Bytes in one BMT segment (and in one hash).
pub const SEGMENT_SIZE: usize = 32;
/// Segments in a chunk (the BMT's leaf count).
pub const BRANCHES: usize = 128;
/// Maximum payload bytes in a chunk.
pub const CHUNK_SIZE: usize = SEGMENT_SIZE * BRANCHES;
/// Inner levels above the segments: 2^7 = 128.
const DEPTH: usize = 7;

/// Errors from BMT hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BmtError {
    /// The payload is longer than one chunk.
    #[error("payload of {len} bytes exceeds 4096")]
    PayloadTooLarge {
        /// Length that was passed.
        len: usize,
    },
    /// A segment index is not below 128.
    #[error("segment index {index} out of range")]
    SegmentIndex {
        /// Index that was passed.
        index: usize,
    },
}

/// BMT root of `payload` (zero-padded to 4096 bytes).
pub fn root(payload: &[u8]) -> Result<[u8; 32], BmtError> {
    if payload.len() > CHUNK_SIZE {
        return Err(BmtError::PayloadTooLarge { len: payload.len() });
    }
    Ok(root_unchecked(payload))
}

/// Chunk hash `keccak256(span ‖ root(payload))`, with the span as u64 little-endian.
///
/// Any span is accepted (Bee's `cac.NewWithDataSpan`): intermediate chunks carry subtree
/// sizes and PSS trojan chunks carry a topic hint there.
pub fn hash(span: u64, payload: &[u8]) -> Result<[u8; 32], BmtError> {
    Ok(span_hash(span, &root(payload)?))
}

/// [`hash`] for callers whose payload is at most 4096 bytes by construction; longer input
/// is truncated (never reached by those callers).
pub(crate) fn hash_fitting(span: u64, payload: &[u8]) -> [u8; 32] {
    span_hash(
        span,
        &root_unchecked(&payload[..payload.len().min(CHUNK_SIZE)]),
    )
}

/// A BMT over one 4096-byte buffer with every level cached.
///
/// [`Tree::set_segment`] recomputes only the changed segment's path, so a changed 32-byte
/// nonce costs 7 inner hashes instead of 127.
#[derive(Clone)]
pub struct Tree {
    segments: [u8; CHUNK_SIZE],
    /// Levels 1..=7 stored one after another: 64 + 32 + 16 + 8 + 4 + 2 + 1 = 127 nodes.
    nodes: [[u8; 32]; BRANCHES - 1],
}

impl std::fmt::Debug for Tree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bmt::Tree(root {})", hex::encode(self.root()))
    }
}

impl Tree {
    /// Builds the tree over `payload`, zero-padded to 4096 bytes.
    pub fn new(payload: &[u8]) -> Result<Self, BmtError> {
        if payload.len() > CHUNK_SIZE {
            return Err(BmtError::PayloadTooLarge { len: payload.len() });
        }
        let mut segments = [0u8; CHUNK_SIZE];
        segments[..payload.len()].copy_from_slice(payload);
        let mut tree = Self {
            segments,
            nodes: [[0u8; 32]; BRANCHES - 1],
        };
        let zeros = zero_hashes();
        let live_pairs = payload.len().div_ceil(2 * SEGMENT_SIZE);
        for i in 0..BRANCHES / 2 {
            tree.nodes[i] = if i < live_pairs {
                let off = i * 2 * SEGMENT_SIZE;
                hash_pair_bytes(&tree.segments[off..off + 2 * SEGMENT_SIZE])
            } else {
                zeros[1]
            };
        }
        for level in 2..=DEPTH {
            for i in 0..(BRANCHES >> level) {
                tree.recompute_node(level, i);
            }
        }
        Ok(tree)
    }

    /// The 4096-byte zero-padded buffer.
    pub fn segments(&self) -> &[u8; CHUNK_SIZE] {
        &self.segments
    }

    /// The BMT root.
    pub fn root(&self) -> [u8; 32] {
        self.nodes[level_offset(DEPTH)]
    }

    /// The chunk hash for `span`.
    pub fn hash(&self, span: u64) -> [u8; 32] {
        span_hash(span, &self.root())
    }

    /// Replaces segment `index` (bytes `32·index .. 32·index+32`) and rehashes its path.
    pub fn set_segment(&mut self, index: usize, segment: &[u8; 32]) -> Result<(), BmtError> {
        if index >= BRANCHES {
            return Err(BmtError::SegmentIndex { index });
        }
        let off = index * SEGMENT_SIZE;
        self.segments[off..off + SEGMENT_SIZE].copy_from_slice(segment);
        let pair = index / 2;
        let pair_off = pair * 2 * SEGMENT_SIZE;
        self.nodes[pair] = hash_pair_bytes(&self.segments[pair_off..pair_off + 2 * SEGMENT_SIZE]);
        let mut i = pair;
        for level in 2..=DEPTH {
            i /= 2;
            self.recompute_node(level, i);
        }
        Ok(())
    }

    fn recompute_node(&mut self, level: usize, i: usize) {
        let below = level_offset(level - 1);
        let left = self.nodes[below + 2 * i];
        let right = self.nodes[below + 2 * i + 1];
        self.nodes[level_offset(level) + i] = hash_pair(&left, &right);
    }
}

/// Where level `level` (1..=7) starts in [`Tree::nodes`].
const fn level_offset(level: usize) -> usize {
    BRANCHES - 2 * (BRANCHES >> level)
}

/// `zero_hashes()[k]` is the root of an all-zero subtree of height `k` (k = 0 is a zero
/// segment). Short payloads reuse them for their padding instead of hashing zeros.
fn zero_hashes() -> &'static [[u8; 32]; DEPTH + 1] {
    static ZEROS: OnceLock<[[u8; 32]; DEPTH + 1]> = OnceLock::new();
    ZEROS.get_or_init(|| {
        let mut z = [[0u8; 32]; DEPTH + 1];
        for k in 1..=DEPTH {
            z[k] = hash_pair(&z[k - 1], &z[k - 1]);
        }
        z
    })
}

fn root_unchecked(payload: &[u8]) -> [u8; 32] {
    let zeros = zero_hashes();
    let mut level = [[0u8; 32]; BRANCHES / 2];
    let mut live = payload.len().div_ceil(2 * SEGMENT_SIZE);
    let full_pairs = payload.len() / (2 * SEGMENT_SIZE);
    for (i, node) in level.iter_mut().enumerate().take(full_pairs) {
        let off = i * 2 * SEGMENT_SIZE;
        *node = hash_pair_bytes(&payload[off..off + 2 * SEGMENT_SIZE]);
    }
    if full_pairs < live {
        let mut last = [0u8; 2 * SEGMENT_SIZE];
        let off = full_pairs * 2 * SEGMENT_SIZE;
        last[..payload.len() - off].copy_from_slice(&payload[off..]);
        level[full_pairs] = hash_pair_bytes(&last);
    }
    for node in level.iter_mut().skip(live) {
        *node = zeros[1];
    }
    let mut width = BRANCHES / 2;
    for zero in &zeros[2..] {
        width /= 2;
        live = live.div_ceil(2);
        for i in 0..width {
            level[i] = if i < live {
                hash_pair(&level[2 * i], &level[2 * i + 1])
            } else {
                *zero
            };
        }
    }
    level[0]
}

/// Keccak-256 rate in 64-bit lanes (136 bytes).
const RATE_LANES: usize = 17;

/// keccak256 of exactly 64 bytes: one permutation on a stack state.
#[inline]
fn hash_pair_bytes(pair: &[u8]) -> [u8; 32] {
    debug_assert_eq!(pair.len(), 64);
    let mut st = [0u64; 25];
    for (lane, word) in st.iter_mut().zip(pair.chunks_exact(8)) {
        *lane = u64::from_le_bytes(word.try_into().unwrap_or_default());
    }
    squeeze(st, 8)
}

#[inline]
fn hash_pair(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut st = [0u64; 25];
    for (lane, word) in st
        .iter_mut()
        .zip(left.chunks_exact(8).chain(right.chunks_exact(8)))
    {
        *lane = u64::from_le_bytes(word.try_into().unwrap_or_default());
    }
    squeeze(st, 8)
}

/// keccak256(span_le(8) ‖ root(32)): 40 bytes, one permutation.
#[inline]
fn span_hash(span: u64, root: &[u8; 32]) -> [u8; 32] {
    let mut st = [0u64; 25];
    st[0] = span;
    for (lane, word) in st[1..5].iter_mut().zip(root.chunks_exact(8)) {
        *lane = u64::from_le_bytes(word.try_into().unwrap_or_default());
    }
    squeeze(st, 5)
}

/// Applies Keccak's `0x01 … 0x80` padding after `used` lanes, permutes once, and returns
/// the first 32 bytes.
#[inline(always)]
fn squeeze(mut st: [u64; 25], used: usize) -> [u8; 32] {
    st[used] ^= 0x01;
    st[RATE_LANES - 1] ^= 0x80 << 56;
    keccak::f1600(&mut st);
    let mut out = [0u8; 32];
    for (dst, lane) in out.chunks_exact_mut(8).zip(&st[..4]) {
        dst.copy_from_slice(&lane.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{keccak256, keccak256_concat};

    /// A plain, allocation-heavy BMT straight from the spec, to check the fast paths.
    fn reference_root(payload: &[u8]) -> [u8; 32] {
        let mut buf = payload.to_vec();
        buf.resize(CHUNK_SIZE, 0);
        let mut level: Vec<[u8; 32]> = buf.chunks(64).map(keccak256).collect();
        while level.len() > 1 {
            level = level
                .chunks(2)
                .map(|p| keccak256_concat(&[&p[0], &p[1]]))
                .collect();
        }
        level[0]
    }

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn fast_root_matches_the_plain_definition_at_every_boundary() {
        for len in [
            0, 1, 31, 32, 33, 63, 64, 65, 127, 128, 129, 2048, 4000, 4095, 4096,
        ] {
            let p = sample(len);
            assert_eq!(root(&p), Ok(reference_root(&p)), "len {len}");
            let t = Tree::new(&p).expect("fits");
            assert_eq!(t.root(), reference_root(&p), "tree len {len}");
        }
    }

    #[test]
    fn span_hash_is_keccak_of_span_and_root() {
        let p = sample(100);
        let r = reference_root(&p);
        let expected = keccak256_concat(&[&1234u64.to_le_bytes(), &r]);
        assert_eq!(hash(1234, &p), Ok(expected));
    }

    #[test]
    fn set_segment_equals_a_full_rebuild() {
        let mut p = sample(4096);
        let mut t = Tree::new(&p).expect("fits");
        for (n, index) in [0usize, 1, 2, 63, 64, 126, 127].into_iter().enumerate() {
            let seg = keccak256([n as u8]);
            t.set_segment(index, &seg).expect("in range");
            p[index * 32..index * 32 + 32].copy_from_slice(&seg);
            assert_eq!(t.root(), reference_root(&p), "segment {index}");
            assert_eq!(t.segments()[..], p[..]);
        }
    }

    #[test]
    fn oversize_inputs_are_typed_errors() {
        assert_eq!(
            root(&[0; 4097]),
            Err(BmtError::PayloadTooLarge { len: 4097 })
        );
        assert!(matches!(
            Tree::new(&[0; 5000]),
            Err(BmtError::PayloadTooLarge { len: 5000 })
        ));
        let mut t = Tree::new(&[]).expect("empty fits");
        assert_eq!(
            t.set_segment(128, &[0; 32]),
            Err(BmtError::SegmentIndex { index: 128 })
        );
    }
}
