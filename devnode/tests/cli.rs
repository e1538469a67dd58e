//! The `staples-devnode` binary: help text, start-up output, knob flags, bad arguments.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::http;

const BIN: &str = env!("CARGO_BIN_EXE_staples-devnode");

/// Kills the child when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn help_explains_the_knobs_and_admin_routes() {
    let out = Command::new(BIN).arg("--help").output().expect("runs");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--nodes",
        "--port",
        "--data-dir",
        "--latency-ms",
        "--stale-feed-ms",
        "--drop-probability",
        "--drop-chunk",
        "--down",
        "/_staples/nodes/{i}/down",
        "DIFFERENCES FROM BEE 2.8.1",
    ] {
        assert!(help.contains(needle), "--help mentions {needle}");
    }
}

#[test]
fn bad_arguments_fail_with_a_message() {
    for args in [
        &["--nodes", "0"][..],
        &["--seed", "zz"],
        &["--drop-probability", "2"],
    ] {
        let out = Command::new(BIN)
            .args(args)
            .args(["--port", "0"])
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("error:"), "{args:?}: {err}");
    }
}

/// Whoever reads the node lines may stop the dev node at once: the signal handlers are
/// installed before they are printed, so SIGTERM right after them is a clean shutdown.
#[test]
fn sigterm_right_after_the_node_lines_shuts_down_cleanly() {
    for _ in 0..5 {
        let mut child = Command::new(BIN)
            .args(["--nodes", "1", "--port", "0", "--log", "warn"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawns");
        let stdout = child.stdout.take().expect("stdout");
        for line in BufReader::new(stdout).lines() {
            if line.expect("line").starts_with("Ctrl-C") {
                break;
            }
        }
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = child.wait().expect("waits");
        assert!(status.success(), "staples-devnode exited with {status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knob_flags_reach_the_running_network() {
    let dropped = "ab".repeat(32);
    let mut child = Command::new(BIN)
        .args([
            "--nodes", "2", "--port", "0", "--down", "1", "--log", "warn",
        ])
        .args(["--latency-ms", "120", "--stale-feed-ms", "1500"])
        .args(["--drop-probability", "0.25", "--drop-chunk", &dropped])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawns");
    let stdout = child.stdout.take().expect("stdout");
    let _guard = Running(child);
    let urls = tokio::task::spawn_blocking(move || {
        let mut urls = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("line");
            if line.starts_with("Ctrl-C") {
                break;
            }
            // "node 0: http://127.0.0.1:PORT overlay ..."
            if let Some(url) = line.split_whitespace().nth(2) {
                urls.push(url.to_string());
            }
        }
        urls
    });
    let urls = tokio::time::timeout(Duration::from_secs(30), urls)
        .await
        .expect("prints its URLs")
        .expect("reader");
    assert_eq!(urls.len(), 2);
    let knobs = common::json_of(
        http()
            .get(format!("{}/_staples/knobs", urls[0]))
            .send()
            .await
            .expect("admin"),
    )
    .await;
    assert_eq!(knobs["latency_ms"], 120);
    assert_eq!(knobs["stale_feed_ms"], 1500);
    assert_eq!(knobs["drop_probability"], 0.25);
    assert_eq!(knobs["dropped"][0], dropped.as_str());
    assert!(
        http()
            .get(format!("{}/health", urls[1]))
            .send()
            .await
            .is_err(),
        "--down 1 starts node 1 down"
    );
    let start = std::time::Instant::now();
    let health = http()
        .get(format!("{}/health", urls[0]))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), 200);
    assert!(start.elapsed() >= Duration::from_millis(120));
}
