//! The `staples whisper` commands as a user runs them: a separate process, real arguments.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

fn staples(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_staples"))
        .args(args)
        .output()
        .expect("runs the staples binary")
}

fn stdout_field(out: &Output, key: &str) -> String {
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
        .unwrap_or_else(|| panic!("no {key} in {text}"))
}

#[test]
fn post_then_open_round_trips_with_pow() {
    let post = staples(&[
        "whisper",
        "post",
        "--password",
        "status",
        "--text",
        "hello",
        "--pow-target",
        "0.2",
        "--pow-time",
        "30",
    ]);
    assert!(
        post.status.success(),
        "{}",
        String::from_utf8_lossy(&post.stderr)
    );
    let env = stdout_field(&post, "envelope");
    let open = staples(&["whisper", "open", "--password", "status", &env]);
    assert!(
        open.status.success(),
        "{}",
        String::from_utf8_lossy(&open.stderr)
    );
    let msg: serde_json::Value = serde_json::from_slice(&open.stdout).unwrap();
    assert_eq!(msg["payload"], "0x68656c6c6f");
    assert_eq!(msg["topic"], "0xcd423760");
    assert_eq!(msg["hash"].as_str().unwrap(), stdout_field(&post, "hash"));
    assert!(msg["pow"].as_f64().unwrap() >= 0.2);
}

#[test]
fn open_prints_geth_json_for_a_geth_envelope() {
    let dir = std::env::var("STAPLES_VECTORS")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors").into());
    let text = std::fs::read_to_string(format!("{dir}/whisper.json")).expect("vectors present");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    for case in v["symmetric"].as_array().unwrap() {
        let out = staples(&[
            "whisper",
            "open",
            "--sym-key",
            case["sym_key"].as_str().unwrap(),
            case["envelope"]["rlp"].as_str().unwrap(),
        ]);
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8(out.stdout).unwrap().trim_end(),
            case["geth_json"]
        );
    }
}

#[test]
fn bad_input_fails_with_a_clear_message() {
    let out = staples(&["whisper", "inspect", "0xc0ffee"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("malformed envelope"));
    let out = staples(&[
        "whisper",
        "open",
        "--password",
        "wrong",
        "cf050a840102030484deadbeef820114",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open envelope"));
}
