//! The local Whisper node: an envelope pool with geth's acceptance rules ([`pool`]) and the
//! filters that open and deliver what arrives ([`filters`]).
//!
//! [`Node`] is the seam the JSON-RPC layer talks to, so tests can swap the node; [`LocalNode`]
//! implements it in memory. Posting adds to the node's own pool, so the node's own filters
//! receive what its apps post; several `staples` processes share one pool by pointing
//! `--whisper-rpc` at the process that runs it.
//!
//! Delivery to filters is route → commit → enqueue ([`queue`] says why): the caller writes
//! the routed queue rows in the same transaction that makes the message visible, so a
//! message reaches the app exactly once across crashes, whichever transport carried it.
//!
//! Locking: the pool and the filter set are behind `std::sync` locks held only for
//! in-memory work (never across an `.await`), so a blocking lock is cheaper than an async
//! one. Matching runs under the filter set's *read* lock, so concurrent posts open envelopes
//! in parallel; subscriptions found full are detached afterwards under the write lock.

pub mod filters;
pub mod pool;
pub mod queue;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use staples_protocol::whisper::Envelope;

pub use filters::{Criteria, Delivered, FilterId, FilterKey, PollError, Push, Queued, Route, Sink};
pub use pool::{AddError, Added, Pool, Pooled, SettingsError};
pub use queue::{Acks, QueueRow, QueueRows, Receipt};

use filters::FilterSet;

/// geth's `shh_info` numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Info {
    /// Bytes of envelopes held.
    pub memory: usize,
    /// Envelopes held.
    pub messages: usize,
    /// Minimum PoW.
    pub min_pow: f64,
    /// Maximum message size.
    pub max_message_size: u32,
}

/// Messages on their way into filter queues: decided by [`Node::route`], made durable by
/// the caller (with [`Routed::rows`] in its own transaction), then queued by
/// [`Node::enqueue`].
#[derive(Debug, Default)]
pub struct Routed {
    items: Vec<(Route, u64)>,
    rows: QueueRows,
}

impl Routed {
    /// How many filters take the message(s).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no filter takes them.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Takes the queue rows to commit (the entries stay for [`Node::enqueue`]).
    pub fn take_rows(&mut self) -> QueueRows {
        std::mem::take(&mut self.rows)
    }
}

/// A poll's answer: the messages, and the receipt to settle once the answer is written.
#[derive(Debug)]
pub struct Batch {
    /// Oldest first.
    pub messages: Vec<Arc<Delivered>>,
    /// Settle when the answer reached the connection; dropped unsettled, the messages are
    /// queued again.
    pub receipt: Receipt,
}

impl Batch {
    /// The messages, the answer taken as written (direct callers that hand them on).
    pub fn written(self) -> Vec<Arc<Delivered>> {
        self.receipt.written();
        self.messages
    }
}

/// What the Whisper JSON-RPC service needs from a node.
pub trait Node: Send + Sync + 'static {
    /// Admits an envelope to the pool (geth `add`'s checks) without offering it to filters.
    fn admit(&self, candidate: Pooled, now: u32) -> Result<Added, AddError>;
    /// Which filters take `pooled` (nothing changes yet).
    fn route(&self, pooled: &Pooled, p2p: bool) -> Routed;
    /// Routes a message that arrived for filter `filter` alone, as geth JSON (dual mode's
    /// Whisper side); [`Node::enqueue`] it once its rows are written.
    fn route_to(&self, filter: &str, msg: Arc<Delivered>) -> Routed;
    /// Queues what [`Node::route`] decided, once the caller has made it durable.
    fn enqueue(&self, routed: Routed);
    /// Admits, routes and queues at once (no durability: a node without a store).
    fn add(&self, envelope: Envelope, now: u32, p2p: bool) -> Result<Added, AddError> {
        let candidate = Pooled::new(envelope, now);
        let added = self.admit(candidate, now)?;
        if let Added::New(pooled) = &added {
            let routed = self.route(pooled, p2p);
            self.enqueue(routed);
        }
        Ok(added)
    }
    /// Re-admits an envelope accepted before a restart (only expiry is checked). Filters
    /// are not offered it again: what they had not taken is in their stored queues.
    fn readmit(&self, envelope: Envelope, now: u32) -> Added;
    /// Drops expired envelopes.
    fn purge(&self, now: u32) -> usize;
    /// Pool statistics and settings.
    fn info(&self) -> Info;
    /// Sets the minimum PoW.
    fn set_min_pow(&self, pow: f64, now: u32) -> Result<(), SettingsError>;
    /// Sets the maximum message size.
    fn set_max_message_size(&self, size: u32) -> Result<(), SettingsError>;
    /// Sets the bloom filter.
    fn set_bloom(&self, bloom: &[u8], now: u32) -> Result<(), SettingsError>;
    /// Installs a polling filter under `id`.
    fn install_poll(&self, id: String, criteria: Criteria);
    /// Subscribes `sink`: takes over the oldest detached mailbox whose criteria are `key`
    /// (pushing what it holds), or installs a new subscription under `new_id`. Returns the
    /// filter id and whether it is new.
    fn subscribe(
        &self,
        new_id: String,
        criteria: Criteria,
        key: String,
        sink: Box<dyn Sink>,
    ) -> (String, bool);
    /// Installs a detached mailbox (restored after a restart).
    fn install_mailbox(&self, id: String, criteria: Criteria, key: String);
    /// Detaches a subscription from its connection; its queue stays as a mailbox. Returns
    /// the oldest detached mailboxes it removed to stay within the bound (their stored
    /// records are the caller's to delete).
    fn detach(&self, id: &str) -> Vec<String>;
    /// Restores stored queue rows `(seq, filter, envelope)` into the installed filters
    /// (start-up, before any delivery); returns how many were queued again.
    fn restore_queues(&self, rows: Vec<(u64, String, Vec<u8>)>) -> usize;
    /// Restores which legacy messages each filter was handed, `(filter, envelope hash)`
    /// (start-up, with the queues).
    fn restore_legacy(&self, rows: Vec<(String, [u8; 32])>);
    /// Removes a filter or subscription and its queue.
    fn uninstall(&self, id: &str) -> bool;
    /// Whether a filter is installed.
    fn has_filter(&self, id: &str) -> bool;
    /// Hands out a polling filter's messages.
    fn retrieve(&self, id: &str) -> Result<Batch, PollError>;
}

impl LocalNode {
    /// Routes an envelope released by the PSS engine, without pooling it: the engine
    /// already checked it, deduplicated it by DAG id, and it may be long expired (an
    /// offline inbox is read hours later).
    pub fn route_released(&self, envelope: Envelope) -> Routed {
        self.route(&Pooled::released(envelope), false)
    }
}

impl crate::engine::Release for LocalNode {
    fn route(&self, envelope: Envelope) -> Routed {
        self.route_released(envelope)
    }
    fn route_logged(&self, pooled: &Pooled) -> Routed {
        let routes = self.shared.filters().route_logged(pooled);
        if routes.is_empty() {
            return Routed::default();
        }
        self.shared
            .numbered(routes, Arc::new(pooled.envelope.encode()))
    }
    fn min_pow(&self) -> f64 {
        self.info().min_pow
    }
    fn enqueue(&self, routed: Routed) {
        Node::enqueue(self, routed);
    }
    fn queue_stats(&self) -> (usize, usize, u64) {
        LocalNode::queue_stats(self)
    }
    fn legacy_repeats(&self) -> u64 {
        LocalNode::legacy_repeats(self)
    }
}

/// The in-memory Whisper node.
pub struct LocalNode {
    pool: Mutex<Pool>,
    shared: Arc<Shared>,
}

/// What receipts need after the call that made them returned.
struct Shared {
    /// Itself, for receipts that must not keep the node alive.
    me: Weak<dyn queue::Pushed>,
    filters: RwLock<FilterSet>,
    acks: Arc<Acks>,
    next_seq: AtomicU64,
}

impl LocalNode {
    /// A node with an empty pool and the given minimum PoW; nothing persisted.
    pub fn new(min_pow: f64) -> Self {
        Self::with_acks(min_pow, Acks::new(None))
    }

    /// A node whose queue rows live in `acks`' store.
    pub fn with_acks(min_pow: f64, acks: Arc<Acks>) -> Self {
        LocalNode {
            pool: Mutex::new(Pool::new(min_pow)),
            shared: Arc::new_cyclic(|me: &Weak<Shared>| {
                let me: Weak<dyn queue::Pushed> = me.clone();
                Shared {
                    me,
                    filters: RwLock::new(FilterSet::default()),
                    acks,
                    next_seq: AtomicU64::new(1),
                }
            }),
        }
    }

    /// Keeps each delivery's envelope bytes (a relay posts them to Whisper as they are).
    pub fn keep_envelopes(&self) {
        self.shared.filters_mut().keep_envelopes();
    }

    /// The removal batcher (shutdown waits on it).
    pub fn acks(&self) -> &Arc<Acks> {
        &self.shared.acks
    }

    /// [`Node::restore_queues`]: rows whose filter is gone, or whose envelope no longer
    /// opens with the filter's key, are removed.
    fn restore_rows(&self, rows: Vec<(u64, String, Vec<u8>)>) -> usize {
        let mut max = 0;
        let mut n = 0;
        let mut dead = Vec::new();
        // They are on disk: taking one removes its row.
        self.shared.acks.stored(rows.iter().map(|(seq, _, _)| *seq));
        {
            let set = self.shared.filters();
            let mut by_filter: std::collections::BTreeMap<String, Vec<Queued>> = Default::default();
            for (seq, filter, bytes) in rows {
                max = max.max(seq);
                let msg = if bytes.first() == Some(&b'{') {
                    // Kept as the JSON it arrived as (Node::route_to).
                    std::str::from_utf8(&bytes)
                        .ok()
                        .filter(|_| set.contains(&filter))
                        .and_then(Delivered::from_geth_json)
                        .map(Arc::new)
                } else {
                    Envelope::decode(&bytes)
                        .ok()
                        .and_then(|env| set.open_for_filter(&filter, &Pooled::released(env)))
                };
                match msg {
                    Some(msg) => by_filter
                        .entry(filter)
                        .or_default()
                        .push(Queued { seq, msg }),
                    None => dead.push(seq),
                }
            }
            for (filter, items) in by_filter {
                n += items.len();
                set.restore_queue(&filter, items);
            }
        }
        self.shared.next_seq.fetch_max(max + 1, Ordering::Relaxed);
        if !dead.is_empty() {
            tracing::warn!(
                rows = dead.len(),
                "queued messages whose filter is gone were dropped"
            );
            self.shared.acks.taken(dead);
        }
        n
    }

    /// Queue figures for `staples_status`: entries queued, detached mailboxes, shed.
    pub fn queue_stats(&self) -> (usize, usize, u64) {
        let set = self.shared.filters();
        let (queued, boxes) = set.queued();
        (queued, boxes, set.shed())
    }

    /// Whether filter `filter` was handed the legacy message with envelope hash `hash`
    /// (a relay asks before bridging it). Changes nothing, counts nothing.
    pub fn had_legacy(&self, filter: &str, hash: &staples_protocol::whisper::EnvelopeHash) -> bool {
        self.shared.filters().had_legacy(filter, hash)
    }

    /// The pooled envelope with hash `hash` (a relay bridging a message it polled looks up
    /// the sender's envelope).
    pub fn pooled(&self, hash: &staples_protocol::whisper::EnvelopeHash) -> Option<Arc<Pooled>> {
        self.pool().get(hash)
    }

    /// Every pooled envelope, for gossip to devp2p peers.
    pub fn pool_snapshot(&self) -> Vec<Arc<Pooled>> {
        self.pool().snapshot()
    }

    /// Legacy messages refused as repeats (their other path's copy), since start.
    pub fn legacy_repeats(&self) -> u64 {
        self.shared.filters().legacy_repeats()
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, Pool> {
        // A panic while holding the lock cannot leave the pool half-updated in a way that
        // matters more than stopping service would, so poisoning is ignored.
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Shared {
    /// Gives each route its place in the delivery order and its queue row, which stores
    /// `stored` (the message as the row keeps it, shared by every filter it went to).
    fn numbered(&self, routes: Vec<Route>, stored: Arc<Vec<u8>>) -> Routed {
        let mut items = Vec::with_capacity(routes.len());
        let mut rows = Vec::with_capacity(routes.len());
        for r in routes {
            let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
            rows.push(QueueRow {
                seq,
                filter: r.filter.clone(),
                envelope: stored.clone(),
                legacy: r.msg.legacy.then_some(r.msg.message.hash.0),
            });
            items.push((r, seq));
        }
        Routed {
            items,
            rows: QueueRows::new(rows, self.acks.clone()),
        }
    }

    fn filters(&self) -> std::sync::RwLockReadGuard<'_, FilterSet> {
        self.filters.read().unwrap_or_else(|p| p.into_inner())
    }

    fn filters_mut(&self) -> std::sync::RwLockWriteGuard<'_, FilterSet> {
        self.filters.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The receipt of one pushed notification: once written, its row goes and the
    /// subscription may push more ([`queue::Pushed`]).
    fn push_receipt(&self, filter: &FilterId, seq: u64) -> Receipt {
        Receipt::push(self.me.clone(), filter.clone(), seq)
    }

    /// Detaches subscriptions whose sink stopped taking pushes; a lagging one is told why.
    fn detach_lagging(&self, ids: Vec<(FilterId, Push)>) {
        if ids.is_empty() {
            return;
        }
        let mut lagged = Vec::new();
        {
            let mut set = self.filters_mut();
            for (id, why) in ids {
                if let Some(sink) = set.detach(&id)
                    && why == Push::Full
                {
                    lagged.push((id, sink));
                }
            }
        }
        // Told after the lock is released: a sink may take its own locks.
        for (id, sink) in lagged {
            tracing::warn!(filter = %id, "subscriber fell behind; subscription closed, its messages kept");
            sink.fail(LAG_REASON);
        }
    }
}

impl queue::Pushed for Shared {
    fn pushed(&self, filter: &FilterId, seq: u64, written: bool) {
        // Not written: the connection is going, and the entry stays for the mailbox.
        if !written {
            return;
        }
        self.acks.taken([seq]);
        let stopped = {
            let mk = |f: &FilterId, s: u64| self.push_receipt(f, s);
            self.filters().written(filter, seq, &mk)
        };
        if let Some(why) = stopped {
            self.detach_lagging(vec![(filter.clone(), why)]);
        }
    }
}

/// Why a subscription that fell behind was closed (sent to the client).
pub const LAG_REASON: &str = "subscription closed: the client fell behind and its notification queue is full; subscribe again with the same criteria to receive what it missed";

impl Node for LocalNode {
    fn admit(&self, candidate: Pooled, now: u32) -> Result<Added, AddError> {
        self.pool().admit(candidate, now)
    }

    fn route(&self, pooled: &Pooled, p2p: bool) -> Routed {
        let routes = self.shared.filters().route(pooled, p2p);
        if routes.is_empty() {
            return Routed::default();
        }
        // A relay's node kept the envelope's bytes while opening it: the rows share them.
        let stored = routes
            .iter()
            .find_map(|r| r.msg.envelope.clone())
            .unwrap_or_else(|| Arc::new(pooled.envelope.encode()));
        self.shared.numbered(routes, stored)
    }

    fn route_to(&self, filter: &str, msg: Arc<Delivered>) -> Routed {
        let Some(route) = self.shared.filters().route_to(filter, msg) else {
            return Routed::default();
        };
        // The stored row keeps the JSON (it starts with `{`, which no RLP envelope does).
        let stored = Arc::new(route.msg.json.clone().into_bytes());
        self.shared.numbered(vec![route], stored)
    }

    fn enqueue(&self, routed: Routed) {
        if routed.items.is_empty() {
            return;
        }
        let (orphans, stopped) = {
            let me = &self.shared;
            let mk = |f: &FilterId, s: u64| me.push_receipt(f, s);
            me.filters().enqueue(routed.items, &mk)
        };
        if !orphans.is_empty() {
            self.shared.acks.taken(orphans);
        }
        self.shared.detach_lagging(stopped);
    }

    fn readmit(&self, envelope: Envelope, now: u32) -> Added {
        let candidate = Pooled::new(envelope, now);
        self.pool().readmit_hashed(candidate, now)
    }

    fn purge(&self, now: u32) -> usize {
        self.pool().purge(now)
    }

    fn info(&self) -> Info {
        let pool = self.pool();
        Info {
            memory: pool.memory(),
            messages: pool.len(),
            min_pow: pool.min_pow(),
            max_message_size: pool.max_message_size(),
        }
    }

    fn set_min_pow(&self, pow: f64, now: u32) -> Result<(), SettingsError> {
        self.pool().set_min_pow(pow, now)
    }

    fn set_max_message_size(&self, size: u32) -> Result<(), SettingsError> {
        self.pool().set_max_message_size(size)
    }

    fn set_bloom(&self, bloom: &[u8], now: u32) -> Result<(), SettingsError> {
        self.pool().set_bloom(bloom, now)
    }

    fn install_poll(&self, id: String, criteria: Criteria) {
        self.shared.filters_mut().install_poll(id, criteria);
    }

    fn subscribe(
        &self,
        new_id: String,
        criteria: Criteria,
        key: String,
        sink: Box<dyn Sink>,
    ) -> (String, bool) {
        let me = &self.shared;
        let mk = |f: &FilterId, s: u64| me.push_receipt(f, s);
        let mut set = me.filters_mut();
        match set.attach(&key, sink, &mk) {
            Ok(id) => (id, false),
            Err(sink) => {
                set.install_push(new_id.clone(), criteria, key, sink);
                (new_id, true)
            }
        }
    }

    fn install_mailbox(&self, id: String, criteria: Criteria, key: String) {
        self.shared.filters_mut().install_mailbox(id, criteria, key);
    }

    fn detach(&self, id: &str) -> Vec<String> {
        let excess = {
            let mut set = self.shared.filters_mut();
            set.detach(id);
            set.excess_mailboxes()
        };
        // Mailboxes nobody came back for: the oldest go.
        for old in &excess {
            tracing::warn!(filter = %old, "too many detached subscriptions; the oldest mailbox is dropped");
            self.uninstall(old);
        }
        excess
    }

    fn restore_queues(&self, rows: Vec<(u64, String, Vec<u8>)>) -> usize {
        self.restore_rows(rows)
    }

    fn restore_legacy(&self, rows: Vec<(String, [u8; 32])>) {
        let set = self.shared.filters();
        for (filter, hash) in rows {
            set.restore_legacy(&filter, [hash]);
        }
    }

    fn uninstall(&self, id: &str) -> bool {
        let removed = self.shared.filters_mut().remove(id);
        match removed {
            Some(seqs) => {
                self.shared.acks.taken(seqs);
                true
            }
            None => false,
        }
    }

    fn has_filter(&self, id: &str) -> bool {
        self.shared.filters().contains(id)
    }

    fn retrieve(&self, id: &str) -> Result<Batch, PollError> {
        let items = self.shared.filters_mut().retrieve(id)?;
        let messages = items.iter().map(|q| q.msg.clone()).collect();
        let weak = Arc::downgrade(&self.shared);
        let filter = id.to_string();
        let receipt = Receipt::new(move |written| {
            let Some(me) = weak.upgrade() else {
                return;
            };
            if written {
                me.acks.taken(items.iter().map(|q| q.seq));
            } else {
                me.filters().requeue(&filter, items);
            }
        });
        Ok(Batch { messages, receipt })
    }
}
