//! The Swarm-transport parsers of `protocol::chat`: PSS frames, contact records and roster
//! entries never panic, and what parses re-encodes to the same bytes (frames, contact
//! records) or verifies only under the signer it names (roster entries).
#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use staples_protocol::chat::{ContactRecord, Frame, RosterEntry, seal};
use staples_protocol::dag::ChatId;
use staples_protocol_fuzz::{Format, mutate};

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = Frame::decode(data) {
        assert_eq!(frame.encode(), data, "frame re-encodes identically");
    }
    if let Ok(rec) = ContactRecord::decode(data) {
        assert_eq!(rec.encode(), data, "contact record re-encodes identically");
    }
    let chat = ChatId::new([0x11; 32]);
    if let Ok(entry) = RosterEntry::verify(&chat, data) {
        // A verified entry's signature recovers its own node key (checked inside); the
        // same bytes must not verify for another chat.
        assert!(RosterEntry::verify(&ChatId::new([0x22; 32]), data).is_err());
        let _ = entry;
    }
    // Opening arbitrary bytes as a sealed page or entry fails cleanly.
    let _ = seal::open(&[7; 32], data);
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    mutate(data, size, max_size, seed, 0, Format::Proto, 8, passes)
});

/// The first parsers: any of the four accepts.
fn passes(data: &[u8]) -> bool {
    Frame::decode(data).is_ok()
        || ContactRecord::decode(data).is_ok()
        || RosterEntry::verify(&ChatId::new([0x11; 32]), data).is_ok()
        || seal::open(&[7; 32], data).is_ok()
}
