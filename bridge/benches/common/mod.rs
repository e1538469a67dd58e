//! What the sidecar benches share: a spawned `staples` process, a JSON-RPC call, and the
//! CPU a process used. Each bench uses part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

/// A `staples` process on ephemeral loopback ports with its own data dir, killed on drop.
pub struct Proc {
    /// The process.
    pub child: Child,
    /// Its JSON-RPC URL.
    pub http: String,
    /// Its WebSocket URL.
    pub ws: String,
    _dir: tempfile::TempDir,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `staples` with `args` (a leading subcommand such as `relay` goes first), no PoW
/// floor and cheap scrypt; waits for its address line.
pub fn spawn(args: &[&str]) -> Proc {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_staples"));
    let args = match args.first() {
        Some(sub) if !sub.starts_with('-') => {
            cmd.arg(sub);
            &args[1..]
        }
        _ => args,
    };
    let mut child = cmd
        .args(["--rpc-addr", "127.0.0.1:0", "--ws-addr", "127.0.0.1:0"])
        .args(["--min-pow", "0", "--keystore-scrypt-log-n", "4"])
        .args(["--data-dir", &dir.path().display().to_string()])
        .args(args)
        .env("STAPLES_KEYSTORE_PASSWORD", "bench")
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let field = |k: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .unwrap_or_else(|| panic!("no {k} in {line:?}"))
            .to_string()
    };
    Proc {
        http: field("rpc="),
        ws: field("ws="),
        child,
        _dir: dir,
    }
}

/// A JSON-RPC call over HTTP; its result (an error answer fails the bench).
pub async fn call(http: &str, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let v: Value = reqwest::Client::new()
        .post(http)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(v.get("error").is_none(), "{method}: {v}");
    v["result"].clone()
}

/// User + system CPU seconds `pid` has used: fields 14 and 15 of `/proc/<pid>/stat`, after
/// the parenthesised command name (Linux clock ticks are 1/100 s).
pub fn cpu_secs(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    rest.split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum::<u64>() as f64
        / 100.0
}
