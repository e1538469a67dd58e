//! Decoding positional JSON-RPC parameters the way go-ethereum does.
//!
//! geth decodes `params` with Go's `encoding/json` (`rpc/json.go parsePositionalArguments`):
//! absent or `null` params mean no arguments; anything but an array is "non-array args";
//! missing trailing arguments are "missing value for required argument N"; extra ones are
//! "too many arguments, want at most N"; a bad argument is "invalid argument N: <Go's json
//! error>". Object arguments match keys case-insensitively (exact match first), in document
//! order with later duplicates winning, and ignore unknown keys. `null` leaves a zero value.
//! Byte fields are `hexutil.Bytes` (`0x` required, even length); topics are exactly 4 bytes.
//! All of these surface as `-32602` errors, with Go's texts so clients see geth's messages.

use std::borrow::Cow;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::errors::RpcError;

/// Go type names used in error texts.
pub mod go {
    /// `string`
    pub const STRING: &str = "string";
    /// `uint32`
    pub const UINT32: &str = "uint32";
    /// `float64`
    pub const FLOAT64: &str = "float64";
    /// `bool`
    pub const BOOL: &str = "bool";
    /// `hexutil.Bytes`
    pub const BYTES: &str = "hexutil.Bytes";
}

/// A decoding failure, rendered as Go's `encoding/json` would.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GoError(pub String);

/// Where a value sits, for Go's error texts.
#[derive(Debug, Clone, Copy)]
pub enum Place<'a> {
    /// A top-level argument.
    Value,
    /// A struct field: (Go struct name, JSON key).
    Field(&'a str, &'a str),
}

impl Place<'_> {
    fn type_error(&self, what: &str, ty: &str) -> GoError {
        match self {
            Place::Value => GoError(format!(
                "json: cannot unmarshal {what} into Go value of type {ty}"
            )),
            Place::Field(s, f) => GoError(format!(
                "json: cannot unmarshal {what} into Go struct field {s}.{f} of type {ty}"
            )),
        }
    }
}

/// The kind of a JSON value, from its first byte.
fn kind(raw: &RawValue) -> &'static str {
    match raw.get().trim_start().as_bytes().first() {
        Some(b'"') => "string",
        Some(b'{') => "object",
        Some(b'[') => "array",
        Some(b't' | b'f') => "bool",
        Some(b'n') => "null",
        _ => "number",
    }
}

/// Positional parameters of one call.
#[derive(Debug)]
pub struct Params<'a> {
    args: Vec<&'a RawValue>,
}

impl<'a> Params<'a> {
    /// Splits `params` into arguments; `max` is the method's argument count.
    pub fn parse(params: Option<&'a RawValue>, max: usize) -> Result<Params<'a>, RpcError> {
        let args = match params {
            None => Vec::new(),
            Some(raw) => match kind(raw) {
                "null" => Vec::new(),
                "array" => serde_json::from_str::<Vec<&RawValue>>(raw.get())
                    .map_err(|e| RpcError::invalid_params(e.to_string()))?,
                _ => return Err(RpcError::invalid_params("non-array args")),
            },
        };
        if args.len() > max {
            return Err(RpcError::invalid_params(format!(
                "too many arguments, want at most {max}"
            )));
        }
        Ok(Params { args })
    }

    /// Argument `i`, required.
    pub fn arg<T>(
        &self,
        i: usize,
        decode: impl FnOnce(&RawValue, Place<'_>) -> Result<T, GoError>,
    ) -> Result<T, RpcError> {
        let raw = self.args.get(i).ok_or_else(|| {
            RpcError::invalid_params(format!("missing value for required argument {i}"))
        })?;
        decode(raw, Place::Value)
            .map_err(|e| RpcError::invalid_params(format!("invalid argument {i}: {e}")))
    }

    /// Number of arguments given.
    pub fn len(&self) -> usize {
        self.args.len()
    }

    /// Whether no argument was given.
    pub fn is_empty(&self) -> bool {
        self.args.is_empty()
    }

    /// The raw argument `i`.
    pub fn raw(&self, i: usize) -> Option<&'a RawValue> {
        self.args.get(i).copied()
    }
}

/// A Go `string`.
pub fn string(raw: &RawValue, at: Place<'_>) -> Result<String, GoError> {
    match kind(raw) {
        "null" => Ok(String::new()),
        "string" => text(raw).map(Cow::into_owned),
        k => Err(at.type_error(k, go::STRING)),
    }
}

/// A Go `uint32` (a JSON number with no fraction or exponent, in range).
pub fn uint32(raw: &RawValue, at: Place<'_>) -> Result<u32, GoError> {
    match kind(raw) {
        "null" => Ok(0),
        "number" => {
            let lit = raw.get().trim();
            lit.parse::<u32>()
                .map_err(|_| at.type_error(&format!("number {lit}"), go::UINT32))
        }
        k => Err(at.type_error(k, go::UINT32)),
    }
}

/// A Go `float64`.
pub fn float64(raw: &RawValue, at: Place<'_>) -> Result<f64, GoError> {
    match kind(raw) {
        "null" => Ok(0.0),
        "number" => {
            let lit = raw.get().trim();
            match lit.parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(f),
                _ => Err(at.type_error(&format!("number {lit}"), go::FLOAT64)),
            }
        }
        k => Err(at.type_error(k, go::FLOAT64)),
    }
}

/// A Go `bool`.
pub fn boolean(raw: &RawValue, at: Place<'_>) -> Result<bool, GoError> {
    match raw.get().trim() {
        "null" | "false" => Ok(false),
        "true" => Ok(true),
        _ => Err(at.type_error(kind(raw), go::BOOL)),
    }
}

/// go-ethereum's `hexutil.Bytes`.
pub fn bytes(raw: &RawValue, at: Place<'_>) -> Result<Vec<u8>, GoError> {
    match kind(raw) {
        "null" => Ok(Vec::new()),
        "string" => {
            let s = text(raw)?;
            decode_hex(&s).map_err(|e| at.type_error(e, go::BYTES))
        }
        _ => Err(at.type_error("non-string", go::BYTES)),
    }
}

/// A whisperv6 `TopicType` (`hexutil.UnmarshalFixedText("Topic", ...)`): its errors are
/// returned by Go's decoder unwrapped.
pub fn topic(raw: &RawValue, at: Place<'_>) -> Result<[u8; 4], GoError> {
    match kind(raw) {
        "null" => Ok([0; 4]),
        "string" => {
            let s = text(raw)?;
            if s.is_empty() {
                return Err(GoError("hex string has length 0, want 8 for Topic".into()));
            }
            let digits = s
                .strip_prefix("0x")
                .or_else(|| s.strip_prefix("0X"))
                .ok_or_else(|| GoError("hex string without 0x prefix".into()))?;
            if digits.len() % 2 != 0 {
                return Err(GoError("hex string of odd length".into()));
            }
            if digits.len() != 8 {
                return Err(GoError(format!(
                    "hex string has length {}, want 8 for Topic",
                    digits.len()
                )));
            }
            let mut out = [0u8; 4];
            hex::decode_to_slice(digits, &mut out)
                .map_err(|_| GoError("invalid hex string".into()))?;
            Ok(out)
        }
        k => Err(at.type_error(k, "whisperv6.TopicType")),
    }
}

/// A Go `[]TopicType` struct field: `null` is none. `field` names it for Go's error text
/// (`Criteria.topics`), `ty` its element type (`whisperv6.TopicType`).
pub fn topics(
    raw: &RawValue,
    at: Place<'_>,
    field: &str,
    ty: &str,
) -> Result<Vec<[u8; 4]>, GoError> {
    match kind(raw) {
        "null" => Ok(Vec::new()),
        "array" => {
            let items: Vec<&RawValue> =
                serde_json::from_str(raw.get()).map_err(|e| GoError(e.to_string()))?;
            items.iter().map(|t| topic(t, at)).collect()
        }
        k => Err(GoError(format!(
            "json: cannot unmarshal {k} into Go struct field {field} of type []{ty}"
        ))),
    }
}

/// Decodes hexutil text; the error is the hexutil message.
pub fn decode_hex(s: &str) -> Result<Vec<u8>, &'static str> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .ok_or("hex string without 0x prefix")?;
    if digits.len() % 2 != 0 {
        return Err("hex string of odd length");
    }
    hex::decode(digits).map_err(|_| "invalid hex string")
}

/// A JSON object's members in document order, duplicates kept. Borrowed from the request
/// text: keys without escapes and every value cost no allocation.
pub struct Members<'a>(pub Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Members<'de>, A::Error> {
                let mut v = Vec::new();
                while let Some((k, val)) = m.next_entry::<Text<'de>, &'de RawValue>()? {
                    v.push((k.0, val));
                }
                Ok(Members(v))
            }
        }
        d.deserialize_map(V)
    }
}

/// A JSON string, borrowed when it has no escapes.
pub struct Text<'a>(pub Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, s: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A JSON string value's text (Go's errors for anything else come from serde's texts).
fn text(raw: &RawValue) -> Result<Cow<'_, str>, GoError> {
    serde_json::from_str::<Text<'_>>(raw.get())
        .map(|t| t.0)
        .map_err(|e| GoError(e.to_string()))
}

/// Decodes a Go struct: `fields` are its JSON keys; `set(index, value)` stores one field.
/// Returns Go's error for a non-object, or the first field error.
pub fn object(
    raw: &RawValue,
    at: Place<'_>,
    go_type: &str,
    fields: &[&str],
    mut set: impl FnMut(usize, &RawValue) -> Result<(), GoError>,
) -> Result<(), GoError> {
    match kind(raw) {
        "null" => return Ok(()),
        "object" => {}
        k => return Err(at.type_error(k, go_type)),
    }
    let members: Members<'_> =
        serde_json::from_str(raw.get()).map_err(|e| GoError(e.to_string()))?;
    for (key, value) in &members.0 {
        // Go prefers an exact match, then falls back to a case-insensitive one.
        let idx = fields
            .iter()
            .position(|f| f == key)
            .or_else(|| fields.iter().position(|f| f.eq_ignore_ascii_case(key)));
        if let Some(i) = idx {
            set(i, value)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.into()).expect("json")
    }

    #[test]
    fn argument_count_and_shape_errors() {
        let err = |p: Option<&str>, max| {
            Params::parse(p.map(raw).as_deref(), max)
                .err()
                .map(|e| (e.code, e.message))
        };
        assert_eq!(
            err(Some(r#"{"a":1}"#), 1),
            Some((-32602, "non-array args".into()))
        );
        assert_eq!(
            err(Some("[1,2]"), 1),
            Some((-32602, "too many arguments, want at most 1".into()))
        );
        assert_eq!(err(None, 1), None);
        assert_eq!(err(Some("null"), 0), None);
        let empty = raw("[]");
        let p = Params::parse(Some(&empty), 1).expect("ok");
        assert_eq!(
            p.arg(0, string).err().map(|e| e.message),
            Some("missing value for required argument 0".into())
        );
    }

    #[test]
    fn scalar_errors_read_like_go() {
        let args = raw(r#"[5, "x", "abc", "0xabc", 1.5, "0x01"]"#);
        let p = Params::parse(Some(&args), 6).expect("ok");
        let msg = |r: Result<(), RpcError>| r.err().map(|e| e.message).unwrap_or_default();
        assert_eq!(
            msg(p.arg(0, string).map(|_| ())),
            "invalid argument 0: json: cannot unmarshal number into Go value of type string"
        );
        assert_eq!(
            msg(p.arg(1, uint32).map(|_| ())),
            "invalid argument 1: json: cannot unmarshal string into Go value of type uint32"
        );
        assert_eq!(
            msg(p.arg(2, bytes).map(|_| ())),
            "invalid argument 2: json: cannot unmarshal hex string without 0x prefix into Go value of type hexutil.Bytes"
        );
        assert_eq!(
            msg(p.arg(3, bytes).map(|_| ())),
            "invalid argument 3: json: cannot unmarshal hex string of odd length into Go value of type hexutil.Bytes"
        );
        assert_eq!(
            msg(p.arg(4, uint32).map(|_| ())),
            "invalid argument 4: json: cannot unmarshal number 1.5 into Go value of type uint32"
        );
        assert_eq!(
            msg(p.arg(5, topic).map(|_| ())),
            "invalid argument 5: hex string has length 2, want 8 for Topic"
        );
        assert_eq!(p.arg(5, bytes).expect("hex"), [1]);
    }

    #[test]
    fn objects_match_keys_case_insensitively_in_document_order() {
        let fields = ["symKeyID", "ttl"];
        let mut got = (String::new(), 0u32);
        object(
            &raw(r#"{"symkeyid":"a","SymKeyID":"b","TTL":7,"unknown":1}"#),
            Place::Value,
            "whisperv6.NewMessage",
            &fields,
            |i, v| {
                let at = Place::Field("NewMessage", fields[i]);
                match i {
                    0 => got.0 = string(v, at)?,
                    _ => got.1 = uint32(v, at)?,
                }
                Ok(())
            },
        )
        .expect("decodes");
        assert_eq!(got, ("b".to_string(), 7));
        let err = object(
            &raw(r#"{"ttl":"x"}"#),
            Place::Value,
            "whisperv6.NewMessage",
            &fields,
            |_, v| uint32(v, Place::Field("NewMessage", "ttl")).map(|_| ()),
        );
        assert_eq!(
            err,
            Err(GoError(
                "json: cannot unmarshal string into Go struct field NewMessage.ttl of type uint32"
                    .into()
            ))
        );
        let err = object(
            &raw("3"),
            Place::Value,
            "whisperv6.NewMessage",
            &fields,
            |_, _| Ok(()),
        );
        assert_eq!(
            err,
            Err(GoError(
                "json: cannot unmarshal number into Go value of type whisperv6.NewMessage".into()
            ))
        );
    }

    #[test]
    fn escaped_keys_and_strings_decode_like_plain_ones() {
        // Borrowed where possible, copied where an escape must be undone: same answers.
        let fields = ["symKeyID", "topic"];
        let mut got = (String::new(), [0u8; 4]);
        object(
            &raw(r#"{"\u0073ymKeyID":"a\"b","topic":"0x0102030\u0034"}"#),
            Place::Value,
            "whisperv6.NewMessage",
            &fields,
            |i, v| {
                let at = Place::Field("NewMessage", fields[i]);
                match i {
                    0 => got.0 = string(v, at)?,
                    _ => got.1 = topic(v, at)?,
                }
                Ok(())
            },
        )
        .expect("decodes");
        assert_eq!(got, ("a\"b".to_string(), [1, 2, 3, 4]));
        assert_eq!(bytes(&raw(r#""0x\u0030a""#), Place::Value), Ok(vec![10]));
    }
}
