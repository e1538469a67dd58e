//! Postage batches: the "chain" every node sees, and each node's stamp issuers.
//!
//! Follows Bee 2.8.1 `pkg/postage` with the chain mocked the way `bee dev` did: a batch
//! exists and is usable as soon as it is bought, the price never moves (24000 PLUR per
//! chunk per block, 5 s blocks), and top-up/dilute are not implemented.
//!
//! - A batch belongs to the node that bought it: only that node stamps with it through
//!   `Swarm-Postage-Batch-Id` (any other node answers 404, as Bee does for a batch without
//!   a local issuer). Pre-signed stamps (`Swarm-Postage-Stamp`) are checked against the
//!   global batch list, on any node.
//! - Slots: the bucket is the top 16 bits of the chunk address; a batch of depth `d` has
//!   `2^(d-16)` slots per bucket. Restamping a chunk the batch already stamped reuses its
//!   slot (Bee's `StampItem` lookup). A full bucket is an error for an immutable batch
//!   (Bee's default) and wraps around for a mutable one (`StampIssuer.increment`).
//! - Pre-signed stamps must be signed by the batch owner (Bee checks only that); this node
//!   also checks bucket and slot range up front, which Bee leaves to the storer nodes.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use staples_protocol::swarm::ChunkAddress;
use staples_protocol::swarm::stamp::{self, Stamp, StampError, StampIndex};

use crate::journal::Record;

/// Bits of the chunk address that choose a bucket (Bee's fixed bucket depth).
pub const BUCKET_DEPTH: u8 = 16;
/// Smallest batch depth Bee's API accepts (`validate:"min=17"`).
pub const MIN_DEPTH: u8 = 17;
/// Largest depth this node accepts: slots must fit Bee's `uint32` bucket counters.
pub const MAX_DEPTH: u8 = 47;
/// Price per chunk per block, PLUR (bee-js clamps anything lower to this).
pub const CURRENT_PRICE: u128 = 24_000;
/// Blocks a new batch must at least pay for (24 h of 5 s blocks).
pub const MINIMUM_VALIDITY_BLOCKS: u64 = 17_280;
/// Seconds per block.
pub const BLOCK_TIME_SECS: u64 = 5;

/// Errors from batches and stamping.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostageError {
    /// This node has no issuer for the batch (unknown, or bought by another node).
    #[error("batch with id not found")]
    IssuerNotFound,
    /// The batch of a pre-signed stamp is not on the chain.
    #[error("invalid batch id")]
    UnknownBatch,
    /// Every slot of the chunk's bucket is used and the batch is immutable.
    #[error("batch is overissued: bucket {bucket} is full")]
    BucketFull {
        /// The full bucket.
        bucket: u32,
    },
    /// Depth outside 17..=47.
    #[error("invalid depth {0}: must be within {MIN_DEPTH}..={MAX_DEPTH}")]
    InvalidDepth(u8),
    /// Amount too small for the 24 h minimum validity.
    #[error("insufficient amount for 24h minimum validity: must be above {min}")]
    InsufficientAmount {
        /// The bound the amount must exceed.
        min: u128,
    },
    /// A pre-signed stamp was not signed by the batch owner.
    #[error("stamp signature is invalid")]
    SignatureInvalid,
    /// A pre-signed stamp is otherwise invalid (bucket, slot, signature bytes).
    #[error("invalid stamp: {0}")]
    InvalidStamp(StampError),
    /// The label is empty.
    #[error("label is required")]
    LabelRequired,
}

/// A batch as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchInfo {
    /// Batch id.
    pub id: [u8; 32],
    /// Index of the node that bought it.
    pub owner_node: usize,
    /// Ethereum address of that node.
    pub owner: [u8; 20],
    /// Depth.
    pub depth: u8,
    /// Amount paid per chunk (PLUR).
    pub amount: u128,
    /// Label given at purchase.
    pub label: String,
    /// Whether a full bucket is an error rather than wrapping.
    pub immutable: bool,
    /// Block of purchase.
    pub block: u64,
    /// The fullest bucket's count (Bee's `utilization`).
    pub utilization: u32,
}

impl BatchInfo {
    /// Slots per bucket.
    pub fn bucket_upper_bound(&self) -> u32 {
        // depth ≤ 47, so the shift is at most 31.
        1u32 << (self.depth - BUCKET_DEPTH)
    }

    /// Seconds the batch lasts at the constant price: `amount · block time / price`.
    pub fn ttl_secs(&self) -> i64 {
        let ttl = self.amount.saturating_mul(u128::from(BLOCK_TIME_SECS)) / CURRENT_PRICE;
        i64::try_from(ttl).unwrap_or(i64::MAX)
    }
}

/// What a purchase needs.
#[derive(Debug, Clone)]
pub struct NewBatch {
    /// The id to give the batch.
    pub id: [u8; 32],
    /// Buying node.
    pub owner_node: usize,
    /// Its Ethereum address.
    pub owner: [u8; 20],
    /// Depth.
    pub depth: u8,
    /// Amount per chunk.
    pub amount: u128,
    /// Label.
    pub label: String,
    /// Immutable flag.
    pub immutable: bool,
    /// Current block.
    pub block: u64,
}

/// The journaled form of a batch.
#[derive(Debug, Serialize, Deserialize)]
struct BatchRecord {
    id: String,
    owner_node: usize,
    owner: String,
    depth: u8,
    amount: String,
    label: String,
    immutable: bool,
    block: u64,
}

#[derive(Debug)]
struct Batch {
    info: BatchInfo,
    buckets: Vec<u32>,
    stamped: HashMap<ChunkAddress, StampIndex>,
}

/// All batches of a network.
///
/// One `std::sync::Mutex` over the map: stamping is a lookup and two counter updates, far
/// shorter than the HTTP work around it, and the lock is never held across an `.await`
/// (signature recovery for pre-signed stamps runs outside it).
#[derive(Debug, Default)]
pub struct Postage {
    batches: Mutex<HashMap<[u8; 32], Batch>>,
}

impl Postage {
    /// No batches yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Buys a batch; returns it and the record to journal.
    pub fn create(&self, new: NewBatch) -> Result<(BatchInfo, Record), PostageError> {
        if !(MIN_DEPTH..=MAX_DEPTH).contains(&new.depth) {
            return Err(PostageError::InvalidDepth(new.depth));
        }
        let min = CURRENT_PRICE * u128::from(MINIMUM_VALIDITY_BLOCKS);
        // Bee's contract: `initialBalance <= minInitialBalance` is refused.
        if new.amount <= min {
            return Err(PostageError::InsufficientAmount { min });
        }
        let info = BatchInfo {
            id: new.id,
            owner_node: new.owner_node,
            owner: new.owner,
            depth: new.depth,
            amount: new.amount,
            label: new.label,
            immutable: new.immutable,
            block: new.block,
            utilization: 0,
        };
        let record = BatchRecord {
            id: hex::encode(info.id),
            owner_node: info.owner_node,
            owner: hex::encode(info.owner),
            depth: info.depth,
            amount: info.amount.to_string(),
            label: info.label.clone(),
            immutable: info.immutable,
            block: info.block,
        };
        // Serialising a struct of strings and integers cannot fail.
        let json = serde_json::to_vec(&record).unwrap_or_default();
        self.insert(info.clone());
        Ok((info, Record::Batch(json)))
    }

    /// Applies a journal record during replay.
    pub fn replay(&self, record: &Record) {
        match record {
            Record::Batch(json) => match decode_batch(json) {
                Some(info) => self.insert(info),
                None => tracing::warn!("skipping malformed batch record"),
            },
            Record::Stamp {
                batch,
                chunk,
                bucket,
                slot,
            } => {
                let mut batches = self.lock();
                if let Some(b) = batches.get_mut(batch)
                    && let Some(count) = b.buckets.get_mut(*bucket as usize)
                {
                    // Records are in issue order, so the last one sets the count (this also
                    // reproduces a mutable batch's wrap-around).
                    *count = slot.saturating_add(1);
                    b.info.utilization = b.info.utilization.max(*count);
                    b.stamped.insert(
                        *chunk,
                        StampIndex {
                            bucket: *bucket,
                            slot: *slot,
                        },
                    );
                }
            }
            Record::Label { batch, label } => {
                if let Some(b) = self.lock().get_mut(batch) {
                    b.info.label = label.clone();
                }
            }
            _ => {}
        }
    }

    /// Checks that `node` can stamp with `batch_id` (before the body is read).
    pub fn check_issuer(&self, node: usize, batch_id: &[u8]) -> Result<(), PostageError> {
        self.issuer(node, batch_id).map(|_| ())
    }

    /// Stamps `chunk` with `node`'s batch: the slot it already has, or the next free one.
    /// Returns the record to journal when a new slot was used.
    pub fn stamp(
        &self,
        node: usize,
        batch_id: &[u8],
        chunk: &ChunkAddress,
    ) -> Result<Option<Record>, PostageError> {
        let id = <[u8; 32]>::try_from(batch_id).map_err(|_| PostageError::IssuerNotFound)?;
        let mut batches = self.lock();
        let b = batches
            .get_mut(&id)
            .filter(|b| b.info.owner_node == node)
            .ok_or(PostageError::IssuerNotFound)?;
        if b.stamped.contains_key(chunk) {
            return Ok(None);
        }
        let bucket = stamp::bucket(chunk, BUCKET_DEPTH).map_err(PostageError::InvalidStamp)?;
        let upper = b.info.bucket_upper_bound();
        let count = b
            .buckets
            .get_mut(bucket as usize)
            .ok_or(PostageError::BucketFull { bucket })?;
        if *count >= upper {
            if b.info.immutable {
                return Err(PostageError::BucketFull { bucket });
            }
            *count = 0;
        }
        let index = StampIndex {
            bucket,
            slot: *count,
        };
        *count += 1;
        b.info.utilization = b.info.utilization.max(*count);
        b.stamped.insert(*chunk, index);
        Ok(Some(Record::Stamp {
            batch: id,
            chunk: *chunk,
            bucket,
            slot: index.slot,
        }))
    }

    /// Checks a pre-signed stamp for `chunk` against the batch on the chain.
    pub fn verify_stamp(&self, stamp: &Stamp, chunk: &ChunkAddress) -> Result<(), PostageError> {
        let (owner, depth) = {
            let batches = self.lock();
            let b = batches
                .get(&stamp.batch_id)
                .ok_or(PostageError::UnknownBatch)?;
            (b.info.owner, b.info.depth)
        };
        // Signature recovery runs outside the lock.
        stamp
            .verify(chunk, &owner, depth, BUCKET_DEPTH)
            .map_err(|e| match e {
                StampError::OwnerMismatch | StampError::Signature(_) => {
                    PostageError::SignatureInvalid
                }
                other => PostageError::InvalidStamp(other),
            })
    }

    /// `node`'s view of one of its batches.
    pub fn issuer(&self, node: usize, batch_id: &[u8]) -> Result<BatchInfo, PostageError> {
        let id = <[u8; 32]>::try_from(batch_id).map_err(|_| PostageError::IssuerNotFound)?;
        self.lock()
            .get(&id)
            .filter(|b| b.info.owner_node == node)
            .map(|b| b.info.clone())
            .ok_or(PostageError::IssuerNotFound)
    }

    /// `node`'s batches, oldest first.
    pub fn issuers(&self, node: usize) -> Vec<BatchInfo> {
        let mut v: Vec<_> = self
            .lock()
            .values()
            .filter(|b| b.info.owner_node == node)
            .map(|b| b.info.clone())
            .collect();
        v.sort_by_key(|b| (b.block, b.id));
        v
    }

    /// Every batch on the chain, oldest first.
    pub fn all(&self) -> Vec<BatchInfo> {
        let mut v: Vec<_> = self.lock().values().map(|b| b.info.clone()).collect();
        v.sort_by_key(|b| (b.block, b.id));
        v
    }

    /// One batch from the chain.
    pub fn get(&self, batch_id: &[u8; 32]) -> Option<BatchInfo> {
        self.lock().get(batch_id).map(|b| b.info.clone())
    }

    /// The per-bucket counts of one of `node`'s batches.
    pub fn buckets(
        &self,
        node: usize,
        batch_id: &[u8],
    ) -> Result<(BatchInfo, Vec<u32>), PostageError> {
        let id = <[u8; 32]>::try_from(batch_id).map_err(|_| PostageError::IssuerNotFound)?;
        self.lock()
            .get(&id)
            .filter(|b| b.info.owner_node == node)
            .map(|b| (b.info.clone(), b.buckets.clone()))
            .ok_or(PostageError::IssuerNotFound)
    }

    /// Renames one of `node`'s batches; returns the record to journal.
    pub fn set_label(
        &self,
        node: usize,
        batch_id: &[u8],
        label: &str,
    ) -> Result<Record, PostageError> {
        if label.trim().is_empty() {
            return Err(PostageError::LabelRequired);
        }
        let id = <[u8; 32]>::try_from(batch_id).map_err(|_| PostageError::IssuerNotFound)?;
        let mut batches = self.lock();
        let b = batches
            .get_mut(&id)
            .filter(|b| b.info.owner_node == node)
            .ok_or(PostageError::IssuerNotFound)?;
        b.info.label = label.to_string();
        Ok(Record::Label {
            batch: id,
            label: label.to_string(),
        })
    }

    /// Chunks all batches pay for: Σ 2^depth (Bee's reserve commitment).
    pub fn commitment(&self) -> u64 {
        self.lock()
            .values()
            .map(|b| 1u64 << b.info.depth)
            .fold(0, u64::saturating_add)
    }

    fn insert(&self, info: BatchInfo) {
        let buckets = vec![0u32; 1 << BUCKET_DEPTH];
        self.lock().insert(
            info.id,
            Batch {
                info,
                buckets,
                stamped: HashMap::new(),
            },
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Batch>> {
        self.batches.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn decode_batch(json: &[u8]) -> Option<BatchInfo> {
    let r: BatchRecord = serde_json::from_slice(json).ok()?;
    let mut id = [0u8; 32];
    hex::decode_to_slice(&r.id, &mut id).ok()?;
    let mut owner = [0u8; 20];
    hex::decode_to_slice(&r.owner, &mut owner).ok()?;
    if !(MIN_DEPTH..=MAX_DEPTH).contains(&r.depth) {
        return None;
    }
    Some(BatchInfo {
        id,
        owner_node: r.owner_node,
        owner,
        depth: r.depth,
        amount: r.amount.parse().ok()?,
        label: r.label,
        immutable: r.immutable,
        block: r.block,
        utilization: 0,
    })
}

#[cfg(test)]
mod tests {
    use staples_protocol::crypto::PrivateKey;

    use super::*;

    const AMOUNT: u128 = 500_000_000;

    fn new_batch(id: u8, depth: u8, immutable: bool) -> NewBatch {
        NewBatch {
            id: [id; 32],
            owner_node: 0,
            owner: [0xaa; 20],
            depth,
            amount: AMOUNT,
            label: "l".into(),
            immutable,
            block: 1,
        }
    }

    /// Addresses in bucket 0x0102 with different low bytes.
    fn in_bucket(n: u8) -> ChunkAddress {
        let mut a = [0u8; 32];
        a[0] = 1;
        a[1] = 2;
        a[31] = n;
        ChunkAddress::from_bytes(a)
    }

    #[test]
    fn purchase_rules() {
        let p = Postage::new();
        assert_eq!(
            p.create(new_batch(1, 16, true)).map(|_| ()),
            Err(PostageError::InvalidDepth(16))
        );
        let mut cheap = new_batch(1, 17, true);
        cheap.amount = CURRENT_PRICE * u128::from(MINIMUM_VALIDITY_BLOCKS);
        assert!(matches!(
            p.create(cheap),
            Err(PostageError::InsufficientAmount { .. })
        ));
        let (info, _) = p.create(new_batch(1, 17, true)).expect("valid");
        assert_eq!(info.bucket_upper_bound(), 2);
        assert_eq!(info.ttl_secs(), (AMOUNT * 5 / 24_000) as i64);
        assert_eq!(p.commitment(), 1 << 17);
    }

    #[test]
    fn immutable_buckets_fill_and_restamps_reuse_slots() {
        let p = Postage::new();
        p.create(new_batch(1, 17, true)).expect("valid");
        let id = [1u8; 32];
        assert!(p.stamp(0, &id, &in_bucket(1)).expect("slot 0").is_some());
        assert_eq!(
            p.stamp(0, &id, &in_bucket(1)),
            Ok(None),
            "same chunk, same slot"
        );
        assert!(p.stamp(0, &id, &in_bucket(2)).expect("slot 1").is_some());
        assert_eq!(
            p.stamp(0, &id, &in_bucket(3)),
            Err(PostageError::BucketFull { bucket: 0x0102 })
        );
        assert_eq!(p.issuer(0, &id).expect("issuer").utilization, 2);
        assert_eq!(
            p.stamp(1, &id, &in_bucket(3)),
            Err(PostageError::IssuerNotFound)
        );
        assert_eq!(
            p.stamp(0, &[1; 31], &in_bucket(3)),
            Err(PostageError::IssuerNotFound)
        );
    }

    #[test]
    fn mutable_buckets_wrap() {
        let p = Postage::new();
        p.create(new_batch(2, 17, false)).expect("valid");
        for n in 1..=3 {
            assert!(
                p.stamp(0, &[2; 32], &in_bucket(n))
                    .expect("wraps")
                    .is_some()
            );
        }
    }

    #[test]
    fn replay_rebuilds_batches_and_slots() {
        let p = Postage::new();
        let (_, rec) = p.create(new_batch(3, 17, true)).expect("valid");
        let mut records = vec![rec];
        records.extend(p.stamp(0, &[3; 32], &in_bucket(1)).expect("stamp"));
        records.extend(p.stamp(0, &[3; 32], &in_bucket(2)).expect("stamp"));
        records.push(p.set_label(0, &[3; 32], "renamed").expect("label"));
        let q = Postage::new();
        for r in &records {
            q.replay(r);
        }
        assert_eq!(q.issuer(0, &[3; 32]), p.issuer(0, &[3; 32]));
        assert_eq!(
            q.stamp(0, &[3; 32], &in_bucket(3)),
            Err(PostageError::BucketFull { bucket: 0x0102 })
        );
    }

    #[test]
    fn presigned_stamps_are_checked_against_the_owner() {
        let key = PrivateKey::from_bytes(&[5; 32]).expect("key");
        let p = Postage::new();
        let mut nb = new_batch(4, 17, true);
        nb.owner = key.public_key().eth_address();
        p.create(nb).expect("valid");
        let chunk = in_bucket(1);
        let idx = StampIndex {
            bucket: 0x0102,
            slot: 1,
        };
        let good = Stamp::sign(&key, &chunk, [4; 32], idx, 1);
        assert_eq!(p.verify_stamp(&good, &chunk), Ok(()));
        let other = PrivateKey::from_bytes(&[6; 32]).expect("key");
        let forged = Stamp::sign(&other, &chunk, [4; 32], idx, 1);
        assert_eq!(
            p.verify_stamp(&forged, &chunk),
            Err(PostageError::SignatureInvalid)
        );
        let wrong_slot = Stamp::sign(&key, &chunk, [4; 32], StampIndex { slot: 2, ..idx }, 1);
        assert!(matches!(
            p.verify_stamp(&wrong_slot, &chunk),
            Err(PostageError::InvalidStamp(
                StampError::SlotOutOfRange { .. }
            ))
        ));
        let unknown = Stamp::sign(&key, &chunk, [9; 32], idx, 1);
        assert_eq!(
            p.verify_stamp(&unknown, &chunk),
            Err(PostageError::UnknownBatch)
        );
    }
}
