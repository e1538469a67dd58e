//! Receiving: each app filter is mirrored upstream and polled; copies of Staples messages
//! wake the Swarm sync, legacy messages are queued for the app (specs/transport-dual.md
//! §4).

use std::sync::Arc;

use serde_json::value::RawValue;

use super::send::KeyKind;
use super::{DualError, Mirrored, WhisperSide};
use crate::upstream::{new_filter, note_failure, one_param, record_poll};
use staples_protocol::crypto::keccak256;

/// How often Whisper copies may wake the PSS sync.
const NUDGE_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Own posts remembered by padding hash, so their copies coming back are recognised.
pub(super) const ECHOES: usize = 8192;

impl WhisperSide {
    /// Mirrors app filter `filter` (its canonical criteria JSON, with the app's key ids)
    /// upstream until [`WhisperSide::unmirror`]. Idempotent.
    pub fn mirror(self: &Arc<Self>, filter: &str, criteria: &str) {
        let mut mirrors = self.mirrors.lock().unwrap_or_else(|p| p.into_inner());
        if mirrors.contains_key(filter) {
            return;
        }
        let upstream_filter = Arc::new(std::sync::Mutex::new(None));
        let task = tokio::spawn(self.clone().mirror_loop(
            filter.to_string(),
            criteria.to_string(),
            upstream_filter.clone(),
        ));
        mirrors.insert(
            filter.to_string(),
            Mirrored {
                task,
                upstream_filter,
            },
        );
    }

    /// Stops mirroring app filter `filter` and deletes its upstream filter.
    pub fn unmirror(&self, filter: &str) {
        let removed = self
            .mirrors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(filter);
        let Some(m) = removed else {
            return;
        };
        m.task.abort();
        let id = m
            .upstream_filter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(id) = id {
            let (up, store) = (self.upstream.clone(), self.store.clone());
            tokio::spawn(async move { crate::upstream::delete_filter(&up, &store, id).await });
        }
    }

    /// The app's criteria with the upstream's key ids (keys imported as needed).
    async fn upstream_criteria(&self, criteria: &str) -> Result<Box<RawValue>, DualError> {
        let mut c: serde_json::Value =
            serde_json::from_str(criteria).map_err(|e| DualError::BadRow(e.to_string()))?;
        for (field, kind) in [("symKeyID", KeyKind::Sym), ("privateKeyID", KeyKind::Pair)] {
            if let Some(local) = c
                .get(field)
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty())
            {
                let id = self.upstream_key(local, kind).await?;
                c[field] = id.into();
            }
        }
        RawValue::from_string(serde_json::json!([c]).to_string())
            .map_err(|e| DualError::BadRow(e.to_string()))
    }

    /// Keeps an upstream filter for app filter `filter` and polls it.
    async fn mirror_loop(
        self: Arc<Self>,
        filter: String,
        criteria: String,
        current: Arc<std::sync::Mutex<Option<String>>>,
    ) {
        let mut tick = tokio::time::interval(crate::upstream::POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tick.tick().await;
            let have = current.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let id = match have {
                Some(id) => id,
                None => match self.open_mirror(&criteria).await {
                    Ok(id) => {
                        *current.lock().unwrap_or_else(|p| p.into_inner()) = Some(id.clone());
                        id
                    }
                    Err(e) => {
                        note_failure(&mut failing, &e);
                        continue;
                    }
                },
            };
            match self
                .upstream
                .call("shh_getFilterMessages", Some(&one_param(&id)))
                .await
            {
                Ok(v) => {
                    failing = false;
                    let Ok(messages) = serde_json::from_str::<Vec<Box<RawValue>>>(v.get()) else {
                        self.count("whisper_bad_answer");
                        continue;
                    };
                    for m in messages {
                        self.receive(&filter, m.get()).await;
                    }
                }
                Err(e) if e.message == "filter not found" => {
                    // The upstream restarted: make the filter again.
                    *current.lock().unwrap_or_else(|p| p.into_inner()) = None;
                    let _ = self.store.delete_filter(id).await;
                }
                Err(e) => note_failure(&mut failing, &e.message),
            }
        }
    }

    async fn open_mirror(&self, criteria: &str) -> Result<String, DualError> {
        let params = self.upstream_criteria(criteria).await?;
        let id = new_filter(&self.upstream, &params).await?;
        record_poll(&self.store, id.clone(), params.get().to_string()).await?;
        Ok(id)
    }

    /// One message the upstream filter for app filter `filter` returned.
    async fn receive(&self, filter: &str, json: &str) {
        let Some(d) = crate::node::Delivered::from_geth_json(json) else {
            self.count("whisper_bad_message");
            return;
        };
        match (classify(&d.message.plaintext.padding), self.bridge.get()) {
            (Kind::Copy, Some(b)) => {
                // A relay notes which Staples messages are on Whisper already, so it does
                // not post them again (specs/relay.md §4).
                b.copy_seen(keccak256(&d.message.plaintext.padding));
                self.count("whisper_staples_copies");
            }
            (Kind::Legacy, Some(b)) => b.legacy(filter, json).await,
            (Kind::Copy, None) => {
                // On Swarm too: the engine delivers it (once, in causal order). Our own
                // posts come back too; they need no sync. Others wake it, at most twice a
                // second (a burst of copies is one pass).
                self.count("whisper_staples_copies");
                let own = self
                    .echoes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .contains(&keccak256(&d.message.plaintext.padding));
                if own {
                    self.count("whisper_own_echoes");
                } else {
                    let mut last = self.last_nudge.lock().unwrap_or_else(|p| p.into_inner());
                    if last.is_none_or(|t| t.elapsed() >= NUDGE_EVERY) {
                        *last = Some(std::time::Instant::now());
                        self.engine.nudge_sync();
                        self.count("whisper_sync_nudges");
                    }
                }
            }
            (Kind::Refused(why), _) => {
                tracing::debug!(why, "whisper side: a Staples header was refused");
                self.count(why);
            }
            (Kind::Legacy, None) => {
                let mut routed = self.node.route_to(filter, Arc::new(d));
                let rows = routed.take_rows();
                // Durable before the app can see it (specs/transport-pss.md §7).
                match self.store.run(move |t| rows.write(t)).await {
                    Ok(()) => {
                        self.count("whisper_legacy_delivered");
                        self.node.enqueue(routed);
                    }
                    Err(e) => {
                        self.count("whisper_legacy_lost");
                        tracing::warn!(error = %e, "whisper side: a legacy message could not be queued");
                    }
                }
            }
        }
    }
}

/// What a message polled from Whisper is.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    /// A Staples message (its header decodes): on Swarm too. Nothing is delivered from
    /// it; the Swarm path checks the author against the inbox owner, so a tampered copy
    /// delivers nothing.
    Copy,
    /// Padding that claims to carry a Staples header that does not hold up (counter name).
    Refused(&'static str),
    /// An ordinary Whisper message.
    Legacy,
}

/// Sorts a polled message by its padding. A copy is not verified here (signature
/// recovery costs ~70 µs and would decide nothing: a copy delivers nothing, and the Swarm
/// path verifies the message it delivers, author against inbox owner).
fn classify(padding: &[u8]) -> Kind {
    match staples_protocol::dag::decode_padding(padding) {
        Ok(None) => Kind::Legacy,
        Err(_) => Kind::Refused("whisper_malformed_header"),
        Ok(Some(_)) => Kind::Copy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whisper_messages_are_staples_copies_legacy_or_refused() {
        use staples_protocol::crypto::PrivateKey;
        use staples_protocol::dag::{ChatId, Draft, encode_padding_with};
        let key = PrivateKey::random(&mut rand::rngs::OsRng);
        let m = Draft {
            chat_id: ChatId::new([7; 32]),
            clock: 1,
            timestamp: 1,
            parents: vec![],
            ephemeral: false,
            body: b"hello".to_vec(),
        }
        .sign(&key)
        .expect("signs");
        let padding = encode_padding_with(m.header(), b"app");
        assert_eq!(classify(&padding), Kind::Copy);
        // A changed payload still recovers *an* author (recovery signatures do), just not
        // the sender: a copy only wakes the sync, whose Swarm path checks the author
        // against the inbox owner, so such a copy delivers nothing.
        let tampered = staples_protocol::dag::decode_padding(&padding)
            .expect("decodes")
            .expect("a header")
            .with_body(b"hellO".to_vec())
            .expect("recovers");
        assert_ne!(tampered.id(), m.id());
        assert_ne!(tampered.author(), m.author());
        assert_eq!(
            classify(&padding[..12]),
            Kind::Refused("whisper_malformed_header")
        );
        assert_eq!(classify(&[0x11; 40]), Kind::Legacy);
        assert_eq!(classify(&[]), Kind::Legacy);
    }
}
