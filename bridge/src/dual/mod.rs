//! The Whisper side of `--transport=dual` with an upstream Whisper node (`--whisper-rpc`):
//! every post the app makes goes out on Swarm (the PSS engine) *and* on Whisper, as one
//! DAG message with one id (specs/transport-dual.md).
//!
//! A dual post's `shh_post` parameters ([`WhisperPost`]: the app's key ids, topic,
//! payload, TTL, PoW, and the padding carrying the DAG header) are stored beside its PSS
//! outbox row in the transaction that acknowledges the post, so the post is durable for
//! both sides before the app hears back. [`WhisperSide::run`] walks those rows in outbox
//! order behind a stored cursor and posts each to the upstream with the upstream's ids for
//! the same keys, importing a key (`shh_addSymKey` / `shh_addPrivateKey`) the first time
//! it is needed. An unreachable or failing upstream delays the Whisper side, in order,
//! never drops it; the backlog shows in `staples_status.whisper`.
//!
//! The one repeat: if the sidecar dies after the upstream accepted a post and before the
//! cursor's move past it committed (moves are not waited for, so the last few), the post
//! goes out again after the restart. On a `staples` Whisper node the post is the envelope
//! the engine sealed for Swarm, byte for byte (`staples_postEnvelope`), so a repeat is the
//! same envelope, which Whisper pools drop; geth and status-go seal it anew (another
//! envelope hash), and Staples receivers collapse it by DAG id, Status apps by their own
//! message id.
//!
//! Receiving ([`WhisperSide::mirror`]): each app filter gets an upstream filter with the
//! same criteria (upstream key ids), polled every [`crate::upstream::POLL_INTERVAL`]. A
//! message whose padding carries a Staples DAG header is a copy of a message that is on
//! Swarm too: it only wakes the PSS engine's sync (unless it is the echo of our own post),
//! and the Swarm path verifies and delivers it once, in causal order. A message without
//! one is a legacy Whisper message: written to the filter's stored queue as the
//! upstream's JSON, then handed to the app as Whisper would.
//!
//! Submodules: [`send`] (posting the stored rows upstream), [`mirror`] (receiving through
//! mirrored filters), [`db`] (the cursor, the key map, the backlog).

mod db;
mod mirror;
mod send;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

use crate::engine::{Hook, KeyLookup};
use crate::node::Node;
use crate::rpc::RpcError;
use crate::store::{Store, StoreError};
use crate::upstream::Upstream;

pub use db::{backlog, check_cursor, forget_keys};
pub use send::WhisperPost;

/// What a relay ([`crate::relay`]) does with what the Whisper side polls, instead of
/// delivering legacy messages to the app.
pub trait Bridge: Send + Sync {
    /// A legacy message (no DAG header) polled for filter `filter`, as the upstream's JSON.
    fn legacy<'a>(
        &'a self,
        filter: &'a str,
        json: &'a str,
    ) -> futures_util::future::BoxFuture<'a, ()>;
    /// A Staples copy is on Whisper: `key` is the keccak256 of its padding (the DAG
    /// header, signed over the payload, and the author's app padding), the same for every
    /// copy of one message and cheaper than recovering its DAG id.
    fn copy_seen(&self, key: [u8; 32]);
}

/// Errors of the Whisper side.
#[derive(Debug, thiserror::Error)]
pub enum DualError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The upstream refused or could not be reached.
    #[error("upstream: {0}")]
    Upstream(String),
    /// The app's key is gone from the keystore (it was deleted after the post).
    #[error("key {0} is no longer in the keystore")]
    KeyGone(String),
    /// A stored row does not parse (written by a newer or broken build).
    #[error("stored whisper post does not parse: {0}")]
    BadRow(String),
}

impl From<RpcError> for DualError {
    fn from(e: RpcError) -> Self {
        DualError::Upstream(e.message)
    }
}

/// The Whisper side: sends the stored posts in order, and mirrors the app's filters.
pub struct WhisperSide {
    upstream: Arc<Upstream>,
    store: Store,
    keys: Arc<dyn KeyLookup>,
    node: Arc<dyn Node>,
    engine: Arc<dyn Hook>,
    wake: Arc<Notify>,
    ok: AtomicBool,
    /// Whether the Whisper node takes raw envelopes (`staples_postEnvelope`: a `staples`
    /// node); cleared the first time it says it does not.
    raw: AtomicBool,
    last_error: std::sync::Mutex<Option<String>>,
    /// Mirrored app filters: their pollers and current upstream filter ids.
    mirrors: std::sync::Mutex<HashMap<String, Mirrored>>,
    counters: std::sync::Mutex<BTreeMap<&'static str, u64>>,
    /// The upstream's `net_peerCount`, last read (its Whisper peers).
    upstream_peers: std::sync::atomic::AtomicU64,
    /// Hashes of the paddings of our recent posts upstream: their copies coming back.
    echoes: std::sync::Mutex<crate::recent::Recent<{ mirror::ECHOES }>>,
    last_nudge: std::sync::Mutex<Option<std::time::Instant>>,
    /// Set in a relay: legacy messages are bridged, not delivered.
    bridge: std::sync::OnceLock<Arc<dyn Bridge>>,
}

struct Mirrored {
    task: tokio::task::JoinHandle<()>,
    upstream_filter: Arc<std::sync::Mutex<Option<String>>>,
}

impl WhisperSide {
    /// The Whisper side over `upstream`, reading the app's keys from `keys`, delivering
    /// legacy messages into `node`'s filters and waking `engine` for Staples copies.
    pub fn new(
        upstream: Arc<Upstream>,
        store: Store,
        keys: Arc<dyn KeyLookup>,
        node: Arc<dyn Node>,
        engine: Arc<dyn Hook>,
    ) -> Arc<Self> {
        Arc::new(WhisperSide {
            upstream,
            store,
            keys,
            node,
            engine,
            wake: Arc::new(Notify::new()),
            ok: AtomicBool::new(true),
            raw: AtomicBool::new(true),
            last_error: std::sync::Mutex::new(None),
            mirrors: std::sync::Mutex::new(HashMap::new()),
            counters: std::sync::Mutex::new(BTreeMap::new()),
            upstream_peers: std::sync::atomic::AtomicU64::new(0),
            echoes: std::sync::Mutex::default(),
            bridge: std::sync::OnceLock::new(),
            last_nudge: std::sync::Mutex::new(None),
        })
    }

    /// Makes this Whisper side a relay's: legacy messages go to `bridge` instead of the
    /// app's filters, and Staples copies are reported to it. Set once, before polling.
    pub fn set_bridge(&self, bridge: Arc<dyn Bridge>) {
        let _ = self.bridge.set(bridge);
    }

    /// The upstream Whisper node.
    pub fn upstream(&self) -> &Arc<Upstream> {
        &self.upstream
    }

    /// Posts `post` upstream now (a relay's re-sealed copy), importing its keys as needed.
    pub async fn post(&self, post: &WhisperPost) -> Result<(), DualError> {
        self.send(post).await
    }

    /// The upstream's Whisper peers, last read (for `net_peerCount`).
    pub fn peer_count(&self) -> u64 {
        self.upstream_peers.load(Ordering::Relaxed)
    }

    /// Reads the upstream's `net_peerCount` every [`crate::engine::PEERS_EVERY`] until
    /// aborted; an unreachable upstream counts as none. The reads also keep a `staples`
    /// upstream counting this sidecar as a peer.
    pub async fn watch_peers(self: Arc<Self>) {
        let mut tick = tokio::time::interval(crate::engine::PEERS_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let n = match self.upstream.call("net_peerCount", None).await {
                Ok(v) => serde_json::from_str::<String>(v.get())
                    .ok()
                    .and_then(|h| u64::from_str_radix(h.trim_start_matches("0x"), 16).ok())
                    .unwrap_or(0),
                Err(_) => 0,
            };
            self.upstream_peers.store(n, Ordering::Relaxed);
        }
    }

    fn count(&self, what: &'static str) {
        *self
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(what)
            .or_default() += 1;
    }

    /// Wakes the sender (a post was committed).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// For `staples_status`: posts not yet on Whisper, the upstream's health, mirrored
    /// filters, and counters of what arrived from Whisper.
    pub async fn status(&self) -> serde_json::Value {
        let backlog = backlog(&self.store).await.unwrap_or(-1);
        // Mirrors, and how many have their upstream filter (a message posted on Whisper
        // before that is not seen: Whisper filters start empty).
        let (mirrored, open) = {
            let m = self.mirrors.lock().unwrap_or_else(|p| p.into_inner());
            let open = m
                .values()
                .filter(|x| {
                    x.upstream_filter
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .is_some()
                })
                .count();
            (m.len(), open)
        };
        let counters = self
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        serde_json::json!({
            "upstream": true,
            "peers": self.peer_count(),
            "ok": self.ok.load(Ordering::Relaxed),
            "lastError": self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            "backlog": backlog,
            "mirroredFilters": mirrored,
            "mirrorsOpen": open,
            "counters": counters,
        })
    }
}
