//! Mailserver benchmark (issue #19): one request for 1,000 envelopes of one topic over
//! loopback devp2p, answered by a Staples node with `--mailserver` from the dev node at
//! 20 ms per Bee request; time from sending the request (code 126) to its completion
//! (code 125). Prints a table.
//!
//! References in the same run:
//! - the in-process walk: the same node's `shhext_requestMessagesSync` for the same window
//!   (what an app on a Staples sidecar gets, without devp2p);
//! - status-go v0.78's own mailserver (LevelDB on local disk, no added latency), when a
//!   `statusd` binary is at `$STAPLES_STATUSD` (default `/tmp/statusd`; build it with
//!   `../shared/tools/status-go/build.sh`): the same 1,000 envelopes posted to it, the same
//!   request from the same client. Skipped with a message when absent.
//!
//! Run: `cargo build --release -p staples-bridge -p staples-devnode --bins &&
//! cargo bench -p staples-e2e --bench mailserver`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use staples_e2e::devp2p::{Client, listening};
use staples_e2e::{DevNode, Sidecar, call, hex0x, public_topic};
use staples_protocol::crypto::PrivateKey;
use staples_protocol::mailserver::{Completion, Request};
use staples_protocol::whisper::Topic;

const CHAT: &str = "mailserver-bench";
const N: usize = 1000;
const LATENCY_MS: u64 = 20;

fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32
}

/// Posts `N` messages through `url`'s `shh_post`, 32 at a time.
async fn post_all(url: &str, key: &Value, pow: f64) {
    use futures_util::StreamExt;
    futures_util::stream::iter(0..N)
        .for_each_concurrent(32, |i| async move {
            call(
                url,
                "shh_post",
                json!([{"symKeyID": key, "topic": public_topic(CHAT), "ttl": 3600,
                        "powTarget": pow, "powTime": 1,
                        "payload": hex0x(format!("message {i}").as_bytes())}]),
                Duration::from_secs(60),
            )
            .await
            .expect("posts");
        })
        .await;
}

/// One request for the chat's last hour, limit 1000: (time to completion, envelopes).
fn request(c: &mut Client) -> (Duration, usize, Completion) {
    let now = unix_now();
    let r = Request::for_topics(now - 3600, now + 60, &[Topic::from_name(CHAT)], 1000);
    let t = Instant::now();
    let id = c.request(&r, None, None);
    let (envs, done) = c.answer(id);
    (t.elapsed(), envs.len(), done)
}

async fn staples(dir: &Path) -> Vec<String> {
    let net = DevNode::start(2);
    let alice = Sidecar::start_pss(&dir.join("alice"), &net.urls[1]);
    let (akey, _) = staples_e2e::join_public(&alice, CHAT).await;
    let server = Sidecar::start_dual_over(
        &dir.join("server"),
        &net.urls[0],
        &["--p2p-addr", "127.0.0.1:0", "--mailserver"],
    );
    let (skey, _) = staples_e2e::join_public(&server, CHAT).await;
    post_all(&alice.http, &akey, 0.0).await;
    // Alice's inbox lists them all (her outbox drained), and the server has them all.
    alice
        .status_until("Alice's outbox drained", Duration::from_secs(600), |st| {
            st["outboxDepth"] == json!(0)
        })
        .await;
    server
        .status_until(
            "the server has every message",
            Duration::from_secs(600),
            |st| {
                st["chats"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["delivered"].as_u64())
                    .sum::<u64>()
                    >= N as u64
            },
        )
        .await;
    // Created once everything is delivered, so it holds only what history hands it.
    let p2p = server
        .ok(
            "shh_newMessageFilter",
            json!([{"symKeyID": skey, "topics": [public_topic(CHAT)], "allowP2P": true}]),
        )
        .await;
    net.admin(0, "PUT", "/knobs", json!({"latency_ms": LATENCY_MS}))
        .await;
    let (enode, key) = listening(&server).await;
    let mut c = Client::connect(&enode, &key);
    let (devp2p, got, done) = request(&mut c);
    assert!(matches!(done, Completion::Completed { .. }), "{done:?}");
    let now = unix_now();
    let t = Instant::now();
    let sync = server
        .ok(
            "shhext_requestMessagesSync",
            json!([{"BaseTimeout": 120_000_000_000u64},
                   {"topics": [public_topic(CHAT)], "from": now - 3600, "to": now + 60, "limit": 1000}]),
        )
        .await;
    let walk = t.elapsed();
    let walked = server
        .ok("shh_getFilterMessages", json!([p2p]))
        .await
        .as_array()
        .map_or(0, Vec::len);
    vec![
        format!(
            "| Staples `--mailserver`, dev node at {LATENCY_MS} ms per request, over devp2p | {:.2} s | {got} |",
            devp2p.as_secs_f64()
        ),
        format!(
            "| the same node's in-process walk (`shhext_requestMessagesSync`, answer {sync}) | {:.2} s | {walked} |",
            walk.as_secs_f64()
        ),
    ]
}

/// status-go v0.78's mailserver, if a `statusd` binary is there.
async fn status_go(dir: &Path) -> Vec<String> {
    let bin = match staples_e2e::mailserver::statusd_binary() {
        Ok(b) => b,
        Err(skipped) => return vec![format!("| status-go v0.78 mailserver | {skipped} | |")],
    };
    let (_statusd, url) =
        staples_e2e::mailserver::start_statusd(&bin, "mailserver.json", dir).await;
    let url = url.as_str();
    let key = call(
        url,
        "shh_generateSymKeyFromPassword",
        json!([CHAT]),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    post_all(url, &key, 0.000002).await;
    let node = PrivateKey::from_bytes(
        &hex::decode("3146023cb4b75c55dd863bfb2c62cf502f03023972c52f44aaa1d5d05b3f95e1").unwrap(),
    )
    .unwrap();
    let mut c = Client::connect("127.0.0.1:30511", &node.public_key());
    let (took, got, done) = request(&mut c);
    vec![format!(
        "| status-go v0.78 mailserver (LevelDB, local disk, no added latency) | {:.2} s | {got} ({}) |",
        took.as_secs_f64(),
        match done {
            Completion::Completed { .. } => "completed".to_string(),
            Completion::Failed { message, .. } => message,
        }
    )]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut rows = rt.block_on(staples(dir.path()));
    rows.extend(rt.block_on(status_go(dir.path())));
    println!("\nmailserver: one request for {N} envelopes of one topic (limit 1000)");
    println!("| server | request → completion | envelopes |");
    println!("|---|---|---|");
    for r in rows {
        println!("{r}");
    }
}
