//! Identifier formats the Whisper JSON-RPC API hands out (reference §3.4, §5.1).
//!
//! Key and filter ids are geth's `GenerateRandomID`: 32 random bytes as 64 lowercase hex
//! characters without `0x`. Subscription ids are geth's `rpc.NewID`: `0x` plus the hex of 16
//! random bytes with leading zeros trimmed (`"0x0"` if all are zero).

use rand::RngCore;

/// A fresh key or filter id.
pub fn random_id() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// A fresh subscription id.
pub fn subscription_id() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    encode_subscription_id(&b)
}

/// geth's `encodeID`.
pub fn encode_subscription_id(bytes: &[u8; 16]) -> String {
    let h = hex::encode(bytes);
    let t = h.trim_start_matches('0');
    format!("0x{}", if t.is_empty() { "0" } else { t })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_shapes() {
        let id = random_id();
        assert_eq!(id.len(), 64);
        assert!(
            id.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert!(subscription_id().starts_with("0x"));
        let mut b = [0u8; 16];
        assert_eq!(encode_subscription_id(&b), "0x0");
        b[1] = 0x0a;
        assert_eq!(encode_subscription_id(&b), format!("0xa{}", "0".repeat(28)));
    }
}
