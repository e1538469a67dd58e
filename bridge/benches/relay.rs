//! `staples relay` throughput, each way, on one machine: a Whisper node (a `whisper`-mode
//! `staples`), a relay for one public chat, and a `pss` peer, on the embedded Swarm dev
//! node (in this process, no added latency).
//!
//! - **Whisper → Swarm**: an app on the Whisper node posts N messages to the chat (8 at a
//!   time, over HTTP); measured from the first post until the pss peer's app has all N
//!   (each crossed as the relay's bridged record, was written to its inbox and sent live).
//! - **Swarm → Whisper**: the pss peer's app posts N; measured until the Whisper node's app
//!   has all N (each injected as its author's envelope).
//!
//! The relay's bridging limit is raised out of the way (`--per-second`). The sender's own
//! posting rate is printed too: a `pss` app's posts to one chat are taken one at a time
//! (each gets the chat's next clock and the current heads as parents, and is durable before
//! the next), so that rate bounds Swarm → Whisper here, whatever the relay does. Aim (issue 13):
//! at least 500 msg/s each way on these 2 cores. Also prints the CPU each process used per
//! message (the relay, the Whisper node, the pss peer, and this process: the dev node and
//! the load).
//!
//! Run: `cargo bench -p staples-bridge --bench relay` (`STAPLES_BENCH_N`, default 1000).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{call, cpu_secs, spawn};

use std::time::{Duration, Instant};

use serde_json::{Value, json};

const CHAT: &str = "relay-bench";
const IN_FLIGHT: usize = 8;

fn topic() -> String {
    format!(
        "0x{}",
        hex::encode(staples_protocol::whisper::Topic::from_name(CHAT).0)
    )
}

/// The app's key and filter on the chat.
async fn join(http: &str) -> (Value, String) {
    let key = call(http, "shh_generateSymKeyFromPassword", json!([CHAT])).await;
    let f = call(
        http,
        "shh_newMessageFilter",
        json!([{"symKeyID": key, "topics": [topic()]}]),
    )
    .await;
    (key, f.as_str().unwrap().to_string())
}

/// Posts `n` messages `tag-i`, `IN_FLIGHT` at a time.
async fn post_all(http: &str, key: &Value, tag: &str, n: usize) {
    let mut next = 0;
    while next < n {
        let batch: Vec<_> = (next..(next + IN_FLIGHT).min(n))
            .map(|i| {
                let http = http.to_string();
                let body = json!([{"symKeyID": key, "topic": topic(), "ttl": 300,
                    "payload": format!("0x{}", hex::encode(format!("{tag}-{i}")))}]);
                tokio::spawn(async move { call(&http, "shh_post", body).await })
            })
            .collect();
        for b in batch {
            b.await.unwrap();
        }
        next += IN_FLIGHT;
    }
}

/// Polls `filter` until `n` messages with `tag` arrived; how many with that tag came.
async fn wait_for(http: &str, filter: &str, tag: &str, n: usize) -> usize {
    let prefix = format!("0x{}", hex::encode(format!("{tag}-")));
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    while got < n {
        assert!(Instant::now() < deadline, "only {got} of {n} {tag} arrived");
        let ms = call(http, "shh_getFilterMessages", json!([filter])).await;
        got += ms
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["payload"].as_str().unwrap().starts_with(&prefix))
            .count();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    got
}

async fn ready(relay: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = call(relay, "staples_status", json!([])).await;
        if s["whisper"]["mirrorsOpen"] == 1 {
            return;
        }
        assert!(Instant::now() < deadline, "relay not ready: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn main() {
    let n: usize = std::env::var("STAPLES_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let net = staples_bridge::swarm::embedded::start_embedded(2, None)
            .await
            .unwrap();
        let urls = net.urls();
        let whisper = spawn(&["--transport", "whisper"]);
        let relay = spawn(&[
                "relay",
                "--chat",
                CHAT,
                "--whisper-rpc",
                &whisper.http,
                "--bee-api",
                &urls[0],
                "--pss-target-bytes",
                "1",
                "--sync-interval-ms",
                "200",
                "--per-second",
                "1000000",
            ]);
        let peer = spawn(&[
                "--transport",
                "pss",
                "--bee-api",
                &urls[1],
                "--pss-target-bytes",
                "1",
                "--sync-interval-ms",
                "200",
            ]);
        let (wkey, wfilter) = join(&whisper.http).await;
        let (pkey, pfilter) = join(&peer.http).await;
        ready(&relay.http).await;
        // Warm up: the peer learns the relay as a member (its contact record) both ways.
        post_all(&whisper.http, &wkey, "warm-w", 4).await;
        wait_for(&peer.http, &pfilter, "warm-w", 4).await;
        post_all(&peer.http, &pkey, "warm-p", 4).await;
        wait_for(&whisper.http, &wfilter, "warm-p", 4).await;

        let mut rows = Vec::new();
        for (name, from, fkey, to, tfilter, tag) in [
            ("Whisper → Swarm", &whisper, &wkey, &peer, &pfilter, "w2s"),
            ("Swarm → Whisper", &peer, &pkey, &whisper, &wfilter, "s2w"),
        ] {
            let pids = [
                relay.child.id(),
                whisper.child.id(),
                peer.child.id(),
                std::process::id(),
            ];
            let cpu0: Vec<f64> = pids.iter().map(|p| cpu_secs(*p)).collect();
            let t0 = Instant::now();
            let sender = {
                let (http, key) = (from.http.clone(), fkey.clone());
                tokio::spawn(async move {
                    post_all(&http, &key, tag, n).await;
                    t0.elapsed().as_secs_f64()
                })
            };
            let got = wait_for(&to.http, tfilter, tag, n).await;
            let secs = t0.elapsed().as_secs_f64();
            let posted = sender.await.unwrap();
            let cpu: Vec<f64> = pids
                .iter()
                .zip(&cpu0)
                .map(|(p, c0)| (cpu_secs(*p) - c0) / got as f64 * 1e6)
                .collect();
            rows.push((name, got, secs, posted, cpu));
        }
        let status = call(&relay.http, "staples_status", json!([])).await;
        println!(
            "| {n} messages, one chat | delivered | time | msg/s (aim >= 500) | the sender's posts/s | CPU per message: relay / Whisper node / pss peer / dev node and load |"
        );
        println!("|---|---|---|---|---|---|");
        for (name, got, secs, posted, cpu) in rows {
            println!(
                "| {name} | {got} | {secs:.2} s | {:.0} | {:.0} | {:.0} / {:.0} / {:.0} / {:.0} µs |",
                got as f64 / secs,
                n as f64 / posted,
                cpu[0],
                cpu[1],
                cpu[2],
                cpu[3]
            );
        }
        println!("\nrelay counters: {}", status["relay"]["counters"]);
        drop((whisper, relay, peer));
        net.stop().await;
    });
}
