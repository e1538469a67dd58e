//! Structure-aware DAG messages: the fuzzer builds a valid-shaped message (clock,
//! timestamp, up to 8 parents, body, author), which is signed and encoded by the crate,
//! then a few bytes of the encoding are changed. Properties: the untouched encoding
//! decodes to the same message (id, author, bytes); a changed one is either refused with a
//! typed error or decodes canonically to a message whose id or author differs, so no edit
//! passes as the original; a forged signature (every byte replaced) is refused as such.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use staples_protocol::crypto::{PrivateKey, keccak256};
use staples_protocol::dag::{ChatId, Draft, MessageError, MessageId, SignedMessage};

#[derive(Debug, Arbitrary)]
struct Input {
    author: u8,
    clock: u64,
    timestamp: u64,
    parents: Vec<[u8; 32]>,
    ephemeral: bool,
    body: Vec<u8>,
    /// (position, xor mask) edits of the encoding.
    edits: Vec<(u16, u8)>,
    forged_signature: [u8; 65],
}

fuzz_target!(|inp: Input| {
    let Ok(key) = PrivateKey::from_bytes(&keccak256(&[inp.author])) else {
        return;
    };
    let mut parents: Vec<MessageId> = inp
        .parents
        .iter()
        .take(8)
        .filter_map(|p| MessageId::from_slice(p).ok())
        .collect();
    parents.sort_unstable();
    parents.dedup();
    let draft = Draft {
        chat_id: ChatId::new([3; 32]),
        clock: inp.clock,
        timestamp: inp.timestamp,
        parents,
        ephemeral: inp.ephemeral,
        body: inp.body,
    };
    let Ok(m) = draft.sign(&key) else {
        return;
    };
    let bytes = m.encode();
    let again = SignedMessage::decode(&bytes).expect("our own encoding decodes");
    assert_eq!(again.id(), m.id());
    assert_eq!(again.author(), m.author());
    assert_eq!(again.author(), &key.public_key());
    assert_eq!(again.encode(), bytes);

    let mut edited = bytes.clone();
    for (pos, mask) in inp.edits.iter().take(4) {
        let i = usize::from(*pos) % edited.len();
        edited[i] ^= mask;
    }
    if edited != bytes
        && let Ok(e) = SignedMessage::decode(&edited)
    {
        assert_eq!(e.encode(), edited, "decoded edits are canonical");
        assert!(
            e.id() != m.id() || e.author() != m.author(),
            "an edited message passes as the original"
        );
    }

    // Replace the signature bytes in the encoding with the fuzzer's: never the author's.
    let signature = m.header().signature().0;
    let sig_at = bytes.windows(65).rposition(|w| w == signature);
    if let Some(at) = sig_at
        && inp.forged_signature != signature
    {
        let mut forged = bytes.clone();
        forged[at..at + 65].copy_from_slice(&inp.forged_signature);
        match SignedMessage::decode(&forged) {
            Ok(f) => assert_ne!(
                f.author(),
                m.author(),
                "a forged signature keeps the author"
            ),
            Err(e) => assert!(
                matches!(
                    e,
                    MessageError::Signature(_) | MessageError::HighS | MessageError::NonCanonical
                ),
                "a forged signature is refused as one, not as {e:?}"
            ),
        }
    }
});
