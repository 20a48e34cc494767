//! `host loadtest`: concurrent `/status` and `/generate` requests against a running daemon,
//! bounded in count and time, reporting `/status` latency percentiles and how `/generate`
//! answered (accepted, 429 at the queue cap, errors). Run it as a separate process from the
//! daemon so its load is real HTTP load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Serialize;
use serde_json::json;

/// Options of `host loadtest`.
#[derive(clap::Args, Clone, Debug)]
pub struct LoadtestArgs {
    /// The daemon's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Bearer token, if the daemon wants one.
    #[arg(long)]
    pub token: Option<String>,
    /// How long to run, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Concurrent `/status` clients.
    #[arg(long, default_value_t = 8)]
    pub status_concurrency: usize,
    /// Concurrent `/generate` clients.
    #[arg(long, default_value_t = 2)]
    pub generate_concurrency: usize,
    /// Most requests in all (both kinds).
    #[arg(long, default_value_t = 200_000)]
    pub max_requests: u64,
    /// Nonces per `/generate` request.
    #[arg(long, default_value_t = 64)]
    pub nonces: u64,
    /// `params.model` to send.
    #[arg(long, default_value = "synthetic:tiny")]
    pub model: String,
    /// `params.seq_len` to send.
    #[arg(long, default_value_t = 16)]
    pub seq_len: u64,
    /// Fail (exit non-zero) unless at least one `/generate` answered 429.
    #[arg(long)]
    pub expect_429: bool,
}

/// The outcome of a load test.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Seconds it ran.
    pub seconds: f64,
    /// `/status` requests answered 200.
    pub status_ok: u64,
    /// `/status` requests per second.
    pub status_per_second: f64,
    /// Latency percentiles of `/status`, milliseconds.
    pub status_p50_ms: f64,
    /// 90th percentile.
    pub status_p90_ms: f64,
    /// 99th percentile.
    pub status_p99_ms: f64,
    /// Slowest.
    pub status_max_ms: f64,
    /// `/generate` requests accepted (queued).
    pub generate_queued: u64,
    /// `/generate` requests refused at the queue cap (429).
    pub generate_429: u64,
    /// Requests that failed otherwise (connection errors, unexpected status codes).
    pub errors: u64,
    /// The first few error messages.
    pub error_samples: Vec<String>,
}

#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    generate_queued: AtomicU64,
    generate_429: AtomicU64,
    errors: AtomicU64,
    samples: std::sync::Mutex<Vec<String>>,
}

impl Tally {
    fn error(&self, message: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        if samples.len() < 5 {
            samples.push(message);
        }
    }

    fn take(&self, max: u64) -> bool {
        self.requests.fetch_add(1, Ordering::Relaxed) < max
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs the load test and returns its report.
pub async fn measure(args: &LoadtestArgs) -> anyhow::Result<Report> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(args.status_concurrency + args.generate_concurrency)
        .build()?;
    let base = args.url.trim_end_matches('/').to_string();
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds.max(0.1));
    let tally = Arc::new(Tally::default());
    let auth = args.token.as_ref().map(|t| format!("Bearer {t}"));
    let started = Instant::now();
    let mut status_tasks = Vec::new();
    for _ in 0..args.status_concurrency {
        let (client, url, tally, auth) = (
            client.clone(),
            format!("{base}/api/v1/pow/status"),
            tally.clone(),
            auth.clone(),
        );
        let max = args.max_requests;
        status_tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline && tally.take(max) {
                let mut request = client.get(&url);
                if let Some(auth) = &auth {
                    request = request.header("authorization", auth);
                }
                let t0 = Instant::now();
                match request.send().await {
                    Ok(r) if r.status().is_success() => match r.bytes().await {
                        Ok(_) => latencies.push(t0.elapsed().as_secs_f64() * 1e3),
                        Err(e) => tally.error(format!("/status body: {e}")),
                    },
                    Ok(r) => tally.error(format!("/status answered {}", r.status())),
                    Err(e) => tally.error(format!("/status: {e}")),
                }
            }
            latencies
        }));
    }
    let mut generate_tasks = Vec::new();
    for worker in 0..args.generate_concurrency {
        let (client, url, tally, auth) = (
            client.clone(),
            format!("{base}/api/v1/pow/generate"),
            tally.clone(),
            auth.clone(),
        );
        let args = args.clone();
        generate_tasks.push(tokio::spawn(async move {
            let mut round = 0u64;
            while Instant::now() < deadline && tally.take(args.max_requests) {
                let first = (worker as u64 * 1_000_000_000) + round * args.nonces;
                round += 1;
                let body = json!({
                    "block_hash": "loadtest-block",
                    "block_height": 1,
                    "public_key": "loadtest-key",
                    "node_id": 0,
                    "node_count": 1,
                    "nonces": (first..first + args.nonces).collect::<Vec<u64>>(),
                    "params": {"model": args.model, "seq_len": args.seq_len},
                });
                let mut request = client.post(&url).json(&body);
                if let Some(auth) = &auth {
                    request = request.header("authorization", auth);
                }
                match request.send().await {
                    Ok(r) if r.status().is_success() => {
                        tally.generate_queued.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) if r.status().as_u16() == 429 => {
                        tally.generate_429.fetch_add(1, Ordering::Relaxed);
                        // Back off a little, as a well-behaved client would.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Ok(r) => {
                        let status = r.status();
                        let text = r.text().await.unwrap_or_default();
                        tally.error(format!("/generate answered {status}: {text}"));
                    }
                    Err(e) => tally.error(format!("/generate: {e}")),
                }
            }
        }));
    }
    let mut latencies = Vec::new();
    for task in status_tasks {
        latencies.extend(task.await?);
    }
    for task in generate_tasks {
        task.await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let samples = tally
        .samples
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    Ok(Report {
        seconds,
        status_ok: latencies.len() as u64,
        status_per_second: latencies.len() as f64 / seconds,
        status_p50_ms: percentile(&latencies, 50.0),
        status_p90_ms: percentile(&latencies, 90.0),
        status_p99_ms: percentile(&latencies, 99.0),
        status_max_ms: latencies.last().copied().unwrap_or(0.0),
        generate_queued: tally.generate_queued.load(Ordering::Relaxed),
        generate_429: tally.generate_429.load(Ordering::Relaxed),
        errors: tally.errors.load(Ordering::Relaxed),
        error_samples: samples,
    })
}

/// `host loadtest`: prints the report as JSON; fails on errors (or on no 429 with
/// `--expect-429`).
pub async fn run(args: LoadtestArgs) -> anyhow::Result<()> {
    let report = measure(&args).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    if report.errors > 0 {
        bail!(
            "{} requests failed: {:?}",
            report.errors,
            report.error_samples
        );
    }
    if args.expect_429 && report.generate_429 == 0 {
        bail!("no /generate request hit the queue cap (429); raise --generate-concurrency or --nonces");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[], 99.0), 0.0);
    }
}
