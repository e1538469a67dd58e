//! Overlay addresses: where a Bee node sits in Swarm's address space.
//!
//! Bee `pkg/crypto/crypto.go` `NewOverlayFromEthereumAddress`:
//! `keccak256(eth_address(20) ‖ u64le(network_id) ‖ nonce(32))`. PSS targets are prefixes
//! of an overlay ([`super::pss::max_target`]).

use std::fmt;

use crate::crypto::{PublicKey, keccak256_concat};

/// A node's 32-byte overlay address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OverlayAddress([u8; 32]);

impl OverlayAddress {
    /// The overlay of an Ethereum address on `network_id` with the node's `nonce`.
    pub fn new(eth_address: &[u8; 20], network_id: u64, nonce: &[u8; 32]) -> Self {
        Self(keccak256_concat(&[
            eth_address,
            &network_id.to_le_bytes(),
            nonce,
        ]))
    }

    /// The overlay of the node whose signing key is `key`.
    pub fn from_public_key(key: &PublicKey, network_id: u64, nonce: &[u8; 32]) -> Self {
        Self::new(&key.eth_address(), network_id, nonce)
    }

    /// The address bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for OverlayAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for OverlayAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OverlayAddress({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{PrivateKey, keccak256};

    #[test]
    fn overlay_hashes_address_network_le_and_nonce() {
        let key = PrivateKey::from_bytes(&keccak256(b"node")).expect("valid");
        let eth = key.public_key().eth_address();
        let nonce = [3u8; 32];
        let mut preimage = eth.to_vec();
        preimage.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        preimage.extend_from_slice(&nonce);
        let o = OverlayAddress::from_public_key(&key.public_key(), 1, &nonce);
        assert_eq!(*o.as_bytes(), keccak256(&preimage));
        assert_ne!(o, OverlayAddress::new(&eth, 10, &nonce));
    }
}
