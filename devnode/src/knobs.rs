//! Test knobs: ways to make the dev network misbehave on purpose. All are off by default.
//!
//! | knob | effect |
//! |---|---|
//! | `latency_ms` | every Bee API request waits this long before it is handled (admin routes do not) |
//! | `stale_feed_ms` | feed lookups (`GET /feeds`) do not see updates stored less than this long ago, as a lagging neighbourhood would serve them; `/chunks` still sees them |
//! | `drop_probability` | each chunk stored (uploads, PSS trojan chunks) is lost with this probability while the upload still succeeds, like a push that never reached its neighbourhood |
//! | dropped addresses | chunks removed on request and refused from then on (`POST /_staples/chunks/{addr}/drop`) |
//!
//! Taking a node down and up lives in [`crate::DevNet`], since it owns the listeners.
//! The random choices come from a seeded ChaCha RNG, so a failing run can be replayed with
//! the same `knob_seed`.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use staples_protocol::swarm::ChunkAddress;

/// Errors from knob updates.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KnobError {
    /// A probability outside [0, 1] (or NaN).
    #[error("drop_probability must be within 0..=1, got {0}")]
    Probability(f64),
}

/// The knob values that are plain numbers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KnobSettings {
    /// Added latency per API request, in milliseconds.
    pub latency_ms: u64,
    /// Feed updates younger than this (milliseconds) are invisible to feed lookups.
    pub stale_feed_ms: u64,
    /// Probability that a stored chunk is silently lost.
    pub drop_probability: f64,
}

impl KnobSettings {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<(), KnobError> {
        if !(0.0..=1.0).contains(&self.drop_probability) {
            return Err(KnobError::Probability(self.drop_probability));
        }
        Ok(())
    }
}

/// A partial update, as `PUT /_staples/knobs` takes it: absent fields keep their value.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnobUpdate {
    /// New added latency.
    pub latency_ms: Option<u64>,
    /// New feed staleness.
    pub stale_feed_ms: Option<u64>,
    /// New drop probability.
    pub drop_probability: Option<f64>,
}

/// The live knobs of one network, shared by all its nodes.
#[derive(Debug)]
pub struct Knobs {
    settings: RwLock<KnobSettings>,
    dropped: RwLock<HashSet<ChunkAddress>>,
    rng: Mutex<ChaCha8Rng>,
}

impl Knobs {
    /// Knobs starting at `settings`, random choices seeded by `seed`.
    pub fn new(settings: KnobSettings, seed: u64) -> Result<Self, KnobError> {
        settings.validate()?;
        Ok(Self {
            settings: RwLock::new(settings),
            dropped: RwLock::new(HashSet::new()),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        })
    }

    /// The current values.
    pub fn settings(&self) -> KnobSettings {
        self.settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Applies a partial update atomically; nothing changes if any value is invalid.
    pub fn update(&self, update: &KnobUpdate) -> Result<KnobSettings, KnobError> {
        let mut guard = self
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let mut next = guard.clone();
        if let Some(v) = update.latency_ms {
            next.latency_ms = v;
        }
        if let Some(v) = update.stale_feed_ms {
            next.stale_feed_ms = v;
        }
        if let Some(v) = update.drop_probability {
            next.drop_probability = v;
        }
        next.validate()?;
        *guard = next.clone();
        Ok(next)
    }

    /// Added latency per request.
    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.settings().latency_ms)
    }

    /// How old a feed update must be before lookups see it.
    pub fn feed_staleness(&self) -> Duration {
        Duration::from_millis(self.settings().stale_feed_ms)
    }

    /// Whether the chunk about to be stored at `address` is lost instead.
    pub fn should_drop(&self, address: &ChunkAddress) -> bool {
        if self.is_dropped(address) {
            return true;
        }
        let p = self.settings().drop_probability;
        if p <= 0.0 {
            return false;
        }
        let draw = self
            .rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next_u64();
        // Top 53 bits as a uniform float in [0, 1).
        ((draw >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// Marks `address` as lost: it is refused until [`Self::restore`].
    pub fn drop_address(&self, address: ChunkAddress) {
        self.dropped
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(address);
    }

    /// Accepts `address` again; returns whether it was marked.
    pub fn restore(&self, address: &ChunkAddress) -> bool {
        self.dropped
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(address)
    }

    /// Whether `address` is marked as lost.
    pub fn is_dropped(&self, address: &ChunkAddress) -> bool {
        self.dropped
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(address)
    }

    /// The addresses marked as lost.
    pub fn dropped_addresses(&self) -> Vec<ChunkAddress> {
        let mut v: Vec<_> = self
            .dropped
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .copied()
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_are_partial_and_validated() {
        let k = Knobs::new(KnobSettings::default(), 1).expect("valid");
        let s = k
            .update(&KnobUpdate {
                latency_ms: Some(5),
                ..KnobUpdate::default()
            })
            .expect("valid");
        assert_eq!(s.latency_ms, 5);
        assert_eq!(
            k.update(&KnobUpdate {
                drop_probability: Some(1.5),
                stale_feed_ms: Some(9),
                ..KnobUpdate::default()
            }),
            Err(KnobError::Probability(1.5))
        );
        assert_eq!(
            k.settings().stale_feed_ms,
            0,
            "a rejected update changes nothing"
        );
        assert!(
            Knobs::new(
                KnobSettings {
                    drop_probability: f64::NAN,
                    ..KnobSettings::default()
                },
                0
            )
            .is_err()
        );
    }

    #[test]
    fn drop_probability_is_roughly_honoured_and_seeded() {
        let settings = KnobSettings {
            drop_probability: 0.25,
            ..KnobSettings::default()
        };
        let a = ChunkAddress::from_bytes([1; 32]);
        let run = |seed| {
            let k = Knobs::new(settings.clone(), seed).expect("valid");
            (0..4000).filter(|_| k.should_drop(&a)).count()
        };
        let n = run(3);
        assert!((800..1200).contains(&n), "{n} drops of 4000 at p = 0.25");
        assert_eq!(run(3), n, "same seed, same choices");
    }

    #[test]
    fn explicit_drops_stick_until_restored() {
        let k = Knobs::new(KnobSettings::default(), 0).expect("valid");
        let a = ChunkAddress::from_bytes([2; 32]);
        assert!(!k.should_drop(&a));
        k.drop_address(a);
        assert!(k.should_drop(&a));
        assert_eq!(k.dropped_addresses(), vec![a]);
        assert!(k.restore(&a));
        assert!(!k.should_drop(&a));
    }
}
