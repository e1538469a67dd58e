//! What a devp2p peer sends before and after the handshake: `auth`/`ack` packets, frames
//! and `Hello` payloads. Nothing panics; a frame that reads was authentic.
#![no_main]
use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use staples_protocol::crypto::PrivateKey;
use staples_protocol::devp2p::frame::FrameCodec;
use staples_protocol::devp2p::handshake::{Initiator, respond};
use staples_protocol::devp2p::p2p::{Hello, disconnect_reason};
use staples_protocol::devp2p::shh::{self, Message};
use staples_protocol_fuzz::{Format, mutate};

fuzz_target!(|data: &[u8]| {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let us = PrivateKey::from_bytes(&[7; 32]).expect("key");
    let peer = PrivateKey::from_bytes(&[8; 32]).expect("key");
    // As the recipient of an auth, and as an initiator reading an ack.
    let _ = respond(&us, data, &mut rng);
    let (init, auth) = Initiator::new(
        PrivateKey::from_bytes(&[7; 32]).expect("key"),
        peer.public_key(),
        &mut rng,
    );
    let _ = init.finish(data);
    // Frames after a real handshake: arbitrary bytes do not authenticate.
    let (init, _) = Initiator::new(
        PrivateKey::from_bytes(&[7; 32]).expect("key"),
        peer.public_key(),
        &mut rng,
    );
    let (secrets, ack, _) = respond(&peer, &auth, &mut rng).expect("our own auth");
    let _ = init;
    let mut codec = FrameCodec::new(secrets);
    let mut rest = data;
    while let Ok(r) = codec.read(rest) {
        if r.consumed == 0 {
            break;
        }
        rest = &rest[r.consumed..];
    }
    let _ = ack;
    let _ = Hello::decode(data).map(|h| assert_eq!(Hello::decode(&h.encode()), Ok(h)));
    let _ = disconnect_reason(data);
    // shh/6 messages, every code.
    if let Some((&code, payload)) = data.split_first() {
        if let Ok(Message::Messages(envs)) = shh::decode(u64::from(code % 4), payload) {
            let again = shh::decode(shh::MESSAGES, &shh::encode_envelopes(&envs));
            assert_eq!(again, Ok(Message::Messages(envs)), "a batch re-encodes");
        } else {
            let _ = shh::decode(u64::from(code), payload);
        }
    }
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    mutate(data, size, max_size, seed, 1, Format::Rlp, 2, passes)
});

/// The first parsers: a `Hello` or an `shh/6` message (the handshake and frame parts are
/// authenticated: no edit of them passes, so they are left to the free mutations).
fn passes(data: &[u8]) -> bool {
    Hello::decode(data).is_ok()
        || data.split_first().is_some_and(|(&code, payload)| {
            shh::decode(u64::from(code % 4), payload).is_ok()
                || matches!(
                    shh::decode(u64::from(code), payload),
                    Ok(Message::P2pRequest(_) | Message::P2pMessage(_))
                )
        })
}
