//! Roster entries: how members of a chat find each other's inboxes.
//!
//! Each chat has a rendezvous feed whose owner key every member derives
//! ([`super::Chat::rendezvous_key`]). A member announces itself once by writing a
//! [`RosterEntry`] at the next free index of that feed; readers read every index. The
//! entry is signed by the member's node key (the owner of its inbox feeds) over the chat
//! id, so it cannot be moved to another chat or claim another node's key, and then sealed:
//! with the chat's page key for symmetric chats, ECIES to the recipient for an asymmetric
//! chat's drop box.
//!
//! Plaintext layout, version 1 (183 bytes): `"STPLRST\x01" ‖ topic(4) ‖ node_key(33) ‖
//! overlay(32) ‖ pss_key(33) ‖ u64be timestamp_ms ‖ signature(65)`, the signature over
//! `keccak256("staples/roster/v1" ‖ chat_id ‖ all preceding bytes)`.
//!
//! Version 2 (184 bytes) is version 1 with magic `"STPLRST\x02"` and one `features` byte
//! after the timestamp (signed like the rest): bit 0, [`FEATURE_CHAT_INDEX`], says the
//! member writes the chat index (`specs/chat-index.md`). Version-1 readers refuse version 2
//! by its length, so while a network upgrades a member writes both (`specs/chat-index.md`
//! §6); an entry with `features == 0` is always written as version 1.

use crate::crypto::{PrivateKey, PublicKey, Signature, keccak256_concat};
use crate::dag::ChatId;

/// Magic and version 1.
pub const MAGIC: [u8; 8] = *b"STPLRST\x01";
/// Magic and version 2 (with the features byte).
pub const MAGIC_V2: [u8; 8] = *b"STPLRST\x02";
/// Plaintext length of version 1.
pub const LEN: usize = 8 + 4 + 33 + 32 + 33 + 8 + 65;
/// Plaintext length of version 2.
pub const LEN_V2: usize = LEN + 1;
/// Feature bit: the member writes the chat index and reads it instead of every inbox.
pub const FEATURE_CHAT_INDEX: u8 = 0x01;

/// Why an entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RosterError {
    /// Wrong length.
    #[error("roster entry must be {LEN} or {LEN_V2} bytes, got {0}")]
    Length(usize),
    /// Not a Staples v1 roster entry.
    #[error("not a Staples v1 roster entry")]
    Magic,
    /// A key field is not a valid point.
    #[error("roster entry holds an invalid {0} key")]
    Key(&'static str),
    /// The signature is not the node key's over this chat.
    #[error("roster entry signature does not match its node key and chat")]
    Signature,
}

/// One member's announcement in one chat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RosterEntry {
    /// The chat's Whisper topic (an asymmetric drop box serves every topic).
    pub topic: [u8; 4],
    /// The member's node key: owner of its inbox feed for the chat, author of its DAG
    /// messages.
    pub node_key: PublicKey,
    /// The member's Bee overlay (PSS target).
    pub overlay: [u8; 32],
    /// The member's Bee PSS key.
    pub pss_key: PublicKey,
    /// When it was written, Unix ms.
    pub timestamp_ms: u64,
    /// Feature bits ([`FEATURE_CHAT_INDEX`]); 0 for a version-1 entry.
    pub features: u8,
}

impl RosterEntry {
    fn signed_part(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(LEN_V2);
        out.extend_from_slice(if self.features == 0 {
            &MAGIC
        } else {
            &MAGIC_V2
        });
        out.extend_from_slice(&self.topic);
        out.extend_from_slice(&self.node_key.to_compressed());
        out.extend_from_slice(&self.overlay);
        out.extend_from_slice(&self.pss_key.to_compressed());
        out.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        if self.features != 0 {
            out.push(self.features);
        }
        out
    }

    /// Whether the member writes the chat index.
    pub fn writes_index(&self) -> bool {
        self.features & FEATURE_CHAT_INDEX != 0
    }

    fn digest(chat: &ChatId, signed: &[u8]) -> [u8; 32] {
        keccak256_concat(&[b"staples/roster/v1", chat.as_bytes(), signed])
    }

    /// Encodes and signs with `node_secret`, which must be the secret of `node_key`.
    pub fn sign(&self, chat: &ChatId, node_secret: &PrivateKey) -> Vec<u8> {
        let mut out = self.signed_part();
        let sig = node_secret.sign_digest(&Self::digest(chat, &out));
        out.extend_from_slice(&sig.0);
        out
    }

    /// Decodes and verifies an entry (either version) for `chat`.
    pub fn verify(chat: &ChatId, bytes: &[u8]) -> Result<Self, RosterError> {
        let magic = match bytes.len() {
            LEN => MAGIC,
            LEN_V2 => MAGIC_V2,
            n => return Err(RosterError::Length(n)),
        };
        if bytes[..8] != magic {
            return Err(RosterError::Magic);
        }
        let signed_len = bytes.len() - 65;
        let mut topic = [0u8; 4];
        topic.copy_from_slice(&bytes[8..12]);
        let node_key =
            PublicKey::from_bytes(&bytes[12..45]).map_err(|_| RosterError::Key("node"))?;
        let mut overlay = [0u8; 32];
        overlay.copy_from_slice(&bytes[45..77]);
        let pss_key =
            PublicKey::from_bytes(&bytes[77..110]).map_err(|_| RosterError::Key("pss"))?;
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&bytes[110..118]);
        let mut sig = [0u8; 65];
        sig.copy_from_slice(&bytes[signed_len..]);
        let sig = Signature(sig);
        if !sig.is_low_s() {
            return Err(RosterError::Signature);
        }
        let signer = sig
            .recover(&Self::digest(chat, &bytes[..signed_len]))
            .map_err(|_| RosterError::Signature)?;
        if signer != node_key {
            return Err(RosterError::Signature);
        }
        Ok(Self {
            topic,
            node_key,
            overlay,
            pss_key,
            timestamp_ms: u64::from_be_bytes(ts),
            // Version 1 has no features byte; version 2's sits after the timestamp.
            features: if signed_len == 118 { 0 } else { bytes[118] },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> PrivateKey {
        PrivateKey::from_bytes(&[n; 32]).expect("valid")
    }

    fn entry(node: &PrivateKey) -> RosterEntry {
        RosterEntry {
            topic: [1, 2, 3, 4],
            node_key: node.public_key(),
            overlay: [3; 32],
            pss_key: key(4).public_key(),
            timestamp_ms: 99,
            features: 0,
        }
    }

    #[test]
    fn signed_round_trip() {
        let chat = ChatId::new([1; 32]);
        let e = entry(&key(2));
        let bytes = e.sign(&chat, &key(2));
        assert_eq!(bytes.len(), LEN);
        assert_eq!(RosterEntry::verify(&chat, &bytes), Ok(e));
    }

    #[test]
    fn version_two_carries_features_and_version_one_readers_see_its_length() {
        let chat = ChatId::new([1; 32]);
        let mut e = entry(&key(2));
        e.features = FEATURE_CHAT_INDEX;
        let bytes = e.sign(&chat, &key(2));
        assert_eq!(bytes.len(), LEN_V2);
        assert_eq!(bytes[..8], MAGIC_V2);
        let back = RosterEntry::verify(&chat, &bytes).expect("verifies");
        assert!(back.writes_index());
        assert_eq!(back, e);
        // The features byte is signed: flipping it breaks the signature.
        let mut flipped = bytes.clone();
        flipped[118] ^= 0x02;
        assert_eq!(
            RosterEntry::verify(&chat, &flipped),
            Err(RosterError::Signature)
        );
        // A version-2 magic on a version-1 length (or the reverse) is refused.
        let mut v1 = e.clone();
        v1.features = 0;
        let mut relabelled = v1.sign(&chat, &key(2));
        relabelled[7] = 2;
        assert_eq!(
            RosterEntry::verify(&chat, &relabelled),
            Err(RosterError::Magic)
        );
    }

    #[test]
    fn refuses_other_chat_other_signer_and_tampering() {
        let chat = ChatId::new([1; 32]);
        let e = entry(&key(2));
        let bytes = e.sign(&chat, &key(2));
        assert_eq!(
            RosterEntry::verify(&ChatId::new([2; 32]), &bytes),
            Err(RosterError::Signature)
        );
        // Mallory signs an entry that names Alice's node key.
        let forged = e.sign(&chat, &key(5));
        assert_eq!(
            RosterEntry::verify(&chat, &forged),
            Err(RosterError::Signature)
        );
        let mut bad = bytes.clone();
        bad[50] ^= 1;
        assert_eq!(
            RosterEntry::verify(&chat, &bad),
            Err(RosterError::Signature)
        );
        assert_eq!(
            RosterEntry::verify(&chat, &bytes[..LEN - 1]),
            Err(RosterError::Length(LEN - 1))
        );
    }
}
