//! [`ShhService`]: the `shh` namespace over an injected [`Node`] and [`Keys`], with geth
//! v1.9.7's semantics (reference §5).
//!
//! `shh_post` builds, signs, encrypts and seals like geth (`NewSentMessage`, `Wrap`, `Seal`),
//! checks `powTarget` against the node minimum, adds the envelope to the node's pool (so the
//! node's own filters see it) and, when a store is attached, writes it to the outbox before
//! answering: a returned hash is on disk. Proof of work runs on the blocking pool, never on
//! an async worker. Polling filters' criteria are stored too, so after a restart a filter id
//! keeps working and the outbox refills the pool through it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::value::RawValue;
use staples_protocol::crypto::{PrivateKey, PublicKey, keccak256};
use staples_protocol::whisper::json::GoFloat;
use staples_protocol::whisper::pow::{self, SealOptions};
use staples_protocol::whisper::{Draft, Envelope, EnvelopeHash, Recipient, SymKey, Topic, wrap};

use super::conn::Cancel;
use super::params::Place;
use super::shh::{CriteriaReq, InfoJson, NewMessage, ShhApi, ShhError};
use crate::engine::{Hook, Target};
use crate::ids::random_id;
use crate::keystore::{Keys, RawSymKey};
use crate::node::{Added, Batch, Criteria, FilterKey, Node, PollError, Pooled, Sink, queue};
use crate::store::{FilterKind, Origin, Store};

/// The `shh` service of a sidecar that runs its own node.
pub struct ShhService<N, K> {
    node: Arc<N>,
    keys: Arc<K>,
    store: Option<Store>,
    allow_key_export: bool,
    light_client: AtomicBool,
    engine: Option<Arc<dyn Hook>>,
    /// Dual mode: the Whisper side (posts go out there too; filters are mirrored there).
    whisper_side: Option<Arc<crate::dual::WhisperSide>>,
    /// devp2p sessions, for `targetPeer` and `shh_markTrustedPeer`.
    peers: Option<Arc<crate::devp2p::Peers>>,
}

/// Unix seconds now.
pub fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

impl<N: Node, K: Keys> ShhService<N, K> {
    /// [`ShhApi::post`]; `whisper`: in dual mode, whether the post goes out on the
    /// Whisper side too (a relay's bridged records go to Swarm only).
    async fn post_with(&self, m: NewMessage, whisper: bool) -> Result<EnvelopeHash, ShhError> {
        let sym_given = !m.sym_key_id.is_empty();
        let pub_given = !m.pub_key.is_empty();
        if sym_given == pub_given {
            return Err(ShhError::SymAsym);
        }
        let signer = if m.sig.is_empty() {
            None
        } else {
            Some(self.keys.key_pair(&m.sig).ok_or(ShhError::InvalidId)?)
        };
        enum To {
            Sym(SymKey),
            Asym(PublicKey),
        }
        let to = if sym_given {
            if m.topic == [0; 4] {
                return Err(ShhError::NoTopics);
            }
            let raw = self.keys.sym_key(&m.sym_key_id).ok_or(ShhError::NoSymKey)?;
            To::Sym(usable_sym(&raw)?)
        } else {
            To::Asym(
                PublicKey::from_uncompressed(&m.pub_key).map_err(|_| ShhError::InvalidPublicKey)?,
            )
        };
        let begun = match &self.engine {
            Some(engine) => {
                let target = match &to {
                    To::Sym(k) => Target::Symmetric {
                        key_id: m.sym_key_id.clone(),
                        key: *k.as_bytes(),
                        topic: m.topic,
                    },
                    To::Asym(k) => Target::Asymmetric {
                        recipient: *k,
                        topic: m.topic,
                    },
                };
                Some(
                    engine
                        .begin(target, &m.payload, &m.padding, signer.is_some())
                        .await?,
                )
            }
            None => None,
        };
        // Over PSS the padding carries the DAG header, then the app's own padding
        // (specs/dag.md §3), which receivers hand their apps.
        let padding = begun.as_ref().map_or(&m.padding, |b| &b.padding);
        let now = unix_now();
        let draft = Draft {
            topic: Topic(m.topic),
            payload: &m.payload,
            padding: Some(padding),
            signer: signer.as_deref(),
            ttl: m.ttl,
            to: match &to {
                To::Sym(k) => Recipient::Symmetric(k),
                To::Asym(k) => Recipient::Asymmetric(k),
            },
        };
        // The thread's ChaCha CSPRNG (seeded and reseeded from the OS) rather than OsRng:
        // padding, salt and IV would otherwise cost a getrandom syscall each per post.
        let mut env = wrap(&draft, now, &mut rand::thread_rng())?;
        if m.pow_target != 0.0 {
            env = seal(env, m.pow_target, m.pow_time).await?;
        }
        // geth sends to a target peer before (and instead of) its PoW check.
        if !m.target_peer.is_empty() {
            let id = enode_id(&m.target_peer).map_err(ShhError::TargetPeer)?;
            let hash = env.hash();
            return match &self.peers {
                Some(peers) => peers
                    .send_direct(&id, env)
                    .map(|()| hash)
                    .map_err(|e| ShhError::NoPeer(e.0)),
                None => Err(ShhError::NoPeer(id)),
            };
        }
        if m.pow_target < self.node.info().min_pow {
            return Err(ShhError::TooLowPow);
        }
        let expiry = env.expiry;
        // Dual: the same message (same carrier, so the same DAG id) for the Whisper side,
        // made durable with the Swarm side.
        let whisper = self.whisper_side.as_ref().filter(|_| whisper).map(|_| {
            crate::dual::WhisperPost::new(
                sym_given.then_some(m.sym_key_id.as_str()),
                pub_given.then_some(m.pub_key.as_slice()),
                (!m.sig.is_empty()).then_some(m.sig.as_str()),
                env.ttl,
                m.topic,
                &m.payload,
                padding,
                m.pow_target,
                m.pow_time,
                expiry,
            )
            .to_json()
        });
        if let (Some(engine), Some(begun)) = (&self.engine, begun) {
            // Durable in the PSS outbox, with the queue rows of our own filters that take
            // it, before anyone sees it; then to the pool and those filters.
            let candidate = Pooled::new(env.clone(), now);
            let mut routed = self.node.route(&candidate, false);
            let has_whisper = whisper.is_some();
            engine
                .commit(begun, &env, routed.take_rows(), whisper)
                .await?;
            if let (Some(side), true) = (&self.whisper_side, has_whisper) {
                side.waker().notify_one();
            }
            let added = self.node.admit(candidate, now);
            // Committed, so our filters get it whatever the pool says.
            self.node.enqueue(routed);
            return match added? {
                Added::New(pooled) => Ok(pooled.hash),
                Added::Duplicate(hash) => Ok(hash),
                Added::Expired => Err(ShhError::FailedToAdd),
            };
        }
        self.add_sealed(env, now).await
    }

    /// A sealed envelope into the local pool, its outbox row and the node's filters.
    async fn add_sealed(&self, env: Envelope, now: u32) -> Result<EnvelopeHash, ShhError> {
        let expiry = env.expiry;
        // The pool hashes the envelope on entry; that hash is the answer.
        let pooled = match self.node.admit(Pooled::new(env, now), now)? {
            Added::New(pooled) => pooled,
            // Already pooled, so already in the outbox (or a restart's readmission of it).
            Added::Duplicate(hash) => return Ok(hash),
            Added::Expired => return Err(ShhError::FailedToAdd),
        };
        let mut routed = self.node.route(&pooled, false);
        let Some(store) = &self.store else {
            self.node.enqueue(routed);
            return Ok(pooled.hash);
        };
        // The outbox row and the queue rows commit together. Subscribers are notified
        // first, without waiting for room in the store's queue (a crash before the commit
        // means the post was never acknowledged); a row taken before its job runs is
        // simply not written (queue::Acks).
        let rows = routed.take_rows();
        // Routing encoded the envelope for the queue rows already; no filter, no rows.
        let rlp = rows
            .envelope()
            .unwrap_or_else(|| Arc::new(pooled.envelope.encode()));
        self.node.enqueue(routed);
        // Let the subscribers' writer tasks (just woken) go first: a notification written
        // before the job runs spares its row an insert and a delete.
        tokio::task::yield_now().await;
        store
            .run(move |t| {
                crate::store::insert_outbox(t, expiry, &rlp)?;
                rows.write(t)
            })
            .await?;
        Ok(pooled.hash)
    }

    /// A post that goes out on Swarm only, even in dual mode: a relay's record of a
    /// message that is on Whisper already.
    pub async fn post_to_swarm(&self, m: NewMessage) -> Result<EnvelopeHash, ShhError> {
        self.post_with(m, false).await
    }

    /// `staples_postEnvelope`: adds an envelope sealed elsewhere (a relay's copy of a
    /// Staples message, byte for byte) to the local node as a post of its own: pool
    /// checks (expiry, PoW, size), then the outbox and the node's filters. A Whisper node
    /// only; in `pss` and `dual` posts go through the engine.
    pub async fn post_envelope(&self, env: Envelope) -> Result<EnvelopeHash, ShhError> {
        if self.engine.is_some() {
            return Err(ShhError::NotAvailable("staples_postEnvelope"));
        }
        self.add_sealed(env, unix_now()).await
    }

    /// Hands history envelopes to the app's filters that take peer-to-peer messages, as
    /// a mailserver's answer would reach them (queue rows committed first, as for every
    /// delivery); returns how many filter entries were queued.
    pub async fn deliver_history(&self, envelopes: Vec<Envelope>) -> Result<usize, ShhError> {
        let mut routed = Vec::with_capacity(envelopes.len());
        let mut rows = crate::node::QueueRows::default();
        for env in envelopes {
            let mut r = self.node.route(&Pooled::released(env), true);
            rows.append(r.take_rows());
            routed.push(r);
        }
        if let Some(store) = &self.store {
            store.run(move |t| rows.write(t)).await?;
        }
        let mut n = 0;
        for r in routed {
            n += r.len();
            self.node.enqueue(r);
        }
        Ok(n)
    }

    /// The PSS engine, in `pss` and `dual` modes.
    pub fn engine(&self) -> Option<&Arc<dyn Hook>> {
        self.engine.as_ref()
    }

    /// The node this service delivers into.
    pub fn node(&self) -> &Arc<N> {
        &self.node
    }

    /// A service over `node` and `keys`; `store` (if any) keeps filters and the outbox.
    pub fn new(node: Arc<N>, keys: Arc<K>, store: Option<Store>, allow_key_export: bool) -> Self {
        ShhService {
            node,
            keys,
            store,
            allow_key_export,
            light_client: AtomicBool::new(false),
            engine: None,
            whisper_side: None,
            peers: None,
        }
    }

    /// A node with devp2p sessions ([`crate::devp2p`]): `targetPeer` and
    /// `shh_markTrustedPeer` name them.
    pub fn with_peers(mut self, peers: Arc<crate::devp2p::Peers>) -> Self {
        self.peers = Some(peers);
        self
    }

    /// Carries posts over the PSS transport (`--transport=pss`): each post gets its DAG
    /// header in the padding and goes to the engine's durable outbox instead of the Whisper
    /// one, and every filter the app installs tells the engine which chats to read.
    pub fn with_engine(mut self, engine: Arc<dyn Hook>) -> Self {
        self.engine = Some(engine);
        self
    }

    /// Dual mode with an upstream Whisper node ([`crate::dual`]): each post also goes out
    /// on Whisper, and each filter is mirrored there.
    pub fn with_whisper_side(mut self, side: Arc<crate::dual::WhisperSide>) -> Self {
        self.whisper_side = Some(side);
        self
    }

    fn mirror(&self, id: &str, criteria: &str) {
        if let Some(side) = &self.whisper_side {
            side.mirror(id, criteria);
        }
    }

    /// Tells the engine what a filter listens to.
    fn follow(&self, c: &CriteriaReq) {
        let Some(engine) = &self.engine else {
            return;
        };
        engine.follow_topics(&c.topics);
        if !c.sym_key_id.is_empty() {
            if let Some(raw) = self.keys.sym_key(&c.sym_key_id) {
                engine.follow_symmetric(&c.sym_key_id, raw.0, &c.topics);
            }
        } else if let Some(k) = self.keys.key_pair(&c.private_key_id) {
            engine.follow_identity(&c.private_key_id, k);
        }
    }

    /// After a restart, before any transport may deliver: reinstalls stored polling
    /// filters under their ids and subscriptions as detached mailboxes, refills their
    /// queues from the store, and re-adds the outbox's unexpired envelopes to the pool
    /// (not to the filters: what they had not taken is in their queues).
    pub async fn restore(&self) -> Result<(usize, usize), ShhError> {
        let Some(store) = &self.store else {
            return Ok((0, 0));
        };
        let mut filters = 0;
        let mut mirrors = Vec::new();
        for f in store.filters_of(Origin::Local).await? {
            let criteria = RawValue::from_string(f.criteria.clone())
                .ok()
                .and_then(|raw| CriteriaReq::decode(&raw, Place::Value).ok())
                .and_then(|req| {
                    self.resolve(&req, f.kind == FilterKind::Subscription)
                        .ok()
                        .map(|c| (req, c))
                });
            match criteria {
                Some((req, c)) => {
                    self.follow(&req);
                    mirrors.push((f.id.clone(), f.criteria.clone()));
                    match f.kind {
                        FilterKind::Poll => self.node.install_poll(f.id, c),
                        FilterKind::Subscription => self.node.install_mailbox(f.id, c, f.criteria),
                    }
                    filters += 1;
                }
                None => {
                    tracing::warn!(filter = %f.id, "stored filter's keys are gone; filter dropped");
                    store.delete_filter(f.id).await?;
                }
            }
        }
        queue::delete_orphans(store).await?;
        self.node
            .restore_legacy(queue::load_legacy(store, u64::from(unix_now())).await?);
        let queued = self.node.restore_queues(queue::load(store).await?);
        if queued > 0 {
            tracing::info!(queued, "undelivered messages restored to their filters");
        }
        // Queues are back: the Whisper side may start delivering into them.
        for (id, criteria) in mirrors {
            self.mirror(&id, &criteria);
        }
        let now = unix_now();
        let mut envelopes = 0;
        for rlp in store.live_outbox(now).await? {
            match Envelope::decode(&rlp) {
                Ok(env) => {
                    if matches!(self.node.readmit(env, now), Added::New(_)) {
                        envelopes += 1;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "undecodable outbox entry skipped"),
            }
        }
        Ok((filters, envelopes))
    }

    /// Deletes the stored records (and queued rows) of filters the node already removed,
    /// from a synchronous call: in the background, since a record left behind only
    /// reinstalls an empty filter after a restart.
    fn forget_filters(&self, ids: Vec<String>) {
        if let Some(side) = &self.whisper_side {
            for id in &ids {
                side.unmirror(id);
            }
        }
        let Some(store) = self.store.clone() else {
            return;
        };
        if ids.is_empty() {
            return;
        }
        tokio::spawn(async move {
            for id in ids {
                if let Err(e) = store.delete_filter(id).await {
                    tracing::warn!(error = %e, "forgetting a removed filter failed");
                }
            }
        });
    }

    /// Resolves key ids into a node filter. `subscribe` selects geth's `Messages` rules
    /// (topics required for symmetric keys, "invalid public key" for a bad key pair id)
    /// over `NewMessageFilter`'s.
    fn resolve(&self, c: &CriteriaReq, subscribe: bool) -> Result<Criteria, ShhError> {
        let sym = !c.sym_key_id.is_empty();
        let asym = !c.private_key_id.is_empty();
        if sym == asym {
            return Err(ShhError::SymAsym);
        }
        let src = if c.sig.is_empty() {
            None
        } else {
            Some(PublicKey::from_uncompressed(&c.sig).map_err(|_| ShhError::InvalidSigningPubKey)?)
        };
        let key = if sym {
            if subscribe && c.topics.is_empty() {
                return Err(ShhError::NoTopics);
            }
            let raw = self.keys.sym_key(&c.sym_key_id).ok_or(ShhError::NoSymKey)?;
            FilterKey::Symmetric(Arc::new(usable_sym(&raw)?))
        } else {
            let k = self.keys.key_pair(&c.private_key_id).ok_or(if subscribe {
                ShhError::InvalidPublicKey
            } else {
                ShhError::InvalidId
            })?;
            FilterKey::Asymmetric(k)
        };
        Ok(Criteria {
            key,
            src,
            min_pow: c.min_pow,
            topics: c.topics.iter().map(|t| Topic(*t)).collect(),
            allow_p2p: c.allow_p2p,
        })
    }
}

fn usable_sym(raw: &RawSymKey) -> Result<SymKey, ShhError> {
    SymKey::from_bytes(&raw.0).map_err(|_| ShhError::InvalidSymmetricKey)
}

/// Parses an enode URL enough to name its node id (keccak256 of the public key).
pub(crate) fn enode_id(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("enode://")
        .ok_or_else(|| "invalid URL scheme, want \"enode\"".to_string())?;
    let key_hex = rest.split('@').next().unwrap_or_default();
    let key = hex::decode(key_hex)
        .ok()
        .filter(|k| k.len() == 64)
        .ok_or_else(|| "invalid node ID (wrong length, want 128 hex chars)".to_string())?;
    let mut full = vec![4u8];
    full.extend_from_slice(&key);
    PublicKey::from_uncompressed(&full)
        .map_err(|_| "invalid public key (invalid secp256k1 curve point)".to_string())?;
    Ok(hex::encode(keccak256(&key)))
}

impl<N: Node, K: Keys> ShhApi for ShhService<N, K> {
    fn version(&self) -> String {
        "6.0".into()
    }

    fn info(&self) -> InfoJson {
        let i = self.node.info();
        InfoJson {
            memory: i.memory,
            messages: i.messages,
            min_pow: GoFloat(i.min_pow),
            max_message_size: i.max_message_size,
        }
    }

    fn set_max_message_size(&self, size: u32) -> Result<bool, ShhError> {
        self.node.set_max_message_size(size)?;
        Ok(true)
    }

    fn set_min_pow(&self, pow: f64) -> Result<bool, ShhError> {
        self.node.set_min_pow(pow, unix_now())?;
        Ok(true)
    }

    fn set_bloom_filter(&self, bloom: Vec<u8>) -> Result<bool, ShhError> {
        self.node.set_bloom(&bloom, unix_now())?;
        Ok(true)
    }

    fn mark_trusted_peer(&self, enode: String) -> Result<bool, ShhError> {
        let id = enode_id(&enode).map_err(ShhError::Enode)?;
        match &self.peers {
            Some(peers) => peers
                .mark_trusted(&id)
                .map(|()| true)
                .map_err(|e| ShhError::NoPeer(e.0)),
            // Without devp2p the node has no peers to mark.
            None => Err(ShhError::NoPeer(id)),
        }
    }

    fn make_light_client(&self) -> bool {
        self.light_client.store(true, Ordering::Relaxed);
        true
    }

    fn cancel_light_client(&self) -> bool {
        self.light_client.store(false, Ordering::Relaxed);
        true
    }

    async fn new_key_pair(&self) -> Result<String, ShhError> {
        let key = PrivateKey::random(&mut rand::rngs::OsRng);
        Ok(self.keys.add_key_pair(key).await?)
    }

    async fn add_private_key(&self, key: Vec<u8>) -> Result<String, ShhError> {
        if key.len() != 32 {
            return Err(ShhError::PrivateKeyLength);
        }
        let key = PrivateKey::from_bytes(&key).map_err(|_| {
            if key.iter().all(|b| *b == 0) {
                ShhError::PrivateKeyZero
            } else {
                ShhError::PrivateKeyRange
            }
        })?;
        Ok(self.keys.add_key_pair(key).await?)
    }

    async fn delete_key_pair(&self, id: String) -> Result<bool, ShhError> {
        if self.keys.delete_key_pair(&id).await? {
            Ok(true)
        } else {
            Err(ShhError::KeyPairNotFound(id))
        }
    }

    fn has_key_pair(&self, id: &str) -> bool {
        self.keys.key_pair(id).is_some()
    }

    fn get_public_key(&self, id: &str) -> Result<Vec<u8>, ShhError> {
        let k = self.keys.key_pair(id).ok_or(ShhError::InvalidId)?;
        Ok(k.public_key().to_uncompressed().to_vec())
    }

    fn get_private_key(&self, id: &str) -> Result<Vec<u8>, ShhError> {
        if !self.allow_key_export {
            return Err(ShhError::ExportDisabled);
        }
        let k = self.keys.key_pair(id).ok_or(ShhError::InvalidId)?;
        Ok(k.to_bytes().to_vec())
    }

    async fn new_sym_key(&self) -> Result<String, ShhError> {
        let k = SymKey::random(&mut rand::rngs::OsRng);
        Ok(self.keys.add_sym_key(RawSymKey(*k.as_bytes())).await?)
    }

    async fn add_sym_key(&self, key: Vec<u8>) -> Result<String, ShhError> {
        let k: [u8; 32] = key
            .as_slice()
            .try_into()
            .map_err(|_| ShhError::WrongKeySize(key.len()))?;
        Ok(self.keys.add_sym_key(RawSymKey(k)).await?)
    }

    async fn generate_sym_key_from_password(&self, password: String) -> Result<String, ShhError> {
        // 65 356 PBKDF2 rounds: blocking work, kept off the async workers.
        let k = tokio::task::spawn_blocking(move || SymKey::from_password(&password))
            .await
            .map_err(|_| ShhError::Task)?;
        Ok(self.keys.add_sym_key(RawSymKey(*k.as_bytes())).await?)
    }

    fn has_sym_key(&self, id: &str) -> bool {
        self.keys.sym_key(id).is_some()
    }

    fn get_sym_key(&self, id: &str) -> Result<Vec<u8>, ShhError> {
        if !self.allow_key_export {
            return Err(ShhError::ExportDisabled);
        }
        let k = self.keys.sym_key(id).ok_or(ShhError::NoSymKey)?;
        Ok(k.0.to_vec())
    }

    async fn delete_sym_key(&self, id: String) -> Result<bool, ShhError> {
        Ok(self.keys.delete_sym_key(&id).await?)
    }

    async fn post(&self, m: NewMessage) -> Result<EnvelopeHash, ShhError> {
        self.post_with(m, true).await
    }

    async fn post_envelope(&self, rlp: Vec<u8>) -> Result<EnvelopeHash, ShhError> {
        let env = Envelope::decode(&rlp).map_err(|e| ShhError::BadEnvelope(e.to_string()))?;
        ShhService::post_envelope(self, env).await
    }

    async fn new_message_filter(&self, c: CriteriaReq) -> Result<String, ShhError> {
        let criteria = self.resolve(&c, false)?;
        self.follow(&c);
        let id = random_id();
        if let Some(store) = &self.store {
            store
                .put_filter(id.clone(), c.to_json(), Origin::Local)
                .await?;
        }
        self.node.install_poll(id.clone(), criteria);
        self.mirror(&id, &c.to_json());
        Ok(id)
    }

    fn get_filter_messages(&self, id: &str) -> Result<Batch, ShhError> {
        self.node.retrieve(id).map_err(|e| match e {
            PollError::NotFound => ShhError::FilterNotFound,
            e => {
                // An overflowed filter is gone: forget it in the store too.
                self.forget_filters(vec![id.to_string()]);
                ShhError::Poll(e)
            }
        })
    }

    async fn delete_message_filter(&self, id: String) -> Result<bool, ShhError> {
        if let Some(store) = &self.store {
            store.delete_filter(id.clone()).await?;
        }
        if let Some(side) = &self.whisper_side {
            side.unmirror(&id);
        }
        if self.node.uninstall(&id) {
            Ok(true)
        } else {
            Err(ShhError::UnsubscribeInvalidId)
        }
    }

    async fn subscribe_messages(
        &self,
        c: CriteriaReq,
        sink: Box<dyn Sink>,
    ) -> Result<String, ShhError> {
        let criteria = self.resolve(&c, true)?;
        self.follow(&c);
        let key = c.to_json();
        let new_id = random_id();
        // The mailbox is on disk before any queue row can name it.
        if let Some(store) = &self.store {
            store
                .put_filter_of(
                    new_id.clone(),
                    key.clone(),
                    Origin::Local,
                    FilterKind::Subscription,
                )
                .await?;
        }
        let (id, created) = self
            .node
            .subscribe(new_id.clone(), criteria, key.clone(), sink);
        if created {
            self.mirror(&id, &key);
        } else if let Some(store) = &self.store {
            // An existing mailbox was taken over; the record made for a new one goes.
            store.delete_filter(new_id).await?;
        }
        Ok(id)
    }

    fn unsubscribe_messages(&self, filter_id: &str, how: Cancel) {
        match how {
            Cancel::Dropped => {
                let evicted = self.node.detach(filter_id);
                self.forget_filters(evicted);
            }
            Cancel::Unsubscribed => {
                self.node.uninstall(filter_id);
                self.forget_filters(vec![filter_id.to_string()]);
            }
        }
    }
}

/// geth's `Seal`: a positive target must be reached within `pow_time` seconds; a negative
/// one means "work for `pow_time` and add it to the expiry".
async fn seal(mut env: Envelope, target: f64, pow_time: u32) -> Result<Envelope, ShhError> {
    tokio::task::spawn_blocking(move || {
        let bits = if target < 0.0 {
            env.expiry = env.expiry.wrapping_add(pow_time);
            None
        } else {
            Some(pow::target_bits(target, &env))
        };
        let deadline = Instant::now() + Duration::from_secs(u64::from(pow_time));
        let stop = || Instant::now() >= deadline;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let out = pow::seal(
            &mut env,
            bits,
            &SealOptions {
                threads,
                should_stop: &stop,
            },
        );
        if bits.is_some() && !out.reached {
            return Err(ShhError::PowTime(pow_time));
        }
        Ok(env)
    })
    .await
    .map_err(|_| ShhError::Task)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keystore::Keystore;
    use crate::node::LocalNode;

    fn service(export: bool) -> ShhService<LocalNode, Keystore> {
        ShhService::new(
            Arc::new(LocalNode::new(0.0)),
            Arc::new(Keystore::in_memory()),
            None,
            export,
        )
    }

    #[tokio::test]
    async fn post_and_poll_symmetric_and_asymmetric() {
        let s = service(false);
        let sym = s
            .generate_sym_key_from_password("status".into())
            .await
            .expect("key");
        let pair = s.new_key_pair().await.expect("pair");
        let topic = Topic::from_name("status").0;
        let f_sym = s
            .new_message_filter(CriteriaReq {
                sym_key_id: sym.clone(),
                topics: vec![topic],
                ..Default::default()
            })
            .await
            .expect("filter");
        let f_asym = s
            .new_message_filter(CriteriaReq {
                private_key_id: pair.clone(),
                ..Default::default()
            })
            .await
            .expect("filter");
        let h1 = s
            .post(NewMessage {
                sym_key_id: sym,
                topic,
                payload: b"hello".to_vec(),
                sig: pair.clone(),
                ..Default::default()
            })
            .await
            .expect("posts");
        let pk = s.get_public_key(&pair).expect("pub");
        s.post(NewMessage {
            pub_key: pk.clone(),
            topic,
            payload: b"direct".to_vec(),
            ..Default::default()
        })
        .await
        .expect("posts");
        let got = s.get_filter_messages(&f_sym).expect("messages").written();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].message.hash, h1);
        assert_eq!(
            got[0]
                .message
                .plaintext
                .signature
                .as_ref()
                .map(|(_, k)| k.to_uncompressed().to_vec()),
            Some(pk)
        );
        let got = s.get_filter_messages(&f_asym).expect("messages").written();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].message.plaintext.payload, b"direct");
        assert!(
            s.get_filter_messages(&f_sym)
                .expect("cleared")
                .written()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn geth_error_texts() {
        let s = service(false);
        fn err<T>(r: Result<T, ShhError>) -> String {
            r.err().map(|e| e.to_string()).unwrap_or_default()
        }
        assert_eq!(
            err(s.post(NewMessage::default()).await),
            "specify either a symmetric or an asymmetric key"
        );
        let sym = s.new_sym_key().await.expect("key");
        assert_eq!(
            err(s
                .post(NewMessage {
                    sym_key_id: sym.clone(),
                    ..Default::default()
                })
                .await),
            "missing topic(s)"
        );
        assert_eq!(
            err(s
                .post(NewMessage {
                    sym_key_id: "nope".into(),
                    topic: [1; 4],
                    ..Default::default()
                })
                .await),
            "non-existent key ID"
        );
        s.set_min_pow(0.2).expect("sets");
        assert_eq!(
            err(s
                .post(NewMessage {
                    sym_key_id: sym.clone(),
                    topic: [1; 4],
                    ..Default::default()
                })
                .await),
            "message rejected, PoW too low"
        );
        assert_eq!(err(s.add_sym_key(vec![1; 5]).await), "wrong key size: 5");
        assert_eq!(
            err(s.add_private_key(vec![0; 32]).await),
            "invalid private key, zero or negative"
        );
        assert_eq!(
            err(s.delete_key_pair("x".into()).await),
            "key pair x not found"
        );
        assert_eq!(err(s.get_public_key("x")), "invalid id");
        assert!(err(s.get_private_key("x")).contains("--allow-key-export"));
        assert!(err(s.get_sym_key(&sym)).contains("--allow-key-export"));
        assert_eq!(err(s.get_filter_messages("x")), "filter not found");
        assert_eq!(
            err(s.delete_message_filter("x".into()).await),
            "Unsubscribe: Invalid ID"
        );
        assert_eq!(err(s.set_min_pow(-1.0)), "invalid PoW: -1.000000");
        assert_eq!(
            err(s
                .post(NewMessage {
                    sym_key_id: sym,
                    topic: [1; 4],
                    pow_target: 1e9,
                    pow_time: 0,
                    ..Default::default()
                })
                .await),
            "failed to reach the PoW target, specified pow time (0 seconds) was insufficient"
        );
        let e = service(true);
        let k = e.add_sym_key(vec![3; 32]).await.expect("adds");
        assert_eq!(e.get_sym_key(&k).expect("exports"), vec![3; 32]);
    }
}
