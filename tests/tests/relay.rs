//! `staples relay` end to end, real processes on a real dev node: a peer that has not
//! moved (its app on a plain `whisper`-mode node, the Whisper network here) and a `pss`
//! peer chat in one public chat through a relay, both ways, exactly once each; a second
//! relay on the same chat changes nothing the apps see; a relay killed with SIGKILL and
//! restarted on its data dir repeats nothing and goes on bridging; a `pss` peer that was
//! offline catches up on what the Whisper side said meanwhile from the relay's inbox.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use staples_e2e::{DevNode, Sidecar, text, texts};

const CHAT: &str = "staples-relay-e2e";

fn topic() -> String {
    staples_e2e::public_topic(CHAT)
}

/// The app's filter on the chat (key = PBKDF2 of the name, Status's topic).
async fn join(p: &Sidecar) -> (Value, String) {
    staples_e2e::join_public(p, CHAT).await
}

async fn say(p: &Sidecar, key: &Value, text: &str) {
    staples_e2e::say_public(p, key, CHAT, text).await;
}

/// [`staples_e2e::collect`], then a few seconds more: anything delivered twice would show
/// up within a few sync passes and hold-offs.
async fn collect(p: &Sidecar, filter: &str, got: &mut Vec<Value>, want: usize) {
    staples_e2e::collect(p, filter, got, want).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ms = p.ok("shh_getFilterMessages", json!([filter])).await;
    got.extend(ms.as_array().into_iter().flatten().cloned());
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
    r.mirrors_open(1).await;
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

/// An enode a Status app would name as its mailserver (any valid one: the answer comes
/// from Swarm).
fn mailserver_enode() -> String {
    let key = staples_protocol::crypto::PrivateKey::from_bytes(&[7; 32]).unwrap();
    let id = hex::encode(&key.public_key().to_uncompressed()[1..]);
    format!("enode://{id}@127.0.0.1:30511")
}

/// Waits for `staples_requestCompleted(id)` and returns the completion.
async fn completed(p: &Sidecar, id: &Value) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let c = p.ok("staples_requestCompleted", json!([id])).await;
        if !c.is_null() {
            return c;
        }
        assert!(Instant::now() < deadline, "request {id} never completed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn history_from_swarm_answers_a_status_mailserver_request_with_paging() {
    let net = DevNode::start(2);
    let dir = tempfile::tempdir().unwrap();
    let whisper = Sidecar::start_whisper(&dir.path().join("whisper"));
    let (wkey, _) = join(&whisper).await;
    let swarm = Sidecar::start_pss(&dir.path().join("swarm"), &net.urls[1]);
    let (skey, sfilter) = join(&swarm).await;
    let relay = Sidecar::start_relay(&dir.path().join("relay"), &net.urls[0], &whisper.http, CHAT);
    ready(&relay).await;
    for t in ["legacy one", "legacy two", "legacy three"] {
        say(&whisper, &wkey, t).await;
    }
    for t in ["staples one", "staples two"] {
        say(&swarm, &skey, t).await;
    }
    let mut live = Vec::new();
    collect(&swarm, &sfilter, &mut live, 5).await;

    // A Status app asks its mailserver for the chat's history, as status-go's
    // `shhext_requestMessages` does: the envelopes reach its allowP2P filter.
    let p2p = swarm
        .ok(
            "shh_newMessageFilter",
            json!([{"symKeyID": skey, "topics": [topic()], "allowP2P": true}]),
        )
        .await;
    let p2p = p2p.as_str().unwrap();
    let inbox_key = swarm
        .ok(
            "shh_generateSymKeyFromPassword",
            json!(["status-offline-inbox"]),
        )
        .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let request = json!({
        "mailServerPeer": mailserver_enode(),
        "symKeyID": inbox_key,
        "topics": [topic()],
        "from": now - 3600,
        "to": now + 60,
        "limit": 2,
        "timeout": 30,
    });
    let id = swarm.ok("shhext_requestMessages", json!([request])).await;
    assert_eq!(id.as_str().unwrap().len(), 66, "a 32-byte request id");
    let first = completed(&swarm, &id).await;
    assert_eq!(first["requestID"], id);
    assert_eq!(first["errorMessage"], "");
    let cursor = first["cursor"].as_str().unwrap().to_string();
    assert_eq!(
        cursor.len(),
        72,
        "a full page leaves a 36-byte cursor: {first}"
    );

    // The next pages, with the blocking variant and its retry settings.
    let mut paged = Vec::new();
    collect(&swarm, p2p, &mut paged, 2).await;
    let mut next = request.clone();
    next["cursor"] = cursor.into();
    next["force"] = true.into();
    let second = swarm
        .ok(
            "shhext_requestMessagesSync",
            json!([{"BaseTimeout": 10_000_000_000u64, "StepTimeout": 0, "MaxRetries": 1}, next]),
        )
        .await;
    assert_eq!(second["error"], Value::Null);
    next["cursor"] = second["cursor"].clone();
    let third = swarm
        .ok(
            "shhext_requestMessagesSync",
            json!([{"BaseTimeout": 10_000_000_000u64}, next]),
        )
        .await;
    assert_eq!(third, json!({"cursor": "", "error": null}), "the last page");
    collect(&swarm, p2p, &mut paged, 5).await;
    let all = [
        "legacy one",
        "legacy two",
        "legacy three",
        "staples one",
        "staples two",
    ];
    assert_once(&paged, &all);
    // The legacy ones carry the Whisper envelope hashes the live path delivered.
    for m in &paged {
        let same = live.iter().find(|l| text(l) == text(m)).unwrap();
        assert_eq!(m["hash"], same["hash"], "{}", text(m));
    }

    // Bad requests get status-go's answers.
    let mut bad = request.clone();
    bad["from"] = (now + 100).into();
    bad["to"] = now.into();
    let err = swarm
        .call(
            "shhext_requestMessages",
            json!([bad]),
            Duration::from_secs(5),
        )
        .await;
    assert!(
        format!("{err:?}").contains("Query range is invalid: from > to"),
        "{err:?}"
    );
    let mut bad = request.clone();
    bad["limit"] = 1_000_000_000u64.into();
    bad["force"] = true.into();
    let id = swarm.ok("shhext_requestMessages", json!([bad])).await;
    assert_eq!(
        completed(&swarm, &id).await["errorMessage"],
        "request is invalid: limit exceeds the maximum allowed value"
    );
    let mut bad = request.clone();
    bad["from"] = 1.into();
    bad["force"] = true.into();
    let id = swarm.ok("shhext_requestMessages", json!([bad])).await;
    assert!(
        completed(&swarm, &id).await["errorMessage"]
            .as_str()
            .unwrap()
            .contains("query range is too wide")
    );
    // Twice on the same topics within 3 s, without `force`: status-go's guard.
    swarm.ok("shhext_requestMessages", json!([request])).await;
    let err = swarm
        .call(
            "shhext_requestMessages",
            json!([request]),
            Duration::from_secs(5),
        )
        .await;
    assert!(format!("{err:?}").contains("less than 3s ago"), "{err:?}");
}

/// A `dual` peer hears a legacy message twice (straight from Whisper, and as a relay's
/// record from Swarm) and its app gets it once; the relay does not post the dual peer's
/// own messages to Whisper again (the dual peer did); the plain Whisper peer, the `dual`
/// peer and the `pss` peer each see every public message exactly once.
#[tokio::test]
async fn a_dual_peer_and_a_relay_on_one_chat_deliver_every_message_once() {
    let net = DevNode::start(3);
    let dir = tempfile::tempdir().unwrap();
    let whisper = Sidecar::start_whisper(&dir.path().join("whisper"));
    let (wkey, wfilter) = join(&whisper).await;
    let dual = Sidecar::start_dual(&dir.path().join("dual"), &net.urls[1], &whisper.http);
    let (dkey, dfilter) = join(&dual).await;
    let swarm = Sidecar::start_pss(&dir.path().join("swarm"), &net.urls[2]);
    let (skey, sfilter) = join(&swarm).await;
    let relay = Sidecar::start_relay(&dir.path().join("relay"), &net.urls[0], &whisper.http, CHAT);
    ready(&relay).await;
    dual.status_until("dual not mirrored", Duration::from_secs(20), |s| {
        s["whisper"]["mirrorsOpen"] == 1
    })
    .await;

    say(&whisper, &wkey, "from whisper").await;
    say(&dual, &dkey, "from dual").await;
    say(&swarm, &skey, "from swarm").await;
    let all = ["from whisper", "from dual", "from swarm"];
    let (mut w, mut d, mut s) = (Vec::new(), Vec::new(), Vec::new());
    collect(&whisper, &wfilter, &mut w, 3).await;
    collect(&dual, &dfilter, &mut d, 3).await;
    collect(&swarm, &sfilter, &mut s, 3).await;
    assert_once(&w, &all);
    assert_once(&d, &all);
    assert_once(&s, &all);
    let hash = |ms: &[Value]| {
        ms.iter()
            .find(|m| text(m) == "from whisper")
            .map(|m| m["hash"].clone())
    };
    assert_eq!(
        hash(&d),
        hash(&w),
        "the Whisper node's envelope, on both paths"
    );
    assert_eq!(hash(&s), hash(&w));
    let status = dual.ok("staples_status", json!([])).await;
    assert!(
        status["app"]["legacyRepeats"].as_u64() >= Some(1),
        "the second path's copy was refused: {status}"
    );
}
