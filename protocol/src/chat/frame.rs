//! The PSS frame: what one Staples PSS message carries.
//!
//! `"STPLPSS\x01" ‖ kind(1) ‖ chat_id(32) ‖ body`, kind 1: the sealed message (a Whisper
//! envelope, RLP) inline; kind 2: its 32-byte Swarm reference, for messages that do not
//! fit one PSS payload (R6). The frame itself is not trusted: the receiver opens the
//! envelope with the chat's key and verifies the DAG signature inside, and checks that the
//! message names the frame's chat.

use crate::dag::ChatId;
use crate::swarm::pss::MAX_PAYLOAD_SIZE;

/// Magic and version.
pub const MAGIC: [u8; 8] = *b"STPLPSS\x01";
/// Bytes before the body.
pub const HEADER_LEN: usize = 8 + 1 + 32;
/// The largest envelope that rides inline.
pub const MAX_INLINE: usize = MAX_PAYLOAD_SIZE - HEADER_LEN;

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Shorter than the header.
    #[error("PSS frame too short ({0} bytes)")]
    TooShort(usize),
    /// Not a Staples v1 frame.
    #[error("not a Staples v1 PSS frame")]
    Magic,
    /// Unknown kind byte.
    #[error("unknown PSS frame kind {0}")]
    Kind(u8),
    /// A reference frame whose body is not 32 bytes.
    #[error("reference frame body must be 32 bytes, got {0}")]
    Reference(usize),
    /// An inline frame that is empty or over the PSS payload.
    #[error("inline frame body of {0} bytes is empty or too large")]
    Inline(usize),
}

/// What the frame carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameBody {
    /// The sealed message itself.
    Inline(Vec<u8>),
    /// Where to download it.
    Reference([u8; 32]),
}

/// One PSS frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The chat the message belongs to.
    pub chat: ChatId,
    /// The message or its reference.
    pub body: FrameBody,
}

impl Frame {
    /// A frame for `sealed`: inline when it fits, else by `reference`.
    pub fn for_message(chat: ChatId, sealed: &[u8], reference: [u8; 32]) -> Self {
        let body = if sealed.len() <= MAX_INLINE {
            FrameBody::Inline(sealed.to_vec())
        } else {
            FrameBody::Reference(reference)
        };
        Self { chat, body }
    }

    /// Encodes the frame.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, body): (u8, &[u8]) = match &self.body {
            FrameBody::Inline(b) => (1, b),
            FrameBody::Reference(r) => (2, r),
        };
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.extend_from_slice(&MAGIC);
        out.push(kind);
        out.extend_from_slice(self.chat.as_bytes());
        out.extend_from_slice(body);
        out
    }

    /// Decodes a frame.
    pub fn decode(bytes: &[u8]) -> Result<Self, FrameError> {
        if bytes.len() < HEADER_LEN {
            return Err(FrameError::TooShort(bytes.len()));
        }
        if bytes[..8] != MAGIC {
            return Err(FrameError::Magic);
        }
        let mut chat = [0u8; 32];
        chat.copy_from_slice(&bytes[9..41]);
        let body = &bytes[HEADER_LEN..];
        let body = match bytes[8] {
            1 if !body.is_empty() && body.len() <= MAX_INLINE => FrameBody::Inline(body.to_vec()),
            1 => return Err(FrameError::Inline(body.len())),
            2 => FrameBody::Reference(
                body.try_into()
                    .map_err(|_| FrameError::Reference(body.len()))?,
            ),
            k => return Err(FrameError::Kind(k)),
        };
        Ok(Self {
            chat: ChatId::new(chat),
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_until_it_does_not_fit() {
        let chat = ChatId::new([4; 32]);
        let small = Frame::for_message(chat, &[1; MAX_INLINE], [9; 32]);
        assert!(matches!(small.body, FrameBody::Inline(_)));
        assert!(small.encode().len() <= MAX_PAYLOAD_SIZE);
        let big = Frame::for_message(chat, &[1; MAX_INLINE + 1], [9; 32]);
        assert_eq!(big.body, FrameBody::Reference([9; 32]));
        for f in [small, big] {
            assert_eq!(Frame::decode(&f.encode()), Ok(f));
        }
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(Frame::decode(b"short"), Err(FrameError::TooShort(5)));
        let mut f = Frame::for_message(ChatId::new([0; 32]), b"x", [0; 32]).encode();
        f[8] = 7;
        assert_eq!(Frame::decode(&f), Err(FrameError::Kind(7)));
        f[8] = 2;
        assert_eq!(Frame::decode(&f), Err(FrameError::Reference(1)));
        f.truncate(HEADER_LEN);
        f[8] = 1;
        assert_eq!(Frame::decode(&f), Err(FrameError::Inline(0)));
        f[0] = b'X';
        assert_eq!(Frame::decode(&f), Err(FrameError::Magic));
    }
}
