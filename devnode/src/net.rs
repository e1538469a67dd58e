//! The dev network: N virtual Bee nodes in one process over one shared store.
//!
//! [`DevNet::start`] binds every node's listener, replays the data directory if there is
//! one, and serves each node on its own task. Nodes differ in identity (keys, overlay, PSS
//! key), batches, tags and PSS subscribers; chunks are shared, as if every upload reached
//! every node. A node can be taken down (its listener closed, its connections and PSS
//! subscriptions cut, PSS no longer routed to it) and brought back on the same port.
//!
//! Concurrency: everything shared lives in one `Arc<Shared>`; the per-node server state
//! (a stop signal and the server task) sits behind a `std::sync::Mutex` that is only held
//! to swap it, never across an `.await`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use staples_protocol::swarm::bee_api::BeeMode;

use crate::config::{ConfigError, DevNetConfig, Limits};
use crate::identity::{NodeIdentity, checksum_address};
use crate::journal::{Journal, JournalError};
use crate::knobs::{KnobError, Knobs};
use crate::postage::Postage;
use crate::pss::{EndReason, PssHub};
use crate::serve::{self, Stop};
use crate::store::Store;
use crate::tags::Tags;

/// Name of the file in the data directory that keeps the identity seed.
pub const META_FILE: &str = "devnode.json";
/// Bee's chain had been running for a while; bee-js's tests expect a block number above
/// 300, so the simulated chain starts here and advances one block per 5 s.
const GENESIS_BLOCK: u64 = 1000;

/// Errors starting or controlling a dev network.
#[derive(Debug, thiserror::Error)]
pub enum DevNetError {
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The knob settings are invalid.
    #[error("invalid knobs: {0}")]
    Knobs(#[from] KnobError),
    /// A listener could not be bound.
    #[error("node {index}: cannot listen on {addr}: {source}")]
    Bind {
        /// Node index.
        index: usize,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The data directory could not be prepared.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory or file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The metadata file is unreadable.
    #[error("data directory metadata {path} is invalid: {reason}")]
    Meta {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The journal failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// No node has this index.
    #[error("no node {0}")]
    NoSuchNode(usize),
}

/// What the API and admin routes report about a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeInfo {
    /// Index in the network.
    pub index: usize,
    /// Base URL of its Bee API.
    pub url: String,
    /// Overlay address, hex.
    pub overlay: String,
    /// Ethereum address, EIP-55.
    pub ethereum: String,
    /// Compressed signing public key, hex.
    pub public_key: String,
    /// Compressed PSS public key, hex.
    pub pss_public_key: String,
    /// Whether it is serving.
    pub up: bool,
    /// Open PSS WebSocket subscriptions.
    pub pss_subscribers: usize,
    /// HTTP requests this node has answered since it started (benchmarks count a client's
    /// round trips with it).
    pub requests: u64,
    /// Its `beeMode`: `full`, `light` or `ultra-light`.
    pub mode: &'static str,
}

/// The modes a virtual node can act in (a dev node is not offered: it acts as full).
pub const MODES: [BeeMode; 3] = [BeeMode::Full, BeeMode::Light, BeeMode::UltraLight];

/// One virtual node.
#[derive(Debug)]
pub(crate) struct Node {
    pub identity: NodeIdentity,
    pub addr: SocketAddr,
    pub pss: Arc<PssHub>,
    pub tags: Tags,
    /// Requests answered, for [`NodeInfo::requests`].
    pub requests: std::sync::atomic::AtomicU64,
    up: AtomicBool,
    /// [`Node::mode`].
    mode: Mutex<BeeMode>,
    server: Mutex<Option<Server>>,
}

#[derive(Debug)]
struct Server {
    stop: watch::Sender<Stop>,
    task: JoinHandle<()>,
}

impl Node {
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Its `beeMode`. Light and ultra-light nodes receive no PSS (Bee delivers PSS to full
    /// nodes only); an ultra-light node has no postage, so it uploads nothing.
    pub fn mode(&self) -> BeeMode {
        *self.mode.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes it act as a node of the mode Bee calls `name` ([`MODES`]); `false` for any
    /// other name.
    pub fn set_mode(&self, name: &str) -> bool {
        match BeeMode::parse(name).filter(|m| MODES.contains(m)) {
            Some(m) => {
                *self.mode.lock().unwrap_or_else(PoisonError::into_inner) = m;
                true
            }
            None => false,
        }
    }

    /// Whether PSS messages reach it: up, and a node that receives PSS.
    pub fn receives_pss(&self) -> bool {
        self.is_up() && self.mode().receives_pss()
    }

    /// Marks the node down, ends its PSS subscriptions with `reason`, and tells its server
    /// to stop in `mode`. Returns the server task to wait on, if it was running.
    fn halt(&self, reason: EndReason, mode: Stop) -> Option<JoinHandle<()>> {
        self.up.store(false, Ordering::Release);
        self.pss.close(reason);
        let server = self
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        let _ = server.stop.send(mode);
        Some(server.task)
    }
}

/// State shared by every node of a network.
#[derive(Debug)]
pub(crate) struct Shared {
    pub limits: Limits,
    pub store: Store,
    pub postage: Postage,
    pub knobs: Knobs,
    pub nodes: Vec<Node>,
    pub mining: Semaphore,
    pub inflight: AtomicUsize,
    /// Unix time of the simulated chain's genesis block (kept in the data directory, so
    /// block numbers keep growing across restarts).
    genesis_unix: u64,
}

impl Shared {
    /// The simulated chain's current block.
    pub fn block(&self) -> u64 {
        GENESIS_BLOCK
            + unix_now().saturating_sub(self.genesis_unix) / crate::postage::BLOCK_TIME_SECS
    }

    pub fn node(&self, index: usize) -> Result<&Node, DevNetError> {
        self.nodes.get(index).ok_or(DevNetError::NoSuchNode(index))
    }

    pub fn info(&self, index: usize) -> Result<NodeInfo, DevNetError> {
        let n = self.node(index)?;
        Ok(NodeInfo {
            index,
            url: n.url(),
            overlay: n.identity.overlay().to_string(),
            ethereum: checksum_address(n.identity.eth_address()),
            public_key: hex::encode(n.identity.public_key().to_compressed()),
            pss_public_key: hex::encode(n.identity.pss_public_key().to_compressed()),
            up: n.is_up(),
            pss_subscribers: n.pss.subscriber_count(),
            requests: n.requests.load(Ordering::Relaxed),
            mode: n.mode().as_str(),
        })
    }

    /// Takes node `index` down: listener closed, connections and PSS subscriptions cut.
    /// Returns once the listener is closed (the server task has ended).
    pub async fn take_down(&self, index: usize) -> Result<(), DevNetError> {
        let node = self.node(index)?;
        if let Some(task) = node.halt(EndReason::NodeDown, Stop::Abort) {
            // Abort mode cuts connections at once, so this is quick; the timeout only
            // guards against a bug turning "down" into a hang.
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                tracing::warn!(node = index, "server task did not end within 5 s");
            }
            tracing::info!(node = index, "node taken down");
        }
        Ok(())
    }

    /// Brings node `index` back on its port (waiting briefly for the old listener to go).
    pub async fn bring_up(self: &Arc<Self>, index: usize) -> Result<(), DevNetError> {
        let node = self.node(index)?;
        if node
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
        {
            return Ok(());
        }
        let listener = bind_retrying(index, node.addr).await?;
        self.serve(index, listener);
        tracing::info!(node = index, url = %node.url(), "node brought up");
        Ok(())
    }

    /// Starts serving node `index` on `listener`.
    fn serve(self: &Arc<Self>, index: usize, listener: TcpListener) {
        let Some(node) = self.nodes.get(index) else {
            return;
        };
        let (stop, stop_rx) = watch::channel(Stop::Run);
        let app = crate::api::router(self.clone(), index);
        let task = tokio::spawn(serve::run(
            listener,
            app,
            stop_rx,
            self.limits.max_connections,
            self.limits.shutdown_grace,
        ));
        node.pss.open();
        node.up.store(true, Ordering::Release);
        *node.server.lock().unwrap_or_else(PoisonError::into_inner) = Some(Server { stop, task });
    }

    /// Stops every node gracefully and closes the journal.
    async fn stop(&self) {
        let mut tasks = Vec::new();
        for node in &self.nodes {
            tasks.extend(node.halt(EndReason::Stopped, Stop::Graceful));
        }
        for task in tasks {
            let _ = task.await;
        }
        if let Some(j) = self.store.journal()
            && let Err(e) = j.close().await
        {
            tracing::error!(error = %e, "closing the journal failed");
        }
    }
}

/// A running dev network. Dropping it stops the nodes without waiting; call
/// [`DevNet::stop`] to wait and to flush the data directory.
#[derive(Debug)]
pub struct DevNet {
    shared: Arc<Shared>,
    seed: [u8; 32],
}

impl DevNet {
    /// Starts the network: binds every node, replays `data_dir`, serves.
    ///
    /// Must be called inside a Tokio runtime (any flavour).
    pub async fn start(config: DevNetConfig) -> Result<Self, DevNetError> {
        config.validate()?;
        let knobs = Knobs::new(config.knobs.clone(), config.knob_seed)?;
        let (meta, journal, replay) = match &config.data_dir {
            Some(dir) => {
                let meta = load_or_create_meta(dir, config.seed)?;
                let (journal, replay) = Journal::open(dir)?;
                (meta, Some(journal), replay)
            }
            None => (
                Meta::new(config.seed.unwrap_or_else(random_seed)),
                None,
                Vec::new(),
            ),
        };
        let seed = meta.seed;
        let store = Store::with_journal(journal);
        let postage = Postage::new();
        for record in &replay {
            store.replay(record);
            postage.replay(record);
        }
        if !replay.is_empty() {
            tracing::info!(
                records = replay.len(),
                chunks = store.len(),
                batches = postage.all().len(),
                "replayed the data directory"
            );
        }

        let mut listeners = Vec::with_capacity(config.nodes);
        let mut nodes = Vec::with_capacity(config.nodes);
        for index in 0..config.nodes {
            let addr = SocketAddr::new(config.bind, config.port_of(index)?);
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| DevNetError::Bind {
                    index,
                    addr,
                    source,
                })?;
            let addr = listener.local_addr().map_err(|source| DevNetError::Bind {
                index,
                addr,
                source,
            })?;
            nodes.push(Node {
                identity: NodeIdentity::derive(&seed, index, config.network_id),
                addr,
                pss: PssHub::new(config.limits.pss_queue),
                tags: Tags::new(),
                requests: std::sync::atomic::AtomicU64::new(0),
                up: AtomicBool::new(false),
                mode: Mutex::new(BeeMode::Full),
                server: Mutex::new(None),
            });
            listeners.push(listener);
        }

        let shared = Arc::new(Shared {
            mining: Semaphore::new(config.limits.pss_mining_concurrency),
            limits: config.limits.clone(),
            store,
            postage,
            knobs,
            nodes,
            inflight: AtomicUsize::new(0),
            genesis_unix: meta.genesis_unix,
        });
        for (index, listener) in listeners.into_iter().enumerate() {
            if config.start_down.contains(&index) {
                // Free the port now; `bring_up` binds it again.
                drop(listener);
                shared.nodes[index].pss.close(EndReason::NodeDown);
            } else {
                shared.serve(index, listener);
            }
        }
        Ok(Self { shared, seed })
    }

    /// Base URLs of the nodes, by index.
    pub fn urls(&self) -> Vec<String> {
        self.shared.nodes.iter().map(Node::url).collect()
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.shared.nodes.len()
    }

    /// Whether the network has no nodes (never true for a started network).
    pub fn is_empty(&self) -> bool {
        self.shared.nodes.is_empty()
    }

    /// What is known about node `index`.
    pub fn node(&self, index: usize) -> Result<NodeInfo, DevNetError> {
        self.shared.info(index)
    }

    /// The identity of node `index` (its keys; dev networks have no secrets).
    pub fn identity(&self, index: usize) -> Result<&NodeIdentity, DevNetError> {
        Ok(&self.shared.node(index)?.identity)
    }

    /// The seed every identity derives from.
    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// The live knobs.
    pub fn knobs(&self) -> &Knobs {
        &self.shared.knobs
    }

    /// Takes node `index` down; returns once its listener is closed.
    pub async fn take_down(&self, index: usize) -> Result<(), DevNetError> {
        self.shared.take_down(index).await
    }

    /// Brings node `index` back up on its port.
    pub async fn bring_up(&self, index: usize) -> Result<(), DevNetError> {
        self.shared.bring_up(index).await
    }

    /// Chunks stored and their total size in bytes.
    pub fn store_stats(&self) -> (usize, u64) {
        (self.shared.store.len(), self.shared.store.data_bytes())
    }

    /// Requests being handled right now, across all nodes.
    pub fn inflight_requests(&self) -> usize {
        self.shared.inflight.load(Ordering::Relaxed)
    }

    /// Stops every node (open requests get the grace period), then syncs and closes the
    /// data directory's journal.
    pub async fn stop(self) {
        self.shared.stop().await;
    }
}

impl Drop for DevNet {
    fn drop(&mut self) {
        // Without an async context the best is to signal; the tasks end on their own.
        for node in &self.shared.nodes {
            // The returned task is left to finish by itself.
            drop(node.halt(EndReason::Stopped, Stop::Graceful));
        }
    }
}

/// What the data directory remembers besides the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Meta {
    seed: [u8; 32],
    genesis_unix: u64,
}

impl Meta {
    fn new(seed: [u8; 32]) -> Self {
        Self {
            seed,
            genesis_unix: unix_now(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct MetaFile {
    format: u32,
    seed: String,
    genesis_unix: u64,
}

/// Reads the metadata stored in `dir`, or stores new metadata with `wanted` (or a random
/// seed). A seed given explicitly must match the stored one: a different seed would
/// orphan the batches in the journal.
fn load_or_create_meta(dir: &Path, wanted: Option<[u8; 32]>) -> Result<Meta, DevNetError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DevNetError::DataDir { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join(META_FILE);
    let meta_err = |reason: String| DevNetError::Meta {
        path: path.clone(),
        reason,
    };
    match std::fs::read(&path) {
        Ok(bytes) => {
            let file: MetaFile =
                serde_json::from_slice(&bytes).map_err(|e| meta_err(e.to_string()))?;
            if file.format != 1 {
                return Err(meta_err(format!("unknown format {}", file.format)));
            }
            let mut seed = [0u8; 32];
            hex::decode_to_slice(&file.seed, &mut seed)
                .map_err(|_| meta_err("seed is not 64 hex digits".into()))?;
            if let Some(w) = wanted
                && w != seed
            {
                return Err(meta_err(
                    "the data directory was created with a different seed".into(),
                ));
            }
            Ok(Meta {
                seed,
                genesis_unix: file.genesis_unix,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let meta = Meta::new(wanted.unwrap_or_else(random_seed));
            let file = MetaFile {
                format: 1,
                seed: hex::encode(meta.seed),
                genesis_unix: meta.genesis_unix,
            };
            let json = serde_json::to_vec_pretty(&file).map_err(|e| meta_err(e.to_string()))?;
            std::fs::write(&path, json).map_err(io(&path))?;
            Ok(meta)
        }
        Err(e) => Err(io(&path)(e)),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn random_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    OsRng.fill_bytes(&mut seed);
    seed
}

/// Binds `addr`, retrying for up to 2 s while a just-closed listener releases it.
async fn bind_retrying(index: usize, addr: SocketAddr) -> Result<TcpListener, DevNetError> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(source) => {
                return Err(DevNetError::Bind {
                    index,
                    addr,
                    source,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_and_genesis_persist_and_the_seed_must_match() {
        let dir = std::env::temp_dir().join(format!("staples-devnode-meta-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = load_or_create_meta(&dir, None).expect("created");
        assert_eq!(load_or_create_meta(&dir, None).expect("read"), a);
        assert_eq!(load_or_create_meta(&dir, Some(a.seed)).expect("same"), a);
        assert!(matches!(
            load_or_create_meta(&dir, Some([0; 32])),
            Err(DevNetError::Meta { .. })
        ));
        std::fs::write(dir.join(META_FILE), b"{").expect("write");
        assert!(matches!(
            load_or_create_meta(&dir, None),
            Err(DevNetError::Meta { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
