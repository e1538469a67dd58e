//! The PSS transport engine: chats, the DAG, the outbox, inbox sync and parent fetching
//! (`--transport=pss`; normative text in `specs/transport-pss.md`).
//!
//! - A post ([`Engine::begin`] then [`Engine::commit`]) becomes a DAG message riding in the
//!   Whisper padding (the app's payload is untouched), is written to the durable outbox
//!   before the app gets its hash, and is then uploaded, listed in our inbox page for the
//!   chat and sent live over PSS by the sender task ([`send`]).
//! - What arrives (PSS frames, inbox pages, fetched parents) is verified
//!   ([`chat::verify`]), goes through the chat's causal buffer, and is released to the
//!   local node's filters only when its parents are in ([`Engine::accept`]).
//! - The sync task ([`sync`]) reads rosters and contact records, walks members' inboxes
//!   back to what we have, and fetches wanted parents by the references pages list (R4,
//!   R5).
//!
//! Locks are `std::sync::Mutex`es held only for in-memory work, never across an `.await`.

pub mod chat;
pub mod db;
pub mod history;
mod index;
pub mod send;
pub mod sync;
pub mod topic_log;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use serde_json::json;
use staples_protocol::chat::Chat;
use staples_protocol::crypto::{PrivateKey, PublicKey};
use staples_protocol::dag::{
    self, ChatId, Delivery, Draft, GapReason, Limits, MessageId, SignedMessage,
};
use staples_protocol::inbox::InboxWriter;
use staples_protocol::swarm::bee_api::BeeMode;
use staples_protocol::whisper::{Envelope, SymKey};
use tokio::sync::{Notify, mpsc};

use crate::store::{Store, StoreError};
use crate::swarm::{NodeAddresses, Swarm, SwarmError};
use chat::{ChatState, Incoming, Member, Opener};

/// Errors the engine reports to the RPC layer.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The store failed: nothing was acknowledged.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The DAG message could not be built.
    #[error("building the DAG message: {0}")]
    Dag(#[from] dag::MessageError),
    /// A Swarm call failed.
    #[error(transparent)]
    Swarm(#[from] SwarmError),
    /// An envelope that no topic log entry can carry (too large for one chunk).
    #[error(transparent)]
    TopicLog(#[from] staples_protocol::topic_log::TopicLogError),
    /// The Bee node is ultra-light: without postage it uploads nothing, so nothing can be
    /// sent through it (reading still works).
    #[error(
        "the Bee node is ultra-light and cannot upload: sending needs a light or full node (--bee-api)"
    )]
    UltraLight,
}

/// Lets the engine hand released envelopes to the app's filters, in two steps around the
/// commit that records them delivered (so the two are one transaction).
pub trait Release: Send + Sync + 'static {
    /// Which filters take a released envelope (no expiry or PoW gate: it may be hours old
    /// when an offline inbox is caught up). Changes nothing yet.
    fn route(&self, envelope: Envelope) -> crate::node::Routed;
    /// Which filters take an envelope read from a topic log, as a legacy Whisper arrival
    /// ([`topic_log`]). Changes nothing yet.
    fn route_logged(&self, pooled: &crate::node::Pooled) -> crate::node::Routed;
    /// The node's minimum PoW (what a topic log's envelope must meet).
    fn min_pow(&self) -> f64;
    /// Queues what was routed, after the commit.
    fn enqueue(&self, routed: crate::node::Routed);
    /// For `staples_status`: entries waiting for the app, detached subscription
    /// mailboxes, and messages shed because a queue was full.
    fn queue_stats(&self) -> (usize, usize, u64);
    /// For `staples_status`: legacy messages refused as another path's copy.
    fn legacy_repeats(&self) -> u64;
}

/// Looks keys up by the ids the app uses, so stored chats name keys without holding them.
pub trait KeyLookup: Send + Sync + 'static {
    /// A symmetric key.
    fn sym(&self, id: &str) -> Option<[u8; 32]>;
    /// A key pair.
    fn pair(&self, id: &str) -> Option<Arc<PrivateKey>>;
}

/// A boxed future, for the object-safe traits here.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// What the `shh` service needs from the engine, object-safe so the service does not
/// carry the engine's Swarm type.
pub trait Hook: Send + Sync + 'static {
    /// [`Engine::begin`].
    fn begin<'a>(
        &'a self,
        target: Target,
        payload: &'a [u8],
        app_padding: &'a [u8],
        whisper_signed: bool,
    ) -> BoxFuture<'a, Result<Begun, EngineError>>;
    /// [`Engine::commit`].
    /// `whisper`: in dual mode, the post's parameters for the Whisper side
    /// ([`crate::dual`]), stored with the outbox row.
    fn commit<'a>(
        &'a self,
        begun: Begun,
        envelope: &'a Envelope,
        queue: crate::node::QueueRows,
        whisper: Option<String>,
    ) -> BoxFuture<'a, Result<(), EngineError>>;
    /// [`Engine::run`].
    fn run(&self) -> BoxFuture<'_, Vec<tokio::task::JoinHandle<()>>>;
    /// [`Engine::drain`].
    fn drain(&self) -> BoxFuture<'_, ()>;
    /// [`Engine::follow_symmetric`].
    fn follow_symmetric(&self, key_id: &str, key: [u8; 32], topics: &[[u8; 4]]);
    /// [`Engine::follow_identity`].
    fn follow_identity(&self, key_id: &str, key: Arc<PrivateKey>);
    /// `staples_status`.
    fn status(&self) -> BoxFuture<'_, serde_json::Value>;
    /// `staples_gaps`.
    fn gaps(&self) -> BoxFuture<'_, Result<serde_json::Value, EngineError>>;
    /// `staples_history`.
    fn history(
        &self,
        chat: Option<ChatId>,
    ) -> BoxFuture<'_, Result<serde_json::Value, EngineError>>;
    /// The Bee node's connected peers, as last read ([`PEERS_EVERY`]; 0 while Bee is
    /// unreachable), for `net_peerCount`.
    fn peer_count(&self) -> u64;
    /// Starts a sync pass now (a Whisper copy of a Staples message said its sender's
    /// inbox has something new).
    fn nudge_sync(&self);
    /// [`Engine::history_page`]: a mailserver page of history, read from Swarm.
    fn history_page<'a>(
        &'a self,
        q: &'a history::HistoryQuery,
    ) -> BoxFuture<'a, Result<history::HistoryPage, EngineError>>;
    /// [`Engine::follow_topics`].
    fn follow_topics(&self, topics: &[[u8; 4]]);
    /// The topics of the chats this node follows (a mailserver request by bloom only is
    /// served from the chats on topics its bloom matches).
    fn chat_topics(&self) -> Vec<[u8; 4]>;
    /// [`Engine::follow_topic_into`].
    fn follow_topic_into(
        &self,
        topic: staples_protocol::whisper::Topic,
        sink: Arc<dyn topic_log::TopicSink>,
    );
    /// [`Engine::topic_log_append`].
    fn topic_log_append<'a>(&'a self, env: &'a Envelope) -> BoxFuture<'a, Result<(), EngineError>>;
}

impl<S: Swarm> Hook for Engine<S> {
    fn begin<'a>(
        &'a self,
        target: Target,
        payload: &'a [u8],
        app_padding: &'a [u8],
        whisper_signed: bool,
    ) -> BoxFuture<'a, Result<Begun, EngineError>> {
        Box::pin(Engine::begin(
            self,
            target,
            payload,
            app_padding,
            whisper_signed,
        ))
    }
    fn commit<'a>(
        &'a self,
        begun: Begun,
        envelope: &'a Envelope,
        queue: crate::node::QueueRows,
        whisper: Option<String>,
    ) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(Engine::commit(self, begun, envelope, queue, whisper))
    }
    fn run(&self) -> BoxFuture<'_, Vec<tokio::task::JoinHandle<()>>> {
        Box::pin(Engine::run(self))
    }
    fn drain(&self) -> BoxFuture<'_, ()> {
        Box::pin(Engine::drain(self))
    }
    fn follow_symmetric(&self, key_id: &str, key: [u8; 32], topics: &[[u8; 4]]) {
        Engine::follow_symmetric(self, key_id, key, topics);
    }
    fn follow_identity(&self, key_id: &str, key: Arc<PrivateKey>) {
        Engine::follow_identity(self, key_id, key);
    }
    fn status(&self) -> BoxFuture<'_, serde_json::Value> {
        Box::pin(Engine::status(self))
    }
    fn gaps(&self) -> BoxFuture<'_, Result<serde_json::Value, EngineError>> {
        Box::pin(Engine::gaps(self))
    }
    fn history(
        &self,
        chat: Option<ChatId>,
    ) -> BoxFuture<'_, Result<serde_json::Value, EngineError>> {
        Box::pin(Engine::history(self, chat))
    }
    fn peer_count(&self) -> u64 {
        self.inner.bee_peers.load(Ordering::Relaxed)
    }
    fn history_page<'a>(
        &'a self,
        q: &'a history::HistoryQuery,
    ) -> BoxFuture<'a, Result<history::HistoryPage, EngineError>> {
        Box::pin(Engine::history_page(self, q))
    }
    fn nudge_sync(&self) {
        self.inner.wake_sync.notify_one();
    }
    fn follow_topics(&self, topics: &[[u8; 4]]) {
        Engine::follow_topics(self, topics);
    }
    fn chat_topics(&self) -> Vec<[u8; 4]> {
        let mut t: Vec<[u8; 4]> = lock(&self.inner.chats)
            .values()
            .map(|st| st.chat.topic())
            .collect();
        t.sort_unstable();
        t.dedup();
        t
    }
    fn follow_topic_into(
        &self,
        topic: staples_protocol::whisper::Topic,
        sink: Arc<dyn topic_log::TopicSink>,
    ) {
        Engine::follow_topic_into(self, topic, sink);
    }
    fn topic_log_append<'a>(&'a self, env: &'a Envelope) -> BoxFuture<'a, Result<(), EngineError>> {
        Box::pin(Engine::topic_log_append(self, env))
    }
}

/// How often the Bee node's peer count is read for `net_peerCount`.
pub const PEERS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Tuning.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// How often rosters and inboxes are read when nothing wakes the sync task.
    pub sync_interval: Duration,
    /// How many chunk fetches run at once during catch-up.
    pub fetch_parallelism: usize,
    /// Causal buffer limits (gap deadline among them).
    pub limits: Limits,
    /// Bytes of the recipient's overlay a PSS message is mined for (1..=3). More bytes
    /// reach the node more precisely in a large network and cost 256x the mining per byte.
    pub pss_target_bytes: usize,
    /// Live PSS sends in flight at once (each is mined by Bee).
    pub live_parallelism: usize,
    /// `--topic-logs`: append every post's envelope to its topic's log, and read the logs
    /// of the filters' topics ([`topic_log`]).
    pub topic_logs: bool,
    /// Write and read symmetric chats' indexes (`specs/chat-index.md`); off acts as a
    /// peer from before the index (`--no-chat-index`).
    pub chat_index: bool,
    /// A chat with more members than this is large: its index writers send no per-member
    /// PSS to members that read the index, and its readers poll the index every
    /// `live_poll` (from half this many members on).
    pub live_pss_max: usize,
    /// How often the index of a large chat is polled.
    pub live_poll: Duration,
    /// How often every member's inbox is read even when the index names nothing new.
    pub full_pass_interval: Duration,
    /// Index entries accepted per author per minute; the excess is counted and left to
    /// the next full pass.
    pub index_per_author_per_minute: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            sync_interval: Duration::from_secs(5),
            fetch_parallelism: 64,
            limits: Limits::default(),
            pss_target_bytes: 2,
            live_parallelism: 16,
            topic_logs: false,
            chat_index: true,
            live_pss_max: 16,
            live_poll: Duration::from_secs(1),
            full_pass_interval: Duration::from_secs(600),
            index_per_author_per_minute: 120,
        }
    }
}

/// What a post is addressed to.
#[derive(Clone, Debug)]
pub enum Target {
    /// A symmetric-key chat.
    Symmetric {
        /// The app's key id.
        key_id: String,
        /// The key.
        key: [u8; 32],
        /// Topic.
        topic: [u8; 4],
    },
    /// A public key.
    Asymmetric {
        /// Recipient.
        recipient: PublicKey,
        /// Topic.
        topic: [u8; 4],
    },
}

/// A post between [`Engine::begin`] and [`Engine::commit`]. It holds its chat's turn:
/// posts to one chat are committed in clock order, so the inbox (which needs strictly
/// increasing clocks) lists them in the order they were built.
pub struct Begun {
    /// The padding to put in the Whisper message.
    pub padding: Vec<u8>,
    message: SignedMessage,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl Begun {
    /// The DAG id of the post.
    pub fn id(&self) -> MessageId {
        self.message.id()
    }
}

/// Unix ms now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The engine; cheap to clone.
pub struct Engine<S: Swarm> {
    inner: Arc<Inner<S>>,
}

impl<S: Swarm> Clone for Engine<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<S> {
    swarm: Arc<S>,
    store: Store,
    node: Arc<dyn Release>,
    keys: Arc<dyn KeyLookup>,
    node_key: Arc<PrivateKey>,
    /// `node_key`'s public key and address, derived once (an EC multiplication each time
    /// otherwise, and `accept` needs the address for every message).
    node_public: PublicKey,
    node_addr: [u8; 20],
    cfg: EngineConfig,
    me: Mutex<Option<NodeAddresses>>,
    chats: Mutex<HashMap<ChatId, ChatState>>,
    /// One turn per chat from `begin` to `commit` (see [`Begun`]).
    turns: Mutex<HashMap<ChatId, Arc<tokio::sync::Mutex<()>>>>,
    /// Key pairs the app listens with: id → key.
    identities: Mutex<BTreeMap<String, Arc<PrivateKey>>>,
    /// Next drop-box index to read, by drop-box owner (in memory: a restart re-reads).
    drop_box_next: Mutex<HashMap<[u8; 20], u64>>,
    /// When our roster entries were last read back ([`send::recheck_own_entries`]).
    own_entries_checked: Mutex<Option<std::time::Instant>>,
    /// Followed topic logs.
    topic_logs: Mutex<topic_log::Follows>,
    counters: Mutex<BTreeMap<&'static str, u64>>,
    bee_ok: AtomicBool,
    /// Bee's connected peers, last read.
    bee_peers: std::sync::atomic::AtomicU64,
    /// Bee's mode, last read (`None` until first read).
    bee_mode: Mutex<Option<BeeMode>>,
    last_error: Mutex<Option<String>>,
    wake_send: Notify,
    wake_sync: Notify,
    /// References being downloaded now (a page listing and a wanted parent may name the
    /// same one at once: it is fetched once).
    fetching: Mutex<std::collections::HashSet<[u8; 32]>>,
    /// Outbox rows whose live send has started (in memory: after a restart a live send
    /// may repeat, and receivers drop the duplicate by DAG id).
    live_started: Mutex<std::collections::HashSet<MessageId>>,
    /// Bounds live sends in flight.
    live_slots: Arc<tokio::sync::Semaphore>,
    /// Bounds batch verifications running at once to the cores: a catch-up verifies
    /// thousands of signatures, and FIFO slots keep them near the order they are admitted
    /// in (oldest first) instead of all finishing together.
    verify_slots: Arc<tokio::sync::Semaphore>,
    /// Held while deliveries are recorded and released (see [`Engine::finish`]); held for
    /// good once [`Engine::drain`] has taken it.
    release_turn: Arc<tokio::sync::Mutex<()>>,
    drained: Mutex<Option<tokio::sync::OwnedMutexGuard<()>>>,
    /// Wanted parents whose reference is known, for the fetcher task.
    fetch_tx: mpsc::UnboundedSender<(ChatId, [u8; 32], MessageId)>,
    /// Start-up work for [`Engine::run`]: the fetcher's queue and the stored pending
    /// messages to run through the buffer again.
    startup: Mutex<Option<Startup>>,
}

type FetchRx = mpsc::UnboundedReceiver<(ChatId, [u8; 32], MessageId)>;

struct Startup {
    fetch_rx: FetchRx,
    pending: Vec<(ChatId, Vec<u8>)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Poisoning means a panic mid-update elsewhere; serving on is better than stopping.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<S: Swarm> Engine<S> {
    /// Restores the engine's state from the store without delivering anything: the
    /// sidecar installs the app's filters and their stored queues next, and only then
    /// calls [`Engine::run`], so nothing is released before a filter can take it.
    pub async fn open(
        swarm: Arc<S>,
        store: Store,
        node: Arc<dyn Release>,
        keys: Arc<dyn KeyLookup>,
        node_key: Arc<PrivateKey>,
        cfg: EngineConfig,
    ) -> Result<Self, EngineError> {
        let (fetch_tx, fetch_rx) = mpsc::unbounded_channel();
        let cfg_live_parallelism = cfg.live_parallelism.max(1);
        let engine = Self {
            inner: Arc::new(Inner {
                swarm,
                store,
                node,
                keys,
                node_public: node_key.public_key(),
                node_addr: node_key.public_key().eth_address(),
                node_key,
                cfg,
                me: Mutex::new(None),
                chats: Mutex::new(HashMap::new()),
                turns: Mutex::new(HashMap::new()),
                identities: Mutex::new(BTreeMap::new()),
                drop_box_next: Mutex::new(HashMap::new()),
                own_entries_checked: Mutex::new(None),
                topic_logs: Mutex::new(HashMap::new()),
                counters: Mutex::new(BTreeMap::new()),
                bee_ok: AtomicBool::new(false),
                bee_peers: std::sync::atomic::AtomicU64::new(0),
                bee_mode: Mutex::new(None),
                last_error: Mutex::new(None),
                wake_send: Notify::new(),
                wake_sync: Notify::new(),
                fetch_tx,
                fetching: Mutex::new(Default::default()),
                verify_slots: Arc::new(tokio::sync::Semaphore::new(
                    std::thread::available_parallelism().map_or(1, |n| n.get()),
                )),
                release_turn: Arc::new(tokio::sync::Mutex::new(())),
                drained: Mutex::new(None),
                startup: Mutex::new(None),
                live_started: Mutex::new(Default::default()),
                live_slots: Arc::new(tokio::sync::Semaphore::new(cfg_live_parallelism)),
            }),
        };
        let pending = engine.restore().await?;
        *lock(&engine.inner.startup) = Some(Startup { fetch_rx, pending });
        Ok(engine)
    }

    /// Starts delivering: stored pending messages go back through the buffer, then the
    /// tasks start (sender, sync, PSS receiver, parent fetcher). Call once, after the
    /// app's filters are installed. The tasks end with the runtime, or when aborted after
    /// [`Engine::drain`].
    pub async fn run(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let Some(startup) = lock(&self.inner.startup).take() else {
            return Vec::new();
        };
        // Pending messages go back through the same checks and buffer as on arrival.
        for (chat, env) in startup.pending {
            self.accept(chat, &env, "restored", None).await;
        }
        vec![
            tokio::spawn(send::run(self.clone())),
            tokio::spawn(sync::run(self.clone())),
            tokio::spawn(sync::run_pss(self.clone())),
            tokio::spawn(fetcher(self.clone(), startup.fetch_rx)),
            tokio::spawn(watch_peers(self.clone())),
        ]
    }

    /// Shutdown: waits for the delivery being recorded to commit, then lets no other
    /// start. What is not recorded yet is still pending in the store or unread in an
    /// inbox (reader cursors move only after delivery), so it arrives after the restart.
    pub async fn drain(&self) {
        let guard = self.inner.release_turn.clone().lock_owned().await;
        *lock(&self.inner.drained) = Some(guard);
    }

    /// Our node's address (owner of our inbox feeds).
    pub fn node_address(&self) -> [u8; 20] {
        self.inner.node_addr
    }

    fn count(&self, what: &'static str) {
        self.count_n(what, 1);
    }

    fn count_n(&self, what: &'static str, n: u64) {
        *lock(&self.inner.counters).entry(what).or_default() += n;
    }

    /// Records the outcome of Swarm work for `staples_status`. Logged once per outage (on
    /// the healthy → failing transition, and on recovery), not once per retry.
    fn note_swarm(&self, r: &Result<(), SwarmError>) {
        match r {
            Ok(()) => {
                if !self.inner.bee_ok.swap(true, Ordering::Relaxed)
                    && lock(&self.inner.last_error).is_some()
                {
                    tracing::info!("Swarm reachable again");
                }
            }
            Err(e) => {
                let text = e.to_string();
                let was_ok = if e.is_transient() {
                    self.inner.bee_ok.swap(false, Ordering::Relaxed)
                } else {
                    true
                };
                let mut last = lock(&self.inner.last_error);
                if was_ok || last.is_none() {
                    tracing::warn!(error = %text, "swarm call failed; retrying");
                }
                *last = Some(text);
            }
        }
    }

    async fn me(&self) -> Result<NodeAddresses, SwarmError> {
        if let Some(me) = lock(&self.inner.me).clone() {
            return Ok(me);
        }
        let me = self.inner.swarm.addresses().await?;
        *lock(&self.inner.me) = Some(me.clone());
        Ok(me)
    }

    fn resolve_key_ref(&self, key_ref: &str, topic: [u8; 4]) -> Option<(Chat, Option<Opener>)> {
        if let Some(id) = key_ref.strip_prefix("sym:") {
            let key = self.inner.keys.sym(id)?;
            let opener = SymKey::from_bytes(&key)
                .ok()
                .map(|k| Opener::Symmetric(Arc::new(k)));
            return Some((Chat::Symmetric { key, topic }, opener));
        }
        if let Some(hex) = key_ref.strip_prefix("to:") {
            let recipient = PublicKey::from_bytes(&hex::decode(hex).ok()?).ok()?;
            return Some((Chat::Asymmetric { recipient, topic }, None));
        }
        if let Some(id) = key_ref.strip_prefix("me:") {
            let me = self.inner.keys.pair(id)?;
            let chat = Chat::Asymmetric {
                recipient: me.public_key(),
                topic,
            };
            return Some((chat, Some(Opener::Asymmetric(me))));
        }
        None
    }

    async fn restore(&self) -> Result<Vec<(ChatId, Vec<u8>)>, EngineError> {
        let store = &self.inner.store;
        let now = now_ms();
        let mut chats = HashMap::new();
        for row in db::chats(store).await? {
            let Some((chat, opener)) = self.resolve_key_ref(&row.key_ref, row.topic) else {
                tracing::warn!(key = %row.key_ref, "a stored chat's key is gone; chat skipped");
                continue;
            };
            if chat.id() != row.chat {
                continue;
            }
            let mut st = ChatState::new(chat, row.key_ref, opener, self.inner.cfg.limits);
            st.clock = dag::LamportClock::from_last(row.clock);
            st.writer = row
                .writer
                .and_then(|w| serde_json::from_str::<InboxWriter>(&w).ok());
            st.roster_next = row.roster_next;
            st.announced = row.announced;
            chats.insert(row.chat, st);
        }
        for m in db::members(store).await? {
            let (Some(st), Ok(node_key)) = (chats.get_mut(&m.chat), PublicKey::from_bytes(&m.node))
            else {
                continue;
            };
            let live = match (m.overlay, m.pss_key) {
                (Some(o), Some(k)) => match (
                    <[u8; 32]>::try_from(o.as_slice()),
                    PublicKey::from_bytes(&k),
                ) {
                    (Ok(o), Ok(k)) => Some((o, k)),
                    _ => None,
                },
                _ => None,
            };
            let Ok(reader) = serde_json::from_str(&m.reader) else {
                continue;
            };
            st.members.insert(
                node_key.eth_address(),
                Member {
                    live,
                    reader,
                    dirty: false,
                    indexed: m.indexed,
                    ..Member::new(node_key, st.id)
                },
            );
        }
        let mut pending = Vec::new();
        for m in db::messages(store, None).await? {
            let Some(st) = chats.get_mut(&m.chat) else {
                continue;
            };
            if m.delivered {
                let _ = st.buffer.handle_known(m.id, m.clock, false, now);
                st.heads
                    .on_delivered(m.id, m.clock, &m.parents, false, m.late);
                st.delivered += 1;
            } else if let Some(env) = m.envelope {
                pending.push((m.chat, env));
            }
        }
        *lock(&self.inner.chats) = chats;
        Ok(pending)
    }

    fn ensure_chat(&self, chat: Chat, key_ref: String, opener: Option<Opener>) -> (ChatId, bool) {
        let id = chat.id();
        let mut chats = lock(&self.inner.chats);
        let mut created = false;
        let st = chats.entry(id).or_insert_with(|| {
            created = true;
            ChatState::new(chat, key_ref, None, self.inner.cfg.limits)
        });
        if st.opener.is_none() {
            st.opener = opener;
        }
        (id, created)
    }

    async fn persist_chat(&self, id: ChatId) -> Result<(), StoreError> {
        let row = {
            let chats = lock(&self.inner.chats);
            let Some(st) = chats.get(&id) else {
                return Ok(());
            };
            db::ChatRow {
                chat: id,
                key_ref: st.key_ref.clone(),
                topic: st.chat.topic(),
                clock: st.clock.last(),
                writer: st
                    .writer
                    .as_ref()
                    .and_then(|w| serde_json::to_string(w).ok()),
                roster_next: st.roster_next,
                announced: st.announced,
            }
        };
        db::put_chat(&self.inner.store, row).await
    }

    /// The app listens with a symmetric key on `topics`: read those chats (stored in the
    /// background; a chat lost to a crash is re-followed when the filter is restored).
    pub fn follow_symmetric(&self, key_id: &str, key: [u8; 32], topics: &[[u8; 4]]) {
        let Ok(sym) = SymKey::from_bytes(&key) else {
            return;
        };
        let sym = Arc::new(sym);
        for topic in topics {
            let chat = Chat::Symmetric { key, topic: *topic };
            let (id, created) = self.ensure_chat(
                chat,
                format!("sym:{key_id}"),
                Some(Opener::Symmetric(sym.clone())),
            );
            if created {
                let engine = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = engine.persist_chat(id).await {
                        tracing::warn!(error = %e, "storing a followed chat failed");
                    }
                });
            }
        }
        self.inner.wake_sync.notify_one();
        self.inner.wake_send.notify_one();
    }

    /// The app listens with a key pair: publish its contact record and read its drop box.
    pub fn follow_identity(&self, key_id: &str, key: Arc<PrivateKey>) {
        lock(&self.inner.identities).insert(key_id.to_string(), key);
        self.inner.wake_sync.notify_one();
    }

    /// Step 1 of a post: clock, parents and the signed DAG header for `payload`.
    pub async fn begin(
        &self,
        target: Target,
        payload: &[u8],
        app_padding: &[u8],
        whisper_signed: bool,
    ) -> Result<Begun, EngineError> {
        let (chat, key_ref, opener) = match target {
            Target::Symmetric { key_id, key, topic } => (
                Chat::Symmetric { key, topic },
                format!("sym:{key_id}"),
                SymKey::from_bytes(&key)
                    .ok()
                    .map(|k| Opener::Symmetric(Arc::new(k))),
            ),
            Target::Asymmetric { recipient, topic } => (
                Chat::Asymmetric { recipient, topic },
                format!("to:{}", hex::encode(recipient.to_compressed())),
                None,
            ),
        };
        // Refused before anything is stored: the app gets the reason, and no post waits in
        // an outbox that could never drain.
        if self.bee_mode() == Some(BeeMode::UltraLight) {
            return Err(EngineError::UltraLight);
        }
        let (id, created) = self.ensure_chat(chat, key_ref, opener);
        if created {
            self.persist_chat(id).await?;
        }
        let turn = lock(&self.inner.turns).entry(id).or_default().clone();
        let turn = turn.lock_owned().await;
        let message = {
            let mut chats = lock(&self.inner.chats);
            let st = chats
                .get_mut(&id)
                .ok_or(dag::MessageError::ChatIdLength(0))?;
            let now = now_ms();
            Draft {
                chat_id: id,
                clock: st.clock.tick(now),
                timestamp: now,
                parents: st.heads.select(),
                ephemeral: false,
                body: payload.to_vec(),
            }
            .sign(&self.inner.node_key)?
        };
        // Behind the header rides the padding the app would have sent without Staples:
        // its own, or geth's default (random, sized for the payload), so receivers hand
        // their apps what geth would (specs/dag.md §3).
        let padding = if app_padding.is_empty() {
            let filler = staples_protocol::whisper::message::random_padding(
                payload.len(),
                whisper_signed,
                &mut rand::thread_rng(),
            );
            dag::encode_padding_with(message.header(), &filler)
        } else {
            dag::encode_padding_with(message.header(), app_padding)
        };
        Ok(Begun {
            padding,
            message,
            _turn: turn,
        })
    }

    /// Step 2 of a post: the sealed envelope is durable in the outbox (and the message
    /// delivered in our own DAG, and queued for our own filters that take it: `queue`)
    /// when this returns `Ok`.
    pub async fn commit(
        &self,
        begun: Begun,
        envelope: &Envelope,
        queue: crate::node::QueueRows,
        whisper: Option<String>,
    ) -> Result<(), EngineError> {
        let m = &begun.message;
        let row = db::OutboxRow {
            seq: 0,
            id: m.id(),
            chat: *m.chat_id(),
            clock: m.clock(),
            envelope: envelope.encode(),
            reference: None,
            page_index: None,
        };
        let inline = row.envelope.len() <= staples_protocol::chat::frame::MAX_INLINE;
        let envelope_bytes = inline.then(|| row.envelope.clone());
        db::accept_post(
            &self.inner.store,
            row,
            self.node_address(),
            m.parents().to_vec(),
            queue,
            whisper,
        )
        .await?;
        if let Some(bytes) = envelope_bytes {
            // Live at once: PSS does not wait for the upload and the inbox page.
            send::spawn_live(self, m.id(), *m.chat_id(), &bytes, None);
        }
        {
            let mut chats = lock(&self.inner.chats);
            if let Some(st) = chats.get_mut(m.chat_id()) {
                let _ = st.buffer.handle_known(m.id(), m.clock(), false, now_ms());
                st.heads
                    .on_delivered(m.id(), m.clock(), m.parents(), false, false);
                st.delivered += 1;
            }
        }
        self.count("posted");
        self.inner.wake_send.notify_one();
        Ok(())
    }

    /// Verifies a sealed message that arrived for `chat` (`via` names the path for the
    /// counters), runs it through the causal buffer, and releases what became deliverable.
    pub async fn accept(
        &self,
        chat: ChatId,
        bytes: &[u8],
        via: &'static str,
        expected: Option<MessageId>,
    ) {
        let Some(opener) = self.opener(&chat) else {
            self.count("refused_unknown_chat");
            return;
        };
        if let Some(incoming) = self.check(chat, &opener, bytes, via, expected, None) {
            self.admit(chat, vec![incoming]).await;
        }
    }

    /// What opens `chat`'s sealed messages, if we follow it.
    pub(super) fn opener(&self, chat: &ChatId) -> Option<chat::Opener> {
        lock(&self.inner.chats)
            .get(chat)
            .and_then(|st| st.opener.clone())
    }

    /// [`Engine::accept`]'s verification (CPU only: no lock is held, so callers may run it
    /// on any thread): the verified message, or `None` with the refusal counted.
    /// `expected` is the id a signed page listed for these bytes; `listed_by` is that
    /// page's owner when the owner is known to have published these exact bytes
    /// ([`chat::verify_listed`]).
    pub(super) fn check(
        &self,
        chat: ChatId,
        opener: &chat::Opener,
        bytes: &[u8],
        via: &'static str,
        expected: Option<MessageId>,
        listed_by: Option<&PublicKey>,
    ) -> Option<Incoming> {
        match verify_sealed(chat, opener, bytes, expected, listed_by) {
            Ok(incoming) => {
                self.count(via);
                Some(incoming)
            }
            Err(reason) => {
                self.count(reason);
                tracing::debug!(via, reason, "sealed message refused");
                None
            }
        }
    }

    /// Runs verified messages (oldest first, for a batch from one inbox) through the
    /// causal buffer under one lock, stores those left waiting for parents in one write,
    /// and releases what became deliverable in one batch.
    pub(super) async fn admit(&self, chat: ChatId, items: Vec<Incoming>) {
        let admitted = self.insert(chat, items);
        self.settle(chat, admitted).await;
    }

    /// [`Engine::admit`]'s first half, synchronous: the causal buffer takes the messages
    /// (so nothing fetches them again), in the order given.
    pub(super) fn insert(&self, chat: ChatId, items: Vec<Incoming>) -> Admitted {
        let now = now_ms();
        let mut a = Admitted::default();
        let mut duplicates = 0;
        {
            let mut chats = lock(&self.inner.chats);
            let Some(st) = chats.get_mut(&chat) else {
                return a;
            };
            for incoming in items {
                // Every verified author is a member whose inbox we read (their missing
                // parents are listed there, R4).
                let author = incoming.message.author();
                let addr = author.eth_address();
                if addr != self.node_address() && !st.members.contains_key(&addr) {
                    st.members.insert(addr, Member::new(*author, chat));
                    self.inner.wake_sync.notify_one();
                }
                if !st.wants(&incoming.message.id()) {
                    duplicates += 1;
                    continue;
                }
                let row = db::PendingRow {
                    chat,
                    id: incoming.message.id(),
                    clock: incoming.message.clock(),
                    parents: incoming.message.parents().to_vec(),
                    envelope: incoming.envelope.encode(),
                };
                match st.buffer.insert(incoming, now) {
                    Ok(dag::Inserted::Pending { .. }) => a.pending.push(row),
                    Ok(_) => {}
                    Err(e) => {
                        self.count("refused_by_buffer");
                        tracing::debug!(error = %e, "buffer refused a message");
                    }
                }
                drain(st, &mut a.fetch, &mut a.gaps);
            }
        }
        if duplicates > 0 {
            self.count_n("duplicate", duplicates);
        }
        a
    }

    /// [`Engine::admit`]'s second half: stores what waits for parents, then records and
    /// releases what the buffer delivered (in the buffer's order, whichever call gets
    /// there first) and fetches wanted parents.
    pub(super) async fn settle(&self, chat: ChatId, a: Admitted) {
        if let Err(e) = db::put_pending(&self.inner.store, a.pending).await {
            tracing::warn!(error = %e, "storing a pending message failed");
        }
        self.finish(chat, a.fetch, a.gaps).await;
    }

    /// Records gaps, records and releases what the buffer delivered (in the buffer's
    /// order, whichever task gets here first), and fetches wanted parents.
    async fn finish(
        &self,
        chat: ChatId,
        fetch: Vec<([u8; 32], MessageId)>,
        gaps: Vec<(MessageId, &'static str, u64)>,
    ) {
        if !gaps.is_empty() {
            let g = gaps
                .iter()
                .map(|(id, r, at)| (chat, *id, *r, *at))
                .collect();
            if let Err(e) = db::put_gaps(&self.inner.store, g).await {
                tracing::warn!(error = %e, "storing gaps failed");
            }
        }
        {
            // One releaser at a time takes everything queued so far: deliveries drained by
            // concurrent tasks reach the app in the order the buffer released them.
            let _turn = self.inner.release_turn.lock().await;
            let batch: Vec<Delivery<Incoming>> = lock(&self.inner.chats)
                .get_mut(&chat)
                .map(|st| st.outgoing.drain(..).collect())
                .unwrap_or_default();
            if !batch.is_empty() {
                let rows: Vec<db::Delivered> = batch
                    .iter()
                    .map(|d| db::Delivered {
                        chat,
                        id: d.item.message.id(),
                        clock: d.item.message.clock(),
                        parents: d.item.message.parents().to_vec(),
                        gap_parents: d.gap_parents.clone(),
                        late: d.late,
                        author: d.item.message.author().eth_address(),
                    })
                    .collect();
                // Recorded delivered and queued for the app's filters in one transaction:
                // a crash before the commit delivers nothing (the buffer state is restored
                // from the store and the message arrives again), a crash after it leaves
                // the message in the filters' stored queues.
                let mut routed: Vec<crate::node::Routed> = batch
                    .iter()
                    .map(|d| self.inner.node.route(d.item.envelope.clone()))
                    .collect();
                let mut queue_rows = crate::node::QueueRows::default();
                for r in &mut routed {
                    queue_rows.append(r.take_rows());
                }
                match db::put_delivered(&self.inner.store, rows, queue_rows).await {
                    Ok(()) => {
                        let n = batch.len() as u64;
                        for r in routed {
                            self.count("delivered");
                            self.inner.node.enqueue(r);
                        }
                        if let Some(st) = lock(&self.inner.chats).get_mut(&chat) {
                            st.delivered += n;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "storing deliveries failed; kept for the next try");
                        if let Some(st) = lock(&self.inner.chats).get_mut(&chat) {
                            for d in batch.into_iter().rev() {
                                st.outgoing.push_front(d);
                            }
                        }
                    }
                }
            }
        }
        for (reference, id) in fetch {
            // Through a channel to the fetcher task rather than a spawn here: fetching
            // leads back to `accept`, and a future cannot contain itself.
            let _ = self.inner.fetch_tx.send((chat, reference, id));
        }
    }

    /// Downloads a sealed message by reference and accepts it.
    /// `expected` is the id a page listed for this reference: content with another id is
    /// refused (a page cannot make us accept what it did not name).
    async fn fetch_message(&self, chat: ChatId, reference: [u8; 32], expected: Option<MessageId>) {
        // A parent may have arrived by another path since it was listed or wanted.
        if let Some(id) = expected
            && !lock(&self.inner.chats)
                .get(&chat)
                .is_some_and(|st| st.wants(&id))
        {
            return;
        }
        if !lock(&self.inner.fetching).insert(reference) {
            return;
        }
        self.fetch_message_once(chat, reference, expected).await;
        lock(&self.inner.fetching).remove(&reference);
    }

    async fn fetch_message_once(
        &self,
        chat: ChatId,
        reference: [u8; 32],
        expected: Option<MessageId>,
    ) {
        if let Some(bytes) = self.download_message(reference).await {
            self.accept(chat, &bytes, "fetched", expected).await;
        }
    }

    /// Downloads a sealed message by reference; `None` (counted) when Swarm fails.
    pub(super) async fn download_message(&self, reference: [u8; 32]) -> Option<Vec<u8>> {
        let r = self
            .inner
            .swarm
            .download_bytes(&staples_protocol::swarm::ChunkAddress::from_bytes(
                reference,
            ))
            .await;
        match r {
            Ok(bytes) => {
                self.note_swarm(&Ok(()));
                Some(bytes)
            }
            Err(e) => {
                self.count("fetch_failed");
                self.note_swarm(&Err(e));
                None
            }
        }
    }

    /// Runs CPU-heavy verification `work` on a blocking thread, at most one per core.
    pub(super) async fn verify_batch<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let _slot = self.inner.verify_slots.acquire().await.ok()?;
        tokio::task::spawn_blocking(work).await.ok()
    }

    /// Declares overdue parents gaps in every chat (R7).
    pub async fn tick_timeouts(&self) {
        let now = now_ms();
        let mut work = Vec::new();
        {
            let mut chats = lock(&self.inner.chats);
            for (id, st) in chats.iter_mut() {
                if st.buffer.poll_timeout().is_some_and(|t| t <= now) {
                    st.buffer.handle_timeout(now);
                    let (mut f, mut g) = (Vec::new(), Vec::new());
                    drain(st, &mut f, &mut g);
                    work.push((*id, f, g));
                }
            }
        }
        for (id, f, g) in work {
            self.finish(id, f, g).await;
        }
    }

    /// `staples_status`.
    pub async fn status(&self) -> serde_json::Value {
        let depth = db::outbox_depth(&self.inner.store).await.ok();
        let chats: Vec<_> = lock(&self.inner.chats)
            .values()
            .map(|st| {
                json!({
                    "chat": format!("0x{}", hex::encode(st.id.as_bytes())),
                    "kind": match st.chat { Chat::Symmetric { .. } => "symmetric", Chat::Asymmetric { .. } => "asymmetric" },
                    "topic": format!("0x{}", hex::encode(st.chat.topic())),
                    "reading": st.opener.is_some(),
                    "members": st.members.len(),
                    "delivered": st.delivered,
                    "pending": st.buffer.pending_len(),
                    "missing": st.buffer.missing_len(),
                    "clock": st.clock.last(),
                    "inboxNextIndex": st.writer.as_ref().map(|w| w.next_index()),
                    "catchUp": st.catchup.status(),
                    // specs/chat-index.md: where we read the index, how many members
                    // write it, and when every inbox was last read.
                    "index": st.has_index().then(|| json!({
                        "next": st.index.next,
                        "degraded": st.index.degraded,
                        "indexedMembers": st.members.values().filter(|m| m.indexed).count(),
                        "large": st.is_large(self.inner.cfg.live_pss_max),
                        "lastFullPassMsAgo": st.index.last_full.map(|t| t.elapsed().as_millis() as u64),
                    })),
                    "membersKnownIndex": st.members.iter().map(|(a, m)| (format!("0x{}", hex::encode(a)), m.reader.known_index())).collect::<BTreeMap<_, _>>(),
                })
            })
            .collect();
        let counters = lock(&self.inner.counters).clone();
        let (queued, mailboxes, shed) = self.inner.node.queue_stats();
        json!({
            "app": {
                "queued": queued,
                "mailboxes": mailboxes,
                "shed": shed,
                "legacyRepeats": self.inner.node.legacy_repeats(),
            },
            "transport": "pss",
            "node": format!("0x{}", hex::encode(self.node_address())),
            "nodeKey": format!("0x{}", hex::encode(self.inner.node_public.to_compressed())),
            "bee": {
                "ok": self.inner.bee_ok.load(Ordering::Relaxed),
                "peers": self.inner.bee_peers.load(Ordering::Relaxed),
                "mode": self.bee_mode().map(BeeMode::as_str),
                "lastError": lock(&self.inner.last_error).clone(),
            },
            "outboxDepth": depth,
            "chats": chats,
            "counters": counters,
        })
    }

    /// `staples_gaps`.
    pub async fn gaps(&self) -> Result<serde_json::Value, EngineError> {
        let rows = db::gaps(&self.inner.store).await?;
        Ok(serde_json::Value::Array(
            rows.into_iter()
                .map(|(chat, id, reason, at)| {
                    json!({
                        "chat": format!("0x{}", hex::encode(chat.as_bytes())),
                        "id": format!("0x{}", hex::encode(id.as_bytes())),
                        "reason": reason,
                        "declaredAt": at,
                    })
                })
                .collect(),
        ))
    }

    /// `staples_history`: a chat's delivered messages in delivery (causal) order.
    pub async fn history(&self, chat: Option<ChatId>) -> Result<serde_json::Value, EngineError> {
        let rows = db::messages(&self.inner.store, chat).await?;
        let hexs = |ids: &[MessageId]| -> Vec<String> {
            ids.iter()
                .map(|i| format!("0x{}", hex::encode(i.as_bytes())))
                .collect()
        };
        Ok(serde_json::Value::Array(
            rows.into_iter()
                .filter(|m| m.delivered)
                .map(|m| {
                    json!({
                        "chat": format!("0x{}", hex::encode(m.chat.as_bytes())),
                        "id": format!("0x{}", hex::encode(m.id.as_bytes())),
                        "clock": m.clock,
                        "parents": hexs(&m.parents),
                        "gapParents": hexs(&m.gap_parents),
                        "late": m.late,
                        "own": m.own,
                        "author": m.author.map(|a| format!("0x{}", hex::encode(a))),
                    })
                })
                .collect(),
        ))
    }

    /// Chat ids by `0x` hex, for `staples_history`'s argument.
    pub fn chat_ids(&self) -> Vec<ChatId> {
        lock(&self.inner.chats).keys().copied().collect()
    }

    /// The Bee node's mode, once read (every [`PEERS_EVERY`]).
    pub fn bee_mode(&self) -> Option<BeeMode> {
        *lock(&self.inner.bee_mode)
    }

    /// Counter values (tests and `staples_status`).
    pub fn counter(&self, name: &str) -> u64 {
        lock(&self.inner.counters).get(name).copied().unwrap_or(0)
    }
}

/// Reads the Bee node's peer count every [`PEERS_EVERY`] for `net_peerCount` (an
/// unreachable Bee counts as no peers: the app then shows "offline", which it is), and its
/// mode ([`Engine::bee_mode`]) on the same tick.
async fn watch_peers<S: Swarm>(engine: Engine<S>) {
    let mut tick = tokio::time::interval(PEERS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let n = engine.inner.swarm.peers().await.unwrap_or(0);
        engine.inner.bee_peers.store(n as u64, Ordering::Relaxed);
        if let Ok(mode) = engine.inner.swarm.node_mode().await
            && lock(&engine.inner.bee_mode).replace(mode) != Some(mode)
        {
            tracing::info!(mode = mode.as_str(), "Bee node mode");
        }
    }
}

/// Fetches wanted parents, up to `fetch_parallelism` at once.
async fn fetcher<S: Swarm>(
    engine: Engine<S>,
    mut rx: mpsc::UnboundedReceiver<(ChatId, [u8; 32], MessageId)>,
) {
    let par = engine.inner.cfg.fetch_parallelism.max(1);
    let engine = &engine;
    futures_util::stream::poll_fn(|cx| rx.poll_recv(cx))
        .for_each_concurrent(par, |(chat, r, id)| async move {
            engine.fetch_message(chat, r, Some(id)).await
        })
        .await;
}

/// Drains the buffer's outputs after an input: deliveries (with head and clock updates),
/// wanted parents (to fetch now when a page listed them, else remembered), gaps.
/// [`Engine::check`] without the counting: the refusal's counter name on failure.
pub(super) fn verify_sealed(
    chat: ChatId,
    opener: &chat::Opener,
    bytes: &[u8],
    expected: Option<MessageId>,
    listed_by: Option<&PublicKey>,
) -> Result<Incoming, &'static str> {
    let verified = match (listed_by, &expected) {
        (Some(owner), Some(listed)) => {
            chat::verify_listed(&chat, opener, bytes, now_ms(), owner, listed)
        }
        _ => chat::verify(&chat, opener, bytes, now_ms()),
    };
    let incoming = verified.map_err(|e| e.reason())?;
    if expected.is_some_and(|e| e != incoming.message.id()) {
        return Err("id_mismatch");
    }
    Ok(incoming)
}

/// What [`Engine::insert`] left for [`Engine::settle`].
#[derive(Default)]
pub(super) struct Admitted {
    fetch: Vec<([u8; 32], MessageId)>,
    gaps: Vec<(MessageId, &'static str, u64)>,
    pending: Vec<db::PendingRow>,
}

fn drain(
    st: &mut ChatState,
    fetch: &mut Vec<([u8; 32], MessageId)>,
    gaps: &mut Vec<(MessageId, &'static str, u64)>,
) {
    let now = now_ms();
    while let Some(d) = st.buffer.poll_deliverable() {
        let m = &d.item.message;
        st.heads
            .on_delivered(m.id(), m.clock(), m.parents(), m.ephemeral(), d.late);
        let _ = st.clock.observe(m.clock(), now);
        st.outgoing.push_back(d);
    }
    while let Some(w) = st.buffer.poll_wanted() {
        match st.refs.get(&w.id) {
            Some(r) => fetch.push((*r, w.id)),
            None => st.wanted.push(w.id),
        }
    }
    while let Some(g) = st.buffer.poll_gap() {
        let reason = match g.reason {
            GapReason::Deadline => "deadline",
            GapReason::Pressure => "pressure",
            GapReason::Invalid => "invalid",
        };
        gaps.push((g.id, reason, g.declared_at));
    }
    while st.buffer.poll_rejected().is_some() {}
}
