//! Postage stamp parsing: an accepted stamp re-encodes to the same 113 bytes, and
//! verification never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use staples_protocol::swarm::chunk::ChunkAddress;
use staples_protocol::swarm::stamp::Stamp;

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
