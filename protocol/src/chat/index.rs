//! Chat-index entries: one shared feed per symmetric chat that says "member M's inbox for
//! this chat now has update K" (normative text: `specs/chat-index.md`).
//!
//! The index lets a reader of a large public chat learn of every new post with one request
//! (the next free index of one feed) instead of one feed lookup per member. It is a hint:
//! the member's own inbox stays the authority (R4), and a reader reads that inbox at the
//! update the entry names, so an entry can only point a reader at data the author signed.
//!
//! The feed's owner key is the chat's rendezvous key ([`super::Chat::rendezvous_key`]),
//! its topic [`super::keys::index_topic`]; every member can write it, so every entry is
//! signed by the member's node key over the chat id, then sealed with the chat's page key.
//!
//! Plaintext layout (122 bytes): `"STPLIDX\x01" ‖ node_key(33) ‖ u64be inbox_index ‖
//! u64be timestamp_ms ‖ signature(65)`, the signature over
//! `keccak256("staples/chat-index/v1" ‖ chat_id ‖ all preceding bytes)`.

use crate::crypto::{PrivateKey, PublicKey, Signature, keccak256_concat};
use crate::dag::ChatId;

/// Magic and version.
pub const MAGIC: [u8; 8] = *b"STPLIDX\x01";
/// Plaintext length.
pub const LEN: usize = 8 + 33 + 8 + 8 + 65;
const SIGNED_LEN: usize = LEN - 65;

/// Why an entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// Wrong length.
    #[error("chat index entry must be {LEN} bytes, got {0}")]
    Length(usize),
    /// Not a Staples v1 index entry.
    #[error("not a Staples v1 chat index entry")]
    Magic,
    /// The node key is not a valid point.
    #[error("chat index entry holds an invalid node key")]
    Key,
    /// The signature is not the node key's over this chat (an entry copied from another
    /// chat, or one naming a member who did not write it).
    #[error("chat index entry signature does not match its node key and chat")]
    Signature,
}

/// One post announced in a chat's index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// The author's node key: owner of its inbox feed for the chat.
    pub node_key: PublicKey,
    /// The author's inbox feed update that lists the post.
    pub inbox_index: u64,
    /// When it was written, Unix ms (the reader's flood bound does not trust it).
    pub timestamp_ms: u64,
}

impl IndexEntry {
    fn signed_part(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(LEN);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.node_key.to_compressed());
        out.extend_from_slice(&self.inbox_index.to_be_bytes());
        out.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        out
    }

    fn digest(chat: &ChatId, signed: &[u8]) -> [u8; 32] {
        keccak256_concat(&[b"staples/chat-index/v1", chat.as_bytes(), signed])
    }

    /// Encodes and signs with `node_secret`, which must be the secret of `node_key`.
    pub fn sign(&self, chat: &ChatId, node_secret: &PrivateKey) -> Vec<u8> {
        let mut out = self.signed_part();
        let sig = node_secret.sign_digest(&Self::digest(chat, &out));
        out.extend_from_slice(&sig.0);
        out
    }

    /// Decodes and verifies an entry for `chat`.
    pub fn verify(chat: &ChatId, bytes: &[u8]) -> Result<Self, IndexError> {
        if bytes.len() != LEN {
            return Err(IndexError::Length(bytes.len()));
        }
        if bytes[..8] != MAGIC {
            return Err(IndexError::Magic);
        }
        let node_key = PublicKey::from_bytes(&bytes[8..41]).map_err(|_| IndexError::Key)?;
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_be_bytes(b)
        };
        let mut sig = [0u8; 65];
        sig.copy_from_slice(&bytes[SIGNED_LEN..]);
        let sig = Signature(sig);
        if !sig.is_low_s() {
            return Err(IndexError::Signature);
        }
        let signer = sig
            .recover(&Self::digest(chat, &bytes[..SIGNED_LEN]))
            .map_err(|_| IndexError::Signature)?;
        if signer != node_key {
            return Err(IndexError::Signature);
        }
        Ok(Self {
            node_key,
            inbox_index: u64_at(41),
            timestamp_ms: u64_at(49),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> PrivateKey {
        PrivateKey::from_bytes(&[n; 32]).expect("valid")
    }

    fn entry(node: &PrivateKey) -> IndexEntry {
        IndexEntry {
            node_key: node.public_key(),
            inbox_index: 41,
            timestamp_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn signed_round_trip() {
        let chat = ChatId::new([1; 32]);
        let e = entry(&key(2));
        let bytes = e.sign(&chat, &key(2));
        assert_eq!(bytes.len(), LEN);
        assert_eq!(IndexEntry::verify(&chat, &bytes), Ok(e));
    }

    #[test]
    fn refuses_other_chat_other_signer_tampering_and_lengths() {
        let chat = ChatId::new([1; 32]);
        let e = entry(&key(2));
        let bytes = e.sign(&chat, &key(2));
        // Copied into another chat's index.
        assert_eq!(
            IndexEntry::verify(&ChatId::new([2; 32]), &bytes),
            Err(IndexError::Signature)
        );
        // Mallory points an entry at Alice's inbox.
        assert_eq!(
            IndexEntry::verify(&chat, &e.sign(&chat, &key(5))),
            Err(IndexError::Signature)
        );
        let mut bumped = bytes.clone();
        bumped[48] ^= 1;
        assert_eq!(
            IndexEntry::verify(&chat, &bumped),
            Err(IndexError::Signature)
        );
        let mut magic = bytes.clone();
        magic[7] = 2;
        assert_eq!(IndexEntry::verify(&chat, &magic), Err(IndexError::Magic));
        assert_eq!(
            IndexEntry::verify(&chat, &bytes[..LEN - 1]),
            Err(IndexError::Length(LEN - 1))
        );
        // A roster entry in the index is refused by its length.
        assert_eq!(
            IndexEntry::verify(&chat, &[0; super::super::roster::LEN]),
            Err(IndexError::Length(super::super::roster::LEN))
        );
    }
}
