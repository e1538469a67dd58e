//! JSON-RPC error objects and the one place where errors get their codes.
//!
//! Codes and texts follow go-ethereum v1.9.7 `rpc/errors.go` and `rpc/handler.go`: a method's
//! own error is `-32000` with the Go error text; unknown methods `-32601` ("the method X does
//! not exist/is not available"); bad parameters `-32602`; a body that is not JSON `-32700`
//! ("parse error"); a message that is not a call `-32600` ("invalid request").

use serde::Serialize;

/// geth's `defaultErrorCode`, used for every error a method returns.
pub const SERVER_ERROR: i64 = -32000;
/// Unknown method or subscription.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Parameters that do not decode.
pub const INVALID_PARAMS: i64 = -32602;
/// Not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// JSON, but not a JSON-RPC call.
pub const INVALID_REQUEST: i64 = -32600;

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[error("{message} ({code})")]
pub struct RpcError {
    /// The error code.
    pub code: i64,
    /// The message.
    pub message: String,
}

impl RpcError {
    /// A method's own error (`-32000`).
    pub fn server(message: impl Into<String>) -> Self {
        RpcError {
            code: SERVER_ERROR,
            message: message.into(),
        }
    }

    /// Unknown method.
    pub fn method_not_found(method: &str) -> Self {
        RpcError {
            code: METHOD_NOT_FOUND,
            message: format!("the method {method} does not exist/is not available"),
        }
    }

    /// Unknown subscription name in a namespace.
    pub fn subscription_not_found(namespace: &str, name: &str) -> Self {
        RpcError {
            code: METHOD_NOT_FOUND,
            message: format!("no {name:?} subscription in {namespace} namespace"),
        }
    }

    /// Parameters that do not decode.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        RpcError {
            code: INVALID_PARAMS,
            message: message.into(),
        }
    }

    /// Body that is not JSON.
    pub fn parse_error() -> Self {
        RpcError {
            code: PARSE_ERROR,
            message: "parse error".into(),
        }
    }

    /// A message that is not a call.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        RpcError {
            code: INVALID_REQUEST,
            message: message.into(),
        }
    }

    /// geth's `ErrNotificationsUnsupported` (subscriptions over HTTP).
    pub fn notifications_unsupported() -> Self {
        Self::server("notifications not supported")
    }

    /// geth's `ErrSubscriptionNotFound`.
    pub fn subscription_missing() -> Self {
        Self::server("subscription not found")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_and_codes_are_geths() {
        let e = RpcError::method_not_found("shh_nope");
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                -32601,
                "the method shh_nope does not exist/is not available"
            )
        );
        let e = RpcError::subscription_not_found("shh", "logs");
        assert_eq!(e.message, r#"no "logs" subscription in shh namespace"#);
        assert_eq!(
            serde_json::to_string(&RpcError::parse_error()).expect("serialises"),
            r#"{"code":-32700,"message":"parse error"}"#
        );
    }
}
