//! Staples as a Whisper peer: devp2p sessions (RLPx + `shh/6`, codecs in
//! `staples_protocol::devp2p`) between the local Whisper node's pool and other Whisper
//! nodes (geth, status-go, another `staples`).
//!
//! `--whisper-peer enode://…` (repeatable) dials static peers and redials them with
//! backoff; `--p2p-addr` listens for peers (loopback unless told otherwise, like the RPC).
//! Each session ([`peer`]) admits the envelopes its peer sends into the pool (geth's rules;
//! the node's filters get them as from any post) and offers the peer, every 300 ms, the
//! pooled envelopes it has not seen that match its bloom and PoW, as geth's broadcast
//! loop does. The node key lives in the encrypted keystore.
//!
//! Available with the local Whisper node (`--transport=whisper` without `--whisper-rpc`).

pub mod embedded;
mod peer;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::mpsc;

use staples_protocol::crypto::{PrivateKey, PublicKey, keccak256};
use staples_protocol::devp2p::handshake::from_node_id;
use staples_protocol::whisper::Envelope;

use crate::keystore::Keystore;
use crate::node::LocalNode;
use crate::rpc::shh_local::ShhService;

/// The service sessions feed.
pub type Service = ShhService<LocalNode, Keystore>;

/// Errors of the devp2p layer.
#[derive(Debug, thiserror::Error)]
pub enum Devp2pError {
    /// An `enode://` URL that does not parse.
    #[error("bad enode URL {0}: {1}")]
    Enode(String, &'static str),
    /// The socket failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The peer broke the protocol (handshake, frames, `p2p` messages).
    #[error("protocol: {0}")]
    Protocol(String),
    /// The peer broke `shh/6` (a malformed or oversized message, a flood): geth and
    /// status-go drop it with "subprotocol error".
    #[error("shh: {0}")]
    Subprotocol(String),
    /// Nothing arrived for [`peer::READ_TIMEOUT`].
    #[error("read timeout")]
    ReadTimeout,
    /// The peer said goodbye.
    #[error("peer disconnected (reason {0:?})")]
    Disconnected(Option<u64>),
}

/// A peer's address and key, from its `enode://<id>@<ip>:<port>` URL.
#[derive(Debug, Clone)]
pub struct Enode {
    /// Its node key.
    pub key: PublicKey,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Enode {
    /// Parses `enode://<128 hex>@<ip>:<port>[?discport=…]`.
    pub fn parse(url: &str) -> Result<Enode, Devp2pError> {
        let bad = |why| Devp2pError::Enode(url.to_string(), why);
        let rest = url
            .strip_prefix("enode://")
            .ok_or_else(|| bad("not enode://"))?;
        let (id, host) = rest.split_once('@').ok_or_else(|| bad("no @host"))?;
        let host = host.split('?').next().unwrap_or(host);
        let bytes = hex::decode(id).map_err(|_| bad("id is not hex"))?;
        let id = <[u8; 64]>::try_from(bytes.as_slice()).map_err(|_| bad("id is not 64 bytes"))?;
        let key = from_node_id(&id).map_err(|_| bad("id is not a public key"))?;
        let addr = host.parse().map_err(|_| bad("host is not ip:port"))?;
        Ok(Enode { key, addr })
    }
}

/// Sessions, for `net_peerCount` and `admin_peers`, and what happened to them.
#[derive(Default)]
pub struct Peers {
    live: Mutex<HashMap<[u8; 64], Live>>,
    counters: Mutex<std::collections::BTreeMap<&'static str, u64>>,
}

/// A session as the rest of the node reaches it.
struct Live {
    info: PeerInfo,
    /// geth's `Peer.trusted`: its peer-to-peer messages (code 127) reach our filters.
    trusted: Arc<AtomicBool>,
    /// What to send it on the node's behalf.
    direct: mpsc::Sender<Outgoing>,
}

/// What a session sends its peer on behalf of the rest of the node.
#[derive(Debug)]
pub enum Outgoing {
    /// `shh_post` with `targetPeer`: one envelope, code 127 (geth's `SendP2PDirect`).
    Direct(Envelope),
    /// A mailserver's answer: a list of envelopes, code 127 (status-go's
    /// `SendRawP2PDirect`).
    Mail(Vec<Envelope>),
    /// A mailserver's request-complete payload, code 125.
    Completion(Vec<u8>),
}

/// Answers the mailserver requests (code 126) that peers send (`--mailserver`).
pub trait MailServer: Send + Sync + 'static {
    /// Serves `request` from the peer with node key `peer`, sending the answer through
    /// `reply` (the session's queue: when the peer leaves mid-answer, sends fail and
    /// serving stops).
    fn serve(
        self: Arc<Self>,
        peer: PublicKey,
        request: Envelope,
        reply: mpsc::Sender<Outgoing>,
    ) -> BoxFuture<'static, ()>;

    /// The answer to a request refused before it is served (the peer asks faster than
    /// [`MAIL_INTERVAL`]): status-go's `ERROR=` completion.
    fn refusal(&self, request: &Envelope, why: &str) -> Vec<u8>;
}

/// Shortest time between two mailserver requests of one peer (status-go's
/// `MailServerRateLimit`, in seconds there; a request sooner is answered with
/// `rate limit exceeded`).
pub const MAIL_INTERVAL: Duration = Duration::from_secs(1);

/// Why a direct send or a trust mark found no session (geth's error, with its id).
#[derive(Debug, thiserror::Error)]
#[error("Could not find peer with ID: {0}")]
pub struct NoPeer(pub String);

/// What `admin_peers` shows of a session.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PeerInfo {
    /// geth's id for it: keccak256 of its node key, hex.
    pub id: String,
    /// Its `enode://` URL.
    pub enode: String,
    /// Its client name.
    pub name: String,
    /// Its capabilities, `name/version`.
    pub caps: Vec<String>,
    /// Whether it dialled us.
    pub inbound: bool,
}

impl Peers {
    /// Sessions up now.
    pub fn count(&self) -> usize {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Counts `what` (`n` times).
    pub fn count_n(&self, what: &'static str, n: u64) {
        *self
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(what)
            .or_default() += n;
    }

    /// The counters.
    pub fn counters(&self) -> std::collections::BTreeMap<&'static str, u64> {
        self.counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Their descriptions.
    pub fn list(&self) -> Vec<PeerInfo> {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|l| l.info.clone())
            .collect()
    }

    /// The session with peer `id` (hex keccak256 of its node key, geth's `enode.ID`, as
    /// its [`PeerInfo::id`] holds it).
    fn find<T>(&self, id: &str, f: impl FnOnce(&Live) -> T) -> Result<T, NoPeer> {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.values()
            .find(|l| l.info.id == id)
            .map(f)
            .ok_or_else(|| NoPeer(id.to_string()))
    }

    /// `shh_markTrustedPeer`: peer `id` may send us peer-to-peer messages from now on
    /// (until its session ends, as in geth).
    pub fn mark_trusted(&self, id: &str) -> Result<(), NoPeer> {
        self.find(id, |l| l.trusted.store(true, Ordering::Relaxed))
    }

    /// `shh_post` with `targetPeer`: `env` goes to peer `id` alone, as a peer-to-peer
    /// message (no PoW or expiry check; it is not pooled). Queued for its session; a
    /// session whose queue is full drops it, as a slow TCP peer would have.
    pub fn send_direct(&self, id: &str, env: Envelope) -> Result<(), NoPeer> {
        let sent = self.find(id, |l| l.direct.try_send(Outgoing::Direct(env)).is_ok())?;
        if !sent {
            self.count_n("direct_dropped", 1);
        }
        Ok(())
    }

    /// Registers a session that is up.
    fn up(
        &self,
        id: [u8; 64],
        info: PeerInfo,
    ) -> (
        Arc<AtomicBool>,
        mpsc::Sender<Outgoing>,
        mpsc::Receiver<Outgoing>,
    ) {
        let trusted = Arc::new(AtomicBool::new(false));
        let (direct, rx) = mpsc::channel(DIRECT_QUEUE);
        self.live.lock().unwrap_or_else(|p| p.into_inner()).insert(
            id,
            Live {
                info,
                trusted: trusted.clone(),
                direct: direct.clone(),
            },
        );
        (trusted, direct, rx)
    }

    fn down(&self, id: &[u8; 64]) {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

/// Direct envelopes waiting for one session.
const DIRECT_QUEUE: usize = 1024;

/// The devp2p side of a sidecar.
pub struct Devp2p {
    key: Arc<PrivateKey>,
    svc: Arc<Service>,
    node: Arc<LocalNode>,
    /// Live sessions (shared with the `shh` service, for `targetPeer` and trust marks).
    pub peers: Arc<Peers>,
    port: u16,
    /// Envelopes per second one peer may send (0: no limit).
    envelope_rate: u32,
    /// Serves mailserver requests, with `--mailserver`.
    mail: Option<Arc<dyn MailServer>>,
    /// Where we listen, if we do.
    listening: Mutex<Option<SocketAddr>>,
}

/// Envelopes per second a peer may send by default (`--p2p-envelope-rate`).
pub const DEFAULT_ENVELOPE_RATE: u32 = 1000;

/// First wait before redialling a static peer; doubles to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

impl Devp2p {
    /// The devp2p side over `svc` (and its node), with node key `key`, listening at
    /// `listening` (announced in `Hello`) if at all; its sessions register in `peers`.
    fn new(
        key: Arc<PrivateKey>,
        svc: Arc<Service>,
        peers: Arc<Peers>,
        listening: Option<SocketAddr>,
        envelope_rate: u32,
        mail: Option<Arc<dyn MailServer>>,
    ) -> Arc<Self> {
        Arc::new(Devp2p {
            key,
            node: svc.node().clone(),
            svc,
            peers,
            envelope_rate,
            mail,
            port: listening.map_or(0, |a| a.port()),
            listening: Mutex::new(listening),
        })
    }

    /// Starts the devp2p side: listens at `listen` (if given) and dials each of `peers`
    /// (`enode://` URLs) forever, taking at most `envelope_rate` envelopes per second
    /// from each peer and answering mailserver requests with `mail`; returns it and its
    /// tasks. Bad URLs and a refused bind fail here, before anything runs.
    pub async fn start(
        key: Arc<PrivateKey>,
        svc: Arc<Service>,
        peers: Arc<Peers>,
        listen: Option<SocketAddr>,
        dial: &[String],
        envelope_rate: u32,
        mail: Option<Arc<dyn MailServer>>,
    ) -> Result<(Arc<Self>, Vec<tokio::task::JoinHandle<()>>), Devp2pError> {
        let static_peers = dial
            .iter()
            .map(|url| Enode::parse(url))
            .collect::<Result<Vec<_>, _>>()?;
        let listener = match listen {
            Some(a) => Some(tokio::net::TcpListener::bind(a).await?),
            None => None,
        };
        let at = listener.as_ref().and_then(|l| l.local_addr().ok());
        let d = Devp2p::new(key, svc, peers, at, envelope_rate, mail);
        let mut tasks = Vec::new();
        if let (Some(l), Some(a)) = (listener, at) {
            tracing::info!(enode = %d.enode(a), "devp2p: listening");
            tasks.push(tokio::spawn(d.clone().listen(l)));
        }
        for peer in static_peers {
            tasks.push(tokio::spawn(d.clone().dial_forever(peer)));
        }
        Ok((d, tasks))
    }

    /// Our `enode://` URL at `addr`.
    pub fn enode(&self, addr: SocketAddr) -> String {
        format!(
            "enode://{}@{addr}",
            hex::encode(staples_protocol::devp2p::handshake::node_id(
                &self.key.public_key()
            ))
        )
    }

    /// Keeps a session with static peer `peer` until aborted, redialling with backoff.
    pub async fn dial_forever(self: Arc<Self>, peer: Enode) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            match tokio::net::TcpStream::connect(peer.addr).await {
                Ok(stream) => {
                    let started = std::time::Instant::now();
                    if let Err(e) = peer::run(self.clone(), stream, Some(peer.key)).await {
                        tracing::info!(peer = %peer.addr, error = %e, "devp2p session ended");
                    }
                    self.peers.count_n("sessions_ended", 1);
                    // A session that lasted is not a failing peer.
                    if started.elapsed() > MAX_BACKOFF {
                        backoff = FIRST_BACKOFF;
                    }
                }
                Err(e) => tracing::debug!(peer = %peer.addr, error = %e, "devp2p dial failed"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// `admin_nodeInfo`, in part: our enode URL (if listening) and client name.
    pub fn node_info(&self) -> serde_json::Value {
        let addr = *self.listening.lock().unwrap_or_else(|p| p.into_inner());
        serde_json::json!({
            "enode": addr.map(|a| self.enode(a)),
            // geth's enode.ID: keccak256 of the node key.
            "id": hex::encode(keccak256(staples_protocol::devp2p::handshake::node_id(&self.key.public_key()))),
            "name": peer::CLIENT,
            "protocols": {"shh": {"version": "6.0"}},
            // Not geth's: what Staples' sessions did (handshakes failed, protocol errors,
            // envelopes in, refused and out).
            "staples": {"peers": self.peers.count(), "counters": self.peers.counters()},
        })
    }

    /// Accepts peers on `listener` until aborted.
    pub async fn listen(self: Arc<Self>, listener: tokio::net::TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, from)) => {
                    let me = self.clone();
                    tokio::spawn(async move {
                        if let Err(e) = peer::run(me.clone(), stream, None).await {
                            tracing::info!(peer = %from, error = %e, "devp2p session ended");
                        }
                        me.peers.count_n("sessions_ended", 1);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "devp2p accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enode_urls_parse_and_bad_ones_say_why() {
        let key = PrivateKey::from_bytes(&[5; 32]).expect("key").public_key();
        let id = hex::encode(staples_protocol::devp2p::handshake::node_id(&key));
        let e = Enode::parse(&format!("enode://{id}@127.0.0.1:30303?discport=0")).expect("parses");
        assert_eq!(e.addr, "127.0.0.1:30303".parse().expect("addr"));
        assert!(matches!(
            Enode::parse("enode://ab@127.0.0.1:1"),
            Err(Devp2pError::Enode(_, "id is not 64 bytes"))
        ));
        assert!(Enode::parse(&format!("enode://{id}@nowhere")).is_err());
    }
}
