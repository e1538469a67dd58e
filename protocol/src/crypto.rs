//! Hashing and secp256k1 primitives shared by the Whisper and Swarm codecs.
//!
//! Keccak here is legacy Keccak-256 (Ethereum padding), not FIPS SHA3-256. Signatures are
//! kept in the 65-byte `R ‖ S ‖ V` form with V in {0, 1}; each protocol adapts V to its own
//! convention (Whisper keeps 0/1, Swarm adds 27). Signatures are verified by recovering the
//! signer, never by comparing signature bytes.

use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use secp256k1::{Message, SECP256K1};
use sha3::{Digest, Keccak256};

/// Errors from key parsing, signing and recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// A private key was zero or not below the curve order.
    #[error("invalid private key")]
    InvalidPrivateKey,
    /// A public key did not parse as a point on secp256k1.
    #[error("invalid public key")]
    InvalidPublicKey,
    /// A signature had a recovery id outside {0, 1, 2, 3} or R/S out of range.
    #[error("invalid signature")]
    InvalidSignature,
    /// Recovery failed: no public key produces this signature for this digest.
    #[error("signature recovery failed")]
    RecoveryFailed,
}

/// Legacy Keccak-256 of `data`.
pub fn keccak256(data: impl AsRef<[u8]>) -> [u8; 32] {
    Keccak256::digest(data.as_ref()).into()
}

/// Keccak-256 over several byte strings, as if concatenated.
pub fn keccak256_concat(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Keccak256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// The Ethereum personal-message digest of a 32-byte message:
/// `keccak256("\x19Ethereum Signed Message:\n32" ‖ message)`, as Bee's `crypto.Sign`
/// (`hashWithEthereumPrefix`) and bee-js `PrivateKey.sign` compute it before signing.
pub fn eth_message_digest(message: &[u8; 32]) -> [u8; 32] {
    keccak256_concat(&[b"\x19Ethereum Signed Message:\n32", message])
}

/// A secp256k1 private key. Its `Debug` never prints the key.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKey(secp256k1::SecretKey);

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

impl PrivateKey {
    /// Parses 32 big-endian bytes; zero and values ≥ n are rejected.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CryptoError::InvalidPrivateKey)?;
        secp256k1::SecretKey::from_byte_array(&arr)
            .map(Self)
            .map_err(|_| CryptoError::InvalidPrivateKey)
    }

    /// Draws a fresh key from `rng` (rejection sampling over 32-byte strings).
    pub fn random(rng: &mut (impl rand_core::RngCore + rand_core::CryptoRng)) -> Self {
        loop {
            let mut b = [0u8; 32];
            rng.fill_bytes(&mut b);
            if let Ok(k) = Self::from_bytes(&b) {
                return k;
            }
        }
    }

    /// The 32 key bytes. Callers must keep them out of logs.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.secret_bytes()
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.public_key(SECP256K1))
    }

    /// Signs a 32-byte digest (RFC 6979 nonce, low-S, as libsecp256k1 and geth do).
    pub fn sign_digest(&self, digest: &[u8; 32]) -> Signature {
        let sig = SECP256K1.sign_ecdsa_recoverable(&Message::from_digest(*digest), &self.0);
        let (id, rs) = sig.serialize_compact();
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&rs);
        // The recovery id is 0..=3 by construction.
        out[64] = i32::from(id) as u8;
        Signature(out)
    }

    /// ECDH: the x coordinate of `self · peer`, 32 bytes big-endian.
    pub fn ecdh_x(&self, peer: &PublicKey) -> [u8; 32] {
        let point = secp256k1::ecdh::shared_secret_point(&peer.0, &self.0);
        let mut x = [0u8; 32];
        x.copy_from_slice(&point[..32]);
        x
    }
}

/// A secp256k1 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(secp256k1::PublicKey);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", hex::encode(self.to_uncompressed()))
    }
}

impl PublicKey {
    /// Parses a 33-byte compressed or 65-byte uncompressed SEC1 key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        secp256k1::PublicKey::from_slice(bytes)
            .map(Self)
            .map_err(|_| CryptoError::InvalidPublicKey)
    }

    /// Parses only the 65-byte `04 ‖ X ‖ Y` form, as geth's `UnmarshalPubkey` does.
    pub fn from_uncompressed(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != 65 || bytes[0] != 4 {
            return Err(CryptoError::InvalidPublicKey);
        }
        Self::from_bytes(bytes)
    }

    /// 65-byte `04 ‖ X ‖ Y`.
    pub fn to_uncompressed(&self) -> [u8; 65] {
        self.0.serialize_uncompressed()
    }

    /// 33-byte compressed form.
    pub fn to_compressed(&self) -> [u8; 33] {
        self.0.serialize()
    }

    /// The 20-byte Ethereum address: last 20 bytes of keccak256(X ‖ Y).
    pub fn eth_address(&self) -> [u8; 20] {
        let h = keccak256(&self.to_uncompressed()[1..]);
        let mut a = [0u8; 20];
        a.copy_from_slice(&h[12..]);
        a
    }
}

/// A 65-byte recoverable signature `R ‖ S ‖ V` with V in {0, 1, 2, 3}.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 65]);

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signature({})", hex::encode(self.0))
    }
}

impl Signature {
    /// Recovers the signer of `digest`. V must be 0..=3, as libsecp256k1 requires.
    pub fn recover(&self, digest: &[u8; 32]) -> Result<PublicKey, CryptoError> {
        let id = RecoveryId::try_from(i32::from(self.0[64]))
            .map_err(|_| CryptoError::InvalidSignature)?;
        let sig = RecoverableSignature::from_compact(&self.0[..64], id)
            .map_err(|_| CryptoError::InvalidSignature)?;
        SECP256K1
            .recover_ecdsa(&Message::from_digest(*digest), &sig)
            .map(PublicKey)
            .map_err(|_| CryptoError::RecoveryFailed)
    }

    /// Whether S is in the lower half of the curve order (what libsecp256k1 and geth
    /// produce). Formats that want one encoding per signature reject high S, because
    /// `(R, n − S)` with the other parity recovers the same key.
    pub fn is_low_s(&self) -> bool {
        match secp256k1::ecdsa::Signature::from_compact(&self.0[..64]) {
            Ok(sig) => {
                let mut normalized = sig;
                normalized.normalize_s();
                normalized == sig
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keccak_of_empty_is_the_known_constant() {
        // keccak256("") is the Ethereum empty-code hash, a protocol constant.
        assert_eq!(
            hex::encode(keccak256([])),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
    }

    #[test]
    fn sign_then_recover_gives_the_signer() {
        let k = PrivateKey::from_bytes(&keccak256(b"seed")).expect("valid key");
        let d = keccak256(b"digest");
        let sig = k.sign_digest(&d);
        assert_eq!(sig.recover(&d), Ok(k.public_key()));
    }

    #[test]
    fn bad_keys_and_recovery_ids_are_typed_errors() {
        assert_eq!(
            PrivateKey::from_bytes(&[0; 32]),
            Err(CryptoError::InvalidPrivateKey)
        );
        assert_eq!(
            PrivateKey::from_bytes(&[1; 31]),
            Err(CryptoError::InvalidPrivateKey)
        );
        assert_eq!(
            PublicKey::from_uncompressed(&[4; 64]),
            Err(CryptoError::InvalidPublicKey)
        );
        let mut sig = [1u8; 65];
        sig[64] = 4;
        assert_eq!(
            Signature(sig).recover(&[0; 32]),
            Err(CryptoError::InvalidSignature)
        );
    }

    #[test]
    fn high_s_is_detected() {
        let k = PrivateKey::from_bytes(&keccak256(b"seed")).expect("valid key");
        let d = keccak256(b"digest");
        let sig = k.sign_digest(&d);
        assert!(sig.is_low_s());
        // n − S with the parity flipped still recovers the signer, but is high-S.
        let n = hex::decode("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141")
            .expect("hex");
        let mut high = sig.0;
        let mut borrow = 0i16;
        for i in (0..32).rev() {
            let v = i16::from(n[i]) - i16::from(sig.0[32 + i]) - borrow;
            high[32 + i] = v.rem_euclid(256) as u8;
            borrow = i16::from(v < 0);
        }
        high[64] ^= 1;
        let high = Signature(high);
        assert_eq!(high.recover(&d), Ok(k.public_key()));
        assert!(!high.is_low_s());
    }

    #[test]
    fn private_key_debug_is_redacted() {
        let k = PrivateKey::from_bytes(&keccak256(b"seed")).expect("valid key");
        assert!(!format!("{k:?}").contains(&hex::encode(k.to_bytes())[..8]));
    }
}
