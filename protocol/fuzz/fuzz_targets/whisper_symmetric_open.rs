//! Symmetric opening never panics. Two modes, chosen by the first byte: open the input as
//! envelope data (exercises length and tag checks), or encrypt the input as a plaintext with
//! our key and open that envelope, which must agree exactly with parsing the plaintext
//! directly (exercises decrypt + `ValidateAndParse` end to end).
#![no_main]
use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use staples_protocol::whisper::{Envelope, OpenKey, SymKey, Topic, message, open};
use staples_protocol_fuzz::{Format, mutate};

fuzz_target!(|data: &[u8]| {
    // A fixed raw key: deriving one with PBKDF2 per input would cost 65356 HMACs a run.
    let key = SymKey::from_bytes(&[0x42; 32]).expect("constant key is valid");
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let env_data = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        key.encrypt(&[9; 12], rest)
    };
    let env = Envelope {
        expiry: 100,
        ttl: 10,
        topic: Topic([1, 2, 3, 4]),
        data: env_data,
        nonce: 0,
    };
    let opened = open(&env, OpenKey::Symmetric(&key));
    if mode & 1 == 1 {
        assert_eq!(opened.map(|m| m.plaintext).ok(), message::parse(rest).ok());
    }
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    mutate(data, size, max_size, seed, 0, Format::Raw, 8, passes)
});

/// The first parser: the envelope opens (raw, or with the rest sealed as its plaintext).
fn passes(data: &[u8]) -> bool {
    let key = SymKey::from_bytes(&[0x42; 32]).expect("constant key is valid");
    let Some((&mode, rest)) = data.split_first() else {
        return false;
    };
    let env_data = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        key.encrypt(&[9; 12], rest)
    };
    let env = Envelope {
        expiry: 100,
        ttl: 10,
        topic: Topic([1, 2, 3, 4]),
        data: env_data,
        nonce: 0,
    };
    open(&env, OpenKey::Symmetric(&key)).is_ok()
}
