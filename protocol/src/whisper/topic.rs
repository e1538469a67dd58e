//! Whisper topics and the 64-byte topic bloom filter.
//!
//! A topic is the first four bytes of keccak256 of a name. The bloom follows geth's
//! `TopicToBloom` exactly, including its quirk: each of the three bit indexes *assigns*
//! its byte (`b[i] = 1 << bit`) instead of OR-ing into it, so two indexes landing in one
//! byte leave only the last bit set. Peers exchange this filter, so the quirk is wire-visible.

use std::fmt;

use crate::crypto::keccak256;

/// Length of a topic in bytes.
pub const TOPIC_LENGTH: usize = 4;
/// Length of a topic bloom filter in bytes.
pub const BLOOM_SIZE: usize = 64;

/// A 4-byte Whisper topic.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Topic(pub [u8; TOPIC_LENGTH]);

/// Errors from parsing a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The input was not exactly four bytes.
    #[error("topic must be 4 bytes, got {0}")]
    WrongLength(usize),
}

impl Topic {
    /// `keccak256(utf8(name))[0..4]`, as Status and `web3.utils.sha3(name).slice(0, 10)` do.
    pub fn from_name(name: &str) -> Self {
        let h = keccak256(name.as_bytes());
        Topic([h[0], h[1], h[2], h[3]])
    }

    /// Parses exactly four bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, TopicError> {
        bytes
            .try_into()
            .map(Topic)
            .map_err(|_| TopicError::WrongLength(bytes.len()))
    }

    /// The topic's bloom filter (geth `TopicToBloom`).
    pub fn bloom(&self) -> Bloom {
        let mut b = [0u8; BLOOM_SIZE];
        for j in 0..3 {
            let mut index = usize::from(self.0[j]);
            if self.0[3] & (1 << j) != 0 {
                index += 256;
            }
            // Assignment, not OR: this is geth's behaviour and peers depend on it.
            b[index / 8] = 1 << (index % 8);
        }
        Bloom(b)
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Topic(0x{})", hex::encode(self.0))
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

/// A 64-byte (512-bit) Whisper bloom filter.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bloom(pub [u8; BLOOM_SIZE]);

impl Bloom {
    /// The empty filter (matches nothing).
    pub const EMPTY: Bloom = Bloom([0; BLOOM_SIZE]);
    /// The full filter (a full node: matches everything).
    pub const FULL: Bloom = Bloom([0xff; BLOOM_SIZE]);

    /// The union of several topics' blooms (a node interested in all of them).
    pub fn of_topics<'a>(topics: impl IntoIterator<Item = &'a Topic>) -> Self {
        let mut out = Self::EMPTY;
        for t in topics {
            out.add(&t.bloom());
        }
        out
    }

    /// ORs `other` into `self`.
    pub fn add(&mut self, other: &Bloom) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= b;
        }
    }

    /// geth's `BloomFilterMatch`: every bit of `sample` is set in `self`.
    pub fn matches(&self, sample: &Bloom) -> bool {
        self.0.iter().zip(sample.0.iter()).all(|(f, s)| f | s == *f)
    }
}

impl fmt::Debug for Bloom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bloom(0x{})", hex::encode(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_length_topics_are_rejected() {
        assert_eq!(
            Topic::from_slice(&[1, 2, 3]),
            Err(TopicError::WrongLength(3))
        );
        assert_eq!(
            Topic::from_slice(&[1, 2, 3, 4, 5]),
            Err(TopicError::WrongLength(5))
        );
        assert_eq!(Topic::from_slice(&[1, 2, 3, 4]), Ok(Topic([1, 2, 3, 4])));
    }

    #[test]
    fn union_bloom_matches_each_member_and_not_others() {
        let a = Topic::from_name("a");
        let b = Topic::from_name("b");
        let both = Bloom::of_topics([&a, &b]);
        assert!(both.matches(&a.bloom()));
        assert!(both.matches(&b.bloom()));
        assert!(Bloom::FULL.matches(&a.bloom()));
        assert!(!Bloom::EMPTY.matches(&a.bloom()));
    }
}
