//! Feed updates as the sidecar reads them (inboxes, rosters, contact records, topic logs):
//! whatever Bee returns for owner O, topic T, index i must be refused unless it is a
//! single-owner chunk signed by O with identifier keccak(T ‖ i). Two modes by the first
//! byte: raw bytes parsed against a fixed owner/topic/index; or the rest of the input as
//! the content of a real update at that place, then edited by the input's last bytes,
//! which must parse back to exactly that content or be refused.
#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use staples_protocol::crypto::{PrivateKey, keccak256};
use staples_protocol::swarm::chunk::Cac;
use staples_protocol::swarm::feed::{self, FeedTopic, FeedUpdate};
use staples_protocol_fuzz::{Format, mutate};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let key = PrivateKey::from_bytes(&keccak256(b"fuzz-feed-owner")).expect("valid key");
    let owner = key.public_key().eth_address();
    let topic = FeedTopic::from_string("fuzz");
    let index = u64::from(mode >> 1);
    if mode & 1 == 0 {
        if let Ok(u) = FeedUpdate::parse(rest, &owner, &topic, index) {
            assert_eq!(u.soc().owner(), &owner);
            assert_eq!(u.soc().id(), &feed::identifier(&topic, index));
            assert_eq!(u.soc().to_bytes(), rest, "an accepted update re-encodes");
        }
        return;
    }
    // Content up to a chunk, the rest (pairs) edits the signed update.
    let (content, edits) = rest.split_at(rest.len().min(4096));
    let Ok(cac) = Cac::new(content) else {
        return;
    };
    let update = feed::build_v2_update(&key, &topic, index, cac).to_bytes();
    let parsed = FeedUpdate::parse(&update, &owner, &topic, index).expect("our own update");
    assert_eq!(parsed.wrapped().payload(), content);
    // The same bytes at another index or under another owner are refused.
    assert!(FeedUpdate::parse(&update, &owner, &topic, index + 1).is_err());
    assert!(FeedUpdate::parse(&update, &[0xee; 20], &topic, index).is_err());
    let mut edited = update.clone();
    for pair in edits.chunks(2) {
        if let [pos, mask] = pair {
            let i = usize::from(*pos) * 7 % edited.len();
            edited[i] ^= mask;
        }
    }
    if let Ok(u) = FeedUpdate::parse(&edited, &owner, &topic, index) {
        assert_eq!(u.soc().owner(), &owner, "an edit cannot change the signer");
        // Only an edit that left the signed content whole may pass.
        assert_eq!(edited, update, "an edited update was accepted");
    }
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    mutate(data, size, max_size, seed, 0, Format::Raw, 6, passes)
});

/// The first parser: the raw update, or the edited real one, parses at its place.
fn passes(data: &[u8]) -> bool {
    let Some((&mode, rest)) = data.split_first() else {
        return false;
    };
    let key = PrivateKey::from_bytes(&keccak256(b"fuzz-feed-owner")).expect("valid key");
    let owner = key.public_key().eth_address();
    let topic = FeedTopic::from_string("fuzz");
    let index = u64::from(mode >> 1);
    if mode & 1 == 0 {
        return FeedUpdate::parse(rest, &owner, &topic, index).is_ok();
    }
    let (content, edits) = rest.split_at(rest.len().min(4096));
    let Ok(cac) = Cac::new(content) else {
        return false;
    };
    let mut edited = feed::build_v2_update(&key, &topic, index, cac).to_bytes();
    let len = edited.len();
    for pair in edits.chunks(2) {
        if let [pos, mask] = pair {
            edited[usize::from(*pos) * 7 % len] ^= mask;
        }
    }
    FeedUpdate::parse(&edited, &owner, &topic, index).is_ok()
}
