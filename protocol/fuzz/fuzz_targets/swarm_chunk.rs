//! Content-addressed chunk parsing: any accepted input re-encodes to the same bytes and
//! verifies under its own address.
#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use staples_protocol::swarm::bmt;
use staples_protocol::swarm::chunk::Cac;
use staples_protocol_fuzz::{Format, mutate};

fuzz_target!(|data: &[u8]| {
    let Ok(chunk) = Cac::from_data(data) else {
        assert!(data.len() < 8 || data.len() > 8 + 4096);
        return;
    };
    assert_eq!(chunk.to_data(), data);
    assert_eq!(
        chunk.address().as_bytes(),
        &bmt::hash(chunk.span(), chunk.payload()).expect("payload fits")
    );
    assert_eq!(
        Cac::from_data_at(chunk.address(), data).as_ref(),
        Ok(&chunk)
    );
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    mutate(data, size, max_size, seed, 0, Format::Raw, 4, passes)
});

/// The first parser: a content-addressed chunk.
fn passes(data: &[u8]) -> bool {
    Cac::from_data(data).is_ok()
}
