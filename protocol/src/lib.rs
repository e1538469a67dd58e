//! Staples protocol: the sans-IO heart of Staples.
//!
//! Everything here is pure: wire formats, cryptography and protocol rules, with no
//! sockets, files, threads of our own (except the PoW sealer's scoped workers), clock
//! calls or global randomness. Callers pass `now` and an RNG, so every function is
//! deterministic under test.
//!
//! - [`crypto`]: keccak256 and the secp256k1 helpers shared by Whisper and Swarm.
//! - [`whisper`]: Whisper v6 envelopes, PoW, bloom, plaintext messages, encryption,
//!   byte-compatible with go-ethereum v1.9.7 `whisper/whisperv6`.
//! - [`status`]: Status topic and key conventions built on Whisper.
//! - [`swarm`]: BMT chunks, the `/bytes` tree, single-owner chunks, feeds, PSS trojan
//!   chunks, postage stamps; byte-compatible with Bee 2.8 / bee-js 12 (its parallel tree
//!   hasher also uses scoped workers).
//! - [`dag`]: the Staples message (id, signature, Lamport clock), its carrier in Whisper
//!   padding, parent selection, the causal buffer with gap deadlines, the display order.
//! - [`devp2p`]: RLPx (EIP-8 handshake, frames) under Whisper's `shh/6`.
//! - [`inbox`]: the offline-inbox page format on a sender's Swarm feed, its writer and its
//!   newest-first reader.
//! - [`mvds`]: MVDS message ids and status-go one-to-one group ids.
//! - [`bridged`]: a relay's record of a legacy Whisper message on Swarm, and the legacy id
//!   that collapses copies of it.
//! - [`topic_log`]: raw Whisper envelopes on a shared Swarm feed per topic.
#![warn(missing_docs)]

pub mod bridged;
pub mod chat;
pub mod crypto;
pub mod dag;
pub mod devp2p;
pub mod inbox;
pub mod mailserver;
pub mod mvds;
pub mod status;
pub mod swarm;
pub mod topic_log;
pub mod whisper;

#[cfg(test)]
mod test_vectors;
