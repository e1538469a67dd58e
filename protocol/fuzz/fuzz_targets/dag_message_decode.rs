//! DAG message, header and padding-carrier decoders: no panic on any input, and whatever
//! decodes re-encodes to the same bytes (one encoding per message).
#![no_main]

use libfuzzer_sys::fuzz_target;
use staples_protocol::dag::{Align, Header, SignedMessage, decode_padding, encode_padding};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = SignedMessage::decode(data) {
        assert_eq!(m.encode(), data, "message re-encodes identically");
        let id = m.id();
        let (header, body) = m.into_parts();
        let again = header.with_body(body).expect("a decoded message verifies again");
        assert_eq!(again.id(), id, "the id does not depend on the encoding path");
    }
    if let Ok(h) = Header::decode(data) {
        assert_eq!(h.encode(), data, "header re-encodes identically");
    }
    if let Ok(Some(h)) = decode_padding(data) {
        let exact = encode_padding(&h, Align::Exact);
        assert!(data.starts_with(&exact), "padding re-encodes to its own prefix");
    }
});
