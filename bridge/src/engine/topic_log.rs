//! Topic logs on the engine's Swarm ([`staples_protocol::topic_log`], specs/topic-log.md):
//! appending envelopes, and reading the logs of followed topics into a [`TopicSink`].
//!
//! With `--topic-logs` a `pss` (or `dual`) sidecar appends the envelope of every post it
//! publishes, and reads the logs of its filters' topics into its filters as Whisper
//! arrivals would be (legacy messages only: an envelope with a Staples DAG carrier is on
//! Swarm already and is delivered by the DAG path). A relay bridging topics reads their
//! logs into its Whisper node instead ([`crate::relay::raw`]).
//!
//! A reader's position per topic is kept in `pss_meta` (`topic_log:<topic hex>`) once what
//! it read is durable where it went; a new topic starts [`BACKLOG`] entries before the
//! newest, so a reader joining late still sees the last few unexpired envelopes.

use std::collections::HashMap;
use std::sync::Arc;

use staples_protocol::swarm::feed;
use staples_protocol::topic_log;
use staples_protocol::whisper::{Envelope, Topic};

use super::{BoxFuture, Engine, EngineError, db, lock};
use crate::node::Pooled;
use crate::swarm::{Swarm, SwarmError};

/// Entries read back when a topic is first followed.
pub const BACKLOG: u64 = 64;
/// Entries read per topic and pass at most (the rest next pass).
const PER_PASS: usize = 256;

/// Where the envelopes read from a topic log go.
pub trait TopicSink: Send + Sync + 'static {
    /// Takes envelopes read from a log (format and topic checked, nothing else);
    /// resolves once they are durable where they go.
    fn take(&self, envelopes: Vec<Envelope>) -> BoxFuture<'_, Result<(), String>>;
}

/// A followed topic.
pub(super) struct Follow {
    /// The next index to read, once positioned.
    next: Option<u64>,
    sink: Arc<dyn TopicSink>,
}

/// The followed topics.
pub(super) type Follows = HashMap<Topic, Follow>;

fn cursor_key(topic: &Topic) -> String {
    format!("topic_log:{}", hex::encode(topic.0))
}

impl<S: Swarm> Engine<S> {
    /// Reads topic `topic`'s log into `sink` from now on (a second call changes the sink).
    pub fn follow_topic_into(&self, topic: Topic, sink: Arc<dyn TopicSink>) {
        lock(&self.inner.topic_logs)
            .entry(topic)
            .and_modify(|f| f.sink = sink.clone())
            .or_insert(Follow { next: None, sink });
    }

    /// With `--topic-logs`: reads `topics`' logs into the app's filters.
    pub fn follow_topics(&self, topics: &[[u8; 4]]) {
        if !self.inner.cfg.topic_logs {
            return;
        }
        let sink: Arc<dyn TopicSink> = Arc::new(Filters(self.clone()));
        let mut follows = lock(&self.inner.topic_logs);
        for t in topics {
            follows.entry(Topic(*t)).or_insert(Follow {
                next: None,
                sink: sink.clone(),
            });
        }
    }

    /// Appends `env` to its topic's log.
    pub async fn topic_log_append(&self, env: &Envelope) -> Result<(), EngineError> {
        let entry = topic_log::encode(env)?;
        let from = lock(&self.inner.topic_logs)
            .get(&env.topic)
            .and_then(|f| f.next);
        super::send::append_shared(
            self,
            &topic_log::owner_key(&env.topic),
            &topic_log::feed_topic(),
            &entry,
            from,
        )
        .await?;
        self.count("topic_log_appended");
        Ok(())
    }
}

/// One pass over the followed topics' logs.
pub(super) async fn read_all<S: Swarm>(engine: &Engine<S>) -> Result<(), SwarmError> {
    let topics: Vec<(Topic, Option<u64>, Arc<dyn TopicSink>)> = lock(&engine.inner.topic_logs)
        .iter()
        .map(|(t, f)| (*t, f.next, f.sink.clone()))
        .collect();
    for (topic, next, sink) in topics {
        read(engine, topic, next, sink).await?;
    }
    Ok(())
}

async fn read<S: Swarm>(
    engine: &Engine<S>,
    topic: Topic,
    next: Option<u64>,
    sink: Arc<dyn TopicSink>,
) -> Result<(), SwarmError> {
    let owner = topic_log::owner_key(&topic).public_key().eth_address();
    let ft = topic_log::feed_topic();
    let mut next = match next {
        Some(n) => n,
        None => position(engine, &topic, &owner, &ft).await?,
    };
    let start = next;
    let mut envelopes = Vec::new();
    for _ in 0..PER_PASS {
        let address = feed::update_address(&owner, &ft, next);
        match engine.inner.swarm.download_soc(&address).await {
            // Address and signature are checked by the Swarm layer: this is the log's
            // owner key at this index. The content is anyone's: checked next.
            Ok(soc) => match topic_log::decode(&topic, soc.wrapped().payload()) {
                Ok(env) => envelopes.push(env),
                Err(e) => {
                    engine.count("topic_log_invalid");
                    tracing::debug!(error = %e, "topic log entry refused");
                }
            },
            Err(SwarmError::NotFound) => break,
            Err(e) => return Err(e),
        }
        next += 1;
    }
    if next == start {
        if let Some(f) = lock(&engine.inner.topic_logs).get_mut(&topic) {
            f.next = Some(next);
        }
        return Ok(());
    }
    engine.count_n("topic_log_read", next - start);
    if let Err(e) = sink.take(envelopes).await {
        // Not durable: read again next pass.
        tracing::warn!(error = %e, "topic log entries could not be taken");
        return Ok(());
    }
    if let Err(e) = db::set_meta(
        &engine.inner.store,
        cursor_key(&topic),
        next.to_be_bytes().to_vec(),
    )
    .await
    {
        tracing::warn!(error = %e, "topic log cursor not stored (entries will be read again)");
    }
    if let Some(f) = lock(&engine.inner.topic_logs).get_mut(&topic) {
        f.next = Some(next);
    }
    Ok(())
}

/// Where a reader starts: its stored cursor, else [`BACKLOG`] entries before the newest.
async fn position<S: Swarm>(
    engine: &Engine<S>,
    topic: &Topic,
    owner: &[u8; 20],
    ft: &feed::FeedTopic,
) -> Result<u64, SwarmError> {
    let stored = db::meta(&engine.inner.store, cursor_key(topic))
        .await
        .ok()
        .flatten()
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map(u64::from_be_bytes);
    if let Some(n) = stored {
        return Ok(n);
    }
    let newest = engine
        .inner
        .swarm
        .feed_latest_index(owner, ft, None)
        .await?;
    Ok(newest.map_or(0, |n| (n + 1).saturating_sub(BACKLOG)))
}

/// The app's filters as a sink: each envelope is admitted as Whisper would admit it
/// (unexpired, within the size limit, PoW at least the node's minimum) and offered to
/// the filters as a legacy arrival; queue rows are committed before anything is queued.
struct Filters<S: Swarm>(Engine<S>);

impl<S: Swarm> TopicSink for Filters<S> {
    fn take(&self, envelopes: Vec<Envelope>) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let engine = &self.0;
            let node = &engine.inner.node;
            let now = crate::rpc::shh_local::unix_now();
            let mut routed = Vec::new();
            let mut rows = crate::node::QueueRows::default();
            for env in envelopes {
                let pooled = Pooled::new(env, now);
                if pooled.envelope.expiry <= now || pooled.pow < node.min_pow() {
                    engine.count("topic_log_unadmitted");
                    continue;
                }
                let mut r = node.route_logged(&pooled);
                rows.append(r.take_rows());
                routed.push(r);
            }
            engine
                .inner
                .store
                .run(move |t| rows.write(t))
                .await
                .map_err(|e| e.to_string())?;
            for r in routed {
                engine.count_n("topic_log_delivered", r.len() as u64);
                node.enqueue(r);
            }
            Ok(())
        })
    }
}
