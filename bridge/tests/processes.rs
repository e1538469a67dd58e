//! `staples` as separate processes: two sidecars sharing one Whisper pool, keys surviving a
//! restart, and the outbox surviving a crash.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::{Proc, Ws, ok};
use serde_json::json;

const TOPIC: &str = "0xcd423760";

fn node_args(dir: &std::path::Path) -> Vec<String> {
    vec![
        "--data-dir".into(),
        dir.display().to_string(),
        "--min-pow".into(),
        "0".into(),
        "--keystore-scrypt-log-n".into(),
        "4".into(),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The keystore passphrase of the crash tests' sidecars.
const KEYSTORE: [(&str, &str); 1] = [("STAPLES_KEYSTORE_PASSWORD", "pw")];

/// The `status` chat's key id on `http`.
async fn status_key(http: &str) -> serde_json::Value {
    ok(http, "shh_generateSymKeyFromPassword", json!(["status"])).await
}

/// A polling filter on the `status` chat; its id.
async fn status_filter(http: &str, key: &serde_json::Value) -> serde_json::Value {
    ok(
        http,
        "shh_newMessageFilter",
        json!([{"symKeyID": key, "topics": [TOPIC]}]),
    )
    .await
}

/// Posts `payload` to the `status` chat (TTL 300 s, so a restart finds it unexpired);
/// the envelope hash.
async fn post_status(http: &str, key: &serde_json::Value, payload: &str) -> serde_json::Value {
    ok(
        http,
        "shh_post",
        json!([{"symKeyID": key, "topic": TOPIC, "payload": payload, "ttl": 300}]),
    )
    .await
}

#[tokio::test]
async fn two_processes_exchange_symmetric_and_asymmetric_messages_through_one_pool() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Proc::spawn(&strs(&node_args(da.path())), &[]);
    // Alone, the node has no peers; a sidecar using it as its upstream is one.
    assert_eq!(ok(&a.http, "net_peerCount", json!([])).await, "0x0");
    let mut b_args = node_args(db.path());
    b_args.extend(["--whisper-rpc".into(), a.ws.clone()]);
    let b = Proc::spawn(&strs(&b_args), &[]);

    // Bob (on B) subscribes over WebSocket; the subscription is bridged to A's pool.
    let mut bob = Ws::connect(&b.ws).await;
    let bob_sym = bob
        .call("shh_generateSymKeyFromPassword", json!(["status"]))
        .await["result"]
        .clone();
    let bob_pair = bob.call("shh_newKeyPair", json!([])).await["result"].clone();
    let bob_pub = bob.call("shh_getPublicKey", json!([bob_pair])).await["result"].clone();
    let sub_sym = bob
        .call(
            "shh_subscribe",
            json!(["messages", {"symKeyID": bob_sym, "topics": [TOPIC]}]),
        )
        .await["result"]
        .clone();
    let poll_asym = ok(
        &b.http,
        "shh_newMessageFilter",
        json!([{"privateKeyID": bob_pair}]),
    )
    .await;

    // Alice (on A) posts to the public chat and directly to Bob.
    let alice_sym = ok(&a.http, "shh_generateSymKeyFromPassword", json!(["status"])).await;
    let h1 = ok(
        &a.http,
        "shh_post",
        json!([{"symKeyID": alice_sym, "topic": TOPIC, "payload": "0x6869"}]),
    )
    .await;
    let h2 = ok(
        &a.http,
        "shh_post",
        json!([{"pubKey": bob_pub, "topic": TOPIC, "payload": "0x0102"}]),
    )
    .await;

    let n = bob.notification().await;
    assert_eq!(n["params"]["subscription"], sub_sym);
    assert_eq!(n["params"]["result"]["hash"], h1);
    assert_eq!(n["params"]["result"]["payload"], "0x6869");
    let got = ok(&b.http, "shh_getFilterMessages", json!([poll_asym])).await;
    assert_eq!(got[0]["hash"], h2);
    assert_eq!(got[0]["recipientPublicKey"], bob_pub);

    // And the other way: Bob posts through B, Alice polls on A.
    let alice_f = ok(
        &a.http,
        "shh_newMessageFilter",
        json!([{"symKeyID": alice_sym, "topics": [TOPIC]}]),
    )
    .await;
    let h3 = ok(
        &b.http,
        "shh_post",
        json!([{"symKeyID": bob_sym, "topic": TOPIC, "payload": "0x03"}]),
    )
    .await;
    let got = ok(&a.http, "shh_getFilterMessages", json!([alice_f])).await;
    assert_eq!(got[0]["hash"], h3);
    assert_eq!(ok(&a.http, "net_peerCount", json!([])).await, "0x1");
    assert_eq!(
        ok(&b.http, "net_peerCount", json!([])).await,
        "0x1",
        "upstream mode answers the upstream's count"
    );
    // B's WebSocket to A closes with it: A is alone again.
    b.terminate();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while ok(&a.http, "net_peerCount", json!([])).await != "0x0" {
        assert!(std::time::Instant::now() < deadline, "B still counted");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    a.terminate();
}

/// An HTTP-only JSON-RPC endpoint in front of `target`, as geth's `--rpc` is: POSTs are
/// forwarded, anything else (a WebSocket upgrade) gets a plain `200 OK`. Records the ids
/// `shh_newMessageFilter` answers. Returns its URL.
async fn http_only_front(target: String, filters: Arc<Mutex<Vec<String>>>) -> String {
    let client = reqwest::Client::new();
    let forward = move |headers: axum::http::HeaderMap, body: String| {
        let (client, target, filters) = (client.clone(), target.clone(), filters.clone());
        async move {
            let mut req = client
                .post(&target)
                .header("content-type", "application/json");
            // The sidecar's name passes through, as through any HTTP proxy.
            if let Some(id) = headers.get("x-staples-node") {
                req = req.header("x-staples-node", id.clone());
            }
            let answer = req
                .body(body.clone())
                .send()
                .await
                .expect("upstream answers")
                .text()
                .await
                .expect("body");
            if body.contains("shh_newMessageFilter") {
                let v: serde_json::Value = serde_json::from_str(&answer).expect("json");
                if let Some(id) = v["result"].as_str() {
                    filters.lock().unwrap().push(id.to_string());
                }
            }
            ([("content-type", "application/json")], answer)
        }
    };
    let app = axum::Router::new().route("/", axum::routing::post(forward).get(|| async { "" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// `--whisper-rpc` with an HTTP URL that cannot upgrade to WebSocket (geth's `--rpc`):
/// `shh_subscribe` still works, by polling an upstream filter; a filter the upstream lost
/// is made again, and unsubscribing deletes it upstream.
#[tokio::test]
async fn subscriptions_work_through_an_http_only_upstream() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Proc::spawn(&strs(&node_args(da.path())), &[]);
    let filters = Arc::new(Mutex::new(Vec::new()));
    let front = http_only_front(a.http.clone(), filters.clone()).await;
    let mut b_args = node_args(db.path());
    b_args.extend(["--whisper-rpc".into(), front]);
    let b = Proc::spawn(&strs(&b_args), &[]);

    let mut bob = Ws::connect(&b.ws).await;
    let key = bob
        .call("shh_generateSymKeyFromPassword", json!(["status"]))
        .await["result"]
        .clone();
    let sub = bob
        .call(
            "shh_subscribe",
            json!(["messages", {"symKeyID": key, "topics": [TOPIC]}]),
        )
        .await;
    let sub = sub["result"]
        .as_str()
        .unwrap_or_else(|| panic!("{sub}"))
        .to_string();
    let alice = status_key(&a.http).await;
    let h1 = post_status(&a.http, &alice, "0x01").await;
    let n = bob.notification().await;
    assert_eq!(n["params"]["subscription"], sub.as_str());
    assert_eq!(n["params"]["result"]["hash"], h1);

    // The upstream loses the filter (as a geth restart would): B makes it again.
    let first = filters.lock().unwrap()[0].clone();
    assert_eq!(
        ok(&a.http, "shh_deleteMessageFilter", json!([first])).await,
        true
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while filters.lock().unwrap().len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "filter not made again"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let h2 = post_status(&a.http, &alice, "0x02").await;
    let n = bob.notification().await;
    assert_eq!(n["params"]["result"]["hash"], h2);
    assert_eq!(
        ok(&a.http, "net_peerCount", json!([])).await,
        "0x1",
        "an HTTP-only sidecar counts too"
    );

    // Unsubscribing deletes the upstream filter.
    assert_eq!(
        bob.call("shh_unsubscribe", json!([sub])).await["result"],
        true
    );
    let second = filters.lock().unwrap()[1].clone();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = common::call(&a.http, "shh_getFilterMessages", json!([second])).await;
        if r["error"]["message"] == "filter not found" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "upstream filter kept");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    b.terminate();
    a.terminate();
}

#[tokio::test]
async fn keys_survive_a_restart_with_the_same_data_dir_and_password() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "correct horse\n").unwrap();
    let mut args = node_args(dir.path());
    args.extend([
        "--password-file".into(),
        pw.display().to_string(),
        "--allow-key-export".into(),
    ]);
    let p = Proc::spawn(&strs(&args), &[]);
    let kp = ok(
        &p.http,
        "shh_addPrivateKey",
        json!([format!("0x{}", "07".repeat(32))]),
    )
    .await;
    let sk = ok(
        &p.http,
        "shh_addSymKey",
        json!([format!("0x{}", "09".repeat(32))]),
    )
    .await;
    let gone = ok(&p.http, "shh_newSymKey", json!([])).await;
    ok(&p.http, "shh_deleteSymKey", json!([gone])).await;
    p.terminate();

    let p = Proc::spawn(&strs(&args), &[]);
    assert_eq!(
        ok(&p.http, "shh_getPrivateKey", json!([kp])).await,
        format!("0x{}", "07".repeat(32))
    );
    assert_eq!(
        ok(&p.http, "shh_getSymKey", json!([sk])).await,
        format!("0x{}", "09".repeat(32))
    );
    assert_eq!(ok(&p.http, "shh_hasSymKey", json!([gone])).await, false);
    p.terminate();

    // A wrong password refuses to start rather than run without the keys.
    std::fs::write(&pw, "wrong\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_staples"))
        .args(strs(&args))
        .args(["--rpc-addr", "127.0.0.1:0", "--ws-addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("wrong keystore password"), "{stderr}");
    assert!(!stderr.contains("wrong\n") && !stderr.contains("correct horse"));
}

#[tokio::test]
async fn a_crashed_sidecar_loses_nothing_it_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let args = node_args(dir.path());
    let p = Proc::spawn(&strs(&args), &KEYSTORE);
    let key = status_key(&p.http).await;
    let filter = status_filter(&p.http, &key).await;
    let hash = post_status(&p.http, &key, "0x6869").await;
    p.kill(); // SIGKILL: no graceful shutdown, no flush beyond what was acknowledged.

    let p = Proc::spawn(&strs(&args), &KEYSTORE);
    let got = ok(&p.http, "shh_getFilterMessages", json!([filter])).await;
    assert_eq!(got.as_array().unwrap().len(), 1, "{got}");
    assert_eq!(got[0]["hash"], hash);
    assert_eq!(
        ok(&p.http, "shh_info", json!([])).await["messages"],
        1,
        "the pool was refilled"
    );
    p.terminate();
}

/// Whoever reads the address line may stop the sidecar at once: the signal handlers are
/// installed before it is printed, so SIGTERM right after it is a clean shutdown (it used
/// to take the default action and kill the process).
#[test]
fn sigterm_right_after_the_address_line_shuts_down_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let args = node_args(dir.path());
    for _ in 0..5 {
        Proc::spawn(&strs(&args), &[("STAPLES_KEYSTORE_PASSWORD", "pw")]).terminate();
    }
}

#[test]
fn help_describes_dual_and_pss_refuses_an_upstream_whisper_node() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_staples"))
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_staples"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let pss = help
        .lines()
        .find(|l| l.trim_start().starts_with("- pss:"))
        .unwrap_or_else(|| panic!("no pss line in --help:\n{help}"));
    assert!(!pss.contains("not yet available"), "{pss}");
    let dual = help
        .lines()
        .find(|l| l.trim_start().starts_with("- dual:"))
        .unwrap_or_else(|| panic!("no dual line in --help:\n{help}"));
    assert!(!dual.contains("not yet available"), "{dual}");
    assert!(dual.contains("Whisper"), "{dual}");
    assert!(
        run(&["--transport", "pss", "--whisper-rpc", "http://127.0.0.1:1"]).contains("--bee-api")
    );
}

/// A poll that was answered is not answered again after a crash: the outbox refills the
/// pool but not the filters (what a filter had not taken is in its stored queue).
#[tokio::test]
async fn a_polled_message_is_not_delivered_again_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let args = node_args(dir.path());
    let p = Proc::spawn(&strs(&args), &KEYSTORE);
    let key = status_key(&p.http).await;
    let filter = status_filter(&p.http, &key).await;
    for payload in ["0x01", "0x02"] {
        post_status(&p.http, &key, payload).await;
    }
    let got = ok(&p.http, "shh_getFilterMessages", json!([filter])).await;
    assert_eq!(got.as_array().unwrap().len(), 2, "{got}");
    // The removal of the polled rows is committed shortly after the answer is written.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    p.kill();

    let p = Proc::spawn(&strs(&args), &KEYSTORE);
    let got = ok(&p.http, "shh_getFilterMessages", json!([filter])).await;
    assert_eq!(
        got,
        json!([]),
        "taken before the crash, not handed out again"
    );
    assert_eq!(ok(&p.http, "shh_info", json!([])).await["messages"], 2);
    p.terminate();
}

/// A subscription whose connection dropped keeps what arrives for its criteria, across a
/// crash, and the next `shh_subscribe` with the same criteria gets it first; an explicit
/// `shh_unsubscribe` drops the mailbox.
#[tokio::test]
async fn a_dropped_subscription_keeps_its_messages_for_the_next_subscribe() {
    let dir = tempfile::tempdir().unwrap();
    let args = node_args(dir.path());
    let p = Proc::spawn(&strs(&args), &KEYSTORE);
    let key = status_key(&p.http).await;
    let criteria = json!({"symKeyID": key, "topics": [TOPIC]});

    let mut ws = Ws::connect(&p.ws).await;
    let sub = ws
        .call("shh_subscribe", json!(["messages", criteria.clone()]))
        .await["result"]
        .clone();
    post_status(&p.http, &key, "0x01").await;
    let n = ws.notification().await;
    assert_eq!(n["params"]["subscription"], sub);
    assert_eq!(n["params"]["result"]["payload"], "0x01");
    drop(ws);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    // Nobody is subscribed: kept, even across a SIGKILL.
    let h2 = post_status(&p.http, &key, "0x02").await;
    let h3 = post_status(&p.http, &key, "0x03").await;
    p.kill();
    let p = Proc::spawn(&strs(&args), &KEYSTORE);
    let mut ws = Ws::connect(&p.ws).await;
    let sub = ws
        .call("shh_subscribe", json!(["messages", criteria.clone()]))
        .await["result"]
        .clone();
    for hash in [&h2, &h3] {
        let n = ws.notification().await;
        assert_eq!(n["params"]["subscription"], sub);
        assert_eq!(&n["params"]["result"]["hash"], hash, "{n}");
    }
    // An explicit unsubscribe drops the mailbox: what comes next is not kept for it.
    assert_eq!(
        ws.call("shh_unsubscribe", json!([sub])).await["result"],
        true
    );
    post_status(&p.http, &key, "0x04").await;
    let sub = ws
        .call("shh_subscribe", json!(["messages", criteria]))
        .await["result"]
        .clone();
    post_status(&p.http, &key, "0x05").await;
    let n = ws.notification().await;
    assert_eq!(n["params"]["subscription"], sub);
    assert_eq!(
        n["params"]["result"]["payload"], "0x05",
        "0x04 was not kept"
    );
    p.terminate();
}
