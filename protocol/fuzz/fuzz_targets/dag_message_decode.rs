//! DAG message, header and padding-carrier decoders: no panic on any input, whatever
//! decodes re-encodes to the same bytes (one encoding per message), and attestation by
//! the recovered author gives the message recovery gives.
#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target};
use staples_protocol::crypto::PrivateKey;
use staples_protocol::dag::{
    Align, Draft, Header, MessageId, SignedMessage, app_padding, decode_padding, encode_padding,
    encode_padding_with,
};
use staples_protocol_fuzz::{Rng, bytes, edge_u64, mutate_with, proto};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = SignedMessage::decode(data) {
        assert_eq!(m.encode(), data, "message re-encodes identically");
        let (id, author) = (m.id(), *m.author());
        let (header, body) = m.into_parts();
        let again = header
            .clone()
            .with_body(body.clone())
            .expect("a decoded message verifies again");
        assert_eq!(
            again.id(),
            id,
            "the id does not depend on the encoding path"
        );
        // The author's own listing attests exactly what recovery gives; nobody else's
        // listing of that id does.
        let attested = header
            .clone()
            .with_body_attested(body.clone(), &author, &id)
            .expect("the recovered author attests its own id");
        assert_eq!(attested, again, "attestation and recovery agree");
        if let Ok(other) = PrivateKey::from_bytes(&[0x77; 32]).map(|k| k.public_key())
            && other != author
        {
            assert!(
                header.with_body_attested(body, &other, &id).is_err(),
                "another author cannot attest this id"
            );
        }
    }
    if let Ok(h) = Header::decode(data) {
        assert_eq!(h.encode(), data, "header re-encodes identically");
    }
    if let Ok(Some(h)) = decode_padding(data) {
        let exact = encode_padding(&h, Align::Exact);
        assert!(
            data.starts_with(&exact),
            "padding re-encodes to its own prefix"
        );
        let filler = app_padding(data).expect("a decoded carrier has an app padding");
        assert_eq!(
            encode_padding_with(&h, filler),
            data,
            "header and app padding are all of it"
        );
    }
});

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    mutate_with(data, size, max_size, seed, 8, &edit, passes)
});

/// A signed message is edited field by field and signed again (with a fixed key: any
/// signature recovers some author), so the edit passes the signature check and reaches
/// the identity and re-check properties; a padding carrier keeps its header and gets new
/// app padding; anything else is edited as protobuf.
fn edit(input: &[u8], rng: &mut Rng, room: usize) -> Option<Vec<u8>> {
    let Ok(m) = SignedMessage::decode(input) else {
        // A padding carrier: its header stays, the app's padding after it is edited.
        if let (Ok(Some(h)), Some(filler)) = (decode_padding(input), app_padding(input)) {
            let filler = bytes(filler, (filler.len() * 2 + 8).min(room));
            return Some(encode_padding_with(&h, &filler));
        }
        return proto::mutate(input, rng, room);
    };
    let mut d = Draft {
        chat_id: *m.chat_id(),
        clock: m.clock(),
        timestamp: m.header().timestamp(),
        parents: m.parents().to_vec(),
        ephemeral: m.ephemeral(),
        body: m.body().to_vec(),
    };
    match rng.below(6) {
        0 => d.clock = edge_u64(rng, d.clock),
        1 => d.timestamp = edge_u64(rng, d.timestamp),
        2 if !d.parents.is_empty() => {
            d.parents.remove(rng.below(d.parents.len()));
        }
        2 | 3 => {
            let mut p = [0u8; 32];
            p[..4].copy_from_slice(&rng.next().to_be_bytes());
            d.parents.push(MessageId::from_slice(&p).ok()?);
            d.parents.sort_unstable();
            d.parents.dedup();
        }
        4 => d.ephemeral = !d.ephemeral,
        _ => d.body = bytes(&d.body, (d.body.len() * 2 + 8).min(room)),
    }
    let key = PrivateKey::from_bytes(&[0x5a; 32]).ok()?;
    d.sign(&key).ok().map(|m| m.encode())
}

/// The first parsers: message, header or padding carrier.
fn passes(data: &[u8]) -> bool {
    SignedMessage::decode(data).is_ok()
        || Header::decode(data).is_ok()
        || matches!(decode_padding(data), Ok(Some(_)))
}
