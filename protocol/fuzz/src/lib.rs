//! Custom mutators shared by the fuzz targets (issue #18): they keep most of what libFuzzer
//! tries past each target's first parser, so its time goes to the checks behind it.
//!
//! Blind byte mutation of a JSON text, an RLP list or a protobuf message almost always
//! yields something the first parser refuses; libFuzzer keeps such inputs when they reach a
//! new error branch, and a corpus of them mostly tests error paths. [`mutate`] instead
//! 1. one time in [`FREE_ONE_IN`] does libFuzzer's own mutation, untouched, so error paths
//!    are still explored;
//! 2. otherwise edits the input through its grammar ([`Format`]): parse after a fixed
//!    prefix, change one node (a leaf's bytes with libFuzzer's mutator, a number to an edge
//!    value, a list element dropped or repeated, a JSON key removed, a hex string's bytes),
//!    re-encode canonically; a byte mutation when the input does not parse;
//! 3. keeps the first of up to `tries` candidates that the target's first parser accepts;
//!    when none does, the input stays as it was (libFuzzer runs it again: a wasted run, but
//!    no refused input enters the corpus through this path).

use libfuzzer_sys::fuzzer_mutate;

pub mod json;
pub mod proto;
pub mod rlp;

/// One mutation in this many is libFuzzer's own, unconstrained.
pub const FREE_ONE_IN: u32 = 64;

/// The grammar of a target's input after its prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Bytes without a grammar this crate knows: byte mutations only.
    Raw,
    /// One RLP item.
    Rlp,
    /// A JSON document.
    Json,
    /// A protobuf message.
    Proto,
}

/// A small deterministic generator seeded by libFuzzer's seed (xorshift32).
pub struct Rng(u32);

impl Rng {
    /// From libFuzzer's seed.
    pub fn new(seed: u32) -> Self {
        Rng(seed | 1)
    }

    /// The next value.
    pub fn next(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        self.next() as usize % n.max(1)
    }
}

/// libFuzzer's byte mutation of `bytes`, with room to grow to `max`.
pub fn bytes(bytes: &[u8], max: usize) -> Vec<u8> {
    let max = max.max(bytes.len()).max(1);
    let mut buf = bytes.to_vec();
    buf.resize(max, 0);
    let n = fuzzer_mutate(&mut buf, bytes.len(), max);
    buf.truncate(n);
    buf
}

/// The body of a `fuzz_mutator!`: see the module comment. `prefix` bytes (mode bytes, a
/// topic) are kept out of the grammar and mutated only by the free mutations.
#[allow(clippy::too_many_arguments)]
pub fn mutate(
    data: &mut [u8],
    size: usize,
    max_size: usize,
    seed: u32,
    prefix: usize,
    format: Format,
    tries: usize,
    passes: fn(&[u8]) -> bool,
) -> usize {
    let edit = move |input: &[u8], rng: &mut Rng, room: usize| {
        structured(input, prefix, format, rng, room)
    };
    mutate_with(data, size, max_size, seed, tries, &edit, passes)
}

/// [`mutate`] with a target's own structural edit (e.g. one that re-signs what it
/// changed, for formats whose first parser checks a signature).
pub fn mutate_with(
    data: &mut [u8],
    size: usize,
    max_size: usize,
    seed: u32,
    tries: usize,
    edit: &dyn Fn(&[u8], &mut Rng, usize) -> Option<Vec<u8>>,
    passes: fn(&[u8]) -> bool,
) -> usize {
    let mut rng = Rng::new(seed);
    if rng.below(FREE_ONE_IN as usize) == 0 {
        return fuzzer_mutate(data, size, max_size);
    }
    let original = data[..size].to_vec();
    for _ in 0..tries.max(1) {
        let candidate =
            edit(&original, &mut rng, max_size).unwrap_or_else(|| bytes(&original, max_size));
        if candidate.len() > max_size {
            continue;
        }
        if passes(&candidate) {
            return put(data, &candidate);
        }
    }
    size
}

fn put(data: &mut [u8], candidate: &[u8]) -> usize {
    data[..candidate.len()].copy_from_slice(candidate);
    candidate.len()
}

fn structured(
    input: &[u8],
    prefix: usize,
    format: Format,
    rng: &mut Rng,
    max_size: usize,
) -> Option<Vec<u8>> {
    if input.len() < prefix {
        return None;
    }
    let (head, body) = input.split_at(prefix);
    let room = max_size.saturating_sub(prefix);
    let body = match format {
        Format::Raw => return None,
        Format::Rlp => rlp::mutate(body, rng, room)?,
        Format::Json => json::mutate(body, rng, room)?,
        Format::Proto => proto::mutate(body, rng, room)?,
    };
    Some([head, &body].concat())
}

/// Edge values for integers of any width.
pub fn edge_u64(rng: &mut Rng, old: u64) -> u64 {
    const EDGES: [u64; 12] = [
        0,
        1,
        0x7f,
        0x80,
        0xff,
        0xffff,
        0x7fff_ffff,
        0xffff_ffff,
        0x1_0000_0000,
        i64::MAX as u64,
        u64::MAX,
        1_700_000_000,
    ];
    match rng.below(4) {
        0 => old.wrapping_add(1),
        1 => old.wrapping_sub(1),
        2 => old ^ (1 << rng.below(64)),
        _ => EDGES[rng.below(EDGES.len())],
    }
}
