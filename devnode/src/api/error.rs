//! Bee's error responses, mapped in one place.
//!
//! Bee (`pkg/jsonhttp`) answers every error with `{"code": N, "message": "..."}` and, for
//! parameters that failed to parse, `"reasons": [{"field": ..., "error": ...}]`; the
//! content type is `application/json; charset=utf-8`. Messages here are Bee's where Bee
//! has one, sometimes with detail appended after a colon.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::postage::PostageError;

/// One parameter that failed to parse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// The path, query or header parameter.
    pub field: String,
    /// What was wrong with it.
    pub error: String,
}

/// An error response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The `message` field.
    pub message: String,
    /// The `reasons` field (omitted when empty).
    pub reasons: Vec<Reason>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: u16,
    message: &'a str,
    #[serde(skip_serializing_if = "<[Reason]>::is_empty")]
    reasons: &'a [Reason],
}

impl ApiError {
    /// An error with a message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            reasons: Vec::new(),
        }
    }

    /// 400 with a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404 with a message.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 500 with a message.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// 501 for a Bee feature this node does not have.
    pub fn unsupported(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("{what} is not supported by staples-devnode"),
        )
    }

    /// 400 "invalid {kind} params" with one reason (Bee's `mapStructure` failure).
    pub fn invalid_param(kind: &str, field: &str, error: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: format!("invalid {kind} params"),
            reasons: vec![Reason {
                field: field.to_string(),
                error: error.into(),
            }],
        }
    }

    /// Bee's default body for a status (`{"code":404,"message":"Not Found"}`): Go's
    /// `http.StatusText`, which differs from the `http` crate's reason phrase for 413.
    pub fn status(status: StatusCode) -> Self {
        let text = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "Request Entity Too Large",
            other => other.canonical_reason().unwrap_or(""),
        };
        Self::new(status, text)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(
            self.status,
            &Body {
                code: self.status.as_u16(),
                message: &self.message,
                reasons: &self.reasons,
            },
        )
    }
}

/// A JSON response as Bee writes it: its content type, a trailing newline.
pub fn json_response(status: StatusCode, value: &impl Serialize) -> Response {
    let mut body = match serde_json::to_vec(value) {
        Ok(b) => b,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    body.push(b'\n');
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

/// Maps postage failures on upload routes (`/chunks`, `/bytes`, `/soc`) to Bee's answers.
impl From<PostageError> for ApiError {
    fn from(e: PostageError) -> Self {
        match e {
            PostageError::IssuerNotFound => Self::not_found("batch with id not found"),
            PostageError::UnknownBatch => Self::bad_request("invalid batch id"),
            PostageError::BucketFull { bucket } => Self::new(
                StatusCode::PAYMENT_REQUIRED,
                format!("batch is overissued: bucket {bucket:#06x} is full"),
            ),
            PostageError::SignatureInvalid => Self::bad_request("stamp signature is invalid"),
            e @ (PostageError::InvalidStamp(_)
            | PostageError::InvalidDepth(_)
            | PostageError::InsufficientAmount { .. }
            | PostageError::LabelRequired) => Self::bad_request(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(e: ApiError) -> (StatusCode, String) {
        let r = e.into_response();
        let status = r.status();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 16)
            .await
            .expect("body");
        (status, String::from_utf8(bytes.to_vec()).expect("utf8"))
    }

    #[tokio::test]
    async fn bodies_have_bees_shape() {
        assert_eq!(
            body_of(ApiError::status(StatusCode::NOT_FOUND)).await,
            (
                StatusCode::NOT_FOUND,
                "{\"code\":404,\"message\":\"Not Found\"}\n".to_string()
            )
        );
        let (status, body) = body_of(ApiError::invalid_param(
            "path",
            "address",
            "odd length hex string",
        ))
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            "{\"code\":400,\"message\":\"invalid path params\",\"reasons\":[{\"field\":\"address\",\"error\":\"odd length hex string\"}]}\n"
        );
    }

    #[test]
    fn postage_errors_map_to_bee_statuses() {
        let cases = [
            (PostageError::IssuerNotFound, 404),
            (PostageError::UnknownBatch, 400),
            (PostageError::BucketFull { bucket: 1 }, 402),
            (PostageError::SignatureInvalid, 400),
        ];
        for (e, code) in cases {
            assert_eq!(ApiError::from(e).status.as_u16(), code);
        }
    }
}
