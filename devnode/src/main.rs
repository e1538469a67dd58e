//! `staples-devnode`: run a dev network of Bee-API nodes until Ctrl-C.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Parser;
use staples_devnode::{DevNet, DevNetConfig, KnobSettings, Limits};
use staples_protocol::swarm::ChunkAddress;

const AFTER_HELP: &str = "\
WHAT IT IS
  N virtual Swarm nodes speaking Bee 2.8.1's HTTP API (what bee-js 12 and bee-rs expect),
  each with its own key, overlay, PSS key, batches and port, over one shared chunk store.
  PSS between nodes uses real trojan chunks. Buy a batch, then upload:

    curl -s -XPOST localhost:1633/stamps/500000000/20
    curl -s -XPOST -H 'Swarm-Postage-Batch-Id: <batchID>' --data-binary 'hi' localhost:1633/bytes
    curl -s localhost:1634/bytes/<reference>

DIFFERENCES FROM BEE 2.8.1
  /bytes builds the redundancy-NONE tree (Bee defaults to MEDIUM): same references up to
  4096 bytes, different above; Swarm-Redundancy-Level 1..4 is refused with 501. No
  encryption, ACT, mantaray (/bzz, feed manifests), GSOC, pins or stewardship. Batches are
  usable at once and never expire; top-up and dilute answer 501.

TEST KNOBS (all off by default; also at runtime through the admin routes)
  --latency-ms        delay every Bee API request
  --stale-feed-ms     feed lookups ignore updates younger than this
  --drop-probability  each stored chunk is silently lost with this probability
  --drop-chunk ADDR   this chunk is always lost (repeatable)
  --down I            node I starts down (repeatable)

ADMIN ROUTES (served by every node, acting on the whole network; not part of Bee)
  GET  /_staples/nodes                   nodes, URLs, overlays, keys, up/down
  POST /_staples/nodes/{i}/down[?for_ms] take node i down (back up after for_ms)
  POST /_staples/nodes/{i}/up            bring node i back
  GET  /_staples/knobs                   current knobs
  PUT  /_staples/knobs                   e.g. {\"latency_ms\":50,\"drop_probability\":0.1}
  POST /_staples/chunks/{addr}/drop      remove a chunk and refuse it from now on
  DELETE /_staples/chunks/{addr}/drop    accept it again
  GET  /_staples/stats                   chunks, bytes, requests in flight

Logs go to stderr; RUST_LOG (e.g. RUST_LOG=staples_devnode=debug) overrides --log.";

/// A Swarm dev node: Bee's HTTP API for N virtual nodes on one machine.
#[derive(Debug, Parser)]
#[command(name = "staples-devnode", version, after_help = AFTER_HELP)]
struct Cli {
    /// Number of virtual nodes (1..=64).
    #[arg(short, long, default_value_t = 1)]
    nodes: usize,
    /// Port of node 0; node i listens on PORT+i. 0 picks free ports.
    #[arg(short, long, default_value_t = 1633)]
    port: u16,
    /// Address to listen on. Keep loopback unless you mean to expose the nodes.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Keep chunks, batches and node identities here across restarts (an append-only
    /// journal). Without it everything lives in memory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Identity seed, 64 hex digits: same seed, same keys and overlays. Default: random
    /// (or the one stored in --data-dir).
    #[arg(long)]
    seed: Option<String>,
    /// Swarm network id mixed into overlays.
    #[arg(long, default_value_t = 1)]
    network_id: u64,
    /// Knob: added latency per Bee API request, milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Knob: feed lookups do not see updates younger than this, milliseconds.
    #[arg(long, default_value_t = 0)]
    stale_feed_ms: u64,
    /// Knob: probability (0..=1) that a stored chunk is silently lost.
    #[arg(long, default_value_t = 0.0)]
    drop_probability: f64,
    /// Knob: a chunk address that is always lost (repeatable).
    #[arg(long = "drop-chunk", value_name = "ADDR")]
    drop_chunks: Vec<String>,
    /// Knob: a node index that starts down (repeatable).
    #[arg(long = "down", value_name = "I")]
    down: Vec<usize>,
    /// Seed of the knobs' random choices, to replay a run.
    #[arg(long, default_value_t = 0)]
    knob_seed: u64,
    /// Largest /bytes upload, MiB.
    #[arg(long, default_value_t = 256)]
    max_upload_mb: u64,
    /// Open connections per node.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Messages queued per PSS subscriber before it is disconnected as too slow.
    #[arg(long, default_value_t = 256)]
    pss_queue: usize,
    /// Log filter when RUST_LOG is unset.
    #[arg(long, default_value = "info")]
    log: String,
}

impl Cli {
    fn config(&self) -> anyhow::Result<DevNetConfig> {
        let seed = match &self.seed {
            None => None,
            Some(s) => {
                let mut seed = [0u8; 32];
                hex::decode_to_slice(s.strip_prefix("0x").unwrap_or(s), &mut seed)
                    .context("--seed must be 64 hex digits")?;
                Some(seed)
            }
        };
        if self.max_upload_mb == 0 {
            bail!("--max-upload-mb must be at least 1");
        }
        Ok(DevNetConfig {
            nodes: self.nodes,
            bind: self.bind,
            base_port: self.port,
            data_dir: self.data_dir.clone(),
            seed,
            network_id: self.network_id,
            start_down: self.down.clone(),
            knobs: KnobSettings {
                latency_ms: self.latency_ms,
                stale_feed_ms: self.stale_feed_ms,
                drop_probability: self.drop_probability,
            },
            knob_seed: self.knob_seed,
            limits: Limits {
                max_upload_bytes: self.max_upload_mb.saturating_mul(1 << 20),
                max_connections: self.max_connections,
                pss_queue: self.pss_queue,
                ..Limits::default()
            },
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&cli.log))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.config()?;
    let drop_chunks = cli
        .drop_chunks
        .iter()
        .map(|a| {
            a.parse::<ChunkAddress>()
                .with_context(|| format!("--drop-chunk {a}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Installed before the node lines are printed: whoever reads them may send SIGTERM.
    let stop = staples_devnode::shutdown::shutdown_signal();
    let net = DevNet::start(config)
        .await
        .context("starting the dev network")?;
    for a in drop_chunks {
        net.knobs().drop_address(a);
    }
    for i in 0..net.len() {
        let info = net.node(i)?;
        tracing::info!(node = i, url = %info.url, overlay = %info.overlay, up = info.up, "node ready");
        println!(
            "node {i}: {} overlay {}{}",
            info.url,
            info.overlay,
            if info.up { "" } else { " (down)" }
        );
    }
    println!("Ctrl-C to stop.");
    stop.await;
    tracing::info!("stopping");
    net.stop().await;
    Ok(())
}
