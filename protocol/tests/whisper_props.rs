//! Property tests for the Whisper codec: round trips over random inputs, and parsers that
//! never panic on arbitrary bytes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use staples_protocol::bridged;
use staples_protocol::crypto::PrivateKey;
use staples_protocol::whisper::{
    Draft, Envelope, OpenKey, Recipient, SymKey, Topic, ecies, json, message, open, wrap,
};

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn wrap_then_open_returns_the_input(
        payload in proptest::collection::vec(any::<u8>(), 0..2048),
        padding in proptest::option::of(proptest::collection::vec(any::<u8>(), 1..300)),
        signed in any::<bool>(),
        asymmetric in any::<bool>(),
        seed in any::<u64>(),
        topic in any::<[u8; 4]>(),
        ttl in 1u32..100_000,
        now in any::<u32>(),
    ) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let signer = PrivateKey::random(&mut rng);
        let recipient = PrivateKey::random(&mut rng);
        let recipient_pub = recipient.public_key();
        let sym = SymKey::random(&mut rng);
        let (to, key) = if asymmetric {
            (Recipient::Asymmetric(&recipient_pub), OpenKey::Asymmetric(&recipient))
        } else {
            (Recipient::Symmetric(&sym), OpenKey::Symmetric(&sym))
        };
        let draft = Draft {
            topic: Topic(topic),
            payload: &payload,
            padding: padding.as_deref(),
            signer: signed.then_some(&signer),
            ttl,
            to,
        };
        let env = wrap(&draft, now, &mut rng).unwrap();
        let wire = env.encode();
        let back = Envelope::decode(&wire).unwrap();
        prop_assert_eq!(&back, &env);
        let msg = open(&back, key).unwrap();
        prop_assert_eq!(&msg.plaintext.payload, &payload);
        if let Some(p) = &padding {
            prop_assert_eq!(&msg.plaintext.padding, p);
        } else {
            // Default padding: the whole plaintext is a multiple of 256.
            let total = 1 + message::size_field_len(payload.len()) + payload.len()
                + msg.plaintext.padding.len() + if signed { 65 } else { 0 };
            prop_assert_eq!(total % 256, 0);
        }
        prop_assert_eq!(msg.plaintext.signature.as_ref().map(|s| s.1), signed.then(|| signer.public_key()));
        prop_assert_eq!(msg.topic, Topic(topic));
        prop_assert_eq!(msg.sent, now);

        // geth's JSON for it parses back to the same message, but for the signature
        // bytes, which the JSON does not carry.
        let parsed = json::parse_geth_json(&msg.to_geth_json()).unwrap();
        prop_assert_eq!(&parsed.plaintext.payload, &msg.plaintext.payload);
        prop_assert_eq!(&parsed.plaintext.padding, &msg.plaintext.padding);
        prop_assert!(parsed.plaintext.signature.is_none());
        prop_assert_eq!(
            (parsed.topic, parsed.ttl, parsed.sent, parsed.hash, parsed.recipient),
            (msg.topic, msg.ttl, msg.sent, msg.hash, msg.recipient)
        );
        // Go's float formatting keeps 17 significant digits at most.
        prop_assert!((parsed.pow - msg.pow).abs() <= msg.pow.abs() * 1e-15);

        // A relay's record of it (public chats: symmetric only) names the same message,
        // its signer and its legacy id; asymmetric messages are refused.
        let json = msg.to_geth_json();
        match bridged::encode(&json) {
            Ok(body) => {
                prop_assert!(!asymmetric);
                let b = bridged::decode(&body).unwrap().unwrap();
                prop_assert_eq!(&b.json, &json);
                prop_assert_eq!(b.signer, signed.then(|| signer.public_key()));
                prop_assert_eq!(b.legacy_id, bridged::legacy_id(&msg.hash.0));
            }
            Err(e) => {
                prop_assert!(asymmetric);
                prop_assert_eq!(e, bridged::BridgedError::Asymmetric);
            }
        }
    }

    #[test]
    fn geth_json_parsing_never_panics(s in ".{0,300}", bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = json::parse_geth_json(&s);
        let _ = json::parse_geth_json(&String::from_utf8_lossy(&bytes));
        let _ = bridged::decode(&[bridged::MAGIC.as_slice(), &bytes].concat());
        let _ = bridged::decode(&[bridged::MAGIC.as_slice(), s.as_bytes()].concat());
    }

    #[test]
    fn envelope_round_trips(
        expiry in any::<u32>(), ttl in any::<u32>(), topic in any::<[u8; 4]>(),
        data in proptest::collection::vec(any::<u8>(), 0..600), nonce in any::<u64>(),
    ) {
        let env = Envelope { expiry, ttl, topic: Topic(topic), data, nonce };
        let wire = env.encode();
        prop_assert_eq!(Envelope::decode(&wire).unwrap(), env);
    }

    #[test]
    fn decoders_never_panic_and_valid_envelopes_reencode_exactly(
        bytes in proptest::collection::vec(any::<u8>(), 0..300)
    ) {
        if let Ok(env) = Envelope::decode(&bytes) {
            prop_assert_eq!(env.encode(), bytes.clone());
        }
        let _ = message::parse(&bytes);
        let key = PrivateKey::from_bytes(&[7; 32]).unwrap();
        let _ = ecies::decrypt(&key, &bytes);
        let _ = SymKey::from_bytes(&[7; 32]).unwrap().decrypt(&bytes);
    }

    #[test]
    fn parse_of_built_plaintext_returns_its_parts(
        payload in proptest::collection::vec(any::<u8>(), 0..70_000),
        padding in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let raw = message::build(&payload, &padding, None).unwrap();
        let p = message::parse(&raw).unwrap();
        prop_assert_eq!(p.payload, payload);
        prop_assert_eq!(p.padding, padding);
    }
}
