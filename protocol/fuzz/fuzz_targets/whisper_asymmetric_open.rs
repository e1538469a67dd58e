//! ECIES opening of arbitrary data never panics. To reach past the MAC check the input is
//! split: the first bytes choose a plaintext, which is encrypted to our key, then the rest
//! of the input flips bits in it; decryption must either fail or return the plaintext.
#![no_main]
use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use staples_protocol::crypto::PrivateKey;
use staples_protocol::whisper::{Envelope, OpenKey, Topic, ecies, open};
use staples_protocol_fuzz::{Rng, bytes, mutate_with};

fuzz_target!(|data: &[u8]| {
    let me = PrivateKey::from_bytes(&[0x11; 32]).expect("constant key is valid");
    let eph = PrivateKey::from_bytes(&[0x22; 32]).expect("constant key is valid");
    let env = Envelope {
        expiry: 100,
        ttl: 10,
        topic: Topic([0; 4]),
        data: data.to_vec(),
        nonce: 0,
    };
    let _ = open(&env, OpenKey::Asymmetric(&me));

    let split = usize::from(data.first().copied().unwrap_or(0)).min(data.len());
    let (plain, flips) = data.split_at(split);
    let mut ct = ecies::encrypt(&me.public_key(), &eph, &[7; 16], plain);
    for pair in flips.chunks(2) {
        if let [pos, mask] = pair {
            let i = usize::from(*pos) % ct.len();
            ct[i] ^= mask;
        }
    }
    match ecies::decrypt(&me, &ct) {
        Ok(out) => assert_eq!(out, plain),
        Err(_) => assert!(flips.chunks(2).any(|p| p.len() == 2 && p[1] != 0)),
    }
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    mutate_with(data, size, max_size, seed, 6, &edit, passes)
});

/// A split input's plaintext is mutated (its length byte kept in step) and its flips
/// are cleared, so the ciphertext decrypts and the plaintext parser is what gets fuzzed;
/// tampering is left to the free mutations.
fn edit(input: &[u8], _rng: &mut Rng, room: usize) -> Option<Vec<u8>> {
    let (&split, _) = input.split_first()?;
    let split = usize::from(split).clamp(1, input.len());
    let plain = bytes(&input[1..split], 254.min(room.saturating_sub(1)));
    let flips: Vec<u8> = input[split..].chunks(2).flat_map(|p| [p[0], 0]).collect();
    let split = u8::try_from(plain.len() + 1).ok()?;
    Some([&[split][..], &plain, &flips].concat())
}

/// The first parser: the data opens, or the split input's ciphertext decrypts.
fn passes(data: &[u8]) -> bool {
    let me = PrivateKey::from_bytes(&[0x11; 32]).expect("constant key is valid");
    let eph = PrivateKey::from_bytes(&[0x22; 32]).expect("constant key is valid");
    let env = Envelope {
        expiry: 100,
        ttl: 10,
        topic: Topic([0; 4]),
        data: data.to_vec(),
        nonce: 0,
    };
    if open(&env, OpenKey::Asymmetric(&me)).is_ok() {
        return true;
    }
    let split = usize::from(data.first().copied().unwrap_or(0)).min(data.len());
    let (plain, flips) = data.split_at(split);
    let mut ct = ecies::encrypt(&me.public_key(), &eph, &[7; 16], plain);
    for pair in flips.chunks(2) {
        if let [pos, mask] = pair {
            let i = usize::from(*pos) % ct.len();
            ct[i] ^= mask;
        }
    }
    ecies::decrypt(&me, &ct).is_ok()
}
