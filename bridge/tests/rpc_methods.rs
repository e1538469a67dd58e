//! Every `shh_*`, `net_*` and `web3_*` method and each geth error, driven over real HTTP and
//! WebSocket against an in-process sidecar bound to 127.0.0.1:0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Server, Ws, err, hex0x, ok, post_raw};
use serde_json::{Value, json};
use staples_bridge::config::{RunArgs, Transport};

fn local(export: bool, t: Transport) -> RunArgs {
    RunArgs {
        transport: Some(t),
        // pss with no --bee-api starts its own embedded Swarm dev node.
        sync_interval_ms: Some(200),
        min_pow: Some(0.0),
        allow_key_export: Some(export),
        ..Default::default()
    }
}

async fn every_shh_method_over_http_with_geth_errors(t: Transport) {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), local(true, t)).await;
    let u = s.http.as_str();

    assert_eq!(ok(u, "shh_version", json!([])).await, "6.0");
    let info = ok(u, "shh_info", json!([])).await;
    assert_eq!(info["maxMessageSize"], 1048576);
    assert_eq!(
        ok(u, "shh_setMaxMessageSize", json!([2_000_000])).await,
        true
    );
    assert_eq!(
        err(u, "shh_setMaxMessageSize", json!([20_000_000])).await,
        (-32000, "message size too large [20000000>10485760]".into())
    );
    assert_eq!(ok(u, "shh_setMinPoW", json!([0.0])).await, true);
    assert_eq!(
        err(u, "shh_setMinPoW", json!([-1])).await,
        (-32000, "invalid PoW: -1.000000".into())
    );
    assert_eq!(
        ok(u, "shh_setBloomFilter", json!([hex0x(&[0xff; 64])])).await,
        true
    );
    assert_eq!(
        err(u, "shh_setBloomFilter", json!(["0x00"])).await,
        (-32000, "invalid bloom filter size: 1".into())
    );
    assert_eq!(
        err(u, "shh_markTrustedPeer", json!(["http://x"])).await,
        (-32000, "invalid URL scheme, want \"enode\"".into())
    );
    assert_eq!(ok(u, "shh_makeLightClient", json!([])).await, true);
    assert_eq!(ok(u, "shh_cancelLightClient", json!([])).await, true);

    // Key pairs.
    let kp = ok(u, "shh_newKeyPair", json!([])).await;
    let kp = kp.as_str().unwrap().to_string();
    assert_eq!(kp.len(), 64);
    assert_eq!(ok(u, "shh_hasKeyPair", json!([kp])).await, true);
    let pubkey = ok(u, "shh_getPublicKey", json!([kp])).await;
    assert_eq!(pubkey.as_str().unwrap().len(), 2 + 130);
    assert_eq!(
        ok(u, "shh_getPrivateKey", json!([kp]))
            .await
            .as_str()
            .unwrap()
            .len(),
        66
    );
    let enode = format!("enode://{}@127.0.0.1:30303", &pubkey.as_str().unwrap()[4..]);
    assert!(
        err(u, "shh_markTrustedPeer", json!([enode]))
            .await
            .1
            .starts_with("Could not find peer with ID: ")
    );
    assert_eq!(
        err(u, "shh_getPublicKey", json!(["nope"])).await,
        (-32000, "invalid id".into())
    );
    let added = ok(u, "shh_addPrivateKey", json!([hex0x(&[7; 32])])).await;
    assert_eq!(
        ok(u, "shh_getPrivateKey", json!([added])).await,
        hex0x(&[7; 32])
    );
    assert_eq!(
        err(u, "shh_addPrivateKey", json!(["0x0102"])).await,
        (-32000, "invalid length, need 256 bits".into())
    );
    assert_eq!(
        err(u, "shh_addPrivateKey", json!(["0102"])).await,
        (-32602, "invalid argument 0: json: cannot unmarshal hex string without 0x prefix into Go value of type hexutil.Bytes".into())
    );
    assert_eq!(ok(u, "shh_deleteKeyPair", json!([added])).await, true);
    assert_eq!(
        err(u, "shh_deleteKeyPair", json!([added])).await,
        (
            -32000,
            format!("key pair {} not found", added.as_str().unwrap())
        )
    );
    assert_eq!(ok(u, "shh_hasKeyPair", json!([added])).await, false);

    // Symmetric keys.
    let sk = ok(u, "shh_newSymKey", json!([])).await;
    assert_eq!(ok(u, "shh_hasSymKey", json!([sk])).await, true);
    let ak = ok(u, "shh_addSymKey", json!([hex0x(&[9; 32])])).await;
    assert_eq!(ok(u, "shh_getSymKey", json!([ak])).await, hex0x(&[9; 32]));
    assert_eq!(
        err(u, "shh_addSymKey", json!(["0x0102"])).await,
        (-32000, "wrong key size: 2".into())
    );
    assert_eq!(
        err(u, "shh_getSymKey", json!(["nope"])).await,
        (-32000, "non-existent key ID".into())
    );
    let pk = ok(u, "shh_generateSymKeyFromPassword", json!(["status"])).await;
    assert_eq!(
        ok(u, "shh_getSymKey", json!([pk])).await,
        "0x36224048e42c49e5c59c57bba5024fbb8822d6b4ee6ac5fbefd8b77f5323ecc4"
    );
    assert_eq!(ok(u, "shh_deleteSymKey", json!([ak])).await, true);
    assert_eq!(ok(u, "shh_deleteSymKey", json!([ak])).await, false);

    // Filters and posts, with Go's case-insensitive keys.
    let topic = "0xcd423760";
    let f = ok(
        u,
        "shh_newMessageFilter",
        json!([{"symkeyid": pk, "Topics": [topic]}]),
    )
    .await;
    let fa = ok(u, "shh_newMessageFilter", json!([{"privateKeyID": kp}])).await;
    let hash = ok(
        u,
        "shh_post",
        json!([{"symKeyID": pk, "topic": topic, "payload": "0x68656c6c6f", "sig": kp, "ttl": 20}]),
    )
    .await;
    assert_eq!(hash.as_str().unwrap().len(), 66);
    ok(
        u,
        "shh_post",
        json!([{"pubKey": pubkey, "payload": "0x01", "powTarget": 0.2, "powTime": 5}]),
    )
    .await;
    let msgs = ok(u, "shh_getFilterMessages", json!([f])).await;
    assert_eq!(msgs.as_array().unwrap().len(), 1);
    let m = &msgs[0];
    assert_eq!(
        (
            m["payload"].as_str(),
            m["topic"].as_str(),
            m["hash"].clone()
        ),
        (Some("0x68656c6c6f"), Some(topic), hash)
    );
    assert_eq!(m["sig"], pubkey);
    assert_eq!(m["ttl"], 20);
    assert!(m.get("recipientPublicKey").is_none());
    assert_eq!(
        ok(u, "shh_getFilterMessages", json!([f])).await,
        json!([]),
        "returns and clears"
    );
    let direct = ok(u, "shh_getFilterMessages", json!([fa])).await;
    assert_eq!(direct[0]["recipientPublicKey"], pubkey);
    assert!(direct[0]["pow"].as_f64().unwrap() >= 0.2);
    assert_eq!(ok(u, "shh_deleteMessageFilter", json!([f])).await, true);
    assert_eq!(
        err(u, "shh_deleteMessageFilter", json!([f])).await,
        (-32000, "Unsubscribe: Invalid ID".into())
    );
    assert_eq!(
        err(u, "shh_getFilterMessages", json!([f])).await,
        (-32000, "filter not found".into())
    );

    // shh_post errors.
    let e = |m: &str| (-32000i64, m.to_string());
    assert_eq!(
        err(u, "shh_post", json!([{"topic": topic, "payload": "0x01"}])).await,
        e("specify either a symmetric or an asymmetric key")
    );
    assert_eq!(
        err(
            u,
            "shh_post",
            json!([{"symKeyID": pk, "pubKey": pubkey, "topic": topic}])
        )
        .await,
        e("specify either a symmetric or an asymmetric key")
    );
    assert_eq!(
        err(u, "shh_post", json!([{"symKeyID": pk, "payload": "0x01"}])).await,
        e("missing topic(s)")
    );
    assert_eq!(
        err(u, "shh_post", json!([{"symKeyID": "nope", "topic": topic}])).await,
        e("non-existent key ID")
    );
    assert_eq!(
        err(u, "shh_post", json!([{"pubKey": "0x0102", "topic": topic}])).await,
        e("invalid public key")
    );
    assert_eq!(
        err(u, "shh_post", json!([{"symKeyID": pk, "topic": topic, "payload": "01"}])).await,
        (-32602, "invalid argument 0: json: cannot unmarshal hex string without 0x prefix into Go struct field NewMessage.payload of type hexutil.Bytes".into())
    );
    assert_eq!(
        err(u, "shh_post", json!([{"symKeyID": pk, "topic": "0x01"}])).await,
        (
            -32602,
            "invalid argument 0: hex string has length 2, want 8 for Topic".into()
        )
    );
    assert_eq!(
        err(u, "shh_post", json!([{"symKeyID": pk, "topic": topic, "ttl": "50"}])).await,
        (-32602, "invalid argument 0: json: cannot unmarshal string into Go struct field NewMessage.ttl of type uint32".into())
    );
    ok(u, "shh_setMinPoW", json!([0.2])).await;
    assert_eq!(
        err(u, "shh_post", json!([{"symKeyID": pk, "topic": topic}])).await,
        e("message rejected, PoW too low")
    );
    assert_eq!(
        err(
            u,
            "shh_subscribe",
            json!(["messages", {"symKeyID": pk, "topics": [topic]}])
        )
        .await,
        e("notifications not supported")
    );
    assert_eq!(
        err(u, "shh_unsubscribe", json!(["0x1"])).await,
        e("notifications not supported")
    );
    assert_eq!(
        err(
            u,
            "shh_newMessageFilter",
            json!([{"symKeyID": pk, "privateKeyID": kp}])
        )
        .await,
        e("specify either a symmetric or an asymmetric key")
    );
    assert_eq!(
        err(u, "shh_newMessageFilter", json!([{"privateKeyID": "nope"}])).await,
        e("invalid id")
    );
    assert_eq!(
        err(
            u,
            "shh_newMessageFilter",
            json!([{"symKeyID": pk, "sig": "0x01"}])
        )
        .await,
        e("invalid signing public key")
    );

    // net, web3 and framing errors.
    assert_eq!(ok(u, "net_version", json!([])).await, "1");
    assert_eq!(ok(u, "net_listening", json!([])).await, true);
    assert_eq!(ok(u, "net_peerCount", json!([])).await, "0x0");
    assert!(
        ok(u, "web3_clientVersion", json!([]))
            .await
            .as_str()
            .unwrap()
            .starts_with("Staples/v")
    );
    assert_eq!(
        err(u, "shh_nope", json!([])).await,
        (
            -32601,
            "the method shh_nope does not exist/is not available".into()
        )
    );
    assert_eq!(err(u, "shh_hasSymKey", json!([1])).await.0, -32602);
    assert_eq!(
        err(u, "shh_hasSymKey", json!([])).await,
        (-32602, "missing value for required argument 0".into())
    );
    let (st, body) = post_raw(u, "{not json", &[]).await;
    assert_eq!(
        (st, body.as_str()),
        (
            200,
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}"#
        )
    );
    let (_, body) = post_raw(u, r#"{"jsonrpc":"2.0","id":3}"#, &[]).await;
    assert_eq!(
        body,
        r#"{"jsonrpc":"2.0","id":3,"error":{"code":-32600,"message":"invalid request"}}"#
    );
    let (_, body) = post_raw(u, r#"[{"jsonrpc":"2.0","id":1,"method":"shh_version"},{"jsonrpc":"2.0","id":2,"method":"net_version"}]"#, &[]).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v[0]["result"].clone(), v[1]["result"].clone()),
        (json!("6.0"), json!("1"))
    );
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"shh_post","params":[{{"payload":"0x{}"}}]}}"#,
        "00".repeat(3 * 1024 * 1024)
    );
    assert_eq!(
        post_raw(u, &big, &[]).await.0,
        413,
        "oversized body refused"
    );
    // The server keeps serving after all of that.
    assert_eq!(ok(u, "shh_version", json!([])).await, "6.0");
    s.stop().await;
}

async fn websocket_subscriptions_push_messages_and_unsubscribe(t: Transport) {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), local(false, t)).await;
    let mut ws = Ws::connect(&s.ws).await;
    let key = ws
        .call("shh_generateSymKeyFromPassword", json!(["status"]))
        .await["result"]
        .clone();
    let topic = "0xcd423760";
    let r = ws
        .call("shh_subscribe", json!(["messages", {"symKeyID": key}]))
        .await;
    assert_eq!(r["error"]["message"], "missing topic(s)");
    let r = ws.call("shh_subscribe", json!(["nope", {}])).await;
    assert_eq!(
        (r["error"]["code"].clone(), r["error"]["message"].clone()),
        (
            json!(-32601),
            json!(r#"no "nope" subscription in shh namespace"#)
        )
    );
    let sub = ws
        .call(
            "shh_subscribe",
            json!(["messages", {"symKeyID": key, "topics": [topic]}]),
        )
        .await["result"]
        .clone();
    let sub = sub.as_str().unwrap().to_string();
    assert!(sub.starts_with("0x") && !sub.starts_with("0x0"));

    // A message posted over HTTP by another client arrives as a notification.
    let hash = ok(
        &s.http,
        "shh_post",
        json!([{"symKeyID": key, "topic": topic, "payload": "0x6869"}]),
    )
    .await;
    let n = ws.notification().await;
    assert_eq!(n["method"], "shh_subscription");
    assert_eq!(n["params"]["subscription"], sub.as_str());
    assert_eq!(n["params"]["result"]["payload"], "0x6869");
    assert_eq!(n["params"]["result"]["hash"], hash);

    assert_eq!(
        ws.call("shh_unsubscribe", json!([sub])).await["result"],
        true
    );
    assert_eq!(
        ws.call("shh_unsubscribe", json!([sub])).await["error"]["message"],
        "subscription not found"
    );
    ok(
        &s.http,
        "shh_post",
        json!([{"symKeyID": key, "topic": topic, "payload": "0x01"}]),
    )
    .await;
    let v = ws.call("shh_version", json!([])).await;
    assert_eq!(v["result"], "6.0");
    assert!(
        ws.backlog.is_empty(),
        "no notification after unsubscribe: {:?}",
        ws.backlog
    );

    // A client that drops its socket loses its subscriptions; the server carries on.
    let mut other = Ws::connect(&s.ws).await;
    other
        .call(
            "shh_subscribe",
            json!(["messages", {"symKeyID": key, "topics": [topic]}]),
        )
        .await;
    drop(other);
    ok(
        &s.http,
        "shh_post",
        json!([{"symKeyID": key, "topic": topic, "payload": "0x02"}]),
    )
    .await;
    assert_eq!(ok(&s.http, "shh_version", json!([])).await, "6.0");
    s.stop().await;
}

async fn key_export_is_refused_unless_allowed(t: Transport) {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), local(false, t)).await;
    let kp = ok(&s.http, "shh_newKeyPair", json!([])).await;
    let sk = ok(&s.http, "shh_newSymKey", json!([])).await;
    for (m, id) in [("shh_getPrivateKey", kp), ("shh_getSymKey", sk)] {
        let (code, msg) = err(&s.http, m, json!([id])).await;
        assert_eq!(code, -32000);
        assert!(msg.contains("--allow-key-export"), "{msg}");
    }
    s.stop().await;
}

async fn origin_and_token_checks(t: Transport) {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let args = RunArgs {
        rpc_token_file: Some(token),
        rpc_cors: vec!["http://app.local".into()],
        ..local(false, t)
    };
    let s = Server::start(dir.path(), args).await;
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"shh_version"}"#;
    assert_eq!(post_raw(&s.http, body, &[]).await.0, 401, "token required");
    assert_eq!(
        post_raw(&s.http, body, &[("authorization", "Bearer wrong")])
            .await
            .0,
        401
    );
    let auth = ("authorization", "Bearer s3cret");
    assert_eq!(post_raw(&s.http, body, &[auth]).await.0, 200);
    assert_eq!(
        post_raw(&s.http, body, &[auth, ("origin", "http://evil.example")])
            .await
            .0,
        403,
        "DNS-rebinding defence"
    );
    assert_eq!(
        post_raw(&s.http, body, &[auth, ("origin", "http://app.local")])
            .await
            .0,
        200
    );
    let resp = reqwest::Client::new()
        .post(&s.http)
        .header("content-type", "text/plain")
        .header(auth.0, auth.1)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 415);
    s.stop().await;
}

/// The same API tests in both modes: the app must not see which transport is behind.
mod both_modes {
    use super::*;

    #[tokio::test]
    async fn every_shh_method_over_http_with_geth_errors_whisper() {
        super::every_shh_method_over_http_with_geth_errors(Transport::Whisper).await;
    }

    #[tokio::test]
    async fn every_shh_method_over_http_with_geth_errors_pss() {
        super::every_shh_method_over_http_with_geth_errors(Transport::Pss).await;
    }

    #[tokio::test]
    async fn websocket_subscriptions_push_messages_and_unsubscribe_whisper() {
        super::websocket_subscriptions_push_messages_and_unsubscribe(Transport::Whisper).await;
    }

    #[tokio::test]
    async fn websocket_subscriptions_push_messages_and_unsubscribe_pss() {
        super::websocket_subscriptions_push_messages_and_unsubscribe(Transport::Pss).await;
    }

    #[tokio::test]
    async fn key_export_is_refused_unless_allowed_whisper() {
        super::key_export_is_refused_unless_allowed(Transport::Whisper).await;
    }

    #[tokio::test]
    async fn key_export_is_refused_unless_allowed_pss() {
        super::key_export_is_refused_unless_allowed(Transport::Pss).await;
    }

    #[tokio::test]
    async fn origin_and_token_checks_whisper() {
        super::origin_and_token_checks(Transport::Whisper).await;
    }

    #[tokio::test]
    async fn origin_and_token_checks_pss() {
        super::origin_and_token_checks(Transport::Pss).await;
    }
}
