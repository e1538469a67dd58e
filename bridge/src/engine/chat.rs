//! One chat's in-memory state and the checks every incoming sealed message passes.
//!
//! No I/O here: the engine's tasks fetch and store; this module decides. A message reaches
//! the causal buffer only after its envelope opened with the chat's key, its DAG header
//! came out of the Whisper padding, the DAG signature verified over the Whisper payload,
//! the message named this chat, and its clock was not from the future.

use std::collections::HashMap;
use std::sync::Arc;

use staples_protocol::chat::Chat;
use staples_protocol::chat::keys;
use staples_protocol::crypto::{PrivateKey, PublicKey};
use staples_protocol::dag::{
    self, Causal, CausalBuffer, ChatId, Heads, LamportClock, Limits, MessageId, SignedMessage,
};
use staples_protocol::inbox::{InboxReader, InboxWriter};
use staples_protocol::whisper::{Envelope, OpenKey, SymKey, open};

/// Why an incoming sealed message was refused. Each is counted under its name.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The envelope bytes do not decode.
    #[error("malformed envelope: {0}")]
    Envelope(String),
    /// It does not open with the chat's key (wrong key or tampered).
    #[error("does not open with the chat key")]
    Open,
    /// The Whisper padding carries no DAG header: not a Staples message.
    #[error("no DAG header in the padding")]
    NoHeader,
    /// The DAG header is malformed.
    #[error("malformed DAG header: {0}")]
    Header(String),
    /// The DAG signature does not verify over this payload.
    #[error("DAG signature invalid: {0}")]
    Signature(String),
    /// The message names another chat than the one it came through.
    #[error("message names another chat")]
    WrongChat,
    /// Clock zero or too far in the future.
    #[error("clock refused: {0}")]
    Clock(String),
}

impl Refused {
    /// A short stable name for counters.
    pub fn reason(&self) -> &'static str {
        match self {
            Refused::Envelope(_) => "malformed_envelope",
            Refused::Open => "wrong_key",
            Refused::NoHeader => "no_dag_header",
            Refused::Header(_) => "malformed_dag_header",
            Refused::Signature(_) => "bad_signature",
            Refused::WrongChat => "wrong_chat",
            Refused::Clock(_) => "bad_clock",
        }
    }
}

/// The key that opens a chat's envelopes, if we are a reader of it.
#[derive(Clone)]
pub enum Opener {
    /// Symmetric chat key.
    Symmetric(Arc<SymKey>),
    /// Our identity key, for an asymmetric chat addressed to us.
    Asymmetric(Arc<PrivateKey>),
}

/// A verified message waiting in (or released by) the causal buffer.
#[derive(Clone, Debug)]
pub struct Incoming {
    /// The DAG message (body = the Whisper payload).
    pub message: SignedMessage,
    /// The envelope as received, handed to the app's filters on release.
    pub envelope: Envelope,
}

impl Causal for Incoming {
    fn id(&self) -> MessageId {
        self.message.id()
    }
    fn clock(&self) -> u64 {
        self.message.clock()
    }
    fn parents(&self) -> &[MessageId] {
        self.message.parents()
    }
    fn ephemeral(&self) -> bool {
        self.message.ephemeral()
    }
    fn size(&self) -> usize {
        self.envelope.size() + self.message.body().len()
    }
}

/// Opens and verifies `bytes` as a sealed message of `chat`.
pub fn verify(
    chat: &ChatId,
    opener: &Opener,
    bytes: &[u8],
    now_ms: u64,
) -> Result<Incoming, Refused> {
    verify_with(chat, opener, bytes, now_ms, None)
}

/// [`verify`] for bytes that `owner`'s own signed inbox page lists as message `listed`,
/// and that hash to the reference the page gives: the page signature already binds the
/// owner to these bytes, so a message whose id, computed with the owner as author, is
/// `listed` is the owner's without recovering its signature (`specs/dag.md` §2a, the
/// bulk of a catch-up's CPU). Anything else (another author's message in the page) is
/// verified as usual.
pub fn verify_listed(
    chat: &ChatId,
    opener: &Opener,
    bytes: &[u8],
    now_ms: u64,
    owner: &PublicKey,
    listed: &MessageId,
) -> Result<Incoming, Refused> {
    verify_with(chat, opener, bytes, now_ms, Some((owner, listed)))
}

fn verify_with(
    chat: &ChatId,
    opener: &Opener,
    bytes: &[u8],
    now_ms: u64,
    attested: Option<(&PublicKey, &MessageId)>,
) -> Result<Incoming, Refused> {
    let envelope = Envelope::decode(bytes).map_err(|e| Refused::Envelope(e.to_string()))?;
    let key = match opener {
        Opener::Symmetric(k) => OpenKey::Symmetric(k),
        Opener::Asymmetric(k) => OpenKey::Asymmetric(k),
    };
    let opened = open(&envelope, key).map_err(|_| Refused::Open)?;
    let header = dag::decode_padding(&opened.plaintext.padding)
        .map_err(|e| Refused::Header(e.to_string()))?
        .ok_or(Refused::NoHeader)?;
    let body = opened.plaintext.payload;
    let attested = attested.map(|(owner, listed)| {
        header
            .clone()
            .with_body_attested(body.clone(), owner, listed)
    });
    let message = match attested {
        Some(Ok(m)) => Ok(m),
        None | Some(Err(dag::MessageError::NotAttested)) => header.with_body(body),
        Some(Err(e)) => Err(e),
    }
    .map_err(|e| Refused::Signature(e.to_string()))?;
    if message.chat_id() != chat {
        return Err(Refused::WrongChat);
    }
    LamportClock::check(message.clock(), now_ms).map_err(|e| Refused::Clock(e.to_string()))?;
    Ok(Incoming { message, envelope })
}

/// Another node writing to this chat.
pub struct Member {
    /// Its node key (owner of its inbox feed, author of its messages).
    pub node_key: PublicKey,
    /// Its overlay and PSS key, when known (for live sends).
    pub live: Option<([u8; 32], PublicKey)>,
    /// Our reader of its inbox feed.
    pub reader: InboxReader,
    /// Whether the reader changed since it was last stored.
    pub dirty: bool,
    /// Whether it writes the chat index (a version-2 roster entry or an index entry said
    /// so): then its inbox is read when the index names a new update, and on full passes,
    /// instead of on every pass.
    pub indexed: bool,
    /// The newest inbox update the chat index named that we have not read yet.
    pub hint: Option<u64>,
    /// Reads of `hint` that found no such update.
    pub hint_misses: u8,
}

impl Member {
    /// A member known by its node key only.
    pub fn new(node_key: PublicKey, chat: ChatId) -> Self {
        Self {
            node_key,
            live: None,
            reader: InboxReader::new(chat),
            dirty: true,
            indexed: false,
            hint: None,
            hint_misses: 0,
        }
    }
}

/// A symmetric chat's index as we read and write it (`specs/chat-index.md`).
#[derive(Default)]
pub struct IndexState {
    /// The next index entry to read; `None` until the first pass finds the feed's end.
    pub next: Option<u64>,
    /// Our entries of this run (index, sealed bytes, when written), re-read once after
    /// [`INDEX_RECHECK`] because a racing writer may have replaced them.
    pub own: Vec<(u64, Vec<u8>, std::time::Instant)>,
    /// Entries accepted per author in the current minute (the flood bound).
    pub flood: HashMap<[u8; 20], (std::time::Instant, u32)>,
    /// When every member's inbox was last read (the safety net against withheld or
    /// overwritten entries, and the catch-up of a reader that just started).
    pub last_full: Option<std::time::Instant>,
    /// The last read found entries that do not open or verify: read every inbox until a
    /// read is clean again.
    pub degraded: bool,
    /// Slots read lately (slot, hash of what was there, when), read once more after
    /// [`INDEX_SETTLE`]: a racing writer may have replaced the entry we saw with its own,
    /// and nobody would append that one again.
    pub settling: std::collections::VecDeque<(u64, [u8; 32], std::time::Instant)>,
}

/// How long after reading an index slot we read it again (longer than the few requests a
/// racing writer needs between finding a slot free and writing it).
pub const INDEX_SETTLE: std::time::Duration = std::time::Duration::from_secs(1);

/// At most this many slots wait to be read again; beyond it the oldest are left to the
/// full pass (a flood must not grow our memory).
pub const INDEX_SETTLE_MAX: usize = 4096;

/// How long after writing an index entry we read it back a second time.
pub const INDEX_RECHECK: std::time::Duration = std::time::Duration::from_secs(3);

/// How long our roster (or drop-box) entry is re-read after we wrote it. Feeds have no
/// compare-and-swap: a member that found the same index free just before our upload
/// replaces our entry with its own right after, and both read-backs in `send::announce`
/// succeed. Its check-to-upload window is a few requests long, far below this.
pub const OWN_ENTRY_RECHECK: std::time::Duration = std::time::Duration::from_secs(60);

/// One chat.
pub struct ChatState {
    /// What the app addresses.
    pub chat: Chat,
    /// `chat.id()`, cached.
    pub id: ChatId,
    /// How to find the chat's key again after a restart (`sym:<key id>`, `to:<hex>`,
    /// `me:<key pair id>`); never the key itself.
    pub key_ref: String,
    /// Present when we read this chat.
    pub opener: Option<Opener>,
    /// Lamport clock (inbox pages are sealed with [`ChatState::page_key`]).
    pub clock: LamportClock,
    /// Parent selection.
    pub heads: Heads,
    /// Causal order for what we receive.
    pub buffer: CausalBuffer<Incoming>,
    /// Our own inbox for this chat, once we posted.
    pub writer: Option<InboxWriter>,
    /// Other writers, by their node address.
    pub members: HashMap<[u8; 20], Member>,
    /// Message references learned from inbox pages (R4: where to fetch a wanted parent).
    pub refs: HashMap<MessageId, [u8; 32]>,
    /// Wanted parents with no known reference yet.
    pub wanted: Vec<MessageId>,
    /// Next rendezvous index to read.
    pub roster_next: u64,
    /// Whether our roster entry is written.
    pub announced: bool,
    /// Our entries as written this run (index, sealed bytes, when: version 1, and version
    /// 2 where we write the chat index): re-read by the sync task until
    /// [`OWN_ENTRY_RECHECK`] has passed, because a racing writer may replace them.
    pub own_entry: Vec<(u64, Vec<u8>, std::time::Instant)>,
    /// The chat index (symmetric chats).
    pub index: IndexState,
    /// For a chat we write to someone's public key: their node's overlay and PSS key, from
    /// their contact record.
    pub recipient_live: Option<([u8; 32], PublicKey)>,
    /// Released by the buffer, not yet recorded and handed to the app (in order).
    pub outgoing: std::collections::VecDeque<dag::Delivery<Incoming>>,
    /// Messages delivered to the app (this run and before).
    pub delivered: u64,
    /// Catch-up progress (inbox walks and the fetches they list).
    pub catchup: Arc<Catchup>,
}

/// How far a chat's catch-up got: pages walked, messages listed by them and fetched
/// (this run), and the walk under way, for `staples_status` and a progress log line at
/// most once a second.
#[derive(Default)]
pub struct Catchup {
    pages: std::sync::atomic::AtomicU64,
    listed: std::sync::atomic::AtomicU64,
    fetched: std::sync::atomic::AtomicU64,
    walks: std::sync::atomic::AtomicU64,
    /// Start of the current walk and the fetched count then; the last log line.
    walk: std::sync::Mutex<Option<(std::time::Instant, u64, u64)>>,
    logged: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Catchup {
    fn add(counter: &std::sync::atomic::AtomicU64, n: u64) {
        counter.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    fn get(counter: &std::sync::atomic::AtomicU64) -> u64 {
        counter.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A walk starts.
    pub fn begin(&self) {
        if self
            .walks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            == 0
        {
            *self.walk.lock().unwrap_or_else(|p| p.into_inner()) = Some((
                std::time::Instant::now(),
                Self::get(&self.fetched),
                Self::get(&self.listed),
            ));
        }
    }

    /// A walk ended.
    pub fn end(&self) {
        if self
            .walks
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed)
            == 1
        {
            *self.walk.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }

    /// `n` pages walked.
    pub fn pages(&self, n: u64) {
        Self::add(&self.pages, n);
    }

    /// `n` messages listed.
    pub fn listed(&self, n: u64) {
        Self::add(&self.listed, n);
    }

    /// One listed message fetched (or found already here); logs progress for `chat` if a
    /// second has passed since the last line and the walk has run that long.
    pub fn fetched(&self, chat: &ChatId) {
        Self::add(&self.fetched, 1);
        let now = std::time::Instant::now();
        let Some(p) = self.progress(now) else {
            return;
        };
        if p.elapsed_s < 1.0 {
            return;
        }
        {
            let mut last = self.logged.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| now.duration_since(t).as_secs_f64() < 1.0) {
                return;
            }
            *last = Some(now);
        }
        tracing::info!(
            chat = %format!("0x{}", hex::encode(&chat.as_bytes()[..8])),
            pages = Self::get(&self.pages),
            fetched = p.fetched,
            listed = p.listed,
            rate_per_s = format!("{:.0}", p.rate),
            eta_s = p.eta_s.map(|e| format!("{e:.1}")).unwrap_or_default(),
            "catch-up progress"
        );
    }

    fn progress(&self, now: std::time::Instant) -> Option<Progress> {
        let (started, fetched0, listed0) = (*self.walk.lock().unwrap_or_else(|p| p.into_inner()))?;
        let elapsed_s = now.duration_since(started).as_secs_f64();
        let fetched = Self::get(&self.fetched) - fetched0;
        let listed = Self::get(&self.listed) - listed0;
        let rate = if elapsed_s > 0.0 {
            fetched as f64 / elapsed_s
        } else {
            0.0
        };
        let eta_s = (rate > 0.0).then(|| listed.saturating_sub(fetched) as f64 / rate);
        Some(Progress {
            elapsed_s,
            fetched,
            listed,
            rate,
            eta_s,
        })
    }

    /// For `staples_status.chats[].catchUp`.
    pub fn status(&self) -> serde_json::Value {
        let p = self.progress(std::time::Instant::now());
        serde_json::json!({
            "pagesWalked": Self::get(&self.pages),
            "messagesListed": Self::get(&self.listed),
            "messagesFetched": Self::get(&self.fetched),
            "walking": p.is_some(),
            "ratePerSecond": p.as_ref().map(|p| p.rate),
            "etaSeconds": p.and_then(|p| p.eta_s),
        })
    }
}

/// The current walk's figures.
struct Progress {
    elapsed_s: f64,
    fetched: u64,
    listed: u64,
    rate: f64,
    eta_s: Option<f64>,
}

impl ChatState {
    /// Fresh state for `chat`.
    pub fn new(chat: Chat, key_ref: String, opener: Option<Opener>, limits: Limits) -> Self {
        let id = chat.id();
        Self {
            chat,
            id,
            key_ref,
            opener,
            clock: LamportClock::new(),
            heads: Heads::default(),
            buffer: CausalBuffer::new(limits, &mut rand::rngs::OsRng),
            writer: None,
            members: HashMap::new(),
            refs: HashMap::new(),
            wanted: Vec::new(),
            roster_next: 0,
            announced: false,
            own_entry: Vec::new(),
            index: IndexState::default(),
            recipient_live: None,
            outgoing: Default::default(),
            delivered: 0,
            catchup: Arc::default(),
        }
    }

    /// The key sealing pages written by `writer_node` in this chat: the symmetric page key,
    /// or for an asymmetric chat the ECDH-derived one. `ours` is our node key and
    /// `identity` our identity key when the chat is addressed to us.
    pub fn page_key(&self, writer_node: &PublicKey, ours: &PrivateKey) -> Option<[u8; 32]> {
        match (&self.chat, &self.opener) {
            (Chat::Symmetric { key, topic }, _) => Some(keys::symmetric_page_key(key, topic)),
            // We are the recipient: ECDH of our identity with the writer's node key.
            (Chat::Asymmetric { topic, .. }, Some(Opener::Asymmetric(me))) => {
                Some(keys::asymmetric_page_key(&me.ecdh_x(writer_node), topic))
            }
            // We are a writer: ECDH of our node key with the recipient.
            (Chat::Asymmetric { recipient, topic }, _) => {
                Some(keys::asymmetric_page_key(&ours.ecdh_x(recipient), topic))
            }
        }
    }

    /// Whether the chat has an index: symmetric chats (an asymmetric chat has one writer per
    /// direction, whose inbox is read directly).
    pub fn has_index(&self) -> bool {
        matches!(self.chat, Chat::Symmetric { .. })
    }

    /// Whether the chat is large: more members than `live_pss_max`. A writer of the index
    /// then sends no per-member PSS to members that read the index.
    pub fn is_large(&self, live_pss_max: usize) -> bool {
        self.has_index() && self.members.len() > live_pss_max
    }

    /// Whether we may read `id` as a new message (not delivered, pending or a gap).
    pub fn wants(&self, id: &MessageId) -> bool {
        matches!(self.buffer.state(id), None | Some(dag::IdState::Missing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use staples_protocol::dag::{Align, Draft};
    use staples_protocol::whisper::{self, Recipient, Topic};

    fn sealed(chat: &ChatId, key: &SymKey, author: &PrivateKey, clock: u64) -> Vec<u8> {
        sealed_message(chat, key, author, clock).0
    }

    fn sealed_message(
        chat: &ChatId,
        key: &SymKey,
        author: &PrivateKey,
        clock: u64,
    ) -> (Vec<u8>, SignedMessage) {
        let body = b"hello".to_vec();
        let msg = Draft {
            chat_id: *chat,
            clock,
            timestamp: clock,
            parents: vec![],
            ephemeral: false,
            body: body.clone(),
        }
        .sign(author)
        .expect("signs");
        let padding = dag::encode_padding(
            msg.header(),
            Align::Geth {
                payload_len: body.len(),
                signed: false,
            },
        );
        let draft = whisper::Draft {
            topic: Topic([1, 2, 3, 4]),
            payload: &body,
            padding: Some(&padding),
            signer: None,
            ttl: 50,
            to: Recipient::Symmetric(key),
        };
        let bytes = whisper::wrap(&draft, 1_000, &mut rand::rngs::OsRng)
            .expect("wraps")
            .encode();
        (bytes, msg)
    }

    /// A public chat's key, id and opener.
    fn public_chat() -> (SymKey, ChatId, Opener) {
        let key = SymKey::from_bytes(&[3; 32]).expect("key");
        let chat = Chat::Symmetric {
            key: [3; 32],
            topic: [1, 2, 3, 4],
        }
        .id();
        let opener = Opener::Symmetric(Arc::new(key.clone()));
        (key, chat, opener)
    }

    #[test]
    fn a_listing_owner_is_the_author_only_of_its_own_ids() {
        let (key, chat, opener) = public_chat();
        let now = 10_000_000;
        let alice = PrivateKey::from_bytes(&[8; 32]).expect("key");
        let bob = PrivateKey::from_bytes(&[9; 32]).expect("key");
        let (bytes, m) = sealed_message(&chat, &key, &alice, now);
        let check = |owner: &PrivateKey, listed: MessageId| {
            crate::engine::verify_sealed(
                chat,
                &opener,
                &bytes,
                Some(listed),
                Some(&owner.public_key()),
            )
            .map(|i| (i.message.id(), *i.message.author()))
        };
        // Alice's page listing Alice's message: attributed without recovery, and the
        // result is the one recovery gives.
        assert_eq!(check(&alice, m.id()), Ok((m.id(), alice.public_key())));
        // Bob's page listing Alice's message: verified as usual, still Alice's.
        assert_eq!(check(&bob, m.id()), Ok((m.id(), alice.public_key())));
        // A listing under another id is refused either way.
        let (_, other) = sealed_message(&chat, &key, &alice, now + 1);
        assert_eq!(check(&alice, other.id()), Err("id_mismatch"));
        assert_eq!(check(&bob, other.id()), Err("id_mismatch"));
        // The trust rule, stated: Bob's own page vouches for bytes carrying Alice's
        // signature over content that, attributed to Bob, has the id Bob lists. Only Bob's
        // signature makes that listing, so the message is Bob's (his own words, as
        // valid as if he had re-signed them); it can never be passed off as Alice's.
        let bobs = Draft {
            chat_id: chat,
            clock: now,
            timestamp: now,
            parents: vec![],
            ephemeral: false,
            body: b"hello".to_vec(),
        }
        .sign(&bob)
        .expect("signs");
        assert_eq!(check(&bob, bobs.id()), Ok((bobs.id(), bob.public_key())));
        assert_eq!(
            verify(&chat, &opener, &bytes, now)
                .map(|i| i.message.id())
                .ok(),
            Some(m.id()),
            "without the listing, recovery says Alice"
        );
    }

    #[test]
    fn verifies_and_refuses_with_reasons() {
        let (key, chat, opener) = public_chat();
        let author = PrivateKey::from_bytes(&[8; 32]).expect("key");
        let now = 10_000_000;
        let ok = sealed(&chat, &key, &author, now);
        let got = verify(&chat, &opener, &ok, now).expect("verifies");
        assert_eq!(got.message.author(), &author.public_key());

        let wrong = Opener::Symmetric(Arc::new(SymKey::from_bytes(&[4; 32]).expect("key")));
        let r = |res: Result<Incoming, Refused>| res.err().map(|e| e.reason());
        assert_eq!(r(verify(&chat, &wrong, &ok, now)), Some("wrong_key"));
        assert_eq!(
            r(verify(&ChatId::new([0; 32]), &opener, &ok, now)),
            Some("wrong_chat")
        );
        assert_eq!(
            r(verify(&chat, &opener, b"garbage", now)),
            Some("malformed_envelope")
        );
        let future = sealed(&chat, &key, &author, now + 10 * 60_000);
        assert_eq!(r(verify(&chat, &opener, &future, now)), Some("bad_clock"));
    }

    #[test]
    fn catch_up_progress_counts_pages_and_fetches_and_reports_a_walk() {
        let c = Catchup::default();
        let idle = c.status();
        assert_eq!(idle["walking"], false);
        assert!(idle["ratePerSecond"].is_null());
        c.begin();
        c.pages(2);
        c.listed(10);
        let chat = ChatId::new([1; 32]);
        for _ in 0..4 {
            c.fetched(&chat);
        }
        let s = c.status();
        assert_eq!(s["pagesWalked"], 2);
        assert_eq!(s["messagesListed"], 10);
        assert_eq!(s["messagesFetched"], 4);
        assert_eq!(s["walking"], true);
        assert!(s["ratePerSecond"].as_f64().is_some_and(|r| r > 0.0), "{s}");
        assert!(
            s["etaSeconds"].as_f64().is_some_and(|e| e > 0.0),
            "six to go: {s}"
        );
        c.end();
        assert_eq!(c.status()["walking"], false);
        assert_eq!(c.status()["messagesFetched"], 4, "totals stay");
    }
}
