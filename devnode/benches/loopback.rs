//! Loopback throughput of the dev node: 4 KiB chunks up and down with 64 requests in
//! flight, against the single-threaded BMT rate measured in the same run.
//!
//! `cargo bench -p staples-devnode --bench loopback` (release). Client and server share
//! the machine's cores, so the HTTP figures include the client's cost. Memory per stored
//! chunk is the process's resident-set growth over the upload, divided by the chunk count
//! (payloads are generated before the baseline is taken).
//!
//! Environment: `DEVNODE_BENCH_CHUNKS` (default 20000).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use staples_devnode::{DevNet, DevNetConfig};
use staples_protocol::swarm::bmt;

const CONCURRENCY: usize = 64;
const PAYLOAD: usize = 4096;

fn main() {
    let n: usize = std::env::var("DEVNODE_BENCH_CHUNKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let bmt_rate = bmt_chunks_per_sec(Duration::from_secs(2));
    let r = runtime.block_on(http_rates(n));
    let row = |name: &str, rate: f64| {
        println!(
            "| {name:<28} | {rate:>12.0} | {:>12.1} | {:>8.1}% |",
            rate * (PAYLOAD as f64) / 1e6,
            100.0 * rate / bmt_rate
        );
    };
    println!();
    println!(
        "| {:<28} | {:>12} | {:>12} | {:>9} |",
        "measure", "chunks/s", "MB/s", "of BMT"
    );
    println!("|{:-<30}|{:->14}|{:->14}|{:->11}|", "", "", "", "");
    row("BMT hash, 1 thread", bmt_rate);
    row("POST /chunks, 64 in flight", r.upload);
    row("GET /chunks, 64 in flight", r.download);
    println!();
    println!(
        "chunks: {n}; stored data {:.1} MiB; resident growth {:.1} MiB = {:.0} bytes per chunk ({} bytes of chunk data each)",
        r.stored_bytes as f64 / (1 << 20) as f64,
        r.rss_growth as f64 / (1 << 20) as f64,
        r.rss_growth as f64 / n as f64,
        PAYLOAD + 8,
    );
}

struct Rates {
    upload: f64,
    download: f64,
    stored_bytes: u64,
    rss_growth: i64,
}

/// Single-threaded BMT chunk hashes per second over varied payloads.
fn bmt_chunks_per_sec(budget: Duration) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut payloads = vec![[0u8; PAYLOAD]; 64];
    for p in &mut payloads {
        rng.fill_bytes(p);
    }
    let start = Instant::now();
    let mut done = 0u64;
    let mut sink = 0u8;
    while start.elapsed() < budget {
        for p in &payloads {
            sink ^= bmt::hash(PAYLOAD as u64, p).expect("fits")[0];
        }
        done += payloads.len() as u64;
    }
    std::hint::black_box(sink);
    done as f64 / start.elapsed().as_secs_f64()
}

async fn http_rates(n: usize) -> Rates {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let chunks: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..n)
            .map(|_| {
                let mut c = (PAYLOAD as u64).to_le_bytes().to_vec();
                c.resize(8 + PAYLOAD, 0);
                rng.fill_bytes(&mut c[8..]);
                c
            })
            .collect(),
    );
    let net = DevNet::start(DevNetConfig::for_tests(1))
        .await
        .expect("start");
    let url = net.urls()[0].clone();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .expect("client");
    let batch = json_of(
        client
            .post(format!("{url}/stamps/500000000/24"))
            .send()
            .await
            .expect("buy"),
    )
    .await;
    let batch = batch["batchID"].as_str().expect("batch id").to_string();

    let rss_before = resident_bytes();
    let references = Arc::new(std::sync::Mutex::new(vec![String::new(); n]));
    let upload = run_concurrently(n, {
        let (client, url, chunks, references, batch) = (
            client.clone(),
            url.clone(),
            chunks.clone(),
            references.clone(),
            batch.clone(),
        );
        move |i| {
            let (client, url, chunks, references, batch) = (
                client.clone(),
                url.clone(),
                chunks.clone(),
                references.clone(),
                batch.clone(),
            );
            async move {
                let resp = client
                    .post(format!("{url}/chunks"))
                    .header("Swarm-Postage-Batch-Id", batch)
                    .body(chunks[i].clone())
                    .send()
                    .await
                    .expect("upload");
                assert_eq!(resp.status(), 201);
                let body = json_of(resp).await;
                let reference = body["reference"].as_str().expect("reference").to_string();
                references.lock().expect("lock")[i] = reference;
            }
        }
    })
    .await;
    let rss_growth = resident_bytes() as i64 - rss_before as i64;
    let (stored, stored_bytes) = net.store_stats();
    assert_eq!(stored, n);

    let references: Arc<Vec<String>> =
        Arc::new(std::mem::take(&mut *references.lock().expect("lock")));
    let download = run_concurrently(n, {
        let (client, url, references) = (client.clone(), url.clone(), references.clone());
        move |i| {
            let (client, url, references) = (client.clone(), url.clone(), references.clone());
            async move {
                let resp = client
                    .get(format!("{url}/chunks/{}", references[i]))
                    .send()
                    .await
                    .expect("download");
                assert_eq!(resp.status(), 200);
                assert_eq!(resp.bytes().await.expect("body").len(), 8 + PAYLOAD);
            }
        }
    })
    .await;
    net.stop().await;
    Rates {
        upload,
        download,
        stored_bytes,
        rss_growth,
    }
}

/// Runs `job(0..n)` with [`CONCURRENCY`] workers; returns jobs per second.
async fn run_concurrently<F, Fut>(n: usize, job: F) -> f64
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (next, job) = (next.clone(), job.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    job(i).await;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("worker");
    }
    n as f64 / start.elapsed().as_secs_f64()
}

async fn json_of(resp: reqwest::Response) -> serde_json::Value {
    serde_json::from_slice(&resp.bytes().await.expect("body")).expect("json")
}

/// Resident set size from `/proc/self/statm` (0 where it is unavailable).
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}
