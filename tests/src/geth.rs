//! A real go-ethereum v1.9.7 node for the interoperability scenarios: Whisper on, a known
//! node key, loopback RPC and devp2p, killed on drop.
//!
//! Needs a geth v1.9.7 binary: `STAPLES_GETH=/path/to/geth` (default
//! `/tmp/geth197/geth`). Scenarios call [`geth`] and skip with a message when it is
//! absent: build it from go-ethereum's v1.9.7 tree in GOPATH mode (README
//! "Compatibility references").

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::OsRng;
use serde_json::{Value, json};
use staples_protocol::crypto::PrivateKey;
use staples_protocol::devp2p::handshake::node_id;

/// The geth binary, if there is one.
pub fn geth() -> Option<std::path::PathBuf> {
    let p = std::env::var_os("STAPLES_GETH")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/tmp/geth197/geth".into());
    p.exists().then_some(p)
}

/// What a scenario prints when it skips for want of geth.
pub const SKIPPED: &str =
    "skipped: no geth v1.9.7 binary (set STAPLES_GETH or build /tmp/geth197/geth)";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running geth.
pub struct Geth {
    child: std::process::Child,
    _dir: tempfile::TempDir,
    /// Its devp2p port (loopback).
    pub p2p_port: u16,
    /// Its node key.
    pub key: PrivateKey,
    /// Its HTTP JSON-RPC URL.
    pub url: String,
}

impl Geth {
    /// Starts geth `bin` and waits for its RPC.
    pub async fn start(bin: &std::path::Path) -> Geth {
        let dir = tempfile::tempdir().expect("a temp dir");
        let (p2p_port, rpc_port) = (free_port(), free_port());
        let key = PrivateKey::random(&mut OsRng);
        let child = Command::new(bin)
            .args(["--datadir", &dir.path().display().to_string()])
            .args(["--nodiscover", "--nat", "none", "--maxpeers", "5"])
            .args(["--networkid", "999", "--nousb", "--shh"])
            .args(["--port", &p2p_port.to_string()])
            .args(["--nodekeyhex", &hex::encode(key.to_bytes())])
            .args(["--rpc", "--rpcaddr", "127.0.0.1"])
            .args([
                "--rpcport",
                &rpc_port.to_string(),
                "--rpcapi",
                "admin,shh,net,web3",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("geth starts");
        let url = format!("http://127.0.0.1:{rpc_port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while rpc(&url, "admin_nodeInfo", json!([])).await.is_none() {
            assert!(Instant::now() < deadline, "geth's RPC never came up");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Geth {
            child,
            _dir: dir,
            p2p_port,
            key,
            url,
        }
    }

    /// Its `enode://` URL.
    pub fn enode(&self) -> String {
        format!(
            "enode://{}@127.0.0.1:{}",
            hex::encode(node_id(&self.key.public_key())),
            self.p2p_port
        )
    }
}

impl Drop for Geth {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One JSON-RPC call; its result, or `None` on any error.
pub async fn rpc(url: &str, method: &str, params: Value) -> Option<Value> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let v: Value = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    v.get("result").cloned()
}
