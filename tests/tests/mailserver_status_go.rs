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
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use staples_e2e::devp2p::listening;
use staples_e2e::mailserver::{Expired, post_text, start_statusd};
use staples_e2e::{DevNode, call, public_topic};

const CHAT: &str = "staples-status-go-history";
const TTL: u32 = 6;

async fn rpc(url: &str, method: &str, params: Value) -> Value {
    call(url, method, params, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("statusd {method}: {e}"))
}

#[tokio::test]
async fn status_go_v0_78_gets_its_history_from_a_staples_mailserver() {
    let bin = match staples_e2e::mailserver::statusd_binary() {
        Ok(b) => b,
        Err(skipped) => {
            eprintln!("{skipped}");
            return;
        }
    };
    let net = DevNode::start(1);
    let dir = tempfile::tempdir().unwrap();
    let Expired { relay, hashes, .. } = Expired::make(dir.path(), &net.urls[0], CHAT, 5, TTL).await;
    // statusd, which was away the whole time.
    let (_statusd, url) = start_statusd(&bin, "client.json", dir.path()).await;
    let url = url.as_str();
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
    assert_eq!(texts, (0..5).map(post_text).collect::<Vec<_>>());
    assert_eq!(st["mailserver"]["counters"]["completed"], 1, "{st}");
}
