//! Plaintext parsing never panics; an accepted unsigned plaintext with a size field is
//! rebuilt byte for byte from its parts.
#![no_main]
use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use staples_protocol::whisper::message;
use staples_protocol_fuzz::{Format, mutate};

fuzz_target!(|data: &[u8]| {
    let Ok(p) = message::parse(data) else { return };
    let size_len = usize::from(p.flags & message::SIZE_MASK);
    let minimal = size_len == message::size_field_len(p.payload.len());
    if p.signature.is_none() && p.flags & !message::SIZE_MASK == 0 && minimal {
        let rebuilt = message::build(&p.payload, &p.padding, None).expect("parsed payload fits");
        assert_eq!(rebuilt, data);
    }
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    mutate(data, size, max_size, seed, 0, Format::Raw, 8, passes)
});

/// The first parser: a plaintext.
fn passes(data: &[u8]) -> bool {
    message::parse(data).is_ok()
}
