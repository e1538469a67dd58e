//! The offline inbox: what one sender posted to one chat, as pages on the sender's Swarm
//! sequence feed (normative text: `specs/inbox.md`).
//!
//! Each post appends one [`Entry`] (message id, Swarm reference of the sealed message,
//! clock) and publishes the sender's head [`Page`] at the next feed index, so entry `k`
//! of a page was published at feed index `first_index + k`. A full page (55 entries,
//! [`MAX_ENTRIES`]) rolls over: the next page names the reference of the full page's last
//! version as `prev`. A reader reads the feed's latest update, then follows `prev`
//! references newest-first until it reaches the index it already has: one feed round trip
//! plus one sequential chunk fetch per page, while the listed messages are fetched in
//! parallel (R4, R5).
//!
//! - [`page`]: the byte layout and its checks;
//! - [`writer`]: the sender's side (append, roll-over);
//! - [`reader`]: the receiver's state machine (walk, skipped indexes, stale reads);
//! - [`bundle`]: a full page's sealed messages in one object, for a catch-up that fetches
//!   one object per page instead of one per message.
//!
//! Swarm references are plain `[u8; 32]` here; sealing pages and messages with the chat
//! key (R3) and computing references is the caller's job.

pub mod bundle;
pub mod page;
pub mod reader;
pub mod writer;

pub use page::{
    Entry, HEADER_LEN, MAX_ENTRIES, MAX_PAGE_LEN, Page, PageError, SEAL_OVERHEAD, SOC_PAYLOAD_MAX,
    SwarmRef,
};
pub use reader::{InboxEntry, InboxReader, ReadError, ReaderEvent};
pub use writer::{InboxWriter, WriteError};
