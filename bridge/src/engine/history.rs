//! History from Swarm, as a mailserver would serve it (`shhext_requestMessages`,
//! specs/relay.md §6): the envelopes of a time window on some topics, oldest first, paged
//! by a cursor, handed to the app's filters that take peer-to-peer messages.
//!
//! The walk reads every inbox of each followed chat on those topics (every known member's
//! and our own), newest page first, back to the window's start: one sequential chunk fetch
//! per page of 55 entries, with the entries' clocks (milliseconds, within 120 s of the
//! sender's clock) deciding what is in the window before anything is fetched. The listed
//! messages are then fetched in parallel, verified as catch-up verifies them (the chat's
//! key, the DAG signature, the author owning the inbox), and sorted by the mailserver's key
//! `sent (4, BE) ‖ envelope hash (32)`, which is also the cursor.

use std::collections::HashSet;

use staples_protocol::chat::keys;
use staples_protocol::crypto::PublicKey;
use staples_protocol::dag::ChatId;
use staples_protocol::inbox::{InboxEntry, InboxReader, ReaderEvent};
use staples_protocol::mailserver::cursor_of;
use staples_protocol::swarm::ChunkAddress;
use staples_protocol::whisper::Envelope;

use super::{Engine, EngineError, chat, lock, now_ms};
use crate::swarm::{Swarm, SwarmError};

/// Longest window one request may span (status-mobile asks at most 30 days back).
pub const MAX_WINDOW_SECS: u32 = 30 * 24 * 3600;
pub use staples_protocol::mailserver::{Cursor, MAX_LIMIT};
/// How far a clock may lead its envelope's time (the DAG's clock rule, dag.md §4).
const CLOCK_SLACK_MS: u64 = 120_000;

/// What a history request asks for.
#[derive(Debug, Clone)]
pub struct HistoryQuery {
    /// Topics (chats followed on any of them are walked).
    pub topics: Vec<[u8; 4]>,
    /// Window start, unix seconds.
    pub from: u32,
    /// Window end, unix seconds (inclusive).
    pub to: u32,
    /// Envelopes per page, 1..=[`MAX_LIMIT`].
    pub limit: u32,
    /// Continue after this key.
    pub cursor: Option<Cursor>,
    /// For a Whisper peer (the devp2p mailserver): each message as the envelope a Whisper
    /// client opens. A relay's record is served as the sender's envelope it carries, and
    /// left out when it carries none (its re-sealed Staples envelope would open to the
    /// record, not the message). Otherwise every message is its Staples envelope, whose
    /// records the node's own filters decode.
    pub originals: bool,
}

/// A page of history.
#[derive(Debug, Default)]
pub struct HistoryPage {
    /// The envelopes, oldest first (by the cursor key).
    pub envelopes: Vec<Envelope>,
    /// Where the next page starts, when the limit cut this one short.
    pub cursor: Option<Cursor>,
    /// Inbox pages read and messages fetched (for the bench and `staples_status`).
    pub pages_read: u64,
    /// Messages fetched.
    pub fetched: u64,
}

/// A chat to walk: its id, its opener, and each inbox `(owner, page key)`.
type Walk = (ChatId, chat::Opener, Vec<([u8; 20], [u8; 32])>);

/// Rounds of fetching a window: a download that failed (timeout, Bee error) is tried again
/// in the next round; after the last the page fails rather than come back short.
const FETCH_ROUNDS: usize = 3;

/// A listed message in the window, from one inbox.
#[derive(Clone, Copy)]
struct Listed {
    entry: InboxEntry,
    owner: [u8; 20],
}

impl<S: Swarm> Engine<S> {
    /// One page of history for `q`, read from Swarm.
    pub async fn history_page(&self, q: &HistoryQuery) -> Result<HistoryPage, EngineError> {
        // The chats on these topics, and whose inboxes to read in each.
        let ours = self.inner.node_public;
        let walks: Vec<Walk> = {
            let chats = lock(&self.inner.chats);
            chats
                .values()
                .filter(|st| q.topics.contains(&st.chat.topic()))
                .filter_map(|st| {
                    let opener = st.opener.clone()?;
                    let mut inboxes: Vec<([u8; 20], [u8; 32])> = st
                        .members
                        .iter()
                        .filter_map(|(addr, m)| {
                            Some((*addr, st.page_key(&m.node_key, &self.inner.node_key)?))
                        })
                        .collect();
                    if let Some(k) = st.page_key(&ours, &self.inner.node_key) {
                        inboxes.push((self.node_address(), k));
                    }
                    Some((st.id, opener, inboxes))
                })
                .collect()
        };
        let from_ms = u64::from(q.from) * 1000;
        let to_ms = (u64::from(q.to) + 1) * 1000;
        // The cursor's time bounds what is left to read from below.
        let floor_ms = q
            .cursor
            .map_or(from_ms, |c| {
                u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]])) * 1000
            })
            .max(from_ms);
        let mut page = HistoryPage::default();
        let mut found: Vec<(Cursor, Envelope)> = Vec::new();
        for (chat, opener, inboxes) in walks {
            let mut listed = Vec::new();
            for (owner, page_key) in inboxes {
                let (entries, pages) = self
                    .walk_back(chat, owner, &page_key, floor_ms, to_ms)
                    .await?;
                page.pages_read += pages;
                listed.extend(entries.into_iter().map(|entry| Listed { entry, owner }));
            }
            // Oldest first by clock: fetch in that order until the page can be filled
            // (clocks approximate the key; the exact order is settled after fetching).
            listed.sort_by_key(|l| l.entry.clock);
            let want = q.limit as usize;
            let mut start = 0;
            while start < listed.len() {
                let end = (start + want.max(64)).min(listed.len());
                let got = self
                    .fetch_all(chat, &opener, &listed[start..end], q.originals)
                    .await?;
                page.fetched += (end - start) as u64;
                for env in got {
                    // The same `sent` the cursor key starts with (geth's Expiry − TTL).
                    let sent = env.sent();
                    if sent < q.from || sent > q.to {
                        continue;
                    }
                    let key = cursor_of(&env);
                    if q.cursor.is_some_and(|c| key <= c) {
                        continue;
                    }
                    found.push((key, env));
                }
                start = end;
                // Enough for a full page, and every later entry's clock is past the
                // newest key found by more than the slack: nothing later can sort first.
                if found.len() >= want
                    && let Some(next) = listed.get(start)
                {
                    let newest = found.iter().map(|(k, _)| k).max().copied();
                    let newest_ms = newest.map_or(0, |k| {
                        u64::from(u32::from_be_bytes([k[0], k[1], k[2], k[3]])) * 1000
                    });
                    if next.entry.clock > newest_ms + 2 * CLOCK_SLACK_MS {
                        break;
                    }
                }
            }
        }
        found.sort_by_key(|f| f.0);
        found.dedup_by(|a, b| a.0 == b.0);
        if found.len() > q.limit as usize {
            found.truncate(q.limit as usize);
            page.cursor = found.last().map(|(k, _)| *k);
        }
        page.envelopes = found.into_iter().map(|(_, e)| e).collect();
        Ok(page)
    }

    /// The entries of `owner`'s inbox in the window, newest page first; pages read.
    async fn walk_back(
        &self,
        chat: ChatId,
        owner: [u8; 20],
        page_key: &[u8; 32],
        floor_ms: u64,
        to_ms: u64,
    ) -> Result<(Vec<InboxEntry>, u64), EngineError> {
        let topic = keys::inbox_topic(&chat);
        let Some(latest) = self
            .inner
            .swarm
            .feed_latest_index(&owner, &topic, None)
            .await?
        else {
            return Ok((Vec::new(), 0));
        };
        let head = match super::sync::fetch_update(self, &owner, &topic, latest).await {
            Ok(s) => s,
            Err(SwarmError::NotFound) => return Ok((Vec::new(), 0)),
            Err(e) => return Err(e.into()),
        };
        let mut reader = InboxReader::new(chat);
        let head_page = super::sync::open_page(page_key, &head)?;
        reader
            .handle_latest(latest, *head.address().as_bytes(), &head_page)
            .map_err(super::sync::SyncError::from)?;
        let mut out = Vec::new();
        let mut pages = 1;
        while let Some(ev) = reader.poll_event() {
            match ev {
                ReaderEvent::Entry(e) => {
                    if e.clock + CLOCK_SLACK_MS < floor_ms {
                        // Entries come newest first: the rest of the inbox is older.
                        break;
                    }
                    if e.clock < to_ms + CLOCK_SLACK_MS {
                        out.push(e);
                    }
                }
                ev => {
                    pages +=
                        super::sync::follow(self, &mut reader, &owner, &topic, page_key, ev, None)
                            .await?;
                }
            }
        }
        Ok((out, pages))
    }

    /// [`Self::fetch_window`] until every download has succeeded, for at most
    /// [`FETCH_ROUNDS`] rounds: a page must not silently miss a message Bee was slow to give.
    async fn fetch_all(
        &self,
        chat: ChatId,
        opener: &chat::Opener,
        listed: &[Listed],
        originals: bool,
    ) -> Result<Vec<Envelope>, EngineError> {
        let mut out = Vec::new();
        let mut todo = listed.to_vec();
        for round in 1..=FETCH_ROUNDS {
            let (got, failed, error) = self.fetch_window(chat, opener, &todo, originals).await;
            out.extend(got);
            match error {
                None => return Ok(out),
                Some(e) if round == FETCH_ROUNDS => {
                    tracing::warn!(missing = failed.len(), error = %e, "history: messages could not be fetched");
                    return Err(e.into());
                }
                Some(_) => todo = failed,
            }
        }
        Ok(out)
    }

    /// Fetches and verifies `listed` in parallel: the envelopes that check out, and the
    /// entries whose download failed with the last such error (refused ones are dropped:
    /// a message that does not verify is not served, now or later).
    async fn fetch_window(
        &self,
        chat: ChatId,
        opener: &chat::Opener,
        listed: &[Listed],
        originals: bool,
    ) -> (Vec<Envelope>, Vec<Listed>, Option<SwarmError>) {
        let par = self.inner.cfg.fetch_parallelism.max(1);
        let mut tasks = tokio::task::JoinSet::new();
        let mut done = Vec::with_capacity(listed.len());
        let mut seen = HashSet::new();
        for l in listed {
            if !seen.insert(l.entry.reference) {
                continue;
            }
            while tasks.len() >= par {
                if let Some(Ok(r)) = tasks.join_next().await {
                    done.push(r);
                }
            }
            let (swarm, opener, l) = (self.inner.swarm.clone(), opener.clone(), *l);
            tasks.spawn(async move {
                let bytes = match swarm
                    .download_bytes(&ChunkAddress::from_bytes(l.entry.reference))
                    .await
                {
                    Ok(b) => b,
                    Err(e) => return (l, Err(e)),
                };
                (l, Ok(Self::served(chat, &opener, &l, &bytes, originals)))
            });
        }
        while let Some(r) = tasks.join_next().await {
            if let Ok(r) = r {
                done.push(r);
            }
        }
        let (mut out, mut failed, mut error) = (Vec::new(), Vec::new(), None);
        for (l, r) in done {
            match r {
                Ok(Some(env)) => out.push(env),
                Ok(None) => {}
                Err(e) => {
                    failed.push(l);
                    error = Some(e);
                }
            }
        }
        (out, failed, error)
    }

    /// The envelope to serve for a downloaded message, if it verifies as `l` lists it.
    fn served(
        chat: ChatId,
        opener: &chat::Opener,
        l: &Listed,
        bytes: &[u8],
        originals: bool,
    ) -> Option<Envelope> {
        let (id, owner) = (l.entry.message_id, l.owner);
        let incoming = chat::verify(&chat, opener, bytes, now_ms()).ok()?;
        // The inbox names it and its author owns the inbox: anything else is
        // not this inbox's to list.
        let author: &PublicKey = incoming.message.author();
        if incoming.message.id() != id || author.eth_address() != owner {
            return None;
        }
        if !originals {
            return Some(incoming.envelope);
        }
        match staples_protocol::bridged::decode(incoming.message.body()) {
            None => Some(incoming.envelope),
            // The record checked that the envelope hashes to the message it names;
            // it must also be on this chat's topic.
            Some(Ok(b)) => b.envelope.filter(|e| e.topic == incoming.envelope.topic),
            Some(Err(_)) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use staples_protocol::whisper::Topic;

    #[test]
    fn the_cursor_key_orders_by_sent_time_then_hash() {
        let env = |expiry: u32, ttl: u32, nonce: u64| Envelope {
            expiry,
            ttl,
            topic: Topic([1, 2, 3, 4]),
            data: vec![1; 20],
            nonce,
        };
        let a = env(150, 50, 1);
        let b = env(120, 10, 1);
        assert!(cursor_of(&a) < cursor_of(&b), "sent 100 before sent 110");
        assert_eq!(&cursor_of(&a)[..4], &100u32.to_be_bytes());
        assert_eq!(&cursor_of(&a)[4..], &a.hash().0);
    }
}
