//! A bounded set of recent 32-byte keys (hashes, ids): the newest `CAP` are remembered,
//! the oldest forgotten first. `dual` mode remembers its own posts' paddings with it, a
//! relay the copies it has seen on Whisper, a filter the legacy messages it was handed,
//! and a devp2p session what its peer has.

use std::collections::{HashSet, VecDeque};

/// The set, remembering at most `CAP` keys.
#[derive(Default)]
pub struct Recent<const CAP: usize> {
    set: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
}

impl<const CAP: usize> Recent<CAP> {
    /// Remembers `key` (it stays until `CAP` newer keys pushed it out); whether it is
    /// new.
    pub fn insert(&mut self, key: [u8; 32]) -> bool {
        if !self.set.insert(key) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > CAP.max(1)
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
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
        let mut r = Recent::<3>::default();
        for i in 0..=3 {
            assert!(r.insert(key(i)));
        }
        assert!(!r.insert(key(3)), "a repeat is not new");
        assert!(!r.contains(&key(0)), "the oldest went");
        assert!(
            (1..=3).all(|i| r.contains(&key(i))),
            "a repeat did not push one out"
        );
    }
}
