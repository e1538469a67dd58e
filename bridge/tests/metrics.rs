//! `/metrics` end to end: a real `staples --transport=pss` (embedded dev node) is scraped
//! after an app posted and polled, and the text is read with `prometheus-parse`, a
//! Prometheus exposition-format parser nobody here wrote. Every number checked is compared
//! with what `staples_status` says, not with a typed-in value; the histograms have counted
//! the calls and commits just made; `--metrics-addr` serves `/metrics` alone; a foreign
//! Origin is refused as on the RPC.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Proc, hex0x, ok};
use serde_json::{Value, json};

async fn scrape(url: &str) -> (u16, String, String) {
    let resp = reqwest::get(url).await.expect("scrape");
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, ct, resp.text().await.unwrap())
}

fn value(s: &prometheus_parse::Sample) -> f64 {
    match s.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        _ => f64::NAN,
    }
}

fn find<'a>(
    scrape: &'a prometheus_parse::Scrape,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<&'a prometheus_parse::Sample> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
}

#[tokio::test]
async fn metrics_are_prometheus_text_that_matches_staples_status() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let p = Proc::spawn(
        &[
            "--transport",
            "pss",
            "--data-dir",
            &data,
            "--min-pow",
            "0",
            "--metrics-addr",
            &metrics_addr,
        ],
        &[],
    );
    // An app at work: a key, a filter, a post, a poll.
    let key = ok(
        &p.http,
        "shh_generateSymKeyFromPassword",
        json!(["metrics"]),
    )
    .await;
    let filter = ok(
        &p.http,
        "shh_newMessageFilter",
        json!([{"symKeyID": key, "topics": ["0x01020304"]}]),
    )
    .await;
    ok(
        &p.http,
        "shh_post",
        json!([{"symKeyID": key, "topic": "0x01020304", "payload": hex0x(b"hi"), "ttl": 60}]),
    )
    .await;
    ok(&p.http, "shh_getFilterMessages", json!([filter])).await;

    let (code, ct, text) = scrape(&format!("{}/metrics", p.http)).await;
    assert_eq!(code, 200);
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let status: Value = ok(&p.http, "staples_status", json!([])).await;
    let parsed =
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("parses");

    let info = find(&parsed, "staples_info", &[("transport", "pss")]).expect("staples_info");
    assert_eq!(value(info), 1.0);
    let depth = find(&parsed, "staples_outbox_depth", &[]).expect("outbox depth");
    assert!(matches!(depth.value, prometheus_parse::Value::Gauge(_)));
    // Counters only grow; the status was read after the scrape.
    let posted = find(&parsed, "staples_posted_total", &[]).expect("posted");
    assert!(matches!(posted.value, prometheus_parse::Value::Counter(_)));
    let now = status["counters"]["posted"].as_f64().unwrap();
    assert!(
        value(posted) >= 1.0 && value(posted) <= now,
        "{} vs {now}",
        value(posted)
    );
    let delivered = find(&parsed, "staples_chat_delivered_total", &[]).expect("cumulative");
    assert!(matches!(
        delivered.value,
        prometheus_parse::Value::Counter(_)
    ));
    let chat = status["chats"][0]["chat"].as_str().unwrap();
    let pending = find(&parsed, "staples_chat_pending", &[("chat", chat)]).expect("per chat");
    assert_eq!(
        value(pending),
        status["chats"][0]["pending"].as_f64().unwrap()
    );
    assert!(find(&parsed, "staples_bee_ok", &[]).is_some());

    // The histograms counted what the app just did.
    let post = parsed.samples.iter().find(|s| {
        s.metric == "staples_rpc_duration_seconds_count"
            && s.labels.get("method") == Some("shh_post")
    });
    let post = post.expect("shh_post latency");
    assert!(value(post) >= 1.0);
    let commits = find(&parsed, "staples_store_commit_duration_seconds_count", &[]).unwrap();
    assert!(value(commits) >= 1.0);
    let buckets: Vec<_> = parsed
        .samples
        .iter()
        .filter(|s| s.metric == "staples_rpc_duration_seconds")
        .collect();
    assert!(
        buckets
            .iter()
            .any(|s| matches!(s.value, prometheus_parse::Value::Histogram(_))),
        "histogram buckets parse as a histogram"
    );

    // --metrics-addr: /metrics alone.
    let (code, _, text2) = scrape(&format!("http://{metrics_addr}/metrics")).await;
    assert_eq!(code, 200);
    assert!(text2.contains("staples_info"));
    let (code, _, _) = scrape(&format!("http://{metrics_addr}/")).await;
    assert_eq!(code, 404, "only /metrics there");

    // The RPC's Origin rule holds for /metrics.
    let refused = reqwest::Client::new()
        .get(format!("{}/metrics", p.http))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    p.terminate();
}
