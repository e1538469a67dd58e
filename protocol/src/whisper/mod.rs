//! Whisper v6, byte-compatible with go-ethereum v1.9.7 `whisper/whisperv6`.
//!
//! Bottom to top: [`topic`] (topics and bloom), [`envelope`] (RLP and hash), [`pow`] (both
//! PoW formulas, sealing), [`message`] (plaintext layout and signature), [`symmetric`] and
//! [`ecies`] (the two ciphers), [`wrap`] (post → envelope → received message) and [`json`]
//! (geth's `Message` JSON). Facts and sources: `shared/reference/whisper-v6.md`.

pub mod ecies;
pub mod envelope;
pub mod json;
pub mod message;
pub mod pow;
pub mod symmetric;
pub mod topic;
pub mod wrap;

pub use envelope::{Envelope, EnvelopeError, EnvelopeHash};
pub use message::{MessageError, Plaintext};
pub use symmetric::{SymKey, SymmetricError};
pub use topic::{Bloom, Topic, TopicError};
pub use wrap::{
    Draft, OpenError, OpenKey, ReceivedMessage, Recipient, WrapError, open, open_known, wrap,
};

/// Default node minimum PoW (`DefaultMinimumPoW`).
pub const DEFAULT_MIN_POW: f64 = 0.2;
/// Default maximum envelope size, `20 + len(Data)` (`DefaultMaxMessageSize`).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1024 * 1024;
/// Hard cap for `shh_setMaxMessageSize` (`MaxMessageSize`).
pub const MAX_MESSAGE_SIZE: usize = 10 * 1024 * 1024;
