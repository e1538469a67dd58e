//! The chunk store every virtual node shares, as if the network replicated perfectly.
//!
//! Chunks live in memory in 16 shards (by the address's first byte) so concurrent uploads
//! rarely wait on one lock; each entry keeps the time it was stored, which the stale-feed
//! knob reads. With a data directory, every change is journaled before it becomes
//! visible, so a reader never sees a chunk that a restart would lose.
//!
//! Memory per chunk is the data (up to 4104 bytes for a CAC, 4201 for a SOC) plus the
//! map entry (~80 bytes) and the allocator's rounding; the loopback benchmark measures it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use staples_protocol::swarm::ChunkAddress;
use staples_protocol::swarm::bytes_tree::ChunkSource;

use crate::journal::{Journal, JournalError, Record};

const SHARDS: usize = 16;

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The journal could not record the change, so it was not made.
    #[error("chunk store journal: {0}")]
    Journal(#[from] JournalError),
}

/// A stored chunk and when it arrived.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The chunk's bytes (`span ‖ payload`, or the whole SOC).
    pub data: Bytes,
    /// When it was stored; replayed chunks count as stored at start.
    pub stored_at: Instant,
}

/// The shared chunk store.
#[derive(Debug)]
pub struct Store {
    shards: [RwLock<HashMap<ChunkAddress, Stored>>; SHARDS],
    journal: Option<Journal>,
    count: AtomicUsize,
    bytes: AtomicU64,
}

impl Store {
    /// A store that keeps chunks only in memory.
    pub fn in_memory() -> Self {
        Self::with_journal(None)
    }

    /// A store that journals every change to `journal` (if any).
    pub fn with_journal(journal: Option<Journal>) -> Self {
        Self {
            shards: std::array::from_fn(|_| RwLock::new(HashMap::new())),
            journal,
            count: AtomicUsize::new(0),
            bytes: AtomicU64::new(0),
        }
    }

    /// The chunk at `address`.
    pub fn get(&self, address: &ChunkAddress) -> Option<Bytes> {
        self.shard(address)
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(address)
            .map(|s| s.data.clone())
    }

    /// The chunk at `address` if it was stored at least `min_age` ago.
    pub fn get_older_than(&self, address: &ChunkAddress, min_age: Duration) -> Option<Bytes> {
        let shard = self.shard(address).read();
        let shard = shard.unwrap_or_else(PoisonError::into_inner);
        let stored = shard.get(address)?;
        (min_age.is_zero() || stored.stored_at.elapsed() >= min_age).then(|| stored.data.clone())
    }

    /// Whether `address` is stored.
    pub fn contains(&self, address: &ChunkAddress) -> bool {
        self.shard(address)
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(address)
    }

    /// Stores `data` at `address` (journaled first), replacing what was there.
    pub async fn put(&self, address: ChunkAddress, data: Bytes) -> Result<(), StoreError> {
        if let Some(j) = &self.journal {
            j.append(Record::Chunk {
                address,
                data: data.to_vec(),
            })
            .await?;
        }
        self.insert(address, data);
        Ok(())
    }

    /// Removes `address` (journaled first); returns whether it was stored.
    pub async fn remove(&self, address: &ChunkAddress) -> Result<bool, StoreError> {
        if !self.contains(address) {
            return Ok(false);
        }
        if let Some(j) = &self.journal {
            j.append(Record::Remove { address: *address }).await?;
        }
        let removed = self
            .shard(address)
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(address);
        if let Some(old) = &removed {
            self.count.fetch_sub(1, Ordering::Relaxed);
            self.bytes
                .fetch_sub(old.data.len() as u64, Ordering::Relaxed);
        }
        Ok(removed.is_some())
    }

    /// Applies a journal record during replay (no journaling).
    pub fn replay(&self, record: &Record) {
        match record {
            Record::Chunk { address, data } => {
                self.insert(*address, Bytes::copy_from_slice(data));
            }
            Record::Remove { address } => {
                let removed = self
                    .shard(address)
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(address);
                if let Some(old) = removed {
                    self.count.fetch_sub(1, Ordering::Relaxed);
                    self.bytes
                        .fetch_sub(old.data.len() as u64, Ordering::Relaxed);
                }
            }
            _ => {}
        }
    }

    /// Number of stored chunks.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total bytes of chunk data held.
    pub fn data_bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The journal, for records the store does not own (batches, stamps).
    pub fn journal(&self) -> Option<&Journal> {
        self.journal.as_ref()
    }

    fn insert(&self, address: ChunkAddress, data: Bytes) {
        let len = data.len() as u64;
        let old = self
            .shard(&address)
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                address,
                Stored {
                    data,
                    stored_at: Instant::now(),
                },
            );
        match old {
            Some(old) => {
                self.bytes
                    .fetch_sub(old.data.len() as u64, Ordering::Relaxed);
            }
            None => {
                self.count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.bytes.fetch_add(len, Ordering::Relaxed);
    }

    fn shard(&self, address: &ChunkAddress) -> &RwLock<HashMap<ChunkAddress, Stored>> {
        &self.shards[usize::from(address.as_bytes()[0]) % SHARDS]
    }
}

impl ChunkSource for Store {
    fn get(&self, address: &ChunkAddress) -> Option<Cow<'_, [u8]>> {
        // The slice must outlive the shard lock, so the joiner gets a copy (4 KiB).
        Store::get(self, address).map(|b| Cow::Owned(b.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_get_remove_and_counters() {
        let s = Store::in_memory();
        let a = ChunkAddress::from_bytes([9; 32]);
        assert!(s.get(&a).is_none());
        s.put(a, Bytes::from_static(b"12345678x"))
            .await
            .expect("put");
        assert_eq!(s.get(&a).as_deref(), Some(&b"12345678x"[..]));
        assert_eq!((s.len(), s.data_bytes()), (1, 9));
        s.put(a, Bytes::from_static(b"12345678yy"))
            .await
            .expect("put");
        assert_eq!(
            (s.len(), s.data_bytes()),
            (1, 10),
            "a replacement is not a new chunk"
        );
        assert!(s.remove(&a).await.expect("remove"));
        assert!(!s.remove(&a).await.expect("remove"));
        assert_eq!((s.len(), s.data_bytes()), (0, 0));
    }

    #[tokio::test]
    async fn fresh_chunks_are_hidden_from_aged_reads() {
        let s = Store::in_memory();
        let a = ChunkAddress::from_bytes([1; 32]);
        s.put(a, Bytes::from_static(b"data")).await.expect("put");
        assert!(s.get_older_than(&a, Duration::ZERO).is_some());
        assert!(s.get_older_than(&a, Duration::from_secs(3600)).is_none());
    }
}
