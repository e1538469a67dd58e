//! Public chats at scale (issue #20, specs/chat-index.md): one public chat of N writers
//! with 3 messages each, on the dev node at 20 ms per Bee request. Prints a table.
//!
//! The writers are a [`Crowd`] written straight to the dev node (a thousand sidecars do not
//! fit on one machine); everything measured is a real `staples` process (release build):
//!
//! - catch-up: a new reader joins; time and Bee requests until all 3N are delivered;
//! - idle pass: requests per sync pass and the pass's wall time (from `/metrics`), once
//!   caught up;
//! - live: a member posts 20 messages, one every 300 ms; time from `shh_post` returned to
//!   each of K online members' filters (p50, p95, last), and the sender's Bee requests and
//!   PSS sends per post;
//! - the reader's RSS after catch-up.
//!
//! Each is measured for sidecars with the chat index (`new`) and, in the same run, for
//! sidecars with `--no-chat-index` (`per-member`: every inbox looked up on every pass and
//! one PSS send per member per post, as before the index), one kind after the other (the
//! first kind's sidecars stopped, their roster entries left: offline members). A last round times one writer's
//! 10,000-message inbox (`STAPLES_BENCH_INBOX`, default 10000) caught up by a new reader.
//!
//! Run: `cargo build --release -p staples-bridge -p staples-devnode --bins &&
//! cargo bench -p staples-e2e --bench scale`. `STAPLES_BENCH_SCALE=10,100,1000` picks the
//! sizes (10,000 too with `STAPLES_BENCH_SCALE=10,100,1000,10000`), `STAPLES_BENCH_K` the
//! online members (default 10).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use staples_e2e::crowd::Crowd;
use staples_e2e::{DevNode, PASSWORD, Sidecar, public_topic};

const CHAT: &str = "staples-scale-bench";
const LATENCY_MS: u64 = 20;
const PER_WRITER: usize = 3;
const LIVE_POSTS: usize = 20;
const LIVE_GAP: Duration = Duration::from_millis(300);

fn env_list(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

/// A `pss` sidecar with the sidecar's default timing (5 s sync interval, 1 s index
/// polling), on Bee node `bee`.
fn start(dir: &Path, name: &str, bee: &str, extra: &[&str]) -> Sidecar {
    let data = dir.join(name).display().to_string();
    let mut args = vec![
        "--transport",
        "pss",
        "--bee-api",
        bee,
        "--data-dir",
        &data,
        "--min-pow",
        "0",
        "--keystore-scrypt-log-n",
        "4",
        "--pss-target-bytes",
        "1",
    ];
    args.extend_from_slice(extra);
    Sidecar::start(&args, PASSWORD)
}

async fn status(p: &Sidecar) -> Value {
    p.ok("staples_status", json!([])).await
}

fn chat_of(st: &Value) -> Value {
    st["chats"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["reading"] == true).cloned())
        .unwrap_or(Value::Null)
}

fn counter(st: &Value, name: &str) -> u64 {
    st["counters"][name].as_u64().unwrap_or(0)
}

/// Joins the public chat; the filter id.
async fn join(p: &Sidecar) -> (Value, String) {
    staples_e2e::join_public(p, CHAT).await
}

/// Waits until `p` delivered `n` messages of the chat; the time it took from `since`.
async fn until_delivered(p: &Sidecar, n: u64, since: Instant) -> Duration {
    loop {
        let st = status(p).await;
        if chat_of(&st)["delivered"].as_u64().unwrap_or(0) >= n {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(900),
            "stalled: {}",
            chat_of(&st)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `staples_sync_pass_duration_seconds` (sum, count) from `p`'s `/metrics`.
async fn pass_metrics(p: &Sidecar) -> (f64, f64) {
    let text = reqwest::get(format!("{}/metrics", p.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    (
        value("staples_sync_pass_duration_seconds_sum"),
        value("staples_sync_pass_duration_seconds_count"),
    )
}

/// Requests per idle sync pass and the mean pass time, over `window`.
async fn idle(net: &DevNode, node: usize, p: &Sidecar, window: Duration) -> (f64, Duration) {
    // Slots just read are read once more a second later (specs/chat-index.md §2).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (r0, (s0, c0)) = (net.requests(node).await, pass_metrics(p).await);
    tokio::time::sleep(window).await;
    let (r1, (s1, c1)) = (net.requests(node).await, pass_metrics(p).await);
    let passes = (c1 - c0).max(1.0);
    (
        (r1 - r0) as f64 / passes,
        Duration::from_secs_f64((s1 - s0) / passes),
    )
}

fn rss_mib(p: &Sidecar) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", p.process.child.id()))
        .unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Live round: `sender` posts `posts` messages `LIVE_GAP` apart; latencies from each
/// post's return to its arrival in each reader's filter (sorted), and the sender's Bee
/// requests and PSS sends per post.
async fn live(
    net: &DevNode,
    sender_node: usize,
    sender: &Sidecar,
    readers: &[(Sidecar, String)],
    posts: usize,
    tag: &str,
) -> (Vec<Duration>, f64, f64) {
    let key = sender
        .ok("shh_generateSymKeyFromPassword", json!([CHAT]))
        .await;
    let (r0, p0) = (
        net.requests(sender_node).await,
        counter(&status(sender).await, "pss_sent"),
    );
    let mut sent: Vec<Instant> = Vec::new();
    let mut seen: Vec<Vec<Option<Instant>>> = vec![vec![None; posts]; readers.len()];
    let mut next_post = Instant::now();
    let deadline_after_last = Duration::from_secs(60);
    loop {
        if sent.len() < posts && Instant::now() >= next_post {
            let text = format!("{tag} {}", sent.len());
            sender
                .ok(
                    "shh_post",
                    json!([{"symKeyID": key, "topic": public_topic(CHAT), "ttl": 600,
                            "powTarget": 0, "powTime": 1,
                            "payload": staples_e2e::hex0x(text.as_bytes())}]),
                )
                .await;
            sent.push(Instant::now());
            next_post += LIVE_GAP;
        }
        for (r, (p, f)) in readers.iter().enumerate() {
            let ms = p.ok("shh_getFilterMessages", json!([f])).await;
            let now = Instant::now();
            for t in staples_e2e::texts(ms.as_array().map(Vec::as_slice).unwrap_or_default()) {
                if let Some(i) = t
                    .strip_prefix(&format!("{tag} "))
                    .and_then(|i| i.parse::<usize>().ok())
                    && i < posts
                {
                    seen[r][i].get_or_insert(now);
                }
            }
        }
        let all = seen.iter().all(|s| s.iter().all(Option::is_some));
        if all {
            break;
        }
        if sent.len() == posts {
            assert!(
                sent[posts - 1].elapsed() < deadline_after_last,
                "live posts did not all arrive: {seen:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The sender's work for the last post (page, index entry, PSS sends: one after
    // another to every member for the per-member sender) may still run: wait until its
    // PSS count stands still for 3 s.
    let mut p1 = counter(&status(sender).await, "pss_sent");
    let mut still = Instant::now();
    let settle = Instant::now();
    while still.elapsed() < Duration::from_secs(3) && settle.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = counter(&status(sender).await, "pss_sent");
        if now != p1 {
            (p1, still) = (now, Instant::now());
        }
    }
    let r1 = net.requests(sender_node).await;
    let mut lat: Vec<Duration> = seen
        .iter()
        .flat_map(|s| {
            s.iter()
                .zip(&sent)
                .map(|(at, t)| at.unwrap().duration_since(*t))
        })
        .collect();
    lat.sort();
    // Requests over the round include the sender's own polling (every second in a large
    // chat) until it settled: reported as measured.
    (
        lat,
        (r1 - r0) as f64 / posts as f64,
        (p1 - p0) as f64 / posts as f64,
    )
}

fn pct(lat: &[Duration], q: f64) -> f64 {
    lat[((lat.len() - 1) as f64 * q).round() as usize].as_secs_f64()
}

async fn set_latency(net: &DevNode, ms: u64) {
    net.admin(0, "PUT", "/knobs", json!({"latency_ms": ms}))
        .await;
}

async fn round(n: usize, k: usize) -> Vec<String> {
    // Nodes: 0 the crowd, 1 the reader, 2 the sender, 3.. online members.
    let net = DevNode::start(3 + k);
    let dir = tempfile::tempdir().unwrap();
    let mut crowd = Crowd::new(&net.urls[0], CHAT, true).unwrap();
    let t = Instant::now();
    crowd.join(n).await.unwrap();
    for round in 0..PER_WRITER {
        for i in 0..n {
            crowd
                .post(i, &format!("w{i} m{round}"), true)
                .await
                .unwrap();
        }
    }
    eprintln!(
        "N = {n}: crowd written in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let mut total = (n * PER_WRITER) as u64;

    // One phase per kind of sidecar, each with its own online members and sender, so
    // neither pays for members of the other kind (a mixed chat is tests/tests/chat_index.rs).
    let (mut rows, mut live_rows) = (Vec::new(), Vec::new());
    for (name, extra, posts) in [
        ("new", &[][..], LIVE_POSTS),
        (
            "per-member",
            &["--no-chat-index"][..],
            if n >= 1000 { 3 } else { LIVE_POSTS },
        ),
    ] {
        // Online members and the sender catch up before the latency goes on.
        set_latency(&net, 0).await;
        let mut online = Vec::new();
        for i in 0..k {
            let p = start(
                dir.path(),
                &format!("{name}-online-{i}"),
                &net.urls[3 + i],
                extra,
            );
            let (_, f) = join(&p).await;
            online.push((p, f));
        }
        let sender = start(dir.path(), &format!("{name}-sender"), &net.urls[2], extra);
        join(&sender).await;
        for p in online.iter().map(|(p, _)| p).chain([&sender]) {
            until_delivered(p, total, Instant::now()).await;
        }
        // Drain what the online members' filters hold so far.
        for (p, f) in &online {
            p.ok("shh_getFilterMessages", json!([f])).await;
        }
        set_latency(&net, LATENCY_MS).await;

        let r0 = net.requests(1).await;
        let t0 = Instant::now();
        let reader = start(dir.path(), &format!("{name}-reader"), &net.urls[1], extra);
        join(&reader).await;
        let took = until_delivered(&reader, total, t0).await;
        let requests = net.requests(1).await - r0;
        let rss = rss_mib(&reader);
        let (per_pass, pass_time) = idle(&net, 1, &reader, Duration::from_secs(12)).await;
        rows.push(format!(
            "| {n} | {name} | {:.2} s, {requests} requests | {per_pass:.1} requests, {:.0} ms | {rss:.0} MiB |",
            took.as_secs_f64(),
            pass_time.as_secs_f64() * 1000.0
        ));
        reader.process.kill();

        let (lat, requests, pss) = live(&net, 2, &sender, &online, posts, name).await;
        live_rows.push(format!(
            "| {n} | {name} | {:.2} s / {:.2} s / {:.2} s | {requests:.1} | {pss:.1} |",
            pct(&lat, 0.5),
            pct(&lat, 0.95),
            pct(&lat, 1.0),
        ));
        sender.process.kill();
        for (p, _) in online {
            p.process.kill();
        }
        // The next phase's readers catch up on these too.
        total += posts as u64;
    }
    rows.push(String::new());
    rows.extend(live_rows);
    rows
}

/// One writer's inbox of `m` messages, caught up by a new reader at 20 ms per request.
async fn one_inbox(m: usize) -> String {
    let net = DevNode::start(2);
    let dir = tempfile::tempdir().unwrap();
    let mut crowd = Crowd::new(&net.urls[0], CHAT, true).unwrap();
    crowd.join(1).await.unwrap();
    for i in 0..m {
        crowd.post(0, &format!("m{i}"), i + 1 == m).await.unwrap();
    }
    set_latency(&net, LATENCY_MS).await;
    let r0 = net.requests(1).await;
    let t0 = Instant::now();
    let reader = start(dir.path(), "reader", &net.urls[1], &[]);
    join(&reader).await;
    let took = until_delivered(&reader, m as u64, t0).await;
    let requests = net.requests(1).await - r0;
    let st = status(&reader).await;
    format!(
        "| one writer's inbox of {m} messages, new reader | {:.2} s | {requests} requests ({} messages from page bundles, {} fetched one by one) |",
        took.as_secs_f64(),
        counter(&st, "from_bundle"),
        counter(&st, "fetched"),
    )
}

fn main() {
    let sizes = env_list("STAPLES_BENCH_SCALE", "10,100,1000");
    let k = env_list("STAPLES_BENCH_K", "10")
        .first()
        .copied()
        .unwrap_or(10);
    let inbox = env_list("STAPLES_BENCH_INBOX", "10000")
        .first()
        .copied()
        .unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut catchup = Vec::new();
        let mut live = Vec::new();
        for &n in &sizes {
            let rows = round(n, k.min(n)).await;
            let split = rows.iter().position(String::is_empty).unwrap_or(rows.len());
            catchup.extend_from_slice(&rows[..split]);
            live.extend_from_slice(&rows[(split + 1).min(rows.len())..]);
        }
        println!("public chat, N writers x {PER_WRITER} messages, {LATENCY_MS} ms added per Bee request");
        println!("| N | reader | catch-up (3N messages) | idle pass | RSS after catch-up |");
        println!("|---|---|---|---|---|");
        for r in &catchup {
            println!("{r}");
        }
        println!("\nlive: {LIVE_POSTS} posts 300 ms apart (3 for the per-member sender at N >= 1000) to min(N, {k}) online members of the sender's kind");
        println!("| N | sender | post -> member p50 / p95 / last | sender's Bee requests per post | PSS sends per post |");
        println!("|---|---|---|---|---|");
        for r in &live {
            println!("{r}");
        }
        if inbox > 0 {
            println!("\n| round | time | requests |\n|---|---|---|");
            println!("{}", one_inbox(inbox).await);
        }
    });
}
