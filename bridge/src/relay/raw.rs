//! Raw bridging by topic (`staples relay --topic 0x…`): the envelopes of one-to-one and
//! private group chats, which a relay cannot open, cross between its own Whisper node
//! (devp2p, [`crate::devp2p::embedded`]) and Swarm through the topic's log
//! ([`crate::engine::topic_log`], specs/topic-log.md).
//!
//! - **Whisper → Swarm**: every [`SCAN`] the node's pool is scanned like a gossip peer
//!   would be served: unexpired envelopes on a bridged topic that are not known yet are
//!   appended to the topic's log, at most `per_second` per topic and second (the rest wait
//!   in the pool for the next scan, until they expire).
//! - **Swarm → Whisper**: the engine reads the topics' logs into [`RawBridge`], which
//!   adds each envelope to the node as a post (the pool's rules: expiry, PoW, size); the
//!   node gossips it to its Whisper peers byte for byte.
//!
//! An envelope is remembered by hash once appended or read, so neither direction sends it
//! back. Two relays may both append one envelope they heard at once: readers drop the
//! repeat by envelope hash (Whisper pools, and each filter's legacy set).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use staples_protocol::whisper::{Envelope, Topic};

use super::Relay;
use crate::engine::topic_log::TopicSink;
use crate::engine::{BoxFuture, Hook};
use crate::node::LocalNode;

/// How often the Whisper node's pool is scanned (geth's broadcast cycle).
const SCAN: Duration = Duration::from_millis(300);
/// Envelope hashes remembered.
const SEEN: usize = 65_536;

/// The raw side of a relay.
pub struct RawBridge {
    relay: Arc<Relay>,
    engine: Arc<dyn Hook>,
    svc: Arc<crate::devp2p::Service>,
    topics: Vec<Topic>,
    seen: Mutex<crate::recent::Recent<SEEN>>,
}

impl RawBridge {
    /// Bridges `relay`'s topics between the Whisper node behind `svc` and Swarm (through
    /// `engine`); returns the Whisper → Swarm task.
    pub fn start(
        relay: Arc<Relay>,
        engine: Arc<dyn Hook>,
        svc: Arc<crate::devp2p::Service>,
    ) -> tokio::task::JoinHandle<()> {
        let topics: Vec<Topic> = relay.cfg.topics.iter().map(|t| Topic(*t)).collect();
        let me = Arc::new(RawBridge {
            relay,
            engine: engine.clone(),
            svc,
            topics: topics.clone(),
            seen: Mutex::default(),
        });
        for t in topics {
            tracing::info!(topic = %format!("0x{}", hex::encode(t.0)), "relay: bridging raw envelopes");
            engine.follow_topic_into(t, me.clone());
        }
        tokio::spawn(me.to_swarm())
    }

    fn seen(&self, env: &Envelope) -> bool {
        super::lock(&self.seen).contains(&env.hash().0)
    }

    fn remember(&self, env: &Envelope) {
        super::lock(&self.seen).insert(env.hash().0);
    }

    async fn to_swarm(self: Arc<Self>) {
        let per_scan =
            (u64::from(self.relay.cfg.per_second) * SCAN.as_millis() as u64 / 1000).max(1);
        let mut tick = tokio::time::interval(SCAN);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = crate::rpc::shh_local::unix_now();
            let node: &Arc<LocalNode> = self.svc.node();
            let mut due: Vec<Envelope> = Vec::new();
            let mut per_topic = std::collections::HashMap::<Topic, u64>::new();
            for p in node.pool_snapshot() {
                let env = &p.envelope;
                if env.expiry <= now || !self.topics.contains(&env.topic) || self.seen(env) {
                    continue;
                }
                let n = per_topic.entry(env.topic).or_default();
                if *n >= per_scan {
                    continue;
                }
                *n += 1;
                due.push(env.clone());
            }
            for env in due {
                match self.engine.topic_log_append(&env).await {
                    Ok(()) => {
                        self.remember(&env);
                        self.relay.count("relay_raw_to_swarm");
                    }
                    // No entry can carry it: left out for good, not tried every scan.
                    Err(crate::engine::EngineError::TopicLog(e)) => {
                        self.remember(&env);
                        self.relay.count("relay_raw_too_large");
                        tracing::debug!(error = %e, "relay: envelope too large for a topic log");
                    }
                    Err(e) => {
                        // Still in the pool: tried again next scan, until it expires.
                        self.relay.count("relay_raw_to_swarm_failed");
                        tracing::debug!(error = %e, "relay: topic log append failed");
                        break;
                    }
                }
            }
        }
    }
}

impl TopicSink for RawBridge {
    fn take(&self, envelopes: Vec<Envelope>) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            for env in envelopes {
                if self.seen(&env) {
                    continue;
                }
                self.remember(&env);
                // The node's outbox makes it durable; an expired, too weak or oversized
                // envelope is the pool's to refuse.
                match self.svc.post_envelope(env).await {
                    Ok(_) => self.relay.count("relay_raw_to_whisper"),
                    Err(e) => {
                        self.relay.count("relay_raw_refused");
                        tracing::debug!(error = %e, "relay: Whisper node refused a logged envelope");
                    }
                }
            }
            Ok(())
        })
    }
}
