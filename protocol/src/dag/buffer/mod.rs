//! The causal buffer: holds each message until all its parents are delivered, then
//! releases it; declares a parent that never arrives a gap after a deadline (R7).
//!
//! # Contract
//!
//! [`CausalBuffer`] is a deterministic state machine in the style of `quinn-proto`: no
//! clock, no I/O, no threads. Time is the caller's `now` (ms, any epoch, non-decreasing;
//! a smaller `now` is treated as the largest seen so far).
//!
//! Inputs:
//! - [`insert`](CausalBuffer::insert): a message that arrived live (PSS, Whisper);
//! - [`handle_fetched`](CausalBuffer::handle_fetched): a message fetched from Swarm
//!   because it was wanted or listed in an inbox page;
//! - [`handle_known`](CausalBuffer::handle_known): the driver's store already has this id
//!   delivered (answering a want from the store, or rebuilding after [`forget`](CausalBuffer::forget));
//! - [`handle_timeout`](CausalBuffer::handle_timeout): time passed; due gap deadlines fire.
//!
//! Outputs, each a queue drained by repeated calls until `None`:
//! - [`poll_deliverable`](CausalBuffer::poll_deliverable): messages in causal order,
//!   each after all its parents, each exactly once;
//! - [`poll_wanted`](CausalBuffer::poll_wanted): ids named as parents that the buffer has
//!   not seen, and since when; the driver fetches them (inbox pages, Swarm);
//! - [`poll_gap`](CausalBuffer::poll_gap): ids given up on; surface them to the app;
//! - [`poll_rejected`](CausalBuffer::poll_rejected): buffered messages found invalid
//!   once a related message arrived;
//! - [`poll_timeout`](CausalBuffer::poll_timeout): when to call `handle_timeout` next
//!   (may be early, never late).
//!
//! Call order: after every input, drain all four queues, then re-arm the timer from
//! `poll_timeout`. Queues only grow by the work of inputs, so a driver that drains after
//! each input holds at most one input's worth of output.
//!
//! # Rules
//!
//! - Verification is not done here: messages reach the buffer already decoded and signed
//!   ([`super::SignedMessage`]), and the buffer only reads ids, clocks and parent lists
//!   ([`Causal`]).
//! - Duplicates (pending, delivered, ephemeral) are ignored; a gap id that arrives later
//!   is delivered once, flagged [`Delivery::late`].
//! - Every edge must go up in clock: a parent's clock is below its child's. Checked when
//!   both ends are known: an arriving message with a known parent that is not below it
//!   is refused ([`BufferError::ParentNotBefore`]); buffered children of an arriving
//!   message that are not above it are rejected ([`CausalBuffer::poll_rejected`]). That makes
//!   `(clock, id)` a topological order and breaks every cycle: ids hash their parents so
//!   honest cycles cannot exist, and around a forged one the clock cannot rise on every
//!   edge, so some edge fails when the cycle's last message arrives.
//! - Ephemeral messages are never parents: a child naming one is refused or rejected.
//! - A parent missing for [`Limits::gap_deadline_ms`] is declared a gap: its waiting
//!   children count it as resolved, and are delivered listing it in
//!   [`Delivery::gap_parents`]. Later children of a gap id do the same.
//! - Memory is bounded by [`Limits`]: when pending messages, their bytes, or missing ids
//!   exceed a limit, the oldest missing id is declared a gap at once
//!   ([`GapReason::Pressure`]) until the buffer is within limits. Nothing is dropped:
//!   under a flood of messages with bogus parents, real messages are delivered early with
//!   gap markers instead of being lost, and memory stays below the limits.
//!
//! # Cost
//!
//! Per message O(parents) hash-map operations (SipHash-1-3 keyed by caller-supplied
//! randomness, because parent ids are attacker-chosen), plus O(1) amortised work per
//! edge on release. Release is iterative: no recursion, whatever the depth. Delivered
//! ids stay in the index for dedup (about 50–90 bytes each, see the bench); the driver
//! may [`forget`](CausalBuffer::forget) old ones and answer their wants with
//! `handle_known`.
//!
//! # Persistence
//!
//! The buffer is `Serialize`/`Deserialize` (a logical snapshot, rebuilt through the same
//! code paths on load). A restored buffer delivers nothing twice and loses nothing;
//! `poll_wanted` reports every still-missing id again (with its original `since`),
//! because the driver's fetches died with the process.

mod arena;
mod snapshot;
#[cfg(test)]
mod tests;
mod types;

use std::collections::{HashMap, VecDeque};

use arena::{
    DELIVERED, EPHEMERAL, Edge, GAP, Keyed, Known, MAX_SLOTS, MISSING_TAG, MissingNode, Mode, NIL,
    PendingNode, Slab, Task,
};
pub use types::{
    BufferError, Causal, Delivery, Gap, GapReason, IdState, Inserted, Limits, Rejected, Wanted,
};

use super::message::{MAX_PARENTS, MessageId};

/// The causal buffer of one chat (module doc: rules and cost).
///
/// Call order, as in `quinn-proto`'s `Connection`:
/// 1. feed one input: [`insert`](Self::insert), [`handle_fetched`](Self::handle_fetched),
///    [`handle_known`](Self::handle_known) or [`handle_timeout`](Self::handle_timeout);
/// 2. drain [`poll_deliverable`](Self::poll_deliverable) (show, persist, update
///    [`super::Heads`]), [`poll_wanted`](Self::poll_wanted) (start fetches),
///    [`poll_gap`](Self::poll_gap) (surface to the app) and
///    [`poll_rejected`](Self::poll_rejected) (log) until each returns `None`;
/// 3. re-arm the timer at [`poll_timeout`](Self::poll_timeout).
pub struct CausalBuffer<T> {
    limits: Limits,
    keys: [u64; 2],
    now: u64,
    index: HashMap<MessageId, Known, Keyed>,
    pending_nodes: Slab<PendingNode<T>>,
    free_pending: Vec<u32>,
    missing_nodes: Slab<MissingNode>,
    free_missing: Vec<u32>,
    edges: Slab<Edge>,
    free_edge: u32,
    /// Missing nodes in `since` order (`now` never decreases): `(since, slot, gen)`.
    /// Entries of ids that arrived meanwhile are skipped when reached.
    deadlines: VecDeque<(u64, u32, u32)>,
    pending: usize,
    pending_bytes: usize,
    missing: usize,
    ready: VecDeque<Delivery<T>>,
    wanted: VecDeque<Wanted>,
    gaps: VecDeque<Gap>,
    rejected: VecDeque<Rejected>,
    tasks: Vec<Task>,
}

impl<T: Causal> CausalBuffer<T> {
    /// An empty buffer. `rng` keys the hash of the id index, so peers cannot choose ids
    /// that collide in it.
    pub fn new(limits: Limits, rng: &mut impl rand_core::RngCore) -> Self {
        Self::with_keys(limits, [rng.next_u64(), rng.next_u64()])
    }

    fn with_keys(limits: Limits, keys: [u64; 2]) -> Self {
        let limits = Limits {
            max_parents: limits.max_parents.min(MAX_PARENTS),
            // Slots stay below 2²⁸ (see `MAX_SLOTS`); one insert adds at most 1 + 8 nodes.
            max_pending: limits.max_pending.min(MAX_SLOTS - 16),
            max_missing: limits.max_missing.min(MAX_SLOTS - 16),
            ..limits
        };
        Self {
            limits,
            keys,
            now: 0,
            index: HashMap::with_hasher(Keyed(keys)),
            pending_nodes: Slab::new(),
            free_pending: Vec::new(),
            missing_nodes: Slab::new(),
            free_missing: Vec::new(),
            edges: Slab::new(),
            free_edge: NIL,
            deadlines: VecDeque::new(),
            pending: 0,
            pending_bytes: 0,
            missing: 0,
            ready: VecDeque::new(),
            wanted: VecDeque::new(),
            gaps: VecDeque::new(),
            rejected: VecDeque::new(),
            tasks: Vec::new(),
        }
    }

    /// Input: a message that arrived live.
    pub fn insert(&mut self, msg: T, now: u64) -> Result<Inserted, BufferError> {
        self.advance(now);
        let now = self.now;
        let result = self.insert_inner(msg, |_| now)?;
        self.after_input();
        Ok(result)
    }

    /// Input: a message fetched from Swarm (wanted, or listed in an inbox page). Same
    /// rules as [`Self::insert`]; a fetched gap id is delivered late.
    pub fn handle_fetched(&mut self, msg: T, now: u64) -> Result<Inserted, BufferError> {
        self.insert(msg, now)
    }

    /// Input: the driver's store has `id` (with `clock`) delivered already. Resolves a
    /// want without a payload; children not above `clock` (or any child, if `ephemeral`)
    /// are rejected.
    pub fn handle_known(
        &mut self,
        id: MessageId,
        clock: u64,
        ephemeral: bool,
        now: u64,
    ) -> Result<(), BufferError> {
        self.advance(now);
        let state = if ephemeral { EPHEMERAL } else { DELIVERED };
        match self.index.get(&id).copied() {
            Some(k) if k.slot == DELIVERED || k.slot == EPHEMERAL => return Ok(()),
            Some(k) if k.pending().is_some() => return Err(BufferError::Pending(id)),
            Some(k) if k.missing().is_some() => {
                let first = self.free_missing_node(k.slot & !MISSING_TAG);
                self.index.insert(id, Known::new(clock, state));
                let mode = Mode::Known {
                    id,
                    clock,
                    ephemeral,
                };
                let mut tasks = std::mem::take(&mut self.tasks);
                self.walk_children(first, mode, &mut tasks);
                self.run(&mut tasks);
                self.tasks = tasks;
            }
            _ => {
                self.index.insert(id, Known::new(clock, state));
            }
        }
        self.after_input();
        Ok(())
    }

    /// Input: time passed. Declares every missing id whose deadline is due a gap.
    pub fn handle_timeout(&mut self, now: u64) {
        self.advance(now);
        let mut tasks = std::mem::take(&mut self.tasks);
        while let Some(&(since, slot, gen_)) = self.deadlines.front() {
            if since.saturating_add(self.limits.gap_deadline_ms) > self.now {
                break;
            }
            self.deadlines.pop_front();
            if self.is_live_missing(slot, gen_) {
                self.declare_gap(slot, since, GapReason::Deadline, &mut tasks);
                self.run(&mut tasks);
            }
        }
        self.tasks = tasks;
        self.after_input();
    }

    /// Forgets a delivered, ephemeral or gap id to reclaim its index entry. A later child
    /// naming it makes it wanted again; the driver answers with [`Self::handle_known`].
    /// Returns whether anything was forgotten (pending and missing ids are kept).
    pub fn forget(&mut self, id: &MessageId) -> bool {
        match self.index.get(id) {
            Some(k) if !k.is_node() => self.index.remove(id).is_some(),
            _ => false,
        }
    }

    /// Output: the next message to deliver.
    pub fn poll_deliverable(&mut self) -> Option<Delivery<T>> {
        self.ready.pop_front()
    }

    /// Output: the next newly missing id to fetch.
    pub fn poll_wanted(&mut self) -> Option<Wanted> {
        self.wanted.pop_front()
    }

    /// Output: the next gap declared.
    pub fn poll_gap(&mut self) -> Option<Gap> {
        self.gaps.pop_front()
    }

    /// Output: the next buffered message rejected.
    pub fn poll_rejected(&mut self) -> Option<Rejected> {
        self.rejected.pop_front()
    }

    /// Output: when [`Self::handle_timeout`] should next be called, if anything is missing.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.deadlines
            .front()
            .map(|(since, _, _)| since.saturating_add(self.limits.gap_deadline_ms))
    }

    /// What the buffer knows about `id`.
    pub fn state(&self, id: &MessageId) -> Option<IdState> {
        let k = self.index.get(id)?;
        Some(match k.slot {
            DELIVERED => IdState::Delivered,
            EPHEMERAL => IdState::Ephemeral,
            GAP => IdState::Gap,
            _ if k.missing().is_some() => IdState::Missing,
            _ => IdState::Pending,
        })
    }

    /// Messages waiting for parents.
    pub fn pending_len(&self) -> usize {
        self.pending
    }

    /// Bytes ([`Causal::size`]) of messages waiting for parents.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Ids wanted.
    pub fn missing_len(&self) -> usize {
        self.missing
    }

    /// Ids in the index (delivered, gaps, pending, missing).
    pub fn known_len(&self) -> usize {
        self.index.len()
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Heap bytes of the buffer's own structures, from their capacities (for the index,
    /// hashbrown's layout: a power-of-two bucket count at most 7/8 full, one control byte
    /// per bucket). Includes the `T`s stored inline, not heap that the `T`s own.
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let buckets = if self.index.capacity() == 0 {
            0
        } else {
            (self.index.capacity() * 8 / 7).next_power_of_two()
        };
        buckets * (size_of::<(MessageId, Known)>() + 1)
            + self.pending_nodes.heap_bytes()
            + self.missing_nodes.heap_bytes()
            + self.edges.heap_bytes()
            + (self.free_pending.capacity() + self.free_missing.capacity()) * size_of::<u32>()
            + self.deadlines.capacity() * size_of::<(u64, u32, u32)>()
            + self.tasks.capacity() * size_of::<Task>()
            + self.ready.capacity() * size_of::<Delivery<T>>()
            + self.wanted.capacity() * size_of::<Wanted>()
            + self.gaps.capacity() * size_of::<Gap>()
            + self.rejected.capacity() * size_of::<Rejected>()
    }

    fn advance(&mut self, now: u64) {
        self.now = self.now.max(now);
    }

    fn check_shape(&self, msg: &T) -> Result<(), BufferError> {
        let id = msg.id();
        let parents = msg.parents();
        if parents.len() > self.limits.max_parents {
            return Err(BufferError::TooManyParents {
                count: parents.len(),
                max: self.limits.max_parents,
            });
        }
        let size = msg.size();
        if size > self.limits.max_message_bytes {
            return Err(BufferError::Oversized {
                size,
                max: self.limits.max_message_bytes,
            });
        }
        for (i, p) in parents.iter().enumerate() {
            if *p == id {
                return Err(BufferError::SelfParent);
            }
            if parents[..i].contains(p) {
                return Err(BufferError::DuplicateParent);
            }
        }
        Ok(())
    }

    /// Insert without the post-input housekeeping; `since_of` dates new missing ids.
    fn insert_inner(
        &mut self,
        msg: T,
        since_of: impl Fn(&MessageId) -> u64,
    ) -> Result<Inserted, BufferError> {
        self.check_shape(&msg)?;
        let id = msg.id();
        let clock = msg.clock();
        let ephemeral = msg.ephemeral();

        let (was_missing, late) = match self.index.get(&id).copied() {
            None => (None, false),
            Some(k) if k.slot == GAP => (None, true),
            Some(k) => match k.missing() {
                Some(slot) => (Some(slot), false),
                None => return Ok(Inserted::Duplicate),
            },
        };

        // Check every parent before changing anything.
        for p in msg.parents() {
            let Some(k) = self.index.get(p).copied() else {
                continue;
            };
            let parent_clock = match k.slot {
                GAP => continue,
                EPHEMERAL => return Err(BufferError::EphemeralParent(*p)),
                DELIVERED => k.clock(),
                _ => match k.pending() {
                    Some(slot) => {
                        if self.pending_nodes[slot]
                            .item
                            .as_ref()
                            .is_some_and(|i| i.ephemeral())
                        {
                            return Err(BufferError::EphemeralParent(*p));
                        }
                        k.clock()
                    }
                    None => continue,
                },
            };
            if parent_clock >= clock {
                return Err(BufferError::ParentNotBefore {
                    parent: *p,
                    parent_clock,
                    clock,
                });
            }
        }

        let mut tasks = std::mem::take(&mut self.tasks);
        let first_edge = match was_missing {
            Some(mslot) => {
                let first = self.free_missing_node(mslot);
                // Children that waited for this id must have larger clocks, and nothing
                // may wait for an ephemeral message. They are rejected now, before this
                // message's own edges exist, so their release cannot reach it.
                let mut e = first;
                while e != NIL {
                    let edge = self.edges[e];
                    e = edge.next;
                    let child = &self.pending_nodes[edge.child];
                    let Some(c) = child.item.as_ref().filter(|_| child.gen_ == edge.gen_) else {
                        continue;
                    };
                    let error = if ephemeral {
                        BufferError::EphemeralParent(id)
                    } else if c.clock() <= clock {
                        BufferError::ParentNotBefore {
                            parent: id,
                            parent_clock: clock,
                            clock: c.clock(),
                        }
                    } else {
                        continue;
                    };
                    tasks.push(Task::Reject(edge.child, error));
                }
                self.run(&mut tasks);
                first
            }
            None => NIL,
        };
        let slot = self.alloc_pending();
        self.pending_nodes[slot].first_edge = first_edge;

        // Link to every parent not yet resolved. The index is read again because the
        // rejections above may have turned a pending parent into a gap.
        let mut unresolved = 0u32;
        let mut gap_parent = false;
        for p in msg.parents() {
            let parent = match self.index.get(p).copied() {
                Some(k) if k.is_node() => k,
                Some(k) => {
                    gap_parent |= k.slot == GAP;
                    continue;
                }
                None => {
                    let since = since_of(p);
                    let k = self.alloc_missing(*p, since);
                    self.index.insert(*p, k);
                    self.wanted.push_back(Wanted { id: *p, since });
                    k
                }
            };
            unresolved += 1;
            self.add_edge(parent, slot);
        }

        self.pending += 1;
        self.pending_bytes = self.pending_bytes.saturating_add(msg.size());
        self.index.insert(id, Known::new(clock, slot));
        let node = &mut self.pending_nodes[slot];
        node.item = Some(msg);
        node.unresolved = unresolved;
        node.gap_parent = gap_parent;
        node.late = late;
        let result = if unresolved == 0 {
            tasks.push(Task::Deliver(slot));
            Inserted::Ready
        } else {
            Inserted::Pending {
                waiting_for: unresolved as usize,
            }
        };
        self.run(&mut tasks);
        self.tasks = tasks;
        Ok(result)
    }

    /// Housekeeping after every input: enforce limits, drop stale deadline entries.
    fn after_input(&mut self) {
        let mut tasks = std::mem::take(&mut self.tasks);
        while self.pending > self.limits.max_pending
            || self.pending_bytes > self.limits.max_pending_bytes
            || self.missing > self.limits.max_missing
        {
            let Some((since, slot, gen_)) = self.deadlines.pop_front() else {
                break;
            };
            if self.is_live_missing(slot, gen_) {
                self.declare_gap(slot, since, GapReason::Pressure, &mut tasks);
                self.run(&mut tasks);
            }
        }
        self.tasks = tasks;
        // Entries of ids that arrived linger until reached; drop them when they outnumber
        // the live ones, so the queue stays O(missing).
        if self.deadlines.len() > 2 * self.missing + 1024 {
            let nodes = &self.missing_nodes;
            self.deadlines
                .retain(|&(_, slot, gen_)| nodes.get(slot).is_some_and(|n| n.live(gen_)));
            self.deadlines.shrink_to(2 * self.deadlines.len() + 1024);
        }
    }

    fn run(&mut self, tasks: &mut Vec<Task>) {
        while let Some(task) = tasks.pop() {
            match task {
                Task::Deliver(slot) => self.deliver(slot, tasks),
                Task::Reject(slot, error) => self.reject(slot, error, tasks),
            }
        }
    }

    fn deliver(&mut self, slot: u32, tasks: &mut Vec<Task>) {
        let Some((item, first, gap_parent, late)) = self.free_pending_node(slot) else {
            return;
        };
        self.pending -= 1;
        self.pending_bytes = self.pending_bytes.saturating_sub(item.size());
        let state = if item.ephemeral() {
            EPHEMERAL
        } else {
            DELIVERED
        };
        self.index
            .insert(item.id(), Known::new(item.clock(), state));
        self.walk_children(first, Mode::Delivered, tasks);
        let gap_parents = if gap_parent {
            let mut g: Vec<MessageId> = item
                .parents()
                .iter()
                .filter(|p| self.index.get(*p).is_some_and(|k| k.slot == GAP))
                .copied()
                .collect();
            g.sort_unstable();
            g
        } else {
            Vec::new()
        };
        self.ready.push_back(Delivery {
            item,
            gap_parents,
            late,
        });
    }

    fn reject(&mut self, slot: u32, error: BufferError, tasks: &mut Vec<Task>) {
        let Some((item, first, _, _)) = self.free_pending_node(slot) else {
            return;
        };
        self.pending -= 1;
        self.pending_bytes = self.pending_bytes.saturating_sub(item.size());
        let id = item.id();
        // The same id can never become valid (its parents and clock are fixed), so it is a
        // gap for good: its dependants go on with a gap marker.
        self.index.insert(id, Known::new(0, GAP));
        let dependants = self.walk_children(first, Mode::Gap, tasks);
        self.rejected.push_back(Rejected { id, error });
        if dependants > 0 {
            self.gaps.push_back(Gap {
                id,
                since: self.now,
                declared_at: self.now,
                reason: GapReason::Invalid,
                dependants,
            });
        }
    }

    fn declare_gap(&mut self, slot: u32, since: u64, reason: GapReason, tasks: &mut Vec<Task>) {
        let id = self.missing_nodes[slot].id;
        let first = self.free_missing_node(slot);
        self.index.insert(id, Known::new(0, GAP));
        let dependants = self.walk_children(first, Mode::Gap, tasks);
        if dependants == 0 {
            // Everything that named it was rejected meanwhile: nothing to report.
            self.index.remove(&id);
            return;
        }
        self.gaps.push_back(Gap {
            id,
            since,
            declared_at: self.now,
            reason,
            dependants,
        });
    }

    /// Resolves one parent for each live child in the edge list starting at `first`, and
    /// frees the edges. Returns the number of live children.
    fn walk_children(&mut self, first: u32, mode: Mode, tasks: &mut Vec<Task>) -> usize {
        let mut live = 0;
        let mut e = first;
        while e != NIL {
            let edge = self.edges[e];
            self.edges[e].next = self.free_edge;
            self.free_edge = e;
            e = edge.next;
            let child = &mut self.pending_nodes[edge.child];
            let Some(item) = child.item.as_ref().filter(|_| child.gen_ == edge.gen_) else {
                continue;
            };
            live += 1;
            if let Mode::Known {
                id,
                clock,
                ephemeral,
            } = mode
            {
                let error = if ephemeral {
                    Some(BufferError::EphemeralParent(id))
                } else if item.clock() <= clock {
                    Some(BufferError::ParentNotBefore {
                        parent: id,
                        parent_clock: clock,
                        clock: item.clock(),
                    })
                } else {
                    None
                };
                if let Some(error) = error {
                    tasks.push(Task::Reject(edge.child, error));
                    continue;
                }
            }
            child.unresolved = child.unresolved.saturating_sub(1);
            if matches!(mode, Mode::Gap) {
                child.gap_parent = true;
            }
            if child.unresolved == 0 {
                tasks.push(Task::Deliver(edge.child));
            }
        }
        live
    }

    fn is_live_missing(&self, slot: u32, gen_: u32) -> bool {
        self.missing_nodes.get(slot).is_some_and(|n| n.live(gen_))
    }

    fn alloc_pending(&mut self) -> u32 {
        if let Some(slot) = self.free_pending.pop() {
            return slot;
        }
        self.pending_nodes.push(PendingNode {
            item: None,
            unresolved: 0,
            first_edge: NIL,
            gen_: 0,
            gap_parent: false,
            late: false,
        })
    }

    /// Empties a pending slot: `(item, first_edge, gap_parent, late)`.
    fn free_pending_node(&mut self, slot: u32) -> Option<(T, u32, bool, bool)> {
        let node = &mut self.pending_nodes[slot];
        let item = node.item.take()?;
        let out = (item, node.first_edge, node.gap_parent, node.late);
        node.first_edge = NIL;
        node.unresolved = 0;
        node.gap_parent = false;
        node.late = false;
        node.gen_ = node.gen_.wrapping_add(1);
        self.free_pending.push(slot);
        Some(out)
    }

    /// A missing node for `id`, queued for its deadline; returns its index entry.
    fn alloc_missing(&mut self, id: MessageId, since: u64) -> Known {
        let slot = match self.free_missing.pop() {
            Some(slot) => {
                let node = &mut self.missing_nodes[slot];
                node.id = id;
                node.in_use = true;
                slot
            }
            None => self.missing_nodes.push(MissingNode {
                id,
                first_edge: NIL,
                gen_: 0,
                in_use: true,
            }),
        };
        let gen_ = self.missing_nodes[slot].gen_;
        self.deadlines.push_back((since, slot, gen_));
        self.missing += 1;
        Known::new(0, slot | MISSING_TAG)
    }

    /// Empties a missing slot; returns its list of waiting children.
    fn free_missing_node(&mut self, slot: u32) -> u32 {
        let node = &mut self.missing_nodes[slot];
        let first = node.first_edge;
        node.first_edge = NIL;
        node.in_use = false;
        node.gen_ = node.gen_.wrapping_add(1);
        self.free_missing.push(slot);
        self.missing -= 1;
        first
    }

    fn add_edge(&mut self, parent: Known, child: u32) {
        let gen_ = self.pending_nodes[child].gen_;
        let head = match parent.missing() {
            Some(slot) => &mut self.missing_nodes[slot].first_edge,
            None => &mut self.pending_nodes[parent.slot].first_edge,
        };
        let edge = Edge {
            child,
            gen_,
            next: *head,
        };
        let e = if self.free_edge != NIL {
            let e = self.free_edge;
            self.free_edge = self.edges[e].next;
            self.edges[e] = edge;
            e
        } else {
            self.edges.push(edge)
        };
        match parent.missing() {
            Some(slot) => self.missing_nodes[slot].first_edge = e,
            None => self.pending_nodes[parent.slot].first_edge = e,
        }
    }
}
