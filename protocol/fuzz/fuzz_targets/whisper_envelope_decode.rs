//! Envelope decoding never panics, and whatever decodes re-encodes to the same bytes.
#![no_main]
use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use staples_protocol::whisper::Envelope;
use staples_protocol_fuzz::{Format, mutate};

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = Envelope::decode(data) {
        assert_eq!(
            env.encode(),
            data,
            "decode accepted a non-canonical encoding"
        );
        // The PoW functions take any decoded envelope.
        let _ = staples_protocol::whisper::pow::pow_v19(&env);
        let _ = staples_protocol::whisper::pow::pow_legacy(&env);
    }
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    mutate(data, size, max_size, seed, 0, Format::Rlp, 8, passes)
});

/// The first parser: an envelope.
fn passes(data: &[u8]) -> bool {
    Envelope::decode(data).is_ok()
}
