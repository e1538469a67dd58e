//! MVDS identifiers as status-go computes them, for interoperating with Status peers.
//!
//! - Message id (vacp2p/mvds `protobuf/messageid.go`, kept by status-go's fork):
//!   `sha256("MESSAGE_ID" ‖ group_id ‖ u64le(timestamp) ‖ body)`. The timestamp is the
//!   `int64` field reinterpreted as `u64` (−1 is `ff…ff`), in seconds. The metadata
//!   (parents) is not hashed, which is why Staples has its own id (`crate::dag`).
//! - One-to-one group id (status-go `protocol/datasync/utils.go` `ToOneToOneGroupID`):
//!   `keccak256(compressed(a) ‖ compressed(b))` with the key whose X coordinate is
//!   smaller first; on equal X the second argument goes first, as in Go.

use sha2::{Digest, Sha256};

use crate::crypto::{PublicKey, keccak256_concat};

const MESSAGE_ID_PREFIX: &[u8] = b"MESSAGE_ID";

/// An MVDS group id (32 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GroupId(pub [u8; 32]);

/// An MVDS message id (32 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MessageId(pub [u8; 32]);

/// `sha256("MESSAGE_ID" ‖ group_id ‖ u64le(timestamp) ‖ body)`.
pub fn message_id(group_id: &GroupId, timestamp: i64, body: &[u8]) -> MessageId {
    let mut h = Sha256::new();
    h.update(MESSAGE_ID_PREFIX);
    h.update(group_id.0);
    // Go casts int64 to uint64 before writing it little-endian: two's complement bits.
    h.update(timestamp.to_le_bytes());
    h.update(body);
    MessageId(h.finalize().into())
}

/// status-go's group id for the one-to-one chat between `a` and `b`.
pub fn one_to_one_group_id(a: &PublicKey, b: &PublicKey) -> GroupId {
    let (ca, cb) = (a.to_compressed(), b.to_compressed());
    // Bytes 1..33 of a compressed key are X, big-endian, so byte order is numeric order.
    let (first, second) = if ca[1..] < cb[1..] {
        (ca, cb)
    } else {
        (cb, ca)
    };
    GroupId(keccak256_concat(&[&first, &second]))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::crypto::PrivateKey;
    use crate::test_vectors::{hex_field, load};

    fn arr32(v: Vec<u8>) -> [u8; 32] {
        v.try_into().unwrap()
    }

    #[test]
    fn message_ids_match_every_vector() {
        let v = load("mvds.json");
        let cases = v["message_ids"].as_array().unwrap();
        assert!(!cases.is_empty());
        for c in cases {
            let group = GroupId(arr32(hex_field(c, "group_id")));
            let ts = c["timestamp"].as_i64().unwrap();
            assert_eq!(ts.to_le_bytes().to_vec(), hex_field(c, "timestamp_le_u64"));
            let body = hex_field(c, "body");
            let mut preimage = MESSAGE_ID_PREFIX.to_vec();
            preimage.extend(group.0);
            preimage.extend(ts.to_le_bytes());
            preimage.extend(&body);
            assert_eq!(preimage, hex_field(c, "preimage"), "{}", c["name"]);
            assert_eq!(
                message_id(&group, ts, &body).0.to_vec(),
                hex_field(c, "message_id"),
                "{}",
                c["name"]
            );
        }
    }

    #[test]
    fn one_to_one_group_ids_match_every_vector() {
        let v = load("mvds.json");
        let cases = v["one_to_one_group_ids"].as_array().unwrap();
        assert!(!cases.is_empty());
        for c in cases {
            let k1 = PrivateKey::from_bytes(&hex_field(c, "private_key_1")).unwrap();
            let k2 = PrivateKey::from_bytes(&hex_field(c, "private_key_2")).unwrap();
            let (p1, p2) = (k1.public_key(), k2.public_key());
            assert_eq!(
                p1.to_compressed().to_vec(),
                hex_field(c, "public_key_1_compressed")
            );
            assert_eq!(
                p2.to_compressed().to_vec(),
                hex_field(c, "public_key_2_compressed")
            );
            let x_smaller = p1.to_compressed()[1..] < p2.to_compressed()[1..];
            assert_eq!(x_smaller, c["key_1_x_smaller"].as_bool().unwrap());
            let (a, b) = if x_smaller { (p1, p2) } else { (p2, p1) };
            let mut concat = a.to_compressed().to_vec();
            concat.extend(b.to_compressed());
            assert_eq!(concat, hex_field(c, "hashed_concatenation"));
            assert_eq!(
                one_to_one_group_id(&p1, &p2).0.to_vec(),
                hex_field(c, "group_id"),
                "{}",
                c["name"]
            );
        }
    }
}
