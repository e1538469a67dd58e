//! The inbox reader over a whole chain of pages, as the sidecar walks one sender's inbox:
//! the fuzzer picks how many messages were posted (so how many pages and feed indexes) and
//! edits to the page bytes the reader is served. Untouched, a fresh reader lists every
//! message exactly once and ends knowing the latest index. Edited, it may stop with a typed error, but it never
//! panics, never asks for more pages than the chain has, and never claims to know past the
//! latest index.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use staples_protocol::crypto::keccak256;
use staples_protocol::dag::{ChatId, MessageId};
use staples_protocol::inbox::{Entry, InboxReader, InboxWriter, ReaderEvent, SwarmRef};

#[derive(Debug, Arbitrary)]
struct Input {
    /// Messages posted (up to 300: six pages).
    posted: u16,
    /// (feed index, byte position, xor mask) edits of served pages.
    edits: Vec<(u16, u16, u8)>,
}

fn id(i: u64) -> MessageId {
    MessageId::from_slice(&keccak256(&i.to_be_bytes())).expect("32 bytes")
}

fuzz_target!(|inp: Input| {
    let posted = u64::from(inp.posted % 301);
    if posted == 0 {
        return;
    }
    let chat = ChatId::new([5; 32]);
    let mut writer = InboxWriter::new(chat);
    // Every published version by feed index, and pages by reference.
    let mut at_index: HashMap<u64, (SwarmRef, Vec<u8>)> = HashMap::new();
    let mut by_ref: HashMap<SwarmRef, Vec<u8>> = HashMap::new();
    for i in 0..posted {
        let entry = Entry {
            message_id: id(i),
            reference: keccak256(&[i.to_be_bytes(), [1; 8]].concat()),
            clock: i + 1,
        };
        let page = writer.append(entry).expect("clocks increase");
        let bytes = page.encode();
        let reference = keccak256(&bytes);
        writer.confirm(page.index(), reference).expect("the head");
        at_index.insert(page.index(), (reference, bytes.clone()));
        by_ref.insert(reference, bytes);
    }
    let edited = !inp.edits.is_empty();
    for (index, pos, mask) in inp.edits.iter().take(4) {
        let index = u64::from(*index) % posted;
        if let Some((r, bytes)) = at_index.get_mut(&index) {
            let i = usize::from(*pos) % bytes.len();
            bytes[i] ^= mask;
            by_ref.insert(*r, bytes.clone());
        }
    }
    let latest = posted - 1;
    let mut reader = InboxReader::new(chat);
    let (r0, b0) = &at_index[&latest];
    let mut listed = Vec::new();
    let mut fetches = 0u64;
    let mut result = reader.handle_latest(latest, *r0, b0);
    while result.is_ok() {
        let Some(ev) = reader.poll_event() else { break };
        match ev {
            ReaderEvent::Entry(e) => listed.push(e.message_id),
            ReaderEvent::FetchPage(r) => {
                fetches += 1;
                assert!(fetches <= posted, "more page fetches than pages");
                result = match by_ref.get(&r) {
                    Some(b) => reader.handle_page(r, b),
                    // An edited page may name a page that does not exist: a fetch that
                    // fails, which the driver reports; stop here.
                    None => break,
                };
            }
            ReaderEvent::Skipped { from, to } => {
                assert!(from <= to && to < latest, "skipped range inside the chain");
                for i in from..=to {
                    let (r, b) = &at_index[&i];
                    result = reader.handle_indexed(i, *r, b);
                    if result.is_err() {
                        break;
                    }
                }
            }
            ReaderEvent::Done { .. } => {}
        }
    }
    assert!(reader.known_index().is_none_or(|k| k <= latest));
    if !edited {
        assert!(result.is_ok(), "an untouched chain reads: {result:?}");
        assert_eq!(reader.known_index(), Some(latest));
        let mut want: Vec<MessageId> = (0..posted).rev().map(id).collect();
        let mut got = listed.clone();
        got.sort();
        got.dedup();
        assert_eq!(got.len(), listed.len(), "each message listed once");
        want.sort();
        assert_eq!(got, want, "every message listed");
    }
});
