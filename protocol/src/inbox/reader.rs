//! The receiver's side of one sender's inbox: a state machine that walks pages
//! newest-first until it reaches the feed index it already has.
//!
//! # Contract
//!
//! Inputs:
//! - [`handle_latest`](InboxReader::handle_latest): the feed's latest update, as read
//!   from Bee (`index` from `swarm-feed-index`, the sealed page's reference, the opened
//!   page bytes). Starts a walk.
//! - [`handle_page`](InboxReader::handle_page): a page asked for by
//!   [`ReaderEvent::FetchPage`].
//! - [`handle_indexed`](InboxReader::handle_indexed): the update at one feed index, read
//!   directly (to fill a [`ReaderEvent::Skipped`] range).
//!
//! Output: [`poll_event`](InboxReader::poll_event) until `None` after each input.
//! Entries come newest-first and may be fetched in parallel at once (R5); at most one
//! page fetch is outstanding, so a walk costs one sequential round trip per page.
//!
//! # Rules
//!
//! - A latest update older than what was already read is a stale feed read (Bee's
//!   lookup can return an old update): [`ReadError::StaleRead`], nothing changes; retry
//!   later. The same index again is a no-op.
//! - The page at feed index `i` must say `index = i`, so an old page replayed at a new
//!   index is refused.
//! - Walking back, the previous page must end at exactly `first_index − 1`. A page that
//!   ends earlier leaves feed indexes no page of the chain lists: they are reported as
//!   [`ReaderEvent::Skipped`] (read them with `handle_indexed`) and the walk goes on. A
//!   page that ends later contradicts the chain: [`ReadError::Discontinuity`]. Indexes
//!   strictly decrease along a walk, so it ends after at most `index + 1` pages; a page
//!   naming itself as `prev` is [`ReadError::SelfReference`].
//! - Clocks strictly decrease walking back (one sender's Lamport clock).
//! - Any error ends the walk without advancing the known index; entries already emitted
//!   stay emitted (the driver dedups by message id). A bad chain only hurts the inbox of
//!   the sender who wrote it.
//! - The known index advances only when a walk completes ([`ReaderEvent::Done`]), and the
//!   state is serialisable, so a restart re-walks at worst, and never skips.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::page::{Page, PageError, SwarmRef};
use crate::dag::{ChatId, MessageId};

/// Reader errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The page does not decode.
    #[error(transparent)]
    Page(#[from] PageError),
    /// The page belongs to another chat.
    #[error("page of another chat")]
    WrongChat,
    /// The page names its own reference as `prev`.
    #[error("page names itself as previous page")]
    SelfReference,
    /// The page at a feed index carries another index.
    #[error("page at feed index {expected} says index {found}")]
    IndexMismatch {
        /// The feed index it was read from.
        expected: u64,
        /// The index it carries.
        found: u64,
    },
    /// The feed's latest update is older than what was already read.
    #[error("stale feed read: index {index}, already read up to {known}")]
    StaleRead {
        /// Index returned by the lookup.
        index: u64,
        /// Index already read.
        known: u64,
    },
    /// A previous page that ends after the page that names it.
    #[error("previous page ends at index {found}, expected at most {expected}")]
    Discontinuity {
        /// `first_index − 1` of the newer page.
        expected: u64,
        /// The previous page's index.
        found: u64,
    },
    /// A previous page whose clocks are not below the newer page's.
    #[error("previous page has clocks not below the newer page")]
    ClockOrder,
    /// `handle_page` for a reference that was not asked for.
    #[error("page was not requested")]
    UnexpectedPage,
    /// `handle_latest` while a walk is still running.
    #[error("a walk is in progress")]
    WalkInProgress,
}

/// An entry with the feed index it was published at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxEntry {
    /// Feed index of the update that appended it.
    pub index: u64,
    /// The DAG message id.
    pub message_id: MessageId,
    /// Swarm reference of the sealed message.
    pub reference: SwarmRef,
    /// The message's clock.
    pub clock: u64,
}

/// What the driver should do or know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReaderEvent {
    /// A listed message; fetch it if it is not in the store.
    Entry(InboxEntry),
    /// Fetch this page (chunk reference) and pass it to `handle_page`.
    FetchPage(SwarmRef),
    /// Feed indexes `from..=to` are listed by no page of the chain; read each directly.
    Skipped {
        /// First skipped index.
        from: u64,
        /// Last skipped index.
        to: u64,
    },
    /// The walk is complete: everything up to `index` has been listed.
    Done {
        /// The new known index.
        index: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Walk {
    /// Index of the head page that started the walk.
    head: u64,
    /// The page requested next.
    want: SwarmRef,
    /// Its index must be at most this (`first_index − 1` of the newer page).
    max_index: u64,
    /// Its clocks must be below this (oldest clock of the newer page).
    below_clock: u64,
}

/// The reader of one sender's inbox in one chat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxReader {
    chat_id: ChatId,
    known: Option<u64>,
    walk: Option<Walk>,
    out: VecDeque<ReaderEvent>,
}

impl InboxReader {
    /// A reader that has read nothing of this feed.
    pub fn new(chat_id: ChatId) -> Self {
        Self {
            chat_id,
            known: None,
            walk: None,
            out: VecDeque::new(),
        }
    }

    /// Highest feed index whose entries have all been listed.
    pub fn known_index(&self) -> Option<u64> {
        self.known
    }

    /// Whether a walk is running (a page fetch is outstanding).
    pub fn is_walking(&self) -> bool {
        self.walk.is_some()
    }

    /// Input: the feed's latest update.
    pub fn handle_latest(
        &mut self,
        index: u64,
        reference: SwarmRef,
        bytes: &[u8],
    ) -> Result<(), ReadError> {
        if self.walk.is_some() {
            return Err(ReadError::WalkInProgress);
        }
        if let Some(known) = self.known {
            if index < known {
                return Err(ReadError::StaleRead { index, known });
            }
            if index == known {
                return Ok(());
            }
        }
        let page = self.open(reference, bytes)?;
        if page.index() != index {
            return Err(ReadError::IndexMismatch {
                expected: index,
                found: page.index(),
            });
        }
        self.walk_from(index, &page);
        Ok(())
    }

    /// Input: the page requested by the last [`ReaderEvent::FetchPage`].
    pub fn handle_page(&mut self, reference: SwarmRef, bytes: &[u8]) -> Result<(), ReadError> {
        let walk = match &self.walk {
            Some(w) if w.want == reference => w.clone(),
            _ => return Err(ReadError::UnexpectedPage),
        };
        // From here on any error ends the walk.
        self.walk = None;
        let page = self.open(reference, bytes)?;
        if page.index() > walk.max_index {
            return Err(ReadError::Discontinuity {
                expected: walk.max_index,
                found: page.index(),
            });
        }
        if page
            .entries()
            .last()
            .is_some_and(|e| e.clock >= walk.below_clock)
        {
            return Err(ReadError::ClockOrder);
        }
        let from = page
            .index()
            .saturating_add(1)
            .max(self.known.map_or(0, |k| k.saturating_add(1)));
        if from <= walk.max_index {
            self.out.push_back(ReaderEvent::Skipped {
                from,
                to: walk.max_index,
            });
        }
        if self.known.is_some_and(|k| page.index() <= k) {
            self.finish(walk.head);
        } else {
            self.walk_from(walk.head, &page);
        }
        Ok(())
    }

    /// Input: the update read directly at feed `index`; lists the entry appended there.
    pub fn handle_indexed(
        &mut self,
        index: u64,
        reference: SwarmRef,
        bytes: &[u8],
    ) -> Result<(), ReadError> {
        let page = self.open(reference, bytes)?;
        if page.index() != index {
            return Err(ReadError::IndexMismatch {
                expected: index,
                found: page.index(),
            });
        }
        if let Some(e) = page.entries().last() {
            self.out.push_back(ReaderEvent::Entry(InboxEntry {
                index,
                message_id: e.message_id,
                reference: e.reference,
                clock: e.clock,
            }));
        }
        Ok(())
    }

    /// Output: the next event.
    pub fn poll_event(&mut self) -> Option<ReaderEvent> {
        self.out.pop_front()
    }

    fn open(&self, reference: SwarmRef, bytes: &[u8]) -> Result<Page, ReadError> {
        let page = Page::decode(bytes)?;
        if page.chat_id() != &self.chat_id {
            return Err(ReadError::WrongChat);
        }
        if page.prev() == Some(&reference) {
            return Err(ReadError::SelfReference);
        }
        Ok(page)
    }

    /// Lists the page's new entries newest-first, then asks for the previous page or ends.
    fn walk_from(&mut self, head: u64, page: &Page) {
        let first = page.first_index();
        let new_from = self.known.map_or(0, |k| k.saturating_add(1));
        for (k, e) in page.entries().iter().enumerate().rev() {
            let index = first + k as u64;
            if index < new_from {
                break;
            }
            self.out.push_back(ReaderEvent::Entry(InboxEntry {
                index,
                message_id: e.message_id,
                reference: e.reference,
                clock: e.clock,
            }));
        }
        if first <= new_from {
            self.finish(head);
            return;
        }
        match page.prev() {
            Some(prev) => {
                self.walk = Some(Walk {
                    head,
                    want: *prev,
                    max_index: first - 1,
                    below_clock: page.entries().first().map_or(0, |e| e.clock),
                });
                self.out.push_back(ReaderEvent::FetchPage(*prev));
            }
            None => {
                self.out.push_back(ReaderEvent::Skipped {
                    from: new_from,
                    to: first - 1,
                });
                self.finish(head);
            }
        }
    }

    fn finish(&mut self, head: u64) {
        self.walk = None;
        self.known = Some(head);
        self.out.push_back(ReaderEvent::Done { index: head });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::crypto::keccak256;
    use crate::inbox::page::tests::entry;
    use crate::inbox::writer::InboxWriter;
    use std::collections::HashMap;

    const CHAT: ChatId = ChatId::new([1; 32]);

    /// A sender that publishes `n` posts; returns every version with its reference.
    fn feed(n: u64) -> Vec<(SwarmRef, Vec<u8>)> {
        let mut w = InboxWriter::new(CHAT);
        (0..n)
            .map(|i| {
                let page = w.append(entry(i)).unwrap();
                let bytes = page.encode();
                let r = keccak256(&bytes);
                w.confirm(i, r).unwrap();
                (r, bytes)
            })
            .collect()
    }

    /// Drives the reader like a bridge would; returns the listed indexes and events.
    fn read(
        r: &mut InboxReader,
        versions: &[(SwarmRef, Vec<u8>)],
        latest: u64,
    ) -> (Vec<u64>, Vec<ReaderEvent>) {
        let store: HashMap<SwarmRef, Vec<u8>> = versions.iter().cloned().collect();
        let (href, hbytes) = &versions[latest as usize];
        r.handle_latest(latest, *href, hbytes).unwrap();
        let mut listed = Vec::new();
        let mut other = Vec::new();
        while let Some(ev) = r.poll_event() {
            match ev {
                ReaderEvent::Entry(e) => listed.push(e.index),
                ReaderEvent::FetchPage(p) => r.handle_page(p, &store[&p]).unwrap(),
                ev => other.push(ev),
            }
        }
        (listed, other)
    }

    #[test]
    fn first_read_lists_everything_newest_first_one_fetch_per_page() {
        let versions = feed(130);
        let mut r = InboxReader::new(CHAT);
        let (listed, other) = read(&mut r, &versions, 129);
        assert_eq!(listed, (0..130).rev().collect::<Vec<_>>());
        assert_eq!(other, vec![ReaderEvent::Done { index: 129 }]);
        assert_eq!(r.known_index(), Some(129));
    }

    #[test]
    fn later_reads_stop_at_what_is_known() {
        let versions = feed(200);
        let mut r = InboxReader::new(CHAT);
        read(&mut r, &versions, 40);
        let (listed, _) = read(&mut r, &versions, 150);
        assert_eq!(listed, (41..=150).rev().collect::<Vec<_>>());
        let (listed, other) = read(&mut r, &versions, 150);
        assert!(listed.is_empty() && other.is_empty());
    }

    #[test]
    fn stale_feed_reads_change_nothing() {
        let versions = feed(10);
        let mut r = InboxReader::new(CHAT);
        read(&mut r, &versions, 8);
        let (sref, sbytes) = &versions[3];
        assert_eq!(
            r.handle_latest(3, *sref, sbytes),
            Err(ReadError::StaleRead { index: 3, known: 8 })
        );
        assert_eq!(r.known_index(), Some(8));
        assert_eq!(
            r.handle_latest(9, *sref, sbytes),
            Err(ReadError::IndexMismatch {
                expected: 9,
                found: 3
            })
        );
    }

    #[test]
    fn skipped_indexes_are_reported_and_can_be_filled() {
        // A sender whose second page names a page ending at 50 instead of 54: indexes
        // 51..=54 are in no page of the chain.
        let first = Page::new(CHAT, 50, None, (0..=50).map(entry).collect()).unwrap();
        let first_ref = [0xaa; 32];
        let second = Page::new(CHAT, 56, Some(first_ref), (55..=56).map(entry).collect()).unwrap();
        let mut r = InboxReader::new(CHAT);
        r.handle_latest(56, [0xbb; 32], &second.encode()).unwrap();
        let evs: Vec<ReaderEvent> = std::iter::from_fn(|| r.poll_event()).collect();
        assert_eq!(evs.last(), Some(&ReaderEvent::FetchPage(first_ref)));
        r.handle_page(first_ref, &first.encode()).unwrap();
        let evs: Vec<ReaderEvent> = std::iter::from_fn(|| r.poll_event()).collect();
        assert_eq!(evs[0], ReaderEvent::Skipped { from: 51, to: 54 });
        assert_eq!(evs.last(), Some(&ReaderEvent::Done { index: 56 }));
        assert_eq!(evs.len(), 1 + 51 + 1);
        let at_52 = Page::new(CHAT, 52, None, (0..=52).map(entry).collect()).unwrap();
        r.handle_indexed(52, [0xcc; 32], &at_52.encode()).unwrap();
        assert!(matches!(r.poll_event(), Some(ReaderEvent::Entry(e)) if e.index == 52));
    }

    #[test]
    fn broken_chains_are_typed_errors() {
        let newer = Page::new(CHAT, 60, Some([7; 32]), (58..=60).map(entry).collect()).unwrap();
        let start = |r: &mut InboxReader| {
            r.handle_latest(60, [8; 32], &newer.encode()).unwrap();
            while r.poll_event().is_some() {}
        };
        let mut r = InboxReader::new(CHAT);
        start(&mut r);
        assert_eq!(
            r.handle_latest(61, [8; 32], &newer.encode()),
            Err(ReadError::WalkInProgress)
        );
        assert_eq!(
            r.handle_page([9; 32], &newer.encode()),
            Err(ReadError::UnexpectedPage)
        );
        // A previous page that ends after the newer page begins.
        let overlapping = Page::new(CHAT, 58, None, (4..=58).map(entry).collect()).unwrap();
        assert_eq!(
            r.handle_page([7; 32], &overlapping.encode()),
            Err(ReadError::Discontinuity {
                expected: 57,
                found: 58
            })
        );
        assert!(!r.is_walking());
        assert_eq!(r.known_index(), None);
        // A page naming itself.
        let selfish = Page::new(CHAT, 57, Some([7; 32]), (3..=57).map(entry).collect()).unwrap();
        start(&mut r);
        assert_eq!(
            r.handle_page([7; 32], &selfish.encode()),
            Err(ReadError::SelfReference)
        );
        // Clocks that do not go down.
        let mut late = entry(57);
        late.clock = 5000;
        let bad_clock = Page::new(CHAT, 57, None, vec![entry(56), late]).unwrap();
        start(&mut r);
        assert_eq!(
            r.handle_page([7; 32], &bad_clock.encode()),
            Err(ReadError::ClockOrder)
        );
        let other_chat = Page::new(ChatId::new([2; 32]), 0, None, vec![entry(0)]).unwrap();
        assert_eq!(
            r.handle_latest(0, [1; 32], &other_chat.encode()),
            Err(ReadError::WrongChat)
        );
        assert!(matches!(
            r.handle_latest(0, [1; 32], &[1, 2, 3]),
            Err(ReadError::Page(PageError::Truncated(3)))
        ));
    }

    #[test]
    fn reader_state_survives_a_restart_mid_walk() {
        let versions = feed(120);
        let store: HashMap<SwarmRef, Vec<u8>> = versions.iter().cloned().collect();
        let mut r = InboxReader::new(CHAT);
        let (href, hbytes) = &versions[119];
        r.handle_latest(119, *href, hbytes).unwrap();
        let mut listed = Vec::new();
        let mut fetch = None;
        while let Some(ev) = r.poll_event() {
            match ev {
                ReaderEvent::Entry(e) => listed.push(e.index),
                ReaderEvent::FetchPage(p) => fetch = Some(p),
                _ => {}
            }
        }
        let json = serde_json::to_string(&r).unwrap();
        let mut r: InboxReader = serde_json::from_str(&json).unwrap();
        let p = fetch.unwrap();
        r.handle_page(p, &store[&p]).unwrap();
        while let Some(ev) = r.poll_event() {
            match ev {
                ReaderEvent::Entry(e) => listed.push(e.index),
                ReaderEvent::FetchPage(p) => r.handle_page(p, &store[&p]).unwrap(),
                _ => {}
            }
        }
        assert_eq!(listed, (0..120).rev().collect::<Vec<_>>());
        assert_eq!(r.known_index(), Some(119));
    }
}
