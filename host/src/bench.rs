//! `host bench`: the daemon's overhead, measured as artifacts per second through the API against
//! the golden model's raw rate on the same device, in the same process. Runs alternate
//! raw, API, raw, API, …, raw; each API run is compared with the mean of the two raw runs around
//! it (so a drifting, shared machine hits both alike), and the median of those ratios is the
//! result.
//!
//! *Raw*: the golden `Engine` on the device, computing batch after batch of the same nonce
//! sequence, nothing else. *API*: an in-process daemon on loopback with that one device,
//! started with `POST /init/generate` (callbacks to a `host receive` child process, as the api
//! node is elsewhere in production), measured by
//! `total_processed` in `/status` over the same time, after the weights are loaded and the first
//! unit is committed. Everything the daemon adds is inside that number: queueing, the
//! cross-check (its fraction is a flag, default 0 here), the fsync'd outbox, the callbacks.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use serde_json::json;

use crate::config::Config;
use crate::device::DeviceConfig;
use crate::engine::{self, ServedModel};

/// Options of `host bench`.
#[derive(clap::Args, Clone, Debug)]
pub struct BenchArgs {
    /// Served model.
    #[arg(long, default_value = "synthetic:tiny")]
    pub model: String,
    /// The device (a `--device` spec).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Raw/API alternations.
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// Sequence length.
    #[arg(long, default_value_t = 16)]
    pub seq_len: u64,
    /// Nonces per forward.
    #[arg(long, default_value_t = 32)]
    pub batch_size: u64,
    /// Coordinates per artifact.
    #[arg(long, default_value_t = 12)]
    pub k_dim: u64,
    /// Fraction of artifacts the daemon cross-checks.
    #[arg(long, default_value_t = 0.0)]
    pub crosscheck_fraction: f64,
}

/// One measurement.
#[derive(Clone, Debug, Serialize)]
pub struct Run {
    /// `raw` or `api`.
    pub kind: &'static str,
    /// Artifacts (nonces) per second of wall time.
    pub per_second: f64,
    /// Artifacts per second of CPU time this process used (all its threads: for `api` the
    /// daemon and the polling included), where Linux reports it.
    pub per_cpu_second: Option<f64>,
    /// For `api` runs: CPU seconds of the device threads (the golden forward on the device,
    /// plus the guard and queue around it) and of every other thread of the process (HTTP,
    /// committer with outbox fsync, callback sender, watchdog), where Linux reports them.
    pub thread_cpu: Option<ThreadCpu>,
    /// Nonces counted.
    pub nonces: u64,
    /// Seconds measured.
    pub seconds: f64,
}

/// CPU time this process has used (all threads, user + system), from `/proc/self/stat`.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start at ") ".
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after ") ".
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux architecture Rust targets.
    Some(ticks as f64 / 100.0)
}

/// CPU seconds of a run, split by thread role.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct ThreadCpu {
    /// Threads named `device-*` (the pool's device threads) and `golden-cpu-*` (the `cpu`
    /// device's GEMM workers; with the cross-check off, which is the benchmark's default, no
    /// other golden device runs).
    pub device_s: f64,
    /// All other threads.
    pub other_s: f64,
}

/// CPU seconds of this process's threads so far, split into device threads and the rest, from
/// `/proc/self/task/*/stat`. Threads that ended are missing, so only deltas over a period in
/// which the daemon's threads all live are meaningful.
fn thread_cpu_seconds() -> Option<ThreadCpu> {
    let mut split = ThreadCpu::default();
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue; // the thread ended meanwhile
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let seconds = (ticks(11) + ticks(12)) as f64 / 100.0;
        if name.starts_with("device-") || name.starts_with("golden-cpu-") {
            split.device_s += seconds;
        } else {
            split.other_s += seconds;
        }
    }
    Some(split)
}

fn per_cpu(nonces: u64, before: Option<f64>, after: Option<f64>) -> Option<f64> {
    let used = after? - before?;
    (used > 0.0).then(|| nonces as f64 / used)
}

/// The benchmark's result.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// The model.
    pub model: String,
    /// The device spec.
    pub device: String,
    /// Every measurement, in order.
    pub runs: Vec<Run>,
    /// Mean raw rate.
    pub raw_per_second: f64,
    /// Mean API rate.
    pub api_per_second: f64,
    /// Median over API runs of `api / mean(raw before, raw after)`.
    pub ratio: f64,
    /// Each API run's ratio to the raw runs around it.
    pub ratios: Vec<f64>,
    /// The same median ratio of artifacts per CPU second (insensitive to other processes'
    /// load; it counts everything the daemon adds, threads included).
    pub cpu_ratio: Option<f64>,
    /// Median over API runs of artifacts per CPU second of the device threads alone, over the
    /// raw runs' artifacts per CPU second: what the guard, queue and pool cost the device
    /// thread itself (1.0 = nothing).
    pub device_thread_ratio: Option<f64>,
    /// Median over API runs of the CPU seconds of all non-device threads per CPU second of the
    /// device threads: what the daemon needs beside the devices (a spare core's share).
    pub other_thread_cpu_fraction: Option<f64>,
    /// Artifacts the daemons delivered to the callback receiver during the API runs.
    pub delivered: u64,
}

const BLOCK_HASH: &str = "bench-block-hash";
const PUBLIC_KEY: &str = "bench-public-key";

fn raw_rate(
    args: &BenchArgs,
    weights: &crate::engine::Weights,
    start_nonce: u64,
) -> anyhow::Result<Run> {
    let device = DeviceConfig::parse_spec(&args.device)
        .map_err(|e| anyhow::anyhow!("--device: {e}"))?
        .backend()
        .open()?;
    let (host_threads, host_pool) = (device.host_threads(), device.host_pool());
    let mut golden = golden::poc::Engine::load(weights, device)?;
    match host_pool {
        Some(pool) => golden.set_host_pool(pool),
        None => golden.set_host_threads(host_threads),
    }
    let round = engine::round(
        weights,
        BLOCK_HASH,
        PUBLIC_KEY,
        args.seq_len as usize,
        args.k_dim as usize,
    )?;
    let batch = args.batch_size as usize;
    // One warm-up batch, as the API run also starts measuring after its first unit.
    let warm: Vec<u64> = (start_nonce..start_nonce + batch as u64).collect();
    golden.artifacts(&round, &warm, batch)?;
    let mut next = start_nonce + batch as u64;
    let started = Instant::now();
    let cpu0 = process_cpu_seconds();
    let mut nonces = 0u64;
    while started.elapsed().as_secs_f64() < args.seconds {
        let batch_nonces: Vec<u64> = (next..next + batch as u64).collect();
        next += batch as u64;
        golden.artifacts(&round, &batch_nonces, batch)?;
        nonces += batch as u64;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Run {
        kind: "raw",
        per_second: nonces as f64 / seconds,
        per_cpu_second: per_cpu(nonces, cpu0, process_cpu_seconds()),
        thread_cpu: None,
        nonces,
        seconds,
    })
}

async fn processed(client: &reqwest::Client, base: &str) -> anyhow::Result<u64> {
    let status: serde_json::Value = client
        .get(format!("{base}/api/v1/pow/status"))
        .send()
        .await?
        .json()
        .await?;
    Ok(status["stats"]["total_processed"].as_u64().unwrap_or(0))
}

async fn api_rate(
    args: &BenchArgs,
    receiver_url: &str,
    round: usize,
) -> anyhow::Result<(Run, u64)> {
    let data = tempfile_dir()?;
    let mut config = Config::quick(
        args.model.clone(),
        vec![DeviceConfig::parse_spec(&args.device).map_err(|e| anyhow::anyhow!(e))?],
    );
    config.listen = "127.0.0.1:0".parse().expect("a socket address");
    config.data_dir = data.clone();
    config.crosscheck.fraction = args.crosscheck_fraction;
    config.callbacks.batch_interval_ms = 1000;
    config.validate()?;
    let (node, addr) = crate::daemon::spawn(&config).await?;
    let client = reqwest::Client::new();
    let base = format!("http://{addr}");
    let init = json!({
        "block_hash": BLOCK_HASH, "block_height": 1, "public_key": PUBLIC_KEY,
        "node_id": round, "node_count": args.rounds.max(1) * 4,
        "batch_size": args.batch_size,
        "params": {"model": args.model, "seq_len": args.seq_len, "k_dim": args.k_dim},
        "url": receiver_url,
    });
    let response = client
        .post(format!("{base}/api/v1/pow/init/generate"))
        .json(&init)
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "init/generate answered {}: {}",
        response.status(),
        response.text().await.unwrap_or_default()
    );
    let wait_start = Instant::now();
    while processed(&client, &base).await? == 0 {
        anyhow::ensure!(
            wait_start.elapsed() < Duration::from_secs(600),
            "no artifact after 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (t0, p0) = (Instant::now(), processed(&client, &base).await?);
    let cpu0 = process_cpu_seconds();
    let threads0 = thread_cpu_seconds();
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    let (t1, p1) = (Instant::now(), processed(&client, &base).await?);
    let cpu1 = process_cpu_seconds();
    let thread_cpu = match (threads0, thread_cpu_seconds()) {
        (Some(a), Some(b)) => Some(ThreadCpu {
            device_s: b.device_s - a.device_s,
            other_s: (b.other_s - a.other_s).max(0.0),
        }),
        _ => None,
    };
    client
        .post(format!("{base}/api/v1/pow/stop"))
        .send()
        .await?;
    node.shutdown().await;
    let delivered = node
        .sender_stats
        .artifacts_delivered
        .load(std::sync::atomic::Ordering::Relaxed);
    let _ = std::fs::remove_dir_all(&data);
    let seconds = t1.duration_since(t0).as_secs_f64();
    Ok((
        Run {
            kind: "api",
            per_second: (p1 - p0) as f64 / seconds,
            per_cpu_second: per_cpu(p1 - p0, cpu0, cpu1),
            thread_cpu,
            nonces: p1 - p0,
            seconds,
        },
        delivered,
    ))
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "host-bench-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Runs the benchmark.
pub async fn measure(args: &BenchArgs) -> anyhow::Result<BenchReport> {
    let served = ServedModel::open(&args.model)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let weights = {
        let served = served.clone();
        tokio::task::spawn_blocking(move || served.materialize(BLOCK_HASH, threads)).await??
    };
    let weights = std::sync::Arc::new(weights);
    let receiver = ReceiverProcess::start()?;
    let receiver_url = receiver.url.clone();
    let mut delivered = 0;
    let mut runs = Vec::new();
    let raw = |args: &BenchArgs| {
        let (a, w) = (args.clone(), weights.clone());
        tokio::task::spawn_blocking(move || raw_rate(&a, &w, 1 << 40))
    };
    let first = raw(args).await??;
    eprintln!("raw: {:.1} artifacts/s", first.per_second);
    runs.push(first);
    let mut ratios = Vec::new();
    let mut cpu_ratios = Vec::new();
    let mut device_ratios = Vec::new();
    let mut other_fractions = Vec::new();
    for round in 0..args.rounds.max(1) {
        let (api, sent) = api_rate(args, &receiver_url, round).await?;
        delivered += sent;
        eprintln!("api: {:.1} artifacts/s", api.per_second);
        let after = raw(args).await??;
        eprintln!("raw: {:.1} artifacts/s", after.per_second);
        let previous = runs.last().expect("a raw run");
        let before = previous.per_second;
        ratios.push(api.per_second / ((before + after.per_second) / 2.0));
        if let (Some(a), Some(b), Some(c)) = (
            api.per_cpu_second,
            previous.per_cpu_second,
            after.per_cpu_second,
        ) {
            cpu_ratios.push(a / ((b + c) / 2.0));
            if let Some(t) = api.thread_cpu.filter(|t| t.device_s > 0.0) {
                device_ratios.push(api.nonces as f64 / t.device_s / ((b + c) / 2.0));
                other_fractions.push(t.other_s / t.device_s);
            }
        }
        runs.push(api);
        runs.push(after);
    }
    let mean = |kind: &str| {
        let v: Vec<f64> = runs
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| r.per_second)
            .collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    let (raw, api) = (mean("raw"), mean("api"));
    let ratio = median(&ratios).unwrap_or(0.0);
    let cpu_ratio = median(&cpu_ratios);
    Ok(BenchReport {
        model: args.model.clone(),
        device: args.device.clone(),
        runs,
        raw_per_second: raw,
        api_per_second: api,
        ratio,
        ratios,
        cpu_ratio,
        device_thread_ratio: median(&device_ratios),
        other_thread_cpu_fraction: median(&other_fractions),
        delivered,
    })
}

/// `host receive` as a child process: the api node's side, outside the measured process.
struct ReceiverProcess {
    child: std::process::Child,
    url: String,
}

impl ReceiverProcess {
    fn start() -> anyhow::Result<Self> {
        use std::io::BufRead;
        let exe = std::env::current_exe().context("locating the host binary")?;
        let mut child = std::process::Command::new(exe)
            .args(["receive", "--listen", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting `host receive`")?;
        let stdout = child.stdout.take().context("receiver stdout")?;
        let mut lines = std::io::BufReader::new(stdout).lines();
        let url = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(url) = line.strip_prefix("receiving callbacks on ") {
                        break url.to_string();
                    }
                }
                _ => {
                    let _ = child.kill();
                    anyhow::bail!("`host receive` exited before listening");
                }
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Ok(ReceiverProcess { child, url })
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ReceiverProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[n / 2]),
        n => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// `host bench`: prints the report as JSON.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let report = measure(&args).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
