//! What a relay writes on Swarm for a *legacy* Whisper message, one that carried no DAG
//! header (`specs/relay.md` §3).
//!
//! A relay bridging a public chat reads Whisper through a node's JSON-RPC, which reports
//! each message as geth's JSON (payload, padding, signer, timestamp, TTL, PoW, envelope
//! hash) but never the signature bytes. So the relay cannot hand Swarm the sender's
//! envelope; it republishes the message as a DAG message of its own whose body is this
//! record:
//!
//! ```text
//! body = "STPLBRG\x01" (8) ‖ the message as geth's JSON (UTF-8)
//! ```
//!
//! The JSON is the relay's re-serialisation of what it parsed, so two relays that saw the
//! same envelope write the same text.
//!
//! A relay that reads Whisper through its own devp2p node does see the sender's envelope,
//! and appends it as a last field, `…,"envelope":"0x<RLP>"}` (specs/relay.md §3.1): the
//! archive a Staples mailserver serves Whisper clients from, byte for byte. Readers
//! check that it hashes to the JSON's `hash` and strip it before an app sees the JSON;
//! readers older than the field ignore it, as they ignore any unknown field. Receivers hand their apps that JSON, as a mailserver
//! would hand the original envelope's message, and collapse copies from several relays by
//! the message's **legacy id**, `keccak256("staples/legacy/v1" ‖ envelope hash)`: the
//! envelope hash is what every Whisper node reports for it.

use crate::crypto::{PublicKey, keccak256_concat};
use crate::whisper::json::{JsonError, parse_geth_json};
use crate::whisper::{Envelope, ReceivedMessage};

/// The first bytes of every record.
pub const MAGIC: &[u8; 8] = b"STPLBRG\x01";

const LEGACY_DOMAIN: &[u8] = b"staples/legacy/v1";

/// How the original envelope is appended to the JSON.
const ENVELOPE_FIELD: &str = ",\"envelope\":\"0x";

/// The id that names a legacy Whisper message across relays and Staples peers.
pub fn legacy_id(envelope_hash: &[u8; 32]) -> [u8; 32] {
    keccak256_concat(&[LEGACY_DOMAIN, envelope_hash])
}

/// Errors from decoding a record whose body starts with [`MAGIC`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BridgedError {
    /// The JSON is not UTF-8.
    #[error("record is not UTF-8")]
    Utf8,
    /// The JSON is not a geth message.
    #[error("record is not a Whisper message: {0}")]
    Json(#[from] JsonError),
    /// `sig` is not an uncompressed public key.
    #[error("record's signer is not a public key")]
    Signer,
    /// A record names a recipient key: relays bridge public (symmetric) chats only.
    #[error("record of an asymmetric message")]
    Asymmetric,
    /// The appended envelope is not hex RLP of an envelope, or not the last field.
    #[error("record's envelope does not decode")]
    Envelope,
    /// The appended envelope does not hash to the message's `hash`.
    #[error("record's envelope is not the message it describes")]
    EnvelopeMismatch,
}

/// A decoded record.
#[derive(Debug, Clone)]
pub struct Bridged {
    /// The JSON the app is to see.
    pub json: String,
    /// The message the JSON describes (no signature bytes: see [`parse_geth_json`]).
    pub message: ReceivedMessage,
    /// The signer the JSON names, if any.
    pub signer: Option<PublicKey>,
    /// [`legacy_id`] of the message.
    pub legacy_id: [u8; 32],
    /// The sender's envelope, when the relay saw it (checked to hash to the message's hash).
    pub envelope: Option<Envelope>,
}

/// The record of a message seen on Whisper, from the JSON its Whisper node reported.
/// Checked as [`decode`] checks it, so a relay never publishes what receivers refuse.
pub fn encode(json: &str) -> Result<Vec<u8>, BridgedError> {
    record(json).map(|b| b.body())
}

/// The checked record of `json`, for a relay that also needs what it says (its hash,
/// its TTL) before publishing [`Bridged::body`].
pub fn record(json: &str) -> Result<Bridged, BridgedError> {
    decode_json(json.as_bytes())
}

impl Bridged {
    /// The body that carries it: `MAGIC ‖ json [‖ envelope field]`.
    pub fn body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAGIC.len() + self.json.len());
        out.extend_from_slice(MAGIC);
        match &self.envelope {
            None => out.extend_from_slice(self.json.as_bytes()),
            Some(env) => {
                // `json` is a JSON object (decode checked it), so it ends with `}`.
                let json = self.json.trim_end();
                out.extend_from_slice(json.strip_suffix('}').unwrap_or(json).as_bytes());
                out.extend_from_slice(ENVELOPE_FIELD.as_bytes());
                out.extend_from_slice(hex::encode(env.encode()).as_bytes());
                out.extend_from_slice(b"\"}");
            }
        }
        out
    }

    /// The same record carrying the sender's envelope, which must be the message's.
    pub fn with_envelope(mut self, env: Envelope) -> Result<Self, BridgedError> {
        if env.hash() != self.message.hash {
            return Err(BridgedError::EnvelopeMismatch);
        }
        self.envelope = Some(env);
        Ok(self)
    }
}

/// The record in a body, if the body is one (`None`: an ordinary message).
pub fn decode(body: &[u8]) -> Option<Result<Bridged, BridgedError>> {
    let json = body.strip_prefix(MAGIC.as_slice())?;
    Some(decode_json(json))
}

fn decode_json(json: &[u8]) -> Result<Bridged, BridgedError> {
    let json = std::str::from_utf8(json).map_err(|_| BridgedError::Utf8)?;
    let (json, envelope) = split_envelope(json)?;
    let message = parse_geth_json(&json)?;
    if let Some(env) = &envelope
        && env.hash() != message.hash
    {
        return Err(BridgedError::EnvelopeMismatch);
    }
    if message.recipient.is_some() {
        return Err(BridgedError::Asymmetric);
    }
    let v: serde_json::Value = serde_json::from_str(&json).map_err(|_| JsonError::NotAnObject)?;
    let signer = match v.get("sig") {
        None => None,
        Some(s) => {
            let hex = s
                .as_str()
                .and_then(|s| s.strip_prefix("0x"))
                .ok_or(BridgedError::Signer)?;
            let bytes = hex::decode(hex).map_err(|_| BridgedError::Signer)?;
            Some(PublicKey::from_uncompressed(&bytes).map_err(|_| BridgedError::Signer)?)
        }
    };
    let legacy_id = legacy_id(&message.hash.0);
    Ok(Bridged {
        json,
        message,
        signer,
        legacy_id,
        envelope,
    })
}

/// Splits `…,"envelope":"0x<hex>"}` into the app's JSON (`…}`) and the envelope. A record
/// whose `envelope` field is anywhere but last, or not an envelope, is refused.
fn split_envelope(json: &str) -> Result<(String, Option<Envelope>), BridgedError> {
    let Some(at) = json.rfind(ENVELOPE_FIELD) else {
        return Ok((json.to_string(), None));
    };
    let hex_and_end = &json[at + ENVELOPE_FIELD.len()..];
    let hex = hex_and_end
        .trim_end()
        .strip_suffix("\"}")
        .ok_or(BridgedError::Envelope)?;
    let rlp = hex::decode(hex).map_err(|_| BridgedError::Envelope)?;
    let env = Envelope::decode(&rlp).map_err(|_| BridgedError::Envelope)?;
    // The app's JSON is what precedes the field, closed again.
    Ok((format!("{}}}", &json[..at]), Some(env)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::PrivateKey;
    use crate::whisper::{Draft, OpenKey, Recipient, SymKey, Topic, open, wrap};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn received(signer: Option<&PrivateKey>) -> ReceivedMessage {
        let mut rng = StdRng::seed_from_u64(7);
        let key = SymKey::from_password("bridged");
        let draft = Draft {
            topic: Topic([1, 2, 3, 4]),
            payload: b"hello from whisper",
            padding: None,
            signer,
            ttl: 60,
            to: Recipient::Symmetric(&key),
        };
        let env = wrap(&draft, 1_700_000_000, &mut rng).expect("wraps");
        open(&env, OpenKey::Symmetric(&key)).expect("opens")
    }

    #[test]
    fn a_record_round_trips_with_its_signer_and_legacy_id() {
        let author = PrivateKey::from_bytes(&[5; 32]).expect("key");
        let m = received(Some(&author));
        let body = encode(&m.to_geth_json()).expect("a message");
        let got = decode(&body).expect("a record").expect("decodes");
        assert_eq!(got.json, m.to_geth_json());
        assert_eq!(got.message.plaintext.payload, m.plaintext.payload);
        assert_eq!(got.signer, Some(author.public_key()));
        assert_eq!(got.legacy_id, legacy_id(&m.hash.0));
        assert_ne!(
            got.legacy_id, m.hash.0,
            "domain-separated from the envelope hash"
        );
        let unsigned = decode(&encode(&received(None).to_geth_json()).expect("a message"))
            .expect("a record")
            .expect("decodes");
        assert_eq!(unsigned.signer, None);
    }

    #[test]
    fn a_record_carries_the_senders_envelope_and_apps_never_see_it() {
        let mut rng = StdRng::seed_from_u64(9);
        let key = SymKey::from_password("bridged");
        let author = PrivateKey::from_bytes(&[6; 32]).expect("key");
        let draft = Draft {
            topic: Topic([1, 2, 3, 4]),
            payload: b"original",
            padding: None,
            signer: Some(&author),
            ttl: 60,
            to: Recipient::Symmetric(&key),
        };
        let env = wrap(&draft, 1_700_000_000, &mut rng).expect("wraps");
        let m = open(&env, OpenKey::Symmetric(&key)).expect("opens");
        let plain = record(&m.to_geth_json()).expect("a message");
        let with = plain
            .clone()
            .with_envelope(env.clone())
            .expect("its own envelope");
        let body = with.body();
        assert!(body.len() > plain.body().len());
        let got = decode(&body).expect("a record").expect("decodes");
        assert_eq!(got.envelope.as_ref(), Some(&env));
        assert_eq!(got.json, m.to_geth_json(), "the field is stripped");
        assert_eq!(got.body(), body, "re-encodes exactly");
        // Another message's envelope is refused, writing and reading.
        let other = received(None);
        let other_env = Envelope {
            data: vec![1, 2, 3],
            ..env.clone()
        };
        assert_eq!(
            record(&other.to_geth_json())
                .expect("a message")
                .with_envelope(env.clone())
                .err(),
            Some(BridgedError::EnvelopeMismatch)
        );
        let forged = String::from_utf8(body.clone())
            .expect("utf8")
            .replace(&hex::encode(env.encode()), &hex::encode(other_env.encode()));
        assert_eq!(
            decode(forged.as_bytes()).expect("a record").err(),
            Some(BridgedError::EnvelopeMismatch)
        );
        let cut = &body[..body.len() - 2];
        assert!(decode(cut).expect("a record").is_err());
    }

    #[test]
    fn ordinary_bodies_are_not_records_and_bad_records_are_refused() {
        assert!(decode(b"hello").is_none());
        assert!(
            decode(b"STPLBRG\x02{}").is_none(),
            "another version is not ours"
        );
        let bad = |tail: &[u8]| decode(&[MAGIC.as_slice(), tail].concat()).expect("a record");
        assert_eq!(bad(&[0xff, 0xfe]).err(), Some(BridgedError::Utf8));
        assert!(matches!(bad(b"[]"), Err(BridgedError::Json(_))));
        let m = received(None);
        let json = m.to_geth_json().replacen('{', r#"{"sig":"0x04ab","#, 1);
        assert_eq!(bad(json.as_bytes()).err(), Some(BridgedError::Signer));
        assert_eq!(encode(&json).err(), Some(BridgedError::Signer));
    }
}
