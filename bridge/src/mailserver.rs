//! Staples as a Whisper mailserver for unmodified status-go (`--mailserver`,
//! specs/relay.md §10): a code-126 request from a devp2p peer is answered from Swarm, as
//! status-go v0.78's `mailserver.DeliverMail` answers it from its LevelDB archive.
//!
//! The request is opened with the node key or the mailserver password's key, must be signed
//! by the requesting peer's node key, and is decoded and validated by
//! [`staples_protocol::mailserver`] (every payload generation). The history walk is the
//! engine's ([`crate::engine::history`]): the followed chats on the request's topics (or
//! on the topics its bloom matches), with each bridged legacy message served as the
//! sender's envelope. Envelopes go back as code-127 lists (one list per envelope when the
//! client did not ask for batches), then a code-125 completion with the request id, the
//! last envelope's hash and the cursor of the next page; a refusal is status-go's
//! `ERROR=` completion, with status-go's text.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use tokio::sync::mpsc;

use staples_protocol::crypto::{PrivateKey, PublicKey};
use staples_protocol::mailserver::{self, Completion, Request};
use staples_protocol::whisper::{Envelope, EnvelopeHash, OpenKey, SymKey, Topic};

use crate::devp2p::{MailServer, Outgoing};
use crate::engine::Hook;
use crate::engine::history::{HistoryQuery, MAX_WINDOW_SECS};

/// status-go's default mailserver password.
pub use staples_protocol::status::OFFLINE_INBOX_PASSWORD as DEFAULT_PASSWORD;

/// A code-127 list is cut before it reaches this many bytes (geth's default maximum
/// message size, which a status-go client enforces on what it reads).
const MAX_BUNDLE: usize = staples_protocol::whisper::DEFAULT_MAX_MESSAGE_SIZE;
/// Requests walked at once, whatever the number of peers asking: each walk makes many Bee
/// requests in parallel, and peers are rate limited one by one only.
const CONCURRENT: usize = 4;

/// The mailserver.
pub struct Mailserver {
    engine: Arc<dyn Hook>,
    node_key: Arc<PrivateKey>,
    password_key: SymKey,
    counters: Mutex<BTreeMap<&'static str, u64>>,
    walks: tokio::sync::Semaphore,
}

impl Mailserver {
    /// Serves from `engine`'s chats; requests open with `node_key` (the devp2p node key)
    /// or with the key of `password`.
    pub fn new(engine: Arc<dyn Hook>, node_key: Arc<PrivateKey>, password: &str) -> Arc<Self> {
        Arc::new(Mailserver {
            engine,
            node_key,
            password_key: SymKey::from_password(password),
            counters: Mutex::default(),
            walks: tokio::sync::Semaphore::new(CONCURRENT),
        })
    }

    /// What it did, for `staples_status`.
    pub fn counters(&self) -> BTreeMap<&'static str, u64> {
        self.counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn count(&self, what: &'static str, n: u64) {
        *self
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(what)
            .or_default() += n;
    }

    /// The request from `peer`, opened, decoded and validated.
    fn read(&self, peer: &PublicKey, request: &Envelope, now: u32) -> Result<Request, String> {
        let keys = [
            OpenKey::Asymmetric(&self.node_key),
            OpenKey::Symmetric(&self.password_key),
        ];
        let r = mailserver::open(request, &keys, peer).map_err(|e| {
            self.count(
                match e {
                    mailserver::RequestError::Undecryptable => "refused_undecryptable",
                    mailserver::RequestError::Unsigned | mailserver::RequestError::NotThePeer => {
                        "refused_signature"
                    }
                    _ => "refused_payload",
                },
                1,
            );
            e.to_string()
        })?;
        r.validate(now, MAX_WINDOW_SECS).map_err(|e| {
            self.count("refused_invalid", 1);
            e.to_string()
        })
    }

    /// The answer to `request`: envelope lists, then the completion.
    async fn answer(
        &self,
        peer: &PublicKey,
        request: &Envelope,
    ) -> (Vec<Vec<Envelope>>, Completion) {
        let request_id = request.hash();
        let failed = |message: String| {
            (
                Vec::new(),
                Completion::Failed {
                    request_id,
                    message,
                },
            )
        };
        let r = match self.read(peer, request, crate::rpc::shh_local::unix_now()) {
            Ok(r) => r,
            Err(e) => return failed(e),
        };
        let topics: Vec<[u8; 4]> = if r.topics.is_empty() {
            self.engine
                .chat_topics()
                .into_iter()
                .filter(|t| r.wants(&Topic(*t)))
                .collect()
        } else {
            r.topics.iter().map(|t| t.0).collect()
        };
        let q = HistoryQuery {
            topics,
            from: r.lower,
            to: r.upper,
            limit: r.limit,
            cursor: r.cursor,
            originals: true,
        };
        let page = match self.engine.history_page(&q).await {
            Ok(p) => p,
            Err(e) => {
                self.count("failed_swarm", 1);
                return failed(e.to_string());
            }
        };
        let envelopes: Vec<Envelope> = page
            .envelopes
            .into_iter()
            .filter(|e| r.wants(&e.topic))
            .collect();
        let last = envelopes
            .last()
            .map_or(EnvelopeHash([0; 32]), Envelope::hash);
        self.count("served_envelopes", envelopes.len() as u64);
        let bundles = if r.batch {
            bundle(envelopes, MAX_BUNDLE)
        } else {
            envelopes.into_iter().map(|e| vec![e]).collect()
        };
        (
            bundles,
            Completion::Completed {
                request_id,
                last_envelope: last,
                cursor: page.cursor,
            },
        )
    }
}

/// Splits `envelopes` into lists each under `max` bytes (a larger envelope goes alone).
fn bundle(envelopes: Vec<Envelope>, max: usize) -> Vec<Vec<Envelope>> {
    let mut out: Vec<Vec<Envelope>> = Vec::new();
    let mut size = 0;
    for e in envelopes {
        let n = e.encode().len();
        match out.last_mut() {
            Some(b) if size + n < max => b.push(e),
            _ => {
                out.push(vec![e]);
                size = 0;
            }
        }
        size += n;
    }
    out
}

impl MailServer for Mailserver {
    fn serve(
        self: Arc<Self>,
        peer: PublicKey,
        request: Envelope,
        reply: mpsc::Sender<Outgoing>,
    ) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            self.count("requests", 1);
            let (bundles, completion) = {
                // Never closed, so acquiring cannot fail; without a permit, serve anyway.
                let _permit = self.walks.acquire().await.ok();
                self.answer(&peer, &request).await
            };
            for b in bundles {
                if reply.send(Outgoing::Mail(b)).await.is_err() {
                    // The peer left mid-answer: nothing more to send it.
                    self.count("aborted", 1);
                    return;
                }
            }
            match &completion {
                Completion::Completed { .. } => self.count("completed", 1),
                Completion::Failed { .. } => self.count("failed", 1),
            }
            if reply
                .send(Outgoing::Completion(completion.encode()))
                .await
                .is_err()
            {
                self.count("aborted", 1);
            }
        })
    }

    fn refusal(&self, request: &Envelope, why: &str) -> Vec<u8> {
        self.count("refused_rate", 1);
        Completion::Failed {
            request_id: request.hash(),
            message: why.to_string(),
        }
        .encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(n: usize) -> Envelope {
        Envelope {
            expiry: 100,
            ttl: 10,
            topic: Topic([1, 2, 3, 4]),
            data: vec![7; n],
            nonce: 0,
        }
    }

    #[test]
    fn bundles_stay_under_the_size_and_keep_order() {
        let envs = vec![env(100), env(100), env(100), env(500), env(10)];
        let sizes: Vec<usize> = envs.iter().map(|e| e.encode().len()).collect();
        let b = bundle(envs.clone(), 300);
        assert_eq!(b.concat(), envs, "nothing lost or reordered");
        for list in &b {
            let total: usize = list.iter().map(|e| e.encode().len()).sum();
            assert!(
                total < 300 || list.len() == 1,
                "{total} bytes in {} envelopes",
                list.len()
            );
        }
        assert!(sizes[3] > 300);
        assert_eq!(bundle(Vec::new(), 300).len(), 0);
    }
}
