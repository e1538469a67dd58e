//! The `shh` namespace: the [`ShhApi`] trait, its request objects as geth decodes them, its
//! errors with geth's texts, and the dispatch from JSON-RPC method names to trait calls.
//!
//! Method names, parameters, results and error texts follow go-ethereum v1.9.7
//! `whisper/whisperv6/api.go` (reference §5). `shh_subscribe`/`shh_unsubscribe` are handled
//! here too because they need the connection (WebSocket only, as in geth).

use std::future::Future;
use std::sync::Arc;

use serde_json::value::RawValue;
use staples_protocol::whisper::EnvelopeHash;
use staples_protocol::whisper::json::{GoFloat, hex0x};

use super::conn::{Cancel, Conn};
use super::errors::RpcError;
use super::params::{self, GoError, Params, Place};
use crate::ids;
use crate::node::{Batch, Sink};

/// geth's `NewMessage` (the `shh_post` argument).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewMessage {
    /// Symmetric key id.
    pub sym_key_id: String,
    /// Recipient public key (65 bytes uncompressed).
    pub pub_key: Vec<u8>,
    /// Key pair id of the signer.
    pub sig: String,
    /// Time to live; 0 means 50.
    pub ttl: u32,
    /// Topic.
    pub topic: [u8; 4],
    /// Payload.
    pub payload: Vec<u8>,
    /// Explicit padding.
    pub padding: Vec<u8>,
    /// Seconds of PoW.
    pub pow_time: u32,
    /// PoW target.
    pub pow_target: f64,
    /// enode URL for a direct p2p message.
    pub target_peer: String,
}

impl NewMessage {
    const FIELDS: [&'static str; 10] = [
        "symKeyID",
        "pubKey",
        "sig",
        "ttl",
        "topic",
        "payload",
        "padding",
        "powTime",
        "powTarget",
        "targetPeer",
    ];

    /// Decodes like geth's generated `NewMessage.UnmarshalJSON`.
    pub fn decode(raw: &RawValue, at: Place<'_>) -> Result<Self, GoError> {
        let mut m = NewMessage::default();
        params::object(raw, at, "whisperv6.NewMessage", &Self::FIELDS, |i, v| {
            let at = Place::Field("NewMessage", Self::FIELDS[i]);
            match i {
                0 => m.sym_key_id = params::string(v, at)?,
                1 => m.pub_key = params::bytes(v, at)?,
                2 => m.sig = params::string(v, at)?,
                3 => m.ttl = params::uint32(v, at)?,
                4 => m.topic = params::topic(v, at)?,
                5 => m.payload = params::bytes(v, at)?,
                6 => m.padding = params::bytes(v, at)?,
                7 => m.pow_time = params::uint32(v, at)?,
                8 => m.pow_target = params::float64(v, at)?,
                _ => m.target_peer = params::string(v, at)?,
            }
            Ok(())
        })?;
        Ok(m)
    }
}

/// geth's `Criteria` (filters and subscriptions).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CriteriaReq {
    /// Symmetric key id.
    pub sym_key_id: String,
    /// Key pair id.
    pub private_key_id: String,
    /// Required signer's public key.
    pub sig: Vec<u8>,
    /// Minimum PoW.
    pub min_pow: f64,
    /// Topics.
    pub topics: Vec<[u8; 4]>,
    /// Accept p2p envelopes.
    pub allow_p2p: bool,
}

impl CriteriaReq {
    const FIELDS: [&'static str; 6] = [
        "symKeyID",
        "privateKeyID",
        "sig",
        "minPow",
        "topics",
        "allowP2P",
    ];

    /// Decodes like geth's generated `Criteria.UnmarshalJSON`.
    pub fn decode(raw: &RawValue, at: Place<'_>) -> Result<Self, GoError> {
        let mut c = CriteriaReq::default();
        params::object(raw, at, "whisperv6.Criteria", &Self::FIELDS, |i, v| {
            let at = Place::Field("Criteria", Self::FIELDS[i]);
            match i {
                0 => c.sym_key_id = params::string(v, at)?,
                1 => c.private_key_id = params::string(v, at)?,
                2 => c.sig = params::bytes(v, at)?,
                3 => c.min_pow = params::float64(v, at)?,
                4 => {
                    c.topics = params::topics(v, at, "Criteria.topics", "whisperv6.TopicType")?;
                }
                _ => c.allow_p2p = params::boolean(v, at)?,
            }
            Ok(())
        })?;
        Ok(c)
    }

    /// The criteria as geth-shaped JSON (what the store keeps; [`CriteriaReq::decode`] reads it).
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "symKeyID": self.sym_key_id,
            "privateKeyID": self.private_key_id,
            "sig": if self.sig.is_empty() { String::new() } else { hex0x(&self.sig) },
            "minPow": self.min_pow,
            "topics": self.topics.iter().map(|t| hex0x(t)).collect::<Vec<_>>(),
            "allowP2P": self.allow_p2p,
        })
        .to_string()
    }
}

/// `shh_info`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InfoJson {
    /// Bytes of envelopes in the pool.
    pub memory: usize,
    /// Envelopes in the pool.
    pub messages: usize,
    /// Minimum PoW.
    #[serde(rename = "minPow")]
    pub min_pow: GoFloat,
    /// Maximum message size.
    #[serde(rename = "maxMessageSize")]
    pub max_message_size: u32,
}

/// Errors of the `shh` methods; the texts are geth's where geth has the case.
#[derive(Debug, thiserror::Error)]
pub enum ShhError {
    /// Both or neither of symKeyID and pubKey/privateKeyID.
    #[error("specify either a symmetric or an asymmetric key")]
    SymAsym,
    /// Symmetric post or subscription without a topic.
    #[error("missing topic(s)")]
    NoTopics,
    /// `powTarget` below the node minimum.
    #[error("message rejected, PoW too low")]
    TooLowPow,
    /// A zero symmetric key.
    #[error("invalid symmetric key")]
    InvalidSymmetricKey,
    /// A public key that does not parse (or a missing key pair in `shh_subscribe`).
    #[error("invalid public key")]
    InvalidPublicKey,
    /// `sig` in criteria that does not parse.
    #[error("invalid signing public key")]
    InvalidSigningPubKey,
    /// Unknown symmetric key id.
    #[error("non-existent key ID")]
    NoSymKey,
    /// Unknown key pair id.
    #[error("invalid id")]
    InvalidId,
    /// `shh_deleteKeyPair` of an unknown id.
    #[error("key pair {0} not found")]
    KeyPairNotFound(String),
    /// Unknown or non-pollable filter id.
    #[error("filter not found")]
    FilterNotFound,
    /// `shh_deleteMessageFilter` of an unknown id.
    #[error("Unsubscribe: Invalid ID")]
    UnsubscribeInvalidId,
    /// `shh_addSymKey` with a key that is not 32 bytes.
    #[error("wrong key size: {0}")]
    WrongKeySize(usize),
    /// `shh_addPrivateKey` with the wrong length.
    #[error("invalid length, need 256 bits")]
    PrivateKeyLength,
    /// `shh_addPrivateKey` with zero.
    #[error("invalid private key, zero or negative")]
    PrivateKeyZero,
    /// `shh_addPrivateKey` with a value at or above the curve order.
    #[error("invalid private key, >=N")]
    PrivateKeyRange,
    /// The PoW search ran out of `powTime`.
    #[error("failed to reach the PoW target, specified pow time ({0} seconds) was insufficient")]
    PowTime(u32),
    /// A malformed enode URL.
    #[error("{0}")]
    Enode(String),
    /// `targetPeer` that does not parse.
    #[error("failed to parse target peer: {0}")]
    TargetPeer(String),
    /// A peer this node is not connected to.
    #[error("Could not find peer with ID: {0}")]
    NoPeer(String),
    /// The envelope was expired when added.
    #[error("failed to add envelope")]
    FailedToAdd,
    /// A Staples extension this mode does not offer.
    #[error("{0} is not available in this mode")]
    NotAvailable(&'static str),
    /// `staples_postEnvelope` got bytes that are not an envelope.
    #[error("invalid envelope: {0}")]
    BadEnvelope(String),
    /// Key export refused.
    #[error(
        "key export is disabled: start staples with --allow-key-export to use shh_getPrivateKey and shh_getSymKey"
    )]
    ExportDisabled,
    /// The node refused the envelope.
    #[error(transparent)]
    Add(#[from] crate::node::AddError),
    /// The node refused a setting.
    #[error(transparent)]
    Settings(#[from] crate::node::SettingsError),
    /// The plaintext could not be built.
    #[error(transparent)]
    Wrap(#[from] staples_protocol::whisper::WrapError),
    /// The key store failed.
    #[error(transparent)]
    Keystore(#[from] crate::keystore::KeystoreError),
    /// The store failed (e.g. the outbox write behind an acknowledgement).
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The PSS transport could not accept the post (nothing was acknowledged).
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    /// A blocking task died.
    #[error("internal task failed")]
    Task,
    /// A filter overflowed and was removed.
    #[error(transparent)]
    Poll(crate::node::PollError),
}

impl From<ShhError> for RpcError {
    fn from(e: ShhError) -> Self {
        RpcError::server(e.to_string())
    }
}

/// The `shh` namespace as a trait over which the JSON-RPC dispatch runs.
pub trait ShhApi: Send + Sync + 'static {
    /// `shh_version`.
    fn version(&self) -> String;
    /// `shh_info`.
    fn info(&self) -> InfoJson;
    /// `shh_setMaxMessageSize`.
    fn set_max_message_size(&self, size: u32) -> Result<bool, ShhError>;
    /// `shh_setMinPoW`.
    fn set_min_pow(&self, pow: f64) -> Result<bool, ShhError>;
    /// `shh_setBloomFilter`.
    fn set_bloom_filter(&self, bloom: Vec<u8>) -> Result<bool, ShhError>;
    /// `shh_markTrustedPeer`.
    fn mark_trusted_peer(&self, enode: String) -> Result<bool, ShhError>;
    /// `shh_makeLightClient`.
    fn make_light_client(&self) -> bool;
    /// `shh_cancelLightClient`.
    fn cancel_light_client(&self) -> bool;
    /// `shh_newKeyPair`.
    fn new_key_pair(&self) -> impl Future<Output = Result<String, ShhError>> + Send;
    /// `shh_addPrivateKey`.
    fn add_private_key(
        &self,
        key: Vec<u8>,
    ) -> impl Future<Output = Result<String, ShhError>> + Send;
    /// `shh_deleteKeyPair`.
    fn delete_key_pair(&self, id: String) -> impl Future<Output = Result<bool, ShhError>> + Send;
    /// `shh_hasKeyPair`.
    fn has_key_pair(&self, id: &str) -> bool;
    /// `shh_getPublicKey`.
    fn get_public_key(&self, id: &str) -> Result<Vec<u8>, ShhError>;
    /// `shh_getPrivateKey`.
    fn get_private_key(&self, id: &str) -> Result<Vec<u8>, ShhError>;
    /// `shh_newSymKey`.
    fn new_sym_key(&self) -> impl Future<Output = Result<String, ShhError>> + Send;
    /// `shh_addSymKey`.
    fn add_sym_key(&self, key: Vec<u8>) -> impl Future<Output = Result<String, ShhError>> + Send;
    /// `shh_generateSymKeyFromPassword`.
    fn generate_sym_key_from_password(
        &self,
        password: String,
    ) -> impl Future<Output = Result<String, ShhError>> + Send;
    /// `shh_hasSymKey`.
    fn has_sym_key(&self, id: &str) -> bool;
    /// `shh_getSymKey`.
    fn get_sym_key(&self, id: &str) -> Result<Vec<u8>, ShhError>;
    /// `shh_deleteSymKey`.
    fn delete_sym_key(&self, id: String) -> impl Future<Output = Result<bool, ShhError>> + Send;
    /// `staples_postEnvelope`: adds an envelope sealed elsewhere (RLP bytes) as a post.
    fn post_envelope(
        &self,
        rlp: Vec<u8>,
    ) -> impl Future<Output = Result<EnvelopeHash, ShhError>> + Send;
    /// `shh_post`: returns the envelope hash once the message is durably accepted.
    fn post(&self, msg: NewMessage) -> impl Future<Output = Result<EnvelopeHash, ShhError>> + Send;
    /// `shh_newMessageFilter`.
    fn new_message_filter(
        &self,
        criteria: CriteriaReq,
    ) -> impl Future<Output = Result<String, ShhError>> + Send;
    /// `shh_getFilterMessages`: the messages, with the receipt to settle once the answer
    /// is written (unsettled, they are queued again).
    fn get_filter_messages(&self, id: &str) -> Result<Batch, ShhError>;
    /// `shh_deleteMessageFilter`.
    fn delete_message_filter(
        &self,
        id: String,
    ) -> impl Future<Output = Result<bool, ShhError>> + Send;
    /// `shh_subscribe("messages", criteria)`: attaches `sink` to a pushing filter (the
    /// mailbox kept for these criteria, if any), returns the filter's id.
    fn subscribe_messages(
        &self,
        criteria: CriteriaReq,
        sink: Box<dyn Sink>,
    ) -> impl Future<Output = Result<String, ShhError>> + Send;
    /// Ends a subscription: removes its filter when the app unsubscribed, keeps it as a
    /// mailbox when the connection dropped.
    fn unsubscribe_messages(&self, filter_id: &str, how: Cancel);
}

/// Serialises a result.
pub fn to_raw<T: serde::Serialize>(v: &T) -> Result<Box<RawValue>, RpcError> {
    serde_json::value::to_raw_value(v).map_err(|e| RpcError::server(e.to_string()))
}

fn raw_text(s: String) -> Result<Box<RawValue>, RpcError> {
    RawValue::from_string(s).map_err(|e| RpcError::server(e.to_string()))
}

/// Dispatches an `shh_*` call; `None` if `method` is not one.
pub async fn call<S: ShhApi>(
    api: &Arc<S>,
    method: &str,
    raw: Option<&RawValue>,
    conn: &Arc<Conn>,
) -> Option<Result<Box<RawValue>, RpcError>> {
    if method == "staples_postEnvelope" {
        // A Staples extension next to `shh_post`: an envelope sealed elsewhere, as RLP.
        return Some(
            async {
                let rlp = Params::parse(raw, 1)?.arg(0, params::bytes)?;
                to_raw(&api.post_envelope(rlp).await?.to_string())
            }
            .await,
        );
    }
    let name = method.strip_prefix("shh_")?;
    Some(dispatch(api, name, raw, conn).await)
}

async fn dispatch<S: ShhApi>(
    api: &Arc<S>,
    name: &str,
    raw: Option<&RawValue>,
    conn: &Arc<Conn>,
) -> Result<Box<RawValue>, RpcError> {
    let p = |max| Params::parse(raw, max);
    let hex = |b: Vec<u8>| to_raw(&hex0x(&b));
    match name {
        "version" => {
            p(0)?;
            to_raw(&api.version())
        }
        "info" => {
            p(0)?;
            to_raw(&api.info())
        }
        "setMaxMessageSize" => {
            let size = p(1)?.arg(0, params::uint32)?;
            to_raw(&api.set_max_message_size(size)?)
        }
        "setMinPoW" => {
            let pow = p(1)?.arg(0, params::float64)?;
            to_raw(&api.set_min_pow(pow)?)
        }
        "setBloomFilter" => {
            let bloom = p(1)?.arg(0, params::bytes)?;
            to_raw(&api.set_bloom_filter(bloom)?)
        }
        "markTrustedPeer" => {
            let enode = p(1)?.arg(0, params::string)?;
            to_raw(&api.mark_trusted_peer(enode)?)
        }
        "makeLightClient" => {
            p(0)?;
            to_raw(&api.make_light_client())
        }
        "cancelLightClient" => {
            p(0)?;
            to_raw(&api.cancel_light_client())
        }
        "newKeyPair" => {
            p(0)?;
            to_raw(&api.new_key_pair().await?)
        }
        "addPrivateKey" => {
            let key = p(1)?.arg(0, params::bytes)?;
            to_raw(&api.add_private_key(key).await?)
        }
        "deleteKeyPair" => {
            let id = p(1)?.arg(0, params::string)?;
            to_raw(&api.delete_key_pair(id).await?)
        }
        "hasKeyPair" => {
            let id = p(1)?.arg(0, params::string)?;
            to_raw(&api.has_key_pair(&id))
        }
        "getPublicKey" => {
            let id = p(1)?.arg(0, params::string)?;
            hex(api.get_public_key(&id)?)
        }
        "getPrivateKey" => {
            let id = p(1)?.arg(0, params::string)?;
            hex(api.get_private_key(&id)?)
        }
        "newSymKey" => {
            p(0)?;
            to_raw(&api.new_sym_key().await?)
        }
        "addSymKey" => {
            let key = p(1)?.arg(0, params::bytes)?;
            to_raw(&api.add_sym_key(key).await?)
        }
        "generateSymKeyFromPassword" => {
            let pw = p(1)?.arg(0, params::string)?;
            to_raw(&api.generate_sym_key_from_password(pw).await?)
        }
        "hasSymKey" => {
            let id = p(1)?.arg(0, params::string)?;
            to_raw(&api.has_sym_key(&id))
        }
        "getSymKey" => {
            let id = p(1)?.arg(0, params::string)?;
            hex(api.get_sym_key(&id)?)
        }
        "deleteSymKey" => {
            let id = p(1)?.arg(0, params::string)?;
            to_raw(&api.delete_sym_key(id).await?)
        }
        "post" => {
            let msg = p(1)?.arg(0, NewMessage::decode)?;
            to_raw(&api.post(msg).await?.to_string())
        }
        "newMessageFilter" => {
            let c = p(1)?.arg(0, CriteriaReq::decode)?;
            to_raw(&api.new_message_filter(c).await?)
        }
        "getFilterMessages" => {
            let id = p(1)?.arg(0, params::string)?;
            let Batch {
                messages: msgs,
                receipt,
            } = api.get_filter_messages(&id)?;
            // The poll is the acknowledgement: the messages leave the filter's stored
            // queue once this answer has been written to the connection.
            super::jsonrpc::on_written(receipt);
            let mut out =
                String::with_capacity(2 + msgs.iter().map(|m| m.json.len() + 1).sum::<usize>());
            out.push('[');
            for (i, m) in msgs.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&m.json_for(conn.is_sidecar()));
            }
            out.push(']');
            raw_text(out)
        }
        "deleteMessageFilter" => {
            let id = p(1)?.arg(0, params::string)?;
            to_raw(&api.delete_message_filter(id).await?)
        }
        "subscribe" => subscribe(api, raw, conn).await,
        "unsubscribe" => {
            let ws = conn.ws().ok_or_else(RpcError::notifications_unsupported)?;
            let id = p(1)?.arg(0, params::string)?;
            if ws.unsubscribe(&id) {
                to_raw(&true)
            } else {
                Err(RpcError::subscription_missing())
            }
        }
        _ => Err(RpcError::method_not_found(&format!("shh_{name}"))),
    }
}

async fn subscribe<S: ShhApi>(
    api: &Arc<S>,
    raw: Option<&RawValue>,
    conn: &Arc<Conn>,
) -> Result<Box<RawValue>, RpcError> {
    let ws = conn.ws().ok_or_else(RpcError::notifications_unsupported)?;
    let p = messages_subscription(raw)?;
    let criteria = p.arg(1, CriteriaReq::decode)?;
    let sub_id = ids::subscription_id();
    let sink = ws.sink(&sub_id);
    let sink_ref = sink.handle();
    let filter_id = api.subscribe_messages(criteria, Box::new(sink)).await?;
    let api2 = api.clone();
    ws.register_sink(
        &sink_ref,
        Box::new(move |how| api2.unsubscribe_messages(&filter_id, how)),
    )?;
    to_raw(&sub_id)
}

/// The parameters of `shh_subscribe`, checked as geth checks them: the subscription name
/// first (only `"messages"` exists), then the criteria at index 1.
pub fn messages_subscription(raw: Option<&RawValue>) -> Result<Params<'_>, RpcError> {
    // geth reads the subscription name first, then decodes the rest after it.
    let p = Params::parse(raw, 2).map_err(|e| {
        if e.message == "non-array args" {
            e
        } else {
            RpcError::invalid_params("expected subscription name as first argument")
        }
    })?;
    let name = p
        .raw(0)
        .filter(|r| r.get().trim_start().starts_with('"'))
        .and_then(|r| serde_json::from_str::<String>(r.get()).ok())
        .ok_or_else(|| RpcError::invalid_params("expected subscription name as first argument"))?;
    if name != "messages" {
        return Err(RpcError::subscription_not_found("shh", &name));
    }
    Ok(p)
}
