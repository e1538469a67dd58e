//! Property tests of the DAG message codec, the Whisper padding carrier, and the inbox
//! page format with its writer and reader.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashMap};

use proptest::prelude::*;
use staples_protocol::crypto::{PrivateKey, keccak256};
use staples_protocol::dag::{
    Align, ChatId, Draft, MessageId, SignedMessage, app_padding, decode_padding, encode_padding,
    encode_padding_with,
};
use staples_protocol::inbox::{
    Entry, InboxReader, InboxWriter, Page, ReaderEvent, SwarmRef, bundle,
};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn draft() -> impl Strategy<Value = Draft> {
    (
        any::<[u8; 32]>(),
        1u64..,
        any::<u64>(),
        proptest::collection::btree_set(any::<[u8; 32]>(), 0..=8),
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..600),
    )
        .prop_map(|(chat, clock, timestamp, parents, ephemeral, body)| Draft {
            chat_id: ChatId::new(chat),
            clock,
            timestamp,
            parents: parents
                .into_iter()
                .map(|p| MessageId::from_slice(&p).unwrap())
                .collect(),
            ephemeral,
            body,
        })
}

fn post(n: u64) -> Entry {
    Entry {
        message_id: MessageId::from_slice(&keccak256(n.to_be_bytes())).unwrap(),
        reference: keccak256((n | 1 << 63).to_be_bytes()),
        clock: 1_000 + 3 * n,
    }
}

/// `n` posts through a writer; every published version with its (stand-in) reference.
fn publish(n: u64) -> Vec<(SwarmRef, Vec<u8>)> {
    let mut w = InboxWriter::new(ChatId::new([5; 32]));
    (0..n)
        .map(|i| {
            let bytes = w.append(post(i)).unwrap().encode();
            let r = keccak256(&bytes);
            w.confirm(i, r).unwrap();
            (r, bytes)
        })
        .collect()
}

proptest! {
    #![proptest_config(config())]
    #[test]
    fn page_bundles_round_trip_and_refuse_any_cut(
        messages in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 0..=55),
        cut in any::<prop::sample::Index>(),
    ) {
        let b = bundle::encode(&messages).expect("55 small messages fit");
        let back = bundle::decode(&b).expect("decodes");
        prop_assert_eq!(back.len(), messages.len());
        for (a, m) in back.iter().zip(&messages) {
            prop_assert_eq!(*a, m.as_slice());
        }
        let at = cut.index(b.len());
        prop_assert!(bundle::decode(&b[..at]).is_err());
    }


    #[test]
    fn messages_round_trip_through_protobuf_and_whisper_padding(
        d in draft(),
        signed in any::<bool>(),
    ) {
        let key = PrivateKey::from_bytes(&keccak256(b"prop")).unwrap();
        let m = d.sign(&key).unwrap();
        let bytes = m.encode();
        prop_assert_eq!(SignedMessage::decode(&bytes).unwrap(), m.clone());

        let payload_len = m.body().len();
        let padding = encode_padding(m.header(), Align::Geth { payload_len, signed });
        let size_field = if payload_len < 256 { 1 } else { 2 };
        let total = 1 + size_field + payload_len + padding.len() + if signed { 65 } else { 0 };
        prop_assert_eq!(total % 256, 0);
        let header = decode_padding(&padding).unwrap().unwrap();
        let back = header.with_body(m.body().to_vec()).unwrap();
        prop_assert_eq!(back.id(), m.id());
        prop_assert_eq!(back, m);
    }

    #[test]
    fn the_apps_padding_rides_behind_the_header_unchanged(
        d in draft(),
        filler in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let key = PrivateKey::from_bytes(&keccak256(b"prop")).unwrap();
        let m = d.sign(&key).unwrap();
        let padding = encode_padding_with(m.header(), &filler);
        prop_assert_eq!(app_padding(&padding), Some(&filler[..]));
        let header = decode_padding(&padding).unwrap().unwrap();
        prop_assert_eq!(header.with_body(m.body().to_vec()).unwrap(), m);
    }

    #[test]
    fn pages_round_trip(n in 1u64..130) {
        for (_, bytes) in publish(n) {
            let page = Page::decode(&bytes).unwrap();
            prop_assert_eq!(page.encode(), bytes);
        }
    }

    #[test]
    fn reader_lists_exactly_the_new_indexes_newest_first(
        n in 1u64..200,
        known_share in 0.0f64..1.0,
        stale_first in any::<bool>(),
    ) {
        let versions = publish(n);
        let store: HashMap<SwarmRef, Vec<u8>> = versions.iter().cloned().collect();
        let known = (n as f64 * known_share) as u64;
        let mut r = InboxReader::new(ChatId::new([5; 32]));
        let mut listed = Vec::new();
        let read = |r: &mut InboxReader, at: u64, listed: &mut Vec<u64>| {
            let (href, hbytes) = &versions[at as usize];
            let result = r.handle_latest(at, *href, hbytes);
            let mut fetches = 0;
            while let Some(ev) = r.poll_event() {
                match ev {
                    ReaderEvent::Entry(e) => listed.push(e.index),
                    ReaderEvent::FetchPage(p) => {
                        fetches += 1;
                        r.handle_page(p, &store[&p]).unwrap();
                    }
                    ReaderEvent::Skipped { .. } => panic!("an honest chain skips nothing"),
                    ReaderEvent::Done { .. } => {}
                }
            }
            (result, fetches)
        };
        if known > 0 {
            read(&mut r, known - 1, &mut listed).0.unwrap();
            listed.clear();
        }
        if stale_first && known > 1 {
            // A stale lookup changes nothing.
            prop_assert!(read(&mut r, known / 2 - 1, &mut listed).0.is_err() || known / 2 == known - 1);
        }
        let (result, fetches) = read(&mut r, n - 1, &mut listed);
        result.unwrap();
        let want: Vec<u64> = (known..n).rev().collect();
        prop_assert_eq!(&listed, &want);
        // One sequential fetch per page beyond the head page, no more.
        let pages = |i: u64| i / 55;
        let expected_fetches = if known == n { 0 } else { pages(n - 1) - pages(known) };
        prop_assert_eq!(fetches as u64, expected_fetches);
        let unique: BTreeSet<u64> = listed.iter().copied().collect();
        prop_assert_eq!(unique.len(), listed.len());
    }
}
