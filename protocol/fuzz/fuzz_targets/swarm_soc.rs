//! Single-owner chunk parsing: an accepted SOC re-encodes to the same bytes, verifies under
//! its own address, and its owner is what the signature recovers to.
#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use staples_protocol::swarm::soc::{self, SingleOwnerChunk};
use staples_protocol_fuzz::{Format, mutate};

fuzz_target!(|data: &[u8]| {
    let Ok(chunk) = SingleOwnerChunk::parse(data) else {
        return;
    };
    assert_eq!(chunk.to_bytes(), data);
    assert_eq!(*chunk.address(), soc::address(chunk.id(), chunk.owner()));
    let again = SingleOwnerChunk::parse_at(chunk.address(), data).expect("own address");
    assert_eq!(again, chunk);
    let to_sign = soc::to_sign(chunk.id(), chunk.wrapped().address());
    assert_eq!(
        chunk.signature().recover_owner(&to_sign).as_ref(),
        Ok(chunk.owner())
    );
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    mutate(data, size, max_size, seed, 0, Format::Raw, 8, passes)
});

/// The first parser: a single-owner chunk (any signature recovers some owner).
fn passes(data: &[u8]) -> bool {
    SingleOwnerChunk::parse(data).is_ok()
}
