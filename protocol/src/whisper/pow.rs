//! Whisper proof of work: the geth ≥ 1.9 formula, the legacy 1.8 formula, and sealing.
//!
//! v1.9 (geth `calculatePoW`): `h = keccak256(rlpWithoutNonce ‖ u64be(nonce))`,
//! `PoW = 2^leadingZeroBits(h) / len(rlpWithoutNonce) / TTL`.
//! Legacy (geth ≤ 1.8.27, status-go ≤ 0.34.0-beta.0):
//! `h = keccak256(keccak256(rlpWithoutNonce) ‖ 24 zero bytes ‖ u64be(nonce))`,
//! `PoW = 2^trailingZeroBits(h) / (20 + len(Data)) / TTL`.
//! Both are kept because peers of both ages exist; we seal with v1.9 only.
//!
//! Sealing finds the *smallest* nonce reaching the target, like geth's sequential `Seal`, but
//! over several threads and without rehashing the whole envelope per attempt: the Keccak state
//! after absorbing the full 136-byte blocks of `rlpWithoutNonce` is computed once and cloned
//! per nonce, so an attempt costs one or two permutations whatever the message size.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use sha3::{Digest, Keccak256};

use super::envelope::Envelope;
use crate::crypto::keccak256;

/// Nonces a worker claims at a time; between batches it checks the stop predicate
/// (geth also checks its clock every 1024 nonces).
pub const SEAL_BATCH: u64 = 1024;

/// Leading zero bits of the v1.9 PoW hash for the envelope's current nonce.
pub fn leading_zero_bits(env: &Envelope) -> u32 {
    v19_inputs(env).0
}

/// The v1.9 PoW (geth ≥ 1.9, status-go ≥ 0.34.0-beta.3, Waku v1).
pub fn pow_v19(env: &Envelope) -> f64 {
    let (bits, size) = v19_inputs(env);
    pow_value(bits, size, env.ttl)
}

/// The two inputs of the v1.9 formula besides the TTL: the hash's leading zero bits and
/// `len(rlpWithoutNonce)`, from one encoding (every pooled envelope pays this).
pub fn v19_inputs(env: &Envelope) -> (u32, usize) {
    let mut buf = env.encode_without_nonce();
    let size = buf.len();
    buf.extend_from_slice(&env.nonce.to_be_bytes());
    (leading_zeros(&keccak256(&buf)), size)
}

/// Trailing zero bits of the legacy (v1.8) PoW hash.
pub fn legacy_trailing_zero_bits(env: &Envelope) -> u32 {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(&keccak256(env.encode_without_nonce()));
    buf[56..].copy_from_slice(&env.nonce.to_be_bytes());
    trailing_zeros(&keccak256(buf))
}

/// The legacy PoW, as geth v1.8.27's `Envelope.PoW()` computes it.
pub fn pow_legacy(env: &Envelope) -> f64 {
    pow_value(legacy_trailing_zero_bits(env), env.size(), env.ttl)
}

/// The number of leading zero bits `Seal` aims for: geth's `powToFirstBit`,
/// `max(1, ceil(log2(target × (20 + len(Data)) × TTL)))`. Note geth uses `20 + len(Data)`
/// here even though the v1.9 PoW divides by the RLP length.
pub fn target_bits(pow_target: f64, env: &Envelope) -> u32 {
    let x = pow_target * env.size() as f64 * f64::from(env.ttl);
    let bits = x.log2().ceil();
    if bits.is_nan() || bits < 1.0 {
        1
    } else if bits > 256.0 {
        257 // unreachable target: no hash has more than 256 leading zeros
    } else {
        bits as u32
    }
}

/// How to run [`seal`].
pub struct SealOptions<'a> {
    /// Worker threads (at least one is used).
    pub threads: usize,
    /// Polled between batches; `true` ends the search (the caller's time budget).
    pub should_stop: &'a (dyn Fn() -> bool + Sync),
}

/// What [`seal`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealOutcome {
    /// The nonce written into the envelope.
    pub nonce: u64,
    /// Its leading zero bits.
    pub leading_zero_bits: u32,
    /// Whether it reaches the target.
    pub reached: bool,
}

/// Searches nonces from 0 upward for the smallest one with at least `target_bits` leading
/// zero bits, or, with `None`, the best one found until `should_stop`. Writes the result into
/// `env.nonce`. If the target is not reached in time the best nonce seen (most zero bits,
/// then smallest) is kept and `reached` is false; geth reports that as an error, which is the
/// caller's decision here.
pub fn seal(env: &mut Envelope, target_bits: Option<u32>, opts: &SealOptions<'_>) -> SealOutcome {
    let hasher = NonceHasher::new(env);
    let target = target_bits.unwrap_or(u32::MAX);
    let next_batch = AtomicU64::new(0);
    let found = AtomicU64::new(u64::MAX);
    // (zero bits, nonce) of the best miss; touched once per worker, so a mutex is fine.
    let best = Mutex::new((0u32, u64::MAX));

    let work = || {
        let mut local = (0u32, u64::MAX);
        while let Some(start) = next_batch
            .fetch_add(1, Ordering::Relaxed)
            .checked_mul(SEAL_BATCH)
        {
            // Batches at or above a found nonce cannot hold a smaller one.
            if start >= found.load(Ordering::Acquire) || (opts.should_stop)() {
                break;
            }
            for nonce in start..start.saturating_add(SEAL_BATCH) {
                let lz = hasher.leading_zero_bits(nonce);
                if lz >= target {
                    found.fetch_min(nonce, Ordering::AcqRel);
                    break;
                }
                if lz > local.0 || (lz == local.0 && nonce < local.1) {
                    local = (lz, nonce);
                }
            }
        }
        let mut b = best.lock().unwrap_or_else(|p| p.into_inner());
        if local.0 > b.0 || (local.0 == b.0 && local.1 < b.1) {
            *b = local;
        }
    };
    std::thread::scope(|s| {
        for _ in 1..opts.threads.max(1) {
            s.spawn(work);
        }
        work();
    });

    let found = found.into_inner();
    let outcome = if found != u64::MAX {
        SealOutcome {
            nonce: found,
            leading_zero_bits: hasher.leading_zero_bits(found),
            reached: true,
        }
    } else {
        let (lz, nonce) = best.into_inner().unwrap_or_else(|p| p.into_inner());
        let nonce = if nonce == u64::MAX { 0 } else { nonce };
        SealOutcome {
            nonce,
            leading_zero_bits: hasher.leading_zero_bits(nonce),
            reached: lz >= target,
        }
    };
    env.nonce = outcome.nonce;
    outcome
}

/// Hashes `rlpWithoutNonce ‖ u64be(nonce)` for many nonces, reusing the absorbed prefix.
pub struct NonceHasher {
    prefix: Keccak256,
}

impl NonceHasher {
    /// Absorbs the envelope's `rlpWithoutNonce` once.
    pub fn new(env: &Envelope) -> Self {
        let mut prefix = Keccak256::new();
        prefix.update(env.encode_without_nonce());
        NonceHasher { prefix }
    }

    /// Leading zero bits of the v1.9 PoW hash for `nonce`.
    pub fn leading_zero_bits(&self, nonce: u64) -> u32 {
        let mut h = self.prefix.clone();
        h.update(nonce.to_be_bytes());
        leading_zeros(&h.finalize().into())
    }
}

fn pow_value(bits: u32, size: usize, ttl: u32) -> f64 {
    // Same operation order as geth: 2^bits, then / size, then / ttl, all in float64.
    let x = 2f64.powi(bits as i32);
    x / size as f64 / f64::from(ttl)
}

fn leading_zeros(h: &[u8; 32]) -> u32 {
    let mut n = 0;
    for b in h {
        if *b == 0 {
            n += 8;
        } else {
            return n + b.leading_zeros();
        }
    }
    n
}

/// geth's `math.FirstBitSet` over the big-endian integer: 0 for a zero hash.
fn trailing_zeros(h: &[u8; 32]) -> u32 {
    let mut n = 0;
    for b in h.iter().rev() {
        if *b == 0 {
            n += 8;
        } else {
            return n + b.trailing_zeros();
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::whisper::topic::Topic;

    fn env(data_len: usize) -> Envelope {
        Envelope {
            expiry: 1_600_000_050,
            ttl: 50,
            topic: Topic([1, 2, 3, 4]),
            data: vec![7; data_len],
            nonce: 0,
        }
    }

    #[test]
    fn nonce_hasher_agrees_with_the_plain_formula_across_block_boundaries() {
        for len in [0, 100, 120, 127, 128, 129, 135, 136, 300, 1000] {
            let mut e = env(len);
            let hasher = NonceHasher::new(&e);
            for nonce in [0, 1, 255, 1 << 40] {
                e.nonce = nonce;
                assert_eq!(
                    hasher.leading_zero_bits(nonce),
                    leading_zero_bits(&e),
                    "len {len}"
                );
            }
        }
    }

    #[test]
    fn multi_threaded_seal_finds_the_same_smallest_nonce_as_one_thread() {
        let never = || false;
        let mut a = env(200);
        let mut b = env(200);
        let one = seal(
            &mut a,
            Some(12),
            &SealOptions {
                threads: 1,
                should_stop: &never,
            },
        );
        let four = seal(
            &mut b,
            Some(12),
            &SealOptions {
                threads: 4,
                should_stop: &never,
            },
        );
        assert!(one.reached);
        assert_eq!(one, four);
        // Smallest: no lower nonce reaches the target.
        let hasher = NonceHasher::new(&a);
        assert!((0..one.nonce).all(|n| hasher.leading_zero_bits(n) < 12));
    }

    #[test]
    fn stopped_seal_keeps_the_best_nonce_and_says_it_missed() {
        let stop = || true;
        let mut e = env(10);
        let out = seal(
            &mut e,
            Some(200),
            &SealOptions {
                threads: 2,
                should_stop: &stop,
            },
        );
        assert!(!out.reached);
        assert_eq!(e.nonce, out.nonce);
    }

    #[test]
    fn target_bits_has_a_floor_of_one() {
        assert_eq!(target_bits(0.000_000_1, &env(1)), 1);
        assert_eq!(target_bits(f64::NAN, &env(1)), 1);
    }
}
