//! The padding carrier: a DAG [`Header`] inside the padding of a Whisper v6 message.
//!
//! The Whisper plaintext is `flags ‖ size ‖ payload ‖ padding ‖ [signature]`. Legacy
//! clients hand the payload to the app and ignore the padding, and a Whisper signature
//! covers the padding too. So a Staples sender posts the app's payload unchanged as the
//! Whisper payload (R2) and puts the DAG header, which is the message minus its body, in
//! the padding:
//!
//! ```text
//! padding = MAGIC[8] ‖ u16be n ‖ header[n] ‖ filler
//! ```
//!
//! `header` is the canonical `staples.dag.v1.Message` encoding with `body` absent; the
//! Whisper payload is the body, so [`Header::with_body`] rebuilds and verifies the same
//! message (same id, R1) that PSS or Swarm would carry whole. `filler` is the padding the
//! sending app posted ([`encode_padding_with`]): its explicit `padding`, or geth's default
//! (random, sized for the payload as if there were no carrier). A Staples receiver hands
//! the app only the filler ([`app_padding`]), so both ends see geth's padding behaviour.
//! (Older senders wrote zero filler sized by [`Align::Geth`]; receivers hand those zeros
//! on, which no app can tell from random padding.) Padding that does not start with
//! [`MAGIC`] is ordinary padding from a legacy sender: [`decode_padding`] returns `None`.
//! The chance that geth's random padding starts with the 8 magic bytes is 2⁻⁶⁴ per
//! message.
//!
//! Pure byte-slice functions: the Whisper codec (`crate::whisper`) builds and parses the
//! plaintext around them.

use super::message::{Header, MessageError};

/// Marks Staples padding: ASCII `STPLDAG` and the carrier format version 1.
pub const MAGIC: [u8; 8] = *b"STPLDAG\x01";

const LEN_FIELD: usize = 2;
const WHISPER_FLAGS_LEN: usize = 1;
const WHISPER_SIGNATURE_LEN: usize = 65;
const WHISPER_ALIGN: usize = 256;

/// How long the padding should be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    /// Magic, length and header only.
    Exact,
    /// Add zero filler so `flags ‖ size ‖ payload ‖ padding ‖ [signature]` is a multiple
    /// of 256 bytes, as geth's default padding makes it (filler may be 0 bytes here,
    /// because the padding is never empty).
    Geth {
        /// Length of the Whisper payload (the DAG body).
        payload_len: usize,
        /// Whether the Whisper message carries a 65-byte signature.
        signed: bool,
    },
}

/// Errors from [`decode_padding`] on padding that starts with [`MAGIC`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CarrierError {
    /// The padding ends inside the length field.
    #[error("padding ends inside the header length")]
    TruncatedLength,
    /// The length field points past the end of the padding.
    #[error("header length {declared} exceeds the {available} bytes left")]
    LengthOutOfRange {
        /// Declared header length.
        declared: usize,
        /// Bytes after the length field.
        available: usize,
    },
    /// The header bytes do not decode.
    #[error("malformed dag header: {0}")]
    Header(#[from] MessageError),
}

/// The padding bytes carrying `header`.
pub fn encode_padding(header: &Header, align: Align) -> Vec<u8> {
    let encoded = header.encode();
    // Header::encode is at most MAX_HEADER_LEN (403) bytes, far below u16::MAX.
    let len = u16::try_from(encoded.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(MAGIC.len() + LEN_FIELD + encoded.len() + WHISPER_ALIGN);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&encoded);
    if let Align::Geth {
        payload_len,
        signed,
    } = align
    {
        // Summed modulo 256 so that no length, however large, can overflow.
        let m = |x: usize| x % WHISPER_ALIGN;
        let sig = if signed { WHISPER_SIGNATURE_LEN } else { 0 };
        let used = (m(WHISPER_FLAGS_LEN)
            + m(whisper_size_field_len(payload_len))
            + m(payload_len)
            + m(out.len())
            + m(sig))
            % WHISPER_ALIGN;
        out.resize(out.len() + (WHISPER_ALIGN - used) % WHISPER_ALIGN, 0);
    }
    out
}

/// The padding carrying `header`, then `filler`: the padding the sending app posted
/// (explicit, or geth's default for the payload), which receivers hand to their app.
pub fn encode_padding_with(header: &Header, filler: &[u8]) -> Vec<u8> {
    let mut out = encode_padding(header, Align::Exact);
    out.extend_from_slice(filler);
    out
}

/// What the sending app posted as padding, if `padding` is a carrier: the bytes after the
/// header. `None` for ordinary padding, or a carrier whose length field is out of range.
/// The header itself is not decoded here (delivery decodes and verifies it).
pub fn app_padding(padding: &[u8]) -> Option<&[u8]> {
    let rest = padding.strip_prefix(&MAGIC)?;
    let (len, rest) = rest.split_first_chunk::<LEN_FIELD>()?;
    rest.get(usize::from(u16::from_be_bytes(*len))..)
}

/// The header carried in `padding`, `None` for ordinary (legacy) padding. The signature is
/// checked later by [`Header::with_body`] with the Whisper payload.
pub fn decode_padding(padding: &[u8]) -> Result<Option<Header>, CarrierError> {
    let Some(rest) = padding.strip_prefix(&MAGIC) else {
        return Ok(None);
    };
    let (len, rest) = rest
        .split_first_chunk::<LEN_FIELD>()
        .ok_or(CarrierError::TruncatedLength)?;
    let declared = usize::from(u16::from_be_bytes(*len));
    let header = rest.get(..declared).ok_or(CarrierError::LengthOutOfRange {
        declared,
        available: rest.len(),
    })?;
    Ok(Some(Header::decode(header)?))
}

/// Length of the Whisper size field for a payload: the bytes needed to write its length
/// (geth `whisperv6` `getSizeOfPayloadSizeField`): 1 below 256, 2 below 65 536, else 3.
pub fn whisper_size_field_len(payload_len: usize) -> usize {
    let mut n = 1;
    let mut len = payload_len;
    while len >= 256 {
        n += 1;
        len /= 256;
    }
    n
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::crypto::{PrivateKey, keccak256};
    use crate::dag::message::{ChatId, Draft, MessageId};
    use crate::test_vectors::{hex_field, load};

    fn message(body: &[u8]) -> crate::dag::SignedMessage {
        Draft {
            chat_id: ChatId::new([9; 32]),
            clock: 1_600_000_000_000,
            timestamp: 1_600_000_000_000,
            parents: vec![MessageId::from_slice(&[4; 32]).unwrap()],
            ephemeral: false,
            body: body.to_vec(),
        }
        .sign(&PrivateKey::from_bytes(&keccak256(b"carrier")).unwrap())
        .unwrap()
    }

    /// A Whisper plaintext as geth lays it out (without the signature).
    fn plaintext(payload: &[u8], padding: &[u8]) -> Vec<u8> {
        let n = whisper_size_field_len(payload.len());
        let mut out = vec![n as u8];
        out.extend_from_slice(&payload.len().to_le_bytes()[..n]);
        out.extend_from_slice(payload);
        out.extend_from_slice(padding);
        out
    }

    /// What a legacy receiver extracts: geth `ValidateAndParse` for an unsigned message.
    fn legacy_parse(raw: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let n = usize::from(raw[0] & 3);
        let mut size = [0u8; 8];
        size[..n].copy_from_slice(&raw[1..1 + n]);
        let size = usize::try_from(u64::from_le_bytes(size)).unwrap();
        let payload = raw[1 + n..1 + n + size].to_vec();
        (payload, raw[1 + n + size..].to_vec())
    }

    #[test]
    fn legacy_receiver_sees_the_payload_and_staples_the_message() {
        let m = message(b"{\"text\":\"hi\"}");
        let padding = encode_padding(m.header(), Align::Exact);
        let (payload, pad) = legacy_parse(&plaintext(m.body(), &padding));
        assert_eq!(payload, m.body());
        let header = decode_padding(&pad).unwrap().unwrap();
        assert_eq!(header.with_body(payload).unwrap(), m);
    }

    #[test]
    fn geth_alignment_matches_every_default_padding_vector() {
        let v = load("whisper.json");
        let cases = v["default_padding"].as_array().unwrap();
        assert!(!cases.is_empty());
        for c in cases {
            let payload_len = usize::try_from(c["payload_len"].as_u64().unwrap()).unwrap();
            let signed = c["signed"].as_bool().unwrap();
            let sfl = usize::try_from(c["size_field_len"].as_u64().unwrap()).unwrap();
            assert_eq!(whisper_size_field_len(payload_len), sfl, "{c}");
            let m = message(&vec![0x61; payload_len.min(crate::dag::MAX_BODY_LEN)]);
            let padding = encode_padding(
                m.header(),
                Align::Geth {
                    payload_len,
                    signed,
                },
            );
            let total = 1 + sfl + payload_len + padding.len() + if signed { 65 } else { 0 };
            assert_eq!(total % 256, 0, "{c}");
            assert!(padding.len() < encode_padding(m.header(), Align::Exact).len() + 256);
        }
    }

    #[test]
    fn legacy_padding_from_geth_vectors_is_not_staples() {
        let v = load("whisper.json");
        let mut seen = 0;
        for group in ["symmetric", "asymmetric", "plaintext_parse"] {
            for c in v[group].as_array().unwrap() {
                if c.get("padding").and_then(|p| p.as_str()).is_some() {
                    assert_eq!(decode_padding(&hex_field(c, "padding")), Ok(None), "{c}");
                    seen += 1;
                }
            }
        }
        assert!(seen > 10, "only {seen} padding vectors");
    }

    #[test]
    fn malformed_staples_padding_is_a_typed_error() {
        let m = message(b"x");
        let good = encode_padding(m.header(), Align::Exact);
        assert_eq!(
            decode_padding(&good[..9]),
            Err(CarrierError::TruncatedLength)
        );
        assert_eq!(
            decode_padding(&good[..good.len() - 1]),
            Err(CarrierError::LengthOutOfRange {
                declared: good.len() - 10,
                available: good.len() - 11
            })
        );
        let mut bad = good.clone();
        bad[10] ^= 0xff;
        assert!(matches!(decode_padding(&bad), Err(CarrierError::Header(_))));
        assert_eq!(decode_padding(&[]), Ok(None));
        assert_eq!(decode_padding(&MAGIC[..7]), Ok(None));
    }

    #[test]
    fn the_sending_apps_padding_comes_back_out_and_legacy_padding_does_not() {
        let m = message(b"payload");
        for filler in [&b""[..], b"\x00", b"app padding", &[0xaa; 300]] {
            let padding = encode_padding_with(m.header(), filler);
            assert_eq!(app_padding(&padding), Some(filler));
            assert_eq!(decode_padding(&padding).unwrap().as_ref(), Some(m.header()));
        }
        // Zero filler from older senders is handed on as it is.
        let old = encode_padding(
            m.header(),
            Align::Geth {
                payload_len: 7,
                signed: false,
            },
        );
        let exact = encode_padding(m.header(), Align::Exact).len();
        assert_eq!(app_padding(&old), Some(&old[exact..]));
        let v = load("whisper.json");
        for c in v["symmetric"].as_array().unwrap() {
            if c.get("padding").and_then(|p| p.as_str()).is_some() {
                assert_eq!(app_padding(&hex_field(c, "padding")), None, "{c}");
            }
        }
        let good = encode_padding(m.header(), Align::Exact);
        assert_eq!(app_padding(&good[..9]), None, "cut in the length field");
        assert_eq!(
            app_padding(&good[..good.len() - 1]),
            None,
            "length past the end"
        );
    }

    #[test]
    fn filler_is_ignored_and_round_trip_is_exact() {
        let m = message(b"payload");
        let exact = encode_padding(m.header(), Align::Exact);
        let mut with_filler = exact.clone();
        with_filler.extend([0xaa; 40]);
        let h = decode_padding(&with_filler).unwrap().unwrap();
        assert_eq!(&h, m.header());
        assert_eq!(encode_padding(&h, Align::Exact), exact);
    }
}
