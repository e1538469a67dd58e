//! `staples demo`, the README's run command, plays the whole seed scenario and exits 0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[test]
fn readme_demo_plays_the_seed_scenario() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README");
    assert!(
        readme.contains("cargo run --release -p staples-bridge --bin staples -- demo"),
        "README's run command is the demo"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_staples"))
        .arg("demo")
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for i in 1..=5 {
        let line = format!("Bob     ← Alice: message {i} while you were away");
        assert!(text.contains(&line), "missing {line:?} in\n{text}");
    }
    for want in [
        "Bob     ← Alice: you are online now: this one is live",
        "Charlie ← Alice: hi all, Alice here",
        "Charlie ← Bob: Bob here",
        "Charlie ← Alice: where is Charlie?",
        "Alice   ← Charlie: caught up!",
        "Bob     ← Charlie: caught up!",
        "Demo finished.",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    assert!(
        !text.contains("someone unknown"),
        "every sender is named: {text}"
    );
    // Bob's five caught-up messages arrive in the order Alice sent them (the demo itself
    // fails otherwise; this checks the transcript says so).
    let pos: Vec<usize> = (1..=5)
        .map(|i| {
            text.find(&format!("Bob     ← Alice: message {i} "))
                .unwrap()
        })
        .collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{text}");
    // It ends with the picture of the group chat's DAG, drawn from Charlie's history.
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("The group chat's DAG, as Charlie holds it: "))
        .expect("the picture's path");
    let svg = std::fs::read_to_string(path.trim()).expect("the picture exists");
    assert!(svg.contains("<svg"), "an SVG");
    for name in ["Alice", "Bob", "Charlie"] {
        assert!(svg.contains(name), "{name} is named in the picture");
    }
}
