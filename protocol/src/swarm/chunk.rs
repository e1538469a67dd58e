//! Chunk addresses and content-addressed chunks (CAC).
//!
//! Wire form (Bee `pkg/cac/cac.go`, bee-js `src/chunk/cac.ts`): `span (8, u64 LE) ‖ payload
//! (0..=4096)`; the address is the [BMT hash](super::bmt::hash) of span and payload. Like
//! Bee's `cac.NewWithDataSpan`, parsing accepts any span: intermediate chunks of a file tree
//! carry subtree sizes there and PSS trojan chunks a topic hint.

use std::fmt;
use std::str::FromStr;

use super::bmt::{self, CHUNK_SIZE, SPAN_SIZE};

/// Errors from chunk addresses and content-addressed chunks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// Chunk data is shorter than its 8-byte span.
    #[error("chunk data of {len} bytes is shorter than the span")]
    TooShort {
        /// Length received.
        len: usize,
    },
    /// The payload is longer than 4096 bytes.
    #[error("chunk payload of {len} bytes exceeds 4096")]
    PayloadTooLarge {
        /// Payload length received.
        len: usize,
    },
    /// The data does not hash to the address it was fetched under.
    #[error("chunk hashes to {actual}, expected {expected}")]
    AddressMismatch {
        /// Address the caller expected.
        expected: ChunkAddress,
        /// Address the data hashes to.
        actual: ChunkAddress,
    },
    /// An address was not 32 bytes long.
    #[error("address of {len} bytes, expected 32")]
    AddressLength {
        /// Length received.
        len: usize,
    },
    /// An address string was not 64 hex digits.
    #[error("address is not 64 hex digits")]
    AddressHex,
}

/// A 32-byte Swarm address: the BMT hash of a CAC, the `keccak256(id ‖ owner)` of a SOC, or a
/// reference read from a parent chunk.
///
/// Built only through [`ChunkAddress::from_bytes`] (any 32 bytes are an address), the
/// length-checked `TryFrom<&[u8]>`, hex parsing, or the hashing functions of this module.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkAddress([u8; 32]);

impl ChunkAddress {
    /// Wraps 32 address bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The address bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex without `0x`, the form Bee's HTTP API uses.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl TryFrom<&[u8]> for ChunkAddress {
    type Error = ChunkError;

    fn try_from(bytes: &[u8]) -> Result<Self, ChunkError> {
        <[u8; 32]>::try_from(bytes)
            .map(Self)
            .map_err(|_| ChunkError::AddressLength { len: bytes.len() })
    }
}

impl FromStr for ChunkAddress {
    type Err = ChunkError;

    /// Parses 64 hex digits, with or without a `0x` prefix.
    fn from_str(s: &str) -> Result<Self, ChunkError> {
        let s = s.strip_prefix("0x").unwrap_or(s);
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| ChunkError::AddressHex)?;
        Ok(Self(out))
    }
}

impl AsRef<[u8]> for ChunkAddress {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for ChunkAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ChunkAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkAddress({})", self.to_hex())
    }
}

/// A content-addressed chunk: span, payload, and the address they hash to.
#[derive(Clone, PartialEq, Eq)]
pub struct Cac {
    address: ChunkAddress,
    span: u64,
    payload: Vec<u8>,
}

impl fmt::Debug for Cac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cac")
            .field("address", &self.address)
            .field("span", &self.span)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

impl Cac {
    /// A chunk whose span is the payload length (Bee `cac.New`).
    pub fn new(payload: &[u8]) -> Result<Self, ChunkError> {
        Self::with_span(payload.len() as u64, payload)
    }

    /// A chunk with an explicit span (Bee `cac.NewWithDataSpan` after splitting).
    pub fn with_span(span: u64, payload: &[u8]) -> Result<Self, ChunkError> {
        let address = bmt::hash(span, payload)
            .map(ChunkAddress)
            .map_err(|_| ChunkError::PayloadTooLarge { len: payload.len() })?;
        Ok(Self {
            address,
            span,
            payload: payload.to_vec(),
        })
    }

    /// A chunk from a payload whose size the type system bounds (at most 4096 bytes).
    pub fn from_array<const N: usize>(span: u64, payload: &[u8; N]) -> Self {
        const { assert!(N <= CHUNK_SIZE) };
        Self {
            address: ChunkAddress(bmt::hash_fitting(span, payload)),
            span,
            payload: payload.to_vec(),
        }
    }

    /// A chunk from the references of an intermediate tree node: at most 128 of them.
    pub(crate) fn from_fitting(span: u64, payload: Vec<u8>) -> Self {
        debug_assert!(payload.len() <= CHUNK_SIZE);
        Self {
            address: ChunkAddress(bmt::hash_fitting(span, &payload)),
            span,
            payload,
        }
    }

    /// Parses chunk data `span ‖ payload` and computes its address.
    pub fn from_data(data: &[u8]) -> Result<Self, ChunkError> {
        let (span, payload) = data
            .split_first_chunk::<SPAN_SIZE>()
            .ok_or(ChunkError::TooShort { len: data.len() })?;
        if payload.len() > CHUNK_SIZE {
            return Err(ChunkError::PayloadTooLarge { len: payload.len() });
        }
        Self::with_span(u64::from_le_bytes(*span), payload)
    }

    /// Parses chunk data fetched under `address` and checks that it hashes there.
    pub fn from_data_at(address: &ChunkAddress, data: &[u8]) -> Result<Self, ChunkError> {
        let chunk = Self::from_data(data)?;
        if chunk.address != *address {
            return Err(ChunkError::AddressMismatch {
                expected: *address,
                actual: chunk.address,
            });
        }
        Ok(chunk)
    }

    /// The chunk's address.
    pub fn address(&self) -> &ChunkAddress {
        &self.address
    }

    /// The span as a number.
    pub fn span(&self) -> u64 {
        self.span
    }

    /// The span as its 8 wire bytes (little-endian).
    pub fn span_bytes(&self) -> [u8; SPAN_SIZE] {
        self.span.to_le_bytes()
    }

    /// The payload, without padding.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Length of the wire form: 8 + payload length.
    pub fn data_len(&self) -> usize {
        SPAN_SIZE + self.payload.len()
    }

    /// The wire form `span ‖ payload`.
    pub fn to_data(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data_len());
        out.extend_from_slice(&self.span_bytes());
        out.extend_from_slice(&self.payload);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_round_trips_and_keeps_any_span() {
        let c = Cac::with_span(u64::MAX, b"abc").expect("fits");
        let back = Cac::from_data(&c.to_data()).expect("parses");
        assert_eq!(back, c);
        assert_eq!(back.span_bytes(), [0xff; 8]);
        assert_eq!(Cac::from_data_at(c.address(), &c.to_data()), Ok(c));
    }

    #[test]
    fn malformed_data_is_a_typed_error() {
        assert_eq!(
            Cac::from_data(&[0; 7]),
            Err(ChunkError::TooShort { len: 7 })
        );
        assert_eq!(
            Cac::from_data(&[0; 8 + 4097]),
            Err(ChunkError::PayloadTooLarge { len: 4097 })
        );
        assert_eq!(
            Cac::new(&[0; 4097]),
            Err(ChunkError::PayloadTooLarge { len: 4097 })
        );
        let c = Cac::new(b"x").expect("fits");
        let wrong = ChunkAddress::from_bytes([7; 32]);
        assert_eq!(
            Cac::from_data_at(&wrong, &c.to_data()),
            Err(ChunkError::AddressMismatch {
                expected: wrong,
                actual: *c.address()
            })
        );
    }

    #[test]
    fn addresses_parse_from_hex_and_slices() {
        let a = ChunkAddress::from_bytes([0xab; 32]);
        assert_eq!(a.to_hex().parse::<ChunkAddress>(), Ok(a));
        assert_eq!(format!("0x{a}").parse::<ChunkAddress>(), Ok(a));
        assert_eq!("abcd".parse::<ChunkAddress>(), Err(ChunkError::AddressHex));
        assert_eq!(
            ChunkAddress::try_from(&[1u8; 31][..]),
            Err(ChunkError::AddressLength { len: 31 })
        );
        assert_eq!(ChunkAddress::try_from(&[0xab; 32][..]), Ok(a));
    }
}
