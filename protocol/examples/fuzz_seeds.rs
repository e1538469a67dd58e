//! Seed corpus for the cargo-fuzz targets in `protocol/fuzz/fuzz_targets` (issue #18).
//!
//! A fuzzer that starts from empty inputs spends most of its time failing the first length
//! or magic check of each parser. This program writes, for every target, a few dozen
//! *valid* inputs in the exact format that target reads (mode bytes included), built with
//! the crate's own encoders and signers or taken from `shared/vectors`, so fuzzing starts
//! past the first parser. Output is deterministic: fixed keys, fixed timestamps and
//! ChaCha20 RNGs with fixed seeds.
//!
//! ```text
//! cargo run -p staples-protocol --example fuzz_seeds
//!     rewrites protocol/fuzz/seeds/<target>/<name> for every target, then replays them and
//!     exits non-zero if a target has no generator or under 80% of its seeds get past
//!     its first parser.
//! cargo run -p staples-protocol --example fuzz_seeds -- --replay DIR
//!     prints a Markdown table of how many inputs in DIR/<target>/ (e.g. protocol/fuzz/seeds
//!     or protocol/fuzz/corpus) get past each target's first parser.
//! ```
//!
//! Adding a target: write a module named after it below with `seeds(&Vectors) -> Seeds` and
//! `passes(&[u8]) -> bool` (mirroring the target's own input handling), and list it in
//! [`TARGETS`]. A target file without an entry makes the generating run fail.
//!
//! Vectors are read from `$STAPLES_VECTORS` or `../shared/vectors` beside the repository.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use serde_json::Value;
use staples_protocol::crypto::{PrivateKey, keccak256};
use staples_protocol::dag::{ChatId, Draft as DagDraft, SignedMessage};
use staples_protocol::whisper::{self, Envelope, Recipient, SymKey, Topic};

/// Share of a target's seeds that must get past its first parser.
const MIN_SHARE: f64 = 0.8;
/// Fixed "now" for everything time-stamped (Unix seconds).
const NOW: u32 = 1_700_000_000;
/// The same instant in milliseconds (DAG timestamps, contact records).
const NOW_MS: u64 = 1_700_000_000_000;

/// One fuzz target: how to seed it and how to tell that an input gets past its first parser.
struct Target {
    name: &'static str,
    seeds: fn(&Vectors) -> Seeds,
    passes: fn(&[u8]) -> bool,
}

/// Every target with a generator: a module of the same name as its file in
/// `fuzz_targets/`, with `seeds` and `passes`.
macro_rules! targets {
    ($($name:ident),* $(,)?) => {
        &[$(Target { name: stringify!($name), seeds: $name::seeds, passes: $name::passes }),*]
    };
}

const TARGETS: &[Target] = targets![
    bee_api,
    bridged_record,
    chat_records,
    dag_message_decode,
    dag_message_structured,
    devp2p,
    inbox_page_decode,
    inbox_reader_pages,
    mailserver,
    swarm_chunk,
    swarm_feed_update,
    swarm_joiner,
    swarm_soc,
    swarm_stamp,
    swarm_trojan_unwrap,
    topic_log,
    whisper_asymmetric_open,
    whisper_envelope_decode,
    whisper_json_parse,
    whisper_plaintext_parse,
    whisper_symmetric_open,
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => generate(),
        [flag, dir] if flag == "--replay" => {
            let rows = replay(Path::new(dir));
            print_table(&rows);
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("usage: fuzz_seeds [--replay DIR]");
            ExitCode::from(2)
        }
    }
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The target names: the `.rs` files in `fuzz_targets/`, sorted.
fn target_files() -> Vec<String> {
    let dir = fuzz_dir().join("fuzz_targets");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("fuzz_targets is readable")
        .filter_map(|e| {
            let name = e.expect("directory entry").file_name().into_string().ok()?;
            name.strip_suffix(".rs").map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

/// Writes every target's seeds, then replays them as the self check.
fn generate() -> ExitCode {
    let vectors = Vectors::load();
    let root = fuzz_dir().join("seeds");
    let mut ok = true;
    for name in target_files() {
        let Some(target) = TARGETS.iter().find(|t| t.name == name) else {
            eprintln!("error: fuzz target {name} has no seed generator: add it to TARGETS");
            ok = false;
            continue;
        };
        let seeds = (target.seeds)(&vectors);
        let dir = root.join(&name);
        // Delete and recreate, so a seed renamed or dropped does not linger.
        if dir.exists() {
            std::fs::remove_dir_all(&dir).expect("old seed directory is removable");
        }
        std::fs::create_dir_all(&dir).expect("seed directory is creatable");
        for (file, data) in &seeds.0 {
            std::fs::write(dir.join(file), data).expect("seed is writable");
        }
        eprintln!("{name}: {} seeds", seeds.0.len());
    }
    let rows = replay(&root);
    print_table(&rows);
    for row in &rows {
        match row.passed {
            Some(p) if row.inputs > 0 && (p as f64) >= MIN_SHARE * row.inputs as f64 => {}
            _ => {
                eprintln!(
                    "error: seeds of {} do not get past its first parser",
                    row.target
                );
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One line of the replay table; `passed` is `None` for a directory with no known target.
struct Row {
    target: String,
    inputs: usize,
    passed: Option<usize>,
}

/// Runs every input under `root/<target>/` through that target's first parser.
fn replay(root: &Path) -> Vec<Row> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", root.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.iter()
        .map(|dir| {
            let name = dir
                .file_name()
                .expect("named")
                .to_string_lossy()
                .into_owned();
            let target = TARGETS.iter().find(|t| t.name == name);
            let mut inputs = 0;
            let mut passed = 0;
            for entry in std::fs::read_dir(dir).expect("corpus directory is readable") {
                let path = entry.expect("directory entry").path();
                if !path.is_file() {
                    continue;
                }
                let data = std::fs::read(&path).expect("input is readable");
                inputs += 1;
                if target.is_some_and(|t| (t.passes)(&data)) {
                    passed += 1;
                }
            }
            Row {
                target: name,
                inputs,
                passed: target.map(|_| passed),
            }
        })
        .collect()
}

fn print_table(rows: &[Row]) {
    println!("| target | inputs | past the first parser | share |");
    println!("|---|---:|---:|---:|");
    for r in rows {
        match r.passed {
            Some(p) => {
                let share = if r.inputs == 0 {
                    0.0
                } else {
                    100.0 * p as f64 / r.inputs as f64
                };
                println!("| {} | {} | {} | {share:.0}% |", r.target, r.inputs, p);
            }
            None => println!("| {} | {} | (no generator) | – |", r.target, r.inputs),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------

/// Named seeds of one target; names must be unique.
#[derive(Default)]
struct Seeds(BTreeMap<String, Vec<u8>>);

impl Seeds {
    fn add(&mut self, name: impl Into<String>, data: impl Into<Vec<u8>>) {
        let name = name.into();
        let previous = self.0.insert(name.clone(), data.into());
        assert!(previous.is_none(), "seed name {name} used twice");
    }
}

/// The shared test vectors (`shared/vectors`).
struct Vectors {
    whisper: Value,
    swarm: Value,
}

impl Vectors {
    fn load() -> Self {
        let dir = std::env::var("STAPLES_VECTORS").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors").to_string()
        });
        let read = |name: &str| -> Value {
            let path = format!("{dir}/{name}");
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("vector file {path} is required: {e}"));
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
        };
        Self {
            whisper: read("whisper.json"),
            swarm: read("swarm.json"),
        }
    }
}

/// The array `v[key]`.
fn cases<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("vector key {key} missing"))
        .as_slice()
}

/// `v[key]`, a hex string, as bytes.
fn hexv(v: &Value, key: &str) -> Vec<u8> {
    let s = v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing in vector"));
    hex::decode(s).unwrap_or_else(|e| panic!("{key}: {e}"))
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string"))
}

/// A vector case name as a file name.
fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// `keccak256(seed)` as a private key, the vectors' convention for test keys.
fn key(seed: &str) -> PrivateKey {
    PrivateKey::from_bytes(&keccak256(seed.as_bytes())).expect("keccak output is a valid key")
}

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn random_bytes(rng: &mut ChaCha20Rng, len: usize) -> Vec<u8> {
    let mut out = vec![0; len];
    rng.fill_bytes(&mut out);
    out
}

/// The chat id `chat_records` verifies roster entries for.
const CHAT: ChatId = ChatId::new([0x11; 32]);

/// A chain of DAG messages in `CHAT`: message `n` names the `n` messages before it as
/// parents (0..=8), so every parent count appears.
fn dag_chain() -> Vec<SignedMessage> {
    let author = key("fuzz-dag-author");
    let mut r = rng(18);
    let mut out: Vec<SignedMessage> = Vec::new();
    for n in 0..=8u64 {
        let parents = out.iter().map(SignedMessage::id).collect();
        let body_len = [0, 1, 13, 64, 255, 256, 1000, 4000, 20][n as usize];
        let draft = DagDraft {
            chat_id: CHAT,
            clock: n + 1,
            timestamp: NOW_MS + n * 1000,
            parents,
            ephemeral: false,
            body: random_bytes(&mut r, body_len),
        };
        out.push(draft.sign(&author).expect("draft is valid"));
    }
    out
}

/// A Whisper envelope with nonce 0, built by the crate's `wrap` (geth's `NewSentMessage` +
/// `Wrap`).
fn wrap_envelope(
    topic: Topic,
    payload: &[u8],
    padding: Option<&[u8]>,
    signer: Option<&PrivateKey>,
    to: Recipient<'_>,
    seed: u64,
) -> Envelope {
    let draft = whisper::Draft {
        topic,
        payload,
        padding,
        signer,
        ttl: 60,
        to,
    };
    whisper::wrap(&draft, NOW, &mut rng(seed)).expect("message fits")
}

/// Payloads of various sizes (size fields of 1 and 2 bytes) for Whisper messages. No
/// 3-byte size field: that needs 64 KiB, and libFuzzer sizes its inputs by the largest seed
/// (the vectors' `size3_*` plaintexts cover that field).
fn payloads() -> Vec<(&'static str, Vec<u8>)> {
    let mut r = rng(6);
    vec![
        ("empty", Vec::new()),
        ("text", b"hello from the fuzz seeds".to_vec()),
        ("255", random_bytes(&mut r, 255)),
        ("256", random_bytes(&mut r, 256)),
        ("3000", random_bytes(&mut r, 3000)),
    ]
}

// ---------------------------------------------------------------------------------------
// One module per target
// ---------------------------------------------------------------------------------------

mod bee_api {
    use super::*;
    use serde_json::json;
    use staples_protocol::swarm::bee_api;

    /// `mode ‖ body`: answers in Bee 2.8's shapes (`shared/reference/bee-api.md`) for each
    /// reader, with the extra fields Bee sends.
    pub fn seeds(_: &Vectors) -> Seeds {
        let mut s = Seeds::default();
        let pss = key("fuzz-bee-pss").public_key();
        let batch = hex::encode(keccak256("fuzz-batch"));
        let bodies: Vec<(&str, u8, String)> = vec![
            ("addresses", 0, json!({"overlay": hex::encode(keccak256("overlay")), "underlay": ["/ip4/127.0.0.1/tcp/1634/p2p/16Uiu2"], "ethereum": "0x".to_string() + &"ab".repeat(20), "chain_address": "0x00", "publicKey": hex::encode(pss.to_compressed()), "pssPublicKey": hex::encode(pss.to_compressed())}).to_string()),
            ("addresses-uncompressed", 0, json!({"overlay": hex::encode(keccak256("o2")), "pssPublicKey": hex::encode(pss.to_uncompressed())}).to_string()),
            ("peers", 1, json!({"peers": [{"address": hex::encode(keccak256("p1")), "fullNode": true}, {"address": hex::encode(keccak256("p2")), "fullNode": false}]}).to_string()),
            ("peers-none", 1, json!({"peers": []}).to_string()),
            ("stamps", 2, json!({"stamps": [{"batchID": batch, "utilization": 0, "usable": true, "label": "", "depth": 20, "amount": "100000000", "bucketDepth": 16, "blockNumber": 1, "immutableFlag": false, "exists": true, "batchTTL": 86400, "expired": false}]}).to_string()),
            ("stamps-unusable", 2, json!({"stamps": [{"batchID": batch, "usable": false, "batchTTL": 10}, {"batchID": hex::encode(keccak256("b2")), "usable": true, "batchTTL": 0}]}).to_string()),
            ("bought", 3, json!({"batchID": batch, "txHash": "0x".to_string() + &"cd".repeat(32)}).to_string()),
            ("stamp", 4, json!({"batchID": batch, "usable": true, "exists": true, "batchTTL": 5}).to_string()),
            ("stamp-pending", 4, json!({"batchID": batch, "usable": false}).to_string()),
            ("reference", 5, json!({"reference": hex::encode(keccak256("ref"))}).to_string()),
            ("error-json", 6, json!({"code": 402, "message": "batch is overissued", "reasons": []}).to_string()),
            ("error-text", 6, "404 page not found".to_string()),
            ("feed-index", 7, "00000000000000ff".to_string()),
            ("node-full", 8, json!({"beeMode": "full", "chequebookEnabled": true, "swapEnabled": true}).to_string()),
            ("node-light", 8, json!({"beeMode": "light", "chequebookEnabled": false, "swapEnabled": false}).to_string()),
            ("node-ultra-light", 8, json!({"beeMode": "ultra-light", "chequebookEnabled": false, "swapEnabled": false}).to_string()),
        ];
        for (name, mode, body) in bodies {
            s.add(name, [&[mode][..], body.as_bytes()].concat());
        }
        s
    }

    /// Mirrors the target: the chosen reader accepts the body (error text always does).
    pub fn passes(data: &[u8]) -> bool {
        let Some((mode, body)) = data.split_first() else {
            return false;
        };
        match mode % 9 {
            0 => bee_api::addresses(body).is_ok(),
            1 => bee_api::peer_count(body).is_ok(),
            2 => bee_api::usable_batch(body).is_ok(),
            3 => bee_api::bought_batch(body).is_ok(),
            4 => bee_api::stamp_usable(body).is_ok(),
            5 => bee_api::reference("/bytes", body).is_ok(),
            6 => true,
            8 => bee_api::node_mode(body).is_ok(),
            _ => bee_api::feed_index(body).is_ok(),
        }
    }
}

mod bridged_record {
    use super::*;
    use staples_protocol::bridged::{MAGIC, decode};
    use staples_protocol::whisper::{OpenKey, open};

    /// `[0x01] ‖ geth JSON`: odd first byte, so the target prepends the magic. Relays bridge
    /// public chats only, so only symmetric messages (asymmetric JSON is refused).
    pub fn seeds(v: &Vectors) -> Seeds {
        let mut s = Seeds::default();
        for c in cases(&v.whisper, "symmetric") {
            let json = str_of(c, "geth_json");
            s.add(
                format!("geth-{}", slug(str_of(c, "name"))),
                [&[1u8][..], json.as_bytes()].concat(),
            );
        }
        // Our own JSON rendering of messages opened with the crate.
        let sym = SymKey::from_password("fuzz-bridge");
        let signer = key("fuzz-bridge-signer");
        for (i, (name, payload)) in payloads().iter().take(4).enumerate() {
            let signed = i % 2 == 0;
            let env = wrap_envelope(
                Topic::from_name("staples-fuzz"),
                payload,
                None,
                signed.then_some(&signer),
                Recipient::Symmetric(&sym),
                i as u64,
            );
            let json = open(&env, OpenKey::Symmetric(&sym))
                .expect("own envelope opens")
                .to_geth_json();
            s.add(
                format!("staples-{name}"),
                [&[1u8][..], json.as_bytes()].concat(),
            );
            // The same record as a devp2p relay writes it, with the sender's envelope.
            let with = staples_protocol::bridged::record(&json)
                .and_then(|r| r.with_envelope(env))
                .expect("its own envelope");
            s.add(
                format!("staples-{name}-envelope"),
                [&[1u8][..], &with.body()[MAGIC.len()..]].concat(),
            );
        }
        s
    }

    /// `decode(body)` is `Some(Ok)`, with the magic prepended for odd first bytes.
    pub fn passes(data: &[u8]) -> bool {
        let body = if data.first().is_some_and(|b| b & 1 == 1) {
            [MAGIC.as_slice(), &data[1..]].concat()
        } else {
            data.to_vec()
        };
        matches!(decode(&body), Some(Ok(_)))
    }
}

mod chat_records {
    use super::*;
    use staples_protocol::chat::{ContactRecord, Frame, IndexEntry, RosterEntry, seal};
    use staples_protocol::swarm::Cac;

    /// PSS frames (inline and by reference), contact records, roster entries (both
    /// versions) and index entries signed for `CHAT`, and pages and entries sealed with the target's `[7; 32]` key.
    pub fn seeds(_: &Vectors) -> Seeds {
        let mut s = Seeds::default();
        let chat_key = SymKey::from_bytes(&[0x33; 32]).expect("valid key");
        let signer = key("fuzz-chat-member");
        let topic = Topic::from_name("staples-fuzz");
        // Frames carry a sealed message: a Whisper envelope holding a DAG message.
        for (i, m) in dag_chain().iter().enumerate().step_by(2) {
            let env = wrap_envelope(
                topic,
                &m.encode(),
                None,
                Some(&signer),
                Recipient::Symmetric(&chat_key),
                i as u64,
            );
            let sealed = env.encode();
            let reference = *Cac::new(&sealed[..sealed.len().min(4096)])
                .expect("fits")
                .address();
            s.add(
                format!("frame-inline-{i}-parents"),
                Frame::for_message(CHAT, &sealed, [0; 32]).encode(),
            );
            // The same message announced by reference (as if it were too large to inline).
            let by_ref = Frame {
                chat: CHAT,
                body: staples_protocol::chat::FrameBody::Reference(*reference.as_bytes()),
            };
            s.add(format!("frame-ref-{i}-parents"), by_ref.encode());
        }
        // A message larger than one PSS payload goes by reference on its own.
        let big = wrap_envelope(
            topic,
            &[0x5a; 5000],
            None,
            None,
            Recipient::Symmetric(&chat_key),
            99,
        );
        s.add(
            "frame-ref-large",
            Frame::for_message(CHAT, &big.encode(), keccak256(big.encode())).encode(),
        );

        let pk = |seed: &str| key(seed).public_key();
        for i in 0..4u64 {
            let rec = ContactRecord {
                node_key: pk(&format!("fuzz-node-{i}")),
                overlay: keccak256(format!("overlay-{i}")),
                pss_key: pk(&format!("fuzz-pss-{i}")),
                timestamp_ms: NOW_MS + i,
            };
            s.add(format!("contact-{i}"), rec.encode());
        }
        for i in 0..4u64 {
            let node = key(&format!("fuzz-node-{i}"));
            let entry = RosterEntry {
                topic: topic.0,
                node_key: node.public_key(),
                overlay: keccak256(format!("overlay-{i}")),
                pss_key: pk(&format!("fuzz-pss-{i}")),
                timestamp_ms: NOW_MS + i,
                // Entries 2 and 3 are version 2 (the chat-index feature bit and one more).
                features: [0, 0, 1, 3][i as usize],
            };
            let signed = entry.sign(&CHAT, &node);
            s.add(format!("roster-{i}"), signed.clone());
            s.add(
                format!("sealed-roster-{i}"),
                seal::seal(&[7; 32], &[i as u8 + 1; 12], &signed),
            );
        }
        for i in 0..3u64 {
            let node = key(&format!("fuzz-node-{i}"));
            let entry = IndexEntry {
                node_key: node.public_key(),
                inbox_index: [0, 54, u64::MAX][i as usize],
                timestamp_ms: NOW_MS + i,
            };
            let signed = entry.sign(&CHAT, &node);
            s.add(format!("index-{i}"), signed.clone());
            s.add(
                format!("sealed-index-{i}"),
                seal::seal(&[7; 32], &[i as u8 + 9; 12], &signed),
            );
        }
        let page = super::inbox_page_decode::pages().pop().expect("pages").1;
        s.add("sealed-inbox-page", seal::seal(&[7; 32], &[9; 12], &page));
        s
    }

    /// Any of the target's parsers accepts it: frame, contact record, roster or index entry
    /// verified for `CHAT`, or opening with the `[7; 32]` seal key.
    pub fn passes(data: &[u8]) -> bool {
        Frame::decode(data).is_ok()
            || ContactRecord::decode(data).is_ok()
            || RosterEntry::verify(&CHAT, data).is_ok()
            || IndexEntry::verify(&CHAT, data).is_ok()
            || seal::open(&[7; 32], data).is_ok()
    }
}

mod dag_message_decode {
    use super::*;
    use staples_protocol::dag::{
        Align, Header, decode_padding, encode_padding, encode_padding_with,
    };

    /// Messages with 0..=8 parents, an ephemeral one, one with a flipped signature byte,
    /// their headers, and their padding carriers (exact, geth-aligned, with app filler).
    pub fn seeds(_: &Vectors) -> Seeds {
        let mut s = Seeds::default();
        let chain = dag_chain();
        let mut r = rng(3);
        for m in &chain {
            let n = m.parents().len();
            s.add(format!("msg-{n}-parents"), m.encode());
            s.add(format!("header-{n}-parents"), m.header().encode());
            s.add(
                format!("padding-exact-{n}-parents"),
                encode_padding(m.header(), Align::Exact),
            );
            let geth = Align::Geth {
                payload_len: m.body().len(),
                signed: n % 2 == 0,
            };
            s.add(
                format!("padding-geth-{n}-parents"),
                encode_padding(m.header(), geth),
            );
            let filler = random_bytes(&mut r, 17 * n);
            s.add(
                format!("padding-filler-{n}-parents"),
                encode_padding_with(m.header(), &filler),
            );
        }
        let ephemeral = DagDraft {
            chat_id: ChatId::new([0x22; 32]),
            clock: 42,
            timestamp: NOW_MS,
            parents: vec![chain[0].id()],
            ephemeral: true,
            body: b"typing...".to_vec(),
        }
        .sign(&key("fuzz-dag-other"))
        .expect("valid draft");
        s.add("msg-ephemeral", ephemeral.encode());
        // Forged: one byte of R flipped, so the signature recovers another author (or none).
        let mut forged = chain[3].encode();
        let sig = chain[3].header().signature().0;
        let at = forged
            .windows(65)
            .position(|w| w == sig)
            .expect("signature is in the encoding");
        forged[at + 10] ^= 0x01;
        s.add("msg-forged-signature", forged);
        s
    }

    /// `SignedMessage::decode` (with signature) or `Header::decode` accepts it, or it is a
    /// padding carrier (`decode_padding` is `Ok(Some)`).
    pub fn passes(data: &[u8]) -> bool {
        SignedMessage::decode(data).is_ok()
            || Header::decode(data).is_ok()
            || matches!(decode_padding(data), Ok(Some(_)))
    }
}

mod dag_message_structured {
    use super::*;
    use staples_protocol::dag::MessageId;

    /// The target's `Input`, field by field.
    struct Input {
        author: u8,
        clock: u64,
        timestamp: u64,
        parents: Vec<[u8; 32]>,
        ephemeral: bool,
        body: Vec<u8>,
        edits: Vec<(u16, u8)>,
        forged_signature: [u8; 65],
    }

    /// `size_hint(0).0` of `Input`: inputs shorter than this are skipped by libfuzzer-sys.
    const MIN_LEN: usize = 1 + 8 + 8 + 1 + 65;

    /// The bytes `arbitrary` 1.5 (the fuzz crate's lock) reads as `input`, via the derived
    /// `arbitrary_take_rest`: integers little-endian; a `Vec` is its elements each preceded
    /// by a "keep going" byte with bit 0 set, then a 0 byte; the last field, `[u8; 65]`,
    /// is read whole and then its last byte is read again from the next byte.
    fn encode(input: &Input) -> Vec<u8> {
        let mut out = vec![input.author];
        out.extend(input.clock.to_le_bytes());
        out.extend(input.timestamp.to_le_bytes());
        for p in &input.parents {
            out.push(1);
            out.extend(p);
        }
        out.push(0);
        out.push(u8::from(input.ephemeral));
        for b in &input.body {
            out.extend([1, *b]);
        }
        out.push(0);
        for (pos, mask) in &input.edits {
            out.push(1);
            out.extend(pos.to_le_bytes());
            out.push(*mask);
        }
        out.push(0);
        out.extend(input.forged_signature);
        out.push(input.forged_signature[64]);
        out
    }

    /// The inverse of [`encode`] for any bytes, as `arbitrary` reads them (zeros once the
    /// data runs out).
    fn decode(data: &[u8]) -> Input {
        let mut rest = data;
        let mut byte = || match rest.split_first() {
            Some((&b, tail)) => {
                rest = tail;
                b
            }
            None => 0,
        };
        let author = byte();
        let clock = u64::from_le_bytes(std::array::from_fn(|_| byte()));
        let timestamp = u64::from_le_bytes(std::array::from_fn(|_| byte()));
        let mut parents = Vec::new();
        while byte() & 1 == 1 {
            parents.push(std::array::from_fn(|_| byte()));
        }
        let ephemeral = byte() & 1 == 1;
        let mut body = Vec::new();
        while byte() & 1 == 1 {
            body.push(byte());
        }
        let mut edits = Vec::new();
        while byte() & 1 == 1 {
            edits.push((u16::from_le_bytes([byte(), byte()]), byte()));
        }
        let mut forged_signature: [u8; 65] = std::array::from_fn(|_| byte());
        forged_signature[64] = byte();
        Input {
            author,
            clock,
            timestamp,
            parents,
            ephemeral,
            body,
            edits,
            forged_signature,
        }
    }

    /// Drafts like the DAG chain's (0..=8 parents, ephemeral, bodies up to 1000 bytes),
    /// with no edits, a few edits, and random forged signatures.
    pub fn seeds(_: &Vectors) -> Seeds {
        let mut s = Seeds::default();
        let mut r = rng(33);
        let chain = dag_chain();
        for n in 0..=8usize {
            let body_len = [0, 1, 13, 64, 255, 256, 1000, 40, 20][n];
            let edits = (0..n % 3)
                .map(|e| (u16::try_from(e * 31 + n).expect("small"), 0x01))
                .collect();
            let input = Input {
                author: u8::try_from(n).expect("small"),
                clock: 1 + n as u64,
                timestamp: NOW_MS + n as u64,
                parents: chain[..n].iter().map(|m| *m.id().as_bytes()).collect(),
                ephemeral: n == 5,
                body: random_bytes(&mut r, body_len),
                edits,
                forged_signature: random_bytes(&mut r, 65).try_into().expect("65 bytes"),
            };
            s.add(format!("draft-{n}-parents"), encode(&input));
        }
        s
    }

    /// Mirrors the target: long enough for `Input`, and the decoded draft signs (the key
    /// is valid, the clock is not zero, the body fits).
    pub fn passes(data: &[u8]) -> bool {
        if data.len() < MIN_LEN {
            return false;
        }
        let inp = decode(data);
        let Ok(key) = PrivateKey::from_bytes(&keccak256([inp.author])) else {
            return false;
        };
        let mut parents: Vec<MessageId> = inp
            .parents
            .iter()
            .take(8)
            .filter_map(|p| MessageId::from_slice(p).ok())
            .collect();
        parents.sort_unstable();
        parents.dedup();
        let draft = DagDraft {
            chat_id: ChatId::new([3; 32]),
            clock: inp.clock,
            timestamp: inp.timestamp,
            parents,
            ephemeral: inp.ephemeral,
            body: inp.body,
        };
        let _ = (inp.edits, inp.forged_signature);
        draft.sign(&key).is_ok()
    }
}

mod devp2p {
    use super::*;
    use staples_protocol::devp2p::frame::FrameCodec;
    use staples_protocol::devp2p::handshake::{Initiator, respond};
    use staples_protocol::devp2p::p2p::{self, Capability, Hello};
    use staples_protocol::devp2p::shh::{self, Message, Status};

    /// The target's own key: auths must be addressed to it.
    fn us() -> PrivateKey {
        PrivateKey::from_bytes(&[7; 32]).expect("valid key")
    }

    fn peer() -> PrivateKey {
        PrivateKey::from_bytes(&[8; 32]).expect("valid key")
    }

    /// The target's session as it builds it for an input that is not an auth for us (so
    /// `respond` drew no randomness): its first initiator (which reads the input as an
    /// ack), and the `ack` a peer answers its `auth` with, drawn from the target's RNG.
    fn target_handshake() -> (Initiator, Vec<u8>) {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let (init, auth) = Initiator::new(us(), peer().public_key(), &mut rng);
        // The target draws a second initiator before the peer answers.
        let _second = Initiator::new(us(), peer().public_key(), &mut rng);
        let (_, ack, _) = respond(&peer(), &auth, &mut rng).expect("own auth");
        (init, ack)
    }

    /// A codec that writes frames the target's post-handshake codec reads.
    fn initiator_codec() -> FrameCodec {
        let (init, ack) = target_handshake();
        let (secrets, _) = init.finish(&ack).expect("own ack");
        FrameCodec::new(secrets)
    }

    fn hello(client: &str, caps: &[(&str, u64)], port: u16, seed: &str) -> Hello {
        let caps = caps
            .iter()
            .map(|(n, v)| Capability {
                name: n.to_string(),
                version: *v,
            })
            .collect();
        Hello::ours(client, caps, port, &key(seed).public_key())
    }

    /// EIP-8 auths to `[7; 32]`, the ack the target's initiator expects, frames of its
    /// session, `Hello` payloads, and `code ‖ payload` shh messages.
    pub fn seeds(_: &Vectors) -> Seeds {
        let mut s = Seeds::default();
        for i in 0..3u64 {
            let (_, auth) = Initiator::new(
                key(&format!("fuzz-devp2p-remote-{i}")),
                us().public_key(),
                &mut rng(i),
            );
            s.add(format!("auth-eip8-{i}"), auth);
        }
        s.add("ack-eip8", target_handshake().1);

        let hellos = [
            hello(
                "Geth/v1.9.7-stable/linux-amd64/go1.19",
                &[("shh", 6)],
                30303,
                "fuzz-geth",
            ),
            hello(
                "Staples/v0.1.0",
                &[("shh", 6), ("les", 2), ("eth", 63)],
                0,
                "fuzz-staples",
            ),
            hello("", &[], 65535, "fuzz-empty"),
        ];
        for (i, h) in hellos.iter().enumerate() {
            s.add(format!("hello-{i}"), h.encode());
        }

        let topic = Topic::from_name("staples-fuzz");
        let sym = SymKey::from_password("fuzz-devp2p");
        let envs: Vec<Envelope> = (0..3)
            .map(|i| {
                wrap_envelope(
                    topic,
                    &[i; 40],
                    None,
                    None,
                    Recipient::Symmetric(&sym),
                    u64::from(i),
                )
            })
            .collect();
        let shh_msgs: Vec<(&str, u64, Vec<u8>)> = vec![
            (
                "status",
                shh::STATUS,
                Status::ours(0.2, topic.bloom().0, false).encode(),
            ),
            (
                "status-light",
                shh::STATUS,
                Status::ours(0.001, [0xff; 64], true).encode(),
            ),
            (
                "status-version-only",
                shh::STATUS,
                Status {
                    version: 6,
                    pow: None,
                    bloom: None,
                    light: false,
                }
                .encode(),
            ),
            ("messages", shh::MESSAGES, shh::encode_envelopes(&envs)),
            (
                "messages-one",
                shh::MESSAGES,
                shh::encode_envelopes(&envs[..1]),
            ),
            ("pow", shh::POW_REQUIREMENT, shh::encode_pow(0.2)),
            ("bloom", shh::BLOOM, shh::encode_bloom(&topic.bloom().0)),
            ("p2p-request", shh::P2P_REQUEST, envs[0].encode()),
            (
                "p2p-message",
                shh::P2P_MESSAGE,
                shh::encode_envelopes(&envs),
            ),
        ];
        for (name, code, payload) in &shh_msgs {
            let code = u8::try_from(*code).expect("shh codes fit a byte");
            s.add(format!("shh-{name}"), [&[code][..], payload].concat());
        }

        // Frames: what the peer sends after the handshake (p2p Hello, then shh/6 at offset 16).
        let mut codec = initiator_codec();
        let frame_hello = codec.write(p2p::HELLO, &hellos[0].encode()).expect("fits");
        s.add("frame-hello", frame_hello.clone());
        let mut session = frame_hello;
        for (code, payload) in [
            (
                p2p::BASE_PROTOCOL_LENGTH + shh::STATUS,
                shh_msgs[0].2.clone(),
            ),
            (p2p::PING, p2p::EMPTY_LIST.to_vec()),
            (
                p2p::BASE_PROTOCOL_LENGTH + shh::MESSAGES,
                shh_msgs[3].2.clone(),
            ),
            (p2p::DISCONNECT, p2p::disconnect(3)),
        ] {
            session.extend(codec.write(code, &payload).expect("fits"));
        }
        s.add("frames-session", session);
        let mut codec = initiator_codec();
        s.add(
            "frame-ping",
            codec.write(p2p::PING, &p2p::EMPTY_LIST).expect("fits"),
        );
        s
    }

    /// Mirrors the target: `respond` as `[7; 32]`, the initiator's `finish`, a frame the
    /// session codec authenticates, `Hello::decode`, or an shh message that really parses
    /// (codes 0..=3 and the mailserver envelopes; other codes are accepted unread).
    pub fn passes(data: &[u8]) -> bool {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let mut ok = respond(&us(), data, &mut rng).is_ok();
        let (init, auth) = Initiator::new(us(), peer().public_key(), &mut rng);
        ok |= init.finish(data).is_ok();
        let _second = Initiator::new(us(), peer().public_key(), &mut rng);
        let (secrets, _, _) = respond(&peer(), &auth, &mut rng).expect("our own auth");
        let mut codec = FrameCodec::new(secrets);
        let mut rest = data;
        while let Ok(r) = codec.read(rest) {
            ok |= r.message.is_some();
            if r.consumed == 0 {
                break;
            }
            rest = &rest[r.consumed..];
        }
        ok |= Hello::decode(data).is_ok();
        if let Some((&code, payload)) = data.split_first() {
            ok |= shh::decode(u64::from(code % 4), payload).is_ok();
            ok |= matches!(
                shh::decode(u64::from(code), payload),
                Ok(Message::P2pRequest(_) | Message::P2pMessage(_))
            );
        }
        ok
    }
}

mod inbox_page_decode {
    use super::*;
    use staples_protocol::chat::seal;
    use staples_protocol::inbox::{Entry, InboxWriter, MAX_ENTRIES, Page, bundle};
    use staples_protocol::swarm::Cac;

    /// Page versions from the crate's `InboxWriter`: growing, full (55 entries), and after
    /// roll-over (naming the full page as `prev`). Entries name real DAG message ids.
    pub fn pages() -> Vec<(String, Vec<u8>)> {
        let author = key("fuzz-inbox-author");
        let mut w = InboxWriter::new(CHAT);
        let mut out = Vec::new();
        for n in 0..(MAX_ENTRIES as u64 + 5) {
            let m = DagDraft {
                chat_id: CHAT,
                clock: 10 + 3 * n,
                timestamp: NOW_MS + n,
                parents: Vec::new(),
                ephemeral: false,
                body: n.to_be_bytes().to_vec(),
            }
            .sign(&author)
            .expect("valid draft");
            let entry = Entry {
                message_id: m.id(),
                reference: keccak256(m.encode()),
                clock: m.clock(),
            };
            let page = w.append(entry).expect("appends");
            let bytes = page.encode();
            // The driver uploads the sealed page and confirms its reference.
            let sealed = seal::seal(&[0x44; 32], &[1; 12], &bytes);
            let reference = *Cac::new(&sealed)
                .expect("page fits a chunk")
                .address()
                .as_bytes();
            w.confirm(page.index(), reference).expect("confirms");
            if [0, 1, 9, 54, 55, 56, 59].contains(&n) {
                out.push((
                    format!("page-index-{n}-entries-{}", page.entries().len()),
                    bytes,
                ));
            }
        }
        out
    }

    /// The pages, and page bundles of sealed DAG messages (one, three, a full page's).
    pub fn seeds(_: &Vectors) -> Seeds {
        let mut s = Seeds::default();
        for (name, bytes) in pages() {
            s.add(name, bytes);
        }
        let messages: Vec<Vec<u8>> = dag_chain().iter().map(SignedMessage::encode).collect();
        for n in [1, 3] {
            let b = bundle::encode(&messages[..n]).expect("fits");
            s.add(format!("bundle-{n}"), b);
        }
        let full: Vec<&Vec<u8>> = messages.iter().cycle().take(MAX_ENTRIES).collect();
        s.add("bundle-full", bundle::encode(&full).expect("fits"));
        s
    }

    /// `Page::decode` or `bundle::decode` accepts it.
    pub fn passes(data: &[u8]) -> bool {
        Page::decode(data).is_ok() || bundle::decode(data).is_ok()
    }
}

mod inbox_reader_pages {
    use super::*;

    /// The bytes `arbitrary` 1.5 reads as the target's `Input { posted: u16, edits:
    /// Vec<(u16, u16, u8)> }`: `posted` little-endian, then each edit after a "keep going"
    /// byte with bit 0 set (the last field takes the rest, so no terminator is needed).
    fn encode(posted: u16, edits: &[(u16, u16, u8)]) -> Vec<u8> {
        let mut out = posted.to_le_bytes().to_vec();
        for (index, pos, mask) in edits {
            out.push(1);
            out.extend(index.to_le_bytes());
            out.extend(pos.to_le_bytes());
            out.push(*mask);
        }
        out
    }

    /// Chains of one page, a full page, roll-overs and the target's 300-message maximum,
    /// untouched; and a few with edits (a flipped entry byte, a flipped `prev`, a zero mask).
    pub fn seeds(_: &Vectors) -> Seeds {
        let mut s = Seeds::default();
        for posted in [1u16, 2, 54, 55, 56, 111, 165, 300] {
            s.add(format!("posted-{posted}"), encode(posted, &[]));
        }
        s.add("posted-56-edit-entry", encode(56, &[(55, 100, 0x01)]));
        s.add(
            "posted-120-edit-prev",
            encode(120, &[(119, 45, 0x80), (60, 3, 0xff)]),
        );
        s.add("posted-30-zero-mask", encode(30, &[(29, 7, 0)]));
        s
    }

    /// Long enough for `Input` (2 bytes) and `posted % 301` is not 0: the target then
    /// builds and reads a real chain.
    pub fn passes(data: &[u8]) -> bool {
        match data {
            [lo, hi, ..] => u16::from_le_bytes([*lo, *hi]) % 301 != 0,
            _ => false,
        }
    }
}

mod mailserver {
    use super::*;
    use staples_protocol::mailserver::{self, Completion, Generation, Request};
    use staples_protocol::whisper::{Draft, EnvelopeHash, OpenKey, wrap};

    fn server() -> PrivateKey {
        PrivateKey::from_bytes(&[0x5e; 32]).expect("valid key")
    }

    fn peer() -> PrivateKey {
        PrivateKey::from_bytes(&[0x9e; 32]).expect("valid key")
    }

    fn requests() -> Vec<(String, Request)> {
        let topics = [Topic::from_name("status"), Topic::from_name("staples-fuzz")];
        let mut out = Vec::new();
        for (g, generation) in [Generation::Rlp, Generation::RlpNoTopics, Generation::Binary]
            .into_iter()
            .enumerate()
        {
            for (i, n) in [0usize, 1, 2].into_iter().enumerate() {
                let mut r = Request::for_topics(NOW - 3600, NOW, &topics[..n], [0, 50, 1000][i]);
                r.generation = generation;
                if generation != Generation::Rlp {
                    r.topics.clear();
                }
                if generation == Generation::Binary {
                    r.batch = false;
                }
                out.push((format!("g{g}-t{n}"), r.clone()));
                r.cursor = Some(
                    keccak256([g as u8, i as u8])
                        .iter()
                        .chain(&[7u8; 4])
                        .copied()
                        .collect::<Vec<u8>>()
                        .try_into()
                        .expect("36 bytes"),
                );
                out.push((format!("g{g}-t{n}-cursor"), r));
            }
        }
        out
    }

    /// `0 ‖ payload` for every generation, `1 ‖ completion` (served, failed, bare id) and
    /// `2 ‖ envelope` for requests sealed to the server's key and to the password's key.
    pub fn seeds(_: &Vectors) -> Seeds {
        let mut s = Seeds::default();
        for (name, r) in requests() {
            s.add(
                format!("payload-{name}"),
                [&[0u8][..], &r.encode()].concat(),
            );
        }
        // The 2018 binary request with only a window (full bloom).
        s.add(
            "payload-binary-window",
            [&[0u8][..], &(NOW - 60).to_be_bytes(), &NOW.to_be_bytes()].concat(),
        );
        let id = EnvelopeHash(keccak256("request"));
        let completions = [
            (
                "served",
                Completion::Completed {
                    request_id: id,
                    last_envelope: EnvelopeHash(keccak256("last")),
                    cursor: None,
                },
            ),
            (
                "served-cursor",
                Completion::Completed {
                    request_id: id,
                    last_envelope: EnvelopeHash(keccak256("last")),
                    cursor: Some([9; 36]),
                },
            ),
            (
                "failed",
                Completion::Failed {
                    request_id: id,
                    message: "request is invalid: limit exceeds the maximum allowed value".into(),
                },
            ),
        ];
        for (name, c) in completions {
            s.add(
                format!("completion-{name}"),
                [&[1u8][..], &c.encode()].concat(),
            );
        }
        s.add("completion-id-only", [&[1u8][..], &id.0].concat());
        let sym = SymKey::from_password(staples_protocol::status::OFFLINE_INBOX_PASSWORD);
        let server_pk = server().public_key();
        let peer = peer();
        for (i, (name, r)) in requests()
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % 3 == 0)
        {
            for (to_name, to) in [
                ("sym", Recipient::Symmetric(&sym)),
                ("node-key", Recipient::Asymmetric(&server_pk)),
            ] {
                let payload = r.encode();
                let draft = Draft {
                    topic: Topic([0; 4]),
                    payload: &payload,
                    padding: None,
                    signer: Some(&peer),
                    ttl: 50,
                    to,
                };
                let env = wrap(&draft, NOW, &mut rng(100 + i as u64)).expect("wrap");
                s.add(
                    format!("envelope-{to_name}-{name}"),
                    [&[2u8][..], &env.encode()].concat(),
                );
            }
        }
        s
    }

    /// Mirrors the target: the mode's first parser accepts the rest (for envelopes: it
    /// decodes and opens to a signed request from the fixed peer).
    pub fn passes(data: &[u8]) -> bool {
        let Some((mode, rest)) = data.split_first() else {
            return false;
        };
        match mode % 3 {
            0 => mailserver::decode(rest).is_ok(),
            1 => Completion::decode(rest).is_ok(),
            _ => Envelope::decode(rest).is_ok_and(|env| {
                let sym = SymKey::from_password(staples_protocol::status::OFFLINE_INBOX_PASSWORD);
                let server = server();
                let keys = [OpenKey::Asymmetric(&server), OpenKey::Symmetric(&sym)];
                mailserver::open(&env, &keys, &peer().public_key()).is_ok()
            }),
        }
    }
}

mod swarm_chunk {
    use super::*;
    use staples_protocol::swarm::Cac;

    /// `span ‖ payload` of the BMT vectors (bee-js), the data-with-span vectors, and chunks
    /// the crate builds (a trojan chunk, an intermediate tree chunk).
    pub fn seeds(v: &Vectors) -> Seeds {
        let mut s = Seeds::default();
        for c in cases(&v.swarm, "bmt") {
            let span = u64::from_le_bytes(hexv(c, "span").try_into().expect("8-byte span"));
            let chunk = Cac::with_span(span, &hexv(c, "payload")).expect("payload fits");
            s.add(format!("bmt-{}", slug(str_of(c, "name"))), chunk.to_data());
        }
        for c in cases(&v.swarm, "bmt_data_with_span") {
            s.add(format!("span-{}", slug(str_of(c, "name"))), hexv(c, "data"));
        }
        let (_, trojan) = &super::swarm_trojan_unwrap::trojans()[0];
        s.add("trojan", trojan.clone());
        let split = staples_protocol::swarm::bytes_tree::split(
            &random_bytes(&mut rng(5), 3 * 4096 + 5),
            staples_protocol::swarm::bytes_tree::Redundancy::None,
        )
        .expect("level none");
        s.add(
            "intermediate-4-refs",
            split.chunks.last().expect("root").to_data(),
        );
        s
    }

    /// `Cac::from_data` accepts it.
    pub fn passes(data: &[u8]) -> bool {
        Cac::from_data(data).is_ok()
    }
}

mod swarm_feed_update {
    use super::*;
    use staples_protocol::swarm::Cac;
    use staples_protocol::swarm::feed::{self, FeedTopic, FeedUpdate, V1Payload};

    /// The target's owner key and topic; the index is `mode >> 1`.
    fn owner_key() -> PrivateKey {
        key("fuzz-feed-owner")
    }

    fn topic() -> FeedTopic {
        FeedTopic::from_string("fuzz")
    }

    /// Raw mode (`index << 1 ‖ update`) with v1 and v2 updates signed by the target's owner
    /// at that index, and content mode (`index << 1 | 1 ‖ content`) without edits (content
    /// under 4096 bytes) or with zero-mask edit pairs after a 4096-byte content.
    pub fn seeds(_: &Vectors) -> Seeds {
        let mut s = Seeds::default();
        let key = owner_key();
        let mut r = rng(44);
        for index in [0u8, 1, 2, 127] {
            let mode = index << 1;
            let v1 = V1Payload {
                timestamp: u64::from(NOW),
                reference: *Cac::new(&[index; 5]).expect("fits").address(),
            };
            let update = feed::build_v1_update(&key, &topic(), u64::from(index), &v1).to_bytes();
            s.add(
                format!("raw-v1-index-{index}"),
                [&[mode][..], &update].concat(),
            );
            for len in [1usize, 114, 4096] {
                let content = Cac::new(&random_bytes(&mut r, len)).expect("fits");
                let update =
                    feed::build_v2_update(&key, &topic(), u64::from(index), content).to_bytes();
                s.add(
                    format!("raw-v2-index-{index}-{len}-bytes"),
                    [&[mode][..], &update].concat(),
                );
            }
        }
        for (index, len) in [(0u8, 0usize), (3, 114), (9, 183), (64, 4095)] {
            let data = [&[index << 1 | 1][..], &random_bytes(&mut r, len)].concat();
            s.add(format!("content-index-{index}-{len}-bytes"), data);
        }
        let content = random_bytes(&mut r, 4096);
        s.add(
            "content-full-zero-edits",
            [&[5u8][..], &content, &[10, 0, 200, 0]].concat(),
        );
        s
    }

    /// Mirrors the target's modes: `FeedUpdate::parse` accepts the raw bytes at index
    /// `mode >> 1`, or the edited update built from the content.
    pub fn passes(data: &[u8]) -> bool {
        let Some((&mode, rest)) = data.split_first() else {
            return false;
        };
        let key = owner_key();
        let owner = key.public_key().eth_address();
        let index = u64::from(mode >> 1);
        if mode & 1 == 0 {
            return FeedUpdate::parse(rest, &owner, &topic(), index).is_ok();
        }
        let (content, edits) = rest.split_at(rest.len().min(4096));
        let Ok(cac) = Cac::new(content) else {
            return false;
        };
        let mut edited = feed::build_v2_update(&key, &topic(), index, cac).to_bytes();
        let len = edited.len();
        for pair in edits.chunks(2) {
            if let [pos, mask] = pair {
                edited[usize::from(*pos) * 7 % len] ^= mask;
            }
        }
        FeedUpdate::parse(&edited, &owner, &topic(), index).is_ok()
    }
}

mod swarm_joiner {
    use std::collections::HashMap;

    use super::*;
    use staples_protocol::swarm::bytes_tree::{self, Redundancy};
    use staples_protocol::swarm::chunk::{Cac, ChunkAddress};

    /// The target's content cap.
    const MAX_LEN: u64 = 1 << 22;

    /// The target's record list for the `/bytes` tree of `len` bytes whose leaf `i` is
    /// `patterns[i % k]` repeated (the target builds leaves by repeating a ≤255-byte body).
    /// Records are `kind(1) span_hint(2) len(1) body`: kind 0 a leaf of `span_hint` bytes,
    /// kind 1 an intermediate chunk whose body lists earlier records by index. Identical
    /// chunks are written once, so trees of several MB fit the target's 65 chunks.
    fn tree(patterns: &[Vec<u8>], len: usize) -> Vec<u8> {
        let mut leaves: HashMap<ChunkAddress, (usize, usize)> = HashMap::new();
        let mut content = Vec::with_capacity(len);
        for (i, start) in (0..len.max(1)).step_by(4096).enumerate() {
            let n = (len - start).min(4096);
            let p = i % patterns.len();
            let leaf: Vec<u8> = patterns[p].iter().copied().cycle().take(n).collect();
            leaves.insert(*Cac::new(&leaf).expect("leaf fits").address(), (p, n));
            content.extend(leaf);
        }
        let split = bytes_tree::split(&content, Redundancy::None).expect("level none");
        let mut index: HashMap<ChunkAddress, u8> = HashMap::new();
        let mut records = Vec::new();
        for chunk in &split.chunks {
            if index.contains_key(chunk.address()) {
                continue;
            }
            if let Some(&(p, n)) = leaves.get(chunk.address()) {
                let [hi, lo] = u16::try_from(n).expect("leaf size").to_be_bytes();
                let body = &patterns[p];
                records.extend([0, hi, lo, u8::try_from(body.len()).expect("short pattern")]);
                records.extend(body);
            } else {
                let refs: Vec<u8> = chunk
                    .payload()
                    .chunks(32)
                    .map(|r| {
                        index[&ChunkAddress::from_bytes(r.try_into().expect("32-byte reference"))]
                    })
                    .collect();
                records.extend([1, 0, 0, u8::try_from(refs.len()).expect("at most 128 refs")]);
                records.extend(refs);
            }
            let next = u8::try_from(index.len()).expect("few distinct chunks");
            index.insert(*chunk.address(), next);
        }
        // The target stops after 65 chunks; the root must be the last one.
        assert!(
            index.len() <= 64,
            "tree of {len} bytes needs {} chunks",
            index.len()
        );
        assert_eq!(
            index.get(&split.root),
            Some(&u8::try_from(index.len() - 1).expect("fits"))
        );
        assert!(len as u64 <= MAX_LEN);
        records
    }

    /// Single leaves, two leaves, two-level trees (hundreds of KB, the 524 289-byte carry),
    /// three-level trees (1 MiB+3, 3.5 MiB, the full 4 MiB cap); all canonical.
    pub fn seeds(_: &Vectors) -> Seeds {
        let mut r = rng(22);
        let mut patterns = |lens: &[usize]| -> Vec<Vec<u8>> {
            lens.iter().map(|&l| random_bytes(&mut r, l)).collect()
        };
        let mut s = Seeds::default();
        s.add("leaf-1-byte", tree(&patterns(&[1]), 1));
        s.add("leaf-100-bytes", tree(&patterns(&[7]), 100));
        s.add("leaf-4096-bytes", tree(&patterns(&[255]), 4096));
        s.add("two-leaves-4097", tree(&patterns(&[13, 200]), 4097));
        s.add("two-level-10000", tree(&patterns(&[3, 5, 250]), 10_000));
        s.add("two-level-300kb", tree(&patterns(&[31, 97, 211]), 300_000));
        s.add(
            "two-level-full-512kib",
            tree(&patterns(&[64, 128]), 524_288),
        );
        s.add("carry-524289", tree(&patterns(&[17, 19, 23]), 524_289));
        s.add(
            "three-level-1mib-plus-3",
            tree(&patterns(&[101, 103, 107]), (1 << 20) + 3),
        );
        s.add(
            "three-level-3.5mib",
            tree(
                &patterns(&[251, 241, 239]),
                3 * (1 << 20) + (1 << 19) + 1234,
            ),
        );
        s.add(
            "three-level-4mib",
            tree(&patterns(&[200, 100, 50]), 1 << 22),
        );
        s
    }

    /// Mirrors the target's record parser; `bytes_tree::join` returns `Ok`.
    pub fn passes(data: &[u8]) -> bool {
        let mut store: HashMap<ChunkAddress, Vec<u8>> = HashMap::new();
        let mut made: Vec<Cac> = Vec::new();
        let mut rest = data;
        while let Some((head, tail)) = rest.split_first_chunk::<4>() {
            let [kind, s0, s1, len] = *head;
            let len = usize::from(len).min(tail.len());
            let (body, tail) = tail.split_at(len);
            rest = tail;
            let chunk = if kind & 1 == 0 || made.is_empty() {
                let want = usize::from(u16::from_be_bytes([s0, s1])) % 4097;
                let payload: Vec<u8> = body.iter().copied().cycle().take(want).collect();
                let span = if kind & 4 == 0 {
                    payload.len() as u64
                } else {
                    u64::from(s0)
                };
                Cac::with_span(span, &payload)
            } else {
                let refs: Vec<&Cac> = body
                    .iter()
                    .map(|i| &made[usize::from(*i) % made.len()])
                    .collect();
                let mut payload = Vec::with_capacity(refs.len() * 32);
                for c in &refs {
                    payload.extend_from_slice(c.address().as_bytes());
                }
                let sum = refs
                    .iter()
                    .map(|c| c.span())
                    .fold(0u64, u64::saturating_add);
                let span = if kind & 4 == 0 {
                    sum
                } else {
                    u64::from(u16::from_be_bytes([s0, s1]))
                };
                Cac::with_span(span, &payload)
            };
            let Ok(chunk) = chunk else { continue };
            if kind & 2 == 0 {
                store.insert(*chunk.address(), chunk.to_data());
            }
            made.push(chunk);
            if made.len() > 64 {
                break;
            }
        }
        made.last()
            .is_some_and(|root| bytes_tree::join(&store, root.address(), MAX_LEN).is_ok())
    }
}

mod swarm_soc {
    use super::*;
    use staples_protocol::swarm::Cac;
    use staples_protocol::swarm::feed::{self, FeedTopic, V1Payload};
    use staples_protocol::swarm::signature::SwarmSignature;
    use staples_protocol::swarm::soc::SingleOwnerChunk;

    /// The id, span and payload of a SOC vector (or feed update vector) signed with `sig`.
    fn from_vector(c: &Value, sig: &str) -> Vec<u8> {
        let id: [u8; 32] = hexv(c, "id").try_into().expect("32-byte id");
        let span = u64::from_le_bytes(hexv(c, "span").try_into().expect("8-byte span"));
        let wrapped = Cac::with_span(span, &hexv(c, "payload")).expect("payload fits");
        let sig = SwarmSignature::from_bytes(&hexv(c, sig)).expect("vector signature");
        SingleOwnerChunk::from_parts(id, sig, wrapped)
            .expect("recovers")
            .to_bytes()
    }

    /// SOC vectors (RFC 6979 and bee-js signatures), the feed update vectors, and SOCs the
    /// crate signs (feed updates v1/v2, a 4096-byte payload).
    pub fn seeds(v: &Vectors) -> Seeds {
        let mut s = Seeds::default();
        for c in cases(&v.swarm, "soc") {
            let name = slug(str_of(c, "name"));
            s.add(
                format!("vector-{name}-rfc6979"),
                hexv(c, "soc_data_rfc6979"),
            );
            s.add(
                format!("vector-{name}-bee-js"),
                from_vector(c, "signature_bee_js"),
            );
        }
        for which in ["feed_v1_update", "feed_v2_update"] {
            let mut c = v.swarm[which].clone();
            s.add(
                format!("vector-{}-rfc6979", slug(which)),
                hexv(&c, "soc_data_rfc6979"),
            );
            c["id"] = c["identifier"].clone();
            s.add(
                format!("vector-{}-bee-js", slug(which)),
                from_vector(&c, "signature_bee_js"),
            );
        }
        let owner = key("fuzz-feed-owner");
        let topic = FeedTopic::from_string("staples-fuzz");
        for index in [0, 1, 255, u64::MAX] {
            let payload = V1Payload {
                timestamp: u64::from(NOW),
                reference: *Cac::new(&index.to_be_bytes()).expect("fits").address(),
            };
            s.add(
                format!("feed-v1-index-{index}"),
                feed::build_v1_update(&owner, &topic, index, &payload).to_bytes(),
            );
        }
        let mut r = rng(11);
        for len in [0, 40, 4096] {
            let content = Cac::new(&random_bytes(&mut r, len)).expect("fits");
            s.add(
                format!("feed-v2-{len}-bytes"),
                feed::build_v2_update(&owner, &topic, 2, content).to_bytes(),
            );
        }
        s
    }

    /// `SingleOwnerChunk::parse` accepts it (recovers an owner).
    pub fn passes(data: &[u8]) -> bool {
        SingleOwnerChunk::parse(data).is_ok()
    }
}

mod swarm_stamp {
    use super::*;
    use staples_protocol::swarm::Cac;
    use staples_protocol::swarm::stamp::{Stamp, Stamper};

    /// The marshalled stamp vectors (bee-js and RFC 6979 signatures, ms and ns timestamps)
    /// and stamps from the crate's `Stamper` (slots counting up per bucket).
    pub fn seeds(v: &Vectors) -> Seeds {
        let mut s = Seeds::default();
        for (i, c) in cases(&v.swarm, "postage_stamps").iter().enumerate() {
            let unit = str_of(c, "timestamp_unit");
            s.add(
                format!("vector-{i}-{unit}-bee-js"),
                hexv(c, "marshalled_bee_js"),
            );
            s.add(
                format!("vector-{i}-{unit}-rfc6979"),
                hexv(c, "marshalled_rfc6979"),
            );
        }
        let mut stamper = Stamper::new(key("fuzz-batch-owner"), keccak256("fuzz-batch"), 17, 16)
            .expect("valid depths");
        for i in 0..6u8 {
            // Chunks 0 and 1 twice each: slots 0 and 1 of their buckets.
            let chunk = Cac::new(&[i / 2; 3]).expect("fits");
            let ts = u64::from(NOW) * 1_000_000_000 + u64::from(i);
            let stamp = stamper.stamp(chunk.address(), ts).expect("bucket has room");
            s.add(format!("stamper-{i}"), stamp.to_bytes().to_vec());
        }
        s
    }

    /// `Stamp::parse` accepts it.
    pub fn passes(data: &[u8]) -> bool {
        Stamp::parse(data).is_ok()
    }
}

mod swarm_trojan_unwrap {
    use std::sync::OnceLock;

    use super::*;
    use staples_protocol::chat::Frame;
    use staples_protocol::swarm::pss::{self, PssTopic, Targets};

    /// The target's message, node key and topics.
    const MESSAGE: &[u8] = b"fuzzing the trojan chunk";

    fn node_key() -> PrivateKey {
        key("fuzz-pss-node")
    }

    fn topics() -> [PssTopic; 2] {
        [
            PssTopic::from_string("fuzz"),
            PssTopic::from_string("other"),
        ]
    }

    /// The target's own trojan chunk (same topic, targets, RNG seed), which mutate mode XORs.
    fn target_trojan() -> &'static [u8] {
        static CHUNK: OnceLock<Vec<u8>> = OnceLock::new();
        CHUNK.get_or_init(|| {
            let targets = Targets::new(&[[0x00]]).expect("valid target");
            let pk = node_key().public_key();
            pss::wrap(
                &topics()[0],
                MESSAGE,
                Some(&pk),
                &targets,
                1 << 20,
                &mut rng(7),
            )
            .expect("mines")
            .chunk
            .to_data()
        })
    }

    /// Trojan chunk data (`span ‖ payload`) that the target's key and topics unwrap: to the
    /// node key, to the topic key (no recipient), on both topics, mined for various targets.
    pub fn trojans() -> Vec<(String, Vec<u8>)> {
        let pk = node_key().public_key();
        let mut r = rng(70);
        let messages: [(&str, Vec<u8>); 4] = [
            ("empty", Vec::new()),
            ("short", b"hi".to_vec()),
            (
                "frame",
                Frame::for_message(CHAT, b"sealed message", [0; 32]).encode(),
            ),
            ("max", random_bytes(&mut r, pss::MAX_PAYLOAD_SIZE)),
        ];
        let mut out = Vec::new();
        for (i, (name, msg)) in messages.iter().enumerate() {
            for (t, topic) in topics().iter().enumerate() {
                for (via, recipient) in [("node-key", Some(&pk)), ("topic-key", None)] {
                    let targets = Targets::new(&[[i as u8], [0xff]]).expect("valid targets");
                    let seed = (i * 4 + t * 2 + usize::from(recipient.is_none())) as u64;
                    let wrapped =
                        pss::wrap(topic, msg, recipient, &targets, 1 << 20, &mut rng(seed))
                            .expect("mines");
                    out.push((format!("{name}-topic{t}-{via}"), wrapped.chunk.to_data()));
                }
            }
        }
        out
    }

    /// Raw mode (`0x00 ‖ chunk`) with real trojan chunks, and mutate mode (`0x01 ‖ offset ‖
    /// xor`) with zero or no XOR bytes, which leaves the target's chunk intact.
    pub fn seeds(_: &Vectors) -> Seeds {
        let mut s = Seeds::default();
        for (name, data) in trojans() {
            s.add(format!("raw-{name}"), [&[0u8][..], &data].concat());
        }
        s.add("mutate-no-xor", vec![1, 0, 0]);
        s.add("mutate-zero-xor-at-0", vec![1, 0, 0, 0, 0, 0, 0]);
        s.add(
            "mutate-zero-xor-at-40",
            [&[3u8, 0, 40][..], &[0; 32]].concat(),
        );
        s
    }

    /// Mirrors the target's modes: `pss::unwrap` returns `Ok` on the raw input (even first
    /// byte) or on the XOR-mutated target chunk (odd first byte).
    pub fn passes(data: &[u8]) -> bool {
        let Some((&mode, rest)) = data.split_first() else {
            return false;
        };
        if mode & 1 == 0 {
            return pss::unwrap(rest, &node_key(), &topics()).is_ok();
        }
        let Some((offset, xor)) = rest.split_first_chunk::<2>() else {
            return false;
        };
        let mut chunk = target_trojan().to_vec();
        let start = usize::from(u16::from_be_bytes(*offset)) % chunk.len();
        for (b, x) in chunk[start..].iter_mut().zip(xor) {
            *b ^= x;
        }
        pss::unwrap(&chunk, &node_key(), &topics()).is_ok()
    }
}

mod topic_log {
    use super::*;

    /// `topic(4) ‖ 0x01 ‖ RLP(envelope)`: the odd fifth byte makes the target prepend the
    /// magic (an even one would need the entry to start with the magic, whose first byte
    /// is odd). Envelopes of every kind, each on the topic the input names.
    pub fn seeds(v: &Vectors) -> Seeds {
        let mut s = Seeds::default();
        let entry = |env: &Envelope| [&env.topic.0[..], &[1], &env.encode()].concat();
        for kind in ["symmetric", "asymmetric"] {
            for c in cases(&v.whisper, kind) {
                let env = Envelope::decode(&hexv(&c["envelope"], "rlp")).expect("vector envelope");
                s.add(format!("{kind}-{}", slug(str_of(c, "name"))), entry(&env));
            }
        }
        for (i, env) in super::whisper_envelope_decode::own_envelopes()
            .iter()
            .enumerate()
        {
            if env.encode().len() + 8 <= staples_protocol::topic_log::MAX_ENTRY {
                s.add(format!("staples-{i}"), entry(env));
            }
        }
        s
    }

    /// Mirrors the target: `topic_log::decode` accepts the entry on the input's topic.
    pub fn passes(data: &[u8]) -> bool {
        if data.len() < 4 {
            return false;
        }
        let topic = Topic([data[0], data[1], data[2], data[3]]);
        let entry = if data.get(4).is_some_and(|b| b & 1 == 1) {
            [staples_protocol::topic_log::MAGIC.as_slice(), &data[5..]].concat()
        } else {
            data[4..].to_vec()
        };
        staples_protocol::topic_log::decode(&topic, &entry).is_ok()
    }
}

mod whisper_asymmetric_open {
    use super::*;
    use staples_protocol::whisper::{OpenKey, ecies, message, open};

    fn me() -> PrivateKey {
        PrivateKey::from_bytes(&[0x11; 32]).expect("valid key")
    }

    /// Raw envelope data ECIES-encrypted to `[0x11; 32]` (opens as a message), and split
    /// inputs: a split byte covering the plaintext it starts, then zero-mask flip pairs.
    pub fn seeds(_: &Vectors) -> Seeds {
        let mut s = Seeds::default();
        let signer = key("fuzz-asym-signer");
        let pk = me().public_key();
        for (i, (name, payload)) in payloads().iter().take(5).enumerate() {
            for signed in [false, true] {
                let env = wrap_envelope(
                    Topic::from_name("staples-fuzz"),
                    payload,
                    None,
                    signed.then_some(&signer),
                    Recipient::Asymmetric(&pk),
                    i as u64,
                );
                s.add(
                    format!("raw-{name}-{}", if signed { "signed" } else { "unsigned" }),
                    env.data,
                );
            }
        }
        // Split mode: data[..split] is the plaintext (the split byte is its first byte).
        let mut r = rng(12);
        for (name, plain_len, flips) in [
            ("1", 1usize, 0usize),
            ("40", 40, 0),
            ("200", 200, 3),
            ("255", 255, 1),
        ] {
            let mut data = vec![u8::try_from(plain_len).expect("split fits a byte")];
            data.extend(random_bytes(&mut r, plain_len - 1));
            for f in 0..flips {
                data.extend([u8::try_from(f * 37).expect("small"), 0]);
            }
            s.add(format!("split-{name}-zero-flips-{flips}"), data);
        }
        // A split plaintext that is itself a Whisper message.
        let plain = message::build(b"split", &[0; 8], None).expect("fits");
        s.add(
            "split-whisper-plaintext",
            [&[u8::try_from(plain.len() + 1).expect("short")][..], &plain].concat(),
        );
        // The ECIES layer alone, as geth's `Encrypt` produces it.
        s.add(
            "raw-ecies-empty",
            ecies::encrypt(
                &pk,
                &key("fuzz-eph"),
                &[3; 16],
                &message::build(&[], &[1], None).expect("fits"),
            ),
        );
        s
    }

    /// Mirrors the target: `open` of the input as envelope data, or ECIES decryption of the
    /// chosen plaintext after the flips (the MAC check the property depends on).
    pub fn passes(data: &[u8]) -> bool {
        let me = me();
        let eph = PrivateKey::from_bytes(&[0x22; 32]).expect("valid key");
        let env = Envelope {
            expiry: 100,
            ttl: 10,
            topic: Topic([0; 4]),
            data: data.to_vec(),
            nonce: 0,
        };
        if open(&env, OpenKey::Asymmetric(&me)).is_ok() {
            return true;
        }
        let split = usize::from(data.first().copied().unwrap_or(0)).min(data.len());
        let (plain, flips) = data.split_at(split);
        let mut ct = ecies::encrypt(&me.public_key(), &eph, &[7; 16], plain);
        for pair in flips.chunks(2) {
            if let [pos, mask] = pair {
                let i = usize::from(*pos) % ct.len();
                ct[i] ^= mask;
            }
        }
        ecies::decrypt(&me, &ct).is_ok()
    }
}

mod whisper_envelope_decode {
    use super::*;
    use staples_protocol::dag::{Align, encode_padding};

    /// Envelopes the crate wraps: symmetric and asymmetric, signed and not, default and
    /// explicit padding, one carrying a DAG header in its padding.
    pub fn own_envelopes() -> Vec<Envelope> {
        let topic = Topic::from_name("staples-fuzz");
        let sym = SymKey::from_password("fuzz-envelope");
        let signer = key("fuzz-envelope-signer");
        let recipient = key("fuzz-envelope-recipient").public_key();
        let mut out = Vec::new();
        for (i, (_, payload)) in payloads().iter().enumerate() {
            let seed = i as u64;
            out.push(wrap_envelope(
                topic,
                payload,
                None,
                None,
                Recipient::Symmetric(&sym),
                seed,
            ));
            out.push(wrap_envelope(
                topic,
                payload,
                None,
                Some(&signer),
                Recipient::Asymmetric(&recipient),
                seed,
            ));
        }
        let m = &dag_chain()[2];
        let padding = encode_padding(
            m.header(),
            Align::Geth {
                payload_len: m.body().len(),
                signed: true,
            },
        );
        out.push(wrap_envelope(
            topic,
            m.body(),
            Some(&padding),
            Some(&signer),
            Recipient::Symmetric(&sym),
            77,
        ));
        out
    }

    /// Envelope RLP from the vectors (PoW cases, valid decode cases, every symmetric and
    /// asymmetric message) and envelopes the crate wraps.
    pub fn seeds(v: &Vectors) -> Seeds {
        let mut s = Seeds::default();
        for c in cases(&v.whisper, "pow") {
            s.add(format!("pow-{}", slug(str_of(c, "name"))), hexv(c, "rlp"));
        }
        for c in cases(&v.whisper, "envelope_decode") {
            if c["valid"].as_bool() == Some(true) {
                s.add(
                    format!("decode-{}", slug(str_of(c, "name"))),
                    hexv(c, "rlp"),
                );
            }
        }
        for kind in ["symmetric", "asymmetric"] {
            for c in cases(&v.whisper, kind) {
                s.add(
                    format!("{kind}-{}", slug(str_of(c, "name"))),
                    hexv(&c["envelope"], "rlp"),
                );
            }
        }
        for (i, env) in own_envelopes().iter().enumerate() {
            s.add(format!("staples-{i}"), env.encode());
        }
        s
    }

    /// `Envelope::decode` accepts it.
    pub fn passes(data: &[u8]) -> bool {
        Envelope::decode(data).is_ok()
    }
}

mod whisper_json_parse {
    use super::*;
    use staples_protocol::whisper::json::parse_geth_json;
    use staples_protocol::whisper::{OpenKey, open};

    /// geth's JSON for every symmetric and asymmetric vector, and the crate's rendering of
    /// messages it opens.
    pub fn seeds(v: &Vectors) -> Seeds {
        let mut s = Seeds::default();
        for kind in ["symmetric", "asymmetric"] {
            for c in cases(&v.whisper, kind) {
                s.add(
                    format!("geth-{kind}-{}", slug(str_of(c, "name"))),
                    str_of(c, "geth_json").as_bytes(),
                );
            }
        }
        let sym = SymKey::from_password("fuzz-json");
        let signer = key("fuzz-json-signer");
        let me = key("fuzz-json-recipient");
        for (i, (name, payload)) in payloads().iter().take(4).enumerate() {
            let seed = i as u64;
            let env = wrap_envelope(
                Topic::from_name("staples-fuzz"),
                payload,
                None,
                Some(&signer),
                Recipient::Symmetric(&sym),
                seed,
            );
            let json = open(&env, OpenKey::Symmetric(&sym))
                .expect("opens")
                .to_geth_json();
            s.add(format!("staples-symmetric-{name}"), json.into_bytes());
            let pk = me.public_key();
            let env = wrap_envelope(
                Topic::from_name("staples-fuzz"),
                payload,
                None,
                None,
                Recipient::Asymmetric(&pk),
                seed,
            );
            let json = open(&env, OpenKey::Asymmetric(&me))
                .expect("opens")
                .to_geth_json();
            s.add(format!("staples-asymmetric-{name}"), json.into_bytes());
        }
        s
    }

    /// UTF-8 that `parse_geth_json` accepts.
    pub fn passes(data: &[u8]) -> bool {
        std::str::from_utf8(data).is_ok_and(|t| parse_geth_json(t).is_ok())
    }
}

mod whisper_plaintext_parse {
    use super::*;
    use staples_protocol::dag::{Align, encode_padding};
    use staples_protocol::whisper::message;

    /// Valid plaintexts from the vectors (parse cases, every symmetric and asymmetric
    /// message) and ones the crate builds, including DAG headers in the padding.
    pub fn seeds(v: &Vectors) -> Seeds {
        let mut s = Seeds::default();
        for c in cases(&v.whisper, "plaintext_parse") {
            if c["valid"].as_bool() == Some(true) {
                s.add(format!("parse-{}", slug(str_of(c, "name"))), hexv(c, "raw"));
            }
        }
        for kind in ["symmetric", "asymmetric"] {
            for c in cases(&v.whisper, kind) {
                s.add(
                    format!("{kind}-{}", slug(str_of(c, "name"))),
                    hexv(c, "plaintext"),
                );
            }
        }
        let signer = key("fuzz-plaintext-signer");
        let mut r = rng(9);
        for (name, payload) in payloads() {
            let padding = message::random_padding(payload.len(), false, &mut r);
            s.add(
                format!("staples-{name}"),
                message::build(&payload, &padding, None).expect("fits"),
            );
            s.add(
                format!("staples-{name}-signed"),
                message::build(&payload, &[0x5a; 3], Some(&signer)).expect("fits"),
            );
        }
        for m in dag_chain().iter().step_by(4) {
            let n = m.parents().len();
            let padding = encode_padding(
                m.header(),
                Align::Geth {
                    payload_len: m.body().len(),
                    signed: true,
                },
            );
            s.add(
                format!("dag-carrier-{n}-parents"),
                message::build(m.body(), &padding, Some(&signer)).expect("fits"),
            );
        }
        s
    }

    /// `message::parse` accepts it.
    pub fn passes(data: &[u8]) -> bool {
        message::parse(data).is_ok()
    }
}

mod whisper_symmetric_open {
    use super::*;
    use staples_protocol::whisper::{OpenKey, message, open};

    fn target_key() -> SymKey {
        SymKey::from_bytes(&[0x42; 32]).expect("valid key")
    }

    /// Raw mode (`0x00 ‖ envelope data`) with real encryptions under the target's
    /// `[0x42; 32]` key (the vectors' plaintexts re-encrypted with their salts, and messages
    /// the crate wraps), and encrypt mode (`0x01 ‖ plaintext`) with valid plaintexts.
    pub fn seeds(v: &Vectors) -> Seeds {
        let mut s = Seeds::default();
        let key42 = target_key();
        for c in cases(&v.whisper, "symmetric") {
            let salt: [u8; 12] = hexv(c, "salt").try_into().expect("12-byte salt");
            let name = slug(str_of(c, "name"));
            s.add(
                format!("raw-{name}"),
                [&[0u8][..], &key42.encrypt(&salt, &hexv(c, "plaintext"))].concat(),
            );
            s.add(
                format!("encrypt-{name}"),
                [&[1u8][..], &hexv(c, "plaintext")].concat(),
            );
        }
        let signer = key("fuzz-sym-signer");
        for (i, (name, payload)) in payloads().iter().enumerate() {
            let signer = (i % 2 == 1).then_some(&signer);
            let env = wrap_envelope(
                Topic([1, 2, 3, 4]),
                payload,
                None,
                signer,
                Recipient::Symmetric(&key42),
                i as u64,
            );
            s.add(
                format!("raw-staples-{name}"),
                [&[2u8][..], &env.data].concat(),
            );
            let plain = message::build(payload, &[7; 5], signer).expect("fits");
            s.add(
                format!("encrypt-staples-{name}"),
                [&[3u8][..], &plain].concat(),
            );
        }
        s
    }

    /// Mirrors the target's modes: `open` succeeds on the envelope it builds (raw data for
    /// an even first byte, the rest encrypted with nonce `[9; 12]` for an odd one).
    pub fn passes(data: &[u8]) -> bool {
        let key = target_key();
        let Some((&mode, rest)) = data.split_first() else {
            return false;
        };
        let env_data = if mode & 1 == 0 {
            rest.to_vec()
        } else {
            key.encrypt(&[9; 12], rest)
        };
        let env = Envelope {
            expiry: 100,
            ttl: 10,
            topic: Topic([1, 2, 3, 4]),
            data: env_data,
            nonce: 0,
        };
        open(&env, OpenKey::Symmetric(&key)).is_ok()
    }
}
