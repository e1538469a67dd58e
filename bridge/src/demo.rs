//! `staples demo`: the seed scenario, played on one machine with a readable transcript.
//!
//! Starts the embedded Swarm dev node with three virtual Bee nodes and three sidecars
//! (Alice, Bob, Charlie) in this process, each on its own Bee node, data dir and ports, and
//! drives them only through their public JSON-RPC, as apps would:
//!
//! 1. Alice writes to Bob's public key while Bob's sidecar is not running.
//! 2. Bob starts, listens with his key, catches up from Alice's inbox feed (messages are
//!    fetched in parallel and released in causal order), then gets live ones over PSS.
//! 3. A group chat (symmetric key) of Alice and Bob; Charlie starts late and catches up
//!    from both members' inboxes through the chat's rendezvous roster.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use staples_protocol::crypto::PrivateKey;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::config::{Config, LogFormat, Transport};
use crate::keystore::KdfParams;

/// A `--transport=pss` sidecar running in this process (the demo's and the catch-up
/// benchmark's), reached only through its JSON-RPC.
pub struct Peer {
    name: &'static str,
    /// Its JSON-RPC URL.
    pub url: String,
    /// Its WebSocket URL.
    pub ws: String,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Peer {
    /// Starts `name`'s sidecar on Bee node `bee`, with its data under `dir/name`.
    pub async fn start(name: &'static str, bee: &str, dir: &Path) -> Result<Peer> {
        let rpc = TcpListener::bind("127.0.0.1:0").await?;
        let ws = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", rpc.local_addr()?);
        let ws_url = format!("ws://{}", ws.local_addr()?);
        let cfg = Config {
            transport: Transport::Pss,
            rpc_addr: rpc.local_addr()?,
            ws_addr: ws.local_addr()?,
            data_dir: dir.join(name),
            whisper_rpc: None,
            bee_api: vec![bee.to_string()],
            password: Some(crate::keystore::Password::new("staples-demo".into())),
            allow_key_export: false,
            rpc_allow_remote: false,
            rpc_token: None,
            rpc_cors: vec![],
            log_format: LogFormat::Human,
            min_pow: 0.0,
            // Cheap key files: this is a throwaway demo keystore.
            kdf: KdfParams::with_log_n(10),
            sync_interval: Duration::from_millis(300),
            bee_timeout: Duration::from_secs(20),
            // Three dev-node peers: one overlay byte reaches each (see --pss-target-bytes).
            pss_target_bytes: Some(1),
            gap_deadline: Duration::from_secs(300),
            relay: None,
            p2p_addr: None,
            p2p_envelope_rate: crate::devp2p::DEFAULT_ENVELOPE_RATE,
            topic_logs: false,
            mailserver: None,
            metrics_addr: None,
            reads: Default::default(),
            whisper_peers: Vec::new(),
        };
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            if let Err(e) = crate::sidecar::run(cfg, vec![rpc, ws], shutdown).await {
                eprintln!("{name}'s sidecar stopped: {e}");
            }
        });
        Ok(Peer {
            name,
            url,
            ws: ws_url,
            stop: Some(tx),
            task,
        })
    }

    /// One JSON-RPC call; an error answer is an `Err`.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let resp: Value = reqwest::Client::new()
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("{} unreachable", self.name))?
            .json()
            .await?;
        if let Some(e) = resp.get("error") {
            bail!("{}: {method} failed: {e}", self.name);
        }
        Ok(resp.get("result").cloned().unwrap_or(Value::Null))
    }

    /// Stops the sidecar and waits for its store to flush.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = self.task.await;
    }
}

fn hex0x(b: &[u8]) -> String {
    format!("0x{}", hex::encode(b))
}

fn text(m: &Value) -> String {
    let p = m["payload"].as_str().unwrap_or_default();
    let bytes = hex::decode(p.trim_start_matches("0x")).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Polls a filter until `n` messages arrived (or `timeout`), in arrival order.
async fn collect(peer: &Peer, filter: &str, n: usize, timeout: Duration) -> Result<Vec<Value>> {
    let start = Instant::now();
    let mut got = Vec::new();
    while got.len() < n {
        if start.elapsed() > timeout {
            let status = peer
                .call("staples_status", json!([]))
                .await
                .unwrap_or_default();
            bail!(
                "{} got {} of {n} messages within {timeout:?}; its staples_status: {status}",
                peer.name,
                got.len()
            );
        }
        if let Value::Array(ms) = peer.call("shh_getFilterMessages", json!([filter])).await? {
            got.extend(ms);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(got)
}

async fn post(from: &Peer, params: Value, body: &str) -> Result<()> {
    let mut p = params;
    p["payload"] = json!(hex0x(body.as_bytes()));
    p["ttl"] = json!(60);
    p["powTarget"] = json!(0);
    p["powTime"] = json!(1);
    from.call("shh_post", json!([p])).await?;
    println!("  {:<8}→ {body}", from.name);
    Ok(())
}

/// Who signed what: public key (`0x` hex, as messages carry it in `sig`) → name.
type Signers = std::collections::BTreeMap<String, &'static str>;

/// Prints what `to` received, each line naming the sender by the key that signed it
/// (from the message itself, not from what we expect), and fails unless the texts are
/// exactly `want` (in this order when `ordered`).
fn show(
    to: &Peer,
    msgs: &[Value],
    signers: &Signers,
    want: &[&str],
    ordered: bool,
    t0: Instant,
) -> Result<()> {
    for m in msgs {
        let sig = m["sig"].as_str().unwrap_or_default().to_ascii_lowercase();
        let from = signers.get(&sig).copied().unwrap_or("someone unknown");
        let line = format!("{from}: {}", text(m));
        println!(
            "  {:<8}← {line:<48} (+{} ms)",
            to.name,
            t0.elapsed().as_millis()
        );
    }
    let mut got: Vec<String> = msgs.iter().map(text).collect();
    let mut expected: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    if !ordered {
        got.sort();
        expected.sort();
    }
    if got != expected {
        bail!("{} received {got:?}, expected {expected:?}", to.name);
    }
    Ok(())
}

/// Fails unless `peer`'s delivery order is causal: every parent it delivered came before
/// its child (`staples_history` is in delivery order).
async fn check_causal(peer: &Peer) -> Result<()> {
    let history = peer.call("staples_history", json!([])).await?;
    let mut seen = std::collections::HashSet::new();
    let all: std::collections::HashSet<&str> = history
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["id"].as_str())
        .collect();
    for h in history.as_array().into_iter().flatten() {
        for p in h["parents"].as_array().into_iter().flatten() {
            let p = p.as_str().unwrap_or_default();
            if all.contains(p) && !seen.contains(p) {
                bail!("{} delivered {} before its parent {p}", peer.name, h["id"]);
            }
        }
        seen.insert(h["id"].as_str().unwrap_or_default());
    }
    Ok(())
}

/// Runs the demo; `dir` holds the three sidecars' data (a temporary dir if `None`).
pub async fn run(dir: Option<PathBuf>) -> Result<()> {
    let tmp;
    // The DAG picture outlives the run: in the data dir if given, else in the system's
    // temporary directory.
    let picture = match &dir {
        Some(d) => d.join("group-dag.svg"),
        None => std::env::temp_dir().join("staples-demo-group-dag.svg"),
    };
    let dir = match dir {
        Some(d) => d,
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    println!("Staples demo: three sidecars on one embedded Swarm dev node (3 Bee nodes)\n");
    let swarm = crate::swarm::embedded::start_embedded(3, None)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let urls = swarm.urls();
    for (name, u) in ["Alice", "Bob", "Charlie"].iter().zip(&urls) {
        println!("  {name:<8} Bee API {u}");
    }
    let topic = "0x5354504c";

    // Bob's identity exists before his sidecar runs; Alice knows his public key (a QR
    // code, in Status terms).
    let bob_key = PrivateKey::random(&mut rand::rngs::OsRng);
    let bob_pub = hex0x(&bob_key.public_key().to_uncompressed());
    let mut signers = Signers::new();
    signers.insert(bob_pub.clone(), "Bob");

    println!("\n1. Alice writes to Bob while Bob is offline");
    let alice = Peer::start("Alice", &urls[0], &dir).await?;
    let alice_id = alice.call("shh_newKeyPair", json!([])).await?;
    let alice_pub = alice.call("shh_getPublicKey", json!([alice_id])).await?;
    signers.insert(
        alice_pub.as_str().unwrap_or_default().to_ascii_lowercase(),
        "Alice",
    );
    let offline: Vec<String> = (1..=5)
        .map(|i| format!("message {i} while you were away"))
        .collect();
    for t in &offline {
        post(
            &alice,
            json!({"pubKey": bob_pub, "sig": alice_id, "topic": topic}),
            t,
        )
        .await?;
    }

    println!("\n2. Bob starts, catches up from Alice's feed, then gets live messages");
    let t0 = Instant::now();
    let bob = Peer::start("Bob", &urls[1], &dir).await?;
    let bob_id = bob
        .call("shh_addPrivateKey", json!([hex0x(&bob_key.to_bytes())]))
        .await?;
    let bob_filter = bob
        .call(
            "shh_newMessageFilter",
            json!([{"privateKeyID": bob_id, "topics": [topic]}]),
        )
        .await?;
    let bob_filter = bob_filter.as_str().unwrap_or_default().to_string();
    let caught_up = collect(&bob, &bob_filter, 5, Duration::from_secs(30)).await?;
    // Each names the previous one as its parent: causal order is the only order.
    let want: Vec<&str> = offline.iter().map(String::as_str).collect();
    show(&bob, &caught_up, &signers, &want, true, t0)?;
    check_causal(&bob).await?;
    // Live: Alice's sidecar finds Bob's contact record and reaches him over PSS.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let t1 = Instant::now();
    let live_text = "you are online now: this one is live";
    post(
        &alice,
        json!({"pubKey": bob_pub, "sig": alice_id, "topic": topic}),
        live_text,
    )
    .await?;
    let live = collect(&bob, &bob_filter, 1, Duration::from_secs(30)).await?;
    show(&bob, &live, &signers, &[live_text], true, t1)?;

    println!("\n3. A group chat; Charlie joins late and catches up");
    let group = json!(["staples-demo-group"]);
    let a_key = alice
        .call("shh_generateSymKeyFromPassword", group.clone())
        .await?;
    let b_key = bob
        .call("shh_generateSymKeyFromPassword", group.clone())
        .await?;
    let gtopic = "0x47525550";
    let a_f = alice
        .call(
            "shh_newMessageFilter",
            json!([{"symKeyID": a_key, "topics": [gtopic]}]),
        )
        .await?;
    let a_f = a_f.as_str().unwrap_or_default().to_string();
    let b_f = bob
        .call(
            "shh_newMessageFilter",
            json!([{"symKeyID": b_key, "topics": [gtopic]}]),
        )
        .await?;
    let b_f = b_f.as_str().unwrap_or_default().to_string();
    let said = ["hi all, Alice here", "Bob here", "where is Charlie?"];
    post(
        &alice,
        json!({"symKeyID": a_key, "topic": gtopic, "sig": alice_id}),
        said[0],
    )
    .await?;
    post(
        &bob,
        json!({"symKeyID": b_key, "topic": gtopic, "sig": bob_id}),
        said[1],
    )
    .await?;
    post(
        &alice,
        json!({"symKeyID": a_key, "topic": gtopic, "sig": alice_id}),
        said[2],
    )
    .await?;
    let t = Instant::now();
    let got = collect(&alice, &a_f, 3, Duration::from_secs(30)).await?;
    show(&alice, &got, &signers, &said, false, t)?;
    let got = collect(&bob, &b_f, 3, Duration::from_secs(30)).await?;
    show(&bob, &got, &signers, &said, false, t)?;
    let t2 = Instant::now();
    let charlie = Peer::start("Charlie", &urls[2], &dir).await?;
    let charlie_id = charlie.call("shh_newKeyPair", json!([])).await?;
    let charlie_pub = charlie
        .call("shh_getPublicKey", json!([charlie_id]))
        .await?;
    signers.insert(
        charlie_pub
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase(),
        "Charlie",
    );
    let c_key = charlie
        .call("shh_generateSymKeyFromPassword", group)
        .await?;
    let c_f = charlie
        .call(
            "shh_newMessageFilter",
            json!([{"symKeyID": c_key, "topics": [gtopic]}]),
        )
        .await?;
    let c_f = c_f.as_str().unwrap_or_default().to_string();
    let caught = collect(&charlie, &c_f, 3, Duration::from_secs(30)).await?;
    show(&charlie, &caught, &signers, &said, false, t2)?;
    check_causal(&charlie).await?;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let reply = "caught up!";
    post(
        &charlie,
        json!({"symKeyID": c_key, "topic": gtopic, "sig": charlie_id}),
        reply,
    )
    .await?;
    let t3 = Instant::now();
    let got = collect(&alice, &a_f, 1, Duration::from_secs(30)).await?;
    show(&alice, &got, &signers, &[reply], true, t3)?;
    let got = collect(&bob, &b_f, 1, Duration::from_secs(30)).await?;
    show(&bob, &got, &signers, &[reply], true, t3)?;
    check_causal(&alice).await?;
    check_causal(&bob).await?;

    let status = bob.call("staples_status", json!([])).await?;
    println!("\nBob's staples_status counters: {}", status["counters"]);

    // The group chat's DAG as Charlie holds it, authors named by their node addresses.
    let mut names = std::collections::BTreeMap::new();
    for p in [&alice, &bob, &charlie] {
        let st = p.call("staples_status", json!([])).await?;
        if let Some(node) = st["node"].as_str() {
            names.insert(node.to_ascii_lowercase(), p.name.to_string());
        }
    }
    let chat = status["chats"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["topic"] == gtopic)
        .and_then(|c| c["chat"].as_str())
        .context("Bob lists the group chat")?
        .to_string();
    let history = crate::dag_picture::fetch(&charlie.url, &chat).await?;
    let svg = crate::dag_picture::render(&history, &chat, crate::dag_picture::Format::Svg, &names)?;
    std::fs::create_dir_all(&dir)?;
    std::fs::write(&picture, svg).with_context(|| format!("cannot write {}", picture.display()))?;
    for p in [alice, bob, charlie] {
        p.stop().await;
    }
    swarm.stop().await;
    println!(
        "\nThe group chat's DAG, as Charlie holds it: {}",
        picture.display()
    );
    println!("\nDemo finished.");
    Ok(())
}
