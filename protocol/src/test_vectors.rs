//! Loads the cross-implementation vectors in `shared/vectors` for tests.
//!
//! The directory is `$STAPLES_VECTORS` or `../../shared/vectors` from this crate. A missing
//! or unreadable file fails the test: a vector test that skips proves nothing.

use std::path::PathBuf;

/// Parses `name` (e.g. `mvds.json`) from the vector directory; panics if it is absent.
pub(crate) fn load(name: &str) -> serde_json::Value {
    let dir = std::env::var_os("STAPLES_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/vectors"))
        });
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("vector file {} unreadable: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("vector file {} is not JSON: {e}", path.display()))
}

/// Decodes a hex string field of a vector case.
pub(crate) fn hex_field(case: &serde_json::Value, field: &str) -> Vec<u8> {
    let s = case[field]
        .as_str()
        .unwrap_or_else(|| panic!("field {field} is not a string in {case}"));
    hex::decode(s).unwrap_or_else(|e| panic!("field {field} is not hex: {e}"))
}
