//! Sequence feeds: topics, update identifiers and addresses, and the two update shapes.
//!
//! Bee `pkg/feeds/feed.go`, `pkg/feeds/sequence/sequence.go`, `pkg/feeds/getter.go`; bee-js
//! `src/feed/identifier.ts`, `src/feed/index.ts`. A topic is 32 bytes (bee-js
//! `Topic.fromString` hashes a string with keccak256); update `index` of a feed lives in the
//! SOC with identifier `keccak256(topic ‖ u64be(index))`, so its address is
//! `keccak256(identifier ‖ owner)`.
//!
//! - **v1** (reference feeds, bee-js `updateFeedWithReference`): the wrapped chunk's payload is
//!   `u64be(unix seconds) ‖ reference(32)`, 48 bytes with the span, the length Bee's
//!   `isV1Length` recognises.
//! - **v2** (payload feeds): the SOC wraps the content chunk itself.
//!
//! A 48-byte update is ambiguous (Bee tries both readings); [`FeedUpdate::v1`] exposes the v1
//! reading and [`FeedUpdate::wrapped`] the v2 one. 80-byte v1 updates carry encrypted
//! references, which are out of scope.

use std::fmt;
use std::str::FromStr;

use crate::crypto::{PrivateKey, keccak256, keccak256_concat};

use super::chunk::{Cac, ChunkAddress};
use super::soc::{self, SingleOwnerChunk, SocError};

/// Payload length of a v1 update: timestamp and one unencrypted reference.
pub const V1_PAYLOAD_SIZE: usize = 8 + 32;

/// Errors from feed topics and updates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    /// The update is not a valid single-owner chunk.
    #[error("feed update: {0}")]
    Soc(#[from] SocError),
    /// The update was signed by someone other than the feed owner.
    #[error("feed update signed by {actual}, expected {expected}")]
    WrongOwner {
        /// Feed owner, hex.
        expected: String,
        /// Recovered signer, hex.
        actual: String,
    },
    /// The update's identifier is not the one for this topic and index.
    #[error("feed update identifier does not match topic and index")]
    WrongIdentifier,
    /// A v1 payload is not 40 bytes.
    #[error("v1 feed payload of {len} bytes, expected 40")]
    V1Length {
        /// Length received.
        len: usize,
    },
    /// A topic string was not 64 hex digits.
    #[error("feed topic is not 64 hex digits")]
    TopicHex,
}

/// A 32-byte feed topic.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FeedTopic([u8; 32]);

impl FeedTopic {
    /// bee-js `Topic.fromString`: `keccak256(utf8(name))`.
    pub fn from_string(name: &str) -> Self {
        Self(keccak256(name.as_bytes()))
    }

    /// A topic given as raw bytes (Bee takes topics as hex bytes in its URLs).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The topic bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl FromStr for FeedTopic {
    type Err = FeedError;

    /// Parses 64 hex digits (not a name: use [`FeedTopic::from_string`] for that).
    fn from_str(s: &str) -> Result<Self, FeedError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| FeedError::TopicHex)?;
        Ok(Self(out))
    }
}

impl fmt::Display for FeedTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for FeedTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FeedTopic({self})")
    }
}

/// The SOC identifier of update `index`: `keccak256(topic ‖ u64be(index))`.
pub fn identifier(topic: &FeedTopic, index: u64) -> [u8; 32] {
    keccak256_concat(&[topic.as_bytes(), &index.to_be_bytes()])
}

/// The chunk address of update `index` of `owner`'s feed.
pub fn update_address(owner: &[u8; 20], topic: &FeedTopic, index: u64) -> ChunkAddress {
    soc::address(&identifier(topic, index), owner)
}

/// The payload of a v1 (reference) update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V1Payload {
    /// Unix seconds chosen by the writer (Bee never reads it).
    pub timestamp: u64,
    /// The content reference.
    pub reference: ChunkAddress,
}

impl V1Payload {
    /// `u64be(timestamp) ‖ reference`.
    pub fn encode(&self) -> [u8; V1_PAYLOAD_SIZE] {
        let mut out = [0u8; V1_PAYLOAD_SIZE];
        out[..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..].copy_from_slice(self.reference.as_bytes());
        out
    }

    /// Parses exactly 40 bytes.
    pub fn decode(payload: &[u8]) -> Result<Self, FeedError> {
        let bytes: &[u8; V1_PAYLOAD_SIZE] = payload
            .try_into()
            .map_err(|_| FeedError::V1Length { len: payload.len() })?;
        let (ts, reference) = bytes.split_at(8);
        let mut t = [0u8; 8];
        t.copy_from_slice(ts);
        let mut r = [0u8; 32];
        r.copy_from_slice(reference);
        Ok(Self {
            timestamp: u64::from_be_bytes(t),
            reference: ChunkAddress::from_bytes(r),
        })
    }
}

/// Builds and signs v1 update `index`: the wrapped chunk holds timestamp and reference.
pub fn build_v1_update(
    key: &PrivateKey,
    topic: &FeedTopic,
    index: u64,
    payload: &V1Payload,
) -> SingleOwnerChunk {
    let wrapped = Cac::from_array(V1_PAYLOAD_SIZE as u64, &payload.encode());
    SingleOwnerChunk::sign(key, identifier(topic, index), wrapped)
}

/// Builds and signs v2 update `index`, wrapping `content` directly.
///
/// Content over 4096 bytes goes through the `/bytes` tree first; its root chunk is wrapped
/// (bee-js `updateFeedWithPayload`).
pub fn build_v2_update(
    key: &PrivateKey,
    topic: &FeedTopic,
    index: u64,
    content: Cac,
) -> SingleOwnerChunk {
    SingleOwnerChunk::sign(key, identifier(topic, index), content)
}

/// A verified update of a known feed at a known index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedUpdate {
    index: u64,
    soc: SingleOwnerChunk,
}

impl FeedUpdate {
    /// Parses update bytes and checks owner, topic and index.
    pub fn parse(
        data: &[u8],
        owner: &[u8; 20],
        topic: &FeedTopic,
        index: u64,
    ) -> Result<Self, FeedError> {
        let soc = SingleOwnerChunk::parse(data)?;
        if soc.owner() != owner {
            return Err(FeedError::WrongOwner {
                expected: hex::encode(owner),
                actual: hex::encode(soc.owner()),
            });
        }
        if *soc.id() != identifier(topic, index) {
            return Err(FeedError::WrongIdentifier);
        }
        Ok(Self { index, soc })
    }

    /// The update's index.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The single-owner chunk carrying the update.
    pub fn soc(&self) -> &SingleOwnerChunk {
        &self.soc
    }

    /// The wrapped chunk: the content itself under the v2 reading.
    pub fn wrapped(&self) -> &Cac {
        self.soc.wrapped()
    }

    /// The v1 reading, when the wrapped chunk has Bee's v1 length (48 bytes with the span).
    pub fn v1(&self) -> Option<V1Payload> {
        V1Payload::decode(self.wrapped().payload()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> PrivateKey {
        PrivateKey::from_bytes(&keccak256(b"feed-owner")).expect("valid")
    }

    #[test]
    fn v1_update_round_trips() {
        let topic = FeedTopic::from_string("t");
        let p = V1Payload {
            timestamp: 1_700_000_000,
            reference: ChunkAddress::from_bytes([5; 32]),
        };
        let soc = build_v1_update(&key(), &topic, 3, &p);
        assert_eq!(soc.wrapped().data_len(), 48);
        let owner = key().public_key().eth_address();
        assert_eq!(*soc.address(), update_address(&owner, &topic, 3));
        let upd = FeedUpdate::parse(&soc.to_bytes(), &owner, &topic, 3).expect("valid");
        assert_eq!(upd.v1(), Some(p));
    }

    #[test]
    fn v2_update_is_not_read_as_v1() {
        let topic = FeedTopic::from_string("t");
        let content = Cac::new(b"hello feed").expect("fits");
        let soc = build_v2_update(&key(), &topic, 0, content.clone());
        let owner = key().public_key().eth_address();
        let upd = FeedUpdate::parse(&soc.to_bytes(), &owner, &topic, 0).expect("valid");
        assert_eq!(upd.wrapped(), &content);
        assert_eq!(upd.v1(), None);
    }

    #[test]
    fn wrong_owner_topic_or_index_is_rejected() {
        let topic = FeedTopic::from_string("t");
        let soc = build_v2_update(&key(), &topic, 0, Cac::new(b"x").expect("fits"));
        let owner = key().public_key().eth_address();
        let bytes = soc.to_bytes();
        assert!(matches!(
            FeedUpdate::parse(&bytes, &[0; 20], &topic, 0),
            Err(FeedError::WrongOwner { .. })
        ));
        assert_eq!(
            FeedUpdate::parse(&bytes, &owner, &topic, 1),
            Err(FeedError::WrongIdentifier)
        );
        assert_eq!(
            FeedUpdate::parse(&bytes, &owner, &FeedTopic::from_string("u"), 0),
            Err(FeedError::WrongIdentifier)
        );
        assert_eq!(
            V1Payload::decode(&[0; 39]),
            Err(FeedError::V1Length { len: 39 })
        );
        assert_eq!("zz".parse::<FeedTopic>(), Err(FeedError::TopicHex));
    }
}
