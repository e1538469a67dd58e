//! [`BeeSwarm`]: the [`Swarm`] trait over one Bee node's HTTP API (Bee 2.8.1).
//!
//! A thin client on reqwest and tokio-tungstenite rather than the `bee-rs` crate: the
//! engine needs nine calls, all of raw bytes that our own protocol crate verifies, and
//! bee-rs would bring a second set of chunk/SOC/key types (and its own secp256k1) into the
//! sidecar just to be converted back. bee-rs stays where it earns its keep: as the
//! independent client that checks our dev node (devnode/tests).
//!
//! Nothing from Bee is trusted: `/bytes` uploads and downloads are checked against the
//! root our splitter computes, single-owner chunks are parsed and verified at the address
//! asked for. Every call is bounded by [`BeeOptions::timeout`].

use std::time::Duration;

use futures_util::StreamExt;
use staples_protocol::crypto::PublicKey;
use staples_protocol::swarm::bee_api;
use staples_protocol::swarm::bytes_tree::{self, Redundancy};
use staples_protocol::swarm::chunk::ChunkAddress;
use staples_protocol::swarm::feed::FeedTopic;
use staples_protocol::swarm::pss::Targets;
use staples_protocol::swarm::soc::SingleOwnerChunk;
use tokio::sync::{Mutex, mpsc};
use tokio_tungstenite::tungstenite::Message;

use super::{NodeAddresses, PssSubscription, Swarm, SwarmError};

/// Largest `/bytes` content downloaded: a DAG message body (1 MiB) in a Whisper envelope.
const MAX_CONTENT: u64 = 2 << 20;

/// Client settings.
#[derive(Clone, Debug)]
pub struct BeeOptions {
    /// Per-call timeout.
    pub timeout: Duration,
    /// Postage batch to stamp with (hex); found or bought when `None`.
    pub postage_batch: Option<String>,
    /// Amount per chunk of a bought batch (PLUR).
    pub batch_amount: u64,
    /// Depth of a bought batch.
    pub batch_depth: u8,
}

impl Default for BeeOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(20),
            postage_batch: None,
            // Bee refuses batches that would not last 24 h at the current price.
            batch_amount: 1_000_000_000,
            batch_depth: 22,
        }
    }
}

/// One Bee node.
pub struct BeeSwarm {
    base: String,
    http: reqwest::Client,
    opts: BeeOptions,
    batch: Mutex<Option<String>>,
}

impl BeeSwarm {
    /// A client of the Bee API at `url` (e.g. `http://127.0.0.1:1633`).
    pub fn new(url: &str, opts: BeeOptions) -> Result<Self, SwarmError> {
        let base = url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(SwarmError::Unreachable {
                url: base,
                reason: "the Bee API URL must start with http:// or https://".into(),
            });
        }
        let http = reqwest::Client::builder()
            .timeout(opts.timeout)
            .build()
            .map_err(|e| SwarmError::Unreachable {
                url: base.clone(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            batch: Mutex::new(opts.postage_batch.clone()),
            base,
            http,
            opts,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn net_error(&self, what: &'static str, e: reqwest::Error) -> SwarmError {
        if e.is_timeout() {
            SwarmError::Timeout { what }
        } else {
            SwarmError::Unreachable {
                url: self.base.clone(),
                reason: e.to_string(),
            }
        }
    }

    /// Sends a request; maps transport failures, 404 and other error statuses.
    async fn send(
        &self,
        what: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, SwarmError> {
        let resp = req.send().await.map_err(|e| self.net_error(what, e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(SwarmError::NotFound);
        }
        let body = self.bytes_of(what, resp).await.unwrap_or_default();
        Err(SwarmError::Status {
            what,
            status: status.as_u16(),
            message: bee_api::error_message(&body),
        })
    }

    /// The body, at most [`MAX_CONTENT`] bytes whatever the node says its length is (a
    /// broken or hostile node must not make the sidecar buffer without bound).
    async fn bytes_of(
        &self,
        what: &'static str,
        mut resp: reqwest::Response,
    ) -> Result<Vec<u8>, SwarmError> {
        let mut out = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.net_error(what, e))? {
            if (out.len() + chunk.len()) as u64 > MAX_CONTENT {
                return Err(SwarmError::Invalid(format!(
                    "{what}: answer larger than {MAX_CONTENT} bytes"
                )));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Reads the body and hands it to one of [`bee_api`]'s readers.
    async fn parsed<T>(
        &self,
        what: &'static str,
        resp: reqwest::Response,
        read: impl FnOnce(&[u8]) -> Result<T, bee_api::BeeApiError>,
    ) -> Result<T, SwarmError> {
        let body = self.bytes_of(what, resp).await?;
        read(&body).map_err(|e| SwarmError::Invalid(e.to_string()))
    }

    /// The batch to stamp with: the configured one, a usable one of the node's, or a new
    /// one (waiting until Bee reports it usable).
    async fn batch(&self) -> Result<String, SwarmError> {
        let mut cached = self.batch.lock().await;
        if let Some(b) = cached.as_ref() {
            return Ok(b.clone());
        }
        let resp = self
            .send("stamps", self.http.get(self.url("/stamps")))
            .await?;
        let usable = self.parsed("stamps", resp, bee_api::usable_batch).await?;
        let id = match usable {
            Some(id) => id.as_str().to_string(),
            None => {
                let path = format!(
                    "/stamps/{}/{}",
                    self.opts.batch_amount, self.opts.batch_depth
                );
                let resp = self
                    .send("buy batch", self.http.post(self.url(&path)))
                    .await?;
                let id = self
                    .parsed("buy batch", resp, bee_api::bought_batch)
                    .await
                    .map_err(|e| SwarmError::NoBatch(e.to_string()))?
                    .as_str()
                    .to_string();
                self.wait_usable(&id).await?;
                tracing::info!(batch = %id, "bought a postage batch");
                id
            }
        };
        *cached = Some(id.clone());
        Ok(id)
    }

    async fn wait_usable(&self, id: &str) -> Result<(), SwarmError> {
        for _ in 0..120 {
            let r = self
                .send("stamp", self.http.get(self.url(&format!("/stamps/{id}"))))
                .await;
            if let Ok(resp) = r
                && self.parsed("stamp", resp, bee_api::stamp_usable).await?
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(SwarmError::NoBatch(format!(
            "batch {id} never became usable"
        )))
    }

    /// A stamped upload; a 402/400 about the batch drops the cached batch so the next call
    /// finds or buys another.
    async fn stamped(
        &self,
        what: &'static str,
        make: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, SwarmError> {
        let batch = self.batch().await?;
        let r = self
            .send(what, make(&batch).header("Swarm-Postage-Batch-Id", &batch))
            .await;
        if let Err(SwarmError::Status {
            status: 400 | 402,
            message,
            ..
        }) = &r
            && (message.contains("batch") || message.contains("bucket"))
            && self.opts.postage_batch.is_none()
        {
            *self.batch.lock().await = None;
        }
        r
    }
}

impl Swarm for BeeSwarm {
    async fn addresses(&self) -> Result<NodeAddresses, SwarmError> {
        let resp = self
            .send("addresses", self.http.get(self.url("/addresses")))
            .await?;
        let a = self.parsed("addresses", resp, bee_api::addresses).await?;
        Ok(NodeAddresses {
            overlay: a.overlay,
            pss_public_key: a.pss_public_key,
        })
    }

    async fn ready(&self) -> Result<bool, SwarmError> {
        match self
            .send("readiness", self.http.get(self.url("/readiness")))
            .await
        {
            Ok(_) => Ok(true),
            // Bee answers 400/503 while it is starting or syncing.
            Err(SwarmError::Status { .. }) | Err(SwarmError::NotFound) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn peers(&self) -> Result<usize, SwarmError> {
        let resp = self
            .send("peers", self.http.get(self.url("/peers")))
            .await?;
        self.parsed("peers", resp, bee_api::peer_count).await
    }

    async fn node_mode(&self) -> Result<bee_api::BeeMode, SwarmError> {
        let resp = self.send("node", self.http.get(self.url("/node"))).await?;
        self.parsed("node", resp, bee_api::node_mode).await
    }

    async fn upload_bytes(&self, data: &[u8]) -> Result<ChunkAddress, SwarmError> {
        let expected = bytes_tree::root(data, Redundancy::None)
            .map_err(|e| SwarmError::Invalid(e.to_string()))?;
        let body = data.to_vec();
        let resp = self
            .stamped("upload bytes", |_| {
                self.http
                    .post(self.url("/bytes"))
                    .header("Content-Type", "application/octet-stream")
                    .header("Swarm-Redundancy-Level", "0")
                    .body(body.clone())
            })
            .await?;
        let got = self
            .parsed("upload bytes", resp, |b| bee_api::reference("/bytes", b))
            .await?;
        if got != *expected.as_bytes() {
            return Err(SwarmError::Invalid(format!(
                "Bee stored /bytes under {} but the content hashes to {}",
                hex::encode(got),
                hex::encode(expected.as_bytes())
            )));
        }
        Ok(expected)
    }

    async fn download_bytes(&self, reference: &ChunkAddress) -> Result<Vec<u8>, SwarmError> {
        let path = format!("/bytes/{}", hex::encode(reference.as_bytes()));
        let resp = self
            .send("download bytes", self.http.get(self.url(&path)))
            .await?;
        if resp.content_length().is_some_and(|n| n > MAX_CONTENT) {
            return Err(SwarmError::Invalid(
                "content larger than any Staples message".into(),
            ));
        }
        let data = self.bytes_of("download bytes", resp).await?;
        // The root hash covers every byte: recomputing it verifies the whole tree.
        let root = bytes_tree::root(&data, Redundancy::None)
            .map_err(|e| SwarmError::Invalid(e.to_string()))?;
        if &root != reference {
            return Err(SwarmError::Invalid(format!(
                "content of {} hashes to {}",
                hex::encode(reference.as_bytes()),
                hex::encode(root.as_bytes())
            )));
        }
        Ok(data)
    }

    async fn upload_soc(&self, soc: &SingleOwnerChunk) -> Result<(), SwarmError> {
        let path = format!(
            "/soc/{}/{}?sig={}",
            hex::encode(soc.owner()),
            hex::encode(soc.id()),
            hex::encode(soc.signature().as_bytes())
        );
        let mut body = soc.wrapped().span_bytes().to_vec();
        body.extend_from_slice(soc.wrapped().payload());
        self.stamped("upload soc", |_| {
            self.http
                .post(self.url(&path))
                .header("Content-Type", "application/octet-stream")
                .body(body.clone())
        })
        .await?;
        Ok(())
    }

    async fn download_soc(&self, address: &ChunkAddress) -> Result<SingleOwnerChunk, SwarmError> {
        let path = format!("/chunks/{}", hex::encode(address.as_bytes()));
        let resp = self
            .send("download chunk", self.http.get(self.url(&path)))
            .await?;
        let data = self.bytes_of("download chunk", resp).await?;
        SingleOwnerChunk::parse_at(address, &data).map_err(|e| SwarmError::Invalid(e.to_string()))
    }

    async fn feed_latest_index(
        &self,
        owner: &[u8; 20],
        topic: &FeedTopic,
        after: Option<u64>,
    ) -> Result<Option<u64>, SwarmError> {
        let mut path = format!("/feeds/{}/{}", hex::encode(owner), topic);
        if let Some(a) = after {
            path.push_str(&format!("?after={a}"));
        }
        let req = self
            .http
            .get(self.url(&path))
            .header("Swarm-Only-Root-Chunk", "true");
        let resp = match self.send("feed lookup", req).await {
            Ok(r) => r,
            Err(SwarmError::NotFound) => return Ok(None),
            // Bee 2.8.1 answers 500 "lookup failed" for a feed it cannot find at all.
            Err(SwarmError::Status {
                status: 500,
                message,
                ..
            }) if message.contains("lookup") || message.contains("not found") => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let index = resp
            .headers()
            .get("swarm-feed-index")
            .and_then(|v| bee_api::feed_index(v.as_bytes()).ok())
            .ok_or_else(|| SwarmError::Invalid("feed answer without Swarm-Feed-Index".into()))?;
        Ok(Some(index))
    }

    async fn pss_send(
        &self,
        topic: &str,
        targets: &Targets,
        recipient: &PublicKey,
        payload: &[u8],
    ) -> Result<(), SwarmError> {
        let path = format!(
            "/pss/send/{topic}/{}?recipient={}",
            targets.to_param(),
            hex::encode(recipient.to_compressed())
        );
        let body = payload.to_vec();
        self.stamped("pss send", |_| {
            self.http.post(self.url(&path)).body(body.clone())
        })
        .await?;
        Ok(())
    }

    async fn pss_subscribe(&self, topic: &str) -> Result<PssSubscription, SwarmError> {
        let ws_base = self
            .base
            .replacen("http://", "ws://", 1)
            .replacen("https://", "wss://", 1);
        let url = format!("{ws_base}/pss/subscribe/{topic}");
        let connect = tokio_tungstenite::connect_async(url.as_str());
        let (ws, _) = tokio::time::timeout(self.opts.timeout, connect)
            .await
            .map_err(|_| SwarmError::Timeout {
                what: "pss subscribe",
            })?
            .map_err(|e| SwarmError::Unreachable {
                url: self.base.clone(),
                reason: e.to_string(),
            })?;
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(async move {
            let (_sink, mut stream) = ws.split();
            while let Some(Ok(msg)) = stream.next().await {
                let payload = match msg {
                    Message::Binary(b) => b.to_vec(),
                    Message::Close(_) => break,
                    _ => continue,
                };
                if tx.send(payload).await.is_err() {
                    break;
                }
            }
        });
        Ok(PssSubscription { messages: rx })
    }
}
