//! The DAG message: its fields, the canonical id preimage, the author signature and the
//! protobuf encoding (`specs/staples.proto`, normative text in `specs/dag.md`).
//!
//! Hashing does not depend on how protobuf serialised anything. Two fixed-layout
//! preimages are defined instead:
//!
//! ```text
//! content = keccak256("staples/dag/content/v1" ‖ u8 version ‖ u8 flags ‖ chat_id[32]
//!                     ‖ u64be clock ‖ u64be timestamp ‖ u8 n ‖ parent[32] × n
//!                     ‖ keccak256(body))
//! signature = secp256k1_sign(author, content)            (65 bytes, V in 0..=3, low S)
//! id        = keccak256("staples/dag/id/v1" ‖ compressed_author_key[33] ‖ content)
//! ```
//!
//! `flags` bit 0 is `ephemeral`; the parents are strictly ascending. The id covers author,
//! chat, clock, timestamp, parents, flags and body (R1): nobody on the path can rewrite the
//! edges, and a different key re-signing the same content makes a different id. The author
//! is never a field: it is recovered from the signature over `content`. This is why the
//! author signs `content` rather than the id itself: an id that covers the author cannot
//! be signed before the author is known to the verifier.

use std::fmt;

use prost::Message as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::wire::WireMessage;
use crate::crypto::{CryptoError, PrivateKey, PublicKey, Signature, keccak256, keccak256_concat};

/// The only message format version defined.
pub const VERSION: u8 = 1;
/// Most parents a message may name. 8 × 32 bytes keeps the Whisper padding carrier small;
/// heads beyond 8 stay heads and are merged by later messages (`specs/dag.md`).
pub const MAX_PARENTS: usize = 8;
/// Largest body, 1 MiB: geth's default Whisper `MaxMessageSize`. Larger payloads go to
/// Swarm and the body carries the reference (R6).
pub const MAX_BODY_LEN: usize = 1 << 20;
/// Upper bound on the header part of an encoding (everything but the body bytes): the
/// exact worst case is 2 + 34 + 11 + 11 + 8 × 34 + 2 + 67 + 4 = 403 bytes.
pub const MAX_HEADER_LEN: usize = 403;
/// Largest encoded [`SignedMessage`] accepted by [`SignedMessage::decode`].
pub const MAX_ENCODED_LEN: usize = MAX_BODY_LEN + MAX_HEADER_LEN;

const CONTENT_DOMAIN: &[u8] = b"staples/dag/content/v1";
const ID_DOMAIN: &[u8] = b"staples/dag/id/v1";
const FLAG_EPHEMERAL: u8 = 0x01;

/// Errors from building, decoding and verifying DAG messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The bytes are not a protobuf `staples.dag.v1.Message`.
    #[error("malformed protobuf")]
    Protobuf,
    /// Valid protobuf, but not the one canonical encoding of its fields (field order,
    /// explicit default values, unknown fields, overlong varints).
    #[error("non-canonical encoding")]
    NonCanonical,
    /// Input longer than [`MAX_ENCODED_LEN`].
    #[error("encoding of {0} bytes is too long")]
    TooLong(usize),
    /// A version other than [`VERSION`].
    #[error("unsupported version {0}")]
    UnsupportedVersion(u32),
    /// The chat id is not 32 bytes.
    #[error("chat id of {0} bytes, expected 32")]
    ChatIdLength(usize),
    /// A message id is not 32 bytes.
    #[error("message id of {0} bytes, expected 32")]
    IdLength(usize),
    /// A string is not 64 hex digits.
    #[error("bad hex id")]
    IdHex,
    /// Lamport clocks start at 1.
    #[error("clock is zero")]
    ZeroClock,
    /// More than [`MAX_PARENTS`] parents.
    #[error("{0} parents, at most 8 allowed")]
    TooManyParents(usize),
    /// A parent id is not 32 bytes.
    #[error("parent id of {0} bytes, expected 32")]
    ParentLength(usize),
    /// Parents not strictly ascending on the wire.
    #[error("parents are not strictly ascending")]
    ParentsNotSorted,
    /// The same parent twice in a draft.
    #[error("duplicate parent")]
    DuplicateParent,
    /// Body longer than [`MAX_BODY_LEN`].
    #[error("body of {0} bytes is too long")]
    BodyTooLong(usize),
    /// A header (padding carrier) that carries a body.
    #[error("header carries a body")]
    BodyInHeader,
    /// The signature is not 65 bytes.
    #[error("signature of {0} bytes, expected 65")]
    SignatureLength(usize),
    /// S in the upper half of the curve order: a malleated copy of a signature.
    #[error("high-S signature")]
    HighS,
    /// Recovery of the author failed.
    #[error("bad signature: {0}")]
    Signature(CryptoError),
    /// [`Header::with_body_attested`]: the id with the attesting author is not the listed
    /// one (another author's message, or other content).
    #[error("not the message the listing names")]
    NotAttested,
}

/// A message id: 32 bytes, see the module doc. Built only by signing, by decoding, or from
/// bytes whose length is checked.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct MessageId([u8; 32]);

impl MessageId {
    /// Parses exactly 32 bytes (an id read from a parent list, an inbox page or a request).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, MessageError> {
        <[u8; 32]>::try_from(bytes)
            .map(Self)
            .map_err(|_| MessageError::IdLength(bytes.len()))
    }

    /// Parses 64 hex digits, with or without `0x`.
    pub fn from_hex(s: &str) -> Result<Self, MessageError> {
        parse_hex32(s).map(Self)
    }

    /// The 32 id bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// For decoders in this crate that have already cut exactly 32 bytes.
    pub(crate) const fn from_array(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

// Ids are hash outputs chosen by peers (parent lists are unverified claims), so maps keyed
// by them use a keyed hasher (see `buffer`); feeding the 32 bytes without the length prefix
// that `[u8; 32]`'s own impl adds is enough because every id has the same length.
impl std::hash::Hash for MessageId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write(&self.0);
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({})", hex::encode(self.0))
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl TryFrom<&[u8]> for MessageId {
    type Error = MessageError;
    fn try_from(bytes: &[u8]) -> Result<Self, MessageError> {
        Self::from_slice(bytes)
    }
}

/// A chat id: 32 bytes chosen by the layer above (for a 1:1 chat the MVDS group id, for a
/// public chat a hash of its name). Every 32-byte string is a valid chat id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChatId([u8; 32]);

impl ChatId {
    /// Wraps 32 bytes.
    pub const fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, MessageError> {
        <[u8; 32]>::try_from(bytes)
            .map(Self)
            .map_err(|_| MessageError::ChatIdLength(bytes.len()))
    }

    /// The 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for ChatId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChatId({})", hex::encode(self.0))
    }
}

/// What an author fills in before signing. [`Draft::sign`] sorts the parents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Draft {
    /// The chat.
    pub chat_id: ChatId,
    /// From [`super::LamportClock::tick`].
    pub clock: u64,
    /// Sender wall clock, Unix ms.
    pub timestamp: u64,
    /// From [`super::Heads::select`]; any order, no duplicates.
    pub parents: Vec<MessageId>,
    /// Never a parent, never stored.
    pub ephemeral: bool,
    /// The application payload.
    pub body: Vec<u8>,
}

impl Draft {
    /// Checks the fields, sorts the parents and signs.
    pub fn sign(mut self, key: &PrivateKey) -> Result<SignedMessage, MessageError> {
        self.parents.sort_unstable();
        if self.parents.windows(2).any(|w| w[0] == w[1]) {
            return Err(MessageError::DuplicateParent);
        }
        let header = Header {
            chat_id: self.chat_id,
            clock: self.clock,
            timestamp: self.timestamp,
            parents: self.parents,
            ephemeral: self.ephemeral,
            signature: Signature([0; 65]),
        };
        header.check_fields()?;
        check_body(&self.body)?;
        let content = header.content_hash(&self.body);
        let signature = key.sign_digest(&content);
        let author = key.public_key();
        Ok(SignedMessage {
            id: id_of(&author, &content),
            header: Header {
                signature,
                ..header
            },
            body: self.body,
            author,
        })
    }
}

/// Everything of a message but its body: what rides in Whisper padding. Parsed and
/// well-formed, but its signature is only checked by [`Header::with_body`], because the
/// signed content covers the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    chat_id: ChatId,
    clock: u64,
    timestamp: u64,
    parents: Vec<MessageId>,
    ephemeral: bool,
    signature: Signature,
}

impl Header {
    /// Decodes the canonical encoding of a `Message` with no body.
    pub fn decode(bytes: &[u8]) -> Result<Self, MessageError> {
        if bytes.len() > MAX_HEADER_LEN {
            return Err(MessageError::TooLong(bytes.len()));
        }
        let wire = decode_canonical(bytes)?;
        if !wire.body.is_empty() {
            return Err(MessageError::BodyInHeader);
        }
        Self::from_wire(&wire)
    }

    /// The canonical encoding, body absent.
    pub fn encode(&self) -> Vec<u8> {
        self.to_wire(Vec::new()).encode_to_vec()
    }

    /// Attaches the body (for the padding carrier: the Whisper payload), verifies the
    /// signature and computes the id.
    pub fn with_body(self, body: Vec<u8>) -> Result<SignedMessage, MessageError> {
        check_body(&body)?;
        if !self.signature.is_low_s() {
            return Err(MessageError::HighS);
        }
        let content = self.content_hash(&body);
        let author = self
            .signature
            .recover(&content)
            .map_err(MessageError::Signature)?;
        Ok(SignedMessage {
            id: id_of(&author, &content),
            header: self,
            body,
            author,
        })
    }

    /// Attaches the body and attributes the message to `author` without recovering its
    /// signature, when `author` has already signed a commitment to these exact bytes
    /// under id `listed`: an entry of `author`'s own inbox page, whose reference the
    /// bytes hash to (`specs/dag.md` §2a). The id is computed with `author` and must be
    /// `listed`, else [`MessageError::NotAttested`] and the caller verifies the signature
    /// with [`Header::with_body`] instead. Every other check is the same; the signature's
    /// encoding (low S) is still checked, its validity is not.
    pub fn with_body_attested(
        self,
        body: Vec<u8>,
        author: &PublicKey,
        listed: &MessageId,
    ) -> Result<SignedMessage, MessageError> {
        check_body(&body)?;
        if !self.signature.is_low_s() {
            return Err(MessageError::HighS);
        }
        let content = self.content_hash(&body);
        let id = id_of(author, &content);
        if &id != listed {
            return Err(MessageError::NotAttested);
        }
        Ok(SignedMessage {
            id,
            header: self,
            body,
            author: *author,
        })
    }

    /// The chat.
    pub fn chat_id(&self) -> &ChatId {
        &self.chat_id
    }

    /// The Lamport clock.
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// The sender's wall clock, Unix ms.
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }

    /// Parent ids, strictly ascending.
    pub fn parents(&self) -> &[MessageId] {
        &self.parents
    }

    /// Whether the message is ephemeral.
    pub fn ephemeral(&self) -> bool {
        self.ephemeral
    }

    /// The author's signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The signed digest for this header and `body` (module doc).
    pub fn content_hash(&self, body: &[u8]) -> [u8; 32] {
        keccak256(self.content_preimage(body))
    }

    fn content_preimage(&self, body: &[u8]) -> Vec<u8> {
        let mut pre = Vec::with_capacity(CONTENT_DOMAIN.len() + 59 + 32 * self.parents.len());
        pre.extend_from_slice(CONTENT_DOMAIN);
        pre.push(VERSION);
        pre.push(if self.ephemeral { FLAG_EPHEMERAL } else { 0 });
        pre.extend_from_slice(self.chat_id.as_bytes());
        pre.extend_from_slice(&self.clock.to_be_bytes());
        pre.extend_from_slice(&self.timestamp.to_be_bytes());
        // At most MAX_PARENTS (8) by construction, so the count fits a byte.
        pre.push(self.parents.len() as u8);
        for p in &self.parents {
            pre.extend_from_slice(p.as_bytes());
        }
        pre.extend_from_slice(&keccak256(body));
        pre
    }

    fn check_fields(&self) -> Result<(), MessageError> {
        if self.clock == 0 {
            return Err(MessageError::ZeroClock);
        }
        if self.parents.len() > MAX_PARENTS {
            return Err(MessageError::TooManyParents(self.parents.len()));
        }
        Ok(())
    }

    fn from_wire(wire: &WireMessage) -> Result<Self, MessageError> {
        if wire.version != u32::from(VERSION) {
            return Err(MessageError::UnsupportedVersion(wire.version));
        }
        let chat_id = ChatId::from_slice(&wire.chat_id)?;
        if wire.parents.len() > MAX_PARENTS {
            return Err(MessageError::TooManyParents(wire.parents.len()));
        }
        let mut parents = Vec::with_capacity(wire.parents.len());
        for p in &wire.parents {
            let id = MessageId::from_slice(p).map_err(|_| MessageError::ParentLength(p.len()))?;
            if parents.last().is_some_and(|last| *last >= id) {
                return Err(MessageError::ParentsNotSorted);
            }
            parents.push(id);
        }
        let signature = <[u8; 65]>::try_from(wire.signature.as_slice())
            .map(Signature)
            .map_err(|_| MessageError::SignatureLength(wire.signature.len()))?;
        let header = Self {
            chat_id,
            clock: wire.clock,
            timestamp: wire.timestamp,
            parents,
            ephemeral: wire.ephemeral,
            signature,
        };
        header.check_fields()?;
        Ok(header)
    }

    fn to_wire(&self, body: Vec<u8>) -> WireMessage {
        WireMessage {
            version: u32::from(VERSION),
            chat_id: self.chat_id.as_bytes().to_vec(),
            clock: self.clock,
            timestamp: self.timestamp,
            parents: self.parents.iter().map(|p| p.as_bytes().to_vec()).collect(),
            ephemeral: self.ephemeral,
            body,
            signature: self.signature.0.to_vec(),
        }
    }
}

/// A verified message: the author was recovered from the signature (or attested by the
/// author's own signed listing of these bytes) and the id computed. Built only by
/// [`Draft::sign`], [`SignedMessage::decode`], [`Header::with_body`] and
/// [`Header::with_body_attested`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedMessage {
    header: Header,
    body: Vec<u8>,
    author: PublicKey,
    id: MessageId,
}

impl SignedMessage {
    /// Decodes and verifies the canonical encoding of a full message (Swarm, PSS).
    pub fn decode(bytes: &[u8]) -> Result<Self, MessageError> {
        if bytes.len() > MAX_ENCODED_LEN {
            return Err(MessageError::TooLong(bytes.len()));
        }
        let mut wire = decode_canonical(bytes)?;
        let header = Header::from_wire(&wire)?;
        header.with_body(std::mem::take(&mut wire.body))
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        self.header.to_wire(self.body.clone()).encode_to_vec()
    }

    /// The id (module doc).
    pub fn id(&self) -> MessageId {
        self.id
    }

    /// The author, recovered from the signature.
    pub fn author(&self) -> &PublicKey {
        &self.author
    }

    /// The header: everything but the body.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The chat.
    pub fn chat_id(&self) -> &ChatId {
        &self.header.chat_id
    }

    /// The Lamport clock.
    pub fn clock(&self) -> u64 {
        self.header.clock
    }

    /// Parent ids, strictly ascending.
    pub fn parents(&self) -> &[MessageId] {
        &self.header.parents
    }

    /// Whether the message is ephemeral.
    pub fn ephemeral(&self) -> bool {
        self.header.ephemeral
    }

    /// Splits into header and body.
    pub fn into_parts(self) -> (Header, Vec<u8>) {
        (self.header, self.body)
    }
}

// Persisted state (the causal buffer's snapshot) holds messages in their canonical
// encoding; loading one re-verifies it.
impl Serialize for SignedMessage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.encode()))
    }
}

impl<'de> Deserialize<'de> for SignedMessage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        let bytes = hex::decode(s.as_ref()).map_err(serde::de::Error::custom)?;
        Self::decode(&bytes).map_err(serde::de::Error::custom)
    }
}

impl Serialize for MessageId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for MessageId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Self::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for ChatId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for ChatId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        parse_hex32(&s).map(Self).map_err(serde::de::Error::custom)
    }
}

fn parse_hex32(s: &str) -> Result<[u8; 32], MessageError> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).map_err(|_| MessageError::IdHex)?;
    Ok(out)
}

fn id_of(author: &PublicKey, content: &[u8; 32]) -> MessageId {
    MessageId(keccak256_concat(&[
        ID_DOMAIN,
        &author.to_compressed(),
        content,
    ]))
}

fn check_body(body: &[u8]) -> Result<(), MessageError> {
    if body.len() > MAX_BODY_LEN {
        return Err(MessageError::BodyTooLong(body.len()));
    }
    Ok(())
}

/// Protobuf decoding is lenient (any field order, repeated scalars, unknown fields), so
/// one message would have many encodings. Accepting only the bytes that re-encode
/// identically makes the encoding a function of the message: what the fuzz target and
/// the padding carrier's round trip rely on.
fn decode_canonical(bytes: &[u8]) -> Result<WireMessage, MessageError> {
    let wire = WireMessage::decode(bytes).map_err(|_| MessageError::Protobuf)?;
    if wire.encoded_len() != bytes.len() || wire.encode_to_vec() != bytes {
        return Err(MessageError::NonCanonical);
    }
    Ok(wire)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key(seed: &str) -> PrivateKey {
        PrivateKey::from_bytes(&keccak256(seed.as_bytes())).unwrap()
    }

    fn id(n: u8) -> MessageId {
        MessageId([n; 32])
    }

    fn draft() -> Draft {
        Draft {
            chat_id: ChatId::new([7; 32]),
            clock: 1_700_000_000_000,
            timestamp: 1_699_999_999_999,
            parents: vec![id(3), id(1), id(2)],
            ephemeral: false,
            body: b"hello dag".to_vec(),
        }
    }

    #[test]
    fn sign_encode_decode_round_trip() {
        let m = draft().sign(&key("alice")).unwrap();
        assert_eq!(m.parents(), &[id(1), id(2), id(3)]);
        assert_eq!(m.author(), &key("alice").public_key());
        let bytes = m.encode();
        let back = SignedMessage::decode(&bytes).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.encode(), bytes);
    }

    #[test]
    fn preimage_layout_is_the_documented_one() {
        let m = draft().sign(&key("alice")).unwrap();
        let pre = m.header().content_preimage(m.body());
        let mut want = b"staples/dag/content/v1".to_vec();
        want.extend([1u8, 0]);
        want.extend([7u8; 32]);
        want.extend(1_700_000_000_000u64.to_be_bytes());
        want.extend(1_699_999_999_999u64.to_be_bytes());
        want.push(3);
        for n in 1..=3u8 {
            want.extend([n; 32]);
        }
        want.extend(keccak256(b"hello dag"));
        assert_eq!(pre, want);
        let content = keccak256(&want);
        assert_eq!(m.header().signature().recover(&content), Ok(*m.author()));
        let mut id_pre = b"staples/dag/id/v1".to_vec();
        id_pre.extend(m.author().to_compressed());
        id_pre.extend(content);
        assert_eq!(m.id().as_bytes(), &keccak256(&id_pre));
    }

    #[test]
    fn id_binds_every_field_and_the_author() {
        let base = draft().sign(&key("alice")).unwrap().id();
        let variants: Vec<Draft> = vec![
            Draft {
                chat_id: ChatId::new([8; 32]),
                ..draft()
            },
            Draft {
                clock: 1_700_000_000_001,
                ..draft()
            },
            Draft {
                timestamp: 1,
                ..draft()
            },
            Draft {
                parents: vec![id(1), id(2)],
                ..draft()
            },
            Draft {
                ephemeral: true,
                ..draft()
            },
            Draft {
                body: b"hello dag!".to_vec(),
                ..draft()
            },
        ];
        for v in variants {
            assert_ne!(v.sign(&key("alice")).unwrap().id(), base);
        }
        assert_ne!(draft().sign(&key("mallory")).unwrap().id(), base);
    }

    #[test]
    fn tampering_changes_the_author_never_the_claimed_id() {
        // Rewriting a parent in transit gives a message whose recovered author is some
        // unrelated key, so its id differs from the original: edges cannot be rewritten.
        let m = draft().sign(&key("alice")).unwrap();
        let mut wire = m.header().to_wire(m.body().to_vec());
        wire.parents[0] = vec![0; 32];
        match SignedMessage::decode(&wire.encode_to_vec()) {
            Ok(forged) => {
                assert_ne!(forged.author(), m.author());
                assert_ne!(forged.id(), m.id());
            }
            Err(e) => assert_eq!(e, MessageError::Signature(CryptoError::RecoveryFailed)),
        }
    }

    #[test]
    fn header_carries_no_body_and_reattaches() {
        let m = draft().sign(&key("alice")).unwrap();
        let h = Header::decode(&m.header().encode()).unwrap();
        let back = h.with_body(m.body().to_vec()).unwrap();
        assert_eq!(back, m);
        assert_eq!(Header::decode(&m.encode()), Err(MessageError::BodyInHeader));
    }

    #[test]
    fn attested_attribution_needs_the_listed_id_with_that_author() {
        let m = draft().sign(&key("alice")).unwrap();
        let attested = |author: &PrivateKey, listed: &MessageId, body: &[u8]| {
            m.header()
                .clone()
                .with_body_attested(body.to_vec(), &author.public_key(), listed)
        };
        // Alice's listing of Alice's message: the same message recovery gives.
        assert_eq!(attested(&key("alice"), &m.id(), m.body()), Ok(m.clone()));
        // Mallory listing Alice's message under Alice's id cannot claim it; nor can a
        // listing name other content.
        assert_eq!(
            attested(&key("mallory"), &m.id(), m.body()),
            Err(MessageError::NotAttested)
        );
        assert_eq!(
            attested(&key("alice"), &m.id(), b"other body"),
            Err(MessageError::NotAttested)
        );
        assert_eq!(
            attested(&key("alice"), &id(9), m.body()),
            Err(MessageError::NotAttested)
        );
    }

    proptest::proptest! {
        /// Whatever the body, parents and author, attestation by the author under the id
        /// recovery computes gives recovery's message, and any other author is refused.
        #[test]
        fn attested_equals_recovered(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            parents in proptest::collection::btree_set(proptest::prelude::any::<[u8; 32]>(), 0..=8),
            seed in proptest::prelude::any::<u8>(),
        ) {
            let author = key(&format!("author {seed}"));
            let m = Draft {
                parents: parents.into_iter().map(MessageId).collect(),
                body,
                ..draft()
            }
            .sign(&author)
            .unwrap();
            let h = m.header().clone();
            proptest::prop_assert_eq!(
                h.clone().with_body_attested(m.body().to_vec(), m.author(), &m.id()),
                Ok(m.clone())
            );
            let other = key(&format!("other {seed}")).public_key();
            proptest::prop_assert_eq!(
                h.with_body_attested(m.body().to_vec(), &other, &m.id()),
                Err(MessageError::NotAttested)
            );
        }
    }

    #[test]
    fn decode_errors_are_typed() {
        let m = draft().sign(&key("alice")).unwrap();
        let good = m.header().to_wire(m.body().to_vec());
        let enc = |w: &WireMessage| w.encode_to_vec();
        let cases: Vec<(WireMessage, MessageError)> = vec![
            (
                WireMessage {
                    version: 2,
                    ..good.clone()
                },
                MessageError::UnsupportedVersion(2),
            ),
            (
                WireMessage {
                    chat_id: vec![1; 31],
                    ..good.clone()
                },
                MessageError::ChatIdLength(31),
            ),
            (
                WireMessage {
                    clock: 0,
                    ..good.clone()
                },
                MessageError::ZeroClock,
            ),
            (
                WireMessage {
                    parents: (0..9u8).map(|n| vec![n; 32]).collect(),
                    ..good.clone()
                },
                MessageError::TooManyParents(9),
            ),
            (
                WireMessage {
                    parents: vec![vec![1; 33]],
                    ..good.clone()
                },
                MessageError::ParentLength(33),
            ),
            (
                WireMessage {
                    parents: vec![vec![2; 32], vec![1; 32]],
                    ..good.clone()
                },
                MessageError::ParentsNotSorted,
            ),
            (
                WireMessage {
                    parents: vec![vec![2; 32], vec![2; 32]],
                    ..good.clone()
                },
                MessageError::ParentsNotSorted,
            ),
            (
                WireMessage {
                    signature: vec![1; 64],
                    ..good.clone()
                },
                MessageError::SignatureLength(64),
            ),
            (
                WireMessage {
                    body: vec![0; MAX_BODY_LEN + 1],
                    ..good.clone()
                },
                MessageError::BodyTooLong(MAX_BODY_LEN + 1),
            ),
        ];
        for (wire, want) in cases {
            assert_eq!(SignedMessage::decode(&enc(&wire)), Err(want), "{want:?}");
        }
        let mut bad_v = good.clone();
        bad_v.signature[64] = 4;
        assert_eq!(
            SignedMessage::decode(&enc(&bad_v)),
            Err(MessageError::Signature(CryptoError::InvalidSignature))
        );
        assert_eq!(
            SignedMessage::decode(&[0xff, 0xff]),
            Err(MessageError::Protobuf)
        );
        let huge = vec![0u8; MAX_ENCODED_LEN + 1];
        assert_eq!(
            SignedMessage::decode(&huge),
            Err(MessageError::TooLong(MAX_ENCODED_LEN + 1))
        );
    }

    #[test]
    fn non_canonical_encodings_are_rejected() {
        let m = draft().sign(&key("alice")).unwrap();
        let good = m.encode();
        // An unknown field 15 (varint 1) appended.
        let mut unknown = good.clone();
        unknown.extend([0x78, 0x01]);
        assert_eq!(
            SignedMessage::decode(&unknown),
            Err(MessageError::NonCanonical)
        );
        // `ephemeral = false` written explicitly.
        let mut explicit_default = good.clone();
        explicit_default.extend([0x30, 0x00]);
        assert_eq!(
            SignedMessage::decode(&explicit_default),
            Err(MessageError::NonCanonical)
        );
        // Version written with an overlong varint (0x81 0x00 = 1).
        let mut overlong = vec![0x08, 0x81, 0x00];
        overlong.extend_from_slice(&good[2..]);
        assert_eq!(
            SignedMessage::decode(&overlong),
            Err(MessageError::NonCanonical)
        );
    }

    #[test]
    fn draft_errors_are_typed() {
        let d = Draft {
            parents: vec![id(1), id(1)],
            ..draft()
        };
        assert_eq!(d.sign(&key("a")), Err(MessageError::DuplicateParent));
        let d = Draft {
            parents: (0..9u8).map(id).collect(),
            ..draft()
        };
        assert_eq!(d.sign(&key("a")), Err(MessageError::TooManyParents(9)));
        let d = Draft {
            clock: 0,
            ..draft()
        };
        assert_eq!(d.sign(&key("a")), Err(MessageError::ZeroClock));
        let d = Draft {
            body: vec![0; MAX_BODY_LEN + 1],
            ..draft()
        };
        assert_eq!(
            d.sign(&key("a")),
            Err(MessageError::BodyTooLong(MAX_BODY_LEN + 1))
        );
    }

    #[test]
    fn max_header_len_is_the_worst_case() {
        let d = Draft {
            clock: u64::MAX,
            timestamp: u64::MAX,
            parents: (0..8u8).map(|n| MessageId([0xf0 + n; 32])).collect(),
            ephemeral: true,
            body: vec![1; MAX_BODY_LEN],
            ..draft()
        };
        let m = d.sign(&key("a")).unwrap();
        assert_eq!(m.encode().len(), MAX_ENCODED_LEN);
        assert!(m.header().encode().len() <= MAX_HEADER_LEN);
    }

    #[test]
    fn ids_serialise_as_hex() {
        let v = serde_json::to_string(&id(0xab)).unwrap();
        assert_eq!(v, format!("\"{}\"", "ab".repeat(32)));
        assert_eq!(serde_json::from_str::<MessageId>(&v).unwrap(), id(0xab));
        assert_eq!(
            MessageId::from_slice(&[0; 31]),
            Err(MessageError::IdLength(31))
        );
    }
}
