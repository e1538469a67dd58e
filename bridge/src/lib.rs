//! The Staples sidecar library; `main.rs` is a thin binary over it.
//!
//! - [`cli`]: the command line (clap) and what each command does.
//!
//! The JSON-RPC server, transports, store and keystore arrive with their issues; today the
//! binary offers the Whisper codec commands (`staples whisper ...`, `staples topic`).

pub mod cli;
