//! Swarm wire formats, byte-compatible with Bee 2.8 and bee-js 12.
//!
//! Sans-IO: no sockets, files or clock; randomness and timestamps come from the caller.
//! Every parser returns its module's typed error and never panics.
//!
//! - [`bmt`]: the BMT chunk hash, with an incremental tree for nonce mining.
//! - [`chunk`]: [`ChunkAddress`] and content-addressed chunks ([`Cac`]).
//! - [`bytes_tree`]: the `/bytes` chunk tree (redundancy NONE): split and join.
//! - [`signature`]: Ethereum-prefixed signatures with `v` = 27/28 (SOCs, stamps).
//! - [`soc`]: single-owner chunks.
//! - [`feed`]: sequence-feed identifiers, addresses and v1/v2 updates.
//! - [`pss`]: PSS topics, targets and trojan chunks.
//! - [`stamp`]: postage stamps.
//! - [`overlay`]: node overlay addresses.
//! - [`bee_api`]: what the sidecar reads out of Bee's HTTP answers (JSON bodies, headers).
//!
//! Out of scope: erasure-coded trees (redundancy above NONE), encrypted 64-byte references,
//! mantaray manifests. See `specs/swarm-formats.md`.

pub mod bee_api;
pub mod bmt;
pub mod bytes_tree;
pub mod chunk;
pub mod feed;
pub mod overlay;
pub mod pss;
pub mod signature;
pub mod soc;
pub mod stamp;

pub use chunk::{Cac, ChunkAddress};
