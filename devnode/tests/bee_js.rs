//! Compatibility with the real npm client `@ethersphere/bee-js@12.3.1` (Node 20): account,
//! stamps, bytes, feeds and PSS across two nodes (`tests/bee-js/smoke.mjs`). The packages
//! come from the npm registry, pinned by `tests/bee-js/package-lock.json` (with
//! `cafe-utility` overridden to 33.11.0, the newest the registry mirror has that works);
//! the test runs `npm ci` itself when they are not installed yet. Without node or npm this
//! test fails; it never skips.

mod common;

use std::path::Path;
use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bee_js_drives_two_nodes() {
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bee-js");
    if !project.join("node_modules/@ethersphere/bee-js").exists() {
        let dir = project.clone();
        let npm = tokio::task::spawn_blocking(move || {
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&dir)
                .output()
                .expect("npm is installed (Node 20 is required for this test)")
        })
        .await
        .expect("npm ran");
        assert!(
            npm.status.success(),
            "npm ci in {} failed:\n{}",
            project.display(),
            String::from_utf8_lossy(&npm.stderr)
        );
    }
    let net = common::start(2).await;
    let urls = net.urls();
    let script = project.join("smoke.mjs");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .args(&urls)
            .output()
            .expect("node is installed (Node 20 is required for this test)")
    })
    .await
    .expect("node ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "node failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("bee-js smoke: OK"), "{stdout}\n{stderr}");
    net.stop().await;
}
