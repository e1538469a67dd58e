//! Test knobs (through the admin routes and the Rust handle), nodes going down and up,
//! clients vanishing mid-request, and persistence across restarts.

mod common;

use std::time::{Duration, Instant};

use bee::swarm::{PrivateKey, Reference, Topic};
use common::*;
use serde_json::json;
use staples_devnode::{DevNetConfig, KnobSettings};
use tokio::io::AsyncWriteExt;

async fn put_knobs(url: &str, body: serde_json::Value) {
    let resp = with_json(http().put(format!("{url}/_staples/knobs")), &body)
        .send()
        .await
        .expect("admin");
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_knob_delays_bee_routes_only() {
    let net = start(2).await;
    let (a, b) = (&net.urls()[0], &net.urls()[1]);
    put_knobs(a, json!({"latency_ms": 300})).await;
    let t = Instant::now();
    bee(&net, 1).debug().health().await.expect("health");
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    let t = Instant::now();
    let knobs = json_of(
        http()
            .get(format!("{b}/_staples/knobs"))
            .send()
            .await
            .expect("knobs"),
    )
    .await;
    assert!(
        t.elapsed() < Duration::from_millis(300),
        "admin routes are not delayed"
    );
    assert_eq!(knobs["latency_ms"], 300);
    let bad = with_json(
        http().put(format!("{a}/_staples/knobs")),
        &json!({"drop_probability": 2.0}),
    )
    .send()
    .await
    .expect("admin");
    assert_eq!(error_body(bad).await.0, 400);
    put_knobs(a, json!({"latency_ms": 0})).await;
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_go_down_and_come_back() {
    let net = start(2).await;
    let batch = buy(&net, 0, 20).await;
    let (a, b) = (net.urls()[0].clone(), net.urls()[1].clone());
    let topic = Topic::from_string("down");
    let mut sub = bee(&net, 1)
        .pss()
        .subscribe(&topic)
        .await
        .expect("subscribe");

    let resp = http()
        .post(format!("{a}/_staples/nodes/1/down"))
        .send()
        .await
        .expect("admin");
    assert_eq!(resp.status(), 200);
    assert!(
        http().get(format!("{b}/health")).send().await.is_err(),
        "a down node refuses connections"
    );
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), sub.recv())
            .await
            .expect("closed in time"),
        None,
        "its WebSocket subscribers are cut"
    );
    // PSS aimed at the down node lands elsewhere; the sender is unaffected.
    let target = &net.node(1).expect("node").overlay[..2];
    bee(&net, 0)
        .pss()
        .send(&batch, &topic, target, &b"while down"[..], None)
        .await
        .expect("send");
    // Data uploaded meanwhile is there when it returns (the store is shared).
    let up = bee(&net, 0)
        .file()
        .upload_data(&batch, &b"stored while 1 was down"[..], None)
        .await
        .expect("upload");

    let resp = http()
        .post(format!("{a}/_staples/nodes/1/up"))
        .send()
        .await
        .expect("admin");
    assert_eq!(resp.status(), 200);
    let back = bee(&net, 1)
        .file()
        .download_data(&up.reference, None)
        .await
        .expect("node 1 is back");
    assert_eq!(&back[..], b"stored while 1 was down");

    // A node can take itself down for a while; it answers first.
    let resp = http()
        .post(format!("{a}/_staples/nodes/0/down?for_ms=400"))
        .send()
        .await
        .expect("admin");
    assert_eq!(resp.status(), 200);
    let h = http();
    let url = format!("{a}/health");
    assert!(
        eventually(Duration::from_secs(2), async || h
            .get(&url)
            .send()
            .await
            .is_err())
        .await,
        "node 0 went down"
    );
    assert!(
        eventually(Duration::from_secs(5), async || h
            .get(&url)
            .send()
            .await
            .is_ok())
        .await,
        "node 0 came back by itself"
    );

    // The same through the Rust handle.
    net.take_down(1).await.expect("down");
    assert!(!net.node(1).expect("node").up);
    net.bring_up(1).await.expect("up");
    bee(&net, 1).debug().health().await.expect("back");
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_feed_reads_lag_behind_writes() {
    let net = start(1).await;
    let batch = buy(&net, 0, 20).await;
    let url = net.urls()[0].clone();
    let key = PrivateKey::new(&[0x21; 32]).expect("key");
    let topic = Topic::from_string("stale");
    let f = bee(&net, 0).file();
    let writer = f.make_feed_writer(key, topic).expect("writer");
    writer
        .upload_payload_at(&batch, 0, b"zero")
        .await
        .expect("u0");
    tokio::time::sleep(Duration::from_millis(500)).await;
    put_knobs(&url, json!({"stale_feed_ms": 400})).await;
    writer
        .upload_payload_at(&batch, 1, b"one")
        .await
        .expect("u1");
    let reader = f.make_feed_reader(*writer.owner(), topic);
    let stale = reader.download().await.expect("lookup");
    assert_eq!(stale.index, 0, "the fresh update is not visible yet");
    assert_eq!(&stale.payload[8..], b"zero");
    // The update chunk itself is stored: only feed lookups lag.
    assert!(reader.is_retrievable(Some(1), None).await.expect("probe"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(reader.download().await.expect("lookup").index, 1);
    put_knobs(&url, json!({"stale_feed_ms": 60_000})).await;
    let h = http();
    let resp = h
        .get(format!(
            "{url}/feeds/{}/{}",
            writer.owner().to_hex(),
            Topic::from_string("new").to_hex()
        ))
        .send()
        .await
        .expect("lookup");
    assert_eq!(error_body(resp).await.0, 404);
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_chunks_vanish_silently() {
    let net = start(1).await;
    let batch = buy(&net, 0, 20).await;
    let url = net.urls()[0].clone();
    let f = bee(&net, 0).file();
    let chunk = |n: u8| {
        let mut d = 5u64.to_le_bytes().to_vec();
        d.extend_from_slice(&[n; 5]);
        d
    };
    // Probability 1: every upload succeeds and nothing is stored.
    put_knobs(&url, json!({"drop_probability": 1.0})).await;
    let up = f
        .upload_chunk(&batch, chunk(1), None)
        .await
        .expect("accepted");
    assert_eq!(
        f.download_chunk(&up.reference, None)
            .await
            .expect_err("lost")
            .status(),
        Some(404)
    );
    put_knobs(&url, json!({"drop_probability": 0.0})).await;

    // Explicit: drop a stored chunk; it stays lost until restored.
    let up = f
        .upload_chunk(&batch, chunk(2), None)
        .await
        .expect("stored");
    let addr = up.reference.to_hex();
    let h = http();
    let r = json_of(
        h.post(format!("{url}/_staples/chunks/{addr}/drop"))
            .send()
            .await
            .expect("drop"),
    )
    .await;
    assert_eq!(r["removed"], true);
    assert_eq!(
        f.download_chunk(&up.reference, None)
            .await
            .expect_err("gone")
            .status(),
        Some(404)
    );
    f.upload_chunk(&batch, chunk(2), None)
        .await
        .expect("accepted again");
    assert!(
        f.download_chunk(&up.reference, None).await.is_err(),
        "still refused"
    );
    h.delete(format!("{url}/_staples/chunks/{addr}/drop"))
        .send()
        .await
        .expect("restore");
    f.upload_chunk(&batch, chunk(2), None)
        .await
        .expect("stored");
    assert!(f.download_chunk(&up.reference, None).await.is_ok());

    // Through the handle, as the bridge's tests would.
    let lost = Reference::from_hex(&"12".repeat(32)).expect("ref");
    net.knobs()
        .drop_address(staples_protocol::swarm::ChunkAddress::from_bytes(
            [0x12; 32],
        ));
    assert!(f.download_chunk(&lost, None).await.is_err());
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_clients_leave_nothing_behind() {
    let net = start(1).await;
    let batch = buy(&net, 0, 20).await;
    let addr = net.urls()[0].trim_start_matches("http://").to_string();

    // An upload cut off halfway.
    let mut s = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /bytes HTTP/1.1\r\nHost: {addr}\r\nSwarm-Postage-Batch-Id: {}\r\nContent-Length: 1000000\r\n\r\n",
        batch.to_hex()
    );
    s.write_all(head.as_bytes()).await.expect("write");
    s.write_all(&[7u8; 100_000]).await.expect("write");
    assert!(
        eventually(Duration::from_secs(2), async || net.inflight_requests()
            == 1)
        .await,
        "the upload is in progress"
    );
    drop(s);
    assert!(
        eventually(Duration::from_secs(5), async || net.inflight_requests()
            == 0)
        .await,
        "the handler ended with the connection"
    );

    // WebSocket subscribers: closed politely, and cut abruptly.
    let topic = Topic::from_string("leak");
    let sub = bee(&net, 0)
        .pss()
        .subscribe(&topic)
        .await
        .expect("subscribe");
    assert_eq!(net.node(0).expect("node").pss_subscribers, 1);
    drop(sub);
    assert!(
        eventually(Duration::from_secs(5), async || {
            net.node(0).expect("node").pss_subscribers == 0
        })
        .await
    );
    let mut ws = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let handshake = format!(
        "GET /pss/subscribe/leak HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    ws.write_all(handshake.as_bytes()).await.expect("handshake");
    assert!(
        eventually(Duration::from_secs(5), async || {
            net.node(0).expect("node").pss_subscribers == 1
        })
        .await
    );
    drop(ws);
    assert!(
        eventually(Duration::from_secs(5), async || {
            net.node(0).expect("node").pss_subscribers == 0
        })
        .await,
        "an abruptly closed socket unregisters its subscription"
    );
    bee(&net, 0).debug().health().await.expect("still serving");
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_dir_keeps_chunks_batches_and_identities() {
    let dir = std::env::temp_dir().join(format!("staples-devnode-it-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = DevNetConfig {
        data_dir: Some(dir.clone()),
        seed: None,
        ..DevNetConfig::for_tests(2)
    };
    let net = start_with(config.clone()).await;
    let overlay = net.node(1).expect("node").overlay;
    let batch = buy(&net, 1, 17).await;
    let up = bee(&net, 1)
        .file()
        .upload_data(&batch, pattern(10_000), None)
        .await
        .expect("upload");
    let before = bee(&net, 1)
        .postage()
        .get_postage_batch(&batch)
        .await
        .expect("batch");
    net.stop().await;

    let net = start_with(config).await;
    assert_eq!(
        net.node(1).expect("node").overlay,
        overlay,
        "same seed, same node"
    );
    let data = bee(&net, 0)
        .file()
        .download_data(&up.reference, None)
        .await
        .expect("chunks survived");
    assert!(data[..] == pattern(10_000)[..]);
    let after = bee(&net, 1)
        .postage()
        .get_postage_batch(&batch)
        .await
        .expect("batch survived");
    assert_eq!(after.utilization, before.utilization);
    assert_eq!(after.label, "test");
    net.stop().await;

    // A different explicit seed would orphan the batches: refused.
    let err = staples_devnode::DevNet::start(DevNetConfig {
        data_dir: Some(dir.clone()),
        seed: Some([1; 32]),
        ..DevNetConfig::for_tests(1)
    })
    .await
    .expect_err("seed mismatch");
    assert!(err.to_string().contains("different seed"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knobs_and_down_nodes_from_the_config() {
    let net = start_with(DevNetConfig {
        start_down: vec![1],
        knobs: KnobSettings {
            latency_ms: 150,
            ..KnobSettings::default()
        },
        ..DevNetConfig::for_tests(2)
    })
    .await;
    assert!(!net.node(1).expect("node").up);
    assert!(
        http()
            .get(format!("{}/health", net.urls()[1]))
            .send()
            .await
            .is_err()
    );
    let t = Instant::now();
    bee(&net, 0).debug().health().await.expect("health");
    assert!(t.elapsed() >= Duration::from_millis(150));
    net.bring_up(1).await.expect("up");
    bee(&net, 1).debug().health().await.expect("health");
    net.stop().await;
}
