//! The Whisper side of `dual` (and of a relay) as a Whisper node of our own: an
//! in-process node with devp2p peers, used through the same calls as an upstream
//! `--whisper-rpc` node ([`Upstream::in_process`]), so the dual side's posting, filter
//! mirroring and the relay's bridging run unchanged over devp2p.
//!
//! Why a second node and not the sidecar's own pool: in `dual` the sidecar's node holds
//! what the app posted with its DAG carrier and delivers through the Swarm engine; the
//! Whisper side needs a node that the Whisper network feeds and whose filters the dual
//! side polls, exactly as it would poll geth. Keeping the two apart keeps one model of the
//! Whisper side (specs/transport-dual.md) whatever node plays it.
//!
//! Its pool survives a crash: it has its own store (`whisper-node.sqlite` in the data
//! dir), whose outbox is re-pooled at start and gossiped again, so a post the dual side
//! handed over just before a kill still reaches Whisper peers. Keys the dual side imports
//! live in its memory only, like keys imported into geth; its filters are mirrors the dual
//! side makes again after a restart, so stored ones are dropped at start.

use std::sync::Arc;

use staples_protocol::crypto::PrivateKey;

use super::{Devp2p, Devp2pError, Peers};
use crate::config::Config;
use crate::keystore::Keystore;
use crate::node::LocalNode;
use crate::rpc::{LocalHandler, NetInfo, ShhService};
use crate::store::{Origin, Store};
use crate::upstream::Upstream;

/// A running in-process Whisper node with devp2p peers.
pub struct EmbeddedWhisper {
    /// Calls to it, as to an upstream node.
    pub upstream: Arc<Upstream>,
    /// Its devp2p sessions (`admin_peers`, `admin_nodeInfo`, `admin_addPeer`).
    pub devp2p: Arc<Devp2p>,
    /// Its `shh` service (a relay bridging raw envelopes posts into it).
    pub svc: Arc<super::Service>,
    /// Its sessions, listener and janitor.
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Its store, to close on shutdown.
    pub store: Store,
}

/// Errors starting it.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// Its store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Its pool could not be restored.
    #[error(transparent)]
    Restore(#[from] crate::rpc::shh::ShhError),
    /// Its devp2p side could not start.
    #[error(transparent)]
    Devp2p(#[from] Devp2pError),
}

impl EmbeddedWhisper {
    /// Starts it in the sidecar's data dir with its PoW floor and devp2p settings
    /// (listener, static peers, envelope rate), with node key `key`, answering mailserver
    /// requests with `mail`.
    pub async fn start(
        cfg: &Config,
        key: Arc<PrivateKey>,
        mail: Option<Arc<dyn super::MailServer>>,
    ) -> Result<Self, EmbeddedError> {
        let store = Store::open(&cfg.data_dir.join("whisper-node.sqlite"))?;
        for f in store.filters_of(Origin::Local).await? {
            store.delete_filter(f.id).await?;
        }
        let node = Arc::new(LocalNode::with_acks(
            cfg.min_pow,
            crate::node::Acks::new(Some(store.clone())),
        ));
        let sessions = Arc::new(Peers::default());
        let svc = Arc::new(
            ShhService::new(
                node.clone(),
                Arc::new(Keystore::in_memory()),
                Some(store.clone()),
                false,
            )
            .with_peers(sessions.clone()),
        );
        let (_, pooled) = svc.restore().await?;
        if pooled > 0 {
            tracing::info!(pooled, "whisper node: unexpired posts back in the pool");
        }
        let (devp2p, mut tasks) = Devp2p::start(
            key,
            svc.clone(),
            sessions,
            cfg.p2p_addr,
            &cfg.whisper_peers,
            cfg.p2p_envelope_rate,
            mail,
        )
        .await?;
        tasks.push(tokio::spawn(crate::sidecar::janitor(node, store.clone())));
        let handler =
            LocalHandler::new(svc.clone(), NetInfo::default()).with_devp2p(devp2p.clone());
        Ok(EmbeddedWhisper {
            upstream: Arc::new(Upstream::in_process(Arc::new(handler))),
            devp2p,
            svc,
            tasks,
            store,
        })
    }
}
