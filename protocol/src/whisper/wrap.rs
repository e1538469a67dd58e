//! Turning an app's post into an envelope and an envelope back into a message: geth's
//! `NewSentMessage` + `Wrap` and `Envelope.Open` + `ValidateAndParse`.
//!
//! `wrap` builds the plaintext (default or explicit padding), signs it, encrypts it and sets
//! `Expiry = now + TTL`; it does no proof of work, which is [`super::pow::seal`]'s job so the
//! caller controls threads and time. Randomness (padding, GCM nonce, ECIES ephemeral key and
//! IV) is drawn from the caller's RNG in that order.

use super::ecies::{self, EciesError};
use super::envelope::{Envelope, EnvelopeHash};
use super::message::{self, MessageError, Plaintext};
use super::pow::pow_v19;
use super::symmetric::{AES_NONCE_LENGTH, SymKey, SymmetricError};
use super::topic::Topic;
use crate::crypto::{PrivateKey, PublicKey};

/// TTL geth uses when a post says 0.
pub const DEFAULT_TTL: u32 = 50;

/// Whom a message is encrypted for.
#[derive(Clone, Copy, Debug)]
pub enum Recipient<'a> {
    /// Everyone holding this symmetric key (public chats, negotiated topics).
    Symmetric(&'a SymKey),
    /// The holder of this public key's private key (ECIES).
    Asymmetric(&'a PublicKey),
}

/// The key that opens an envelope.
#[derive(Clone, Copy, Debug)]
pub enum OpenKey<'a> {
    /// A symmetric key.
    Symmetric(&'a SymKey),
    /// Our private key, for messages sent to our public key.
    Asymmetric(&'a PrivateKey),
}

/// A message to wrap: what `shh_post` carries, minus PoW settings.
#[derive(Clone, Copy, Debug)]
pub struct Draft<'a> {
    /// Envelope topic.
    pub topic: Topic,
    /// The app's payload.
    pub payload: &'a [u8],
    /// Explicit padding, used verbatim; `None` or empty means geth's default padding.
    pub padding: Option<&'a [u8]>,
    /// Signing key, if the message is signed.
    pub signer: Option<&'a PrivateKey>,
    /// Time to live in seconds; 0 means [`DEFAULT_TTL`].
    pub ttl: u32,
    /// Encryption target.
    pub to: Recipient<'a>,
}

/// Errors from wrapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WrapError {
    /// The plaintext could not be built.
    #[error(transparent)]
    Message(#[from] MessageError),
}

/// Errors from opening an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Symmetric decryption failed (wrong key or tampered).
    #[error("symmetric: {0}")]
    Symmetric(#[from] SymmetricError),
    /// Asymmetric decryption failed (not for us or tampered).
    #[error("asymmetric: {0}")]
    Asymmetric(#[from] EciesError),
    /// The decrypted plaintext is malformed or its signature bad.
    #[error("plaintext: {0}")]
    Message(#[from] MessageError),
}

/// An opened envelope: geth's `ReceivedMessage`.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedMessage {
    /// The parsed plaintext (payload, padding, signer).
    pub plaintext: Plaintext,
    /// Envelope topic.
    pub topic: Topic,
    /// Envelope TTL.
    pub ttl: u32,
    /// `expiry - ttl`.
    pub sent: u32,
    /// The envelope's v1.9 PoW.
    pub pow: f64,
    /// The envelope hash.
    pub hash: EnvelopeHash,
    /// Our public key, for asymmetric messages.
    pub recipient: Option<PublicKey>,
}

/// Builds, signs and encrypts a message; `now` is unix seconds.
pub fn wrap(
    draft: &Draft<'_>,
    now: u32,
    rng: &mut (impl rand_core::RngCore + rand_core::CryptoRng),
) -> Result<Envelope, WrapError> {
    let ttl = if draft.ttl == 0 {
        DEFAULT_TTL
    } else {
        draft.ttl
    };
    // geth treats an empty explicit padding as "no padding given".
    let padding = match draft.padding {
        Some(p) if !p.is_empty() => p.to_vec(),
        _ => message::random_padding(draft.payload.len(), draft.signer.is_some(), rng),
    };
    let plaintext = message::build(draft.payload, &padding, draft.signer)?;
    let data = match draft.to {
        Recipient::Symmetric(key) => {
            let mut nonce = [0u8; AES_NONCE_LENGTH];
            // geth refuses an all-zero nonce; redraw in the (2^-96) case.
            while nonce == [0; AES_NONCE_LENGTH] {
                rng.fill_bytes(&mut nonce);
            }
            key.encrypt(&nonce, &plaintext)
        }
        Recipient::Asymmetric(public) => {
            let ephemeral = PrivateKey::random(rng);
            let mut iv = [0u8; ecies::IV_LENGTH];
            rng.fill_bytes(&mut iv);
            ecies::encrypt(public, &ephemeral, &iv, &plaintext)
        }
    };
    Ok(Envelope {
        expiry: now.wrapping_add(ttl),
        ttl,
        topic: draft.topic,
        data,
        nonce: 0,
    })
}

/// Decrypts and parses an envelope.
pub fn open(env: &Envelope, key: OpenKey<'_>) -> Result<ReceivedMessage, OpenError> {
    let (plaintext, recipient) = decrypt(env, key)?;
    Ok(received(
        env,
        plaintext,
        recipient,
        env.hash(),
        pow_v19(env),
    ))
}

/// [`open`] for an envelope whose hash and PoW the caller already has (a node computes
/// both when the envelope enters its pool; hashing again per filter would double the
/// Keccak work of every delivery). The PoW is taken as given, as geth reports the value
/// computed on entry (adjusted for clock skew).
pub fn open_known(
    env: &Envelope,
    key: OpenKey<'_>,
    hash: EnvelopeHash,
    pow: f64,
) -> Result<ReceivedMessage, OpenError> {
    let (plaintext, recipient) = decrypt(env, key)?;
    Ok(received(env, plaintext, recipient, hash, pow))
}

fn decrypt(env: &Envelope, key: OpenKey<'_>) -> Result<(Plaintext, Option<PublicKey>), OpenError> {
    let (raw, recipient) = match key {
        OpenKey::Symmetric(k) => (k.decrypt(&env.data)?, None),
        OpenKey::Asymmetric(k) => (ecies::decrypt(k, &env.data)?, Some(k.public_key())),
    };
    Ok((message::parse(&raw)?, recipient))
}

fn received(
    env: &Envelope,
    plaintext: Plaintext,
    recipient: Option<PublicKey>,
    hash: EnvelopeHash,
    pow: f64,
) -> ReceivedMessage {
    ReceivedMessage {
        plaintext,
        topic: env.topic,
        ttl: env.ttl,
        sent: env.sent(),
        pow,
        hash,
        recipient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn zero_ttl_means_default_and_expiry_is_now_plus_ttl() {
        let key = SymKey::from_bytes(&[5; 32]).expect("valid");
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let draft = Draft {
            topic: Topic([1, 2, 3, 4]),
            payload: b"hi",
            padding: None,
            signer: None,
            ttl: 0,
            to: Recipient::Symmetric(&key),
        };
        let env = wrap(&draft, 1000, &mut rng).expect("wraps");
        assert_eq!((env.ttl, env.expiry), (DEFAULT_TTL, 1000 + DEFAULT_TTL));
        let msg = open(&env, OpenKey::Symmetric(&key)).expect("opens");
        assert_eq!(msg.plaintext.payload, b"hi");
        assert_eq!(msg.sent, 1000);
    }

    #[test]
    fn wrong_keys_are_typed_errors() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let me = PrivateKey::random(&mut rng);
        let other = PrivateKey::random(&mut rng);
        let pk = me.public_key();
        let draft = Draft {
            topic: Topic::default(),
            payload: b"x",
            padding: None,
            signer: None,
            ttl: 10,
            to: Recipient::Asymmetric(&pk),
        };
        let env = wrap(&draft, 0, &mut rng).expect("wraps");
        assert!(open(&env, OpenKey::Asymmetric(&me)).is_ok());
        assert_eq!(
            open(&env, OpenKey::Asymmetric(&other)),
            Err(OpenError::Asymmetric(EciesError::MacMismatch))
        );
        let sym = SymKey::from_bytes(&[1; 32]).expect("valid");
        assert_eq!(
            open(&env, OpenKey::Symmetric(&sym)),
            Err(OpenError::Symmetric(SymmetricError::Authentication))
        );
    }
}
