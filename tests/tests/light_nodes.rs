//! Light and ultra-light Bee nodes (issue #20), with real processes: three `pss` sidecars
//! share a public chat, on a full, a light and an ultra-light virtual node of one dev
//! network. Each shows its node's mode in `staples_status`; the light node's member gets
//! every message though no PSS reaches it (its feeds are polled) and can send; the
//! ultra-light node's member gets every message and is refused, with a clear error, when it
//! tries to send (its Bee node cannot upload).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{Value, json};
use staples_e2e::{DevNode, Sidecar, join_public, say_public, texts};

const CHAT: &str = "staples-light-nodes";

async fn collect(p: &Sidecar, filter: &str, want: usize) -> Vec<String> {
    let mut got: Vec<Value> = Vec::new();
    staples_e2e::collect(p, filter, &mut got, want).await;
    let mut t = texts(&got);
    t.sort();
    t
}

#[tokio::test]
async fn light_nodes_read_without_pss_and_ultra_light_nodes_cannot_send() {
    let net = DevNode::start(3);
    net.admin(0, "POST", "/nodes/1/mode/light", json!({})).await;
    net.admin(0, "POST", "/nodes/2/mode/ultra-light", json!({}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let full = Sidecar::start_pss(&dir.path().join("full"), &net.urls[0]);
    let light = Sidecar::start_pss(&dir.path().join("light"), &net.urls[1]);
    let ultra = Sidecar::start_pss(&dir.path().join("ultra"), &net.urls[2]);
    for (p, mode) in [(&full, "full"), (&light, "light"), (&ultra, "ultra-light")] {
        p.status_until(&format!("Bee mode {mode}"), Duration::from_secs(20), |st| {
            st["bee"]["mode"] == mode
        })
        .await;
    }
    let (fkey, ff) = join_public(&full, CHAT).await;
    let (lkey, lf) = join_public(&light, CHAT).await;
    let (ukey, uf) = join_public(&ultra, CHAT).await;

    say_public(&full, &fkey, CHAT, "from full").await;
    say_public(&light, &lkey, CHAT, "from light").await;
    let both = ["from full", "from light"];
    assert_eq!(collect(&full, &ff, 2).await, both);
    assert_eq!(collect(&light, &lf, 2).await, both);
    assert_eq!(collect(&ultra, &uf, 2).await, both);

    let refused = ultra
        .err(
            "shh_post",
            json!([{"symKeyID": ukey, "topic": staples_e2e::public_topic(CHAT), "ttl": 60,
                    "payload": "0x01"}]),
        )
        .await;
    assert!(refused.contains("ultra-light"), "{refused}");
    let st = ultra.ok("staples_status", json!([])).await;
    assert_eq!(st["outboxDepth"], 0, "nothing waits to be sent: {st}");
}
