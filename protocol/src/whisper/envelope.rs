//! The Whisper v6 envelope: RLP `[Expiry, TTL, Topic, Data, Nonce]` and its hash.
//!
//! Integers are canonical RLP integers (minimal big-endian, `0x80` for zero), the topic a
//! 4-byte string, as go-ethereum's `rlp` package writes them (EIP-627's "4 bytes"/"8 bytes"
//! describes the Go types, not the wire). Decoding is strict like geth's: non-canonical
//! integers or headers, wrong element counts, wrong topic length and trailing bytes are errors.
//! The envelope hash is keccak256 of the full 5-element encoding; because decoding accepts only
//! canonical input, re-encoding a decoded envelope reproduces the received bytes exactly.

use alloy_rlp::{Decodable, Encodable, Header};

use super::topic::{TOPIC_LENGTH, Topic};
use crate::crypto::keccak256;

/// Bytes that geth counts for an envelope besides its data (`EnvelopeHeaderLength`).
pub const ENVELOPE_HEADER_LENGTH: usize = 20;

/// A Whisper v6 envelope.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Envelope {
    /// Unix time (seconds) after which the envelope is dropped.
    pub expiry: u32,
    /// Time to live in seconds; `expiry - ttl` is when it was sent.
    pub ttl: u32,
    /// The 4-byte topic.
    pub topic: Topic,
    /// The encrypted message.
    pub data: Vec<u8>,
    /// The proof-of-work nonce.
    pub nonce: u64,
}

/// A 32-byte envelope hash: keccak256 of the envelope's RLP.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EnvelopeHash(pub [u8; 32]);

impl std::fmt::Debug for EnvelopeHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EnvelopeHash(0x{})", hex::encode(self.0))
    }
}

impl std::fmt::Display for EnvelopeHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

/// Which part of the envelope a decoding error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The outer list header.
    List,
    /// `Expiry`.
    Expiry,
    /// `TTL`.
    Ttl,
    /// `Topic`.
    Topic,
    /// `Data`.
    Data,
    /// `Nonce`.
    Nonce,
}

/// Errors from decoding an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// No bytes at all.
    #[error("empty envelope")]
    Empty,
    /// The outer item is a string, not a list.
    #[error("envelope is not an rlp list")]
    NotAList,
    /// An RLP defect in one field (non-canonical, too long for the type, truncated, a list
    /// where a string belongs, ...).
    #[error("bad rlp in {field:?}: {source}")]
    Rlp {
        /// The field being decoded.
        field: Field,
        /// What alloy-rlp found.
        source: alloy_rlp::Error,
    },
    /// Bytes follow the envelope list.
    #[error("{0} trailing bytes after the envelope")]
    TrailingBytes(usize),
    /// The list ends before all five fields.
    #[error("envelope has fewer than five fields")]
    TooFewFields,
    /// The list has more than five fields.
    #[error("envelope has more than five fields")]
    TooManyFields,
    /// The topic string is not four bytes.
    #[error("topic must be 4 bytes, got {0}")]
    TopicLength(usize),
}

impl Envelope {
    /// Decodes exactly one envelope from `bytes`; trailing bytes are an error.
    pub fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        if bytes.is_empty() {
            return Err(EnvelopeError::Empty);
        }
        let mut buf = bytes;
        let header = Header::decode(&mut buf).map_err(rlp(Field::List))?;
        if !header.list {
            return Err(EnvelopeError::NotAList);
        }
        // alloy-rlp's header decoder already refuses a length beyond the input.
        if buf.len() < header.payload_length {
            return Err(EnvelopeError::Rlp {
                field: Field::List,
                source: alloy_rlp::Error::InputTooShort,
            });
        }
        let (mut body, rest) = buf.split_at(header.payload_length);
        if !rest.is_empty() {
            return Err(EnvelopeError::TrailingBytes(rest.len()));
        }
        let expiry = field(&mut body, Field::Expiry, u32::decode)?;
        let ttl = field(&mut body, Field::Ttl, u32::decode)?;
        let topic_bytes = field(&mut body, Field::Topic, |b| Header::decode_bytes(b, false))?;
        let topic = Topic::from_slice(topic_bytes)
            .map_err(|_| EnvelopeError::TopicLength(topic_bytes.len()))?;
        let data = field(&mut body, Field::Data, |b| Header::decode_bytes(b, false))?.to_vec();
        let nonce = field(&mut body, Field::Nonce, u64::decode)?;
        if !body.is_empty() {
            return Err(EnvelopeError::TooManyFields);
        }
        Ok(Envelope {
            expiry,
            ttl,
            topic,
            data,
            nonce,
        })
    }

    /// The full RLP encoding `[Expiry, TTL, Topic, Data, Nonce]`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 32);
        self.encode_into(&mut out, true);
        out
    }

    /// The RLP of `[Expiry, TTL, Topic, Data]`, the input of both PoW formulas.
    pub fn encode_without_nonce(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 24);
        self.encode_into(&mut out, false);
        out
    }

    /// keccak256 of [`Envelope::encode`].
    pub fn hash(&self) -> EnvelopeHash {
        EnvelopeHash(keccak256(self.encode()))
    }

    /// geth's `size()`: 20 + len(Data), the size limits and the seal target use.
    pub fn size(&self) -> usize {
        ENVELOPE_HEADER_LENGTH + self.data.len()
    }

    /// When the envelope was sent: `expiry - ttl` (wrapping, as geth's uint32 arithmetic).
    pub fn sent(&self) -> u32 {
        self.expiry.wrapping_sub(self.ttl)
    }

    fn encode_into(&self, out: &mut Vec<u8>, with_nonce: bool) {
        let topic: &[u8; TOPIC_LENGTH] = &self.topic.0;
        let data: &[u8] = &self.data;
        let mut payload_length =
            self.expiry.length() + self.ttl.length() + topic.length() + data.length();
        if with_nonce {
            payload_length += self.nonce.length();
        }
        Header {
            list: true,
            payload_length,
        }
        .encode(out);
        self.expiry.encode(out);
        self.ttl.encode(out);
        topic.encode(out);
        data.encode(out);
        if with_nonce {
            self.nonce.encode(out);
        }
    }
}

fn rlp(field: Field) -> impl Fn(alloy_rlp::Error) -> EnvelopeError {
    move |source| EnvelopeError::Rlp { field, source }
}

/// Decodes one field, turning an exhausted list into `TooFewFields`.
fn field<'a, T>(
    body: &mut &'a [u8],
    which: Field,
    decode: impl FnOnce(&mut &'a [u8]) -> alloy_rlp::Result<T>,
) -> Result<T, EnvelopeError> {
    if body.is_empty() {
        return Err(EnvelopeError::TooFewFields);
    }
    decode(body).map_err(rlp(which))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        Envelope {
            expiry: 5,
            ttl: 10,
            topic: Topic([1, 2, 3, 4]),
            data: vec![0xde, 0xad, 0xbe, 0xef],
            nonce: 276,
        }
    }

    #[test]
    fn encode_then_decode_round_trips() {
        let env = sample();
        assert_eq!(Envelope::decode(&env.encode()), Ok(env));
    }

    #[test]
    fn structural_defects_get_their_own_variant() {
        let good = sample().encode();
        assert_eq!(Envelope::decode(&[]), Err(EnvelopeError::Empty));
        assert_eq!(
            Envelope::decode(&[0x84, 1, 2, 3, 4]),
            Err(EnvelopeError::NotAList)
        );
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(
            Envelope::decode(&trailing),
            Err(EnvelopeError::TrailingBytes(1))
        );
        assert_eq!(
            Envelope::decode(&good[..good.len() - 1]),
            Err(EnvelopeError::Rlp {
                field: Field::List,
                source: alloy_rlp::Error::InputTooShort
            })
        );
    }
}
