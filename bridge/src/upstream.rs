//! Upstream mode (`--whisper-rpc URL`): the sidecar forwards the app's calls to an existing
//! Whisper node (status-go, geth, or another `staples`), so the app sees that node's
//! behaviour unchanged, results and errors included.
//!
//! Calls go over HTTP(S) when the URL is `http(s)://`, over one shared WebSocket when it is
//! `ws(s)://`. Over a WebSocket, upstream notifications are routed by subscription id to
//! bounded per-subscription queues; if a queue fills (the app fell behind) or the upstream
//! connection drops, the app's subscription is closed with an error notification, never
//! thinned silently, and the next subscribe reconnects. An HTTP endpoint (geth's
//! `--rpc`) has no notifications, so there a subscription is an upstream filter with the
//! same criteria, polled every [`POLL_INTERVAL`] ([`UpstreamHandler`]); a filter the
//! upstream lost (it restarted) is made again, and an unreachable upstream is retried.
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
use crate::store::{FilterKind, KeyKind, Origin, Store};

/// Notifications buffered per bridged subscription.
pub const SUB_QUEUE: usize = 1024;
/// Requests queued for the upstream WebSocket writer.
const WS_OUT: usize = 1024;
/// How often a subscription bridged over an HTTP upstream polls its upstream filter.
pub const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

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
    /// An in-process node (dual mode's devp2p Whisper node) instead of a remote one.
    local: Option<Arc<dyn InProcess>>,
    http: Option<(reqwest::Client, String)>,
    ws_url: String,
    ws: AsyncMutex<Option<Arc<WsClient>>>,
    next_id: AtomicU64,
    /// Names this sidecar to the upstream ([`crate::rpc::peers::NODE_HEADER`]), so a
    /// `staples` upstream counts it as a peer.
    node_id: String,
    /// Asks a `staples` upstream to keep the DAG carrier in padding (dual mode).
    keep_carrier: bool,
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

/// A JSON-RPC handler in this process, behind a boxed future so [`Upstream`] can hold
/// one of any type.
trait InProcess: Send + Sync {
    fn call<'a>(
        &'a self,
        method: &'a str,
        params: Option<&'a RawValue>,
    ) -> futures_util::future::BoxFuture<'a, Result<Box<RawValue>, RpcError>>;
}

impl<H: Handler> InProcess for (Arc<H>, Arc<Conn>) {
    fn call<'a>(
        &'a self,
        method: &'a str,
        params: Option<&'a RawValue>,
    ) -> futures_util::future::BoxFuture<'a, Result<Box<RawValue>, RpcError>> {
        Box::pin(self.0.call(method, params, &self.1))
    }
}

#[derive(Deserialize)]
struct ErrorObj {
    code: i64,
    message: String,
}

impl Upstream {
    /// Prepares a client for `url` (no connection is made yet).
    pub fn new(url: &str) -> Result<Self, UpstreamError> {
        Self::with(url, false)
    }

    /// A client for dual mode's Whisper side: a `staples` upstream answers it with the
    /// Staples DAG carrier left in message padding ([`crate::rpc::peers::CARRIER_HEADER`]).
    pub fn keeping_carrier(url: &str) -> Result<Self, UpstreamError> {
        Self::with(url, true)
    }

    fn with(url: &str, keep_carrier: bool) -> Result<Self, UpstreamError> {
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
        let node_id = crate::ids::random_id()[..32].to_string();
        let http = if http {
            let mut headers = reqwest::header::HeaderMap::new();
            if let Ok(v) = reqwest::header::HeaderValue::from_str(&node_id) {
                headers.insert(crate::rpc::peers::NODE_HEADER, v);
            }
            if keep_carrier {
                headers.insert(
                    crate::rpc::peers::CARRIER_HEADER,
                    reqwest::header::HeaderValue::from_static("keep"),
                );
            }
            let client = reqwest::Client::builder()
                .default_headers(headers)
                .timeout(std::time::Duration::from_secs(60))
                .build()
                .map_err(|e| UpstreamError::Client(e.to_string()))?;
            Some((client, url.to_string()))
        } else {
            None
        };
        Ok(Upstream {
            local: None,
            http,
            ws_url,
            ws: AsyncMutex::new(None),
            next_id: AtomicU64::new(1),
            node_id,
            keep_carrier,
        })
    }

    /// An upstream that is a node in this process: calls go to `handler` as from a
    /// sidecar (the DAG carrier stays in padding), without a socket or JSON framing.
    pub fn in_process<H: Handler>(handler: Arc<H>) -> Self {
        Upstream {
            local: Some(Arc::new((handler, Conn::http_from(true)))),
            http: None,
            ws_url: String::new(),
            ws: AsyncMutex::new(None),
            next_id: AtomicU64::new(1),
            node_id: String::new(),
            keep_carrier: true,
        }
    }

    /// Calls `method` upstream and returns its result or its error unchanged.
    pub async fn call(
        &self,
        method: &str,
        params: Option<&RawValue>,
    ) -> Result<Box<RawValue>, RpcError> {
        if let Some(local) = &self.local {
            return local.call(method, params).await;
        }
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

    /// True when there are no notifications (HTTP, or in process): subscriptions poll.
    pub fn is_http(&self) -> bool {
        self.http.is_some() || self.local.is_some()
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
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = self
            .ws_url
            .as_str()
            .into_client_request()
            .map_err(|e| unavailable(&e))?;
        if let Ok(v) = self.node_id.parse() {
            request
                .headers_mut()
                .insert(crate::rpc::peers::NODE_HEADER, v);
        }
        if self.keep_carrier {
            request.headers_mut().insert(
                crate::rpc::peers::CARRIER_HEADER,
                tokio_tungstenite::tungstenite::http::HeaderValue::from_static("keep"),
            );
        }
        let (socket, _) = tokio_tungstenite::connect_async(request)
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

    /// See [`forget_stale_polls`].
    pub async fn forget_stale_polls(&self) {
        forget_stale_polls(self.upstream.clone(), self.store.clone()).await;
    }

    /// Calls the upstream every [`crate::rpc::peers::HEARTBEAT`] (`web3_clientVersion`), so
    /// a `staples` upstream keeps counting this sidecar as a peer while its app is idle,
    /// and an unreachable upstream shows in the log before the app's next call. Runs
    /// until aborted.
    pub fn heartbeat(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let up = self.upstream.clone();
        async move {
            let mut tick = tokio::time::interval(crate::rpc::peers::HEARTBEAT);
            let mut failing = false;
            loop {
                tick.tick().await;
                match up.call("web3_clientVersion", None).await {
                    Ok(_) if failing => {
                        tracing::info!("upstream reachable again");
                        failing = false;
                    }
                    Ok(_) => {}
                    Err(e) => note_failure(&mut failing, &e),
                }
            }
        }
    }

    async fn subscribe(
        &self,
        params: Option<&RawValue>,
        conn: &Arc<Conn>,
    ) -> Result<Box<RawValue>, RpcError> {
        if self.upstream.is_http() {
            return self.subscribe_by_polling(params, conn).await;
        }
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

    /// `shh_subscribe` over an HTTP upstream: an upstream filter with the app's criteria
    /// (so the upstream checks them and answers its own errors), polled, its messages
    /// pushed as notifications. The filter is recorded (kind subscription) so a restart
    /// can delete it upstream if this process dies first.
    async fn subscribe_by_polling(
        &self,
        params: Option<&RawValue>,
        conn: &Arc<Conn>,
    ) -> Result<Box<RawValue>, RpcError> {
        let ws = conn.ws().ok_or_else(RpcError::notifications_unsupported)?;
        let p = crate::rpc::shh::messages_subscription(params)?;
        let criteria = p.raw(1).map(|c| c.get().to_string()).unwrap_or_default();
        let filter_params = RawValue::from_string(format!("[{criteria}]"))
            .map_err(|_| RpcError::invalid_params("invalid criteria"))?;
        let filter = new_filter(&self.upstream, &filter_params).await?;
        if let Err(e) = record_poll(&self.store, filter.clone(), criteria).await {
            tracing::warn!(error = %e, "could not record a bridged subscription");
        }
        let sub = crate::ids::subscription_id();
        let sink = ws.sink(&sub);
        let current = Arc::new(std::sync::Mutex::new(filter));
        let poller = tokio::spawn(poll_filter(Poll {
            upstream: self.upstream.clone(),
            store: self.store.clone(),
            params: filter_params,
            filter: current.clone(),
            sink: sink.handle(),
        }));
        let (up, store) = (self.upstream.clone(), self.store.clone());
        ws.register_sink(
            &sink,
            Box::new(move |_| {
                poller.abort();
                let id = lock(&current).clone();
                tokio::spawn(async move { delete_filter(&up, &store, id).await });
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

/// Deletes the upstream filters a previous run left behind (it died before their apps
/// unsubscribed, or before dual mode unmirrored them): geth would otherwise buffer their
/// messages for ever. Reads the list now (before this run records any) and deletes in the
/// background, so a hanging upstream does not hold up start-up.
pub async fn forget_stale_polls(up: Arc<Upstream>, store: Store) {
    let stale = match store.filters_of(Origin::Upstream).await {
        Ok(all) => all
            .into_iter()
            .filter(|f| f.kind == FilterKind::Subscription)
            .map(|f| f.id)
            .collect::<Vec<_>>(),
        Err(e) => {
            tracing::warn!(error = %e, "reading bridged subscriptions failed");
            return;
        }
    };
    tokio::spawn(async move {
        for id in stale {
            delete_filter(&up, &store, id).await;
        }
    });
}

/// One subscription bridged by polling.
struct Poll {
    upstream: Arc<Upstream>,
    store: Store,
    /// `[criteria]`, to make the filter again.
    params: Box<RawValue>,
    /// The upstream filter id (replaced when the upstream lost it).
    filter: Arc<std::sync::Mutex<String>>,
    sink: crate::rpc::conn::SubSink,
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `[s]` as JSON-RPC params.
pub(crate) fn one_param(s: &str) -> Box<RawValue> {
    serde_json::value::to_raw_value(&[s]).unwrap_or_default()
}

/// `shh_newMessageFilter(params)` upstream; the new filter's id.
pub(crate) async fn new_filter(up: &Upstream, params: &RawValue) -> Result<String, RpcError> {
    let id = up.call("shh_newMessageFilter", Some(params)).await?;
    serde_json::from_str(id.get())
        .map_err(|_| RpcError::server("upstream returned a non-string filter id"))
}

/// Records an upstream filter this sidecar polls (a bridged subscription, or a dual
/// mirror), so [`forget_stale_polls`] deletes it upstream if this process dies first.
pub(crate) async fn record_poll(
    store: &Store,
    id: String,
    criteria: String,
) -> Result<(), crate::store::StoreError> {
    store
        .put_filter_of(id, criteria, Origin::Upstream, FilterKind::Subscription)
        .await
}

/// Deletes upstream filter `id` (best effort) and its record.
pub async fn delete_filter(up: &Upstream, store: &Store, id: String) {
    let _ = up
        .call("shh_deleteMessageFilter", Some(&one_param(&id)))
        .await;
    if let Err(e) = store.delete_filter(id).await {
        tracing::warn!(error = %e, "forgetting a bridged subscription failed");
    }
}

/// Polls until the app's sink closes or falls behind. Errors never end the subscription:
/// an unreachable upstream is retried at the same pace (logged when it starts and stops
/// failing), and a filter the upstream no longer knows is made again (what arrived in
/// between was never buffered upstream, as a geth restart loses it for every client).
async fn poll_filter(p: Poll) {
    use crate::node::Push;
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        let id = lock(&p.filter).clone();
        let got = p
            .upstream
            .call("shh_getFilterMessages", Some(&one_param(&id)))
            .await;
        let messages = match got {
            Ok(v) => serde_json::from_str::<Vec<Box<RawValue>>>(v.get()).map_err(|_| {
                RpcError::server("upstream returned a non-array for shh_getFilterMessages")
            }),
            Err(e) => Err(e),
        };
        let messages = match messages {
            Ok(m) => {
                if failing {
                    tracing::info!(filter = %id, "upstream polling recovered");
                    failing = false;
                }
                m
            }
            Err(e) if e.message == "filter not found" => {
                match new_filter(&p.upstream, &p.params).await {
                    Ok(new) => {
                        tracing::warn!(
                            "the upstream lost a bridged subscription's filter; made again"
                        );
                        let _ = p.store.delete_filter(id).await;
                        let criteria = p.params.get();
                        let criteria = criteria[1..criteria.len() - 1].to_string();
                        let _ = record_poll(&p.store, new.clone(), criteria).await;
                        *lock(&p.filter) = new;
                    }
                    Err(e) => note_failure(&mut failing, &e),
                }
                continue;
            }
            Err(e) => {
                note_failure(&mut failing, &e);
                continue;
            }
        };
        for m in messages {
            match p.sink.push_result(m.get()) {
                Push::Queued => {}
                stop => {
                    if stop == Push::Full {
                        p.sink.close_with(LAG_REASON);
                    }
                    delete_filter(&p.upstream, &p.store, id).await;
                    return;
                }
            }
        }
    }
}

/// Logs a failed upstream call once per outage (`failing` remembers it; the caller clears
/// it on the next success).
pub(crate) fn note_failure(failing: &mut bool, e: &dyn std::fmt::Display) {
    if !*failing {
        tracing::warn!(error = %e, "calling the upstream failed; retrying");
        *failing = true;
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
