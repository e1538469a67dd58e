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

fn web3_shh_posts_and_receives_over_ws_and_http(transport: &str) {
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
