//! Plaintext parsing never panics; an accepted unsigned plaintext with a size field is
//! rebuilt byte for byte from its parts.
#![no_main]
use libfuzzer_sys::fuzz_target;
use staples_protocol::whisper::message;

fuzz_target!(|data: &[u8]| {
    let Ok(p) = message::parse(data) else { return };
    let size_len = usize::from(p.flags & message::SIZE_MASK);
    let minimal = size_len == message::size_field_len(p.payload.len());
    if p.signature.is_none() && p.flags & !message::SIZE_MASK == 0 && minimal {
        let rebuilt = message::build(&p.payload, &p.padding, None).expect("parsed payload fits");
        assert_eq!(rebuilt, data);
    }
});
