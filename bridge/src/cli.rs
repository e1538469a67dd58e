//! The `staples` command line.
//!
//! `staples whisper post` builds and seals a Whisper v6 envelope exactly as geth's `shh_post`
//! would (default padding, AES-256-GCM or ECIES, v1.9 PoW) and prints its RLP and hash;
//! `staples whisper open` decodes an envelope and prints geth's `Message` JSON;
//! `staples whisper inspect` prints an envelope's fields and both PoW values;
//! `staples topic` prints a Status chat's topic and bloom; `staples demo` plays the seed
//! scenario over the embedded Swarm dev node.
//! `staples` alone (or `staples run`) starts the sidecar; see [`crate::config`].

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use staples_protocol::crypto::PublicKey;

use crate::config::RunArgs;
use staples_protocol::whisper::pow::{self, SealOptions};
use staples_protocol::whisper::{Draft, Envelope, OpenKey, Recipient, SymKey, Topic, open, wrap};

/// Top-level arguments.
#[derive(Parser, Debug)]
#[command(
    name = "staples",
    version,
    about = "Staples: move Status messaging from Whisper to Swarm",
    long_about = "Staples: move Status messaging from Whisper to Swarm.\n\n\
        With no subcommand (or `staples run`) it starts the sidecar: a Whisper v6 `shh_*` \
        JSON-RPC server over HTTP and WebSocket, backed by a local Whisper node or, with \
        --whisper-rpc, by an upstream one. Every option is also a STAPLES_* environment \
        variable and a key of the --config TOML file (flag > env > file > default).",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// Sidecar options (when no subcommand is given).
    #[command(flatten)]
    pub run: RunArgs,
    /// What to do; nothing means `run`.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start the sidecar (the default when no subcommand is given).
    Run(RunArgs),
    /// Whisper v6 envelope tools (byte-compatible with go-ethereum's whisperv6).
    #[command(subcommand)]
    Whisper(WhisperCommand),
    /// Play the seed scenario: the embedded Swarm dev node and three sidecars (Alice, Bob,
    /// Charlie) in this process, driven through their JSON-RPC, with a transcript.
    Demo {
        /// Keep the sidecars' data here (default: a temporary directory).
        #[arg(long)]
        data_dir: Option<std::path::PathBuf>,
    },
    /// Bridge Status public chats between a Whisper network (--whisper-rpc) and Swarm:
    /// legacy Whisper messages are republished on Swarm, Staples messages from Swarm are
    /// posted to Whisper, each message once (specs/relay.md).
    Relay(crate::config::RelayArgs),
    /// Draw a chat's DAG from a running sidecar's `staples_history`: messages (author,
    /// clock, short id), parent edges, declared gaps dashed in red.
    Dag {
        /// The chat id (`0x` + 64 hex, as `staples_status` lists it).
        #[arg(long)]
        chat: String,
        /// Output format.
        #[arg(long, value_enum, default_value = "svg")]
        format: crate::dag_picture::Format,
        /// The sidecar's JSON-RPC URL.
        #[arg(long, default_value = "http://127.0.0.1:8545", env = "STAPLES_RPC_URL")]
        rpc: String,
        /// Names for authors, `0x<node address>=Name` (repeat or comma-separate).
        #[arg(long = "name", value_delimiter = ',')]
        names: Vec<String>,
        /// Write here instead of standard output.
        #[arg(long, short)]
        out: Option<std::path::PathBuf>,
    },
    /// A terminal chat client over a running sidecar's JSON-RPC: a public chat by name
    /// (`--public`), or one-to-one with a public key (`--to`).
    Chat {
        /// The sidecar's JSON-RPC URL.
        #[arg(long, default_value = "http://127.0.0.1:8545", env = "STAPLES_RPC_URL")]
        rpc: String,
        /// A Status public chat name.
        #[arg(long, conflicts_with = "to")]
        public: Option<String>,
        /// A peer's public key (`0x04…`, as `shh_getPublicKey` gives it): one-to-one.
        #[arg(long)]
        to: Option<String>,
        /// The topic of a one-to-one chat, by name (both sides must use the same).
        #[arg(long, default_value = "staples-chat")]
        topic: String,
    },
    /// Print the Whisper topic and bloom of a Status chat name.
    Topic {
        /// The chat name, e.g. `status`.
        name: String,
    },
}

/// `staples whisper ...`
#[derive(Subcommand, Debug)]
pub enum WhisperCommand {
    /// Build, encrypt and seal an envelope; print its RLP (hex) and hash.
    Post(PostArgs),
    /// Decode and decrypt an envelope; print geth's Message JSON.
    Open(OpenArgs),
    /// Print an envelope's fields, hash and PoW (v1.9 and legacy v1.8).
    Inspect {
        /// The envelope RLP, hex (with or without 0x).
        envelope: String,
    },
}

/// Which key encrypts or decrypts: exactly one of these.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct KeyArgs {
    /// A public chat name: key = PBKDF2(name), as `shh_generateSymKeyFromPassword`.
    #[arg(long)]
    pub password: Option<String>,
    /// A 32-byte symmetric key, hex.
    #[arg(long)]
    pub sym_key: Option<String>,
    /// The recipient's 65-byte uncompressed public key, hex (post only).
    #[arg(long)]
    pub pub_key: Option<String>,
}

/// `staples whisper post`
#[derive(Args, Debug)]
pub struct PostArgs {
    /// Encryption key.
    #[command(flatten)]
    pub key: KeyArgs,
    /// Topic, 0x + 8 hex; defaults to the topic of `--password` when given.
    #[arg(long)]
    pub topic: Option<String>,
    /// Payload as UTF-8 text.
    #[arg(long, conflicts_with = "payload_hex")]
    pub text: Option<String>,
    /// Payload as hex.
    #[arg(long)]
    pub payload_hex: Option<String>,
    /// Time to live, seconds (0 = geth's default 50).
    #[arg(long, default_value_t = 50)]
    pub ttl: u32,
    /// PoW target (0 = no work), as `powTarget` in `shh_post`.
    #[arg(long, default_value_t = 0.2)]
    pub pow_target: f64,
    /// Seconds the PoW may take, as `powTime`.
    #[arg(long, default_value_t = 5)]
    pub pow_time: u64,
}

/// `staples whisper open`
#[derive(Args, Debug)]
pub struct OpenArgs {
    /// Decryption key (symmetric).
    #[command(flatten)]
    pub key: KeyArgs,
    /// The envelope RLP, hex.
    pub envelope: String,
}

/// Runs the sidecar (or a relay) until a signal stops it.
fn serve(cfg: crate::config::Config) -> Result<()> {
    crate::sidecar::init_logging(cfg.log_format);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // The signal handlers are installed inside the runtime, before the sidecar binds and
    // prints its address line.
    rt.block_on(async {
        let shutdown = crate::sidecar::shutdown_signal();
        crate::sidecar::run_with_config(cfg, shutdown).await
    })?;
    Ok(())
}

/// Runs a parsed command line, writing results to stdout.
pub fn run(cli: Cli) -> Result<()> {
    let command = match cli.command {
        None => Command::Run(cli.run),
        Some(c) => c,
    };
    match command {
        Command::Run(args) => serve(args.resolve()?)?,
        Command::Relay(args) => serve(args.resolve()?)?,
        Command::Demo { data_dir } => {
            // The transcript is the output; only warnings from the sidecars join it.
            crate::sidecar::init_logging_at(crate::config::LogFormat::Human, "warn");
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            rt.block_on(crate::demo::run(data_dir))?;
        }
        Command::Dag {
            chat,
            format,
            rpc,
            names,
            out,
        } => {
            let names = names
                .iter()
                .map(|n| {
                    n.split_once('=')
                        .map(|(a, b)| (a.to_ascii_lowercase(), b.to_string()))
                        .with_context(|| format!("--name takes 0x<address>=Name, got {n:?}"))
                })
                .collect::<Result<_>>()?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let history = rt.block_on(crate::dag_picture::fetch(&rpc, &chat))?;
            let picture = crate::dag_picture::render(&history, &chat, format, &names)?;
            match out {
                Some(path) => std::fs::write(&path, picture)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => print!("{picture}"),
            }
        }
        Command::Chat {
            rpc,
            public,
            to,
            topic,
        } => {
            let target = match (public, to) {
                (Some(name), None) => crate::chat_client::Target::Public(name),
                (None, Some(peer)) => crate::chat_client::Target::Direct {
                    peer,
                    topic: Topic::from_name(&topic),
                },
                _ => anyhow::bail!("staples chat needs --public NAME or --to 0x04<public key>"),
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            rt.block_on(crate::chat_client::run(&rpc, target))?;
        }
        Command::Topic { name } => {
            let t = Topic::from_name(&name);
            println!("topic {t}");
            println!("bloom 0x{}", hex::encode(t.bloom().0));
        }
        Command::Whisper(WhisperCommand::Post(args)) => post(args)?,
        Command::Whisper(WhisperCommand::Open(args)) => {
            let env = decode_envelope(&args.envelope)?;
            let sym = sym_key(&args.key)?.context("open needs --password or --sym-key")?;
            let msg = open(&env, OpenKey::Symmetric(&sym)).context("cannot open envelope")?;
            println!("{}", msg.to_geth_json());
        }
        Command::Whisper(WhisperCommand::Inspect { envelope }) => {
            let env = decode_envelope(&envelope)?;
            println!("hash        {}", env.hash());
            println!("expiry      {}", env.expiry);
            println!("ttl         {}", env.ttl);
            println!("topic       {}", env.topic);
            println!("data bytes  {}", env.data.len());
            println!("nonce       {}", env.nonce);
            println!("pow v1.9    {}", pow::pow_v19(&env));
            println!("pow legacy  {}", pow::pow_legacy(&env));
        }
    }
    Ok(())
}

fn post(args: PostArgs) -> Result<()> {
    let payload = match (&args.text, &args.payload_hex) {
        (Some(t), _) => t.as_bytes().to_vec(),
        (None, Some(h)) => parse_hex(h).context("--payload-hex")?,
        (None, None) => bail!("give the payload with --text or --payload-hex"),
    };
    let topic = match (&args.topic, &args.key.password) {
        (Some(t), _) => Topic::from_slice(&parse_hex(t)?).context("--topic")?,
        (None, Some(p)) => Topic::from_name(p),
        (None, None) => bail!("--topic is required unless --password names a chat"),
    };
    let sym = sym_key(&args.key)?;
    let public = match &args.key.pub_key {
        Some(h) => Some(PublicKey::from_uncompressed(&parse_hex(h)?).context("--pub-key")?),
        None => None,
    };
    let to = match (&sym, &public) {
        (Some(k), _) => Recipient::Symmetric(k),
        (None, Some(p)) => Recipient::Asymmetric(p),
        (None, None) => bail!("no key given"),
    };
    let draft = Draft {
        topic,
        payload: &payload,
        padding: None,
        signer: None,
        ttl: args.ttl,
        to,
    };
    let now = u32::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs())?;
    let mut env = wrap(&draft, now, &mut rand::rngs::OsRng)?;
    if args.pow_target > 0.0 {
        let bits = pow::target_bits(args.pow_target, &env);
        let deadline = Instant::now() + Duration::from_secs(args.pow_time);
        let stop = || Instant::now() >= deadline;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let out = pow::seal(
            &mut env,
            Some(bits),
            &SealOptions {
                threads,
                should_stop: &stop,
            },
        );
        if !out.reached {
            bail!(
                "failed to reach the PoW target, specified pow time ({} seconds) was insufficient",
                args.pow_time
            );
        }
    }
    println!("envelope 0x{}", hex::encode(env.encode()));
    println!("hash     {}", env.hash());
    Ok(())
}

fn sym_key(k: &KeyArgs) -> Result<Option<SymKey>> {
    Ok(match (&k.password, &k.sym_key) {
        (Some(p), _) => Some(SymKey::from_password(p)),
        (None, Some(h)) => Some(SymKey::from_bytes(&parse_hex(h)?).context("--sym-key")?),
        _ => None,
    })
}

fn decode_envelope(h: &str) -> Result<Envelope> {
    Envelope::decode(&parse_hex(h)?).context("malformed envelope")
}

fn parse_hex(s: &str) -> Result<Vec<u8>> {
    let s = s.trim();
    hex::decode(s.strip_prefix("0x").unwrap_or(s)).context("invalid hex")
}
