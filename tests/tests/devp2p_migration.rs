//! The migration over devp2p: `dual` sidecars and relays whose Whisper side is their own
//! Whisper node, peered over RLPx + `shh/6` with the Whisper network (here a plain
//! `whisper`-mode staples node, and a real geth v1.9.7 when one is built), with no
//! `--whisper-rpc` anywhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{Value, json};
use staples_e2e::{DevNode, Sidecar, hex0x, text, texts};
use staples_protocol::whisper::Topic;

const CHAT: &str = "staples-devp2p-migration";

fn topic() -> String {
    hex0x(&Topic::from_name(CHAT).0)
}

/// The app's filter on the chat (key = PBKDF2 of the name, Status's topic).
async fn join(p: &Sidecar) -> (Value, String) {
    let key = p.ok("shh_generateSymKeyFromPassword", json!([CHAT])).await;
    let f = p
        .ok(
            "shh_newMessageFilter",
            json!([{"symKeyID": key, "topics": [topic()]}]),
        )
        .await;
    (key, f.as_str().unwrap().to_string())
}

async fn say(p: &Sidecar, key: &Value, text: &str) -> Value {
    p.ok(
        "shh_post",
        json!([{"symKeyID": key, "topic": topic(), "ttl": 120, "payload": hex0x(text.as_bytes())}]),
    )
    .await
}

/// [`staples_e2e::collect`], then a little more: a repeat would show up meanwhile.
async fn collect(p: &Sidecar, filter: &str, got: &mut Vec<Value>, want: usize) {
    staples_e2e::collect(p, filter, got, want).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ms = p.ok("shh_getFilterMessages", json!([filter])).await;
    got.extend(ms.as_array().into_iter().flatten().cloned());
}

fn sorted(got: &[Value]) -> Vec<String> {
    let mut g = texts(got);
    g.sort();
    g
}

/// A plain Whisper node listening for devp2p peers, and its enode.
async fn whisper_network(dir: &std::path::Path) -> (Sidecar, String) {
    let w = Sidecar::start_whisper_with(dir, &["--p2p-addr", "127.0.0.1:0"]);
    let enode = w.ok("admin_nodeInfo", json!([])).await["enode"]
        .as_str()
        .expect("listening")
        .to_string();
    (w, enode)
}

/// A `dual` peer on devp2p: its posts reach the Whisper app (as envelopes gossiped by its
/// own node) and a `pss` app (over Swarm), once each; the Whisper app's posts reach it
/// once; `net_peerCount` and `admin_peers` show the devp2p session.
#[tokio::test]
async fn a_dual_peer_on_devp2p_chats_with_whisper_and_pss_peers() {
    let net = DevNode::start(2);
    let dir = tempfile::tempdir().unwrap();
    let (w, enode) = whisper_network(&dir.path().join("whisper")).await;
    let (wkey, wf) = join(&w).await;
    let d = Sidecar::start_dual_over(
        &dir.path().join("dual"),
        &net.urls[0],
        &["--whisper-peer", &enode],
    );
    let (dkey, df) = join(&d).await;
    let s = Sidecar::start_pss(&dir.path().join("pss"), &net.urls[1]);
    let (_, sf) = join(&s).await;
    d.status_until_peers(1).await;
    let peers = d.ok("admin_peers", json!([])).await;
    assert_eq!(peers.as_array().map(Vec::len), Some(1), "{peers}");
    // The Whisper side polls its node's mirrors before anything is said.
    d.status_until("dual mirror not open", Duration::from_secs(20), |st| {
        st["whisper"]["mirrorsOpen"] == 1
    })
    .await;

    say(&d, &dkey, "from dual").await;
    say(&w, &wkey, "from whisper").await;
    let mut wgot = Vec::new();
    collect(&w, &wf, &mut wgot, 2).await;
    assert_eq!(sorted(&wgot), ["from dual", "from whisper"]);
    let mut dgot = Vec::new();
    collect(&d, &df, &mut dgot, 2).await;
    assert_eq!(sorted(&dgot), ["from dual", "from whisper"]);
    let mut sgot = Vec::new();
    collect(&s, &sf, &mut sgot, 1).await;
    assert_eq!(texts(&sgot), ["from dual"]);
    // What the Whisper app got carries no Staples metadata in its padding beyond what a
    // plain node shows; the dual app got its own post without the DAG carrier.
    let own = dgot.iter().find(|m| text(m) == "from dual").unwrap();
    assert!(
        staples_protocol::dag::decode_padding(
            &hex::decode(own["padding"].as_str().unwrap().trim_start_matches("0x")).unwrap()
        )
        .unwrap()
        .is_none(),
        "carrier stripped for the app: {own}"
    );
}

/// A relay on devp2p: a Whisper peer and a `pss` peer chat through it both ways, once
/// each, and the Swarm side's post reaches Whisper as its author's envelope (same hash).
#[tokio::test]
async fn a_relay_on_devp2p_bridges_a_public_chat_both_ways() {
    let net = DevNode::start(2);
    let dir = tempfile::tempdir().unwrap();
    let (w, enode) = whisper_network(&dir.path().join("whisper")).await;
    let (wkey, wf) = join(&w).await;
    let s = Sidecar::start_pss(&dir.path().join("pss"), &net.urls[1]);
    let (skey, sf) = join(&s).await;
    let r = Sidecar::start_relay_over(
        &dir.path().join("relay"),
        &net.urls[0],
        CHAT,
        &["--whisper-peer", &enode],
    );
    r.status_until_peers(1).await;
    r.status_until("relay not ready", Duration::from_secs(20), |st| {
        st["whisper"]["mirrorsOpen"] == 1
    })
    .await;

    say(&w, &wkey, "hello from whisper").await;
    let mut sgot = Vec::new();
    collect(&s, &sf, &mut sgot, 1).await;
    assert_eq!(texts(&sgot), ["hello from whisper"]);

    let hash = say(&s, &skey, "hello from swarm").await;
    let mut wgot = Vec::new();
    collect(&w, &wf, &mut wgot, 2).await;
    assert_eq!(sorted(&wgot), ["hello from swarm", "hello from whisper"]);
    let bridged = wgot.iter().find(|m| text(m) == "hello from swarm").unwrap();
    assert_eq!(
        bridged["hash"], hash,
        "the author's envelope, byte for byte"
    );
    let st = r.ok("staples_status", json!([])).await;
    assert_eq!(st["relay"]["counters"]["relay_to_whisper"], 1, "{st}");
}

/// A relay peered with a real geth v1.9.7 over devp2p: a geth app and a `pss` app chat
/// through it, and the Swarm side's post reaches geth as its author's envelope (same
/// hash; over `--whisper-rpc` geth could only re-seal it).
#[tokio::test]
async fn a_relay_on_devp2p_bridges_geth_v1_9_7_and_swarm() {
    use staples_e2e::geth::{Geth, SKIPPED, geth, rpc};
    let Some(bin) = geth() else {
        eprintln!("{SKIPPED}");
        return;
    };
    let net = DevNode::start(2);
    let dir = tempfile::tempdir().unwrap();
    let g = Geth::start(&bin).await;
    let gkey = rpc(&g.url, "shh_generateSymKeyFromPassword", json!([CHAT]))
        .await
        .unwrap();
    let gf = rpc(
        &g.url,
        "shh_newMessageFilter",
        json!([{"symKeyID": gkey, "topics": [topic()]}]),
    )
    .await
    .unwrap();
    let s = Sidecar::start_pss(&dir.path().join("pss"), &net.urls[1]);
    let (skey, sf) = join(&s).await;
    let r = Sidecar::start_relay_over(
        &dir.path().join("relay"),
        &net.urls[0],
        CHAT,
        &["--whisper-peer", &g.enode()],
    );
    r.status_until_peers(1).await;
    r.status_until("relay not ready", Duration::from_secs(20), |st| {
        st["whisper"]["mirrorsOpen"] == 1
    })
    .await;

    // geth's default minimum PoW is 0.2: its app posts with enough.
    rpc(
        &g.url,
        "shh_post",
        json!([{"symKeyID": gkey, "topic": topic(), "ttl": 120, "powTarget": 0.5,
                "powTime": 5, "payload": hex0x(b"hello from geth")}]),
    )
    .await
    .expect("geth posts");
    let mut sgot = Vec::new();
    collect(&s, &sf, &mut sgot, 1).await;
    assert_eq!(texts(&sgot), ["hello from geth"]);

    // The author seals for geth's PoW floor too: the relay forwards its envelope as is,
    // and a Whisper node gossips only what meets its peer's minimum.
    let hash = s
        .ok(
            "shh_post",
            json!([{"symKeyID": skey, "topic": topic(), "ttl": 120, "powTarget": 0.5,
                    "powTime": 5, "payload": hex0x(b"hello from swarm")}]),
        )
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let bridged = loop {
        let ms = rpc(&g.url, "shh_getFilterMessages", json!([gf]))
            .await
            .unwrap_or_default();
        if let Some(m) = ms
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| text(m) == "hello from swarm")
        {
            break m.clone();
        }
        let st = r.ok("staples_status", json!([])).await;
        assert!(
            std::time::Instant::now() < deadline,
            "geth never got it: {st}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        bridged["hash"], hash,
        "the author's envelope, byte for byte"
    );
}
