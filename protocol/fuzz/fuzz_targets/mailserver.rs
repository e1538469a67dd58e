//! The mailserver exchange as a server and a client meet it on `shh/6`: the first byte picks
//! what the rest is.
//! - `0`: a request payload (every generation). Whatever decodes re-encodes to a payload
//!   that decodes the same, and validation never panics.
//! - `1`: a code-125 completion payload. Whatever decodes re-encodes to one that decodes
//!   the same.
//! - `2`: a code-126 request envelope (RLP), opened with the server's fixed node key and the
//!   mailserver password's key and checked against a fixed requesting peer.
#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use staples_protocol::crypto::PrivateKey;
use staples_protocol::mailserver::{self, Completion, Generation};
use staples_protocol::status::OFFLINE_INBOX_PASSWORD;
use staples_protocol::whisper::{Envelope, OpenKey, SymKey, Topic};
use staples_protocol_fuzz::{Format, mutate};
use std::sync::LazyLock;

/// The server's node key, the requesting peer's, and the password's key (PBKDF2 is slow:
/// derive once).
static KEYS: LazyLock<(PrivateKey, PrivateKey, SymKey)> = LazyLock::new(|| {
    (
        PrivateKey::from_bytes(&[0x5e; 32]).expect("valid key"),
        PrivateKey::from_bytes(&[0x9e; 32]).expect("valid key"),
        SymKey::from_password(OFFLINE_INBOX_PASSWORD),
    )
});

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            if let Ok(r) = mailserver::decode(rest) {
                let again = mailserver::decode(&r.encode());
                // A binary payload's re-encoding can start like an RLP list only if `lower`
                // starts with 0xc0..: then RLP is tried first, as status-go does.
                if r.generation != Generation::Binary || rest.first().is_some_and(|b| *b < 0xc0) {
                    assert_eq!(again.as_ref(), Ok(&r));
                }
                if let Ok(v) = r.clone().validate(1_700_000_000, 30 * 24 * 3600) {
                    assert!(v.lower <= v.upper && v.limit >= 1 && v.limit <= mailserver::MAX_LIMIT);
                }
                let _ = r.wants(&Topic([1, 2, 3, 4]));
            }
        }
        1 => {
            if let Ok(c) = Completion::decode(rest) {
                let enc = c.encode();
                // The format is ambiguous for a request id that starts with "ERROR=" (as
                // in status-go, where a hash would have to start so by chance).
                if !matches!(c, Completion::Completed { .. })
                    || !enc.starts_with(mailserver::FAILED_PREFIX)
                {
                    assert_eq!(Completion::decode(&enc), Ok(c));
                }
            }
        }
        _ => {
            if let Ok(env) = Envelope::decode(rest) {
                let (server, peer, sym) = &*KEYS;
                let keys = [OpenKey::Asymmetric(server), OpenKey::Symmetric(sym)];
                let _ = mailserver::open(&env, &keys, &peer.public_key());
            }
        }
    }
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    mutate(data, size, max_size, seed, 1, Format::Rlp, 8, passes)
});

/// The first parser of the mode (for envelopes: it decodes and opens to a signed request
/// from the fixed peer).
fn passes(data: &[u8]) -> bool {
    let Some((mode, rest)) = data.split_first() else {
        return false;
    };
    match mode % 3 {
        0 => mailserver::decode(rest).is_ok(),
        1 => Completion::decode(rest).is_ok(),
        _ => Envelope::decode(rest).is_ok_and(|env| {
            let (server, peer, sym) = &*KEYS;
            let keys = [OpenKey::Asymmetric(server), OpenKey::Symmetric(sym)];
            mailserver::open(&env, &keys, &peer.public_key()).is_ok()
        }),
    }
}
