//! Property tests of the causal buffer, and a small simulated chat with a virtual clock.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use proptest::prelude::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use staples_protocol::crypto::{PrivateKey, keccak256};
use staples_protocol::dag::{
    Align, Causal, CausalBuffer, ChatId, Delivery, Draft, Heads, LamportClock, Limits, MessageId,
    SignedMessage, decode_padding, encode_padding,
};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct M {
    id: MessageId,
    clock: u64,
    parents: Vec<MessageId>,
}

impl Causal for M {
    fn id(&self) -> MessageId {
        self.id
    }
    fn clock(&self) -> u64 {
        self.clock
    }
    fn parents(&self) -> &[MessageId] {
        &self.parents
    }
    fn ephemeral(&self) -> bool {
        false
    }
    fn size(&self) -> usize {
        64
    }
}

fn id(n: usize) -> MessageId {
    MessageId::from_slice(&keccak256((n as u64).to_be_bytes())).unwrap()
}

/// A random DAG: message i has 0..=4 distinct parents among the 12 messages before it
/// (message 0 and a few others are roots), and clock i + 1.
fn dag(n: usize, seed: u64) -> Vec<M> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let k = rng.gen_range(0..=4usize).min(i);
            let mut parents = BTreeSet::new();
            while parents.len() < k {
                parents.insert(i - rng.gen_range(1..=12usize.min(i)));
            }
            M {
                id: id(i),
                clock: i as u64 + 1,
                parents: parents.into_iter().map(id).collect(),
            }
        })
        .collect()
}

/// Arrival order: every message once, some twice, shuffled.
fn arrivals(msgs: &[M], seed: u64) -> Vec<M> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0xdead);
    let mut out: Vec<M> = msgs.to_vec();
    for m in msgs {
        if rng.gen_bool(0.2) {
            out.push(m.clone());
        }
    }
    out.shuffle(&mut rng);
    out
}

fn buffer(limits: Limits) -> CausalBuffer<M> {
    CausalBuffer::new(limits, &mut ChaCha20Rng::seed_from_u64(3))
}

fn drain(b: &mut CausalBuffer<M>, out: &mut Vec<Delivery<M>>) {
    while let Some(d) = b.poll_deliverable() {
        out.push(d);
    }
    while b.poll_wanted().is_some() {}
}

/// Every delivery comes after its parents that were delivered at all, and none twice.
fn assert_causal(out: &[Delivery<M>]) {
    let mut seen = HashSet::new();
    let positions: HashMap<MessageId, usize> = out
        .iter()
        .enumerate()
        .map(|(i, d)| (d.item.id, i))
        .collect();
    for (i, d) in out.iter().enumerate() {
        assert!(seen.insert(d.item.id), "delivered twice");
        for p in &d.item.parents {
            if let Some(&pos) = positions.get(p) {
                assert!(pos < i, "child delivered before its parent");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_message_once_and_after_its_parents(n in 1usize..250, seed in any::<u64>()) {
        let msgs = dag(n, seed);
        let mut b = buffer(Limits::default());
        let mut out = Vec::new();
        for m in arrivals(&msgs, seed) {
            b.insert(m, 0).unwrap();
            drain(&mut b, &mut out);
        }
        prop_assert_eq!(out.len(), n);
        assert_causal(&out);
        prop_assert!(out.iter().all(|d| d.gap_parents.is_empty() && !d.late));
        prop_assert_eq!((b.pending_len(), b.missing_len()), (0, 0));
        prop_assert!(b.poll_gap().is_none() && b.poll_rejected().is_none());
    }

    #[test]
    fn gap_deadline_releases_the_rest_and_reports_exactly_the_removed(
        n in 2usize..200,
        seed in any::<u64>(),
        removed_share in 0.05f64..0.5,
    ) {
        let msgs = dag(n, seed);
        let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 1);
        let removed: BTreeSet<MessageId> =
            msgs.iter().filter(|_| rng.gen_bool(removed_share)).map(|m| m.id).collect();
        let present: Vec<M> = msgs.iter().filter(|m| !removed.contains(&m.id)).cloned().collect();
        // Removed ids that some present message names: those, and only those, are gaps.
        let named: BTreeSet<MessageId> = present
            .iter()
            .flat_map(|m| m.parents.iter().copied())
            .filter(|p| removed.contains(p))
            .collect();

        let limits = Limits { gap_deadline_ms: 10_000, ..Limits::default() };
        let mut b = buffer(limits);
        let mut out = Vec::new();
        for (t, m) in arrivals(&present, seed).into_iter().enumerate() {
            b.insert(m, t as u64).unwrap();
            drain(&mut b, &mut out);
        }
        // Early wake-ups are allowed (stale entries), missed deadlines are not.
        prop_assert!(named.is_empty() || b.poll_timeout().is_some());
        b.handle_timeout(n as u64 * 2 + 10_000);
        drain(&mut b, &mut out);

        prop_assert_eq!(out.len(), present.len());
        assert_causal(&out);
        let gaps: BTreeSet<MessageId> = std::iter::from_fn(|| b.poll_gap()).map(|g| g.id).collect();
        prop_assert_eq!(&gaps, &named);
        for d in &out {
            let mut want: Vec<MessageId> =
                d.item.parents.iter().filter(|p| removed.contains(p)).copied().collect();
            want.sort_unstable();
            prop_assert_eq!(&d.gap_parents, &want);
        }
        prop_assert_eq!((b.pending_len(), b.missing_len()), (0, 0));
    }

    #[test]
    fn a_restart_at_any_point_neither_loses_nor_repeats(
        n in 1usize..150,
        seed in any::<u64>(),
        cut in 0.0f64..1.0,
    ) {
        let msgs = dag(n, seed);
        let order = arrivals(&msgs, seed);
        let cut = (order.len() as f64 * cut) as usize;
        let mut b = buffer(Limits::default());
        let mut out = Vec::new();
        for m in order[..cut].iter().cloned() {
            b.insert(m, 0).unwrap();
            drain(&mut b, &mut out);
        }
        let json = serde_json::to_string(&b).unwrap();
        let mut b: CausalBuffer<M> = serde_json::from_str(&json).unwrap();
        for m in order[cut..].iter().cloned() {
            b.insert(m, 0).unwrap();
            drain(&mut b, &mut out);
        }
        prop_assert_eq!(out.len(), n);
        assert_causal(&out);
    }
}

/// In-flight copies: (arrival time, recipient, sequence) → (Whisper payload, padding).
type Wire = BTreeMap<(u64, usize, u64), (Vec<u8>, Vec<u8>)>;

/// One peer of the simulated chat.
struct Peer {
    key: PrivateKey,
    clock: LamportClock,
    heads: Heads,
    buffer: CausalBuffer<SignedMessage>,
    shown: Vec<SignedMessage>,
}

impl Peer {
    fn deliver_all(&mut self) {
        while let Some(d) = self.buffer.poll_deliverable() {
            let m = d.item;
            self.heads
                .on_delivered(m.id(), m.clock(), m.parents(), m.ephemeral(), d.late);
            self.shown.push(m);
        }
        while self.buffer.poll_wanted().is_some() {}
    }
}

#[test]
fn simulated_chat_converges_to_one_causal_total_order() {
    let chat = ChatId::new(keccak256(b"#staples"));
    let mut rng = ChaCha20Rng::seed_from_u64(2024);
    let mut peers: Vec<Peer> = (0..3)
        .map(|i| Peer {
            key: PrivateKey::from_bytes(&keccak256(format!("peer-{i}"))).unwrap(),
            clock: LamportClock::new(),
            heads: Heads::default(),
            buffer: CausalBuffer::new(Limits::default(), &mut rng),
            shown: Vec::new(),
        })
        .collect();
    // In-flight copies: (arrival time, recipient, bytes); every copy is delayed at random
    // and some are duplicated. Messages travel as Whisper payload + padding carrier.
    let mut wire: Wire = BTreeMap::new();
    let mut seq = 0u64;
    let mut now = 1_700_000_000_000u64;
    for _round in 0..60 {
        now += rng.gen_range(0..50);
        let author = rng.gen_range(0..peers.len());
        let p = &mut peers[author];
        let draft = Draft {
            chat_id: chat,
            clock: p.clock.tick(now),
            timestamp: now,
            parents: p.heads.select(),
            ephemeral: false,
            body: format!("message {seq}").into_bytes(),
        };
        let m = draft.sign(&p.key).unwrap();
        let padding = encode_padding(
            m.header(),
            Align::Geth {
                payload_len: m.body().len(),
                signed: false,
            },
        );
        p.buffer.insert(m.clone(), now).unwrap();
        p.deliver_all();
        for to in 0..peers.len() {
            if to == author {
                continue;
            }
            for _copy in 0..rng.gen_range(1..=2) {
                seq += 1;
                let at = now + rng.gen_range(0..400);
                wire.insert((at, to, seq), (m.body().to_vec(), padding.clone()));
            }
        }
        // Deliver whatever is due.
        let due: Vec<_> = wire.range(..(now, 0, 0)).map(|(k, _)| *k).collect();
        for k in due {
            let (payload, padding) = wire.remove(&k).unwrap();
            receive(&mut peers[k.1], payload, &padding, now);
        }
    }
    for ((_, to, _), (payload, padding)) in std::mem::take(&mut wire) {
        receive(&mut peers[to], payload, &padding, now + 1000);
    }

    let reference: Vec<_> = {
        let mut v: Vec<_> = peers[0].shown.iter().map(|m| m.order_key()).collect();
        v.sort();
        v
    };
    assert_eq!(reference.len(), 60);
    for p in &peers {
        let mut keys: Vec<_> = p.shown.iter().map(|m| m.order_key()).collect();
        keys.sort();
        assert_eq!(keys, reference, "same messages, same total order");
        // The display order is a topological order: parents sort before children.
        let rank: HashMap<MessageId, usize> =
            keys.iter().enumerate().map(|(i, k)| (k.id, i)).collect();
        for m in &p.shown {
            for parent in m.parents() {
                assert!(rank[parent] < rank[&m.id()]);
            }
        }
        assert_eq!(p.buffer.pending_len(), 0);
    }
}

fn receive(peer: &mut Peer, payload: Vec<u8>, padding: &[u8], now: u64) {
    let header = decode_padding(padding).unwrap().expect("staples padding");
    let m = header.with_body(payload).unwrap();
    peer.clock.observe(m.clock(), now).unwrap();
    peer.buffer.insert(m, now).unwrap();
    peer.deliver_all();
}
