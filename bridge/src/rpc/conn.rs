//! One client connection as the RPC layer sees it: HTTP (no subscriptions) or WebSocket
//! (subscriptions, notifications).
//!
//! A WebSocket connection has one bounded outgoing queue ([`OUT_QUEUE`] frames) drained by
//! its writer task. Responses wait for room in it (backpressure on the client's own calls);
//! subscription notifications never wait: a notification that finds the queue full means
//! the subscriber fell behind, and the subscription is closed with a final
//! `shh_subscription` frame carrying an `error` object instead of a `result`. No message is
//! ever skipped silently, and a slow client cannot make the node buffer without bound.
//!
//! Like geth, a subscription's notifications are held back until the response that
//! announced its id has been queued, so a client never sees a notification for an id it
//! does not know yet. Dropping the connection cancels all of its subscriptions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::errors::RpcError;
use crate::node::{Delivered, Push, Receipt, Sink};

/// Frames queued for one WebSocket client.
pub const OUT_QUEUE: usize = 1024;
/// Subscriptions one connection may hold.
pub const MAX_SUBSCRIPTIONS: usize = 256;

/// What cancels a subscription (uninstalls its filter, or unsubscribes upstream). The
/// argument says how it ended: [`Cancel::Unsubscribed`] by the app, or
/// [`Cancel::Dropped`] with its connection (or closed by the server).
pub type Canceller = Box<dyn FnOnce(Cancel) + Send>;

/// How a subscription ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancel {
    /// `shh_unsubscribe`: the app does not want its messages any more.
    Unsubscribed,
    /// The connection went away, or the server closed the subscription: what it would
    /// have received is kept for the next subscription with the same criteria.
    Dropped,
}

/// One outgoing WebSocket frame and the receipts to settle once it is written.
#[derive(Debug)]
pub struct Frame {
    /// The JSON text.
    pub text: String,
    /// Settled after the frame is flushed to the socket.
    pub receipts: Vec<Receipt>,
}

impl Frame {
    /// A frame that hands nothing out.
    pub fn plain(text: String) -> Frame {
        Frame {
            text,
            receipts: Vec::new(),
        }
    }
}

/// A connection.
pub struct Conn {
    ws: Option<WsConn>,
    sidecar: bool,
}

impl Conn {
    /// An HTTP request's context.
    pub fn http() -> Arc<Conn> {
        Self::http_from(false)
    }

    /// An HTTP request's context; `sidecar` if a `dual` sidecar's Whisper side made it
    /// ([`super::peers::CARRIER_HEADER`]).
    pub fn http_from(sidecar: bool) -> Arc<Conn> {
        Arc::new(Conn { ws: None, sidecar })
    }

    /// A WebSocket connection writing to `out`; failures are reported on `ctrl`.
    pub fn websocket(out: mpsc::Sender<Frame>, ctrl: mpsc::Sender<Ctrl>) -> Arc<Conn> {
        Self::websocket_from(out, ctrl, false)
    }

    /// [`Conn::websocket`] for a connection a `dual` sidecar's Whisper side (`sidecar`)
    /// may have opened.
    pub fn websocket_from(
        out: mpsc::Sender<Frame>,
        ctrl: mpsc::Sender<Ctrl>,
        sidecar: bool,
    ) -> Arc<Conn> {
        Arc::new(Conn {
            ws: Some(WsConn {
                out,
                ctrl,
                subs: Mutex::default(),
                sidecar,
            }),
            sidecar,
        })
    }

    /// Whether a `dual` sidecar's Whisper side is calling. It gets messages as geth
    /// marshals them, a Staples DAG carrier left in the padding (an app, or a sidecar
    /// forwarding for an app, gets it stripped): it needs the header to collapse copies.
    pub fn is_sidecar(&self) -> bool {
        self.sidecar
    }

    /// The WebSocket side, if this is one.
    pub fn ws(&self) -> Option<&WsConn> {
        self.ws.as_ref()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(ws) = &self.ws {
            ws.cancel_all();
        }
    }
}

/// Control messages for the connection's writer.
#[derive(Debug)]
pub enum Ctrl {
    /// A subscription was closed by the server; tell the client and forget it.
    Failed {
        /// Subscription id.
        sub: String,
        /// Why.
        reason: String,
    },
}

struct SubEntry {
    cancel: Option<Canceller>,
    state: Arc<SubState>,
}

/// Per-subscription delivery state shared with its sink.
struct SubState {
    /// `Some` until the subscribe response is queued: notifications wait here (bounded).
    held: Mutex<Option<Vec<Frame>>>,
}

/// The WebSocket half of a connection.
pub struct WsConn {
    out: mpsc::Sender<Frame>,
    ctrl: mpsc::Sender<Ctrl>,
    subs: Mutex<HashMap<String, SubEntry>>,
    sidecar: bool,
}

impl WsConn {
    /// Queues a response frame, waiting for room.
    pub async fn send(&self, frame: Frame) -> bool {
        self.out.send(frame).await.is_ok()
    }

    /// A sink that delivers to subscription `sub` (held until [`WsConn::activate`]).
    pub fn sink(&self, sub: &str) -> SubSink {
        SubSink {
            sub: sub.to_string(),
            out: self.out.clone(),
            ctrl: self.ctrl.clone(),
            state: Arc::new(SubState {
                held: Mutex::new(Some(Vec::new())),
            }),
            sidecar: self.sidecar,
        }
    }

    /// Records a subscription and how to cancel it. Refuses (and cancels) past the cap.
    pub fn register_sink(&self, sink: &SubSink, cancel: Canceller) -> Result<(), RpcError> {
        let mut subs = lock(&self.subs);
        if subs.len() >= MAX_SUBSCRIPTIONS {
            drop(subs);
            cancel(Cancel::Unsubscribed);
            return Err(RpcError::server(format!(
                "too many subscriptions on this connection (limit {MAX_SUBSCRIPTIONS})"
            )));
        }
        subs.insert(
            sink.sub.clone(),
            SubEntry {
                cancel: Some(cancel),
                state: sink.state.clone(),
            },
        );
        Ok(())
    }

    /// Releases held notifications of `sub` once its id has been sent to the client.
    pub fn activate(&self, sub: &str) {
        let state = match lock(&self.subs).get(sub) {
            Some(e) => e.state.clone(),
            None => return,
        };
        let mut held = lock(&state.held);
        for frame in held.take().unwrap_or_default() {
            if self.out.try_send(frame).is_err() {
                let _ = self.ctrl.try_send(Ctrl::Failed {
                    sub: sub.to_string(),
                    reason: LAG_REASON.into(),
                });
                break;
            }
        }
    }

    /// `shh_unsubscribe`: true if the subscription existed.
    pub fn unsubscribe(&self, sub: &str) -> bool {
        self.end(sub, Cancel::Unsubscribed)
    }

    /// Forgets a subscription the server closed (it fell behind): its filter is detached
    /// and keeps what it gets for the next subscription with the same criteria.
    pub fn forget(&self, sub: &str) {
        self.end(sub, Cancel::Dropped);
    }

    fn end(&self, sub: &str, how: Cancel) -> bool {
        let entry = lock(&self.subs).remove(sub);
        match entry {
            Some(mut e) => {
                if let Some(c) = e.cancel.take() {
                    c(how);
                }
                true
            }
            None => false,
        }
    }

    fn cancel_all(&self) {
        let all: Vec<SubEntry> = lock(&self.subs).drain().map(|(_, e)| e).collect();
        for mut e in all {
            if let Some(c) = e.cancel.take() {
                c(Cancel::Dropped);
            }
        }
    }

    /// Number of live subscriptions.
    pub fn subscriptions(&self) -> usize {
        lock(&self.subs).len()
    }
}

pub use crate::node::LAG_REASON;

/// Delivers notifications of one subscription into its connection's queue.
#[derive(Clone)]
pub struct SubSink {
    sub: String,
    out: mpsc::Sender<Frame>,
    ctrl: mpsc::Sender<Ctrl>,
    state: Arc<SubState>,
    /// A `dual` sidecar's Whisper side subscribed: notifications keep the DAG carrier.
    sidecar: bool,
}

impl SubSink {
    /// Another handle on the same subscription (for registering it after handing the sink
    /// to the node).
    pub fn handle(&self) -> SubSink {
        self.clone()
    }

    /// The subscription id.
    pub fn id(&self) -> &str {
        &self.sub
    }

    /// Offers one `result` (JSON text) for this subscription.
    pub fn push_result(&self, result: &str) -> Push {
        self.push_frame(Frame::plain(notification(&self.sub, result)))
    }

    fn push_frame(&self, frame: Frame) -> Push {
        let mut held = lock(&self.state.held);
        if let Some(buf) = held.as_mut() {
            if buf.len() >= OUT_QUEUE {
                return Push::Full;
            }
            buf.push(frame);
            return Push::Queued;
        }
        drop(held);
        match self.out.try_send(frame) {
            Ok(()) => Push::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => Push::Full,
            Err(mpsc::error::TrySendError::Closed(_)) => Push::Closed,
        }
    }

    /// Closes the subscription with an error notification.
    pub fn close_with(&self, reason: &str) {
        // The ctrl queue holds one entry per subscription at most, so it cannot be full
        // unless the connection is already gone.
        let _ = self.ctrl.try_send(Ctrl::Failed {
            sub: self.sub.clone(),
            reason: reason.to_string(),
        });
    }
}

impl Sink for SubSink {
    fn push(&self, message: &Arc<Delivered>, receipt: Receipt) -> Push {
        self.push_frame(Frame {
            text: notification(&self.sub, &message.json_for(self.sidecar)),
            receipts: vec![receipt],
        })
    }

    fn fail(&self, reason: &str) {
        self.close_with(reason);
    }
}

/// A `shh_subscription` notification frame.
pub fn notification(sub: &str, result: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","method":"shh_subscription","params":{{"subscription":"{sub}","result":{result}}}}}"#
    )
}

/// The final frame of a subscription the server closed.
pub fn failure_notification(sub: &str, reason: &str) -> String {
    let err = RpcError::server(reason);
    let err = serde_json::to_string(&err).unwrap_or_else(|_| "{}".into());
    format!(
        r#"{{"jsonrpc":"2.0","method":"shh_subscription","params":{{"subscription":"{sub}","error":{err}}}}}"#
    )
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn notifications_wait_for_activation_and_lag_closes_the_subscription() {
        let (out_tx, mut out_rx) = mpsc::channel(2);
        let (ctrl_tx, mut ctrl_rx) = mpsc::channel(MAX_SUBSCRIPTIONS);
        let conn = Conn::websocket(out_tx, ctrl_tx);
        let ws = conn.ws().expect("ws");
        let sink = ws.sink("0x1");
        let cancelled = Arc::new(Mutex::new(false));
        let c = cancelled.clone();
        ws.register_sink(&sink, Box::new(move |_| *lock(&c) = true))
            .expect("registers");
        assert_eq!(sink.push_result("1"), Push::Queued);
        assert!(out_rx.try_recv().is_err(), "held until activated");
        ws.activate("0x1");
        assert!(
            out_rx
                .try_recv()
                .expect("frame")
                .text
                .contains(r#""result":1"#)
        );
        assert_eq!(sink.push_result("2"), Push::Queued);
        assert_eq!(sink.push_result("3"), Push::Queued);
        assert_eq!(sink.push_result("4"), Push::Full, "queue of 2 is full");
        sink.fail(LAG_REASON);
        assert!(matches!(ctrl_rx.try_recv(), Ok(Ctrl::Failed { sub, .. }) if sub == "0x1"));
        drop(conn);
        assert!(
            *lock(&cancelled),
            "dropping the connection cancels subscriptions"
        );
    }

    #[test]
    fn failure_frame_shape() {
        assert_eq!(
            failure_notification("0xab", "boom"),
            r#"{"jsonrpc":"2.0","method":"shh_subscription","params":{"subscription":"0xab","error":{"code":-32000,"message":"boom"}}}"#
        );
    }
}
