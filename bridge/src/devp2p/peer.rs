//! One devp2p session: the RLPx handshake (as initiator or recipient), `Hello`s, the `shh/6`
//! status exchange, then envelopes both ways until either side leaves.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use staples_protocol::crypto::{PrivateKey, PublicKey};
use staples_protocol::devp2p::frame::FrameCodec;
use staples_protocol::devp2p::handshake::{Initiator, Secrets, node_id, respond};
use staples_protocol::devp2p::p2p::{self, BASE_PROTOCOL_LENGTH, Capability, Hello};
use staples_protocol::devp2p::shh::{self, BLOOM_SIZE, Message, Status};
use staples_protocol::whisper::{Envelope, EnvelopeHash};

use super::{Devp2p, Devp2pError, MAIL_INTERVAL, Outgoing, PeerInfo};
use crate::node::Node;

/// Our client name in `Hello`.
pub(super) const CLIENT: &str = concat!("Staples/v", env!("CARGO_PKG_VERSION"));
/// geth's broadcast cycle.
const BROADCAST: Duration = Duration::from_millis(300);
/// A ping this often keeps idle sessions up (geth pings every 15 s).
const PING: Duration = Duration::from_secs(15);
/// A session with nothing to read for this long is dropped (geth: 30 s, with a ping
/// every 15 s).
pub(super) const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// geth's disconnect reasons we send.
const PROTOCOL_ERROR: u64 = 2;
const USELESS_PEER: u64 = 3;
const READ_TIMED_OUT: u64 = 11;
const SUBPROTOCOL_ERROR: u64 = 0x10;
/// Batches over the envelope rate a peer may send before it is dropped (status-go's
/// `RateLimitTolerance`).
const FLOOD_TOLERANCE: u32 = 10;
/// Seconds of the envelope rate a peer may send at once.
const BURST_SECONDS: f64 = 5.0;
/// How long each handshake step may take.
const STEP: Duration = Duration::from_secs(10);
/// Envelope hashes remembered per peer (what it has, or was sent).
const KNOWN: usize = 100_000;

fn protocol(e: impl std::fmt::Display) -> Devp2pError {
    Devp2pError::Protocol(e.to_string())
}

/// Runs a session on `stream`; `remote` is the key we dialled (`None`: it dialled us).
pub(super) async fn run(
    me: Arc<Devp2p>,
    mut stream: TcpStream,
    remote: Option<PublicKey>,
) -> Result<(), Devp2pError> {
    stream.set_nodelay(true)?;
    let secrets = match tokio::time::timeout(STEP, handshake(&me.key, &mut stream, remote)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            me.peers.count_n("handshake_failed", 1);
            return Err(e);
        }
        Err(_) => {
            me.peers.count_n("handshake_failed", 1);
            return Err(protocol("handshake timed out"));
        }
    };
    let peer_key = secrets.remote;
    let peer_id = node_id(&peer_key);
    let mut s = Session {
        codec: FrameCodec::new(secrets),
        stream,
        buf: Vec::new(),
    };
    let ours = Hello::ours(
        CLIENT,
        vec![Capability {
            name: "shh".into(),
            version: shh::VERSION,
        }],
        me.port,
        &me.key.public_key(),
    );
    s.send(p2p::HELLO, &ours.encode()).await?;
    let (code, payload) = tokio::time::timeout(STEP, s.recv())
        .await
        .map_err(|_| protocol("no hello"))??;
    if code != p2p::HELLO {
        return Err(protocol(format!("expected hello, got code {code}")));
    }
    let theirs = Hello::decode(&payload).map_err(protocol)?;
    if theirs.id != peer_id {
        return Err(protocol("hello names another node than the handshake"));
    }
    if !theirs
        .capabilities
        .iter()
        .any(|c| c.name == "shh" && c.version == shh::VERSION)
    {
        let _ = s
            .send(p2p::DISCONNECT, &p2p::disconnect(USELESS_PEER))
            .await;
        return Err(protocol("peer does not speak shh/6"));
    }
    let pow = me.node.info().min_pow;
    let status = Status::ours(pow, [0xff; BLOOM_SIZE], false);
    s.send(BASE_PROTOCOL_LENGTH + shh::STATUS, &status.encode())
        .await?;
    let info = PeerInfo {
        id: hex::encode(staples_protocol::crypto::keccak256(peer_id)),
        enode: format!("enode://{}@{}", hex::encode(peer_id), s.stream.peer_addr()?),
        name: theirs.client.clone(),
        caps: theirs
            .capabilities
            .iter()
            .map(|c| format!("{}/{}", c.name, c.version))
            .collect(),
        inbound: remote.is_none(),
    };
    let (trusted, outbox, direct) = me.peers.up(peer_id, info);
    tracing::info!(peer = %theirs.client, "devp2p peer up");
    me.peers.count_n("sessions", 1);
    let mut remote = Remote {
        pow: 0.0,
        bloom: None,
        known: Default::default(),
        trusted,
        key: peer_key,
        direct,
        outbox,
        last_request: None,
        budget: Budget::new(me.envelope_rate),
        floods: 0,
    };
    let r = serve(&me, &mut s, &mut remote).await;
    // Tell the peer why, as geth does, where it is our decision.
    let reason = match &r {
        Err(Devp2pError::Protocol(_)) => Some((PROTOCOL_ERROR, "protocol_errors")),
        Err(Devp2pError::Subprotocol(_)) => Some((SUBPROTOCOL_ERROR, "shh_errors")),
        Err(Devp2pError::ReadTimeout) => Some((READ_TIMED_OUT, "read_timeouts")),
        _ => None,
    };
    if let Some((reason, counter)) = reason {
        me.peers.count_n(counter, 1);
        let _ = s.send(p2p::DISCONNECT, &p2p::disconnect(reason)).await;
    }
    me.peers.down(&peer_id);
    r
}

async fn handshake(
    key: &PrivateKey,
    stream: &mut TcpStream,
    remote: Option<PublicKey>,
) -> Result<Secrets, Devp2pError> {
    let copy = PrivateKey::from_bytes(&key.to_bytes()).map_err(protocol)?;
    match remote {
        Some(remote) => {
            let (init, auth) = Initiator::new(copy, remote, &mut rand::rngs::OsRng);
            stream.write_all(&auth).await?;
            let ack = read_packet(stream).await?;
            Ok(init.finish(&ack).map_err(protocol)?.0)
        }
        None => {
            let auth = read_packet(stream).await?;
            let (secrets, ack, _) =
                respond(&copy, &auth, &mut rand::rngs::OsRng).map_err(protocol)?;
            stream.write_all(&ack).await?;
            Ok(secrets)
        }
    }
}

/// A size-prefixed handshake packet.
async fn read_packet(stream: &mut TcpStream) -> Result<Vec<u8>, Devp2pError> {
    let mut size = [0u8; 2];
    stream.read_exact(&mut size).await?;
    let n = usize::from(u16::from_be_bytes(size));
    if n > staples_protocol::devp2p::handshake::MAX_PACKET {
        return Err(protocol("handshake packet too large"));
    }
    let mut packet = size.to_vec();
    packet.resize(2 + n, 0);
    stream.read_exact(&mut packet[2..]).await?;
    Ok(packet)
}

struct Session {
    codec: FrameCodec,
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Session {
    async fn send(&mut self, code: u64, payload: &[u8]) -> Result<(), Devp2pError> {
        let frame = self.codec.write(code, payload).map_err(protocol)?;
        self.stream.write_all(&frame).await?;
        Ok(())
    }

    /// The next whole message.
    async fn recv(&mut self) -> Result<(u64, Vec<u8>), Devp2pError> {
        loop {
            if let Some(m) = self.poll()? {
                return Ok(m);
            }
            self.fill().await?;
        }
    }

    /// A message already buffered, if any.
    fn poll(&mut self) -> Result<Option<(u64, Vec<u8>)>, Devp2pError> {
        loop {
            let r = self.codec.read(&self.buf).map_err(protocol)?;
            self.buf.drain(..r.consumed);
            if r.message.is_some() || r.consumed == 0 {
                return Ok(r.message);
            }
        }
    }

    async fn fill(&mut self) -> Result<(), Devp2pError> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(protocol("connection closed"));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

/// What we know of the peer after its status.
struct Remote {
    pow: f64,
    bloom: Option<[u8; BLOOM_SIZE]>,
    known: crate::recent::Recent<KNOWN>,
    /// Set by `shh_markTrustedPeer`.
    trusted: Arc<AtomicBool>,
    /// Its node key (a mailserver request must be signed with it).
    key: PublicKey,
    /// What the node sends it: `shh_post` with `targetPeer`, mailserver answers.
    direct: tokio::sync::mpsc::Receiver<Outgoing>,
    /// The sending side of `direct`, for mailserver answers.
    outbox: tokio::sync::mpsc::Sender<Outgoing>,
    /// When it last sent a mailserver request.
    last_request: Option<tokio::time::Instant>,
    /// Envelopes it may still send now.
    budget: Budget,
    /// Batches that went over the budget.
    floods: u32,
}

/// A token bucket of envelopes: `rate` per second, up to [`BURST_SECONDS`] of them.
struct Budget {
    rate: f64,
    tokens: f64,
    at: tokio::time::Instant,
}

impl Budget {
    fn new(rate: u32) -> Self {
        let rate = f64::from(rate);
        Budget {
            rate,
            tokens: rate * BURST_SECONDS,
            at: tokio::time::Instant::now(),
        }
    }

    /// How many of `n` envelopes arriving now fit (all of them without a limit).
    fn take(&mut self, n: usize) -> usize {
        if self.rate == 0.0 {
            return n;
        }
        let now = tokio::time::Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.rate * BURST_SECONDS);
        self.at = now;
        let fit = (self.tokens.floor() as usize).min(n);
        self.tokens -= fit as f64;
        fit
    }
}

impl Remote {
    /// Whether the peer has `h` already; from now on it does.
    fn knows(&mut self, h: EnvelopeHash) -> bool {
        !self.known.insert(h.0)
    }

    /// Whether the peer wants an envelope (geth's `bloomMatch` and PoW check).
    fn wants(&self, env: &Envelope, pow: f64) -> bool {
        if pow < self.pow {
            return false;
        }
        match &self.bloom {
            None => true,
            Some(b) => {
                let e = env.topic.bloom().0;
                e.iter().zip(b.iter()).all(|(x, f)| x & f == *x)
            }
        }
    }
}

async fn serve(me: &Devp2p, s: &mut Session, remote: &mut Remote) -> Result<(), Devp2pError> {
    let mut broadcast = tokio::time::interval(BROADCAST);
    let mut ping = tokio::time::interval(PING);
    ping.tick().await;
    let mut last_read = tokio::time::Instant::now();
    loop {
        // Everything already buffered first.
        while let Some((code, payload)) = s.poll()? {
            handle(me, s, remote, code, &payload).await?;
        }
        let mut chunk = [0u8; 16 * 1024];
        tokio::select! {
            n = s.stream.read(&mut chunk) => {
                let n = n?;
                if n == 0 {
                    return Err(protocol("connection closed"));
                }
                last_read = tokio::time::Instant::now();
                s.buf.extend_from_slice(&chunk[..n]);
            }
            _ = tokio::time::sleep_until(last_read + READ_TIMEOUT) => {
                return Err(Devp2pError::ReadTimeout);
            }
            _ = broadcast.tick() => gossip(me, s, remote).await?,
            Some(out) = remote.direct.recv() => match out {
                // geth's SendP2PDirect: one envelope, not a list.
                Outgoing::Direct(env) => {
                    me.peers.count_n("direct_out", 1);
                    s.send(BASE_PROTOCOL_LENGTH + shh::P2P_MESSAGE, &env.encode()).await?;
                }
                Outgoing::Mail(envs) => {
                    me.peers.count_n("mail_envelopes_out", envs.len() as u64);
                    s.send(
                        BASE_PROTOCOL_LENGTH + shh::P2P_MESSAGE,
                        &shh::encode_envelopes(&envs),
                    )
                    .await?;
                }
                Outgoing::Completion(payload) => {
                    s.send(
                        BASE_PROTOCOL_LENGTH + shh::REQUEST_COMPLETE,
                        &shh::encode_request_complete(&payload),
                    )
                    .await?;
                }
            },
            _ = ping.tick() => s.send(p2p::PING, &p2p::EMPTY_LIST).await?,
        }
    }
}

async fn handle(
    me: &Devp2p,
    s: &mut Session,
    remote: &mut Remote,
    code: u64,
    payload: &[u8],
) -> Result<(), Devp2pError> {
    match code {
        p2p::PING => return s.send(p2p::PONG, &p2p::EMPTY_LIST).await,
        p2p::PONG => return Ok(()),
        p2p::DISCONNECT => {
            me.peers.count_n("disconnected_by_peer", 1);
            return Err(Devp2pError::Disconnected(p2p::disconnect_reason(payload)));
        }
        c if c < BASE_PROTOCOL_LENGTH => return Ok(()),
        // geth reads peer-to-peer messages only from a trusted peer, and requests only
        // with a mailserver; otherwise they are skipped undecoded.
        c if c == BASE_PROTOCOL_LENGTH + shh::P2P_MESSAGE
            && !remote.trusted.load(Ordering::Relaxed) =>
        {
            me.peers.count_n("direct_untrusted", 1);
            return Ok(());
        }
        c if c == BASE_PROTOCOL_LENGTH + shh::P2P_REQUEST && me.mail.is_none() => {
            me.peers.count_n("mail_requests_unserved", 1);
            return Ok(());
        }
        _ => {}
    }
    // geth's MaxMessageSize check, before decoding.
    let max = me.node.info().max_message_size as usize;
    if payload.len() > max {
        return Err(Devp2pError::Subprotocol(format!(
            "oversized message received ({} > {max} bytes)",
            payload.len()
        )));
    }
    let message = shh::decode(code - BASE_PROTOCOL_LENGTH, payload)
        .map_err(|e| Devp2pError::Subprotocol(e.to_string()))?;
    match message {
        Message::Status(st) => {
            if st.version != shh::VERSION {
                return Err(protocol(format!("shh version {}", st.version)));
            }
            remote.pow = st.pow.unwrap_or(0.0);
            remote.bloom = st.bloom;
        }
        Message::PowRequirement(p) => remote.pow = p,
        Message::Bloom(b) => remote.bloom = Some(b),
        Message::Messages(mut envs) => {
            me.peers.count_n("envelopes_in", envs.len() as u64);
            let fit = remote.budget.take(envs.len());
            if fit < envs.len() {
                // Over the rate: the excess is dropped (the sender's gossip offers it
                // again later if it still matters); a peer that keeps at it is dropped.
                me.peers
                    .count_n("envelopes_over_rate", (envs.len() - fit) as u64);
                envs.truncate(fit);
                remote.floods += 1;
                if remote.floods >= FLOOD_TOLERANCE {
                    me.peers.count_n("flood_disconnects", 1);
                    return Err(Devp2pError::Subprotocol("rate limit exceeded".into()));
                }
            }
            for env in envs {
                remote.knows(env.hash());
                // The pool's rules decide; a refused envelope is the sender's problem,
                // not a reason to drop a peer that may relay others' traffic.
                if let Err(e) = me.svc.post_envelope(env).await {
                    me.peers.count_n("envelopes_refused", 1);
                    tracing::debug!(error = %e, "devp2p: envelope refused");
                }
            }
        }
        Message::P2pMessage(envs) => {
            // Straight to the filters that allow peer-to-peer messages, not pooled and
            // not forwarded (geth's postEvent(…, true)).
            me.peers.count_n("direct_in", envs.len() as u64);
            if let Err(e) = me.svc.deliver_history(envs).await {
                tracing::warn!(error = %e, "devp2p: a direct message could not be queued");
            }
        }
        Message::P2pRequest(request) => {
            let Some(mail) = me.mail.clone() else {
                return Ok(());
            };
            me.peers.count_n("mail_requests", 1);
            let now = tokio::time::Instant::now();
            if remote.last_request.is_some_and(|t| now < t + MAIL_INTERVAL) {
                me.peers.count_n("mail_rate_limited", 1);
                let refusal = mail.refusal(&request, "rate limit exceeded");
                return s
                    .send(
                        BASE_PROTOCOL_LENGTH + shh::REQUEST_COMPLETE,
                        &shh::encode_request_complete(&refusal),
                    )
                    .await;
            }
            remote.last_request = Some(now);
            // Served beside the session, whose loop keeps reading and pinging; the
            // answer comes back through its queue.
            tokio::spawn(mail.serve(remote.key, request, remote.outbox.clone()));
        }
        // Everything else is ignored as geth ignores unknown codes.
        _ => {}
    }
    Ok(())
}

/// Offers the peer what the pool has that it has not seen and wants.
async fn gossip(me: &Devp2p, s: &mut Session, remote: &mut Remote) -> Result<(), Devp2pError> {
    let now = crate::rpc::shh_local::unix_now();
    let mut batch: Vec<Envelope> = Vec::new();
    for p in me.node.pool_snapshot() {
        if p.envelope.expiry > now && remote.wants(&p.envelope, p.pow) && !remote.knows(p.hash) {
            batch.push(p.envelope.clone());
        }
    }
    if batch.is_empty() {
        return Ok(());
    }
    me.peers.count_n("envelopes_out", batch.len() as u64);
    s.send(
        BASE_PROTOCOL_LENGTH + shh::MESSAGES,
        &shh::encode_envelopes(&batch),
    )
    .await
}
