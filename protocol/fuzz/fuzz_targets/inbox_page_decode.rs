//! Inbox page decoder and reader, and page bundles: no panic on any input, whatever decodes
//! re-encodes to the same bytes, and the reader survives any page as head and as previous
//! page.
#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use staples_protocol::inbox::{InboxReader, MAX_ENTRIES, Page, ReaderEvent, bundle};
use staples_protocol_fuzz::{Format, mutate};

fuzz_target!(|data: &[u8]| {
    if let Ok(messages) = bundle::decode(data) {
        assert!(messages.len() <= MAX_ENTRIES);
        assert_eq!(
            bundle::encode(&messages).as_deref(),
            Some(data),
            "bundle re-encodes identically"
        );
    }
    let Ok(page) = Page::decode(data) else {
        return;
    };
    assert_eq!(page.encode(), data, "page re-encodes identically");
    assert!(!page.entries().is_empty() && page.entries().len() <= MAX_ENTRIES);
    assert!(page.first_index() <= page.index());

    let mut reader = InboxReader::new(*page.chat_id());
    if reader.handle_latest(page.index(), [0xee; 32], data).is_ok() {
        let mut listed = 0usize;
        while let Some(ev) = reader.poll_event() {
            match ev {
                ReaderEvent::Entry(_) => listed += 1,
                // Offer the same page as its own predecessor: must be refused, not loop.
                ReaderEvent::FetchPage(r) => assert!(reader.handle_page(r, data).is_err()),
                _ => {}
            }
        }
        assert_eq!(listed, page.entries().len());
    }
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    mutate(data, size, max_size, seed, 0, Format::Proto, 8, passes)
});

/// The first parsers: the page or the bundle decodes.
fn passes(data: &[u8]) -> bool {
    Page::decode(data).is_ok() || bundle::decode(data).is_ok()
}
