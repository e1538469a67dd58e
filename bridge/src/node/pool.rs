//! The envelope pool: what a Whisper node holds, and geth's rules for letting an envelope in.
//!
//! Sans-IO like the protocol crate: every call takes `now` (unix seconds), so the rules are
//! table-tested without a clock. Acceptance follows go-ethereum v1.9.7 `Whisper.add`
//! (reference `whisper-v6.md` §1.3, §1.5): created more than 10 s in the future is an error;
//! expired by more than 20 s is an error ("very old message"); expired by less is dropped
//! silently; `20 + len(Data)` above the max size, PoW below the minimum (and below the
//! tolerance kept for 10 s after `setMinPoW`) and a bloom mismatch are errors. Expired
//! envelopes are purged by [`Pool::purge`], which the node calls every second.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use staples_protocol::whisper::pow::{pow_v19, v19_inputs};
use staples_protocol::whisper::{
    Bloom, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_MIN_POW, Envelope, EnvelopeHash, MAX_MESSAGE_SIZE,
};

/// geth's `DefaultSyncAllowance`: clock skew tolerated, and how long an old min PoW or bloom
/// still admits envelopes after a change.
pub const SYNC_ALLOWANCE: u32 = 10;

/// Why an envelope was refused. Texts are geth's, since `shh_post` returns them verbatim.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AddError {
    /// `Expiry - TTL` is more than [`SYNC_ALLOWANCE`] seconds ahead of us.
    #[error("envelope created in the future [{}]", hex::encode(.0.0))]
    Future(EnvelopeHash),
    /// Expired more than twice the sync allowance ago.
    #[error("very old message")]
    VeryOld,
    /// `20 + len(Data)` is above the node's max message size.
    #[error("huge messages are not allowed [{}]", hex::encode(.0.0))]
    TooLarge(EnvelopeHash),
    /// PoW below the node's minimum (and below the recent tolerance).
    #[error("envelope with low PoW received: PoW={pow:.6}, hash=[{hash}]")]
    LowPow {
        /// The envelope's PoW.
        pow: f64,
        /// The envelope hash.
        hash: EnvelopeHash,
    },
    /// The topic is outside the node's bloom filter.
    #[error("envelope does not match bloom filter, hash=[{0}]")]
    Bloom(EnvelopeHash),
}

/// Errors from changing the node's settings.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingsError {
    /// Above the 10 MiB hard cap.
    #[error("message size too large [{0}>{max}]", max = MAX_MESSAGE_SIZE)]
    MaxSizeTooLarge(u32),
    /// Negative or not a number.
    #[error("invalid PoW: {0:.6}")]
    InvalidPow(f64),
    /// Not 64 bytes.
    #[error("invalid bloom filter size: {0}")]
    BloomSize(usize),
}

/// An envelope admitted to the pool, with the PoW geth computed on entry.
#[derive(Debug, Clone)]
pub struct Pooled {
    /// The envelope.
    pub envelope: Envelope,
    /// Its hash.
    pub hash: EnvelopeHash,
    /// Its PoW, adjusted like geth's when it was sent slightly in the future.
    pub pow: f64,
}

impl Pooled {
    /// Hashes an arriving envelope and computes its PoW as geth does on entry: an envelope
    /// sent up to [`SYNC_ALLOWANCE`] seconds in the future has its PoW recomputed with the
    /// TTL stretched by the skew plus a second of latency. Pure, so callers run it before
    /// taking the pool lock.
    pub fn new(envelope: Envelope, now: u32) -> Self {
        let hash = envelope.hash();
        let sent = envelope.sent();
        let pow = if sent > now {
            let stretched = u64::from(envelope.ttl) + u64::from(sent - now) + 1;
            let (lz, size) = v19_inputs(&envelope);
            2f64.powi(lz as i32) / size as f64 / stretched as f64
        } else {
            pow_v19(&envelope)
        };
        Pooled {
            envelope,
            hash,
            pow,
        }
    }

    /// An envelope that is not being admitted (released by the PSS engine, or read back
    /// from a stored queue): its hash and its plain v1.9 PoW, with no skew adjustment.
    pub fn released(envelope: Envelope) -> Self {
        Pooled {
            hash: envelope.hash(),
            pow: pow_v19(&envelope),
            envelope,
        }
    }
}

/// What [`Pool::add`] did with an acceptable envelope.
#[derive(Debug, Clone)]
pub enum Added {
    /// New: filters should see it.
    New(Arc<Pooled>),
    /// Already in the pool (its hash): nothing to do.
    Duplicate(EnvelopeHash),
    /// Expired less than 20 s ago: dropped without error (geth returns `false, nil`).
    Expired,
}

/// A setting that changed recently, with the old value still honoured until `until`.
#[derive(Debug, Clone, Copy)]
struct Tolerance<T> {
    value: T,
    until: u32,
}

/// The pool and the node settings its rules read.
#[derive(Debug)]
pub struct Pool {
    envelopes: HashMap<EnvelopeHash, Arc<Pooled>>,
    expirations: BTreeMap<u32, Vec<EnvelopeHash>>,
    memory: usize,
    min_pow: f64,
    min_pow_tolerance: Option<Tolerance<f64>>,
    max_message_size: u32,
    bloom: Bloom,
    bloom_tolerance: Option<Tolerance<Bloom>>,
}

impl Default for Pool {
    fn default() -> Self {
        Self::new(DEFAULT_MIN_POW)
    }
}

impl Pool {
    /// An empty pool with geth's defaults and the given minimum PoW.
    pub fn new(min_pow: f64) -> Self {
        Pool {
            envelopes: HashMap::new(),
            expirations: BTreeMap::new(),
            memory: 0,
            min_pow,
            min_pow_tolerance: None,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE as u32,
            bloom: Bloom::FULL,
            bloom_tolerance: None,
        }
    }

    /// The pooled envelope with hash `hash`.
    pub fn get(&self, hash: &EnvelopeHash) -> Option<Arc<Pooled>> {
        self.envelopes.get(hash).cloned()
    }

    /// Every pooled envelope (shared, not copied): what devp2p peers are offered.
    pub fn snapshot(&self) -> Vec<Arc<Pooled>> {
        self.envelopes.values().cloned().collect()
    }

    /// Applies geth's acceptance rules and stores the envelope if it passes.
    pub fn add(&mut self, envelope: Envelope, now: u32) -> Result<Added, AddError> {
        self.admit(Pooled::new(envelope, now), now)
    }

    /// [`Pool::add`] for an envelope already hashed by [`Pooled::new`]. The node hashes
    /// outside its pool lock: Keccak under the lock serialised every post, and a thread
    /// preempted while holding it stalled them all.
    pub fn admit(&mut self, candidate: Pooled, now: u32) -> Result<Added, AddError> {
        let Pooled {
            envelope,
            hash,
            pow,
        } = candidate;
        let sent = envelope.sent();
        if sent > now && sent.saturating_sub(SYNC_ALLOWANCE) > now {
            return Err(AddError::Future(hash));
        }
        if envelope.expiry < now {
            if envelope.expiry.saturating_add(2 * SYNC_ALLOWANCE) < now {
                return Err(AddError::VeryOld);
            }
            return Ok(Added::Expired);
        }
        if envelope.size() > self.max_message_size as usize {
            return Err(AddError::TooLarge(hash));
        }
        if pow < self.min_pow {
            let tolerated = self
                .min_pow_tolerance
                .is_some_and(|t| now <= t.until && pow >= t.value);
            if !tolerated {
                return Err(AddError::LowPow { pow, hash });
            }
        }
        let sample = envelope.topic.bloom();
        if !self.bloom.matches(&sample) {
            let tolerated = self
                .bloom_tolerance
                .is_some_and(|t| now <= t.until && t.value.matches(&sample));
            if !tolerated {
                return Err(AddError::Bloom(hash));
            }
        }
        if self.envelopes.contains_key(&hash) {
            return Ok(Added::Duplicate(hash));
        }
        Ok(self.insert(Pooled {
            envelope,
            hash,
            pow,
        }))
    }

    fn insert(&mut self, pooled: Pooled) -> Added {
        self.memory += pooled.envelope.size();
        self.expirations
            .entry(pooled.envelope.expiry)
            .or_default()
            .push(pooled.hash);
        let pooled = Arc::new(pooled);
        self.envelopes.insert(pooled.hash, pooled.clone());
        Added::New(pooled)
    }

    /// Re-admits an envelope this node already accepted once (the outbox after a restart):
    /// only expiry and duplicates are checked, so a raised minimum PoW or a narrower bloom
    /// cannot drop what was acknowledged.
    pub fn readmit(&mut self, envelope: Envelope, now: u32) -> Added {
        self.readmit_hashed(Pooled::new(envelope, now), now)
    }

    /// [`Pool::readmit`] for an envelope already hashed by [`Pooled::new`].
    pub fn readmit_hashed(&mut self, candidate: Pooled, now: u32) -> Added {
        if candidate.envelope.expiry < now {
            return Added::Expired;
        }
        if self.envelopes.contains_key(&candidate.hash) {
            return Added::Duplicate(candidate.hash);
        }
        self.insert(candidate)
    }

    /// Drops every envelope whose expiry is before `now`; returns how many went.
    pub fn purge(&mut self, now: u32) -> usize {
        let keep = self.expirations.split_off(&now);
        let gone = std::mem::replace(&mut self.expirations, keep);
        let mut n = 0;
        for hash in gone.into_values().flatten() {
            if let Some(p) = self.envelopes.remove(&hash) {
                self.memory = self.memory.saturating_sub(p.envelope.size());
                n += 1;
            }
        }
        n
    }

    /// Number of envelopes held.
    pub fn len(&self) -> usize {
        self.envelopes.len()
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.envelopes.is_empty()
    }

    /// Bytes held, counted as geth does (`20 + len(Data)` per envelope).
    pub fn memory(&self) -> usize {
        self.memory
    }

    /// The current minimum PoW.
    pub fn min_pow(&self) -> f64 {
        self.min_pow
    }

    /// The current maximum message size.
    pub fn max_message_size(&self) -> u32 {
        self.max_message_size
    }

    /// `shh_setMinPoW`: the old value keeps admitting envelopes for [`SYNC_ALLOWANCE`] s.
    pub fn set_min_pow(&mut self, pow: f64, now: u32) -> Result<(), SettingsError> {
        if pow.is_nan() || pow < 0.0 {
            return Err(SettingsError::InvalidPow(pow));
        }
        self.min_pow_tolerance = Some(Tolerance {
            value: self.min_pow,
            until: now.saturating_add(SYNC_ALLOWANCE),
        });
        self.min_pow = pow;
        Ok(())
    }

    /// `shh_setMaxMessageSize`.
    pub fn set_max_message_size(&mut self, size: u32) -> Result<(), SettingsError> {
        if size as usize > MAX_MESSAGE_SIZE {
            return Err(SettingsError::MaxSizeTooLarge(size));
        }
        self.max_message_size = size;
        Ok(())
    }

    /// `shh_setBloomFilter`: the old filter keeps admitting envelopes for a while.
    pub fn set_bloom(&mut self, bloom: &[u8], now: u32) -> Result<(), SettingsError> {
        let bytes: [u8; 64] = bloom
            .try_into()
            .map_err(|_| SettingsError::BloomSize(bloom.len()))?;
        self.bloom_tolerance = Some(Tolerance {
            value: self.bloom,
            until: now.saturating_add(SYNC_ALLOWANCE),
        });
        self.bloom = Bloom(bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use staples_protocol::whisper::Topic;

    const NOW: u32 = 1_600_000_000;

    fn env(expiry: u32, ttl: u32, data_len: usize) -> Envelope {
        Envelope {
            expiry,
            ttl,
            topic: Topic([1, 2, 3, 4]),
            data: vec![7; data_len],
            nonce: 0,
        }
    }

    #[test]
    fn acceptance_rules_follow_geth() {
        // (expiry, ttl, data bytes, expected outcome)
        let cases: [(u32, u32, usize, &str); 7] = [
            (NOW + 50, 50, 10, "new"),
            (NOW + 50 + 10, 50, 10, "new"), // sent 10 s ahead: allowed
            (NOW + 50 + 11, 50, 10, "future"), // 11 s ahead: refused
            (NOW - 1, 50, 10, "expired"),   // just expired: silently dropped
            (NOW - 20, 50, 10, "expired"),
            (NOW - 21, 50, 10, "very old"),
            (NOW + 50, 50, DEFAULT_MAX_MESSAGE_SIZE, "too large"),
        ];
        for (expiry, ttl, len, want) in cases {
            let mut pool = Pool::new(0.0);
            let got = match pool.add(env(expiry, ttl, len), NOW) {
                Ok(Added::New(_)) => "new",
                Ok(Added::Duplicate(_)) => "dup",
                Ok(Added::Expired) => "expired",
                Err(AddError::Future(_)) => "future",
                Err(AddError::VeryOld) => "very old",
                Err(AddError::TooLarge(_)) => "too large",
                Err(e) => panic!("unexpected {e}"),
            };
            assert_eq!(got, want, "expiry {expiry}");
        }
    }

    #[test]
    fn low_pow_is_an_error_with_geths_text() {
        let mut pool = Pool::new(0.2);
        let e = env(NOW + 50, 50, 10);
        let hash = e.hash();
        let err = pool.add(e, NOW).expect_err("pow 0 < 0.2");
        assert!(matches!(err, AddError::LowPow { hash: h, .. } if h == hash));
        assert!(
            err.to_string()
                .starts_with("envelope with low PoW received: PoW=0.000")
        );
        assert!(err.to_string().ends_with(&format!("hash=[{hash}]")));
    }

    #[test]
    fn old_min_pow_is_tolerated_for_the_sync_allowance() {
        let mut pool = Pool::new(0.0);
        pool.set_min_pow(1.0, NOW).expect("valid");
        assert!(pool.add(env(NOW + 50, 50, 10), NOW + 10).is_ok());
        assert!(matches!(
            pool.add(env(NOW + 60, 50, 11), NOW + 11),
            Err(AddError::LowPow { .. })
        ));
        assert_eq!(
            pool.set_min_pow(-1.0, NOW),
            Err(SettingsError::InvalidPow(-1.0))
        );
        assert_eq!(
            pool.set_min_pow(-1.0, NOW).map_err(|e| e.to_string()),
            Err("invalid PoW: -1.000000".into())
        );
    }

    #[test]
    fn duplicates_purge_and_memory() {
        let mut pool = Pool::new(0.0);
        assert!(matches!(
            pool.add(env(NOW + 5, 5, 10), NOW),
            Ok(Added::New(_))
        ));
        assert!(matches!(
            pool.add(env(NOW + 5, 5, 10), NOW),
            Ok(Added::Duplicate(_))
        ));
        assert!(matches!(
            pool.add(env(NOW + 9, 5, 10), NOW),
            Ok(Added::New(_))
        ));
        assert_eq!((pool.len(), pool.memory()), (2, 60));
        assert_eq!(pool.purge(NOW + 5), 0, "expiry == now is not yet expired");
        assert_eq!(pool.purge(NOW + 6), 1);
        assert_eq!((pool.len(), pool.memory()), (1, 30));
    }

    #[test]
    fn bloom_and_size_settings() {
        let mut pool = Pool::new(0.0);
        assert_eq!(
            pool.set_bloom(&[0; 3], NOW),
            Err(SettingsError::BloomSize(3))
        );
        pool.set_bloom(&[0; 64], NOW).expect("64 bytes");
        // The old (full) bloom is still honoured during the allowance, then not.
        assert!(pool.add(env(NOW + 50, 50, 1), NOW).is_ok());
        assert!(matches!(
            pool.add(env(NOW + 80, 50, 2), NOW + 30),
            Err(AddError::Bloom(_))
        ));
        assert_eq!(
            pool.set_max_message_size(u32::MAX)
                .map_err(|e| e.to_string()),
            Err(format!("message size too large [{}>10485760]", u32::MAX))
        );
        pool.set_max_message_size(100).expect("valid");
        assert_eq!(pool.max_message_size(), 100);
    }
}
