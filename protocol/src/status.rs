//! Status conventions on top of Whisper: how chats map to topics and keys.
//!
//! All topics are `keccak256(utf8(name))[0..4]` ([`Topic::from_name`]); what varies is the
//! name (status-go v0.63.8 `protocol/transport/topic.go`):
//! - public chat: the chat name, with key PBKDF2(chat name) (`shh_generateSymKeyFromPassword`);
//! - generic discovery: `contact-discovery`;
//! - partitioned discovery (1:1 since protocol v1): `contact-discovery-{X mod 5000}`;
//! - personal discovery: `contact-discovery-{hex(uncompressed key)}`;
//! - contact code: `0x{hex(uncompressed key)}-contact-code`;
//! - negotiated: hex of the 32-byte ECDH secret, keyed like a public chat.

use crate::crypto::PublicKey;
use crate::whisper::{SymKey, Topic};

/// The generic discovery topic name.
pub const CONTACT_DISCOVERY: &str = "contact-discovery";
/// How many partitions partitioned discovery uses.
pub const PARTITIONS: u32 = 5000;
/// Password of the mailserver (offline inbox) symmetric key.
pub const OFFLINE_INBOX_PASSWORD: &str = "status-offline-inbox";

/// Topic of a public chat.
pub fn public_chat_topic(chat: &str) -> Topic {
    Topic::from_name(chat)
}

/// Symmetric key of a public chat: PBKDF2 of its name.
pub fn public_chat_key(chat: &str) -> SymKey {
    SymKey::from_password(chat)
}

/// `contact-discovery-{X mod 5000}` for a public key.
pub fn partitioned_topic_name(key: &PublicKey) -> String {
    let x = &key.to_uncompressed()[1..33];
    // Big-endian long division by 5000; the remainder always fits in u32.
    let rem = x
        .iter()
        .fold(0u32, |r, b| (r * 256 + u32::from(*b)) % PARTITIONS);
    format!("{CONTACT_DISCOVERY}-{rem}")
}

/// `contact-discovery-{hex(uncompressed key)}`.
pub fn personal_discovery_topic_name(key: &PublicKey) -> String {
    format!("{CONTACT_DISCOVERY}-{}", hex::encode(key.to_uncompressed()))
}

/// `0x{hex(uncompressed key)}-contact-code`.
pub fn contact_code_topic_name(key: &PublicKey) -> String {
    format!("0x{}-contact-code", hex::encode(key.to_uncompressed()))
}

/// The name of a negotiated topic: hex of the shared secret, no `0x`.
pub fn negotiated_topic_name(shared_secret: &[u8; 32]) -> String {
    hex::encode(shared_secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{PrivateKey, keccak256};

    #[test]
    fn partition_is_below_5000_and_stable() {
        for seed in [&b"a"[..], b"b", b"c"] {
            let k = PrivateKey::from_bytes(&keccak256(seed))
                .expect("valid")
                .public_key();
            let name = partitioned_topic_name(&k);
            let n: u32 = name
                .rsplit('-')
                .next()
                .and_then(|s| s.parse().ok())
                .expect("numeric suffix");
            assert!(n < PARTITIONS);
            assert_eq!(name, partitioned_topic_name(&k));
        }
    }
}
