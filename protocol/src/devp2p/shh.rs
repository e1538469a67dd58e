//! Whisper's `shh/6` sub-protocol messages (EIP-627, go-ethereum v1.9.7
//! `whisper/whisperv6/peer.go`): the status handshake, envelope batches, PoW requirement and
//! bloom updates, and the mailserver's peer-to-peer codes. Codes here are the sub-protocol's;
//! on the wire they follow the `p2p` base codes ([`super::p2p::BASE_PROTOCOL_LENGTH`]).

use alloy_rlp::{Decodable, Encodable, Header};

use super::rlp_list;
use crate::whisper::{Envelope, EnvelopeError};

/// The `shh` version.
pub const VERSION: u64 = 6;
/// Status handshake.
pub const STATUS: u64 = 0;
/// A batch of envelopes.
pub const MESSAGES: u64 = 1;
/// The sender's minimum PoW changed.
pub const POW_REQUIREMENT: u64 = 2;
/// The sender's bloom filter changed.
pub const BLOOM: u64 = 3;
/// A mailserver's request-complete (status-go).
pub const REQUEST_COMPLETE: u64 = 125;
/// A request to a mailserver (one envelope).
pub const P2P_REQUEST: u64 = 126;
/// Envelopes from a mailserver.
pub const P2P_MESSAGE: u64 = 127;
/// Message codes `shh/6` occupies (geth's `NumberOfMessageCodes`).
pub const LENGTH: u64 = 128;
/// Bloom filter size.
pub const BLOOM_SIZE: usize = 64;

/// Errors decoding `shh/6` messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShhError {
    /// Not the RLP the message needs.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// A PoW that is NaN, infinite or negative.
    #[error("invalid PoW requirement")]
    InvalidPow,
    /// An envelope in a batch does not decode.
    #[error("bad envelope: {0}")]
    Envelope(#[from] EnvelopeError),
}

/// The status handshake: `[version, pow bits, bloom, light]`; only the version is
/// required.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// The peer's `shh` version.
    pub version: u64,
    /// Its minimum PoW, if sent.
    pub pow: Option<f64>,
    /// Its bloom filter, if sent (empty = everything).
    pub bloom: Option<[u8; BLOOM_SIZE]>,
    /// Whether it is a light node (does not forward).
    pub light: bool,
}

/// A decoded `shh/6` message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Status handshake.
    Status(Status),
    /// Envelopes to admit.
    Messages(Vec<Envelope>),
    /// New minimum PoW.
    PowRequirement(f64),
    /// New bloom filter.
    Bloom([u8; BLOOM_SIZE]),
    /// A mailserver request (one envelope).
    P2pRequest(Envelope),
    /// Envelopes from a mailserver (geth sends one, status-go a list).
    P2pMessage(Vec<Envelope>),
    /// A mailserver's request-complete payload (the RLP byte string's content; see
    /// [`crate::mailserver::Completion`]).
    RequestComplete(Vec<u8>),
    /// A code this node does not know: ignored, as geth does.
    Unknown(u64),
}

impl Status {
    /// Our status.
    pub fn ours(pow: f64, bloom: [u8; BLOOM_SIZE], light: bool) -> Self {
        Status {
            version: VERSION,
            pow: Some(pow),
            bloom: Some(bloom),
            light,
        }
    }

    /// The payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        self.version.encode(&mut body);
        if let Some(p) = self.pow {
            p.to_bits().encode(&mut body);
            if let Some(b) = &self.bloom {
                b.as_slice().encode(&mut body);
                self.light.encode(&mut body);
            }
        }
        rlp_list(body)
    }
}

/// The items of the RLP list that is all of `payload`.
fn items<'a>(payload: &'a [u8], what: &'static str) -> Result<&'a [u8], ShhError> {
    let mut p = payload;
    let h = Header::decode(&mut p).map_err(|_| ShhError::Malformed(what))?;
    if !h.list || p.len() < h.payload_length {
        return Err(ShhError::Malformed(what));
    }
    Ok(&p[..h.payload_length])
}

/// Splits off the next RLP item of `p` (header included).
fn next_item<'a>(p: &mut &'a [u8], what: &'static str) -> Result<&'a [u8], ShhError> {
    let start = *p;
    let mut q = *p;
    let h = Header::decode(&mut q).map_err(|_| ShhError::Malformed(what))?;
    let header_len = start.len() - q.len();
    let total = header_len + h.payload_length;
    if start.len() < total {
        return Err(ShhError::Malformed(what));
    }
    *p = &start[total..];
    Ok(&start[..total])
}

fn pow_from_bits(bits: u64) -> Result<f64, ShhError> {
    let f = f64::from_bits(bits);
    if f.is_nan() || f.is_infinite() || f < 0.0 {
        return Err(ShhError::InvalidPow);
    }
    Ok(f)
}

/// A request-complete message: the payload as one RLP byte string (status-go's
/// `p2p.Send(…, p2pRequestCompleteCode, payload)`).
pub fn encode_request_complete(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 3);
    payload.encode(&mut out);
    out
}

/// A batch of envelopes as geth sends it (an RLP list of envelopes).
pub fn encode_envelopes(envelopes: &[Envelope]) -> Vec<u8> {
    let mut body = Vec::new();
    for e in envelopes {
        body.extend(e.encode());
    }
    rlp_list(body)
}

fn envelopes(payload: &[u8], what: &'static str) -> Result<Vec<Envelope>, ShhError> {
    let mut p = items(payload, what)?;
    let mut out = Vec::new();
    while !p.is_empty() {
        out.push(Envelope::decode(next_item(&mut p, what)?)?);
    }
    Ok(out)
}

/// A PoW requirement payload.
pub fn encode_pow(pow: f64) -> Vec<u8> {
    let mut out = Vec::new();
    pow.to_bits().encode(&mut out);
    out
}

/// A bloom payload.
pub fn encode_bloom(bloom: &[u8; BLOOM_SIZE]) -> Vec<u8> {
    let mut out = Vec::new();
    bloom.as_slice().encode(&mut out);
    out
}

/// Decodes message `code` (the sub-protocol's) with `payload`.
pub fn decode(code: u64, payload: &[u8]) -> Result<Message, ShhError> {
    Ok(match code {
        STATUS => {
            let mut p = items(payload, "status")?;
            let version = u64::decode(&mut p).map_err(|_| ShhError::Malformed("status"))?;
            let pow = if p.is_empty() {
                None
            } else {
                let bits = u64::decode(&mut p).map_err(|_| ShhError::Malformed("status pow"))?;
                Some(pow_from_bits(bits)?)
            };
            let bloom = if p.is_empty() {
                None
            } else {
                let b = alloy_rlp::Bytes::decode(&mut p)
                    .map_err(|_| ShhError::Malformed("status bloom"))?;
                match b.len() {
                    0 => None,
                    BLOOM_SIZE => {
                        let mut a = [0u8; BLOOM_SIZE];
                        a.copy_from_slice(&b);
                        Some(a)
                    }
                    _ => return Err(ShhError::Malformed("status bloom")),
                }
            };
            let light = if p.is_empty() {
                false
            } else {
                bool::decode(&mut p).map_err(|_| ShhError::Malformed("status light"))?
            };
            Message::Status(Status {
                version,
                pow,
                bloom,
                light,
            })
        }
        MESSAGES => Message::Messages(envelopes(payload, "messages")?),
        POW_REQUIREMENT => {
            let bits = u64::decode(&mut &payload[..])
                .map_err(|_| ShhError::Malformed("pow requirement"))?;
            Message::PowRequirement(pow_from_bits(bits)?)
        }
        BLOOM => {
            let b = alloy_rlp::Bytes::decode(&mut &payload[..])
                .map_err(|_| ShhError::Malformed("bloom"))?;
            let a = <[u8; BLOOM_SIZE]>::try_from(b.as_ref())
                .map_err(|_| ShhError::Malformed("bloom"))?;
            Message::Bloom(a)
        }
        P2P_REQUEST => Message::P2pRequest(Envelope::decode(payload)?),
        P2P_MESSAGE => {
            // geth sends one envelope; status-go a list of them.
            match Envelope::decode(payload) {
                Ok(e) => Message::P2pMessage(vec![e]),
                Err(_) => Message::P2pMessage(envelopes(payload, "p2p message")?),
            }
        }
        REQUEST_COMPLETE => {
            let mut p = payload;
            let h = Header::decode(&mut p).map_err(|_| ShhError::Malformed("request complete"))?;
            if h.list || p.len() != h.payload_length {
                return Err(ShhError::Malformed("request complete"));
            }
            Message::RequestComplete(p.to_vec())
        }
        other => Message::Unknown(other),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::whisper::Topic;

    fn env(n: u64) -> Envelope {
        Envelope {
            expiry: 100,
            ttl: 50,
            topic: Topic([1, 2, 3, 4]),
            data: vec![9; 30],
            nonce: n,
        }
    }

    #[test]
    fn messages_round_trip_and_bad_ones_are_refused() {
        let s = Status::ours(0.2, [0xff; BLOOM_SIZE], false);
        assert_eq!(decode(STATUS, &s.encode()), Ok(Message::Status(s)));
        // Only the version is required.
        let bare = super::super::rlp_list({
            let mut b = Vec::new();
            6u64.encode(&mut b);
            b
        });
        assert!(matches!(
            decode(STATUS, &bare),
            Ok(Message::Status(Status {
                version: 6,
                pow: None,
                bloom: None,
                light: false
            }))
        ));
        let batch = vec![env(1), env(2)];
        assert_eq!(
            decode(MESSAGES, &encode_envelopes(&batch)),
            Ok(Message::Messages(batch.clone()))
        );
        assert_eq!(
            decode(POW_REQUIREMENT, &encode_pow(0.5)),
            Ok(Message::PowRequirement(0.5))
        );
        assert_eq!(
            decode(POW_REQUIREMENT, &encode_pow(f64::NAN)),
            Err(ShhError::InvalidPow)
        );
        assert_eq!(
            decode(BLOOM, &encode_bloom(&[1; BLOOM_SIZE])),
            Ok(Message::Bloom([1; BLOOM_SIZE]))
        );
        assert_eq!(
            decode(P2P_MESSAGE, &env(3).encode()),
            Ok(Message::P2pMessage(vec![env(3)]))
        );
        assert_eq!(decode(42, b"anything"), Ok(Message::Unknown(42)));
        assert!(decode(MESSAGES, &[0xc3, 0x01, 0x02, 0x03]).is_err());
    }
}
