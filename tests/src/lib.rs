//! Helpers shared by the end-to-end scenarios in `tests/tests/`: the `staples` and
//! `staples-devnode` binaries run as real processes (killed on drop), and a small JSON-RPC
//! client.
//!
//! The binaries are the workspace's own debug builds next to the test executable.
//! `cargo test --workspace` (the README's test command) builds them before any test runs;
//! running this crate alone needs `cargo build -p staples-bridge -p staples-devnode --bins`
//! first, and says so rather than starting a nested cargo.

pub mod crowd;
pub mod devp2p;
pub mod geth;
pub mod mailserver;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A workspace binary built beside the running test executable.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable sits in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo test --workspace` or `cargo build -p staples-bridge -p staples-devnode --bins` first",
        path.display()
    );
    path
}

/// A spawned process, killed on drop (also when a test fails).
pub struct Process {
    /// The child.
    pub child: Child,
}

impl Process {
    /// SIGKILL: no chance to clean up.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = self.child.wait().expect("waits");
        assert!(status.success(), "exited with {status}");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `staples-devnode` process with `nodes` virtual Bee nodes on ephemeral ports.
pub struct DevNode {
    /// The process.
    pub process: Process,
    /// Bee API URL of each node.
    pub urls: Vec<String>,
}

impl DevNode {
    /// Starts the dev node and reads its node URLs from stdout.
    pub fn start(nodes: usize) -> DevNode {
        let net = DevNode::spawn(nodes, 0, None);
        assert_eq!(net.urls.len(), nodes, "dev node printed every node");
        net
    }

    /// Starts the dev node on fixed ports (`port`, `port + 1`, …) keeping its chunks,
    /// batches and identities in `data_dir`, so that a restart after SIGKILL serves the
    /// same network at the same URLs. Retries for a few seconds while the ports are still
    /// held (a killed predecessor's listeners are released asynchronously).
    pub fn start_persistent(nodes: usize, port: u16, data_dir: &Path) -> DevNode {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let net = DevNode::spawn(nodes, port, Some(data_dir));
            if net.urls.len() == nodes {
                return net;
            }
            assert!(
                Instant::now() < deadline,
                "staples-devnode did not start on port {port} with {}",
                data_dir.display()
            );
            net.process.kill();
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Spawns the dev node and reads node URLs until it says it is ready (or exits).
    fn spawn(nodes: usize, port: u16, data_dir: Option<&Path>) -> DevNode {
        let mut cmd = Command::new(binary("staples-devnode"));
        cmd.args([
            "--nodes",
            &nodes.to_string(),
            "--port",
            &port.to_string(),
            "--log",
            "warn",
        ]);
        if let Some(dir) = data_dir {
            cmd.arg("--data-dir").arg(dir);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawns staples-devnode");
        let stdout = child.stdout.take().expect("stdout");
        let mut urls = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("reads stdout");
            if line.starts_with("Ctrl-C") {
                break;
            }
            // "node {i}: {url} overlay {hex}"
            if let Some(url) = line.split_whitespace().nth(2) {
                urls.push(url.to_string());
            }
        }
        DevNode {
            process: Process { child },
            urls,
        }
    }

    /// Calls an admin route (`/_staples/...`) through node `via`.
    pub async fn admin(&self, via: usize, method: &str, path: &str, body: Value) {
        let url = format!("{}/_staples{path}", self.urls[via]);
        let client = reqwest::Client::new();
        let req = match method {
            "PUT" => client.put(&url),
            _ => client.post(&url),
        };
        let resp = req
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("admin call");
        assert!(
            resp.status().is_success(),
            "{method} {path}: {}",
            resp.status()
        );
    }
}

impl DevNode {
    /// HTTP requests node `i` has answered so far (`GET /_staples/nodes`).
    pub async fn requests(&self, i: usize) -> u64 {
        let nodes: Value = reqwest::get(format!("{}/_staples/nodes", self.urls[0]))
            .await
            .expect("admin call")
            .json()
            .await
            .expect("node list");
        let list = nodes.get("nodes").unwrap_or(&nodes);
        list[i]["requests"]
            .as_u64()
            .unwrap_or_else(|| panic!("node {i} has a request count: {nodes}"))
    }
}

/// A `staples` sidecar process.
pub struct Sidecar {
    /// The process.
    pub process: Process,
    /// Its JSON-RPC URL.
    pub http: String,
}

impl Sidecar {
    /// Starts `staples` with `args` (plus loopback listeners on ephemeral ports, unless
    /// `args` name them) and the keystore passphrase in the environment; waits for its
    /// address line.
    pub fn start(args: &[&str], password: &str) -> Sidecar {
        let mut cmd = Command::new(binary("staples"));
        // A subcommand (`relay`) comes before every option.
        let args = match args.first() {
            Some(sub) if !sub.starts_with('-') => {
                cmd.arg(sub);
                &args[1..]
            }
            _ => args,
        };
        // Ephemeral ports unless the caller chose (a restart on the same address).
        for flag in ["--rpc-addr", "--ws-addr"] {
            if !args.contains(&flag) {
                cmd.args([flag, "127.0.0.1:0"]);
            }
        }
        let mut child = cmd
            .args(args)
            .env("STAPLES_KEYSTORE_PASSWORD", password)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawns staples");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("reads the address line");
        let http = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("rpc="))
            .unwrap_or_else(|| panic!("no rpc= in {line:?}"))
            .to_string();
        Sidecar {
            process: Process { child },
            http,
        }
    }

    /// A JSON-RPC call that may fail (the sidecar may be down or slow); see [`call`].
    pub async fn call(
        &self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        call(&self.http, method, params, timeout).await
    }

    /// Waits up to `within` until `staples_status` satisfies `done`; panics with `what` and
    /// the last status otherwise.
    pub async fn status_until(&self, what: &str, within: Duration, done: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + within;
        loop {
            let s = self.ok("staples_status", json!([])).await;
            if done(&s) {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: {s}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits up to 20 s until `net_peerCount` is at least `n`.
    pub async fn status_until_peers(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let c = self.ok("net_peerCount", json!([])).await;
            let got = c
                .as_str()
                .and_then(|h| u64::from_str_radix(h.trim_start_matches("0x"), 16).ok())
                .unwrap_or(0);
            if got >= n {
                return;
            }
            assert!(Instant::now() < deadline, "net_peerCount stays {c}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A JSON-RPC call that must succeed; returns its result.
    pub async fn ok(&self, method: &str, params: Value) -> Value {
        match self.call(method, params, Duration::from_secs(60)).await {
            Ok(v) => v,
            Err(e) => panic!("{method}: {e}"),
        }
    }

    /// A JSON-RPC call that must fail with an error object; returns its message.
    pub async fn err(&self, method: &str, params: Value) -> String {
        match self.call(method, params, Duration::from_secs(60)).await {
            Err(CallError::Rpc(e)) => e["message"].as_str().unwrap_or_default().to_string(),
            other => panic!("{method} should fail: {other:?}"),
        }
    }
}

/// Settings of the scenarios' Swarm sidecars: reads every 200 ms, 2 s Bee timeout, no
/// PoW, one-byte PSS targets, cheap scrypt.
const SWARM_TUNING: &[&str] = &[
    "--sync-interval-ms",
    "200",
    "--bee-timeout-ms",
    "2000",
    "--min-pow",
    "0",
    "--pss-target-bytes",
    "1",
    "--keystore-scrypt-log-n",
    "4",
];

/// A delivered message's payload as text (the scenarios post UTF-8).
pub fn text(m: &Value) -> String {
    let h = m["payload"]
        .as_str()
        .unwrap_or("0x")
        .trim_start_matches("0x");
    String::from_utf8(hex::decode(h).unwrap_or_default()).unwrap_or_default()
}

/// The payloads of `ms` as text.
pub fn texts(ms: &[Value]) -> Vec<String> {
    ms.iter().map(text).collect()
}

/// Polls filter `filter` on `p` until `want` messages arrived in all (40 s at most, then
/// panics with what came and `staples_status`).
pub async fn collect(p: &Sidecar, filter: &str, got: &mut Vec<Value>, want: usize) {
    let start = Instant::now();
    while got.len() < want {
        if start.elapsed() > Duration::from_secs(40) {
            let status = p
                .call("staples_status", json!([]), Duration::from_secs(2))
                .await;
            panic!(
                "got {:?}, want {want}; staples_status {status:?}",
                texts(got)
            );
        }
        let ms = p.ok("shh_getFilterMessages", json!([filter])).await;
        got.extend(ms.as_array().into_iter().flatten().cloned());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The Whisper topic of Status public chat `chat`, as `0x` hex.
pub fn public_topic(chat: &str) -> String {
    hex0x(&staples_protocol::whisper::Topic::from_name(chat).0)
}

/// Joins Status public chat `chat` on `p` as its app would: the key (PBKDF2 of the name)
/// and a filter on the chat's topic; returns the key id and the filter id.
pub async fn join_public(p: &Sidecar, chat: &str) -> (Value, String) {
    let key = p.ok("shh_generateSymKeyFromPassword", json!([chat])).await;
    let f = p
        .ok(
            "shh_newMessageFilter",
            json!([{"symKeyID": key, "topics": [public_topic(chat)]}]),
        )
        .await;
    (key, f.as_str().unwrap_or_default().to_string())
}

/// Posts `text` in public chat `chat` with key `key`; returns the envelope hash.
pub async fn say_public(p: &Sidecar, key: &Value, chat: &str, text: &str) -> Value {
    p.ok(
        "shh_post",
        json!([{"symKeyID": key, "topic": public_topic(chat), "ttl": 120,
                "payload": hex0x(text.as_bytes())}]),
    )
    .await
}

impl Sidecar {
    /// Waits until the Whisper side (dual, relay) has `n` mirrored filters open on its
    /// Whisper node: a Whisper filter sees only what arrives after it was made.
    pub async fn mirrors_open(&self, n: u64) {
        self.status_until("Whisper mirrors not open", Duration::from_secs(20), |st| {
            st["whisper"]["mirrorsOpen"] == n
        })
        .await;
    }
}

/// The keystore passphrase the scenarios' sidecars use.
pub const PASSWORD: &str = "e2e-passphrase";

impl Sidecar {
    /// A `--transport=pss` sidecar on `bee` keeping its data in `dir`, tuned for tests:
    /// reads every 200 ms, 2 s Bee timeout, no PoW, one-byte PSS targets, cheap scrypt.
    pub fn start_pss(dir: &Path, bee: &str) -> Sidecar {
        Sidecar::start_swarm("pss", dir, bee, &[])
    }

    /// [`Sidecar::start_pss`] with `extra` arguments (e.g. `--topic-logs`).
    pub fn start_pss_with(dir: &Path, bee: &str, extra: &[&str]) -> Sidecar {
        Sidecar::start_swarm("pss", dir, bee, extra)
    }

    /// A `--transport=dual` sidecar tuned as [`Sidecar::start_pss`], whose Whisper side is
    /// the node at `whisper_rpc`.
    pub fn start_dual(dir: &Path, bee: &str, whisper_rpc: &str) -> Sidecar {
        Sidecar::start_dual_over(dir, bee, &["--whisper-rpc", whisper_rpc])
    }

    /// [`Sidecar::start_dual`] whose Whisper side is given by `whisper` (e.g.
    /// `--whisper-peer enode://…` for its own node on devp2p).
    pub fn start_dual_over(dir: &Path, bee: &str, whisper: &[&str]) -> Sidecar {
        Sidecar::start_swarm("dual", dir, bee, whisper)
    }

    /// A plain `--transport=whisper` sidecar (its own Whisper node) keeping its data in
    /// `dir`: what a peer that has not moved yet runs.
    pub fn start_whisper(dir: &Path) -> Sidecar {
        Sidecar::start_whisper_with(dir, &[])
    }

    /// [`Sidecar::start_whisper`] with `extra` arguments (e.g. a fixed `--rpc-addr`).
    pub fn start_whisper_with(dir: &Path, extra: &[&str]) -> Sidecar {
        let data = dir.display().to_string();
        let mut args = vec![
            "--transport",
            "whisper",
            "--data-dir",
            &data,
            "--min-pow",
            "0",
            "--keystore-scrypt-log-n",
            "4",
        ];
        args.extend_from_slice(extra);
        Sidecar::start(&args, PASSWORD)
    }

    /// `staples relay` for public chat `chat` between the Whisper node at `whisper_rpc`
    /// and `bee`, tuned as [`Sidecar::start_pss`].
    pub fn start_relay(dir: &Path, bee: &str, whisper_rpc: &str, chat: &str) -> Sidecar {
        Sidecar::start_relay_over(dir, bee, chat, &["--whisper-rpc", whisper_rpc])
    }

    /// [`Sidecar::start_relay`] reaching Whisper as `whisper` says (e.g. `--whisper-peer
    /// enode://…`: its own node on devp2p).
    pub fn start_relay_over(dir: &Path, bee: &str, chat: &str, whisper: &[&str]) -> Sidecar {
        let data = dir.display().to_string();
        let mut args = vec![
            "relay",
            "--chat",
            chat,
            "--bee-api",
            bee,
            "--data-dir",
            &data,
        ];
        args.extend_from_slice(whisper);
        args.extend_from_slice(SWARM_TUNING);
        Sidecar::start(&args, PASSWORD)
    }

    fn start_swarm(transport: &str, dir: &Path, bee: &str, extra: &[&str]) -> Sidecar {
        let data = dir.display().to_string();
        let mut args = vec![
            "--transport",
            transport,
            "--bee-api",
            bee,
            "--data-dir",
            &data,
        ];
        args.extend_from_slice(SWARM_TUNING);
        args.extend_from_slice(extra);
        Sidecar::start(&args, PASSWORD)
    }
}

/// A key pair a 1:1 chat's receiver listens with, made by the test, not by a sidecar.
pub struct Identity {
    /// The private key.
    pub key: staples_protocol::crypto::PrivateKey,
    /// Its uncompressed public key, `0x` hex (what a sender posts to).
    pub public: String,
}

impl Identity {
    /// A fresh random identity.
    pub fn new() -> Self {
        let key = staples_protocol::crypto::PrivateKey::random(&mut rand::rngs::OsRng);
        let public = hex0x(&key.public_key().to_uncompressed());
        Identity { key, public }
    }

    /// Imports the key into `p` and installs a polling filter for `topic`; its id.
    pub async fn listen(&self, p: &Sidecar, topic: &str) -> String {
        let id = p
            .ok("shh_addPrivateKey", json!([hex0x(&self.key.to_bytes())]))
            .await;
        let f = p
            .ok(
                "shh_newMessageFilter",
                json!([{"privateKeyID": id, "topics": [topic]}]),
            )
            .await;
        f.as_str().expect("a filter id").to_string()
    }
}

impl Default for Identity {
    fn default() -> Self {
        Self::new()
    }
}

/// `0x` + hex.
pub fn hex0x(b: &[u8]) -> String {
    format!("0x{}", hex::encode(b))
}

/// Why a [`call`] did not return a result.
#[derive(Debug)]
pub enum CallError {
    /// No answer: refused, reset, timed out or not JSON (the process is down or died).
    Transport(String),
    /// The server answered with a JSON-RPC error object.
    Rpc(Value),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Transport(e) => write!(f, "no answer: {e}"),
            CallError::Rpc(e) => write!(f, "JSON-RPC error: {e}"),
        }
    }
}

/// One JSON-RPC call to `http` on a fresh connection, bounded by `timeout`. A fresh
/// connection per call, so a call never rides a pooled connection to a process that has
/// since been killed and replaced.
pub async fn call(
    http: &str,
    method: &str,
    params: Value,
    timeout: Duration,
) -> Result<Value, CallError> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(timeout)
        .build()
        .map_err(|e| CallError::Transport(e.to_string()))?;
    let resp: Value = client
        .post(http)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| CallError::Transport(e.to_string()))?
        .json()
        .await
        .map_err(|e| CallError::Transport(e.to_string()))?;
    match resp.get("error") {
        Some(e) => Err(CallError::Rpc(e.clone())),
        None => Ok(resp["result"].clone()),
    }
}

/// A base port `p` such that `p..p + n` are free on loopback right now, for processes
/// that must come back on the same ports after a restart. Chosen below the kernel's
/// ephemeral range, so that while such a process is down no `:0` listener or outgoing
/// connection of another process can take its port.
pub fn free_ports(n: u16) -> u16 {
    use rand::Rng;
    use std::net::TcpListener;
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = if ephemeral_low > 10_000 + n {
        (10_000, ephemeral_low - n)
    } else {
        // Unusual range: fall back to above it.
        (61_000, u16::MAX - n)
    };
    let mut rng = rand::thread_rng();
    for _ in 0..200 {
        let base = rng.gen_range(low..high);
        let held: Result<Vec<_>, _> = (0..n)
            .map(|i| TcpListener::bind(("127.0.0.1", base + i)))
            .collect();
        if held.is_ok() {
            return base;
        }
    }
    panic!("no {n} consecutive free ports on loopback");
}
