//! `host`: the PoCForge host daemon and its companion tools.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use host::config::Config;
use host::device::DeviceConfig;

#[derive(Parser)]
#[command(
    name = "host",
    version,
    about = "PoCForge host daemon: the network's ML-node PoC API on accelerator devices"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Run(RunArgs),
    /// Run a callback receiver (plays the api node's side of the callbacks).
    Receive {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9090")]
        listen: SocketAddr,
    },
    /// Load-test a running daemon with concurrent /status and /generate requests.
    Loadtest(host::loadtest::LoadtestArgs),
    /// Measure artifacts per second through the API against the golden model's raw rate.
    Bench(host::bench::BenchArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// TOML configuration file (see docs/host.md); flags below override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Served model, e.g. synthetic:tiny or a checkpoint directory.
    #[arg(long)]
    model: Option<String>,
    /// A device: cpu, or cpu:threads=2,name=a (repeatable; adds to the config file's).
    #[arg(long = "device")]
    devices: Vec<String>,
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Where the outbox lives (default ./host-data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Recompute every artifact with the CPU golden model.
    #[arg(long)]
    certify: bool,
    /// Fraction of artifacts the CPU golden model recomputes (0…1).
    #[arg(long)]
    crosscheck_fraction: Option<f64>,
    /// File holding the bearer token clients must send.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Most nonces queued at once (429 beyond).
    #[arg(long)]
    queue_cap: Option<u64>,
    /// How long generation artifacts wait to be batched into one callback, ms.
    #[arg(long)]
    batch_interval_ms: Option<u64>,
}

fn build_config(args: RunArgs) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => {
            let model = args.model.clone().context(
                "give --config FILE, or --model (e.g. --model synthetic:tiny --device cpu)",
            )?;
            Config::quick(model, Vec::new())
        }
    };
    if let Some(model) = args.model {
        config.model = model;
    }
    for spec in &args.devices {
        let device =
            DeviceConfig::parse_spec(spec).map_err(|e| anyhow::anyhow!("--device {spec}: {e}"))?;
        config.devices.push(device);
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if args.certify {
        config.crosscheck.certify = true;
    }
    if let Some(fraction) = args.crosscheck_fraction {
        config.crosscheck.fraction = fraction;
    }
    if let Some(path) = args.token_file {
        config.auth.token = None;
        config.auth.token_file = Some(path);
    }
    if let Some(cap) = args.queue_cap {
        config.limits.queue_cap = cap;
    }
    if let Some(ms) = args.batch_interval_ms {
        config.callbacks.batch_interval_ms = ms;
    }
    config.validate()?;
    Ok(config)
}

fn init_logging(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The daemon logs its life; the measuring tools keep their stderr for their results.
    let default_level = match cli.command {
        Command::Run(_) | Command::Receive { .. } => "info",
        Command::Loadtest(_) | Command::Bench(_) => "warn",
    };
    init_logging(cli.log_format, default_level);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    match cli.command {
        Command::Run(args) => {
            let config = build_config(args)?;
            runtime.block_on(host::daemon::run(config))
        }
        Command::Receive { listen } => runtime.block_on(async move {
            let receiver = host::receiver::Receiver::new();
            let addr = receiver.serve(listen).await?;
            println!("receiving callbacks on http://{addr}");
            let mut last = 0;
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                let (artifacts, dups, validations) = receiver.with(|r| {
                    (r.artifacts.len(), r.duplicate_artifacts, r.validations.len())
                });
                if artifacts != last {
                    println!("{artifacts} unique artifacts ({dups} duplicates), {validations} validation results");
                    last = artifacts;
                }
            }
        }),
        Command::Loadtest(args) => runtime.block_on(host::loadtest::run(args)),
        Command::Bench(args) => runtime.block_on(host::bench::run(args)),
    }
}
