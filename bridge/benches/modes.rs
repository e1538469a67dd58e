//! What a post costs in each mode, side by side in one run: `whisper` (local node), `pss`
//! (embedded Swarm dev node) and `dual` (the same, plus a `whisper`-mode `staples` as its
//! Whisper side), and what a received duplicate costs a `dual` peer.
//!
//! Each mode: 8 WebSocket clients, each with its own key and topic, subscribe on the
//! sidecar and post 250 times, one at a time (the next post once its notification
//! arrived); latency is post sent → notification. Throughput is posts per second over the
//! round. CPU is the sidecar's user + system time per post, from the round's start until
//! its outboxes drained (uploads and inbox pages, and in `dual` the Whisper posts, run
//! behind the answers), plus in `dual` the Whisper node's (it seals, pools and hands back
//! every post). Aim (issue 12): `dual` at most 1.5× `pss` per message.
//!
//! Duplicates: every `dual` post comes back from the Whisper node as a copy of a Staples
//! message (the mirror of the client's filter polls it) and is collapsed there; the run's
//! count is `whisper_staples_copies`, and the dual row's CPU counts until the Whisper side
//! has sent every post and seen every copy. The check each copy costs (carrier decode and
//! own-post lookup) is timed on its own below the table.
//!
//! Run: `cargo bench -p staples-bridge --bench modes` (release build). Prints a table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{call, cpu_secs, spawn};

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const CLIENTS: usize = 8;
const POSTS: usize = 250;

/// One client's latencies: subscribe, then post and wait for the notification, POSTS times.
async fn client(ws_url: String, idx: usize) -> Vec<Duration> {
    let (ws, _) = tokio_tungstenite::connect_async(ws_url.as_str())
        .await
        .unwrap();
    let (mut tx, mut rx) = ws.split();
    let mut id = 0u64;
    let mut send = async |tx: &mut futures_util::stream::SplitSink<_, Message>,
                          method: &str,
                          params: Value| {
        id += 1;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        tx.send(Message::Text(body.to_string().into()))
            .await
            .unwrap();
    };
    let mut next = async || loop {
        if let Some(Ok(Message::Text(t))) = rx.next().await {
            return serde_json::from_str::<Value>(&t).unwrap();
        }
    };
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&(idx as u64 + 1).to_be_bytes());
    let topic = format!("0x{:08x}", idx as u32 + 0x2000_0000);
    send(
        &mut tx,
        "shh_addSymKey",
        json!([format!("0x{}", hex::encode(key))]),
    )
    .await;
    let sym = next().await["result"].as_str().unwrap().to_string();
    send(
        &mut tx,
        "shh_subscribe",
        json!(["messages", {"symKeyID": sym, "topics": [topic]}]),
    )
    .await;
    next().await;
    let mut lat = Vec::with_capacity(POSTS);
    for seq in 0..POSTS {
        let t0 = Instant::now();
        send(
            &mut tx,
            "shh_post",
            json!([{"symKeyID": sym, "topic": topic, "payload": format!("0x{seq:016x}"),
                    "ttl": 60, "powTarget": 0}]),
        )
        .await;
        loop {
            let v = next().await;
            if v.get("method").is_some() {
                lat.push(t0.elapsed());
                break;
            }
        }
    }
    lat
}

struct Row {
    mode: &'static str,
    rate: f64,
    p50: f64,
    p99: f64,
    cpu_us: f64,
    sidecar_us: f64,
    note: String,
}

async fn measure(mode: &'static str) -> Row {
    let upstream = (mode == "dual").then(|| spawn(&["--transport", "whisper"]));
    let mut args = vec!["--transport", mode];
    if let Some(u) = &upstream {
        args.extend(["--whisper-rpc", u.http.as_str()]);
    }
    let sidecar = spawn(&args);
    // Warm-up: the embedded dev node buys its postage batch on the first upload.
    let _ = client(sidecar.ws.clone(), 999).await;
    let pids: Vec<u32> = std::iter::once(sidecar.child.id())
        .chain(upstream.as_ref().map(|u| u.child.id()))
        .collect();
    let cpu0: f64 = pids.iter().map(|p| cpu_secs(*p)).sum();
    let sidecar_cpu0 = cpu_secs(pids[0]);
    let start = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| tokio::spawn(client(sidecar.ws.clone(), i)))
        .collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed();
    let mut note = String::new();
    if mode != "whisper" {
        // Uploads, inbox pages and (dual) Whisper posts run behind the answers: their work
        // counts until both outboxes drained (and, dual, the copies stopped coming back).
        let drain = Instant::now();
        let mut last = u64::MAX;
        loop {
            let s = call(&sidecar.http, "staples_status", json!([])).await;
            let copies = s["whisper"]["counters"]["whisper_staples_copies"]
                .as_u64()
                .unwrap_or(0);
            let whisper_done = mode == "pss" || (s["whisper"]["backlog"] == 0 && copies == last);
            if s["outboxDepth"] == 0 && whisper_done {
                note = format!(
                    "drained {:.1} s after the last answer",
                    drain.elapsed().as_secs_f64()
                );
                if mode == "dual" {
                    note += &format!(
                        "; duplicates collapsed: {copies} ({} own echoes, {} sync wake-ups)",
                        s["whisper"]["counters"]["whisper_own_echoes"],
                        s["whisper"]["counters"]["whisper_sync_nudges"]
                    );
                }
                break;
            }
            if drain.elapsed() > Duration::from_secs(120) {
                note = format!("not drained after 120 s: {s}");
                break;
            }
            last = copies;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    let cpu = pids.iter().map(|p| cpu_secs(*p)).sum::<f64>() - cpu0;
    let sidecar_cpu = cpu_secs(pids[0]) - sidecar_cpu0;
    lat.sort();
    let pct =
        |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)].as_secs_f64() * 1e3;
    Row {
        mode,
        rate: lat.len() as f64 / elapsed.as_secs_f64(),
        p50: pct(0.5),
        p99: pct(0.99),
        cpu_us: cpu * 1e6 / lat.len() as f64,
        sidecar_us: sidecar_cpu * 1e6 / lat.len() as f64,
        note,
    }
}

/// What a `dual` peer does with each Whisper copy once it has the message: decode the
/// carrier, and hash the padding to see whether it is one of its own posts. µs per copy.
fn duplicate_check_us() -> f64 {
    use staples_protocol::crypto::{PrivateKey, keccak256};
    use staples_protocol::dag::{ChatId, Draft, decode_padding, encode_padding_with};
    let key = PrivateKey::random(&mut rand::rngs::OsRng);
    let m = Draft {
        chat_id: ChatId::new([1; 32]),
        clock: 1,
        timestamp: 1,
        parents: vec![],
        ephemeral: false,
        body: vec![0x61; 100],
    }
    .sign(&key)
    .unwrap();
    let padding = encode_padding_with(m.header(), &[0; 120]);
    let n = 5_000;
    let t = Instant::now();
    for _ in 0..n {
        let p = std::hint::black_box(&padding);
        std::hint::black_box(decode_padding(p).unwrap().unwrap());
        std::hint::black_box(keccak256(p));
    }
    t.elapsed().as_secs_f64() * 1e6 / n as f64
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rows: Vec<Row> = ["whisper", "pss", "dual"]
        .into_iter()
        .map(|m| rt.block_on(measure(m)))
        .collect();
    let pss_cpu = rows
        .iter()
        .find(|r| r.mode == "pss")
        .map_or(1.0, |r| r.cpu_us);
    println!(
        "| mode | posts/s | p50 | p99 | sidecar CPU per post | with its Whisper node | vs pss (aim dual <= 1.5x) | |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.0} | {:.2} ms | {:.2} ms | {:.0} µs | {:.0} µs | {:.2}x (sidecar alone {:.2}x) | {} |",
            r.mode,
            r.rate,
            r.p50,
            r.p99,
            r.sidecar_us,
            r.cpu_us,
            r.cpu_us / pss_cpu,
            r.sidecar_us / pss_cpu,
            r.note
        );
    }
    println!();
    println!(
        "| duplicate check (carrier decode + own-post lookup) | {:.2} µs per copy |",
        duplicate_check_us()
    );
}
