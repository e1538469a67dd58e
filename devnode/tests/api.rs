//! The Bee API of the dev node, driven over HTTP by bee-rs (crates.io `bee-rs`, a Bee
//! client none of us wrote), with reqwest for headers and cases bee-rs does not expose.
//! Expected references and signatures come from ../shared/vectors/swarm.json.

mod common;

use std::time::Duration;

use bee::api::{RedundancyLevel, RedundantUploadOptions, UploadOptions};
use bee::file::{feed_update_chunk_reference, make_feed_identifier};
use bee::postage::{Stamper, marshal_stamp};
use bee::swarm::{
    BatchId, EthAddress, Identifier, PrivateKey, PublicKey, Reference, Signature, Topic,
};
use common::*;
use staples_protocol::swarm::bmt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_information_routes_have_bee_shapes() {
    let net = start(3).await;
    let c = bee(&net, 0);
    let d = c.debug();
    let health = d.health().await.expect("health");
    assert_eq!(
        (health.status.as_str(), health.api_version.as_str()),
        ("ok", "8.1.0")
    );
    assert!(d.readiness().await.expect("readiness"));
    assert!(d.is_connected().await);
    assert_eq!(d.node_info().await.expect("node").bee_mode, "full");
    let addresses = d.addresses().await.expect("addresses");
    assert_eq!(addresses.overlay, net.node(0).expect("node").overlay);
    assert_eq!(addresses.ethereum, net.node(0).expect("node").ethereum);
    PublicKey::from_hex(&addresses.pss_public_key).expect("compressed pss key");
    let status = d.status().await.expect("status");
    assert!(!status.is_warming_up);
    assert_eq!(status.connected_peers, 2);
    let chain = d.chain_state().await.expect("chainstate");
    assert!(chain.block > 300 && chain.current_price == 24_000.into());
    let topology = d.topology().await.expect("topology");
    assert_eq!((topology.population, topology.connected), (2, 2));
    assert_eq!(
        topology.bins.iter().map(|b| b.connected).sum::<u64>(),
        2,
        "peers sit in their proximity bins"
    );
    assert_eq!(d.peers().await.expect("peers").len(), 2);
    assert!(d.wallet().await.expect("wallet").bzz_balance > Some(0.into()));
    d.reserve_state().await.expect("reservestate");

    // The same routes under /v1, and Bee's greeting at /.
    let h = http();
    let v1 = h
        .get(format!("{}/v1/health", net.urls()[1]))
        .send()
        .await
        .expect("v1");
    assert_eq!(v1.status(), 200);
    let root = h.get(&net.urls()[1]).send().await.expect("root");
    assert_eq!(root.text().await.expect("text"), "Ethereum Swarm Bee\n");
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_round_trip_across_nodes() {
    let net = start(2).await;
    let batch = buy(&net, 0, 20).await;
    let case = vector("bmt", "name", "ascii_Hello, Swarm!");
    let data = [hex_field(case, "span"), hex_field(case, "payload")].concat();
    let up = bee(&net, 0)
        .file()
        .upload_chunk(&batch, data.clone(), None)
        .await
        .expect("upload");
    assert_eq!(up.reference.to_hex(), field(case, "address"));
    // Shared store: node 1 serves what node 0 stored.
    let down = bee(&net, 1)
        .file()
        .download_chunk(&up.reference, None)
        .await
        .expect("download");
    assert_eq!(&down[..], &data[..]);
    let head = http()
        .head(format!(
            "{}/chunks/{}",
            net.urls()[1],
            up.reference.to_hex()
        ))
        .send()
        .await
        .expect("head");
    assert_eq!(head.status(), 200);
    let missing = Reference::from_hex(&"00".repeat(32)).expect("ref");
    let err = bee(&net, 1)
        .file()
        .download_chunk(&missing, None)
        .await
        .expect_err("missing");
    assert_eq!(err.status(), Some(404));
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_single_and_multi_chunk() {
    let net = start(2).await;
    let batch = buy(&net, 0, 20).await;
    let f = bee(&net, 0).file();
    for len in [1usize, 4096, 10_000, 524_289] {
        let data = pattern(len);
        let expected = field(vector("bytes_tree", "length", len), "root");
        let up = f
            .upload_data(&batch, data.clone(), None)
            .await
            .expect("upload");
        assert_eq!(up.reference.to_hex(), expected, "root of {len} bytes");
        assert!(
            up.tag_uid.is_some(),
            "deferred uploads return a tag, as Bee"
        );
        let down = bee(&net, 1)
            .file()
            .download_data(&up.reference, None)
            .await
            .expect("download");
        assert!(down[..] == data[..], "content of {len} bytes");
        let probe = f.probe_data(&up.reference).await.expect("probe");
        assert_eq!(probe.content_length, len as u64);
    }
    // Range requests over a multi-chunk tree.
    let up = f
        .upload_data(&batch, pattern(10_000), None)
        .await
        .expect("upload");
    let part = http()
        .get(format!("{}/bytes/{}", net.urls()[1], up.reference.to_hex()))
        .header("Range", "bytes=4090-4105")
        .send()
        .await
        .expect("range");
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"].to_str().expect("text"),
        "bytes 4090-4105/10000"
    );
    assert_eq!(
        part.bytes().await.expect("body")[..],
        pattern(10_000)[4090..=4105]
    );
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soc_uploads_verify_by_recovery() {
    let net = start(2).await;
    let batch = buy(&net, 0, 20).await;
    let f = bee(&net, 0).file();
    // The bee-js signature of the vector: a nonce Bee would never pick, still valid.
    let case = vector("soc", "name", "bee_test_foo");
    let owner = EthAddress::from_hex(field(case, "owner")).expect("owner");
    let id = Identifier::from_hex(field(case, "id")).expect("id");
    let sig = Signature::from_hex(field(case, "signature_bee_js")).expect("sig");
    let body = [hex_field(case, "span"), hex_field(case, "payload")].concat();
    let up = f
        .upload_soc(&batch, &owner, &id, &sig, body, None)
        .await
        .expect("upload soc");
    assert_eq!(up.reference.to_hex(), field(case, "soc_address"));
    let soc = bee(&net, 1)
        .file()
        .make_soc_reader(owner)
        .download(&id)
        .await
        .expect("reader verifies the soc");
    assert_eq!(soc.payload, b"foo");

    // A writer with its own key, read back through GET /soc.
    let key = PrivateKey::new(&[0x42; 32]).expect("key");
    let writer = f.make_soc_writer(key).expect("writer");
    let id = Identifier::from_string("my-soc");
    writer
        .upload(&batch, &id, b"owned content", None)
        .await
        .expect("upload");
    let resp = http()
        .get(format!(
            "{}/soc/{}/{}",
            net.urls()[1],
            writer.owner().to_hex(),
            id.to_hex()
        ))
        .send()
        .await
        .expect("get soc");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["swarm-soc-signature"].len(), 130);
    assert_eq!(resp.bytes().await.expect("body")[..], b"owned content"[..]);
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feeds_write_then_read_latest_and_by_index() {
    let net = start(2).await;
    let batch = buy(&net, 0, 20).await;
    let key = PrivateKey::new(&[0x11; 32]).expect("key");
    let topic = Topic::from_string("chat:v1");
    let f = bee(&net, 0).file();
    let writer = f.make_feed_writer(key.clone(), topic).expect("writer");
    for msg in ["first", "second", "third"] {
        writer
            .upload_payload(&batch, msg.as_bytes())
            .await
            .expect("update");
    }
    let reader = bee(&net, 1).file().make_feed_reader(*writer.owner(), topic);
    let latest = reader.download().await.expect("latest");
    assert_eq!((latest.index, latest.index_next), (2, 3));
    // bee-rs payload updates are `timestamp(8) ‖ data`: a v2 update, served whole.
    assert_eq!(&latest.payload[8..], b"third");
    // By index: the update chunk itself, verified as a SOC by bee-rs.
    let second = bee(&net, 1)
        .file()
        .make_soc_reader(*writer.owner())
        .download(&make_feed_identifier(&topic, 1))
        .await
        .expect("index 1");
    assert_eq!(&second.payload[8..], b"second");
    let by_addr = feed_update_chunk_reference(writer.owner(), &topic, 0).expect("ref");
    assert!(f.download_chunk(&by_addr, None).await.is_ok());

    // Headers and query parameters bee-rs does not read.
    let url = format!(
        "{}/feeds/{}/{}",
        net.urls()[1],
        writer.owner().to_hex(),
        topic.to_hex()
    );
    let resp = http().get(&url).send().await.expect("feed");
    let h = resp.headers();
    assert_eq!(h["swarm-feed-index"], "0000000000000002");
    assert_eq!(h["swarm-feed-index-next"], "0000000000000003");
    assert_eq!(h["swarm-feed-resolved-version"], "v2");
    assert_eq!(h["swarm-soc-signature"].len(), 130);
    let exposed: Vec<_> = h
        .get_all("access-control-expose-headers")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert!(exposed.contains(&"Swarm-Feed-Index") && exposed.contains(&"Swarm-Feed-Index-Next"));
    let after = http()
        .get(format!("{url}?after=1&at=1700000000"))
        .send()
        .await
        .expect("after");
    assert_eq!(after.headers()["swarm-feed-index"], "0000000000000002");
    let (status, message) = error_body(
        http()
            .get(format!("{url}?after=7"))
            .send()
            .await
            .expect("miss"),
    )
    .await;
    assert_eq!((status, message.as_str()), (404, "no update found"));
    let root_only = http()
        .get(&url)
        .header("Swarm-Only-Root-Chunk", "true")
        .send()
        .await
        .expect("root only");
    let raw = root_only.bytes().await.expect("body");
    assert_eq!(
        &raw[..8],
        &13u64.to_le_bytes(),
        "span ‖ payload of the wrapped chunk"
    );

    // A v1 (reference) update resolves to the referenced content.
    let content = f
        .upload_data(&batch, &b"pointed-to"[..], None)
        .await
        .expect("data");
    let v1_topic = Topic::from_string("refs");
    let v1 = f.make_feed_writer(key, v1_topic).expect("writer");
    v1.upload_reference(&batch, &content.reference, None)
        .await
        .expect("reference update");
    let resp = http()
        .get(format!(
            "{}/feeds/{}/{}",
            net.urls()[0],
            v1.owner().to_hex(),
            v1_topic.to_hex()
        ))
        .send()
        .await
        .expect("v1 feed");
    assert_eq!(resp.headers()["swarm-feed-resolved-version"], "v1");
    assert_eq!(resp.bytes().await.expect("body")[..], b"pointed-to"[..]);
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pss_between_two_nodes_with_and_without_recipient() {
    let net = start(2).await;
    let batch = buy(&net, 0, 20).await;
    let receiver = bee(&net, 1);
    let addresses = receiver.debug().addresses().await.expect("addresses");
    // One-byte target: cheap to mine in debug builds (Bee takes up to 3 bytes).
    let target = &addresses.overlay[..2];
    let topic = Topic::from_string("chat");
    let mut sub = receiver.pss().subscribe(&topic).await.expect("subscribe");
    let sender = bee(&net, 0).pss();

    sender
        .send(
            &batch,
            &topic,
            target,
            &b"to anyone who knows the topic"[..],
            None,
        )
        .await
        .expect("send without recipient");
    let got = tokio::time::timeout(Duration::from_secs(10), sub.recv())
        .await
        .expect("in time")
        .expect("frame");
    assert_eq!(&got[..], b"to anyone who knows the topic");

    let pss_key = PublicKey::from_hex(&addresses.pss_public_key).expect("key");
    sender
        .send(
            &batch,
            &topic,
            target,
            &b"for node 1 only"[..],
            Some(&pss_key),
        )
        .await
        .expect("send with recipient");
    let got = tokio::time::timeout(Duration::from_secs(10), sub.recv())
        .await
        .expect("in time")
        .expect("frame");
    assert_eq!(&got[..], b"for node 1 only");

    // Encrypted to another key: node 1 cannot open it, nothing arrives.
    let other = PublicKey::from_hex(&net.node(0).expect("node").pss_public_key).expect("key");
    sender
        .send(&batch, &topic, target, &b"not for node 1"[..], Some(&other))
        .await
        .expect("send");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), sub.recv())
            .await
            .is_err(),
        "a message for another key is not delivered"
    );

    // A lone node delivers to itself when it is the target (Bee's ErrWantSelf path).
    let own = bee(&net, 0);
    let own_overlay = own.debug().addresses().await.expect("addresses").overlay;
    let mut own_sub = own.pss().subscribe(&topic).await.expect("subscribe");
    own.pss()
        .send(&batch, &topic, &own_overlay[..2], &b"loopback"[..], None)
        .await
        .expect("send");
    let got = tokio::time::timeout(Duration::from_secs(10), own_sub.recv())
        .await
        .expect("in time");
    assert_eq!(&got.expect("received")[..], b"loopback");
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stamps_tags_and_batches() {
    let net = start(2).await;
    let batch = buy(&net, 0, 20).await;
    let p = bee(&net, 0).postage();
    let info = p.get_postage_batch(&batch).await.expect("batch");
    assert!(info.usable && info.exists);
    assert_eq!(
        (info.depth, info.bucket_depth, info.label.as_str()),
        (20, 16, "test")
    );
    assert!(info.batch_ttl > 0);
    assert_eq!(p.get_postage_batches().await.expect("list").len(), 1);
    assert!(
        bee(&net, 1)
            .postage()
            .get_postage_batches()
            .await
            .expect("list")
            .is_empty(),
        "batches belong to the node that bought them"
    );
    assert_eq!(
        bee(&net, 1)
            .postage()
            .get_global_postage_batches()
            .await
            .expect("all")
            .len(),
        1
    );
    let f = bee(&net, 0).file();
    let tag = bee(&net, 0).api().create_tag().await.expect("tag");
    let opts = RedundantUploadOptions {
        base: UploadOptions {
            tag: tag.uid,
            ..UploadOptions::default()
        },
        ..RedundantUploadOptions::default()
    };
    let up = f
        .upload_data(&batch, pattern(10_000), Some(&opts))
        .await
        .expect("upload");
    assert_eq!(up.tag_uid, Some(tag.uid));
    let tag = bee(&net, 0).api().get_tag(tag.uid).await.expect("tag");
    assert_eq!((tag.split, tag.synced), (4, 4), "3 leaves and a root");
    assert_eq!(tag.address, up.reference.to_hex());
    let buckets = p.get_postage_batch_buckets(&batch).await.expect("buckets");
    assert_eq!(buckets.buckets.len(), 1 << 16);
    assert_eq!(buckets.bucket_upper_bound, 16);
    assert_eq!(buckets.buckets.iter().map(|b| b.collisions).sum::<u32>(), 4);
    assert_eq!(
        p.get_postage_batch(&batch)
            .await
            .expect("batch")
            .utilization,
        1
    );
    assert!(
        !bee(&net, 0)
            .api()
            .list_tags(None, None)
            .await
            .expect("tags")
            .is_empty()
    );
    bee(&net, 0)
        .api()
        .delete_tag(tag.uid)
        .await
        .expect("delete");
    let err = p
        .top_up_batch(&batch, &1_000_000u64.into())
        .await
        .expect_err("no top-up");
    assert_eq!(err.status(), Some(501));
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_bees_status_codes() {
    let net = start(2).await;
    let batch = buy(&net, 0, 20).await;
    let url = &net.urls()[0];
    let h = http();
    let expect = async |req: reqwest::RequestBuilder, status: u16, message: &str| {
        let (got, text) = error_body(req.send().await.expect("sent")).await;
        assert_eq!(got, status, "{text}");
        assert!(
            text.starts_with(message),
            "{text:?} should start with {message:?}"
        );
    };
    let b = batch.to_hex();
    // Malformed hex and wrong lengths.
    expect(
        h.get(format!("{url}/chunks/xyz")),
        400,
        "invalid path params",
    )
    .await;
    expect(h.get(format!("{url}/chunks/abcd")), 404, "chunk not found").await;
    expect(
        h.get(format!("{url}/bytes/abc")),
        400,
        "invalid path params",
    )
    .await;
    expect(
        h.get(format!("{url}/stamps/abcd")),
        400,
        "invalid path params",
    )
    .await;
    expect(
        h.get(format!("{url}/feeds/zz/00")),
        400,
        "invalid path params",
    )
    .await;
    // Missing, unknown and foreign batches.
    expect(
        h.post(format!("{url}/chunks")).body(vec![0u8; 9]),
        400,
        "Either 'Swarm-Postage-Stamp'",
    )
    .await;
    expect(
        h.post(format!("{url}/bytes")).body("x"),
        400,
        "invalid header params",
    )
    .await;
    let unknown = "ab".repeat(32);
    expect(
        h.post(format!("{url}/chunks"))
            .header("Swarm-Postage-Batch-Id", &unknown)
            .body(vec![0u8; 9]),
        404,
        "batch with id not found",
    )
    .await;
    expect(
        h.post(format!("{}/bytes", net.urls()[1]))
            .header("Swarm-Postage-Batch-Id", &b)
            .body("x"),
        404,
        "batch with id not found",
    )
    .await;
    expect(
        h.post(format!("{url}/chunks"))
            .header("Swarm-Postage-Batch-Id", "zz")
            .body("x"),
        400,
        "invalid header params",
    )
    .await;
    // Oversized and undersized bodies.
    expect(
        h.post(format!("{url}/chunks"))
            .header("Swarm-Postage-Batch-Id", &b)
            .body(vec![0u8; 5000]),
        413,
        "Request Entity Too Large",
    )
    .await;
    expect(
        h.post(format!("{url}/chunks"))
            .header("Swarm-Postage-Batch-Id", &b)
            .body(vec![0u8; 5]),
        400,
        "insufficient data length",
    )
    .await;
    expect(
        h.post(format!("{url}/chunks"))
            .header("Swarm-Postage-Batch-Id", &b)
            .body(vec![0u8; 4150]),
        500,
        "create chunk error",
    )
    .await;
    // Invalid SOCs: a signature by someone else, a short owner.
    let key = PrivateKey::new(&[9; 32]).expect("key");
    let soc = bee::swarm::make_single_owner_chunk(&Identifier::from_string("x"), b"data", &key)
        .expect("soc");
    let body = [soc.span.as_bytes(), &soc.payload[..]].concat();
    let other_owner = "11".repeat(20);
    expect(
        h.post(format!(
            "{url}/soc/{other_owner}/{}?sig={}",
            soc.identifier.to_hex(),
            soc.signature.to_hex()
        ))
        .header("Swarm-Postage-Batch-Id", &b)
        .body(body.clone()),
        401,
        "invalid chunk",
    )
    .await;
    expect(
        h.post(format!(
            "{url}/soc/1111/{}?sig={}",
            soc.identifier.to_hex(),
            soc.signature.to_hex()
        ))
        .header("Swarm-Postage-Batch-Id", &b)
        .body(body.clone()),
        401,
        "invalid address",
    )
    .await;
    expect(
        h.post(format!(
            "{url}/soc/{}/{}",
            soc.owner.to_hex(),
            soc.identifier.to_hex()
        ))
        .header("Swarm-Postage-Batch-Id", &b)
        .body(body),
        400,
        "invalid query params",
    )
    .await;
    // PSS: unknown batch, mixed target lengths, oversized message.
    expect(
        h.post(format!("{url}/pss/send/t/ab"))
            .header("Swarm-Postage-Batch-Id", &unknown)
            .body("m"),
        400,
        "batch not found",
    )
    .await;
    expect(
        h.post(format!("{url}/pss/send/t/ab,abcd"))
            .header("Swarm-Postage-Batch-Id", &b)
            .body("m"),
        500,
        "pss send failed",
    )
    .await;
    expect(
        h.post(format!("{url}/pss/send/t/abcdef01"))
            .header("Swarm-Postage-Batch-Id", &b)
            .body("m"),
        400,
        "invalid path params",
    )
    .await;
    expect(
        h.post(format!("{url}/pss/send/t/ab"))
            .header("Swarm-Postage-Batch-Id", &b)
            .body(vec![1u8; 4001]),
        500,
        "pss send failed",
    )
    .await;
    // Stamps: too shallow, too cheap. Unsupported: redundancy, encryption, mantaray.
    expect(
        h.post(format!("{url}/stamps/{AMOUNT}/16")),
        400,
        "invalid path params",
    )
    .await;
    expect(
        h.post(format!("{url}/stamps/1000/20")),
        400,
        "insufficient amount",
    )
    .await;
    let medium = RedundantUploadOptions {
        redundancy_level: Some(RedundancyLevel::Medium),
        ..RedundantUploadOptions::default()
    };
    let err = bee(&net, 0)
        .file()
        .upload_data(&batch, &b"x"[..], Some(&medium))
        .await
        .expect_err("no erasure coding");
    assert_eq!(err.status(), Some(501));
    expect(h.post(format!("{url}/bzz")), 501, "/bzz").await;
    // Unknown routes and methods.
    expect(h.get(format!("{url}/no/such/route")), 404, "Not Found").await;
    expect(h.delete(format!("{url}/chunks")), 405, "Method Not Allowed").await;
    // A tag that does not exist.
    expect(
        h.post(format!("{url}/bytes"))
            .header("Swarm-Postage-Batch-Id", &b)
            .header("Swarm-Tag", "999")
            .body("x"),
        404,
        "tag not found",
    )
    .await;
    net.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_buckets_are_402_and_presigned_stamps_are_checked() {
    let net = start(1).await;
    let batch = buy(&net, 0, 17).await; // 2 slots per bucket
    let f = bee(&net, 0).file();
    let same_bucket = chunks_in_one_bucket(3);
    for data in &same_bucket[..2] {
        f.upload_chunk(&batch, data.clone(), None)
            .await
            .expect("slot free");
    }
    // Re-uploading a stamped chunk reuses its slot.
    f.upload_chunk(&batch, same_bucket[0].clone(), None)
        .await
        .expect("same chunk, same slot");
    let err = f
        .upload_chunk(&batch, same_bucket[2].clone(), None)
        .await
        .expect_err("bucket full");
    assert_eq!(err.status(), Some(402));

    // Pre-signed stamps from bee-rs's Stamper with the batch owner's key (node 0's).
    let owner =
        PrivateKey::new(&net.identity(0).expect("node").signing_key().to_bytes()).expect("key");
    let fresh = buy(&net, 0, 17).await;
    let data = pattern(100);
    let mut with_span = (data.len() as u64).to_le_bytes().to_vec();
    with_span.extend_from_slice(&data);
    let address = bmt::hash(data.len() as u64, &data).expect("hash");
    let stamp = |key: PrivateKey, batch: &BatchId| {
        let env = Stamper::from_blank(key, *batch, 17)
            .expect("stamper")
            .stamp(&address)
            .expect("stamp");
        hex::encode(
            marshal_stamp(&env.batch_id, &env.index, &env.timestamp, &env.signature)
                .expect("marshal"),
        )
    };
    let post = |stamp: String| {
        http()
            .post(format!("{}/chunks", net.urls()[0]))
            .header("Swarm-Postage-Stamp", stamp)
            .body(with_span.clone())
            .send()
    };
    let ok = post(stamp(owner, &fresh)).await.expect("sent");
    assert_eq!(ok.status(), 201);
    let forged = post(stamp(PrivateKey::new(&[3; 32]).expect("key"), &fresh))
        .await
        .expect("sent");
    let (status, message) = error_body(forged).await;
    assert_eq!(
        (status, message.as_str()),
        (400, "stamp signature is invalid")
    );
    let unknown = BatchId::from_hex(&"cd".repeat(32)).expect("id");
    let owner =
        PrivateKey::new(&net.identity(0).expect("node").signing_key().to_bytes()).expect("key");
    let (status, message) = error_body(post(stamp(owner, &unknown)).await.expect("sent")).await;
    assert_eq!((status, message.as_str()), (400, "invalid batch id"));
    net.stop().await;
}

/// `n` chunks (span ‖ payload) whose addresses share a bucket: vary the span, which costs
/// one keccak per try on top of a fixed BMT root.
fn chunks_in_one_bucket(n: usize) -> Vec<Vec<u8>> {
    let payload = b"bucket";
    let root = bmt::root(payload).expect("root");
    let mut by_bucket: std::collections::HashMap<[u8; 2], Vec<u64>> = Default::default();
    for span in 0u64.. {
        let a = staples_protocol::crypto::keccak256_concat(&[&span.to_le_bytes(), &root]);
        let spans = by_bucket.entry([a[0], a[1]]).or_default();
        spans.push(span);
        if spans.len() == n {
            return spans
                .iter()
                .map(|s| [&s.to_le_bytes()[..], payload].concat())
                .collect();
        }
    }
    unreachable!("the span space is not exhausted before a collision")
}

fn hex_field(case: &serde_json::Value, name: &str) -> Vec<u8> {
    hex::decode(field(case, name)).expect("hex field")
}

/// A virtual node switched to `light` reports it on `/node` and `/status` and receives no
/// PSS (Bee delivers PSS to full nodes only); `ultra-light` also refuses uploads and still
/// serves downloads; `full` again receives PSS; an unknown mode is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn light_and_ultra_light_nodes_act_as_bee_ones() {
    let net = start(2).await;
    let batch = buy(&net, 0, 20).await;
    let urls = net.urls();
    let http = reqwest::Client::new();
    let set_mode = |mode: &str| {
        http.post(format!("{}/_staples/nodes/1/mode/{mode}", urls[0]))
            .send()
    };
    let mode_of = |i: usize| {
        let (http, url) = (http.clone(), urls[i].clone());
        async move {
            let v: serde_json::Value = http
                .get(format!("{url}/node"))
                .send()
                .await
                .expect("/node")
                .json()
                .await
                .expect("json");
            v["beeMode"].as_str().unwrap_or_default().to_string()
        }
    };
    assert_eq!(mode_of(1).await, "full");
    assert!(
        set_mode("light")
            .await
            .expect("admin")
            .status()
            .is_success()
    );
    assert_eq!(mode_of(1).await, "light");
    assert_eq!(mode_of(0).await, "full", "only node 1 changed");

    let receiver = bee(&net, 1);
    let target = receiver
        .debug()
        .addresses()
        .await
        .expect("addresses")
        .overlay;
    let topic = Topic::from_string("light");
    let mut sub = receiver.pss().subscribe(&topic).await.expect("subscribe");
    let sender = bee(&net, 0).pss();
    sender
        .send(
            &batch,
            &topic,
            &target[..2],
            &b"not for a light node"[..],
            None,
        )
        .await
        .expect("send");
    assert!(
        tokio::time::timeout(Duration::from_millis(500), sub.recv())
            .await
            .is_err(),
        "a light node receives no PSS"
    );

    assert!(
        set_mode("ultra-light")
            .await
            .expect("admin")
            .status()
            .is_success()
    );
    let up = http
        .post(format!("{}/bytes", urls[1]))
        .header("Swarm-Postage-Batch-Id", batch.to_hex())
        .body(&b"no postage here"[..])
        .send()
        .await
        .expect("answer");
    assert_eq!(up.status(), reqwest::StatusCode::FORBIDDEN);
    let stored = bee(&net, 0)
        .file()
        .upload_data(&batch, b"readable anywhere".to_vec(), None)
        .await
        .expect("upload on node 0");
    let got = http
        .get(format!("{}/bytes/{}", urls[1], stored.reference.to_hex()))
        .send()
        .await
        .expect("download");
    assert!(
        got.status().is_success(),
        "an ultra-light node still downloads"
    );

    assert!(set_mode("full").await.expect("admin").status().is_success());
    sender
        .send(&batch, &topic, &target[..2], &b"full again"[..], None)
        .await
        .expect("send");
    let got = tokio::time::timeout(Duration::from_secs(10), sub.recv())
        .await
        .expect("in time")
        .expect("frame");
    assert_eq!(&got[..], b"full again");
    let bad = set_mode("heavy").await.expect("admin");
    assert_eq!(bad.status(), reqwest::StatusCode::BAD_REQUEST);
    net.stop().await;
}
