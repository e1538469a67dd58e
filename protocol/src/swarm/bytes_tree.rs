//! The `/bytes` chunk tree: splitting content into chunks and joining it back.
//!
//! Redundancy level NONE only, as Bee `pkg/file/pipeline/hashtrie/hashtrie.go` builds it:
//! 4096-byte leaves whose span is their length; every 128 references are wrapped into an
//! intermediate chunk whose payload is the references and whose span is the sum of the child
//! spans; at the end a level holding one reference carries it up unchanged, a level holding
//! more is wrapped. Empty content is one empty leaf (Bee `pipeline/feeder` `Sum`).
//!
//! Erasure-coded trees (Bee 2.8.1 uploads with MEDIUM by default) are out of scope: asking
//! for them is [`BytesTreeError::RedundancyUnsupported`].
//!
//! The [`join`]er reads a tree through the [`ChunkSource`] trait and checks every chunk: it
//! must hash to its reference, and its span and payload size must be exactly what the
//! parent's span implies, so only canonical trees are accepted.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::num::NonZeroUsize;

use super::bmt::{self, BRANCHES, CHUNK_SIZE, SEGMENT_SIZE};
use super::chunk::{Cac, ChunkAddress, ChunkError};

/// Errors from splitting and joining chunk trees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BytesTreeError {
    /// An erasure-coded tree was requested or found; only level NONE is implemented.
    #[error("redundancy level {0} (erasure coding) is not supported")]
    RedundancyUnsupported(u8),
    /// A referenced chunk is not in the source.
    #[error("chunk {0} not found")]
    MissingChunk(ChunkAddress),
    /// A chunk's data is malformed or does not hash to its reference.
    #[error("chunk {address} is invalid: {source}")]
    InvalidChunk {
        /// Reference the chunk was fetched under.
        address: ChunkAddress,
        /// What was wrong with it.
        source: ChunkError,
    },
    /// A child's span differs from what its parent's span implies.
    #[error("chunk {address} has span {actual}, its parent implies {expected}")]
    SpanMismatch {
        /// The child chunk.
        address: ChunkAddress,
        /// Span implied by the parent.
        expected: u64,
        /// Span the child carries.
        actual: u64,
    },
    /// A chunk's payload length does not fit its span.
    #[error("chunk {address} with span {span} has a payload of {payload_len} bytes")]
    SizeMismatch {
        /// The chunk.
        address: ChunkAddress,
        /// Its span.
        span: u64,
        /// Its payload length.
        payload_len: usize,
    },
    /// The content is larger than the caller's cap.
    #[error("content of {span} bytes exceeds the cap of {max}")]
    TooLarge {
        /// The root span.
        span: u64,
        /// The caller's cap.
        max: u64,
    },
}

/// Redundancy levels of Bee's `Swarm-Redundancy-Level` header (`pkg/file/redundancy/level.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redundancy {
    /// No erasure coding: the tree this module builds.
    None = 0,
    /// MEDIUM (Bee 2.8.1's upload default).
    Medium = 1,
    /// STRONG.
    Strong = 2,
    /// INSANE.
    Insane = 3,
    /// PARANOID.
    Paranoid = 4,
}

impl Redundancy {
    fn require_none(self) -> Result<(), BytesTreeError> {
        match self {
            Redundancy::None => Ok(()),
            other => Err(BytesTreeError::RedundancyUnsupported(other as u8)),
        }
    }
}

/// Somewhere chunks can be read from by address, returning the wire data `span ‖ payload`.
///
/// The joiner verifies what it gets, so a source may be untrusted.
pub trait ChunkSource {
    /// The chunk stored under `address`, if any.
    fn get(&self, address: &ChunkAddress) -> Option<Cow<'_, [u8]>>;
}

impl<S: BuildHasher> ChunkSource for HashMap<ChunkAddress, Vec<u8>, S> {
    fn get(&self, address: &ChunkAddress) -> Option<Cow<'_, [u8]>> {
        HashMap::get(self, address).map(|d| Cow::Borrowed(d.as_slice()))
    }
}

impl ChunkSource for BTreeMap<ChunkAddress, Vec<u8>> {
    fn get(&self, address: &ChunkAddress) -> Option<Cow<'_, [u8]>> {
        BTreeMap::get(self, address).map(|d| Cow::Borrowed(d.as_slice()))
    }
}

/// The outcome of [`split`]: the root reference, the content length, and every chunk.
#[derive(Debug, Clone)]
pub struct Split {
    /// Reference of the root chunk.
    pub root: ChunkAddress,
    /// Content length (the root chunk's span).
    pub span: u64,
    /// All chunks, leaves and intermediates, each emitted once in creation order (the root
    /// last). Identical leaves appear once per occurrence.
    pub chunks: Vec<Cac>,
}

/// Splits `data` into its chunk tree.
pub fn split(data: &[u8], redundancy: Redundancy) -> Result<Split, BytesTreeError> {
    let mut splitter = Splitter::new(redundancy)?;
    let mut chunks = Vec::new();
    let mut sink = |c: Cac| chunks.push(c);
    splitter.write(data, &mut sink);
    let (root, span) = splitter.finish(&mut sink);
    Ok(Split { root, span, chunks })
}

/// The root reference of `data` without keeping the chunks: leaves are hashed straight
/// from `data`, without building chunk values.
pub fn root(data: &[u8], redundancy: Redundancy) -> Result<ChunkAddress, BytesTreeError> {
    redundancy.require_none()?;
    let refs: Vec<[u8; 32]> = data.chunks(CHUNK_SIZE).map(leaf_hash).collect();
    Ok(root_from_leaf_refs(data, &refs))
}

/// The root reference of `data`, hashing the leaves on `threads` scoped worker threads.
///
/// Leaves are 127/128 of the work; intermediate chunks are hashed on the calling thread.
pub fn root_parallel(
    data: &[u8],
    redundancy: Redundancy,
    threads: NonZeroUsize,
) -> Result<ChunkAddress, BytesTreeError> {
    redundancy.require_none()?;
    let leaves = data.len().div_ceil(CHUNK_SIZE);
    let mut refs = vec![[0u8; 32]; leaves];
    let per_thread = leaves.div_ceil(threads.get()).max(1);
    std::thread::scope(|scope| {
        for (refs, data) in refs
            .chunks_mut(per_thread)
            .zip(data.chunks(per_thread * CHUNK_SIZE))
        {
            scope.spawn(move || {
                for (r, leaf) in refs.iter_mut().zip(data.chunks(CHUNK_SIZE)) {
                    *r = leaf_hash(leaf);
                }
            });
        }
    });
    Ok(root_from_leaf_refs(data, &refs))
}

/// Builds the levels above the leaf references of `data` (one per 4096-byte piece).
fn root_from_leaf_refs(data: &[u8], refs: &[[u8; 32]]) -> ChunkAddress {
    if data.is_empty() {
        // Empty content is one empty leaf, which is its own root.
        return ChunkAddress::from_bytes(leaf_hash(&[]));
    }
    let mut trie = Trie::default();
    for (r, leaf) in refs.iter().zip(data.chunks(CHUNK_SIZE)) {
        trie.push(
            0,
            leaf.len() as u64,
            ChunkAddress::from_bytes(*r),
            &mut |_| {},
        );
    }
    trie.finish(&mut |_| {}).0
}

/// Incremental splitter: feed content with [`Splitter::write`], collect chunks through the
/// sink as they are completed, and get the root from [`Splitter::finish`].
#[derive(Debug)]
pub struct Splitter {
    leaf: Vec<u8>,
    wrote_any: bool,
    trie: Trie,
}

impl Splitter {
    /// A splitter for the given redundancy level (only [`Redundancy::None`]).
    pub fn new(redundancy: Redundancy) -> Result<Self, BytesTreeError> {
        redundancy.require_none()?;
        Ok(Self {
            leaf: Vec::with_capacity(CHUNK_SIZE),
            wrote_any: false,
            trie: Trie::default(),
        })
    }

    /// Appends content; every completed chunk is passed to `sink`.
    pub fn write(&mut self, mut data: &[u8], sink: &mut dyn FnMut(Cac)) {
        while !data.is_empty() {
            let take = (CHUNK_SIZE - self.leaf.len()).min(data.len());
            self.leaf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.leaf.len() == CHUNK_SIZE {
                self.flush_leaf(sink);
            }
        }
    }

    /// Flushes the last leaf, wraps the levels, and returns the root reference and span.
    pub fn finish(mut self, sink: &mut dyn FnMut(Cac)) -> (ChunkAddress, u64) {
        if !self.leaf.is_empty() || !self.wrote_any {
            self.flush_leaf(sink);
        }
        self.trie.finish(sink)
    }

    fn flush_leaf(&mut self, sink: &mut dyn FnMut(Cac)) {
        let chunk = Cac::from_fitting(self.leaf.len() as u64, std::mem::take(&mut self.leaf));
        let (span, address) = (chunk.span(), *chunk.address());
        sink(chunk);
        self.trie.push(0, span, address, sink);
        self.leaf.reserve(CHUNK_SIZE);
        self.wrote_any = true;
    }
}

/// Reads the content under `root` back from `source`, refusing content over `max_len` bytes.
pub fn join(
    source: &impl ChunkSource,
    root: &ChunkAddress,
    max_len: u64,
) -> Result<Vec<u8>, BytesTreeError> {
    let chunk = fetch(source, root)?;
    let span = chunk.span();
    // Bee marks erasure-coded parents by setting the top bit of the span's last byte
    // (`redundancy.EncodeLevel`); no real content is 2^63 bytes long.
    let top = span.to_le_bytes()[7];
    if top & 0x80 != 0 {
        return Err(BytesTreeError::RedundancyUnsupported(top & 0x7f));
    }
    if span > max_len {
        return Err(BytesTreeError::TooLarge { span, max: max_len });
    }
    // The span is still unverified here, so reserve at most 16 MiB up front.
    let mut out = Vec::with_capacity(usize::try_from(span.min(1 << 24)).unwrap_or(0));
    join_node(source, &chunk, &mut out)?;
    Ok(out)
}

/// Bytes covered by each child of an intermediate chunk with this span: the largest
/// `4096·128^k` that still needs more than one child.
fn child_capacity(span: u64) -> u64 {
    let mut cap = CHUNK_SIZE as u64;
    while let Some(next) = cap.checked_mul(BRANCHES as u64) {
        if next >= span {
            break;
        }
        cap = next;
    }
    cap
}

fn join_node(
    source: &impl ChunkSource,
    chunk: &Cac,
    out: &mut Vec<u8>,
) -> Result<(), BytesTreeError> {
    let span = chunk.span();
    let payload = chunk.payload();
    let size_mismatch = || BytesTreeError::SizeMismatch {
        address: *chunk.address(),
        span,
        payload_len: payload.len(),
    };
    if span <= CHUNK_SIZE as u64 {
        if payload.len() as u64 != span {
            return Err(size_mismatch());
        }
        out.extend_from_slice(payload);
        return Ok(());
    }
    let cap = child_capacity(span);
    let children = span.div_ceil(cap);
    if !payload.len().is_multiple_of(SEGMENT_SIZE)
        || (payload.len() / SEGMENT_SIZE) as u64 != children
    {
        return Err(size_mismatch());
    }
    let mut remaining = span;
    for reference in payload.chunks_exact(SEGMENT_SIZE) {
        let address =
            ChunkAddress::try_from(reference).map_err(|source| BytesTreeError::InvalidChunk {
                address: *chunk.address(),
                source,
            })?;
        let child = fetch(source, &address)?;
        let expected = remaining.min(cap);
        if child.span() != expected {
            return Err(BytesTreeError::SpanMismatch {
                address,
                expected,
                actual: child.span(),
            });
        }
        join_node(source, &child, out)?;
        remaining -= expected;
    }
    Ok(())
}

fn fetch(source: &impl ChunkSource, address: &ChunkAddress) -> Result<Cac, BytesTreeError> {
    let data = source
        .get(address)
        .ok_or(BytesTreeError::MissingChunk(*address))?;
    Cac::from_data_at(address, &data).map_err(|source| BytesTreeError::InvalidChunk {
        address: *address,
        source,
    })
}

fn leaf_hash(leaf: &[u8]) -> [u8; 32] {
    // Leaves come from `chunks(CHUNK_SIZE)`, so they always fit.
    bmt::hash_fitting(leaf.len() as u64, leaf)
}

/// The levels of references waiting to be wrapped. `levels[0]` holds leaf references.
#[derive(Debug, Default)]
struct Trie {
    levels: Vec<Vec<(u64, ChunkAddress)>>,
}

impl Trie {
    fn push(&mut self, level: usize, span: u64, address: ChunkAddress, sink: &mut dyn FnMut(Cac)) {
        if self.levels.len() <= level {
            self.levels.resize_with(level + 1, Vec::new);
        }
        self.levels[level].push((span, address));
        if self.levels[level].len() == BRANCHES {
            let (span, address) = self.wrap(level, sink);
            self.push(level + 1, span, address, sink);
        }
    }

    /// Wraps all references of `level` into one intermediate chunk and empties the level.
    fn wrap(&mut self, level: usize, sink: &mut dyn FnMut(Cac)) -> (u64, ChunkAddress) {
        let refs = std::mem::take(&mut self.levels[level]);
        let span = refs.iter().map(|(s, _)| *s).fold(0u64, u64::saturating_add);
        let mut payload = Vec::with_capacity(refs.len() * SEGMENT_SIZE);
        for (_, a) in &refs {
            payload.extend_from_slice(a.as_bytes());
        }
        let chunk = Cac::from_fitting(span, payload);
        let address = *chunk.address();
        sink(chunk);
        (span, address)
    }

    fn finish(mut self, sink: &mut dyn FnMut(Cac)) -> (ChunkAddress, u64) {
        let mut level = 0;
        while level < self.levels.len() {
            let above_empty = self.levels[level + 1..].iter().all(Vec::is_empty);
            match self.levels[level].len() {
                0 => {}
                1 if above_empty => {
                    let (span, address) = self.levels[level][0];
                    return (address, span);
                }
                1 => {
                    let (span, address) = self.levels[level][0];
                    self.levels[level].clear();
                    self.push(level + 1, span, address, sink);
                }
                _ => {
                    let (span, address) = self.wrap(level, sink);
                    self.push(level + 1, span, address, sink);
                }
            }
            level += 1;
        }
        // Unreachable: `Splitter::finish` always pushes at least one leaf.
        (ChunkAddress::from_bytes([0; 32]), 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    fn store(split: &Split) -> HashMap<ChunkAddress, Vec<u8>> {
        split
            .chunks
            .iter()
            .map(|c| (*c.address(), c.to_data()))
            .collect()
    }

    #[test]
    fn split_then_join_round_trips_across_tree_shapes() {
        for len in [
            0,
            1,
            4095,
            4096,
            4097,
            128 * 4096,
            128 * 4096 + 1,
            129 * 4096,
        ] {
            let data = sample(len);
            let s = split(&data, Redundancy::None).expect("level none");
            assert_eq!(s.span, len as u64);
            assert_eq!(
                s.chunks.last().map(|c| *c.address()),
                Some(s.root),
                "root is last"
            );
            assert_eq!(
                join(&store(&s), &s.root, u64::MAX),
                Ok(data.clone()),
                "len {len}"
            );
            assert_eq!(root(&data, Redundancy::None), Ok(s.root));
            let two = NonZeroUsize::new(3).expect("non-zero");
            assert_eq!(root_parallel(&data, Redundancy::None, two), Ok(s.root));
        }
    }

    #[test]
    fn writes_in_odd_pieces_give_the_same_root() {
        let data = sample(3 * 4096 + 17);
        let mut sp = Splitter::new(Redundancy::None).expect("none");
        for piece in data.chunks(1000) {
            sp.write(piece, &mut |_| {});
        }
        let (r, span) = sp.finish(&mut |_| {});
        assert_eq!(Ok(r), root(&data, Redundancy::None));
        assert_eq!(span, data.len() as u64);
    }

    #[test]
    fn erasure_coding_is_refused() {
        assert_eq!(
            split(b"x", Redundancy::Medium).map(|s| s.root),
            Err(BytesTreeError::RedundancyUnsupported(1))
        );
        assert!(Splitter::new(Redundancy::Paranoid).is_err());
        let mut span = 5000u64.to_le_bytes();
        span[7] = 0x80 | 2;
        let c = Cac::with_span(u64::from_le_bytes(span), &[0; 64]).expect("fits");
        let src: HashMap<_, _> = [(*c.address(), c.to_data())].into();
        assert_eq!(
            join(&src, c.address(), u64::MAX),
            Err(BytesTreeError::RedundancyUnsupported(2))
        );
    }

    #[test]
    fn joiner_reports_each_defect() {
        let s = split(&sample(2 * 4096 + 5), Redundancy::None).expect("none");
        let full = store(&s);

        let mut missing = full.clone();
        let leaf = *s.chunks[1].address();
        missing.remove(&leaf);
        assert_eq!(
            join(&missing, &s.root, u64::MAX),
            Err(BytesTreeError::MissingChunk(leaf))
        );

        let mut tampered = full.clone();
        tampered.insert(leaf, Cac::new(b"other").expect("fits").to_data());
        assert!(matches!(
            join(&tampered, &s.root, u64::MAX),
            Err(BytesTreeError::InvalidChunk { address, source: ChunkError::AddressMismatch { .. } })
                if address == leaf
        ));

        assert_eq!(
            join(&full, &s.root, 100),
            Err(BytesTreeError::TooLarge {
                span: 2 * 4096 + 5,
                max: 100
            })
        );

        // A parent whose span promises more bytes than its children hold.
        let bad_root = Cac::with_span(2 * 4096 + 6, s.chunks[3].payload()).expect("fits");
        let mut lying = full.clone();
        lying.insert(*bad_root.address(), bad_root.to_data());
        assert!(matches!(
            join(&lying, bad_root.address(), u64::MAX),
            Err(BytesTreeError::SpanMismatch {
                expected: 6,
                actual: 5,
                ..
            })
        ));

        // A leaf whose payload is shorter than its span.
        let short = Cac::with_span(10, b"abc").expect("fits");
        let src: HashMap<_, _> = [(*short.address(), short.to_data())].into();
        assert!(matches!(
            join(&src, short.address(), u64::MAX),
            Err(BytesTreeError::SizeMismatch {
                span: 10,
                payload_len: 3,
                ..
            })
        ));
    }

    #[test]
    fn child_capacity_follows_the_tree_levels() {
        assert_eq!(child_capacity(4097), 4096);
        assert_eq!(child_capacity(128 * 4096), 4096);
        assert_eq!(child_capacity(128 * 4096 + 1), 128 * 4096);
        assert_eq!(child_capacity(u64::MAX), 4096 * 128u64.pow(7));
    }
}
