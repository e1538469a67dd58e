//! The local Whisper node: an envelope pool with geth's acceptance rules ([`pool`]) and the
//! filters that open and deliver what arrives ([`filters`]).
//!
//! [`Node`] is the seam the JSON-RPC layer talks to, so tests can swap the node; [`LocalNode`]
//! implements it in memory. Posting adds to the node's own pool, so the node's own filters
//! receive what its apps post; several `staples` processes share one pool by pointing
//! `--whisper-rpc` at the process that runs it.
//!
//! Locking: the pool and the filter set are behind `std::sync` locks held only for
//! in-memory work (never across an `.await`), so a blocking lock is cheaper than an async
//! one. Matching runs under the filter set's *read* lock, so concurrent posts open envelopes
//! in parallel; subscriptions found full are evicted afterwards under the write lock.

pub mod filters;
pub mod pool;

use std::sync::{Arc, Mutex, RwLock};

use staples_protocol::whisper::Envelope;

pub use filters::{Criteria, Delivered, FilterKey, PollError, Push, Sink};
pub use pool::{AddError, Added, Pool, Pooled, SettingsError};

use filters::{FilterSet, Removed};

/// geth's `shh_info` numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Info {
    /// Bytes of envelopes held.
    pub memory: usize,
    /// Envelopes held.
    pub messages: usize,
    /// Minimum PoW.
    pub min_pow: f64,
    /// Maximum message size.
    pub max_message_size: u32,
}

/// What the Whisper JSON-RPC service needs from a node.
pub trait Node: Send + Sync + 'static {
    /// Admits an envelope (geth `add`) and notifies filters. `p2p` marks direct envelopes.
    fn add(&self, envelope: Envelope, now: u32, p2p: bool) -> Result<Added, AddError>;
    /// Re-admits an envelope accepted before a restart (only expiry is checked).
    fn readmit(&self, envelope: Envelope, now: u32) -> Added;
    /// Drops expired envelopes.
    fn purge(&self, now: u32) -> usize;
    /// Pool statistics and settings.
    fn info(&self) -> Info;
    /// Sets the minimum PoW.
    fn set_min_pow(&self, pow: f64, now: u32) -> Result<(), SettingsError>;
    /// Sets the maximum message size.
    fn set_max_message_size(&self, size: u32) -> Result<(), SettingsError>;
    /// Sets the bloom filter.
    fn set_bloom(&self, bloom: &[u8], now: u32) -> Result<(), SettingsError>;
    /// Installs a polling filter under `id`.
    fn install_poll(&self, id: String, criteria: Criteria);
    /// Installs a subscription under `id`.
    fn install_push(&self, id: String, criteria: Criteria, sink: Box<dyn Sink>);
    /// Removes a filter or subscription.
    fn uninstall(&self, id: &str) -> bool;
    /// Whether a filter is installed.
    fn has_filter(&self, id: &str) -> bool;
    /// Returns and clears a polling filter's messages.
    fn retrieve(&self, id: &str) -> Result<Vec<Arc<Delivered>>, PollError>;
}

impl LocalNode {
    /// Offers an envelope released by the PSS engine to the filters, without pooling it:
    /// the engine already checked it, deduplicated it by DAG id, and it may be long
    /// expired (an offline inbox is read hours later).
    pub fn release(&self, envelope: Envelope) {
        let hash = envelope.hash();
        let pow = staples_protocol::whisper::pow::pow_v19(&envelope);
        let pooled = Arc::new(Pooled {
            envelope,
            hash,
            pow,
        });
        self.deliver(&Added::New(pooled), false);
    }
}

impl crate::engine::Release for LocalNode {
    fn release(&self, envelope: Envelope) {
        LocalNode::release(self, envelope);
    }
}

/// The in-memory Whisper node.
pub struct LocalNode {
    pool: Mutex<Pool>,
    filters: RwLock<FilterSet>,
}

impl LocalNode {
    /// A node with an empty pool and the given minimum PoW.
    pub fn new(min_pow: f64) -> Self {
        LocalNode {
            pool: Mutex::new(Pool::new(min_pow)),
            filters: RwLock::new(FilterSet::default()),
        }
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, Pool> {
        // A panic while holding the lock cannot leave the pool half-updated in a way that
        // matters more than stopping service would, so poisoning is ignored.
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn filters_mut(&self) -> std::sync::RwLockWriteGuard<'_, FilterSet> {
        self.filters.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl LocalNode {
    /// Offers a newly pooled envelope to the filters and evicts subscribers that fell behind.
    fn deliver(&self, added: &Added, p2p: bool) {
        let Added::New(pooled) = added else {
            return;
        };
        let evict = self
            .filters
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .notify(pooled, p2p);
        if evict.is_empty() {
            return;
        }
        let mut lagged = Vec::new();
        {
            let mut set = self.filters_mut();
            for id in &evict {
                if let Some(Removed::Lagged(sink)) = set.evict(id) {
                    lagged.push((id.clone(), sink));
                }
            }
        }
        // Told after the lock is released: a sink may take its own locks.
        for (id, sink) in lagged {
            tracing::warn!(filter = %id, "subscriber fell behind; subscription closed");
            sink.fail(LAG_REASON);
        }
    }
}

/// Why a subscription that fell behind was closed (sent to the client).
pub const LAG_REASON: &str =
    "subscription closed: the client fell behind and its notification queue is full";

impl Node for LocalNode {
    fn add(&self, envelope: Envelope, now: u32, p2p: bool) -> Result<Added, AddError> {
        let candidate = Pooled::new(envelope, now);
        let added = self.pool().admit(candidate, now)?;
        self.deliver(&added, p2p);
        Ok(added)
    }

    fn readmit(&self, envelope: Envelope, now: u32) -> Added {
        let candidate = Pooled::new(envelope, now);
        let added = self.pool().readmit_hashed(candidate, now);
        self.deliver(&added, false);
        added
    }

    fn purge(&self, now: u32) -> usize {
        self.pool().purge(now)
    }

    fn info(&self) -> Info {
        let pool = self.pool();
        Info {
            memory: pool.memory(),
            messages: pool.len(),
            min_pow: pool.min_pow(),
            max_message_size: pool.max_message_size(),
        }
    }

    fn set_min_pow(&self, pow: f64, now: u32) -> Result<(), SettingsError> {
        self.pool().set_min_pow(pow, now)
    }

    fn set_max_message_size(&self, size: u32) -> Result<(), SettingsError> {
        self.pool().set_max_message_size(size)
    }

    fn set_bloom(&self, bloom: &[u8], now: u32) -> Result<(), SettingsError> {
        self.pool().set_bloom(bloom, now)
    }

    fn install_poll(&self, id: String, criteria: Criteria) {
        self.filters_mut().install_poll(id, criteria);
    }

    fn install_push(&self, id: String, criteria: Criteria, sink: Box<dyn Sink>) {
        self.filters_mut().install_push(id, criteria, sink);
    }

    fn uninstall(&self, id: &str) -> bool {
        self.filters_mut().remove(id)
    }

    fn has_filter(&self, id: &str) -> bool {
        self.filters
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
    }

    fn retrieve(&self, id: &str) -> Result<Vec<Arc<Delivered>>, PollError> {
        self.filters_mut().retrieve(id)
    }
}
