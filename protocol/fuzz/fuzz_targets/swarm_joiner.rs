//! The `/bytes` joiner over a fuzzed chunk store.
//!
//! The input describes chunks; intermediate chunks reference earlier ones by index, so the
//! fuzzer can build deep trees without computing hashes. Property: the joiner never
//! panics, and whatever it accepts is canonical: the output has the root's span as length
//! and splitting it again gives the same root.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use staples_protocol::swarm::bytes_tree::{self, Redundancy};
use staples_protocol::swarm::chunk::{Cac, ChunkAddress};
use staples_protocol_fuzz::{Format, mutate};

const MAX_LEN: u64 = 1 << 22;

/// The chunks the input describes, and the store holding those not left out.
fn build(data: &[u8]) -> (HashMap<ChunkAddress, Vec<u8>>, Vec<Cac>) {
    let mut store: HashMap<ChunkAddress, Vec<u8>> = HashMap::new();
    let mut made: Vec<Cac> = Vec::new();
    let mut rest = data;
    // Record: kind(1) span_hint(2) len(1) body(len); kind bit 0: leaf or intermediate;
    // bit 1: leave the chunk out of the store (a missing chunk).
    while let Some((head, tail)) = rest.split_first_chunk::<4>() {
        let [kind, s0, s1, len] = *head;
        let len = usize::from(len).min(tail.len());
        let (body, tail) = tail.split_at(len);
        rest = tail;
        let chunk = if kind & 1 == 0 || made.is_empty() {
            // Leaf: body repeated to reach a length chosen by the span hint.
            let want = usize::from(u16::from_be_bytes([s0, s1])) % 4097;
            let payload: Vec<u8> = body.iter().copied().cycle().take(want).collect();
            let span = if kind & 4 == 0 {
                payload.len() as u64
            } else {
                u64::from(s0)
            };
            Cac::with_span(span, &payload)
        } else {
            // Intermediate: references to earlier chunks, span = sum of their spans unless
            // bit 2 asks for a raw span.
            let refs: Vec<&Cac> = body
                .iter()
                .map(|i| &made[usize::from(*i) % made.len()])
                .collect();
            let mut payload = Vec::with_capacity(refs.len() * 32);
            for c in &refs {
                payload.extend_from_slice(c.address().as_bytes());
            }
            let sum = refs
                .iter()
                .map(|c| c.span())
                .fold(0u64, u64::saturating_add);
            let span = if kind & 4 == 0 {
                sum
            } else {
                u64::from(u16::from_be_bytes([s0, s1]))
            };
            Cac::with_span(span, &payload)
        };
        let Ok(chunk) = chunk else { continue };
        if kind & 2 == 0 {
            store.insert(*chunk.address(), chunk.to_data());
        }
        made.push(chunk);
        if made.len() > 64 {
            break;
        }
    }
    (store, made)
}

fuzz_target!(|data: &[u8]| {
    let (store, made) = build(data);
    let Some(root) = made.last() else {
        return;
    };
    if let Ok(content) = bytes_tree::join(&store, root.address(), MAX_LEN) {
        assert_eq!(content.len() as u64, root.span());
        let again = bytes_tree::root(&content, Redundancy::None).expect("level none");
        assert_eq!(&again, root.address());
    }
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    mutate(data, size, max_size, seed, 0, Format::Raw, 6, passes)
});

/// The first parser: the joiner accepts the tree the input builds.
fn passes(data: &[u8]) -> bool {
    let (store, made) = build(data);
    made.last()
        .is_some_and(|root| bytes_tree::join(&store, root.address(), MAX_LEN).is_ok())
}
