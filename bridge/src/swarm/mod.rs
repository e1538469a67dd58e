//! Swarm access for the PSS transport: the [`Swarm`] trait the engine is written against,
//! its typed errors, and (in submodules) the Bee HTTP implementation and the embedded dev
//! node.
//!
//! Everything that comes back from Bee is verified here before anyone above sees it:
//! content-addressed chunks are re-hashed against the address asked for, single-owner
//! chunks are checked against their address and owner signature. The engine never handles
//! an unverified chunk.

use std::future::Future;

use staples_protocol::crypto::PublicKey;
use staples_protocol::swarm::chunk::ChunkAddress;
use staples_protocol::swarm::feed::FeedTopic;
#[allow(unused_imports)] // named in docs
use staples_protocol::swarm::pss::PssTopic;
use staples_protocol::swarm::pss::Targets;
use staples_protocol::swarm::soc::SingleOwnerChunk;
use tokio::sync::mpsc;

pub mod bee;
pub mod embedded;

/// What a Bee node says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAddresses {
    /// The node's overlay address (PSS targets are prefixes of it).
    pub overlay: [u8; 32],
    /// The node's PSS public key (PSS messages to it are encrypted to this key).
    pub pss_public_key: PublicKey,
}

/// Why a Swarm call failed.
#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    /// The Bee node could not be reached (connection refused, DNS, reset).
    #[error("Bee at {url} unreachable: {reason}")]
    Unreachable {
        /// Base URL.
        url: String,
        /// What the HTTP client said.
        reason: String,
    },
    /// The call took longer than the configured timeout.
    #[error("Bee call {what} timed out")]
    Timeout {
        /// Which call.
        what: &'static str,
    },
    /// Bee has no such chunk or feed update (404).
    #[error("not found on Swarm")]
    NotFound,
    /// Bee answered with an error status.
    #[error("Bee answered {status} to {what}: {message}")]
    Status {
        /// Which call.
        what: &'static str,
        /// HTTP status.
        status: u16,
        /// Bee's message, if any.
        message: String,
    },
    /// Bee answered, but the data failed verification (wrong hash, bad SOC signature,
    /// owner mismatch, malformed tree). Never trusted.
    #[error("invalid data from Swarm: {0}")]
    Invalid(String),
    /// No usable postage batch and none could be bought.
    #[error("no usable postage batch: {0}")]
    NoBatch(String),
}

impl SwarmError {
    /// Whether retrying later may succeed (outage, timeout, 5xx) as opposed to a verdict on
    /// the data itself.
    pub fn is_transient(&self) -> bool {
        match self {
            SwarmError::Unreachable { .. } | SwarmError::Timeout { .. } => true,
            SwarmError::Status { status, .. } => *status >= 500 || *status == 429,
            SwarmError::NoBatch(_) => true,
            SwarmError::NotFound | SwarmError::Invalid(_) => false,
        }
    }
}

/// A live PSS subscription: each item is one message payload as Bee delivered it (already
/// decrypted by Bee for this node; the engine still verifies everything inside).
pub struct PssSubscription {
    /// Payloads in arrival order; closes when the WebSocket does.
    pub messages: mpsc::Receiver<Vec<u8>>,
}

/// The Swarm operations the PSS transport needs. Implemented over Bee's HTTP API by
/// `bee::BeeSwarm`.
pub trait Swarm: Send + Sync + 'static {
    /// The node's overlay and PSS key (`GET /addresses`).
    fn addresses(&self) -> impl Future<Output = Result<NodeAddresses, SwarmError>> + Send;

    /// Whether the node is ready and connected enough that a feed read can be trusted to be
    /// current (`GET /readiness`, plus topology for real nodes). A `false` makes readers
    /// treat a "not found" as "unknown", never as "empty".
    fn ready(&self) -> impl Future<Output = Result<bool, SwarmError>> + Send;

    /// How many peers the node is connected to (`GET /peers`).
    fn peers(&self) -> impl Future<Output = Result<usize, SwarmError>> + Send;

    /// What kind of node it is (`GET /node`): light and ultra-light nodes receive no PSS,
    /// ultra-light nodes upload nothing.
    fn node_mode(
        &self,
    ) -> impl Future<Output = Result<staples_protocol::swarm::bee_api::BeeMode, SwarmError>> + Send;

    /// Uploads `data` as a `/bytes` tree (redundancy none), stamped with a usable batch the
    /// implementation finds or buys. Returns the root reference.
    fn upload_bytes(
        &self,
        data: &[u8],
    ) -> impl Future<Output = Result<ChunkAddress, SwarmError>> + Send;

    /// Downloads a `/bytes` tree and verifies every chunk against its address.
    fn download_bytes(
        &self,
        reference: &ChunkAddress,
    ) -> impl Future<Output = Result<Vec<u8>, SwarmError>> + Send;

    /// Uploads a single-owner chunk (stamped).
    fn upload_soc(
        &self,
        soc: &SingleOwnerChunk,
    ) -> impl Future<Output = Result<(), SwarmError>> + Send;

    /// Fetches the single-owner chunk at `address` (`GET /chunks/{address}`) and verifies
    /// address, signature and wrapped chunk. `NotFound` if absent.
    fn download_soc(
        &self,
        address: &ChunkAddress,
    ) -> impl Future<Output = Result<SingleOwnerChunk, SwarmError>> + Send;

    /// The index of the newest update of a sequence feed as Bee reports it
    /// (`GET /feeds/{owner}/{topic}`, `after` as the lookup hint), or `None` if Bee finds
    /// none. Only a hint: the caller fetches and verifies the update itself with
    /// [`Swarm::download_soc`], and Bee may return a stale index.
    fn feed_latest_index(
        &self,
        owner: &[u8; 20],
        topic: &FeedTopic,
        after: Option<u64>,
    ) -> impl Future<Output = Result<Option<u64>, SwarmError>> + Send;

    /// Sends `payload` over PSS to the node(s) whose overlay starts with `targets`,
    /// encrypted to `recipient` (`POST /pss/send/{topic}/{targets}?recipient=`). `topic` is
    /// the topic *name*: Bee hashes the path segment ([`PssTopic::from_string`]).
    fn pss_send(
        &self,
        topic: &str,
        targets: &Targets,
        recipient: &PublicKey,
        payload: &[u8],
    ) -> impl Future<Output = Result<(), SwarmError>> + Send;

    /// Subscribes to the topic named `topic` over Bee's PSS WebSocket
    /// (`GET /pss/subscribe/{topic}`).
    fn pss_subscribe(
        &self,
        topic: &str,
    ) -> impl Future<Output = Result<PssSubscription, SwarmError>> + Send;
}
