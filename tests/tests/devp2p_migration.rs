//! The migration over devp2p: `dual` sidecars and relays whose Whisper side is their own
//! Whisper node, peered over RLPx + `shh/6` with the Whisper network (here a plain
//! `whisper`-mode staples node, and a real geth v1.9.7 when one is built), with no
//! `--whisper-rpc` anywhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{Value, json};
use staples_e2e::{DevNode, Sidecar, hex0x, text, texts};

const CHAT: &str = "staples-devp2p-migration";

fn topic() -> String {
    staples_e2e::public_topic(CHAT)
}

/// The app's filter on the chat (key = PBKDF2 of the name, Status's topic).
async fn join(p: &Sidecar) -> (Value, String) {
    staples_e2e::join_public(p, CHAT).await
}

async fn say(p: &Sidecar, key: &Value, text: &str) -> Value {
    staples_e2e::say_public(p, key, CHAT, text).await
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
    d.mirrors_open(1).await;

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
    r.mirrors_open(1).await;

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
    r.mirrors_open(1).await;

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

const GROUP_TOPIC: &str = "0x6a6a0001";
const DM_TOPIC: &str = "0x6a6a0002";

/// A filter on `topic` with the sym key `sym_id` or the key pair `pair_id`.
async fn filter_on(p: &Sidecar, crit: Value) -> String {
    p.ok("shh_newMessageFilter", json!([crit]))
        .await
        .as_str()
        .unwrap()
        .to_string()
}

/// The migration window in full (issue "dual", Done-when): a plain Whisper peer, a `dual`
/// peer and a `pss` peer share a public chat, a private group (a random symmetric key)
/// and one-to-one chats between each pair. A relay bridges the public chat by its key and
/// the group and one-to-one topics raw, through topic logs; the `pss` peer runs with
/// `--topic-logs`. Every message reaches every peer it is for exactly once, with the
/// exact payload.
#[tokio::test]
async fn whisper_dual_and_pss_peers_share_public_group_and_one_to_one_chats() {
    let net = DevNode::start(3);
    let dir = tempfile::tempdir().unwrap();
    let (w, enode) = whisper_network(&dir.path().join("whisper")).await;
    let r = Sidecar::start_relay_over(
        &dir.path().join("relay"),
        &net.urls[0],
        CHAT,
        &[
            "--whisper-peer",
            &enode,
            "--topic",
            GROUP_TOPIC,
            "--topic",
            DM_TOPIC,
        ],
    );
    // The dual peer runs with --topic-logs too: after a crash it catches up on what
    // Whisper-only peers said meanwhile from the logs (Whisper keeps no history).
    let d = Sidecar::start_dual_over(
        &dir.path().join("dual"),
        &net.urls[1],
        &["--whisper-peer", &enode, "--topic-logs"],
    );
    let s = Sidecar::start_pss_with(&dir.path().join("pss"), &net.urls[2], &["--topic-logs"]);
    let peers = [("whisper", &w), ("dual", &d), ("pss", &s)];

    // Public chat.
    let mut public = Vec::new();
    for (_, p) in peers {
        public.push(join(p).await);
    }
    // Private group: a random key the members share out of band.
    let graw = hex0x(&rand::random::<[u8; 32]>());
    let mut group = Vec::new();
    for (_, p) in peers {
        let id = p.ok("shh_addSymKey", json!([graw])).await;
        let f = filter_on(p, json!({"symKeyID": id, "topics": [GROUP_TOPIC]})).await;
        group.push((id, f));
    }
    // One-to-one: a key pair each, a filter on it.
    let mut dm = Vec::new();
    for (_, p) in peers {
        let pair = p.ok("shh_newKeyPair", json!([])).await;
        let public_key = p.ok("shh_getPublicKey", json!([pair])).await;
        let f = filter_on(p, json!({"privateKeyID": pair, "topics": [DM_TOPIC]})).await;
        dm.push((pair, public_key, f));
    }

    // Everyone is listening: the relay and the dual peer have their Whisper node's
    // mirrors open and a devp2p session.
    r.status_until_peers(1).await;
    d.status_until_peers(1).await;
    r.mirrors_open(1).await;
    d.mirrors_open(3).await;

    for (i, (name, p)) in peers.iter().enumerate() {
        say(p, &public[i].0, &format!("public from {name}")).await;
        post_sym(p, &group[i].0, GROUP_TOPIC, &format!("group from {name}")).await;
        for (j, (to, _)) in peers.iter().enumerate() {
            if i != j {
                post_dm(p, &dm[i].0, &dm[j].1, &format!("{name} to {to}")).await;
            }
        }
    }

    let names: Vec<&str> = peers.iter().map(|(n, _)| *n).collect();
    let mut group_got: [Vec<Value>; 3] = Default::default();
    let mut dm_got: [Vec<Value>; 3] = Default::default();
    for (i, (name, p)) in peers.iter().enumerate() {
        let mut got = Vec::new();
        collect(p, &public[i].1, &mut got, 3).await;
        let want: Vec<String> = names.iter().map(|n| format!("public from {n}")).collect();
        assert_eq!(sorted(&got), sorted_strings(want), "{name}: public chat");

        collect(p, &group[i].1, &mut group_got[i], 3).await;
        let want: Vec<String> = names.iter().map(|n| format!("group from {n}")).collect();
        assert_eq!(sorted(&group_got[i]), sorted_strings(want), "{name}: group");

        collect(p, &dm[i].2, &mut dm_got[i], 2).await;
        let want: Vec<String> = names
            .iter()
            .filter(|n| *n != name)
            .map(|n| format!("{n} to {name}"))
            .collect();
        assert_eq!(
            sorted(&dm_got[i]),
            sorted_strings(want),
            "{name}: one-to-one"
        );
    }
    let st = r.ok("staples_status", json!([])).await;
    assert!(
        st["relay"]["counters"]["relay_raw_to_swarm"].as_u64() >= Some(2),
        "{st}"
    );
    assert!(
        st["relay"]["counters"]["relay_raw_to_whisper"].as_u64() >= Some(2),
        "{st}"
    );

    // The dual peer is killed (SIGKILL) mid-conversation; the others go on. Back on its
    // data dir it gets what it missed (Staples messages from Swarm, the Whisper peer's
    // from the topic logs: it runs with --topic-logs), repeats nothing, and speaks again.
    d.process.kill();
    post_sym(&w, &group[0].0, GROUP_TOPIC, "round 2 from whisper").await;
    post_sym(&s, &group[2].0, GROUP_TOPIC, "round 2 from pss").await;
    post_dm(&w, &dm[0].0, &dm[1].1, "whisper to dual, while it was down").await;
    post_dm(&s, &dm[2].0, &dm[1].1, "pss to dual, while it was down").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let d = Sidecar::start_dual_over(
        &dir.path().join("dual"),
        &net.urls[1],
        &["--whisper-peer", &enode, "--topic-logs"],
    );
    d.status_until_peers(1).await;
    post_sym(&d, &group[1].0, GROUP_TOPIC, "round 2 from dual").await;

    let round2: Vec<String> = names.iter().map(|n| format!("round 2 from {n}")).collect();
    for (i, (name, p)) in [("whisper", &w), ("dual", &d), ("pss", &s)]
        .iter()
        .enumerate()
    {
        collect(p, &group[i].1, &mut group_got[i], 6).await;
        let mut want: Vec<String> = names.iter().map(|n| format!("group from {n}")).collect();
        want.extend(round2.iter().cloned());
        assert_eq!(
            sorted(&group_got[i]),
            sorted_strings(want),
            "{name}: group, round 2"
        );
    }
    collect(&d, &dm[1].2, &mut dm_got[1], 4).await;
    assert_eq!(
        sorted(&dm_got[1]),
        sorted_strings(
            [
                "whisper to dual",
                "pss to dual",
                "whisper to dual, while it was down",
                "pss to dual, while it was down"
            ]
            .map(String::from)
            .to_vec()
        ),
        "dual: one-to-one across its crash"
    );
}

async fn post_sym(p: &Sidecar, key: &Value, topic: &str, text: &str) {
    p.ok(
        "shh_post",
        json!([{"symKeyID": key, "topic": topic, "ttl": 120, "payload": hex0x(text.as_bytes())}]),
    )
    .await;
}

/// A one-to-one post signed with key pair `sig` to public key `to`.
async fn post_dm(p: &Sidecar, sig: &Value, to: &Value, text: &str) {
    p.ok(
        "shh_post",
        json!([{"pubKey": to, "sig": sig, "topic": DM_TOPIC, "ttl": 120,
                "payload": hex0x(text.as_bytes())}]),
    )
    .await;
}

fn sorted_strings(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}
