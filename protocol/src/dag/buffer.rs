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

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use siphasher::sip::SipHasher13;

use super::message::{MAX_ENCODED_LEN, MAX_PARENTS, MessageId, SignedMessage};

/// What the buffer needs from a message. Implemented by [`SignedMessage`]; tests and the
/// benchmark use lighter types.
pub trait Causal {
    /// The message id.
    fn id(&self) -> MessageId;
    /// The Lamport clock.
    fn clock(&self) -> u64;
    /// Parent ids.
    fn parents(&self) -> &[MessageId];
    /// Ephemeral messages are never parents.
    fn ephemeral(&self) -> bool;
    /// Bytes the message costs while buffered, counted against
    /// [`Limits::max_pending_bytes`].
    fn size(&self) -> usize;
}

impl Causal for SignedMessage {
    fn id(&self) -> MessageId {
        SignedMessage::id(self)
    }
    fn clock(&self) -> u64 {
        SignedMessage::clock(self)
    }
    fn parents(&self) -> &[MessageId] {
        SignedMessage::parents(self)
    }
    fn ephemeral(&self) -> bool {
        SignedMessage::ephemeral(self)
    }
    fn size(&self) -> usize {
        // Body plus the header's worst case; close enough for a memory bound.
        self.body().len() + super::message::MAX_HEADER_LEN
    }
}

/// Bounds of one buffer (one chat).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Most parents per message (at most [`MAX_PARENTS`]).
    pub max_parents: usize,
    /// Largest [`Causal::size`] accepted.
    pub max_message_bytes: usize,
    /// Most messages held waiting for parents.
    pub max_pending: usize,
    /// Most bytes ([`Causal::size`]) held waiting for parents.
    pub max_pending_bytes: usize,
    /// Most ids wanted at once.
    pub max_missing: usize,
    /// How long a missing parent is waited for, ms.
    pub gap_deadline_ms: u64,
}

impl Default for Limits {
    /// 8 parents, 1 MiB messages, 100 000 pending messages or 256 MiB, 200 000 missing
    /// ids, 5 minutes to fill a gap.
    fn default() -> Self {
        Self {
            max_parents: MAX_PARENTS,
            max_message_bytes: MAX_ENCODED_LEN,
            max_pending: 100_000,
            max_pending_bytes: 256 << 20,
            max_missing: 200_000,
            gap_deadline_ms: 5 * 60 * 1000,
        }
    }
}

/// Why a message was refused or rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum BufferError {
    /// More parents than [`Limits::max_parents`].
    #[error("{count} parents, at most {max} allowed")]
    TooManyParents {
        /// Parents named.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// Larger than [`Limits::max_message_bytes`].
    #[error("message of {size} bytes exceeds {max}")]
    Oversized {
        /// The message's size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The message names itself as a parent.
    #[error("message names itself as parent")]
    SelfParent,
    /// The same parent twice.
    #[error("parent named twice")]
    DuplicateParent,
    /// A parent's clock is not below the child's: the parent is the message's descendant,
    /// or the sender broke the Lamport rule.
    #[error("parent {parent} has clock {parent_clock}, not below {clock}")]
    ParentNotBefore {
        /// The parent.
        parent: MessageId,
        /// Its clock.
        parent_clock: u64,
        /// The child's clock.
        clock: u64,
    },
    /// A parent is ephemeral.
    #[error("parent {0} is ephemeral")]
    EphemeralParent(MessageId),
    /// `handle_known` for an id that is buffered with its payload.
    #[error("message {0} is pending, not known-delivered")]
    Pending(MessageId),
}

/// Result of a successful insert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// All parents are in: the message (and maybe dependants) is ready to deliver.
    Ready,
    /// Waiting for this many parents.
    Pending {
        /// Parents not yet delivered.
        waiting_for: usize,
    },
    /// Already pending or delivered; ignored.
    Duplicate,
}

/// A message released in causal order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery<T> {
    /// The message.
    pub item: T,
    /// Parents that were declared gaps instead of being delivered (R7), ascending.
    pub gap_parents: Vec<MessageId>,
    /// This message itself had been declared a gap before it arrived: its children were
    /// already delivered.
    pub late: bool,
}

/// A parent id the buffer has not seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wanted {
    /// The id.
    pub id: MessageId,
    /// When it was first named, ms.
    pub since: u64,
}

/// Why an id was declared a gap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GapReason {
    /// Missing for [`Limits::gap_deadline_ms`].
    Deadline,
    /// Declared early to stay within [`Limits`].
    Pressure,
    /// The message arrived but was rejected ([`Rejected`]).
    Invalid,
}

/// An id given up on; its dependants were released.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// The id.
    pub id: MessageId,
    /// When it was first wanted, ms.
    pub since: u64,
    /// When it was declared a gap, ms.
    pub declared_at: u64,
    /// Why.
    pub reason: GapReason,
    /// How many buffered messages were waiting for it.
    pub dependants: usize,
}

/// A buffered message rejected when a related message arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// The rejected message.
    pub id: MessageId,
    /// Why.
    pub error: BufferError,
}

/// What the buffer knows about an id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdState {
    /// Delivered.
    Delivered,
    /// Delivered; ephemeral.
    Ephemeral,
    /// Declared a gap.
    Gap,
    /// Buffered, waiting for parents.
    Pending,
    /// Named as a parent, not seen.
    Missing,
}

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

// ---------------------------------------------------------------------------------------
// Internal representation.

/// Slot sentinel values in [`Known::slot`]; other values are node slots.
const DELIVERED: u32 = u32::MAX;
const EPHEMERAL: u32 = u32::MAX - 1;
const GAP: u32 = u32::MAX - 2;
/// Set on [`Known::slot`] for a slot in `missing_nodes`; slots stay below `MAX_SLOTS`.
const MISSING_TAG: u32 = 1 << 30;
/// Pending and missing slots are each capped below 2²⁸ (via `Limits`), so even 8 edges per
/// pending message stay below `NIL`.
const MAX_SLOTS: usize = 1 << 28;
const NIL: u32 = u32::MAX;

/// Index entry: 12 bytes with 4-byte alignment, so an index bucket is 44 bytes.
#[derive(Clone, Copy, Debug)]
struct Known {
    clock_hi: u32,
    clock_lo: u32,
    slot: u32,
}

impl Known {
    fn new(clock: u64, slot: u32) -> Self {
        Self {
            clock_hi: (clock >> 32) as u32,
            clock_lo: clock as u32,
            slot,
        }
    }

    fn clock(self) -> u64 {
        (u64::from(self.clock_hi) << 32) | u64::from(self.clock_lo)
    }

    fn is_node(self) -> bool {
        self.slot < GAP
    }

    fn pending(self) -> Option<u32> {
        (self.slot < MISSING_TAG).then_some(self.slot)
    }

    fn missing(self) -> Option<u32> {
        (self.is_node() && self.slot & MISSING_TAG != 0).then_some(self.slot & !MISSING_TAG)
    }
}

/// A message waiting for parents. `item` is `None` while the slot is free.
struct PendingNode<T> {
    item: Option<T>,
    /// Parents not yet resolved.
    unresolved: u32,
    /// Head of the list of children waiting for this message.
    first_edge: u32,
    /// Bumped when the slot is freed, so stale edges are recognised.
    gen_: u32,
    gap_parent: bool,
    late: bool,
}

/// An id named as a parent and not seen yet. Smaller than a pending node: no payload.
struct MissingNode {
    id: MessageId,
    first_edge: u32,
    /// Bumped when the slot is freed, so stale deadline entries are recognised.
    gen_: u32,
    in_use: bool,
}

impl MissingNode {
    fn live(&self, gen_: u32) -> bool {
        self.in_use && self.gen_ == gen_
    }
}

/// One waiting child in a singly linked list; free edges are linked through `next`.
#[derive(Clone, Copy)]
struct Edge {
    child: u32,
    gen_: u32,
    next: u32,
}

#[derive(Clone, Copy, Debug)]
enum Task {
    Deliver(u32),
    Reject(u32, BufferError),
}

#[derive(Clone, Copy)]
enum Mode {
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
struct Keyed([u64; 2]);

impl BuildHasher for Keyed {
    type Hasher = SipHasher13;
    fn build_hasher(&self) -> SipHasher13 {
        SipHasher13::new_with_keys(self.0[0], self.0[1])
    }
}

/// A grow-only arena in fixed chunks of 1024 slots: no reallocation copies and at most
/// one partly used chunk, where a `Vec` would keep up to half its capacity idle.
struct Slab<T> {
    chunks: Vec<Vec<T>>,
    len: u32,
}

const CHUNK: usize = 1024;

impl<T> Slab<T> {
    fn new() -> Self {
        Self {
            chunks: Vec::new(),
            len: 0,
        }
    }

    fn push(&mut self, value: T) -> u32 {
        if (self.len as usize).is_multiple_of(CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        if let Some(chunk) = self.chunks.last_mut() {
            chunk.push(value);
        }
        self.len += 1;
        self.len - 1
    }

    fn get(&self, i: u32) -> Option<&T> {
        let i = i as usize;
        self.chunks.get(i / CHUNK).and_then(|c| c.get(i % CHUNK))
    }

    fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }

    fn heap_bytes(&self) -> usize {
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

// ---------------------------------------------------------------------------------------
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::crypto::keccak256;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    struct M {
        id: MessageId,
        clock: u64,
        parents: Vec<MessageId>,
        ephemeral: bool,
    }

    impl Causal for M {
        fn id(&self) -> MessageId {
            self.id
        }
        fn clock(&self) -> u64 {
            self.clock
        }
        fn parents(&self) -> &[MessageId] {
            &self.parents
        }
        fn ephemeral(&self) -> bool {
            self.ephemeral
        }
        fn size(&self) -> usize {
            100
        }
    }

    fn id(n: u32) -> MessageId {
        MessageId::from_slice(&keccak256(n.to_be_bytes())).unwrap()
    }

    fn m(n: u32, parents: &[u32]) -> M {
        M {
            id: id(n),
            clock: u64::from(n) + 1,
            parents: parents.iter().map(|p| id(*p)).collect(),
            ephemeral: false,
        }
    }

    fn buffer(limits: Limits) -> CausalBuffer<M> {
        CausalBuffer::new(limits, &mut ChaCha20Rng::seed_from_u64(1))
    }

    fn drain(b: &mut CausalBuffer<M>) -> Vec<MessageId> {
        std::iter::from_fn(|| b.poll_deliverable())
            .map(|d| d.item.id)
            .collect()
    }

    #[test]
    fn chain_in_reverse_is_released_in_order() {
        let mut b = buffer(Limits::default());
        for n in (1..5).rev() {
            assert_eq!(
                b.insert(m(n, &[n - 1]), 0),
                Ok(Inserted::Pending { waiting_for: 1 })
            );
        }
        assert_eq!(b.poll_wanted().map(|w| w.id), Some(id(3)));
        assert!(drain(&mut b).is_empty());
        assert_eq!(b.insert(m(0, &[]), 0), Ok(Inserted::Ready));
        assert_eq!(drain(&mut b), (0..5).map(id).collect::<Vec<_>>());
        assert_eq!((b.pending_len(), b.missing_len()), (0, 0));
    }

    #[test]
    fn diamond_waits_for_both_parents_and_duplicates_are_ignored() {
        let mut b = buffer(Limits::default());
        b.insert(m(3, &[1, 2]), 0).unwrap();
        b.insert(m(1, &[0]), 0).unwrap();
        assert_eq!(b.insert(m(1, &[0]), 0), Ok(Inserted::Duplicate));
        b.insert(m(0, &[]), 0).unwrap();
        assert_eq!(drain(&mut b), vec![id(0), id(1)]);
        b.insert(m(2, &[0]), 0).unwrap();
        assert_eq!(drain(&mut b), vec![id(2), id(3)]);
        assert_eq!(b.insert(m(3, &[1, 2]), 0), Ok(Inserted::Duplicate));
        assert_eq!(b.state(&id(3)), Some(IdState::Delivered));
    }

    #[test]
    fn shape_errors_are_typed() {
        let mut b = buffer(Limits::default());
        assert_eq!(b.insert(m(1, &[1]), 0), Err(BufferError::SelfParent));
        assert_eq!(
            b.insert(m(1, &[2, 2]), 0),
            Err(BufferError::DuplicateParent)
        );
        let many: Vec<u32> = (10..19).collect();
        assert_eq!(
            b.insert(m(1, &many), 0),
            Err(BufferError::TooManyParents { count: 9, max: 8 })
        );
        let mut small = buffer(Limits {
            max_message_bytes: 99,
            ..Limits::default()
        });
        assert_eq!(
            small.insert(m(1, &[]), 0),
            Err(BufferError::Oversized { size: 100, max: 99 })
        );
        assert_eq!(b.known_len(), 0);
    }

    #[test]
    fn a_descendant_as_parent_is_refused() {
        let mut b = buffer(Limits::default());
        b.insert(m(1, &[]), 0).unwrap();
        b.insert(m(5, &[1]), 0).unwrap();
        // Message 3 (clock 4) claims delivered 5 (clock 6) as parent.
        assert_eq!(
            b.insert(m(3, &[5]), 0),
            Err(BufferError::ParentNotBefore {
                parent: id(5),
                parent_clock: 6,
                clock: 4
            })
        );
    }

    #[test]
    fn a_forged_cycle_is_broken_when_it_closes() {
        // a -> d -> c -> a (x -> y: x names y as parent), with clocks that cannot all rise.
        let mut b = buffer(Limits::default());
        let a = M {
            id: id(100),
            clock: 50,
            parents: vec![id(101)],
            ephemeral: false,
        };
        let d = M {
            id: id(101),
            clock: 40,
            parents: vec![id(102)],
            ephemeral: false,
        };
        let c = M {
            id: id(102),
            clock: 30,
            parents: vec![id(100)],
            ephemeral: false,
        };
        b.insert(c, 0).unwrap();
        b.insert(d, 0).unwrap();
        b.insert(a, 0).unwrap();
        let r = b.poll_rejected().unwrap();
        assert_eq!(r.id, id(102));
        assert!(matches!(r.error, BufferError::ParentNotBefore { .. }));
        // The cycle is broken: d and a are delivered with c as a gap.
        let out: Vec<Delivery<M>> = std::iter::from_fn(|| b.poll_deliverable()).collect();
        assert_eq!(
            out.iter().map(|d| d.item.id).collect::<Vec<_>>(),
            vec![id(101), id(100)]
        );
        assert_eq!(out[0].gap_parents, vec![id(102)]);
        assert_eq!(
            b.poll_gap().map(|g| (g.id, g.reason)),
            Some((id(102), GapReason::Invalid))
        );
        assert_eq!((b.pending_len(), b.missing_len()), (0, 0));
    }

    #[test]
    fn ephemeral_messages_cannot_be_parents() {
        let mut b = buffer(Limits::default());
        let e = M {
            ephemeral: true,
            ..m(1, &[])
        };
        b.insert(m(2, &[1]), 0).unwrap();
        b.insert(e.clone(), 0).unwrap();
        assert_eq!(
            b.poll_rejected().map(|r| r.error),
            Some(BufferError::EphemeralParent(id(1)))
        );
        assert_eq!(drain(&mut b), vec![id(1)]);
        assert_eq!(
            b.insert(m(3, &[1]), 0),
            Err(BufferError::EphemeralParent(id(1)))
        );
        assert_eq!(b.insert(e, 0), Ok(Inserted::Duplicate));
    }

    #[test]
    fn gap_deadline_releases_dependants_and_late_arrival_is_delivered_once() {
        let limits = Limits {
            gap_deadline_ms: 1000,
            ..Limits::default()
        };
        let mut b = buffer(limits);
        b.insert(m(2, &[1]), 100).unwrap();
        b.insert(m(3, &[2]), 150).unwrap();
        assert_eq!(
            b.poll_wanted(),
            Some(Wanted {
                id: id(1),
                since: 100
            })
        );
        assert_eq!(b.poll_wanted(), None);
        assert_eq!(b.poll_timeout(), Some(1100));
        b.handle_timeout(1099);
        assert!(drain(&mut b).is_empty());
        b.handle_timeout(1100);
        let out: Vec<Delivery<M>> = std::iter::from_fn(|| b.poll_deliverable()).collect();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].gap_parents, vec![id(1)]);
        assert!(out[1].gap_parents.is_empty());
        assert_eq!(
            b.poll_gap(),
            Some(Gap {
                id: id(1),
                since: 100,
                declared_at: 1100,
                reason: GapReason::Deadline,
                dependants: 1
            })
        );
        // A later child of the gap id goes straight through, marked.
        b.insert(m(4, &[1]), 1200).unwrap();
        assert_eq!(b.poll_deliverable().unwrap().gap_parents, vec![id(1)]);
        // The missing message itself turns up: delivered once, late.
        b.insert(m(1, &[]), 1300).unwrap();
        let d = b.poll_deliverable().unwrap();
        assert_eq!((d.item.id, d.late), (id(1), true));
        assert_eq!(b.insert(m(1, &[]), 1300), Ok(Inserted::Duplicate));
        assert_eq!(b.poll_timeout(), None);
    }

    #[test]
    fn pressure_declares_the_oldest_gap_instead_of_growing() {
        let mut b = buffer(Limits {
            max_pending: 3,
            ..Limits::default()
        });
        for n in 0..10u32 {
            // Each message waits for its own bogus parent.
            b.insert(m(1000 + n, &[n]), u64::from(n)).unwrap();
            assert!(b.pending_len() <= 3);
        }
        let gaps: Vec<Gap> = std::iter::from_fn(|| b.poll_gap()).collect();
        assert_eq!(gaps.len(), 7);
        assert!(gaps.iter().all(|g| g.reason == GapReason::Pressure));
        assert_eq!(
            gaps.iter().map(|g| g.id).collect::<Vec<_>>(),
            (0..7).map(id).collect::<Vec<_>>()
        );
        assert_eq!(drain(&mut b).len(), 7);
        let mut bytes = buffer(Limits {
            max_pending_bytes: 250,
            ..Limits::default()
        });
        for n in 0..10u32 {
            bytes.insert(m(1000 + n, &[n]), 0).unwrap();
            assert!(bytes.pending_bytes() <= 250);
        }
    }

    #[test]
    fn handle_known_resolves_wants_from_the_store() {
        let mut b = buffer(Limits::default());
        b.insert(m(5, &[1, 2]), 0).unwrap();
        b.handle_known(id(1), 2, false, 0).unwrap();
        assert!(drain(&mut b).is_empty());
        b.handle_known(id(2), 3, false, 0).unwrap();
        assert_eq!(drain(&mut b), vec![id(5)]);
        assert!(b.forget(&id(1)));
        assert!(!b.forget(&id(77)));
        b.insert(m(6, &[1]), 0).unwrap();
        assert_eq!(b.poll_wanted().map(|w| w.id), Some(id(1)));
        b.insert(m(7, &[]), 0).unwrap();
        b.insert(m(8, &[7]), 0).unwrap();
        assert_eq!(drain(&mut b), vec![id(7), id(8)]);
        b.insert(m(9, &[10]), 0).unwrap();
        assert_eq!(
            b.handle_known(id(9), 1, false, 0),
            Err(BufferError::Pending(id(9)))
        );
    }

    #[test]
    fn a_long_chain_releases_without_recursion() {
        let mut b = buffer(Limits {
            max_pending: 300_000,
            ..Limits::default()
        });
        // Deep enough that one stack frame per level would overflow a 2 MiB test thread.
        let n = 30_000u32;
        for i in (1..n).rev() {
            b.insert(m(i, &[i - 1]), 0).unwrap();
        }
        b.insert(m(0, &[]), 0).unwrap();
        assert_eq!(drain(&mut b).len(), n as usize);
    }

    #[test]
    fn snapshot_restores_without_redelivery_or_loss() {
        let limits = Limits {
            gap_deadline_ms: 1000,
            ..Limits::default()
        };
        let script = |b: &mut CausalBuffer<M>, part: u8| match part {
            0 => {
                b.insert(m(3, &[1, 2]), 10).unwrap();
                b.insert(m(1, &[0]), 20).unwrap();
                b.insert(m(9, &[8]), 30).unwrap();
                b.insert(m(10, &[9]), 30).unwrap();
                b.insert(m(0, &[]), 40).unwrap();
            }
            _ => {
                b.insert(m(2, &[0]), 50).unwrap();
                b.handle_timeout(2000);
                b.insert(m(8, &[]), 2100).unwrap();
            }
        };
        let outputs = |b: &mut CausalBuffer<M>| {
            let d: Vec<Delivery<M>> = std::iter::from_fn(|| b.poll_deliverable()).collect();
            let g: Vec<Gap> = std::iter::from_fn(|| b.poll_gap()).collect();
            (d, g)
        };
        let mut straight = buffer(limits);
        script(&mut straight, 0);
        let first = outputs(&mut straight);
        script(&mut straight, 1);
        let want = outputs(&mut straight);

        let mut b = buffer(limits);
        script(&mut b, 0);
        assert_eq!(outputs(&mut b), first);
        let json = serde_json::to_string(&b).unwrap();
        let mut restored: CausalBuffer<M> = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&restored).unwrap(), json);
        // Missing ids are wanted again after a restart, with their first `since`.
        let wanted: Vec<Wanted> = std::iter::from_fn(|| restored.poll_wanted()).collect();
        assert_eq!(
            wanted,
            vec![
                Wanted {
                    id: id(2),
                    since: 10
                },
                Wanted {
                    id: id(8),
                    since: 30
                }
            ]
        );
        script(&mut restored, 1);
        assert_eq!(outputs(&mut restored), want);
        assert_eq!(want.0.len(), 5);
        assert!(want.0[4].late);
    }

    #[test]
    fn corrupt_snapshots_are_errors_not_panics() {
        let mut b = buffer(Limits::default());
        b.insert(m(2, &[1]), 0).unwrap();
        b.handle_known(id(7), 1, false, 0).unwrap();
        let json = serde_json::to_string(&b).unwrap();
        // The pending message listed as delivered too.
        let bad = json.replace(
            "\"resolved\":[",
            &format!(
                "\"resolved\":[{{\"id\":\"{}\",\"clock\":3,\"state\":\"Delivered\"}},",
                id(2)
            ),
        );
        assert!(serde_json::from_str::<CausalBuffer<M>>(&bad).is_err());
        assert!(serde_json::from_str::<CausalBuffer<M>>("{}").is_err());
    }

    #[test]
    fn heap_bytes_is_reported() {
        let mut b = buffer(Limits::default());
        for i in 1..100 {
            b.insert(m(i, &[i - 1]), 0).unwrap();
        }
        assert!(b.heap_bytes() > 99 * 44);
    }
}
