//! An unmodified status-go v0.78 node (`statusd`) uses a Staples relay as its mailserver
//! (issue #19): it peers with the relay, marks it trusted and calls
//! `shhext_requestMessages` with the relay as `mailServerPeer`; the history the relay
//! bridged from Whisper to Swarm, long expired on Whisper, reaches statusd's `allowP2P`
//! filter, every message once, as its author's envelope (same hashes).
//!
//! Needs `statusd` at `$STAPLES_STATUSD` (default `/tmp/statusd`; build it with
//! `../shared/tools/status-go/build.sh`, about two minutes). Skips with a message when it
//! is absent. Uses `../shared/tools/status-go/client.json` (HTTP 8612, devp2p 30512).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use staples_e2e::devp2p::listening;
use staples_e2e::{DevNode, Sidecar, call, hex0x, public_topic};

const CHAT: &str = "staples-status-go-history";
const TTL: u32 = 6;

async fn rpc(url: &str, method: &str, params: Value) -> Value {
    call(url, method, params, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("statusd {method}: {e}"))
}

#[tokio::test]
async fn status_go_v0_78_gets_its_history_from_a_staples_mailserver() {
    let bin = std::env::var("STAPLES_STATUSD").unwrap_or_else(|_| "/tmp/statusd".into());
    if !Path::new(&bin).exists() {
        eprintln!(
            "SKIPPED: no statusd at {bin}; build status-go v0.78 with ../shared/tools/status-go/build.sh"
        );
        return;
    }
    let net = DevNode::start(1);
    let dir = tempfile::tempdir().unwrap();
    let w =
        Sidecar::start_whisper_with(&dir.path().join("whisper"), &["--p2p-addr", "127.0.0.1:0"]);
    let w_enode = w.ok("admin_nodeInfo", json!([])).await["enode"]
        .as_str()
        .unwrap()
        .to_string();
    let relay = Sidecar::start_relay_over(
        &dir.path().join("relay"),
        &net.urls[0],
        CHAT,
        &[
            "--whisper-peer",
            &w_enode,
            "--p2p-addr",
            "127.0.0.1:0",
            "--mailserver",
        ],
    );
    relay.status_until_peers(1).await;
    relay.mirrors_open(1).await;
    let (wkey, _) = staples_e2e::join_public(&w, CHAT).await;
    let author = w.ok("shh_newKeyPair", json!([])).await;
    let mut hashes = HashSet::new();
    for i in 0..5 {
        let h = w
            .ok(
                "shh_post",
                json!([{"symKeyID": wkey, "sig": author, "topic": public_topic(CHAT),
                        "ttl": TTL, "powTarget": 0.2, "powTime": 2,
                        "payload": hex0x(format!("from whisper {i}").as_bytes())}]),
            )
            .await;
        hashes.insert(h.as_str().unwrap().to_string());
    }
    relay
        .status_until(
            "relay archived 5 envelopes",
            Duration::from_secs(60),
            |st| st["relay"]["counters"]["relay_envelopes_archived"].as_u64() == Some(5),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(u64::from(TTL) + 2)).await;

    // statusd, which was away the whole time.
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/tools/status-go/client.json"
    );
    let data = dir.path().join("statusd");
    std::fs::create_dir_all(&data).unwrap();
    let log = std::fs::File::create(dir.path().join("statusd.log")).unwrap();
    let child = std::process::Command::new(&bin)
        .args([
            "-dir",
            &data.display().to_string(),
            "-c",
            config,
            "-log-without-color",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("statusd starts");
    let _statusd = staples_e2e::Process { child };
    let url = "http://127.0.0.1:8612";
    let t = Instant::now();
    while call(url, "web3_clientVersion", json!([]), Duration::from_secs(2))
        .await
        .is_err()
    {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "statusd did not start"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (enode, _) = listening(&relay).await;
    rpc(url, "admin_addPeer", json!([enode])).await;
    let t = Instant::now();
    while rpc(url, "admin_peers", json!([]))
        .await
        .as_array()
        .map_or(0, Vec::len)
        == 0
    {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "statusd did not peer"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    rpc(url, "shh_markTrustedPeer", json!([enode])).await;
    let chat_key = rpc(url, "shh_generateSymKeyFromPassword", json!([CHAT])).await;
    let filter = rpc(
        url,
        "shh_newMessageFilter",
        json!([{"symKeyID": chat_key, "topics": [public_topic(CHAT)], "allowP2P": true}]),
    )
    .await;
    let inbox_key = rpc(
        url,
        "shh_generateSymKeyFromPassword",
        json!(["status-offline-inbox"]),
    )
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let request_id = rpc(
        url,
        "shhext_requestMessages",
        json!([{"mailServerPeer": enode, "symKeyID": inbox_key, "topics": [public_topic(CHAT)],
                "from": now - 600, "to": now + 60, "limit": 100, "timeout": 30}]),
    )
    .await;
    let mut got: Vec<Value> = Vec::new();
    let t = Instant::now();
    while got.len() < 5 && t.elapsed() < Duration::from_secs(30) {
        let ms = rpc(url, "shh_getFilterMessages", json!([filter])).await;
        got.extend(ms.as_array().into_iter().flatten().cloned());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ms = rpc(url, "shh_getFilterMessages", json!([filter])).await;
    got.extend(ms.as_array().into_iter().flatten().cloned());
    let st = relay.ok("staples_status", json!([])).await;
    eprintln!(
        "request {request_id}: statusd got {} messages; relay mailserver {}",
        got.len(),
        st["mailserver"]
    );
    let got_hashes: HashSet<String> = got
        .iter()
        .map(|m| m["hash"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got.len(), 5, "every message once: {got:?}");
    assert_eq!(got_hashes, hashes, "the authors' envelopes");
    let mut texts: Vec<String> = got.iter().map(staples_e2e::text).collect();
    texts.sort();
    assert_eq!(
        texts,
        (0..5)
            .map(|i| format!("from whisper {i}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(st["mailserver"]["counters"]["completed"], 1, "{st}");
}
