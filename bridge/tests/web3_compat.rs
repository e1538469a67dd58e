//! Compatibility with the real npm client `web3-shh@1.10.4` (Node 20): it posts and receives
//! through a spawned `staples` via a WebSocket subscription and via
//! newMessageFilter/getFilterMessages over HTTP. The packages come from the npm registry,
//! pinned by `tests/web3/package-lock.json`; the test runs `npm ci` itself when they are not
//! installed yet. Without node or npm this test fails; it never skips.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::Proc;

#[test]
fn web3_shh_posts_and_receives_over_ws_and_http_whisper() {
    web3_shh_posts_and_receives_over_ws_and_http("whisper");
}

/// The same script against `--transport=pss` (with its embedded Swarm dev node): the app
/// cannot tell.
#[test]
fn web3_shh_posts_and_receives_over_ws_and_http_pss() {
    web3_shh_posts_and_receives_over_ws_and_http("pss");
}

/// And against `--transport=dual` (its own Whisper node as the Whisper side): unchanged.
#[test]
fn web3_shh_posts_and_receives_over_ws_and_http_dual() {
    web3_shh_posts_and_receives_over_ws_and_http("dual");
}

/// Two `whisper`-mode sidecars peered over devp2p (RLPx + shh/6, no shared node): a
/// web3-shh app on each sees the other's posts, symmetric and asymmetric, by subscription
/// and by filter, and `net_peerCount` is at least 1 on both.
#[test]
fn web3_shh_apps_on_two_devp2p_peers_see_each_other() {
    let project = web3_project();
    let dir = tempfile::tempdir().unwrap();
    let (da, db) = (dir.path().join("a"), dir.path().join("b"));
    let args = |d: &Path| -> Vec<String> {
        ["--data-dir", &d.display().to_string(), "--min-pow", "0.002"]
            .map(String::from)
            .to_vec()
    };
    let mut a_args = args(&da);
    a_args.extend(["--p2p-addr", "127.0.0.1:0"].map(String::from));
    let a = Proc::spawn(&a_args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    let info = tokio::runtime::Runtime::new().unwrap().block_on(common::ok(
        &a.http,
        "admin_nodeInfo",
        serde_json::json!([]),
    ));
    let enode = info["enode"].as_str().expect("listening").to_string();
    let mut b_args = args(&db);
    b_args.extend(["--whisper-peer".to_string(), enode]);
    let b = Proc::spawn(&b_args.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    let out = Command::new("node")
        .arg(project.join("peers.js"))
        .args([&a.http, &a.ws, &b.http, &b.ws])
        .output()
        .expect("node is installed (Node 20 is required for this test)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "node failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("web3-shh peers: OK"), "{stdout}\n{stderr}");
    a.terminate();
    b.terminate();
}

/// The web3 project, with its npm packages installed.
fn web3_project() -> std::path::PathBuf {
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web3");
    // Both tests of this file may reach here at once on a fresh clone: one `npm ci`.
    static NPM: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _npm = NPM.lock().unwrap_or_else(|p| p.into_inner());
    if !project.join("node_modules/web3-shh").exists() {
        let npm = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&project)
            .output()
            .expect("npm is installed (Node 20 is required for this test)");
        assert!(
            npm.status.success(),
            "npm ci in {} failed:\n{}",
            project.display(),
            String::from_utf8_lossy(&npm.stderr)
        );
    }
    drop(_npm);
    project
}

fn web3_shh_posts_and_receives_over_ws_and_http(transport: &str) {
    let project = web3_project();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    let p = Proc::spawn(
        &[
            "--data-dir",
            &data,
            "--min-pow",
            "0.002",
            "--transport",
            transport,
        ],
        &[],
    );
    let out = Command::new("node")
        .arg(project.join("script.js"))
        .args([&p.http, &p.ws])
        .output()
        .expect("node is installed (Node 20 is required for this test)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "node failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("web3-shh compat: OK"), "{stdout}\n{stderr}");
    p.terminate();
}
