//! RLPx frames (devp2p `rlpx.md` "Framing", go-ethereum v1.9.7 `p2p/rlpx.go`
//! `rlpxFrameRW`): after the handshake every message is
//!
//! ```text
//! header-ct(16) ‖ header-mac(16) ‖ frame-ct(padded to 16) ‖ frame-mac(16)
//! header    = frame-size(3, BE) ‖ [0xc2, 0x80, 0x80] ‖ zeros to 16
//! frame     = rlp(message code) ‖ payload
//! ```
//!
//! encrypted with one AES-256-CTR stream per direction (IV zero, the handshake's AES
//! secret) and authenticated by a running Keccak-256 MAC per direction whose seeds pass
//! through AES-256 with the MAC secret. Payloads are not compressed: Staples announces
//! p2p version 4, so geth does not switch on snappy.

use aes::Aes256;
use aes::cipher::{BlockEncrypt, KeyInit};
use alloy_rlp::{Decodable, Encodable};
use ctr::cipher::{KeyIvInit, StreamCipher};
use sha3::{Digest, Keccak256};

use super::handshake::Secrets;

type Aes256Ctr = ctr::Ctr128BE<Aes256>;

/// Largest frame size the 3-byte field can say.
pub const MAX_FRAME: usize = (1 << 24) - 1;
const ZERO_HEADER: [u8; 3] = [0xc2, 0x80, 0x80];

/// Errors reading frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A header MAC that does not verify (tampered, or out of step).
    #[error("bad header mac")]
    HeaderMac,
    /// A frame MAC that does not verify.
    #[error("bad frame mac")]
    FrameMac,
    /// The frame does not start with an RLP message code.
    #[error("frame without a message code")]
    NoCode,
    /// A payload over the size field's range.
    #[error("payload of {0} bytes is too large for a frame")]
    TooLarge(usize),
}

/// One direction-pair of an established session: seals what we send, opens what we read.
pub struct FrameCodec {
    enc: Aes256Ctr,
    dec: Aes256Ctr,
    mac_cipher: Aes256,
    egress: Keccak256,
    ingress: Keccak256,
    /// A header read whose frame has not arrived yet: its size.
    pending: Option<usize>,
}

/// What [`FrameCodec::read`] took from its input.
#[derive(Debug, PartialEq, Eq)]
pub struct Read {
    /// Bytes consumed from the front of the input.
    pub consumed: usize,
    /// A whole message, if one was completed: its code and payload.
    pub message: Option<(u64, Vec<u8>)>,
}

impl FrameCodec {
    /// The codec of a session.
    pub fn new(s: Secrets) -> Self {
        let iv = [0u8; 16];
        FrameCodec {
            enc: Aes256Ctr::new(&s.aes.into(), &iv.into()),
            dec: Aes256Ctr::new(&s.aes.into(), &iv.into()),
            mac_cipher: Aes256::new(&s.mac.into()),
            egress: s.egress_mac,
            ingress: s.ingress_mac,
            pending: None,
        }
    }

    /// Seals message `code` with `payload` (already RLP) into one frame.
    pub fn write(&mut self, code: u64, payload: &[u8]) -> Result<Vec<u8>, FrameError> {
        let mut data = Vec::with_capacity(payload.len() + 24);
        code.encode(&mut data);
        data.extend_from_slice(payload);
        let size = data.len();
        if size > MAX_FRAME {
            return Err(FrameError::TooLarge(size));
        }
        let mut header = [0u8; 16];
        header[..3].copy_from_slice(&(size as u32).to_be_bytes()[1..]);
        header[3..6].copy_from_slice(&ZERO_HEADER);
        self.enc.apply_keystream(&mut header);
        let header_mac = update_mac(&mut self.egress, &self.mac_cipher, &header);
        data.resize(size.div_ceil(16) * 16, 0);
        self.enc.apply_keystream(&mut data);
        self.egress.update(&data);
        let seed = digest16(&self.egress);
        let frame_mac = update_mac(&mut self.egress, &self.mac_cipher, &seed);
        let mut out = Vec::with_capacity(32 + data.len() + 16);
        out.extend_from_slice(&header);
        out.extend_from_slice(&header_mac);
        out.extend_from_slice(&data);
        out.extend_from_slice(&frame_mac);
        Ok(out)
    }

    /// Reads from the front of `buf`: a header, then its frame once all of it is there.
    /// Call again with what is left (and more bytes) until it consumes nothing.
    pub fn read(&mut self, buf: &[u8]) -> Result<Read, FrameError> {
        let mut consumed = 0;
        let size = match self.pending {
            Some(s) => s,
            None => {
                if buf.len() < 32 {
                    return Ok(Read {
                        consumed: 0,
                        message: None,
                    });
                }
                let mut header = [0u8; 16];
                header.copy_from_slice(&buf[..16]);
                let want = update_mac(&mut self.ingress, &self.mac_cipher, &header);
                if want != buf[16..32] {
                    return Err(FrameError::HeaderMac);
                }
                self.dec.apply_keystream(&mut header);
                let size = usize::from(header[0]) << 16
                    | usize::from(header[1]) << 8
                    | usize::from(header[2]);
                self.pending = Some(size);
                consumed = 32;
                size
            }
        };
        let padded = size.div_ceil(16) * 16;
        let rest = &buf[consumed..];
        if rest.len() < padded + 16 {
            return Ok(Read {
                consumed,
                message: None,
            });
        }
        let mut frame = rest[..padded].to_vec();
        self.ingress.update(&frame);
        let seed = digest16(&self.ingress);
        let want = update_mac(&mut self.ingress, &self.mac_cipher, &seed);
        if want != rest[padded..padded + 16] {
            return Err(FrameError::FrameMac);
        }
        self.pending = None;
        self.dec.apply_keystream(&mut frame);
        frame.truncate(size);
        let mut p = frame.as_slice();
        let code = u64::decode(&mut p).map_err(|_| FrameError::NoCode)?;
        let payload = p.to_vec();
        Ok(Read {
            consumed: consumed + padded + 16,
            message: Some((code, payload)),
        })
    }
}

/// The first 16 bytes of the MAC's current digest.
fn digest16(mac: &Keccak256) -> [u8; 16] {
    let d = mac.clone().finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

/// geth's `updateMAC`: `mac.update(aes(mac-secret, digest[..16]) ^ seed)`, returns the new
/// digest's first 16 bytes.
fn update_mac(mac: &mut Keccak256, cipher: &Aes256, seed: &[u8; 16]) -> [u8; 16] {
    let mut block = digest16(mac).into();
    cipher.encrypt_block(&mut block);
    let mut buf = [0u8; 16];
    for (i, b) in buf.iter_mut().enumerate() {
        *b = block[i] ^ seed[i];
    }
    mac.update(buf);
    digest16(mac)
}

#[cfg(test)]
mod tests {
    use super::super::handshake::{Initiator, respond};
    use super::*;
    use crate::crypto::PrivateKey;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn pair() -> (FrameCodec, FrameCodec) {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let a = PrivateKey::random(&mut rng);
        let b = PrivateKey::random(&mut rng);
        let (init, auth) = Initiator::new(
            PrivateKey::from_bytes(&a.to_bytes()).expect("key"),
            b.public_key(),
            &mut rng,
        );
        let (rs, ack, _) = respond(&b, &auth, &mut rng).expect("auth");
        let (is, _) = init.finish(&ack).expect("ack");
        (FrameCodec::new(is), FrameCodec::new(rs))
    }

    #[test]
    fn frames_cross_in_pieces_and_tampering_is_caught() {
        let (mut a, mut b) = pair();
        let mut wire = Vec::new();
        for (code, payload) in [(0u64, vec![0xc0]), (16, vec![7; 40]), (3, vec![])] {
            wire.extend(a.write(code, &payload).expect("fits"));
        }
        // Fed a byte at a time, then the rest: the same three messages.
        let mut got = Vec::new();
        let mut buf = Vec::new();
        for byte in wire {
            buf.push(byte);
            loop {
                let r = b.read(&buf).expect("authentic");
                buf.drain(..r.consumed);
                got.extend(r.message);
                if r.consumed == 0 {
                    break;
                }
            }
        }
        assert_eq!(
            got,
            [(0, vec![0xc0]), (16, vec![7; 40]), (3, vec![])],
            "in order, whole"
        );
        // And back the other way; then a flipped bit fails the MAC.
        let mut back = b.write(2, &[0xc0]).expect("fits");
        assert_eq!(a.read(&back).expect("ok").message, Some((2, vec![0xc0])));
        back = b.write(2, &[0xc0]).expect("fits");
        back[40] ^= 1;
        assert_eq!(a.read(&back).err(), Some(FrameError::FrameMac));
    }
}
