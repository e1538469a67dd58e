//! Postage stamps: the 113-byte proof that a batch owner paid for storing a chunk.
//!
//! Layout (bee-js `src/utils/stamps.ts` `marshalStamp`, Bee `pkg/postage/stamp.go`):
//! `batch_id (32) ‖ index (8 = u32be bucket ‖ u32be slot) ‖ timestamp (8, u64be) ‖
//! signature (65)`. The batch owner signs `keccak256(chunk_address ‖ batch_id ‖ index ‖
//! timestamp)` with the Ethereum prefix. The bucket is the top `bucket_depth` bits of the
//! chunk address (the first 2 bytes for Bee's depth 16); a batch of depth `d` has
//! `2^(d − bucket_depth)` slots per bucket. Bee and bee-js ≥ 12.3 write the timestamp in
//! nanoseconds; the caller supplies it.

use std::collections::BTreeMap;

use crate::crypto::{PrivateKey, keccak256_concat};

use super::chunk::ChunkAddress;
use super::signature::{SIGNATURE_SIZE, SignatureError, SwarmSignature};

/// Bytes in a marshalled stamp.
pub const STAMP_SIZE: usize = 32 + 8 + 8 + SIGNATURE_SIZE;

/// Errors from stamping and stamp verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StampError {
    /// A stamp is not 113 bytes.
    #[error("stamp of {len} bytes, expected 113")]
    Length {
        /// Length received.
        len: usize,
    },
    /// The signature is malformed or does not recover.
    #[error("stamp signature: {0}")]
    Signature(#[from] SignatureError),
    /// The signer is not the batch owner.
    #[error("stamp is not signed by the batch owner")]
    OwnerMismatch,
    /// The index's bucket is not the chunk address's bucket.
    #[error("stamp bucket {actual} does not match the chunk's bucket {expected}")]
    BucketMismatch {
        /// Bucket of the chunk address.
        expected: u32,
        /// Bucket in the stamp.
        actual: u32,
    },
    /// The slot is beyond the batch's per-bucket capacity.
    #[error("stamp slot {slot} is beyond the bucket capacity {capacity}")]
    SlotOutOfRange {
        /// Slot in the stamp.
        slot: u32,
        /// Slots per bucket.
        capacity: u64,
    },
    /// Depths outside `1 ≤ bucket_depth ≤ 32`, `bucket_depth ≤ depth ≤ bucket_depth + 32`.
    #[error("batch depth {depth} with bucket depth {bucket_depth} is invalid")]
    Depth {
        /// Batch depth.
        depth: u8,
        /// Bucket depth.
        bucket_depth: u8,
    },
    /// Every slot of the chunk's bucket is used (bee-js "Bucket is full").
    #[error("bucket {bucket} is full")]
    BucketFull {
        /// The full bucket.
        bucket: u32,
    },
}

/// Where a stamp sits in its batch: bucket and slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StampIndex {
    /// Top `bucket_depth` bits of the chunk address.
    pub bucket: u32,
    /// Position within the bucket.
    pub slot: u32,
}

impl StampIndex {
    /// `u32be(bucket) ‖ u32be(slot)`.
    pub fn to_bytes(&self) -> [u8; 8] {
        let mut out = [0u8; 8];
        out[..4].copy_from_slice(&self.bucket.to_be_bytes());
        out[4..].copy_from_slice(&self.slot.to_be_bytes());
        out
    }

    /// Inverse of [`Self::to_bytes`].
    pub fn from_bytes(bytes: &[u8; 8]) -> Self {
        let [b0, b1, b2, b3, s0, s1, s2, s3] = *bytes;
        Self {
            bucket: u32::from_be_bytes([b0, b1, b2, b3]),
            slot: u32::from_be_bytes([s0, s1, s2, s3]),
        }
    }
}

/// The bucket of `address`: its top `bucket_depth` bits (1..=32).
pub fn bucket(address: &ChunkAddress, bucket_depth: u8) -> Result<u32, StampError> {
    if !(1..=32).contains(&bucket_depth) {
        return Err(StampError::Depth {
            depth: bucket_depth,
            bucket_depth,
        });
    }
    let a = address.as_bytes();
    let top = u32::from_be_bytes([a[0], a[1], a[2], a[3]]);
    Ok(top >> (32 - u32::from(bucket_depth)))
}

/// Slots per bucket for a batch of `depth`.
fn bucket_capacity(depth: u8, bucket_depth: u8) -> Result<u64, StampError> {
    let bad = StampError::Depth {
        depth,
        bucket_depth,
    };
    if !(1..=32).contains(&bucket_depth) || depth < bucket_depth {
        return Err(bad);
    }
    1u64.checked_shl(u32::from(depth - bucket_depth)).ok_or(bad)
}

/// What the batch owner signs: `keccak256(chunk_address ‖ batch_id ‖ index ‖ timestamp)`.
pub fn to_sign(
    chunk: &ChunkAddress,
    batch_id: &[u8; 32],
    index: &StampIndex,
    timestamp: u64,
) -> [u8; 32] {
    keccak256_concat(&[
        chunk.as_bytes(),
        batch_id,
        &index.to_bytes(),
        &timestamp.to_be_bytes(),
    ])
}

/// A postage stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The batch paying for the chunk.
    pub batch_id: [u8; 32],
    /// Bucket and slot.
    pub index: StampIndex,
    /// Issue time as the caller chose it (Bee: Unix nanoseconds).
    pub timestamp: u64,
    /// The batch owner's signature.
    pub signature: SwarmSignature,
}

impl Stamp {
    /// Signs a stamp for `chunk` (RFC 6979 nonce).
    pub fn sign(
        key: &PrivateKey,
        chunk: &ChunkAddress,
        batch_id: [u8; 32],
        index: StampIndex,
        timestamp: u64,
    ) -> Self {
        let signature = SwarmSignature::sign(key, &to_sign(chunk, &batch_id, &index, timestamp));
        Self {
            batch_id,
            index,
            timestamp,
            signature,
        }
    }

    /// The 113-byte wire form.
    pub fn to_bytes(&self) -> [u8; STAMP_SIZE] {
        let mut out = [0u8; STAMP_SIZE];
        out[..32].copy_from_slice(&self.batch_id);
        out[32..40].copy_from_slice(&self.index.to_bytes());
        out[40..48].copy_from_slice(&self.timestamp.to_be_bytes());
        out[48..].copy_from_slice(self.signature.as_bytes());
        out
    }

    /// Parses exactly 113 bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, StampError> {
        let b: &[u8; STAMP_SIZE] = bytes
            .try_into()
            .map_err(|_| StampError::Length { len: bytes.len() })?;
        let (batch, rest) = b.split_at(32);
        let (index, rest) = rest.split_at(8);
        let (timestamp, signature) = rest.split_at(8);
        let mut batch_id = [0u8; 32];
        batch_id.copy_from_slice(batch);
        let mut idx = [0u8; 8];
        idx.copy_from_slice(index);
        let mut ts = [0u8; 8];
        ts.copy_from_slice(timestamp);
        Ok(Self {
            batch_id,
            index: StampIndex::from_bytes(&idx),
            timestamp: u64::from_be_bytes(ts),
            signature: SwarmSignature::from_bytes(signature)?,
        })
    }

    /// The address of whoever signed this stamp for `chunk`.
    pub fn signer(&self, chunk: &ChunkAddress) -> Result<[u8; 20], StampError> {
        let msg = to_sign(chunk, &self.batch_id, &self.index, self.timestamp);
        Ok(self.signature.recover_owner(&msg)?)
    }

    /// Checks signer, bucket and slot against the batch (Bee `postage.ValidStamp` minus the
    /// batch lookup, which needs chain state).
    pub fn verify(
        &self,
        chunk: &ChunkAddress,
        owner: &[u8; 20],
        depth: u8,
        bucket_depth: u8,
    ) -> Result<(), StampError> {
        let capacity = bucket_capacity(depth, bucket_depth)?;
        let expected = bucket(chunk, bucket_depth)?;
        if self.index.bucket != expected {
            return Err(StampError::BucketMismatch {
                expected,
                actual: self.index.bucket,
            });
        }
        if u64::from(self.index.slot) >= capacity {
            return Err(StampError::SlotOutOfRange {
                slot: self.index.slot,
                capacity,
            });
        }
        if self.signer(chunk)? != *owner {
            return Err(StampError::OwnerMismatch);
        }
        Ok(())
    }
}

/// Issues stamps for one batch, counting slots per bucket like bee-js's `Stamper`.
#[derive(Debug, Clone)]
pub struct Stamper {
    key: PrivateKey,
    batch_id: [u8; 32],
    bucket_depth: u8,
    capacity: u64,
    used: BTreeMap<u32, u32>,
}

impl Stamper {
    /// A stamper for batch `batch_id` of `depth` owned by `key`.
    pub fn new(
        key: PrivateKey,
        batch_id: [u8; 32],
        depth: u8,
        bucket_depth: u8,
    ) -> Result<Self, StampError> {
        Ok(Self {
            capacity: bucket_capacity(depth, bucket_depth)?,
            key,
            batch_id,
            bucket_depth,
            used: BTreeMap::new(),
        })
    }

    /// Stamps `chunk` at `timestamp` in the next free slot of its bucket.
    pub fn stamp(&mut self, chunk: &ChunkAddress, timestamp: u64) -> Result<Stamp, StampError> {
        let bucket = bucket(chunk, self.bucket_depth)?;
        let slot = self.used.entry(bucket).or_insert(0);
        if u64::from(*slot) >= self.capacity {
            return Err(StampError::BucketFull { bucket });
        }
        let index = StampIndex {
            bucket,
            slot: *slot,
        };
        *slot += 1;
        Ok(Stamp::sign(
            &self.key,
            chunk,
            self.batch_id,
            index,
            timestamp,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keccak256;

    fn key() -> PrivateKey {
        PrivateKey::from_bytes(&keccak256(b"batch-owner")).expect("valid")
    }

    #[test]
    fn stamps_round_trip_and_verify() {
        let chunk = ChunkAddress::from_bytes([0x23; 32]);
        let mut s = Stamper::new(key(), [7; 32], 17, 16).expect("valid depths");
        let a = s.stamp(&chunk, 1).expect("slot 0");
        let b = s.stamp(&chunk, 2).expect("slot 1");
        assert_eq!((a.index.bucket, a.index.slot, b.index.slot), (0x2323, 0, 1));
        assert_eq!(
            s.stamp(&chunk, 3),
            Err(StampError::BucketFull { bucket: 0x2323 })
        );
        let parsed = Stamp::parse(&a.to_bytes()).expect("113 bytes");
        assert_eq!(parsed, a);
        let owner = key().public_key().eth_address();
        assert_eq!(parsed.verify(&chunk, &owner, 17, 16), Ok(()));
    }

    #[test]
    fn defects_are_typed_errors() {
        let chunk = ChunkAddress::from_bytes([0x23; 32]);
        let owner = key().public_key().eth_address();
        let idx = StampIndex {
            bucket: 0x2323,
            slot: 2,
        };
        let st = Stamp::sign(&key(), &chunk, [7; 32], idx, 5);
        assert_eq!(
            st.verify(&chunk, &owner, 17, 16),
            Err(StampError::SlotOutOfRange {
                slot: 2,
                capacity: 2
            })
        );
        assert_eq!(st.verify(&chunk, &owner, 18, 16), Ok(()));
        assert_eq!(
            st.verify(&chunk, &[0; 20], 18, 16),
            Err(StampError::OwnerMismatch)
        );
        let other = ChunkAddress::from_bytes([0x24; 32]);
        assert_eq!(
            st.verify(&other, &owner, 18, 16),
            Err(StampError::BucketMismatch {
                expected: 0x2424,
                actual: 0x2323
            })
        );
        assert_eq!(
            Stamp::parse(&[0; 112]),
            Err(StampError::Length { len: 112 })
        );
        assert_eq!(
            Stamper::new(key(), [0; 32], 15, 16).map(|_| ()),
            Err(StampError::Depth {
                depth: 15,
                bucket_depth: 16
            })
        );
    }

    #[test]
    fn bucket_takes_the_top_bits() {
        let a = ChunkAddress::from_bytes([0xff; 32]);
        assert_eq!(bucket(&a, 16), Ok(0xffff));
        assert_eq!(bucket(&a, 1), Ok(1));
        assert_eq!(bucket(&a, 32), Ok(u32::MAX));
        assert!(bucket(&a, 0).is_err());
    }
}
