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
use crate::keystore::{Keys, Keystore, KeystoreError};
use crate::node::{LocalNode, Node};
use crate::rpc::server::{self, BindError, ServerConfig};
use crate::rpc::shh::ShhError;
use crate::rpc::{LocalHandler, NetInfo, ShhService};
use crate::store::{Store, StoreError};
use crate::upstream::{Upstream, UpstreamError, UpstreamHandler};
use staples_protocol::crypto::PrivateKey;

/// Errors that stop the sidecar.
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    /// The PSS transport could not start.
    #[error("pss transport: {0}")]
    Pss(String),
    /// The devp2p side could not start (a bad `enode://` URL, a refused bind).
    #[error("devp2p: {0}")]
    Devp2p(String),
    /// `--mailserver` without what it needs.
    #[error("mailserver: {0}")]
    Mailserver(String),
    /// A relay could not set its chats up.
    #[error("relay: {0}")]
    Relay(String),
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
    init_logging_at(format, "info");
}

/// [`init_logging`] with another default level when `RUST_LOG` is unset.
pub fn init_logging_at(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
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
        Transport::Pss if cfg.whisper_rpc.is_some() => Err(SidecarError::Pss(
            "--whisper-rpc forwards to a Whisper node; with --transport=pss the sidecar runs its own node and talks to Bee (--bee-api)".into(),
        )),
        Transport::Pss | Transport::Dual => Ok(()),
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
    // `--metrics-addr`: /metrics alone on its own listener, under the RPC's rules.
    let metrics = match cfg.metrics_addr {
        Some(a) => {
            let l = server::bind(a, cfg.rpc_allow_remote, cfg.rpc_token.is_some()).await?;
            if let Ok(at) = l.local_addr() {
                tracing::info!(url = %format!("http://{at}/metrics"), "metrics: listening");
            }
            vec![l]
        }
        None => Vec::new(),
    };
    // Upstream forwarding is `whisper` mode with --whisper-rpc; in `dual` the upstream is
    // the Whisper side of the sidecar's own node.
    let forward_to = cfg
        .whisper_rpc
        .as_ref()
        .filter(|_| cfg.transport == Transport::Whisper);
    let result = match forward_to {
        Some(url) => {
            tracing::info!(upstream = %url, "forwarding to an upstream Whisper node");
            let handler = UpstreamHandler::new(
                Arc::new(Upstream::new(url)?),
                store.clone(),
                cfg.allow_key_export,
            );
            handler.forget_stale_polls().await;
            let heartbeat = tokio::spawn(handler.heartbeat());
            let r = server::serve(listeners, metrics, Arc::new(handler), scfg, shutdown).await;
            heartbeat.abort();
            r
        }
        None => {
            let keys = Arc::new(open_keys(&cfg, &store).await?);
            let (pairs, syms) = keys.counts();
            let node = Arc::new(LocalNode::with_acks(
                cfg.min_pow,
                crate::node::Acks::new(Some(store.clone())),
            ));
            let mut service = ShhService::new(
                node.clone(),
                keys.clone(),
                Some(store.clone()),
                cfg.allow_key_export,
            );
            let mut pss = None;
            if cfg.transport != Transport::Whisper {
                let started = start_pss(&cfg, &store, node.clone(), keys.clone()).await?;
                service = service.with_engine(started.engine.clone());
                pss = Some(started);
            }
            // Dual with a Whisper node (upstream, or our own on devp2p): posts also go out
            // there. Without one, this node's own pool is the Whisper side (sidecars
            // sharing it are peers).
            let devp2p_wanted = cfg.p2p_addr.is_some() || !cfg.whisper_peers.is_empty();
            if cfg.mailserver.is_some()
                && !(cfg.transport == Transport::Dual && cfg.whisper_rpc.is_none() && devp2p_wanted)
            {
                return Err(SidecarError::Mailserver(
                    "--mailserver needs dual (or staples relay) with its own Whisper node: \
                     --p2p-addr or --whisper-peer, no --whisper-rpc (history comes from Swarm)"
                        .into(),
                ));
            }
            let mut embedded = None;
            let mut mailserver = None;
            let whisper_node = match (&cfg.whisper_rpc, cfg.transport) {
                (Some(url), Transport::Dual) => {
                    tracing::info!(upstream = %url, "dual: the Whisper side is the upstream node");
                    Some(Arc::new(Upstream::keeping_carrier(url)?))
                }
                (None, Transport::Dual) if devp2p_wanted => {
                    let key = stored_key(&keys, &store, "devp2p_key_id").await?;
                    mailserver = match (&cfg.mailserver, &pss) {
                        (Some(password), Some(p)) => {
                            tracing::info!("mailserver: answering history requests from Swarm");
                            Some(crate::mailserver::Mailserver::new(
                                p.engine.clone(),
                                key.clone(),
                                password,
                            ))
                        }
                        _ => None,
                    };
                    let mail = mailserver
                        .clone()
                        .map(|m| m as Arc<dyn crate::devp2p::MailServer>);
                    let e = crate::devp2p::embedded::EmbeddedWhisper::start(&cfg, key, mail)
                        .await
                        .map_err(|e| SidecarError::Devp2p(e.to_string()))?;
                    crate::dual::forget_keys(&store).await?;
                    tracing::info!("dual: the Whisper side is our own node, on devp2p");
                    let up = e.upstream.clone();
                    embedded = Some(e);
                    Some(up)
                }
                _ => None,
            };
            let whisper_side = match (whisper_node, &pss) {
                (Some(upstream), Some(p)) => {
                    crate::dual::check_cursor(&store).await?;
                    crate::upstream::forget_stale_polls(upstream.clone(), store.clone()).await;
                    let side = crate::dual::WhisperSide::new(
                        upstream,
                        store.clone(),
                        Arc::new(EngineKeys(keys.clone())),
                        node.clone(),
                        p.engine.clone(),
                    );
                    service = service.with_whisper_side(side.clone());
                    Some(side)
                }
                _ => None,
            };
            // The local Whisper node as a devp2p peer of other Whisper nodes.
            let p2p_peers = (cfg.transport == Transport::Whisper && devp2p_wanted)
                .then(|| Arc::new(crate::devp2p::Peers::default()));
            if let Some(p) = &p2p_peers {
                service = service.with_peers(p.clone());
            }
            let shh = Arc::new(service);
            // A relay takes over what the Whisper side polls before any mirror starts,
            // and its node keeps the envelopes it posts on to Whisper.
            let relay = match (&cfg.relay, &whisper_side) {
                (Some(rc), Some(side)) => {
                    node.keep_envelopes();
                    Some(crate::relay::Relay::new(
                        rc.clone(),
                        shh.clone(),
                        side.clone(),
                        store.clone(),
                        embedded.as_ref().map(|e| e.svc.node().clone()),
                    ))
                }
                _ => None,
            };
            // Filters, keys and their stored queues are back before any transport task
            // may release a message (specs/transport-pss.md §7).
            let (filters, envelopes) = shh.restore().await?;
            if let Some(p) = &mut pss {
                p.tasks = p.engine.run().await;
            }
            let mut whisper_tasks: Vec<_> = whisper_side
                .iter()
                .flat_map(|w| {
                    [
                        tokio::spawn(w.clone().run()),
                        tokio::spawn(w.clone().watch_peers()),
                    ]
                })
                .collect();
            if let Some(r) = &relay {
                whisper_tasks.extend(
                    r.start()
                        .await
                        .map_err(|e| SidecarError::Relay(e.to_string()))?,
                );
                // Raw envelopes by topic, between its own Whisper node and topic logs.
                if let (Some(e), Some(p), Some(rc)) = (&embedded, &pss, &cfg.relay)
                    && !rc.topics.is_empty()
                {
                    whisper_tasks.push(crate::relay::raw::RawBridge::start(
                        r.clone(),
                        p.engine.clone(),
                        e.svc.clone(),
                    ));
                }
            }
            tracing::info!(
                transport = ?cfg.transport,
                key_pairs = pairs,
                sym_keys = syms,
                filters,
                outbox = envelopes,
                min_pow = cfg.min_pow,
                "local Whisper node ready"
            );
            let janitor = tokio::spawn(janitor(node.clone(), store.clone()));
            let mut devp2p = None;
            if let Some(peers) = p2p_peers {
                let key = stored_key(&keys, &store, "devp2p_key_id").await?;
                let (d, tasks) = crate::devp2p::Devp2p::start(
                    key,
                    shh.clone(),
                    peers,
                    cfg.p2p_addr,
                    &cfg.whisper_peers,
                    cfg.p2p_envelope_rate,
                    None,
                )
                .await
                .map_err(|e| SidecarError::Devp2p(e.to_string()))?;
                whisper_tasks.extend(tasks);
                devp2p = Some(d);
            }
            // Sidecars using this node as their upstream are its peers (net_peerCount).
            let sidecars = Arc::new(crate::rpc::peers::SidecarPeers::default());
            let scfg = ServerConfig {
                peers: Some(sidecars.clone()),
                ..scfg
            };
            let history = crate::rpc::shhext::History::new(shh.clone());
            let mut handler = LocalHandler::new(shh, NetInfo::default()).with_sidecars(sidecars);
            if let Some(p) = &pss {
                handler = handler.with_engine(p.engine.clone()).with_history(history);
            }
            if let Some(w) = &whisper_side {
                handler = handler.with_whisper_side(w.clone());
            }
            if let Some(r) = relay {
                handler = handler.with_relay(r);
            }
            if let Some(d) = devp2p {
                handler = handler.with_devp2p(d);
            }
            handler = handler.with_mailserver(mailserver);
            let mut embedded_store = None;
            if let Some(e) = embedded {
                handler = handler.with_devp2p(e.devp2p);
                whisper_tasks.extend(e.tasks);
                embedded_store = Some(e.store);
            }
            let r = server::serve(listeners, metrics, Arc::new(handler), scfg, shutdown).await;
            janitor.abort();
            for t in whisper_tasks {
                t.abort();
            }
            if let Some(p) = pss {
                p.stop().await;
            }
            // Removals of rows the app has taken reach the store before it closes.
            node.acks().flush().await;
            if let Some(s) = embedded_store {
                s.close().await;
            }
            r
        }
    };
    store.close().await;
    tracing::info!("stopped; store flushed");
    result.map_err(SidecarError::Serve)
}

async fn open_keys(cfg: &Config, store: &Store) -> Result<Keystore, SidecarError> {
    Ok(match &cfg.password {
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
    })
}

/// A running PSS transport: the engine, its tasks, and the embedded dev node if one was
/// started.
struct PssTransport {
    engine: Arc<dyn crate::engine::Hook>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    embedded: Option<crate::swarm::embedded::EmbeddedSwarm>,
}

impl PssTransport {
    /// Lets the delivery being recorded finish, then stops the tasks.
    async fn stop(self) {
        self.engine.drain().await;
        for t in &self.tasks {
            t.abort();
        }
        if let Some(e) = self.embedded {
            e.stop().await;
        }
    }
}

/// Keys as the engine looks them up.
struct EngineKeys(Arc<Keystore>);

impl crate::engine::KeyLookup for EngineKeys {
    fn sym(&self, id: &str) -> Option<[u8; 32]> {
        self.0.sym_key(id).map(|k| k.0)
    }
    fn pair(&self, id: &str) -> Option<Arc<PrivateKey>> {
        self.0.key_pair(id)
    }
}

/// The node key: owner of our inbox feeds and author of our DAG messages, kept in the
/// keystore like the app's keys (its id is in the store).
async fn node_key(keys: &Keystore, store: &Store) -> Result<Arc<PrivateKey>, SidecarError> {
    stored_key(keys, store, "node_key_id").await
}

/// A key pair kept in the keystore under the id recorded at `meta` (made on first use).
async fn stored_key(
    keys: &Keystore,
    store: &Store,
    meta: &'static str,
) -> Result<Arc<PrivateKey>, SidecarError> {
    let stored = crate::engine::db::meta(store, meta).await?;
    if let Some(id) = stored.and_then(|v| String::from_utf8(v).ok())
        && let Some(k) = keys.key_pair(&id)
    {
        return Ok(k);
    }
    let key = PrivateKey::random(&mut rand::rngs::OsRng);
    let id = keys.add_key_pair(key).await?;
    crate::engine::db::set_meta(store, meta, id.clone().into_bytes()).await?;
    keys.key_pair(&id)
        .ok_or_else(|| SidecarError::Pss("node key vanished from the keystore".into()))
}

async fn start_pss(
    cfg: &Config,
    store: &Store,
    node: Arc<LocalNode>,
    keys: Arc<Keystore>,
) -> Result<PssTransport, SidecarError> {
    let (url, embedded) = match cfg.bee_api.first() {
        Some(url) => (url.clone(), None),
        None => {
            let e = crate::swarm::embedded::start_embedded(1, Some(cfg.data_dir.join("devnode")))
                .await
                .map_err(|e| SidecarError::Pss(e.to_string()))?;
            let url = e
                .urls()
                .first()
                .cloned()
                .ok_or_else(|| SidecarError::Pss("embedded dev node has no node".into()))?;
            tracing::info!(bee_api = %url, "no --bee-api given: started the embedded Swarm dev node");
            (url, Some(e))
        }
    };
    let opts = crate::swarm::bee::BeeOptions {
        timeout: cfg.bee_timeout,
        ..Default::default()
    };
    let swarm = crate::swarm::bee::BeeSwarm::new(&url, opts)
        .map_err(|e| SidecarError::Pss(e.to_string()))?;
    let nk = node_key(&keys, store).await?;
    // The embedded dev node has a handful of nodes: one byte of overlay names one of
    // them, and mining for it costs 256 attempts instead of 65 536.
    let target_default = if embedded.is_some() { 1 } else { 2 };
    let engine_cfg = crate::engine::EngineConfig {
        sync_interval: cfg.sync_interval,
        pss_target_bytes: usize::from(cfg.pss_target_bytes.unwrap_or(target_default)),
        limits: staples_protocol::dag::Limits {
            gap_deadline_ms: u64::try_from(cfg.gap_deadline.as_millis()).unwrap_or(u64::MAX),
            ..Default::default()
        },
        topic_logs: cfg.topic_logs,
        chat_index: cfg.reads.chat_index,
        full_pass_interval: cfg.reads.full_pass_interval,
        live_pss_max: cfg.reads.live_pss_max,
        live_poll: cfg.reads.live_poll,
        fetch_parallelism: cfg.reads.fetch_parallelism,
        ..Default::default()
    };
    let engine = crate::engine::Engine::open(
        Arc::new(swarm),
        store.clone(),
        node,
        Arc::new(EngineKeys(keys)),
        nk,
        engine_cfg,
    )
    .await
    .map_err(|e| SidecarError::Pss(e.to_string()))?;
    tracing::info!(bee_api = %url, node = %hex::encode(engine.node_address()), "PSS transport ready");
    Ok(PssTransport {
        engine: Arc::new(engine),
        tasks: Vec::new(),
        embedded,
    })
}

/// Purges expired envelopes every second (geth's expiry cycle) and expired outbox rows
/// every ten.
/// Purges expired envelopes from `node`'s pool every second and from `store`'s outbox
/// every ten.
pub(crate) async fn janitor(node: Arc<LocalNode>, store: Store) {
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

/// Resolves on SIGINT or SIGTERM (the dev node's helper; one implementation serves both
/// binaries).
pub use staples_devnode::shutdown::shutdown_signal;
