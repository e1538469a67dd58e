//! The sender's side of the inbox: append an entry, get the page version to publish.
//!
//! Sans-IO: [`InboxWriter::append`] returns the page to seal and publish at the next
//! feed index; after uploading it the driver reports the sealed chunk's reference with
//! [`InboxWriter::confirm`]. Roll-over needs that reference (it becomes the next page's
//! `prev`), so appending to a full page whose last version was never confirmed is an
//! error rather than a page with a dangling link. The state is serialisable; persist it
//! before publishing so a crash re-publishes the same index (same content).

use serde::{Deserialize, Serialize};

use super::page::{Entry, MAX_ENTRIES, Page, PageError, SwarmRef};
use crate::dag::ChatId;

/// Writer errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// Entry clocks must strictly increase (the sender's Lamport clock).
    #[error("clock {clock} is not above the last entry's {last}")]
    ClockNotIncreasing {
        /// Last entry's clock.
        last: u64,
        /// The new entry's clock.
        clock: u64,
    },
    /// Roll-over needs the reference of the full page's last version.
    #[error("page version {0} was never confirmed")]
    Unconfirmed(u64),
    /// `confirm` for an index other than the last one appended.
    #[error("confirm for index {found}, last appended is {expected:?}")]
    ConfirmMismatch {
        /// The last appended index, if any.
        expected: Option<u64>,
        /// The index confirmed.
        found: u64,
    },
    /// The feed index space is exhausted.
    #[error("feed index exhausted")]
    IndexExhausted,
    /// The page could not be built.
    #[error(transparent)]
    Page(#[from] PageError),
}

/// The inbox writer of one sender in one chat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxWriter {
    chat_id: ChatId,
    /// Feed index of the next update.
    next_index: u64,
    /// Entries of the head page.
    head: Vec<Entry>,
    /// `prev` of the head page.
    prev: Option<SwarmRef>,
    /// Reference of the head page's last published version, once confirmed.
    head_ref: Option<SwarmRef>,
}

impl InboxWriter {
    /// A writer for an empty feed.
    pub fn new(chat_id: ChatId) -> Self {
        Self {
            chat_id,
            next_index: 0,
            head: Vec::new(),
            prev: None,
            head_ref: None,
        }
    }

    /// Appends `entry`; returns the page version to publish at [`Page::index`].
    pub fn append(&mut self, entry: Entry) -> Result<Page, WriteError> {
        if let Some(last) = self.head.last()
            && entry.clock <= last.clock
        {
            return Err(WriteError::ClockNotIncreasing {
                last: last.clock,
                clock: entry.clock,
            });
        }
        let index = self.next_index;
        let next_index = index.checked_add(1).ok_or(WriteError::IndexExhausted)?;
        let (mut head, prev) = if self.head.len() == MAX_ENTRIES {
            let full = self
                .head_ref
                .ok_or(WriteError::Unconfirmed(index.saturating_sub(1)))?;
            (Vec::with_capacity(MAX_ENTRIES), Some(full))
        } else {
            (self.head.clone(), self.prev)
        };
        head.push(entry);
        let page = Page::new(self.chat_id, index, prev, head.clone())?;
        self.head = head;
        self.prev = prev;
        self.next_index = next_index;
        self.head_ref = None;
        Ok(page)
    }

    /// Records the reference of the sealed page version published at `index`.
    pub fn confirm(&mut self, index: u64, reference: SwarmRef) -> Result<(), WriteError> {
        let expected = self.next_index.checked_sub(1);
        if expected != Some(index) {
            return Err(WriteError::ConfirmMismatch {
                expected,
                found: index,
            });
        }
        self.head_ref = Some(reference);
        Ok(())
    }

    /// The last page version appended (to publish again after a failed upload).
    pub fn head_page(&self) -> Option<Page> {
        let index = self.next_index.checked_sub(1)?;
        Page::new(self.chat_id, index, self.prev, self.head.clone()).ok()
    }

    /// Feed index the next append will use.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::inbox::page::tests::entry;

    #[test]
    fn pages_grow_then_roll_over_with_a_link() {
        let mut w = InboxWriter::new(ChatId::new([1; 32]));
        for n in 0..MAX_ENTRIES as u64 {
            let p = w.append(entry(n)).unwrap();
            assert_eq!((p.index(), p.first_index(), p.prev()), (n, 0, None));
            assert_eq!(p.entries().len() as u64, n + 1);
            w.confirm(n, [n as u8; 32]).unwrap();
        }
        let p = w.append(entry(55)).unwrap();
        assert_eq!((p.index(), p.first_index()), (55, 55));
        assert_eq!(p.prev(), Some(&[54u8; 32]));
        assert_eq!(p.entries(), &[entry(55)]);
        assert_eq!(w.head_page(), Some(p));
    }

    #[test]
    fn roll_over_needs_a_confirmed_reference() {
        let mut w = InboxWriter::new(ChatId::new([1; 32]));
        for n in 0..MAX_ENTRIES as u64 {
            w.append(entry(n)).unwrap();
        }
        assert_eq!(w.append(entry(55)), Err(WriteError::Unconfirmed(54)));
        assert_eq!(
            w.confirm(3, [0; 32]),
            Err(WriteError::ConfirmMismatch {
                expected: Some(54),
                found: 3
            })
        );
        w.confirm(54, [7; 32]).unwrap();
        assert_eq!(w.append(entry(55)).unwrap().prev(), Some(&[7u8; 32]));
    }

    #[test]
    fn clocks_must_increase() {
        let mut w = InboxWriter::new(ChatId::new([1; 32]));
        w.append(entry(5)).unwrap();
        assert_eq!(
            w.append(entry(5)),
            Err(WriteError::ClockNotIncreasing {
                last: 1005,
                clock: 1005
            })
        );
        assert_eq!(w.next_index(), 1);
    }
}
