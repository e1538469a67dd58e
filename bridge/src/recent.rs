//! A bounded set of recent 32-byte keys (hashes, ids): the newest `cap` are remembered,
//! the oldest forgotten first. `dual` mode remembers its own posts' paddings with it, a
//! relay the copies it has seen on Whisper.

use std::collections::{HashSet, VecDeque};

/// The set.
pub struct Recent {
    set: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
    cap: usize,
}

impl Recent {
    /// An empty set remembering at most `cap` keys.
    pub fn new(cap: usize) -> Self {
        Recent {
            set: HashSet::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// Remembers `key` (it stays until `cap` newer keys pushed it out).
    pub fn insert(&mut self, key: [u8; 32]) {
        if self.set.insert(key) {
            self.order.push_back(key);
            if self.order.len() > self.cap
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }

    /// Whether `key` is remembered.
    pub fn contains(&self, key: &[u8; 32]) -> bool {
        self.set.contains(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_key_goes_first() {
        let key = |i: usize| {
            let mut a = [0u8; 32];
            a[..8].copy_from_slice(&(i as u64).to_be_bytes());
            a
        };
        let mut r = Recent::new(3);
        for i in 0..=3 {
            r.insert(key(i));
        }
        r.insert(key(3));
        assert!(!r.contains(&key(0)), "the oldest went");
        assert!(
            (1..=3).all(|i| r.contains(&key(i))),
            "a repeat did not push one out"
        );
    }
}
