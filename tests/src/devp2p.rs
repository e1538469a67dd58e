//! A devp2p client for tests: dial a node, do the RLPx handshake and `Hello`s, read and
//! write messages. Blocking (std sockets), as a test drives one session step by step.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use rand::rngs::OsRng;
use serde_json::json;
use staples_protocol::crypto::PrivateKey;
use staples_protocol::devp2p::frame::FrameCodec;
use staples_protocol::devp2p::handshake::{Initiator, node_id};
use staples_protocol::devp2p::p2p::{self, Capability, Hello};

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
