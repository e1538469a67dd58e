//! geth's ECIES for asymmetric Whisper messages (`crypto/ecies`, `ECIES_AES128_SHA256`).
//!
//! `R(65, uncompressed) ‖ IV(16) ‖ AES-128-CTR(Ke, IV, m) ‖ HMAC-SHA256(Km, IV ‖ ct)`, where
//! `z` is the x coordinate of the ECDH point, `K = SHA-256(00000001 ‖ z)` (concat KDF, one
//! round, no shared info), `Ke = K[..16]` and `Km = SHA-256(K[16..])`. Overhead: 113 bytes.
//!
//! Decryption checks the MAC before decrypting and rejects anything shorter than 113 bytes
//! (geth checks only 98 and panics between 98 and 112).

use aes::Aes128;
use ctr::cipher::{KeyIvInit, StreamCipher};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::crypto::{PrivateKey, PublicKey};

type Aes128Ctr = ctr::Ctr128BE<Aes128>;
type HmacSha256 = Hmac<Sha256>;

/// Length of the ephemeral public key at the front.
pub const EPHEMERAL_KEY_LENGTH: usize = 65;
/// Length of the AES-CTR IV.
pub const IV_LENGTH: usize = 16;
/// Length of the HMAC tag at the end.
pub const TAG_LENGTH: usize = 32;
/// Bytes ECIES adds to a message.
pub const OVERHEAD: usize = EPHEMERAL_KEY_LENGTH + IV_LENGTH + TAG_LENGTH;

/// Errors from ECIES decryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EciesError {
    /// Shorter than `R ‖ IV ‖ tag`.
    #[error("ecies message of {0} bytes is too short")]
    TooShort(usize),
    /// The first 65 bytes are not an uncompressed point on the curve.
    #[error("invalid ephemeral public key")]
    InvalidEphemeralKey,
    /// The MAC did not verify: not for this key, or tampered.
    #[error("mac mismatch: wrong key or tampered message")]
    MacMismatch,
}

/// The derived keys, exposed for tests against reference vectors.
pub struct DerivedKeys {
    /// The KDF output `K = SHA-256(00000001 ‖ z)`.
    pub kdf: [u8; 32],
    /// AES-128 key.
    pub ke: [u8; 16],
    /// HMAC key, `SHA-256(K[16..])`.
    pub km: [u8; 32],
}

/// Concat KDF (NIST SP 800-56, SHA-256, one round) and the MAC-key hash, as geth does.
pub fn derive_keys(shared_x: &[u8; 32]) -> DerivedKeys {
    let mut h = Sha256::new();
    h.update([0, 0, 0, 1]);
    h.update(shared_x);
    let k = h.finalize();
    let mut ke = [0u8; 16];
    ke.copy_from_slice(&k[..16]);
    DerivedKeys {
        kdf: k.into(),
        ke,
        km: Sha256::digest(&k[16..]).into(),
    }
}

/// Encrypts `msg` to `recipient` with the given ephemeral key and IV.
pub fn encrypt(
    recipient: &PublicKey,
    ephemeral: &PrivateKey,
    iv: &[u8; IV_LENGTH],
    msg: &[u8],
) -> Vec<u8> {
    encrypt_with_mac_data(recipient, ephemeral, iv, msg, &[])
}

/// [`encrypt`] with `mac_data` (geth's `s2`) appended to what the HMAC covers, not sent:
/// RLPx's EIP-8 handshake authenticates its 2-byte size prefix this way.
pub fn encrypt_with_mac_data(
    recipient: &PublicKey,
    ephemeral: &PrivateKey,
    iv: &[u8; IV_LENGTH],
    msg: &[u8],
    mac_data: &[u8],
) -> Vec<u8> {
    let keys = derive_keys(&ephemeral.ecdh_x(recipient));
    let mut out = Vec::with_capacity(msg.len() + OVERHEAD);
    out.extend_from_slice(&ephemeral.public_key().to_uncompressed());
    out.extend_from_slice(iv);
    let ct_start = out.len();
    out.extend_from_slice(msg);
    Aes128Ctr::new(&keys.ke.into(), iv.into()).apply_keystream(&mut out[ct_start..]);
    let mut m = mac(&keys.km, &out[EPHEMERAL_KEY_LENGTH..]);
    m.update(mac_data);
    let tag = m.finalize().into_bytes();
    out.extend_from_slice(&tag);
    out
}

/// Decrypts an ECIES message with the recipient's private key.
pub fn decrypt(key: &PrivateKey, data: &[u8]) -> Result<Vec<u8>, EciesError> {
    decrypt_with_mac_data(key, data, &[])
}

/// [`decrypt`] of a message whose HMAC also covers `mac_data` (see
/// [`encrypt_with_mac_data`]).
pub fn decrypt_with_mac_data(
    key: &PrivateKey,
    data: &[u8],
    mac_data: &[u8],
) -> Result<Vec<u8>, EciesError> {
    if data.len() < OVERHEAD {
        return Err(EciesError::TooShort(data.len()));
    }
    let ephemeral = PublicKey::from_uncompressed(&data[..EPHEMERAL_KEY_LENGTH])
        .map_err(|_| EciesError::InvalidEphemeralKey)?;
    let keys = derive_keys(&key.ecdh_x(&ephemeral));
    let (body, tag) = data[EPHEMERAL_KEY_LENGTH..].split_at(data.len() - OVERHEAD + IV_LENGTH);
    let mut m = mac(&keys.km, body);
    m.update(mac_data);
    m.verify_slice(tag).map_err(|_| EciesError::MacMismatch)?;
    let (iv, ct) = body.split_at(IV_LENGTH);
    let mut out = ct.to_vec();
    let iv: &[u8; IV_LENGTH] = iv
        .try_into()
        .map_err(|_| EciesError::TooShort(data.len()))?;
    Aes128Ctr::new(&keys.ke.into(), iv.into()).apply_keystream(&mut out);
    Ok(out)
}

fn mac(km: &[u8; 32], iv_and_ct: &[u8]) -> HmacSha256 {
    let mut m = <HmacSha256 as Mac>::new_from_slice(km)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    m.update(iv_and_ct);
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keccak256;

    fn key(seed: &[u8]) -> PrivateKey {
        PrivateKey::from_bytes(&keccak256(seed)).expect("valid key")
    }

    #[test]
    fn round_trip_and_wrong_key() {
        let r = key(b"recipient");
        let c = encrypt(&r.public_key(), &key(b"eph"), &[3; 16], b"secret");
        assert_eq!(c.len(), 6 + OVERHEAD);
        assert_eq!(decrypt(&r, &c).as_deref(), Ok(&b"secret"[..]));
        assert_eq!(decrypt(&key(b"other"), &c), Err(EciesError::MacMismatch));
    }

    #[test]
    fn short_and_bad_prefix_inputs_are_typed() {
        let r = key(b"recipient");
        assert_eq!(decrypt(&r, &[4; 112]), Err(EciesError::TooShort(112)));
        let mut c = encrypt(&r.public_key(), &key(b"eph"), &[3; 16], b"x");
        c[0] = 2;
        assert_eq!(decrypt(&r, &c), Err(EciesError::InvalidEphemeralKey));
    }
}
