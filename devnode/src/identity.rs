//! Who a virtual node is: its signing key, overlay address and PSS key.
//!
//! Bee keeps two secp256k1 keys per node: the signer (Ethereum address, batch owner,
//! overlay) and a separate PSS key. The retired `bee dev` drew a random key on every start;
//! here both keys derive from a 32-byte seed and the node index, so a data directory keeps
//! its identities (and the batches they own) across restarts, and tests can recompute a
//! node's key to sign stamps for its batches.

use staples_protocol::crypto::{PrivateKey, PublicKey, keccak256, keccak256_concat};
use staples_protocol::swarm::overlay::OverlayAddress;

/// A node's keys and addresses.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    index: usize,
    signer: PrivateKey,
    pss: PrivateKey,
    overlay: OverlayAddress,
    eth: [u8; 20],
}

impl NodeIdentity {
    /// The identity of node `index` under `seed` on network `network_id`.
    pub fn derive(seed: &[u8; 32], index: usize, network_id: u64) -> Self {
        let signer = derive_key(seed, index, b"signer");
        let pss = derive_key(seed, index, b"pss");
        let nonce = keccak256_concat(&[
            b"staples-devnode/overlay-nonce",
            seed,
            &(index as u64).to_be_bytes(),
        ]);
        let eth = signer.public_key().eth_address();
        Self {
            index,
            overlay: OverlayAddress::new(&eth, network_id, &nonce),
            signer,
            pss,
            eth,
        }
    }

    /// Position of the node in its network.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The signing key: owner of the node's batches. Dev-only, so tests may use it.
    pub fn signing_key(&self) -> &PrivateKey {
        &self.signer
    }

    /// The PSS decryption key.
    pub fn pss_key(&self) -> &PrivateKey {
        &self.pss
    }

    /// Public key of the signer.
    pub fn public_key(&self) -> PublicKey {
        self.signer.public_key()
    }

    /// Public key PSS senders encrypt to.
    pub fn pss_public_key(&self) -> PublicKey {
        self.pss.public_key()
    }

    /// The overlay address.
    pub fn overlay(&self) -> &OverlayAddress {
        &self.overlay
    }

    /// The Ethereum address of the signer.
    pub fn eth_address(&self) -> &[u8; 20] {
        &self.eth
    }
}

/// `0x` + EIP-55 mixed-case hex, the form Bee (go-ethereum's `common.Address`) prints.
pub fn checksum_address(address: &[u8; 20]) -> String {
    let lower = hex::encode(address);
    let hash = keccak256(lower.as_bytes());
    let mut out = String::with_capacity(42);
    out.push_str("0x");
    for (i, c) in lower.chars().enumerate() {
        let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0x0f;
        out.push(if nibble >= 8 {
            c.to_ascii_uppercase()
        } else {
            c
        });
    }
    out
}

/// A key from `keccak256(label ‖ seed ‖ index ‖ counter)`, stepping the counter in the
/// (astronomically unlikely) case the hash is zero or not below the curve order.
fn derive_key(seed: &[u8; 32], index: usize, label: &[u8]) -> PrivateKey {
    let mut counter = 0u32;
    loop {
        let bytes = keccak256_concat(&[
            b"staples-devnode/",
            label,
            seed,
            &(index as u64).to_be_bytes(),
            &counter.to_be_bytes(),
        ]);
        if let Ok(key) = PrivateKey::from_bytes(&bytes) {
            return key;
        }
        counter = counter.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_deterministic_and_distinct() {
        let a = NodeIdentity::derive(&[1; 32], 0, 1);
        let b = NodeIdentity::derive(&[1; 32], 0, 1);
        let c = NodeIdentity::derive(&[1; 32], 1, 1);
        assert_eq!(a.overlay(), b.overlay());
        assert_ne!(a.overlay(), c.overlay());
        assert_ne!(a.public_key(), a.pss_public_key());
        assert_ne!(
            NodeIdentity::derive(&[1; 32], 0, 2).overlay(),
            a.overlay(),
            "the network id is part of the overlay"
        );
    }

    #[test]
    fn checksum_matches_eip55() {
        // The four all-caps / all-lower / mixed examples of EIP-55 itself.
        for s in [
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
            "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        ] {
            let mut raw = [0u8; 20];
            hex::decode_to_slice(s[2..].to_lowercase(), &mut raw).expect("hex");
            assert_eq!(checksum_address(&raw), s);
        }
    }
}
