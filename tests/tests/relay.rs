//! `staples relay` end to end, real processes on a real dev node: a peer that has not
//! moved (its app on a plain `whisper`-mode node, the Whisper network here) and a `pss`
//! peer chat in one public chat through a relay, both ways, exactly once each; a second
//! relay on the same chat changes nothing the apps see; a relay killed with SIGKILL and
//! restarted on its data dir repeats nothing and goes on bridging; a `pss` peer that was
//! offline catches up on what the Whisper side said meanwhile from the relay's inbox.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use staples_e2e::{DevNode, Sidecar, hex0x};
use staples_protocol::whisper::Topic;

const CHAT: &str = "staples-relay-e2e";

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

async fn say(p: &Sidecar, key: &Value, text: &str) {
    p.ok(
        "shh_post",
        json!([{"symKeyID": key, "topic": topic(), "ttl": 120, "payload": hex0x(text.as_bytes())}]),
    )
    .await;
}

fn text(m: &Value) -> String {
    let h = m["payload"].as_str().unwrap().trim_start_matches("0x");
    String::from_utf8(hex::decode(h).unwrap()).unwrap()
}

/// Polls `filter` until `want` messages arrived, then `settle` longer for any repeat.
async fn collect(p: &Sidecar, filter: &str, got: &mut Vec<Value>, want: usize) {
    let start = Instant::now();
    while got.len() < want {
        if start.elapsed() > Duration::from_secs(40) {
            let status = p
                .call("staples_status", json!([]), Duration::from_secs(2))
                .await;
            panic!(
                "got {:?}, want {want}; staples_status {status:?}",
                got.iter().map(text).collect::<Vec<_>>()
            );
        }
        let ms = p.ok("shh_getFilterMessages", json!([filter])).await;
        got.extend(ms.as_array().unwrap().iter().cloned());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Anything twice would show up within a few sync passes and hold-offs.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ms = p.ok("shh_getFilterMessages", json!([filter])).await;
    got.extend(ms.as_array().unwrap().iter().cloned());
}

fn texts(ms: &[Value]) -> Vec<String> {
    ms.iter().map(text).collect()
}

/// Each of `want` exactly once (own posts and bridged ones race, so order is not fixed).
fn assert_once(got: &[Value], want: &[&str]) {
    let mut g = texts(got);
    g.sort();
    let mut w: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    w.sort();
    assert_eq!(g, w);
}

/// What the Whisper node's own app saw of `legacy`'s post, to compare with the copy that
/// crossed to Swarm.
async fn seen_on_whisper(legacy: &Sidecar, filter: &str, want: &str) -> Value {
    let mut got = Vec::new();
    collect(legacy, filter, &mut got, 1).await;
    got.into_iter()
        .find(|m| text(m) == want)
        .unwrap_or_else(|| panic!("{want} not seen on Whisper"))
}

/// Waits until relay `r` polls the Whisper node for its chat (a Whisper filter sees only
/// what arrives after it was made).
async fn ready(r: &Sidecar) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = r.ok("staples_status", json!([])).await;
        if s["whisper"]["mirrorsOpen"] == 1 {
            return;
        }
        assert!(Instant::now() < deadline, "relay not ready: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn relay_counter(r: &Sidecar, name: &str) -> u64 {
    let s = r.ok("staples_status", json!([])).await;
    s["relay"]["counters"][name].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn whisper_and_pss_peers_chat_through_relays_once_each_across_a_relay_crash() {
    let net = DevNode::start(3);
    let dir = tempfile::tempdir().unwrap();
    // The Whisper network (one node) and two apps on it: the peer that has not moved, and
    // a second app that only watches (it sees what the first posts, once).
    let whisper = Sidecar::start_whisper(&dir.path().join("whisper"));
    let (wkey, wfilter) = join(&whisper).await;
    let (_, watch) = join(&whisper).await;
    let swarm = Sidecar::start_pss(&dir.path().join("swarm"), &net.urls[1]);
    let (skey, sfilter) = join(&swarm).await;
    let relay_dir = dir.path().join("relay1");
    let mut relay = Sidecar::start_relay(&relay_dir, &net.urls[0], &whisper.http, CHAT);
    ready(&relay).await;

    // Whisper → Swarm: the pss app gets the legacy message as the Whisper node reported
    // it (same hash, payload, padding, timestamp).
    say(&whisper, &wkey, "hello from whisper").await;
    let original = seen_on_whisper(&whisper, &watch, "hello from whisper").await;

    let mut sgot = Vec::new();
    collect(&swarm, &sfilter, &mut sgot, 1).await;
    assert_eq!(texts(&sgot), ["hello from whisper"]);
    for field in ["hash", "payload", "padding", "timestamp", "ttl", "topic"] {
        assert_eq!(sgot[0][field], original[field], "{field}");
    }

    // Swarm → Whisper: the Whisper app gets the pss app's post, once, exactly as posted.
    say(&swarm, &skey, "hello from swarm").await;
    let mut wgot = Vec::new();
    collect(&whisper, &wfilter, &mut wgot, 2).await;
    assert_eq!(texts(&wgot), ["hello from whisper", "hello from swarm"]);
    assert_eq!(
        relay_counter(&relay, "relay_to_whisper").await,
        1,
        "posted as its author's envelope, byte for byte"
    );

    // A second relay on the same chat: still once each way.
    let relay2 = Sidecar::start_relay(
        &dir.path().join("relay2"),
        &net.urls[2],
        &whisper.http,
        CHAT,
    );
    ready(&relay2).await;
    say(&whisper, &wkey, "two relays, whisper side").await;
    say(&swarm, &skey, "two relays, swarm side").await;
    let mut both = vec![
        "hello from whisper",
        "hello from swarm",
        "two relays, whisper side",
        "two relays, swarm side",
    ];
    collect(&swarm, &sfilter, &mut sgot, 4).await;
    assert_once(&sgot, &both);
    collect(&whisper, &wfilter, &mut wgot, 4).await;
    assert_once(&wgot, &both);

    // SIGKILL the first relay and restart it on its data dir: nothing is bridged again,
    // and new messages cross once.
    relay.process.kill();
    relay = Sidecar::start_relay(&relay_dir, &net.urls[0], &whisper.http, CHAT);
    drop(relay2);
    ready(&relay).await;
    say(&whisper, &wkey, "after the crash, whisper side").await;
    say(&swarm, &skey, "after the crash, swarm side").await;
    both.extend([
        "after the crash, whisper side",
        "after the crash, swarm side",
    ]);
    collect(&swarm, &sfilter, &mut sgot, 6).await;
    assert_once(&sgot, &both);
    collect(&whisper, &wfilter, &mut wgot, 6).await;
    assert_once(&wgot, &both);

    // The pss peer goes offline; what the Whisper peer says meanwhile reaches it on its
    // return by its normal catch-up (the relay's inbox), with the filter it had.
    swarm.process.kill();
    say(&whisper, &wkey, "while you were away").await;
    let mut wseen = Vec::new();
    collect(&whisper, &watch, &mut wseen, 1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let swarm = Sidecar::start_pss(&dir.path().join("swarm"), &net.urls[1]);
    both.push("while you were away");
    collect(&swarm, &sfilter, &mut sgot, 7).await;
    assert_once(&sgot, &both);
    let _ = relay;
}
