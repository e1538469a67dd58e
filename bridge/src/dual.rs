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
//! goes out again after the restart. The upstream seals it
//! anew (another envelope hash); Staples receivers collapse it by DAG id, and Status apps
//! drop it by their own message id.
//!
//! Receiving ([`WhisperSide::mirror`]): each app filter gets an upstream filter with the
//! same criteria (upstream key ids), polled every [`crate::upstream::POLL_INTERVAL`]. A
//! message whose padding carries a Staples DAG header is a copy of a message that is on
//! Swarm too: its header is verified, then it only wakes the PSS engine's sync, and the
//! Swarm path delivers it once, in causal order. A message without one is a legacy
//! Whisper message: written to the filter's stored queue as the upstream's JSON, then
//! handed to the app as Whisper would.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::Notify;

use crate::engine::{Hook, KeyLookup};
use crate::node::Node;
use crate::rpc::RpcError;
use crate::store::{FilterKind, Origin, Store, StoreError};
use crate::upstream::Upstream;
use staples_protocol::crypto::keccak256;
use staples_protocol::whisper::json::hex0x;

/// Where the cursor lives in `pss_meta`.
const CURSOR: &str = "whisper_cursor";
/// Rows read per pass.
const BATCH: i64 = 64;
/// Wait before retrying a failed post.
const RETRY: std::time::Duration = std::time::Duration::from_secs(1);

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

/// What a dual post needs to go out on Whisper: the app's `shh_post` with the carrier as
/// padding. Key fields hold the *app's* key ids; they are mapped to the upstream's ids
/// when the post is sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhisperPost {
    /// The app's symmetric key id (symmetric posts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sym_key_id: Option<String>,
    /// The recipient's public key, `0x` hex (asymmetric posts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pub_key: Option<String>,
    /// The app's signing key pair id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
    /// Envelope TTL.
    pub ttl: u32,
    /// `0x` + 8 hex.
    pub topic: String,
    /// The app's payload, `0x` hex.
    pub payload: String,
    /// The padding: DAG header, then the app's padding, `0x` hex.
    pub padding: String,
    /// The app's PoW target.
    pub pow_target: f64,
    /// The app's PoW time.
    pub pow_time: u32,
    /// When the post expires on Swarm's envelope (unix seconds): a post still waiting
    /// then is not sent (Whisper would drop it too).
    pub expiry: u32,
}

impl WhisperPost {
    /// The row for a post of `payload` with `padding` (the carrier).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        sym_key_id: Option<&str>,
        pub_key: Option<&[u8]>,
        sig: Option<&str>,
        ttl: u32,
        topic: [u8; 4],
        payload: &[u8],
        padding: &[u8],
        pow_target: f64,
        pow_time: u32,
        expiry: u32,
    ) -> Self {
        WhisperPost {
            sym_key_id: sym_key_id.map(str::to_string),
            pub_key: pub_key.map(hex0x),
            sig: sig.map(str::to_string),
            ttl,
            topic: hex0x(&topic),
            payload: hex0x(payload),
            padding: hex0x(padding),
            pow_target,
            pow_time,
            expiry,
        }
    }

    /// The stored form.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Which kind of key an id names (the upstream has one call per kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyKind {
    Sym,
    Pair,
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
    last_error: std::sync::Mutex<Option<String>>,
    /// Mirrored app filters: their pollers and current upstream filter ids.
    mirrors: std::sync::Mutex<HashMap<String, Mirrored>>,
    counters: std::sync::Mutex<BTreeMap<&'static str, u64>>,
    /// The upstream's `net_peerCount`, last read (its Whisper peers).
    upstream_peers: std::sync::atomic::AtomicU64,
    /// Hashes of the paddings of our recent posts upstream: their copies coming back.
    echoes: std::sync::Mutex<Echoes>,
    last_nudge: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How often Whisper copies may wake the PSS sync.
const NUDGE_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// A bounded set of recent own posts (by padding hash): oldest forgotten first.
#[derive(Default)]
struct Echoes {
    set: std::collections::HashSet<[u8; 32]>,
    order: std::collections::VecDeque<[u8; 32]>,
}

impl Echoes {
    const MAX: usize = 8192;

    fn insert(&mut self, h: [u8; 32]) {
        if self.set.insert(h) {
            self.order.push_back(h);
            if self.order.len() > Self::MAX
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }

    /// Whether `h` is one of ours (it stays until pushed out, so every mirror of its
    /// chat recognises its copy).
    fn contains(&self, h: &[u8; 32]) -> bool {
        self.set.contains(h)
    }
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
            last_error: std::sync::Mutex::new(None),
            mirrors: std::sync::Mutex::new(HashMap::new()),
            counters: std::sync::Mutex::new(BTreeMap::new()),
            upstream_peers: std::sync::atomic::AtomicU64::new(0),
            echoes: std::sync::Mutex::new(Echoes::default()),
            last_nudge: std::sync::Mutex::new(None),
        })
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

    /// Mirrors app filter `filter` (its canonical criteria JSON, with the app's key ids)
    /// upstream until [`WhisperSide::unmirror`]. Idempotent.
    pub fn mirror(self: &Arc<Self>, filter: &str, criteria: &str) {
        let mut mirrors = self.mirrors.lock().unwrap_or_else(|p| p.into_inner());
        if mirrors.contains_key(filter) {
            return;
        }
        let upstream_filter = Arc::new(std::sync::Mutex::new(None));
        let task = tokio::spawn(self.clone().mirror_loop(
            filter.to_string(),
            criteria.to_string(),
            upstream_filter.clone(),
        ));
        mirrors.insert(
            filter.to_string(),
            Mirrored {
                task,
                upstream_filter,
            },
        );
    }

    /// Stops mirroring app filter `filter` and deletes its upstream filter.
    pub fn unmirror(&self, filter: &str) {
        let removed = self
            .mirrors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(filter);
        let Some(m) = removed else {
            return;
        };
        m.task.abort();
        let id = m
            .upstream_filter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(id) = id {
            let (up, store) = (self.upstream.clone(), self.store.clone());
            tokio::spawn(async move { crate::upstream::delete_filter(&up, &store, id).await });
        }
    }

    /// The app's criteria with the upstream's key ids (keys imported as needed).
    async fn upstream_criteria(&self, criteria: &str) -> Result<Box<RawValue>, DualError> {
        let mut c: serde_json::Value =
            serde_json::from_str(criteria).map_err(|e| DualError::BadRow(e.to_string()))?;
        for (field, kind) in [("symKeyID", KeyKind::Sym), ("privateKeyID", KeyKind::Pair)] {
            if let Some(local) = c
                .get(field)
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
            {
                let id = self.upstream_key(local, kind).await?;
                c[field] = id.into();
            }
        }
        RawValue::from_string(serde_json::json!([c]).to_string())
            .map_err(|e| DualError::BadRow(e.to_string()))
    }

    /// Keeps an upstream filter for app filter `filter` and polls it.
    async fn mirror_loop(
        self: Arc<Self>,
        filter: String,
        criteria: String,
        current: Arc<std::sync::Mutex<Option<String>>>,
    ) {
        let mut tick = tokio::time::interval(crate::upstream::POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tick.tick().await;
            let have = current.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let id = match have {
                Some(id) => id,
                None => match self.open_mirror(&criteria).await {
                    Ok(id) => {
                        *current.lock().unwrap_or_else(|p| p.into_inner()) = Some(id.clone());
                        id
                    }
                    Err(e) => {
                        note(&mut failing, &e.to_string());
                        continue;
                    }
                },
            };
            let params =
                RawValue::from_string(serde_json::json!([id]).to_string()).unwrap_or_default();
            match self
                .upstream
                .call("shh_getFilterMessages", Some(&params))
                .await
            {
                Ok(v) => {
                    failing = false;
                    let Ok(messages) = serde_json::from_str::<Vec<Box<RawValue>>>(v.get()) else {
                        self.count("whisper_bad_answer");
                        continue;
                    };
                    for m in messages {
                        self.receive(&filter, m.get()).await;
                    }
                }
                Err(e) if e.message == "filter not found" => {
                    // The upstream restarted: make the filter again.
                    *current.lock().unwrap_or_else(|p| p.into_inner()) = None;
                    let _ = self.store.delete_filter(id).await;
                }
                Err(e) => note(&mut failing, &e.message),
            }
        }
    }

    async fn open_mirror(&self, criteria: &str) -> Result<String, DualError> {
        let params = self.upstream_criteria(criteria).await?;
        let id = self
            .upstream
            .call("shh_newMessageFilter", Some(&params))
            .await?;
        let id: String = serde_json::from_str(id.get())
            .map_err(|_| DualError::Upstream("non-string filter id".into()))?;
        // Recorded, so a restart deletes it upstream if this process dies first.
        self.store
            .put_filter_of(
                id.clone(),
                params.get().to_string(),
                Origin::Upstream,
                FilterKind::Subscription,
            )
            .await?;
        Ok(id)
    }

    /// One message the upstream filter for app filter `filter` returned.
    async fn receive(&self, filter: &str, json: &str) {
        let Some(d) = crate::node::Delivered::from_geth_json(json) else {
            self.count("whisper_bad_message");
            return;
        };
        match classify(&d.message.plaintext.padding) {
            Kind::Copy => {
                // On Swarm too: the engine delivers it (once, in causal order). Our own
                // posts come back too; they need no sync. Others wake it, at most twice a
                // second (a burst of copies is one pass).
                self.count("whisper_staples_copies");
                let own = self
                    .echoes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .contains(&keccak256(&d.message.plaintext.padding));
                if own {
                    self.count("whisper_own_echoes");
                } else {
                    let mut last = self.last_nudge.lock().unwrap_or_else(|p| p.into_inner());
                    if last.is_none_or(|t| t.elapsed() >= NUDGE_EVERY) {
                        *last = Some(std::time::Instant::now());
                        self.engine.nudge_sync();
                        self.count("whisper_sync_nudges");
                    }
                }
            }
            Kind::Refused(why) => {
                tracing::debug!(why, "whisper side: a Staples header was refused");
                self.count(why);
            }
            Kind::Legacy => {
                let mut routed = self.node.route_to(filter, Arc::new(d));
                let rows = routed.take_rows();
                // Durable before the app can see it (specs/transport-pss.md §7).
                match self.store.run(move |t| rows.write(t)).await {
                    Ok(()) => {
                        self.count("whisper_legacy_delivered");
                        self.node.enqueue(routed);
                    }
                    Err(e) => {
                        self.count("whisper_legacy_lost");
                        tracing::warn!(error = %e, "whisper side: a legacy message could not be queued");
                    }
                }
            }
        }
    }

    /// Wakes the sender (a post was committed).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// For `staples_status`: posts not yet on Whisper, the upstream's health, mirrored
    /// filters, and counters of what arrived from Whisper.
    pub async fn status(&self) -> serde_json::Value {
        let backlog = backlog(&self.store).await.unwrap_or(-1);
        let mirrored = self.mirrors.lock().unwrap_or_else(|p| p.into_inner()).len();
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
            "counters": counters,
        })
    }

    /// Sends until aborted: every stored row after the cursor, in order; waits for a
    /// wake-up (or a second) when there is nothing to send, and retries a failure after
    /// [`RETRY`] without skipping it.
    pub async fn run(self: Arc<Self>) {
        loop {
            match self.pass().await {
                Ok(0) => {
                    let _ = tokio::time::timeout(RETRY, self.wake.notified()).await;
                }
                Ok(_) => {}
                Err(e) => {
                    self.note(Some(e.to_string()));
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }

    fn note(&self, error: Option<String>) {
        let was_ok = self.ok.swap(error.is_none(), Ordering::Relaxed);
        match (&error, was_ok) {
            (Some(e), true) => {
                tracing::warn!(error = %e, "whisper side: posting upstream failed; retrying")
            }
            (None, false) => tracing::info!("whisper side: posting upstream recovered"),
            _ => {}
        }
        if error.is_some() {
            *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = error;
        }
    }

    /// Sends one batch; how many rows it sent.
    async fn pass(&self) -> Result<usize, DualError> {
        let rows = pending(&self.store).await?;
        let n = rows.len();
        for (seq, json) in rows {
            let post: WhisperPost =
                serde_json::from_str(&json).map_err(|e| DualError::BadRow(e.to_string()))?;
            if post.expiry <= crate::rpc::shh_local::unix_now() {
                tracing::warn!(
                    "whisper side: a post expired before the upstream took it; not sent"
                );
                move_cursor(&self.store, seq).await?;
                continue;
            }
            match self.send(&post).await {
                Ok(()) => {}
                // A key the app deleted since: the post cannot go out on Whisper any more
                // (it did on Swarm). Skipped, with a warning, rather than blocking the rest.
                Err(DualError::KeyGone(id)) => {
                    tracing::warn!(key_id = %id, "whisper side: a post's key was deleted; not sent on Whisper");
                }
                Err(e) => return Err(e),
            }
            move_cursor(&self.store, seq).await?;
            self.note(None);
        }
        Ok(n)
    }

    async fn send(&self, post: &WhisperPost) -> Result<(), DualError> {
        let sym = match &post.sym_key_id {
            Some(id) => Some(self.upstream_key(id, KeyKind::Sym).await?),
            None => None,
        };
        let sig = match &post.sig {
            Some(id) => Some(self.upstream_key(id, KeyKind::Pair).await?),
            None => None,
        };
        let mut msg = serde_json::json!({
            "ttl": post.ttl,
            "topic": post.topic,
            "payload": post.payload,
            "padding": post.padding,
            "powTarget": post.pow_target,
            "powTime": post.pow_time,
        });
        if let Some(s) = sym {
            msg["symKeyID"] = s.into();
        }
        if let Some(k) = &post.pub_key {
            msg["pubKey"] = k.clone().into();
        }
        if let Some(s) = sig {
            msg["sig"] = s.into();
        }
        let params = RawValue::from_string(serde_json::json!([msg]).to_string())
            .map_err(|e| DualError::BadRow(e.to_string()))?;
        match self.upstream.call("shh_post", Some(&params)).await {
            Ok(_) => {
                // Its copy will come back through our mirrors: recognised by its padding.
                if let Ok(p) = hex::decode(post.padding.trim_start_matches("0x")) {
                    self.echoes
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(keccak256(&p));
                }
                Ok(())
            }
            Err(e) => {
                // The upstream may have lost the keys (a restart without a keystore):
                // forget our mapping so the next attempt imports them again.
                if e.message.contains("key") {
                    for id in [&post.sym_key_id, &post.sig].into_iter().flatten() {
                        forget_key(&self.store, id).await?;
                    }
                }
                Err(e.into())
            }
        }
    }

    /// The upstream's id for the app's key `local`, importing the key if needed.
    async fn upstream_key(&self, local: &str, kind: KeyKind) -> Result<String, DualError> {
        if let Some(id) = mapped_key(&self.store, local).await? {
            return Ok(id);
        }
        let (method, secret) = match kind {
            KeyKind::Sym => (
                "shh_addSymKey",
                self.keys
                    .sym(local)
                    .map(|k| hex0x(&k))
                    .ok_or_else(|| DualError::KeyGone(local.to_string()))?,
            ),
            KeyKind::Pair => (
                "shh_addPrivateKey",
                self.keys
                    .pair(local)
                    .map(|k| hex0x(&k.to_bytes()))
                    .ok_or_else(|| DualError::KeyGone(local.to_string()))?,
            ),
        };
        let params = RawValue::from_string(serde_json::json!([secret]).to_string())
            .map_err(|e| DualError::BadRow(e.to_string()))?;
        let answer = self.upstream.call(method, Some(&params)).await?;
        let id: String = serde_json::from_str(answer.get())
            .map_err(|_| DualError::Upstream(format!("{method} returned a non-string id")))?;
        map_key(&self.store, local.to_string(), id.clone()).await?;
        Ok(id)
    }
}

/// What a message polled from Whisper is.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    /// A Staples message (its header decodes): on Swarm too. Nothing is delivered from
    /// it; the Swarm path checks the author against the inbox owner, so a tampered copy
    /// delivers nothing.
    Copy,
    /// Padding that claims to carry a Staples header that does not hold up (counter name).
    Refused(&'static str),
    /// An ordinary Whisper message.
    Legacy,
}

/// Sorts a polled message by its padding. A copy is not verified here (signature
/// recovery costs ~70 µs and would decide nothing: a copy delivers nothing, and the Swarm
/// path verifies the message it delivers, author against inbox owner).
fn classify(padding: &[u8]) -> Kind {
    match staples_protocol::dag::decode_padding(padding) {
        Ok(None) => Kind::Legacy,
        Err(_) => Kind::Refused("whisper_malformed_header"),
        Ok(Some(_)) => Kind::Copy,
    }
}

fn note(failing: &mut bool, e: &str) {
    if !*failing {
        tracing::warn!(error = %e, "whisper side: polling the upstream failed; retrying");
        *failing = true;
    }
}

/// Rows after the cursor that go to Whisper, oldest first: `(seq, post JSON)`.
async fn pending(store: &Store) -> Result<Vec<(i64, String)>, StoreError> {
    store
        .run(|t| {
            let cursor = cursor_of(t)?;
            let mut st = t.prepare_cached(
                "SELECT seq, whisper FROM pss_outbox
                 WHERE seq > ?1 AND whisper IS NOT NULL ORDER BY seq LIMIT ?2",
            )?;
            let rows = st.query_map(params![cursor, BATCH], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
}

/// Posts waiting for the Whisper side.
pub async fn backlog(store: &Store) -> Result<i64, StoreError> {
    store
        .run(|t| {
            let cursor = cursor_of(t)?;
            Ok(t.query_row(
                "SELECT count(*) FROM pss_outbox WHERE seq > ?1 AND whisper IS NOT NULL",
                [cursor],
                |r| r.get(0),
            )?)
        })
        .await
}

fn cursor_of(t: &rusqlite::Transaction<'_>) -> Result<i64, StoreError> {
    let v: Option<Vec<u8>> = t
        .query_row("SELECT v FROM pss_meta WHERE k = ?1", [CURSOR], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(v.and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map_or(0, i64::from_be_bytes))
}

fn put_cursor(t: &rusqlite::Transaction<'_>, seq: i64) -> Result<(), StoreError> {
    t.execute(
        "INSERT OR REPLACE INTO pss_meta (k, v) VALUES (?1, ?2)",
        params![CURSOR, seq.to_be_bytes().to_vec()],
    )?;
    Ok(())
}

#[cfg(test)]
async fn set_cursor(store: &Store, seq: i64) -> Result<(), StoreError> {
    store.run(move |t| put_cursor(t, seq)).await
}

/// Queues the cursor's move past `seq` without waiting for its commit: the store runs jobs
/// in order, so the next read sees it, and moves group-commit instead of costing an fsync
/// each. A crash may lose the last few moves: those posts go out on Whisper again.
async fn move_cursor(store: &Store, seq: i64) -> Result<(), StoreError> {
    drop(store.submit(move |t| put_cursor(t, seq)).await?);
    Ok(())
}

async fn mapped_key(store: &Store, local: &str) -> Result<Option<String>, StoreError> {
    let local = local.to_string();
    store
        .run(move |t| {
            Ok(t.query_row(
                "SELECT upstream FROM upstream_keys WHERE local = ?1",
                [local],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
}

async fn map_key(store: &Store, local: String, upstream: String) -> Result<(), StoreError> {
    store
        .run(move |t| {
            t.execute(
                "INSERT OR REPLACE INTO upstream_keys (local, upstream) VALUES (?1, ?2)",
                params![local, upstream],
            )?;
            Ok(())
        })
        .await
}

async fn forget_key(store: &Store, local: &str) -> Result<(), StoreError> {
    let local = local.to_string();
    store
        .run(move |t| {
            t.execute("DELETE FROM upstream_keys WHERE local = ?1", [local])?;
            Ok(())
        })
        .await
}

/// On the first start in dual mode, the posts already in the PSS outbox (from `pss` mode)
/// have no Whisper parameters and are skipped by the `whisper IS NOT NULL` filter; nothing
/// else needs setting up. This checks that the cursor never runs ahead of the outbox
/// (a restored older database): it is reset to the outbox's last row if so.
pub async fn check_cursor(store: &Store) -> Result<(), StoreError> {
    store
        .run(|t| {
            let cursor = cursor_of(t)?;
            let last: i64 =
                t.query_row("SELECT coalesce(max(seq), 0) FROM pss_outbox", [], |r| {
                    r.get(0)
                })?;
            if cursor > last {
                put_cursor(t, last)?;
            }
            Ok(())
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_post_round_trips_and_names_the_apps_keys() {
        let p = WhisperPost::new(
            Some("abc"),
            None,
            Some("def"),
            50,
            [1, 2, 3, 4],
            b"hi",
            b"STPLDAG\x01",
            0.2,
            1,
            1_900_000_000,
        );
        let back: WhisperPost = serde_json::from_str(&p.to_json()).expect("parses");
        assert_eq!(back, p);
        assert_eq!(back.topic, "0x01020304");
        assert_eq!(back.payload, "0x6869");
        assert!(back.pub_key.is_none());
    }

    #[tokio::test]
    async fn the_cursor_walks_only_posts_meant_for_whisper() {
        let store = Store::in_memory().expect("opens");
        store
            .run(|t| {
                for (i, w) in [(1, None), (2, Some("{}")), (3, Some("{}"))] {
                    t.execute(
                        "INSERT INTO pss_outbox (id, chat, clock, envelope, whisper)
                         VALUES (?1, x'00', 1, x'00', ?2)",
                        params![vec![i as u8; 32], w],
                    )?;
                }
                Ok(())
            })
            .await
            .expect("writes");
        assert_eq!(backlog(&store).await.expect("counts"), 2);
        let rows = pending(&store).await.expect("reads");
        assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [2, 3]);
        set_cursor(&store, 2).await.expect("moves");
        assert_eq!(backlog(&store).await.expect("counts"), 1);
        set_cursor(&store, 99).await.expect("moves");
        check_cursor(&store).await.expect("checks");
        assert_eq!(
            store.run(cursor_of).await.expect("reads"),
            3,
            "a cursor past the outbox is pulled back"
        );
    }

    #[test]
    fn whisper_messages_are_staples_copies_legacy_or_refused() {
        use staples_protocol::crypto::PrivateKey;
        use staples_protocol::dag::{ChatId, Draft, encode_padding_with};
        let key = PrivateKey::random(&mut rand::rngs::OsRng);
        let m = Draft {
            chat_id: ChatId::new([7; 32]),
            clock: 1,
            timestamp: 1,
            parents: vec![],
            ephemeral: false,
            body: b"hello".to_vec(),
        }
        .sign(&key)
        .expect("signs");
        let padding = encode_padding_with(m.header(), b"app");
        assert_eq!(classify(&padding), Kind::Copy);
        // A changed payload still recovers *an* author (recovery signatures do), just not
        // the sender: a copy only wakes the sync, whose Swarm path checks the author
        // against the inbox owner, so such a copy delivers nothing.
        let tampered = staples_protocol::dag::decode_padding(&padding)
            .expect("decodes")
            .expect("a header")
            .with_body(b"hellO".to_vec())
            .expect("recovers");
        assert_ne!(tampered.id(), m.id());
        assert_ne!(tampered.author(), m.author());
        assert_eq!(
            classify(&padding[..12]),
            Kind::Refused("whisper_malformed_header")
        );
        assert_eq!(classify(&[0x11; 40]), Kind::Legacy);
        assert_eq!(classify(&[]), Kind::Legacy);
        let key = |i: usize| {
            let mut a = [0u8; 32];
            a[..8].copy_from_slice(&(i as u64).to_be_bytes());
            a
        };
        let mut e = Echoes::default();
        for i in 0..=Echoes::MAX {
            e.insert(key(i));
        }
        assert!(!e.contains(&key(0)), "the oldest went");
        assert!(e.contains(&key(Echoes::MAX)));
    }
}
