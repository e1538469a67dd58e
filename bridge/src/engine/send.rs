//! The sender task: takes each outbox row through upload, inbox page, roster entry and
//! live PSS, in posting order, and retries after failures without losing anything (R8).
//!
//! Per row: (1) upload the sealed envelope as `/bytes` and record the reference;
//! (2) append it to our inbox page for the chat, store the writer state, publish the page
//! as the next feed update (a single-owner chunk of our node key) and confirm it; (3) make
//! sure our roster entry is in the chat's rendezvous feed; (4) send the frame over PSS to
//! every member we know a live address for. Steps 1–2 make the message reachable offline
//! and are retried until they succeed; step 4 is best effort, because a receiver that
//! misses it reads the inbox.

use std::collections::HashSet;
use std::time::Duration;

use staples_protocol::chat::keys::{self, Chat};
use staples_protocol::chat::roster::FEATURE_CHAT_INDEX;
use staples_protocol::chat::{Frame, RosterEntry, seal};
use staples_protocol::crypto::{PrivateKey, keccak256_concat};
use staples_protocol::dag::{ChatId, MessageId};
use staples_protocol::inbox::{Entry, InboxWriter, MAX_ENTRIES, Page, bundle};
use staples_protocol::swarm::feed;
use staples_protocol::swarm::pss::Targets;
use staples_protocol::swarm::soc::SingleOwnerChunk;
use staples_protocol::swarm::{Cac, ChunkAddress};
use staples_protocol::whisper::ecies;

use super::chat::OWN_ENTRY_RECHECK;
use super::{Engine, db, lock, now_ms};
use crate::swarm::{Swarm, SwarmError};

/// How often our recent roster entries are read back.
const OWN_ENTRY_RECHECK_EVERY: Duration = Duration::from_secs(5);

/// How long the sender waits before retrying after a failure.
const RETRY: Duration = Duration::from_secs(1);

pub(super) async fn run<S: Swarm>(engine: Engine<S>) {
    loop {
        let ok = match pass(&engine).await {
            Ok(()) => true,
            Err(e) => {
                engine.note_swarm(&Err(e));
                false
            }
        };
        let wait = if ok { Duration::from_secs(30) } else { RETRY };
        tokio::select! {
            _ = engine.inner.wake_send.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One pass over the outbox, then announcements still owed. Stops at the first Swarm
/// failure (later rows of the same chat must not overtake it).
async fn pass<S: Swarm>(engine: &Engine<S>) -> Result<(), SwarmError> {
    let rows = match db::outbox(&engine.inner.store).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "reading the outbox failed");
            return Ok(());
        }
    };
    // Rosters and contact records first: a post to someone who just came online then goes
    // out live at once. A failure here must not hold back the inbox, so it is noted and
    // the rows are still tried.
    let announced = announce_all(engine).await;
    let mut blocked: HashSet<ChatId> = HashSet::new();
    let mut first_err = announced.err();
    for row in rows {
        // Live first and in parallel: PSS does not need the upload when the message rides
        // inline, and a slow (mined) PSS send must not hold back the inbox.
        if row.envelope.len() <= staples_protocol::chat::frame::MAX_INLINE {
            spawn_live(engine, row.id, row.chat, &row.envelope, None);
        }
        if blocked.contains(&row.chat) {
            continue;
        }
        if let Err(e) = send_row(engine, row.clone()).await {
            blocked.insert(row.chat);
            if first_err.is_none() {
                first_err = Some(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => {
            engine.note_swarm(&Ok(()));
            Ok(())
        }
    }
}

async fn send_row<S: Swarm>(engine: &Engine<S>, mut row: db::OutboxRow) -> Result<(), SwarmError> {
    let inner = &engine.inner;
    let reference = match row.reference {
        Some(r) => r,
        None => {
            let r = *inner.swarm.upload_bytes(&row.envelope).await?.as_bytes();
            store_or_log(db::set_reference(&inner.store, row.seq, r).await);
            row.reference = Some(r);
            r
        }
    };
    // Append (or find the already-appended page version after a restart).
    let step = {
        let mut chats = lock(&inner.chats);
        let Some(st) = chats.get_mut(&row.chat) else {
            return Ok(());
        };
        let page_key = st
            .page_key(&inner.node_public, &inner.node_key)
            .unwrap_or_default();
        let writer = st.writer.get_or_insert_with(|| InboxWriter::new(row.chat));
        match row.page_index {
            Some(i) => match writer.head_page() {
                Some(p) if p.index() == i => Ok((p, page_key)),
                // Already confirmed and superseded: nothing left to publish for this row.
                _ => Err(None),
            },
            None => {
                let entry = Entry {
                    message_id: row.id,
                    reference,
                    clock: row.clock,
                };
                writer
                    .append(entry)
                    .map(|p| (p, page_key))
                    .map_err(|e| Some(e.to_string()))
            }
        }
    };
    let (page, page_key) = match step {
        Ok(p) => p,
        Err(refusal) => {
            if let Some(e) = refusal {
                tracing::warn!(error = %e, "inbox append refused; message stays out of the inbox");
            }
            return finish_row(engine, &row, None).await;
        }
    };
    let writer_json = writer_json(engine, &row.chat);
    if row.page_index.is_none() {
        store_or_log(
            db::set_appended(&inner.store, row.seq, row.chat, page.index(), writer_json).await,
        );
        row.page_index = Some(page.index());
    }
    let address = publish_page(engine, &row.chat, &page, &page_key).await?;
    if inner.cfg.chat_index {
        // Readers of the index learn of the post from here (a retry after a crash may
        // append a second entry for the same update; readers take the newest hint).
        super::index::append(engine, row.chat, page.index()).await?;
    }
    if page.entries().len() == MAX_ENTRIES {
        publish_bundle(engine, &row.chat, &page).await;
    }
    if inner.cfg.topic_logs {
        append_to_topic_log(engine, &row.envelope).await?;
    }
    {
        let mut chats = lock(&inner.chats);
        if let Some(w) = chats.get_mut(&row.chat).and_then(|st| st.writer.as_mut()) {
            let _ = w.confirm(page.index(), *address.as_bytes());
        }
    }
    finish_row(engine, &row, Some(reference)).await
}

/// A full page's bundle (`staples_protocol::inbox::bundle`): its sealed messages in one
/// `/bytes` object, named by update `first_index` of our bundle feed. Best effort: a
/// reader without it fetches the messages one by one, so a failure is counted, not
/// retried.
async fn publish_bundle<S: Swarm>(engine: &Engine<S>, chat: &ChatId, page: &Page) {
    let first = page.first_index();
    let rows = match db::page_envelopes(&engine.inner.store, *chat, first, page.index()).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "reading a page's envelopes failed; no bundle");
            return;
        }
    };
    // Exactly the page's messages, in its order (rows from before a lost outbox, or a
    // page appended across a restart, leave the page without a bundle).
    let in_order = rows.len() == page.entries().len()
        && rows.iter().zip(first..).all(|((i, _), want)| *i == want);
    let Some(bytes) = in_order
        .then(|| bundle::encode(&rows.iter().map(|(_, e)| e).collect::<Vec<_>>()))
        .flatten()
    else {
        engine.count("bundle_skipped");
        return;
    };
    let published = async {
        let reference = engine.inner.swarm.upload_bytes(&bytes).await?;
        let cac = Cac::new(reference.as_bytes()).map_err(|e| SwarmError::Invalid(e.to_string()))?;
        let id = feed::identifier(&keys::bundle_topic(chat), first);
        let soc = SingleOwnerChunk::sign(&engine.inner.node_key, id, cac);
        engine.inner.swarm.upload_soc(&soc).await
    };
    match published.await {
        Ok(()) => engine.count("bundle_published"),
        Err(e) => {
            engine.count("bundle_failed");
            tracing::debug!(error = %e, "page bundle not published; readers fetch one by one");
        }
    }
}

/// `--topic-logs`: the post's envelope on its topic's log, for Whisper peers a relay
/// bridges by topic. Before the row is marked published, so a failure retries it (a
/// repeat entry is one readers drop by envelope hash). An envelope too large for an
/// entry is left out and counted.
async fn append_to_topic_log<S: Swarm>(engine: &Engine<S>, rlp: &[u8]) -> Result<(), SwarmError> {
    let Ok(env) = staples_protocol::whisper::Envelope::decode(rlp) else {
        return Ok(());
    };
    match engine.topic_log_append(&env).await {
        Ok(()) => Ok(()),
        Err(super::EngineError::TopicLog(e)) => {
            engine.count("topic_log_too_large");
            tracing::debug!(error = %e, "post left out of its topic log");
            Ok(())
        }
        Err(super::EngineError::Swarm(e)) => Err(e),
        Err(e) => Err(SwarmError::Invalid(e.to_string())),
    }
}

/// Marks the row published and sends it live.
async fn finish_row<S: Swarm>(
    engine: &Engine<S>,
    row: &db::OutboxRow,
    reference: Option<[u8; 32]>,
) -> Result<(), SwarmError> {
    let writer = writer_json(engine, &row.chat);
    store_or_log(db::set_published(&engine.inner.store, row.seq, row.chat, writer).await);
    engine.count("published");
    if let Some(reference) = reference {
        spawn_live(engine, row.id, row.chat, &row.envelope, Some(reference));
    }
    Ok(())
}

/// Starts the live send of message `id` once per run, bounded by `live_parallelism`.
/// `reference` is needed only for messages too large to ride inline.
pub(super) fn spawn_live<S: Swarm>(
    engine: &Engine<S>,
    id: MessageId,
    chat: ChatId,
    envelope: &[u8],
    reference: Option<[u8; 32]>,
) {
    if !lock(&engine.inner.live_started).insert(id) {
        return;
    }
    let (engine, envelope) = (engine.clone(), envelope.to_vec());
    let slots = engine.inner.live_slots.clone();
    tokio::spawn(async move {
        let Ok(_slot) = slots.acquire_owned().await else {
            return;
        };
        if !send_live(&engine, &chat, &envelope, reference.unwrap_or([0; 32])).await {
            // Nobody to reach yet (a contact record not read so far): the sender's next
            // pass, which reads contacts and rosters first, tries again.
            lock(&engine.inner.live_started).remove(&id);
        }
    });
}

fn writer_json<S: Swarm>(engine: &Engine<S>, chat: &ChatId) -> String {
    lock(&engine.inner.chats)
        .get(chat)
        .and_then(|st| st.writer.as_ref())
        .and_then(|w| serde_json::to_string(w).ok())
        .unwrap_or_default()
}

fn store_or_log<T>(r: Result<T, crate::store::StoreError>) {
    if let Err(e) = r {
        tracing::warn!(error = %e, "engine store write failed");
    }
}

/// Seals a page deterministically and uploads it as feed update `page.index()`. The nonce
/// is derived from key and plaintext, so republishing after a crash writes the same
/// bytes to the same address (and a nonce never repeats with a different plaintext).
async fn publish_page<S: Swarm>(
    engine: &Engine<S>,
    chat: &ChatId,
    page: &Page,
    page_key: &[u8; 32],
) -> Result<ChunkAddress, SwarmError> {
    let encoded = page.encode();
    let sealed = seal_deterministic(page_key, &encoded);
    let topic = keys::inbox_topic(chat);
    let id = feed::identifier(&topic, page.index());
    let cac = Cac::new(&sealed).map_err(|e| SwarmError::Invalid(e.to_string()))?;
    let soc = SingleOwnerChunk::sign(&engine.inner.node_key, id, cac);
    engine.inner.swarm.upload_soc(&soc).await?;
    Ok(*soc.address())
}

/// AES-GCM with a nonce derived from key and plaintext.
pub(super) fn seal_deterministic(key: &[u8; 32], plaintext: &[u8]) -> Vec<u8> {
    let h = keccak256_concat(&[b"staples/nonce/v1", key, plaintext]);
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&h[..12]);
    seal::seal(key, &nonce, plaintext)
}

/// Sends the frame to every member with a live address (best effort, counted). False
/// when there was nobody to send to.
async fn send_live<S: Swarm>(
    engine: &Engine<S>,
    chat: &ChatId,
    envelope: &[u8],
    reference: [u8; 32],
) -> bool {
    let (targets, large) = {
        let chats = lock(&engine.inner.chats);
        let Some(st) = chats.get(chat) else {
            return false;
        };
        // A large chat's index readers poll the index: PSS goes only to members that do
        // not read it (peers from before the index, while a network upgrades).
        let large = engine.inner.cfg.chat_index && st.is_large(engine.inner.cfg.live_pss_max);
        let mut t: Vec<_> = st
            .members
            .values()
            .filter(|m| !(large && m.indexed))
            .filter_map(|m| m.live)
            .collect();
        t.extend(st.recipient_live);
        (t, large)
    };
    let targets_empty = targets.is_empty() && !large;
    let frame = Frame::for_message(*chat, envelope, reference).encode();
    let topic = keys::PSS_TOPIC_NAME;
    let prefix = engine.inner.cfg.pss_target_bytes.clamp(1, 3);
    for (overlay, pss_key) in targets {
        let Ok(t) = Targets::new(&[&overlay[..prefix]]) else {
            continue;
        };
        let started = std::time::Instant::now();
        let sent = engine
            .inner
            .swarm
            .pss_send(topic, &t, &pss_key, &frame)
            .await;
        crate::metrics::observe_pss_send(started.elapsed());
        match sent {
            Ok(()) => engine.count("pss_sent"),
            Err(e) => {
                engine.count("pss_send_failed");
                tracing::debug!(error = %e, "live PSS send failed; the inbox still has it");
            }
        }
    }
    !targets_empty
}

/// Writes our roster entry into every chat we write to or read that lacks one, and
/// fetches the contact record of asymmetric recipients we have no live address for.
async fn announce_all<S: Swarm>(engine: &Engine<S>) -> Result<(), SwarmError> {
    let todo: Vec<(ChatId, Chat, bool, bool)> = lock(&engine.inner.chats)
        .values()
        // A chat is in the map because we read it or posted to it: either way members
        // must find us, so every chat owes one entry.
        .map(|st| {
            (
                st.id,
                st.chat.clone(),
                !st.announced,
                st.recipient_live.is_none(),
            )
        })
        .collect();
    for (id, chat, owes_entry, need_contact) in todo {
        // A chat addressed to our own identity is announced by our contact record.
        let ours = matches!(&chat, Chat::Asymmetric { .. })
            && lock(&engine.inner.chats)
                .get(&id)
                .is_some_and(|st| st.opener.is_some());
        if owes_entry && !ours {
            // Version 1 for every reader; in a symmetric chat where we write the index,
            // version 2 too, which tells upgraded readers to follow us by the index (both
            // while a network upgrades: specs/chat-index.md §6).
            let mut written = vec![announce(engine, &id, &chat, 0).await?];
            if engine.inner.cfg.chat_index && matches!(chat, Chat::Symmetric { .. }) {
                written.push(announce(engine, &id, &chat, FEATURE_CHAT_INDEX).await?);
            }
            if let Some(st) = lock(&engine.inner.chats).get_mut(&id) {
                st.announced = true;
                let now = std::time::Instant::now();
                st.own_entry = written
                    .into_iter()
                    .map(|(index, sealed)| (index, sealed, now))
                    .collect();
            }
            store_or_log(engine.persist_chat(id).await);
            engine.count("announced");
        }
        if let (Chat::Asymmetric { recipient, .. }, true, false) = (&chat, need_contact, ours) {
            match super::sync::read_contact(engine, recipient).await {
                Ok(Some(rec)) => {
                    if let Some(st) = lock(&engine.inner.chats).get_mut(&id) {
                        st.recipient_live = Some((rec.overlay, rec.pss_key));
                    }
                }
                Ok(None) => {}
                Err(e) if e.is_transient() => return Err(e),
                Err(_) => engine.count("contact_invalid"),
            }
        }
    }
    Ok(())
}

/// Writes our roster entry at the first free index of the chat's rendezvous feed and
/// reads it back: a member whose upload landed first sees it lost and moves on. (One that
/// checked the index just before our upload may still replace it afterwards; the sync task
/// re-reads the entry, [`recheck_own_entries`].) Returns the index and the sealed bytes.
async fn announce<S: Swarm>(
    engine: &Engine<S>,
    id: &ChatId,
    chat: &Chat,
    features: u8,
) -> Result<(u64, Vec<u8>), SwarmError> {
    let me = engine.me().await?;
    let entry = RosterEntry {
        topic: chat.topic(),
        node_key: engine.inner.node_public,
        overlay: me.overlay,
        pss_key: me.pss_public_key,
        timestamp_ms: now_ms(),
        features,
    }
    .sign(id, &engine.inner.node_key);
    let sealed = match chat {
        Chat::Symmetric { key, topic } => {
            seal_deterministic(&keys::symmetric_page_key(key, topic), &entry)
        }
        Chat::Asymmetric { recipient, .. } => {
            let mut rng = rand::rngs::OsRng;
            let eph = PrivateKey::random(&mut rng);
            let mut iv = [0u8; 16];
            rand::RngCore::fill_bytes(&mut rng, &mut iv);
            ecies::encrypt(recipient, &eph, &iv, &entry)
        }
    };
    let index = append_shared(
        engine,
        &chat.rendezvous_key(),
        &keys::rendezvous_topic(),
        &sealed,
        None,
    )
    .await?;
    Ok((index, sealed))
}

/// Writes `payload` at the first free index of the feed that `key` owns with topic
/// `topic`, a feed anyone who derives `key` may write (a rendezvous roster, a topic log),
/// searching from `from` (else Bee's newest index) and reading each write back: a writer
/// whose upload landed first at an index wins it, and we move on to the next. Returns the
/// index our payload holds.
pub(super) async fn append_shared<S: Swarm>(
    engine: &Engine<S>,
    key: &PrivateKey,
    topic: &feed::FeedTopic,
    payload: &[u8],
    from: Option<u64>,
) -> Result<u64, SwarmError> {
    let owner = key.public_key().eth_address();
    let mut index = match from {
        Some(i) => i,
        None => engine
            .inner
            .swarm
            .feed_latest_index(&owner, topic, None)
            .await?
            .map_or(0, |i| i.saturating_add(1)),
    };
    let cac = Cac::new(payload).map_err(|e| SwarmError::Invalid(e.to_string()))?;
    for _ in 0..64 {
        let address = feed::update_address(&owner, topic, index);
        match engine.inner.swarm.download_soc(&address).await {
            Ok(_) => {
                index += 1;
                continue;
            }
            Err(SwarmError::NotFound) => {}
            Err(e) => return Err(e),
        }
        let soc = SingleOwnerChunk::sign(key, feed::identifier(topic, index), cac.clone());
        engine.inner.swarm.upload_soc(&soc).await?;
        match engine.inner.swarm.download_soc(&address).await {
            Ok(back) if back.wrapped().payload() == payload => return Ok(index),
            Ok(_) | Err(SwarmError::NotFound) => index += 1,
            Err(e) => return Err(e),
        }
    }
    Err(SwarmError::Invalid(format!(
        "shared feed {topic}: no free index in 64 tries"
    )))
}

/// Whether update `index` of the shared feed `owner`/`topic` still holds `sealed`, our
/// entry (a racing or hostile writer may have replaced it since).
pub(super) async fn still_ours<S: Swarm>(
    engine: &Engine<S>,
    owner: &[u8; 20],
    topic: &feed::FeedTopic,
    index: u64,
    sealed: &[u8],
) -> Result<bool, SwarmError> {
    let address = feed::update_address(owner, topic, index);
    match engine.inner.swarm.download_soc(&address).await {
        Ok(back) => Ok(back.wrapped().payload() == sealed),
        Err(SwarmError::NotFound) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Re-reads the roster entries we wrote in the last [`OWN_ENTRY_RECHECK`], at most once per
/// [`OWN_ENTRY_RECHECK_EVERY`] (a fast-polling pass must not pay for it every time); one
/// that was replaced is owed again, and the sender writes it at the next free index.
pub(super) async fn recheck_own_entries<S: Swarm>(engine: &Engine<S>) -> Result<(), SwarmError> {
    {
        let mut last = lock(&engine.inner.own_entries_checked);
        if last.is_some_and(|t| t.elapsed() < OWN_ENTRY_RECHECK_EVERY) {
            return Ok(());
        }
        *last = Some(std::time::Instant::now());
    }
    let due: Vec<(ChatId, Chat, u64, Vec<u8>)> = lock(&engine.inner.chats)
        .values_mut()
        .flat_map(|st| {
            st.own_entry
                .retain(|(_, _, at)| at.elapsed() <= OWN_ENTRY_RECHECK);
            let (id, chat) = (st.id, st.chat.clone());
            st.own_entry
                .iter()
                .map(move |(index, sealed, _)| (id, chat.clone(), *index, sealed.clone()))
        })
        .collect();
    for (id, chat, index, sealed) in due {
        let owner = chat.rendezvous_key().public_key().eth_address();
        if !still_ours(engine, &owner, &keys::rendezvous_topic(), index, &sealed).await? {
            engine.count("roster_entry_replaced");
            if let Some(st) = lock(&engine.inner.chats).get_mut(&id) {
                st.announced = false;
                st.own_entry.clear();
            }
            engine.inner.wake_send.notify_one();
        }
    }
    Ok(())
}
