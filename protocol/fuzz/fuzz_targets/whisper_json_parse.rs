//! geth message JSON parsing (dual mode reads it from an upstream node) never panics, and
//! what parses renders back to JSON that parses to the same message.
#![no_main]
use libfuzzer_sys::fuzz_target;
use staples_protocol::whisper::json::parse_geth_json;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(m) = parse_geth_json(text) else { return };
    let again = parse_geth_json(&m.to_geth_json()).expect("rendered JSON parses");
    assert_eq!(again.plaintext.payload, m.plaintext.payload);
    assert_eq!(again.plaintext.padding, m.plaintext.padding);
    assert_eq!(again.hash, m.hash);
    assert_eq!(again.topic, m.topic);
    assert_eq!(again.recipient, m.recipient);
});
