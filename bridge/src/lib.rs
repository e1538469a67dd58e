//! The Staples sidecar library; `main.rs` is a thin binary over it.
//!
//! - [`cli`]: the command line (clap) and what each command does.
//! - [`config`]: sidecar settings merged from flags, `STAPLES_*` variables and a TOML file.
//! - [`node`]: the local Whisper node (envelope pool and filters).
//! - [`keystore`]: keys in encrypted Web3 v3 files; [`store`]: SQLite (key index, filters,
//!   outbox).
//! - [`rpc`]: the JSON-RPC server (HTTP + WebSocket) and the `shh`, `net`, `web3` namespaces.
//! - [`upstream`]: forwarding to an upstream Whisper node (`--whisper-rpc`); [`dual`]: the
//!   Whisper side of `--transport=dual` over such a node.
//! - [`sidecar`]: wires it all together and runs until shutdown.

pub mod chat_client;
pub mod cli;
pub mod config;
pub mod dag_picture;
pub mod demo;
pub mod devp2p;
pub mod dual;
pub mod engine;
pub mod ids;
pub mod keystore;
pub mod mailserver;
pub mod metrics;
pub mod node;
pub mod recent;
pub mod relay;
pub mod rpc;
pub mod sidecar;
pub mod store;
pub mod swarm;
pub mod upstream;
