//! `staples chat` under a pseudo-terminal: keys are typed into it and its screen is read
//! back through a terminal emulator (`vt100`). Two `pss` sidecars on the dev node: what
//! the other member said before the client started arrives by catch-up, what we type
//! reaches the other member, and its live reply shows up; the header says online.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};
use staples_e2e::{DevNode, Sidecar, join_public, say_public, text};

const CHAT: &str = "staples-tui-e2e";

/// The terminal's screen as text, once `done` holds for it (20 s at most).
fn screen_until(
    screen: &Arc<Mutex<vt100::Parser>>,
    what: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = screen.lock().unwrap().screen().contents();
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{what}; the screen:\n{s}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn the_terminal_client_catches_up_sends_and_receives() {
    let net = DevNode::start(2);
    let dir = tempfile::tempdir().unwrap();
    let a = Sidecar::start_pss(&dir.path().join("a"), &net.urls[0]);
    let b = Sidecar::start_pss(&dir.path().join("b"), &net.urls[1]);
    let (bkey, bf) = join_public(&b, CHAT).await;
    say_public(&b, &bkey, CHAT, "said before you came").await;

    let pty = native_pty_system()
        .openpty(PtySize {
            rows: 24,
            cols: 100,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("a pty");
    let mut cmd = CommandBuilder::new(staples_e2e::binary("staples"));
    cmd.args(["chat", "--rpc", &a.http, "--public", CHAT]);
    cmd.env("TERM", "xterm-256color");
    let mut child = pty.slave.spawn_command(cmd).expect("spawns");
    drop(pty.slave);
    let mut reader = pty.master.try_clone_reader().unwrap();
    let mut keys = pty.master.take_writer().unwrap();
    let screen = Arc::new(Mutex::new(vt100::Parser::new(
        std::num::NonZeroU16::new(24).unwrap(),
        std::num::NonZeroU16::new(100).unwrap(),
        0,
    )));
    let feed = screen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            feed.lock().unwrap().process(&buf[..n]);
        }
    });

    // Caught up from B's inbox, and online (the dev node's Bee has peers).
    screen_until(&screen, "no catch-up or not online", |s| {
        s.contains("said before you came")
            && s.contains("[online]")
            && s.contains("#staples-tui-e2e")
    });

    // Typed and sent: B's app gets it.
    keys.write_all(b"hello from the terminal\r").unwrap();
    keys.flush().unwrap();
    let mut got = Vec::new();
    staples_e2e::collect(&b, &bf, &mut got, 2).await;
    assert!(
        got.iter().any(|m| text(m) == "hello from the terminal"),
        "{got:?}"
    );
    screen_until(&screen, "our own line not shown", |s| {
        s.contains("me: hello from the terminal")
    });

    // B answers live; it shows up, signed by B's key (not "me").
    say_public(&b, &bkey, CHAT, "live reply").await;
    let s = screen_until(&screen, "the reply never showed", |s| {
        s.contains("live reply")
    });
    assert!(!s.contains("me: live reply"), "{s}");

    // Esc quits cleanly.
    keys.write_all(b"\x1b").unwrap();
    keys.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the client did not quit on Esc");
        std::thread::sleep(Duration::from_millis(100));
    }
}
