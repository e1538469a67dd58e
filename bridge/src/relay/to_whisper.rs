//! Swarm → Whisper: Staples messages the engine delivers to the relay's filters are posted
//! to Whisper as their authors sealed them (specs/relay.md §4).
//!
//! Each polled batch is first written to `relay_outbox` (one row per DAG id, so a batch
//! handed out again after a crash adds nothing), and only then acknowledged to the filter.
//! The sender walks the rows in order, each after a short hold ([`HOLD_SECS`]) so that a
//! copy its author (a `dual` peer) or another relay already put on Whisper is seen first
//! and skipped, and deletes what it handled. A kill between posting and deleting posts the
//! same bytes again, which Whisper pools drop by hash.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rusqlite::params;
use serde_json::value::RawValue;
use staples_protocol::whisper::Envelope;
use staples_protocol::whisper::json::hex0x;

use super::{Relay, lock};
use crate::dual::WhisperPost;
use crate::rpc::shh::ShhApi;
use crate::rpc::shh_local::unix_now;
use crate::store::{Store, StoreError};

/// Seconds a message waits before it goes to Whisper (time for a copy to show up there).
pub const HOLD_SECS: u32 = 1;
/// How often the relay's filters are polled.
const POLL: Duration = Duration::from_millis(100);
/// Rows sent per pass.
const BATCH: i64 = 64;
/// Posts to the Whisper node in flight at once.
const IN_FLIGHT: usize = 16;

/// One message waiting for Whisper (`id`: its padding hash, one per DAG message).
struct Row {
    id: [u8; 32],
    envelope: Vec<u8>,
    post: String,
    not_before: u32,
}

/// Messages waiting to go to Whisper (for `staples_status`).
pub async fn relay_backlog(store: &Store) -> Result<i64, StoreError> {
    store
        .run(|t| Ok(t.query_row("SELECT count(*) FROM relay_outbox", [], |r| r.get(0))?))
        .await
}

impl Relay {
    /// Polls the relay's filters and writes what Swarm delivered to the outbox.
    pub(super) async fn collect_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let n = self.chats().await.list.len();
            for i in 0..n {
                self.collect(i).await;
            }
        }
    }

    async fn collect(&self, i: usize) {
        let chat = &self.chats().await.list[i];
        let batch = match self.shh.get_filter_messages(&chat.filter) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, chat = %chat.name, "relay: polling its filter failed");
                return;
            }
        };
        if batch.messages.is_empty() {
            batch.receipt.written();
            return;
        }
        let now = unix_now();
        let mut rows = Vec::new();
        for m in &batch.messages {
            // A record came from Whisper: it is never posted back.
            if m.legacy {
                continue;
            }
            let p = &m.message.plaintext;
            // A Staples message (the engine verified it); its key is its padding's hash,
            // as for the copies the Whisper side reports (no second signature recovery).
            if !matches!(
                staples_protocol::dag::decode_padding(&p.padding),
                Ok(Some(_))
            ) {
                continue;
            }
            let Some(envelope) = m.envelope.clone() else {
                continue;
            };
            let post = WhisperPost::new(
                Some(&chat.key_id),
                None,
                None,
                m.message.ttl,
                chat.topic,
                &p.payload,
                &p.padding,
                0.0,
                1,
                m.message.sent.saturating_add(m.message.ttl),
            );
            rows.push(Row {
                id: staples_protocol::crypto::keccak256(&p.padding),
                envelope: envelope.to_vec(),
                post: post.to_json(),
                not_before: now.saturating_add(HOLD_SECS),
            });
        }
        let n = rows.len();
        let stored = self
            .store
            .run(move |t| {
                let mut st = t.prepare_cached(
                    "INSERT OR IGNORE INTO relay_outbox (id, envelope, post, not_before)
                     VALUES (?1, ?2, ?3, ?4)",
                )?;
                for r in rows {
                    st.execute(params![
                        &r.id[..],
                        r.envelope,
                        r.post,
                        i64::from(r.not_before)
                    ])?;
                }
                Ok(())
            })
            .await;
        match stored {
            // Durable: the filter may let the batch go.
            Ok(()) => {
                batch.receipt.written();
                if n > 0 {
                    self.wake.notify_one();
                }
            }
            // Dropped unsettled: the batch goes back to the filter for the next poll.
            Err(e) => tracing::warn!(error = %e, "relay: storing messages for Whisper failed"),
        }
    }

    /// Posts the outbox to Whisper, in order, each after its hold.
    pub(super) async fn send_loop(self: Arc<Self>) {
        let raw = AtomicBool::new(true);
        loop {
            match self.send_pass(&raw).await {
                Ok(true) => {}
                Ok(false) => {
                    let _ = tokio::time::timeout(Duration::from_millis(250), self.wake.notified())
                        .await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "relay: posting to Whisper failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// One pass over the rows due; whether it handled any.
    async fn send_pass(&self, raw: &AtomicBool) -> Result<bool, String> {
        let now = unix_now();
        let rows: Vec<(i64, Vec<u8>, Vec<u8>, String)> = self
            .store
            .run(move |t| {
                let mut st = t.prepare_cached(
                    "SELECT seq, id, envelope, post FROM relay_outbox
                     WHERE not_before <= ?1 ORDER BY seq LIMIT ?2",
                )?;
                let rows = st.query_map(params![i64::from(now), BATCH], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await
            .map_err(|e| e.to_string())?;
        if rows.is_empty() {
            return Ok(false);
        }
        // Several at a time: the Whisper node answers each post once it is durable, and
        // Whisper has no order to keep (receivers order by the DAG).
        let mut done = Vec::new();
        let mut failed = None;
        for chunk in rows.chunks(IN_FLIGHT) {
            let sent = futures_util::future::join_all(
                chunk
                    .iter()
                    .map(|(_, id, envelope, post)| self.send_one(id, envelope, post, raw)),
            )
            .await;
            for ((seq, ..), r) in chunk.iter().zip(sent) {
                match r {
                    Ok(()) => done.push(*seq),
                    Err(e) => failed = Some(e),
                }
            }
            if failed.is_some() {
                break;
            }
        }
        let handled = !done.is_empty();
        self.store
            .run(move |t| {
                let mut st = t.prepare_cached("DELETE FROM relay_outbox WHERE seq = ?1")?;
                for s in done {
                    st.execute([s])?;
                }
                Ok(())
            })
            .await
            .map_err(|e| e.to_string())?;
        match failed {
            Some(e) => Err(e),
            None => Ok(handled),
        }
    }

    /// Posts one message unless Whisper has it already or it expired.
    async fn send_one(
        &self,
        id: &[u8],
        envelope: &[u8],
        post: &str,
        raw: &AtomicBool,
    ) -> Result<(), String> {
        if let Ok(id) = <[u8; 32]>::try_from(id)
            && lock(&self.on_whisper).contains(&id)
        {
            self.count("relay_already_on_whisper");
            return Ok(());
        }
        let Ok(env) = Envelope::decode(envelope) else {
            self.count("relay_refused");
            return Ok(());
        };
        if env.expiry <= unix_now() {
            // Whisper would drop it; members catch up from Swarm.
            self.count("relay_expired");
            return Ok(());
        }
        if raw.load(Ordering::Relaxed) {
            let params = RawValue::from_string(serde_json::json!([hex0x(envelope)]).to_string())
                .map_err(|e| e.to_string())?;
            match self
                .side
                .upstream()
                .call("staples_postEnvelope", Some(&params))
                .await
            {
                Ok(_) => {
                    self.count("relay_to_whisper");
                    return Ok(());
                }
                // geth and status-go take no raw envelopes: re-seal from now on.
                Err(e) if e.code == -32601 => {
                    tracing::info!(
                        "relay: the Whisper node takes no raw envelopes; posting with shh_post (re-sealed, new envelope hashes)"
                    );
                    raw.store(false, Ordering::Relaxed);
                }
                Err(e) => {
                    // A refused envelope (PoW below the node's minimum, too big): counted
                    // and skipped, it cannot become acceptable by retrying.
                    if e.code == -32000 {
                        tracing::debug!(error = %e.message, "relay: Whisper node refused an envelope");
                        self.count("relay_refused_by_whisper");
                        return Ok(());
                    }
                    return Err(e.message);
                }
            }
        }
        let post: WhisperPost = serde_json::from_str(post).map_err(|e| e.to_string())?;
        self.side.post(&post).await.map_err(|e| e.to_string())?;
        self.count("relay_to_whisper_resealed");
        Ok(())
    }
}
