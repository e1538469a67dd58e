//! The contact record: published by an identity key (a Whisper key pair the app listens
//! with) on its own feed at [`super::keys::contact_topic`], so a sender who knows only
//! the public key can reach its owner live.
//!
//! Layout (114 bytes): `"STPLCON\x01" ‖ node_key(33, compressed) ‖ overlay(32) ‖
//! pss_key(33, compressed) ‖ u64be timestamp_ms`. The record is not signed on its own:
//! it is the payload of a single-owner chunk, whose signature already proves that the
//! identity key wrote it. A reader that fetched it through a verified SOC at the
//! identity's feed address therefore has an authenticated record.

use crate::crypto::PublicKey;

/// Magic and version.
pub const MAGIC: [u8; 8] = *b"STPLCON\x01";
/// Encoded length.
pub const LEN: usize = 8 + 33 + 32 + 33 + 8;

/// Why a record did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContactError {
    /// Wrong length.
    #[error("contact record must be {LEN} bytes, got {0}")]
    Length(usize),
    /// Not a Staples contact record, or another version.
    #[error("not a Staples v1 contact record")]
    Magic,
    /// A key field is not a valid curve point.
    #[error("contact record holds an invalid {0} key")]
    Key(&'static str),
}

/// How to reach an identity's owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactRecord {
    /// The sidecar node key that owns the identity's inbox feeds and signs its DAG
    /// messages.
    pub node_key: PublicKey,
    /// The Bee overlay of the owner's node (the PSS target).
    pub overlay: [u8; 32],
    /// The Bee node's PSS key (PSS messages are encrypted to it).
    pub pss_key: PublicKey,
    /// When it was written, Unix ms (newer records win).
    pub timestamp_ms: u64,
}

impl ContactRecord {
    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(LEN);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&self.node_key.to_compressed());
        out.extend_from_slice(&self.overlay);
        out.extend_from_slice(&self.pss_key.to_compressed());
        out.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        out
    }

    /// Decodes exactly one record.
    pub fn decode(bytes: &[u8]) -> Result<Self, ContactError> {
        if bytes.len() != LEN {
            return Err(ContactError::Length(bytes.len()));
        }
        if bytes[..8] != MAGIC {
            return Err(ContactError::Magic);
        }
        let node_key =
            PublicKey::from_bytes(&bytes[8..41]).map_err(|_| ContactError::Key("node"))?;
        let mut overlay = [0u8; 32];
        overlay.copy_from_slice(&bytes[41..73]);
        let pss_key =
            PublicKey::from_bytes(&bytes[73..106]).map_err(|_| ContactError::Key("pss"))?;
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&bytes[106..114]);
        Ok(Self {
            node_key,
            overlay,
            pss_key,
            timestamp_ms: u64::from_be_bytes(ts),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::PrivateKey;

    #[test]
    fn round_trip_and_rejections() {
        let k = |n| {
            PrivateKey::from_bytes(&[n; 32])
                .expect("valid")
                .public_key()
        };
        let rec = ContactRecord {
            node_key: k(1),
            overlay: [7; 32],
            pss_key: k(2),
            timestamp_ms: 42,
        };
        let bytes = rec.encode();
        assert_eq!(bytes.len(), LEN);
        assert_eq!(ContactRecord::decode(&bytes), Ok(rec));
        assert_eq!(
            ContactRecord::decode(&bytes[1..]),
            Err(ContactError::Length(LEN - 1))
        );
        let mut bad = bytes.clone();
        bad[7] = 2;
        assert_eq!(ContactRecord::decode(&bad), Err(ContactError::Magic));
        let mut bad = bytes;
        bad[8] = 9; // not a compressed-point prefix
        assert_eq!(ContactRecord::decode(&bad), Err(ContactError::Key("node")));
    }
}
