//! Sidecar settings: flags, `STAPLES_*` environment variables and a TOML file, merged with
//! the precedence flag > environment > file > default.
//!
//! clap reads flags and their environment variables (every option is an `Option`, so an
//! unset one is distinguishable from a default); [`RunArgs::resolve`] then fills the gaps
//! from the file named by `--config` and finally from the defaults. The keystore passphrase
//! comes from `--password-file` or `STAPLES_KEYSTORE_PASSWORD` and is never logged.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use serde::Deserialize;

use crate::keystore::{KdfParams, Password};

/// What carries the messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Whisper: a local node, or the upstream given by `--whisper-rpc`.
    Whisper,
    /// Swarm PSS + Feeds: live delivery over PSS, offline inbox on Feeds, causal order.
    Pss,
    /// Both, during migration: everything pss does, and each post also goes out on
    /// Whisper with the same DAG id (to the --whisper-rpc node; without one, this
    /// sidecar's own Whisper node is the Whisper side).
    Dual,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// `staples [run]` options. Each is also `STAPLES_<NAME>` and a key of the `--config` file.
#[derive(Args, Debug, Clone, Default)]
pub struct RunArgs {
    /// What carries messages: whisper | pss | dual [default: whisper].
    #[arg(long, env = "STAPLES_TRANSPORT", value_enum)]
    pub transport: Option<Transport>,
    /// JSON-RPC over HTTP (WebSocket upgrades accepted too) [default: 127.0.0.1:8545].
    #[arg(long, env = "STAPLES_RPC_ADDR")]
    pub rpc_addr: Option<SocketAddr>,
    /// JSON-RPC over WebSocket (HTTP accepted too) [default: 127.0.0.1:8546].
    #[arg(long, env = "STAPLES_WS_ADDR")]
    pub ws_addr: Option<SocketAddr>,
    /// Where keys, the SQLite store and the outbox live [default: $XDG_DATA_HOME/staples or
    /// ~/.local/share/staples].
    #[arg(long, env = "STAPLES_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Forward to this Whisper node (http(s):// or ws(s)://) instead of running a local one;
    /// with --transport=dual, the Whisper node posts also go out on.
    #[arg(long, env = "STAPLES_WHISPER_RPC")]
    pub whisper_rpc: Option<String>,
    /// Bee API URLs for the pss and dual transports (repeat or comma-separate).
    #[arg(long, env = "STAPLES_BEE_API", value_delimiter = ',')]
    pub bee_api: Vec<String>,
    /// TOML file with any of these settings (keys as the long flags, with underscores).
    #[arg(long, env = "STAPLES_CONFIG")]
    pub config: Option<PathBuf>,
    /// File holding the keystore passphrase (else STAPLES_KEYSTORE_PASSWORD; with neither,
    /// keys live in memory only).
    #[arg(long, env = "STAPLES_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
    /// Allow shh_getPrivateKey and shh_getSymKey [default: false].
    #[arg(long, env = "STAPLES_ALLOW_KEY_EXPORT", num_args = 0..=1, default_missing_value = "true")]
    pub allow_key_export: Option<bool>,
    /// Allow binding the RPC to a non-loopback address (requires --rpc-token-file)
    /// [default: false].
    #[arg(long, env = "STAPLES_RPC_ALLOW_REMOTE", num_args = 0..=1, default_missing_value = "true")]
    pub rpc_allow_remote: Option<bool>,
    /// File holding the bearer token clients must send (Authorization: Bearer <token>).
    #[arg(long, env = "STAPLES_RPC_TOKEN_FILE")]
    pub rpc_token_file: Option<PathBuf>,
    /// Origins allowed to call from a browser (comma-separated, `*` for any). Requests with
    /// any other Origin header are refused [default: none].
    #[arg(long, env = "STAPLES_RPC_CORS", value_delimiter = ',')]
    pub rpc_cors: Vec<String>,
    /// Log format: human | json [default: human]. Verbosity: RUST_LOG.
    #[arg(long, env = "STAPLES_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Local node's minimum PoW [default: 0.2, geth's].
    #[arg(long, env = "STAPLES_MIN_POW")]
    pub min_pow: Option<f64>,
    /// scrypt cost of new key files, log2(N) [default: 18, geth's standard].
    #[arg(long, env = "STAPLES_KEYSTORE_SCRYPT_LOG_N")]
    pub keystore_scrypt_log_n: Option<u8>,
    /// pss: how often members' inboxes and chat rosters are read, in milliseconds, when
    /// nothing else triggers a read [default: 5000].
    #[arg(long, env = "STAPLES_SYNC_INTERVAL_MS")]
    pub sync_interval_ms: Option<u64>,
    /// pss: timeout of each Bee API call, in milliseconds [default: 20000].
    #[arg(long, env = "STAPLES_BEE_TIMEOUT_MS")]
    pub bee_timeout_ms: Option<u64>,
    /// pss: bytes of a recipient's overlay that live PSS messages are mined for, 1 to 3
    /// [default: 2 with --bee-api, 1 on the embedded dev node]. Each byte costs Bee 256x
    /// the mining; too few may not reach the recipient in a large network.
    #[arg(long, env = "STAPLES_PSS_TARGET_BYTES", value_parser = clap::value_parser!(u8).range(1..=3))]
    pub pss_target_bytes: Option<u8>,
    /// pss: how long a missing parent is waited for before the gap is declared and its
    /// children are delivered (R7), in milliseconds [default: 300000].
    #[arg(long, env = "STAPLES_GAP_DEADLINE_MS")]
    pub gap_deadline_ms: Option<u64>,
    /// whisper (local node) and dual/relay without --whisper-rpc (their own Whisper
    /// node): listen for devp2p Whisper peers (RLPx + shh/6) here, e.g. 127.0.0.1:30303
    /// [default: not listening].
    #[arg(long, env = "STAPLES_P2P_ADDR")]
    pub p2p_addr: Option<SocketAddr>,
    /// whisper (local node) and dual/relay without --whisper-rpc: a static devp2p Whisper
    /// peer, `enode://<id>@<ip>:<port>` (repeat or comma-separate); dialled and redialled
    /// with backoff.
    #[arg(long, env = "STAPLES_WHISPER_PEERS", value_delimiter = ',')]
    pub whisper_peer: Vec<String>,
    /// devp2p: envelopes per second one peer may send us (bursts of five seconds' worth
    /// pass); beyond it envelopes are dropped and counted, and a peer that keeps
    /// exceeding it is disconnected (status-go's rate limiter); 0 for no limit
    /// [default: 1000].
    #[arg(long, env = "STAPLES_P2P_ENVELOPE_RATE")]
    pub p2p_envelope_rate: Option<u32>,
    /// pss/dual: during a migration, put every post's envelope on its topic's log on Swarm
    /// and read the logs of the app's filter topics, so Whisper-only peers reach this one
    /// in one-to-one and private group chats through a relay bridging those topics
    /// (`staples relay --topic`; specs/topic-log.md) [default: off].
    #[arg(long, env = "STAPLES_TOPIC_LOGS")]
    pub topic_logs: bool,
    /// dual/relay with their own Whisper node (devp2p): answer Status mailserver requests
    /// (shh/6 code 126) from devp2p peers with history from Swarm, so status-go nodes can
    /// use this node as their mailserver (specs/relay.md §10) [default: off].
    #[arg(long, env = "STAPLES_MAILSERVER")]
    pub mailserver: bool,
    /// --mailserver: file holding the password whose key opens requests (status-go's
    /// `MailServerPassword`) [default: status-offline-inbox].
    #[arg(long, env = "STAPLES_MAILSERVER_PASSWORD_FILE")]
    pub mailserver_password_file: Option<PathBuf>,
    /// pss: act as a peer from before the chat index: write no index entries and no
    /// version-2 roster entries, read every member's inbox on every pass, and send every
    /// post live to every member (specs/chat-index.md) [default: index on].
    #[arg(long, env = "STAPLES_NO_CHAT_INDEX")]
    pub no_chat_index: bool,
    /// pss: how often every member's inbox is read although the chat index names nothing
    /// new (the safety net against withheld or overwritten entries), in milliseconds
    /// [default: 600000].
    #[arg(long, env = "STAPLES_FULL_PASS_INTERVAL_MS")]
    pub full_pass_interval_ms: Option<u64>,
    /// pss: a symmetric chat with more members than this is large: posts go live through
    /// its index (polled every --live-poll-ms) instead of one PSS send per member
    /// [default: 16].
    #[arg(long, env = "STAPLES_LIVE_PSS_MAX")]
    pub live_pss_max: Option<usize>,
    /// pss: how often large chats' indexes are polled, in milliseconds [default: 1000].
    #[arg(long, env = "STAPLES_LIVE_POLL_MS")]
    pub live_poll_ms: Option<u64>,
    /// pss: Bee requests a catch-up keeps in flight (inboxes, pages, messages)
    /// [default: 64].
    #[arg(long, env = "STAPLES_FETCH_PARALLELISM")]
    pub fetch_parallelism: Option<usize>,
    /// Serve Prometheus metrics (`/metrics`) here as well, e.g. 127.0.0.1:9464 (same
    /// loopback and token rules as the RPC; `/metrics` is always on the RPC listener too).
    #[arg(long, env = "STAPLES_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
}

/// The `--config` file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    transport: Option<Transport>,
    rpc_addr: Option<SocketAddr>,
    ws_addr: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    whisper_rpc: Option<String>,
    bee_api: Option<Vec<String>>,
    password_file: Option<PathBuf>,
    allow_key_export: Option<bool>,
    rpc_allow_remote: Option<bool>,
    rpc_token_file: Option<PathBuf>,
    rpc_cors: Option<Vec<String>>,
    log_format: Option<LogFormat>,
    min_pow: Option<f64>,
    keystore_scrypt_log_n: Option<u8>,
    sync_interval_ms: Option<u64>,
    bee_timeout_ms: Option<u64>,
    pss_target_bytes: Option<u8>,
    gap_deadline_ms: Option<u64>,
    relay: Option<RelayFile>,
    p2p_addr: Option<SocketAddr>,
    whisper_peer: Option<Vec<String>>,
    p2p_envelope_rate: Option<u32>,
    topic_logs: Option<bool>,
    mailserver: Option<bool>,
    mailserver_password_file: Option<PathBuf>,
    metrics_addr: Option<SocketAddr>,
    no_chat_index: Option<bool>,
    full_pass_interval_ms: Option<u64>,
    live_pss_max: Option<usize>,
    live_poll_ms: Option<u64>,
    fetch_parallelism: Option<usize>,
}

/// The `[relay]` section of the `--config` file (read by `staples relay`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RelayFile {
    chats: Option<Vec<String>>,
    per_second: Option<u32>,
    topics: Option<Vec<String>>,
}

/// `staples relay`: the sidecar options, plus what to bridge.
#[derive(Args, Debug)]
pub struct RelayArgs {
    /// Sidecar options (the transport is `dual`; the Whisper network is reached through
    /// `--whisper-rpc`, or through `--whisper-peer` / `--p2p-addr` on devp2p).
    #[command(flatten)]
    pub run: RunArgs,
    /// A public chat to bridge, by name (repeat or comma-separate; `[relay] chats`).
    #[arg(long = "chat", env = "STAPLES_RELAY_CHATS", value_delimiter = ',')]
    pub chats: Vec<String>,
    /// Legacy Whisper messages bridged to Swarm per second and chat; beyond it they are
    /// shed and counted [default: 50].
    #[arg(long, env = "STAPLES_RELAY_PER_SECOND")]
    pub per_second: Option<u32>,
    /// A Whisper topic (`0x` + 8 hex digits) whose raw envelopes are bridged both ways
    /// through its topic log on Swarm: one-to-one and private group traffic the relay
    /// cannot open (repeat or comma-separate; `[relay] topics`). Needs the relay's own
    /// Whisper node (--whisper-peer / --p2p-addr).
    #[arg(long = "topic", env = "STAPLES_RELAY_TOPICS", value_delimiter = ',')]
    pub topics: Vec<String>,
}

impl RelayArgs {
    /// The sidecar's settings for a relay: `dual` over a Whisper node, with the chats.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let file = match &self.run.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::Read(path.clone(), e))?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| ConfigError::Parse(path.clone(), e.to_string()))?
                    .relay
                    .unwrap_or_default()
            }
            None => RelayFile::default(),
        };
        let mut cfg = self.run.resolve()?;
        if cfg.transport == Transport::Pss {
            return Err(ConfigError::Relay(
                "a relay runs --transport=dual (it is a member on Swarm and a peer on Whisper)",
            ));
        }
        cfg.transport = Transport::Dual;
        if cfg.whisper_rpc.is_none() && cfg.p2p_addr.is_none() && cfg.whisper_peers.is_empty() {
            return Err(ConfigError::Relay(
                "a relay needs a Whisper network to bridge: --whisper-rpc (a Whisper node), or --whisper-peer / --p2p-addr (its own node on devp2p)",
            ));
        }
        let chats = if self.chats.is_empty() {
            file.chats.unwrap_or_default()
        } else {
            self.chats
        };
        let topic_names = if self.topics.is_empty() {
            file.topics.unwrap_or_default()
        } else {
            self.topics
        };
        let mut topics = Vec::new();
        for t in &topic_names {
            let bytes = hex::decode(t.trim_start_matches("0x"))
                .ok()
                .and_then(|b| <[u8; 4]>::try_from(b.as_slice()).ok())
                .ok_or(ConfigError::Relay(
                    "--topic takes a Whisper topic: 0x and 8 hex digits",
                ))?;
            topics.push(bytes);
        }
        if chats.is_empty() && topics.is_empty() {
            return Err(ConfigError::Relay(
                "a relay needs at least one --chat NAME or --topic 0x…",
            ));
        }
        if !topics.is_empty() && cfg.whisper_rpc.is_some() {
            return Err(ConfigError::Relay(
                "--topic bridges raw envelopes, which needs the relay's own Whisper node (--whisper-peer / --p2p-addr), not --whisper-rpc",
            ));
        }
        cfg.relay = Some(crate::relay::RelayConfig {
            chats,
            topics,
            per_second: self
                .per_second
                .or(file.per_second)
                .unwrap_or(crate::relay::DEFAULT_PER_SECOND),
        });
        Ok(cfg)
    }
}

/// Errors from resolving settings.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    /// The config file is not valid TOML for these settings.
    #[error("config file {0}: {1}")]
    Parse(PathBuf, String),
    /// A password or token file could not be read.
    #[error("cannot read {what} {file}: {source}")]
    Secret {
        /// Which file.
        what: &'static str,
        /// Path.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// An empty token file.
    #[error("the token file {0} is empty")]
    EmptyToken(PathBuf),
    /// No data dir could be chosen.
    #[error("no --data-dir given and no HOME to default to")]
    NoDataDir,
    /// Bad scrypt cost.
    #[error("--keystore-scrypt-log-n must be between 1 and 22, got {0}")]
    ScryptCost(u8),
    /// A relay's settings do not make a relay.
    #[error("{0}")]
    Relay(&'static str),
}

/// Settings after merging.
#[derive(Debug, Clone)]
pub struct Config {
    /// Transport.
    pub transport: Transport,
    /// HTTP address.
    pub rpc_addr: SocketAddr,
    /// WebSocket address.
    pub ws_addr: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Upstream Whisper node.
    pub whisper_rpc: Option<String>,
    /// Bee API URLs.
    pub bee_api: Vec<String>,
    /// Keystore passphrase (redacted in `Debug`).
    pub password: Option<Password>,
    /// Key export allowed.
    pub allow_key_export: bool,
    /// Non-loopback bind allowed.
    pub rpc_allow_remote: bool,
    /// Bearer token.
    pub rpc_token: Option<Token>,
    /// Allowed origins.
    pub rpc_cors: Vec<String>,
    /// Log format.
    pub log_format: LogFormat,
    /// Local node's minimum PoW.
    pub min_pow: f64,
    /// scrypt cost for new key files.
    pub kdf: KdfParams,
    /// pss: periodic inbox and roster reads.
    pub sync_interval: std::time::Duration,
    /// pss: Bee API call timeout.
    pub bee_timeout: std::time::Duration,
    /// pss: PSS target prefix length, if set.
    pub pss_target_bytes: Option<u8>,
    /// pss: gap deadline.
    pub gap_deadline: std::time::Duration,
    /// `staples relay`: the chats it bridges (`None` for the sidecar).
    pub relay: Option<crate::relay::RelayConfig>,
    /// devp2p listener.
    pub p2p_addr: Option<SocketAddr>,
    /// Static devp2p peers (`enode://` URLs).
    pub whisper_peers: Vec<String>,
    /// Envelopes per second a devp2p peer may send (0: no limit).
    pub p2p_envelope_rate: u32,
    /// pss/dual: topic logs on ([`crate::engine::topic_log`]).
    pub topic_logs: bool,
    /// The mailserver password, with `--mailserver` ([`crate::mailserver`]).
    pub mailserver: Option<String>,
    /// Where `/metrics` is served besides the RPC listener.
    pub metrics_addr: Option<SocketAddr>,
    /// pss: how chats are read: the chat index and the knobs beside it.
    pub reads: ReadConfig,
}

/// How a `pss` sidecar reads chats: the chat index (`specs/chat-index.md`), full passes,
/// live polling, and how many Bee requests a catch-up keeps in flight.
#[derive(Clone, Debug)]
pub struct ReadConfig {
    /// Off: act as a peer from before the index.
    pub chat_index: bool,
    /// Interval of full passes.
    pub full_pass_interval: std::time::Duration,
    /// Members beyond which a chat is large.
    pub live_pss_max: usize,
    /// Poll interval of large chats.
    pub live_poll: std::time::Duration,
    /// Bee requests in flight during a catch-up.
    pub fetch_parallelism: usize,
}

impl Default for ReadConfig {
    fn default() -> Self {
        let e = crate::engine::EngineConfig::default();
        Self {
            chat_index: e.chat_index,
            full_pass_interval: e.full_pass_interval,
            live_pss_max: e.live_pss_max,
            live_poll: e.live_poll,
            fetch_parallelism: e.fetch_parallelism,
        }
    }
}

/// A bearer token; never printed.
#[derive(Clone)]
pub struct Token(pub String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl RunArgs {
    /// Merges flags/environment (already in `self`) with the config file and defaults.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ConfigError::Read(path.clone(), e))?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| ConfigError::Parse(path.clone(), e.to_string()))?
            }
            None => FileConfig::default(),
        };
        let data_dir = match self.data_dir.or(file.data_dir) {
            Some(d) => d,
            None => default_data_dir().ok_or(ConfigError::NoDataDir)?,
        };
        let password = match self.password_file.or(file.password_file) {
            Some(f) => Some(Password::new(read_secret("password file", &f)?)),
            None => std::env::var("STAPLES_KEYSTORE_PASSWORD")
                .ok()
                .map(Password::new),
        };
        let rpc_token = match self.rpc_token_file.or(file.rpc_token_file) {
            Some(f) => {
                let t = read_secret("token file", &f)?;
                if t.is_empty() {
                    return Err(ConfigError::EmptyToken(f));
                }
                Some(Token(t))
            }
            None => None,
        };
        let log_n = self
            .keystore_scrypt_log_n
            .or(file.keystore_scrypt_log_n)
            .unwrap_or(KdfParams::STANDARD.log_n);
        if !(1..=22).contains(&log_n) {
            return Err(ConfigError::ScryptCost(log_n));
        }
        let or_file = |cli: Vec<String>, f: Option<Vec<String>>| {
            if cli.is_empty() {
                f.unwrap_or_default()
            } else {
                cli
            }
        };
        Ok(Config {
            transport: self
                .transport
                .or(file.transport)
                .unwrap_or(Transport::Whisper),
            rpc_addr: self
                .rpc_addr
                .or(file.rpc_addr)
                .unwrap_or(([127, 0, 0, 1], 8545).into()),
            ws_addr: self
                .ws_addr
                .or(file.ws_addr)
                .unwrap_or(([127, 0, 0, 1], 8546).into()),
            data_dir,
            whisper_rpc: self.whisper_rpc.or(file.whisper_rpc),
            bee_api: or_file(self.bee_api, file.bee_api),
            password,
            allow_key_export: self
                .allow_key_export
                .or(file.allow_key_export)
                .unwrap_or(false),
            rpc_allow_remote: self
                .rpc_allow_remote
                .or(file.rpc_allow_remote)
                .unwrap_or(false),
            rpc_token,
            rpc_cors: or_file(self.rpc_cors, file.rpc_cors),
            log_format: self
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Human),
            min_pow: self
                .min_pow
                .or(file.min_pow)
                .unwrap_or(staples_protocol::whisper::DEFAULT_MIN_POW),
            kdf: KdfParams::with_log_n(log_n),
            sync_interval: std::time::Duration::from_millis(
                self.sync_interval_ms
                    .or(file.sync_interval_ms)
                    .unwrap_or(5000)
                    .max(50),
            ),
            bee_timeout: std::time::Duration::from_millis(
                self.bee_timeout_ms
                    .or(file.bee_timeout_ms)
                    .unwrap_or(20_000)
                    .max(100),
            ),
            pss_target_bytes: self
                .pss_target_bytes
                .or(file.pss_target_bytes)
                .map(|b| b.clamp(1, 3)),
            gap_deadline: std::time::Duration::from_millis(
                self.gap_deadline_ms
                    .or(file.gap_deadline_ms)
                    .unwrap_or(300_000),
            ),
            relay: None,
            p2p_addr: self.p2p_addr.or(file.p2p_addr),
            whisper_peers: or_file(self.whisper_peer, file.whisper_peer),
            p2p_envelope_rate: self
                .p2p_envelope_rate
                .or(file.p2p_envelope_rate)
                .unwrap_or(crate::devp2p::DEFAULT_ENVELOPE_RATE),
            topic_logs: self.topic_logs || file.topic_logs.unwrap_or(false),
            mailserver: match (
                self.mailserver || file.mailserver.unwrap_or(false),
                self.mailserver_password_file
                    .or(file.mailserver_password_file),
            ) {
                (false, _) => None,
                (true, None) => Some(crate::mailserver::DEFAULT_PASSWORD.to_string()),
                (true, Some(f)) => Some(read_secret("mailserver password", &f)?),
            },
            metrics_addr: self.metrics_addr.or(file.metrics_addr),
            reads: {
                let d = ReadConfig::default();
                let ms = std::time::Duration::from_millis;
                ReadConfig {
                    chat_index: !(self.no_chat_index || file.no_chat_index.unwrap_or(false)),
                    full_pass_interval: self
                        .full_pass_interval_ms
                        .or(file.full_pass_interval_ms)
                        .map_or(d.full_pass_interval, |v| ms(v.max(100))),
                    live_pss_max: self
                        .live_pss_max
                        .or(file.live_pss_max)
                        .unwrap_or(d.live_pss_max),
                    live_poll: self
                        .live_poll_ms
                        .or(file.live_poll_ms)
                        .map_or(d.live_poll, |v| ms(v.max(50))),
                    fetch_parallelism: self
                        .fetch_parallelism
                        .or(file.fetch_parallelism)
                        .unwrap_or(d.fetch_parallelism)
                        .clamp(1, 1024),
                }
            },
        })
    }
}

fn read_secret(what: &'static str, file: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Secret {
        what,
        file: file.to_path_buf(),
        source,
    })?;
    // Files written by `echo` end in a newline that is not part of the secret.
    Ok(text.trim_end_matches(['\n', '\r']).to_string())
}

fn default_data_dir() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return Some(PathBuf::from(x).join("staples"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/staples"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_beats_file_beats_default() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("staples.toml");
        std::fs::write(
            &path,
            "rpc_addr = \"127.0.0.1:9000\"\nws_addr = \"127.0.0.1:9001\"\nmin_pow = 0.5\nrpc_cors = [\"http://a\"]\ndata_dir = \"/tmp/x\"\n",
        )
        .expect("writes");
        let args = RunArgs {
            config: Some(path.clone()),
            rpc_addr: Some("127.0.0.1:7000".parse().expect("addr")),
            ..Default::default()
        };
        let c = args.resolve().expect("resolves");
        assert_eq!(c.rpc_addr.port(), 7000, "flag wins");
        assert_eq!(c.ws_addr.port(), 9001, "file beats default");
        assert_eq!(c.min_pow, 0.5);
        assert_eq!(c.rpc_cors, ["http://a"]);
        assert_eq!(c.transport, Transport::Whisper, "default");
        assert_eq!(c.kdf, KdfParams::STANDARD);
        std::fs::write(&path, "no_such_key = 1\n").expect("writes");
        let err = RunArgs {
            config: Some(path),
            ..Default::default()
        }
        .resolve();
        assert!(matches!(err, Err(ConfigError::Parse(..))));
    }
}
