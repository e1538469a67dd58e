//! `--transport=pss` end to end: real `staples` processes against a real `staples-devnode`
//! process on loopback. The seed scenario between two arbitrary users (keys made here, no
//! address configured anywhere), SIGKILL and restart of the receiver and of the sender
//! (nothing lost, nothing delivered twice), a Bee node going down and coming back, stale
//! feed reads, and groups: a late joiner and members joining at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use staples_e2e::{DevNode, Identity, Sidecar as Proc, hex0x};

async fn ok(p: &Proc, method: &str, params: Value) -> Value {
    p.ok(method, params).await
}

const TOPIC: &str = "0x0a0b0c0d";

async fn post(p: &Proc, to: &str, text: &str) {
    ok(
        p,
        "shh_post",
        json!([{"pubKey": to, "topic": TOPIC, "ttl": 60, "powTarget": 0, "powTime": 1,
                "payload": hex0x(text.as_bytes())}]),
    )
    .await;
}

/// Polls until `want` payloads arrived in total.
async fn collect(p: &Proc, filter: &str, got: &mut Vec<String>, want: usize) {
    let start = Instant::now();
    while got.len() < want {
        if start.elapsed() > Duration::from_secs(40) {
            let status = ok(p, "staples_status", json!([])).await;
            panic!("got {got:?}, want {want}; staples_status {status}");
        }
        let ms = ok(p, "shh_getFilterMessages", json!([filter])).await;
        for m in ms.as_array().unwrap() {
            let h = m["payload"].as_str().unwrap().trim_start_matches("0x");
            got.push(String::from_utf8(hex::decode(h).unwrap()).unwrap());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every parent in `history` comes before its child, and ids are distinct.
fn assert_causal(history: &Value) -> usize {
    let mut seen = HashSet::new();
    for h in history.as_array().unwrap() {
        for p in h["parents"].as_array().unwrap() {
            assert!(
                seen.contains(p.as_str().unwrap()),
                "parent after child: {history}"
            );
        }
        assert!(
            seen.insert(h["id"].as_str().unwrap().to_string()),
            "duplicate id"
        );
    }
    seen.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_scenario_then_sigkill_of_receiver_and_sender_loses_and_repeats_nothing() {
    let net = DevNode::start(2);
    let urls = net.urls.clone();
    let dir = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (dir.path().join("alice"), dir.path().join("bob"));
    let bob = Identity::new();

    // Alice writes while Bob's sidecar does not run.
    // Sequential posts form a chain (each names the previous as parent), so causal order
    // is exactly posting order; the catch-up fetches them in parallel, out of order.
    const OFFLINE: usize = 40;
    let alice = Proc::start_pss(&a_dir, &urls[0]);
    for i in 1..=OFFLINE {
        post(&alice, &bob.public, &format!("offline {i}")).await;
    }
    // Bob starts, catches up from Alice's feed in causal order, then gets a live one.
    let b = Proc::start_pss(&b_dir, &urls[1]);
    let filter = bob.listen(&b, TOPIC).await;
    let mut got = Vec::new();
    collect(&b, &filter, &mut got, OFFLINE).await;
    let offline: Vec<String> = (1..=OFFLINE).map(|i| format!("offline {i}")).collect();
    assert_eq!(got, offline);
    // staples_status shows the catch-up per chat: what the walk listed was fetched.
    let status = ok(&b, "staples_status", json!([])).await;
    let c = &status["chats"][0]["catchUp"];
    assert!(c["pagesWalked"].as_u64() >= Some(1), "{status}");
    assert!(
        c["messagesListed"].as_u64() >= Some(OFFLINE as u64),
        "{status}"
    );
    assert_eq!(c["messagesFetched"], c["messagesListed"], "{status}");
    got.clear();
    post(&alice, &bob.public, "live 1").await;
    collect(&b, &filter, &mut got, 1).await;
    // R6: a message larger than one PSS payload goes live by reference and arrives whole.
    let big = format!("big {}", "x".repeat(9000));
    post(&alice, &bob.public, &big).await;
    collect(&b, &filter, &mut got, 2).await;
    assert_eq!(got.pop().as_deref(), Some(big.as_str()));
    let counters = ok(&b, "staples_status", json!([])).await["counters"].clone();
    assert_eq!(counters["live_by_reference"], json!(1), "{counters}");

    // Bob is killed mid-conversation; Alice goes on; Bob restarts from his data dir: his
    // key and polling filter survive, and he gets exactly what he missed.
    b.process.kill();
    for i in 1..=3 {
        post(&alice, &bob.public, &format!("while bob was dead {i}")).await;
    }
    let b = Proc::start_pss(&b_dir, &urls[1]);
    collect(&b, &filter, &mut got, 4).await;
    // Alice is killed right after an acknowledged post; her outbox delivers it after a
    // restart.
    post(&alice, &bob.public, "acknowledged then killed").await;
    alice.process.kill();
    let alice = Proc::start_pss(&a_dir, &urls[0]);
    collect(&b, &filter, &mut got, 5).await;
    // Quiet period: nothing arrives twice.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let more = ok(&b, "shh_getFilterMessages", json!([filter])).await;
    assert_eq!(more, json!([]), "nothing delivered twice");
    assert_eq!(
        got,
        [
            "live 1",
            "while bob was dead 1",
            "while bob was dead 2",
            "while bob was dead 3",
            "acknowledged then killed"
        ]
    );
    let history = ok(&b, "staples_history", json!([])).await;
    assert_eq!(assert_causal(&history), OFFLINE + 6);

    alice.process.terminate();
    b.process.terminate();
    net.process.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bee_down_then_up_and_stale_feed_reads_still_deliver_everything_once() {
    let net = DevNode::start(2);
    let urls = net.urls.clone();
    let dir = tempfile::tempdir().unwrap();
    let bob = Identity::new();
    let alice = Proc::start_pss(&dir.path().join("alice"), &urls[0]);
    let b = Proc::start_pss(&dir.path().join("bob"), &urls[1]);
    let filter = bob.listen(&b, TOPIC).await;
    let mut got = Vec::new();
    post(&alice, &bob.public, "before the outage").await;
    collect(&b, &filter, &mut got, 1).await;
    // net_peerCount is the Bee node's connected peers (the other dev node), so a Status
    // app does not show "offline".
    peer_count_becomes(&alice, "0x1").await;

    // Alice's Bee node goes down: her post is still accepted (durable outbox) and
    // delivered once the node is back.
    net.admin(1, "POST", "/nodes/0/down", json!({})).await;
    post(&alice, &bob.public, "posted while bee was down").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let s = ok(&alice, "staples_status", json!([])).await;
    assert_eq!(s["bee"]["ok"], json!(false), "{s}");
    assert_eq!(s["outboxDepth"], json!(1), "{s}");
    peer_count_becomes(&alice, "0x0").await;
    net.admin(1, "POST", "/nodes/0/up", json!({})).await;
    collect(&b, &filter, &mut got, 2).await;

    // Stale feed reads: Bee hides feed updates younger than 1.5 s. Catch-up is delayed,
    // never wrong. Bob restarts offline-style: killed, Alice posts, Bob comes back.
    net.admin(1, "PUT", "/knobs", json!({"stale_feed_ms": 1500}))
        .await;
    let b_dir = dir.path().join("bob");
    b.process.kill();
    for i in 1..=3 {
        post(&alice, &bob.public, &format!("stale {i}")).await;
    }
    let b = Proc::start_pss(&b_dir, &urls[1]);
    collect(&b, &filter, &mut got, 5).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    collect(&b, &filter, &mut got, 5).await;
    assert_eq!(
        got,
        [
            "before the outage",
            "posted while bee was down",
            "stale 1",
            "stale 2",
            "stale 3"
        ]
    );
    let history = ok(&b, "staples_history", json!([])).await;
    assert_eq!(assert_causal(&history), 5);

    alice.process.terminate();
    b.process.terminate();
    net.process.terminate();
}

/// Waits (up to 15 s: the count is read every 5 s) until `p`'s `net_peerCount` is `want`.
async fn peer_count_becomes(p: &Proc, want: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let n = ok(p, "net_peerCount", json!([])).await;
        if n == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "net_peerCount {n}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A group on a password-derived symmetric key: the post parameters and a filter.
async fn join_group(p: &Proc, password: &str, topic: &str) -> (Value, String) {
    let key = ok(p, "shh_generateSymKeyFromPassword", json!([password])).await;
    let filter = ok(
        p,
        "shh_newMessageFilter",
        json!([{"symKeyID": key, "topics": [topic]}]),
    )
    .await;
    let to = json!({"symKeyID": key, "topic": topic, "ttl": 60, "powTarget": 0, "powTime": 1});
    (to, filter.as_str().unwrap().to_string())
}

async fn post_group(p: &Proc, to: &Value, text: &str) {
    let mut params = to.clone();
    params["payload"] = json!(hex0x(text.as_bytes()));
    ok(p, "shh_post", json!([params])).await;
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// A group: Alice and Bob post, Charlie joins later and gets every earlier message through
/// the chat's rendezvous roster, then Charlie's post reaches both. Then Alice and Bob
/// install filters for a second group at the same moment, so both may write their roster
/// entry at the same index (the later upload replaces the earlier); each still learns the
/// other (the deterministic version of that race is in `bridge/tests/pss_bad_input.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_late_joiner_catches_up_and_members_joining_at_once_find_each_other() {
    let net = DevNode::start(3);
    let urls = net.urls.clone();
    let dir = tempfile::tempdir().unwrap();
    const TOPIC_G: &str = "0x47525550";

    let alice = Proc::start_pss(&dir.path().join("alice"), &urls[0]);
    let (to_a, a_f) = join_group(&alice, "group", TOPIC_G).await;
    post_group(&alice, &to_a, "alice 1").await;
    let bob = Proc::start_pss(&dir.path().join("bob"), &urls[1]);
    let (to_b, b_f) = join_group(&bob, "group", TOPIC_G).await;
    let mut got_b = Vec::new();
    collect(&bob, &b_f, &mut got_b, 1).await;
    assert_eq!(got_b, ["alice 1"]);
    post_group(&bob, &to_b, "bob 1").await;
    post_group(&alice, &to_a, "alice 2").await;
    let mut got_a = Vec::new();
    // Each sees its own posts too, as in Whisper.
    collect(&alice, &a_f, &mut got_a, 3).await;
    assert_eq!(sorted(got_a), ["alice 1", "alice 2", "bob 1"]);

    let charlie = Proc::start_pss(&dir.path().join("charlie"), &urls[2]);
    let (to_c, c_f) = join_group(&charlie, "group", TOPIC_G).await;
    let mut got_c = Vec::new();
    collect(&charlie, &c_f, &mut got_c, 3).await;
    assert_eq!(sorted(got_c), ["alice 1", "alice 2", "bob 1"]);
    post_group(&charlie, &to_c, "charlie 1").await;
    got_a = Vec::new();
    collect(&alice, &a_f, &mut got_a, 1).await;
    assert_eq!(got_a, ["charlie 1"]);
    // Bob's filter also holds Alice's second post and his own.
    collect(&bob, &b_f, &mut got_b, 4).await;
    assert_eq!(
        got_b.last().map(String::as_str),
        Some("charlie 1"),
        "{got_b:?}"
    );
    assert_causal(&ok(&charlie, "staples_history", json!([])).await);

    // Alice and Bob join a second group at the same moment.
    let ((to_a2, a2_f), (to_b2, b2_f)) = tokio::join!(
        join_group(&alice, "at once", TOPIC),
        join_group(&bob, "at once", TOPIC)
    );
    post_group(&alice, &to_a2, "at once: alice").await;
    post_group(&bob, &to_b2, "at once: bob").await;
    for (p, f) in [(&alice, &a2_f), (&bob, &b2_f)] {
        let mut got = Vec::new();
        collect(p, f, &mut got, 2).await;
        assert_eq!(sorted(got), ["at once: alice", "at once: bob"]);
    }

    for p in [alice, bob, charlie] {
        p.process.terminate();
    }
    net.process.terminate();
}
