//! Crash safety of `--transport=pss` delivery, end to end with real processes: a seeded
//! chaos campaign that SIGKILLs the sender's sidecar, the receiver's sidecar and the dev
//! node at random moments while an app posts numbered messages in a public chat and a 1:1
//! chat and another app polls its filters, then counts what was lost, duplicated,
//! reordered or legitimately replayed; and two targeted cases: the receiver killed after
//! the sidecar released messages but before the app polled them, and the receiver killed
//! again and again during startup while messages arrive.
//!
//! `STAPLES_CHAOS_SEED` replays a campaign, `STAPLES_CHAOS_KILLS` (default 10) sets its
//! length (100 is the long campaign).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use staples_e2e::{CallError, DevNode, Identity, Sidecar, call, free_ports, hex0x};

/// The public chat: both sides derive its key from this name.
const CHAT_NAME: &str = "crash-campaign";
const PUB_TOPIC: &str = "0x0a0b0c0d";
const DM_TOPIC: &str = "0x0d0c0b0a";
/// Per-request bound. Generous on purpose: a poll abandoned by the client while the
/// sidecar still answers it would look like a loss that is really the harness's.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// The tests run one at a time: each runs a dev node and two sidecars, and the campaign's
/// timing only means something if they do not compete for the two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// The two chats of the campaign; also the index into per-chat arrays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChatKind {
    Pub = 0,
    Dm = 1,
}

const CHATS: [ChatKind; 2] = [ChatKind::Pub, ChatKind::Dm];

impl ChatKind {
    fn prefix(self) -> &'static str {
        match self {
            ChatKind::Pub => "pub",
            ChatKind::Dm => "dm",
        }
    }

    /// Odd numbers go to the public chat, even ones to the 1:1 chat.
    fn of(n: u64) -> ChatKind {
        if n % 2 == 1 {
            ChatKind::Pub
        } else {
            ChatKind::Dm
        }
    }
}

/// Payload text of a geth message JSON.
fn text(m: &Value) -> String {
    let h = m["payload"].as_str().unwrap().trim_start_matches("0x");
    String::from_utf8(hex::decode(h).unwrap()).unwrap()
}

fn dm_post(to: &str, text: &str) -> Value {
    json!([{"pubKey": to, "topic": DM_TOPIC, "ttl": 60, "powTarget": 0, "powTime": 1,
            "payload": hex0x(text.as_bytes())}])
}

fn pub_post(sym: &str, text: &str) -> Value {
    json!([{"symKeyID": sym, "topic": PUB_TOPIC, "ttl": 60, "powTarget": 0, "powTime": 1,
            "payload": hex0x(text.as_bytes())}])
}

async fn status(url: &str) -> String {
    match call(url, "staples_status", json!([]), Duration::from_secs(5)).await {
        Ok(s) => s.to_string(),
        Err(e) => format!("<{e}>"),
    }
}

/// Polls `filter` until `want` payloads arrived in total (bounded).
async fn collect(p: &Sidecar, filter: &str, got: &mut Vec<String>, want: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(40);
    while got.len() < want {
        if Instant::now() > deadline {
            panic!(
                "{what}: got {got:?}, want {want}; staples_status {}",
                status(&p.http).await
            );
        }
        let ms = p.ok("shh_getFilterMessages", json!([filter])).await;
        got.extend(ms.as_array().unwrap().iter().map(text));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------
// The campaign.

/// What the chaos scheduler kills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Victim {
    Sender,
    Receiver,
    DevNode,
}

/// Where the apps find the sidecars right now; `None` while one is down.
struct Endpoints {
    sender: Mutex<Option<String>>,
    /// The receiver's incarnation (counted from 0, one per start) and URL. Each
    /// incarnation gets a URL no earlier one had, so an answer from a URL is an answer
    /// from that incarnation.
    receiver: Mutex<(u64, Option<String>)>,
    stop_posting: AtomicBool,
    stop_polling: AtomicBool,
}

/// What the sender app did.
#[derive(Default)]
struct Posts {
    /// Numbers `shh_post` answered with a result, per chat.
    acked: [Vec<u64>; 2],
    /// Numbers whose post failed or got no answer: they may or may not arrive.
    unacked: Vec<u64>,
    /// JSON-RPC errors (as opposed to no answer), for the report.
    errors: Vec<String>,
}

/// One successful poll answer of the receiver app.
struct Answer {
    /// When it came, since the campaign started.
    at: Duration,
    chat: ChatKind,
    incarnation: u64,
    numbers: Vec<u64>,
}

/// What the receiver app saw.
#[derive(Default)]
struct Polls {
    answers: Vec<Answer>,
    /// JSON-RPC errors and payloads that do not belong in the filter.
    errors: Vec<String>,
    /// Polls that got no answer although the receiver was not being killed: if the
    /// sidecar did hand that answer out, its messages look lost. For the failure report.
    unanswered: Vec<String>,
}

/// The sender app: numbered posts, alternating chats, one at a time.
async fn post_loop(ep: Arc<Endpoints>, sym: String, to: String) -> Posts {
    let mut posts = Posts::default();
    let mut n = 0u64;
    while !ep.stop_posting.load(Ordering::SeqCst) {
        let url = ep.sender.lock().unwrap().clone();
        let Some(url) = url else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        n += 1;
        let chat = ChatKind::of(n);
        let body = format!("{} {n}", chat.prefix());
        let params = match chat {
            ChatKind::Pub => pub_post(&sym, &body),
            ChatKind::Dm => dm_post(&to, &body),
        };
        match call(&url, "shh_post", params, CALL_TIMEOUT).await {
            Ok(_) => posts.acked[chat as usize].push(n),
            Err(e) => {
                posts.unacked.push(n);
                if let CallError::Rpc(e) = e {
                    posts.errors.push(format!("post {n}: {e}"));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    posts
}

/// The receiver app: polls both filters every ~50 ms, tolerating a receiver that is down.
async fn poll_loop(
    ep: Arc<Endpoints>,
    filters: [String; 2],
    polls: Arc<Mutex<Polls>>,
    started: Instant,
) {
    while !ep.stop_polling.load(Ordering::SeqCst) {
        let (incarnation, url) = ep.receiver.lock().unwrap().clone();
        let Some(url) = url else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        for chat in CHATS {
            let params = json!([filters[chat as usize]]);
            match call(&url, "shh_getFilterMessages", params, CALL_TIMEOUT).await {
                Ok(ms) => {
                    let mut numbers = Vec::new();
                    let mut polls = polls.lock().unwrap();
                    for m in ms.as_array().unwrap() {
                        let t = text(m);
                        match t
                            .strip_prefix(chat.prefix())
                            .and_then(|r| r.strip_prefix(' '))
                            .and_then(|r| r.parse::<u64>().ok())
                        {
                            Some(n) if ChatKind::of(n) == chat => numbers.push(n),
                            _ => polls.errors.push(format!("{chat:?} filter got {t:?}")),
                        }
                    }
                    polls.answers.push(Answer {
                        at: started.elapsed(),
                        chat,
                        incarnation,
                        numbers,
                    });
                }
                // Down or being killed: try again with whatever is current then.
                Err(CallError::Transport(e)) => {
                    // The scheduler clears the URL before it kills, so a URL still current
                    // means this failure was not our doing.
                    if ep.receiver.lock().unwrap().1.as_deref() == Some(url.as_str()) {
                        polls.lock().unwrap().unanswered.push(format!(
                            "{chat:?} at {:?} in incarnation {incarnation}: {e}",
                            started.elapsed()
                        ));
                    }
                    break;
                }
                Err(CallError::Rpc(e)) => polls
                    .lock()
                    .unwrap()
                    .errors
                    .push(format!("poll {chat:?} in incarnation {incarnation}: {e}")),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Per-chat tallies.
#[derive(Default, Debug)]
struct Tally {
    acknowledged: usize,
    /// Acknowledged numbers received at least once.
    delivered: usize,
    /// Unacknowledged numbers that arrived anyway (allowed).
    unacked_arrived: usize,
    lost: Vec<u64>,
    /// Repeats that the replay rule does not allow, described.
    dup: Vec<String>,
    /// First copies received after a higher number of the same chat: (number, highest
    /// number already received).
    reordered: Vec<(u64, u64)>,
    replayed: usize,
    /// Numbers never posted at all.
    unknown: Vec<u64>,
}

impl Tally {
    fn line(&self) -> String {
        format!(
            "acknowledged={} delivered={} lost={} dup={} reordered={} replayed={}",
            self.acknowledged,
            self.delivered,
            self.lost.len(),
            self.dup.len(),
            self.reordered.len(),
            self.replayed
        )
    }

    fn add(&mut self, o: &Tally) {
        self.acknowledged += o.acknowledged;
        self.delivered += o.delivered;
        self.unacked_arrived += o.unacked_arrived;
        self.lost.extend(&o.lost);
        self.dup.extend(o.dup.iter().cloned());
        self.reordered.extend(&o.reordered);
        self.replayed += o.replayed;
        self.unknown.extend(&o.unknown);
    }
}

/// Counts one chat. The replay rule (specs/transport-pss.md §7: the sidecar removes a
/// poll's messages from the filter's stored queue only once the answer was handed to the
/// connection, batched into the next store commit, so a receiver SIGKILLed before that
/// commit may answer those messages again after its restart; on a slow disk that can be
/// more than the last answer): a repeat is `replayed` only if its first copy came from an
/// incarnation and the repeat from the next incarnation that answered a poll of that
/// filter, once per number. Any other repeat is a dup.
fn tally(chat: ChatKind, answers: &[Answer], posts: &Posts) -> Tally {
    let acked: HashSet<u64> = posts.acked[chat as usize].iter().copied().collect();
    let unacked: HashSet<u64> = posts.unacked.iter().copied().collect();
    let answers: Vec<&Answer> = answers.iter().filter(|a| a.chat == chat).collect();
    // Index of the last answer of each incarnation, and the incarnation answering next.
    let mut last_of: HashMap<u64, usize> = HashMap::new();
    let mut next_of: HashMap<u64, u64> = HashMap::new();
    for (i, a) in answers.iter().enumerate() {
        if let Some(prev) = i.checked_sub(1).map(|p| answers[p].incarnation)
            && prev != a.incarnation
        {
            next_of.insert(prev, a.incarnation);
        }
        last_of.insert(a.incarnation, i);
    }
    let mut t = Tally {
        acknowledged: acked.len(),
        ..Tally::default()
    };
    // number → (answer index, incarnation) of its first copy.
    let mut first: HashMap<u64, (usize, u64)> = HashMap::new();
    let mut replayed: HashSet<u64> = HashSet::new();
    let mut highest = 0u64;
    for (i, a) in answers.iter().enumerate() {
        for &n in &a.numbers {
            match first.get(&n) {
                None => {
                    first.insert(n, (i, a.incarnation));
                    if n < highest {
                        t.reordered.push((n, highest));
                    }
                    highest = highest.max(n);
                    if acked.contains(&n) {
                        t.delivered += 1;
                    } else if unacked.contains(&n) {
                        t.unacked_arrived += 1;
                    } else {
                        t.unknown.push(n);
                    }
                }
                Some(&(fi, finc)) => {
                    let allowed = next_of.get(&finc) == Some(&a.incarnation) && replayed.insert(n);
                    if allowed {
                        t.replayed += 1;
                    } else {
                        let (f, acked) = (answers[fi], acked.contains(&n));
                        t.dup.push(format!(
                            "{n} (acknowledged: {acked}): first at {:?} in incarnation {finc} \
                             (last answer of it: {}), again at {:?} in incarnation {}",
                            f.at,
                            last_of.get(&finc) == Some(&fi),
                            a.at,
                            a.incarnation
                        ));
                    }
                }
            }
        }
    }
    t.lost = posts.acked[chat as usize]
        .iter()
        .copied()
        .filter(|n| !first.contains_key(n))
        .collect();
    t
}

/// Acknowledged numbers not yet received.
fn missing(posts: &Posts, polls: &Polls) -> usize {
    let got: HashSet<u64> = polls
        .answers
        .iter()
        .flat_map(|a| a.numbers.iter().copied())
        .collect();
    posts
        .acked
        .iter()
        .flatten()
        .filter(|n| !got.contains(n))
        .count()
}

/// Starts the receiver on a URL none of its earlier incarnations had (see `Endpoints`).
fn start_receiver(dir: &Path, bee: &str, used: &mut HashSet<String>) -> Sidecar {
    for _ in 0..20 {
        let b = Sidecar::start_pss(dir, bee);
        if used.insert(b.http.clone()) {
            return b;
        }
        b.process.kill();
    }
    panic!("the receiver keeps getting a port an earlier incarnation had");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_campaign_loses_duplicates_and_reorders_nothing() {
    let _serial = SERIAL.lock().await;
    let seed = env_u64("STAPLES_CHAOS_SEED", 7);
    let kills = env_u64("STAPLES_CHAOS_KILLS", 10);
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();

    let dir = tempfile::tempdir().unwrap();
    let (a_dir, b_dir, net_dir): (PathBuf, PathBuf, PathBuf) = (
        dir.path().join("sender"),
        dir.path().join("receiver"),
        dir.path().join("devnode"),
    );
    // Fixed ports and a data dir: a restarted dev node is the same network at the same
    // URLs, as a restarted Bee node would be.
    let port = free_ports(2);
    let mut net = Some(DevNode::start_persistent(2, port, &net_dir));
    let urls = net.as_ref().unwrap().urls.clone();
    let mut a = Some(Sidecar::start_pss(&a_dir, &urls[0]));
    let mut used_b = HashSet::new();
    let mut b = Some(start_receiver(&b_dir, &urls[1], &mut used_b));

    // Public chat: both sides derive the key from the chat name; 1:1 chat: the receiver
    // listens with a key pair made here.
    let (sa, sb) = (a.as_ref().unwrap(), b.as_ref().unwrap());
    let a_sym = sa
        .ok("shh_generateSymKeyFromPassword", json!([CHAT_NAME]))
        .await;
    let b_sym = sb
        .ok("shh_generateSymKeyFromPassword", json!([CHAT_NAME]))
        .await;
    let pub_filter = sb
        .ok(
            "shh_newMessageFilter",
            json!([{"symKeyID": b_sym, "topics": [PUB_TOPIC]}]),
        )
        .await;
    let me = Identity::new();
    let dm_filter = me.listen(sb, DM_TOPIC).await;
    let filters = [pub_filter.as_str().unwrap().to_string(), dm_filter];

    let ep = Arc::new(Endpoints {
        sender: Mutex::new(Some(sa.http.clone())),
        receiver: Mutex::new((0, Some(sb.http.clone()))),
        stop_posting: AtomicBool::new(false),
        stop_polling: AtomicBool::new(false),
    });
    let polls = Arc::new(Mutex::new(Polls::default()));
    let poster = tokio::spawn(post_loop(
        ep.clone(),
        a_sym.as_str().unwrap().to_string(),
        me.public.clone(),
    ));
    let poller = tokio::spawn(poll_loop(
        ep.clone(),
        filters.clone(),
        polls.clone(),
        started,
    ));

    // The schedule: the first three kills take each kind once (in a seeded order), so
    // every default run kills each of them; then victims are drawn at random.
    let mut first_three = [Victim::Sender, Victim::Receiver, Victim::DevNode];
    first_three.shuffle(&mut rng);
    let mut killed: HashMap<&str, u64> = HashMap::new();
    // (when, victim, how long it stayed down), for the failure report.
    let mut timeline = Vec::new();
    let mut incarnation = 0u64;
    for k in 0..kills {
        let victim = match usize::try_from(k).ok().and_then(|k| first_three.get(k)) {
            Some(&v) => v,
            None => first_three[rng.gen_range(0..3)],
        };
        let delay = Duration::from_millis(rng.gen_range(150..1200));
        // How long the victim stays down: 0 is an immediate restart.
        let down = Duration::from_millis(rng.gen_range(0..400));
        tokio::time::sleep(delay).await;
        timeline.push((started.elapsed(), victim, down));
        match victim {
            Victim::Sender => {
                *ep.sender.lock().unwrap() = None;
                a.take().unwrap().process.kill();
                tokio::time::sleep(down).await;
                let s = Sidecar::start_pss(&a_dir, &urls[0]);
                *ep.sender.lock().unwrap() = Some(s.http.clone());
                a = Some(s);
                *killed.entry("sender").or_default() += 1;
            }
            Victim::Receiver => {
                ep.receiver.lock().unwrap().1 = None;
                b.take().unwrap().process.kill();
                tokio::time::sleep(down).await;
                let s = start_receiver(&b_dir, &urls[1], &mut used_b);
                incarnation += 1;
                *ep.receiver.lock().unwrap() = (incarnation, Some(s.http.clone()));
                b = Some(s);
                *killed.entry("receiver").or_default() += 1;
            }
            Victim::DevNode => {
                net.take().unwrap().process.kill();
                tokio::time::sleep(down).await;
                net = Some(DevNode::start_persistent(2, port, &net_dir));
                *killed.entry("devnode").or_default() += 1;
            }
        }
    }

    // Stop posting, then wait until every acknowledged message arrived: at most 60 s, and
    // at most 20 s without progress (a lost message never comes; a slow one would have
    // by then: inbox reads run every 200 ms and failed uploads are retried every second).
    // Then a little longer for late repeats.
    ep.stop_posting.store(true, Ordering::SeqCst);
    let posts = poster.await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut left, mut progress) = (usize::MAX, Instant::now());
    while Instant::now() < deadline && progress.elapsed() < Duration::from_secs(20) {
        let now_left = missing(&posts, &polls.lock().unwrap());
        if now_left == 0 {
            break;
        }
        if now_left < left {
            (left, progress) = (now_left, Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ep.stop_polling.store(true, Ordering::SeqCst);
    poller.await.unwrap();
    let polls = std::mem::take(&mut *polls.lock().unwrap());

    let per_chat: Vec<Tally> = CHATS
        .iter()
        .map(|&c| tally(c, &polls.answers, &posts))
        .collect();
    let mut total = Tally::default();
    for t in &per_chat {
        total.add(t);
    }
    let count = |k: &str| killed.get(k).copied().unwrap_or(0);
    println!(
        "crash campaign: seed={seed} kills={kills} (sender={} receiver={} devnode={}) {} in {:.1}s; pub: {}; dm: {}; unacknowledged posts={} of which arrived={}",
        count("sender"),
        count("receiver"),
        count("devnode"),
        total.line(),
        started.elapsed().as_secs_f64(),
        per_chat[0].line(),
        per_chat[1].line(),
        posts.unacked.len(),
        total.unacked_arrived,
    );

    let sb = b.as_ref().unwrap();
    if !total.lost.is_empty()
        || !total.dup.is_empty()
        || !total.reordered.is_empty()
        || !total.unknown.is_empty()
        || !polls.errors.is_empty()
    {
        panic!(
            "crash campaign (seed={seed} kills={kills}) failed:\n\
             pub lost {:?}\ndm lost {:?}\n\
             dup {:#?}\nreordered (number, after) {:?}\n\
             never posted {:?}\nreceiver app errors {:?}\nsender app errors {:?}\n\
             polls unanswered while the receiver was up {:?}\n\
             kills (when, victim, down for) {:?}\nunacknowledged posts {:?}\n\
             receiver staples_status {}",
            per_chat[0].lost,
            per_chat[1].lost,
            total.dup,
            total.reordered,
            total.unknown,
            polls.errors,
            posts.errors,
            polls.unanswered,
            timeline,
            posts.unacked,
            status(&sb.http).await,
        );
    }
    // The campaign must have exercised both chats.
    for t in &per_chat {
        assert!(t.acknowledged > 0, "a chat got no acknowledged post: {t:?}");
    }

    a.unwrap().process.terminate();
    b.unwrap().process.terminate();
    net.unwrap().process.terminate();
}

// ---------------------------------------------------------------------------------------
// Targeted cases.

/// The delivered count of the receiver's 1:1 chat in `staples_status`.
async fn dm_delivered(p: &Sidecar) -> (u64, Value) {
    let s = p.ok("staples_status", json!([])).await;
    let n = s["chats"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "asymmetric" && c["topic"] == DM_TOPIC)
        .filter_map(|c| c["delivered"].as_u64())
        .sum();
    (n, s)
}

/// What the targeted tests start from: a dev node, a sender (A) and a receiver (B)
/// sidecar, and B's 1:1 filter for `me`.
struct OneToOne {
    net: DevNode,
    _dir: tempfile::TempDir,
    b_dir: PathBuf,
    a: Sidecar,
    b: Sidecar,
    me: Identity,
    filter: String,
}

async fn one_to_one() -> OneToOne {
    let net = DevNode::start(2);
    let dir = tempfile::tempdir().unwrap();
    let b_dir = dir.path().join("receiver");
    let a = Sidecar::start_pss(&dir.path().join("sender"), &net.urls[0]);
    let b = Sidecar::start_pss(&b_dir, &net.urls[1]);
    let me = Identity::new();
    let filter = me.listen(&b, DM_TOPIC).await;
    OneToOne {
        net,
        _dir: dir,
        b_dir,
        a,
        b,
        me,
        filter,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_killed_after_delivery_before_poll_gets_it_from_the_same_filter() {
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let OneToOne {
        net,
        _dir,
        b_dir,
        a,
        b,
        me,
        filter,
    } = one_to_one().await;

    const N: u64 = 5;
    for i in 1..=N {
        a.ok("shh_post", dm_post(&me.public, &format!("dm {i}")))
            .await;
    }
    // The sidecar has released them to the filter; the app has not polled yet.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (n, s) = dm_delivered(&b).await;
        if n >= N {
            break;
        }
        assert!(Instant::now() < deadline, "not delivered within 30 s: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    b.process.kill();
    let b = Sidecar::start_pss(&b_dir, &net.urls[1]);
    let mut got = Vec::new();
    collect(
        &b,
        &filter,
        &mut got,
        N as usize,
        "the same filter after the restart",
    )
    .await;
    let want: Vec<String> = (1..=N).map(|i| format!("dm {i}")).collect();
    assert_eq!(got, want, "all of them, once, in order");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let more = b.ok("shh_getFilterMessages", json!([filter])).await;
    assert_eq!(more, json!([]), "nothing twice");
    println!(
        "killed after delivery: {N} of {N} from the same filter after the restart in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    a.process.terminate();
    b.process.terminate();
    net.process.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_killed_during_startup_while_messages_arrive_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let OneToOne {
        net,
        _dir,
        b_dir,
        a,
        b,
        me,
        filter,
    } = one_to_one().await;
    // The chat works before the crashes begin.
    a.ok("shh_post", dm_post(&me.public, "dm 0")).await;
    let mut got = Vec::new();
    collect(&b, &filter, &mut got, 1, "before the crashes").await;
    b.process.kill();

    // The sender app keeps posting through all of it; its sidecar stays up, so every
    // post must be acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let poster = {
        let (url, to, stop) = (a.http.clone(), me.public.clone(), stop.clone());
        tokio::spawn(async move {
            let mut sent = vec!["dm 0".to_string()];
            for i in 1.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let t = format!("dm {i}");
                if let Err(e) = call(&url, "shh_post", dm_post(&to, &t), CALL_TIMEOUT).await {
                    panic!("post {i} while the sender's sidecar is up: {e}");
                }
                sent.push(t);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            sent
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Killed right after the address line and a little later: while it restores its
    // filters, opens the engine and starts delivering what arrived meanwhile.
    for ms in [0, 20, 50, 0, 100, 20, 200, 50] {
        let b = Sidecar::start_pss(&b_dir, &net.urls[1]);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        b.process.kill();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let b = Sidecar::start_pss(&b_dir, &net.urls[1]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let sent = poster.await.unwrap();

    collect(&b, &filter, &mut got, sent.len(), "after the final start").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let more = b.ok("shh_getFilterMessages", json!([filter])).await;
    got.extend(more.as_array().unwrap().iter().map(text));
    assert_eq!(got, sent, "every acknowledged message once, in order");
    println!(
        "killed during startup: {} of {} delivered once and in order in {:.1}s",
        got.len(),
        sent.len(),
        started.elapsed().as_secs_f64()
    );

    a.process.terminate();
    b.process.terminate();
    net.process.terminate();
}
