//! Property tests of `protocol::chat`: PSS frames, contact records, roster entries and
//! sealing round-trip for any field values, and refuse any single-byte change.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use staples_protocol::chat::{ContactRecord, Frame, FrameBody, IndexEntry, RosterEntry, seal};
use staples_protocol::crypto::PrivateKey;
use staples_protocol::dag::ChatId;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn key() -> impl Strategy<Value = PrivateKey> {
    any::<[u8; 32]>().prop_filter_map("valid scalar", |b| PrivateKey::from_bytes(&b).ok())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn frames_round_trip(chat in any::<[u8; 32]>(), body in proptest::collection::vec(any::<u8>(), 1..5000), r in any::<[u8; 32]>()) {
        let f = Frame::for_message(ChatId::new(chat), &body, r);
        let bytes = f.encode();
        prop_assert!(bytes.len() <= staples_protocol::swarm::pss::MAX_PAYLOAD_SIZE);
        prop_assert_eq!(&Frame::decode(&bytes).unwrap(), &f);
        if let FrameBody::Inline(b) = &f.body {
            prop_assert_eq!(b, &body);
        }
    }

    #[test]
    fn contact_records_round_trip(node in key(), pss in key(), overlay in any::<[u8; 32]>(), ts in any::<u64>()) {
        let rec = ContactRecord { node_key: node.public_key(), overlay, pss_key: pss.public_key(), timestamp_ms: ts };
        prop_assert_eq!(ContactRecord::decode(&rec.encode()).unwrap(), rec);
    }

    #[test]
    fn roster_entries_verify_only_unchanged(node in key(), pss in key(), overlay in any::<[u8; 32]>(),
        topic in any::<[u8; 4]>(), ts in any::<u64>(), chat in any::<[u8; 32]>(), features in any::<u8>(),
        flip in any::<prop::sample::Index>()) {
        let chat = ChatId::new(chat);
        let e = RosterEntry { topic, node_key: node.public_key(), overlay, pss_key: pss.public_key(), timestamp_ms: ts, features };
        let mut bytes = e.sign(&chat, &node);
        prop_assert_eq!(RosterEntry::verify(&chat, &bytes).unwrap(), e);
        let i = flip.index(bytes.len());
        bytes[i] ^= 0x01;
        prop_assert!(RosterEntry::verify(&chat, &bytes).is_err());
    }

    #[test]
    fn index_entries_verify_only_unchanged_and_only_in_their_chat(node in key(), inbox_index in any::<u64>(),
        ts in any::<u64>(), chat in any::<[u8; 32]>(), other in any::<[u8; 32]>(), flip in 0usize..122) {
        let id = ChatId::new(chat);
        let e = IndexEntry { node_key: node.public_key(), inbox_index, timestamp_ms: ts };
        let mut bytes = e.sign(&id, &node);
        prop_assert_eq!(IndexEntry::verify(&id, &bytes).unwrap(), e);
        if other != chat {
            prop_assert!(IndexEntry::verify(&ChatId::new(other), &bytes).is_err());
        }
        bytes[flip] ^= 0x01;
        prop_assert!(IndexEntry::verify(&id, &bytes).is_err());
    }

    #[test]
    fn sealing_round_trips_and_detects_tampering(k in any::<[u8; 32]>(), nonce in any::<[u8; 12]>(),
        data in proptest::collection::vec(any::<u8>(), 0..4068), flip in any::<prop::sample::Index>()) {
        let sealed = seal::seal(&k, &nonce, &data);
        prop_assert_eq!(sealed.len(), data.len() + seal::OVERHEAD);
        prop_assert_eq!(seal::open(&k, &sealed).unwrap(), data);
        let mut bad = sealed.clone();
        let i = flip.index(bad.len());
        bad[i] ^= 0x80;
        prop_assert!(seal::open(&k, &bad).is_err());
    }
}
