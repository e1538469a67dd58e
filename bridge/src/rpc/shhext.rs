//! `shhext_requestMessages` and `shhext_requestMessagesSync` (status-go v0.78's mailserver
//! requests) answered from Swarm in `pss` and `dual` modes (specs/relay.md §6). In
//! `whisper` mode with an upstream node they pass through unchanged; a local Whisper node
//! has no mailserver and no such method, as geth.
//!
//! Parameters, defaults and error texts are status-go's (`services/ext/api.go`,
//! `services/shhext/api_geth.go`). The walk runs against the followed chats' inboxes on
//! Swarm ([`crate::engine::history`]); its envelopes reach the app's filters that take
//! peer-to-peer messages (`allowP2P`), as a mailserver's would. status-go reports
//! completion with a process signal that JSON-RPC clients never see; here
//! `staples_requestCompleted(requestID)` answers with that signal's body once the
//! request is done (`null` before).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::errors::RpcError;
use super::params::{self, GoError, Params, Place};
use super::shh::{ShhApi, to_raw};
use super::shh_local::{ShhService, unix_now};
use crate::engine::history::{Cursor, HistoryQuery, MAX_LIMIT, MAX_WINDOW_SECS};
use crate::keystore::Keys;
use crate::node::Node;
use staples_protocol::whisper::json::hex0x;

/// status-go's `MessagesRequest`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessagesRequest {
    /// The mailserver's enode (any valid one, or empty: the answer comes from Swarm).
    pub mail_server_peer: String,
    /// Window start (unix s); 0 = `to` − 24 h.
    pub from: u32,
    /// Window end (unix s); 0 = now.
    pub to: u32,
    /// Envelopes per page; 0 = 1000.
    pub limit: u32,
    /// Hex, 36 bytes, no `0x`.
    pub cursor: String,
    /// The deprecated single topic.
    pub topic: [u8; 4],
    /// Topics.
    pub topics: Vec<[u8; 4]>,
    /// The mailserver password's key (checked to exist, as status-go does).
    pub sym_key_id: String,
    /// Seconds before the request counts as expired; 0 = 10.
    pub timeout: u32,
    /// Skip the 3-second guard against repeating a request on the same topics.
    pub force: bool,
}

impl MessagesRequest {
    const FIELDS: [&'static str; 10] = [
        "mailServerPeer",
        "from",
        "to",
        "limit",
        "cursor",
        "topic",
        "topics",
        "symKeyID",
        "timeout",
        "force",
    ];

    /// Decodes like Go's `encoding/json` into status-go's struct.
    pub fn decode(raw: &RawValue, at: Place<'_>) -> Result<Self, GoError> {
        let mut r = MessagesRequest::default();
        params::object(raw, at, "ext.MessagesRequest", &Self::FIELDS, |i, v| {
            let at = Place::Field("MessagesRequest", Self::FIELDS[i]);
            match i {
                0 => r.mail_server_peer = params::string(v, at)?,
                1 => r.from = params::uint32(v, at)?,
                2 => r.to = params::uint32(v, at)?,
                3 => r.limit = params::uint32(v, at)?,
                4 => r.cursor = params::string(v, at)?,
                5 => r.topic = params::topic(v, at)?,
                6 => {
                    r.topics = params::topics(v, at, "MessagesRequest.topics", "types.TopicType")?;
                }
                7 => r.sym_key_id = params::string(v, at)?,
                8 => r.timeout = params::uint32(v, at)?,
                _ => r.force = params::boolean(v, at)?,
            }
            Ok(())
        })?;
        Ok(r)
    }

    /// status-go's `SetDefaults`.
    fn set_defaults(&mut self, now: u32) {
        if self.to == 0 {
            self.to = now;
        }
        if self.from == 0 {
            self.from = self.to.saturating_sub(86_400);
        }
        if self.timeout == 0 {
            self.timeout = 10;
        }
    }

    /// The topics asked for: `topics`, else the deprecated `topic` (status-go builds the
    /// bloom from `topic` when `topics` is empty).
    fn all_topics(&self) -> Vec<[u8; 4]> {
        if self.topics.is_empty() {
            vec![self.topic]
        } else {
            self.topics.clone()
        }
    }
}

/// `shhext_requestMessagesSync`'s first argument (Go durations in nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq)]
struct RetryConfig {
    base: Duration,
    step: Duration,
    max_retries: u32,
}

impl RetryConfig {
    fn decode(raw: &RawValue, _at: Place<'_>) -> Result<Self, GoError> {
        let v: Value = serde_json::from_str(raw.get()).map_err(|e| GoError(e.to_string()))?;
        let Some(o) = v.as_object() else {
            return Err(GoError(
                "json: cannot unmarshal non-object into Go value of type ext.RetryConfig".into(),
            ));
        };
        // Go matches keys case-insensitively; the struct has no JSON tags.
        let get = |name: &str| {
            o.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        };
        let nanos = |name: &str| -> Result<Duration, GoError> {
            match get(name) {
                None | Some(Value::Null) => Ok(Duration::ZERO),
                Some(v) => v.as_u64().map(Duration::from_nanos).ok_or_else(|| {
                    GoError(format!(
                        "json: cannot unmarshal {v} into Go struct field RetryConfig.{name} of type time.Duration"
                    ))
                }),
            }
        };
        let max_retries = match get("MaxRetries") {
            None | Some(Value::Null) => 0,
            Some(v) => v.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| {
                GoError(format!(
                    "json: cannot unmarshal {v} into Go struct field RetryConfig.MaxRetries of type int"
                ))
            })?,
        };
        Ok(RetryConfig {
            base: nanos("BaseTimeout")?,
            step: nanos("StepTimeout")?,
            max_retries,
        })
    }
}

/// Requests in flight and done: the 3-second guard, and completions for
/// `staples_requestCompleted`.
#[derive(Default)]
pub struct Requests {
    recent: Mutex<HashMap<Vec<[u8; 4]>, Instant>>,
    done: Mutex<(HashMap<String, Value>, VecDeque<String>)>,
}

/// Completions kept for `staples_requestCompleted`.
const KEEP_DONE: usize = 1024;
/// status-go's default guard against repeating a request on the same topics.
const REPEAT_GUARD: Duration = Duration::from_secs(3);

impl Requests {
    fn finish(&self, id: &str, event: Value) {
        let mut d = self.done.lock().unwrap_or_else(|p| p.into_inner());
        if d.0.insert(id.to_string(), event).is_none() {
            d.1.push_back(id.to_string());
            if d.1.len() > KEEP_DONE
                && let Some(old) = d.1.pop_front()
            {
                d.0.remove(&old);
            }
        }
    }

    fn completed(&self, id: &str) -> Option<Value> {
        self.done
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .get(id)
            .cloned()
    }
}

/// A checked request: the query, the timeout, and the error a mailserver would report.
struct Checked {
    query: HistoryQuery,
    timeout: Duration,
    /// The mailserver's refusal, reported in the completion (as status-go gets it).
    refused: Option<&'static str>,
}

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// What the RPC handler asks of the history service (object-safe, so the handler does
/// not carry the node and key types).
pub trait HistoryApi: Send + Sync + 'static {
    /// Answers `method` if it is one of ours.
    fn call<'a>(
        &'a self,
        method: &'a str,
        raw: Option<&'a RawValue>,
    ) -> Option<BoxFuture<'a, Result<Box<RawValue>, RpcError>>>;
}

/// The history service over a sidecar's `shh` service.
pub struct History<N, K> {
    shh: Arc<ShhService<N, K>>,
    requests: Arc<Requests>,
}

impl<N: Node, K: Keys> History<N, K> {
    /// History for `shh`'s app.
    pub fn new(shh: Arc<ShhService<N, K>>) -> Arc<Self> {
        Arc::new(History {
            shh,
            requests: Arc::default(),
        })
    }
}

/// The methods [`History`] answers.
const METHODS: [&str; 3] = [
    "shhext_requestMessages",
    "shhext_requestMessagesSync",
    "staples_requestCompleted",
];

impl<N: Node, K: Keys> HistoryApi for History<N, K> {
    fn call<'a>(
        &'a self,
        method: &'a str,
        raw: Option<&'a RawValue>,
    ) -> Option<BoxFuture<'a, Result<Box<RawValue>, RpcError>>> {
        METHODS.contains(&method).then(|| {
            Box::pin(answer(&self.shh, &self.requests, method, raw))
                as BoxFuture<'a, Result<Box<RawValue>, RpcError>>
        })
    }
}

/// Answers one of [`METHODS`].
async fn answer<N: Node, K: Keys>(
    shh: &Arc<ShhService<N, K>>,
    requests: &Arc<Requests>,
    method: &str,
    raw: Option<&RawValue>,
) -> Result<Box<RawValue>, RpcError> {
    let p = |max| Params::parse(raw, max);
    match method {
        "shhext_requestMessages" => {
            let r = p(1)?.arg(0, MessagesRequest::decode)?;
            let checked = check(shh, requests, r)?;
            let id = hex0x(&rand::random::<[u8; 32]>());
            let (shh, requests, rid) = (shh.clone(), requests.clone(), id.clone());
            tokio::spawn(async move {
                let event = run(&shh, &rid, checked).await;
                requests.finish(&rid, event);
            });
            to_raw(&id)
        }
        "shhext_requestMessagesSync" => {
            let p = p(2)?;
            let retry = p.arg(0, RetryConfig::decode)?;
            let mut r = p.arg(1, MessagesRequest::decode)?;
            // Every attempt's timeout, whole seconds (status-go truncates; 0 means 10).
            let attempts = retry.max_retries.saturating_add(1);
            let total: Duration = (0..attempts)
                .map(|k| {
                    let t = (retry.base + retry.step * k).as_secs();
                    Duration::from_secs(if t == 0 { 10 } else { t })
                })
                .sum();
            r.timeout = u32::try_from(total.as_secs()).unwrap_or(u32::MAX);
            let checked = check(shh, requests, r)?;
            let id = hex0x(&rand::random::<[u8; 32]>());
            let event = run(shh, &id, checked).await;
            requests.finish(&id, event.clone());
            if event.get("errorMessage").is_none() {
                // Expired: status-go gives up after its retries.
                return Err(RpcError::server(format!(
                    "failed to request messages after {attempts} retries"
                )));
            }
            let error = match event["errorMessage"].as_str() {
                Some("") | None => Value::Null,
                Some(e) => e.into(),
            };
            to_raw(&json!({"cursor": event["cursor"], "error": error}))
        }
        "staples_requestCompleted" => {
            let id = p(1)?.arg(0, params::string)?;
            to_raw(&requests.completed(&id.to_lowercase()))
        }
        _ => Err(RpcError::method_not_found(method)),
    }
}

/// status-go's client-side checks, in its order, with its texts.
fn check<N: Node, K: Keys>(
    shh: &ShhService<N, K>,
    requests: &Requests,
    mut r: MessagesRequest,
) -> Result<Checked, RpcError> {
    let now = unix_now();
    r.set_defaults(now);
    if r.from > r.to {
        return Err(RpcError::server(format!(
            "Query range is invalid: from > to ({} > {})",
            r.from, r.to
        )));
    }
    if !r.mail_server_peer.is_empty() {
        super::shh_local::enode_id(&r.mail_server_peer)
            .map_err(|e| RpcError::server(format!("invalid mailServerPeer value: {e}")))?;
    }
    if !r.sym_key_id.is_empty() && !shh.has_sym_key(&r.sym_key_id) {
        return Err(RpcError::server(
            "invalid symKeyID value: non-existent key ID",
        ));
    }
    let cursor = parse_cursor(&r.cursor)?;
    let topics = r.all_topics();
    if !r.force {
        let mut key = topics.clone();
        key.sort();
        let mut recent = requests.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.retain(|_, at| at.elapsed() < REPEAT_GUARD);
        if recent.contains_key(&key) {
            return Err(RpcError::server(
                "another request with the same topics was sent less than 3s ago. Please wait for a bit longer, or set `force` to true in request parameters",
            ));
        }
        recent.insert(key, Instant::now());
    }
    // What status-go's mailserver refuses (it reports it in the completion).
    let refused = if r.limit > MAX_LIMIT {
        Some("request is invalid: limit exceeds the maximum allowed value")
    } else if r.to - r.from > MAX_WINDOW_SECS {
        Some("request is invalid: query range is too wide (at most 30 days per request)")
    } else {
        None
    };
    Ok(Checked {
        query: HistoryQuery {
            topics,
            from: r.from,
            to: r.to,
            limit: if r.limit == 0 { MAX_LIMIT } else { r.limit },
            cursor,
            originals: false,
        },
        timeout: Duration::from_secs(u64::from(r.timeout)),
        refused,
    })
}

/// status-go's cursor text: hex without `0x`, 36 bytes.
fn parse_cursor(s: &str) -> Result<Option<Cursor>, RpcError> {
    if s.is_empty() {
        return Ok(None);
    }
    let bytes = hex::decode(s)
        .map_err(|e| RpcError::server(format!("invalid cursor: {}", go_hex_error(s, &e))))?;
    <Cursor>::try_from(bytes.as_slice()).map(Some).map_err(|_| {
        RpcError::server(format!(
            "invalid cursor size: expected 36 but got {}",
            bytes.len()
        ))
    })
}

/// Go's `encoding/hex` error text for `s`.
fn go_hex_error(s: &str, e: &hex::FromHexError) -> String {
    match e {
        hex::FromHexError::InvalidHexCharacter { c, .. } => {
            format!("encoding/hex: invalid byte: U+{:04X} '{c}'", *c as u32)
        }
        _ if s.len() % 2 == 1 => "encoding/hex: odd length hex string".into(),
        _ => format!("encoding/hex: {e}"),
    }
}

/// Runs one request to its completion event: `mailserver.request.completed`'s body, or
/// `mailserver.request.expired`'s when the timeout passed first.
async fn run<N: Node, K: Keys>(shh: &ShhService<N, K>, id: &str, c: Checked) -> Value {
    let completed = |last: Option<[u8; 32]>, cursor: Option<Cursor>, error: &str| {
        json!({
            "requestID": id,
            "lastEnvelopeHash": hex0x(&last.unwrap_or([0; 32])),
            "cursor": cursor.map(hex::encode).unwrap_or_default(),
            "errorMessage": error,
        })
    };
    if let Some(why) = c.refused {
        return completed(None, None, why);
    }
    let Some(engine) = shh.engine() else {
        return completed(
            None,
            None,
            "no mailserver: history needs the pss or dual transport",
        );
    };
    let walk = async {
        let page = engine.history_page(&c.query).await?;
        let last = page.envelopes.last().map(|e| e.hash().0);
        shh.deliver_history(page.envelopes).await?;
        Ok::<_, super::shh::ShhError>((last, page.cursor))
    };
    match tokio::time::timeout(c.timeout, walk).await {
        Ok(Ok((last, cursor))) => completed(last, cursor, ""),
        Ok(Err(e)) => completed(None, None, &e.to_string()),
        Err(_) => json!({"ids": null, "hash": id, "message": ""}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.into()).expect("json")
    }

    #[test]
    fn requests_decode_as_status_go_sends_them() {
        let r = MessagesRequest::decode(
            &raw(
                r#"{"mailServerPeer":"enode://ab@127.0.0.1:30303","from":10,"to":20,
                "limit":100,"cursor":"","topics":["0x01020304","0x05060708"],
                "symKeyID":"k","timeout":30,"Force":true,"unknown":1}"#,
            ),
            Place::Value,
        )
        .expect("decodes");
        assert_eq!(r.from, 10);
        assert_eq!(r.topics, [[1, 2, 3, 4], [5, 6, 7, 8]]);
        assert!(r.force, "keys match case-insensitively");
        let err = MessagesRequest::decode(&raw(r#"{"from":"1"}"#), Place::Value);
        assert_eq!(
            err.err().map(|e| e.0),
            Some(
                "json: cannot unmarshal string into Go struct field MessagesRequest.from of type uint32"
                    .into()
            )
        );
        let mut d = MessagesRequest::default();
        d.set_defaults(100_000);
        assert_eq!((d.from, d.to, d.timeout), (100_000 - 86_400, 100_000, 10));
        assert_eq!(d.all_topics(), [[0; 4]], "the deprecated topic, zero");
    }

    #[test]
    fn cursors_and_retry_configs_read_like_go() {
        assert_eq!(parse_cursor("").ok(), Some(None));
        let c = "00".repeat(36);
        assert_eq!(parse_cursor(&c).ok(), Some(Some([0; 36])));
        assert_eq!(
            parse_cursor("0x00").err().map(|e| e.message),
            Some("invalid cursor: encoding/hex: invalid byte: U+0078 'x'".into())
        );
        assert_eq!(
            parse_cursor("0011").err().map(|e| e.message),
            Some("invalid cursor size: expected 36 but got 2".into())
        );
        let r = RetryConfig::decode(
            &raw(r#"{"BaseTimeout":10000000000,"stepTimeout":5000000000,"MaxRetries":2}"#),
            Place::Value,
        )
        .expect("decodes");
        assert_eq!(
            r,
            RetryConfig {
                base: Duration::from_secs(10),
                step: Duration::from_secs(5),
                max_retries: 2
            }
        );
    }
}
