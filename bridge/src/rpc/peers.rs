//! Which other sidecars count as this node's peers, for `net_peerCount`.
//!
//! geth answers `net_peerCount` with its devp2p peers, and Status apps show "offline" at
//! zero. A local Whisper node has no devp2p peers: its peers are the other `staples`
//! sidecars that use it as their upstream (`--whisper-rpc`). Each such sidecar names itself
//! in a [`NODE_HEADER`] on every request: it counts while one of its WebSocket connections
//! is open, or for [`SEEN_FOR`] after its last HTTP request (an upstream-mode sidecar calls
//! at least every [`HEARTBEAT`], see [`crate::upstream`]). Apps send no such header and are
//! not peers.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The request header a sidecar names itself with (a random id per process).
pub const NODE_HEADER: &str = "x-staples-node";
/// The request header with which a `dual` sidecar's Whisper side asks for messages with
/// their Staples DAG carrier left in the padding (value `keep`): it needs the header to
/// collapse copies, where an app must see it stripped.
pub const CARRIER_HEADER: &str = "x-staples-carrier";
/// How long an HTTP-only sidecar counts after its last request.
pub const SEEN_FOR: Duration = Duration::from_secs(60);
/// How often an upstream-mode sidecar calls its upstream when idle.
pub const HEARTBEAT: Duration = Duration::from_secs(20);
/// Longest node id kept (a header is client data; ids are 32 hex characters).
const MAX_ID: usize = 64;
/// Most sidecars remembered (a client cannot grow the map without bound).
const MAX_PEERS: usize = 4096;

/// Sidecars seen recently or connected now.
#[derive(Debug, Default)]
pub struct SidecarPeers {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Last HTTP request per node id.
    seen: HashMap<String, Instant>,
    /// Open WebSocket connections per node id.
    open: HashMap<String, usize>,
}

impl SidecarPeers {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A request named `id` arrived at `now`.
    pub fn seen(&self, id: &str, now: Instant) {
        if !valid(id) {
            return;
        }
        let mut g = self.lock();
        if g.seen.len() >= MAX_PEERS && !g.seen.contains_key(id) {
            g.seen.retain(|_, t| now.duration_since(*t) < SEEN_FOR);
            if g.seen.len() >= MAX_PEERS {
                return;
            }
        }
        g.seen.insert(id.to_string(), now);
    }

    /// A WebSocket named `id` opened; it counts until the guard is dropped.
    pub fn connected(self: &std::sync::Arc<Self>, id: &str) -> Option<Connected> {
        if !valid(id) {
            return None;
        }
        let mut g = self.lock();
        if g.open.len() >= MAX_PEERS && !g.open.contains_key(id) {
            return None;
        }
        *g.open.entry(id.to_string()).or_default() += 1;
        Some(Connected {
            peers: self.clone(),
            id: id.to_string(),
        })
    }

    /// Distinct sidecars connected now or seen within [`SEEN_FOR`] of `now`.
    pub fn count(&self, now: Instant) -> usize {
        let mut g = self.lock();
        g.seen.retain(|_, t| now.duration_since(*t) < SEEN_FOR);
        let recent = g.seen.keys().filter(|id| !g.open.contains_key(*id)).count();
        recent + g.open.len()
    }
}

fn valid(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// An open WebSocket of a sidecar; stops counting when dropped.
#[derive(Debug)]
pub struct Connected {
    peers: std::sync::Arc<SidecarPeers>,
    id: String,
}

impl Drop for Connected {
    fn drop(&mut self) {
        let mut g = self.peers.lock();
        if let Some(n) = g.open.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                g.open.remove(&self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn sidecars_count_while_connected_or_recently_seen_and_once_each() {
        let p = Arc::new(SidecarPeers::default());
        let t0 = Instant::now();
        assert_eq!(p.count(t0), 0);
        p.seen("a1", t0);
        p.seen("a1", t0);
        let ws = p.connected("b2").expect("valid id");
        let ws2 = p.connected("b2").expect("valid id");
        p.seen("b2", t0);
        assert_eq!(p.count(t0), 2, "a1 over HTTP, b2 over two sockets and HTTP");
        assert_eq!(
            p.count(t0 + SEEN_FOR),
            1,
            "a1 went quiet; b2 is still connected"
        );
        drop(ws);
        assert_eq!(p.count(t0 + SEEN_FOR), 1, "b2 has another socket");
        drop(ws2);
        assert_eq!(p.count(t0 + SEEN_FOR), 0);
        p.seen("", t0);
        p.seen("not valid!", t0);
        p.seen(&"x".repeat(65), t0);
        assert!(p.connected("bad id").is_none());
        assert_eq!(p.count(t0), 0, "malformed ids are ignored");
    }
}
