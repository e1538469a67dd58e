//! Upstream mode (`--whisper-rpc URL`): the sidecar forwards the app's calls to an existing
//! Whisper node (status-go, geth, or another `staples`), so the app sees that node's
//! behaviour unchanged, results and errors included.
//!
//! Calls go over HTTP(S) when the URL is `http(s)://`, over one shared WebSocket when it is
//! `ws(s)://`. Subscriptions always use a WebSocket (the URL with its scheme switched to
//! `ws(s)` for an HTTP URL); upstream notifications are routed by subscription id to bounded
//! per-subscription queues. If a queue fills (the app fell behind) or the upstream
//! connection drops, the app's subscription is closed with an error notification, never
//! thinned silently; the next subscribe reconnects.
//!
//! Key ids and filter ids the app creates upstream are recorded in the store, so a later
//! migration to another transport knows what the app holds. Key export stays behind
//! `--allow-key-export` here too.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::{Mutex as AsyncMutex, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use crate::node::LAG_REASON;
use crate::rpc::shh::ShhError;
use crate::rpc::{Conn, Handler, RpcError};
use crate::store::{KeyKind, Origin, Store};

/// Notifications buffered per bridged subscription.
pub const SUB_QUEUE: usize = 1024;
/// Requests queued for the upstream WebSocket writer.
const WS_OUT: usize = 1024;

/// Errors from configuring the upstream.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The URL scheme is not http, https, ws or wss.
    #[error("--whisper-rpc must be an http(s):// or ws(s):// URL, got {0:?}")]
    Scheme(String),
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    Client(String),
}

type Pending = HashMap<
    u64,
    (
        oneshot::Sender<Result<Box<RawValue>, RpcError>>,
        Option<mpsc::Sender<Box<RawValue>>>,
    ),
>;

/// One live WebSocket to the upstream.
struct WsClient {
    out: mpsc::Sender<String>,
    pending: Arc<std::sync::Mutex<Pending>>,
    subs: Arc<std::sync::Mutex<HashMap<String, mpsc::Sender<Box<RawValue>>>>>,
    alive: Arc<std::sync::atomic::AtomicBool>,
}

/// The upstream node.
pub struct Upstream {
    http: Option<(reqwest::Client, String)>,
    ws_url: String,
    ws: AsyncMutex<Option<Arc<WsClient>>>,
    next_id: AtomicU64,
}

#[derive(Deserialize)]
struct Frame {
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    params: Option<NotifParams>,
    #[serde(default)]
    result: Option<Box<RawValue>>,
    #[serde(default)]
    error: Option<ErrorObj>,
}

#[derive(Deserialize)]
struct NotifParams {
    subscription: String,
    result: Box<RawValue>,
}

#[derive(Deserialize)]
struct ErrorObj {
    code: i64,
    message: String,
}

impl Upstream {
    /// Prepares a client for `url` (no connection is made yet).
    pub fn new(url: &str) -> Result<Self, UpstreamError> {
        let lower = url.to_ascii_lowercase();
        let (http, ws_url) = if let Some(rest) = lower.strip_prefix("http://").map(|_| &url[7..]) {
            (true, format!("ws://{rest}"))
        } else if lower.starts_with("https://") {
            (true, format!("wss://{}", &url[8..]))
        } else if lower.starts_with("ws://") || lower.starts_with("wss://") {
            (false, url.to_string())
        } else {
            return Err(UpstreamError::Scheme(url.to_string()));
        };
        let http = if http {
            let client = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .map_err(|e| UpstreamError::Client(e.to_string()))?;
            Some((client, url.to_string()))
        } else {
            None
        };
        Ok(Upstream {
            http,
            ws_url,
            ws: AsyncMutex::new(None),
            next_id: AtomicU64::new(1),
        })
    }

    /// Calls `method` upstream and returns its result or its error unchanged.
    pub async fn call(
        &self,
        method: &str,
        params: Option<&RawValue>,
    ) -> Result<Box<RawValue>, RpcError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = request(id, method, params);
        match &self.http {
            Some((client, url)) => {
                let resp = client
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| unavailable(&e))?;
                let text = resp.text().await.map_err(|e| unavailable(&e))?;
                let f: Frame = serde_json::from_str(&text).map_err(|_| {
                    RpcError::server(format!(
                        "upstream sent an invalid response: {}",
                        clip(&text)
                    ))
                })?;
                outcome(f)
            }
            None => self.ws_call(body, id, None).await,
        }
    }

    /// `shh_subscribe` upstream; returns the upstream subscription id and its notifications.
    pub async fn subscribe(
        &self,
        params: Option<&RawValue>,
    ) -> Result<(String, mpsc::Receiver<Box<RawValue>>), RpcError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(SUB_QUEUE);
        let res = self
            .ws_call(request(id, "shh_subscribe", params), id, Some(tx))
            .await?;
        let sub: String = serde_json::from_str(res.get())
            .map_err(|_| RpcError::server("upstream returned a non-string subscription id"))?;
        Ok((sub, rx))
    }

    /// `shh_unsubscribe` upstream (best effort).
    pub async fn unsubscribe(&self, sub: &str) {
        if let Some(ws) = self.ws.lock().await.clone()
            && let Ok(mut subs) = ws.subs.lock()
        {
            subs.remove(sub);
        }
        let params = serde_json::value::to_raw_value(&[sub]).ok();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let _ = self
            .ws_call(request(id, "shh_unsubscribe", params.as_deref()), id, None)
            .await;
    }

    async fn ws(&self) -> Result<Arc<WsClient>, RpcError> {
        let mut slot = self.ws.lock().await;
        if let Some(c) = slot.as_ref()
            && c.alive.load(Ordering::Acquire)
        {
            return Ok(c.clone());
        }
        let (socket, _) = tokio_tungstenite::connect_async(self.ws_url.as_str())
            .await
            .map_err(|e| unavailable(&e))?;
        let (mut sink, mut stream) = socket.split();
        let (out, mut out_rx) = mpsc::channel::<String>(WS_OUT);
        let client = Arc::new(WsClient {
            out,
            pending: Arc::default(),
            subs: Arc::default(),
            alive: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        });
        tokio::spawn(async move {
            while let Some(text) = out_rx.recv().await {
                if sink.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
        });
        let (pending, subs, alive) = (
            client.pending.clone(),
            client.subs.clone(),
            client.alive.clone(),
        );
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let text = match msg {
                    Message::Text(t) => t.to_string(),
                    Message::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
                    Message::Close(_) => break,
                    _ => continue,
                };
                let Ok(f) = serde_json::from_str::<Frame>(&text) else {
                    tracing::warn!("upstream sent an unparsable frame");
                    continue;
                };
                if f.method
                    .as_deref()
                    .is_some_and(|m| m.ends_with("_subscription"))
                {
                    if let Some(p) = f.params {
                        let mut subs = subs.lock().unwrap_or_else(|p| p.into_inner());
                        if let Some(tx) = subs.get(&p.subscription)
                            && tx.try_send(p.result).is_err()
                        {
                            // Full or gone: dropping the sender ends the bridged
                            // subscription, which then reports the failure to the app.
                            subs.remove(&p.subscription);
                        }
                    }
                    continue;
                }
                let Some(id) = f.id.as_ref().and_then(|v| v.as_u64()) else {
                    continue;
                };
                let entry = pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                if let Some((reply, sub_tx)) = entry {
                    let out = outcome(f);
                    // Register the route before answering, so no notification can arrive
                    // for an id nobody listens to.
                    if let (Ok(v), Some(tx)) = (&out, sub_tx)
                        && let Ok(sub) = serde_json::from_str::<String>(v.get())
                    {
                        subs.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(sub, tx);
                    }
                    let _ = reply.send(out);
                }
            }
            alive.store(false, Ordering::Release);
            pending.lock().unwrap_or_else(|p| p.into_inner()).clear();
            subs.lock().unwrap_or_else(|p| p.into_inner()).clear();
            tracing::warn!("upstream websocket closed");
        });
        *slot = Some(client.clone());
        Ok(client)
    }

    async fn ws_call(
        &self,
        body: String,
        id: u64,
        sub: Option<mpsc::Sender<Box<RawValue>>>,
    ) -> Result<Box<RawValue>, RpcError> {
        let ws = self.ws().await?;
        let (tx, rx) = oneshot::channel();
        ws.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, (tx, sub));
        if ws.out.send(body).await.is_err() {
            ws.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            return Err(RpcError::server("upstream unavailable: connection closed"));
        }
        rx.await
            .map_err(|_| RpcError::server("upstream unavailable: connection closed"))?
    }
}

fn request(id: u64, method: &str, params: Option<&RawValue>) -> String {
    let method = serde_json::to_string(method).unwrap_or_else(|_| "\"\"".into());
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":{method},"params":{}}}"#,
        params.map_or("[]", |p| p.get())
    )
}

fn outcome(f: Frame) -> Result<Box<RawValue>, RpcError> {
    if let Some(e) = f.error {
        return Err(RpcError {
            code: e.code,
            message: e.message,
        });
    }
    // A missing result is JSON null (`Box<RawValue>`'s default).
    Ok(f.result.unwrap_or_default())
}

fn unavailable(e: &dyn std::fmt::Display) -> RpcError {
    RpcError::server(format!("upstream unavailable: {e}"))
}

fn clip(s: &str) -> &str {
    let end = s.char_indices().nth(200).map_or(s.len(), |(i, _)| i);
    &s[..end]
}

/// Routes an app's calls to the upstream, bridging subscriptions and recording ids.
pub struct UpstreamHandler {
    upstream: Arc<Upstream>,
    store: Store,
    allow_key_export: bool,
}

impl UpstreamHandler {
    /// Forwards to `upstream`, recording ids in `store`.
    pub fn new(upstream: Arc<Upstream>, store: Store, allow_key_export: bool) -> Self {
        UpstreamHandler {
            upstream,
            store,
            allow_key_export,
        }
    }

    async fn subscribe(
        &self,
        params: Option<&RawValue>,
        conn: &Arc<Conn>,
    ) -> Result<Box<RawValue>, RpcError> {
        let ws = conn.ws().ok_or_else(RpcError::notifications_unsupported)?;
        let (sub, mut rx) = self.upstream.subscribe(params).await?;
        let sink = ws.sink(&sub);
        let forward_sink = sink.handle();
        let up = self.upstream.clone();
        let sub2 = sub.clone();
        let forwarder = tokio::spawn(async move {
            while let Some(result) = rx.recv().await {
                match forward_sink.push_result(result.get()) {
                    crate::node::Push::Queued => {}
                    crate::node::Push::Full => {
                        forward_sink.close_with(LAG_REASON);
                        up.unsubscribe(&sub2).await;
                        return;
                    }
                    crate::node::Push::Closed => {
                        up.unsubscribe(&sub2).await;
                        return;
                    }
                }
            }
            forward_sink.close_with("subscription closed: the upstream connection was lost or the subscription fell behind");
        });
        let up = self.upstream.clone();
        let sub3 = sub.clone();
        ws.register_sink(
            &sink,
            Box::new(move |_| {
                forwarder.abort();
                tokio::spawn(async move { up.unsubscribe(&sub3).await });
            }),
        )?;
        crate::rpc::shh::to_raw(&sub)
    }

    async fn record(&self, method: &str, params: Option<&RawValue>, result: &RawValue) {
        let as_str = |v: &RawValue| serde_json::from_str::<String>(v.get()).ok();
        let first_param = || {
            params
                .and_then(|p| serde_json::from_str::<Vec<Box<RawValue>>>(p.get()).ok())
                .and_then(|v| v.into_iter().next())
        };
        let r = match method {
            "shh_newKeyPair" | "shh_addPrivateKey" => match as_str(result) {
                Some(id) => {
                    self.store
                        .put_key(id, KeyKind::KeyPair, Origin::Upstream)
                        .await
                }
                None => Ok(()),
            },
            "shh_newSymKey" | "shh_addSymKey" | "shh_generateSymKeyFromPassword" => {
                match as_str(result) {
                    Some(id) => {
                        self.store
                            .put_key(id, KeyKind::SymKey, Origin::Upstream)
                            .await
                    }
                    None => Ok(()),
                }
            }
            "shh_deleteKeyPair" | "shh_deleteSymKey" => {
                match first_param().as_deref().and_then(as_str) {
                    Some(id) => self.store.delete_key(id).await.map(|_| ()),
                    None => Ok(()),
                }
            }
            "shh_newMessageFilter" => match (as_str(result), first_param()) {
                (Some(id), Some(c)) => {
                    self.store
                        .put_filter(id, c.get().to_string(), Origin::Upstream)
                        .await
                }
                _ => Ok(()),
            },
            "shh_deleteMessageFilter" => match first_param().as_deref().and_then(as_str) {
                Some(id) => self.store.delete_filter(id).await.map(|_| ()),
                None => Ok(()),
            },
            _ => Ok(()),
        };
        if let Err(e) = r {
            tracing::warn!(error = %e, method, "could not record an upstream id");
        }
    }
}

impl Handler for UpstreamHandler {
    async fn call(
        &self,
        method: &str,
        params: Option<&RawValue>,
        conn: &Arc<Conn>,
    ) -> Result<Box<RawValue>, RpcError> {
        match method {
            "shh_getPrivateKey" | "shh_getSymKey" if !self.allow_key_export => {
                Err(ShhError::ExportDisabled.into())
            }
            "shh_subscribe" => self.subscribe(params, conn).await,
            "shh_unsubscribe" => {
                let ws = conn.ws().ok_or_else(RpcError::notifications_unsupported)?;
                let id = crate::rpc::params::Params::parse(params, 1)?
                    .arg(0, crate::rpc::params::string)?;
                if ws.unsubscribe(&id) {
                    crate::rpc::shh::to_raw(&true)
                } else {
                    Err(RpcError::subscription_missing())
                }
            }
            _ => {
                let result = self.upstream.call(method, params).await?;
                self.record(method, params, &result).await;
                Ok(result)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_frames() {
        assert!(matches!(
            Upstream::new("ftp://x"),
            Err(UpstreamError::Scheme(_))
        ));
        let u = Upstream::new("http://127.0.0.1:8545").expect("http");
        assert_eq!(u.ws_url, "ws://127.0.0.1:8545");
        let u = Upstream::new("wss://node.example/rpc").expect("wss");
        assert!(u.http.is_none());
        assert_eq!(
            request(3, "shh_version", None),
            r#"{"jsonrpc":"2.0","id":3,"method":"shh_version","params":[]}"#
        );
        let f: Frame = serde_json::from_str(
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"filter not found"}}"#,
        )
        .expect("frame");
        assert_eq!(outcome(f).err(), Some(RpcError::server("filter not found")));
    }
}
