//! Whisper → Swarm: legacy messages polled from the Whisper node are republished on Swarm
//! as bridged records (specs/relay.md §3).

use futures_util::future::BoxFuture;

use super::{Relay, lock};
use crate::dual::Bridge;
use crate::rpc::shh::NewMessage;

impl Bridge for Relay {
    fn legacy<'a>(&'a self, filter: &'a str, json: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(self.bridge_legacy(filter, json))
    }

    fn copy_seen(&self, key: [u8; 32]) {
        lock(&self.on_whisper).insert(key);
    }
}

impl Relay {
    /// Republishes one legacy message polled for the relay's filter `filter`.
    async fn bridge_legacy(&self, filter: &str, json: &str) {
        let chats = self.chats().await;
        let Some(chat) = chats.by_filter.get(filter).map(|&i| &chats.list[i]) else {
            return;
        };
        let mut record = match staples_protocol::bridged::record(json) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "relay: a Whisper message cannot be bridged");
                self.count("relay_refused");
                return;
            }
        };
        // Already bridged (by us before a restart, or by another relay whose record
        // reached our filter first): the filter's legacy record says so.
        if self.shh.node().had_legacy(filter, &record.message.hash) {
            self.count("relay_repeats");
            return;
        }
        if !lock(&chat.bucket).take() {
            self.count("relay_shed");
            return;
        }
        // With our own Whisper node the sender's envelope is in its pool: the record
        // carries it, so mailservers can serve it byte for byte (specs/relay.md §3.1).
        if let Some(pooled) = self
            .whisper_pool
            .as_ref()
            .and_then(|n| n.pooled(&record.message.hash))
        {
            match record.clone().with_envelope(pooled.envelope.clone()) {
                Ok(r) => {
                    record = r;
                    self.count("relay_envelopes_archived");
                }
                Err(e) => tracing::warn!(error = %e, "relay: pooled envelope is not the message"),
            }
        }
        let post = NewMessage {
            sym_key_id: chat.key_id.clone(),
            topic: chat.topic,
            payload: record.body(),
            ttl: record.message.ttl,
            ..NewMessage::default()
        };
        // Swarm only: the message is on Whisper already. Our own filter takes the record
        // in the same commit, which is what makes it a repeat from then on.
        match self.shh.post_to_swarm(post).await {
            Ok(_) => self.count("relay_to_swarm"),
            Err(e) => {
                tracing::warn!(error = %e, chat = %chat.name, "relay: bridging to Swarm failed");
                self.count("relay_to_swarm_failed");
            }
        }
    }
}
