//! The callback sender: delivers what the [outbox](crate::outbox) holds to the api nodes.
//!
//! One task per destination base URL keeps that destination's records in order and never lets a
//! dead receiver hold up a live one. Artifacts of the generation stream are batched (the network
//! batches about every 5 s; [`SenderConfig::batch_interval`]); job results and validation results
//! go out at once. A failure (connection error, timeout, status ≥ 400) is retried with
//! exponential back-off from [`SenderConfig::backoff_initial`] doubling up to
//! [`SenderConfig::backoff_max`], **forever**: unlike the network's sender, which gives up when
//! generation stops and drops the oldest artifacts when its buffer is full, nothing is dropped
//! here; the outbox is durable and generation pauses instead when it is full.
//!
//! Records are acknowledged in the outbox only after the receiver answered with a status below
//! 400, so delivery is at least once (see [`crate::outbox`] for de-duplication).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::wire::GeneratedCallback;
use crate::outbox::{Callback, Outbox, Pending};

/// How the sender batches, times out and backs off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderConfig {
    /// How long generation-stream artifacts wait to be batched (the network uses about 5 s).
    pub batch_interval: Duration,
    /// Most artifacts in one `POST {url}/generated`.
    pub max_artifacts_per_post: usize,
    /// First retry delay after a failure.
    pub backoff_initial: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
}

impl Default for SenderConfig {
    fn default() -> Self {
        SenderConfig {
            batch_interval: Duration::from_secs(5),
            max_artifacts_per_post: 10_000,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Delivery counters, for `/metrics`.
#[derive(Debug, Default)]
pub struct SenderStats {
    /// Callbacks (HTTP requests) that succeeded.
    pub posts_ok: AtomicU64,
    /// Callback attempts that failed (and will be retried).
    pub posts_failed: AtomicU64,
    /// Artifacts delivered.
    pub artifacts_delivered: AtomicU64,
    /// Validation results delivered.
    pub validations_delivered: AtomicU64,
}

/// A running sender: its stats and the handle that flushes and stops it.
pub struct Sender {
    /// Delivery counters.
    pub stats: Arc<SenderStats>,
    mode: watch::Sender<Mode>,
    task: JoinHandle<()>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Batch the generation stream.
    Normal,
    /// Send everything at once (shutting down).
    Flush,
    /// Stop.
    Stop,
}

impl Sender {
    /// Starts delivering `outbox`'s records (on the current tokio runtime).
    pub fn start(outbox: Arc<Outbox>, config: SenderConfig) -> Sender {
        let stats = Arc::new(SenderStats::default());
        let (mode, mode_rx) = watch::channel(Mode::Normal);
        let client = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .build()
            .expect("an HTTP client without TLS customisation always builds");
        let shared = Arc::new(Shared {
            outbox,
            client,
            config,
            stats: stats.clone(),
        });
        let task = tokio::spawn(manage(shared, mode_rx));
        Sender { stats, mode, task }
    }

    /// Sends everything pending without waiting for batches, for up to `grace`, then stops.
    /// What is still undelivered stays in the outbox for the next start.
    pub async fn shutdown(self, grace: Duration, outbox: &Outbox) {
        let _ = self.mode.send(Mode::Flush);
        let deadline = Instant::now() + grace;
        while outbox.backlog().records > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let backlog = outbox.backlog();
        if backlog.records > 0 {
            tracing::warn!(
                records = backlog.records,
                artifacts = backlog.artifacts,
                "callbacks still undelivered at shutdown; they stay in the outbox and go out after the next start"
            );
        }
        let _ = self.mode.send(Mode::Stop);
        let _ = self.task.await;
    }
}

struct Shared {
    outbox: Arc<Outbox>,
    client: reqwest::Client,
    config: SenderConfig,
    stats: Arc<SenderStats>,
}

/// Starts a worker for every destination with pending records, and restarts finished ones.
async fn manage(shared: Arc<Shared>, mut mode: watch::Receiver<Mode>) {
    let mut changes = shared.outbox.subscribe();
    let mut workers: HashMap<String, JoinHandle<()>> = HashMap::new();
    loop {
        if *mode.borrow() == Mode::Stop {
            break;
        }
        workers.retain(|_, w| !w.is_finished());
        for url in shared.outbox.destinations() {
            workers
                .entry(url.clone())
                .or_insert_with(|| tokio::spawn(deliver(shared.clone(), url, mode.clone())));
        }
        tokio::select! {
            _ = changes.changed() => {}
            _ = mode.changed() => {}
            // A worker that exits just as a record arrives is restarted on the next tick.
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
    for (_, worker) in workers {
        worker.abort();
        let _ = worker.await;
    }
}

/// One batch: the records it acknowledges and the request it sends.
struct Batch {
    seqs: Vec<u64>,
    path: &'static str,
    body: serde_json::Value,
    artifacts: u64,
    validations: u64,
    /// Whether this is generation-stream data that may wait to be batched.
    batchable: bool,
    /// When its oldest record was appended (`None`: recovered at start).
    oldest: Option<Instant>,
}

/// Merges the leading records that share one `/generated` header into one batch.
fn next_batch(pending: &[Pending], max_artifacts: usize) -> Option<Batch> {
    let first = pending.first()?;
    match &first.record.callback {
        Callback::Validated(body) => Some(Batch {
            seqs: vec![first.record.seq],
            path: "validated",
            body: serde_json::to_value(body).expect("callbacks always serialise"),
            artifacts: 0,
            validations: 1,
            batchable: false,
            oldest: first.appended,
        }),
        Callback::Generated(head) => {
            let mut merged = GeneratedCallback {
                artifacts: Vec::new(),
                ..head.clone()
            };
            let mut seqs = Vec::new();
            for entry in pending {
                let Callback::Generated(body) = &entry.record.callback else {
                    break;
                };
                let same_header = body.public_key == head.public_key
                    && body.block_hash == head.block_hash
                    && body.block_height == head.block_height
                    && body.node_id == head.node_id
                    && body.encoding == head.encoding
                    && body.request_id == head.request_id;
                let fits = merged.artifacts.len() + body.artifacts.len() <= max_artifacts;
                if !same_header || (!seqs.is_empty() && !fits) {
                    break;
                }
                merged.artifacts.extend(body.artifacts.iter().cloned());
                seqs.push(entry.record.seq);
            }
            Some(Batch {
                seqs,
                path: "generated",
                artifacts: merged.artifacts.len() as u64,
                validations: 0,
                batchable: head.request_id.is_none(),
                oldest: first.appended,
                body: serde_json::to_value(&merged).expect("callbacks always serialise"),
            })
        }
    }
}

/// Delivers one destination's records in order until none are left.
async fn deliver(shared: Arc<Shared>, url: String, mut mode: watch::Receiver<Mode>) {
    let config = shared.config;
    let endpoint_base = url.trim_end_matches('/').to_string();
    let mut backoff = config.backoff_initial;
    // Enough records to fill a batch even when each holds a single artifact.
    let scan = config.max_artifacts_per_post.max(1);
    loop {
        let pending = shared.outbox.pending_for(&url, scan);
        let Some(batch) = next_batch(&pending, config.max_artifacts_per_post) else {
            return;
        };
        let flushing = *mode.borrow() != Mode::Normal;
        if batch.batchable
            && !flushing
            && (batch.artifacts as usize) < config.max_artifacts_per_post
        {
            if let Some(oldest) = batch.oldest {
                let due = oldest + config.batch_interval;
                if Instant::now() < due {
                    tokio::select! {
                        _ = tokio::time::sleep_until(due.into()) => {}
                        _ = mode.changed() => {}
                    }
                    continue; // more records may have joined the batch
                }
            }
        }
        let endpoint = format!("{endpoint_base}/{}", batch.path);
        let result = shared.client.post(&endpoint).json(&batch.body).send().await;
        let failure = match result {
            Ok(response) if response.status().as_u16() < 400 => None,
            Ok(response) => Some(format!("answered {}", response.status())),
            Err(err) => Some(err.to_string()),
        };
        match failure {
            None => {
                let outbox = shared.outbox.clone();
                let seqs = batch.seqs.clone();
                let acked = tokio::task::spawn_blocking(move || outbox.ack(&seqs)).await;
                match acked {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) => {
                        // Delivered but not recorded: it will be sent again (at least once).
                        tracing::error!(error = %err, "could not record a delivered callback");
                        tokio::time::sleep(config.backoff_max).await;
                    }
                    Err(join) => tracing::error!(error = %join, "acknowledgement task failed"),
                }
                shared.stats.posts_ok.fetch_add(1, Ordering::Relaxed);
                shared
                    .stats
                    .artifacts_delivered
                    .fetch_add(batch.artifacts, Ordering::Relaxed);
                shared
                    .stats
                    .validations_delivered
                    .fetch_add(batch.validations, Ordering::Relaxed);
                tracing::debug!(%endpoint, artifacts = batch.artifacts, "callback delivered");
                backoff = config.backoff_initial;
            }
            Some(reason) => {
                shared.stats.posts_failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    %endpoint,
                    %reason,
                    retry_in_ms = backoff.as_millis() as u64,
                    "callback failed; will retry"
                );
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = mode.changed() => {}
                }
                backoff = (backoff * 2).min(config.backoff_max);
            }
        }
    }
}

#[cfg(test)]
mod tests;
