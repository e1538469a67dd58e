//! Message filters: what the app asked to receive, the matching that feeds them, and
//! the in-memory side of their delivery queues ([`super::queue`] is the disk side).
//!
//! Mirrors go-ethereum v1.9.7 `Filters.NotifyWatchers` (reference §5.4): filters are indexed by
//! topic (a filter without topics sees every topic); an envelope is opened at most once per
//! key and later filters holding the same key reuse the result; `minPow` compares against the
//! envelope's PoW; `sig` compares the recovered signer; p2p envelopes reach only `allowP2P`
//! filters.
//!
//! Delivery is two steps so the caller can make it durable in between: [`FilterSet::route`]
//! decides which filters take a message (nothing changes), the caller commits the queue rows,
//! and [`FilterSet::enqueue`] puts the entries in the filters' queues. A polling filter hands
//! its queue out on `shh_getFilterMessages`; a subscription pushes at most [`PUSH_WINDOW`]
//! unwritten notifications at a time and pushes more as the connection writes them. Entries
//! leave a queue only when a [`Receipt`] says the connection took them.
//!
//! A subscription whose connection goes away (or falls behind) is *detached*: its queue is
//! kept as a mailbox under its criteria, and the next `shh_subscribe` with the same
//! criteria takes it over and gets what it holds first. `shh_unsubscribe` drops it.
//!
//! Every queue is bounded ([`MAX_POLL_BUFFER`] entries, [`MAX_QUEUE_BYTES`]): a polling filter
//! past the bound stops buffering and its next poll reports the overflow and removes it; a
//! subscription past the bound sheds what arrives until it drains. Both are counted
//! ([`FilterSet::shed`]); nothing is skipped silently.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use staples_protocol::crypto::{PrivateKey, PublicKey};
use staples_protocol::whisper::json::{MessageJson, hex0x};
use staples_protocol::whisper::{
    EnvelopeHash, OpenKey, ReceivedMessage, SymKey, Topic, open_known,
};

use super::pool::Pooled;
use super::queue::Receipt;

/// Unread messages a filter's queue holds.
pub const MAX_POLL_BUFFER: usize = 10_000;
/// Bytes of message JSON a filter's queue holds.
pub const MAX_QUEUE_BYTES: usize = 64 << 20;
/// Notifications a subscription has handed to its connection and not seen written yet.
pub const PUSH_WINDOW: usize = 256;
/// Detached subscription mailboxes kept; past this the oldest is dropped (and counted).
pub const MAX_MAILBOXES: usize = 256;
/// Legacy envelope hashes a filter remembers in memory (the store keeps 30 days).
pub const MAX_LEGACY_SEEN: usize = 100_000;

/// The key a filter opens envelopes with.
#[derive(Clone, Debug)]
pub enum FilterKey {
    /// A symmetric key.
    Symmetric(Arc<SymKey>),
    /// Our private key (messages to our public key).
    Asymmetric(Arc<PrivateKey>),
}

/// What a filter matches: geth's `Criteria` with the key ids resolved.
#[derive(Clone, Debug)]
pub struct Criteria {
    /// The decryption key.
    pub key: FilterKey,
    /// Required signer, if any.
    pub src: Option<PublicKey>,
    /// Minimum envelope PoW (0 = any).
    pub min_pow: f64,
    /// Topics; empty means all topics.
    pub topics: Vec<Topic>,
    /// Whether direct peer-to-peer envelopes are accepted.
    pub allow_p2p: bool,
}

/// A message as filters deliver it: opened once, its geth JSON rendered once.
#[derive(Debug)]
pub struct Delivered {
    /// The opened message.
    pub message: ReceivedMessage,
    /// geth's `Message` JSON for it.
    pub json: String,
    /// A legacy Whisper message reported as JSON: polled by dual mode's Whisper side, or
    /// a relay's bridged record of one. It may come by both paths, so each filter takes
    /// its envelope hash once ever, not only while queued.
    pub legacy: bool,
    /// The envelope as its sender sealed it (RLP), kept only where the node was asked
    /// to ([`FilterSet::keep_envelopes`]: a relay posts it to Whisper byte for byte).
    pub envelope: Option<Arc<Vec<u8>>>,
}

impl Delivered {
    /// The JSON to hand out: the app's view, or for a `dual` sidecar's Whisper side
    /// (`sidecar`) geth's own, with a Staples DAG carrier left in the padding.
    pub fn json_for(&self, sidecar: bool) -> std::borrow::Cow<'_, str> {
        if sidecar && staples_protocol::dag::app_padding(&self.message.plaintext.padding).is_some()
        {
            std::borrow::Cow::Owned(self.message.to_geth_json())
        } else {
            std::borrow::Cow::Borrowed(&self.json)
        }
    }

    /// A message that reached Staples as geth's JSON rather than as an envelope (dual
    /// mode's Whisper side polls an upstream node): the JSON is handed to the app as it
    /// came. Its signer is in the JSON only (`message.plaintext.signature` is `None`);
    /// only routing reads that, and such messages are queued to the one filter they were
    /// polled for, never routed.
    pub fn from_geth_json(json: &str) -> Option<Delivered> {
        let message = staples_protocol::whisper::json::parse_geth_json(json).ok()?;
        Some(Delivered {
            message,
            json: json.to_string(),
            legacy: true,
            envelope: None,
        })
    }
}

/// A queued message and its place in the node's delivery order.
#[derive(Debug, Clone)]
pub struct Queued {
    /// Delivery sequence number (the queue row's key).
    pub seq: u64,
    /// The message.
    pub msg: Arc<Delivered>,
}

/// What a push into a subscription sink did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Queued for the subscriber.
    Queued,
    /// The subscriber's queue is full: it fell behind.
    Full,
    /// The subscriber is gone (connection closed).
    Closed,
}

/// Where a subscription's messages go. Implemented by the RPC layer; must not block.
pub trait Sink: Send + Sync {
    /// Offers one message; `receipt` is to be settled once its frame is written.
    fn push(&self, message: &Arc<Delivered>, receipt: Receipt) -> Push;
    /// Called once when the node closes the subscription because it fell behind.
    fn fail(&self, reason: &str);
}

/// Errors from polling a filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PollError {
    /// No such filter (geth's text).
    #[error("filter not found")]
    NotFound,
    /// The filter overflowed and was removed.
    #[error(
        "filter removed: more than {} messages were not retrieved in time; create a new filter",
        MAX_POLL_BUFFER
    )]
    Overflowed,
}

/// One match of [`FilterSet::route`]: `msg` goes to filter `filter`.
#[derive(Debug, Clone)]
pub struct Route {
    /// The filter id.
    pub filter: FilterId,
    /// The opened message.
    pub msg: Arc<Delivered>,
}

/// A filter's id, shared by its routes, queue rows and receipts without copying it.
pub type FilterId = Arc<str>;

/// Makes the receipt of a pushed notification (the node knows how to settle it).
pub type MakeReceipt<'a> = &'a dyn Fn(&FilterId, u64) -> Receipt;

#[derive(Default)]
struct Queue {
    items: VecDeque<Queued>,
    /// How many of `items` (from the front) a subscription has pushed and not seen written.
    pushed: usize,
    hashes: HashSet<EnvelopeHash>,
    bytes: usize,
    overflowed: bool,
    /// Legacy messages handed to this filter (queued or taken), by envelope hash.
    legacy: crate::recent::Recent<MAX_LEGACY_SEEN>,
}

impl Queue {
    fn full(&self) -> bool {
        self.items.len() >= MAX_POLL_BUFFER || self.bytes >= MAX_QUEUE_BYTES
    }

    fn push_back(&mut self, q: Queued) {
        if q.msg.legacy {
            self.saw_legacy(q.msg.message.hash);
        }
        self.hashes.insert(q.msg.message.hash);
        self.bytes += q.msg.json.len();
        self.items.push_back(q);
    }

    fn saw_legacy(&mut self, hash: EnvelopeHash) {
        self.legacy.insert(hash.0);
    }

    /// A legacy message this filter already had (by the other path).
    fn repeat(&self, msg: &Delivered) -> bool {
        msg.legacy && self.legacy.contains(&msg.message.hash.0)
    }

    fn take_all(&mut self) -> Vec<Queued> {
        self.hashes.clear();
        self.bytes = 0;
        self.pushed = 0;
        self.items.drain(..).collect()
    }

    fn remove_seq(&mut self, seq: u64) -> bool {
        let Some(i) = self.items.iter().position(|q| q.seq == seq) else {
            return false;
        };
        if let Some(q) = self.items.remove(i) {
            self.hashes.remove(&q.msg.message.hash);
            self.bytes = self.bytes.saturating_sub(q.msg.json.len());
        }
        if i < self.pushed {
            self.pushed -= 1;
        }
        true
    }
}

enum Kind {
    Poll,
    Subscription {
        /// `None` while detached (a mailbox).
        sink: Option<Box<dyn Sink>>,
        /// The criteria's canonical JSON: which `shh_subscribe` may take the mailbox.
        key: String,
    },
}

struct Filter {
    criteria: Criteria,
    kind: Kind,
    queue: Mutex<Queue>,
    /// Install order, so the oldest matching mailbox is taken first.
    order: u64,
}

impl Filter {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// All installed filters, indexed by topic.
#[derive(Default)]
pub struct FilterSet {
    filters: HashMap<FilterId, Filter>,
    by_topic: HashMap<Topic, Vec<FilterId>>,
    all_topics: Vec<FilterId>,
    next_order: u64,
    shed: std::sync::atomic::AtomicU64,
    legacy_repeats: std::sync::atomic::AtomicU64,
    /// Keep each delivery's envelope bytes ([`Delivered::envelope`]).
    keep_envelopes: bool,
}

impl FilterSet {
    /// Installs a polling filter under `id`.
    pub fn install_poll(&mut self, id: String, criteria: Criteria) {
        self.insert(id, criteria, Kind::Poll);
    }

    /// Installs a subscription under `id`, attached to `sink`; `key` names its mailbox.
    pub fn install_push(
        &mut self,
        id: String,
        criteria: Criteria,
        key: String,
        sink: Box<dyn Sink>,
    ) {
        self.insert(
            id,
            criteria,
            Kind::Subscription {
                sink: Some(sink),
                key,
            },
        );
    }

    /// Installs a detached subscription mailbox (restored after a restart).
    pub fn install_mailbox(&mut self, id: String, criteria: Criteria, key: String) {
        self.insert(id, criteria, Kind::Subscription { sink: None, key });
    }

    /// Attaches `sink` to the oldest detached mailbox whose criteria are `key`, pushing
    /// what it holds; returns its id, or gives the sink back when there is none.
    pub fn attach(
        &mut self,
        key: &str,
        sink: Box<dyn Sink>,
        receipt: MakeReceipt<'_>,
    ) -> Result<String, Box<dyn Sink>> {
        let found = self
            .filters
            .iter()
            .filter(
                |(_, f)| matches!(&f.kind, Kind::Subscription { sink: None, key: k } if k == key),
            )
            .min_by_key(|(_, f)| f.order)
            .map(|(id, _)| id.clone());
        let Some(id) = found else {
            return Err(sink);
        };
        if let Some(f) = self.filters.get_mut(&*id)
            && let Kind::Subscription { sink: slot, .. } = &mut f.kind
        {
            *slot = Some(sink);
        }
        let stopped = self.filters.get(&*id).and_then(|f| pump(&id, f, receipt));
        if let Some(why) = stopped
            && let Some(s) = self.detach(&id)
            && why == Push::Full
        {
            s.fail(super::LAG_REASON);
        }
        Ok(id.to_string())
    }

    /// Detaches a subscription from its connection; its queue stays as a mailbox. Returns
    /// the sink it had.
    pub fn detach(&mut self, id: &str) -> Option<Box<dyn Sink>> {
        let f = self.filters.get_mut(id)?;
        let Kind::Subscription { sink, .. } = &mut f.kind else {
            return None;
        };
        let old = sink.take();
        f.queue().pushed = 0;
        old
    }

    /// Detached mailboxes beyond [`MAX_MAILBOXES`], oldest first: the caller removes them.
    pub fn excess_mailboxes(&self) -> Vec<String> {
        let mut boxes: Vec<(&FilterId, u64)> = self
            .filters
            .iter()
            .filter(|(_, f)| matches!(f.kind, Kind::Subscription { sink: None, .. }))
            .map(|(id, f)| (id, f.order))
            .collect();
        boxes.sort_by_key(|(_, o)| *o);
        let n = boxes.len().saturating_sub(MAX_MAILBOXES);
        boxes[..n].iter().map(|(id, _)| id.to_string()).collect()
    }

    /// Whether `id` is installed.
    pub fn contains(&self, id: &str) -> bool {
        self.filters.contains_key(id)
    }

    /// Removes a filter; its queued sequence numbers if it was there.
    pub fn remove(&mut self, id: &str) -> Option<Vec<u64>> {
        self.take(id)
            .map(|f| f.queue().items.iter().map(|q| q.seq).collect())
    }

    /// Hands out a polling filter's queue (oldest first). The entries are out of the queue
    /// until [`FilterSet::requeue`] puts back the ones whose answer was not written.
    pub fn retrieve(&mut self, id: &str) -> Result<Vec<Queued>, PollError> {
        let f = self.filters.get(id).ok_or(PollError::NotFound)?;
        if !matches!(f.kind, Kind::Poll) {
            // Subscriptions are not pollable: geth's ids for them are internal.
            return Err(PollError::NotFound);
        }
        let mut q = f.queue();
        if q.overflowed {
            drop(q);
            self.remove(id);
            return Err(PollError::Overflowed);
        }
        Ok(q.take_all())
    }

    /// Puts back entries a poll took whose answer never reached the app, ahead of what
    /// arrived since.
    pub fn requeue(&self, id: &str, items: Vec<Queued>) {
        let Some(f) = self.filters.get(id) else {
            return;
        };
        let mut q = f.queue();
        let rest: Vec<Queued> = q.take_all();
        for item in items.into_iter().chain(rest) {
            q.push_back(item);
        }
    }

    /// A pushed notification was written: drops it from the queue and pushes more. Returns
    /// how pushing more stopped ([`Push::Full`] or [`Push::Closed`]): the caller detaches.
    pub fn written(&self, id: &str, seq: u64, receipt: MakeReceipt<'_>) -> Option<Push> {
        let (id, f) = self.filters.get_key_value(id)?;
        f.queue().remove_seq(seq);
        pump(id, f, receipt)
    }

    /// Restores a filter's queue from its stored rows (start-up, before any delivery).
    pub fn restore_queue(&self, id: &str, items: Vec<Queued>) {
        if let Some(f) = self.filters.get(id) {
            let mut q = f.queue();
            for item in items {
                q.push_back(item);
            }
        }
    }

    /// Whether filter `id` takes `msg`, which arrived for it alone (see
    /// [`Delivered::from_geth_json`]): [`FilterSet::route`]'s checks after matching.
    pub fn route_to(&self, id: &str, msg: Arc<Delivered>) -> Option<Route> {
        let (id, f) = self.filters.get_key_value(id)?;
        self.has_room(f, &msg).then(|| Route {
            filter: id.clone(),
            msg,
        })
    }

    /// Whether `f`'s queue takes `msg` once matched: not overflowed, not already queued
    /// (geth's buffer keys by hash), not full. A full queue sheds it (counted), and a full
    /// polling filter overflows.
    fn has_room(&self, f: &Filter, msg: &Delivered) -> bool {
        let mut q = f.queue();
        if q.overflowed {
            return false;
        }
        // Queued still, or (a legacy message) handed out before.
        if q.hashes.contains(&msg.message.hash) || q.repeat(msg) {
            if msg.legacy {
                self.legacy_repeats
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            return false;
        }
        if q.full() {
            self.shed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if matches!(f.kind, Kind::Poll) {
                q.overflowed = true;
            }
            return false;
        }
        true
    }

    /// Opens `pooled` for filter `id` as delivery would (restoring a stored queue row).
    pub fn open_for_filter(&self, id: &str, pooled: &Pooled) -> Option<Arc<Delivered>> {
        open_for(
            pooled,
            &self.filters.get(id)?.criteria.key,
            self.keep_envelopes,
            false,
        )
    }

    /// Number of filters.
    pub fn len(&self) -> usize {
        self.filters.len()
    }

    /// Whether no filter is installed.
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// Messages not queued because a queue was full, since start.
    pub fn shed(&self) -> u64 {
        self.shed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Legacy messages a filter refused because it had them already (the second path's
    /// copy), since start.
    pub fn legacy_repeats(&self) -> u64 {
        self.legacy_repeats
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Keeps each delivery's envelope bytes from now on (a relay's node).
    pub fn keep_envelopes(&mut self) {
        self.keep_envelopes = true;
    }

    /// Whether filter `id` has (or had) the legacy message with envelope hash `hash`,
    /// queued or taken.
    pub fn had_legacy(&self, id: &str, hash: &EnvelopeHash) -> bool {
        self.filters.get(id).is_some_and(|f| {
            let q = f.queue();
            q.hashes.contains(hash) || q.legacy.contains(&hash.0)
        })
    }

    /// Restores the legacy messages filter `id` was handed (start-up).
    pub fn restore_legacy(&self, id: &str, hashes: impl IntoIterator<Item = [u8; 32]>) {
        if let Some(f) = self.filters.get(id) {
            let mut q = f.queue();
            for h in hashes {
                q.saw_legacy(EnvelopeHash(h));
            }
        }
    }

    /// Entries queued over all filters, and detached mailboxes.
    pub fn queued(&self) -> (usize, usize) {
        let n = self.filters.values().map(|f| f.queue().items.len()).sum();
        let boxes = self
            .filters
            .values()
            .filter(|f| matches!(f.kind, Kind::Subscription { sink: None, .. }))
            .count();
        (n, boxes)
    }

    /// Decides which filters take a pooled envelope (geth's matching), without changing
    /// anything: a full queue or a hash already queued is left out here, so every route
    /// the caller persists is one [`FilterSet::enqueue`] will keep.
    pub fn route(&self, pooled: &Pooled, p2p: bool) -> Vec<Route> {
        self.route_with(pooled, p2p, false)
    }

    /// [`FilterSet::route`] for an envelope read from a topic log: only a legacy message
    /// (no Staples DAG carrier: those come by the DAG path) is taken, and as a legacy
    /// message, so each filter takes its envelope hash once ever, whichever path brought
    /// it.
    pub fn route_logged(&self, pooled: &Pooled) -> Vec<Route> {
        self.route_with(pooled, false, true)
    }

    fn route_with(&self, pooled: &Pooled, p2p: bool, logged: bool) -> Vec<Route> {
        let mut opened: HashMap<[u8; 32], Option<Arc<Delivered>>> = HashMap::new();
        let mut out = Vec::new();
        let topical = self.by_topic.get(&pooled.envelope.topic);
        let candidates = topical.into_iter().flatten().chain(self.all_topics.iter());
        for id in candidates {
            let Some(f) = self.filters.get(id) else {
                continue;
            };
            let c = &f.criteria;
            if (p2p && !c.allow_p2p) || (c.min_pow > 0.0 && pooled.pow < c.min_pow) {
                continue;
            }
            let cache_key = match &c.key {
                FilterKey::Symmetric(k) => *k.as_bytes(),
                FilterKey::Asymmetric(k) => {
                    // Tag asymmetric keys so a symmetric key with equal bytes cannot collide.
                    let mut b = k.to_bytes();
                    b[0] ^= 0x80;
                    b
                }
            };
            let msg = opened
                .entry(cache_key)
                .or_insert_with(|| open_for(pooled, &c.key, self.keep_envelopes, logged))
                .clone();
            let Some(msg) = msg else { continue };
            if let Some(src) = &c.src {
                let signer = msg.message.plaintext.signature.as_ref().map(|(_, k)| k);
                if signer != Some(src) {
                    continue;
                }
            }
            if !self.has_room(f, &msg) {
                continue;
            }
            out.push(Route {
                filter: id.clone(),
                msg,
            });
        }
        out
    }

    /// Queues routed messages (with their sequence numbers) and pushes to attached
    /// subscriptions. Returns the sequence numbers whose filter is gone (their rows are to
    /// be removed) and the subscriptions whose sink stopped taking pushes (to detach).
    pub fn enqueue(
        &self,
        routes: Vec<(Route, u64)>,
        receipt: MakeReceipt<'_>,
    ) -> (Vec<u64>, Vec<(FilterId, Push)>) {
        let mut orphans = Vec::new();
        let mut lagging = Vec::new();
        for (r, seq) in routes {
            let Some(f) = self.filters.get(&r.filter) else {
                orphans.push(seq);
                continue;
            };
            {
                let mut q = f.queue();
                // Both paths of a legacy message passed routing at once: the second
                // committed row goes again.
                if q.repeat(&r.msg) {
                    orphans.push(seq);
                    continue;
                }
                q.push_back(Queued { seq, msg: r.msg });
            }
            if let Some(why) = pump(&r.filter, f, receipt) {
                lagging.push((r.filter, why));
            }
        }
        (orphans, lagging)
    }

    fn insert(&mut self, id: String, criteria: Criteria, kind: Kind) {
        self.take(&id);
        let id = FilterId::from(id);
        let mut topics = criteria.topics.clone();
        topics.sort();
        topics.dedup();
        if topics.is_empty() {
            self.all_topics.push(id.clone());
        }
        for t in topics {
            self.by_topic.entry(t).or_default().push(id.clone());
        }
        self.next_order += 1;
        self.filters.insert(
            id,
            Filter {
                criteria,
                kind,
                queue: Mutex::default(),
                order: self.next_order,
            },
        );
    }

    fn take(&mut self, id: &str) -> Option<Filter> {
        let f = self.filters.remove(id)?;
        self.all_topics.retain(|x| &**x != id);
        for t in &f.criteria.topics {
            if let Some(v) = self.by_topic.get_mut(t) {
                v.retain(|x| &**x != id);
                if v.is_empty() {
                    self.by_topic.remove(t);
                }
            }
        }
        Some(f)
    }
}

/// Pushes a subscription's unpushed entries while its window has room. `Some` when the
/// sink is full or gone: the caller detaches it.
fn pump(id: &FilterId, f: &Filter, receipt: MakeReceipt<'_>) -> Option<Push> {
    let Kind::Subscription {
        sink: Some(sink), ..
    } = &f.kind
    else {
        return None;
    };
    let mut q = f.queue();
    while q.pushed < PUSH_WINDOW && q.pushed < q.items.len() {
        let Some(item) = q.items.get(q.pushed).cloned() else {
            break;
        };
        match sink.push(&item.msg, receipt(id, item.seq)) {
            Push::Queued => q.pushed += 1,
            stop => return Some(stop),
        }
    }
    None
}

fn open_for(pooled: &Pooled, key: &FilterKey, keep: bool, logged: bool) -> Option<Arc<Delivered>> {
    let key = match key {
        FilterKey::Symmetric(k) => OpenKey::Symmetric(k),
        FilterKey::Asymmetric(k) => OpenKey::Asymmetric(k),
    };
    // geth reports the PoW computed on entry (adjusted for clock skew), not a fresh one.
    let message = open_known(&pooled.envelope, key, pooled.hash, pooled.pow).ok()?;
    if logged {
        if staples_protocol::dag::app_padding(&message.plaintext.padding).is_some() {
            return None;
        }
        let json = app_json(&message);
        return Some(Arc::new(Delivered {
            message,
            json,
            legacy: true,
            envelope: None,
        }));
    }
    if let Some(bridged) = bridged_record(&message) {
        return bridged.map(Arc::new);
    }
    let json = app_json(&message);
    Some(Arc::new(Delivered {
        message,
        json,
        legacy: false,
        envelope: keep.then(|| Arc::new(pooled.envelope.encode())),
    }))
}

/// A relay's record of a legacy Whisper message (specs/relay.md §3), as the message it
/// describes: `None` for an ordinary message, `Some(None)` for a record that does not
/// decode (delivered to nobody). Only a Staples message (DAG carrier in its padding) can
/// be one: a Whisper app's payload that happens to start with the magic is its own.
fn bridged_record(message: &ReceivedMessage) -> Option<Option<Delivered>> {
    staples_protocol::dag::app_padding(&message.plaintext.padding)?;
    let record = staples_protocol::bridged::decode(&message.plaintext.payload)?;
    match record {
        Ok(b) if b.message.topic == message.topic => Some(Some(Delivered {
            message: b.message,
            json: b.json,
            legacy: true,
            envelope: None,
        })),
        Ok(_) => {
            tracing::warn!("a bridged record names another topic than its envelope; refused");
            Some(None)
        }
        Err(e) => {
            tracing::warn!(error = %e, "a bridged record does not decode; refused");
            Some(None)
        }
    }
}

/// geth's `Message` JSON as the app should see it: a Staples DAG carrier in the padding
/// is stripped, leaving the padding the sending app posted (specs/dag.md §3).
fn app_json(message: &ReceivedMessage) -> String {
    match staples_protocol::dag::app_padding(&message.plaintext.padding) {
        None => message.to_geth_json(),
        Some(padding) => {
            let mut j = MessageJson::from(message);
            j.padding = hex0x(padding);
            serde_json::to_string(&j).unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use staples_protocol::whisper::{Draft, Recipient, wrap};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn pooled(to: Recipient<'_>, topic: Topic, signer: Option<&PrivateKey>, seed: u64) -> Pooled {
        let mut rng = StdRng::seed_from_u64(seed);
        let draft = Draft {
            topic,
            payload: b"hi",
            padding: None,
            signer,
            ttl: 50,
            to,
        };
        let envelope = wrap(&draft, 1000, &mut rng).expect("wraps");
        Pooled {
            hash: envelope.hash(),
            pow: 0.5,
            envelope,
        }
    }

    fn crit(key: FilterKey, topics: Vec<Topic>) -> Criteria {
        Criteria {
            key,
            src: None,
            min_pow: 0.0,
            topics,
            allow_p2p: false,
        }
    }

    fn no_receipt(_: &FilterId, _: u64) -> Receipt {
        Receipt::new(|_| {})
    }

    /// Routes and queues at once, numbering entries from `seq`.
    fn deliver(set: &FilterSet, p: &Pooled, p2p: bool, seq: &mut u64) -> Vec<(FilterId, Push)> {
        let routes = set
            .route(p, p2p)
            .into_iter()
            .map(|r| {
                *seq += 1;
                (r, *seq)
            })
            .collect();
        set.enqueue(routes, &no_receipt).1
    }

    /// A sink that counts pushes, answers with a fixed outcome and keeps the receipts.
    struct CountSink(Arc<AtomicUsize>, Push, Arc<Mutex<Vec<Receipt>>>);
    impl Sink for CountSink {
        fn push(&self, _: &Arc<Delivered>, r: Receipt) -> Push {
            self.0.fetch_add(1, Ordering::SeqCst);
            if self.1 == Push::Queued {
                self.2.lock().expect("lock").push(r);
            }
            self.1
        }
        fn fail(&self, _: &str) {}
    }

    fn sink(n: &Arc<AtomicUsize>, p: Push) -> Box<CountSink> {
        Box::new(CountSink(n.clone(), p, Arc::default()))
    }

    #[test]
    fn symmetric_asymmetric_sig_pow_and_p2p_matching() {
        let mut rng = StdRng::seed_from_u64(9);
        let sym = Arc::new(SymKey::random(&mut rng));
        let other = Arc::new(SymKey::random(&mut rng));
        let me = Arc::new(PrivateKey::random(&mut rng));
        let signer = PrivateKey::random(&mut rng);
        let t = Topic([1, 2, 3, 4]);
        let mut set = FilterSet::default();
        set.install_poll(
            "sym".into(),
            crit(FilterKey::Symmetric(sym.clone()), vec![t]),
        );
        set.install_poll(
            "all".into(),
            crit(FilterKey::Symmetric(sym.clone()), vec![]),
        );
        set.install_poll(
            "other-topic".into(),
            crit(FilterKey::Symmetric(sym.clone()), vec![Topic([9; 4])]),
        );
        set.install_poll(
            "wrong-key".into(),
            crit(FilterKey::Symmetric(other), vec![t]),
        );
        set.install_poll(
            "asym".into(),
            crit(FilterKey::Asymmetric(me.clone()), vec![]),
        );
        let mut by_sig = crit(FilterKey::Symmetric(sym.clone()), vec![t]);
        by_sig.src = Some(signer.public_key());
        set.install_poll("sig".into(), by_sig);
        let mut pow = crit(FilterKey::Symmetric(sym.clone()), vec![t]);
        pow.min_pow = 1.0;
        set.install_poll("pow".into(), pow);
        let mut p2p = crit(FilterKey::Symmetric(sym.clone()), vec![t]);
        p2p.allow_p2p = true;
        set.install_poll("p2p".into(), p2p);

        let unsigned = pooled(Recipient::Symmetric(&sym), t, None, 1);
        let signed = pooled(Recipient::Symmetric(&sym), t, Some(&signer), 2);
        let pk = me.public_key();
        let direct = pooled(Recipient::Asymmetric(&pk), t, None, 3);
        let mut seq = 0;
        for p in [&unsigned, &signed, &direct] {
            assert!(deliver(&set, p, false, &mut seq).is_empty());
        }
        let direct_p2p = pooled(Recipient::Symmetric(&sym), t, None, 4);
        assert!(deliver(&set, &direct_p2p, true, &mut seq).is_empty());

        let count = |set: &mut FilterSet, id: &str| set.retrieve(id).expect("exists").len();
        assert_eq!(count(&mut set, "sym"), 2);
        assert_eq!(count(&mut set, "all"), 2);
        assert_eq!(count(&mut set, "other-topic"), 0);
        assert_eq!(count(&mut set, "wrong-key"), 0);
        assert_eq!(count(&mut set, "asym"), 1);
        assert_eq!(count(&mut set, "sig"), 1);
        assert_eq!(count(&mut set, "pow"), 0);
        assert_eq!(count(&mut set, "p2p"), 3, "p2p filters see both kinds");
        assert_eq!(count(&mut set, "sym"), 0, "retrieve takes");
        assert_eq!(set.retrieve("nope").err(), Some(PollError::NotFound));
    }

    #[test]
    fn routing_changes_nothing_until_enqueued_and_requeue_keeps_order() {
        let mut rng = StdRng::seed_from_u64(5);
        let sym = Arc::new(SymKey::random(&mut rng));
        let t = Topic([3; 4]);
        let mut set = FilterSet::default();
        set.install_poll("f".into(), crit(FilterKey::Symmetric(sym.clone()), vec![t]));
        let a = pooled(Recipient::Symmetric(&sym), t, None, 1);
        let b = pooled(Recipient::Symmetric(&sym), t, None, 2);
        let routes = set.route(&a, false);
        assert_eq!(routes.len(), 1);
        assert!(
            set.retrieve("f").expect("exists").is_empty(),
            "route alone queues nothing"
        );
        set.enqueue(vec![(routes[0].clone(), 7)], &no_receipt);
        let taken = set.retrieve("f").expect("exists");
        assert_eq!(taken.iter().map(|q| q.seq).collect::<Vec<_>>(), [7]);
        let mut seq = 7;
        deliver(&set, &b, false, &mut seq);
        // The answer with seq 7 was not written: it goes back ahead of seq 8.
        set.requeue("f", taken);
        let again = set.retrieve("f").expect("exists");
        assert_eq!(again.iter().map(|q| q.seq).collect::<Vec<_>>(), [7, 8]);
        // A filter removed between route and enqueue leaves its entry an orphan.
        let routes = set.route(&a, false);
        set.remove("f");
        let (orphans, _) = set.enqueue(vec![(routes[0].clone(), 9)], &no_receipt);
        assert_eq!(orphans, [9]);
    }

    #[test]
    fn duplicates_collapse_and_overflow_is_reported_and_counted() {
        let mut rng = StdRng::seed_from_u64(3);
        let sym = Arc::new(SymKey::random(&mut rng));
        let t = Topic([1; 4]);
        let mut set = FilterSet::default();
        set.install_poll(
            "f".into(),
            crit(FilterKey::Symmetric(sym.clone()), vec![t, t]),
        );
        let p = pooled(Recipient::Symmetric(&sym), t, None, 1);
        let mut seq = 0;
        deliver(&set, &p, false, &mut seq);
        deliver(&set, &p, false, &mut seq);
        assert_eq!(set.retrieve("f").expect("exists").len(), 1);
        for i in 0..=MAX_POLL_BUFFER as u64 {
            let mut p = p.clone();
            p.hash = EnvelopeHash([0; 32]);
            p.hash.0[..8].copy_from_slice(&i.to_be_bytes());
            deliver(&set, &p, false, &mut seq);
        }
        assert_eq!(set.shed(), 1, "the message past the bound is counted");
        assert_eq!(set.retrieve("f").err(), Some(PollError::Overflowed));
        assert!(!set.contains("f"), "an overflowed filter is removed");
    }

    #[test]
    fn subscriptions_push_a_window_then_more_as_frames_are_written() {
        let mut rng = StdRng::seed_from_u64(6);
        let sym = Arc::new(SymKey::random(&mut rng));
        let t = Topic([4; 4]);
        let n = Arc::new(AtomicUsize::new(0));
        let receipts: Arc<Mutex<Vec<Receipt>>> = Arc::default();
        let mut set = FilterSet::default();
        set.install_push(
            "s".into(),
            crit(FilterKey::Symmetric(sym.clone()), vec![t]),
            "k".into(),
            Box::new(CountSink(n.clone(), Push::Queued, receipts.clone())),
        );
        let mut seq = 0;
        for i in 0..PUSH_WINDOW as u64 + 10 {
            let p = pooled(Recipient::Symmetric(&sym), t, None, 100 + i);
            deliver(&set, &p, false, &mut seq);
        }
        assert_eq!(
            n.load(Ordering::SeqCst),
            PUSH_WINDOW,
            "only a window is in flight"
        );
        assert_eq!(set.queued().0, PUSH_WINDOW + 10);
        set.written("s", 1, &no_receipt);
        assert_eq!(
            n.load(Ordering::SeqCst),
            PUSH_WINDOW + 1,
            "a written frame frees a slot"
        );
        assert_eq!(set.queued().0, PUSH_WINDOW + 9);
    }

    #[test]
    fn a_detached_subscription_keeps_a_mailbox_that_the_next_subscribe_takes() {
        let mut rng = StdRng::seed_from_u64(4);
        let sym = Arc::new(SymKey::random(&mut rng));
        let t = Topic([2; 4]);
        let n = Arc::new(AtomicUsize::new(0));
        let mut set = FilterSet::default();
        let c = crit(FilterKey::Symmetric(sym.clone()), vec![t]);
        set.install_push("ok".into(), c.clone(), "k1".into(), sink(&n, Push::Queued));
        set.install_push("full".into(), c.clone(), "k2".into(), sink(&n, Push::Full));
        set.install_push("gone".into(), c, "k3".into(), sink(&n, Push::Closed));
        let mut seq = 0;
        let mut stopped = deliver(
            &set,
            &pooled(Recipient::Symmetric(&sym), t, None, 1),
            false,
            &mut seq,
        );
        stopped.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            stopped,
            [
                (FilterId::from("full"), Push::Full),
                (FilterId::from("gone"), Push::Closed)
            ]
        );
        assert_eq!(n.load(Ordering::SeqCst), 3);
        assert!(set.detach("full").is_some());
        assert!(set.detach("gone").is_some());
        assert_eq!(set.queued(), (3, 2), "both mailboxes keep the message");
        // Nothing is thrown away while detached, and the same criteria take it back.
        deliver(
            &set,
            &pooled(Recipient::Symmetric(&sym), t, None, 2),
            false,
            &mut seq,
        );
        let m = Arc::new(AtomicUsize::new(0));
        assert!(
            set.attach("other", sink(&m, Push::Queued), &no_receipt)
                .is_err()
        );
        let id = set.attach("k3", sink(&m, Push::Queued), &no_receipt);
        assert_eq!(id.ok().as_deref(), Some("gone"));
        assert_eq!(
            m.load(Ordering::SeqCst),
            2,
            "the mailbox's two messages are pushed"
        );
        assert_eq!(
            set.retrieve("gone").err(),
            Some(PollError::NotFound),
            "not pollable"
        );
        assert_eq!(set.excess_mailboxes(), Vec::<String>::new());
    }

    #[test]
    fn geth_json_from_the_vectors_becomes_a_delivery_that_hands_it_back_unchanged() {
        let dir = std::env::var("STAPLES_VECTORS").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors").into()
        });
        let text = std::fs::read_to_string(format!("{dir}/whisper.json")).expect("vectors");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        let mut seen = 0;
        for group in ["symmetric", "asymmetric"] {
            for case in v[group].as_array().expect("cases") {
                let Some(json) = case["geth_json"].as_str() else {
                    continue;
                };
                let d = Delivered::from_geth_json(json).expect("geth's own JSON parses");
                assert_eq!(d.json, json);
                assert_eq!(d.json_for(true), json, "no carrier: nothing to keep");
                let parsed: serde_json::Value = serde_json::from_str(json).expect("json");
                assert_eq!(
                    hex0x(&d.message.hash.0),
                    parsed["hash"].as_str().expect("hash")
                );
                assert_eq!(
                    hex0x(&d.message.plaintext.payload),
                    parsed["payload"].as_str().expect("payload")
                );
                assert_eq!(
                    d.message.recipient.is_some(),
                    parsed.get("recipientPublicKey").is_some()
                );
                seen += 1;
            }
        }
        assert!(seen > 4, "only {seen} vectors");
        for bad in ["", "{}", r#"{"hash":"0x00","topic":"0x01020304"}"#, "[1]"] {
            assert!(Delivered::from_geth_json(bad).is_none(), "{bad}");
        }
    }

    /// A relay's envelope carrying its record of the legacy message `json` (a DAG message
    /// by `author`, sealed with `key` on the message's topic).
    fn bridged_envelope(json: &str, seed: u8, key: &SymKey) -> Pooled {
        let body = staples_protocol::bridged::encode(json).expect("a message");
        let topic = Delivered::from_geth_json(json).expect("json").message.topic;
        staples_envelope(&body, topic, seed, key)
    }

    /// An envelope carrying a Staples message (DAG carrier in its padding) by author
    /// `seed`, sealed with `key`.
    fn staples_envelope(body: &[u8], topic: Topic, seed: u8, key: &SymKey) -> Pooled {
        use staples_protocol::dag::{ChatId, Draft as DagDraft, encode_padding_with};
        let author = PrivateKey::from_bytes(&[seed; 32]).expect("key");
        let m = DagDraft {
            chat_id: ChatId::new([3; 32]),
            clock: 1,
            timestamp: 1,
            parents: vec![],
            ephemeral: false,
            body: body.to_vec(),
        }
        .sign(&author)
        .expect("signs");
        let padding = encode_padding_with(m.header(), &[]);
        sealed(body, Some(&padding), topic, seed, key)
    }

    fn sealed(body: &[u8], padding: Option<&[u8]>, topic: Topic, seed: u8, key: &SymKey) -> Pooled {
        let draft = Draft {
            topic,
            payload: body,
            padding,
            signer: None,
            ttl: 50,
            to: Recipient::Symmetric(key),
        };
        let envelope =
            wrap(&draft, 1000, &mut StdRng::seed_from_u64(u64::from(seed))).expect("wraps");
        Pooled {
            hash: envelope.hash(),
            pow: 0.5,
            envelope,
        }
    }

    #[test]
    fn a_legacy_message_reaches_each_filter_once_whichever_path_and_relay_brings_it() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/vectors/whisper.json"
        ))
        .expect("vectors");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        let json = v["symmetric"]
            .as_array()
            .expect("cases")
            .iter()
            .find_map(|c| c["geth_json"].as_str())
            .expect("a geth JSON vector")
            .to_string();
        let legacy = Delivered::from_geth_json(&json).expect("parses");
        let key = Arc::new(SymKey::from_password("relay test"));
        let topics = vec![legacy.message.topic];
        let mut set = FilterSet::default();
        set.install_poll(
            "f".into(),
            crit(FilterKey::Symmetric(key.clone()), topics.clone()),
        );
        set.install_poll("g".into(), crit(FilterKey::Symmetric(key.clone()), topics));
        let mut seq = 0;
        let mut take = |set: &FilterSet, routes: Vec<Route>| {
            let items = routes
                .into_iter()
                .map(|r| {
                    seq += 1;
                    (r, seq)
                })
                .collect();
            set.enqueue(items, &no_receipt)
        };
        // Filter f got it straight from Whisper (dual mode's mirror) and the app took it.
        let direct = set.route_to("f", Arc::new(legacy)).expect("room");
        take(&set, vec![direct]);
        assert_eq!(set.retrieve("f").expect("f").len(), 1);
        // Relay A's record arrives over Swarm: g gets the original JSON, f refuses it.
        let routes = set.route(&bridged_envelope(&json, 1, &key), false);
        assert_eq!(routes.len(), 1);
        assert_eq!(&*routes[0].filter, "g");
        assert_eq!(
            routes[0].msg.json, json,
            "the app sees what Whisper reported"
        );
        assert!(routes[0].msg.legacy);
        take(&set, routes);
        assert_eq!(set.retrieve("g").expect("g")[0].msg.json, json);
        // Relay B's record of the same message (another author, another DAG id): nobody.
        assert!(
            set.route(&bridged_envelope(&json, 2, &key), false)
                .is_empty()
        );
        assert_eq!(set.legacy_repeats(), 3);
        // After a restart the store's record keeps refusing it.
        let mut fresh = FilterSet::default();
        fresh.install_poll("f".into(), crit(FilterKey::Symmetric(key.clone()), vec![]));
        let hash = Delivered::from_geth_json(&json)
            .expect("json")
            .message
            .hash
            .0;
        fresh.restore_legacy("f", [hash]);
        assert!(
            fresh
                .route(&bridged_envelope(&json, 3, &key), false)
                .is_empty()
        );
        // A bridged record with a topic other than its envelope's is nobody's.
        let other = json.replacen(&hex0x(&hash), &hex0x(&[9; 32]), 1);
        let mut moved = bridged_envelope(&other, 4, &key);
        moved.envelope.topic = Topic([9, 9, 9, 9]);
        assert!(open_for(&moved, &FilterKey::Symmetric(key), false, false).is_none());
    }

    /// From a topic log, a plain envelope is a legacy arrival (its hash taken once ever
    /// per filter, so the relay's record of it is refused after it) and a Staples message
    /// (DAG carrier) is nobody's: the DAG path brings it.
    #[test]
    fn logged_envelopes_are_legacy_arrivals_and_staples_copies_are_skipped() {
        let key = Arc::new(SymKey::from_password("topic log test"));
        let topic = Topic([1, 2, 3, 4]);
        let plain = sealed(b"from a plain Whisper peer", None, topic, 9, &key);
        let mut set = FilterSet::default();
        set.install_poll(
            "f".into(),
            crit(FilterKey::Symmetric(key.clone()), vec![topic]),
        );
        let routes = set.route_logged(&plain);
        assert_eq!(routes.len(), 1);
        assert!(routes[0].msg.legacy);
        let items = routes.into_iter().map(|r| (r, 1)).collect();
        set.enqueue(items, &no_receipt);
        assert_eq!(set.retrieve("f").expect("f").len(), 1);
        assert!(set.had_legacy("f", &plain.hash), "remembered by hash");
        assert!(
            set.route_logged(&plain).is_empty(),
            "a repeat entry is dropped"
        );

        // A Staples message read from a log: skipped, whoever wrote it.
        let carrier = staples_envelope(b"from a Staples peer", topic, 5, &key);
        assert_eq!(
            set.route(&carrier, false).len(),
            1,
            "it opens for the filter"
        );
        assert!(set.route_logged(&carrier).is_empty());
    }
}
