//! What a dev network is made of: node count, addresses, data directory, limits and knobs.
//!
//! [`DevNetConfig::default`] is one node on `127.0.0.1:1633`, in memory, with a random
//! identity seed: the same defaults as the binary. Tests set `base_port` to 0 so every
//! node gets an ephemeral port.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use crate::knobs::KnobSettings;

/// The most nodes one process hosts. PSS delivery tries every node on each send, and
/// each node is a listener with its own tasks; past a few dozen a real testnet fits better.
pub const MAX_NODES: usize = 64;

/// Errors in a [`DevNetConfig`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `nodes` is 0.
    #[error("at least one node is needed")]
    NoNodes,
    /// `nodes` is above [`MAX_NODES`].
    #[error("{0} nodes requested, at most {MAX_NODES} are supported")]
    TooManyNodes(usize),
    /// `base_port + nodes - 1` does not fit in a port number.
    #[error("ports {base}..{base}+{nodes} run past 65535")]
    PortOverflow {
        /// First port.
        base: u16,
        /// Node count.
        nodes: usize,
    },
    /// A node listed as starting down does not exist.
    #[error("node {index} cannot start down: there are only {nodes} nodes")]
    NoSuchNode {
        /// The index given.
        index: usize,
        /// Node count.
        nodes: usize,
    },
    /// A limit is zero where zero would make the node unusable.
    #[error("limit {0} must be greater than zero")]
    ZeroLimit(&'static str),
}

/// Configuration of a [`crate::DevNet`].
#[derive(Debug, Clone)]
pub struct DevNetConfig {
    /// Number of virtual nodes (1..=[`MAX_NODES`]).
    pub nodes: usize,
    /// Address every node binds; loopback by default so nothing is exposed.
    pub bind: IpAddr,
    /// Port of node 0; node `i` listens on `base_port + i`. 0 gives each node an
    /// ephemeral port (tests).
    pub base_port: u16,
    /// Where chunks, batches and the identity seed persist; `None` keeps everything in
    /// memory for the life of the process.
    pub data_dir: Option<PathBuf>,
    /// Seed the node keys derive from. `None`: the seed stored in `data_dir`, or a fresh
    /// random one (stored there when `data_dir` is set).
    pub seed: Option<[u8; 32]>,
    /// Swarm network id mixed into overlay addresses (Bee mainnet is 1).
    pub network_id: u64,
    /// Nodes (by index) that start taken down.
    pub start_down: Vec<usize>,
    /// Test knobs, all off by default.
    pub knobs: KnobSettings,
    /// Seed of the knobs' random choices (dropped chunks), so a test run can be replayed.
    pub knob_seed: u64,
    /// Resource limits.
    pub limits: Limits,
}

impl Default for DevNetConfig {
    fn default() -> Self {
        Self {
            nodes: 1,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            base_port: 1633,
            data_dir: None,
            seed: None,
            network_id: 1,
            start_down: Vec::new(),
            knobs: KnobSettings::default(),
            knob_seed: 0,
            limits: Limits::default(),
        }
    }
}

impl DevNetConfig {
    /// A config for tests: `nodes` nodes on ephemeral loopback ports, in memory, with a
    /// fixed seed so keys and overlays are the same on every run.
    pub fn for_tests(nodes: usize) -> Self {
        Self {
            nodes,
            base_port: 0,
            seed: Some([7; 32]),
            ..Self::default()
        }
    }

    /// The port node `index` binds (0 means ephemeral).
    pub fn port_of(&self, index: usize) -> Result<u16, ConfigError> {
        if self.base_port == 0 {
            return Ok(0);
        }
        u16::try_from(index)
            .ok()
            .and_then(|i| self.base_port.checked_add(i))
            .ok_or(ConfigError::PortOverflow {
                base: self.base_port,
                nodes: self.nodes,
            })
    }

    /// Checks the config before anything is bound or opened.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.nodes == 0 {
            return Err(ConfigError::NoNodes);
        }
        if self.nodes > MAX_NODES {
            return Err(ConfigError::TooManyNodes(self.nodes));
        }
        self.port_of(self.nodes - 1)?;
        if let Some(&index) = self.start_down.iter().find(|&&i| i >= self.nodes) {
            return Err(ConfigError::NoSuchNode {
                index,
                nodes: self.nodes,
            });
        }
        self.limits.validate()
    }
}

/// Bounds on what one request or client may cost.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest `/bytes` upload body. Bee has no cap; a dev node holding everything in
    /// memory needs one.
    pub max_upload_bytes: u64,
    /// Largest content a `/bytes`, `/soc` or `/feeds` download joins in memory.
    pub max_download_bytes: u64,
    /// Open connections per node; further clients wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Messages queued per PSS WebSocket subscriber before it is disconnected as too slow.
    pub pss_queue: usize,
    /// Nonce attempts before a PSS send gives up (3-byte targets need 2^24 on average).
    pub pss_max_attempts: u64,
    /// PSS sends mining at the same time; more wait their turn (mining is CPU-bound).
    pub pss_mining_concurrency: usize,
    /// Interval of WebSocket pings to PSS subscribers (Bee: 60 s).
    pub ws_ping: Duration,
    /// How long a graceful stop waits for open requests before cutting them.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_upload_bytes: 256 << 20,
            max_download_bytes: 1 << 30,
            max_connections: 1024,
            pss_queue: 256,
            pss_max_attempts: 1 << 26,
            pss_mining_concurrency: 2,
            ws_ping: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

impl Limits {
    fn validate(&self) -> Result<(), ConfigError> {
        let checks = [
            ("max_connections", self.max_connections as u64),
            ("pss_queue", self.pss_queue as u64),
            ("pss_max_attempts", self.pss_max_attempts),
            ("pss_mining_concurrency", self.pss_mining_concurrency as u64),
            ("ws_ping", self.ws_ping.as_millis() as u64),
        ];
        match checks.iter().find(|(_, v)| *v == 0) {
            Some((name, _)) => Err(ConfigError::ZeroLimit(name)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_count_up_from_the_base() {
        let c = DevNetConfig {
            nodes: 3,
            ..DevNetConfig::default()
        };
        assert_eq!(c.port_of(2), Ok(1635));
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(DevNetConfig::for_tests(3).port_of(2), Ok(0));
    }

    #[test]
    fn bad_configs_are_typed_errors() {
        let base = DevNetConfig::default();
        let cases = [
            (
                DevNetConfig {
                    nodes: 0,
                    ..base.clone()
                },
                ConfigError::NoNodes,
            ),
            (
                DevNetConfig {
                    nodes: 65,
                    ..base.clone()
                },
                ConfigError::TooManyNodes(65),
            ),
            (
                DevNetConfig {
                    nodes: 3,
                    base_port: 65534,
                    ..base.clone()
                },
                ConfigError::PortOverflow {
                    base: 65534,
                    nodes: 3,
                },
            ),
            (
                DevNetConfig {
                    start_down: vec![1],
                    ..base.clone()
                },
                ConfigError::NoSuchNode { index: 1, nodes: 1 },
            ),
            (
                DevNetConfig {
                    limits: Limits {
                        pss_queue: 0,
                        ..Limits::default()
                    },
                    ..base.clone()
                },
                ConfigError::ZeroLimit("pss_queue"),
            ),
        ];
        for (config, err) in cases {
            assert_eq!(config.validate(), Err(err));
        }
    }
}
