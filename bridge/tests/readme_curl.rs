//! Runs the README's "Run the sidecar" curl session verbatim against a spawned `staples`
//! (the block between `<!-- readme-curl:start -->` and `<!-- readme-curl:end -->`), with
//! `RPC` pointing at the test's port.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::Proc;

#[test]
fn readme_curl_session_posts_and_reads_a_message() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let start = readme
        .find("<!-- readme-curl:start -->")
        .expect("start marker");
    let end = readme.find("<!-- readme-curl:end -->").expect("end marker");
    let section = &readme[start..end];
    let script = section
        .split("```sh")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("a sh block");
    let dir = tempfile::tempdir().unwrap();
    let p = Proc::spawn(
        &[
            "--transport=whisper",
            "--data-dir",
            &dir.path().display().to_string(),
        ],
        &[],
    );
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .env("RPC", &p.http)
        .output()
        .expect("bash and curl are installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(r#""payload":"0x68656c6c6f""#), "{stdout}");
    p.terminate();
}
