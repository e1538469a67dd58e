//! Staples as a Status mailserver (issue #19, specs/relay.md §10), with real processes: a
//! plain Whisper node posts to a public chat, a relay with its own Whisper node (devp2p)
//! and `--mailserver` bridges the posts to Swarm, the posts expire on Whisper, and then a
//! client that was away dials the relay over devp2p and asks for history as status-go
//! v0.78 asks (code 126: an envelope sealed with the `status-offline-inbox` key, signed
//! by the client's node key, RLP payload with topics). It gets every envelope once, byte
//! for byte the author's (same hashes), in pages by cursor, each closed by code 125; bad
//! requests are answered with status-go's `ERROR=` completions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rand::rngs::OsRng;
use serde_json::{Value, json};
use staples_e2e::DevNode;
use staples_e2e::devp2p::{Client, listening};
use staples_e2e::mailserver::{Expired, post_text};
use staples_protocol::crypto::PrivateKey;
use staples_protocol::mailserver::{Completion, Cursor, Request};
use staples_protocol::whisper::{Envelope, OpenKey, SymKey, Topic, open};

const CHAT: &str = "staples-mailserver-e2e";
/// Short enough that the posts are gone from Whisper before the client asks.
const TTL: u32 = 6;

fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32
}

fn page(r: &Request, cursor: Option<Cursor>) -> Request {
    Request {
        cursor,
        ..r.clone()
    }
}

#[tokio::test]
async fn a_status_go_request_gets_expired_whisper_history_from_swarm() {
    let net = DevNode::start(1);
    let dir = tempfile::tempdir().unwrap();
    let Expired { relay, hashes, .. } = Expired::make(dir.path(), &net.urls[0], CHAT, 5, TTL).await;
    let started = Instant::now();

    let (enode, key) = listening(&relay).await;
    let mut c = Client::connect(&enode, &key);
    let topic = Topic::from_name(CHAT);
    let now = unix_now();
    let first = Request::for_topics(now - 600, now + 60, &[topic], 3);
    let id = c.request(&first, None, None);
    let (envs, done) = c.answer(id);
    let Completion::Completed {
        last_envelope,
        cursor: Some(cursor),
        ..
    } = done
    else {
        panic!("a first page with a cursor: {done:?}");
    };
    assert_eq!(envs.len(), 3);
    assert_eq!(last_envelope, envs[2].hash());

    // status-go allows one request a second per peer.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let id = c.request(&page(&first, Some(cursor)), None, None);
    let (rest, done) = c.answer(id);
    assert!(
        matches!(done, Completion::Completed { cursor: None, .. }),
        "the last page has no cursor: {done:?}"
    );
    assert_eq!(rest.len(), 2);

    // Every post once, byte for byte the author's envelope, opening to its payload.
    let all: Vec<Envelope> = envs.into_iter().chain(rest).collect();
    let got: HashSet<String> = all
        .iter()
        .map(|e| format!("0x{}", hex::encode(e.hash().0)))
        .collect();
    assert_eq!(got, hashes);
    assert_eq!(got.len(), 5, "no envelope twice");
    let chat_key = SymKey::from_password(CHAT);
    let mut texts: Vec<String> = all
        .iter()
        .map(|e| {
            let m = open(e, OpenKey::Symmetric(&chat_key)).expect("opens with the chat key");
            assert!(
                m.plaintext.signature.is_some(),
                "the author's signature is there"
            );
            String::from_utf8(m.plaintext.payload).unwrap()
        })
        .collect();
    texts.sort();
    assert_eq!(texts, (0..5).map(post_text).collect::<Vec<_>>());
    eprintln!("two pages of history in {:?}", started.elapsed());

    // Refusals, as status-go words them, and the node goes on serving.
    let refused =
        |c: &mut Client, r: &Request, signer: Option<&PrivateKey>, seal: Option<&SymKey>| {
            std::thread::sleep(Duration::from_millis(1100));
            let id = c.request(r, signer, seal);
            match c.answer(id) {
                (envs, Completion::Failed { message, .. }) => {
                    assert!(envs.is_empty());
                    message
                }
                other => panic!("expected a refusal, got {other:?}"),
            }
        };
    let stranger = PrivateKey::random(&mut OsRng);
    assert!(refused(&mut c, &first, Some(&stranger), None).contains("signature"));
    let wrong = SymKey::from_password("not the mailserver password");
    assert_eq!(
        refused(&mut c, &first, None, Some(&wrong)),
        "failed to decrypt p2p request"
    );
    let greedy = Request::for_topics(now - 600, now, &[topic], 5000);
    assert_eq!(
        refused(&mut c, &greedy, None, None),
        "request is invalid: limit exceeds the maximum allowed value"
    );
    let ancient = Request::for_topics(now - 90 * 24 * 3600, now, &[topic], 10);
    assert!(refused(&mut c, &ancient, None, None).contains("query range too big"));
    // Two at once: the second is over the rate (its refusal may overtake the first's
    // answer, which is still being walked).
    std::thread::sleep(Duration::from_millis(1100));
    let a = c.request(&first, None, None);
    let b = c.request(&first, None, None);
    let mut envs = Vec::new();
    let mut done = Vec::new();
    for _ in 0..2 {
        let (e, d) = c.next_completion();
        envs.extend(e);
        done.push(d);
    }
    done.sort_by_key(|d| d.request_id() != a);
    assert!(matches!(&done[0], Completion::Completed { request_id, .. } if *request_id == a));
    assert!(
        matches!(&done[1], Completion::Failed { request_id, message }
            if *request_id == b && message == "rate limit exceeded"),
        "{done:?}"
    );
    assert_eq!(envs.len(), 3);
    let st: Value = relay.ok("staples_status", json!([])).await;
    let m = &st["mailserver"]["counters"];
    assert_eq!(m["served_envelopes"], 8, "{st}");
    assert_eq!(m["refused_signature"], 1, "{st}");
    assert_eq!(m["refused_undecryptable"], 1, "{st}");
    assert_eq!(m["refused_invalid"], 2, "{st}");
    assert_eq!(m["refused_rate"], 1, "{st}");

    // A client that leaves right after asking costs the others nothing.
    let (enode, key) = listening(&relay).await;
    drop({
        let mut quitter = Client::connect(&enode, &key);
        quitter.request(&first, None, None);
        quitter
    });
    std::thread::sleep(Duration::from_millis(1100));
    let id = c.request(&first, None, None);
    let (envs, done) = c.answer(id);
    assert_eq!(envs.len(), 3);
    assert!(matches!(
        done,
        Completion::Completed {
            cursor: Some(_),
            ..
        }
    ));
    relay
        .status_until("both requests counted", Duration::from_secs(10), |st| {
            st["mailserver"]["counters"]["requests"].as_u64() >= Some(9)
        })
        .await;
}
