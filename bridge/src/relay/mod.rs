//! `staples relay`: bridges Status public chats between a Whisper network and Swarm, so
//! one conversation survives while its members move across (specs/relay.md).
//!
//! A relay is a `dual` sidecar with a member of its own instead of an app. For each chat
//! it holds the chat's key (PBKDF2 of the name) and one polling filter on the chat's
//! topic: the PSS engine follows the chat on Swarm through that filter, and the Whisper
//! side mirrors it on the upstream Whisper node. Then:
//!
//! - **Whisper → Swarm** ([`to_swarm`]): a legacy Whisper message (no DAG header) polled
//!   upstream is republished on Swarm as the relay's own DAG message whose body is the
//!   message's record ([`staples_protocol::bridged`]), written to the relay's inbox like
//!   any member's post. A Staples copy (DAG header in the padding) is on Swarm already and
//!   is never bridged.
//! - **Swarm → Whisper** ([`to_whisper`]): a Staples message the engine delivers to the
//!   relay's filter is posted to Whisper as the *envelope its author sealed*, byte for
//!   byte, when the Whisper node takes raw envelopes (a `staples` node:
//!   `staples_postEnvelope`); otherwise re-sealed with `shh_post`. A bridged record is
//!   never posted back.
//!
//! No loop can form: Whisper → Swarm takes only messages *without* a DAG header, and
//! Swarm → Whisper posts only messages *with* one (and never a record). Copies collapse:
//! on Swarm by the legacy id (every receiver's filter takes a legacy envelope hash once,
//! `node::queue` `legacy_seen`), on Whisper by the envelope hash (every relay injects the
//! same bytes, and Whisper pools drop a hash they hold).

pub mod raw;
mod to_swarm;
mod to_whisper;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use staples_protocol::whisper::Topic;

use crate::dual::WhisperSide;
use crate::keystore::Keystore;
use crate::node::{LocalNode, Node};
use crate::rpc::shh::{CriteriaReq, ShhApi, ShhError};
use crate::rpc::shh_local::ShhService;
use crate::store::{Store, StoreError};

pub use to_whisper::relay_backlog;

/// The service a relay drives (the sidecar's own).
pub type Service = ShhService<LocalNode, Keystore>;

/// Copies seen on Whisper that a relay remembers (by padding hash).
const ON_WHISPER: usize = 65_536;

/// Legacy messages bridged to Swarm per second and chat by default; a flood beyond it is
/// shed and counted (`relay_shed`).
pub const DEFAULT_PER_SECOND: u32 = 50;

/// Errors setting a relay up.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The sidecar refused a call (a key or filter could not be made).
    #[error("relay setup: {0}")]
    Shh(#[from] ShhError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Nothing to bridge.
    #[error("a relay needs at least one --chat or --topic")]
    NoChats,
}

/// What `[relay]` and the relay's flags configure.
#[derive(Debug, Clone, PartialEq)]
pub struct RelayConfig {
    /// Public chat names.
    pub chats: Vec<String>,
    /// Legacy messages bridged per second and chat (and raw envelopes per topic).
    pub per_second: u32,
    /// Whisper topics bridged raw through their topic logs ([`raw`]).
    pub topics: Vec<[u8; 4]>,
}

/// One bridged chat.
struct Chat {
    name: String,
    key_id: String,
    topic: [u8; 4],
    filter: String,
    bucket: Mutex<Bucket>,
}

/// The relay's state for one chat, kept across restarts (`pss_meta`).
#[derive(Serialize, Deserialize)]
struct Stored {
    key: String,
    filter: String,
}

/// The chats, once their keys and filters are set up.
struct Chats {
    list: Vec<Chat>,
    by_filter: HashMap<String, usize>,
}

/// A running relay.
pub struct Relay {
    cfg: RelayConfig,
    shh: Arc<Service>,
    side: Arc<WhisperSide>,
    store: Store,
    chats: std::sync::OnceLock<Chats>,
    counters: Mutex<BTreeMap<&'static str, u64>>,
    /// Padding hashes of Staples messages recently seen as Whisper copies: already on
    /// Whisper, not posted again.
    on_whisper: Mutex<crate::recent::Recent<ON_WHISPER>>,
    wake: tokio::sync::Notify,
    /// The pool of our own Whisper node (devp2p), where the envelopes of the messages the
    /// relay polls are: `None` with a JSON-RPC upstream, which never shows them.
    whisper_pool: Option<Arc<crate::node::LocalNode>>,
}

impl Relay {
    /// A relay hooked into `side`, before the service restores its filters (so no
    /// legacy message polled for a restored filter is delivered instead of bridged).
    /// [`Relay::start`] sets the chats up.
    pub fn new(
        cfg: RelayConfig,
        shh: Arc<Service>,
        side: Arc<WhisperSide>,
        store: Store,
        whisper_pool: Option<Arc<crate::node::LocalNode>>,
    ) -> Arc<Relay> {
        let relay = Arc::new(Relay {
            cfg,
            shh,
            side: side.clone(),
            store,
            chats: std::sync::OnceLock::new(),
            counters: Mutex::new(BTreeMap::new()),
            on_whisper: Mutex::default(),
            whisper_pool,
            wake: tokio::sync::Notify::new(),
        });
        side.set_bridge(relay.clone());
        relay
    }

    /// Sets up the chats (reusing the key and filter of an earlier run, after the
    /// service restored its filters) and starts the relay's tasks: polling its filters
    /// (Swarm → Whisper) and posting to Whisper.
    pub async fn start(self: &Arc<Self>) -> Result<Vec<tokio::task::JoinHandle<()>>, RelayError> {
        if self.cfg.chats.is_empty() && self.cfg.topics.is_empty() {
            return Err(RelayError::NoChats);
        }
        let mut list = Vec::new();
        for name in &self.cfg.chats {
            let (key_id, filter) = chat_filter(&self.shh, &self.store, name).await?;
            tracing::info!(chat = %name, filter = %filter, "relay: bridging");
            list.push(Chat {
                name: name.clone(),
                key_id,
                topic: Topic::from_name(name).0,
                filter,
                bucket: Mutex::new(Bucket::new(self.cfg.per_second)),
            });
        }
        let by_filter = list
            .iter()
            .enumerate()
            .map(|(i, c)| (c.filter.clone(), i))
            .collect();
        let _ = self.chats.set(Chats { list, by_filter });
        Ok(vec![
            tokio::spawn(self.clone().collect_loop()),
            tokio::spawn(self.clone().send_loop()),
        ])
    }

    /// The chats, once [`Relay::start`] set them up (a mirror may poll before that).
    async fn chats(&self) -> &Chats {
        loop {
            if let Some(c) = self.chats.get() {
                return c;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    fn count(&self, name: &'static str) {
        self.count_n(name, 1);
    }

    fn count_n(&self, name: &'static str, n: u64) {
        *lock(&self.counters).entry(name).or_default() += n;
    }

    /// For `staples_status.relay`: the chats, messages waiting for Whisper, counters.
    pub async fn status(&self) -> serde_json::Value {
        let backlog = relay_backlog(&self.store).await.unwrap_or(-1);
        let counters = lock(&self.counters).clone();
        serde_json::json!({
            "chats": &self.cfg.chats,
            "topics": self.cfg.topics.iter().map(|t| format!("0x{}", hex::encode(t))).collect::<Vec<_>>(),
            "toWhisperBacklog": backlog,
            "counters": counters,
        })
    }
}

/// The key and filter of chat `name`: the stored ones if the keystore and the filter
/// set still have them, else new ones (recorded).
async fn chat_filter(
    shh: &Service,
    store: &Store,
    name: &str,
) -> Result<(String, String), RelayError> {
    let meta = format!("relay/chat/{name}");
    if let Some(bytes) = crate::engine::db::meta(store, meta.clone()).await?
        && let Ok(s) = serde_json::from_slice::<Stored>(&bytes)
        && shh.has_sym_key(&s.key)
        && shh.node().has_filter(&s.filter)
    {
        return Ok((s.key, s.filter));
    }
    let key = shh.generate_sym_key_from_password(name.to_string()).await?;
    let filter = shh
        .new_message_filter(CriteriaReq {
            sym_key_id: key.clone(),
            topics: vec![Topic::from_name(name).0],
            ..CriteriaReq::default()
        })
        .await?;
    let stored = serde_json::to_vec(&Stored {
        key: key.clone(),
        filter: filter.clone(),
    })
    .unwrap_or_default();
    crate::engine::db::set_meta(store, meta, stored).await?;
    Ok((key, filter))
}

/// A token bucket: `rate` per second, bursts up to four seconds' worth.
struct Bucket {
    rate: f64,
    tokens: f64,
    at: std::time::Instant,
}

impl Bucket {
    fn new(per_second: u32) -> Self {
        let rate = f64::from(per_second.max(1));
        Bucket {
            rate,
            tokens: rate * 4.0,
            at: std::time::Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = std::time::Instant::now();
        let burst = self.rate * 4.0;
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_passes_a_burst_then_its_rate() {
        let mut b = Bucket::new(10);
        let passed = (0..100).filter(|_| b.take()).count();
        assert_eq!(passed, 40, "four seconds' worth at once");
        b.at -= std::time::Duration::from_millis(500);
        let passed = (0..100).filter(|_| b.take()).count();
        assert_eq!(passed, 5, "then the rate");
    }
}
