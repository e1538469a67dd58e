//! AES-256-GCM sealing with a derived 32-byte key: `ciphertext ‖ tag(16) ‖ nonce(12)`,
//! the layout of Whisper's symmetric encryption (so one implementation serves both).

use crate::whisper::symmetric::{SymKey, SymmetricError};

/// Bytes sealing adds.
pub const OVERHEAD: usize = 28;

/// Why opening failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Wrong key, or the bytes were altered.
    #[error("sealed data does not open with this chat's key")]
    Open(#[from] SymmetricError),
}

/// Seals `plaintext` under `key` with a fresh random `nonce`.
pub fn seal(key: &[u8; 32], nonce: &[u8; 12], plaintext: &[u8]) -> Vec<u8> {
    match SymKey::from_bytes(key) {
        Ok(k) => k.encrypt(nonce, plaintext),
        // Derived keys are keccak outputs; an all-zero one (the only rejected value) has
        // probability 2⁻²⁵⁶. Refusing to seal would be worse than any fallback, so the key
        // is re-derived deterministically and both ends do the same in `open`.
        Err(_) => fallback(key).encrypt(nonce, plaintext),
    }
}

/// Opens what [`seal`] produced.
pub fn open(key: &[u8; 32], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
    let k = SymKey::from_bytes(key).unwrap_or_else(|_| fallback(key));
    Ok(k.decrypt(sealed)?)
}

fn fallback(key: &[u8; 32]) -> SymKey {
    let k = crate::crypto::keccak256_concat(&[b"staples/seal/zero-key", key]);
    SymKey::from_bytes(&k).unwrap_or_else(|_| SymKey::from_password("staples"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let key = [5u8; 32];
        let sealed = seal(&key, &[1; 12], b"page");
        assert_eq!(sealed.len(), 4 + OVERHEAD);
        assert_eq!(open(&key, &sealed).expect("opens"), b"page");
        assert!(open(&[6u8; 32], &sealed).is_err());
        let mut bad = sealed.clone();
        bad[0] ^= 1;
        assert!(open(&key, &bad).is_err());
        assert!(open(&key, &sealed[..10]).is_err());
    }
}
