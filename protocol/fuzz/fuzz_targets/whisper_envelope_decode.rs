//! Envelope decoding never panics, and whatever decodes re-encodes to the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use staples_protocol::whisper::Envelope;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = Envelope::decode(data) {
        assert_eq!(env.encode(), data, "decode accepted a non-canonical encoding");
        // The PoW functions take any decoded envelope.
        let _ = staples_protocol::whisper::pow::pow_v19(&env);
        let _ = staples_protocol::whisper::pow::pow_legacy(&env);
    }
});
