//! DAG message, header and padding-carrier decoders: no panic on any input, and whatever
//! decodes re-encodes to the same bytes (one encoding per message).
#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use staples_protocol::dag::{
    Align, Header, SignedMessage, app_padding, decode_padding, encode_padding, encode_padding_with,
};
use staples_protocol_fuzz::{Format, mutate};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = SignedMessage::decode(data) {
        assert_eq!(m.encode(), data, "message re-encodes identically");
        let id = m.id();
        let (header, body) = m.into_parts();
        let again = header
            .with_body(body)
            .expect("a decoded message verifies again");
        assert_eq!(
            again.id(),
            id,
            "the id does not depend on the encoding path"
        );
    }
    if let Ok(h) = Header::decode(data) {
        assert_eq!(h.encode(), data, "header re-encodes identically");
    }
    if let Ok(Some(h)) = decode_padding(data) {
        let exact = encode_padding(&h, Align::Exact);
        assert!(
            data.starts_with(&exact),
            "padding re-encodes to its own prefix"
        );
        let filler = app_padding(data).expect("a decoded carrier has an app padding");
        assert_eq!(
            encode_padding_with(&h, filler),
            data,
            "header and app padding are all of it"
        );
    }
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    mutate(data, size, max_size, seed, 0, Format::Proto, 8, passes)
});

/// The first parsers: message, header or padding carrier.
fn passes(data: &[u8]) -> bool {
    SignedMessage::decode(data).is_ok()
        || Header::decode(data).is_ok()
        || matches!(decode_padding(data), Ok(Some(_)))
}
