//! Shared helpers for the dev node's HTTP tests: start a network, make clients, buy batches.

#![allow(dead_code)]

use std::time::Duration;

use bee::Client;
use bee::swarm::BatchId;
use num_bigint::BigInt;
use staples_devnode::{DevNet, DevNetConfig};

/// Enough for the 24 h minimum validity at 24000 PLUR per block (bee-js's rule too).
pub const AMOUNT: u64 = 500_000_000;

pub async fn start(nodes: usize) -> DevNet {
    start_with(DevNetConfig::for_tests(nodes)).await
}

pub async fn start_with(config: DevNetConfig) -> DevNet {
    DevNet::start(config).await.expect("dev network starts")
}

/// A bee-rs client for node `i`.
pub fn bee(net: &DevNet, i: usize) -> Client {
    Client::new(&net.urls()[i]).expect("valid url")
}

/// A plain HTTP client for what bee-rs does not cover (headers, raw errors, admin routes).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// Buys a batch of `depth` on node `i` through bee-rs.
pub async fn buy(net: &DevNet, i: usize, depth: u8) -> BatchId {
    bee(net, i)
        .postage()
        .create_postage_batch(&BigInt::from(AMOUNT), depth, Some("test"))
        .await
        .expect("batch bought")
}

/// `{"code":N,"message":...}` of an error response, checked for Bee's shape.
pub async fn error_body(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = json_of(resp).await;
    assert_eq!(content_type, "application/json; charset=utf-8");
    assert_eq!(body["code"], status, "code mirrors the status: {body}");
    (
        status,
        body["message"].as_str().unwrap_or_default().to_string(),
    )
}

/// A response body as JSON (reqwest's `json` feature is not enabled in this workspace).
pub async fn json_of(resp: reqwest::Response) -> serde_json::Value {
    let bytes = resp.bytes().await.expect("body");
    serde_json::from_slice(&bytes).expect("JSON body")
}

/// `body` as a JSON request body.
pub fn with_json(
    req: reqwest::RequestBuilder,
    body: &serde_json::Value,
) -> reqwest::RequestBuilder {
    req.header("content-type", "application/json")
        .body(serde_json::to_vec(body).expect("serialisable"))
}

/// Data `b[i] = i % 251`, the generator of the shared `/bytes` vectors.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Polls `f` until it returns true or `timeout` passes.
pub async fn eventually(timeout: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if f().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The shared cross-implementation vectors (`../shared/vectors/swarm.json`, or
/// `$STAPLES_VECTORS/swarm.json`). A missing file fails the test.
pub fn vectors() -> &'static serde_json::Value {
    static V: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        let dir = std::env::var_os("STAPLES_VECTORS")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors").into());
        let path = dir.join("swarm.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("swarm vectors must exist at {}: {e}", path.display()));
        serde_json::from_str(&text).expect("swarm.json is valid JSON")
    })
}

/// The vector case of list `list` whose `key` field equals `value`.
pub fn vector(
    list: &str,
    key: &str,
    value: impl Into<serde_json::Value>,
) -> &'static serde_json::Value {
    let value = value.into();
    vectors()[list]
        .as_array()
        .and_then(|cases| cases.iter().find(|c| c[key] == value))
        .unwrap_or_else(|| panic!("swarm.json {list} has no case with {key} = {value}"))
}

/// A string field of a vector case.
pub fn field<'a>(case: &'a serde_json::Value, name: &str) -> &'a str {
    case[name]
        .as_str()
        .unwrap_or_else(|| panic!("field {name} missing in {case}"))
}
