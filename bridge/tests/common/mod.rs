//! Helpers shared by the sidecar's integration tests: in-process servers on 127.0.0.1:0,
//! spawned `staples` processes, and small HTTP / WebSocket JSON-RPC clients.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use staples_bridge::config::RunArgs;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

/// An in-process sidecar; dropping it shuts the server down.
pub struct Server {
    pub http: String,
    pub ws: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Starts a local-node sidecar with `args` (data dir and low scrypt cost filled in).
    pub async fn start(dir: &Path, mut args: RunArgs) -> Server {
        args.data_dir.get_or_insert(dir.to_path_buf());
        args.keystore_scrypt_log_n.get_or_insert(4);
        let cfg = args.resolve().expect("config");
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr: SocketAddr = l.local_addr().expect("addr");
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            staples_bridge::sidecar::run(cfg, vec![l], async {
                let _ = rx.await;
            })
            .await
            .expect("sidecar runs");
        });
        Server {
            http: format!("http://{addr}"),
            ws: format!("ws://{addr}"),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the server and waits for it (store flushed).
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("joins");
        }
    }
}

/// POSTs a JSON body; returns (status, parsed body or Null).
pub async fn post_raw(url: &str, body: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let client = reqwest::Client::new();
    let mut req = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("http");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

/// One JSON-RPC call over HTTP; returns the whole response object.
pub async fn call(url: &str, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let (status, text) = post_raw(url, &body, &[]).await;
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).expect("json response")
}

/// The `result` of a call that must succeed.
pub async fn ok(url: &str, method: &str, params: Value) -> Value {
    let r = call(url, method, params).await;
    assert!(r.get("error").is_none(), "{method}: {r}");
    r["result"].clone()
}

/// The `(code, message)` of a call that must fail.
pub async fn err(url: &str, method: &str, params: Value) -> (i64, String) {
    let r = call(url, method, params).await;
    let e = r
        .get("error")
        .unwrap_or_else(|| panic!("{method} should fail: {r}"));
    (
        e["code"].as_i64().unwrap(),
        e["message"].as_str().unwrap().to_string(),
    )
}

/// A WebSocket JSON-RPC client.
pub struct Ws {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next: u64,
    /// Notifications received while waiting for responses.
    pub backlog: Vec<Value>,
}

impl Ws {
    pub async fn connect(url: &str) -> Ws {
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connect");
        Ws {
            socket,
            next: 1,
            backlog: Vec::new(),
        }
    }

    /// Sends a call and waits for its response (notifications are kept in `backlog`).
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next;
        self.next += 1;
        let body =
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string();
        self.socket
            .send(Message::Text(body.into()))
            .await
            .expect("send");
        loop {
            let v = self.recv().await;
            if v.get("id").and_then(Value::as_u64) == Some(id) {
                return v;
            }
            self.backlog.push(v);
        }
    }

    /// The next frame, parsed.
    pub async fn recv(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), self.socket.next())
                .await
                .expect("frame within 10 s")
                .expect("open")
                .expect("frame");
            if let Message::Text(t) = msg {
                return serde_json::from_str(&t).expect("json frame");
            }
        }
    }

    /// The next `shh_subscription` notification (from the backlog first).
    pub async fn notification(&mut self) -> Value {
        if !self.backlog.is_empty() {
            return self.backlog.remove(0);
        }
        self.recv().await
    }
}

/// A spawned `staples` process; killed on drop.
pub struct Proc {
    pub child: Child,
    pub http: String,
    pub ws: String,
}

impl Proc {
    /// Spawns the binary with `args` plus 127.0.0.1:0 listeners, and waits for its address line.
    pub fn spawn(args: &[&str], envs: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_staples"));
        cmd.args(["--rpc-addr", "127.0.0.1:0", "--ws-addr", "127.0.0.1:0"])
            .args(args)
            .env_remove("STAPLES_KEYSTORE_PASSWORD")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawns staples");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("reads address line");
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
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = self.child.wait().expect("waits");
        assert!(status.success(), "staples exited with {status}");
    }

    /// Kills the process without any chance to clean up.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `0x` + hex.
pub fn hex0x(b: &[u8]) -> String {
    format!("0x{}", hex::encode(b))
}
