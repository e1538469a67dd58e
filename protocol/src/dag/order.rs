//! The display order of a chat: `(clock, id)`, ascending.
//!
//! Deterministic: every peer holding the same messages shows them in the same order,
//! whatever the arrival order or transport. Ties on the clock (two authors in the same
//! millisecond) break on the id, as in SDS. Because the causal buffer rejects a child
//! whose clock is not above a parent's (`buffer`), this order is also a topological order
//! of the DAG.

use serde::{Deserialize, Serialize};

use super::message::{MessageId, SignedMessage};

/// Sort key of a message in the display order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OrderKey {
    /// Lamport clock, compared first.
    pub clock: u64,
    /// Message id, the tie-break.
    pub id: MessageId,
}

impl SignedMessage {
    /// This message's place in the display order.
    pub fn order_key(&self) -> OrderKey {
        OrderKey {
            clock: self.clock(),
            id: self.id(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key(clock: u64, b: u8) -> OrderKey {
        OrderKey {
            clock,
            id: MessageId::from_slice(&[b; 32]).unwrap(),
        }
    }

    #[test]
    fn clock_first_then_id() {
        let mut v = vec![key(2, 1), key(1, 9), key(2, 0), key(1, 3)];
        v.sort();
        assert_eq!(v, vec![key(1, 3), key(1, 9), key(2, 0), key(2, 1)]);
    }
}
