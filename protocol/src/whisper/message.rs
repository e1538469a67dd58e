//! The Whisper plaintext message: what sits inside an envelope's encrypted data.
//!
//! Layout (geth `message.go`, EIP-627): `flags(1) ‖ size(1..3, LE) ‖ payload ‖ padding
//! [‖ signature(65)]`. `flags & 0x03` is the size field's length, `flags & 0x04` marks a
//! signature; other bits are ignored. The signature is secp256k1 over
//! `keccak256(everything before it)` with V in {0, 1}.
//!
//! Default padding makes the whole plaintext (signature included) a multiple of 256 bytes and
//! is never empty (1..=256 bytes). Explicit padding is used verbatim. Legacy clients never
//! interpret padding, which is why Staples can carry its own metadata there.
//!
//! Parsing rejects every input geth v1.9.7 rejects *and* every input on which geth panics
//! (a declared size 1..=3 bytes beyond the data, a truncated size field): those are errors
//! here, never a crash.

use crate::crypto::{CryptoError, PrivateKey, PublicKey, Signature, keccak256};

/// Flag bits holding the size field's length.
pub const SIZE_MASK: u8 = 0x03;
/// Flag bit set when a signature is appended.
pub const SIGNATURE_FLAG: u8 = 0x04;
/// Length of the appended signature.
pub const SIGNATURE_LENGTH: usize = 65;
/// Default padding aligns the plaintext to this many bytes.
pub const PAD_SIZE_LIMIT: usize = 256;
/// The largest payload a 3-byte size field can declare.
pub const MAX_PAYLOAD: usize = (1 << 24) - 1;

/// Errors from building or parsing a plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Zero bytes: not even a flags byte.
    #[error("empty plaintext")]
    Empty,
    /// The signed flag is set but there is no room for flags plus a signature.
    #[error("signed plaintext too short for a signature")]
    SignedTooShort,
    /// The signature did not recover to a public key.
    #[error("bad signature: {0}")]
    BadSignature(CryptoError),
    /// The size field runs past the end of the message.
    #[error("size field of {0} bytes is truncated")]
    SizeFieldTruncated(usize),
    /// The declared payload size runs past the end of the message.
    #[error("declared payload of {declared} bytes but only {available} present")]
    PayloadOverrun {
        /// Size from the size field.
        declared: usize,
        /// Bytes available for the payload.
        available: usize,
    },
    /// A payload larger than a 3-byte size field can describe.
    #[error("payload of {0} bytes is too large")]
    PayloadTooLarge(usize),
}

/// A parsed plaintext.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Plaintext {
    /// The flags byte as received.
    pub flags: u8,
    /// The payload the sender's app posted.
    pub payload: Vec<u8>,
    /// The padding (authenticated by the signature, ignored by legacy apps).
    pub padding: Vec<u8>,
    /// The signature and its recovered signer, when signed.
    pub signature: Option<(Signature, PublicKey)>,
}

/// Length of the size field geth writes for a payload: 1 below 256, 2 below 65536, else 3.
pub fn size_field_len(payload_len: usize) -> usize {
    let mut s = 1;
    let mut i = payload_len;
    while i >= 256 {
        s += 1;
        i /= 256;
    }
    s
}

/// The default padding length: `256 - (raw % 256)` where raw counts flags, size field,
/// payload and the signature if any; so 1..=256, never 0.
pub fn default_padding_len(payload_len: usize, signed: bool) -> usize {
    let mut raw = 1 + size_field_len(payload_len) + payload_len;
    if signed {
        raw += SIGNATURE_LENGTH;
    }
    PAD_SIZE_LIMIT - raw % PAD_SIZE_LIMIT
}

/// Random default padding drawn from `rng`.
pub fn random_padding(
    payload_len: usize,
    signed: bool,
    rng: &mut (impl rand_core::RngCore + rand_core::CryptoRng),
) -> Vec<u8> {
    let mut pad = vec![0u8; default_padding_len(payload_len, signed)];
    rng.fill_bytes(&mut pad);
    pad
}

/// Builds `flags ‖ size ‖ payload ‖ padding [‖ signature]` with the given padding bytes.
pub fn build(
    payload: &[u8],
    padding: &[u8],
    signer: Option<&PrivateKey>,
) -> Result<Vec<u8>, MessageError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(MessageError::PayloadTooLarge(payload.len()));
    }
    let size_len = size_field_len(payload.len());
    let mut raw = Vec::with_capacity(1 + size_len + payload.len() + padding.len() + 65);
    // size_len is 1..=3 because of the cap above.
    let mut flags = size_len as u8;
    if signer.is_some() {
        flags |= SIGNATURE_FLAG;
    }
    raw.push(flags);
    raw.extend_from_slice(&(payload.len() as u32).to_le_bytes()[..size_len]);
    raw.extend_from_slice(payload);
    raw.extend_from_slice(padding);
    if let Some(key) = signer {
        // geth sets the flag first, so the signature covers it.
        let sig = key.sign_digest(&keccak256(&raw));
        raw.extend_from_slice(&sig.0);
    }
    Ok(raw)
}

/// Parses a decrypted plaintext like geth's `ValidateAndParse`, minus its panics.
pub fn parse(raw: &[u8]) -> Result<Plaintext, MessageError> {
    let Some(&flags) = raw.first() else {
        return Err(MessageError::Empty);
    };
    let mut end = raw.len();
    let mut signature = None;
    if flags & SIGNATURE_FLAG != 0 {
        // geth: end -= 65; if end <= 1 reject.
        end = end
            .checked_sub(SIGNATURE_LENGTH)
            .filter(|e| *e > 1)
            .ok_or(MessageError::SignedTooShort)?;
        let mut sig = [0u8; SIGNATURE_LENGTH];
        sig.copy_from_slice(&raw[end..]);
        let sig = Signature(sig);
        let signer = sig
            .recover(&keccak256(&raw[..end]))
            .map_err(MessageError::BadSignature)?;
        signature = Some((sig, signer));
    }
    let size_len = usize::from(flags & SIZE_MASK);
    let mut beg = 1;
    let mut payload = Vec::new();
    if size_len != 0 {
        let field = raw
            .get(beg..beg + size_len)
            .filter(|_| beg + size_len <= end)
            .ok_or(MessageError::SizeFieldTruncated(size_len))?;
        let mut le = [0u8; 4];
        le[..size_len].copy_from_slice(field);
        let declared = u32::from_le_bytes(le) as usize;
        beg += size_len;
        let available = end - beg;
        if declared > available {
            return Err(MessageError::PayloadOverrun {
                declared,
                available,
            });
        }
        payload = raw[beg..beg + declared].to_vec();
        beg += declared;
    }
    Ok(Plaintext {
        flags,
        payload,
        padding: raw[beg..end].to_vec(),
        signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_field_grows_at_byte_boundaries() {
        assert_eq!(size_field_len(0), 1);
        assert_eq!(size_field_len(255), 1);
        assert_eq!(size_field_len(256), 2);
        assert_eq!(size_field_len(65_535), 2);
        assert_eq!(size_field_len(65_536), 3);
    }

    #[test]
    fn build_then_parse_round_trips_signed_and_unsigned() {
        let key = PrivateKey::from_bytes(&keccak256(b"k")).expect("valid key");
        for signer in [None, Some(&key)] {
            let raw = build(b"payload", b"pad", signer).expect("small payload");
            let p = parse(&raw).expect("own output parses");
            assert_eq!(p.payload, b"payload");
            assert_eq!(p.padding, b"pad");
            assert_eq!(p.signature.map(|s| s.1), signer.map(|k| k.public_key()));
        }
    }

    #[test]
    fn tampering_with_a_signed_message_changes_the_signer() {
        let key = PrivateKey::from_bytes(&keccak256(b"k")).expect("valid key");
        let mut raw = build(b"payload", b"pad", Some(&key)).expect("small payload");
        raw[3] ^= 1;
        let signer = parse(&raw).ok().and_then(|p| p.signature).map(|s| s.1);
        assert_ne!(signer, Some(key.public_key()));
    }

    #[test]
    fn oversized_payload_is_refused() {
        let big = vec![0u8; MAX_PAYLOAD + 1];
        assert_eq!(
            build(&big, &[], None),
            Err(MessageError::PayloadTooLarge(MAX_PAYLOAD + 1))
        );
    }
}
