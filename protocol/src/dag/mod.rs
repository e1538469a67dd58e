//! The Staples DAG layer: messages that name their parents, a Lamport clock, a causal
//! buffer that releases a message only after its parents, and a deterministic total order.
//!
//! Normative description: `specs/dag.md`. The split of work is deliberate:
//!
//! - decoding ([`SignedMessage::decode`], [`Header::with_body`]) checks the encoding and
//!   the author's signature once, when bytes come off a transport;
//! - the [`CausalBuffer`] then works on ids, clocks and parent lists only, with no
//!   cryptography in its hot path.
//!
//! Modules:
//! - [`message`]: [`MessageId`], [`ChatId`], [`Draft`], [`Header`], [`SignedMessage`]: the
//!   canonical id preimage, the signature and the protobuf encoding (`specs/staples.proto`).
//! - [`carrier`]: the DAG header inside Whisper v6 padding, so legacy apps see the payload
//!   unchanged (R2).
//! - [`clock`]: Status's Lamport rule and the 120 s future-drift check.
//! - [`parents`]: parent selection from the chat's current heads.
//! - [`buffer`]: the causal buffer state machine with gap deadlines and memory limits.
//! - [`order`]: the display order `(clock, id)`.

pub mod buffer;
pub mod carrier;
pub mod clock;
pub mod message;
pub mod order;
pub mod parents;
mod wire;

pub use buffer::{
    BufferError, Causal, CausalBuffer, Delivery, Gap, GapReason, IdState, Inserted, Limits,
    Rejected, Wanted,
};
pub use carrier::{
    Align, CarrierError, MAGIC, app_padding, decode_padding, encode_padding, encode_padding_with,
};
pub use clock::{ClockError, LamportClock, MAX_FUTURE_DRIFT_MS};
pub use message::{
    ChatId, Draft, Header, MAX_BODY_LEN, MAX_ENCODED_LEN, MAX_PARENTS, MessageError, MessageId,
    SignedMessage, VERSION,
};
pub use order::OrderKey;
pub use parents::Heads;
