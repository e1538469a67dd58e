//! The `Message` JSON object exactly as geth v1.9.7 marshals it for `shh_getFilterMessages`
//! and `shh_subscription`.
//!
//! Key order `sig, ttl, timestamp, topic, payload, padding, pow, hash, recipientPublicKey`;
//! `sig` and `recipientPublicKey` are omitted (not null) when absent; bytes are `0x` hex
//! (`"0x"` when empty); `pow` uses Go's float formatting, which differs from Rust's and
//! serde_json's (Go writes `1e-7` and `1e+21`, and never exponents between 1e-6 and 1e21).

use serde::{Serialize, Serializer};

use super::wrap::ReceivedMessage;

/// The serialisable view of a received message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageJson {
    /// Signer's uncompressed public key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
    /// Envelope TTL.
    pub ttl: u32,
    /// `expiry - ttl`.
    pub timestamp: u32,
    /// `0x` + 8 hex.
    pub topic: String,
    /// The payload.
    pub payload: String,
    /// The padding.
    pub padding: String,
    /// The envelope PoW, Go-formatted.
    pub pow: GoFloat,
    /// Envelope hash.
    pub hash: String,
    /// Our public key, for asymmetric messages.
    #[serde(rename = "recipientPublicKey", skip_serializing_if = "Option::is_none")]
    pub recipient_public_key: Option<String>,
}

impl From<&ReceivedMessage> for MessageJson {
    fn from(m: &ReceivedMessage) -> Self {
        MessageJson {
            sig: m
                .plaintext
                .signature
                .as_ref()
                .map(|(_, k)| hex0x(&k.to_uncompressed())),
            ttl: m.ttl,
            timestamp: m.sent,
            topic: hex0x(&m.topic.0),
            payload: hex0x(&m.plaintext.payload),
            padding: hex0x(&m.plaintext.padding),
            pow: GoFloat(m.pow),
            hash: hex0x(&m.hash.0),
            recipient_public_key: m.recipient.map(|k| hex0x(&k.to_uncompressed())),
        }
    }
}

/// Why geth JSON did not parse as a message ([`parse_geth_json`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Not a JSON object.
    #[error("not a JSON object")]
    NotAnObject,
    /// A field geth always writes is missing or has the wrong type.
    #[error("field {0} missing or of the wrong type")]
    Field(&'static str),
    /// A field's bytes are not `0x` hex of the right length, or not a valid key.
    #[error("field {0} is not valid")]
    Invalid(&'static str),
}

/// The message in geth's JSON (as `shh_getFilterMessages` returns it), for a node that
/// gets messages from another Whisper node's RPC rather than as envelopes. The JSON names
/// the signer (`sig`) but carries no signature bytes, so `plaintext.signature` is `None`
/// and the caller keeps the JSON itself for whoever needs the signer. Inverse of
/// [`ReceivedMessage::to_geth_json`] for everything but the signature.
pub fn parse_geth_json(json: &str) -> Result<ReceivedMessage, JsonError> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|_| JsonError::NotAnObject)?;
    let v = v.as_object().ok_or(JsonError::NotAnObject)?;
    let bytes = |k: &'static str| -> Result<Vec<u8>, JsonError> {
        let s = v
            .get(k)
            .and_then(|x| x.as_str())
            .ok_or(JsonError::Field(k))?;
        hex::decode(s.strip_prefix("0x").ok_or(JsonError::Invalid(k))?)
            .map_err(|_| JsonError::Invalid(k))
    };
    let number = |k: &'static str| -> Result<u32, JsonError> {
        v.get(k)
            .and_then(|x| x.as_u64())
            .and_then(|n| u32::try_from(n).ok())
            .ok_or(JsonError::Field(k))
    };
    let hash = <[u8; 32]>::try_from(bytes("hash")?).map_err(|_| JsonError::Invalid("hash"))?;
    let topic = <[u8; 4]>::try_from(bytes("topic")?).map_err(|_| JsonError::Invalid("topic"))?;
    let recipient = match v.get("recipientPublicKey") {
        None => None,
        Some(_) => Some(
            crate::crypto::PublicKey::from_uncompressed(&bytes("recipientPublicKey")?)
                .map_err(|_| JsonError::Invalid("recipientPublicKey"))?,
        ),
    };
    Ok(ReceivedMessage {
        plaintext: super::message::Plaintext {
            flags: 0,
            payload: bytes("payload")?,
            padding: bytes("padding")?,
            signature: None,
        },
        topic: super::Topic(topic),
        ttl: number("ttl")?,
        sent: number("timestamp")?,
        pow: v
            .get("pow")
            .and_then(|x| x.as_f64())
            .ok_or(JsonError::Field("pow"))?,
        hash: super::EnvelopeHash(hash),
        recipient,
    })
}

impl ReceivedMessage {
    /// The exact JSON text geth emits for this message.
    pub fn to_geth_json(&self) -> String {
        // Serialising a struct of strings and numbers to a String cannot fail.
        serde_json::to_string(&MessageJson::from(self)).unwrap_or_default()
    }
}

/// `0x`-prefixed lowercase hex, as go-ethereum's `hexutil.Bytes`.
///
/// Written with a table into one allocation: every delivered message renders its payload
/// and padding (256+ bytes) this way, and the `hex` crate's char iterator plus a second
/// `format!` copy showed up in the sidecar's profile.
pub fn hex0x(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(2 + 2 * bytes.len());
    out.extend_from_slice(b"0x");
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 0x0f)]);
    }
    // Only ASCII digits and letters were written.
    String::from_utf8(out).unwrap_or_default()
}

/// An `f64` that serialises (with serde_json) in Go's `encoding/json` format.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GoFloat(pub f64);

impl Serialize for GoFloat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let raw = serde_json::value::RawValue::from_string(go_float(self.0))
            .map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

/// Formats like Go's `json.Marshal(float64)`: shortest round-trip digits, plain decimal
/// unless `|f| < 1e-6` or `|f| >= 1e21`, where it uses `e-7` / `e+21` exponents.
/// JSON has no infinity (Go refuses to marshal one); we clamp to ±f64::MAX and write NaN
/// as 0, so a PoW over a zero TTL cannot break a whole response.
pub fn go_float(f: f64) -> String {
    let f = if f.is_nan() {
        0.0
    } else {
        f.clamp(f64::MIN, f64::MAX)
    };
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((mant, exp)) if !exp.starts_with('-') => format!("{mant}e+{exp}"),
            _ => s,
        }
    } else {
        format!("{f}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_float_formats_like_encoding_json() {
        // Expected strings are Go's `json.Marshal` output for these float64 values.
        let cases = [
            (0.0, "0"),
            (1.0, "1"),
            (0.5, "0.5"),
            (1e-6, "0.000001"),
            (1e-7, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (1e20, "100000000000000000000"),
            (1e21, "1e+21"),
            (-2.5e22, "-2.5e+22"),
        ];
        for (f, want) in cases {
            assert_eq!(go_float(f), want, "{f}");
        }
    }

    #[test]
    fn hex0x_matches_the_hex_crate() {
        for len in [0usize, 1, 4, 33, 256] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(hex0x(&bytes), format!("0x{}", hex::encode(&bytes)));
        }
    }

    #[test]
    fn non_finite_values_still_give_valid_json() {
        assert!(serde_json::from_str::<f64>(&go_float(f64::INFINITY)).is_ok());
        assert_eq!(go_float(f64::NAN), "0");
    }
}
