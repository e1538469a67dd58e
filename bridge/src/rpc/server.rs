//! The HTTP + WebSocket JSON-RPC server (axum), mini-redis style: [`serve`] takes bound
//! listeners and a shutdown future, so tests bind `127.0.0.1:0` and the binary binds the
//! configured addresses.
//!
//! Security, checked on every request before any JSON is read:
//! - binding to a non-loopback address is refused unless remote access is allowed *and* a
//!   bearer token is set ([`check_bind`]);
//! - with a token, `Authorization: Bearer <token>` is required (401 otherwise);
//! - a request carrying an `Origin` header is refused (403) unless that origin is in the CORS
//!   list, so a web page cannot reach the sidecar through DNS rebinding; allowed origins get
//!   CORS headers and preflight answers;
//! - HTTP bodies and WebSocket messages are capped; connections are capped by a semaphore
//!   (accepting pauses while all permits are taken), and each WebSocket connection runs at
//!   most [`WS_IN_FLIGHT`] calls, or [`WS_IN_FLIGHT_UNIT`] × [`WS_IN_FLIGHT`] bytes of
//!   requests, at once.
//!
//! Both listeners speak both HTTP and WebSocket: apps are configured with geth's two ports,
//! and an upstream URL `http://host:port` can then also be used for subscriptions.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use super::Handler;
use super::conn::{Conn, Ctrl, Frame, MAX_SUBSCRIPTIONS, OUT_QUEUE, failure_notification};
use super::jsonrpc;
use super::peers::SidecarPeers;

/// Calls one WebSocket connection may have running at once. A call weighs one permit per
/// started [`WS_IN_FLIGHT_UNIT`] of request text, so the same budget also caps the bytes
/// held (256 KiB; a single larger request takes the whole budget and runs alone).
///
/// 64 rather than fewer because a post is answered only once durable: when the disk stalls
/// (an fsync of 150 ms was seen under load), each connection's posts wait for it, and a
/// small budget stopped the reader, which delayed posts that would otherwise have been
/// delivered to subscribers at once.
pub const WS_IN_FLIGHT: u32 = 64;
/// Request bytes per in-flight permit (see [`WS_IN_FLIGHT`]).
pub const WS_IN_FLIGHT_UNIT: usize = 4 * 1024;

/// Permits a request of `len` bytes takes from the in-flight budget.
fn in_flight_weight(len: usize) -> u32 {
    let units = len.div_ceil(WS_IN_FLIGHT_UNIT).max(1);
    u32::try_from(units).map_or(WS_IN_FLIGHT, |u| u.min(WS_IN_FLIGHT))
}

/// Server limits and access rules.
#[derive(Clone)]
pub struct ServerConfig {
    /// Required bearer token, if any.
    pub token: Option<String>,
    /// Origins allowed to call (`*` = any).
    pub cors: Vec<String>,
    /// Largest HTTP body, bytes (geth: 5 MiB).
    pub body_limit: usize,
    /// Largest WebSocket message, bytes.
    pub ws_message_limit: usize,
    /// Most simultaneous connections (HTTP and WebSocket together).
    pub max_connections: usize,
    /// Where sidecars that name themselves are counted (`net_peerCount`), if anywhere.
    pub peers: Option<Arc<SidecarPeers>>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("cors", &self.cors)
            .field("body_limit", &self.body_limit)
            .field("ws_message_limit", &self.ws_message_limit)
            .field("max_connections", &self.max_connections)
            .field("peers", &self.peers.is_some())
            .finish()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            token: None,
            cors: Vec::new(),
            body_limit: 5 * 1024 * 1024,
            ws_message_limit: 5 * 1024 * 1024,
            max_connections: 512,
            peers: None,
        }
    }
}

/// Errors from binding.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// A non-loopback address without `--rpc-allow-remote`.
    #[error("refusing to listen on non-loopback address {0} without --rpc-allow-remote")]
    RemoteNotAllowed(SocketAddr),
    /// Remote access without a token.
    #[error("--rpc-allow-remote requires a bearer token (--rpc-token-file)")]
    TokenRequired,
    /// The socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Io {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
}

/// Refuses a public bind unless remote access is allowed and a token protects it.
pub fn check_bind(addr: SocketAddr, allow_remote: bool, has_token: bool) -> Result<(), BindError> {
    if addr.ip().is_loopback() {
        return Ok(());
    }
    if !allow_remote {
        return Err(BindError::RemoteNotAllowed(addr));
    }
    if !has_token {
        return Err(BindError::TokenRequired);
    }
    Ok(())
}

/// Binds `addr` after [`check_bind`].
pub async fn bind(
    addr: SocketAddr,
    allow_remote: bool,
    has_token: bool,
) -> Result<TcpListener, BindError> {
    check_bind(addr, allow_remote, has_token)?;
    TcpListener::bind(addr)
        .await
        .map_err(|source| BindError::Io { addr, source })
}

struct AppState<H> {
    handler: Arc<H>,
    cfg: ServerConfig,
    shutdown: watch::Receiver<bool>,
}

impl<H> Clone for AppState<H> {
    fn clone(&self) -> Self {
        AppState {
            handler: self.handler.clone(),
            cfg: self.cfg.clone(),
            shutdown: self.shutdown.clone(),
        }
    }
}

/// Serves JSON-RPC (and `GET /metrics`) on every listener of `listeners`, and only
/// `GET /metrics` on `metrics_only` (`--metrics-addr`), all behind the same token and
/// Origin checks, until `shutdown` resolves; then stops accepting, closes WebSocket
/// sessions and waits for in-flight HTTP requests.
pub async fn serve<H: Handler>(
    listeners: Vec<TcpListener>,
    metrics_only: Vec<TcpListener>,
    handler: Arc<H>,
    cfg: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let permits = Arc::new(Semaphore::new(cfg.max_connections.max(1)));
    let state = AppState {
        handler,
        cfg: cfg.clone(),
        shutdown: stop_rx.clone(),
    };
    let metrics_app = Router::new()
        .route("/metrics", get(metrics_entry::<H>))
        .layer(middleware::from_fn_with_state(cfg.clone(), guard))
        .with_state(state.clone());
    let app = Router::new()
        .route("/metrics", get(metrics_entry::<H>))
        .route(
            "/",
            get(ws_entry::<H>).post(http_entry::<H>).options(preflight),
        )
        .route(
            "/{*path}",
            get(ws_entry::<H>).post(http_entry::<H>).options(preflight),
        )
        .layer(middleware::from_fn_with_state(cfg.clone(), guard))
        .layer(DefaultBodyLimit::max(cfg.body_limit))
        .with_state(state);
    let mut tasks = Vec::new();
    let all = listeners
        .into_iter()
        .map(|l| (l, app.clone()))
        .chain(metrics_only.into_iter().map(|l| (l, metrics_app.clone())));
    for (l, app) in all {
        let listener = Limited {
            inner: l,
            permits: permits.clone(),
        };
        let mut rx = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|s| *s).await;
                })
                .await
        }));
    }
    shutdown.await;
    let _ = stop_tx.send(true);
    for t in tasks {
        t.await.map_err(io::Error::other)??;
    }
    Ok(())
}

async fn guard(State(cfg): State<ServerConfig>, req: Request, next: Next) -> Response {
    let origin = req.headers().get(header::ORIGIN).cloned();
    if let Some(o) = &origin
        && !origin_allowed(&cfg.cors, o)
    {
        return (StatusCode::FORBIDDEN, "origin not allowed\n").into_response();
    }
    if req.method() != Method::OPTIONS
        && let Some(token) = &cfg.token
        && !bearer_ok(req.headers(), token)
    {
        let mut r = (StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n").into_response();
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    // Only after the checks: a caller that may not call is nobody's peer. A WebSocket
    // counts while it is open instead (ws_entry).
    if let (Some(peers), Some(id)) = (&cfg.peers, node_id(req.headers()))
        && !req.headers().contains_key(header::UPGRADE)
    {
        peers.seen(id, std::time::Instant::now());
    }
    let mut resp = next.run(req).await;
    if let Some(o) = origin {
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    resp
}

/// `GET /metrics`: [`crate::metrics`], with `staples_status` and devp2p counters read
/// through the handler as any caller would.
async fn metrics_entry<H: Handler>(State(st): State<AppState<H>>) -> Response {
    let conn = Conn::http();
    let read = |r: Result<Box<serde_json::value::RawValue>, super::RpcError>| {
        r.ok()
            .and_then(|v| serde_json::from_str::<serde_json::Value>(v.get()).ok())
    };
    let status = read(st.handler.call("staples_status", None, &conn).await);
    let devp2p = read(st.handler.call("admin_nodeInfo", None, &conn).await)
        .and_then(|v| v.get("staples").cloned());
    let text = crate::metrics::render(status.as_ref(), devp2p.as_ref());
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

async fn preflight() -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, GET"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type, authorization"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    r
}

fn origin_allowed(cors: &[String], origin: &HeaderValue) -> bool {
    let Ok(o) = origin.to_str() else {
        return false;
    };
    cors.iter().any(|c| {
        c == "*"
            || c.trim_end_matches('/')
                .eq_ignore_ascii_case(o.trim_end_matches('/'))
    })
}

fn bearer_ok(headers: &HeaderMap, token: &str) -> bool {
    let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(given) = v
        .strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
    else {
        return false;
    };
    // Constant-time comparison: the token must not leak through response timing.
    let (a, b) = (given.trim().as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn http_entry<H: Handler>(
    State(st): State<AppState<H>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json_ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|mt| {
            matches!(
                mt.as_str(),
                "application/json" | "application/json-rpc" | "application/jsonrequest"
            )
        });
    if !json_ct {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid content type, only application/json is supported\n",
        )
            .into_response();
    }
    let (text, receipts) = match std::str::from_utf8(&body) {
        Ok(t) => {
            let from = Conn::http_from(keeps_carrier(&headers));
            let a = jsonrpc::handle(&st.handler, t, &from).await;
            (a.text, a.receipts)
        }
        Err(_) => (
            Some(jsonrpc::error_response(
                None,
                &super::RpcError::parse_error(),
            )),
            Vec::new(),
        ),
    };
    let text = text.unwrap_or_default();
    let body = if receipts.is_empty() {
        axum::body::Body::from(text)
    } else {
        axum::body::Body::new(ReceiptBody {
            data: Some(Bytes::from(text)),
            receipts,
        })
    };
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// A response body that settles its receipts once hyper has taken all of it for the
/// socket: hyper drops the body after taking its last byte (it knows the length), and
/// writes what it took right after. Dropped before its data was taken (the client went
/// away), the receipts go unsettled and the messages are queued again.
struct ReceiptBody {
    data: Option<Bytes>,
    receipts: Vec<crate::node::Receipt>,
}

impl Drop for ReceiptBody {
    fn drop(&mut self) {
        if self.data.is_none() {
            for r in self.receipts.drain(..) {
                r.written();
            }
        }
    }
}

impl http_body::Body for ReceiptBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        Poll::Ready(
            self.get_mut()
                .data
                .take()
                .map(|d| Ok(http_body::Frame::data(d))),
        )
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

/// WebSocket read buffer (see [`ws_entry`]).
const WS_READ_BUFFER: usize = 8 * 1024;

/// Whether a `dual` sidecar asks for the DAG carrier ([`super::peers::CARRIER_HEADER`]).
fn keeps_carrier(headers: &HeaderMap) -> bool {
    headers
        .get(super::peers::CARRIER_HEADER)
        .is_some_and(|v| v.as_bytes() == b"keep")
}

/// The sidecar id a request names itself with ([`super::peers::NODE_HEADER`]).
fn node_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(super::peers::NODE_HEADER)
        .and_then(|v| v.to_str().ok())
}

async fn ws_entry<H: Handler>(
    State(st): State<AppState<H>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let limit = st.cfg.ws_message_limit;
    let sidecar = keeps_carrier(&headers);
    // A sidecar counts as a peer for as long as its socket is open.
    let peer = st
        .cfg
        .peers
        .as_ref()
        .zip(node_id(&headers))
        .and_then(|(p, id)| p.connected(id));
    ws.max_message_size(limit)
        .max_frame_size(limit)
        // tungstenite zero-fills its whole read buffer before every socket read (128 KiB
        // by default): with JSON-RPC's small messages that memset was a tenth of the
        // sidecar's CPU under load. Large messages just take more reads.
        .read_buffer_size(WS_READ_BUFFER)
        .on_upgrade(move |socket| async move {
            ws_session(socket, st.handler, st.shutdown, sidecar).await;
            drop(peer);
        })
}

async fn ws_session<H: Handler>(
    socket: WebSocket,
    handler: Arc<H>,
    mut shutdown: watch::Receiver<bool>,
    sidecar: bool,
) {
    let (mut tx, mut rx) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Frame>(OUT_QUEUE);
    let (ctrl_tx, mut ctrl_rx) = mpsc::channel::<Ctrl>(MAX_SUBSCRIPTIONS);
    let conn = Conn::websocket_from(out_tx, ctrl_tx, sidecar);

    // Reading runs apart from writing so a full outgoing queue can always drain; the reader
    // stops reading while the in-flight budget is spent (backpressure on the client).
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<()>();
    let reader_conn = conn.clone();
    let reader = tokio::spawn(async move {
        let in_flight = Arc::new(Semaphore::new(WS_IN_FLIGHT as usize));
        while let Some(msg) = rx.next().await {
            let text = match msg {
                Ok(Message::Text(t)) => t.to_string(),
                Ok(Message::Binary(b)) => String::from_utf8_lossy(&b).into_owned(),
                Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                Ok(Message::Close(_)) | Err(_) => break,
            };
            let weight = in_flight_weight(text.len());
            let Ok(permit) = in_flight.clone().acquire_many_owned(weight).await else {
                break;
            };
            let (h, c) = (handler.clone(), reader_conn.clone());
            tokio::spawn(async move {
                let answer = jsonrpc::handle(&h, &text, &c).await;
                if let Some(ws) = c.ws() {
                    if let Some(t) = answer.text
                        && !ws
                            .send(Frame {
                                text: t,
                                receipts: answer.receipts,
                            })
                            .await
                    {
                        return;
                    }
                    for sub in &answer.subscribed {
                        ws.activate(sub);
                    }
                }
                drop(permit);
            });
        }
        let _ = done_tx.send(());
    });

    loop {
        tokio::select! {
            biased;
            _ = async { let _ = shutdown.wait_for(|s| *s).await; } => {
                let _ = tx.send(Message::Close(None)).await;
                break;
            }
            Some(frame) = out_rx.recv() => {
                // Write everything already queued, then flush once: one syscall for a burst.
                // Receipts are settled after the flush; on a failed write they are dropped
                // unsettled (what they hand out stays queued).
                let mut receipts = frame.receipts;
                let mut ok = tx.feed(Message::Text(frame.text.into())).await.is_ok();
                while ok {
                    match out_rx.try_recv() {
                        Ok(f) => {
                            receipts.extend(f.receipts);
                            ok = tx.feed(Message::Text(f.text.into())).await.is_ok();
                        }
                        Err(_) => break,
                    }
                }
                if !ok || tx.flush().await.is_err() {
                    break;
                }
                for r in receipts {
                    r.written();
                }
            }
            Some(Ctrl::Failed { sub, reason }) = ctrl_rx.recv() => {
                if let Some(ws) = conn.ws() {
                    ws.forget(&sub);
                }
                if tx.send(Message::Text(failure_notification(&sub, &reason).into())).await.is_err() {
                    break;
                }
            }
            _ = &mut done_rx => break,
        }
    }
    reader.abort();
    // Dropping the last handle on `conn` cancels its subscriptions; in-flight calls hold
    // clones and end as soon as their answer finds the queue closed.
    drop(conn);
}

/// A listener that holds a connection permit for each accepted socket.
struct Limited {
    inner: TcpListener,
    permits: Arc<Semaphore>,
}

/// An accepted socket with its permit; dropping it frees the permit.
struct PermitStream {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl axum::serve::Listener for Limited {
    type Io = PermitStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok(permit) = self.permits.clone().acquire_owned().await else {
                // The semaphore is never closed; wait forever rather than spin.
                std::future::pending::<()>().await;
                continue;
            };
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    // Small JSON-RPC frames: Nagle's delay would dominate latency.
                    let _ = stream.set_nodelay(true);
                    return (
                        PermitStream {
                            stream,
                            _permit: permit,
                        },
                        addr,
                    );
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly (hyper's advice).
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

impl AsyncRead for PermitStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for PermitStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_weight_counts_started_units_and_caps_at_the_budget() {
        assert_eq!(in_flight_weight(0), 1);
        assert_eq!(in_flight_weight(300), 1);
        assert_eq!(in_flight_weight(WS_IN_FLIGHT_UNIT), 1);
        assert_eq!(in_flight_weight(WS_IN_FLIGHT_UNIT + 1), 2);
        assert_eq!(
            in_flight_weight(5 << 20),
            WS_IN_FLIGHT,
            "a huge call runs alone"
        );
    }

    #[test]
    fn bind_rules() {
        let lo: SocketAddr = "127.0.0.1:8545".parse().expect("addr");
        let any: SocketAddr = "0.0.0.0:8545".parse().expect("addr");
        assert!(check_bind(lo, false, false).is_ok());
        assert!(matches!(
            check_bind(any, false, true),
            Err(BindError::RemoteNotAllowed(_))
        ));
        assert!(matches!(
            check_bind(any, true, false),
            Err(BindError::TokenRequired)
        ));
        assert!(check_bind(any, true, true).is_ok());
    }

    #[test]
    fn origins_and_tokens() {
        let cors = vec!["http://localhost:3000".to_string()];
        assert!(origin_allowed(
            &cors,
            &HeaderValue::from_static("http://localhost:3000")
        ));
        assert!(!origin_allowed(
            &cors,
            &HeaderValue::from_static("http://evil.example")
        ));
        assert!(origin_allowed(
            &["*".into()],
            &HeaderValue::from_static("http://x")
        ));
        let mut h = HeaderMap::new();
        assert!(!bearer_ok(&h, "t0k"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer t0k"),
        );
        assert!(bearer_ok(&h, "t0k"));
        assert!(!bearer_ok(&h, "t0k2"));
    }
}
