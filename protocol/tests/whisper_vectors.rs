//! Every case of `shared/vectors/whisper.json` (go-ethereum v1.9.7 / v1.8.27 output).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::Value;
use staples_protocol::crypto::{PrivateKey, PublicKey, Signature, keccak256};
use staples_protocol::status;
use staples_protocol::whisper::message::{self, default_padding_len, size_field_len};
use staples_protocol::whisper::pow::{self, SealOptions};
use staples_protocol::whisper::{
    Draft, Envelope, OpenKey, Recipient, SymKey, Topic, ecies, open, wrap,
};

fn envelope_of(v: &Value) -> Envelope {
    Envelope {
        expiry: u64_of(v, "expiry").try_into().unwrap(),
        ttl: u64_of(v, "ttl").try_into().unwrap(),
        topic: Topic(array(v, "topic")),
        data: bytes(v, "data"),
        nonce: u64_of(v, "nonce"),
    }
}

/// Checks RLP, hash, both PoWs and bloom of an envelope against a `pow[]`-shaped case.
fn check_envelope(e: &Envelope, c: &Value, name: &str) {
    assert_eq!(
        e.encode_without_nonce(),
        bytes(c, "rlp_without_nonce"),
        "{name}"
    );
    assert_eq!(e.encode(), bytes(c, "rlp"), "{name}");
    assert_eq!(e.hash().0.to_vec(), bytes(c, "hash"), "{name}");
    assert_eq!(
        u64::from(pow::leading_zero_bits(e)),
        u64_of(c, "leading_zero_bits"),
        "{name}"
    );
    assert_eq!(
        pow::pow_v19(e).to_bits(),
        f64_bits(c, "pow_v19_f64"),
        "{name}"
    );
    if c.get("legacy_trailing_zero_bits").is_some() {
        assert_eq!(
            u64::from(pow::legacy_trailing_zero_bits(e)),
            u64_of(c, "legacy_trailing_zero_bits"),
            "{name}"
        );
        assert_eq!(
            pow::pow_legacy(e).to_bits(),
            f64_bits(c, "pow_legacy_f64"),
            "{name}"
        );
    }
    assert_eq!(e.topic.bloom().0.to_vec(), bytes(c, "bloom"), "{name}");
}

/// Seals a copy with nonce 0 and checks geth's first nonce comes out.
fn check_seal(e: &Envelope, pow_target: f64, want_bits: u64, name: &str) {
    let bits = pow::target_bits(pow_target, e);
    assert_eq!(u64::from(bits), want_bits, "{name}: target bits");
    let mut fresh = e.clone();
    fresh.nonce = 0;
    let never = || false;
    let out = pow::seal(
        &mut fresh,
        Some(bits),
        &SealOptions {
            threads: 2,
            should_stop: &never,
        },
    );
    assert!(out.reached, "{name}");
    assert_eq!(fresh.nonce, e.nonce, "{name}: smallest nonce");
}

#[test]
fn pow_cases() {
    let v = load("whisper.json");
    for c in cases(&v, "pow") {
        let name = str_of(c, "name");
        let e = envelope_of(c);
        check_envelope(&e, c, name);
        if let Some(s) = c.get("sealed") {
            check_seal(
                &e,
                s["pow_target"].as_f64().unwrap(),
                u64_of(s, "target_bits"),
                name,
            );
        }
    }
}

#[test]
fn envelope_decode_cases() {
    let v = load("whisper.json");
    for c in cases(&v, "envelope_decode") {
        let name = str_of(c, "name");
        let input = bytes(c, "rlp");
        let got = Envelope::decode(&input);
        if bool_of(c, "valid") {
            let e = got.unwrap_or_else(|err| panic!("{name}: {err}"));
            assert_eq!(e, envelope_of(c), "{name}");
            assert_eq!(e.hash().0.to_vec(), bytes(c, "hash"), "{name}");
            assert_eq!(e.encode(), input, "{name}: canonical re-encoding");
        } else {
            assert!(
                got.is_err(),
                "{name}: geth rejects it ({})",
                str_of(c, "geth_error")
            );
        }
    }
}

#[test]
fn bloom_cases() {
    let v = load("whisper.json");
    for c in cases(&v, "bloom") {
        let t = Topic(array(c, "topic"));
        assert_eq!(t.bloom().0.to_vec(), bytes(c, "bloom"), "{t}");
    }
}

#[test]
fn topic_and_password_key_cases() {
    let v = load("whisper.json");
    for c in cases(&v, "topics") {
        let name = str_of(c, "name");
        let t = status::public_chat_topic(name);
        assert_eq!(t.0.to_vec(), bytes(c, "topic"), "{name:?}");
        assert_eq!(t.bloom().0.to_vec(), bytes(c, "bloom"), "{name:?}");
        assert_eq!(
            status::public_chat_key(name).as_bytes().to_vec(),
            bytes(c, "pbkdf2_key")
        );
    }
}

#[test]
fn derived_topic_cases() {
    let v = load("whisper.json");
    for c in cases(&v, "derived_topics") {
        let key = PrivateKey::from_bytes(&bytes(c, "private_key"))
            .unwrap()
            .public_key();
        assert_eq!(key.to_uncompressed().to_vec(), bytes(c, "public_key"));
        let names = [
            ("partitioned", status::partitioned_topic_name(&key)),
            (
                "personal_discovery",
                status::personal_discovery_topic_name(&key),
            ),
            ("contact_code", status::contact_code_topic_name(&key)),
        ];
        for (kind, name) in names {
            assert_eq!(name, str_of(&c["names"], kind), "{kind}");
            assert_eq!(
                Topic::from_name(&name).0.to_vec(),
                bytes(&c["topics"], kind),
                "{kind}"
            );
        }
    }
}

#[test]
fn plaintext_parse_cases() {
    let v = load("whisper.json");
    for c in cases(&v, "plaintext_parse") {
        let name = str_of(c, "name");
        let got = message::parse(&bytes(c, "raw"));
        if !bool_of(c, "valid") {
            assert!(got.is_err(), "{name}: must be rejected, got {got:?}");
            continue;
        }
        let p = got.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(p.payload, bytes(c, "payload"), "{name}");
        assert_eq!(p.padding, bytes(c, "padding"), "{name}");
        match c.get("signature") {
            Some(_) => {
                let (sig, signer) = p.signature.expect("signed");
                assert_eq!(sig.0.to_vec(), bytes(c, "signature"), "{name}");
                assert_eq!(
                    signer.to_uncompressed().to_vec(),
                    bytes(c, "signer_public_key")
                );
            }
            None => assert!(p.signature.is_none(), "{name}"),
        }
    }
}

#[test]
fn default_padding_cases() {
    let v = load("whisper.json");
    let key = PrivateKey::from_bytes(&bytes(&v["keys"], "sender_private_key")).unwrap();
    for c in cases(&v, "default_padding") {
        let len = usize::try_from(u64_of(c, "payload_len")).unwrap();
        let signed = bool_of(c, "signed");
        assert_eq!(
            size_field_len(len) as u64,
            u64_of(c, "size_field_len"),
            "len {len}"
        );
        let pad = default_padding_len(len, signed);
        assert_eq!(
            pad as u64,
            u64_of(c, "padding_len"),
            "len {len} signed {signed}"
        );
        let raw = message::build(&vec![7; len], &vec![0; pad], signed.then_some(&key)).unwrap();
        assert_eq!(
            raw.len() as u64,
            u64_of(c, "plaintext_len"),
            "len {len} signed {signed}"
        );
    }
}

/// The sender key when a case is signed.
fn signer_of(v: &Value, c: &Value) -> Option<PrivateKey> {
    bool_of(c, "signed")
        .then(|| PrivateKey::from_bytes(&bytes(&v["keys"], "sender_private_key")).unwrap())
}

/// Plaintext layout and signature of a symmetric or asymmetric case.
fn check_plaintext(c: &Value, signer: Option<&PrivateKey>, name: &str) -> Vec<u8> {
    let raw = message::build(&bytes(c, "payload"), &bytes(c, "padding"), signer).unwrap();
    assert_eq!(raw, bytes(c, "plaintext"), "{name}: plaintext");
    if signer.is_some() {
        let body = &raw[..raw.len() - 65];
        assert_eq!(keccak256(body).to_vec(), bytes(c, "signed_hash"), "{name}");
        assert_eq!(
            raw[raw.len() - 65..].to_vec(),
            bytes(c, "signature"),
            "{name}"
        );
        let sig = Signature(array(c, "signature"));
        assert_eq!(
            sig.recover(&keccak256(body)).ok(),
            signer.map(|k| k.public_key())
        );
    }
    raw
}

fn check_message_case(v: &Value, c: &Value, to: Recipient<'_>, key: OpenKey<'_>, script: &[&[u8]]) {
    let name = str_of(c, "name");
    let signer = signer_of(v, c);
    check_plaintext(c, signer.as_ref(), name);
    let want = envelope_of(&c["envelope"]);
    check_envelope(&want, &c["envelope"], name);

    // The full wrap path, with geth's random choices replayed.
    let explicit = (!bool_of(c, "default_padding")).then(|| bytes(c, "padding"));
    let padding_script = bytes(c, "padding");
    let mut chunks: Vec<&[u8]> = Vec::new();
    if explicit.is_none() {
        chunks.push(&padding_script);
    }
    chunks.extend_from_slice(script);
    let mut rng = ScriptedRng::new(&chunks);
    let payload = bytes(c, "payload");
    let draft = Draft {
        topic: want.topic,
        payload: &payload,
        padding: explicit.as_deref(),
        signer: signer.as_ref(),
        ttl: want.ttl,
        to,
    };
    let mut env = wrap(&draft, want.expiry - want.ttl, &mut rng).unwrap();
    assert!(rng.is_spent(), "{name}: every scripted byte used");
    assert_eq!(env.data, want.data, "{name}: ciphertext");

    let pow_target = c["pow_target"].as_f64().unwrap();
    if pow_target > 0.0 {
        check_seal(&want, pow_target, u64_of(c, "target_bits"), name);
        env.nonce = want.nonce;
    }
    assert_eq!(
        env.encode(),
        bytes(&c["envelope"], "rlp"),
        "{name}: envelope"
    );

    let msg = open(&Envelope::decode(&env.encode()).unwrap(), key).unwrap();
    assert_eq!(
        msg.to_geth_json(),
        str_of(c, "geth_json"),
        "{name}: geth JSON"
    );
}

#[test]
fn symmetric_cases() {
    let v = load("whisper.json");
    for c in cases(&v, "symmetric") {
        let key = SymKey::from_bytes(&bytes(c, "sym_key")).unwrap();
        let salt = bytes(c, "salt");
        check_message_case(
            &v,
            c,
            Recipient::Symmetric(&key),
            OpenKey::Symmetric(&key),
            &[&salt],
        );
    }
}

#[test]
fn asymmetric_cases() {
    let v = load("whisper.json");
    let recipient = PrivateKey::from_bytes(&bytes(&v["keys"], "recipient_private_key")).unwrap();
    let public = recipient.public_key();
    assert_eq!(
        public.to_uncompressed().to_vec(),
        bytes(&v["keys"], "recipient_public_key")
    );
    for c in cases(&v, "asymmetric") {
        let eph = bytes(c, "ephemeral_private_key");
        let iv = bytes(c, "iv");
        assert_eq!(
            PrivateKey::from_bytes(&eph)
                .unwrap()
                .public_key()
                .to_uncompressed()
                .to_vec(),
            bytes(c, "ephemeral_public_key")
        );
        check_message_case(
            &v,
            c,
            Recipient::Asymmetric(&public),
            OpenKey::Asymmetric(&recipient),
            &[&eph, &iv],
        );
    }
}

#[test]
fn ecies_cases() {
    let v = load("whisper.json");
    for c in cases(&v, "ecies") {
        let name = str_of(c, "name");
        let key = PrivateKey::from_bytes(&bytes(c, "recipient_private_key")).unwrap();
        let ct = bytes(c, "ciphertext");
        let got = ecies::decrypt(&key, &ct);
        if !bool_of(c, "valid") {
            assert!(got.is_err(), "{name}: must fail ({})", c["geth_v1_9_7"]);
            continue;
        }
        assert_eq!(got.unwrap(), bytes(c, "plaintext"), "{name}");
        let eph = PrivateKey::from_bytes(&bytes(c, "ephemeral_private_key")).unwrap();
        assert_eq!(
            eph.public_key().to_uncompressed().to_vec(),
            ct[..65].to_vec(),
            "{name}"
        );
        if c.get("iv").is_some() {
            let shared = key.ecdh_x(&PublicKey::from_uncompressed(&ct[..65]).unwrap());
            assert_eq!(shared.to_vec(), bytes(c, "shared_x"), "{name}");
            let keys = ecies::derive_keys(&shared);
            assert_eq!(keys.ke.to_vec(), bytes(c, "ke"), "{name}");
            assert_eq!(keys.kdf.to_vec(), bytes(c, "kdf_output"), "{name}");
            assert_eq!(keys.km.to_vec(), bytes(c, "km"), "{name}");
            let again = ecies::encrypt(
                &key.public_key(),
                &eph,
                &array(c, "iv"),
                &bytes(c, "plaintext"),
            );
            assert_eq!(again, ct, "{name}: re-encryption");
        }
    }
}
