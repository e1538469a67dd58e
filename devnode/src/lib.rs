//! Staples dev node: Swarm's Bee HTTP API on one machine.
//!
//! One process hosts N virtual Bee 2.8.1 nodes, each with its own secp256k1 key, overlay,
//! PSS key, postage batches and port, over one shared chunk store (as if the network
//! replicated perfectly). PSS travels between them as real trojan chunks. Test knobs make
//! the network misbehave on purpose (latency, nodes going down, stale feed reads, lost
//! chunks), through [`DevNetConfig`], [`DevNet`] or the `/_staples` admin routes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), staples_devnode::DevNetError> {
//! let net = staples_devnode::DevNet::start(staples_devnode::DevNetConfig::for_tests(2)).await?;
//! let urls = net.urls(); // e.g. ["http://127.0.0.1:41235", "http://127.0.0.1:41237"]
//! # let _ = urls;
//! net.stop().await;
//! # Ok(()) }
//! ```
//!
//! - [`config`]: what a network is made of, and its limits.
//! - [`net`]: [`DevNet`], the nodes, taking them down and up.
//! - [`serve`]: one node's accept loop.
//! - [`api`]: the Bee routes and the admin routes.
//! - [`store`], [`journal`]: the shared chunk store and its on-disk journal.
//! - [`postage`]: batches and stamps. [`tags`]: upload tags.
//! - [`pss`]: trojan-chunk delivery and WebSocket subscribers.
//! - [`knobs`]: the test knobs. [`identity`]: node keys and addresses.
//! - [`shutdown`]: SIGINT/SIGTERM handling for the binaries.

pub mod api;
pub mod config;
pub mod identity;
pub mod journal;
pub mod knobs;
pub mod net;
pub mod postage;
pub mod pss;
pub mod serve;
pub mod shutdown;
pub mod store;
pub mod tags;

pub use config::{DevNetConfig, Limits};
pub use identity::NodeIdentity;
pub use knobs::{KnobSettings, KnobUpdate, Knobs};
pub use net::{DevNet, DevNetError, NodeInfo};
