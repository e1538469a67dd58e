//! The RLPx handshake, EIP-8 format (devp2p `rlpx.md`, go-ethereum v1.9.7 `p2p/rlpx.go`):
//! the initiator's `auth` and the recipient's `ack`, each ECIES-encrypted to the other's
//! static key with its 2-byte size prefix authenticated, and the session secrets both sides
//! derive from them.
//!
//! ```text
//! auth-body = [sig(65), initiator-pubk(64), initiator-nonce(32), auth-vsn=4, ...]
//!   sig     = sign(initiator-ephemeral, ecdh(initiator-static, recipient-static) ^ initiator-nonce)
//! ack-body  = [recipient-ephemeral-pubk(64), recipient-nonce(32), ack-vsn=4, ...]
//! packet    = size(2, BE) ‖ ecies(remote-static, rlp(body) ‖ random padding, mac-data = size)
//! ```
//!
//! Sans-IO: the caller moves the bytes and supplies randomness. Pre-EIP-8 (plain, fixed
//! size) packets are not accepted: every devp2p node since 2016 sends EIP-8.

use alloy_rlp::{Encodable, Header};
use sha3::{Digest, Keccak256};

use crate::crypto::{PrivateKey, PublicKey, Signature, keccak256_concat};
use crate::whisper::ecies;

/// The handshake version both packets carry.
pub const HANDSHAKE_VERSION: u64 = 4;
/// Largest handshake packet accepted (geth reads at most this much too).
pub const MAX_PACKET: usize = 2048;

/// Errors of the handshake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// Fewer bytes than the size prefix announces (read more and try again).
    #[error("incomplete packet: {have} of {need} bytes")]
    Incomplete {
        /// Bytes available.
        have: usize,
        /// Bytes the packet needs.
        need: usize,
    },
    /// A size prefix above [`MAX_PACKET`].
    #[error("handshake packet of {0} bytes is too large")]
    TooLarge(usize),
    /// The ECIES layer refused it (not for our key, or tampered).
    #[error("cannot decrypt: {0}")]
    Ecies(#[from] ecies::EciesError),
    /// The body is not the RLP list it should be.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// A public key in the body is not a curve point.
    #[error("invalid public key in {0}")]
    InvalidKey(&'static str),
    /// The auth signature does not recover a key.
    #[error("invalid auth signature")]
    InvalidSignature,
}

/// What the initiator keeps between sending `auth` and reading `ack`.
pub struct Initiator {
    static_key: PrivateKey,
    remote: PublicKey,
    ephemeral: PrivateKey,
    nonce: [u8; 32],
    auth: Vec<u8>,
}

/// The secrets of an established session, from one side's point of view.
pub struct Secrets {
    /// The remote node's static public key (its node id).
    pub remote: PublicKey,
    /// AES-256-CTR key of both directions' streams.
    pub aes: [u8; 32],
    /// Key of the MAC's AES-256-ECB step.
    pub mac: [u8; 32],
    /// Keccak-256 state of our outgoing MAC.
    pub egress_mac: Keccak256,
    /// Keccak-256 state of the incoming MAC.
    pub ingress_mac: Keccak256,
}

impl Initiator {
    /// Starts a handshake with `remote`; returns the state and the `auth` packet to send.
    pub fn new(
        static_key: PrivateKey,
        remote: PublicKey,
        rng: &mut (impl rand_core::RngCore + rand_core::CryptoRng),
    ) -> (Self, Vec<u8>) {
        let ephemeral = PrivateKey::random(rng);
        let mut nonce = [0u8; 32];
        rng.fill_bytes(&mut nonce);
        let token = static_key.ecdh_x(&remote);
        let sig = ephemeral.sign_digest(&xor32(&token, &nonce));
        let mut body = Vec::new();
        Header {
            list: true,
            payload_length: sig.0.as_slice().length()
                + node_id(&static_key.public_key()).as_slice().length()
                + nonce.as_slice().length()
                + HANDSHAKE_VERSION.length(),
        }
        .encode(&mut body);
        sig.0.as_slice().encode(&mut body);
        node_id(&static_key.public_key())
            .as_slice()
            .encode(&mut body);
        nonce.as_slice().encode(&mut body);
        HANDSHAKE_VERSION.encode(&mut body);
        let auth = seal(&remote, body, rng);
        let packet = auth.clone();
        (
            Initiator {
                static_key,
                remote,
                ephemeral,
                nonce,
                auth,
            },
            packet,
        )
    }

    /// Reads the recipient's `ack` (the start of `buf`); the session secrets and how many
    /// bytes of `buf` the packet took.
    pub fn finish(self, buf: &[u8]) -> Result<(Secrets, usize), HandshakeError> {
        let (ack, used) = open(&self.static_key, buf)?;
        let mut p = list(&ack, "ack")?;
        let remote_eph = pubkey(&bytes_n::<64>(&mut p, "ack")?, "ack")?;
        let their_nonce = bytes_n::<32>(&mut p, "ack")?;
        let secrets = derive(
            &self.ephemeral,
            &remote_eph,
            &their_nonce,
            &self.nonce,
            &self.auth,
            &buf[..used],
            true,
            self.remote,
        );
        Ok((secrets, used))
    }
}

/// The recipient's side: reads `auth` (the start of `buf`), answers with `ack`. Returns
/// the session secrets, the `ack` packet to send and how many bytes of `buf` were used.
pub fn respond(
    static_key: &PrivateKey,
    buf: &[u8],
    rng: &mut (impl rand_core::RngCore + rand_core::CryptoRng),
) -> Result<(Secrets, Vec<u8>, usize), HandshakeError> {
    let (auth, used) = open(static_key, buf)?;
    let mut p = list(&auth, "auth")?;
    let sig = Signature(bytes_n::<65>(&mut p, "auth")?);
    let remote = pubkey(&bytes_n::<64>(&mut p, "auth")?, "auth")?;
    let their_nonce = bytes_n::<32>(&mut p, "auth")?;
    let token = static_key.ecdh_x(&remote);
    let remote_eph = sig
        .recover(&xor32(&token, &their_nonce))
        .map_err(|_| HandshakeError::InvalidSignature)?;
    let ephemeral = PrivateKey::random(rng);
    let mut nonce = [0u8; 32];
    rng.fill_bytes(&mut nonce);
    let mut body = Vec::new();
    let eph_id = node_id(&ephemeral.public_key());
    Header {
        list: true,
        payload_length: eph_id.as_slice().length()
            + nonce.as_slice().length()
            + HANDSHAKE_VERSION.length(),
    }
    .encode(&mut body);
    eph_id.as_slice().encode(&mut body);
    nonce.as_slice().encode(&mut body);
    HANDSHAKE_VERSION.encode(&mut body);
    let ack = seal(&remote, body, rng);
    let secrets = derive(
        &ephemeral,
        &remote_eph,
        &their_nonce,
        &nonce,
        &ack,
        &buf[..used],
        false,
        remote,
    );
    Ok((secrets, ack, used))
}

/// A node id: the 64-byte uncompressed public key without its `04` prefix.
pub fn node_id(key: &PublicKey) -> [u8; 64] {
    let mut id = [0u8; 64];
    id.copy_from_slice(&key.to_uncompressed()[1..]);
    id
}

/// The public key of a 64-byte node id.
pub fn from_node_id(id: &[u8; 64]) -> Result<PublicKey, crate::crypto::CryptoError> {
    let mut k = [0u8; 65];
    k[0] = 4;
    k[1..].copy_from_slice(id);
    PublicKey::from_uncompressed(&k)
}

/// `size ‖ ecies(remote, body ‖ padding, mac-data = size)`, with 100–299 random padding
/// bytes as geth adds (so handshakes are not recognisable by length).
fn seal(
    remote: &PublicKey,
    mut body: Vec<u8>,
    rng: &mut (impl rand_core::RngCore + rand_core::CryptoRng),
) -> Vec<u8> {
    let pad = 100 + (rng.next_u32() % 200) as usize;
    let start = body.len();
    body.resize(start + pad, 0);
    rng.fill_bytes(&mut body[start..]);
    let size = u16::try_from(body.len() + ecies::OVERHEAD)
        .unwrap_or(u16::MAX)
        .to_be_bytes();
    let ephemeral = PrivateKey::random(rng);
    let mut iv = [0u8; ecies::IV_LENGTH];
    rng.fill_bytes(&mut iv);
    let ct = ecies::encrypt_with_mac_data(remote, &ephemeral, &iv, &body, &size);
    let mut out = Vec::with_capacity(2 + ct.len());
    out.extend_from_slice(&size);
    out.extend_from_slice(&ct);
    out
}

/// Decrypts the size-prefixed packet at the start of `buf`: its plaintext and length.
fn open(key: &PrivateKey, buf: &[u8]) -> Result<(Vec<u8>, usize), HandshakeError> {
    if buf.len() < 2 {
        return Err(HandshakeError::Incomplete {
            have: buf.len(),
            need: 2,
        });
    }
    let size = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
    if size > MAX_PACKET {
        return Err(HandshakeError::TooLarge(size));
    }
    let need = 2 + size;
    if buf.len() < need {
        return Err(HandshakeError::Incomplete {
            have: buf.len(),
            need,
        });
    }
    let plain = ecies::decrypt_with_mac_data(key, &buf[2..need], &buf[..2])?;
    Ok((plain, need))
}

/// The items of the RLP list at the start of `plain` (what follows it is padding).
fn list<'a>(plain: &'a [u8], what: &'static str) -> Result<&'a [u8], HandshakeError> {
    let mut b = plain;
    let h = Header::decode(&mut b).map_err(|_| HandshakeError::Malformed(what))?;
    if !h.list || b.len() < h.payload_length {
        return Err(HandshakeError::Malformed(what));
    }
    Ok(&b[..h.payload_length])
}

/// The next list item, a byte string of exactly `N` bytes.
fn bytes_n<const N: usize>(p: &mut &[u8], what: &'static str) -> Result<[u8; N], HandshakeError> {
    let h = Header::decode(p).map_err(|_| HandshakeError::Malformed(what))?;
    if h.list || h.payload_length != N || p.len() < N {
        return Err(HandshakeError::Malformed(what));
    }
    let mut out = [0u8; N];
    out.copy_from_slice(&p[..N]);
    *p = &p[N..];
    Ok(out)
}

fn pubkey(id: &[u8; 64], what: &'static str) -> Result<PublicKey, HandshakeError> {
    from_node_id(id).map_err(|_| HandshakeError::InvalidKey(what))
}

fn xor32(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for i in 0..32 {
        out[i] = a[i] ^ b[i];
    }
    out
}

/// The session secrets (rlpx.md "Secrets"): `initiator` says which side we are, `sent`
/// and `received` are the handshake packets as they went over the wire.
#[allow(clippy::too_many_arguments)]
fn derive(
    ephemeral: &PrivateKey,
    remote_ephemeral: &PublicKey,
    their_nonce: &[u8; 32],
    our_nonce: &[u8; 32],
    sent: &[u8],
    received: &[u8],
    initiator: bool,
    remote: PublicKey,
) -> Secrets {
    let ecdhe = ephemeral.ecdh_x(remote_ephemeral);
    // keccak(recipient-nonce ‖ initiator-nonce)
    let (recipient_nonce, initiator_nonce) = if initiator {
        (their_nonce, our_nonce)
    } else {
        (our_nonce, their_nonce)
    };
    let nonces = keccak256_concat(&[recipient_nonce, initiator_nonce]);
    let shared = keccak256_concat(&[&ecdhe, &nonces]);
    let aes = keccak256_concat(&[&ecdhe, &shared]);
    let mac = keccak256_concat(&[&ecdhe, &aes]);
    // Egress starts from (mac ^ their nonce) ‖ what we sent; ingress the other way.
    let mut egress = Keccak256::new();
    egress.update(xor32(&mac, their_nonce));
    egress.update(sent);
    let mut ingress = Keccak256::new();
    ingress.update(xor32(&mac, our_nonce));
    ingress.update(received);
    Secrets {
        remote,
        aes,
        mac,
        egress_mac: egress,
        ingress_mac: ingress,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn dup(k: &PrivateKey) -> PrivateKey {
        PrivateKey::from_bytes(&k.to_bytes()).expect("a key")
    }

    #[test]
    fn both_sides_derive_mirrored_secrets() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let a = PrivateKey::random(&mut rng);
        let b = PrivateKey::random(&mut rng);
        let (init, auth) = Initiator::new(dup(&a), b.public_key(), &mut rng);
        // The recipient may get the auth in pieces.
        assert!(matches!(
            respond(&b, &auth[..10], &mut rng),
            Err(HandshakeError::Incomplete { .. })
        ));
        let mut wire = auth.clone();
        wire.extend_from_slice(b"next");
        let (rs, ack, used) = respond(&b, &wire, &mut rng).expect("auth");
        assert_eq!(used, auth.len());
        assert_eq!(node_id(&rs.remote), node_id(&a.public_key()));
        let (is, used) = init.finish(&ack).expect("ack");
        assert_eq!(used, ack.len());
        assert_eq!(node_id(&is.remote), node_id(&b.public_key()));
        assert_eq!((is.aes, is.mac), (rs.aes, rs.mac));
        assert_eq!(is.egress_mac.finalize(), rs.ingress_mac.finalize());
        assert_eq!(is.ingress_mac.finalize(), rs.egress_mac.finalize());
    }

    #[test]
    fn a_tampered_or_misaddressed_auth_is_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let a = PrivateKey::random(&mut rng);
        let b = PrivateKey::random(&mut rng);
        let c = PrivateKey::random(&mut rng);
        let (_, mut auth) = Initiator::new(dup(&a), b.public_key(), &mut rng);
        assert!(matches!(
            respond(&c, &auth, &mut rng),
            Err(HandshakeError::Ecies(_))
        ));
        auth[1] ^= 1;
        assert!(
            respond(&b, &auth, &mut rng).is_err(),
            "the size is authenticated"
        );
        assert_eq!(
            respond(&b, &[0xff, 0xff], &mut rng).err(),
            Some(HandshakeError::TooLarge(0xffff))
        );
    }
}
