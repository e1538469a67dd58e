//! JSON-RPC 2.0 framing as go-ethereum v1.9.7 `rpc/` does it: single calls and batches,
//! notifications (no `id`, no answer), ids echoed byte for byte, keys of the request object
//! matched case-insensitively (Go's decoder), and geth's errors for what is not a call.
//!
//! A body that is not JSON gets one `-32700 "parse error"` answer with a null id; an empty
//! batch gets `-32600 "empty batch"`; an element that is not a call object gets `-32600
//! "invalid request"`. Batch elements run in order, as in geth.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::Arc;

use serde_json::value::RawValue;

use super::Handler;
use super::conn::Conn;
use super::errors::RpcError;
use super::params::{Members, Text};
use crate::node::Receipt;

/// Most calls one batch may carry.
pub const MAX_BATCH: usize = 1000;

/// One decoded request object, borrowed from the request text.
struct Call<'a> {
    id: Option<&'a RawValue>,
    method: Cow<'a, str>,
    params: Option<&'a RawValue>,
}

/// The answer to one body, and the subscription ids it announced (to activate once sent).
pub struct Answer {
    /// Receipts of what the answer hands out (a poll's messages): settle them once the
    /// text has been written to the connection.
    pub receipts: Vec<Receipt>,
    /// The response text; `None` when only notifications were sent.
    pub text: Option<String>,
    /// Subscription ids created by `*_subscribe` calls in this body.
    pub subscribed: Vec<String>,
}

/// Handles one HTTP body or WebSocket text frame.
pub async fn handle<H: Handler>(handler: &Arc<H>, body: &str, conn: &Arc<Conn>) -> Answer {
    WRITTEN
        .scope(RefCell::new(Vec::new()), async {
            let mut answer = handle_in_scope(handler, body, conn).await;
            answer.receipts = WRITTEN.with(|r| r.take());
            answer
        })
        .await
}

tokio::task_local! {
    /// Receipts collected while one request is handled.
    static WRITTEN: RefCell<Vec<Receipt>>;
}

/// Settles `receipt` once the answer of the call being handled has been written to the
/// connection; outside a JSON-RPC request (a direct call) it is settled at once.
pub fn on_written(receipt: Receipt) {
    let mut r = Some(receipt);
    let _ = WRITTEN.try_with(|v| {
        if let Some(r) = r.take() {
            v.borrow_mut().push(r);
        }
    });
    if let Some(r) = r {
        r.written();
    }
}

async fn handle_in_scope<H: Handler>(handler: &Arc<H>, body: &str, conn: &Arc<Conn>) -> Answer {
    let trimmed = body.trim_start();
    let mut subscribed = Vec::new();
    if trimmed.starts_with('[') {
        let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(trimmed) else {
            return single_error(RpcError::parse_error());
        };
        if items.is_empty() {
            return single_error(RpcError::invalid_request("empty batch"));
        }
        if items.len() > MAX_BATCH {
            return single_error(RpcError::invalid_request(format!(
                "batch too large (limit {MAX_BATCH})"
            )));
        }
        let mut answers = Vec::new();
        for item in items {
            if let Some(a) = one(handler, decode(item), conn, &mut subscribed).await {
                answers.push(a);
            }
        }
        let text = (!answers.is_empty()).then(|| format!("[{}]", answers.join(",")));
        Answer {
            text,
            subscribed,
            receipts: Vec::new(),
        }
    } else {
        let Ok(item) = serde_json::from_str::<&RawValue>(trimmed) else {
            return single_error(RpcError::parse_error());
        };
        let text = one(handler, decode(item), conn, &mut subscribed).await;
        Answer {
            text,
            subscribed,
            receipts: Vec::new(),
        }
    }
}

fn single_error(e: RpcError) -> Answer {
    Answer {
        text: Some(error_response(None, &e)),
        subscribed: Vec::new(),
        receipts: Vec::new(),
    }
}

/// Decodes a request object the way Go's `json.Unmarshal` into `jsonrpcMessage` would,
/// ignoring fields of the wrong type. `None` for a value that is not an object.
fn decode(item: &RawValue) -> Option<Call<'_>> {
    let members: Members<'_> = serde_json::from_str(item.get()).ok()?;
    let mut call = Call {
        id: None,
        method: Cow::Borrowed(""),
        params: None,
    };
    for (key, value) in members.0 {
        if key.eq_ignore_ascii_case("id") {
            call.id = Some(value);
        } else if key.eq_ignore_ascii_case("method") {
            call.method = serde_json::from_str::<Text<'_>>(value.get())
                .map(|t| t.0)
                .unwrap_or_default();
        } else if key.eq_ignore_ascii_case("params") {
            call.params = Some(value);
        }
    }
    Some(call)
}

async fn one<H: Handler>(
    handler: &Arc<H>,
    call: Option<Call<'_>>,
    conn: &Arc<Conn>,
    subscribed: &mut Vec<String>,
) -> Option<String> {
    let Some(call) = call else {
        return Some(error_response(
            None,
            &RpcError::invalid_request("invalid request"),
        ));
    };
    // geth: an id that is an object or array is no id at all.
    let valid_id = call
        .id
        .as_ref()
        .is_some_and(|id| !matches!(id.get().trim_start().as_bytes().first(), Some(b'{' | b'[')));
    if call.method.is_empty() {
        let id = if valid_id { call.id } else { None };
        return Some(error_response(
            id,
            &RpcError::invalid_request("invalid request"),
        ));
    }
    let started = std::time::Instant::now();
    let result = handler.call(&call.method, call.params, conn).await;
    let exists = !matches!(&result, Err(e) if e.code == super::errors::METHOD_NOT_FOUND);
    crate::metrics::observe_rpc(&call.method, exists, started.elapsed());
    if !valid_id {
        // A notification: run it, answer nothing.
        return None;
    }
    let id = call.id;
    Some(match result {
        Ok(v) => {
            if call.method.ends_with("_subscribe")
                && let Ok(sub) = serde_json::from_str::<String>(v.get())
            {
                subscribed.push(sub);
            }
            format!(
                r#"{{"jsonrpc":"2.0","id":{},"result":{}}}"#,
                id_text(id),
                v.get()
            )
        }
        Err(e) => error_response(id, &e),
    })
}

fn id_text(id: Option<&RawValue>) -> &str {
    id.map_or("null", |r| r.get())
}

/// A JSON-RPC error response.
pub fn error_response(id: Option<&RawValue>, e: &RpcError) -> String {
    let err = serde_json::to_string(e).unwrap_or_else(|_| r#"{"code":-32000,"message":""}"#.into());
    format!(
        r#"{{"jsonrpc":"2.0","id":{},"error":{}}}"#,
        id_text(id),
        err
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo;
    impl Handler for Echo {
        async fn call(
            &self,
            method: &str,
            params: Option<&RawValue>,
            _conn: &Arc<Conn>,
        ) -> Result<Box<RawValue>, RpcError> {
            match method {
                "echo" => Ok(params
                    .map(|p| p.to_owned())
                    .unwrap_or_else(|| RawValue::from_string("null".into()).expect("json"))),
                m => Err(RpcError::method_not_found(m)),
            }
        }
    }

    async fn run(body: &str) -> Option<String> {
        handle(&Arc::new(Echo), body, &Conn::http()).await.text
    }

    #[tokio::test]
    async fn framing_follows_geth() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                r#"{"jsonrpc":"2.0","id":7,"method":"echo","params":[1]}"#,
                Some(r#"{"jsonrpc":"2.0","id":7,"result":[1]}"#),
            ),
            (
                r#"{"ID":"a","METHOD":"echo"}"#,
                Some(r#"{"jsonrpc":"2.0","id":"a","result":null}"#),
            ),
            (
                "{oops",
                Some(
                    r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}"#,
                ),
            ),
            (
                "[]",
                Some(
                    r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"empty batch"}}"#,
                ),
            ),
            (
                r#"{"id":1,"method":"nope"}"#,
                Some(
                    r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"the method nope does not exist/is not available"}}"#,
                ),
            ),
            (
                r#"{"id":1}"#,
                Some(
                    r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"invalid request"}}"#,
                ),
            ),
            (r#"{"method":"echo"}"#, None),
            (
                r#"[{"id":1,"method":"echo","params":[2]},5,{"method":"echo"}]"#,
                Some(
                    r#"[{"jsonrpc":"2.0","id":1,"result":[2]},{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"invalid request"}}]"#,
                ),
            ),
        ];
        for (body, want) in cases {
            assert_eq!(run(body).await.as_deref(), *want, "{body}");
        }
    }
}
