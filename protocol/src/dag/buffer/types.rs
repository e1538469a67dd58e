//! The buffer's public vocabulary: the [`Causal`] view of a message, [`Limits`], errors
//! and the output records.

use serde::{Deserialize, Serialize};

use crate::dag::message::{MAX_ENCODED_LEN, MAX_HEADER_LEN, MAX_PARENTS, MessageId, SignedMessage};

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
        self.body().len() + MAX_HEADER_LEN
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
