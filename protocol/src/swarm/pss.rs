//! PSS: topics, targets, and trojan chunks (wrap with nonce mining, unwrap).
//!
//! Byte for byte as Bee `pkg/pss/trojan.go` `Wrap` / `Unwrap`, with `pkg/encryption` and
//! `pkg/encryption/elgamal` (see bee-api.md §4.2):
//!
//! ```text
//! plaintext  = u16be(len msg) ‖ keccak256(msg)[2..32] ‖ msg            (len ≤ 4000)
//! shared_x   = (ephemeral · recipient).x, minimal big-endian bytes (leading zeros dropped)
//! key        = keccak256(shared_x ‖ topic)
//! ciphertext = plaintext XOR keccak256(keccak256(key ‖ u32le(i))) per 32-byte segment i,
//!              then random bytes up to 4032
//! span       = keccak256(key ‖ topic)[0..8]                            (the "hint")
//! payload    = nonce(32) ‖ ephemeral_pub.x(32) ‖ ciphertext(4032)      (4096 bytes)
//! ```
//!
//! The nonce's byte 28 bit 0 carries the ephemeral key's parity; the rest is mined until the
//! chunk address starts with one of the targets. Only the nonce segment changes while
//! mining, so an incremental [`bmt::Tree`] rehashes one path (8 permutations per attempt
//! instead of 128). Without an explicit recipient the recipient is the public key of the
//! topic used as a private key, so anyone who knows the topic can read the message.

use std::fmt;

use rand_core::{CryptoRng, RngCore};

use crate::crypto::{PrivateKey, PublicKey, keccak256, keccak256_concat};

use super::bmt::{self, CHUNK_SIZE, SEGMENT_SIZE, SPAN_SIZE};
use super::chunk::Cac;

/// Largest message a trojan chunk carries: 4096 − 3·32.
pub const MAX_PAYLOAD_SIZE: usize = CHUNK_SIZE - 3 * SEGMENT_SIZE;
/// Ciphertext length after padding: 4096 − nonce − ephemeral key.
pub const CIPHERTEXT_SIZE: usize = CHUNK_SIZE - 2 * SEGMENT_SIZE;
/// Trojan chunk data length: span plus a full payload.
pub const TROJAN_DATA_SIZE: usize = SPAN_SIZE + CHUNK_SIZE;
/// Longest target prefix Bee's API accepts.
pub const MAX_TARGET_LEN: usize = 3;
/// Most targets accepted in one [`Targets`] list.
pub const MAX_TARGETS: usize = 256;

/// Errors from PSS topics, targets, wrapping and unwrapping.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PssError {
    /// The message is longer than 4000 bytes.
    #[error("message of {len} bytes exceeds 4000")]
    PayloadTooLarge {
        /// Message length.
        len: usize,
    },
    /// The target list is empty.
    #[error("target list is empty")]
    NoTargets,
    /// More than [`MAX_TARGETS`] targets.
    #[error("{count} targets exceed the limit of 256")]
    TooManyTargets {
        /// Targets given.
        count: usize,
    },
    /// A target is empty or longer than 3 bytes.
    #[error("target of {len} bytes, expected 1 to 3")]
    TargetLength {
        /// Target length.
        len: usize,
    },
    /// Targets differ in length.
    #[error("targets have different lengths")]
    TargetLengthsDiffer,
    /// A target was not valid hex.
    #[error("target is not hex")]
    TargetHex,
    /// No nonce within the attempt cap gave an address with a target prefix.
    #[error("no nonce found in {attempts} attempts")]
    MiningExhausted {
        /// Attempts made.
        attempts: u64,
    },
    /// The topic is not a valid secp256k1 private key (zero or not below the curve order).
    #[error("topic is not usable as a private key")]
    TopicKey,
    /// The chunk is not 4104 bytes, so it cannot be a trojan chunk.
    #[error("chunk of {len} bytes is not a trojan chunk")]
    NotTrojan {
        /// Data length.
        len: usize,
    },
    /// The ephemeral key field is not an x coordinate on the curve.
    #[error("ephemeral public key is not on the curve")]
    EphemeralKey,
    /// Neither the key nor any topic-as-key matches the hint: the chunk is for someone else.
    #[error("chunk is not for this key and these topics")]
    NotForMe,
    /// A hint matched but the decrypted length or integrity hash is wrong.
    #[error("message failed its integrity check")]
    Integrity,
}

/// A 32-byte PSS topic.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PssTopic([u8; 32]);

impl PssTopic {
    /// Bee `pss.NewTopic`: `keccak256(utf8(name))`, what Bee does with the `{topic}` path
    /// segment. (bee-js sends the hex of its own topic as that segment, so Bee's effective
    /// topic for bee-js traffic is `from_string(&hex)`.)
    pub fn from_string(name: &str) -> Self {
        Self(keccak256(name.as_bytes()))
    }

    /// A topic given as raw bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The topic bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The topic used as a private key (Bee's fallback when no recipient is given).
    pub fn private_key(&self) -> Result<PrivateKey, PssError> {
        PrivateKey::from_bytes(&self.0).map_err(|_| PssError::TopicKey)
    }

    /// The default recipient: the public key of [`Self::private_key`].
    pub fn default_recipient(&self) -> Result<PublicKey, PssError> {
        Ok(self.private_key()?.public_key())
    }
}

impl fmt::Display for PssTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for PssTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PssTopic({self})")
    }
}

/// bee-js `Utils.makeMaxTarget`: the first 2 bytes of an overlay address.
pub fn max_target(overlay: &[u8; 32]) -> [u8; 2] {
    [overlay[0], overlay[1]]
}

/// A non-empty list of address prefixes of one common length (1..=3 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets {
    len: usize,
    prefixes: Vec<[u8; MAX_TARGET_LEN]>,
}

impl Targets {
    /// Checks the list as Bee's `checkTargets` and API validation do.
    pub fn new<T: AsRef<[u8]>>(targets: &[T]) -> Result<Self, PssError> {
        let first = targets.first().ok_or(PssError::NoTargets)?.as_ref().len();
        if targets.len() > MAX_TARGETS {
            return Err(PssError::TooManyTargets {
                count: targets.len(),
            });
        }
        if first == 0 || first > MAX_TARGET_LEN {
            return Err(PssError::TargetLength { len: first });
        }
        let mut prefixes = Vec::with_capacity(targets.len());
        for t in targets {
            let t = t.as_ref();
            if t.len() != first {
                return Err(PssError::TargetLengthsDiffer);
            }
            let mut p = [0u8; MAX_TARGET_LEN];
            p[..first].copy_from_slice(t);
            prefixes.push(p);
        }
        Ok(Self {
            len: first,
            prefixes,
        })
    }

    /// Parses Bee's `{targets}` path segment: comma-separated hex.
    pub fn parse(s: &str) -> Result<Self, PssError> {
        let list = s
            .split(',')
            .take(MAX_TARGETS + 1)
            .map(|t| hex::decode(t).map_err(|_| PssError::TargetHex))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(&list)
    }

    /// The common prefix length.
    pub fn prefix_len(&self) -> usize {
        self.len
    }

    /// Bee's `{targets}` path segment: comma-separated hex (the inverse of [`Self::parse`]).
    pub fn to_param(&self) -> String {
        self.prefixes
            .iter()
            .map(|p| hex::encode(&p[..self.len]))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Whether `address` starts with one of the targets.
    pub fn matches(&self, address: &[u8; 32]) -> bool {
        self.prefixes
            .iter()
            .any(|p| p[..self.len] == address[..self.len])
    }
}

/// How the nonce search rehashes the chunk. Both give the same chunk for the same inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mining {
    /// Rehash only the nonce segment's path (8 permutations per attempt).
    Incremental,
    /// Rehash the whole chunk per attempt (128 permutations): the baseline for benchmarks
    /// and cross-checks.
    FullRehash,
}

/// A mined trojan chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wrapped {
    /// The chunk: span = hint, payload = nonce ‖ ephemeral key x ‖ ciphertext.
    pub chunk: Cac,
    /// Nonces tried, including the successful one.
    pub attempts: u64,
}

/// Wraps `msg` for `recipient` (or, with `None`, for anyone who knows `topic`), mining the
/// nonce until the address starts with one of `targets`; gives up after `max_attempts`.
pub fn wrap(
    topic: &PssTopic,
    msg: &[u8],
    recipient: Option<&PublicKey>,
    targets: &Targets,
    max_attempts: u64,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Wrapped, PssError> {
    wrap_with(
        topic,
        msg,
        recipient,
        targets,
        max_attempts,
        Mining::Incremental,
        rng,
    )
}

/// [`wrap`] with an explicit mining strategy.
pub fn wrap_with(
    topic: &PssTopic,
    msg: &[u8],
    recipient: Option<&PublicKey>,
    targets: &Targets,
    max_attempts: u64,
    mining: Mining,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Wrapped, PssError> {
    if msg.len() > MAX_PAYLOAD_SIZE {
        return Err(PssError::PayloadTooLarge { len: msg.len() });
    }
    let recipient = match recipient {
        Some(r) => *r,
        None => topic.default_recipient()?,
    };
    let ephemeral = PrivateKey::random(rng);
    let key = shared_key(&ephemeral, &recipient, topic);

    let mut payload = [0u8; CHUNK_SIZE];
    let (nonce_field, rest) = payload.split_at_mut(SEGMENT_SIZE);
    let (eph_field, ciphertext) = rest.split_at_mut(SEGMENT_SIZE);
    let eph_pub = ephemeral.public_key().to_compressed();
    eph_field.copy_from_slice(&eph_pub[1..]);
    let plain_len = encrypt_into(&key, msg, ciphertext);
    rng.fill_bytes(&mut ciphertext[plain_len..]);

    let mut nonce = [0u8; 32];
    rng.fill_bytes(&mut nonce);
    // Bee: the ephemeral key's parity rides in bit 0 of nonce byte 28.
    nonce[28] = (nonce[28] & 0xfe) | (eph_pub[0] & 1);
    nonce_field.copy_from_slice(&nonce);

    let hint = hint(&key, topic);
    let span = u64::from_le_bytes(hint);
    let (nonce, attempts) = match mining {
        Mining::Incremental => mine_incremental(&payload, span, targets, max_attempts),
        Mining::FullRehash => mine_full(&payload, span, targets, max_attempts),
    }?;
    payload[..SEGMENT_SIZE].copy_from_slice(&nonce);
    Ok(Wrapped {
        chunk: Cac::from_array(span, &payload),
        attempts,
    })
}

/// A message taken out of a trojan chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unwrapped {
    /// The topic whose hint matched.
    pub topic: PssTopic,
    /// The message.
    pub message: Vec<u8>,
    /// Whether it was encrypted to the topic-as-key rather than to `key`.
    pub via_topic_key: bool,
}

/// Tries to open trojan chunk data (`span ‖ payload`, 4104 bytes) with `key` and, failing
/// that, with each topic as a private key, for each of `topics` in order (Bee `Unwrap`).
pub fn unwrap(data: &[u8], key: &PrivateKey, topics: &[PssTopic]) -> Result<Unwrapped, PssError> {
    if data.len() != TROJAN_DATA_SIZE {
        return Err(PssError::NotTrojan { len: data.len() });
    }
    let hint_bytes = &data[..SPAN_SIZE];
    // Bee's `extractPublicKey` always picks prefix 03 (its parity test is always true);
    // ECDH uses only x, so the parity never matters.
    let mut eph = [0u8; 33];
    eph[0] = 0x03;
    eph[1..].copy_from_slice(&data[SPAN_SIZE + SEGMENT_SIZE..SPAN_SIZE + 2 * SEGMENT_SIZE]);
    let eph = PublicKey::from_bytes(&eph).map_err(|_| PssError::EphemeralKey)?;
    let ciphertext = &data[SPAN_SIZE + 2 * SEGMENT_SIZE..];

    let mut hint_matched = false;
    for topic in topics {
        let topic_key = topic.private_key().ok();
        let candidates = std::iter::once((key, false)).chain(topic_key.as_ref().map(|k| (k, true)));
        for (k, via_topic_key) in candidates {
            let shared = shared_key(k, &eph, topic);
            if hint(&shared, topic) != hint_bytes {
                continue;
            }
            hint_matched = true;
            if let Some(message) = decrypt_and_check(&shared, ciphertext) {
                return Ok(Unwrapped {
                    topic: *topic,
                    message,
                    via_topic_key,
                });
            }
        }
    }
    Err(if hint_matched {
        PssError::Integrity
    } else {
        PssError::NotForMe
    })
}

/// `keccak256(shared_x ‖ topic)` with `shared_x` in minimal big-endian form, as Go's
/// `big.Int.Bytes()` gives it in Bee `pkg/crypto/dh.go`.
fn shared_key(private: &PrivateKey, public: &PublicKey, topic: &PssTopic) -> [u8; 32] {
    let x = private.ecdh_x(public);
    let first = x.iter().position(|b| *b != 0).unwrap_or(x.len());
    keccak256_concat(&[&x[first..], topic.as_bytes()])
}

/// `keccak256(key ‖ topic)[0..8]`, the trojan chunk's span.
fn hint(key: &[u8; 32], topic: &PssTopic) -> [u8; 8] {
    let h = keccak256_concat(&[key, topic.as_bytes()]);
    let mut out = [0u8; 8];
    out.copy_from_slice(&h[..8]);
    out
}

/// Segment key `i` of Bee's counter-mode cipher: `keccak256(keccak256(key ‖ u32le(i)))`.
fn segment_key(key: &[u8; 32], i: u32) -> [u8; 32] {
    keccak256(keccak256_concat(&[key, &i.to_le_bytes()]))
}

/// XOR `data` in place with the keystream, segment `i` with [`segment_key`]`(i)`.
fn transcrypt(key: &[u8; 32], data: &mut [u8]) {
    for (i, seg) in data.chunks_mut(SEGMENT_SIZE).enumerate() {
        // At most 4032 / 32 = 126 segments.
        let ks = segment_key(key, i as u32);
        for (b, k) in seg.iter_mut().zip(ks) {
            *b ^= k;
        }
    }
}

/// Writes the encrypted plaintext (length, integrity hash, message) to the start of `out`
/// and returns its length; the caller pads the rest.
fn encrypt_into(key: &[u8; 32], msg: &[u8], out: &mut [u8]) -> usize {
    let mut integrity = keccak256(msg);
    // `msg.len()` ≤ 4000 was checked by the caller.
    integrity[..2].copy_from_slice(&(msg.len() as u16).to_be_bytes());
    let len = SEGMENT_SIZE + msg.len();
    out[..SEGMENT_SIZE].copy_from_slice(&integrity);
    out[SEGMENT_SIZE..len].copy_from_slice(msg);
    transcrypt(key, &mut out[..len]);
    len
}

/// Decrypts the whole ciphertext and returns the message if length and integrity hold.
fn decrypt_and_check(key: &[u8; 32], ciphertext: &[u8]) -> Option<Vec<u8>> {
    let mut plain = ciphertext.to_vec();
    transcrypt(key, &mut plain);
    let len = usize::from(u16::from_be_bytes([plain[0], plain[1]]));
    if len > MAX_PAYLOAD_SIZE {
        return None;
    }
    let msg = plain.get(SEGMENT_SIZE..SEGMENT_SIZE + len)?;
    (keccak256(msg)[2..] == plain[2..SEGMENT_SIZE]).then(|| msg.to_vec())
}

/// Steps the mined part of the nonce: bytes 0..8 as a little-endian counter. Byte 28 (the
/// parity bit) is never touched.
fn next_nonce(nonce: &mut [u8; 32]) {
    let mut counter = [0u8; 8];
    counter.copy_from_slice(&nonce[..8]);
    let next = u64::from_le_bytes(counter).wrapping_add(1);
    nonce[..8].copy_from_slice(&next.to_le_bytes());
}

fn first_nonce(payload: &[u8; CHUNK_SIZE]) -> [u8; 32] {
    let mut nonce = [0u8; 32];
    nonce.copy_from_slice(&payload[..SEGMENT_SIZE]);
    nonce
}

fn mine_incremental(
    payload: &[u8; CHUNK_SIZE],
    span: u64,
    targets: &Targets,
    max_attempts: u64,
) -> Result<([u8; 32], u64), PssError> {
    let mut tree =
        bmt::Tree::new(payload).map_err(|_| PssError::PayloadTooLarge { len: payload.len() })?;
    let mut nonce = first_nonce(payload);
    for attempt in 1..=max_attempts {
        if targets.matches(&tree.hash(span)) {
            return Ok((nonce, attempt));
        }
        next_nonce(&mut nonce);
        tree.set_segment(0, &nonce)
            .map_err(|_| PssError::MiningExhausted { attempts: attempt })?;
    }
    Err(PssError::MiningExhausted {
        attempts: max_attempts,
    })
}

fn mine_full(
    payload: &[u8; CHUNK_SIZE],
    span: u64,
    targets: &Targets,
    max_attempts: u64,
) -> Result<([u8; 32], u64), PssError> {
    let mut work = *payload;
    let mut nonce = first_nonce(payload);
    for attempt in 1..=max_attempts {
        if targets.matches(&bmt::hash_fitting(span, &work)) {
            return Ok((nonce, attempt));
        }
        next_nonce(&mut nonce);
        work[..SEGMENT_SIZE].copy_from_slice(&nonce);
    }
    Err(PssError::MiningExhausted {
        attempts: max_attempts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn rng(seed: u64) -> ChaCha20Rng {
        ChaCha20Rng::seed_from_u64(seed)
    }

    fn node_key() -> PrivateKey {
        PrivateKey::from_bytes(&keccak256(b"pss-node")).expect("valid")
    }

    fn one_byte_target() -> Targets {
        Targets::new(&[[0xab]]).expect("valid")
    }

    #[test]
    fn targets_param_round_trips() {
        let t = Targets::new(&[[0xab, 0x01], [0x00, 0xff]]).expect("valid");
        assert_eq!(t.to_param(), "ab01,00ff");
        assert_eq!(Targets::parse(&t.to_param()), Ok(t));
    }

    #[test]
    fn wrap_unwrap_round_trip_for_a_recipient() {
        let topic = PssTopic::from_string("chat");
        let pk = node_key().public_key();
        let w = wrap(
            &topic,
            b"hello pss",
            Some(&pk),
            &one_byte_target(),
            1 << 16,
            &mut rng(1),
        )
        .expect("mines");
        assert_eq!(w.chunk.address().as_bytes()[0], 0xab);
        let got = unwrap(
            &w.chunk.to_data(),
            &node_key(),
            &[PssTopic::from_string("x"), topic],
        )
        .expect("for me");
        assert_eq!(got.message, b"hello pss");
        assert_eq!(got.topic, topic);
        assert!(!got.via_topic_key);
    }

    #[test]
    fn without_recipient_anyone_with_the_topic_reads_it() {
        let topic = PssTopic::from_string("public");
        let w = wrap(
            &topic,
            b"hi all",
            None,
            &one_byte_target(),
            1 << 16,
            &mut rng(2),
        )
        .expect("mines");
        let stranger = PrivateKey::from_bytes(&keccak256(b"stranger")).expect("valid");
        let got = unwrap(&w.chunk.to_data(), &stranger, &[topic]).expect("topic key opens it");
        assert_eq!(got.message, b"hi all");
        assert!(got.via_topic_key);
    }

    #[test]
    fn wrong_key_or_topic_is_not_for_me() {
        let topic = PssTopic::from_string("chat");
        let pk = node_key().public_key();
        let w = wrap(
            &topic,
            b"secret",
            Some(&pk),
            &one_byte_target(),
            1 << 16,
            &mut rng(3),
        )
        .expect("mines");
        let other = PrivateKey::from_bytes(&keccak256(b"other")).expect("valid");
        assert_eq!(
            unwrap(&w.chunk.to_data(), &other, &[topic]),
            Err(PssError::NotForMe)
        );
        assert_eq!(
            unwrap(
                &w.chunk.to_data(),
                &node_key(),
                &[PssTopic::from_string("chat2")]
            ),
            Err(PssError::NotForMe)
        );
        assert_eq!(
            unwrap(&[0; 100], &node_key(), &[topic]),
            Err(PssError::NotTrojan { len: 100 })
        );
    }

    #[test]
    fn tampered_ciphertext_fails_integrity() {
        let topic = PssTopic::from_string("chat");
        let pk = node_key().public_key();
        let w = wrap(
            &topic,
            b"secret",
            Some(&pk),
            &one_byte_target(),
            1 << 16,
            &mut rng(4),
        )
        .expect("mines");
        let mut data = w.chunk.to_data();
        data[SPAN_SIZE + 2 * SEGMENT_SIZE + 33] ^= 1;
        assert_eq!(
            unwrap(&data, &node_key(), &[topic]),
            Err(PssError::Integrity)
        );
    }

    #[test]
    fn both_mining_strategies_find_the_same_chunk() {
        let topic = PssTopic::from_string("chat");
        let t = Targets::new(&[[0x01], [0x02]]).expect("valid");
        let a = wrap_with(
            &topic,
            b"m",
            None,
            &t,
            1 << 16,
            Mining::Incremental,
            &mut rng(5),
        );
        let b = wrap_with(
            &topic,
            b"m",
            None,
            &t,
            1 << 16,
            Mining::FullRehash,
            &mut rng(5),
        );
        assert_eq!(a, b);
    }

    #[test]
    fn mining_gives_up_at_the_cap() {
        let topic = PssTopic::from_string("chat");
        let t = Targets::new(&[[1, 2, 3]]).expect("valid");
        assert_eq!(
            wrap(&topic, b"m", None, &t, 10, &mut rng(6)),
            Err(PssError::MiningExhausted { attempts: 10 })
        );
        assert_eq!(
            wrap(&topic, b"m", None, &t, 0, &mut rng(6)),
            Err(PssError::MiningExhausted { attempts: 0 })
        );
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        let topic = PssTopic::from_string("chat");
        assert_eq!(
            wrap(&topic, &[0; 4001], None, &one_byte_target(), 1, &mut rng(7)),
            Err(PssError::PayloadTooLarge { len: 4001 })
        );
        assert_eq!(Targets::new::<[u8; 1]>(&[]), Err(PssError::NoTargets));
        assert_eq!(
            Targets::new(&[[0u8; 4]]),
            Err(PssError::TargetLength { len: 4 })
        );
        assert_eq!(
            Targets::new(&[&[1u8][..], &[1, 2]]),
            Err(PssError::TargetLengthsDiffer)
        );
        assert_eq!(Targets::parse("zz"), Err(PssError::TargetHex));
        assert_eq!(Targets::parse("ab,cd").map(|t| t.prefix_len()), Ok(1));
        assert_eq!(
            PssTopic::from_bytes([0; 32]).private_key(),
            Err(PssError::TopicKey)
        );
        let many = vec![[1u8]; MAX_TARGETS + 1];
        assert_eq!(
            Targets::new(&many),
            Err(PssError::TooManyTargets {
                count: MAX_TARGETS + 1
            })
        );
    }
}
