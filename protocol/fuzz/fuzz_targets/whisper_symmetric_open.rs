//! Symmetric opening of arbitrary envelope data never panics; what opens re-seals to the
//! same ciphertext with the same nonce (GCM is deterministic given key and nonce).
#![no_main]
use libfuzzer_sys::fuzz_target;
use staples_protocol::whisper::{Envelope, OpenKey, SymKey, Topic, open};

fuzz_target!(|data: &[u8]| {
    let key = SymKey::from_password("fuzz");
    let env = Envelope { expiry: 100, ttl: 10, topic: Topic([1, 2, 3, 4]), data: data.to_vec(), nonce: 0 };
    let _ = open(&env, OpenKey::Symmetric(&key));
    if let Ok(plain) = key.decrypt(data) {
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&data[data.len() - 12..]);
        assert_eq!(key.encrypt(&nonce, &plain), data);
    }
});
