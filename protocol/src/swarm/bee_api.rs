//! What the sidecar reads out of Bee's HTTP API answers (Bee 2.8, `shared/reference/bee-api.md`):
//! the JSON bodies of `/addresses`, `/peers`, `/stamps`, `POST /stamps`, `/bytes`, error
//! bodies, and the `Swarm-Feed-Index` header. Sans-IO so that the parsing of everything a
//! (possibly hostile or broken) Bee node says is one fuzzable place; the HTTP client lives in
//! the bridge.
//!
//! Each reader takes the raw body, checks the shape it needs and nothing more (Bee adds
//! fields between releases), and returns [`BeeApiError`] naming the answer and the field.
//! Values that end up in a URL or a header (batch ids) are checked to be what Bee issues:
//! 32 bytes of hex.

use serde::Deserialize;

use crate::crypto::PublicKey;

/// Longest error text kept from a Bee error body.
pub const MAX_ERROR_CHARS: usize = 200;

/// An answer that is not what Bee sends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BeeApiError {
    /// The body is not JSON of the expected shape.
    #[error("{answer}: {reason}")]
    Json {
        /// Which answer.
        answer: &'static str,
        /// serde's description.
        reason: String,
    },
    /// A field has a value Bee would not send.
    #[error("{answer}: bad {field}")]
    Field {
        /// Which answer.
        answer: &'static str,
        /// Which field.
        field: &'static str,
    },
}

/// A postage batch id: 32 bytes, kept as Bee writes it (64 lowercase hex digits).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BatchId(String);

impl BatchId {
    /// Checks that `s` is 32 bytes of hex (with or without `0x`).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.strip_prefix("0x").unwrap_or(s);
        let mut b = [0u8; 32];
        hex::decode_to_slice(s, &mut b).ok()?;
        Some(BatchId(hex::encode(b)))
    }

    /// The id as the `Swarm-Postage-Batch-Id` header and `/stamps/{id}` take it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `GET /addresses`: what PSS needs from the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addresses {
    /// The node's overlay address.
    pub overlay: [u8; 32],
    /// The key PSS messages to this node are encrypted to.
    pub pss_public_key: PublicKey,
}

fn json<'a, T: Deserialize<'a>>(answer: &'static str, body: &'a [u8]) -> Result<T, BeeApiError> {
    serde_json::from_slice(body).map_err(|e| BeeApiError::Json {
        answer,
        reason: e.to_string(),
    })
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    let mut b = [0u8; 32];
    hex::decode_to_slice(s.strip_prefix("0x").unwrap_or(s), &mut b).ok()?;
    Some(b)
}

/// `GET /addresses`.
pub fn addresses(body: &[u8]) -> Result<Addresses, BeeApiError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Raw<'a> {
        overlay: &'a str,
        pss_public_key: &'a str,
    }
    const A: &str = "/addresses";
    let raw: Raw<'_> = json(A, body)?;
    let bad = |field| BeeApiError::Field { answer: A, field };
    let overlay = hex32(raw.overlay).ok_or(bad("overlay"))?;
    let pss_public_key = hex::decode(raw.pss_public_key.trim_start_matches("0x"))
        .ok()
        .and_then(|b| PublicKey::from_bytes(&b).ok())
        .ok_or(bad("pssPublicKey"))?;
    Ok(Addresses {
        overlay,
        pss_public_key,
    })
}

/// What kind of Bee node answers (`GET /node`'s `beeMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeeMode {
    /// Stores, forwards and receives PSS.
    Full,
    /// Uploads and downloads, but receives no PSS (phones, browsers).
    Light,
    /// Downloads only: no postage, so no uploads and no PSS sends.
    UltraLight,
    /// A development node (bee-js maps it; it behaves as full).
    Dev,
}

impl BeeMode {
    /// Every mode, as Bee names them.
    pub const ALL: [BeeMode; 4] = [
        BeeMode::Full,
        BeeMode::Light,
        BeeMode::UltraLight,
        BeeMode::Dev,
    ];

    /// The mode Bee calls `name`.
    pub fn parse(name: &str) -> Option<BeeMode> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// As Bee writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            BeeMode::Full => "full",
            BeeMode::Light => "light",
            BeeMode::UltraLight => "ultra-light",
            BeeMode::Dev => "dev",
        }
    }

    /// Whether PSS messages reach this node (only full nodes receive them).
    pub fn receives_pss(self) -> bool {
        matches!(self, BeeMode::Full | BeeMode::Dev)
    }

    /// Whether this node can upload (stamp chunks, send PSS).
    pub fn uploads(self) -> bool {
        self != BeeMode::UltraLight
    }
}

/// `GET /node`: the node's mode; any other `beeMode` is refused, as bee-js refuses it.
pub fn node_mode(body: &[u8]) -> Result<BeeMode, BeeApiError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Raw<'a> {
        bee_mode: &'a str,
    }
    const A: &str = "/node";
    BeeMode::parse(json::<Raw<'_>>(A, body)?.bee_mode).ok_or(BeeApiError::Field {
        answer: A,
        field: "beeMode",
    })
}

/// `GET /peers`: how many peers the node has.
pub fn peer_count(body: &[u8]) -> Result<usize, BeeApiError> {
    #[derive(Deserialize)]
    struct Raw {
        peers: Vec<serde::de::IgnoredAny>,
    }
    Ok(json::<Raw>("/peers", body)?.peers.len())
}

/// `GET /stamps`: the first batch that is usable and not expired, if any.
pub fn usable_batch(body: &[u8]) -> Result<Option<BatchId>, BeeApiError> {
    #[derive(Deserialize)]
    struct Raw {
        stamps: Vec<Stamp>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Stamp {
        #[serde(rename = "batchID")]
        batch_id: String,
        #[serde(default)]
        usable: bool,
        #[serde(rename = "batchTTL")]
        batch_ttl: Option<i64>,
    }
    let raw: Raw = json("/stamps", body)?;
    Ok(raw
        .stamps
        .into_iter()
        .filter(|s| s.usable && s.batch_ttl.is_none_or(|t| t > 0))
        .find_map(|s| BatchId::parse(&s.batch_id)))
}

/// `POST /stamps/{amount}/{depth}`: the new batch's id.
pub fn bought_batch(body: &[u8]) -> Result<BatchId, BeeApiError> {
    #[derive(Deserialize)]
    struct Raw {
        #[serde(rename = "batchID")]
        batch_id: String,
    }
    const A: &str = "buy batch";
    BatchId::parse(&json::<Raw>(A, body)?.batch_id).ok_or(BeeApiError::Field {
        answer: A,
        field: "batchID",
    })
}

/// `GET /stamps/{id}`: whether the batch can stamp yet.
pub fn stamp_usable(body: &[u8]) -> Result<bool, BeeApiError> {
    #[derive(Deserialize)]
    struct Raw {
        #[serde(default)]
        usable: bool,
    }
    Ok(json::<Raw>("stamp", body)?.usable)
}

/// The `reference` of an upload answer (`POST /bytes`, `/chunks`, `/soc`).
pub fn reference(answer: &'static str, body: &[u8]) -> Result<[u8; 32], BeeApiError> {
    #[derive(Deserialize)]
    struct Raw<'a> {
        reference: &'a str,
    }
    hex32(json::<Raw<'_>>(answer, body)?.reference).ok_or(BeeApiError::Field {
        answer,
        field: "reference",
    })
}

/// The text of an error answer: Bee's `{"message": …}`, else the body itself, cut to
/// [`MAX_ERROR_CHARS`] characters.
pub fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Raw {
        message: String,
    }
    let text = match serde_json::from_slice::<Raw>(body) {
        Ok(r) => r.message,
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    text.chars().take(MAX_ERROR_CHARS).collect()
}

/// The `Swarm-Feed-Index` header of a feed lookup: 8 bytes, big-endian, in hex.
pub fn feed_index(header: &[u8]) -> Result<u64, BeeApiError> {
    let mut b = [0u8; 8];
    hex::decode_to_slice(header, &mut b).map_err(|_| BeeApiError::Field {
        answer: "feed lookup",
        field: "Swarm-Feed-Index",
    })?;
    Ok(u64::from_be_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Shapes as Bee 2.8 answers (shared/reference/bee-api.md); values made up.
    const BATCH: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";

    #[test]
    fn stamps_pick_the_first_usable_unexpired_batch() {
        let other = "00".repeat(32);
        let body = serde_json::json!({"stamps": [
            {"batchID": other, "usable": false, "batchTTL": 100, "depth": 20},
            {"batchID": other, "usable": true, "batchTTL": 0},
            {"batchID": "0xnothex", "usable": true},
            {"batchID": BATCH, "usable": true, "batchTTL": 5, "utilization": 0},
        ]})
        .to_string();
        assert_eq!(
            usable_batch(body.as_bytes()).map(|b| b.map(|b| b.as_str().to_string())),
            Ok(Some(BATCH.to_string()))
        );
        assert_eq!(usable_batch(br#"{"stamps": []}"#), Ok(None));
        assert!(matches!(
            usable_batch(br#"{"stamps": 3}"#),
            Err(BeeApiError::Json { .. })
        ));
    }

    #[test]
    fn a_batch_id_that_is_not_32_bytes_of_hex_is_refused() {
        // It goes into a header and a path: no CRLF, no slashes.
        for bad in ["", "ab", "x\r\nInjected: 1", &format!("{BATCH}00")] {
            let body = serde_json::json!({"batchID": bad}).to_string();
            assert_eq!(
                bought_batch(body.as_bytes()),
                Err(BeeApiError::Field {
                    answer: "buy batch",
                    field: "batchID"
                })
            );
        }
        let body = serde_json::json!({"batchID": BATCH.to_uppercase()}).to_string();
        assert_eq!(
            bought_batch(body.as_bytes()).map(|b| b.as_str().to_string()),
            Ok(BATCH.to_string())
        );
    }

    #[test]
    fn addresses_need_a_valid_overlay_and_pss_key() {
        let key = crate::crypto::PrivateKey::from_bytes(&[7; 32])
            .expect("key")
            .public_key();
        let good = serde_json::json!({
            "overlay": "11".repeat(32),
            "underlay": [],
            "ethereum": "0x00",
            "publicKey": hex::encode(key.to_compressed()),
            "pssPublicKey": hex::encode(key.to_compressed()),
        })
        .to_string();
        let a = addresses(good.as_bytes()).expect("valid");
        assert_eq!((a.overlay, a.pss_public_key), ([0x11; 32], key));
        let bad_key = good.replace(&hex::encode(key.to_compressed()), "02ff");
        assert_eq!(
            addresses(bad_key.as_bytes()),
            Err(BeeApiError::Field {
                answer: "/addresses",
                field: "pssPublicKey"
            })
        );
    }

    #[test]
    fn node_modes_read_as_bee_js_reads_them() {
        for (text, mode) in [
            ("full", BeeMode::Full),
            ("light", BeeMode::Light),
            ("ultra-light", BeeMode::UltraLight),
            ("dev", BeeMode::Dev),
        ] {
            let body = serde_json::json!({"beeMode": text, "chequebookEnabled": true, "swapEnabled": false});
            assert_eq!(node_mode(body.to_string().as_bytes()), Ok(mode));
            assert_eq!(mode.as_str(), text);
        }
        assert!(node_mode(br#"{"beeMode":"heavy"}"#).is_err());
        assert!(node_mode(b"{}").is_err());
        assert!(!BeeMode::Light.receives_pss() && BeeMode::Light.uploads());
        assert!(!BeeMode::UltraLight.uploads());
    }

    #[test]
    fn small_answers() {
        assert_eq!(peer_count(br#"{"peers":[{"address":"ab"},{}]}"#), Ok(2));
        assert!(peer_count(b"{}").is_err());
        assert_eq!(stamp_usable(br#"{"usable":true,"exists":true}"#), Ok(true));
        assert_eq!(stamp_usable(br#"{"exists":false}"#), Ok(false));
        let r = serde_json::json!({"reference": "22".repeat(32)}).to_string();
        assert_eq!(reference("/bytes", r.as_bytes()), Ok([0x22; 32]));
        assert!(reference("/bytes", br#"{"reference": "22"}"#).is_err());
        assert_eq!(feed_index(b"0000000000000102"), Ok(258));
        assert!(feed_index(b"0102").is_err());
        assert_eq!(
            error_message(br#"{"code":402,"message":"batch is overissued"}"#),
            "batch is overissued"
        );
        assert_eq!(error_message(b"plain text"), "plain text");
        assert_eq!(
            error_message("é".repeat(300).as_bytes()).chars().count(),
            200
        );
    }

    proptest! {
        #[test]
        fn no_body_panics_a_reader(b in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = addresses(&b);
            let _ = peer_count(&b);
            let _ = usable_batch(&b);
            let _ = bought_batch(&b);
            let _ = stamp_usable(&b);
            let _ = reference("x", &b);
            let _ = feed_index(&b);
            let _ = node_mode(&b);
            prop_assert!(error_message(&b).chars().count() <= MAX_ERROR_CHARS);
        }

        #[test]
        fn any_batch_id_bee_issues_is_kept(id in any::<[u8; 32]>()) {
            let body = serde_json::json!({"batchID": hex::encode(id)}).to_string();
            prop_assert_eq!(bought_batch(body.as_bytes()).map(|b| b.as_str().to_string()), Ok(hex::encode(id)));
        }
    }
}
