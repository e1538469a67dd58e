//! Helpers shared by the end-to-end scenarios in `tests/tests/`: the `staples` and
//! `staples-devnode` binaries run as real processes (killed on drop), and a small JSON-RPC
//! client.
//!
//! The binaries are the workspace's own debug builds next to the test executable.
//! `cargo test --workspace` (the README's test command) builds them before any test runs;
//! running this crate alone needs `cargo build -p staples-bridge -p staples-devnode --bins`
//! first, and says so rather than starting a nested cargo.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

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
        let mut child = Command::new(binary("staples-devnode"))
            .args([
                "--nodes",
                &nodes.to_string(),
                "--port",
                "0",
                "--log",
                "warn",
            ])
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
        assert_eq!(urls.len(), nodes, "dev node printed every node");
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

/// A `staples` sidecar process.
pub struct Sidecar {
    /// The process.
    pub process: Process,
    /// Its JSON-RPC URL.
    pub http: String,
}

impl Sidecar {
    /// Starts `staples` with `args` (plus loopback listeners on ephemeral ports) and the
    /// keystore passphrase in the environment; waits for its address line.
    pub fn start(args: &[&str], password: &str) -> Sidecar {
        let mut child = Command::new(binary("staples"))
            .args(["--rpc-addr", "127.0.0.1:0", "--ws-addr", "127.0.0.1:0"])
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

    /// A JSON-RPC call that must succeed; returns its result.
    pub async fn ok(&self, method: &str, params: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let resp: Value = reqwest::Client::new()
            .post(&self.http)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("sidecar reachable")
            .json()
            .await
            .expect("JSON answer");
        assert!(resp.get("error").is_none(), "{method}: {resp}");
        resp["result"].clone()
    }
}

/// `0x` + hex.
pub fn hex0x(b: &[u8]) -> String {
    format!("0x{}", hex::encode(b))
}
