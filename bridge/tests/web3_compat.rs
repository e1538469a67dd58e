//! Compatibility with the real npm client `web3-shh@1.10.4` (Node 20): it posts and receives
//! through a spawned `staples` via a WebSocket subscription and via
//! newMessageFilter/getFilterMessages over HTTP. `.ci/run` runs `npm ci` in tests/web3 first.
//! Without node or the installed packages this test fails; it never skips.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::Proc;

#[test]
fn web3_shh_posts_and_receives_over_ws_and_http() {
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web3");
    assert!(
        project.join("node_modules/web3-shh").exists(),
        "run `npm ci` in {} first (.ci/run does)",
        project.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    let p = Proc::spawn(&["--data-dir", &data, "--min-pow", "0.002"], &[]);
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
