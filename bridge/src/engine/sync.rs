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
use staples_protocol::inbox::{
    InboxEntry, InboxReader, MAX_ENTRIES, ReadError, ReaderEvent, bundle,
};
use staples_protocol::swarm::feed;
use staples_protocol::swarm::soc::SingleOwnerChunk;
use staples_protocol::swarm::{Cac, ChunkAddress};
use staples_protocol::whisper::ecies;

use super::chat::{Member, Opener};
use super::{Engine, db, lock, now_ms};
use crate::swarm::{Swarm, SwarmError};

pub(super) async fn run<S: Swarm>(engine: Engine<S>) {
    let mut contacts_done: HashSet<[u8; 20]> = HashSet::new();
    loop {
        let started = std::time::Instant::now();
        let r = pass(&engine, &mut contacts_done).await;
        engine.note_swarm(&r);
        engine.count("sync_passes");
        crate::metrics::observe_sync_pass(started.elapsed());
        engine.tick_timeouts().await;
        let wait = if r.is_ok() {
            // No PSS reaches a light node, and large chats get none: live delivery is by
            // polling (the index, or every feed without one).
            if polls_live(&engine) {
                engine
                    .inner
                    .cfg
                    .live_poll
                    .min(engine.inner.cfg.sync_interval)
            } else {
                engine.inner.cfg.sync_interval
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
    if engine.inner.cfg.chat_index {
        super::index::recheck_own(engine).await?;
    }
    // Which inboxes this pass reads: every member of a chat due for a full pass; else
    // members that do not write the index, and those the index named a new update of.
    let mut full: HashSet<ChatId> = HashSet::new();
    let reading: Vec<(ChatId, bool)> = lock(&engine.inner.chats)
        .values()
        .filter(|st| st.opener.is_some())
        .map(|st| (st.id, st.has_index()))
        .collect();
    for (chat, indexed) in reading {
        let due = !indexed || !engine.inner.cfg.chat_index || full_pass_due(engine, &chat);
        if indexed && engine.inner.cfg.chat_index {
            match super::index::read(engine, chat, due).await {
                Ok(refused) if refused > 0 => {
                    tracing::debug!(refused, "chat index holds invalid entries");
                }
                Ok(_) => {}
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => {
                    engine.count("index_unreadable");
                    tracing::debug!(error = %e, "chat index unreadable; reading every inbox");
                    if let Some(st) = lock(&engine.inner.chats).get_mut(&chat) {
                        st.index.degraded = true;
                    }
                }
            }
        }
        if due || full_pass_due(engine, &chat) {
            full.insert(chat);
        }
    }
    let readers: Vec<(ChatId, [u8; 20], Option<u64>)> = lock(&engine.inner.chats)
        .values()
        .filter(|st| st.opener.is_some())
        .flat_map(|st| {
            let full = full.contains(&st.id);
            st.members.iter().filter_map(move |(a, m)| {
                if full || !m.indexed {
                    Some((st.id, *a, None))
                } else {
                    m.hint
                        .filter(|h| m.reader.known_index() < Some(*h))
                        .map(|h| (st.id, *a, Some(h)))
                }
            })
        })
        .collect();
    // Inboxes are read side by side (each walk fetches its own listed messages in
    // parallel too), so a new reader of a chat of a thousand writers is not a thousand
    // round trips long.
    let par = engine.inner.cfg.fetch_parallelism.max(1);
    let results: Vec<Result<(), SyncError>> = futures_util::stream::iter(readers)
        .map(|(chat, member, hint)| read_inbox(engine, chat, member, hint))
        .buffer_unordered(par)
        .collect()
        .await;
    let mut transient = None;
    for r in results {
        match r {
            Ok(()) => {}
            Err(SyncError::Swarm(e)) if e.is_transient() => transient = Some(e),
            Err(e) => {
                engine.count(e.reason());
                tracing::debug!(error = %e, "inbox read refused");
            }
        }
    }
    if let Some(e) = transient {
        persist_members(engine).await;
        return Err(e);
    }
    for chat in &full {
        if let Some(st) = lock(&engine.inner.chats).get_mut(chat) {
            st.index.last_full = Some(std::time::Instant::now());
        }
    }
    if !full.is_empty() {
        engine.count_n("full_passes", full.len() as u64);
    }
    persist_members(engine).await;
    fetch_wanted(engine).await;
    super::topic_log::read_all(engine).await
}

/// Whether `chat` is due for a full pass: never read in full this run, the interval
/// passed, or the index was degraded at the last read (then at most once per sync
/// interval, so a member writing garbage cannot make us read every inbox every second).
fn full_pass_due<S: Swarm>(engine: &Engine<S>, chat: &ChatId) -> bool {
    let cfg = &engine.inner.cfg;
    lock(&engine.inner.chats)
        .get(chat)
        .is_some_and(|st| match st.index.last_full {
            None => true,
            Some(t) => {
                let since = t.elapsed();
                since >= cfg.full_pass_interval || (st.index.degraded && since >= cfg.sync_interval)
            }
        })
}

/// Whether some chat we read needs polling faster than the sync interval: a large chat
/// (its writers send no per-member PSS), or any chat when our Bee receives no PSS.
pub(super) fn polls_live<S: Swarm>(engine: &Engine<S>) -> bool {
    if engine.bee_mode().is_some_and(|m| !m.receives_pss()) {
        return true;
    }
    let cfg = &engine.inner.cfg;
    cfg.chat_index
        && lock(&engine.inner.chats).values().any(|st| {
            st.opener.is_some() && st.has_index() && st.members.len() * 2 > cfg.live_pss_max
        })
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
        node_key: engine.inner.node_public,
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

/// Reads a shared feed (a rendezvous roster, a chat index) from index `start` until the
/// first missing update; returns the payloads with their indexes and the next index to
/// read. Updates are fetched in windows that double from one (an idle read is one
/// request) up to `fetch_parallelism`, since every index is a known address. Updates that
/// fail verification (a forging Bee) are counted and skipped.
pub(super) async fn read_shared<S: Swarm>(
    engine: &Engine<S>,
    owner: &[u8; 20],
    topic: &feed::FeedTopic,
    start: u64,
) -> Result<(Vec<(u64, Vec<u8>)>, u64), SwarmError> {
    let max = engine.inner.cfg.fetch_parallelism.max(1) as u64;
    let mut out = Vec::new();
    let (mut index, mut window) = (start, 1u64);
    loop {
        let fetched = futures_util::future::join_all(
            (index..index.saturating_add(window)).map(|i| fetch_update(engine, owner, topic, i)),
        )
        .await;
        for got in fetched {
            match got {
                Ok(soc) => out.push((index, soc.wrapped().payload().to_vec())),
                Err(SwarmError::NotFound) => return Ok((out, index)),
                Err(SwarmError::Invalid(_)) => engine.count("forged_chunk"),
                Err(e) => return Err(e),
            }
            index += 1;
        }
        window = (window * 2).min(max);
    }
}

/// Reads a rendezvous feed from index `start`: the sealed payloads and the next index.
async fn read_rendezvous<S: Swarm>(
    engine: &Engine<S>,
    chat: &Chat,
    start: u64,
) -> Result<(Vec<Vec<u8>>, u64), SwarmError> {
    let owner = chat.rendezvous_key().public_key().eth_address();
    let (updates, next) = read_shared(engine, &owner, &keys::rendezvous_topic(), start).await?;
    Ok((updates.into_iter().map(|(_, p)| p).collect(), next))
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
    let indexed = st.has_index() && entry.writes_index();
    let m = st
        .members
        .entry(addr)
        .or_insert_with(|| Member::new(entry.node_key, *chat));
    if indexed && !m.indexed {
        m.indexed = true;
        m.dirty = true;
    }
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
/// messages we lack in parallel. `hint` is the update the chat index named: read from
/// there without asking Bee for the feed's newest update.
async fn read_inbox<S: Swarm>(
    engine: &Engine<S>,
    chat: ChatId,
    member: [u8; 20],
    hint: Option<u64>,
) -> Result<(), SyncError> {
    let hinted = lock(&engine.inner.chats)
        .get(&chat)
        .and_then(|st| st.members.get(&member))
        .and_then(|m| m.hint);
    let r = walk_inbox(engine, chat, member, hint).await;
    if matches!(&r, Err(SyncError::Swarm(e)) if e.is_transient()) {
        return r;
    }
    // The hint we started with is now read, unless the update it names is still not
    // there: a chunk not yet retrievable gets HINT_TRIES passes, an entry naming an
    // update that was never written is then dropped. A hint that arrived during the read
    // stays for the next pass.
    let mut dangling = false;
    if let Some(m) = lock(&engine.inner.chats)
        .get_mut(&chat)
        .and_then(|st| st.members.get_mut(&member))
        && m.hint == hinted
    {
        match hinted {
            Some(h) if m.reader.known_index() < Some(h) => {
                m.hint_misses += 1;
                if m.hint_misses >= HINT_TRIES {
                    (m.hint, m.hint_misses, dangling) = (None, 0, true);
                }
            }
            _ => (m.hint, m.hint_misses) = (None, 0),
        }
    }
    if dangling {
        engine.count("index_dangling");
    }
    r
}

/// How many passes an index hint naming a missing inbox update is tried.
const HINT_TRIES: u8 = 3;

async fn walk_inbox<S: Swarm>(
    engine: &Engine<S>,
    chat: ChatId,
    member: [u8; 20],
    hint: Option<u64>,
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
    let latest = match hint {
        Some(h) => Some(h),
        None => {
            engine
                .inner
                .swarm
                .feed_latest_index(&member, &topic, known)
                .await?
        }
    };
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
            // A stale read, or an index entry naming an update not (yet) there, which
            // `read_inbox` counts.
            if hint.is_none() {
                engine.count("stale_read");
            }
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let head_page = open_page(&page_key, &head)?;
    let first_index = staples_protocol::inbox::Page::decode(&head_page)
        .map(|p| p.first_index())
        .unwrap_or(0);
    reader.handle_latest(latest, *head.address().as_bytes(), &head_page)?;
    let mut prefetch = Prefetch::new(engine, member, topic, first_index, known);
    progress.begin();
    progress.pages(1);
    // The walk comes first: with the prefetch it costs a few round trips, and its pages
    // (newest first) are then fetched oldest first, so that messages arrive after their
    // parents and are released as they come instead of waiting in the causal buffer (and
    // the store) for the oldest page.
    let mut listed: Vec<Vec<InboxEntry>> = Vec::new();
    let walked = async {
        let mut pages = 1u64;
        let mut page: Vec<InboxEntry> = Vec::new();
        while let Some(ev) = reader.poll_event() {
            match ev {
                ReaderEvent::Entry(e) => page.push(e),
                ev @ (ReaderEvent::FetchPage(_) | ReaderEvent::Skipped { .. }) => {
                    progress.listed(page.len() as u64);
                    flush(&mut page, &mut listed);
                    let n = follow(
                        engine,
                        &mut reader,
                        &member,
                        &topic,
                        &page_key,
                        ev,
                        Some(&mut prefetch),
                    )
                    .await?;
                    progress.pages(n);
                    pages += n;
                }
                ReaderEvent::Done { .. } => {}
            }
        }
        progress.listed(page.len() as u64);
        flush(&mut page, &mut listed);
        Ok::<u64, SyncError>(pages)
    }
    .await;
    // What a failed walk listed is fetched all the same (R4, R5).
    fetch_listed(engine, chat, member, listed, &progress).await;
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

/// Records every listed reference (R4), then fetches what we lack, oldest page first:
/// up to `fetch_parallelism` units (a full page through its bundle, or one message) are
/// downloaded and verified at once, and admitted to the causal buffer in order (R5).
async fn fetch_listed<S: Swarm>(
    engine: &Engine<S>,
    chat: ChatId,
    owner: [u8; 20],
    listed: Vec<Vec<InboxEntry>>,
    progress: &super::chat::Catchup,
) {
    {
        let mut chats = lock(&engine.inner.chats);
        let Some(st) = chats.get_mut(&chat) else {
            return;
        };
        for e in listed.iter().flatten() {
            st.refs.insert(e.message_id, e.reference);
        }
    }
    let units = listed
        .into_iter()
        .rev()
        .flat_map(|page| match bundle_index(&page) {
            Some(first) => vec![(Some(first), page)],
            None => page.into_iter().map(|e| (None, vec![e])).collect(),
        });
    let par = engine.inner.cfg.fetch_parallelism.max(1);
    let mut prepared = futures_util::stream::iter(units)
        .map(|(bundle, entries)| {
            // Spawned: each unit's downloads and verification run while earlier ones
            // are admitted.
            let engine = engine.clone();
            tokio::spawn(async move { prepare(&engine, chat, owner, bundle, entries).await })
        })
        .buffered(par);
    // Units enter the causal buffer in order; recording and releasing them (a store
    // write each) runs behind, and concurrent releases share one store transaction.
    let mut settling = tokio::task::JoinSet::new();
    while let Some(unit) = prepared.next().await {
        let Ok(unit) = unit else {
            continue;
        };
        let admitted = engine.insert(chat, unit.messages);
        {
            let mut fetching = lock(&engine.inner.fetching);
            for r in &unit.claimed {
                fetching.remove(r);
            }
        }
        for _ in 0..unit.listed {
            progress.fetched(&chat);
        }
        // Bounded loosely: a waiting release is a task and nothing else (the messages are
        // in the buffer's queue, and the next release takes all of them in one store
        // transaction), and blocking admission on a release in progress would stall the
        // downloads behind it.
        while settling.len() >= SETTLING {
            settling.join_next().await;
        }
        let engine = engine.clone();
        settling.spawn(async move { engine.settle(chat, admitted).await });
    }
    // Released and stored before the reader's position moves past them.
    while settling.join_next().await.is_some() {}
}

/// Releases in flight behind [`fetch_listed`]'s admissions.
const SETTLING: usize = 1024;

/// One unit of [`fetch_listed`], downloaded and verified, waiting for its turn.
struct Prepared {
    /// Verified messages, oldest first.
    messages: Vec<super::Incoming>,
    /// References claimed in `fetching` until the messages are admitted.
    claimed: Vec<[u8; 32]>,
    /// Entries the unit listed.
    listed: usize,
}

/// Downloads and verifies the entries we lack of one unit: a whole full page (from its
/// bundle, `bundle` = its first feed index, when the author published one) or a single
/// entry. Each wanted reference is claimed in `fetching` (a parent wanted by a message
/// admitted meanwhile is then not fetched twice) until [`fetch_listed`] admits the unit.
async fn prepare<S: Swarm>(
    engine: &Engine<S>,
    chat: ChatId,
    owner: [u8; 20],
    bundle: Option<u64>,
    entries: Vec<InboxEntry>,
) -> Prepared {
    let listed = entries.len();
    let (wanted, owner_key): (Vec<InboxEntry>, _) = {
        let chats = lock(&engine.inner.chats);
        let mut fetching = lock(&engine.inner.fetching);
        match chats.get(&chat) {
            Some(st) => (
                entries
                    .into_iter()
                    .filter(|e| st.wants(&e.message_id) && fetching.insert(e.reference))
                    .collect(),
                st.members.get(&owner).map(|m| m.node_key),
            ),
            None => (Vec::new(), None),
        }
    };
    let claimed: Vec<[u8; 32]> = wanted.iter().map(|e| e.reference).collect();
    let Some(opener) = engine.opener(&chat).filter(|_| !wanted.is_empty()) else {
        return Prepared {
            messages: Vec::new(),
            claimed,
            listed,
        };
    };
    // The owner's bundle first (its update is signed by the owner, so the owner published
    // every byte of it): message k is taken as entry `first + k` when it verifies as the
    // message the page lists there.
    let mut verified: Vec<Option<super::Incoming>> = match bundle {
        Some(first) => {
            let held = read_bundle(engine, chat, owner, first).await;
            let (entries, opener) = (wanted.clone(), opener.clone());
            let work = move || {
                entries
                    .iter()
                    .map(|e| {
                        let k = usize::try_from(e.index.checked_sub(first)?).ok()?;
                        let bytes = held.get(k)?;
                        let r = super::verify_sealed(
                            chat,
                            &opener,
                            bytes,
                            Some(e.message_id),
                            owner_key.as_ref(),
                        );
                        Some(r.ok())
                    })
                    .collect::<Vec<Option<Option<super::Incoming>>>>()
            };
            let taken = engine.verify_batch(work).await.unwrap_or_default();
            let mismatched = taken.iter().filter(|t| matches!(t, Some(None))).count();
            if mismatched > 0 {
                engine.count_n("bundle_mismatch", mismatched as u64);
            }
            let mut taken: Vec<Option<super::Incoming>> =
                taken.into_iter().map(Option::flatten).collect();
            taken.resize_with(wanted.len(), || None);
            engine.count_n("from_bundle", taken.iter().flatten().count() as u64);
            taken
        }
        None => Vec::new(),
    };
    verified.resize_with(wanted.len(), || None);
    // The rest one by one. Each download is checked against the reference the owner's
    // signed page lists, so these too are the owner's bytes (`chat::verify_listed`).
    let rest: Vec<&InboxEntry> = wanted
        .iter()
        .zip(&verified)
        .filter(|(_, v)| v.is_none())
        .map(|(e, _)| e)
        .collect();
    if !rest.is_empty() {
        let downloads = futures_util::future::join_all(
            rest.iter().map(|e| engine.download_message(e.reference)),
        )
        .await;
        let downloaded: Vec<(MessageId, Option<Vec<u8>>)> =
            rest.iter().map(|e| e.message_id).zip(downloads).collect();
        let checker = engine.clone();
        let work = move || {
            downloaded
                .into_iter()
                .map(|(id, bytes)| {
                    checker.check(
                        chat,
                        &opener,
                        &bytes?,
                        "fetched",
                        Some(id),
                        owner_key.as_ref(),
                    )
                })
                .collect::<Vec<_>>()
        };
        let mut fetched = engine
            .verify_batch(work)
            .await
            .unwrap_or_default()
            .into_iter();
        for v in verified.iter_mut().filter(|v| v.is_none()) {
            *v = fetched.next().flatten();
        }
    }
    Prepared {
        messages: verified.into_iter().flatten().collect(),
        claimed,
        listed,
    }
}

/// The earlier pages of an inbox, fetched ahead of the walk that follows `prev` links.
///
/// A page rolls over after [`MAX_ENTRIES`] entries and entry `k` of a page is published at
/// feed index `first_index + k` (`specs/inbox.md`), so the last version of the page
/// before the head is update `first_index − 1`, the one before that
/// `first_index − 1 − MAX_ENTRIES`, and so on: addresses known before any of them is
/// read. Up to `fetch_parallelism` are fetched at once, in walk order; a `prev` link that
/// names another address (a writer that broke the rule) is fetched on its own, and the
/// rest of the prefetch is dropped.
pub(super) struct Prefetch<'a> {
    pages: Option<PageStream<'a>>,
}

/// Prefetched page chunks with their addresses, in walk order.
type PageStream<'a> = std::pin::Pin<
    Box<
        dyn futures_util::Stream<Item = (ChunkAddress, Result<SingleOwnerChunk, SwarmError>)>
            + Send
            + 'a,
    >,
>;

impl<'a> Prefetch<'a> {
    /// Prefetches the pages before a head page starting at `first_index`, down to the one
    /// holding `known` (everything when `None`).
    pub(super) fn new<S: Swarm>(
        engine: &'a Engine<S>,
        owner: [u8; 20],
        topic: feed::FeedTopic,
        first_index: u64,
        known: Option<u64>,
    ) -> Self {
        let step = MAX_ENTRIES as u64;
        let indexes =
            std::iter::successors(first_index.checked_sub(1), move |i| i.checked_sub(step))
                .take_while(move |i| known.is_none_or(|k| *i > k));
        let par = engine.inner.cfg.fetch_parallelism.max(1);
        let pages = futures_util::stream::iter(indexes)
            .map(move |i| async move {
                let address = feed::update_address(&owner, &topic, i);
                (address, engine.inner.swarm.download_soc(&address).await)
            })
            .buffered(par);
        Self {
            pages: Some(Box::pin(pages)),
        }
    }

    /// The prefetched chunk at `address`, if it is the next one in walk order.
    async fn take(
        &mut self,
        address: &ChunkAddress,
    ) -> Option<Result<SingleOwnerChunk, SwarmError>> {
        let pages = self.pages.as_mut()?;
        match pages.next().await {
            Some((a, got)) if &a == address => Some(got),
            _ => {
                self.pages = None;
                None
            }
        }
    }
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
    prefetch: Option<&mut Prefetch<'_>>,
) -> Result<u64, SyncError> {
    match ev {
        ReaderEvent::FetchPage(r) => {
            let address = ChunkAddress::from_bytes(r);
            let ahead = match prefetch {
                Some(p) => p.take(&address).await,
                None => None,
            };
            let soc = match ahead {
                Some(got) => got?,
                None => engine.inner.swarm.download_soc(&address).await?,
            };
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

/// Moves a page's entries (listed newest first) into `listed`, oldest first.
fn flush(page: &mut Vec<InboxEntry>, listed: &mut Vec<Vec<InboxEntry>>) {
    if !page.is_empty() {
        listed.push(page.drain(..).rev().collect());
    }
}

/// The bundle feed index of a page's entries (oldest first) when they are a whole full
/// page: `MAX_ENTRIES` entries at consecutive indexes starting at a multiple of it.
fn bundle_index(page: &[InboxEntry]) -> Option<u64> {
    let first = page.first()?.index;
    let whole = page.len() == MAX_ENTRIES
        && first % MAX_ENTRIES as u64 == 0
        && page.iter().zip(first..).all(|(e, i)| e.index == i);
    whole.then_some(first)
}

/// The sealed messages of the bundle that is update `first` of `owner`'s bundle feed
/// (checked to be the owner's), in bundle order; empty when there is none (a writer from
/// before bundles, or one that could not publish it) or it cannot be read.
async fn read_bundle<S: Swarm>(
    engine: &Engine<S>,
    chat: ChatId,
    owner: [u8; 20],
    first: u64,
) -> Vec<Vec<u8>> {
    let topic = keys::bundle_topic(&chat);
    let reference = match fetch_update(engine, &owner, &topic, first).await {
        Ok(soc) => match <[u8; 32]>::try_from(soc.wrapped().payload()) {
            Ok(r) => r,
            Err(_) => {
                engine.count("bundle_invalid");
                return Vec::new();
            }
        },
        Err(SwarmError::NotFound) => return Vec::new(),
        Err(e) => {
            tracing::debug!(error = %e, "page bundle unavailable; fetching one by one");
            return Vec::new();
        }
    };
    let bytes = match engine
        .inner
        .swarm
        .download_bytes(&ChunkAddress::from_bytes(reference))
        .await
    {
        Ok(b) => b,
        Err(e) => {
            engine.count("bundle_unavailable");
            tracing::debug!(error = %e, "page bundle unavailable; fetching one by one");
            return Vec::new();
        }
    };
    match bundle::decode(&bytes) {
        Ok(messages) => messages.into_iter().map(<[u8]>::to_vec).collect(),
        Err(_) => {
            engine.count("bundle_invalid");
            Vec::new()
        }
    }
}

/// Opens a sealed inbox page.
pub(super) fn open_page(page_key: &[u8; 32], soc: &SingleOwnerChunk) -> Result<Vec<u8>, SyncError> {
    seal::open(page_key, soc.wrapped().payload()).map_err(|_| SyncError::Unseal)
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
                    indexed: m.indexed,
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
