//! Loading the cross-implementation vectors in `shared/vectors/`.
//!
//! The directory is `$STAPLES_VECTORS` or `../shared/vectors` beside the repository. A
//! missing file fails the test: these vectors are the compatibility bar, never optional.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;

/// Reads and parses `shared/vectors/{name}`.
pub fn load(name: &str) -> Value {
    let dir = std::env::var("STAPLES_VECTORS")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors").into());
    let path = format!("{dir}/{name}");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("vector file {path} is required: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The array `v[key]`.
pub fn cases<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("vector key {key} missing"))
        .as_slice()
}

/// `v[key]` as hex-decoded bytes.
pub fn bytes(v: &Value, key: &str) -> Vec<u8> {
    let s = v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing in {v}"));
    hex::decode(s).unwrap_or_else(|e| panic!("{key}: {e}"))
}

/// `v[key]` as a fixed-size array.
pub fn array<const N: usize>(v: &Value, key: &str) -> [u8; N] {
    bytes(v, key)
        .try_into()
        .unwrap_or_else(|_| panic!("{key}: not {N} bytes"))
}

/// `v[key]` as u64 (parsed as an integer, never through f64).
pub fn u64_of(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} not a u64 in {v}"))
}

/// `v[key]` as a string.
pub fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} not a string"))
}

/// `v[key]` as a bool.
pub fn bool_of(v: &Value, key: &str) -> bool {
    v[key]
        .as_bool()
        .unwrap_or_else(|| panic!("{key} not a bool"))
}

/// An f64 from its `*_f64` companion: the big-endian hex of the IEEE-754 bits.
pub fn f64_bits(v: &Value, key: &str) -> u64 {
    u64::from_str_radix(str_of(v, key), 16).unwrap_or_else(|e| panic!("{key}: {e}"))
}

/// An RNG that replays the given bytes in order, so a wrap made with it reproduces a
/// reference implementation's "random" choices. Panics when asked for more.
pub struct ScriptedRng(pub std::collections::VecDeque<u8>);

impl ScriptedRng {
    pub fn new(chunks: &[&[u8]]) -> Self {
        ScriptedRng(chunks.iter().flat_map(|c| c.iter().copied()).collect())
    }
    pub fn is_spent(&self) -> bool {
        self.0.is_empty()
    }
}

impl rand_core::RngCore for ScriptedRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for d in dest {
            *d = self.0.pop_front().expect("scripted rng exhausted");
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for ScriptedRng {}
