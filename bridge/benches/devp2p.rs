//! devp2p throughput and handshake rate, against go-ethereum v1.9.7 in the same run when a
//! geth binary is around (`STAPLES_GETH`, default `/tmp/geth197/geth`).
//!
//! - **Relay between two peers over loopback**: an app on node A posts N envelopes (no PoW,
//!   8 posts in flight); measured until an app on node B, A's only devp2p peer, has them
//!   all. Two `staples` nodes (`--p2p-envelope-rate 0`: geth has no such limit); then two
//!   geth nodes the same way (`--shh.pow 0`, `--syncmode full` so they stay peered).
//! - **Handshakes per second**: the RLPx EIP-8 handshake (auth, ack, both sides' secrets)
//!   in this process, one core.
//!
//! Run: `cargo bench -p staples-bridge --bench devp2p` (`STAPLES_BENCH_N`, default 2000).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{call, spawn};

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use staples_protocol::crypto::PrivateKey;
use staples_protocol::devp2p::handshake::{Initiator, respond};

const TOPIC: &str = "0xde702002";
const IN_FLIGHT: usize = 8;

async fn try_call(http: &str, method: &str, params: Value) -> Option<Value> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let v: Value = reqwest::Client::new()
        .post(http)
        .json(&body)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    v.get("result").cloned()
}

/// Posts `n` envelopes on `from`, waits for all on `to`; seconds.
async fn relay(from: &str, to: &str, n: usize) -> f64 {
    let key_to = call(
        to,
        "shh_generateSymKeyFromPassword",
        json!(["devp2p-bench"]),
    )
    .await;
    let filter = call(
        to,
        "shh_newMessageFilter",
        json!([{"symKeyID": key_to, "topics": [TOPIC]}]),
    )
    .await;
    let key = call(
        from,
        "shh_generateSymKeyFromPassword",
        json!(["devp2p-bench"]),
    )
    .await;
    let t0 = Instant::now();
    let poster = {
        let (from, key) = (from.to_string(), key.clone());
        tokio::spawn(async move {
            let mut next = 0;
            while next < n {
                let batch: Vec<_> = (next..(next + IN_FLIGHT).min(n))
                    .map(|i| {
                        let (from, key) = (from.clone(), key.clone());
                        tokio::spawn(async move {
                            call(
                                &from,
                                "shh_post",
                                json!([{"symKeyID": key, "topic": TOPIC, "ttl": 300,
                                    "powTarget": 0, "powTime": 1,
                                    "payload": format!("0x{}", hex::encode(format!("m{i}")))}]),
                            )
                            .await
                        })
                    })
                    .collect();
                for b in batch {
                    b.await.unwrap();
                }
                next += IN_FLIGHT;
            }
        })
    };
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    while got < n {
        assert!(Instant::now() < deadline, "only {got} of {n} arrived");
        let ms = call(to, "shh_getFilterMessages", json!([filter])).await;
        got += ms.as_array().map_or(0, Vec::len);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    poster.await.unwrap();
    t0.elapsed().as_secs_f64()
}

/// Waits up to 30 s for a peer; whether one came.
async fn wait_peers(http: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = try_call(http, "net_peerCount", json!([])).await
            && v != "0x0"
        {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A geth process and its data dir (removed when dropped).
struct Geth {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Geth {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_geth(bin: &std::path::Path) -> (Geth, String, u16) {
    let dir = tempfile::tempdir().unwrap();
    let (p2p, rpc) = (free_port(), free_port());
    let child = Command::new(bin)
        .args(["--datadir", &dir.path().display().to_string()])
        .args([
            "--nodiscover",
            "--nat",
            "none",
            "--maxpeers",
            "5",
            "--networkid",
            "999",
        ])
        .args(["--nousb", "--shh", "--shh.pow", "0"])
        // Two fresh nodes in the default fast sync drop each other as "useless peer"
        // (eth: unsynced node cannot serve fast sync) and the session ends with it.
        .args(["--syncmode", "full"])
        .args(["--port", &p2p.to_string()])
        .args([
            "--rpc",
            "--rpcaddr",
            "127.0.0.1",
            "--rpcport",
            &rpc.to_string(),
        ])
        .args(["--rpcapi", "admin,shh,net,web3"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    (
        Geth { child, _dir: dir },
        format!("http://127.0.0.1:{rpc}"),
        p2p,
    )
}

fn handshakes_per_second() -> f64 {
    let mut rng = rand::rngs::OsRng;
    let a = PrivateKey::random(&mut rng);
    let b = PrivateKey::random(&mut rng);
    let n = 300;
    let t = Instant::now();
    for _ in 0..n {
        let (init, auth) = Initiator::new(
            PrivateKey::from_bytes(&a.to_bytes()).unwrap(),
            b.public_key(),
            &mut rng,
        );
        let (_, ack, _) = respond(&b, &auth, &mut rng).unwrap();
        init.finish(&ack).unwrap();
    }
    f64::from(n) / t.elapsed().as_secs_f64()
}

fn main() {
    let n: usize = std::env::var("STAPLES_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    rt.block_on(async {
        // No envelope rate limit, as geth has none.
        let a = spawn(&[
            "--transport",
            "whisper",
            "--p2p-addr",
            "127.0.0.1:0",
            "--p2p-envelope-rate",
            "0",
        ]);
        let info = call(&a.http, "admin_nodeInfo", json!([])).await;
        let enode = info["enode"].as_str().unwrap().to_string();
        let b = spawn(&[
            "--transport",
            "whisper",
            "--whisper-peer",
            &enode,
            "--p2p-envelope-rate",
            "0",
        ]);
        assert!(wait_peers(&b.http).await, "the staples nodes did not peer");
        let secs = relay(&a.http, &b.http, n).await;
        rows.push(("staples → staples", secs));
        let geth = std::env::var_os("STAPLES_GETH")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| "/tmp/geth197/geth".into());
        if geth.exists() {
            let (ga, ua, _) = start_geth(&geth);
            let (gb, ub, _) = start_geth(&geth);
            let deadline = Instant::now() + Duration::from_secs(30);
            let info = loop {
                if let Some(i) = try_call(&ua, "admin_nodeInfo", json!([])).await {
                    break i;
                }
                assert!(Instant::now() < deadline, "geth never came up");
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            let enode = info["enode"].as_str().unwrap().to_string();
            let deadline = Instant::now() + Duration::from_secs(30);
            while try_call(&ub, "admin_addPeer", json!([enode]))
                .await
                .is_none()
            {
                assert!(Instant::now() < deadline, "geth B never came up");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            if wait_peers(&ub).await {
                let secs = relay(&ua, &ub, n).await;
                rows.push(("geth v1.9.7 → geth v1.9.7", secs));
            } else {
                eprintln!("the two geth nodes did not peer: the geth row is left out");
            }
            drop((ga, gb));
        } else {
            eprintln!("no geth binary: the geth row is left out");
        }
    });
    let hs = handshakes_per_second();
    println!("| {n} envelopes over one devp2p link, loopback | time | envelopes/s |");
    println!("|---|---|---|");
    for (name, secs) in rows {
        println!("| {name} | {secs:.2} s | {:.0} |", n as f64 / secs);
    }
    println!("\nRLPx handshakes (initiator and recipient, one core): {hs:.0} per second");
}
