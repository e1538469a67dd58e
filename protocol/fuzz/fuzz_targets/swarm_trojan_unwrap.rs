//! Trojan chunk unwrapping. Two modes picked by the first byte:
//! - raw: arbitrary bytes must give a typed error or a message, never a panic;
//! - mutate: XOR the input into a real trojan chunk; unwrapping may fail, but if it
//!   succeeds it must return the original message (the integrity hash holds).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use staples_protocol::crypto::{PrivateKey, keccak256};
use staples_protocol::swarm::pss::{self, PssTopic, Targets};
use staples_protocol_fuzz::{Format, mutate};

const MESSAGE: &[u8] = b"fuzzing the trojan chunk";

fn key() -> PrivateKey {
    PrivateKey::from_bytes(&keccak256(b"fuzz-pss-node")).expect("valid key")
}

fn topics() -> [PssTopic; 2] {
    [
        PssTopic::from_string("fuzz"),
        PssTopic::from_string("other"),
    ]
}

fn trojan() -> &'static [u8] {
    static CHUNK: OnceLock<Vec<u8>> = OnceLock::new();
    CHUNK.get_or_init(|| {
        let targets = Targets::new(&[[0x00]]).expect("valid target");
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let pk = key().public_key();
        pss::wrap(
            &topics()[0],
            MESSAGE,
            Some(&pk),
            &targets,
            1 << 20,
            &mut rng,
        )
        .expect("mines")
        .chunk
        .to_data()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let key = key();
    if mode & 1 == 0 {
        let _ = pss::unwrap(rest, &key, &topics());
        return;
    }
    // mutate: rest = [offset_hi, offset_lo, xor bytes...]
    let Some((offset, xor)) = rest.split_first_chunk::<2>() else {
        return;
    };
    let mut chunk = trojan().to_vec();
    let start = usize::from(u16::from_be_bytes(*offset)) % chunk.len();
    for (b, x) in chunk[start..].iter_mut().zip(xor) {
        *b ^= x;
    }
    if let Ok(got) = pss::unwrap(&chunk, &key, &topics()) {
        assert_eq!(got.message, MESSAGE);
    }
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    mutate(data, size, max_size, seed, 0, Format::Raw, 6, passes)
});

/// The first parser: the chunk (raw, or the real trojan edited) unwraps.
fn passes(data: &[u8]) -> bool {
    let Some((&mode, rest)) = data.split_first() else {
        return false;
    };
    if mode & 1 == 0 {
        return pss::unwrap(rest, &key(), &topics()).is_ok();
    }
    let Some((offset, xor)) = rest.split_first_chunk::<2>() else {
        return false;
    };
    let mut chunk = trojan().to_vec();
    let start = usize::from(u16::from_be_bytes(*offset)) % chunk.len();
    for (b, x) in chunk[start..].iter_mut().zip(xor) {
        *b ^= x;
    }
    pss::unwrap(&chunk, &key(), &topics()).is_ok()
}
