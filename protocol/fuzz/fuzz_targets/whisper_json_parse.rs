//! geth message JSON parsing (dual mode reads it from an upstream node) never panics, and
//! what parses renders back to JSON that parses to the same message.
#![no_main]
use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use staples_protocol::whisper::json::parse_geth_json;
use staples_protocol_fuzz::{Format, mutate};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(m) = parse_geth_json(text) else { return };
    let again = parse_geth_json(&m.to_geth_json()).expect("rendered JSON parses");
    assert_eq!(again.plaintext.payload, m.plaintext.payload);
    assert_eq!(again.plaintext.padding, m.plaintext.padding);
    assert_eq!(again.hash, m.hash);
    assert_eq!(again.topic, m.topic);
    assert_eq!(again.recipient, m.recipient);
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    mutate(data, size, max_size, seed, 0, Format::Json, 8, passes)
});

/// The first parser: geth's message JSON.
fn passes(data: &[u8]) -> bool {
    std::str::from_utf8(data).is_ok_and(|t| parse_geth_json(t).is_ok())
}
