//! Symmetric Whisper encryption: AES-256-GCM with the 12-byte nonce appended, and
//! password-derived keys.
//!
//! `Data = GCM_Seal(key, nonce, plaintext) ‖ nonce` with no associated data (geth
//! `encryptSymmetric`). Password keys are PBKDF2-HMAC-SHA256 with an empty salt and
//! **65356** iterations (geth's constant, not 65536); Status derives public-chat keys this way.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use sha2::Sha256;

/// Length of a symmetric key.
pub const AES_KEY_LENGTH: usize = 32;
/// Length of the GCM nonce ("salt") appended to the ciphertext.
pub const AES_NONCE_LENGTH: usize = 12;
/// Length of the GCM tag.
pub const AES_TAG_LENGTH: usize = 16;
/// PBKDF2 iterations geth uses for `shh_generateSymKeyFromPassword`.
pub const PBKDF2_ITERATIONS: u32 = 65_356;

/// Errors from symmetric keys and decryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SymmetricError {
    /// A key that is not 32 bytes.
    #[error("wrong key size: {0}")]
    WrongKeySize(usize),
    /// The all-zero key, which geth refuses.
    #[error("zero key")]
    ZeroKey,
    /// Data shorter than a nonce plus a tag.
    #[error("ciphertext of {0} bytes is too short")]
    TooShort(usize),
    /// The GCM tag did not verify: wrong key or tampered data.
    #[error("authentication failed: wrong key or tampered data")]
    Authentication,
}

/// A 32-byte AES-256 key, never zero. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct SymKey([u8; AES_KEY_LENGTH]);

impl std::fmt::Debug for SymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SymKey(<redacted>)")
    }
}

impl SymKey {
    /// Accepts exactly 32 bytes that are not all zero.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SymmetricError> {
        let key: [u8; AES_KEY_LENGTH] = bytes
            .try_into()
            .map_err(|_| SymmetricError::WrongKeySize(bytes.len()))?;
        if key == [0; AES_KEY_LENGTH] {
            return Err(SymmetricError::ZeroKey);
        }
        Ok(SymKey(key))
    }

    /// `shh_generateSymKeyFromPassword`: PBKDF2-HMAC-SHA256(password, "", 65356, 32).
    pub fn from_password(password: &str) -> Self {
        let mut key = [0u8; AES_KEY_LENGTH];
        pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), b"", PBKDF2_ITERATIONS, &mut key);
        // PBKDF2 output is zero with probability 2^-256; treat it as any other key.
        SymKey(key)
    }

    /// A fresh random key.
    pub fn random(rng: &mut (impl rand_core::RngCore + rand_core::CryptoRng)) -> Self {
        loop {
            let mut key = [0u8; AES_KEY_LENGTH];
            rng.fill_bytes(&mut key);
            if let Ok(k) = Self::from_bytes(&key) {
                return k;
            }
        }
    }

    /// The key bytes. Callers must keep them out of logs.
    pub fn as_bytes(&self) -> &[u8; AES_KEY_LENGTH] {
        &self.0
    }

    /// Encrypts `plaintext` with the given nonce: `ciphertext ‖ tag ‖ nonce`.
    pub fn encrypt(&self, nonce: &[u8; AES_NONCE_LENGTH], plaintext: &[u8]) -> Vec<u8> {
        let mut buf = Vec::with_capacity(plaintext.len() + AES_TAG_LENGTH + AES_NONCE_LENGTH);
        buf.extend_from_slice(plaintext);
        let cipher = Aes256Gcm::new(&self.0.into());
        // In-place GCM only fails when the buffer cannot grow, which a Vec always can.
        if cipher
            .encrypt_in_place(Nonce::from_slice(nonce), b"", &mut buf)
            .is_err()
        {
            unreachable!("Vec buffers always have room for the tag");
        }
        buf.extend_from_slice(nonce);
        buf
    }

    /// Decrypts `ciphertext ‖ tag ‖ nonce`.
    pub fn decrypt(&self, data: &[u8]) -> Result<Vec<u8>, SymmetricError> {
        if data.len() < AES_NONCE_LENGTH + AES_TAG_LENGTH {
            return Err(SymmetricError::TooShort(data.len()));
        }
        let (body, nonce) = data.split_at(data.len() - AES_NONCE_LENGTH);
        let mut buf = body.to_vec();
        Aes256Gcm::new(&self.0.into())
            .decrypt_in_place(Nonce::from_slice(nonce), b"", &mut buf)
            .map_err(|_| SymmetricError::Authentication)?;
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_must_be_32_nonzero_bytes() {
        assert_eq!(
            SymKey::from_bytes(&[1; 31]),
            Err(SymmetricError::WrongKeySize(31))
        );
        assert_eq!(SymKey::from_bytes(&[0; 32]), Err(SymmetricError::ZeroKey));
        assert!(SymKey::from_bytes(&[1; 32]).is_ok());
    }

    #[test]
    fn wrong_key_tamper_and_truncation_are_typed() {
        let k = SymKey::from_bytes(&[1; 32]).expect("valid");
        let other = SymKey::from_bytes(&[2; 32]).expect("valid");
        let mut data = k.encrypt(&[9; 12], b"hello");
        assert_eq!(k.decrypt(&data).as_deref(), Ok(&b"hello"[..]));
        assert_eq!(other.decrypt(&data), Err(SymmetricError::Authentication));
        data[0] ^= 1;
        assert_eq!(k.decrypt(&data), Err(SymmetricError::Authentication));
        assert_eq!(k.decrypt(&[0; 27]), Err(SymmetricError::TooShort(27)));
    }

    #[test]
    fn debug_does_not_leak_the_key() {
        let k = SymKey::from_bytes(&[0xab; 32]).expect("valid");
        assert!(!format!("{k:?}").contains("ab"));
    }
}
