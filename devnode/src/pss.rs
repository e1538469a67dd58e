//! PSS between virtual nodes, through real trojan chunks.
//!
//! A send wraps the message with [`staples_protocol::swarm::pss::wrap`] (encrypted to the
//! recipient, or to the topic-as-key when none is given) and mines the nonce until the
//! chunk address starts with one of the targets, as Bee's `pss.Send` does. The chunk then
//! goes where Swarm would push it: to every up node whose overlay shares the target's
//! prefix with the chunk address, or, when none does, to the up node closest to the
//! address by XOR distance. Each receiving node tries to open it with its PSS key (then
//! with each topic as key) for the topics its WebSocket clients subscribed to, exactly as
//! Bee's `TryUnwrap`, and hands the plaintext to those subscribers.
//!
//! Subscriber policy (bounded, never silent): every subscriber has a queue of
//! `Limits::pss_queue` messages. A subscriber whose queue is full when a message arrives
//! is disconnected (WebSocket close 1008, "subscriber too slow") instead of skipping the
//! message or blocking the sender; it learns of the gap and can resubscribe and catch up
//! from feeds. Taking the node down closes its subscribers with 1001 "going away".

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Bytes;
use rand_core::OsRng;
use staples_protocol::crypto::{PrivateKey, PublicKey};
use staples_protocol::swarm::pss::{self, PssError, PssTopic, Targets, Wrapped};
use tokio::sync::mpsc;

/// Nonce attempts per mining slice; the cancel flag is checked between slices.
const SLICE: u64 = 1 << 16;

/// Errors from sending.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Wrapping failed (message too long, bad topic key, ...).
    #[error("{0}")]
    Wrap(PssError),
    /// No nonce hit a target within the attempt budget.
    #[error("no nonce reached the targets in {attempts} attempts")]
    Exhausted {
        /// Attempts made.
        attempts: u64,
    },
    /// The client went away; mining stopped.
    #[error("send cancelled")]
    Cancelled,
}

/// Why a subscription ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// Its queue was full when a message arrived.
    Lagged,
    /// The node was taken down.
    NodeDown,
    /// The network is stopping.
    Stopped,
}

#[derive(Debug)]
struct Sub {
    id: u64,
    tx: mpsc::Sender<Bytes>,
    end: Arc<Mutex<Option<EndReason>>>,
}

#[derive(Debug)]
struct HubInner {
    open: bool,
    next_id: u64,
    subs: HashMap<PssTopic, Vec<Sub>>,
}

/// The PSS subscribers of one node.
///
/// A `std::sync::Mutex`, not an async one: delivery only does `try_send` under it and
/// never awaits, so it is never held across an `.await`.
#[derive(Debug)]
pub struct PssHub {
    inner: Mutex<HubInner>,
    capacity: usize,
}

/// One WebSocket client's subscription; unregisters itself when dropped.
#[derive(Debug)]
pub struct Subscription {
    topic: PssTopic,
    id: u64,
    hub: Arc<PssHub>,
    rx: mpsc::Receiver<Bytes>,
    end: Arc<Mutex<Option<EndReason>>>,
}

impl Subscription {
    /// The next message, or why there will be no more.
    pub async fn recv(&mut self) -> Result<Bytes, EndReason> {
        match self.rx.recv().await {
            Some(m) => Ok(m),
            None => Err(self
                .end
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .unwrap_or(EndReason::Stopped)),
        }
    }

    /// The subscribed topic.
    pub fn topic(&self) -> &PssTopic {
        &self.topic
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.remove(&self.topic, self.id);
    }
}

impl PssHub {
    /// A hub whose subscribers queue up to `capacity` messages.
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(HubInner {
                open: true,
                next_id: 0,
                subs: HashMap::new(),
            }),
            capacity: capacity.max(1),
        })
    }

    /// Subscribes to `topic`; `None` while the node is down.
    pub fn subscribe(self: &Arc<Self>, topic: PssTopic) -> Option<Subscription> {
        let (tx, rx) = mpsc::channel(self.capacity);
        let end = Arc::new(Mutex::new(None));
        let mut inner = self.lock();
        if !inner.open {
            return None;
        }
        let id = inner.next_id;
        inner.next_id += 1;
        inner.subs.entry(topic).or_default().push(Sub {
            id,
            tx,
            end: end.clone(),
        });
        Some(Subscription {
            topic,
            id,
            hub: self.clone(),
            rx,
            end,
        })
    }

    /// Topics with at least one subscriber.
    pub fn topics(&self) -> Vec<PssTopic> {
        self.lock().subs.keys().copied().collect()
    }

    /// Hands `message` to every subscriber of `topic`; returns how many took it.
    /// Subscribers whose queue is full are disconnected (see the module policy).
    pub fn deliver(&self, topic: &PssTopic, message: &Bytes) -> usize {
        let mut inner = self.lock();
        let Some(subs) = inner.subs.get_mut(topic) else {
            return 0;
        };
        let mut delivered = 0;
        subs.retain(|s| match s.tx.try_send(message.clone()) {
            Ok(()) => {
                delivered += 1;
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(topic = %topic, "pss subscriber too slow; disconnecting it");
                *s.end.lock().unwrap_or_else(PoisonError::into_inner) = Some(EndReason::Lagged);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        if subs.is_empty() {
            inner.subs.remove(topic);
        }
        delivered
    }

    /// Ends every subscription with `reason` and refuses new ones until [`Self::open`].
    pub fn close(&self, reason: EndReason) {
        let mut inner = self.lock();
        inner.open = false;
        for sub in inner.subs.values().flatten() {
            *sub.end.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason);
        }
        inner.subs.clear();
    }

    /// Accepts subscriptions again.
    pub fn open(&self) {
        self.lock().open = true;
    }

    /// Number of live subscriptions.
    pub fn subscriber_count(&self) -> usize {
        self.lock().subs.values().map(Vec::len).sum()
    }

    fn remove(&self, topic: &PssTopic, id: u64) {
        let mut inner = self.lock();
        if let Some(subs) = inner.subs.get_mut(topic) {
            subs.retain(|s| s.id != id);
            if subs.is_empty() {
                inner.subs.remove(topic);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Wraps and mines a trojan chunk (blocking, CPU-bound: run it off the async workers).
///
/// Mining runs in slices of 2^16 attempts, each with a fresh ephemeral key and nonce, so
/// `cancel` (set when the client disconnects) stops it within a slice.
pub fn mine(
    topic: &PssTopic,
    message: &[u8],
    recipient: Option<&PublicKey>,
    targets: &Targets,
    max_attempts: u64,
    cancel: &AtomicBool,
) -> Result<Wrapped, SendError> {
    let mut spent = 0u64;
    while spent < max_attempts {
        if cancel.load(Ordering::Relaxed) {
            return Err(SendError::Cancelled);
        }
        let slice = SLICE.min(max_attempts - spent);
        match pss::wrap(topic, message, recipient, targets, slice, &mut OsRng) {
            Ok(mut w) => {
                w.attempts += spent;
                return Ok(w);
            }
            Err(PssError::MiningExhausted { .. }) => spent += slice,
            Err(e) => return Err(SendError::Wrap(e)),
        }
    }
    Err(SendError::Exhausted { attempts: spent })
}

/// Which nodes a trojan chunk at `address` reaches: the up nodes whose overlay shares
/// its first `prefix_len` bytes, else the up node closest by XOR distance.
pub fn route(address: &[u8; 32], prefix_len: usize, overlays: &[([u8; 32], bool)]) -> Vec<usize> {
    let prefix = prefix_len.min(32);
    let matching: Vec<usize> = overlays
        .iter()
        .enumerate()
        .filter(|(_, (o, up))| *up && o[..prefix] == address[..prefix])
        .map(|(i, _)| i)
        .collect();
    if !matching.is_empty() {
        return matching;
    }
    overlays
        .iter()
        .enumerate()
        .filter(|(_, (_, up))| *up)
        .min_by_key(|(_, (o, _))| xor_distance(o, address))
        .map(|(i, _)| vec![i])
        .unwrap_or_default()
}

/// Opens trojan chunk `data` with `key` for the topics subscribed on `hub` and delivers
/// the message; returns the topic it was for, if any.
pub fn receive(data: &[u8], key: &PrivateKey, hub: &PssHub) -> Option<PssTopic> {
    let topics = hub.topics();
    if topics.is_empty() {
        return None;
    }
    match pss::unwrap(data, key, &topics) {
        Ok(opened) => {
            hub.deliver(&opened.topic, &Bytes::from(opened.message));
            Some(opened.topic)
        }
        Err(_) => None,
    }
}

fn xor_distance(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    std::array::from_fn(|i| a[i] ^ b[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_disconnects_the_subscriber() {
        let hub = PssHub::new(2);
        let t = PssTopic::from_string("t");
        let mut sub = hub.subscribe(t).expect("open");
        let m = Bytes::from_static(b"m");
        assert_eq!(hub.deliver(&t, &m), 1);
        assert_eq!(hub.deliver(&t, &m), 1);
        assert_eq!(hub.deliver(&t, &m), 0, "third message overflows");
        assert_eq!(hub.subscriber_count(), 0);
        assert_eq!(sub.recv().await, Ok(m.clone()));
        assert_eq!(sub.recv().await, Ok(m));
        assert_eq!(sub.recv().await, Err(EndReason::Lagged));
    }

    #[tokio::test]
    async fn closing_ends_subscriptions_and_dropping_unregisters() {
        let hub = PssHub::new(4);
        let t = PssTopic::from_string("t");
        let a = hub.subscribe(t).expect("open");
        let mut b = hub.subscribe(t).expect("open");
        assert_eq!(hub.subscriber_count(), 2);
        drop(a);
        assert_eq!(hub.subscriber_count(), 1);
        hub.close(EndReason::NodeDown);
        assert_eq!(b.recv().await, Err(EndReason::NodeDown));
        assert!(hub.subscribe(t).is_none());
        hub.open();
        assert!(hub.subscribe(t).is_some());
    }

    #[test]
    fn routing_prefers_prefix_matches_then_the_closest_up_node() {
        let mut a = [0u8; 32];
        a[0] = 0xab;
        let o = |b0: u8, b1: u8| {
            let mut x = [0u8; 32];
            x[0] = b0;
            x[1] = b1;
            x
        };
        let nodes = [(o(0xab, 1), true), (o(0xab, 2), true), (o(0x00, 0), true)];
        assert_eq!(route(&a, 1, &nodes), vec![0, 1]);
        let nodes = [(o(0xab, 1), false), (o(0xa0, 0), true), (o(0x00, 0), true)];
        assert_eq!(route(&a, 1, &nodes), vec![1], "down nodes are skipped");
        assert_eq!(route(&a, 1, &[(o(1, 1), false)]), Vec::<usize>::new());
    }

    #[test]
    fn mined_chunks_hit_a_target_and_open_for_the_recipient() {
        let key = PrivateKey::from_bytes(&[3; 32]).expect("key");
        let topic = PssTopic::from_string("chat");
        let targets = Targets::parse("ab").expect("targets");
        let w = mine(
            &topic,
            b"hi",
            Some(&key.public_key()),
            &targets,
            1 << 20,
            &AtomicBool::new(false),
        )
        .expect("mined");
        assert_eq!(w.chunk.address().as_bytes()[0], 0xab);
        let hub = PssHub::new(4);
        let sub = hub.subscribe(topic).expect("open");
        assert_eq!(receive(&w.chunk.to_data(), &key, &hub), Some(topic));
        drop(sub);
        assert_eq!(
            mine(
                &topic,
                b"hi",
                None,
                &targets,
                1 << 20,
                &AtomicBool::new(true)
            ),
            Err(SendError::Cancelled)
        );
    }
}
