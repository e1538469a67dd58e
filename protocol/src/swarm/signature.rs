//! Swarm's 65-byte signatures, shared by single-owner chunks and postage stamps.
//!
//! Bee `pkg/crypto/signer.go`: the signer hashes a 32-byte message with the Ethereum
//! personal-message prefix ([`eth_message_digest`]) and signs with RFC 6979 nonces; the
//! signature is `r(32) ‖ s(32) ‖ v(1)` with `v = 27 + recovery id`. On recovery Bee hands `v`
//! to btcec's `RecoverCompact`, which accepts 27..=34 (4 more flags a compressed key) and
//! rejects anything else; the same rule applies here. bee-js signs with a different
//! deterministic nonce, so signatures are verified by recovering the signer, never by
//! comparing bytes.

use std::fmt;

use crate::crypto::{CryptoError, PrivateKey, PublicKey, Signature, eth_message_digest};

/// Bytes in a Swarm signature.
pub const SIGNATURE_SIZE: usize = 65;

/// Errors from parsing and recovering Swarm signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature is not 65 bytes.
    #[error("signature of {len} bytes, expected 65")]
    Length {
        /// Length received.
        len: usize,
    },
    /// The last byte is outside 27..=34.
    #[error("signature v byte {0} outside 27..=34")]
    RecoveryByte(u8),
    /// R or S is out of range, or no key produces this signature.
    #[error("signature does not recover: {0}")]
    Recovery(#[from] CryptoError),
}

/// A 65-byte `r ‖ s ‖ v` signature with `v` in 27..=34.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SwarmSignature([u8; SIGNATURE_SIZE]);

impl fmt::Debug for SwarmSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SwarmSignature({})", hex::encode(self.0))
    }
}

impl SwarmSignature {
    /// Signs `keccak256(prefix ‖ to_sign)` with an RFC 6979 nonce, as Bee does.
    pub fn sign(key: &PrivateKey, to_sign: &[u8; 32]) -> Self {
        let Signature(mut sig) = key.sign_digest(&eth_message_digest(to_sign));
        sig[64] += 27;
        Self(sig)
    }

    /// Parses 65 bytes, checking only the `v` range; R and S are checked on recovery.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SignatureError> {
        let sig: [u8; SIGNATURE_SIZE] = bytes
            .try_into()
            .map_err(|_| SignatureError::Length { len: bytes.len() })?;
        if !(27..=34).contains(&sig[64]) {
            return Err(SignatureError::RecoveryByte(sig[64]));
        }
        Ok(Self(sig))
    }

    /// The 65 wire bytes.
    pub fn as_bytes(&self) -> &[u8; SIGNATURE_SIZE] {
        &self.0
    }

    /// The public key that signed `to_sign` (before the Ethereum prefix was applied).
    pub fn recover(&self, to_sign: &[u8; 32]) -> Result<PublicKey, SignatureError> {
        let mut sig = self.0;
        // btcec: subtract 27, drop the "compressed" flag (4), keep the recovery id.
        sig[64] = (sig[64] - 27) & 3;
        Ok(Signature(sig).recover(&eth_message_digest(to_sign))?)
    }

    /// The Ethereum address of the signer of `to_sign`.
    pub fn recover_owner(&self, to_sign: &[u8; 32]) -> Result<[u8; 20], SignatureError> {
        Ok(self.recover(to_sign)?.eth_address())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keccak256;

    #[test]
    fn sign_then_recover_gives_the_owner() {
        let key = PrivateKey::from_bytes(&keccak256(b"swarm-signer")).expect("valid");
        let msg = keccak256(b"message");
        let sig = SwarmSignature::sign(&key, &msg);
        assert!(matches!(sig.as_bytes()[64], 27 | 28));
        assert_eq!(sig.recover_owner(&msg), Ok(key.public_key().eth_address()));
        // The "compressed" flag (+4) recovers the same key, as in btcec.
        let mut flagged = *sig.as_bytes();
        flagged[64] += 4;
        let flagged = SwarmSignature::from_bytes(&flagged).expect("31 or 32 is accepted");
        assert_eq!(flagged.recover(&msg), Ok(key.public_key()));
    }

    #[test]
    fn bad_signatures_are_typed_errors() {
        assert_eq!(
            SwarmSignature::from_bytes(&[0; 64]),
            Err(SignatureError::Length { len: 64 })
        );
        let mut raw = [1u8; 65];
        raw[64] = 1;
        assert_eq!(
            SwarmSignature::from_bytes(&raw),
            Err(SignatureError::RecoveryByte(1))
        );
        raw[64] = 35;
        assert_eq!(
            SwarmSignature::from_bytes(&raw),
            Err(SignatureError::RecoveryByte(35))
        );
        let zero_rs = {
            let mut z = [0u8; 65];
            z[64] = 27;
            SwarmSignature::from_bytes(&z).expect("v in range")
        };
        assert!(matches!(
            zero_rs.recover(&[1; 32]),
            Err(SignatureError::Recovery(_))
        ));
    }
}
