//! Bad input on the PSS transport: a Bee node that forges chunks, answers 500 or hangs,
//! PSS frames that are garbage or sealed with the wrong key, and a parent flood (a message
//! naming parents nobody has). Each is refused with a
//! counted reason (`staples_status`), nothing accepted is lost, and the sidecar keeps
//! serving.
//!
//! Bob's sidecar talks to its Bee node through a proxy whose behaviour the test switches;
//! Alice's talks to hers directly. Both Bee nodes are one in-process dev network.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ws::{Message as AxMessage, WebSocketUpgrade};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{Value, json};
use staples_bridge::config::{RunArgs, Transport};
use staples_bridge::swarm::Swarm;
use staples_bridge::swarm::bee::{BeeOptions, BeeSwarm};
use staples_protocol::chat::{Chat, Frame, keys};
use staples_protocol::crypto::PrivateKey;
use staples_protocol::dag::{self, Align, Draft as DagDraft, MessageId};
use staples_protocol::swarm::pss::{Targets, max_target};
use staples_protocol::whisper::{self, Recipient, SymKey, Topic};

const NORMAL: u8 = 0;
const FORGE: u8 = 1;
const FAIL: u8 = 2;
const HANG: u8 = 3;

#[derive(Clone)]
struct Proxy {
    upstream: String,
    mode: Arc<AtomicU8>,
    http: reqwest::Client,
}

/// Forwards to the real node, except as `mode` says: chunk downloads come back with a
/// flipped byte (a forged single-owner chunk or content), every call answers 500, or every
/// call hangs.
async fn forward(State(p): State<Proxy>, req: Request) -> Response {
    let mode = p.mode.load(Ordering::SeqCst);
    if mode == HANG {
        std::future::pending::<()>().await;
    }
    if mode == FAIL {
        return (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"code": 500, "message": "injected failure"})),
        )
            .into_response();
    }
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let forge = mode == FORGE && (path.starts_with("/chunks/") || path.starts_with("/bytes/"));
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes()).unwrap();
    let mut out = p.http.request(method, format!("{}{path}", p.upstream));
    for (k, v) in req.headers() {
        if k != "host" && k != "content-length" {
            out = out.header(k.as_str(), v.as_bytes());
        }
    }
    let body = axum::body::to_bytes(req.into_body(), 8 << 20)
        .await
        .unwrap();
    let resp = out.body(body.to_vec()).send().await.unwrap();
    let mut builder = Response::builder().status(resp.status().as_u16());
    for (k, v) in resp.headers() {
        if k != "content-length" && k != "transfer-encoding" {
            builder = builder.header(k.as_str(), v.as_bytes());
        }
    }
    let mut bytes = resp.bytes().await.unwrap().to_vec();
    if forge && bytes.len() > 40 {
        let i = bytes.len() - 1;
        bytes[i] ^= 0x01;
    }
    builder.body(Body::from(bytes)).unwrap()
}

/// Pumps the PSS WebSocket between the sidecar and the real node (never forged: PSS is
/// tested with real garbage frames below).
async fn ws(
    State(p): State<Proxy>,
    axum::extract::Path(topic): axum::extract::Path<String>,
    up: WebSocketUpgrade,
) -> Response {
    let url = format!(
        "{}/pss/subscribe/{topic}",
        p.upstream.replacen("http://", "ws://", 1)
    );
    up.on_upgrade(move |mut client| async move {
        let Ok((mut upstream, _)) = tokio_tungstenite::connect_async(url.as_str()).await else {
            return;
        };
        while let Some(Ok(m)) = upstream.next().await {
            if let tokio_tungstenite::tungstenite::Message::Binary(b) = m
                && client.send(AxMessage::Binary(b)).await.is_err()
            {
                break;
            }
        }
        let _ = upstream.close(None).await;
    })
}

async fn start_proxy(upstream: String) -> (String, Arc<AtomicU8>) {
    let mode = Arc::new(AtomicU8::new(NORMAL));
    let state = Proxy {
        upstream,
        mode: mode.clone(),
        http: reqwest::Client::new(),
    };
    let app = axum::Router::new()
        .route("/pss/subscribe/{topic}", axum::routing::get(ws))
        .fallback(forward)
        .with_state(state);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    (url, mode)
}

async fn sidecar(dir: &std::path::Path, bee: &str) -> common::Server {
    let args = RunArgs {
        transport: Some(Transport::Pss),
        bee_api: vec![bee.to_string()],
        sync_interval_ms: Some(200),
        bee_timeout_ms: Some(1000),
        pss_target_bytes: Some(1),
        gap_deadline_ms: Some(1500),
        min_pow: Some(0.0),
        ..RunArgs::default()
    };
    common::Server::start(dir, args).await
}

async fn post(url: &str, params: Value, text: &str) {
    let mut p = params;
    p["payload"] = json!(common::hex0x(text.as_bytes()));
    p["ttl"] = json!(60);
    p["powTarget"] = json!(0);
    p["powTime"] = json!(1);
    common::ok(url, "shh_post", json!([p])).await;
}

/// Polls `filter` until `want` payloads arrived; returns them all (any extra too).
async fn wait_for(url: &str, filter: &str, got: &mut Vec<String>, want: usize) {
    let start = Instant::now();
    while got.len() < want {
        if start.elapsed() > Duration::from_secs(30) {
            let status = common::ok(url, "staples_status", json!([])).await;
            panic!("got {got:?}, wanted {want}; status {status}");
        }
        let ms = common::ok(url, "shh_getFilterMessages", json!([filter])).await;
        for m in ms.as_array().unwrap() {
            let hexed = m["payload"].as_str().unwrap().trim_start_matches("0x");
            got.push(String::from_utf8(hex::decode(hexed).unwrap()).unwrap());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn counter(url: &str, name: &str) -> u64 {
    let s = common::ok(url, "staples_status", json!([])).await;
    s["counters"][name].as_u64().unwrap_or(0)
}

async fn wait_counter(url: &str, name: &str) -> u64 {
    let start = Instant::now();
    loop {
        let n = counter(url, name).await;
        if n > 0 {
            return n;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "counter {name} never moved: {}",
            common::ok(url, "staples_status", json!([])).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_chunks_failing_and_hanging_bee_and_garbage_frames_are_refused_and_nothing_is_lost()
{
    staples_bridge::sidecar::init_logging_at(staples_bridge::config::LogFormat::Human, "warn");
    let net = staples_bridge::swarm::embedded::start_embedded(2, None)
        .await
        .unwrap();
    let urls = net.urls();
    let (bob_bee, mode) = start_proxy(urls[1].clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let alice = sidecar(&dir.path().join("alice"), &urls[0]).await;
    let bob = sidecar(&dir.path().join("bob"), &bob_bee).await;

    let topic = "0x01020304";
    let bob_key = PrivateKey::random(&mut rand::rngs::OsRng);
    let bob_pub = common::hex0x(&bob_key.public_key().to_uncompressed());
    let bob_id = common::ok(
        &bob.http,
        "shh_addPrivateKey",
        json!([common::hex0x(&bob_key.to_bytes())]),
    )
    .await;
    let filter = common::ok(
        &bob.http,
        "shh_newMessageFilter",
        json!([{"privateKeyID": bob_id, "topics": [topic]}]),
    )
    .await;
    let filter = filter.as_str().unwrap();
    let to_bob = json!({"pubKey": bob_pub, "topic": topic});
    let mut got = Vec::new();

    // Normal service first.
    post(&alice.http, to_bob.clone(), "one").await;
    wait_for(&bob.http, filter, &mut got, 1).await;

    // Bob's Bee forges every chunk and content it serves: his inbox reads fail
    // verification and are counted; the message still arrives once service is honest
    // (or live over PSS, which the proxy passes through).
    mode.store(FORGE, Ordering::SeqCst);
    post(&alice.http, to_bob.clone(), "two").await;
    let forged = wait_counter(&bob.http, "forged_chunk").await;
    assert!(forged > 0);
    mode.store(NORMAL, Ordering::SeqCst);
    wait_for(&bob.http, filter, &mut got, 2).await;

    // Bob's Bee answers 500, then hangs: Bob's posts are still accepted (outbox), his
    // status shows the outage, and they reach Alice once his Bee is back.
    let alice_key = PrivateKey::random(&mut rand::rngs::OsRng);
    let alice_id = common::ok(
        &alice.http,
        "shh_addPrivateKey",
        json!([common::hex0x(&alice_key.to_bytes())]),
    )
    .await;
    let alice_filter = common::ok(
        &alice.http,
        "shh_newMessageFilter",
        json!([{"privateKeyID": alice_id, "topics": [topic]}]),
    )
    .await;
    let to_alice =
        json!({"pubKey": common::hex0x(&alice_key.public_key().to_uncompressed()), "topic": topic});
    for (m, text) in [(FAIL, "while Bee fails"), (HANG, "while Bee hangs")] {
        mode.store(m, Ordering::SeqCst);
        post(&bob.http, to_alice.clone(), text).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let s = common::ok(&bob.http, "staples_status", json!([])).await;
        assert_eq!(s["bee"]["ok"], json!(false), "{s}");
        assert!(s["outboxDepth"].as_u64().unwrap() >= 1, "{s}");
    }
    mode.store(NORMAL, Ordering::SeqCst);
    let mut alice_got = Vec::new();
    wait_for(
        &alice.http,
        alice_filter.as_str().unwrap(),
        &mut alice_got,
        2,
    )
    .await;
    alice_got.sort();
    assert_eq!(alice_got, ["while Bee fails", "while Bee hangs"]);

    // Garbage over PSS, and a well-formed frame for Bob's chat sealed with the wrong key.
    let client = BeeSwarm::new(&urls[0], BeeOptions::default()).unwrap();
    let bob_node = BeeSwarm::new(&urls[1], BeeOptions::default())
        .unwrap()
        .addresses()
        .await
        .unwrap();
    let targets = Targets::new(&[max_target(&bob_node.overlay)]).unwrap();
    let send = |payload: Vec<u8>| {
        let (client, targets, key) = (&client, &targets, bob_node.pss_public_key);
        async move {
            client
                .pss_send(keys::PSS_TOPIC_NAME, targets, &key, &payload)
                .await
                .unwrap()
        }
    };
    send(b"not a staples frame".to_vec()).await;
    assert!(wait_counter(&bob.http, "pss_garbage").await >= 1);
    let chat = Chat::Asymmetric {
        recipient: bob_key.public_key(),
        topic: [1, 2, 3, 4],
    };
    let wrong = SymKey::from_bytes(&[9; 32]).unwrap();
    let env = whisper::wrap(
        &whisper::Draft {
            topic: Topic([1, 2, 3, 4]),
            payload: b"mallory",
            padding: None,
            signer: None,
            ttl: 60,
            to: Recipient::Symmetric(&wrong),
        },
        u32::try_from(std::time::UNIX_EPOCH.elapsed().unwrap().as_secs()).unwrap(),
        &mut rand::rngs::OsRng,
    )
    .unwrap();
    send(Frame::for_message(chat.id(), &env.encode(), [0; 32]).encode()).await;
    assert!(wait_counter(&bob.http, "wrong_key").await >= 1);

    // A parent flood: a validly sealed and signed message naming 8 parents nobody has.
    // It waits (pending, 8 missing), then after the gap deadline it is delivered and the
    // gaps are listed (R7); the buffer never holds it forever.
    let mallory = PrivateKey::random(&mut rand::rngs::OsRng);
    let now_ms = u64::try_from(std::time::UNIX_EPOCH.elapsed().unwrap().as_millis()).unwrap();
    let bogus: Vec<MessageId> = (1..=8u8)
        .map(|i| MessageId::from_slice(&[i; 32]).unwrap())
        .collect();
    let flood = DagDraft {
        chat_id: chat.id(),
        clock: now_ms,
        timestamp: now_ms,
        parents: bogus.clone(),
        ephemeral: false,
        body: b"flood".to_vec(),
    }
    .sign(&mallory)
    .unwrap();
    let padding = dag::encode_padding(
        flood.header(),
        Align::Geth {
            payload_len: 5,
            signed: false,
        },
    );
    let bob_public = bob_key.public_key();
    let env = whisper::wrap(
        &whisper::Draft {
            topic: Topic([1, 2, 3, 4]),
            payload: b"flood",
            padding: Some(&padding),
            signer: None,
            ttl: 60,
            to: Recipient::Asymmetric(&bob_public),
        },
        u32::try_from(now_ms / 1000).unwrap(),
        &mut rand::rngs::OsRng,
    )
    .unwrap();
    send(Frame::for_message(chat.id(), &env.encode(), [0; 32]).encode()).await;
    let start = Instant::now();
    loop {
        let s = common::ok(&bob.http, "staples_status", json!([])).await;
        let c = s["chats"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["chat"] == json!(common::hex0x(chat.id().as_bytes())))
            .cloned()
            .unwrap_or_default();
        if c["pending"] == json!(1) {
            assert_eq!(c["missing"], json!(8), "{s}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for(&bob.http, filter, &mut got, 3).await;
    assert_eq!(got[2], "flood");
    let gaps = common::ok(&bob.http, "staples_gaps", json!([])).await;
    let gap_ids: Vec<String> = gaps
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["reason"] == "deadline")
        .map(|g| g["id"].as_str().unwrap().to_string())
        .collect();
    for b in &bogus {
        assert!(gap_ids.contains(&common::hex0x(b.as_bytes())), "{gaps}");
    }

    // Still serving, nothing lost, nothing twice.
    post(&alice.http, to_bob, "three").await;
    wait_for(&bob.http, filter, &mut got, 4).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    wait_for(&bob.http, filter, &mut got, 4).await;
    assert_eq!(got, ["one", "two", "flood", "three"]);

    alice.stop().await;
    bob.stop().await;
    net.stop().await;
}

/// Seals `body` for a symmetric chat as a Staples sender would: DAG header in the padding.
/// A two-node dev network with Bob's sidecar on node 1, and a client of node 0 through
/// which the test writes to Swarm by hand, as another member would.
async fn bob_alone(
    dir: &std::path::Path,
) -> (
    staples_bridge::swarm::embedded::EmbeddedSwarm,
    common::Server,
    BeeSwarm,
) {
    let net = staples_bridge::swarm::embedded::start_embedded(2, None)
        .await
        .unwrap();
    let urls = net.urls();
    let bob = sidecar(&dir.join("bob"), &urls[1]).await;
    let swarm = BeeSwarm::new(&urls[0], BeeOptions::default()).unwrap();
    (net, bob, swarm)
}

/// Joins the group on `password` over RPC: its key id and a polling filter on `topic`.
async fn join_group(url: &str, password: &str, topic: [u8; 4]) -> (Value, String) {
    let key_id = common::ok(url, "shh_generateSymKeyFromPassword", json!([password])).await;
    let filter = common::ok(
        url,
        "shh_newMessageFilter",
        json!([{"symKeyID": key_id, "topics": [common::hex0x(&topic)]}]),
    )
    .await;
    (key_id, filter.as_str().unwrap().to_string())
}

/// The same group as a member writing to Swarm by hand sees it.
fn group(password: &str, topic: [u8; 4]) -> (SymKey, Chat) {
    let sym = SymKey::from_password(password);
    let chat = Chat::Symmetric {
        key: *sym.as_bytes(),
        topic,
    };
    (sym, chat)
}

/// The latest index of the chat's rendezvous feed, if any entry is there.
async fn rendezvous_latest(swarm: &BeeSwarm, chat: &Chat) -> Option<u64> {
    let owner = chat.rendezvous_key().public_key().eth_address();
    swarm
        .feed_latest_index(&owner, &keys::rendezvous_topic(), None)
        .await
        .unwrap()
}

/// A roster entry for `node` (advertising the Bee node `me`) at `index` of the chat's
/// rendezvous feed, written by someone who holds the group key.
fn roster_soc(
    chat: &Chat,
    key: &SymKey,
    node: &PrivateKey,
    me: &staples_bridge::swarm::NodeAddresses,
    index: u64,
) -> staples_protocol::swarm::soc::SingleOwnerChunk {
    use staples_protocol::chat::{RosterEntry, seal};
    use staples_protocol::swarm::{Cac, feed};
    let entry = RosterEntry {
        topic: chat.topic(),
        node_key: node.public_key(),
        overlay: me.overlay,
        pss_key: me.pss_public_key,
        timestamp_ms: 1,
        features: 0,
    }
    .sign(&chat.id(), node);
    let page_key = keys::symmetric_page_key(key.as_bytes(), &chat.topic());
    let nonce = [index as u8; 12];
    staples_protocol::swarm::soc::SingleOwnerChunk::sign(
        &chat.rendezvous_key(),
        feed::identifier(&keys::rendezvous_topic(), index),
        Cac::new(&seal::seal(&page_key, &nonce, &entry)).unwrap(),
    )
}

fn sealed_for(chat: &Chat, key: &SymKey, author: &PrivateKey, body: &[u8]) -> (MessageId, Vec<u8>) {
    let now_ms = u64::try_from(std::time::UNIX_EPOCH.elapsed().unwrap().as_millis()).unwrap();
    let msg = DagDraft {
        chat_id: chat.id(),
        clock: now_ms,
        timestamp: now_ms,
        parents: vec![],
        ephemeral: false,
        body: body.to_vec(),
    }
    .sign(author)
    .unwrap();
    let padding = dag::encode_padding(
        msg.header(),
        Align::Geth {
            payload_len: body.len(),
            signed: false,
        },
    );
    let env = whisper::wrap(
        &whisper::Draft {
            topic: Topic(chat.topic()),
            payload: body,
            padding: Some(&padding),
            signer: None,
            ttl: 60,
            to: Recipient::Symmetric(key),
        },
        u32::try_from(now_ms / 1000).unwrap(),
        &mut rand::rngs::OsRng,
    )
    .unwrap();
    (msg.id(), env.encode())
}

/// A member of a group whose inbox page lists an id with the reference of another message:
/// Bob refuses the content (`id_mismatch`) and delivers nothing of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_inbox_entry_whose_content_has_another_id_is_refused() {
    use staples_protocol::chat::seal;
    use staples_protocol::inbox::{Entry, InboxWriter};
    use staples_protocol::swarm::soc::SingleOwnerChunk;
    use staples_protocol::swarm::{Cac, feed};

    let dir = tempfile::tempdir().unwrap();
    let (net, bob, swarm) = bob_alone(dir.path()).await;
    let topic = [7, 7, 7, 7];
    let (_, filter) = join_group(&bob.http, "group", topic).await;
    let (sym, chat) = group("group", topic);

    // Mallory knows the group key and writes her own inbox and roster entry by hand.
    let mallory = PrivateKey::random(&mut rand::rngs::OsRng);
    let (id1, env1) = sealed_for(&chat, &sym, &mallory, b"listed");
    let (_id2, env2) = sealed_for(&chat, &sym, &mallory, b"swapped in");
    swarm.upload_bytes(&env1).await.unwrap();
    let r2 = swarm.upload_bytes(&env2).await.unwrap();
    let page_key = keys::symmetric_page_key(sym.as_bytes(), &topic);
    let page = InboxWriter::new(chat.id())
        .append(Entry {
            message_id: id1,
            reference: *r2.as_bytes(),
            clock: 1,
        })
        .unwrap();
    let inbox = SingleOwnerChunk::sign(
        &mallory,
        feed::identifier(&keys::inbox_topic(&chat.id()), 0),
        Cac::new(&seal::seal(&page_key, &[1; 12], &page.encode())).unwrap(),
    );
    swarm.upload_soc(&inbox).await.unwrap();
    let me = swarm.addresses().await.unwrap();
    // After Bob's own entry: the next free index of the rendezvous feed.
    wait_counter(&bob.http, "announced").await;
    let index = rendezvous_latest(&swarm, &chat).await.map_or(0, |i| i + 1);
    let roster = roster_soc(&chat, &sym, &mallory, &me, index);
    swarm.upload_soc(&roster).await.unwrap();

    assert!(wait_counter(&bob.http, "id_mismatch").await >= 1);
    let got = common::ok(&bob.http, "shh_getFilterMessages", json!([filter])).await;
    assert_eq!(got, json!([]), "nothing of Mallory's swap is delivered");
    bob.stop().await;
    net.stop().await;
}

/// Feeds have no compare-and-swap: a member that found Bob's rendezvous index free just
/// before his upload (or a hostile member) replaces his roster entry right after Bob read
/// it back. Bob's sync task re-reads what he wrote, counts `roster_entry_replaced`, and
/// writes the entry again at the next free index, so a member who joins later still finds
/// his inbox and catches up on what he posted meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_roster_entry_replaced_by_a_racing_member_is_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let (net, bob, swarm) = bob_alone(dir.path()).await;
    let topic = [7, 7, 7, 8];
    let (bob_key, _) = join_group(&bob.http, "racers", topic).await;
    wait_counter(&bob.http, "announced").await;

    // The racer overwrites the index Bob's entry landed on with its own entry.
    let (sym, chat) = group("racers", topic);
    let bobs_index = rendezvous_latest(&swarm, &chat)
        .await
        .expect("Bob's entry is on the feed");
    let racer = PrivateKey::random(&mut rand::rngs::OsRng);
    let me = swarm.addresses().await.unwrap();
    let replacement = roster_soc(&chat, &sym, &racer, &me, bobs_index);
    swarm.upload_soc(&replacement).await.unwrap();

    assert!(wait_counter(&bob.http, "roster_entry_replaced").await >= 1);
    let start = Instant::now();
    while counter(&bob.http, "announced").await < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "never re-announced"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Bob posts while Alice is away; Alice joins later and finds him on the roster.
    let to_group = json!({"symKeyID": bob_key, "topic": common::hex0x(&topic)});
    post(&bob.http, to_group, "posted before Alice joined").await;
    let alice = sidecar(&dir.path().join("alice"), &net.urls()[0]).await;
    let (_, alice_filter) = join_group(&alice.http, "racers", topic).await;
    let mut got = Vec::new();
    wait_for(&alice.http, &alice_filter, &mut got, 1).await;
    assert_eq!(got, ["posted before Alice joined"]);
    alice.stop().await;
    bob.stop().await;
    net.stop().await;
}
