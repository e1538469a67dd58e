//! The Staples sidecar library; `main.rs` is a thin binary over it.
