//! Fixtures for the mailserver scenarios: Whisper history that reached Swarm through a
//! devp2p relay with `--mailserver` and then expired on Whisper, and a real status-go
//! v0.78 node (`statusd`) to ask for it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{Process, Sidecar, call, hex0x, public_topic};

/// A Whisper node and a relay on its own Whisper node, peered with it over devp2p,
/// bridging public chat `chat` and serving history (`--mailserver`, listening for devp2p
/// clients).
pub struct Expired {
    /// The Whisper node the posts were made on.
    pub whisper: Sidecar,
    /// The relay with `--mailserver`.
    pub relay: Sidecar,
    /// The posts' envelope hashes, `0x` hex.
    pub hashes: HashSet<String>,
}

/// The payload of post `i`.
pub fn post_text(i: usize) -> String {
    format!("history {i}")
}

impl Expired {
    /// Posts `n` signed messages with a `ttl`-second TTL on the Whisper node, waits until
    /// the relay has archived all `n` senders' envelopes on Swarm (at `bee`), then until
    /// they have expired on Whisper.
    pub async fn make(dir: &Path, bee: &str, chat: &str, n: usize, ttl: u32) -> Expired {
        let whisper =
            Sidecar::start_whisper_with(&dir.join("whisper"), &["--p2p-addr", "127.0.0.1:0"]);
        let enode = whisper.ok("admin_nodeInfo", json!([])).await["enode"]
            .as_str()
            .expect("listening")
            .to_string();
        let relay = Sidecar::start_relay_over(
            &dir.join("relay"),
            bee,
            chat,
            &[
                "--whisper-peer",
                &enode,
                "--p2p-addr",
                "127.0.0.1:0",
                "--mailserver",
            ],
        );
        relay.status_until_peers(1).await;
        relay.mirrors_open(1).await;
        let (key, _) = crate::join_public(&whisper, chat).await;
        let author = whisper.ok("shh_newKeyPair", json!([])).await;
        let mut hashes = HashSet::new();
        for i in 0..n {
            let h = whisper
                .ok(
                    "shh_post",
                    json!([{"symKeyID": key, "sig": author, "topic": public_topic(chat),
                            "ttl": ttl, "powTarget": 0.2, "powTime": 2,
                            "payload": hex0x(post_text(i).as_bytes())}]),
                )
                .await;
            hashes.insert(h.as_str().expect("a hash").to_string());
        }
        relay
            .status_until(
                "relay archived the envelopes",
                Duration::from_secs(60),
                |st| st["relay"]["counters"]["relay_envelopes_archived"].as_u64() == Some(n as u64),
            )
            .await;
        // Gone from Whisper: every pool drops them at expiry.
        tokio::time::sleep(Duration::from_secs(u64::from(ttl) + 2)).await;
        Expired {
            whisper,
            relay,
            hashes,
        }
    }
}

/// The `statusd` binary (`$STAPLES_STATUSD`, default `/tmp/statusd`), if built.
pub fn statusd_binary() -> Result<PathBuf, String> {
    let bin = std::env::var("STAPLES_STATUSD").unwrap_or_else(|_| "/tmp/statusd".into());
    if Path::new(&bin).exists() {
        Ok(PathBuf::from(bin))
    } else {
        Err(format!(
            "SKIPPED: no statusd at {bin}; build status-go v0.78 with ../shared/tools/status-go/build.sh"
        ))
    }
}

/// Starts `statusd` with `../shared/tools/status-go/<config>` in `dir`; the process and
/// its JSON-RPC URL, once it answers.
pub async fn start_statusd(bin: &Path, config: &str, dir: &Path) -> (Process, String) {
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/tools/status-go")
        .join(config);
    let text = std::fs::read_to_string(&config).expect("the statusd config");
    let port = serde_json::from_str::<Value>(&text).expect("JSON")["HTTPPort"]
        .as_u64()
        .expect("HTTPPort");
    let data = dir.join("statusd");
    std::fs::create_dir_all(&data).unwrap();
    let log = std::fs::File::create(dir.join("statusd.log")).unwrap();
    let child = std::process::Command::new(bin)
        .args(["-dir", &data.display().to_string(), "-c"])
        .arg(&config)
        .arg("-log-without-color")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("statusd starts");
    let url = format!("http://127.0.0.1:{port}");
    let t = Instant::now();
    while call(
        &url,
        "web3_clientVersion",
        json!([]),
        Duration::from_secs(2),
    )
    .await
    .is_err()
    {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "statusd did not start"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (Process { child }, url)
}
