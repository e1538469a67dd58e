//! Whisper codec benchmarks: wrap/open of a signed 1 KiB message (symmetric and
//! asymmetric) and PoW hashing rates.
//!
//! Run: `cargo bench -p staples-protocol --bench whisper`.
//! `pow/full_rehash_1k` hashes `rlpWithoutNonce ‖ nonce` from scratch per nonce, as geth's
//! `Seal` does; `pow/prefix_reuse_1k` is our sealer's per-nonce cost. Both in one run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use staples_protocol::crypto::{PrivateKey, keccak256};
use staples_protocol::whisper::pow::{self, NonceHasher, SEAL_BATCH, SealOptions};
use staples_protocol::whisper::{Draft, Envelope, OpenKey, Recipient, SymKey, Topic, open, wrap};

fn messages(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let signer = PrivateKey::random(&mut rng);
    let recipient = PrivateKey::random(&mut rng);
    let recipient_pub = recipient.public_key();
    let sym = SymKey::random(&mut rng);
    let payload = vec![0x5a; 1024];
    let mut g = c.benchmark_group("message_1k_signed");
    for (name, to, key) in [
        (
            "symmetric",
            Recipient::Symmetric(&sym),
            OpenKey::Symmetric(&sym),
        ),
        (
            "asymmetric",
            Recipient::Asymmetric(&recipient_pub),
            OpenKey::Asymmetric(&recipient),
        ),
    ] {
        let draft = Draft {
            topic: Topic([1, 2, 3, 4]),
            payload: &payload,
            padding: None,
            signer: Some(&signer),
            ttl: 50,
            to,
        };
        g.bench_function(format!("{name}/wrap"), |b| {
            b.iter(|| wrap(&draft, 1_600_000_000, &mut rng).expect("wraps"))
        });
        let env = wrap(&draft, 1_600_000_000, &mut rng).expect("wraps");
        g.bench_function(format!("{name}/open"), |b| {
            b.iter(|| open(&env, key).expect("opens"))
        });
    }
    g.finish();
}

fn envelope_1k() -> Envelope {
    Envelope {
        expiry: 1_600_000_050,
        ttl: 50,
        topic: Topic([1, 2, 3, 4]),
        data: vec![0x33; 1024 + 256],
        nonce: 0,
    }
}

fn pow_rates(c: &mut Criterion) {
    let env = envelope_1k();
    let mut g = c.benchmark_group("pow");
    const N: u64 = 4096;
    g.throughput(Throughput::Elements(N));
    g.bench_function("full_rehash_1k", |b| {
        let prefix = env.encode_without_nonce();
        let mut buf = prefix.clone();
        b.iter(|| {
            let mut acc = 0u8;
            for nonce in 0..N {
                buf.truncate(prefix.len());
                buf.extend_from_slice(&nonce.to_be_bytes());
                acc ^= keccak256(&buf)[0];
            }
            acc
        })
    });
    g.bench_function("prefix_reuse_1k", |b| {
        let hasher = NonceHasher::new(&env);
        b.iter(|| (0..N).map(|n| hasher.leading_zero_bits(n)).max())
    });
    for threads in [1usize, 2] {
        // Seal toward an unreachable target and stop after `BATCHES` batches in total.
        const BATCHES: u64 = 64;
        g.throughput(Throughput::Elements(BATCHES * SEAL_BATCH));
        g.bench_function(format!("seal_{threads}_threads"), |b| {
            b.iter(|| {
                let polls = AtomicU64::new(0);
                let stop = || polls.fetch_add(1, Ordering::Relaxed) >= BATCHES;
                let mut e = env.clone();
                pow::seal(
                    &mut e,
                    Some(256),
                    &SealOptions {
                        threads,
                        should_stop: &stop,
                    },
                )
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .measurement_time(std::time::Duration::from_secs(3))
        .warm_up_time(std::time::Duration::from_secs(1));
    targets = messages, pow_rates
}
criterion_main!(benches);
