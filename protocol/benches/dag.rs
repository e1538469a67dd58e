//! Causal buffer throughput and memory.
//!
//! `cargo bench -p staples-protocol --bench dag` first prints a one-shot report for
//! 1,000,000 messages of a random DAG (1–4 parents, each among the 16 messages before it)
//! inserted in uniformly random order, draining deliveries after every insert as a driver
//! would; then criterion times the same workload at 100,000 messages.
//!
//! Memory is measured two ways, because a counting `#[global_allocator]` needs `unsafe`,
//! which the workspace forbids:
//! - RSS growth (`/proc/self/status` VmRSS) across the ingest, divided by the peak number
//!   of buffered ids: everything the process actually took, allocator overhead included;
//! - `CausalBuffer::heap_bytes` at the peak, from the structures' capacities.
//!
//! Both include the buffer's index of delivered ids and the `T` stored inline in each
//! node (56 bytes here: id, clock, boxed parent list). The parent lists' own heap (16–128
//! bytes per message) was allocated before the measurement starts and is excluded.
//! Messages reach the buffer decoded: no hashing or signature work is timed here.

use std::time::Instant;

use criterion::{BatchSize, Criterion};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use staples_protocol::crypto::keccak256;
use staples_protocol::dag::{Causal, CausalBuffer, Limits, MessageId};

struct Msg {
    id: MessageId,
    clock: u64,
    parents: Box<[MessageId]>,
}

impl Causal for Msg {
    fn id(&self) -> MessageId {
        self.id
    }
    fn clock(&self) -> u64 {
        self.clock
    }
    fn parents(&self) -> &[MessageId] {
        &self.parents
    }
    fn ephemeral(&self) -> bool {
        false
    }
    fn size(&self) -> usize {
        200
    }
}

/// `window = None`: uniformly random arrival order; `Some(w)`: causal order with each
/// message displaced by up to `w` positions (what a live chat with reordering looks like).
fn dag(n: usize, seed: u64, window: Option<usize>) -> Vec<Msg> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let ids: Vec<MessageId> = (0..n as u64)
        .map(|i| MessageId::from_slice(&keccak256(i.to_be_bytes())).expect("32 bytes"))
        .collect();
    let mut msgs: Vec<Msg> = (0..n)
        .map(|i| {
            let want = rng.gen_range(1..=4usize).min(i);
            let mut parents: Vec<MessageId> = Vec::with_capacity(want);
            while parents.len() < want {
                let p = ids[i - rng.gen_range(1..=16usize.min(i))];
                if !parents.contains(&p) {
                    parents.push(p);
                }
            }
            Msg {
                id: ids[i],
                clock: i as u64 + 1,
                parents: parents.into_boxed_slice(),
            }
        })
        .collect();
    match window {
        None => msgs.shuffle(&mut rng),
        Some(w) => {
            for chunk in msgs.chunks_mut(w) {
                chunk.shuffle(&mut rng);
            }
        }
    }
    msgs
}

fn limits(n: usize) -> Limits {
    Limits {
        max_pending: n,
        max_pending_bytes: usize::MAX,
        max_missing: n,
        ..Limits::default()
    }
}

/// Inserts everything, draining after each insert as a driver would; calls `sample`
/// 128 times along the way. Returns deliveries and the peak (pending + missing).
fn ingest(msgs: Vec<Msg>, sample: &mut dyn FnMut(&CausalBuffer<Msg>)) -> (usize, usize) {
    let n = msgs.len();
    let every = (n / 128).max(1);
    let mut b = CausalBuffer::new(limits(n), &mut ChaCha20Rng::seed_from_u64(7));
    let mut delivered = 0;
    let mut peak = 0;
    for (k, m) in msgs.into_iter().enumerate() {
        b.insert(m, 0).expect("valid message");
        while b.poll_deliverable().is_some() {
            delivered += 1;
        }
        while b.poll_wanted().is_some() {}
        peak = peak.max(b.pending_len() + b.missing_len());
        if k % every == 0 {
            sample(&b);
        }
    }
    (delivered, peak)
}

fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn report(n: usize, window: Option<usize>) {
    let msgs = dag(n, 42, window);
    let edges: usize = msgs.iter().map(|m| m.parents.len()).sum();
    let before = rss_bytes();
    // The sample with the most buffered ids: (held, pending, RSS growth, heap_bytes).
    let mut at_peak = (0usize, 0usize, 0usize, 0usize);
    let start = Instant::now();
    let (delivered, peak) = ingest(msgs, &mut |b| {
        let held = b.pending_len() + b.missing_len();
        if held > at_peak.0 {
            at_peak = (
                held,
                b.pending_len(),
                rss_bytes().saturating_sub(before),
                b.heap_bytes(),
            );
        }
    });
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(delivered, n, "every message delivered exactly once");
    let order = match window {
        None => "uniformly random order".to_string(),
        Some(w) => format!("causal order shuffled within windows of {w}"),
    };
    println!("dag buffer: {n} messages, {edges} edges, {order}");
    println!(
        "  throughput: {:.0} messages/s ({secs:.3} s including 128 samples)",
        n as f64 / secs
    );
    println!("  peak buffered ids (pending + missing): {peak}");
    let (held, pending, rss, heap) = at_peak;
    if held < 1000 {
        return;
    }
    // The bench's own message struct sits inline in each pending node; subtract it to get
    // the buffer's overhead.
    let inline_t = pending * std::mem::size_of::<Msg>();
    let mib = |b: usize| b as f64 / (1 << 20) as f64;
    let per = |b: usize| b as f64 / held as f64;
    println!(
        "  largest sample: {held} ids ({pending} pending): RSS growth {:.1} MiB = {:.0} B/id; \
         heap_bytes() {:.1} MiB = {:.0} B/id; without the {}-byte Msg inline: {:.0} B/id (RSS), \
         {:.0} B/id (heap_bytes)",
        mib(rss),
        per(rss),
        mib(heap),
        per(heap),
        std::mem::size_of::<Msg>(),
        per(rss.saturating_sub(inline_t)),
        per(heap.saturating_sub(inline_t)),
    );
}

fn bench(c: &mut Criterion) {
    let n = 100_000;
    c.bench_function("ingest 100k random-order DAG messages", |b| {
        b.iter_batched(
            || dag(n, 43, None),
            |msgs| ingest(msgs, &mut |_| {}),
            BatchSize::PerIteration,
        )
    });
}

fn main() {
    report(1_000_000, None);
    report(1_000_000, Some(64));
    let mut c = Criterion::default().sample_size(10).configure_from_args();
    bench(&mut c);
    c.final_summary();
}
