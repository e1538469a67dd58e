//! The sync task and the PSS receiver.
//!
//! Sync (at start, when woken, after a PSS reconnect, and every
//! [`super::EngineConfig::sync_interval`]): publish contact records of the app's
//! identities; read rosters (symmetric chats) and drop boxes (identities) to learn members;
//! walk every member's inbox back to what we have, fetching listed messages in parallel;
//! fetch wanted parents whose references pages listed; declare overdue gaps.
//!
//! Feed reads are hints: an index from Bee is only used to fetch the update's chunk, which
//! is verified against its owner. A read is trusted only when Bee says it is ready; a
//! cursor never moves backwards (stale reads are counted and retried on the next pass).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use staples_protocol::chat::keys::{self, Chat};
use staples_protocol::chat::{ContactRecord, Frame, FrameBody, RosterEntry, seal};
use staples_protocol::crypto::{PrivateKey, PublicKey};
use staples_protocol::dag::{ChatId, MessageId};
use staples_protocol::inbox::{InboxEntry, InboxReader, ReadError, ReaderEvent};
use staples_protocol::swarm::feed;
use staples_protocol::swarm::soc::SingleOwnerChunk;
use staples_protocol::swarm::{Cac, ChunkAddress};
use staples_protocol::whisper::ecies;

use super::chat::{Member, Opener};
use super::{Engine, db, lock, now_ms};
use crate::swarm::{Swarm, SwarmError};

/// How often a node whose Bee receives no PSS (light, ultra-light) polls for new messages.
pub const LIGHT_POLL: Duration = Duration::from_secs(1);

pub(super) async fn run<S: Swarm>(engine: Engine<S>) {
    let mut contacts_done: HashSet<[u8; 20]> = HashSet::new();
    loop {
        let r = pass(&engine, &mut contacts_done).await;
        engine.note_swarm(&r);
        engine.tick_timeouts().await;
        let wait = if r.is_ok() {
            match engine.bee_mode() {
                // No PSS reaches a light node: live delivery is by polling the feeds.
                Some(m) if !m.receives_pss() => LIGHT_POLL.min(engine.inner.cfg.sync_interval),
                _ => engine.inner.cfg.sync_interval,
            }
        } else {
            Duration::from_secs(1).min(engine.inner.cfg.sync_interval)
        };
        tokio::select! {
            _ = engine.inner.wake_sync.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn pass<S: Swarm>(
    engine: &Engine<S>,
    contacts_done: &mut HashSet<[u8; 20]>,
) -> Result<(), SwarmError> {
    if !engine.inner.swarm.ready().await? {
        // An unready node answers "not found" for what exists: read nothing now, and
        // report the node as unhealthy.
        engine.count("bee_not_ready");
        return Err(SwarmError::Status {
            what: "readiness",
            status: 503,
            message: "Bee is not ready".into(),
        });
    }
    let identities: Vec<(String, Arc<PrivateKey>)> = lock(&engine.inner.identities)
        .iter()
        .map(|(id, k)| (id.clone(), k.clone()))
        .collect();
    for (_, key) in &identities {
        let addr = key.public_key().eth_address();
        if !contacts_done.contains(&addr) {
            publish_contact(engine, key).await?;
            contacts_done.insert(addr);
        }
    }
    super::send::recheck_own_entries(engine).await?;
    for (id, key) in &identities {
        read_drop_box(engine, id, key).await?;
    }
    let rosters: Vec<ChatId> = lock(&engine.inner.chats)
        .values()
        .filter(|st| matches!(st.chat, Chat::Symmetric { .. }))
        .map(|st| st.id)
        .collect();
    for chat in rosters {
        read_roster(engine, chat).await?;
    }
    let readers: Vec<(ChatId, [u8; 20])> = lock(&engine.inner.chats)
        .values()
        .filter(|st| st.opener.is_some())
        .flat_map(|st| st.members.keys().map(move |a| (st.id, *a)))
        .collect();
    for (chat, member) in readers {
        match read_inbox(engine, chat, member).await {
            Ok(()) => {}
            Err(SyncError::Swarm(e)) if e.is_transient() => return Err(e),
            Err(e) => {
                engine.count(e.reason());
                tracing::debug!(error = %e, "inbox read refused");
            }
        }
    }
    persist_members(engine).await;
    fetch_wanted(engine).await;
    super::topic_log::read_all(engine).await
}

/// Why reading one inbox stopped.
#[derive(Debug, thiserror::Error)]
pub(super) enum SyncError {
    #[error(transparent)]
    Swarm(#[from] SwarmError),
    #[error("inbox page does not open with the chat key")]
    Unseal,
    #[error("inbox page refused: {0}")]
    Read(#[from] ReadError),
}

impl SyncError {
    fn reason(&self) -> &'static str {
        match self {
            SyncError::Swarm(SwarmError::Invalid(_)) => "forged_chunk",
            SyncError::Swarm(_) => "inbox_unavailable",
            SyncError::Unseal => "page_unseal",
            SyncError::Read(ReadError::StaleRead { .. }) => "stale_read",
            SyncError::Read(_) => "page_invalid",
        }
    }
}

/// Fetches the single-owner chunk of `owner`'s feed update `index`, checking the owner.
pub(super) async fn fetch_update<S: Swarm>(
    engine: &Engine<S>,
    owner: &[u8; 20],
    topic: &feed::FeedTopic,
    index: u64,
) -> Result<SingleOwnerChunk, SwarmError> {
    let address = feed::update_address(owner, topic, index);
    let soc = engine.inner.swarm.download_soc(&address).await?;
    if soc.owner() != owner {
        return Err(SwarmError::Invalid(
            "feed update signed by another owner".into(),
        ));
    }
    Ok(soc)
}

/// The newest contact record of `identity`, if any (verified: the SOC owner is the
/// identity's address).
pub(super) async fn read_contact<S: Swarm>(
    engine: &Engine<S>,
    identity: &PublicKey,
) -> Result<Option<ContactRecord>, SwarmError> {
    let owner = identity.eth_address();
    let topic = keys::contact_topic();
    let Some(index) = engine
        .inner
        .swarm
        .feed_latest_index(&owner, &topic, None)
        .await?
    else {
        return Ok(None);
    };
    let soc = match fetch_update(engine, &owner, &topic, index).await {
        Ok(s) => s,
        Err(SwarmError::NotFound) => return Ok(None),
        Err(e) => return Err(e),
    };
    ContactRecord::decode(soc.wrapped().payload())
        .map(Some)
        .map_err(|e| SwarmError::Invalid(e.to_string()))
}

async fn publish_contact<S: Swarm>(engine: &Engine<S>, key: &PrivateKey) -> Result<(), SwarmError> {
    let me = engine.me().await?;
    let record = ContactRecord {
        node_key: engine.inner.node_key.public_key(),
        overlay: me.overlay,
        pss_key: me.pss_public_key,
        timestamp_ms: now_ms(),
    };
    let owner = key.public_key().eth_address();
    let topic = keys::contact_topic();
    if let Ok(Some(current)) = read_contact(engine, &key.public_key()).await
        && current.node_key == record.node_key
        && current.overlay == record.overlay
        && current.pss_key == record.pss_key
    {
        return Ok(());
    }
    let index = engine
        .inner
        .swarm
        .feed_latest_index(&owner, &topic, None)
        .await?
        .map_or(0, |i| i.saturating_add(1));
    let cac = Cac::new(&record.encode()).map_err(|e| SwarmError::Invalid(e.to_string()))?;
    let soc = SingleOwnerChunk::sign(key, feed::identifier(&topic, index), cac);
    engine.inner.swarm.upload_soc(&soc).await?;
    engine.count("contact_published");
    Ok(())
}

/// Reads a rendezvous feed from index `start` until the first missing update; returns
/// the sealed payloads and the next index to read. Updates that fail verification (a
/// forging Bee) are counted and skipped.
async fn read_rendezvous<S: Swarm>(
    engine: &Engine<S>,
    chat: &Chat,
    start: u64,
) -> Result<(Vec<Vec<u8>>, u64), SwarmError> {
    let owner = chat.rendezvous_key().public_key().eth_address();
    let topic = keys::rendezvous_topic();
    let mut index = start;
    let mut out = Vec::new();
    loop {
        match fetch_update(engine, &owner, &topic, index).await {
            Ok(soc) => out.push(soc.wrapped().payload().to_vec()),
            Err(SwarmError::NotFound) => return Ok((out, index)),
            Err(SwarmError::Invalid(_)) => engine.count("forged_chunk"),
            Err(e) => return Err(e),
        }
        index += 1;
    }
}

/// Reads new entries of an identity's drop box: each names a writer node and topic of an
/// asymmetric chat addressed to the identity.
async fn read_drop_box<S: Swarm>(
    engine: &Engine<S>,
    key_id: &str,
    key: &Arc<PrivateKey>,
) -> Result<(), SwarmError> {
    let probe = Chat::Asymmetric {
        recipient: key.public_key(),
        topic: [0; 4],
    };
    let owner = probe.rendezvous_key().public_key().eth_address();
    let (sealed, next) = read_rendezvous(engine, &probe, drop_box_cursor(engine, &owner)).await?;
    for payload in sealed {
        // Anyone can write a drop box: entries that are not for us or not signed are
        // skipped and counted.
        let Ok(plain) = ecies::decrypt(key, &payload) else {
            engine.count("roster_not_for_us");
            continue;
        };
        let topic_of = plain.get(8..12).and_then(|t| <[u8; 4]>::try_from(t).ok());
        let Some(t) = topic_of else {
            engine.count("roster_invalid");
            continue;
        };
        let chat = Chat::Asymmetric {
            recipient: key.public_key(),
            topic: t,
        };
        let Ok(entry) = RosterEntry::verify(&chat.id(), &plain) else {
            engine.count("roster_invalid");
            continue;
        };
        let (id, created) = engine.ensure_chat(
            chat,
            format!("me:{key_id}"),
            Some(Opener::Asymmetric(key.clone())),
        );
        if created {
            let _ = engine.persist_chat(id).await;
        }
        add_member(engine, &id, &entry);
    }
    lock(&engine.inner.drop_box_next).insert(owner, next);
    Ok(())
}

fn drop_box_cursor<S: Swarm>(engine: &Engine<S>, owner: &[u8; 20]) -> u64 {
    lock(&engine.inner.drop_box_next)
        .get(owner)
        .copied()
        .unwrap_or(0)
}

fn add_member<S: Swarm>(engine: &Engine<S>, chat: &ChatId, entry: &RosterEntry) {
    let addr = entry.node_key.eth_address();
    if addr == engine.node_address() {
        return;
    }
    let mut chats = lock(&engine.inner.chats);
    let Some(st) = chats.get_mut(chat) else {
        return;
    };
    let m = st.members.entry(addr).or_insert_with(|| Member {
        node_key: entry.node_key,
        live: None,
        reader: InboxReader::new(*chat),
        dirty: true,
    });
    let live = Some((entry.overlay, entry.pss_key));
    if m.live != live {
        m.live = live;
        m.dirty = true;
    }
    engine.count("member_learned");
}

/// Reads new entries of a symmetric chat's rendezvous feed.
async fn read_roster<S: Swarm>(engine: &Engine<S>, chat: ChatId) -> Result<(), SwarmError> {
    let (c, start) = {
        let chats = lock(&engine.inner.chats);
        let Some(st) = chats.get(&chat) else {
            return Ok(());
        };
        (st.chat.clone(), st.roster_next)
    };
    let Chat::Symmetric { key, topic: t } = &c else {
        return Ok(());
    };
    let page_key = keys::symmetric_page_key(key, t);
    let (sealed, index) = read_rendezvous(engine, &c, start).await?;
    for payload in sealed {
        match seal::open(&page_key, &payload)
            .ok()
            .and_then(|p| RosterEntry::verify(&chat, &p).ok())
        {
            Some(entry) => add_member(engine, &chat, &entry),
            None => engine.count("roster_invalid"),
        }
    }
    if index != start {
        if let Some(st) = lock(&engine.inner.chats).get_mut(&chat) {
            st.roster_next = index;
        }
        let _ = engine.persist_chat(chat).await;
    }
    Ok(())
}

/// Walks one member's inbox for one chat back to what we have, then fetches the listed
/// messages we lack in parallel.
async fn read_inbox<S: Swarm>(
    engine: &Engine<S>,
    chat: ChatId,
    member: [u8; 20],
) -> Result<(), SyncError> {
    let (mut reader, page_key, progress) = {
        let chats = lock(&engine.inner.chats);
        let Some(st) = chats.get(&chat) else {
            return Ok(());
        };
        let progress = st.catchup.clone();
        let Some(m) = st.members.get(&member) else {
            return Ok(());
        };
        if m.reader.is_walking() {
            // A walk that failed midway restarts from the latest update.
            (InboxReader::new(chat), None, progress)
        } else {
            (
                m.reader.clone(),
                st.page_key(&m.node_key, &engine.inner.node_key),
                progress,
            )
        }
    };
    let Some(page_key) = page_key else {
        return Ok(());
    };
    let topic = keys::inbox_topic(&chat);
    let known = reader.known_index();
    let latest = engine
        .inner
        .swarm
        .feed_latest_index(&member, &topic, known)
        .await?;
    let Some(latest) = latest else {
        return Ok(());
    };
    if known.is_some_and(|k| latest < k) {
        // Bee answered with an older update than we have read: a stale read.
        engine.count("stale_read");
        return Ok(());
    }
    if known == Some(latest) {
        return Ok(());
    }
    let head = match fetch_update(engine, &member, &topic, latest).await {
        Ok(s) => s,
        Err(SwarmError::NotFound) => {
            engine.count("stale_read");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    reader.handle_latest(
        latest,
        *head.address().as_bytes(),
        &open_page(&page_key, &head)?,
    )?;
    // The walk (one sequential page fetch per 55 entries) and the message fetches (in
    // parallel) overlap: each page's entries are fetched while the next page is read.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<InboxEntry>();
    let reader_ref = &mut reader;
    progress.begin();
    progress.pages(1);
    let walk_progress = progress.clone();
    let walk = async move {
        let tx = tx;
        let mut pages = 1u64;
        let mut page: Vec<InboxEntry> = Vec::new();
        while let Some(ev) = reader_ref.poll_event() {
            match ev {
                ReaderEvent::Entry(e) => page.push(e),
                ev @ (ReaderEvent::FetchPage(_) | ReaderEvent::Skipped { .. }) => {
                    walk_progress.listed(page.len() as u64);
                    flush(&mut page, &tx);
                    let n = follow(engine, reader_ref, &member, &topic, &page_key, ev).await?;
                    walk_progress.pages(n);
                    pages += n;
                }
                ReaderEvent::Done { .. } => {}
            }
        }
        walk_progress.listed(page.len() as u64);
        flush(&mut page, &tx);
        Ok::<u64, SyncError>(pages)
    };
    let par = engine.inner.cfg.fetch_parallelism.max(1);
    // Record every listed reference (R4), then fetch what we lack, in parallel (R5).
    let fetch = async {
        // Spawned tasks (not `for_each_concurrent`): the engine is cheap to clone, and a
        // borrowing closure here trips the compiler's `Send` inference (rust#102211).
        let mut tasks = tokio::task::JoinSet::new();
        while let Some(e) = rx.recv().await {
            while tasks.len() >= par {
                tasks.join_next().await;
            }
            let engine = engine.clone();
            let progress = progress.clone();
            tasks.spawn(async move {
                fetch_listed(&engine, chat, e).await;
                progress.fetched(&chat);
            });
        }
        while tasks.join_next().await.is_some() {}
    };
    let (walked, ()) = tokio::join!(walk, fetch);
    progress.end();
    engine.count_n("pages_read", walked?);
    if let Some(m) = lock(&engine.inner.chats)
        .get_mut(&chat)
        .and_then(|st| st.members.get_mut(&member))
    {
        // Never backwards: a concurrent pass may have advanced further.
        if m.reader.known_index() <= reader.known_index() {
            m.reader = reader;
            m.dirty = true;
        }
    }
    Ok(())
}

/// Feeds `reader` what walk event `ev` asks for: the previous page (which must be the
/// owner's), or the feed updates of indexes no page listed. Entries and `Done` are the
/// caller's business. Returns the pages fetched.
pub(super) async fn follow<S: Swarm>(
    engine: &Engine<S>,
    reader: &mut InboxReader,
    owner: &[u8; 20],
    topic: &feed::FeedTopic,
    page_key: &[u8; 32],
    ev: ReaderEvent,
) -> Result<u64, SyncError> {
    match ev {
        ReaderEvent::FetchPage(r) => {
            let soc = engine
                .inner
                .swarm
                .download_soc(&ChunkAddress::from_bytes(r))
                .await?;
            if soc.owner() != owner {
                return Err(SyncError::from(SwarmError::Invalid(
                    "page chain leaves the owner's feed".into(),
                )));
            }
            reader.handle_page(r, &open_page(page_key, &soc)?)?;
            Ok(1)
        }
        ReaderEvent::Skipped { from, to } => {
            for i in from..=to {
                match fetch_update(engine, owner, topic, i).await {
                    Ok(soc) => reader.handle_indexed(
                        i,
                        *soc.address().as_bytes(),
                        &open_page(page_key, &soc)?,
                    )?,
                    Err(SwarmError::NotFound) => engine.count("skipped_index_missing"),
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(0)
        }
        ReaderEvent::Entry(_) | ReaderEvent::Done { .. } => Ok(0),
    }
}

impl From<SyncError> for super::EngineError {
    fn from(e: SyncError) -> Self {
        match e {
            SyncError::Swarm(s) => super::EngineError::Swarm(s),
            other => super::EngineError::Swarm(SwarmError::Invalid(other.to_string())),
        }
    }
}

/// Sends a page's entries (listed newest first) oldest first, so the causal buffer can
/// release them as they arrive.
fn flush(page: &mut Vec<InboxEntry>, tx: &tokio::sync::mpsc::UnboundedSender<InboxEntry>) {
    for e in page.drain(..).rev() {
        let _ = tx.send(e);
    }
}

/// Opens a sealed inbox page.
pub(super) fn open_page(page_key: &[u8; 32], soc: &SingleOwnerChunk) -> Result<Vec<u8>, SyncError> {
    seal::open(page_key, soc.wrapped().payload()).map_err(|_| SyncError::Unseal)
}

/// Records a listed entry's reference and fetches the message if we lack it.
async fn fetch_listed<S: Swarm>(engine: &Engine<S>, chat: ChatId, e: InboxEntry) {
    let wanted = {
        let mut chats = lock(&engine.inner.chats);
        let Some(st) = chats.get_mut(&chat) else {
            return;
        };
        st.refs.insert(e.message_id, e.reference);
        st.wants(&e.message_id)
    };
    if wanted {
        engine
            .fetch_message(chat, e.reference, Some(e.message_id))
            .await;
    }
}

/// Fetches wanted parents that pages have since listed.
async fn fetch_wanted<S: Swarm>(engine: &Engine<S>) {
    let mut work: Vec<(ChatId, [u8; 32], MessageId)> = Vec::new();
    for st in lock(&engine.inner.chats).values_mut() {
        let (id, refs) = (st.id, &st.refs);
        st.wanted.retain(|w| match refs.get(w) {
            Some(r) => {
                work.push((id, *r, *w));
                false
            }
            None => true,
        });
    }
    let par = engine.inner.cfg.fetch_parallelism.max(1);
    futures_util::stream::iter(work)
        .for_each_concurrent(par, |(c, r, id)| async move {
            engine.fetch_message(c, r, Some(id)).await
        })
        .await;
}

async fn persist_members<S: Swarm>(engine: &Engine<S>) {
    let rows: Vec<db::MemberRow> = {
        let mut chats = lock(&engine.inner.chats);
        let mut rows = Vec::new();
        for st in chats.values_mut() {
            for m in st.members.values_mut().filter(|m| m.dirty) {
                m.dirty = false;
                rows.push(db::MemberRow {
                    chat: st.id,
                    node: m.node_key.to_compressed().to_vec(),
                    overlay: m.live.as_ref().map(|l| l.0.to_vec()),
                    pss_key: m.live.as_ref().map(|l| l.1.to_compressed().to_vec()),
                    reader: serde_json::to_string(&m.reader).unwrap_or_default(),
                });
            }
        }
        rows
    };
    if let Err(e) = db::put_members(&engine.inner.store, rows).await {
        tracing::warn!(error = %e, "storing members failed");
    }
}

/// Receives PSS frames, reconnecting with backoff; each reconnect triggers a sync pass
/// (what arrived while disconnected is in the inboxes).
pub(super) async fn run_pss<S: Swarm>(engine: Engine<S>) {
    let topic = keys::PSS_TOPIC_NAME;
    let mut backoff = Duration::from_millis(200);
    loop {
        match engine.inner.swarm.pss_subscribe(topic).await {
            Ok(mut sub) => {
                backoff = Duration::from_millis(200);
                engine.inner.wake_sync.notify_one();
                while let Some(payload) = sub.messages.recv().await {
                    handle_frame(&engine, &payload).await;
                }
                engine.count("pss_reconnect");
            }
            Err(e) => engine.note_swarm(&Err(e)),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn handle_frame<S: Swarm>(engine: &Engine<S>, payload: &[u8]) {
    let frame = match Frame::decode(payload) {
        Ok(f) => f,
        Err(e) => {
            engine.count("pss_garbage");
            tracing::debug!(error = %e, "PSS frame refused");
            return;
        }
    };
    match frame.body {
        FrameBody::Inline(bytes) => engine.accept(frame.chat, &bytes, "live", None).await,
        FrameBody::Reference(r) => {
            if lock(&engine.inner.chats)
                .get(&frame.chat)
                .is_none_or(|st| st.opener.is_none())
            {
                engine.count("refused_unknown_chat");
                return;
            }
            engine.count("live_by_reference");
            engine.fetch_message(frame.chat, r, None).await;
        }
    }
}
