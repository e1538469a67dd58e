//! Bee's HTTP answers as the sidecar reads them: the first byte picks the reader, the rest
//! is the body (or header). Every reader either refuses with a typed error or returns
//! values that hold what it promises (a batch id is 64 hex digits, error text is bounded).
#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use staples_protocol::swarm::bee_api;
use staples_protocol_fuzz::{Format, mutate};

fuzz_target!(|data: &[u8]| {
    let Some((mode, body)) = data.split_first() else {
        return;
    };
    match mode % 9 {
        0 => {
            let _ = bee_api::addresses(body);
        }
        1 => {
            let _ = bee_api::peer_count(body);
        }
        2 => {
            if let Ok(Some(id)) = bee_api::usable_batch(body) {
                assert!(is_batch_id(id.as_str()));
            }
        }
        3 => {
            if let Ok(id) = bee_api::bought_batch(body) {
                assert!(is_batch_id(id.as_str()));
            }
        }
        4 => {
            let _ = bee_api::stamp_usable(body);
        }
        5 => {
            let _ = bee_api::reference("/bytes", body);
        }
        6 => {
            assert!(bee_api::error_message(body).chars().count() <= bee_api::MAX_ERROR_CHARS);
        }
        8 => {
            let _ = bee_api::node_mode(body);
        }
        _ => {
            if let Ok(i) = bee_api::feed_index(body) {
                assert_eq!(
                    hex::encode(i.to_be_bytes()),
                    String::from_utf8_lossy(body).to_lowercase()
                );
            }
        }
    }
});

fn is_batch_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    mutate(data, size, max_size, seed, 1, Format::Json, 8, passes)
});

/// The first parser: the chosen reader accepts the body (error text always does).
fn passes(data: &[u8]) -> bool {
    let Some((mode, body)) = data.split_first() else {
        return false;
    };
    match mode % 9 {
        0 => bee_api::addresses(body).is_ok(),
        1 => bee_api::peer_count(body).is_ok(),
        2 => bee_api::usable_batch(body).is_ok(),
        3 => bee_api::bought_batch(body).is_ok(),
        4 => bee_api::stamp_usable(body).is_ok(),
        5 => bee_api::reference("/bytes", body).is_ok(),
        6 => true,
        8 => bee_api::node_mode(body).is_ok(),
        _ => bee_api::feed_index(body).is_ok(),
    }
}
