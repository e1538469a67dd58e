//! Runs the README's dev node curl session verbatim (the block between
//! `<!-- devnode-curl:start -->` and `<!-- devnode-curl:end -->`) against an in-process
//! three-node network, with `A` and `B` pointing at nodes 0 and 1.

mod common;

use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_curl_session_works() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let start = readme
        .find("<!-- devnode-curl:start -->")
        .expect("start marker");
    let end = readme
        .find("<!-- devnode-curl:end -->")
        .expect("end marker");
    let script = readme[start..end]
        .split("```sh")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("a sh block")
        .to_string();
    let net = common::start(3).await;
    let urls = net.urls();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .env("A", &urls[0])
            .env("B", &urls[1])
            .output()
            .expect("bash and curl are installed")
    })
    .await
    .expect("bash ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(
            r#"{"reference":"680bb26ce329867d9063251135dea6f02b58d0ef3d4eb9076c3d5fc03fe54cf6"}"#
        ),
        "{stdout}"
    );
    assert!(stdout.contains("Hello, Swarm!"), "{stdout}");
    assert!(net.node(2).expect("node").up, "node 2 is back up");
    net.stop().await;
}
