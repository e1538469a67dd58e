//! Property tests for `protocol::swarm`: round trips that must hold for any input.
//!
//! Case counts are kept low because every case hashes real chunks.

use std::collections::HashMap;

use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use staples_protocol::crypto::{PrivateKey, keccak256};
use staples_protocol::swarm::bytes_tree::{self, Redundancy};
use staples_protocol::swarm::chunk::Cac;
use staples_protocol::swarm::pss::{self, PssError, PssTopic, Targets};
use staples_protocol::swarm::soc::SingleOwnerChunk;

/// Content of `len` bytes from a seed, so proptest never has to shrink megabytes.
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; len];
    ChaCha20Rng::seed_from_u64(seed).fill_bytes(&mut data);
    data
}

fn node_key(seed: u64) -> PrivateKey {
    PrivateKey::from_bytes(&keccak256(seed.to_be_bytes())).expect("keccak output is a valid key")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn split_join_round_trip(len in prop_oneof![0usize..20_000, 0usize..(3 << 20)], seed: u64) {
        let data = content(len, seed);
        let split = bytes_tree::split(&data, Redundancy::None).expect("level none");
        prop_assert_eq!(split.span, len as u64);
        let store: HashMap<_, _> = split.chunks.iter().map(|c| (*c.address(), c.to_data())).collect();
        prop_assert_eq!(bytes_tree::join(&store, &split.root, len as u64), Ok(data));
    }

    #[test]
    fn trojan_wrap_unwrap_round_trip(
        msg in proptest::collection::vec(any::<u8>(), 0..=4000),
        topic in "[a-z]{0,12}",
        seed: u64,
        to_topic in any::<bool>(),
    ) {
        let topic = PssTopic::from_string(&topic);
        let key = node_key(seed);
        let pk = key.public_key();
        let recipient = if to_topic { None } else { Some(&pk) };
        let targets = Targets::new(&[[(seed % 256) as u8]]).expect("valid");
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let w = pss::wrap(&topic, &msg, recipient, &targets, 1 << 16, &mut rng).expect("mines");
        let got = pss::unwrap(&w.chunk.to_data(), &key, &[topic]).expect("opens");
        prop_assert_eq!(got.via_topic_key, to_topic);
        prop_assert_eq!(got.message, msg);
        let stranger = node_key(seed ^ 1);
        if !to_topic {
            prop_assert_eq!(pss::unwrap(&w.chunk.to_data(), &stranger, &[topic]), Err(PssError::NotForMe));
        }
    }

    #[test]
    fn soc_sign_parse_round_trip(
        id: [u8; 32],
        payload in proptest::collection::vec(any::<u8>(), 0..=4096),
        seed: u64,
    ) {
        let key = node_key(seed);
        let soc = SingleOwnerChunk::sign(&key, id, Cac::new(&payload).expect("fits"));
        let bytes = soc.to_bytes();
        let parsed = SingleOwnerChunk::parse_at(soc.address(), &bytes).expect("verifies");
        prop_assert_eq!(parsed.owner(), &key.public_key().eth_address());
        prop_assert_eq!(parsed.to_bytes(), bytes);
        prop_assert_eq!(parsed, soc);
    }
}
