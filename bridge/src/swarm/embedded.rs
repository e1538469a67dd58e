//! The embedded Swarm dev node: `staples --transport=pss` with no `--bee-api` (and
//! `staples demo`) start [`staples_devnode::DevNet`] in this process on loopback ports, so
//! everything runs on one machine with no setup.

use std::path::PathBuf;

use staples_devnode::{DevNet, DevNetConfig, DevNetError};

/// A running in-process dev network.
pub struct EmbeddedSwarm {
    net: DevNet,
}

impl EmbeddedSwarm {
    /// The Bee API URL of each virtual node.
    pub fn urls(&self) -> Vec<String> {
        self.net.urls()
    }

    /// The dev network, for tests that turn its knobs.
    pub fn net(&self) -> &DevNet {
        &self.net
    }

    /// Stops every node (and flushes the journal when on disk).
    pub async fn stop(self) {
        self.net.stop().await;
    }
}

/// Starts `nodes` virtual Bee nodes on ephemeral loopback ports; on disk under `data_dir`
/// when given (chunks and feeds then survive a restart), else in memory.
pub async fn start_embedded(
    nodes: usize,
    data_dir: Option<PathBuf>,
) -> Result<EmbeddedSwarm, DevNetError> {
    let config = DevNetConfig {
        nodes,
        base_port: 0,
        data_dir,
        ..DevNetConfig::default()
    };
    Ok(EmbeddedSwarm {
        net: DevNet::start(config).await?,
    })
}
