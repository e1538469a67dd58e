//! How a Whisper chat maps onto Swarm (normative text: `specs/transport-pss.md`).
//!
//! A chat is what a Whisper app addresses: a symmetric key and topic (public chats,
//! groups) or a recipient's public key and topic (1:1). Everything Staples puts on Swarm
//! for a chat is derived from what every member already holds:
//!
//! - [`keys`]: the chat id, the inbox feed topic, the key that seals inbox pages, and the
//!   rendezvous feed every key holder can find and write;
//! - [`seal`]: AES-256-GCM sealing of pages and roster entries with a 32-byte key;
//! - [`roster`]: the signed entry a member writes to a chat's rendezvous feed ("my inbox
//!   for this chat is the feed of node key N; reach me live at overlay O");
//! - [`index`]: the signed entry a member appends to a symmetric chat's index feed after
//!   each post ("my inbox for this chat has update K"), read instead of every inbox;
//! - [`contact`]: the contact record an identity key publishes on its own feed;
//! - [`frame`]: the PSS frame that carries a sealed message (inline or by reference).
//!
//! Sans-IO like the rest of the crate: randomness (nonces, ephemeral keys) is passed in.

pub mod contact;
pub mod frame;
pub mod index;
pub mod keys;
pub mod roster;
pub mod seal;

pub use contact::{ContactError, ContactRecord};
pub use frame::{Frame, FrameBody, FrameError};
pub use index::{IndexEntry, IndexError};
pub use keys::Chat;
pub use roster::{RosterEntry, RosterError};
pub use seal::SealError;
