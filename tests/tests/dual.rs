//! `--transport=dual` end to end: a peer that has not moved (a plain `whisper`-mode
//! sidecar, its app polling its own Whisper node), a `dual` peer whose Whisper side is
//! that node, and a `pss` peer, all real processes on a real dev node. Every post of the
//! dual peer's app (public chat, a group, 1:1) reaches the Whisper peer's app with the
//! exact payload and padding (and signer), and the pss peer's app once, in order; the dual peer's app gets the Whisper
//! peer's legacy posts and the pss peer's posts, each once (its own posts echoed back by
//! the Whisper node are collapsed); a SIGKILL of the dual peer loses nothing it
//! acknowledged on either side and repeats nothing to its app.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use staples_e2e::{DevNode, Identity, Sidecar, collect, hex0x, text, texts};

const TOPIC: &str = "0x0d0e0a0d";
const GROUP_TOPIC: &str = "0x0d0e0a0e";

async fn post(p: &Sidecar, body: Value) {
    p.ok("shh_post", json!([body])).await;
}

/// Waits (up to 15 s: counts are read every 5 s) until `p`'s `net_peerCount` is `want`.
async fn peer_count_becomes(p: &Sidecar, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let n = p.ok("net_peerCount", json!([])).await;
        if n == want {
            return;
        }
        assert!(Instant::now() < deadline, "net_peerCount {n}, want {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn status_key(p: &Sidecar) -> Value {
    p.ok("shh_generateSymKeyFromPassword", json!(["status"]))
        .await
}

async fn status_filter(p: &Sidecar) -> String {
    let key = status_key(p).await;
    p.ok(
        "shh_newMessageFilter",
        json!([{"symKeyID": key, "topics": [TOPIC]}]),
    )
    .await
    .as_str()
    .unwrap()
    .to_string()
}

#[tokio::test]
async fn a_dual_peers_posts_reach_whisper_and_pss_peers_once_across_a_crash() {
    let net = DevNode::start(2);
    let dir = tempfile::tempdir().unwrap();
    let legacy = Sidecar::start_whisper(&dir.path().join("legacy"));
    let dual_dir = dir.path().join("dual");
    let dual = Sidecar::start_dual(&dual_dir, &net.urls[0], &legacy.http);
    let swarm = Sidecar::start_pss(&dir.path().join("swarm"), &net.urls[1]);

    // Both receivers listen to the public chat and, with one identity, to 1:1 messages.
    let legacy_pub = status_filter(&legacy).await;
    let swarm_pub = status_filter(&swarm).await;
    let bob = Identity::new();
    let legacy_dm = bob.listen(&legacy, TOPIC).await;
    let swarm_dm = bob.listen(&swarm, TOPIC).await;

    // The dual peer's app listens to the public chat too.
    let dual_pub = status_filter(&dual).await;

    // The dual peer's app: a signed public post, one with explicit padding, a 1:1 post.
    let key = status_key(&dual).await;
    let me = dual.ok("shh_newKeyPair", json!([])).await;
    let me_pub = dual.ok("shh_getPublicKey", json!([me])).await;
    post(
        &dual,
        json!({"symKeyID": key, "sig": me, "topic": TOPIC, "ttl": 60,
                "payload": hex0x(b"one")}),
    )
    .await;
    post(
        &dual,
        json!({"symKeyID": key, "topic": TOPIC, "ttl": 60, "padding": "0xabcdef",
                "payload": hex0x(b"two")}),
    )
    .await;
    post(
        &dual,
        json!({"pubKey": bob.public, "topic": TOPIC, "ttl": 60,
                "payload": hex0x(b"to bob")}),
    )
    .await;

    // The Whisper peer's app sees exactly what the dual peer's app posted.
    let mut legacy_got = Vec::new();
    collect(&legacy, &legacy_pub, &mut legacy_got, 2).await;
    assert_eq!(texts(&legacy_got), ["one", "two"]);
    assert_eq!(
        legacy_got[0]["sig"], me_pub,
        "signed with the app's key upstream"
    );
    assert_eq!(
        legacy_got[1]["padding"], "0xabcdef",
        "explicit padding round-trips"
    );
    let mut legacy_dm_got = Vec::new();
    collect(&legacy, &legacy_dm, &mut legacy_dm_got, 1).await;
    assert_eq!(texts(&legacy_dm_got), ["to bob"]);

    // The pss peer's app, over Swarm, the same messages once each.
    let mut swarm_got = Vec::new();
    collect(&swarm, &swarm_pub, &mut swarm_got, 2).await;
    assert_eq!(texts(&swarm_got), ["one", "two"]);
    assert_eq!(swarm_got[1]["padding"], "0xabcdef");
    let mut swarm_dm_got = Vec::new();
    collect(&swarm, &swarm_dm, &mut swarm_dm_got, 1).await;
    assert_eq!(texts(&swarm_dm_got), ["to bob"]);

    // The Whisper peer's app posts a plain Whisper message, the pss peer's app a Staples
    // one: the dual peer's app gets both, and its own two posts, once each.
    let legacy_key = status_key(&legacy).await;
    let legacy_hash = legacy
        .ok(
            "shh_post",
            json!([{"symKeyID": legacy_key, "topic": TOPIC, "ttl": 60,
                    "payload": hex0x(b"from whisper")}]),
        )
        .await;
    let swarm_key = status_key(&swarm).await;
    post(
        &swarm,
        json!({"symKeyID": swarm_key, "topic": TOPIC, "ttl": 60,
                "payload": hex0x(b"from swarm")}),
    )
    .await;
    let mut dual_got = Vec::new();
    collect(&dual, &dual_pub, &mut dual_got, 4).await;
    // Anything delivered twice would show up within a few polls more.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    collect(&dual, &dual_pub, &mut dual_got, 4).await;
    let mut dual_texts = texts(&dual_got);
    dual_texts.sort();
    assert_eq!(dual_texts, ["from swarm", "from whisper", "one", "two"]);
    let from_whisper = dual_got.iter().find(|m| text(m) == "from whisper").unwrap();
    assert_eq!(
        from_whisper["hash"], legacy_hash,
        "the Whisper node's envelope, as it sent it"
    );

    // A group (a symmetric key from a shared secret, another topic): the same both ways.
    let mut group_filters = Vec::new();
    for p in [&legacy, &dual, &swarm] {
        let k = p
            .ok("shh_generateSymKeyFromPassword", json!(["a group secret"]))
            .await;
        let f = p
            .ok(
                "shh_newMessageFilter",
                json!([{"symKeyID": k, "topics": [GROUP_TOPIC]}]),
            )
            .await;
        group_filters.push((k, f.as_str().unwrap().to_string()));
    }
    post(
        &dual,
        json!({"symKeyID": group_filters[1].0, "topic": GROUP_TOPIC, "ttl": 60,
                "payload": hex0x(b"group from dual")}),
    )
    .await;
    legacy
        .ok(
            "shh_post",
            json!([{"symKeyID": group_filters[0].0, "topic": GROUP_TOPIC, "ttl": 60,
                    "payload": hex0x(b"group from whisper")}]),
        )
        .await;
    let mut got = Vec::new();
    collect(&legacy, &group_filters[0].1, &mut got, 2).await;
    let mut t = texts(&got);
    t.sort();
    assert_eq!(t, ["group from dual", "group from whisper"]);
    let mut got = Vec::new();
    collect(&swarm, &group_filters[2].1, &mut got, 1).await;
    assert_eq!(texts(&got), ["group from dual"]);
    let mut got = Vec::new();
    collect(&dual, &group_filters[1].1, &mut got, 2).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    collect(&dual, &group_filters[1].1, &mut got, 2).await;
    let mut t = texts(&got);
    t.sort();
    assert_eq!(t, ["group from dual", "group from whisper"], "once each");

    // Peers: the Whisper node counts the dual sidecar; the dual sidecar counts its Bee
    // node's peer (the other dev node) and the Whisper node's peers (itself, seen there).
    peer_count_becomes(&legacy, "0x1").await;
    peer_count_becomes(&dual, "0x2").await;

    let s = dual.ok("staples_status", json!([])).await;
    assert_eq!(s["transport"], "dual", "{s}");
    assert_eq!(s["whisper"]["ok"], true, "{s}");
    assert_eq!(
        s["whisper"]["counters"]["whisper_legacy_delivered"], 2,
        "the public chat's and the group's: {s}"
    );
    assert!(
        s["whisper"]["counters"]["whisper_staples_copies"].as_u64() >= Some(2),
        "its own posts came back from the Whisper node as copies: {s}"
    );

    // Acknowledged posts, then SIGKILL before the Whisper side may have sent them: the
    // restarted dual peer sends them on both sides.
    for t in ["three", "four"] {
        post(
            &dual,
            json!({"symKeyID": key, "topic": TOPIC, "ttl": 60, "payload": hex0x(t.as_bytes())}),
        )
        .await;
    }
    dual.process.kill();
    let dual = Sidecar::start_dual(&dual_dir, &net.urls[0], &legacy.http);
    collect(&legacy, &legacy_pub, &mut legacy_got, 5).await;
    collect(&swarm, &swarm_pub, &mut swarm_got, 5).await;
    assert_eq!(
        texts(&swarm_got),
        ["one", "two", "from swarm", "three", "four"]
    );
    // The dual peer's app: its own two new posts (queued before the kill), nothing again.
    collect(&dual, &dual_pub, &mut dual_got, 6).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    collect(&dual, &dual_pub, &mut dual_got, 6).await;
    let mut dual_texts = texts(&dual_got);
    dual_texts.sort();
    assert_eq!(
        dual_texts,
        ["four", "from swarm", "from whisper", "one", "three", "two"]
    );
    // The Whisper side may repeat a post the upstream took just before the kill (another
    // envelope, same payload); it never loses one.
    let legacy_texts = texts(&legacy_got);
    for t in ["one", "two", "from whisper", "three", "four"] {
        assert!(legacy_texts.contains(&t.to_string()), "{legacy_texts:?}");
    }
    dual.status_until("backlog stays", Duration::from_secs(10), |s| {
        s["whisper"]["backlog"] == 0
    })
    .await;
    dual.process.terminate();
    swarm.process.terminate();
    legacy.process.terminate();
    net.process.terminate();
}

/// Rolling forward and back on one data dir, `whisper → dual → pss → dual`: the app's key
/// ids and polling filter keep working, nothing it already took is handed out again, and
/// the DAG state carries on (a pss peer sees every Staples post once, in order).
#[tokio::test]
async fn rolling_whisper_dual_pss_dual_on_one_data_dir_keeps_keys_filters_and_state() {
    let net = DevNode::start(2);
    let dir = tempfile::tempdir().unwrap();
    let legacy = Sidecar::start_whisper(&dir.path().join("legacy"));
    let swarm = Sidecar::start_pss(&dir.path().join("swarm"), &net.urls[1]);
    let swarm_pub = status_filter(&swarm).await;
    let me = dir.path().join("me");

    let p = Sidecar::start_whisper(&me);
    let key = status_key(&p).await;
    let filter = p
        .ok(
            "shh_newMessageFilter",
            json!([{"symKeyID": key, "topics": [TOPIC]}]),
        )
        .await;
    let filter = filter.as_str().unwrap().to_string();
    let mut swarm_got = Vec::new();
    let steps: [(&str, &str); 4] = [
        ("whisper", "w1"),
        ("dual", "d1"),
        ("pss", "p1"),
        ("dual", "d2"),
    ];
    let mut p = Some(p);
    for (i, (mode, text)) in steps.into_iter().enumerate() {
        let s = match p.take() {
            Some(s) => s,
            None => match mode {
                "dual" => Sidecar::start_dual(&me, &net.urls[0], &legacy.http),
                "pss" => Sidecar::start_pss(&me, &net.urls[0]),
                _ => Sidecar::start_whisper(&me),
            },
        };
        if i > 0 {
            let again = s.ok("shh_getFilterMessages", json!([filter])).await;
            assert_eq!(again, json!([]), "{mode}: nothing handed out twice");
        }
        post(
            &s,
            json!({"symKeyID": key, "topic": TOPIC, "ttl": 60, "payload": hex0x(text.as_bytes())}),
        )
        .await;
        let mut got = Vec::new();
        collect(&s, &filter, &mut got, 1).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        collect(&s, &filter, &mut got, 1).await;
        assert_eq!(texts(&got), [text], "{mode}: its own post, once");
        s.process.terminate();
    }
    collect(&swarm, &swarm_pub, &mut swarm_got, 3).await;
    assert_eq!(texts(&swarm_got), ["d1", "p1", "d2"]);
    swarm.process.terminate();
    legacy.process.terminate();
    net.process.terminate();
}

/// The Whisper node goes away and comes back: the dual peer keeps accepting posts, says
/// so in `staples_status`, and delivers them on Whisper when the node is back, in order.
#[tokio::test]
async fn an_unreachable_whisper_node_delays_the_whisper_side_and_drops_nothing() {
    let net = DevNode::start(1);
    let dir = tempfile::tempdir().unwrap();
    let legacy_dir = dir.path().join("legacy");
    let legacy = Sidecar::start_whisper(&legacy_dir);
    let legacy_pub = status_filter(&legacy).await;
    let legacy_port = legacy.http.rsplit(':').next().unwrap().to_string();
    let dual = Sidecar::start_dual(&dir.path().join("dual"), &net.urls[0], &legacy.http);
    let key = status_key(&dual).await;
    post(
        &dual,
        json!({"symKeyID": key, "topic": TOPIC, "ttl": 60, "payload": hex0x(b"before")}),
    )
    .await;
    let mut got = Vec::new();
    collect(&legacy, &legacy_pub, &mut got, 1).await;

    legacy.process.terminate();
    for t in ["while down 1", "while down 2"] {
        post(
            &dual,
            json!({"symKeyID": key, "topic": TOPIC, "ttl": 60, "payload": hex0x(t.as_bytes())}),
        )
        .await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = dual.ok("staples_status", json!([])).await;
        if s["whisper"]["ok"] == false && s["whisper"]["backlog"] == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "no outage shown: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Back on the same port and data dir (its filters are restored).
    let legacy = Sidecar::start_whisper_with(
        &legacy_dir,
        &["--rpc-addr", &format!("127.0.0.1:{legacy_port}")],
    );
    collect(&legacy, &legacy_pub, &mut got, 3).await;
    assert_eq!(texts(&got), ["before", "while down 1", "while down 2"]);
    dual.process.terminate();
    legacy.process.terminate();
    net.process.terminate();
}
