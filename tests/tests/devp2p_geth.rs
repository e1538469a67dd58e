//! The RLPx handshake, frames and `shh/6` messages of `staples_protocol::devp2p` against a
//! real go-ethereum v1.9.7 node: we dial it, both sides derive the same secrets, we
//! exchange `Hello`s (we offer `shh/6`) and geth lists us among its peers; we exchange
//! `shh/6` status packets, a post made on geth reaches us as an envelope we open, and an
//! envelope we seal reaches geth's filter.
//!
//! Needs a geth v1.9.7 binary: `STAPLES_GETH=/path/to/geth` (default
//! `/tmp/geth197/geth`). The test skips with a message when it is absent: build it from
//! go-ethereum's v1.9.7 tree in GOPATH mode (README "Compatibility references").
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use rand::rngs::OsRng;
use serde_json::{Value, json};
use staples_protocol::crypto::PrivateKey;
use staples_protocol::devp2p::frame::FrameCodec;
use staples_protocol::devp2p::handshake::node_id;
use staples_protocol::devp2p::p2p::{self, Hello};
use staples_protocol::devp2p::shh;
use staples_protocol::whisper::{Draft, OpenKey, Recipient, SymKey, Topic, open, pow, wrap};

const CHAT: &str = "devp2p-e2e";
const TOPIC: [u8; 4] = [0xde, 0x70, 0x20, 0x01];

fn hex0x(b: &[u8]) -> String {
    format!("0x{}", hex::encode(b))
}

use staples_e2e::devp2p::{dial, listening, read_message};
use staples_e2e::geth::{Geth, geth, rpc};

#[tokio::test]
async fn geth_v1_9_7_accepts_our_rlpx_handshake_hello_and_frames() {
    let Some(geth) = geth() else {
        eprintln!("{}", staples_e2e::geth::SKIPPED);
        return;
    };
    let g = Geth::start(&geth).await;
    let (p2p_port, node_key, url) = (g.p2p_port, &g.key, g.url.clone());

    // Dial, handshake, Hellos both ways.
    let (mut s, mut codec, mut buf, ours, payload) = dial(
        ("127.0.0.1", p2p_port),
        &node_key.public_key(),
        "Staples/e2e",
    );
    let theirs = Hello::decode(&payload).expect("geth's Hello decodes");
    assert!(theirs.client.starts_with("Geth/"), "{theirs:?}");
    assert!(
        theirs
            .capabilities
            .iter()
            .any(|c| c.name == "shh" && c.version == 6),
        "{theirs:?}"
    );
    assert_eq!(theirs.id, node_id(&node_key.public_key()));

    // geth has us as a peer, under our node key and name: it verified our frames' MACs.
    // (geth's `id` is the keccak of the key; the enode URL carries the key itself.)
    let want = format!("enode://{}@", hex::encode(node_id(&ours.public_key())));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let peers = rpc(&url, "admin_peers", json!([]))
            .await
            .unwrap_or_default();
        let found = peers
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["enode"].as_str().is_some_and(|e| e.starts_with(&want)));
        if let Some(p) = found {
            assert_eq!(p["name"], "Staples/e2e");
            assert_eq!(p["caps"], json!(["shh/6"]));
            break;
        }
        assert!(Instant::now() < deadline, "geth never listed us: {peers}");
        // Keep answering: geth pings, and its shh/6 status comes first.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // shh/6: our status, then envelopes both ways.
    let shh_code = |c: u64| p2p::BASE_PROTOCOL_LENGTH + c;
    let status = shh::Status::ours(0.0, [0xff; shh::BLOOM_SIZE], false);
    s.write_all(
        &codec
            .write(shh_code(shh::STATUS), &status.encode())
            .unwrap(),
    )
    .unwrap();
    let key = rpc(&url, "shh_generateSymKeyFromPassword", json!([CHAT]))
        .await
        .unwrap();
    let filter = rpc(
        &url,
        "shh_newMessageFilter",
        json!([{"symKeyID": key, "topics": [hex0x(&TOPIC)]}]),
    )
    .await
    .unwrap();
    // geth → us: a post on geth reaches us as a `messages` packet we can open.
    rpc(
        &url,
        "shh_post",
        json!([{"symKeyID": key, "topic": hex0x(&TOPIC), "ttl": 60, "powTarget": 0.2,
                "powTime": 5, "payload": hex0x(b"from geth")}]),
    )
    .await
    .expect("geth posts");
    let sym = SymKey::from_password(CHAT);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut saw_status = false;
    let got = loop {
        assert!(Instant::now() < deadline, "geth never sent its envelope");
        let (code, payload) = read_message(&mut s, &mut codec, &mut buf);
        if code == p2p::PING {
            s.write_all(&codec.write(p2p::PONG, &p2p::EMPTY_LIST).unwrap())
                .unwrap();
            continue;
        }
        if code < p2p::BASE_PROTOCOL_LENGTH {
            continue;
        }
        match shh::decode(code - p2p::BASE_PROTOCOL_LENGTH, &payload).expect("geth's shh/6") {
            shh::Message::Status(st) => {
                assert_eq!(st.version, 6);
                saw_status = true;
            }
            shh::Message::Messages(envs) => {
                if let Some(m) = envs
                    .iter()
                    .find_map(|e| open(e, OpenKey::Symmetric(&sym)).ok())
                {
                    break m;
                }
            }
            _ => {}
        }
    };
    assert!(saw_status, "geth's status came first");
    assert_eq!(got.plaintext.payload, b"from geth");
    // us → geth: an envelope we seal reaches geth's filter.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    let draft = Draft {
        topic: Topic(TOPIC),
        payload: b"from staples",
        padding: None,
        signer: None,
        ttl: 60,
        to: Recipient::Symmetric(&sym),
    };
    let mut env = wrap(&draft, now, &mut OsRng).unwrap();
    let bits = pow::target_bits(0.5, &env);
    let out = pow::seal(
        &mut env,
        Some(bits),
        &pow::SealOptions {
            threads: 2,
            should_stop: &|| false,
        },
    );
    assert!(out.reached);
    s.write_all(
        &codec
            .write(shh_code(shh::MESSAGES), &shh::encode_envelopes(&[env]))
            .unwrap(),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ms = rpc(&url, "shh_getFilterMessages", json!([filter]))
            .await
            .unwrap_or_default();
        let texts: Vec<String> = ms
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["payload"].as_str())
            .map(|p| String::from_utf8(hex::decode(&p[2..]).unwrap()).unwrap())
            .collect();
        if texts.iter().any(|t| t == "from staples") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "geth never took our envelope: {ms}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A ping is answered with a pong through the same frames.
    s.write_all(&codec.write(p2p::PING, &p2p::EMPTY_LIST).unwrap())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, _) = read_message(&mut s, &mut codec, &mut buf);
        if code == p2p::PONG {
            break;
        }
        assert!(Instant::now() < deadline, "no pong");
    }
    s.write_all(&codec.write(p2p::DISCONNECT, &p2p::disconnect(0)).unwrap())
        .unwrap();
}

/// A `whisper`-mode sidecar with devp2p: its app's posts reach the peer's apps and back.
async fn chat_across(a: &staples_e2e::Sidecar, b_http: &str, b_label: &str) {
    let key_a = a.ok("shh_generateSymKeyFromPassword", json!([CHAT])).await;
    let fa = a
        .ok(
            "shh_newMessageFilter",
            json!([{"symKeyID": key_a, "topics": [hex0x(&TOPIC)]}]),
        )
        .await;
    let key_b = rpc(b_http, "shh_generateSymKeyFromPassword", json!([CHAT]))
        .await
        .unwrap();
    let fb = rpc(
        b_http,
        "shh_newMessageFilter",
        json!([{"symKeyID": key_b, "topics": [hex0x(&TOPIC)]}]),
    )
    .await
    .unwrap();
    let post = |key: &Value, text: &str| {
        json!([{"symKeyID": key, "topic": hex0x(&TOPIC), "ttl": 60, "powTarget": 0.5,
                "powTime": 5, "payload": hex0x(text.as_bytes())}])
    };
    a.ok("shh_post", post(&key_a, "from staples")).await;
    rpc(b_http, "shh_post", post(&key_b, &format!("from {b_label}")))
        .await
        .expect("the peer posts");
    let wait = |http: String, filter: Value, want: String| async move {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        loop {
            let ms = rpc(&http, "shh_getFilterMessages", json!([filter]))
                .await
                .unwrap_or_default();
            for m in ms.as_array().into_iter().flatten() {
                let p = m["payload"].as_str().unwrap_or("0x");
                seen.push(String::from_utf8(hex::decode(&p[2..]).unwrap()).unwrap());
            }
            if seen.contains(&want) {
                return seen;
            }
            assert!(Instant::now() < deadline, "{want} never arrived: {seen:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let got_b = wait(b_http.to_string(), fb, "from staples".into()).await;
    let got_a = wait(a.http.clone(), fa, format!("from {b_label}")).await;
    // Once each, however many broadcast cycles passed.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (got, who) in [(got_b, "peer"), (got_a, "staples")] {
        let mut sorted = got.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            got.len(),
            "{who} saw a message twice: {got:?}"
        );
    }
}

#[tokio::test]
async fn two_staples_nodes_gossip_envelopes_over_devp2p() {
    let dir = tempfile::tempdir().unwrap();
    let a = staples_e2e::Sidecar::start_whisper_with(
        &dir.path().join("a"),
        &["--p2p-addr", "127.0.0.1:0"],
    );
    let info = a.ok("admin_nodeInfo", json!([])).await;
    let enode = info["enode"].as_str().expect("listening").to_string();
    let b = staples_e2e::Sidecar::start_whisper_with(
        &dir.path().join("b"),
        &["--whisper-peer", &enode],
    );
    a.status_until_peers(1).await;
    chat_across(&a, &b.http, "staples b").await;
    assert_eq!(b.ok("net_peerCount", json!([])).await, "0x1");
    let peers = a.ok("admin_peers", json!([])).await;
    assert_eq!(peers[0]["caps"], json!(["shh/6"]), "{peers}");
    assert_eq!(peers[0]["network"]["inbound"], true);
}

#[tokio::test]
async fn a_staples_node_peers_with_geth_v1_9_7() {
    let Some(geth) = geth() else {
        eprintln!("{}", staples_e2e::geth::SKIPPED);
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let g = Geth::start(&geth).await;
    let (p2p_port, node_key, url) = (g.p2p_port, &g.key, g.url.clone());
    let enode = format!(
        "enode://{}@127.0.0.1:{p2p_port}",
        hex::encode(node_id(&node_key.public_key()))
    );
    let s = staples_e2e::Sidecar::start_whisper_with(
        &dir.path().join("s"),
        &["--whisper-peer", &enode],
    );
    s.status_until_peers(1).await;
    chat_across(&s, &url, "geth").await;
}

/// Bad peers: garbage instead of a handshake is counted and dropped; a frame with a broken
/// MAC after a good handshake gets geth's "protocol error" (2) back; the node keeps
/// serving good peers throughout.
#[tokio::test]
async fn bad_devp2p_peers_are_dropped_with_reasons_and_the_node_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let a = staples_e2e::Sidecar::start_whisper_with(
        &dir.path().join("a"),
        &["--p2p-addr", "127.0.0.1:0"],
    );
    let info = a.ok("admin_nodeInfo", json!([])).await;
    let enode = info["enode"].as_str().unwrap().to_string();
    let (id, addr) = enode
        .trim_start_matches("enode://")
        .split_once('@')
        .unwrap();
    let their_key = staples_protocol::devp2p::handshake::from_node_id(
        &<[u8; 64]>::try_from(hex::decode(id).unwrap().as_slice()).unwrap(),
    )
    .unwrap();

    // Garbage.
    let mut g = TcpStream::connect(addr).unwrap();
    g.write_all(&[0x01, 0x00]).unwrap();
    g.write_all(&[0xab; 256]).unwrap();
    let mut sink = [0u8; 64];
    g.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(
        g.read(&mut sink).unwrap_or(0),
        0,
        "closed without an answer"
    );

    // A good handshake and Hello, then a frame whose MAC is broken.
    let (mut s, mut codec, mut buf, _, _) = dial(addr, &their_key, "bad-peer");
    let mut bad = codec.write(p2p::PING, &p2p::EMPTY_LIST).unwrap();
    bad[20] ^= 0xff;
    s.write_all(&bad).unwrap();
    let reason = loop {
        let (code, payload) = read_message(&mut s, &mut codec, &mut buf);
        if code == p2p::DISCONNECT {
            break p2p::disconnect_reason(&payload);
        }
    };
    assert_eq!(reason, Some(2), "geth's protocol-error reason");

    // A good peer still gets through, and the node counted what happened.
    let b = staples_e2e::Sidecar::start_whisper_with(
        &dir.path().join("b"),
        &["--whisper-peer", &enode],
    );
    b.status_until_peers(1).await;
    let info = a.ok("admin_nodeInfo", json!([])).await;
    let c = &info["staples"]["counters"];
    assert!(c["handshake_failed"].as_u64() >= Some(1), "{info}");
    assert!(c["protocol_errors"].as_u64() >= Some(1), "{info}");
}

/// Polls `filter` on `http` until a payload `want` arrives; returns every payload seen.
async fn payloads_until(http: &str, filter: &Value, want: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        let ms = rpc(http, "shh_getFilterMessages", json!([filter]))
            .await
            .unwrap_or_default();
        for m in ms.as_array().into_iter().flatten() {
            let p = m["payload"].as_str().unwrap_or("0x");
            seen.push(String::from_utf8(hex::decode(&p[2..]).unwrap()).unwrap());
        }
        if seen.iter().any(|s| s == want) {
            return seen;
        }
        assert!(Instant::now() < deadline, "{want} never arrived: {seen:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Two filters for one key and topic on `http`: one that takes peer-to-peer messages and
/// one that does not.
async fn p2p_filters(http: &str) -> (Value, Value, Value) {
    let key = rpc(http, "shh_generateSymKeyFromPassword", json!([CHAT]))
        .await
        .unwrap();
    let mut f = Vec::new();
    for allow in [true, false] {
        f.push(
            rpc(
                http,
                "shh_newMessageFilter",
                json!([{"symKeyID": key, "topics": [hex0x(&TOPIC)], "allowP2P": allow}]),
            )
            .await
            .unwrap(),
        );
    }
    (key, f.remove(0), f.remove(0))
}

fn direct(key: &Value, to: &str, text: &str) -> Value {
    // No PoW: geth skips its PoW check for a target peer.
    json!([{"symKeyID": key, "topic": hex0x(&TOPIC), "ttl": 60, "powTarget": 0.0,
            "powTime": 1, "payload": hex0x(text.as_bytes()), "targetPeer": to}])
}

/// `shh_post` with `targetPeer` and `shh_markTrustedPeer` between two Staples nodes: a
/// direct message from an untrusted peer is skipped (and counted); once trusted, it
/// reaches only the filters with `allowP2P`, and it is not gossiped on.
#[tokio::test]
async fn direct_messages_reach_a_trusting_peer_only() {
    let dir = tempfile::tempdir().unwrap();
    let a = staples_e2e::Sidecar::start_whisper_with(
        &dir.path().join("a"),
        &["--p2p-addr", "127.0.0.1:0"],
    );
    let a_enode = a.ok("admin_nodeInfo", json!([])).await["enode"]
        .as_str()
        .unwrap()
        .to_string();
    let b = staples_e2e::Sidecar::start_whisper_with(
        &dir.path().join("b"),
        &["--whisper-peer", &a_enode],
    );
    a.status_until_peers(1).await;
    let b_enode = a.ok("admin_peers", json!([])).await[0]["enode"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, allow, deny) = p2p_filters(&a.http).await;
    let (key_b, _, _) = p2p_filters(&b.http).await;

    // Unknown peers are refused with geth's error.
    let stranger = hex::encode(node_id(&PrivateKey::random(&mut OsRng).public_key()));
    let err = b
        .err(
            "shh_post",
            direct(&key_b, &format!("enode://{stranger}@127.0.0.1:1"), "x"),
        )
        .await;
    assert!(err.starts_with("Could not find peer with ID: "), "{err}");
    let err = a
        .err(
            "shh_markTrustedPeer",
            json!([format!("enode://{stranger}@127.0.0.1:1")]),
        )
        .await;
    assert!(err.starts_with("Could not find peer with ID: "), "{err}");

    // Not trusted yet: skipped.
    b.ok("shh_post", direct(&key_b, &a_enode, "too early"))
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.ok("admin_nodeInfo", json!([])).await["staples"]["counters"]["direct_untrusted"]
        .as_u64()
        .is_none()
    {
        assert!(
            Instant::now() < deadline,
            "the untrusted message never arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(a.ok("shh_markTrustedPeer", json!([b_enode])).await, true);
    let hash = b.ok("shh_post", direct(&key_b, &a_enode, "direct")).await;
    assert_eq!(hash.as_str().map(str::len), Some(66), "{hash}");
    let seen = payloads_until(&a.http, &allow, "direct").await;
    assert_eq!(seen, ["direct"], "the untrusted one stayed out");
    let denied = a.ok("shh_getFilterMessages", json!([deny])).await;
    assert_eq!(denied, json!([]), "a filter without allowP2P");
    // Not pooled, so not gossiped back or on.
    assert_eq!(
        a.ok("shh_getFilterMessages", json!([allow])).await,
        json!([])
    );
}

/// The same against geth v1.9.7, both ways.
#[tokio::test]
async fn direct_messages_cross_between_geth_and_staples() {
    let Some(geth) = geth() else {
        eprintln!("{}", staples_e2e::geth::SKIPPED);
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let g = Geth::start(&geth).await;
    let g_enode = format!(
        "enode://{}@127.0.0.1:{}",
        hex::encode(node_id(&g.key.public_key())),
        g.p2p_port
    );
    let s = staples_e2e::Sidecar::start_whisper_with(
        &dir.path().join("s"),
        &["--whisper-peer", &g_enode],
    );
    s.status_until_peers(1).await;
    let s_enode = rpc(&g.url, "admin_peers", json!([])).await.unwrap()[0]["enode"]
        .as_str()
        .unwrap()
        .to_string();
    let (key_g, allow_g, _) = p2p_filters(&g.url).await;
    let (key_s, allow_s, _) = p2p_filters(&s.http).await;
    assert_eq!(
        rpc(&g.url, "shh_markTrustedPeer", json!([s_enode])).await,
        Some(json!(true))
    );
    assert_eq!(s.ok("shh_markTrustedPeer", json!([g_enode])).await, true);
    rpc(&g.url, "shh_post", direct(&key_g, &s_enode, "geth direct"))
        .await
        .expect("geth sends");
    s.ok("shh_post", direct(&key_s, &g_enode, "staples direct"))
        .await;
    payloads_until(&s.http, &allow_s, "geth direct").await;
    payloads_until(&g.url, &allow_g, "staples direct").await;
}

/// Reads until a disconnect; its reason.
fn disconnect_reason(s: &mut TcpStream, codec: &mut FrameCodec, buf: &mut Vec<u8>) -> Option<u64> {
    loop {
        let (code, payload) = read_message(s, codec, buf);
        if code == p2p::DISCONNECT {
            return p2p::disconnect_reason(&payload);
        }
    }
}

/// A peer that floods (batches over `--p2p-envelope-rate`, again and again) and one that
/// sends a message over the node's maximum size are dropped with status-go's and geth's
/// "subprotocol error" (0x10) and counted; what the node had pooled stays, and a good
/// peer still gets it.
#[tokio::test]
async fn flooding_and_oversized_peers_are_dropped_and_the_pool_stays() {
    let dir = tempfile::tempdir().unwrap();
    let a = staples_e2e::Sidecar::start_whisper_with(
        &dir.path().join("a"),
        &["--p2p-addr", "127.0.0.1:0", "--p2p-envelope-rate", "10"],
    );
    let (enode, key) = listening(&a).await;
    let addr = enode.split('@').nth(1).unwrap().to_string();
    // Something already pooled, posted by A's app.
    let sym_id = a.ok("shh_generateSymKeyFromPassword", json!([CHAT])).await;
    a.ok(
        "shh_post",
        json!([{"symKeyID": sym_id, "topic": hex0x(&TOPIC), "ttl": 120,
                "payload": hex0x(b"pooled before the flood")}]),
    )
    .await;

    // 100 envelopes a batch against a burst of 50 and 10 a second.
    let sym = SymKey::from_password(CHAT);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    let batch: Vec<_> = (0..100u32)
        .map(|i| {
            let text = format!("flood {i}");
            let draft = Draft {
                topic: Topic(TOPIC),
                payload: text.as_bytes(),
                padding: None,
                signer: None,
                ttl: 60,
                to: Recipient::Symmetric(&sym),
            };
            wrap(&draft, now, &mut OsRng).unwrap()
        })
        .collect();
    let messages = p2p::BASE_PROTOCOL_LENGTH + shh::MESSAGES;
    let (mut s, mut codec, mut buf, _, _) = dial(addr.as_str(), &key, "flooder");
    for _ in 0..12 {
        let frame = codec
            .write(messages, &shh::encode_envelopes(&batch))
            .unwrap();
        if s.write_all(&frame).is_err() {
            break;
        }
    }
    assert_eq!(disconnect_reason(&mut s, &mut codec, &mut buf), Some(0x10));

    // Oversized: one message over the node's 1 MiB maximum (geth's default); the size is
    // checked before anything is decoded.
    let (mut s, mut codec, mut buf, _, _) = dial(addr.as_str(), &key, "oversized");
    let big = vec![0xc0; 1024 * 1024 + 16];
    s.write_all(&codec.write(messages, &big).unwrap()).unwrap();
    assert_eq!(disconnect_reason(&mut s, &mut codec, &mut buf), Some(0x10));

    let info = a.ok("admin_nodeInfo", json!([])).await;
    let c = &info["staples"]["counters"];
    assert_eq!(c["flood_disconnects"], 1, "{info}");
    assert!(c["envelopes_over_rate"].as_u64() >= Some(500), "{info}");
    assert_eq!(c["shh_errors"], 2, "{info}");

    // The pool is intact: a good peer that joins now (its filter first: a filter sees
    // only what arrives after it) gets what A's app posted.
    let b = staples_e2e::Sidecar::start_whisper_with(
        &dir.path().join("b"),
        &["--p2p-addr", "127.0.0.1:0"],
    );
    let kb = b.ok("shh_generateSymKeyFromPassword", json!([CHAT])).await;
    let fb = b
        .ok(
            "shh_newMessageFilter",
            json!([{"symKeyID": kb, "topics": [hex0x(&TOPIC)]}]),
        )
        .await;
    assert_eq!(b.ok("admin_addPeer", json!([enode])).await, true);
    let seen = payloads_until(&b.http, &fb, "pooled before the flood").await;
    assert!(seen.len() <= 51, "at most the burst got in: {}", seen.len());
}
