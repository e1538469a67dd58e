//! Names and keys derived from a chat: the chat id, feed topics, page keys and the
//! rendezvous owner key.
//!
//! Every derivation is `keccak256(domain tag ‖ inputs)` with a distinct ASCII tag, so no
//! value can be confused with another. Symmetric chats derive from the chat key and topic
//! (only members can compute them); the asymmetric rendezvous derives from the recipient's
//! public key alone, because a stranger writing to Bob knows nothing else of him.

use crate::crypto::{PrivateKey, PublicKey, keccak256_concat};
use crate::dag::ChatId;
use crate::swarm::feed::FeedTopic;
use crate::swarm::pss::PssTopic;

/// One chat as the app addresses it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Chat {
    /// A symmetric-key chat (Status public chats and groups).
    Symmetric {
        /// The 32-byte AES key.
        key: [u8; 32],
        /// The Whisper topic.
        topic: [u8; 4],
    },
    /// Messages to one public key on one topic (one direction of a 1:1 conversation).
    Asymmetric {
        /// The recipient.
        recipient: PublicKey,
        /// The Whisper topic.
        topic: [u8; 4],
    },
}

/// Topic of every member's contact record feed.
pub fn contact_topic() -> FeedTopic {
    FeedTopic::from_bytes(keccak256_concat(&[b"staples/contact/v1"]))
}

/// Topic of every rendezvous feed (the owner key tells chats apart).
pub fn rendezvous_topic() -> FeedTopic {
    FeedTopic::from_bytes(keccak256_concat(&[b"staples/rendezvous/v1"]))
}

/// Topic of every symmetric chat's index feed (owned by the chat's rendezvous key, like
/// its roster; [`super::index`]).
pub fn index_topic() -> FeedTopic {
    FeedTopic::from_bytes(keccak256_concat(&[b"staples/chat-index/v1"]))
}

/// The name of the one PSS topic Staples frames travel on (Bee's API takes the name and
/// hashes it); the frame names the chat, and PSS encrypts each message to its recipient
/// node, so a shared topic reveals nothing more.
pub const PSS_TOPIC_NAME: &str = "staples-pss-v1";

/// [`PSS_TOPIC_NAME`] as Bee hashes it.
pub fn pss_topic() -> PssTopic {
    PssTopic::from_string(PSS_TOPIC_NAME)
}

impl Chat {
    /// The Whisper topic.
    pub fn topic(&self) -> [u8; 4] {
        match self {
            Chat::Symmetric { topic, .. } | Chat::Asymmetric { topic, .. } => *topic,
        }
    }

    /// The DAG chat id.
    pub fn id(&self) -> ChatId {
        ChatId::new(match self {
            Chat::Symmetric { key, topic } => {
                keccak256_concat(&[b"staples/chat/sym/v1", key, topic])
            }
            Chat::Asymmetric { recipient, topic } => {
                keccak256_concat(&[b"staples/chat/asym/v1", &recipient.to_uncompressed(), topic])
            }
        })
    }

    /// The key of the rendezvous feed's owner. Symmetric: from key and topic, so only
    /// members can write or find it. Asymmetric: from the recipient alone (one drop box per
    /// recipient for all topics); anyone may write there, and entries are encrypted to the
    /// recipient and signed by their writer.
    pub fn rendezvous_key(&self) -> PrivateKey {
        let seed = match self {
            Chat::Symmetric { key, topic } => {
                keccak256_concat(&[b"staples/rendezvous/sym/v1", key, topic])
            }
            Chat::Asymmetric { recipient, .. } => {
                keccak256_concat(&[b"staples/rendezvous/asym/v1", &recipient.to_uncompressed()])
            }
        };
        key_from_seed(seed)
    }
}

/// The inbox feed topic of a chat (the owner is the writing node's key).
pub fn inbox_topic(chat: &ChatId) -> FeedTopic {
    FeedTopic::from_bytes(keccak256_concat(&[b"staples/inbox/v1", chat.as_bytes()]))
}

/// The bundle feed topic of a chat (the owner is the writing node's key; update `i` names
/// the bundle of the full page whose first entry is at inbox index `i`:
/// [`crate::inbox::bundle`]).
pub fn bundle_topic(chat: &ChatId) -> FeedTopic {
    FeedTopic::from_bytes(keccak256_concat(&[b"staples/bundle/v1", chat.as_bytes()]))
}

/// The key that seals the pages of a symmetric chat's inboxes.
pub fn symmetric_page_key(key: &[u8; 32], topic: &[u8; 4]) -> [u8; 32] {
    keccak256_concat(&[b"staples/pagekey/sym/v1", key, topic])
}

/// The key that seals the pages a writer node publishes for an asymmetric chat: from the
/// ECDH secret of the writer's node key and the recipient's key, which both ends compute
/// (`writer_secret × recipient_public` = `recipient_secret × writer_public`).
pub fn asymmetric_page_key(shared_x: &[u8; 32], topic: &[u8; 4]) -> [u8; 32] {
    keccak256_concat(&[b"staples/pagekey/asym/v1", shared_x, topic])
}

/// A valid secp256k1 secret from 32 seed bytes: the seed itself, or (with probability
/// about 2⁻¹²⁸) the hash of the seed with a counter.
pub(crate) fn key_from_seed(seed: [u8; 32]) -> PrivateKey {
    let mut candidate = seed;
    let mut counter: u8 = 0;
    loop {
        if let Ok(key) = PrivateKey::from_bytes(&candidate) {
            return key;
        }
        counter = counter.wrapping_add(1);
        candidate = keccak256_concat(&[b"staples/key-retry", &seed, &[counter]]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> PrivateKey {
        PrivateKey::from_bytes(&[n; 32]).expect("valid key")
    }

    #[test]
    fn derivations_separate_chats_and_kinds() {
        let sym = Chat::Symmetric {
            key: [1; 32],
            topic: [1, 2, 3, 4],
        };
        let other_topic = Chat::Symmetric {
            key: [1; 32],
            topic: [1, 2, 3, 5],
        };
        let asym = Chat::Asymmetric {
            recipient: key(7).public_key(),
            topic: [1, 2, 3, 4],
        };
        assert_ne!(sym.id(), other_topic.id());
        assert_ne!(sym.id(), asym.id());
        assert_ne!(
            sym.rendezvous_key().to_bytes(),
            other_topic.rendezvous_key().to_bytes()
        );
        assert_ne!(inbox_topic(&sym.id()), inbox_topic(&asym.id()));
        assert_ne!(contact_topic(), rendezvous_topic());
    }

    #[test]
    fn asymmetric_rendezvous_ignores_the_topic_and_page_keys_agree_across_ends() {
        let bob = key(9);
        let a = Chat::Asymmetric {
            recipient: bob.public_key(),
            topic: [0; 4],
        };
        let b = Chat::Asymmetric {
            recipient: bob.public_key(),
            topic: [9; 4],
        };
        assert_eq!(a.rendezvous_key().to_bytes(), b.rendezvous_key().to_bytes());
        let alice_node = key(3);
        let writer_side = alice_node.ecdh_x(&bob.public_key());
        let reader_side = bob.ecdh_x(&alice_node.public_key());
        assert_eq!(
            asymmetric_page_key(&writer_side, &[0; 4]),
            asymmetric_page_key(&reader_side, &[0; 4])
        );
    }

    #[test]
    fn invalid_seed_falls_back_to_a_valid_key() {
        // Zero is not a valid secret; the retry path must still produce one.
        let k = key_from_seed([0; 32]);
        assert_ne!(k.to_bytes(), [0; 32]);
    }
}
