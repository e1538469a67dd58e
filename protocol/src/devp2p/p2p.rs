//! The `p2p` base protocol every RLPx session starts with (message codes 0–3): `Hello`,
//! `Disconnect`, `Ping`, `Pong`. Sub-protocol messages (Whisper's `shh/6`) are numbered
//! from [`BASE_PROTOCOL_LENGTH`].

use alloy_rlp::{Decodable, Encodable, Header};

use super::handshake::node_id;
use super::rlp_list;
use crate::crypto::PublicKey;

/// The `p2p` version Staples announces. 5 would switch on snappy compression; 4 keeps
/// frames uncompressed (geth v1.9.7 compresses only when the remote says 5 or more).
pub const P2P_VERSION: u64 = 4;
/// Message codes the base protocol reserves; `shh/6` starts here.
pub const BASE_PROTOCOL_LENGTH: u64 = 16;
/// `Hello`.
pub const HELLO: u64 = 0;
/// `Disconnect`.
pub const DISCONNECT: u64 = 1;
/// `Ping`.
pub const PING: u64 = 2;
/// `Pong`.
pub const PONG: u64 = 3;

/// Errors decoding base-protocol messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum P2pError {
    /// Not the RLP the message needs.
    #[error("malformed {0}")]
    Malformed(&'static str),
}

/// A capability: a sub-protocol's name and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capability {
    /// e.g. `shh`.
    pub name: String,
    /// e.g. 6.
    pub version: u64,
}

/// The `Hello` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The sender's `p2p` version.
    pub version: u64,
    /// Client name, e.g. `Geth/v1.9.7-stable/linux-amd64/go1.19`.
    pub client: String,
    /// Sub-protocols offered.
    pub capabilities: Vec<Capability>,
    /// Listening port (0 if none).
    pub port: u64,
    /// The sender's node id (64 bytes).
    pub id: [u8; 64],
}

impl Hello {
    /// Our `Hello` for node key `key`.
    pub fn ours(client: &str, capabilities: Vec<Capability>, port: u16, key: &PublicKey) -> Self {
        Hello {
            version: P2P_VERSION,
            client: client.to_string(),
            capabilities,
            port: u64::from(port),
            id: node_id(key),
        }
    }

    /// The payload (RLP list).
    pub fn encode(&self) -> Vec<u8> {
        let mut caps = Vec::new();
        for c in &self.capabilities {
            let mut item = Vec::new();
            c.name.as_str().encode(&mut item);
            c.version.encode(&mut item);
            caps.extend(rlp_list(item));
        }
        let mut body = Vec::new();
        self.version.encode(&mut body);
        self.client.as_str().encode(&mut body);
        body.extend(rlp_list(caps));
        self.port.encode(&mut body);
        self.id.as_slice().encode(&mut body);
        rlp_list(body)
    }

    /// Decodes a `Hello` payload; fields after the id are ignored (forward compatible).
    pub fn decode(payload: &[u8]) -> Result<Self, P2pError> {
        let bad = |_| P2pError::Malformed("hello");
        let mut p = payload;
        let h = Header::decode(&mut p).map_err(bad)?;
        if !h.list || p.len() < h.payload_length {
            return Err(P2pError::Malformed("hello"));
        }
        let mut p = &p[..h.payload_length];
        let version = u64::decode(&mut p).map_err(bad)?;
        let client = String::decode(&mut p).map_err(bad)?;
        let ch = Header::decode(&mut p).map_err(bad)?;
        if !ch.list || p.len() < ch.payload_length {
            return Err(P2pError::Malformed("hello capabilities"));
        }
        let (mut caps_b, rest) = p.split_at(ch.payload_length);
        p = rest;
        let mut capabilities = Vec::new();
        while !caps_b.is_empty() {
            let ih = Header::decode(&mut caps_b).map_err(bad)?;
            if !ih.list || caps_b.len() < ih.payload_length {
                return Err(P2pError::Malformed("hello capability"));
            }
            let (mut item, rest) = caps_b.split_at(ih.payload_length);
            caps_b = rest;
            let name = String::decode(&mut item).map_err(bad)?;
            let version = u64::decode(&mut item).map_err(bad)?;
            capabilities.push(Capability { name, version });
        }
        let port = u64::decode(&mut p).map_err(bad)?;
        let idb = alloy_rlp::Bytes::decode(&mut p).map_err(bad)?;
        let id = <[u8; 64]>::try_from(idb.as_ref()).map_err(|_| P2pError::Malformed("hello id"))?;
        Ok(Hello {
            version,
            client,
            capabilities,
            port,
            id,
        })
    }
}

/// A `Disconnect` payload with `reason` (geth's codes: 0 requested, 3 useless peer, …).
pub fn disconnect(reason: u64) -> Vec<u8> {
    let mut body = Vec::new();
    reason.encode(&mut body);
    rlp_list(body)
}

/// The reason of a `Disconnect` payload (geth also sends it bare, not in a list).
pub fn disconnect_reason(payload: &[u8]) -> Option<u64> {
    let mut p = payload;
    if let Ok(h) = Header::decode(&mut p)
        && h.list
    {
        return u64::decode(&mut p).ok();
    }
    u64::decode(&mut &payload[..]).ok()
}

/// The empty list `Ping` and `Pong` carry.
pub const EMPTY_LIST: [u8; 1] = [0xc0];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::PrivateKey;

    #[test]
    fn hello_round_trips_and_ignores_extra_fields() {
        let key = PrivateKey::from_bytes(&[3; 32]).expect("key").public_key();
        let h = Hello::ours(
            "Staples/test",
            vec![Capability {
                name: "shh".into(),
                version: 6,
            }],
            30303,
            &key,
        );
        let bytes = h.encode();
        assert_eq!(Hello::decode(&bytes), Ok(h.clone()));
        // A newer peer's extra field after the id is ignored.
        let mut longer = bytes[..].to_vec();
        longer.push(0x80);
        longer[1] += 1;
        assert_eq!(Hello::decode(&longer).map(|x| x.client), Ok(h.client));
        assert!(Hello::decode(&[0xc0]).is_err());
        assert_eq!(disconnect_reason(&disconnect(3)), Some(3));
        assert_eq!(
            disconnect_reason(&[0x03]),
            Some(3),
            "bare, as some peers send it"
        );
    }
}
