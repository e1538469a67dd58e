//! Sending: the stored Whisper posts go to the upstream in outbox order behind the
//! cursor, with the upstream's ids for the app's keys (imported on first use).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::db::{forget_key, map_key, mapped_key, move_cursor, pending};
use super::{DualError, WhisperSide};
use staples_protocol::crypto::keccak256;
use staples_protocol::whisper::json::hex0x;

/// Wait before retrying a failed post.
const RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// What a dual post needs to go out on Whisper: the app's `shh_post` with the carrier as
/// padding. Key fields hold the *app's* key ids; they are mapped to the upstream's ids
/// when the post is sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhisperPost {
    /// The app's symmetric key id (symmetric posts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sym_key_id: Option<String>,
    /// The recipient's public key, `0x` hex (asymmetric posts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pub_key: Option<String>,
    /// The app's signing key pair id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
    /// Envelope TTL.
    pub ttl: u32,
    /// `0x` + 8 hex.
    pub topic: String,
    /// The app's payload, `0x` hex.
    pub payload: String,
    /// The padding: DAG header, then the app's padding, `0x` hex.
    pub padding: String,
    /// The app's PoW target.
    pub pow_target: f64,
    /// The app's PoW time.
    pub pow_time: u32,
    /// When the post expires on Swarm's envelope (unix seconds): a post still waiting
    /// then is not sent (Whisper would drop it too).
    pub expiry: u32,
}

impl WhisperPost {
    /// The row for a post of `payload` with `padding` (the carrier).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        sym_key_id: Option<&str>,
        pub_key: Option<&[u8]>,
        sig: Option<&str>,
        ttl: u32,
        topic: [u8; 4],
        payload: &[u8],
        padding: &[u8],
        pow_target: f64,
        pow_time: u32,
        expiry: u32,
    ) -> Self {
        WhisperPost {
            sym_key_id: sym_key_id.map(str::to_string),
            pub_key: pub_key.map(hex0x),
            sig: sig.map(str::to_string),
            ttl,
            topic: hex0x(&topic),
            payload: hex0x(payload),
            padding: hex0x(padding),
            pow_target,
            pow_time,
            expiry,
        }
    }

    /// The stored form.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Which kind of key an id names (the upstream has one call per kind).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum KeyKind {
    Sym,
    Pair,
}

impl WhisperSide {
    /// Sends until aborted: every stored row after the cursor, in order; waits for a
    /// wake-up (or a second) when there is nothing to send, and retries a failure after
    /// [`RETRY`] without skipping it.
    pub async fn run(self: Arc<Self>) {
        loop {
            match self.pass().await {
                Ok(0) => {
                    let _ = tokio::time::timeout(RETRY, self.wake.notified()).await;
                }
                Ok(_) => {}
                Err(e) => {
                    self.note(Some(e.to_string()));
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }

    fn note(&self, error: Option<String>) {
        let was_ok = self.ok.swap(error.is_none(), Ordering::Relaxed);
        match (&error, was_ok) {
            (Some(e), true) => {
                tracing::warn!(error = %e, "whisper side: posting upstream failed; retrying")
            }
            (None, false) => tracing::info!("whisper side: posting upstream recovered"),
            _ => {}
        }
        if error.is_some() {
            *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = error;
        }
    }

    /// Sends one batch; how many rows it sent.
    async fn pass(&self) -> Result<usize, DualError> {
        let rows = pending(&self.store).await?;
        let n = rows.len();
        for (seq, json, envelope) in rows {
            let post: WhisperPost =
                serde_json::from_str(&json).map_err(|e| DualError::BadRow(e.to_string()))?;
            if post.expiry <= crate::rpc::shh_local::unix_now() {
                tracing::warn!(
                    "whisper side: a post expired before the upstream took it; not sent"
                );
                move_cursor(&self.store, seq).await?;
                continue;
            }
            match self.send_envelope(&post, &envelope).await {
                Ok(()) => {}
                // A key the app deleted since: the post cannot go out on Whisper any more
                // (it did on Swarm). Skipped, with a warning, rather than blocking the rest.
                Err(DualError::KeyGone(id)) => {
                    tracing::warn!(key_id = %id, "whisper side: a post's key was deleted; not sent on Whisper");
                }
                Err(e) => return Err(e),
            }
            move_cursor(&self.store, seq).await?;
            self.note(None);
        }
        Ok(n)
    }

    /// Posts the envelope the engine sealed for Swarm, byte for byte, where the Whisper
    /// node takes raw envelopes (a `staples` node, our own devp2p node included): then the
    /// post is one envelope on both networks, and a relay's copy of it from Swarm is the
    /// same envelope, which every Whisper pool drops as a repeat. Elsewhere (geth,
    /// status-go), or when the node refuses the envelope (expired after an outage, PoW
    /// below its minimum), the post is sealed again by the node from `post`.
    async fn send_envelope(&self, post: &WhisperPost, envelope: &[u8]) -> Result<(), DualError> {
        if self.raw.load(Ordering::Relaxed) {
            let params = RawValue::from_string(serde_json::json!([hex0x(envelope)]).to_string())
                .map_err(|e| DualError::BadRow(e.to_string()))?;
            match self
                .upstream
                .call("staples_postEnvelope", Some(&params))
                .await
            {
                Ok(_) => {
                    self.remember_echo(post);
                    return Ok(());
                }
                Err(e) if e.code == -32601 => {
                    tracing::info!(
                        "whisper side: the Whisper node takes no raw envelopes; posting with shh_post (re-sealed)"
                    );
                    self.raw.store(false, Ordering::Relaxed);
                }
                // Refused (expired, PoW): sealed afresh below.
                Err(e) if e.code == -32000 => {
                    tracing::debug!(error = %e.message, "whisper side: raw envelope refused; re-sealing");
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.send(post).await
    }

    /// Our post's copy will come back through our mirrors: recognised by its padding.
    fn remember_echo(&self, post: &WhisperPost) {
        if let Ok(p) = hex::decode(post.padding.trim_start_matches("0x")) {
            self.echoes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(keccak256(&p));
        }
    }

    pub(super) async fn send(&self, post: &WhisperPost) -> Result<(), DualError> {
        let sym = match &post.sym_key_id {
            Some(id) => Some(self.upstream_key(id, KeyKind::Sym).await?),
            None => None,
        };
        let sig = match &post.sig {
            Some(id) => Some(self.upstream_key(id, KeyKind::Pair).await?),
            None => None,
        };
        let mut msg = serde_json::json!({
            "ttl": post.ttl,
            "topic": post.topic,
            "payload": post.payload,
            "padding": post.padding,
            "powTarget": post.pow_target,
            "powTime": post.pow_time,
        });
        if let Some(s) = sym {
            msg["symKeyID"] = s.into();
        }
        if let Some(k) = &post.pub_key {
            msg["pubKey"] = k.clone().into();
        }
        if let Some(s) = sig {
            msg["sig"] = s.into();
        }
        let params = RawValue::from_string(serde_json::json!([msg]).to_string())
            .map_err(|e| DualError::BadRow(e.to_string()))?;
        match self.upstream.call("shh_post", Some(&params)).await {
            Ok(_) => {
                self.remember_echo(post);
                Ok(())
            }
            Err(e) => {
                // The upstream may have lost the keys (a restart without a keystore):
                // forget our mapping so the next attempt imports them again.
                if e.message.contains("key") {
                    for id in [&post.sym_key_id, &post.sig].into_iter().flatten() {
                        forget_key(&self.store, id).await?;
                    }
                }
                Err(e.into())
            }
        }
    }

    /// The upstream's id for the app's key `local`, importing the key if needed.
    pub(super) async fn upstream_key(
        &self,
        local: &str,
        kind: KeyKind,
    ) -> Result<String, DualError> {
        if let Some(id) = mapped_key(&self.store, local).await? {
            return Ok(id);
        }
        let (method, secret) = match kind {
            KeyKind::Sym => (
                "shh_addSymKey",
                self.keys
                    .sym(local)
                    .map(|k| hex0x(&k))
                    .ok_or_else(|| DualError::KeyGone(local.to_string()))?,
            ),
            KeyKind::Pair => (
                "shh_addPrivateKey",
                self.keys
                    .pair(local)
                    .map(|k| hex0x(&k.to_bytes()))
                    .ok_or_else(|| DualError::KeyGone(local.to_string()))?,
            ),
        };
        let answer = self
            .upstream
            .call(method, Some(&crate::upstream::one_param(&secret)))
            .await?;
        let id: String = serde_json::from_str(answer.get())
            .map_err(|_| DualError::Upstream(format!("{method} returned a non-string id")))?;
        map_key(&self.store, local.to_string(), id.clone()).await?;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_post_round_trips_and_names_the_apps_keys() {
        let p = WhisperPost::new(
            Some("abc"),
            None,
            Some("def"),
            50,
            [1, 2, 3, 4],
            b"hi",
            b"STPLDAG\x01",
            0.2,
            1,
            1_900_000_000,
        );
        let back: WhisperPost = serde_json::from_str(&p.to_json()).expect("parses");
        assert_eq!(back, p);
        assert_eq!(back.topic, "0x01020304");
        assert_eq!(back.payload, "0x6869");
        assert!(back.pub_key.is_none());
    }
}
