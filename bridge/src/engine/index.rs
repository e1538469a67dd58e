//! The chat index of symmetric chats (`specs/chat-index.md`): after each post a member
//! appends "my inbox has update K" to one shared feed per chat, and readers poll that feed
//! (one request when idle) instead of looking up every member's inbox on every pass.
//!
//! The index is a hint. A reader only learns from it which inbox to read and at which
//! update; the inbox itself (signed pages of the author's own feed) stays the authority
//! (R4). What the index cannot vouch for is covered by a full pass over every member's
//! inbox: at start, every [`super::EngineConfig::full_pass_interval`], and while the index
//! holds entries that do not open or verify.

use std::time::Instant;

use staples_protocol::chat::keys::{self, Chat};
use staples_protocol::chat::{IndexEntry, seal};
use staples_protocol::dag::ChatId;
use staples_protocol::swarm::feed;

use futures_util::StreamExt;
use staples_protocol::crypto::keccak256;

use super::chat::{INDEX_RECHECK, INDEX_SETTLE, INDEX_SETTLE_MAX, Member};
use super::{Engine, lock, now_ms};
use crate::swarm::{Swarm, SwarmError};

/// The index feed of `chat`: its owner key and topic, and the key its entries are sealed
/// with. `None` for asymmetric chats.
fn feed_of(
    chat: &Chat,
) -> Option<(
    staples_protocol::crypto::PrivateKey,
    feed::FeedTopic,
    [u8; 32],
)> {
    let Chat::Symmetric { key, topic } = chat else {
        return None;
    };
    Some((
        chat.rendezvous_key(),
        keys::index_topic(),
        keys::symmetric_page_key(key, topic),
    ))
}

/// Reads `chat`'s index from where we stopped, giving members hints of new inbox
/// updates. On the first read of a run the reader starts at the feed's end (the full pass
/// that follows reads what came before); on a full pass a hole (a missing entry with
/// later ones present, which only a writer ignoring the first-free-index rule makes) is
/// skipped, since the full pass reads every inbox anyway. Returns how many entries were
/// refused (did not open, verify or name this chat).
pub(super) async fn read<S: Swarm>(
    engine: &Engine<S>,
    chat: ChatId,
    full: bool,
) -> Result<usize, SwarmError> {
    let (c, next) = {
        let chats = lock(&engine.inner.chats);
        let Some(st) = chats.get(&chat) else {
            return Ok(0);
        };
        (st.chat.clone(), st.index.next)
    };
    let Some((key, topic, page_key)) = feed_of(&c) else {
        return Ok(0);
    };
    let owner = key.public_key().eth_address();
    let start = match next {
        Some(n) => n,
        None => engine
            .inner
            .swarm
            .feed_latest_index(&owner, &topic, None)
            .await?
            .map_or(0, |i| i.saturating_add(1)),
    };
    let (mut updates, mut after) = super::sync::read_shared(engine, &owner, &topic, start).await?;
    updates.extend(reread_settled(engine, &chat, &owner, &topic).await?);
    if full
        && updates.is_empty()
        && next.is_some()
        && let Some(latest) = engine
            .inner
            .swarm
            .feed_latest_index(&owner, &topic, None)
            .await?
        && latest >= after
    {
        engine.count("index_hole");
        after = latest.saturating_add(1);
    }
    let mut refused = 0;
    let me = engine.node_address();
    let limit = engine.inner.cfg.index_per_author_per_minute;
    {
        let mut chats = lock(&engine.inner.chats);
        let Some(st) = chats.get_mut(&chat) else {
            return Ok(refused);
        };
        for (slot, sealed) in updates {
            if slot >= start {
                if st.index.settling.len() >= INDEX_SETTLE_MAX {
                    st.index.settling.pop_front();
                }
                st.index
                    .settling
                    .push_back((slot, keccak256(&sealed), Instant::now()));
            }
            let Some(entry) = seal::open(&page_key, &sealed)
                .ok()
                .and_then(|p| IndexEntry::verify(&chat, &p).ok())
            else {
                refused += 1;
                engine.count("index_invalid");
                continue;
            };
            let author = entry.node_key.eth_address();
            if author == me {
                continue;
            }
            let now = Instant::now();
            let window = st.index.flood.entry(author).or_insert((now, 0));
            if now.duration_since(window.0) >= std::time::Duration::from_secs(60) {
                *window = (now, 0);
            }
            window.1 += 1;
            if window.1 > limit {
                // The full pass reads this author's inbox in any case.
                engine.count("index_flood");
                continue;
            }
            engine.count("index_entries");
            let m = st
                .members
                .entry(author)
                .or_insert_with(|| Member::new(entry.node_key, chat));
            if !m.indexed {
                m.indexed = true;
                m.dirty = true;
            }
            if m.reader.known_index() < Some(entry.inbox_index) && m.hint < Some(entry.inbox_index)
            {
                m.hint = Some(entry.inbox_index);
            }
        }
        st.index.next = Some(after);
        st.index.degraded = refused > 0;
    }
    Ok(refused)
}

/// Reads again the slots read [`INDEX_SETTLE`] ago; returns those that now hold something
/// else (a racing writer's entry that replaced the one we saw).
async fn reread_settled<S: Swarm>(
    engine: &Engine<S>,
    chat: &ChatId,
    owner: &[u8; 20],
    topic: &feed::FeedTopic,
) -> Result<Vec<(u64, Vec<u8>)>, SwarmError> {
    let due: Vec<(u64, [u8; 32])> = {
        let mut chats = lock(&engine.inner.chats);
        let Some(st) = chats.get_mut(chat) else {
            return Ok(Vec::new());
        };
        let mut due = Vec::new();
        while let Some((slot, hash, at)) = st.index.settling.front().copied() {
            if at.elapsed() < INDEX_SETTLE {
                break;
            }
            st.index.settling.pop_front();
            due.push((slot, hash));
        }
        due
    };
    let par = engine.inner.cfg.fetch_parallelism.max(1);
    let again: Vec<_> = futures_util::stream::iter(due)
        .map(|(slot, hash)| async move {
            let got = super::sync::fetch_update(engine, owner, topic, slot).await;
            (slot, hash, got)
        })
        .buffered(par)
        .collect()
        .await;
    let mut replaced = Vec::new();
    for (slot, hash, got) in again {
        match got {
            Ok(soc) if keccak256(soc.wrapped().payload()) != hash => {
                engine.count("index_slot_replaced");
                replaced.push((slot, soc.wrapped().payload().to_vec()));
            }
            Ok(_) | Err(SwarmError::NotFound) | Err(SwarmError::Invalid(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(replaced)
}

/// Appends our entry for inbox update `inbox_index` of `chat` at the index's first free
/// slot (searching from our read cursor, else from Bee's newest index), reading it back
/// like a roster entry; remembered for one more read-back after [`INDEX_RECHECK`].
pub(super) async fn append<S: Swarm>(
    engine: &Engine<S>,
    chat: ChatId,
    inbox_index: u64,
) -> Result<(), SwarmError> {
    let (c, from) = {
        let chats = lock(&engine.inner.chats);
        let Some(st) = chats.get(&chat) else {
            return Ok(());
        };
        (st.chat.clone(), st.index.next)
    };
    let Some((key, topic, page_key)) = feed_of(&c) else {
        return Ok(());
    };
    let entry = IndexEntry {
        node_key: engine.inner.node_public,
        inbox_index,
        timestamp_ms: now_ms(),
    }
    .sign(&chat, &engine.inner.node_key);
    let sealed = super::send::seal_deterministic(&page_key, &entry);
    let at = match super::send::append_shared(engine, &key, &topic, &sealed, from).await {
        Ok(i) => i,
        // Our cursor lags far behind a busy index: ask Bee where it ends.
        Err(SwarmError::Invalid(_)) if from.is_some() => {
            super::send::append_shared(engine, &key, &topic, &sealed, None).await?
        }
        Err(e) => return Err(e),
    };
    engine.count("index_appended");
    if let Some(st) = lock(&engine.inner.chats).get_mut(&chat) {
        st.index.own.push((at, sealed, Instant::now()));
    }
    Ok(())
}

/// Reads back our index entries written [`INDEX_RECHECK`] ago; one a racing (or hostile)
/// writer replaced is appended again, so readers still learn of the post.
pub(super) async fn recheck_own<S: Swarm>(engine: &Engine<S>) -> Result<(), SwarmError> {
    let due: Vec<(ChatId, Chat, u64, Vec<u8>)> = lock(&engine.inner.chats)
        .values_mut()
        .flat_map(|st| {
            let (id, chat) = (st.id, st.chat.clone());
            let (due, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut st.index.own)
                .into_iter()
                .partition(|(_, _, at)| at.elapsed() >= INDEX_RECHECK);
            st.index.own = keep;
            due.into_iter()
                .map(move |(i, sealed, _)| (id, chat.clone(), i, sealed))
        })
        .collect();
    for (id, chat, index, sealed) in due {
        let Some((key, topic, _)) = feed_of(&chat) else {
            continue;
        };
        let owner = key.public_key().eth_address();
        if !super::send::still_ours(engine, &owner, &topic, index, &sealed).await? {
            engine.count("index_entry_replaced");
            let at = super::send::append_shared(engine, &key, &topic, &sealed, Some(index)).await?;
            if let Some(st) = lock(&engine.inner.chats).get_mut(&id) {
                st.index.own.push((at, sealed, Instant::now()));
            }
        }
    }
    Ok(())
}
