//! `staples`: the sidecar binary.
fn main() {}
