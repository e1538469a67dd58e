//! Single-owner chunks (SOC).
//!
//! Layout (Bee `pkg/soc/soc.go` `toBytes` / `FromChunk`, bee-js `src/chunk/soc.ts`):
//! `id (32) ‖ signature (65, v = 27/28 last) ‖ span (8, LE) ‖ payload`; everything after the
//! signature is the wrapped content-addressed chunk. The address is `keccak256(id ‖ owner)`,
//! and the owner signs `keccak256(id ‖ wrapped chunk address)` with the Ethereum prefix.
//! Parsing follows Bee's `pkg/soc/validator.go`: rebuild the wrapped chunk, recover the owner
//! from the signature, then (when an address is given) require `keccak256(id ‖ owner)` to
//! match it.
//!
//! Bee's extra rule for redundancy replica SOCs (owner `swarm.ReplicasOwner`) belongs to the
//! erasure-coding feature and is not applied here.

use crate::crypto::{PrivateKey, keccak256_concat};

use super::bmt::{CHUNK_SIZE, SPAN_SIZE};
use super::chunk::{Cac, ChunkAddress, ChunkError};
use super::signature::{SIGNATURE_SIZE, SignatureError, SwarmSignature};

/// Bytes in a SOC identifier.
pub const ID_SIZE: usize = 32;
/// Smallest SOC: id, signature and span with an empty payload.
pub const MIN_SOC_SIZE: usize = ID_SIZE + SIGNATURE_SIZE + SPAN_SIZE;
/// Largest SOC: a full 4096-byte payload.
pub const MAX_SOC_SIZE: usize = MIN_SOC_SIZE + CHUNK_SIZE;

/// Errors from building and parsing single-owner chunks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SocError {
    /// Fewer than 105 bytes.
    #[error("soc of {len} bytes is shorter than 105")]
    TooShort {
        /// Length received.
        len: usize,
    },
    /// More than 4201 bytes.
    #[error("soc of {len} bytes is longer than 4201")]
    TooLong {
        /// Length received.
        len: usize,
    },
    /// The wrapped chunk is malformed.
    #[error("wrapped chunk: {0}")]
    Chunk(#[from] ChunkError),
    /// The signature is malformed or does not recover.
    #[error("soc signature: {0}")]
    Signature(#[from] SignatureError),
    /// `keccak256(id ‖ recovered owner)` is not the expected address.
    #[error("soc address is {actual}, expected {expected}")]
    AddressMismatch {
        /// Address the caller expected.
        expected: ChunkAddress,
        /// Address computed from id and recovered owner.
        actual: ChunkAddress,
    },
}

/// The SOC address `keccak256(id ‖ owner)`.
pub fn address(id: &[u8; ID_SIZE], owner: &[u8; 20]) -> ChunkAddress {
    ChunkAddress::from_bytes(keccak256_concat(&[id, owner]))
}

/// What the owner signs: `keccak256(id ‖ wrapped chunk address)` (before the Ethereum prefix).
pub fn to_sign(id: &[u8; ID_SIZE], wrapped: &ChunkAddress) -> [u8; 32] {
    keccak256_concat(&[id, wrapped.as_bytes()])
}

/// A single-owner chunk whose owner was recovered from its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SingleOwnerChunk {
    id: [u8; ID_SIZE],
    signature: SwarmSignature,
    owner: [u8; 20],
    wrapped: Cac,
    address: ChunkAddress,
}

impl SingleOwnerChunk {
    /// Signs `wrapped` under `id` with `key` (RFC 6979 nonce, as Bee).
    pub fn sign(key: &PrivateKey, id: [u8; ID_SIZE], wrapped: Cac) -> Self {
        let signature = SwarmSignature::sign(key, &to_sign(&id, wrapped.address()));
        let owner = key.public_key().eth_address();
        Self {
            address: address(&id, &owner),
            id,
            signature,
            owner,
            wrapped,
        }
    }

    /// Assembles a SOC from parts received separately (Bee's `POST /soc/{owner}/{id}?sig=`),
    /// recovering the owner. The caller compares [`Self::owner`] with the claimed owner.
    pub fn from_parts(
        id: [u8; ID_SIZE],
        signature: SwarmSignature,
        wrapped: Cac,
    ) -> Result<Self, SocError> {
        let owner = signature.recover_owner(&to_sign(&id, wrapped.address()))?;
        Ok(Self {
            address: address(&id, &owner),
            id,
            signature,
            owner,
            wrapped,
        })
    }

    /// Parses SOC bytes and recovers the owner; the address follows from id and owner.
    pub fn parse(data: &[u8]) -> Result<Self, SocError> {
        if data.len() < MIN_SOC_SIZE {
            return Err(SocError::TooShort { len: data.len() });
        }
        if data.len() > MAX_SOC_SIZE {
            return Err(SocError::TooLong { len: data.len() });
        }
        let (id, rest) = data
            .split_first_chunk::<ID_SIZE>()
            .ok_or(SocError::TooShort { len: data.len() })?;
        let (sig, cac) = rest
            .split_first_chunk::<SIGNATURE_SIZE>()
            .ok_or(SocError::TooShort { len: data.len() })?;
        let signature = SwarmSignature::from_bytes(sig)?;
        Self::from_parts(*id, signature, Cac::from_data(cac)?)
    }

    /// Parses SOC bytes fetched under `expected` and checks that the address matches.
    pub fn parse_at(expected: &ChunkAddress, data: &[u8]) -> Result<Self, SocError> {
        let soc = Self::parse(data)?;
        if soc.address != *expected {
            return Err(SocError::AddressMismatch {
                expected: *expected,
                actual: soc.address,
            });
        }
        Ok(soc)
    }

    /// The wire form `id ‖ signature ‖ span ‖ payload`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ID_SIZE + SIGNATURE_SIZE + self.wrapped.data_len());
        out.extend_from_slice(&self.id);
        out.extend_from_slice(self.signature.as_bytes());
        out.extend_from_slice(&self.wrapped.span_bytes());
        out.extend_from_slice(self.wrapped.payload());
        out
    }

    /// The identifier.
    pub fn id(&self) -> &[u8; ID_SIZE] {
        &self.id
    }

    /// The signature as received or made.
    pub fn signature(&self) -> &SwarmSignature {
        &self.signature
    }

    /// The recovered owner's Ethereum address.
    pub fn owner(&self) -> &[u8; 20] {
        &self.owner
    }

    /// The wrapped content-addressed chunk.
    pub fn wrapped(&self) -> &Cac {
        &self.wrapped
    }

    /// The SOC address `keccak256(id ‖ owner)`.
    pub fn address(&self) -> &ChunkAddress {
        &self.address
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keccak256;

    fn key() -> PrivateKey {
        PrivateKey::from_bytes(&keccak256(b"soc-owner")).expect("valid")
    }

    #[test]
    fn sign_serialise_parse_round_trip() {
        let soc = SingleOwnerChunk::sign(&key(), [9; 32], Cac::new(b"hello").expect("fits"));
        let bytes = soc.to_bytes();
        assert_eq!(bytes.len(), MIN_SOC_SIZE + 5);
        assert_eq!(SingleOwnerChunk::parse(&bytes), Ok(soc.clone()));
        assert_eq!(
            SingleOwnerChunk::parse_at(soc.address(), &bytes),
            Ok(soc.clone())
        );
        assert_eq!(*soc.owner(), key().public_key().eth_address());
    }

    #[test]
    fn defects_are_typed_errors() {
        let soc = SingleOwnerChunk::sign(&key(), [9; 32], Cac::new(b"hello").expect("fits"));
        let bytes = soc.to_bytes();
        assert_eq!(
            SingleOwnerChunk::parse(&bytes[..104]),
            Err(SocError::TooShort { len: 104 })
        );
        assert_eq!(
            SingleOwnerChunk::parse(&[0; MAX_SOC_SIZE + 1]),
            Err(SocError::TooLong { len: 4202 })
        );
        let mut bad_v = bytes.clone();
        bad_v[32 + 64] = 1;
        assert_eq!(
            SingleOwnerChunk::parse(&bad_v),
            Err(SocError::Signature(SignatureError::RecoveryByte(1)))
        );
        // A changed payload still recovers *some* key, so the owner and address change.
        let mut tampered = bytes.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(matches!(
            SingleOwnerChunk::parse_at(soc.address(), &tampered),
            Err(SocError::AddressMismatch { .. }) | Err(SocError::Signature(_))
        ));
    }
}
