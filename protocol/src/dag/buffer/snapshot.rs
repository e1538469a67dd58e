//! Persistence: the buffer serialises to a logical snapshot (resolved ids with clocks,
//! missing ids with `since`, pending messages, undrained outputs) and is rebuilt through
//! `insert_inner` on load, so a corrupt or inconsistent snapshot is an error, not a broken
//! invariant.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::CausalBuffer;
use super::arena::{DELIVERED, EPHEMERAL, GAP, Known};
use super::types::{
    BufferError, Causal, Delivery, Gap, IdState, Inserted, Limits, Rejected, Wanted,
};
use crate::dag::message::MessageId;

// Persistence: a logical snapshot, rebuilt through `insert_inner` on load.

#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
enum ResolvedState {
    Delivered,
    Ephemeral,
    Gap,
}

#[derive(Serialize, Deserialize)]
struct ResolvedId {
    id: MessageId,
    clock: u64,
    state: ResolvedState,
}

#[derive(Serialize)]
struct PendingRef<'a, T> {
    item: &'a T,
    late: bool,
}

#[derive(Deserialize)]
struct PendingOwned<T> {
    item: T,
    late: bool,
}

#[derive(Serialize)]
struct SnapshotRef<'a, T> {
    limits: Limits,
    keys: [u64; 2],
    now: u64,
    resolved: Vec<ResolvedId>,
    missing: Vec<Wanted>,
    pending: Vec<PendingRef<'a, T>>,
    ready: &'a VecDeque<Delivery<T>>,
    gaps: &'a VecDeque<Gap>,
    rejected: &'a VecDeque<Rejected>,
}

#[derive(Deserialize)]
struct Snapshot<T> {
    limits: Limits,
    keys: [u64; 2],
    now: u64,
    resolved: Vec<ResolvedId>,
    missing: Vec<Wanted>,
    pending: Vec<PendingOwned<T>>,
    ready: VecDeque<Delivery<T>>,
    gaps: VecDeque<Gap>,
    rejected: VecDeque<Rejected>,
}

/// Why a snapshot could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum RestoreError {
    #[error("id {0} appears twice in the snapshot")]
    DuplicateId(MessageId),
    #[error("pending message {0} refused on reload: {1}")]
    Refused(MessageId, BufferError),
    #[error("pending message {0} delivered on reload: snapshot is inconsistent")]
    Inconsistent(MessageId),
}

impl<T: Causal + Serialize> Serialize for CausalBuffer<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut resolved = Vec::new();
        for (id, k) in &self.index {
            let state = match k.slot {
                DELIVERED => ResolvedState::Delivered,
                EPHEMERAL => ResolvedState::Ephemeral,
                GAP => ResolvedState::Gap,
                _ => continue,
            };
            resolved.push(ResolvedId {
                id: *id,
                clock: k.clock(),
                state,
            });
        }
        resolved.sort_unstable_by_key(|r| r.id);
        let mut missing: Vec<Wanted> = self
            .deadlines
            .iter()
            .filter(|&&(_, slot, gen_)| self.is_live_missing(slot, gen_))
            .map(|&(since, slot, _)| Wanted {
                id: self.missing_nodes[slot].id,
                since,
            })
            .collect();
        missing.sort_unstable_by_key(|w| (w.since, w.id));
        let pending = self
            .pending_nodes
            .iter()
            .filter_map(|n| {
                n.item
                    .as_ref()
                    .map(|item| PendingRef { item, late: n.late })
            })
            .collect();
        SnapshotRef {
            limits: self.limits,
            keys: self.keys,
            now: self.now,
            resolved,
            missing,
            pending,
            ready: &self.ready,
            gaps: &self.gaps,
            rejected: &self.rejected,
        }
        .serialize(s)
    }
}

impl<'de, T: Causal + Deserialize<'de>> Deserialize<'de> for CausalBuffer<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let snap = Snapshot::<T>::deserialize(d)?;
        Self::restore(snap).map_err(serde::de::Error::custom)
    }
}

impl<T: Causal> CausalBuffer<T> {
    fn restore(snap: Snapshot<T>) -> Result<Self, RestoreError> {
        let mut b = Self::with_keys(snap.limits, snap.keys);
        b.now = snap.now;
        for r in snap.resolved {
            let slot = match r.state {
                ResolvedState::Delivered => DELIVERED,
                ResolvedState::Ephemeral => EPHEMERAL,
                ResolvedState::Gap => GAP,
            };
            if b.index.insert(r.id, Known::new(r.clock, slot)).is_some() {
                return Err(RestoreError::DuplicateId(r.id));
            }
        }
        let since: HashMap<MessageId, u64> = snap.missing.iter().map(|w| (w.id, w.since)).collect();
        let now = b.now;
        for p in snap.pending {
            let id = p.item.id();
            match b.insert_inner(p.item, |m| since.get(m).copied().unwrap_or(now)) {
                Ok(Inserted::Pending { .. }) => {
                    if let Some(slot) = b.index.get(&id).and_then(|k| k.pending()) {
                        b.pending_nodes[slot].late = p.late;
                    }
                }
                Ok(Inserted::Duplicate) => return Err(RestoreError::DuplicateId(id)),
                Ok(Inserted::Ready) => return Err(RestoreError::Inconsistent(id)),
                Err(e) => return Err(RestoreError::Refused(id, e)),
            }
        }
        // Restored `since` values arrive out of order; the queue must be sorted.
        b.deadlines.make_contiguous().sort_unstable();
        // Pending messages restored before their pending parents made those parents look
        // missing for a moment; only ids still missing are wanted, oldest first.
        let mut wanted: Vec<Wanted> = std::mem::take(&mut b.wanted)
            .into_iter()
            .filter(|w| b.state(&w.id) == Some(IdState::Missing))
            .collect();
        wanted.sort_unstable_by_key(|w| (w.since, w.id));
        b.wanted = wanted.into();
        b.ready = snap.ready;
        b.gaps = snap.gaps;
        b.rejected = snap.rejected;
        Ok(b)
    }
}
