//! Topic logs: raw Whisper envelopes on Swarm, one shared feed per Whisper topic, so
//! Whisper traffic that no Staples peer can open (one-to-one and private group chats)
//! still crosses between a Whisper network and Swarm (specs/topic-log.md).
//!
//! The feed's owner key is derived from the topic alone, so anyone who knows the topic can
//! append: relays write what they hear on Whisper, `pss` peers write the envelopes they
//! seal; relays and `pss` peers read the logs of the topics they care about. Nothing in a
//! log is trusted: an entry is an envelope that the reader checks (topic, expiry, PoW,
//! size) and opens with its own keys like any envelope off the wire. A hostile writer can
//! replace entries or fill the log with junk (denial of service, as flooding Whisper is),
//! but cannot forge what opens under a chat's key.
//!
//! Entry (the content of one feed update, at most one chunk): `"STPLTLG\x01" ‖ RLP(envelope)`.

use crate::crypto::{PrivateKey, keccak256_concat};
use crate::swarm::feed::FeedTopic;
use crate::whisper::{Envelope, EnvelopeError, Topic};

/// Magic and version.
pub const MAGIC: [u8; 8] = *b"STPLTLG\x01";
/// The largest entry: one chunk's payload.
pub const MAX_ENTRY: usize = 4096;

/// Why an entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicLogError {
    /// The envelope does not fit one chunk.
    #[error("envelope of {0} bytes does not fit a topic log entry ({MAX_ENTRY} bytes)")]
    TooLarge(usize),
    /// Not a Staples v1 topic log entry.
    #[error("not a Staples v1 topic log entry")]
    Magic,
    /// The envelope does not decode.
    #[error("topic log entry: {0}")]
    Envelope(#[from] EnvelopeError),
    /// The envelope is on another topic than the log's.
    #[error("topic log entry is for another topic")]
    WrongTopic,
}

/// The owner key of topic `topic`'s log, which every reader and writer derives.
pub fn owner_key(topic: &Topic) -> PrivateKey {
    crate::chat::keys::key_from_seed(keccak256_concat(&[b"staples/topic-log/v1", &topic.0]))
}

/// The feed topic of every topic log (the owner tells the logs apart).
pub fn feed_topic() -> FeedTopic {
    FeedTopic::from_string("staples/topic-log/v1")
}

/// The entry carrying `env`.
pub fn encode(env: &Envelope) -> Result<Vec<u8>, TopicLogError> {
    let rlp = env.encode();
    let len = MAGIC.len() + rlp.len();
    if len > MAX_ENTRY {
        return Err(TopicLogError::TooLarge(rlp.len()));
    }
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&rlp);
    Ok(out)
}

/// The envelope in an entry of `topic`'s log. Only the format and the topic are checked
/// here; expiry, PoW and size are the reading node's admission rules.
pub fn decode(topic: &Topic, entry: &[u8]) -> Result<Envelope, TopicLogError> {
    let rlp = entry.strip_prefix(&MAGIC).ok_or(TopicLogError::Magic)?;
    let env = Envelope::decode(rlp)?;
    if env.topic != *topic {
        return Err(TopicLogError::WrongTopic);
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::whisper::{Draft, Recipient, SymKey, wrap};

    fn env(topic: [u8; 4], payload: &[u8]) -> Envelope {
        let key = SymKey::from_password("topic-log");
        let draft = Draft {
            topic: Topic(topic),
            payload,
            padding: None,
            signer: None,
            ttl: 60,
            to: Recipient::Symmetric(&key),
        };
        wrap(&draft, 1_700_000_000, &mut rand::rngs::OsRng).expect("wraps")
    }

    #[test]
    fn entries_round_trip_and_bad_ones_say_why() {
        let e = env([1, 2, 3, 4], b"hello");
        let entry = encode(&e).expect("fits");
        assert_eq!(decode(&Topic([1, 2, 3, 4]), &entry), Ok(e.clone()));
        assert_eq!(
            decode(&Topic([9, 9, 9, 9]), &entry),
            Err(TopicLogError::WrongTopic)
        );
        assert_eq!(
            decode(&Topic([1, 2, 3, 4]), &entry[1..]),
            Err(TopicLogError::Magic)
        );
        assert!(matches!(
            decode(&Topic([1, 2, 3, 4]), &entry[..entry.len() - 3]),
            Err(TopicLogError::Envelope(_))
        ));
        let big = env([1, 2, 3, 4], &[7; 5000]);
        assert!(matches!(encode(&big), Err(TopicLogError::TooLarge(_))));
    }

    #[test]
    fn each_topic_has_its_own_owner() {
        let a = owner_key(&Topic([1, 2, 3, 4])).public_key().eth_address();
        let b = owner_key(&Topic([1, 2, 3, 5])).public_key().eth_address();
        assert_ne!(a, b);
        assert_eq!(
            a,
            owner_key(&Topic([1, 2, 3, 4])).public_key().eth_address()
        );
    }
}
