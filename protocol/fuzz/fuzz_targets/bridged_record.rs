//! A relay's bridged record (read from Swarm, written by any chat member) never panics the
//! decoder; what decodes re-encodes to the same body and names the legacy id of its hash.
#![no_main]
use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use staples_protocol::bridged::{MAGIC, decode, encode, legacy_id};
use staples_protocol_fuzz::{Format, mutate};

fuzz_target!(|data: &[u8]| {
    // Half the inputs get the magic, so the JSON checks are reached.
    let body = if data.first().is_some_and(|b| b & 1 == 1) {
        [MAGIC.as_slice(), &data[1..]].concat()
    } else {
        data.to_vec()
    };
    let Some(Ok(b)) = decode(&body) else { return };
    assert_eq!(b.body(), body, "a decoded record re-encodes");
    if b.envelope.is_none() {
        assert_eq!(encode(&b.json).expect("a decoded record encodes"), body);
    }
    assert_eq!(b.legacy_id, legacy_id(&b.message.hash.0));
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    mutate(data, size, max_size, seed, 1, Format::Json, 8, passes)
});

/// The first parser: the record decodes (as the target builds the body).
fn passes(data: &[u8]) -> bool {
    let body = if data.first().is_some_and(|b| b & 1 == 1) {
        [MAGIC.as_slice(), &data[1..]].concat()
    } else {
        data.to_vec()
    };
    matches!(decode(&body), Some(Ok(_)))
}
