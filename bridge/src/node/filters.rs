//! Message filters: what the app asked to receive, and the matching that feeds them.
//!
//! Mirrors go-ethereum v1.9.7 `Filters.NotifyWatchers` (reference §5.4): filters are indexed by
//! topic (a filter without topics sees every topic); an envelope is opened at most once per
//! key and later filters holding the same key reuse the result; `minPow` compares against the
//! envelope's PoW; `sig` compares the recovered signer; p2p envelopes reach only `allowP2P`
//! filters. A filter either buffers for polling (`shh_getFilterMessages` returns and clears,
//! deduplicated by envelope hash) or pushes to a subscription sink.
//!
//! Both outputs are bounded. A poll buffer that reaches [`MAX_POLL_BUFFER`] unread messages
//! stops buffering and the next poll reports the overflow and removes the filter; a sink that
//! reports itself full is removed and told why. Nothing is ever skipped silently.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use staples_protocol::crypto::{PrivateKey, PublicKey};
use staples_protocol::whisper::{
    EnvelopeHash, OpenKey, ReceivedMessage, SymKey, Topic, open_known,
};

use super::pool::Pooled;

/// Unread messages a polling filter holds before it is declared overflowed.
pub const MAX_POLL_BUFFER: usize = 10_000;

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
    /// Offers one message.
    fn push(&self, message: &Arc<Delivered>) -> Push;
    /// Called once when the node removes the subscription because it fell behind.
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

enum Output {
    Poll(Mutex<PollBuffer>),
    Push(Box<dyn Sink>),
}

#[derive(Default)]
struct PollBuffer {
    messages: Vec<Arc<Delivered>>,
    hashes: HashSet<EnvelopeHash>,
    overflowed: bool,
}

struct Filter {
    criteria: Criteria,
    output: Output,
}

/// Why a filter left the set during matching.
pub enum Removed {
    /// Its subscriber fell behind; [`Sink::fail`] must be called after the set is unlocked.
    Lagged(Box<dyn Sink>),
    /// Its subscriber went away.
    Closed,
}

/// All installed filters, indexed by topic.
#[derive(Default)]
pub struct FilterSet {
    filters: HashMap<String, Filter>,
    by_topic: HashMap<Topic, Vec<String>>,
    all_topics: Vec<String>,
}

impl FilterSet {
    /// Installs a polling filter under `id`.
    pub fn install_poll(&mut self, id: String, criteria: Criteria) {
        self.insert(id, criteria, Output::Poll(Mutex::default()));
    }

    /// Installs a subscription under `id`.
    pub fn install_push(&mut self, id: String, criteria: Criteria, sink: Box<dyn Sink>) {
        self.insert(id, criteria, Output::Push(sink));
    }

    /// Whether `id` is installed.
    pub fn contains(&self, id: &str) -> bool {
        self.filters.contains_key(id)
    }

    /// Removes a filter; false if it was not there.
    pub fn remove(&mut self, id: &str) -> bool {
        self.take(id).is_some()
    }

    /// Returns and clears a polling filter's messages (oldest first).
    pub fn retrieve(&mut self, id: &str) -> Result<Vec<Arc<Delivered>>, PollError> {
        let f = self.filters.get(id).ok_or(PollError::NotFound)?;
        let Output::Poll(buf) = &f.output else {
            // Subscriptions are not pollable: geth's ids for them are internal.
            return Err(PollError::NotFound);
        };
        let mut buf = buf.lock().unwrap_or_else(|p| p.into_inner());
        if buf.overflowed {
            drop(buf);
            self.remove(id);
            return Err(PollError::Overflowed);
        }
        buf.hashes.clear();
        Ok(std::mem::take(&mut buf.messages))
    }

    /// Number of filters.
    pub fn len(&self) -> usize {
        self.filters.len()
    }

    /// Whether no filter is installed.
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// Offers a new envelope to every candidate filter. Returns the subscriptions that must
    /// be removed (their ids and why); the caller removes them under a write lock.
    pub fn notify(&self, pooled: &Pooled, p2p: bool) -> Vec<String> {
        let mut opened: HashMap<[u8; 32], Option<Arc<Delivered>>> = HashMap::new();
        let mut drop_ids = Vec::new();
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
                .or_insert_with(|| open_for(pooled, &c.key))
                .clone();
            let Some(msg) = msg else { continue };
            if let Some(src) = &c.src {
                let signer = msg.message.plaintext.signature.as_ref().map(|(_, k)| k);
                if signer != Some(src) {
                    continue;
                }
            }
            match &f.output {
                Output::Poll(buf) => {
                    let mut buf = buf.lock().unwrap_or_else(|p| p.into_inner());
                    if buf.overflowed || buf.hashes.contains(&msg.message.hash) {
                        continue;
                    }
                    if buf.messages.len() >= MAX_POLL_BUFFER {
                        buf.overflowed = true;
                        continue;
                    }
                    buf.hashes.insert(msg.message.hash);
                    buf.messages.push(msg);
                }
                Output::Push(sink) => match sink.push(&msg) {
                    Push::Queued => {}
                    Push::Full | Push::Closed => drop_ids.push(id.clone()),
                },
            }
        }
        drop_ids
    }

    /// Removes a subscription found full or closed by [`FilterSet::notify`], returning what
    /// the caller must do about it.
    pub fn evict(&mut self, id: &str) -> Option<Removed> {
        match self.take(id)?.output {
            Output::Push(sink) => Some(Removed::Lagged(sink)),
            Output::Poll(_) => Some(Removed::Closed),
        }
    }

    fn insert(&mut self, id: String, criteria: Criteria, output: Output) {
        self.take(&id);
        let mut topics = criteria.topics.clone();
        topics.sort();
        topics.dedup();
        if topics.is_empty() {
            self.all_topics.push(id.clone());
        }
        for t in topics {
            self.by_topic.entry(t).or_default().push(id.clone());
        }
        self.filters.insert(id, Filter { criteria, output });
    }

    fn take(&mut self, id: &str) -> Option<Filter> {
        let f = self.filters.remove(id)?;
        self.all_topics.retain(|x| x != id);
        for t in &f.criteria.topics {
            if let Some(v) = self.by_topic.get_mut(t) {
                v.retain(|x| x != id);
                if v.is_empty() {
                    self.by_topic.remove(t);
                }
            }
        }
        Some(f)
    }
}

fn open_for(pooled: &Pooled, key: &FilterKey) -> Option<Arc<Delivered>> {
    let key = match key {
        FilterKey::Symmetric(k) => OpenKey::Symmetric(k),
        FilterKey::Asymmetric(k) => OpenKey::Asymmetric(k),
    };
    // geth reports the PoW computed on entry (adjusted for clock skew), not a fresh one.
    let message = open_known(&pooled.envelope, key, pooled.hash, pooled.pow).ok()?;
    let json = message.to_geth_json();
    Some(Arc::new(Delivered { message, json }))
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

    struct CountSink(Arc<AtomicUsize>, Push);
    impl Sink for CountSink {
        fn push(&self, _: &Arc<Delivered>) -> Push {
            self.0.fetch_add(1, Ordering::SeqCst);
            self.1
        }
        fn fail(&self, _: &str) {}
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
        for p in [&unsigned, &signed, &direct] {
            assert!(set.notify(p, false).is_empty());
        }
        assert!(
            set.notify(&pooled(Recipient::Symmetric(&sym), t, None, 4), true)
                .is_empty()
        );

        let count = |set: &mut FilterSet, id: &str| set.retrieve(id).expect("exists").len();
        assert_eq!(count(&mut set, "sym"), 2);
        assert_eq!(count(&mut set, "all"), 2);
        assert_eq!(count(&mut set, "other-topic"), 0);
        assert_eq!(count(&mut set, "wrong-key"), 0);
        assert_eq!(count(&mut set, "asym"), 1);
        assert_eq!(count(&mut set, "sig"), 1);
        assert_eq!(count(&mut set, "pow"), 0);
        assert_eq!(count(&mut set, "p2p"), 3, "p2p filters see both kinds");
        assert_eq!(count(&mut set, "sym"), 0, "retrieve clears");
        assert_eq!(set.retrieve("nope").err(), Some(PollError::NotFound));
    }

    #[test]
    fn duplicates_collapse_and_overflow_is_reported() {
        let mut rng = StdRng::seed_from_u64(3);
        let sym = Arc::new(SymKey::random(&mut rng));
        let t = Topic([1; 4]);
        let mut set = FilterSet::default();
        set.install_poll(
            "f".into(),
            crit(FilterKey::Symmetric(sym.clone()), vec![t, t]),
        );
        let p = pooled(Recipient::Symmetric(&sym), t, None, 1);
        set.notify(&p, false);
        set.notify(&p, false);
        assert_eq!(set.retrieve("f").expect("exists").len(), 1);
        for i in 0..=MAX_POLL_BUFFER as u64 {
            let mut p = p.clone_for_test();
            p.hash = EnvelopeHash([0; 32]);
            p.hash.0[..8].copy_from_slice(&i.to_be_bytes());
            set.notify(&p, false);
        }
        assert_eq!(set.retrieve("f").err(), Some(PollError::Overflowed));
        assert!(!set.contains("f"), "an overflowed filter is removed");
    }

    #[test]
    fn full_or_closed_sinks_are_reported_for_eviction() {
        let mut rng = StdRng::seed_from_u64(4);
        let sym = Arc::new(SymKey::random(&mut rng));
        let t = Topic([2; 4]);
        let n = Arc::new(AtomicUsize::new(0));
        let mut set = FilterSet::default();
        let c = crit(FilterKey::Symmetric(sym.clone()), vec![t]);
        set.install_push(
            "ok".into(),
            c.clone(),
            Box::new(CountSink(n.clone(), Push::Queued)),
        );
        set.install_push(
            "full".into(),
            c.clone(),
            Box::new(CountSink(n.clone(), Push::Full)),
        );
        set.install_push(
            "gone".into(),
            c,
            Box::new(CountSink(n.clone(), Push::Closed)),
        );
        let mut dropped = set.notify(&pooled(Recipient::Symmetric(&sym), t, None, 1), false);
        dropped.sort();
        assert_eq!(dropped, ["full", "gone"]);
        assert_eq!(n.load(Ordering::SeqCst), 3);
        assert!(matches!(set.evict("full"), Some(Removed::Lagged(_))));
        assert_eq!(set.len(), 2);
    }

    impl Pooled {
        fn clone_for_test(&self) -> Pooled {
            self.clone()
        }
    }
}
