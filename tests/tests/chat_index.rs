//! The chat index (issue #20, specs/chat-index.md) with real processes: `pss` sidecars
//! reading public chats whose other members are a [`Crowd`] written straight to the dev
//! node.
//!
//! - An idle pass costs the same few requests whether the chat has 10 or 50 members (and,
//!   for contrast, a reader acting as a peer from before the index pays one per member).
//! - Hostile members (withheld and overwritten entries, garbage, entries copied from
//!   another chat, entries naming updates that do not exist, a flood) cannot keep an honest
//!   message from a reader, and each is counted.
//! - Old (`--no-chat-index`) and new sidecars in one large chat get every message once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{Value, json};
use staples_e2e::crowd::{Crowd, Shared};
use staples_e2e::{DevNode, Sidecar, join_public, say_public, texts};

async fn status(p: &Sidecar) -> Value {
    p.ok("staples_status", json!([])).await
}

fn counter(st: &Value, name: &str) -> u64 {
    st["counters"][name].as_u64().unwrap_or(0)
}

/// Waits until `p`'s filter `f` holds `want` messages; returns their texts, sorted.
async fn collect(p: &Sidecar, f: &str, got: &mut Vec<Value>, want: usize) -> Vec<String> {
    staples_e2e::collect(p, f, got, want).await;
    let mut t = texts(got);
    t.sort();
    t
}

/// What filter `f` received since the last poll.
async fn more(p: &Sidecar, f: &str) -> Vec<String> {
    let ms = p.ok("shh_getFilterMessages", json!([f])).await;
    texts(ms.as_array().map(Vec::as_slice).unwrap_or_default())
}

/// Requests `p`'s Bee node (`node`) answered per sync pass, over `passes` idle passes.
async fn idle_requests_per_pass(net: &DevNode, node: usize, p: &Sidecar, passes: u64) -> f64 {
    // Let the pass under way finish, and the second read of the slots just read
    // (INDEX_SETTLE, 1 s) go by.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let (r0, p0) = (
        net.requests(node).await,
        counter(&status(p).await, "sync_passes"),
    );
    // The sidecars poll every 200 ms: `passes` passes take about passes / 5 seconds.
    tokio::time::sleep(Duration::from_millis(200 * passes)).await;
    let done = counter(&status(p).await, "sync_passes") - p0;
    let r = net.requests(node).await - r0;
    r as f64 / done.max(1) as f64
}

#[tokio::test]
async fn an_idle_pass_costs_the_same_with_10_or_50_members() {
    const CHAT: &str = "staples-index-idle";
    let net = DevNode::start(3);
    let dir = tempfile::tempdir().unwrap();
    let mut crowd = Crowd::new(&net.urls[0], CHAT, true).unwrap();
    crowd.join(10).await.unwrap();
    for i in 0..10 {
        crowd
            .post(i, &format!("hello from {i}"), true)
            .await
            .unwrap();
    }
    let reader = Sidecar::start_pss(&dir.path().join("new"), &net.urls[1]);
    let old = Sidecar::start_pss_with(&dir.path().join("old"), &net.urls[2], &["--no-chat-index"]);
    let (_, rf) = join_public(&reader, CHAT).await;
    let (_, of) = join_public(&old, CHAT).await;
    let (mut rgot, mut ogot) = (Vec::new(), Vec::new());
    collect(&reader, &rf, &mut rgot, 10).await;
    collect(&old, &of, &mut ogot, 10).await;
    let new_10 = idle_requests_per_pass(&net, 1, &reader, 25).await;
    let old_10 = idle_requests_per_pass(&net, 2, &old, 25).await;

    crowd.join(40).await.unwrap();
    for i in 10..50 {
        crowd
            .post(i, &format!("hello from {i}"), true)
            .await
            .unwrap();
    }
    let all = collect(&reader, &rf, &mut rgot, 50).await;
    assert_eq!(all.len(), 50, "every message once: {all:?}");
    collect(&old, &of, &mut ogot, 50).await;
    let new_50 = idle_requests_per_pass(&net, 1, &reader, 25).await;
    let old_50 = idle_requests_per_pass(&net, 2, &old, 25).await;
    eprintln!(
        "requests per idle pass: index reader {new_10:.1} (10 members) / {new_50:.1} (50); \
         reader without the index {old_10:.1} / {old_50:.1}"
    );
    // Readiness, the roster's next slot, the index's next slot; Bee's peer count and mode,
    // and the read-back of our own roster entries, every 5 s on top.
    assert!(
        new_50 <= 5.0,
        "an idle pass stays at a few requests: {new_50}"
    );
    assert!(
        new_50 <= new_10 + 0.5,
        "idle requests do not grow with the members: {new_10} -> {new_50}"
    );
    // The same measure sees the growth where there is one.
    assert!(old_50 >= old_10 + 30.0, "{old_10} -> {old_50}");
    let st = status(&reader).await;
    let chat = st["chats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["reading"] == true)
        .expect("the chat");
    // The crowd; the reader without the index is a member too, read on every pass.
    assert_eq!(chat["members"], 51, "{chat}");
    assert_eq!(chat["index"]["indexedMembers"], 50, "{chat}");
    assert_eq!(chat["index"]["large"], true, "{chat}");
}

#[tokio::test]
async fn hostile_members_cannot_hide_messages_from_an_index_reader() {
    const CHAT: &str = "staples-index-hostile";
    let net = DevNode::start(2);
    let dir = tempfile::tempdir().unwrap();
    let mut crowd = Crowd::new(&net.urls[0], CHAT, true).unwrap();
    // Members 0..=3 are honest; 4 is hostile.
    crowd.join(5).await.unwrap();
    let reader = Sidecar::start_pss_with(
        &dir.path().join("reader"),
        &net.urls[1],
        &["--full-pass-interval-ms", "3000"],
    );
    let (_, f) = join_public(&reader, CHAT).await;
    let mut got = Vec::new();
    crowd.post(0, "before", true).await.unwrap();
    collect(&reader, &f, &mut got, 1).await;

    // Withheld: member 1 posts without an index entry; only a full pass finds it.
    let full_before = counter(&status(&reader).await, "full_passes");
    crowd.post(1, "withheld", false).await.unwrap();
    // Overwritten: member 2's entry is replaced by the hostile member's own (valid) one.
    crowd.post(2, "overwritten", true).await.unwrap();
    let slot = crowd
        .latest(Shared::Index)
        .await
        .unwrap()
        .expect("an index slot");
    let own = crowd.index_entry(4, 0);
    crowd
        .write_shared(Shared::Index, Some(slot), &crowd.seal(&own))
        .await
        .unwrap();
    // Garbage, an entry for another chat, and one naming an update that does not exist.
    crowd
        .write_shared(Shared::Index, None, &crowd.seal(b"not an entry"))
        .await
        .unwrap();
    crowd
        .write_shared(Shared::Index, None, &[0x5a; 200])
        .await
        .unwrap();
    let mut other = Crowd::new(&net.urls[0], "some-other-chat", true).unwrap();
    other.join(1).await.unwrap();
    let foreign = other.index_entry(0, 0);
    crowd
        .write_shared(Shared::Index, None, &crowd.seal(&foreign))
        .await
        .unwrap();
    let dangling = crowd.index_entry(4, 1_000_000);
    crowd
        .write_shared(Shared::Index, None, &crowd.seal(&dangling))
        .await
        .unwrap();
    // A flood: 150 valid entries from the hostile member within a minute.
    for _ in 0..150 {
        let e = crowd.index_entry(4, 0);
        crowd
            .write_shared(Shared::Index, None, &crowd.seal(&e))
            .await
            .unwrap();
    }
    crowd.post(3, "after", true).await.unwrap();

    let all = collect(&reader, &f, &mut got, 4).await;
    assert_eq!(all, ["after", "before", "overwritten", "withheld"]);
    reader
        .status_until("the dangling entry tried", Duration::from_secs(20), |st| {
            counter(st, "index_dangling") >= 1
        })
        .await;
    let st = status(&reader).await;
    assert!(
        counter(&st, "full_passes") > full_before,
        "a full pass ran: {st}"
    );
    assert!(
        counter(&st, "index_invalid") >= 3,
        "garbage and the foreign entry: {st}"
    );
    assert!(counter(&st, "index_flood") >= 30, "{st}");
    // Nothing twice, and nothing from the hostile member (it never posted).
    tokio::time::sleep(Duration::from_secs(4)).await;
    let again = more(&reader, &f).await;
    assert!(again.is_empty(), "{again:?}");
}

#[tokio::test]
async fn old_and_new_sidecars_share_a_large_chat() {
    const CHAT: &str = "staples-index-mixed";
    let net = DevNode::start(4);
    let dir = tempfile::tempdir().unwrap();
    // With --live-pss-max 2 the chat is large for the new sidecars: they send no PSS to
    // each other, only to the old ones, and poll the index.
    let new_args = ["--live-pss-max", "2"];
    let peers = [
        Sidecar::start_pss_with(&dir.path().join("new-a"), &net.urls[0], &new_args),
        Sidecar::start_pss_with(&dir.path().join("new-b"), &net.urls[1], &new_args),
        Sidecar::start_pss_with(
            &dir.path().join("old-a"),
            &net.urls[2],
            &["--no-chat-index"],
        ),
        Sidecar::start_pss_with(
            &dir.path().join("old-b"),
            &net.urls[3],
            &["--no-chat-index"],
        ),
    ];
    let mut joined = Vec::new();
    for p in &peers {
        joined.push(join_public(p, CHAT).await);
    }
    // The crowd writes first: it does not read its index entries back 3 s later as a
    // sidecar does (chat-index.md §2), so one replaced by a racing sidecar would wait for
    // the next full pass.
    let mut crowd = Crowd::new(&net.urls[0], CHAT, true).unwrap();
    crowd.join(3).await.unwrap();
    for i in 0..3 {
        crowd.post(i, &format!("crowd {i}"), true).await.unwrap();
    }
    let names = ["new-a", "new-b", "old-a", "old-b"];
    for round in 0..2 {
        for (p, ((key, _), name)) in peers.iter().zip(joined.iter().zip(names)) {
            say_public(p, key, CHAT, &format!("{name} {round}")).await;
        }
    }
    let mut want: Vec<String> = names
        .iter()
        .flat_map(|n| [format!("{n} 0"), format!("{n} 1")])
        .chain((0..3).map(|i| format!("crowd {i}")))
        .collect();
    want.sort();
    for (p, (_, f)) in peers.iter().zip(&joined) {
        let mut got = Vec::new();
        assert_eq!(collect(p, f, &mut got, want.len()).await, want);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (p, (_, f)) in peers.iter().zip(&joined) {
        let again = more(p, f).await;
        assert!(again.is_empty(), "nothing twice: {again:?}");
    }
    let st = status(&peers[0]).await;
    let chat = st["chats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["reading"] == true)
        .expect("the chat");
    assert_eq!(
        chat["index"]["indexedMembers"], 4,
        "new-b and the crowd: {chat}"
    );
    assert_eq!(chat["index"]["large"], true, "{chat}");
}

#[tokio::test]
async fn a_full_page_is_read_from_its_bundle_and_a_forged_bundle_adds_nothing() {
    const CHAT: &str = "staples-index-bundles";
    let net = DevNode::start(2);
    let dir = tempfile::tempdir().unwrap();
    // A sidecar writes 56 messages (one full page and one more) while nobody reads.
    let writer = Sidecar::start_pss(&dir.path().join("writer"), &net.urls[0]);
    let (key, _) = join_public(&writer, CHAT).await;
    for i in 0..56 {
        say_public(&writer, &key, CHAT, &format!("sidecar {i}")).await;
    }
    writer
        .status_until("the bundle published", Duration::from_secs(40), |st| {
            st["outboxDepth"] == 0 && counter(st, "bundle_published") == 1
        })
        .await;
    let reader = Sidecar::start_pss(&dir.path().join("reader"), &net.urls[1]);
    let (_, f) = join_public(&reader, CHAT).await;
    let mut got = Vec::new();
    assert_eq!(collect(&reader, &f, &mut got, 56).await.len(), 56);
    let st = status(&reader).await;
    assert_eq!(
        counter(&st, "from_bundle"),
        55,
        "the full page from its bundle: {st}"
    );
    assert_eq!(counter(&st, "fetched"), 1, "the 56th one by one: {st}");

    // A member whose bundle was replaced by one holding other bytes: every listed
    // message is still fetched one by one, nothing else is taken.
    let mut crowd = Crowd::new(&net.urls[0], CHAT, true).unwrap();
    crowd.join(1).await.unwrap();
    for i in 0..55 {
        crowd.post(0, &format!("crowd {i}"), false).await.unwrap();
    }
    let forged: Vec<Vec<u8>> = (0..55u8).map(|i| vec![i; 300]).collect();
    crowd.forge_bundle(0, 0, &forged).await.unwrap();
    let entry = crowd.index_entry(0, 54);
    crowd
        .write_shared(Shared::Index, None, &crowd.seal(&entry))
        .await
        .unwrap();
    let all = collect(&reader, &f, &mut got, 56 + 55).await;
    assert_eq!(all.len(), 111, "every message once: {all:?}");
    let st = status(&reader).await;
    assert_eq!(
        counter(&st, "from_bundle"),
        55,
        "nothing taken from the forged bundle: {st}"
    );
    assert_eq!(counter(&st, "fetched"), 56, "{st}");
    assert_eq!(
        counter(&st, "bundle_mismatch"),
        55,
        "each forged message refused, then fetched: {st}"
    );
}

#[tokio::test]
async fn an_index_full_of_garbage_falls_back_to_full_passes() {
    const CHAT: &str = "staples-index-garbage";
    let net = DevNode::start(2);
    let dir = tempfile::tempdir().unwrap();
    let mut crowd = Crowd::new(&net.urls[0], CHAT, true).unwrap();
    crowd.join(2).await.unwrap();
    // The default full-pass interval (10 minutes): only the fallback can deliver in time.
    let reader = Sidecar::start_pss(&dir.path().join("reader"), &net.urls[1]);
    let (_, f) = join_public(&reader, CHAT).await;
    let mut got = Vec::new();
    crowd.post(0, "first", true).await.unwrap();
    collect(&reader, &f, &mut got, 1).await;
    // Member 1's post has no index entry; the index then holds only garbage.
    crowd.post(1, "not in the index", false).await.unwrap();
    for _ in 0..3 {
        crowd
            .write_shared(Shared::Index, None, &crowd.seal(b"garbage"))
            .await
            .unwrap();
    }
    let all = collect(&reader, &f, &mut got, 2).await;
    assert_eq!(all, ["first", "not in the index"]);
    // The fallback may deliver before every garbage slot was read.
    let st = status(&reader).await;
    assert!(counter(&st, "index_invalid") >= 1, "{st}");
    assert!(
        counter(&st, "full_passes") >= 2,
        "the start and the fallback: {st}"
    );
}
