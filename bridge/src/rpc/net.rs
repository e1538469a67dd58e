//! `net_*`, `web3_*` and `rpc_modules`, and [`LocalHandler`], which routes a local sidecar's
//! calls to the `shh` service and these.
//!
//! web3.js reads `net_version` with `parseInt` and `net_peerCount` as a hex quantity
//! (reference §6). Status apps show "offline" at zero peers, so the count means something
//! in every mode: a local node counts the sidecars that use it as their upstream
//! ([`super::peers`]); with PSS, the Bee node's connected peers are added.

use std::sync::Arc;

use serde_json::value::RawValue;
use staples_protocol::crypto::keccak256;
use staples_protocol::whisper::json::hex0x;

use super::Handler;
use super::conn::Conn;
use super::errors::RpcError;
use super::params::{self, Params};
use super::peers::SidecarPeers;
use super::shh::{self, ShhApi, to_raw};
use crate::engine::Hook;
use staples_protocol::dag::ChatId;

/// What `net_*` and `web3_clientVersion` report.
#[derive(Debug, Clone)]
pub struct NetInfo {
    /// `net_version`.
    pub network_id: String,
    /// `web3_clientVersion`.
    pub client_version: String,
}

impl Default for NetInfo {
    fn default() -> Self {
        NetInfo {
            network_id: "1".into(),
            client_version: format!(
                "Staples/v{}/{}-{}/rust",
                env!("CARGO_PKG_VERSION"),
                std::env::consts::OS,
                std::env::consts::ARCH
            ),
        }
    }
}

/// Answers the `net`, `web3` and `rpc` methods (`peers` for `net_peerCount`); `None` if
/// `method` is none of them.
pub fn call(
    info: &NetInfo,
    peers: u64,
    method: &str,
    raw: Option<&RawValue>,
) -> Option<Result<Box<RawValue>, RpcError>> {
    let p = |max| Params::parse(raw, max);
    Some(match method {
        "net_version" => p(0).and_then(|_| to_raw(&info.network_id)),
        "net_listening" => p(0).and_then(|_| to_raw(&true)),
        "net_peerCount" => p(0).and_then(|_| to_raw(&format!("{peers:#x}"))),
        "web3_clientVersion" => p(0).and_then(|_| to_raw(&info.client_version)),
        "web3_sha3" => p(1)
            .and_then(|p| p.arg(0, params::bytes))
            .and_then(|data| to_raw(&hex0x(&keccak256(data)))),
        "rpc_modules" => p(0).and_then(|_| {
            to_raw(&serde_json::json!({"net": "1.0", "rpc": "1.0", "shh": "1.0", "web3": "1.0"}))
        }),
        _ => return None,
    })
}

/// Routes calls of a sidecar that runs its own Whisper node.
pub struct LocalHandler<S> {
    shh: Arc<S>,
    net: NetInfo,
    engine: Option<Arc<dyn Hook>>,
    sidecars: Option<Arc<SidecarPeers>>,
    whisper_side: Option<Arc<crate::dual::WhisperSide>>,
    relay: Option<Arc<crate::relay::Relay>>,
    history: Option<Arc<dyn super::shhext::HistoryApi>>,
    devp2p: Option<Arc<crate::devp2p::Devp2p>>,
    mailserver: Option<Arc<crate::mailserver::Mailserver>>,
}

impl<S: ShhApi> LocalHandler<S> {
    /// Serves `shh` through `shh`, and `net`/`web3` with `net`.
    pub fn new(shh: Arc<S>, net: NetInfo) -> Self {
        LocalHandler {
            shh,
            net,
            engine: None,
            sidecars: None,
            whisper_side: None,
            relay: None,
            history: None,
            devp2p: None,
            mailserver: None,
        }
    }

    /// Adds the mailserver's counters to `staples_status` (`mailserver`).
    pub fn with_mailserver(mut self, m: Option<Arc<crate::mailserver::Mailserver>>) -> Self {
        self.mailserver = m;
        self
    }

    /// Dual mode: `staples_status` also reports the Whisper side (`whisper`).
    pub fn with_whisper_side(mut self, side: Arc<crate::dual::WhisperSide>) -> Self {
        self.whisper_side = Some(side);
        self
    }

    /// Counts the sidecars in `sidecars` as peers.
    pub fn with_sidecars(mut self, sidecars: Arc<SidecarPeers>) -> Self {
        self.sidecars = Some(sidecars);
        self
    }

    /// `net_peerCount`: sidecars using this node, plus the Bee node's peers with PSS, plus
    /// the upstream Whisper node's peers in dual mode.
    fn peer_count(&self) -> u64 {
        let sidecars = self
            .sidecars
            .as_ref()
            .map_or(0, |s| s.count(std::time::Instant::now()) as u64);
        let swarm = self.engine.as_ref().map_or(0, |e| e.peer_count());
        // In dual, the Whisper side's peers are the devp2p sessions when it is our own node.
        let whisper = match (&self.whisper_side, &self.devp2p) {
            (Some(w), _) => w.peer_count(),
            (None, Some(d)) => d.peers.count() as u64,
            (None, None) => 0,
        };
        sidecars + swarm + whisper
    }

    /// Serves `shhext_requestMessages(Sync)` from Swarm (`pss` and `dual`).
    pub fn with_history(mut self, history: Arc<dyn super::shhext::HistoryApi>) -> Self {
        self.history = Some(history);
        self
    }

    /// devp2p peers count for `net_peerCount` and answer `admin_peers` / `admin_addPeer`.
    pub fn with_devp2p(mut self, d: Arc<crate::devp2p::Devp2p>) -> Self {
        self.devp2p = Some(d);
        self
    }

    /// Adds a relay's state to `staples_status` (`staples relay`).
    pub fn with_relay(mut self, relay: Arc<crate::relay::Relay>) -> Self {
        self.relay = Some(relay);
        self
    }

    /// Also serves the `staples_*` extensions from the PSS engine.
    pub fn with_engine(mut self, engine: Arc<dyn Hook>) -> Self {
        self.engine = Some(engine);
        self
    }
}

/// `staples_status`, `staples_gaps`, `staples_history([chat])`: what Whisper's API cannot
/// say (transport health, outbox depth, per-chat sync state, gaps, DAG order).
async fn staples_call(
    engine: &dyn Hook,
    method: &str,
    raw: Option<&RawValue>,
) -> Option<Result<Box<RawValue>, RpcError>> {
    let p = |max| Params::parse(raw, max);
    Some(match method {
        "staples_status" => match p(0) {
            Ok(_) => to_raw(&engine.status().await),
            Err(e) => Err(e),
        },
        "staples_gaps" => match p(0) {
            Ok(_) => engine
                .gaps()
                .await
                .map_err(|e| RpcError::server(e.to_string()))
                .and_then(|v| to_raw(&v)),
            Err(e) => Err(e),
        },
        "staples_history" => {
            let chat = p(1).and_then(|p| {
                if p.is_empty() {
                    return Ok(None);
                }
                let b = p.arg(0, params::bytes)?;
                ChatId::from_slice(&b)
                    .map(Some)
                    .map_err(|_| RpcError::invalid_params("chat id must be 32 bytes"))
            });
            match chat {
                Ok(chat) => engine
                    .history(chat)
                    .await
                    .map_err(|e| RpcError::server(e.to_string()))
                    .and_then(|v| to_raw(&v)),
                Err(e) => Err(e),
            }
        }
        _ => return None,
    })
}

impl<S: ShhApi> Handler for LocalHandler<S> {
    async fn call(
        &self,
        method: &str,
        params: Option<&RawValue>,
        conn: &Arc<Conn>,
    ) -> Result<Box<RawValue>, RpcError> {
        if let Some(r) = shh::call(&self.shh, method, params, conn).await {
            return r;
        }
        let peers = if method == "net_peerCount" {
            self.peer_count()
        } else {
            0
        };
        if let Some(r) = call(&self.net, peers, method, params) {
            return r;
        }
        if let Some(h) = &self.history
            && let Some(r) = h.call(method, params)
        {
            return r.await;
        }
        if let Some(d) = &self.devp2p {
            match method {
                // geth's shapes, in part: enode, name, caps, network.inbound.
                "admin_peers" => {
                    Params::parse(params, 0)?;
                    let peers: Vec<_> = d
                        .peers
                        .list()
                        .into_iter()
                        .map(|p| {
                            serde_json::json!({"id": p.id, "enode": p.enode, "name": p.name, "caps": p.caps,
                                "network": {"inbound": p.inbound}})
                        })
                        .collect();
                    return super::shh::to_raw(&peers);
                }
                "admin_nodeInfo" => {
                    Params::parse(params, 0)?;
                    return super::shh::to_raw(&d.node_info());
                }
                "admin_addPeer" => {
                    let url = Params::parse(params, 1)?.arg(0, params::string)?;
                    let peer = crate::devp2p::Enode::parse(&url)
                        .map_err(|e| RpcError::server(e.to_string()))?;
                    tokio::spawn(d.clone().dial_forever(peer));
                    return super::shh::to_raw(&true);
                }
                _ => {}
            }
        }
        if let Some(engine) = &self.engine
            && let Some(r) = staples_call(engine.as_ref(), method, params).await
        {
            if let (Some(side), "staples_status", Ok(raw)) = (&self.whisper_side, method, &r) {
                let mut v: serde_json::Value = serde_json::from_str(raw.get()).unwrap_or_default();
                v["transport"] = "dual".into();
                v["whisper"] = side.status().await;
                if let Some(relay) = &self.relay {
                    v["relay"] = relay.status().await;
                }
                if let Some(m) = &self.mailserver {
                    v["mailserver"] = serde_json::json!({"counters": m.counters()});
                }
                return to_raw(&v);
            }
            return r;
        }
        Err(RpcError::method_not_found(method))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_answers() {
        let info = NetInfo::default();
        let get = |m: &str, p: Option<&str>| {
            let raw = p.map(|s| RawValue::from_string(s.into()).expect("json"));
            call(&info, 26, m, raw.as_deref()).map(|r| r.map(|v| v.get().to_string()))
        };
        assert_eq!(get("net_version", None), Some(Ok("\"1\"".into())));
        assert_eq!(get("net_peerCount", None), Some(Ok("\"0x1a\"".into())));
        assert_eq!(get("net_listening", Some("[]")), Some(Ok("true".into())));
        assert_eq!(
            get("web3_sha3", Some(r#"["0x"]"#)),
            Some(Ok(
                "\"0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470\"".into()
            ))
        );
        assert_eq!(get("eth_blockNumber", None), None);
    }
}
