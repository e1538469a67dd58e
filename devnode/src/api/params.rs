//! Parsing of path, query, header and body input the way Bee's `mapStructure` does it,
//! with Bee's 400 "invalid {path,query,header} params" answers (and `reasons`) on failure.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Path parameters; a percent-decoding failure is Bee's 400 "invalid path params".
#[derive(Debug)]
pub struct P<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for P<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(t)| P(t))
            .map_err(|e| ApiError::invalid_param("path", "path", e.body_text()))
    }
}

/// Query parameters as a map (Bee ignores unknown ones).
#[derive(Debug, Default)]
pub struct Q(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Q {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parse_query(parts.uri.query().unwrap_or_default()).map(Q)
    }
}

/// `application/x-www-form-urlencoded` pairs; the first value of a repeated key wins, as
/// Go's `url.Values.Get`.
fn parse_query(query: &str) -> Result<HashMap<String, String>, ApiError> {
    let mut out = HashMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(k)?;
        let v = percent_decode(v)?;
        out.entry(k).or_insert(v);
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Result<String, ApiError> {
    let bad = || ApiError::invalid_param("query", "query", "invalid URL escape");
    let mut bytes = Vec::with_capacity(s.len());
    let mut rest = s.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        match b {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = tail.get(..2).ok_or_else(bad)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
                bytes.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                rest = &tail[2..];
                continue;
            }
            other => bytes.push(other),
        }
        rest = tail;
    }
    String::from_utf8(bytes).map_err(|_| bad())
}

impl Q {
    /// A query value, if present and non-empty (Go's `omitempty` reading).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A decimal `u64` query value.
    pub fn u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.get(name)
            .map(|v| parse_number(v).map_err(|e| ApiError::invalid_param("query", name, e)))
            .transpose()
    }

    /// A decimal `i64` query value.
    pub fn i64(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.get(name)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::invalid_param("query", name, number_error(v)))
            })
            .transpose()
    }
}

/// Decodes hex like Go's `hex.DecodeString` (no `0x`), with its error texts.
pub fn decode_hex(s: &str) -> Result<Vec<u8>, String> {
    if let Some(c) = s.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(format!("invalid hex byte: U+{:04X} '{c}'", u32::from(c)));
    }
    if s.len() % 2 == 1 {
        return Err("odd length hex string".into());
    }
    hex::decode(s).map_err(|e| e.to_string())
}

/// A hex path parameter (Bee: `[]byte` or `swarm.Address` fields).
pub fn path_hex(field: &str, value: &str) -> Result<Vec<u8>, ApiError> {
    decode_hex(value).map_err(|e| ApiError::invalid_param("path", field, e))
}

/// A hex path parameter that must be exactly `N` bytes (Bee: `validate:"len=N"`).
pub fn path_hex_exact<const N: usize>(field: &str, value: &str) -> Result<[u8; N], ApiError> {
    let bytes = path_hex(field, value)?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| {
        ApiError::invalid_param("path", field, format!("want len:{N}, got {}", bytes.len()))
    })
}

/// A header as text; a non-UTF-8 value is a 400.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.trim()).filter(|s| !s.is_empty()))
            .map_err(|_| ApiError::invalid_param("header", name, "not valid text")),
    }
}

/// A boolean header, as Go's `strconv.ParseBool` reads it.
pub fn header_bool(headers: &HeaderMap, name: &str) -> Result<Option<bool>, ApiError> {
    header(headers, name)?
        .map(|v| match v {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
            "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
            _ => Err(ApiError::invalid_param("header", name, "invalid syntax")),
        })
        .transpose()
}

/// A decimal `u64` header.
pub fn header_u64(headers: &HeaderMap, name: &str) -> Result<Option<u64>, ApiError> {
    header(headers, name)?
        .map(|v| parse_number(v).map_err(|e| ApiError::invalid_param("header", name, e)))
        .transpose()
}

/// A hex header.
pub fn header_hex(headers: &HeaderMap, name: &str) -> Result<Option<Vec<u8>>, ApiError> {
    header(headers, name)?
        .map(|v| decode_hex(v).map_err(|e| ApiError::invalid_param("header", name, e)))
        .transpose()
}

/// Reads a request body of at most `limit` bytes. A declared or actual length above the
/// limit is Bee's 413; a body cut off by the client is a 400 (nobody reads the answer).
pub async fn read_body(headers: &HeaderMap, body: Body, limit: u64) -> Result<Bytes, ApiError> {
    let declared =
        header(headers, header::CONTENT_LENGTH.as_str())?.and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|l| l > limit) {
        return Err(ApiError::status(StatusCode::PAYLOAD_TOO_LARGE));
    }
    let mut body = body;
    let mut out = Vec::with_capacity(declared.unwrap_or(0).min(limit).min(1 << 20) as usize);
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::bad_request(format!("cannot read request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if out.len() as u64 + data.len() as u64 > limit {
                return Err(ApiError::status(StatusCode::PAYLOAD_TOO_LARGE));
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(out))
}

fn parse_number(v: &str) -> Result<u64, String> {
    v.parse::<u64>().map_err(|_| number_error(v))
}

/// Go's `strconv` error texts, as Bee puts them in `reasons`.
fn number_error(v: &str) -> String {
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        "value out of range".into()
    } else {
        "invalid syntax".into()
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn hex_errors_read_like_go() {
        assert_eq!(decode_hex("abcd"), Ok(vec![0xab, 0xcd]));
        assert_eq!(decode_hex("abc"), Err("odd length hex string".into()));
        assert_eq!(decode_hex("zz"), Err("invalid hex byte: U+007A 'z'".into()));
        assert_eq!(
            decode_hex("0xab"),
            Err("invalid hex byte: U+0078 'x'".into())
        );
        let e = path_hex_exact::<32>("batch_id", "abcd").expect_err("short");
        assert_eq!(e.reasons[0].error, "want len:32, got 2");
    }

    #[test]
    fn headers_parse_like_go() {
        let mut h = HeaderMap::new();
        h.insert("swarm-pin", HeaderValue::from_static("True"));
        h.insert(
            "swarm-tag",
            HeaderValue::from_static("18446744073709551616"),
        );
        h.insert("swarm-encrypt", HeaderValue::from_static("yes"));
        assert_eq!(header_bool(&h, "swarm-pin"), Ok(Some(true)));
        assert_eq!(header_bool(&h, "swarm-absent"), Ok(None));
        assert_eq!(
            header_u64(&h, "swarm-tag").expect_err("overflow").reasons[0].error,
            "value out of range"
        );
        assert!(header_bool(&h, "swarm-encrypt").is_err());
    }

    #[test]
    fn queries_decode_like_go() {
        let q = parse_query("a=1&b=x%20y+z&a=2&flag&e=").expect("valid");
        assert_eq!(q.get("a").map(String::as_str), Some("1"));
        assert_eq!(q.get("b").map(String::as_str), Some("x y z"));
        assert_eq!(q.get("flag").map(String::as_str), Some(""));
        let q = Q(q);
        assert_eq!(q.get("e"), None, "empty values read as absent");
        for bad in ["a=%zz", "a=%4", "a=%ff"] {
            assert!(parse_query(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_413() {
        let h = HeaderMap::new();
        let ok = read_body(&h, Body::from(vec![1u8; 10]), 10)
            .await
            .expect("fits");
        assert_eq!(ok.len(), 10);
        let err = read_body(&h, Body::from(vec![1u8; 11]), 10)
            .await
            .expect_err("too big");
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
        let mut declared = HeaderMap::new();
        declared.insert(header::CONTENT_LENGTH, HeaderValue::from_static("1000"));
        let err = read_body(&declared, Body::empty(), 10)
            .await
            .expect_err("declared");
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
    }
}
