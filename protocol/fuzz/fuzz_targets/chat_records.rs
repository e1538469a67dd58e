//! The Swarm-transport parsers of `protocol::chat`: PSS frames, contact records, roster
//! entries and chat-index entries never panic, and what parses re-encodes to the same
//! bytes (frames, contact records) or verifies only under the signer and chat it names
//! (roster and index entries).
#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use staples_protocol::chat::{ContactRecord, Frame, FrameBody, IndexEntry, RosterEntry, seal};
use staples_protocol::crypto::PrivateKey;
use staples_protocol::dag::ChatId;
use staples_protocol_fuzz::{Rng, bytes, edge_u64, mutate_with, proto, rlp};

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
    if let Ok(entry) = IndexEntry::verify(&chat, data) {
        assert!(IndexEntry::verify(&ChatId::new([0x22; 32]), data).is_err());
        // Signatures are deterministic (RFC 6979): an entry of the member whose key the
        // mutator signs with re-signs to the same bytes.
        let member = member();
        if entry.node_key == member.public_key() {
            assert_eq!(entry.sign(&chat, &member), data, "index entry re-signs identically");
        }
    }
    // Opening arbitrary bytes as a sealed page or entry fails cleanly.
    let _ = seal::open(&[7; 32], data);
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    mutate_with(data, size, max_size, seed, 8, &edit, passes)
});

/// Sealed inputs are opened, edited and sealed again; roster entries are edited and
/// signed again by a fixed member (whose key they then name); contact records get edited
/// fields; frames get an edited chat, reference or inline body (RLP-aware); the rest is
/// edited as protobuf.
fn edit(input: &[u8], rng: &mut Rng, room: usize) -> Option<Vec<u8>> {
    let member = member();
    if let Ok(inner) = seal::open(&[7; 32], input) {
        let edited = edit(&inner, rng, room)?;
        let nonce = [rng.next() as u8; 12];
        return Some(seal::seal(&[7; 32], &nonce, &edited));
    }
    let chat = ChatId::new([0x11; 32]);
    if let Ok(mut e) = RosterEntry::verify(&chat, input) {
        match rng.below(5) {
            0 => e.topic = rng.next().to_be_bytes(),
            1 => e.overlay[rng.below(32)] ^= rng.next() as u8 | 1,
            2 => e.timestamp_ms = edge_u64(rng, e.timestamp_ms),
            3 => e.features = rng.next() as u8,
            _ => e.pss_key = member.public_key(),
        }
        e.node_key = member.public_key();
        return Some(e.sign(&chat, &member));
    }
    if let Ok(mut e) = IndexEntry::verify(&chat, input) {
        match rng.below(2) {
            0 => e.inbox_index = edge_u64(rng, e.inbox_index),
            _ => e.timestamp_ms = edge_u64(rng, e.timestamp_ms),
        }
        e.node_key = member.public_key();
        return Some(e.sign(&chat, &member));
    }
    if let Ok(mut c) = ContactRecord::decode(input) {
        match rng.below(4) {
            0 => c.node_key = member.public_key(),
            1 => c.overlay[rng.below(32)] ^= rng.next() as u8 | 1,
            2 => c.timestamp_ms = edge_u64(rng, c.timestamp_ms),
            _ => c.pss_key = member.public_key(),
        }
        return Some(c.encode());
    }
    if let Ok(mut f) = Frame::decode(input) {
        match (&mut f.body, rng.below(3)) {
            (_, 0) => f.chat = ChatId::new([rng.next() as u8; 32]),
            (FrameBody::Inline(b), _) => {
                // The inline body is a sealed envelope: edit it as RLP when it is one.
                *b = rlp::mutate(b, rng, room)
                    .unwrap_or_else(|| bytes(b, (b.len() * 2 + 8).min(room)));
            }
            (FrameBody::Reference(r), _) => r[rng.below(32)] ^= rng.next() as u8 | 1,
        }
        return Some(f.encode());
    }
    proto::mutate(input, rng, room)
}

/// The member whose key edited entries are signed with (and name).
fn member() -> PrivateKey {
    PrivateKey::from_bytes(&[0x6b; 32]).expect("a valid secp256k1 secret")
}

/// The first parsers: any of the five accepts.
fn passes(data: &[u8]) -> bool {
    let chat = ChatId::new([0x11; 32]);
    Frame::decode(data).is_ok()
        || ContactRecord::decode(data).is_ok()
        || RosterEntry::verify(&chat, data).is_ok()
        || IndexEntry::verify(&chat, data).is_ok()
        || seal::open(&[7; 32], data).is_ok()
}
