//! Postage stamp parsing: an accepted stamp re-encodes to the same 113 bytes, and
//! verification never panics.
#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use staples_protocol::swarm::chunk::ChunkAddress;
use staples_protocol::swarm::stamp::Stamp;
use staples_protocol_fuzz::{Format, mutate};

fuzz_target!(|data: &[u8]| {
    let Ok(stamp) = Stamp::parse(data) else {
        return;
    };
    assert_eq!(&stamp.to_bytes()[..], data);
    let chunk = ChunkAddress::from_bytes(stamp.batch_id);
    let depth = data[0];
    let bucket_depth = data[1];
    let _ = stamp.verify(&chunk, &[0; 20], depth, bucket_depth);
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    mutate(data, size, max_size, seed, 0, Format::Raw, 4, passes)
});

/// The first parser: a stamp.
fn passes(data: &[u8]) -> bool {
    Stamp::parse(data).is_ok()
}
