//! Internal representation of the causal buffer: the id index entry, pending and missing
//! nodes, the edge lists, and the chunked arena that holds them.

use std::hash::BuildHasher;

use siphasher::sip::SipHasher13;

use super::types::BufferError;
use crate::dag::message::MessageId;

/// Slot sentinel values in [`Known::slot`]; other values are node slots.
pub(super) const DELIVERED: u32 = u32::MAX;
pub(super) const EPHEMERAL: u32 = u32::MAX - 1;
pub(super) const GAP: u32 = u32::MAX - 2;
/// Set on [`Known::slot`] for a slot in `missing_nodes`; slots stay below `MAX_SLOTS`.
pub(super) const MISSING_TAG: u32 = 1 << 30;
/// Pending and missing slots are each capped below 2²⁸ (via `Limits`), so even 8 edges per
/// pending message stay below `NIL`.
pub(super) const MAX_SLOTS: usize = 1 << 28;
pub(super) const NIL: u32 = u32::MAX;

/// Index entry: 12 bytes with 4-byte alignment, so an index bucket is 44 bytes.
#[derive(Clone, Copy, Debug)]
pub(super) struct Known {
    pub(super) clock_hi: u32,
    pub(super) clock_lo: u32,
    pub(super) slot: u32,
}

impl Known {
    pub(super) fn new(clock: u64, slot: u32) -> Self {
        Self {
            clock_hi: (clock >> 32) as u32,
            clock_lo: clock as u32,
            slot,
        }
    }

    pub(super) fn clock(self) -> u64 {
        (u64::from(self.clock_hi) << 32) | u64::from(self.clock_lo)
    }

    pub(super) fn is_node(self) -> bool {
        self.slot < GAP
    }

    pub(super) fn pending(self) -> Option<u32> {
        (self.slot < MISSING_TAG).then_some(self.slot)
    }

    pub(super) fn missing(self) -> Option<u32> {
        (self.is_node() && self.slot & MISSING_TAG != 0).then_some(self.slot & !MISSING_TAG)
    }
}

/// A message waiting for parents. `item` is `None` while the slot is free.
pub(super) struct PendingNode<T> {
    pub(super) item: Option<T>,
    /// Parents not yet resolved.
    pub(super) unresolved: u32,
    /// Head of the list of children waiting for this message.
    pub(super) first_edge: u32,
    /// Bumped when the slot is freed, so stale edges are recognised.
    pub(super) gen_: u32,
    pub(super) gap_parent: bool,
    pub(super) late: bool,
}

/// An id named as a parent and not seen yet. Smaller than a pending node: no payload.
pub(super) struct MissingNode {
    pub(super) id: MessageId,
    pub(super) first_edge: u32,
    /// Bumped when the slot is freed, so stale deadline entries are recognised.
    pub(super) gen_: u32,
    pub(super) in_use: bool,
}

impl MissingNode {
    pub(super) fn live(&self, gen_: u32) -> bool {
        self.in_use && self.gen_ == gen_
    }
}

/// One waiting child in a singly linked list; free edges are linked through `next`.
#[derive(Clone, Copy)]
pub(super) struct Edge {
    pub(super) child: u32,
    pub(super) gen_: u32,
    pub(super) next: u32,
}

#[derive(Clone, Copy, Debug)]
pub(super) enum Task {
    Deliver(u32),
    Reject(u32, BufferError),
}

#[derive(Clone, Copy)]
pub(super) enum Mode {
    Delivered,
    Gap,
    Known {
        id: MessageId,
        clock: u64,
        ephemeral: bool,
    },
}

/// SipHash-1-3 with a per-buffer random key (std's `RandomState` would draw the key from
/// the OS, which a sans-IO crate does not do).
#[derive(Clone)]
pub(super) struct Keyed(pub(super) [u64; 2]);

impl BuildHasher for Keyed {
    type Hasher = SipHasher13;
    fn build_hasher(&self) -> SipHasher13 {
        SipHasher13::new_with_keys(self.0[0], self.0[1])
    }
}

/// A grow-only arena in fixed chunks of 1024 slots: no reallocation copies and at most
/// one partly used chunk, where a `Vec` would keep up to half its capacity idle.
pub(super) struct Slab<T> {
    pub(super) chunks: Vec<Vec<T>>,
    pub(super) len: u32,
}

pub(super) const CHUNK: usize = 1024;

impl<T> Slab<T> {
    pub(super) fn new() -> Self {
        Self {
            chunks: Vec::new(),
            len: 0,
        }
    }

    pub(super) fn push(&mut self, value: T) -> u32 {
        if (self.len as usize).is_multiple_of(CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        if let Some(chunk) = self.chunks.last_mut() {
            chunk.push(value);
        }
        self.len += 1;
        self.len - 1
    }

    pub(super) fn get(&self, i: u32) -> Option<&T> {
        let i = i as usize;
        self.chunks.get(i / CHUNK).and_then(|c| c.get(i % CHUNK))
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }

    pub(super) fn heap_bytes(&self) -> usize {
        self.chunks.len() * CHUNK * std::mem::size_of::<T>()
            + self.chunks.capacity() * std::mem::size_of::<Vec<T>>()
    }
}

impl<T> std::ops::Index<u32> for Slab<T> {
    type Output = T;
    fn index(&self, i: u32) -> &T {
        &self.chunks[i as usize / CHUNK][i as usize % CHUNK]
    }
}

impl<T> std::ops::IndexMut<u32> for Slab<T> {
    fn index_mut(&mut self, i: u32) -> &mut T {
        &mut self.chunks[i as usize / CHUNK][i as usize % CHUNK]
    }
}
