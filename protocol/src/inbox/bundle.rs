//! Page bundles: the sealed messages of one full inbox page in one Swarm object, so a
//! reader catching up fetches one object per 55 messages instead of 55 (normative text:
//! `specs/inbox.md` §6).
//!
//! When a writer's page fills ([`MAX_ENTRIES`] entries, first entry at feed index
//! `first_index`, a multiple of 55), it uploads the page's sealed messages, in page order,
//! as one `/bytes` object, and publishes that object's reference as update `first_index`
//! of its bundle feed (topic `keccak256("staples/bundle/v1" ‖ chat_id)`, owner = its node
//! key). A reader that walks the full page fetches the bundle and takes each message whose
//! Swarm reference (computed from the bytes) is the one the page lists at that position;
//! anything else in the bundle is ignored, and what is missing is fetched one by one. The
//! signed page stays the authority: a bundle can only save requests, never add a message.
//!
//! ```text
//! "STPLBDL\x01" ‖ u16be count ‖ count × (u32be length ‖ sealed message)
//! ```

use super::MAX_ENTRIES;

/// Magic and version.
pub const MAGIC: [u8; 8] = *b"STPLBDL\x01";
/// Largest bundle a writer makes or a reader takes (bigger pages are read one by one).
pub const MAX_BUNDLE_LEN: usize = 1 << 20;

/// Why bytes are not a bundle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// Not a Staples v1 bundle.
    #[error("not a Staples v1 bundle")]
    Magic,
    /// Ends inside a field.
    #[error("bundle truncated")]
    Truncated,
    /// More messages than a page lists, or bytes after the last.
    #[error("bundle holds {0} messages or trailing bytes (a page lists at most {MAX_ENTRIES})")]
    Shape(usize),
    /// Larger than [`MAX_BUNDLE_LEN`].
    #[error("bundle of {0} bytes exceeds {MAX_BUNDLE_LEN}")]
    TooLarge(usize),
}

/// Encodes `messages` (a full page's sealed messages, in page order); `None` when they do
/// not fit [`MAX_BUNDLE_LEN`] or are more than a page lists.
pub fn encode<M: AsRef<[u8]>>(messages: &[M]) -> Option<Vec<u8>> {
    if messages.len() > MAX_ENTRIES {
        return None;
    }
    let len = 10 + messages.iter().map(|m| 4 + m.as_ref().len()).sum::<usize>();
    if len > MAX_BUNDLE_LEN {
        return None;
    }
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&u16::try_from(messages.len()).ok()?.to_be_bytes());
    for m in messages {
        out.extend_from_slice(&u32::try_from(m.as_ref().len()).ok()?.to_be_bytes());
        out.extend_from_slice(m.as_ref());
    }
    Some(out)
}

/// Splits a bundle into its sealed messages (borrowed), in order.
pub fn decode(bytes: &[u8]) -> Result<Vec<&[u8]>, BundleError> {
    if bytes.len() > MAX_BUNDLE_LEN {
        return Err(BundleError::TooLarge(bytes.len()));
    }
    let rest = bytes.strip_prefix(&MAGIC[..]).ok_or(BundleError::Magic)?;
    let (count, mut rest) = rest
        .split_first_chunk::<2>()
        .ok_or(BundleError::Truncated)?;
    let count = usize::from(u16::from_be_bytes(*count));
    if count > MAX_ENTRIES {
        return Err(BundleError::Shape(count));
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or(BundleError::Truncated)?;
        let len = usize::try_from(u32::from_be_bytes(*len)).map_err(|_| BundleError::Truncated)?;
        if tail.len() < len {
            return Err(BundleError::Truncated);
        }
        let (m, tail) = tail.split_at(len);
        out.push(m);
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(BundleError::Shape(count));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_malformed_bundles() {
        let messages: Vec<Vec<u8>> = (0..MAX_ENTRIES).map(|i| vec![i as u8; i * 7]).collect();
        let b = encode(&messages).expect("fits");
        let back = decode(&b).expect("decodes");
        assert_eq!(back.len(), MAX_ENTRIES);
        assert!(back.iter().zip(&messages).all(|(a, b)| *a == b.as_slice()));
        assert_eq!(decode(&b[..b.len() - 1]), Err(BundleError::Truncated));
        let mut trailing = b.clone();
        trailing.push(0);
        assert_eq!(decode(&trailing), Err(BundleError::Shape(MAX_ENTRIES)));
        let mut magic = b.clone();
        magic[7] = 2;
        assert_eq!(decode(&magic), Err(BundleError::Magic));
        let mut count = b;
        count[8..10].copy_from_slice(&56u16.to_be_bytes());
        assert_eq!(decode(&count), Err(BundleError::Shape(56)));
        assert!(encode(&vec![vec![0u8; 1]; MAX_ENTRIES + 1]).is_none());
        assert!(encode(&[vec![0u8; MAX_BUNDLE_LEN]]).is_none());
    }
}
