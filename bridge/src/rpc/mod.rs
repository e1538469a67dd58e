//! The JSON-RPC server the app talks to.
//!
//! - [`server`]: HTTP and WebSocket on axum, with the security checks (loopback by default,
//!   bearer token, Origin allow-list, size and connection limits).
//! - [`jsonrpc`]: JSON-RPC 2.0 framing and batches, geth-style.
//! - [`conn`]: per-connection state: subscriptions and the bounded outgoing queue.
//! - [`params`]: Go-style parameter decoding; [`errors`]: codes and texts.
//! - [`shh`]: the `shh` namespace trait and dispatch; [`shh_local`]: its implementation over a
//!   local [`crate::node::Node`] and [`crate::keystore::Keys`].
//! - [`net`]: `net_*`, `web3_*`, and the [`LocalHandler`] that routes a local sidecar's calls;
//!   [`peers`]: which other sidecars count for `net_peerCount`.
//!
//! The framing is hand-rolled rather than jsonrpsee because the app must see geth's exact
//! behaviour: its error codes and texts, Go's case-insensitive keys and `encoding/json`
//! error messages, ids echoed verbatim, notifications held until the subscribe answer is
//! out, and a transparent proxy mode where unknown methods are forwarded, not refused.

pub mod conn;
pub mod errors;
pub mod jsonrpc;
pub mod net;
pub mod params;
pub mod peers;
pub mod server;
pub mod shh;
pub mod shh_local;
pub mod shhext;

use std::future::Future;
use std::sync::Arc;

use serde_json::value::RawValue;

pub use conn::Conn;
pub use errors::RpcError;
pub use net::{LocalHandler, NetInfo};
pub use shh::ShhApi;
pub use shh_local::ShhService;

/// Answers one JSON-RPC call. The server runs it; implementations route by method name.
pub trait Handler: Send + Sync + 'static {
    /// Calls `method` with its raw `params` on behalf of `conn`.
    fn call(
        &self,
        method: &str,
        params: Option<&RawValue>,
        conn: &Arc<Conn>,
    ) -> impl Future<Output = Result<Box<RawValue>, RpcError>> + Send;
}
