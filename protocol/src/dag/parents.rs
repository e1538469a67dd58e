//! Parent selection: the chat's current heads.
//!
//! A head is a delivered, non-ephemeral message that no delivered message names as a
//! parent (MVDS-META: "messages without children"). A new message takes the newest
//! [`MAX_PARENTS`] heads by `(clock, id)`; heads beyond that stay heads and are picked up
//! by the next messages, so concurrent branches still merge. Ephemeral messages are never
//! heads, and their parents stay heads, because nothing may name an ephemeral message.
//! A message delivered late, after its gap was declared, already has children and is not
//! made a head.
//!
//! Heads are bounded ([`Heads::new`]): a flood of parentless messages evicts the oldest
//! heads, which costs nothing but a merge edge.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::message::{MAX_PARENTS, MessageId};
use super::order::OrderKey;

/// Default bound on tracked heads.
pub const DEFAULT_MAX_HEADS: usize = 1024;

/// The heads of one chat. Feed it every delivery, in delivery order (the sender's own
/// messages included).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heads {
    by_order: BTreeSet<OrderKey>,
    clocks: BTreeMap<MessageId, u64>,
    max_heads: usize,
}

impl Default for Heads {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_HEADS)
    }
}

impl Heads {
    /// Tracks at most `max_heads` heads (at least 1).
    pub fn new(max_heads: usize) -> Self {
        Self {
            by_order: BTreeSet::new(),
            clocks: BTreeMap::new(),
            max_heads: max_heads.max(1),
        }
    }

    /// Records a delivered message. `late` is [`super::Delivery::late`].
    pub fn on_delivered(
        &mut self,
        id: MessageId,
        clock: u64,
        parents: &[MessageId],
        ephemeral: bool,
        late: bool,
    ) {
        if ephemeral {
            return;
        }
        for p in parents {
            if let Some(c) = self.clocks.remove(p) {
                self.by_order.remove(&OrderKey { clock: c, id: *p });
            }
        }
        if late || self.clocks.contains_key(&id) {
            return;
        }
        self.clocks.insert(id, clock);
        self.by_order.insert(OrderKey { clock, id });
        if self.by_order.len() > self.max_heads
            && let Some(oldest) = self.by_order.pop_first()
        {
            self.clocks.remove(&oldest.id);
        }
    }

    /// Parents for a new message: the newest [`MAX_PARENTS`] heads, ascending by id.
    pub fn select(&self) -> Vec<MessageId> {
        let mut out: Vec<MessageId> = self
            .by_order
            .iter()
            .rev()
            .take(MAX_PARENTS)
            .map(|k| k.id)
            .collect();
        out.sort_unstable();
        out
    }

    /// Number of heads.
    pub fn len(&self) -> usize {
        self.by_order.len()
    }

    /// Whether there are no heads (the chat is empty).
    pub fn is_empty(&self) -> bool {
        self.by_order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn id(n: u8) -> MessageId {
        MessageId::from_slice(&[n; 32]).unwrap()
    }

    #[test]
    fn heads_are_messages_without_children() {
        let mut h = Heads::default();
        h.on_delivered(id(1), 1, &[], false, false);
        h.on_delivered(id(2), 2, &[id(1)], false, false);
        h.on_delivered(id(3), 3, &[id(1)], false, false);
        assert_eq!(h.select(), vec![id(2), id(3)]);
        h.on_delivered(id(4), 4, &[id(2), id(3)], false, false);
        assert_eq!(h.select(), vec![id(4)]);
    }

    #[test]
    fn ephemeral_messages_are_never_parents_and_keep_their_parents_heads() {
        let mut h = Heads::default();
        h.on_delivered(id(1), 1, &[], false, false);
        h.on_delivered(id(2), 2, &[id(1)], true, false);
        assert_eq!(h.select(), vec![id(1)]);
    }

    #[test]
    fn at_most_eight_newest_heads_are_selected() {
        let mut h = Heads::default();
        for n in 0..12u8 {
            h.on_delivered(id(100 - n), u64::from(n) + 1, &[], false, false);
        }
        let sel = h.select();
        assert_eq!(sel.len(), MAX_PARENTS);
        let mut want: Vec<MessageId> = (4..12u8).map(|n| id(100 - n)).collect();
        want.sort_unstable();
        assert_eq!(sel, want);
        assert_eq!(h.len(), 12);
    }

    #[test]
    fn heads_are_bounded_and_late_messages_are_not_heads() {
        let mut h = Heads::new(2);
        h.on_delivered(id(1), 1, &[], false, false);
        h.on_delivered(id(2), 2, &[], false, false);
        h.on_delivered(id(3), 3, &[], false, false);
        assert_eq!(h.select(), vec![id(2), id(3)]);
        h.on_delivered(id(9), 0, &[], false, true);
        assert_eq!(h.select(), vec![id(2), id(3)]);
    }
}
