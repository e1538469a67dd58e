//! Wiring: from a [`Config`] to a running sidecar, and back down on shutdown.
//!
//! [`run`] takes bound listeners and a shutdown future (mini-redis style), so tests bind
//! `127.0.0.1:0` and drive a real server in-process; [`run_with_config`] binds the
//! configured addresses (after the loopback/token check) and prints where it listens.
//! On shutdown the server stops accepting, closes WebSocket sessions, finishes in-flight
//! HTTP calls, and then the store commits what is queued and checkpoints its log.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::{Config, LogFormat, Transport};
use crate::keystore::{Keystore, KeystoreError};
use crate::node::{LocalNode, Node};
use crate::rpc::server::{self, BindError, ServerConfig};
use crate::rpc::shh::ShhError;
use crate::rpc::{LocalHandler, NetInfo, ShhService};
use crate::store::{Store, StoreError};
use crate::upstream::{Upstream, UpstreamError, UpstreamHandler};

/// Errors that stop the sidecar.
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    /// pss and dual are not built yet.
    #[error(
        "--transport={0} is not yet available (it lands with the PSS transport issues); use --transport=whisper"
    )]
    NotYetAvailable(&'static str),
    /// The data directory could not be created.
    #[error("cannot create data dir {0}: {1}")]
    DataDir(std::path::PathBuf, std::io::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The keystore failed (wrong passphrase, unreadable file).
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    /// Restoring filters and the outbox failed.
    #[error("restoring state: {0}")]
    Restore(#[from] ShhError),
    /// Bad upstream URL.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// Binding failed or was refused.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The server failed.
    #[error("server: {0}")]
    Serve(std::io::Error),
}

/// Installs the tracing subscriber (human or JSON lines on stderr; `RUST_LOG` filters).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

fn server_config(cfg: &Config) -> ServerConfig {
    ServerConfig {
        token: cfg.rpc_token.as_ref().map(|t| t.0.clone()),
        cors: cfg.rpc_cors.clone(),
        ..ServerConfig::default()
    }
}

/// Binds the configured addresses and runs until `shutdown`.
pub async fn run_with_config(
    cfg: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SidecarError> {
    refuse_unavailable(&cfg)?;
    let has_token = cfg.rpc_token.is_some();
    let rpc = server::bind(cfg.rpc_addr, cfg.rpc_allow_remote, has_token).await?;
    let ws = server::bind(cfg.ws_addr, cfg.rpc_allow_remote, has_token).await?;
    // One machine-readable line, so scripts and tests learn the ports when binding to :0.
    println!(
        "staples listening rpc=http://{} ws=ws://{}",
        rpc.local_addr().map_err(SidecarError::Serve)?,
        ws.local_addr().map_err(SidecarError::Serve)?
    );
    run(cfg, vec![rpc, ws], shutdown).await
}

fn refuse_unavailable(cfg: &Config) -> Result<(), SidecarError> {
    match cfg.transport {
        Transport::Whisper => Ok(()),
        Transport::Pss => Err(SidecarError::NotYetAvailable("pss")),
        Transport::Dual => Err(SidecarError::NotYetAvailable("dual")),
    }
}

/// Runs the sidecar on already-bound listeners until `shutdown` resolves.
pub async fn run(
    cfg: Config,
    listeners: Vec<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SidecarError> {
    refuse_unavailable(&cfg)?;
    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(|e| SidecarError::DataDir(cfg.data_dir.clone(), e))?;
    let store = Store::open(&cfg.data_dir.join("staples.sqlite"))?;
    let scfg = server_config(&cfg);
    let result = match &cfg.whisper_rpc {
        Some(url) => {
            tracing::info!(upstream = %url, "forwarding to an upstream Whisper node");
            let handler = UpstreamHandler::new(
                Arc::new(Upstream::new(url)?),
                store.clone(),
                cfg.allow_key_export,
            );
            server::serve(listeners, Arc::new(handler), scfg, shutdown).await
        }
        None => {
            let keys = match &cfg.password {
                Some(pw) => {
                    Keystore::open(
                        cfg.data_dir.join("keystore"),
                        pw.clone(),
                        cfg.kdf,
                        store.clone(),
                    )
                    .await?
                }
                None => {
                    tracing::warn!(
                        "no keystore passphrase (--password-file or STAPLES_KEYSTORE_PASSWORD): keys live in memory only"
                    );
                    Keystore::in_memory()
                }
            };
            let (pairs, syms) = keys.counts();
            let node = Arc::new(LocalNode::new(cfg.min_pow));
            let shh = Arc::new(ShhService::new(
                node.clone(),
                Arc::new(keys),
                Some(store.clone()),
                cfg.allow_key_export,
            ));
            let (filters, envelopes) = shh.restore().await?;
            tracing::info!(
                key_pairs = pairs,
                sym_keys = syms,
                filters,
                outbox = envelopes,
                min_pow = cfg.min_pow,
                "local Whisper node ready"
            );
            let janitor = tokio::spawn(janitor(node, store.clone()));
            let handler = LocalHandler::new(shh, NetInfo::default());
            let r = server::serve(listeners, Arc::new(handler), scfg, shutdown).await;
            janitor.abort();
            r
        }
    };
    store.close().await;
    tracing::info!("stopped; store flushed");
    result.map_err(SidecarError::Serve)
}

/// Purges expired envelopes every second (geth's expiry cycle) and expired outbox rows
/// every ten.
async fn janitor(node: Arc<LocalNode>, store: Store) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        let now = crate::rpc::shh_local::unix_now();
        node.purge(now);
        n += 1;
        if n.is_multiple_of(10)
            && let Err(e) = store.purge_outbox(now).await
        {
            tracing::warn!(error = %e, "outbox purge failed");
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutdown signal received");
}
