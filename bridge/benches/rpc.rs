//! Sidecar benchmark: `shh_post` → delivery to a `shh_subscribe` subscription through the
//! local Whisper node, with 64 concurrent WebSocket clients (PoW target 0, node min PoW 0),
//! plus the idle RSS of a spawned `staples`.
//!
//! Each client has its own symmetric key and topic, subscribes, then keeps posts in flight
//! on its own socket; latency is post sent → notification received. Two measured rounds:
//! one post in flight per client (per-message latency, no self-inflicted queueing) and 8 in
//! flight per client (throughput). Prints a table.
//! Run: `cargo bench -p staples-bridge --bench rpc` (release build).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const CLIENTS: usize = 64;
/// Posts in flight per client in the latency round and in the throughput round.
const WINDOWS: [usize; 2] = [1, 8];
const PER_CLIENT: usize = 1500;
const WARMUP: usize = 100;

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn client(url: String, idx: usize, n: usize, window: usize) -> Vec<Duration> {
    // The client's tungstenite zero-fills a 128 KiB read buffer per read by default; on
    // the same 2 cores that memset would be charged to the sidecar's latency.
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(8 * 1024);
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url.as_str(), Some(config), false)
        .await
        .expect("connect");
    let (mut tx, mut rx) = ws.split();
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&(idx as u64 + 1).to_be_bytes());
    let topic = format!("0x{:08x}", idx as u32 + 0x1000_0000);
    let mut next_id = 1u64;
    let mut rpc = |m: &str, p: Value| {
        next_id += 1;
        json!({"jsonrpc":"2.0","id":next_id,"method":m,"params":p}).to_string()
    };
    async fn answer(
        rx: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
    ) -> Value {
        loop {
            if let Some(Ok(Message::Text(t))) = rx.next().await {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v.get("id").is_some() {
                    return v;
                }
            }
        }
    }
    tx.send(Message::Text(
        rpc("shh_addSymKey", json!([format!("0x{}", hex::encode(key))])).into(),
    ))
    .await
    .unwrap();
    let sym = answer(&mut rx).await["result"]
        .as_str()
        .unwrap()
        .to_string();
    tx.send(Message::Text(
        rpc(
            "shh_subscribe",
            json!(["messages", {"symKeyID": sym, "topics": [topic]}]),
        )
        .into(),
    ))
    .await
    .unwrap();
    answer(&mut rx).await;

    let mut sent_at = vec![None; n];
    let mut lat = Vec::with_capacity(n);
    let (mut sent, mut got, mut in_flight) = (0usize, 0usize, 0usize);
    while got < n {
        while in_flight < window && sent < n {
            let payload = format!("0x{:016x}", sent);
            let body = rpc(
                "shh_post",
                json!([{"symKeyID": sym, "topic": topic, "payload": payload, "ttl": 60, "powTarget": 0}]),
            );
            sent_at[sent] = Some(Instant::now());
            tx.send(Message::Text(body.into())).await.unwrap();
            sent += 1;
            in_flight += 1;
        }
        let Some(Ok(Message::Text(t))) = rx.next().await else {
            continue;
        };
        let v: Value = serde_json::from_str(&t).unwrap();
        if let Some(e) = v.get("error") {
            panic!("post failed: {e}");
        }
        if v["method"] == "shh_subscription" {
            let p = v["params"]["result"]["payload"].as_str().unwrap();
            let seq = usize::from_str_radix(&p[2..], 16).unwrap();
            if let Some(t0) = sent_at.get(seq).copied().flatten() {
                lat.push(t0.elapsed());
            }
            got += 1;
            in_flight -= 1;
        }
    }
    lat
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_staples"))
        .args([
            "--rpc-addr",
            "127.0.0.1:0",
            "--ws-addr",
            "127.0.0.1:0",
            "--min-pow",
            "0",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn staples");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ws = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("ws="))
        .unwrap()
        .to_string();
    std::thread::sleep(Duration::from_secs(1));
    let idle = rss_kib(child.id());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let warm: Vec<_> = rt.block_on(async {
        let warm: Vec<_> = (0..CLIENTS)
            .map(|i| tokio::spawn(client(ws.clone(), i, WARMUP, 1)))
            .collect();
        let mut out = Vec::new();
        for w in warm {
            out.push(w.await.unwrap());
        }
        out
    });
    drop(warm);
    let mut rows = Vec::new();
    for (round, window) in WINDOWS.into_iter().enumerate() {
        let (elapsed, mut lat) = rt.block_on(async {
            let start = Instant::now();
            let base = CLIENTS * (round + 1);
            let tasks: Vec<_> = (0..CLIENTS)
                .map(|i| tokio::spawn(client(ws.clone(), base + i, PER_CLIENT, window)))
                .collect();
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.unwrap());
            }
            (start.elapsed(), all)
        });
        lat.sort();
        let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
        rows.push((
            window,
            lat.len(),
            lat.len() as f64 / elapsed.as_secs_f64(),
            pct(0.50).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
        ));
    }
    let loaded = rss_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();

    println!(
        "| clients x in flight | delivered | throughput (>= 10000 msg/s) | p50 | p99 (< 5 ms) |"
    );
    println!("|---|---|---|---|---|");
    for (window, total, rate, p50, p99) in rows {
        println!(
            "| {CLIENTS} x {window} | {total} | {rate:.0} msg/s | {p50:.2} ms | {p99:.2} ms |"
        );
    }
    println!();
    println!("| idle RSS (< 20 MiB) | {:.1} MiB |", idle as f64 / 1024.0);
    println!("| RSS after load | {:.1} MiB |", loaded as f64 / 1024.0);
}
