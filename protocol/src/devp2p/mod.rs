//! devp2p, sans-IO: the RLPx transport (the EIP-8 handshake and the encrypted, MAC'd
//! frames) that Whisper's `shh/6` runs over, as go-ethereum v1.9.7 speaks it. Bytes in,
//! bytes out; sockets live in the bridge.
//!
//! - [`handshake`]: `auth` / `ack`, ECIES to the peer's static key, and the session
//!   secrets.
//! - [`frame`]: the frame codec of an established session.
//! - [`p2p`]: the base protocol (`Hello`, `Disconnect`, `Ping`, `Pong`).
//! - [`shh`]: Whisper's `shh/6` messages.

/// `body` (encoded items) as one RLP list.
fn rlp_list(body: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 4);
    alloy_rlp::Header {
        list: true,
        payload_length: body.len(),
    }
    .encode(&mut out);
    out.extend(body);
    out
}

pub mod frame;
pub mod handshake;
pub mod p2p;
pub mod shh;
