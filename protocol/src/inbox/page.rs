//! The inbox page: fixed binary layout, one canonical encoding per page.
//!
//! ```text
//! offset  size  field
//!      0     1  version = 1
//!      1    32  chat_id
//!     33     8  index       u64be: feed index this page version is published at
//!     41     1  has_prev    0 or 1
//!     42    32  prev        reference of the previous page's last version; zero if none
//!     74     1  count n     1..=55
//!     75  72·n  entries     message_id[32] ‖ reference[32] ‖ clock u64be, oldest first
//! ```
//!
//! Entry `k` was published at feed index `first_index + k`, `first_index = index + 1 − n`.
//! Clocks strictly increase (one sender's Lamport clock in one chat). The page must fit a
//! single-owner chunk payload (4096 bytes) after sealing with the chat key (AES-256-GCM:
//! 12-byte nonce + 16-byte tag), so [`MAX_PAGE_LEN`] = 4068 and
//! [`MAX_ENTRIES`] = ⌊(4068 − 75) / 72⌋ = 55 (4035 bytes).
//!
//! A fixed layout rather than protobuf: every field has a fixed size, so the capacity is
//! exact and the decoder can demand the one canonical encoding by length alone.

use serde::{Deserialize, Serialize};

use crate::dag::{ChatId, MessageId};

/// A 32-byte Swarm reference (unencrypted chunk address).
pub type SwarmRef = [u8; 32];

/// Payload capacity of a single-owner chunk.
pub const SOC_PAYLOAD_MAX: usize = 4096;
/// Bytes the chat-key seal adds: AES-256-GCM nonce (12) and tag (16).
pub const SEAL_OVERHEAD: usize = 28;
/// Largest encoded page.
pub const MAX_PAGE_LEN: usize = SOC_PAYLOAD_MAX - SEAL_OVERHEAD;
/// Bytes before the entries.
pub const HEADER_LEN: usize = 75;
/// Bytes per entry.
pub const ENTRY_LEN: usize = 72;
/// Most entries per page: 55.
pub const MAX_ENTRIES: usize = (MAX_PAGE_LEN - HEADER_LEN) / ENTRY_LEN;

const VERSION: u8 = 1;

/// Errors from decoding a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// Shorter than the fixed header.
    #[error("page of {0} bytes is shorter than its header")]
    Truncated(usize),
    /// Longer than [`MAX_PAGE_LEN`].
    #[error("page of {0} bytes exceeds 4068")]
    TooLong(usize),
    /// Length does not match the entry count.
    #[error("page of {found} bytes, {expected} expected for its entry count")]
    Length {
        /// Length implied by the count.
        expected: usize,
        /// Actual length.
        found: usize,
    },
    /// Unknown version byte.
    #[error("unsupported page version {0}")]
    UnsupportedVersion(u8),
    /// `has_prev` not 0 or 1.
    #[error("bad has_prev flag {0}")]
    BadPrevFlag(u8),
    /// `has_prev` = 0 but the `prev` field is not zero.
    #[error("prev set without has_prev")]
    PrevNotZero,
    /// No entries (a page exists only once something was posted).
    #[error("page has no entries")]
    Empty,
    /// More than [`MAX_ENTRIES`] entries.
    #[error("{0} entries, at most 55")]
    TooManyEntries(usize),
    /// More entries than feed indexes up to `index`.
    #[error("{count} entries cannot end at feed index {index}")]
    CountExceedsIndex {
        /// Entries.
        count: usize,
        /// The page's index.
        index: u64,
    },
    /// A previous page is named but this page starts at feed index 0.
    #[error("page starting at index 0 names a previous page")]
    PrevBeforeFirst,
    /// Entry clocks not strictly increasing.
    #[error("entry {0} does not have a larger clock than the one before")]
    ClocksNotIncreasing(usize),
    /// The same message listed twice.
    #[error("message {0} listed twice")]
    DuplicateEntry(MessageId),
}

/// One post in the inbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The DAG message id.
    pub message_id: MessageId,
    /// Swarm reference of the sealed message.
    pub reference: SwarmRef,
    /// The message's Lamport clock.
    pub clock: u64,
}

/// A decoded page. Built by [`Page::decode`] or [`crate::inbox::InboxWriter`], so its
/// invariants (module doc) always hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    chat_id: ChatId,
    index: u64,
    prev: Option<SwarmRef>,
    entries: Vec<Entry>,
}

impl Page {
    /// Builds a page; the writer's constructor. Checks the same invariants as decoding.
    pub(crate) fn new(
        chat_id: ChatId,
        index: u64,
        prev: Option<SwarmRef>,
        entries: Vec<Entry>,
    ) -> Result<Self, PageError> {
        let page = Self {
            chat_id,
            index,
            prev,
            entries,
        };
        page.check()?;
        Ok(page)
    }

    /// Decodes the canonical encoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, PageError> {
        if bytes.len() > MAX_PAGE_LEN {
            return Err(PageError::TooLong(bytes.len()));
        }
        let Some((header, body)) = bytes.split_first_chunk::<HEADER_LEN>() else {
            return Err(PageError::Truncated(bytes.len()));
        };
        if header[0] != VERSION {
            return Err(PageError::UnsupportedVersion(header[0]));
        }
        let chat_id = ChatId::new(take32(&header[1..33]));
        let index = u64::from_be_bytes(take8(&header[33..41]));
        let prev_bytes = take32(&header[42..74]);
        let prev = match header[41] {
            0 if prev_bytes == [0; 32] => None,
            0 => return Err(PageError::PrevNotZero),
            1 => Some(prev_bytes),
            flag => return Err(PageError::BadPrevFlag(flag)),
        };
        let count = usize::from(header[74]);
        if count > MAX_ENTRIES {
            return Err(PageError::TooManyEntries(count));
        }
        let expected = HEADER_LEN + count * ENTRY_LEN;
        if bytes.len() != expected {
            return Err(PageError::Length {
                expected,
                found: bytes.len(),
            });
        }
        let entries = body
            .chunks_exact(ENTRY_LEN)
            .map(|e| Entry {
                message_id: MessageId::from_array(take32(&e[..32])),
                reference: take32(&e[32..64]),
                clock: u64::from_be_bytes(take8(&e[64..72])),
            })
            .collect();
        Self::new(chat_id, index, prev, entries)
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.entries.len() * ENTRY_LEN);
        out.push(VERSION);
        out.extend_from_slice(self.chat_id.as_bytes());
        out.extend_from_slice(&self.index.to_be_bytes());
        out.push(u8::from(self.prev.is_some()));
        out.extend_from_slice(&self.prev.unwrap_or([0; 32]));
        // At most MAX_ENTRIES (55) by construction.
        out.push(self.entries.len() as u8);
        for e in &self.entries {
            out.extend_from_slice(e.message_id.as_bytes());
            out.extend_from_slice(&e.reference);
            out.extend_from_slice(&e.clock.to_be_bytes());
        }
        out
    }

    /// The chat.
    pub fn chat_id(&self) -> &ChatId {
        &self.chat_id
    }

    /// Feed index this version is published at (its newest entry's index).
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Feed index of the oldest entry.
    pub fn first_index(&self) -> u64 {
        // check() guarantees 1 <= len <= index + 1, so this cannot underflow; written
        // without `index + 1`, which overflows at u64::MAX (found by the fuzzer).
        self.index - (self.entries.len() as u64 - 1)
    }

    /// Reference of the previous page's last version.
    pub fn prev(&self) -> Option<&SwarmRef> {
        self.prev.as_ref()
    }

    /// Entries, oldest first.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    fn check(&self) -> Result<(), PageError> {
        let n = self.entries.len();
        if n == 0 {
            return Err(PageError::Empty);
        }
        if n > MAX_ENTRIES {
            return Err(PageError::TooManyEntries(n));
        }
        if n as u64 > self.index.saturating_add(1) {
            return Err(PageError::CountExceedsIndex {
                count: n,
                index: self.index,
            });
        }
        if self.prev.is_some() && self.first_index() == 0 {
            return Err(PageError::PrevBeforeFirst);
        }
        for (i, pair) in self.entries.windows(2).enumerate() {
            if pair[1].clock <= pair[0].clock {
                return Err(PageError::ClocksNotIncreasing(i + 1));
            }
        }
        let mut ids: Vec<MessageId> = self.entries.iter().map(|e| e.message_id).collect();
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(PageError::DuplicateEntry(w[0]));
        }
        Ok(())
    }
}

fn take32(b: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(b);
    out
}

fn take8(b: &[u8]) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(b);
    out
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::crypto::keccak256;

    pub(crate) fn entry(n: u64) -> Entry {
        Entry {
            message_id: MessageId::from_slice(&keccak256(n.to_be_bytes())).unwrap(),
            reference: keccak256((n + 1_000_000).to_be_bytes()),
            clock: 1000 + n,
        }
    }

    fn page(index: u64, prev: Option<SwarmRef>, n: u64) -> Page {
        let first = index + 1 - n;
        Page::new(
            ChatId::new([3; 32]),
            index,
            prev,
            (first..=index).map(entry).collect(),
        )
        .unwrap()
    }

    #[test]
    fn capacity_is_55_entries_within_one_sealed_chunk() {
        assert_eq!(MAX_ENTRIES, 55);
        let full = page(100, Some([9; 32]), 55);
        let bytes = full.encode();
        assert_eq!(bytes.len(), 4035);
        assert!(bytes.len() + SEAL_OVERHEAD <= SOC_PAYLOAD_MAX);
        const { assert!(HEADER_LEN + (MAX_ENTRIES + 1) * ENTRY_LEN > MAX_PAGE_LEN) };
    }

    #[test]
    fn round_trip_is_exact() {
        for p in [
            page(0, None, 1),
            page(54, None, 55),
            page(77, Some([1; 32]), 3),
        ] {
            let bytes = p.encode();
            let back = Page::decode(&bytes).unwrap();
            assert_eq!(back, p);
            assert_eq!(back.encode(), bytes);
        }
        assert_eq!(page(77, Some([1; 32]), 3).first_index(), 75);
        let last = Page::new(
            ChatId::new([3; 32]),
            u64::MAX,
            Some([1; 32]),
            vec![entry(1)],
        );
        assert_eq!(last.unwrap().first_index(), u64::MAX);
    }

    #[test]
    fn malformed_pages_are_typed_errors() {
        let good = page(10, Some([1; 32]), 2).encode();
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            f(&mut b);
            Page::decode(&b)
        };
        assert_eq!(Page::decode(&good[..74]), Err(PageError::Truncated(74)));
        assert_eq!(
            Page::decode(&vec![1; MAX_PAGE_LEN + 1]),
            Err(PageError::TooLong(MAX_PAGE_LEN + 1))
        );
        assert_eq!(
            with(&|b| b.push(0)),
            Err(PageError::Length {
                expected: 75 + 144,
                found: 75 + 145
            })
        );
        assert_eq!(with(&|b| b[0] = 2), Err(PageError::UnsupportedVersion(2)));
        assert_eq!(with(&|b| b[41] = 2), Err(PageError::BadPrevFlag(2)));
        assert_eq!(with(&|b| b[41] = 0), Err(PageError::PrevNotZero));
        assert_eq!(
            with(&|b| {
                b[74] = 0;
                b.truncate(75);
            }),
            Err(PageError::Empty)
        );
        assert_eq!(with(&|b| b[74] = 56), Err(PageError::TooManyEntries(56)));
        assert_eq!(
            with(&|b| b[33..41].copy_from_slice(&0u64.to_be_bytes())),
            Err(PageError::CountExceedsIndex { count: 2, index: 0 })
        );
        assert_eq!(
            with(&|b| b[33..41].copy_from_slice(&1u64.to_be_bytes())),
            Err(PageError::PrevBeforeFirst)
        );
        assert_eq!(
            with(&|b| b[75 + 64..75 + 72].copy_from_slice(&5000u64.to_be_bytes())),
            Err(PageError::ClocksNotIncreasing(1))
        );
        assert_eq!(
            with(&|b| {
                let first: Vec<u8> = b[75..75 + 32].to_vec();
                b[75 + 72..75 + 104].copy_from_slice(&first);
            }),
            Err(PageError::DuplicateEntry(entry(9).message_id))
        );
    }
}
