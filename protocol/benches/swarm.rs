//! Swarm hashing benchmarks: Keccak-f[1600] limit, BMT, `/bytes` trees, PSS mining.
//!
//! `cargo bench -p staples-protocol --bench swarm` runs the criterion groups, then prints a
//! summary table measured with plain wall-clock loops so the figures are easy to compare:
//!
//! - the single-core limit: `keccak::f1600` permutations per second;
//! - BMT chunks per second on one thread, and the share of the limit they reach. A full
//!   chunk is exactly 128 permutations: 127 inner nodes (64-byte inputs, one rate block
//!   each) plus the 40-byte `span ‖ root` hash; the 128 segments are data, not hashes;
//! - the same BMT through `sha3::Keccak256` (`Digest`), to justify the stack-state path;
//! - `/bytes` root of 16 MiB, one thread and all cores (`std::thread::scope`);
//! - PSS nonce mining attempts per second and the mean time to wrap a message, for 1- and
//!   2-byte targets, incremental BMT path versus full rehash.

use std::hint::black_box;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use sha3::{Digest, Keccak256};
use staples_protocol::swarm::bmt;
use staples_protocol::swarm::bytes_tree::{self, Redundancy};
use staples_protocol::swarm::pss::{self, Mining, PssTopic, Targets};

const PERMS_PER_CHUNK: f64 = 128.0;
const MIB16: usize = 16 << 20;

fn chunk_payload() -> Vec<u8> {
    (0..4096).map(|i| (i % 251) as u8).collect()
}

/// The obvious BMT: one `Keccak256::digest` per node, as a baseline.
fn bmt_via_digest(span: u64, payload: &[u8; 4096]) -> [u8; 32] {
    let mut level: Vec<[u8; 32]> = payload
        .chunks(64)
        .map(|p| Keccak256::digest(p).into())
        .collect();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|p| {
                let mut h = Keccak256::new();
                h.update(p[0]);
                h.update(p[1]);
                h.finalize().into()
            })
            .collect();
    }
    let mut h = Keccak256::new();
    h.update(span.to_le_bytes());
    h.update(level[0]);
    h.finalize().into()
}

fn tree_data() -> Vec<u8> {
    (0..MIB16).map(|i| (i % 251) as u8).collect()
}

fn cores() -> NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
}

fn wrap_once(targets: &Targets, mining: Mining, seed: u64) -> u64 {
    let topic = PssTopic::from_string("bench");
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    pss::wrap_with(
        &topic,
        b"benchmark message",
        None,
        targets,
        u64::MAX,
        mining,
        &mut rng,
    )
    .map(|w| w.attempts)
    .unwrap_or(0)
}

fn criterion_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("keccak");
    g.throughput(Throughput::Elements(1));
    g.bench_function("f1600", |b| {
        let mut st = [0u64; 25];
        b.iter(|| keccak::f1600(black_box(&mut st)))
    });
    g.finish();

    let payload = chunk_payload();
    let fixed: [u8; 4096] = payload.clone().try_into().unwrap_or([0; 4096]);
    let mut g = c.benchmark_group("bmt");
    g.throughput(Throughput::Bytes(4096));
    g.bench_function("chunk_stack_f1600", |b| {
        b.iter(|| bmt::hash(4096, black_box(&payload)))
    });
    g.bench_function("chunk_sha3_digest", |b| {
        b.iter(|| bmt_via_digest(4096, black_box(&fixed)))
    });
    g.finish();

    let data = tree_data();
    let mut g = c.benchmark_group("bytes_tree_16MiB");
    g.throughput(Throughput::Bytes(MIB16 as u64));
    g.sample_size(10);
    g.bench_function("one_thread", |b| {
        b.iter(|| bytes_tree::root(black_box(&data), Redundancy::None))
    });
    g.bench_function("all_cores", |b| {
        b.iter(|| bytes_tree::root_parallel(black_box(&data), Redundancy::None, cores()))
    });
    g.finish();

    let mut g = c.benchmark_group("pss_mining_attempt");
    g.throughput(Throughput::Elements(1));
    g.bench_function("incremental", |b| {
        let mut tree = bmt::Tree::new(&payload).unwrap_or_else(|_| unreachable!());
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            let mut seg = [0u8; 32];
            seg[..8].copy_from_slice(&n.to_le_bytes());
            let _ = tree.set_segment(0, &seg);
            tree.hash(black_box(7))
        })
    });
    g.bench_function("full_rehash", |b| {
        let mut work = fixed;
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            work[..8].copy_from_slice(&n.to_le_bytes());
            bmt::hash(black_box(7), &work)
        })
    });
    g.finish();

    let one = Targets::new(&[[0x42]]).unwrap_or_else(|_| unreachable!());
    let mut g = c.benchmark_group("pss_wrap_1_byte_target");
    g.sample_size(20);
    let mut seed = 0;
    g.bench_function("incremental", |b| {
        b.iter(|| {
            seed += 1;
            wrap_once(&one, Mining::Incremental, seed)
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = criterion_benches
}

/// Runs `f` until at least `min` has passed; returns units per second.
fn rate(min: Duration, mut f: impl FnMut() -> u64) -> f64 {
    let start = Instant::now();
    let mut units = 0u64;
    while start.elapsed() < min {
        units += f();
    }
    units as f64 / start.elapsed().as_secs_f64()
}

/// Mean seconds per wrap and mean attempts over wraps with seeds `seeds`. Both mining
/// strategies find the same nonce for the same seed, so comparing them on the same seeds
/// compares equal work.
fn mean_wrap(targets: &Targets, mining: Mining, seeds: std::ops::Range<u64>) -> (f64, f64) {
    let n = (seeds.end - seeds.start) as f64;
    let start = Instant::now();
    let attempts: u64 = seeds.map(|s| wrap_once(targets, mining, s)).sum();
    (start.elapsed().as_secs_f64() / n, attempts as f64 / n)
}

fn summary() {
    // The machine may be shared: interleave the limit and the BMT in short rounds and keep
    // each one's best round, so both see the same conditions.
    let round = Duration::from_millis(300);
    let mut st = [0u64; 25];
    let payload = chunk_payload();
    let fixed: [u8; 4096] = payload.clone().try_into().unwrap_or([0; 4096]);
    let (mut perms, mut chunks, mut digest_chunks) = (0f64, 0f64, 0f64);
    for _ in 0..8 {
        perms = perms.max(rate(round, || {
            for _ in 0..1000 {
                keccak::f1600(black_box(&mut st));
            }
            1000
        }));
        chunks = chunks.max(rate(round, || {
            for _ in 0..20 {
                black_box(bmt::hash(4096, black_box(&payload)).unwrap_or_default());
            }
            20
        }));
        digest_chunks = digest_chunks.max(rate(round, || {
            for _ in 0..20 {
                black_box(bmt_via_digest(4096, black_box(&fixed)));
            }
            20
        }));
    }
    let secs = Duration::from_secs(2);
    let data = tree_data();
    let threads = cores();
    let single_mbs = rate(secs, || {
        black_box(bytes_tree::root(&data, Redundancy::None).ok());
        1
    }) * MIB16 as f64
        / 1e6;
    let parallel_mbs = rate(secs, || {
        black_box(bytes_tree::root_parallel(&data, Redundancy::None, threads).ok());
        1
    }) * MIB16 as f64
        / 1e6;
    let mut tree = bmt::Tree::new(&payload).unwrap_or_else(|_| unreachable!());
    let mut n = 0u64;
    let inc_attempts = rate(secs, || {
        for _ in 0..100 {
            n += 1;
            let mut seg = [0u8; 32];
            seg[..8].copy_from_slice(&n.to_le_bytes());
            let _ = tree.set_segment(0, &seg);
            black_box(tree.hash(7));
        }
        100
    });
    let mut work = fixed;
    let full_attempts = rate(secs, || {
        for _ in 0..100 {
            n += 1;
            work[..8].copy_from_slice(&n.to_le_bytes());
            black_box(bmt::hash(7, &work).unwrap_or_default());
        }
        100
    });
    let one = Targets::new(&[[0x42]]).unwrap_or_else(|_| unreachable!());
    let two = Targets::new(&[[0x42, 0x42]]).unwrap_or_else(|_| unreachable!());
    let w1i = mean_wrap(&one, Mining::Incremental, 1..41);
    let w1f = mean_wrap(&one, Mining::FullRehash, 1..41);
    let w2i = mean_wrap(&two, Mining::Incremental, 1..4);
    let w2f = mean_wrap(&two, Mining::FullRehash, 1..4);
    println!();
    println!("=== Swarm hashing summary (single core unless noted) ===");
    println!("| measure | figure |");
    println!("|---|---|");
    println!(
        "| keccak::f1600 permutations/s (the limit) | {:.2} M/s |",
        perms / 1e6
    );
    println!(
        "| BMT chunks/s, stack-state f1600 (128 perms/chunk) | {:.0} chunks/s = {:.1} MB/s = {:.1}% of limit |",
        chunks,
        chunks * 4096.0 / 1e6,
        100.0 * chunks * PERMS_PER_CHUNK / perms
    );
    println!(
        "| BMT chunks/s via sha3 Digest per node (baseline) | {:.0} chunks/s = {:.1}% of limit |",
        digest_chunks,
        100.0 * digest_chunks * PERMS_PER_CHUNK / perms
    );
    println!("| /bytes root of 16 MiB, 1 thread | {single_mbs:.1} MB/s |");
    println!(
        "| /bytes root of 16 MiB, {} threads (std::thread::scope) | {parallel_mbs:.1} MB/s |",
        threads
    );
    println!(
        "| PSS mining attempts/s incremental (8 perms) / full (128) | {:.0} / {:.0} = {:.1}x |",
        inc_attempts,
        full_attempts,
        inc_attempts / full_attempts
    );
    for (label, inc, full, n) in [("1-byte", w1i, w1f, 40), ("2-byte", w2i, w2f, 3)] {
        println!(
            "| wrap, {label} target: incremental / full (same {n} seeds, mean attempts {:.0}) | {:.2} ms / {:.2} ms = {:.1}x |",
            inc.1,
            inc.0 * 1e3,
            full.0 * 1e3,
            full.0 / inc.0
        );
    }
    println!(
        "| expected 2-byte wrap from attempts/s (65536 attempts) | {:.1} ms / {:.1} ms |",
        65536.0 / inc_attempts * 1e3,
        65536.0 / full_attempts * 1e3
    );
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
