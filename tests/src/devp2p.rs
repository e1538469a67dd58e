//! A devp2p client for tests: dial a node, do the RLPx handshake and `Hello`s, read and
//! write messages. Blocking (std sockets), as a test drives one session step by step.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use rand::rngs::OsRng;
use serde_json::json;
use staples_protocol::crypto::{PrivateKey, PublicKey};
use staples_protocol::devp2p::frame::FrameCodec;
use staples_protocol::devp2p::handshake::{Initiator, node_id};
use staples_protocol::devp2p::p2p::{self, BASE_PROTOCOL_LENGTH, Capability, Hello};
use staples_protocol::devp2p::shh::{self, Message, Status};
use staples_protocol::mailserver::{Completion, Request};
use staples_protocol::status::OFFLINE_INBOX_PASSWORD;
use staples_protocol::whisper::{Draft, Envelope, EnvelopeHash, Recipient, SymKey, Topic, wrap};

/// Dials `addr`, does the RLPx handshake with `their_key` and sends our `Hello` as
/// `name` (offering `shh/6`); returns the session, its read buffer, our key and the peer's
/// `Hello` payload (the first message, checked to be one).
pub fn dial(
    addr: impl std::net::ToSocketAddrs,
    their_key: &staples_protocol::crypto::PublicKey,
    name: &str,
) -> (TcpStream, FrameCodec, Vec<u8>, PrivateKey, Vec<u8>) {
    let ours = PrivateKey::random(&mut OsRng);
    let mut s = TcpStream::connect(addr).expect("the node listens");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (init, auth) = Initiator::new(
        PrivateKey::from_bytes(&ours.to_bytes()).unwrap(),
        *their_key,
        &mut OsRng,
    );
    s.write_all(&auth).unwrap();
    let mut size = [0u8; 2];
    s.read_exact(&mut size).expect("an ack");
    let mut ack = size.to_vec();
    ack.resize(2 + usize::from(u16::from_be_bytes(size)), 0);
    s.read_exact(&mut ack[2..]).unwrap();
    let (secrets, used) = init.finish(&ack).expect("the ack opens with our key");
    assert_eq!(used, ack.len());
    assert_eq!(node_id(&secrets.remote), node_id(their_key));
    let mut codec = FrameCodec::new(secrets);
    let hello = Hello::ours(
        name,
        vec![Capability {
            name: "shh".into(),
            version: 6,
        }],
        0,
        &ours.public_key(),
    );
    s.write_all(&codec.write(p2p::HELLO, &hello.encode()).unwrap())
        .unwrap();
    let mut buf = Vec::new();
    let (code, payload) = read_message(&mut s, &mut codec, &mut buf);
    assert_eq!(code, p2p::HELLO);
    (s, codec, buf, ours, payload)
}

/// Reads one whole frame's message from `s` through `codec`.
pub fn read_message(
    s: &mut TcpStream,
    codec: &mut FrameCodec,
    buf: &mut Vec<u8>,
) -> (u64, Vec<u8>) {
    let mut chunk = [0u8; 4096];
    loop {
        let r = codec.read(buf).expect("geth's frames authenticate");
        buf.drain(..r.consumed);
        if let Some(m) = r.message {
            return m;
        }
        if r.consumed == 0 {
            let n = s.read(&mut chunk).expect("geth keeps the connection");
            assert!(n > 0, "geth closed the connection");
            buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// The enode of sidecar `a` and its node key, for dialling it by hand.
pub async fn listening(a: &crate::Sidecar) -> (String, staples_protocol::crypto::PublicKey) {
    let enode = a.ok("admin_nodeInfo", json!([])).await["enode"]
        .as_str()
        .unwrap()
        .to_string();
    let id = enode
        .trim_start_matches("enode://")
        .split('@')
        .next()
        .unwrap();
    let key = staples_protocol::devp2p::handshake::from_node_id(
        &<[u8; 64]>::try_from(hex::decode(id).unwrap().as_slice()).unwrap(),
    )
    .unwrap();
    (enode, key)
}

/// A client session with the mailserver, after the `shh/6` status exchange.
pub struct Client {
    s: TcpStream,
    codec: FrameCodec,
    buf: Vec<u8>,
    /// Our node key.
    pub key: PrivateKey,
}

impl Client {
    /// Dials `at` (`enode://…@host:port` or `host:port`), whose node key is `their`, and
    /// exchanges `Hello` and `shh/6` status.
    pub fn connect(at: &str, their: &PublicKey) -> Client {
        let addr = at.rsplit('@').next().unwrap_or(at).to_string();
        let (mut s, mut codec, mut buf, key, _hello) = dial(addr, their, "staples-test-client");
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let status = Status::ours(0.0, [0xff; shh::BLOOM_SIZE], false);
        s.write_all(
            &codec
                .write(BASE_PROTOCOL_LENGTH + shh::STATUS, &status.encode())
                .unwrap(),
        )
        .unwrap();
        loop {
            let (code, _) = read_message(&mut s, &mut codec, &mut buf);
            if code == BASE_PROTOCOL_LENGTH + shh::STATUS {
                break;
            }
        }
        Client { s, codec, buf, key }
    }

    /// Sends a mailserver request as status-go's `shhext_requestMessages` builds it:
    /// sealed with `seal` (the `status-offline-inbox` key unless told) and signed by
    /// `signer` (our node key unless told); its id.
    pub fn request(
        &mut self,
        r: &Request,
        signer: Option<&PrivateKey>,
        seal: Option<&SymKey>,
    ) -> EnvelopeHash {
        let password = SymKey::from_password(OFFLINE_INBOX_PASSWORD);
        let seal = seal.unwrap_or(&password);
        let payload = r.encode();
        let draft = Draft {
            topic: Topic([0; 4]),
            payload: &payload,
            padding: None,
            signer: Some(signer.unwrap_or(&self.key)),
            ttl: 50,
            to: Recipient::Symmetric(seal),
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as u32;
        let env = wrap(&draft, now, &mut OsRng).unwrap();
        let frame = self
            .codec
            .write(BASE_PROTOCOL_LENGTH + shh::P2P_REQUEST, &env.encode())
            .unwrap();
        self.s.write_all(&frame).unwrap();
        env.hash()
    }

    /// Envelopes (code 127) until the completion (code 125) of request `id`.
    pub fn answer(&mut self, id: EnvelopeHash) -> (Vec<Envelope>, Completion) {
        let (envs, c) = self.next_completion();
        assert_eq!(c.request_id(), id, "the completion names the request");
        (envs, c)
    }

    /// Envelopes (code 127) until the next completion (code 125), whichever request it
    /// closes (a refusal sent at once can overtake an answer still being walked).
    pub fn next_completion(&mut self) -> (Vec<Envelope>, Completion) {
        let mut envs = Vec::new();
        loop {
            let (code, payload) = read_message(&mut self.s, &mut self.codec, &mut self.buf);
            if code < BASE_PROTOCOL_LENGTH {
                continue;
            }
            match shh::decode(code - BASE_PROTOCOL_LENGTH, &payload).unwrap() {
                Message::P2pMessage(list) => envs.extend(list),
                Message::RequestComplete(p) => return (envs, Completion::decode(&p).unwrap()),
                _ => {}
            }
        }
    }
}
