//! Topic log entries, as read from Swarm: whatever a writer put at an index must either be
//! refused with a typed error or decode to an envelope on the log's topic that encodes
//! back to the same entry.
#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use staples_protocol::topic_log;
use staples_protocol::whisper::Topic;
use staples_protocol_fuzz::{Format, mutate};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let topic = Topic([data[0], data[1], data[2], data[3]]);
    // Half the inputs get the magic, so the envelope decoder is reached.
    let entry = if data.get(4).is_some_and(|b| b & 1 == 1) {
        [topic_log::MAGIC.as_slice(), &data[5..]].concat()
    } else {
        data[4..].to_vec()
    };
    let entry = entry.as_slice();
    if let Ok(env) = topic_log::decode(&topic, entry) {
        assert_eq!(env.topic, topic);
        // RLP is canonical for envelopes we accept: the entry re-encodes exactly.
        if let Ok(again) = topic_log::encode(&env) {
            assert_eq!(again, entry);
        }
    }
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    mutate(data, size, max_size, seed, 5, Format::Rlp, 8, passes)
});

/// The first parser: the entry decodes on the input's topic.
fn passes(data: &[u8]) -> bool {
    if data.len() < 4 {
        return false;
    }
    let topic = Topic([data[0], data[1], data[2], data[3]]);
    let entry = if data.get(4).is_some_and(|b| b & 1 == 1) {
        [topic_log::MAGIC.as_slice(), &data[5..]].concat()
    } else {
        data[4..].to_vec()
    };
    topic_log::decode(&topic, &entry).is_ok()
}
