//! The node: the ML node's state machine (idle → generating → stopped), `/generate` jobs, and
//! everything they run on (queue, pool, committer, outbox, sender).

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::api::checks::{self, Limits};
use crate::api::error::ApiError;
use crate::api::wire::{GenerateRequest, InitGenerateRequest, StatusResponse, StatusStats};
use crate::commit::{CommitShared, Committer, CrossCheck};
use crate::config::Config;
use crate::engine::{self, ServedModel, SharedWeights};
use crate::jobs::{Job, JobRegistry, JobStatus};
use crate::models::WeightsCache;
use crate::outbox::Outbox;
use crate::pool::{Pool, PoolShared};
use crate::queue::WorkQueue;
use crate::sender::Sender;
use crate::work::{Epoch, EpochPhase, WorkContext};

/// The most `batch × seq_len` rows of one forward pass (bits do not depend on it; memory does).
pub const MAX_BATCH_TOKENS: usize = 1 << 16;

/// What a request asks to compute, for [`Node::context`].
struct Requested<'a> {
    block_hash: &'a str,
    public_key: &'a str,
    block_height: u64,
    node_id: u64,
    params: &'a crate::api::wire::Params,
    batch_size: u64,
    cancel: crate::work::CancelFlag,
}

/// The running daemon's core.
pub struct Node {
    /// The served model.
    pub served: ServedModel,
    /// Request limits.
    pub limits: Limits,
    /// The work queue.
    pub queue: Arc<WorkQueue>,
    /// `/generate` jobs.
    pub jobs: Arc<JobRegistry>,
    /// The outbox.
    pub outbox: Arc<Outbox>,
    /// The devices.
    pub pool: Arc<Pool>,
    /// Committer state (outbox error counter).
    pub commit: Arc<CommitShared>,
    weights: WeightsCache,
    epoch: Mutex<Option<Arc<Epoch>>>,
    committer: Committer,
    committer_threads: Mutex<Vec<JoinHandle<()>>>,
    sender: Mutex<Option<Sender>>,
    /// Delivery counters of the sender.
    pub sender_stats: Arc<crate::sender::SenderStats>,
    shutdown_grace: Duration,
    /// HTTP requests by route and status, for `/metrics`.
    pub http: crate::metrics::HttpCounters,
}

impl Node {
    /// Opens the model, the outbox and the devices, and starts the workers and the sender.
    /// Must run inside a tokio runtime (the sender is a task).
    pub fn start(config: &Config) -> anyhow::Result<Arc<Node>> {
        let served = ServedModel::open(&config.model)
            .map_err(|e| anyhow::anyhow!("model {:?}: {e}", config.model))?;
        let model_config = served.config();
        let limits = Limits {
            model: served.name().to_string(),
            hidden_size: model_config.hidden_size as u64,
            max_seq_len: config.limits.max_seq_len.unwrap_or(4096),
            pinned_seq_len: config.limits.seq_len,
            pinned_k_dim: config.limits.k_dim,
            max_batch_size: config.limits.max_batch_size,
            queue_cap: config.limits.queue_cap,
            max_string_len: 1024,
        };
        let outbox = Arc::new(Outbox::open(
            &config.data_dir.join("outbox"),
            config.callbacks.outbox(),
        )?);
        let paused_outbox = outbox.clone();
        let queue = Arc::new(WorkQueue::new(
            config.limits.queue_cap,
            Box::new(move || paused_outbox.is_full()),
        ));
        // The node reacts to devices leaving service; it does not exist yet, so go through a
        // weak reference filled in below.
        let node_ref: Arc<Mutex<Weak<Node>>> = Arc::new(Mutex::new(Weak::new()));
        let down = |node_ref: Arc<Mutex<Weak<Node>>>| -> Box<dyn Fn() + Send + Sync> {
            Box::new(move || {
                let node = node_ref.lock().unwrap_or_else(|p| p.into_inner()).upgrade();
                if let Some(node) = node {
                    node.device_down();
                }
            })
        };
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let commit = Arc::new(CommitShared {
            outbox: outbox.clone(),
            queue: queue.clone(),
            crosscheck: CrossCheck {
                fraction: config.crosscheck.effective_fraction(),
                max_hardware_errors: config.crosscheck.max_hardware_errors,
                golden_threads: config.crosscheck.golden_threads,
            },
            on_device_down: down(node_ref.clone()),
            outbox_errors: AtomicU64::new(0),
        });
        let (committer, committer_threads) =
            Committer::start(commit.clone(), config.crosscheck.threads);
        let pool = Pool::start(
            &config.devices,
            PoolShared {
                queue: queue.clone(),
                committer: committer.clone(),
                health: config.health.clone(),
                max_batch_tokens: MAX_BATCH_TOKENS,
                on_device_down: down(node_ref.clone()),
                stopping: Default::default(),
            },
        )
        .map_err(|e| anyhow::anyhow!("opening devices: {e}"))?;
        let sender = Sender::start(outbox.clone(), config.callbacks.sender());
        let node = Arc::new(Node {
            weights: WeightsCache::new(served.clone(), config.limits.model_cache, threads),
            served,
            limits,
            queue,
            jobs: Arc::new(JobRegistry::new(Duration::from_secs(
                config.limits.job_retention_s,
            ))),
            outbox,
            pool,
            commit,
            epoch: Mutex::new(None),
            committer,
            committer_threads: Mutex::new(committer_threads),
            sender_stats: sender.stats.clone(),
            sender: Mutex::new(Some(sender)),
            shutdown_grace: Duration::from_millis(config.callbacks.shutdown_grace_ms),
            http: Default::default(),
        });
        *node_ref.lock().unwrap_or_else(|p| p.into_inner()) = Arc::downgrade(&node);
        let sweeper = Arc::downgrade(&node);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let Some(node) = sweeper.upgrade() else {
                    return;
                };
                node.jobs.sweep();
            }
        });
        Ok(node)
    }

    fn current_epoch(&self) -> Option<Arc<Epoch>> {
        self.epoch.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A device left service: if none is left, nothing can be computed any more.
    fn device_down(&self) {
        if self.pool.available() > 0 {
            return;
        }
        tracing::error!("no healthy device is left: failing queued work");
        let reason = "no healthy device is left (all quarantined; see /metrics)".to_string();
        if let Some(epoch) = self.current_epoch() {
            if epoch.phase() == EpochPhase::Running {
                epoch.set_phase(EpochPhase::Failed(reason.clone()));
            }
        }
        for job in self.queue.clear() {
            job.fail(reason.clone());
        }
        for job in self.jobs.unfinished() {
            job.fail(reason.clone());
        }
    }

    fn require_device(&self) -> Result<(), ApiError> {
        if self.pool.available() == 0 {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no healthy device: every device is quarantined (see /metrics); restart the daemon after fixing them",
            ));
        }
        Ok(())
    }

    /// Prepares the context shared by all units of one request.
    async fn context(&self, r: Requested<'_>) -> Result<Arc<WorkContext>, String> {
        let Requested {
            block_hash,
            public_key,
            block_height,
            node_id,
            params,
            batch_size,
            cancel,
        } = r;
        let weights: SharedWeights = self.weights.get(block_hash).await?;
        let (bh, pk) = (block_hash.to_string(), public_key.to_string());
        let (seq_len, k_dim) = (params.seq_len as usize, params.k_dim as usize);
        let w = weights.clone();
        let round =
            tokio::task::spawn_blocking(move || engine::round(&w, &bh, &pk, seq_len, k_dim))
                .await
                .map_err(|e| format!("preparing the round failed: {e}"))?
                .map_err(|e| e.to_string())?;
        Ok(Arc::new(WorkContext {
            block_hash: block_hash.to_string(),
            block_height,
            public_key: public_key.to_string(),
            node_id,
            k_dim: params.k_dim,
            batch: batch_size as usize,
            weights,
            round: Arc::new(round),
            cancel,
        }))
    }

    /// `POST /init/generate`.
    pub fn init_generate(self: &Arc<Self>, request: InitGenerateRequest) -> Result<(), ApiError> {
        let sequence = checks::check_init(&request, &self.limits)?;
        self.require_device()?;
        let epoch = {
            let mut current = self.epoch.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(epoch) = current.as_ref() {
                if epoch.phase() == EpochPhase::Running {
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        format!(
                            "already generating for block {} (height {}); POST /api/v1/pow/stop first",
                            epoch.request.block_hash, epoch.request.block_height
                        ),
                    ));
                }
            }
            let epoch = Arc::new(Epoch::new(request, sequence));
            *current = Some(epoch.clone());
            epoch
        };
        tracing::info!(
            block_hash = %epoch.request.block_hash,
            block_height = epoch.request.block_height,
            node_id = epoch.request.node_id,
            node_count = epoch.request.node_count,
            "generation started"
        );
        let node = self.clone();
        tokio::spawn(async move {
            let r = &epoch.request;
            let ctx = node
                .context(Requested {
                    block_hash: &r.block_hash,
                    public_key: &r.public_key,
                    block_height: r.block_height,
                    node_id: r.node_id,
                    params: &r.params,
                    batch_size: r.batch_size,
                    cancel: epoch.cancel.clone(),
                })
                .await;
            match ctx {
                Ok(ctx) => {
                    if !epoch.cancel.is_cancelled() {
                        node.queue.start_stream(epoch.clone(), ctx);
                    }
                }
                Err(reason) => {
                    tracing::error!(%reason, "generation cannot start");
                    epoch.set_phase(EpochPhase::Failed(reason));
                }
            }
        });
        Ok(())
    }

    /// `POST /generate`: returns the HTTP status and body.
    pub async fn generate(
        self: &Arc<Self>,
        request: GenerateRequest,
    ) -> Result<(StatusCode, Value), ApiError> {
        checks::check_generate(&request, &self.limits)?;
        self.require_device()?;
        let n = request.nonces.len() as u64;
        self.queue
            .reserve(n)
            .map_err(|full| ApiError::new(StatusCode::TOO_MANY_REQUESTS, full.to_string()))?;
        let wait = request.wait;
        let job = Job::new(request);
        self.jobs.insert(job.clone());
        let node = self.clone();
        let queued = job.clone();
        tokio::spawn(async move {
            let r = &queued.request;
            let ctx = node
                .context(Requested {
                    block_hash: &r.block_hash,
                    public_key: &r.public_key,
                    block_height: r.block_height,
                    node_id: r.node_id,
                    params: &r.params,
                    batch_size: r.batch_size,
                    cancel: queued.cancel.clone(),
                })
                .await;
            match ctx {
                Ok(ctx) => node.queue.push_job(queued, ctx),
                Err(reason) => {
                    node.queue.unreserve(n);
                    queued.fail(reason);
                }
            }
        });
        if !wait {
            return Ok((
                StatusCode::OK,
                json!({"status": "queued", "request_id": job.id, "queued_count": n}),
            ));
        }
        job.wait().await;
        let status = match job.status() {
            JobStatus::Completed => StatusCode::OK,
            JobStatus::Cancelled => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Ok((status, job.to_json()))
    }

    /// `GET /generate/{request_id}`.
    pub fn job(&self, id: &str) -> Option<Value> {
        self.jobs.get(id).map(|job| job.to_json())
    }

    /// `GET /status`.
    pub fn status(&self) -> StatusResponse {
        match self.current_epoch() {
            Some(epoch) if epoch.phase() == EpochPhase::Running => StatusResponse {
                status: "GENERATING".into(),
                config: Some(epoch.status_config()),
                stats: Some(StatusStats {
                    total_processed: epoch.processed.load(std::sync::atomic::Ordering::Relaxed),
                    nonces_per_second: epoch.nonces_per_second(),
                }),
            },
            _ => StatusResponse {
                status: "IDLE".into(),
                config: None,
                stats: None,
            },
        }
    }

    /// The epoch being generated (or the last one), for metrics.
    pub fn epoch(&self) -> Option<Arc<Epoch>> {
        self.current_epoch()
    }

    /// `POST /stop`: stops generation and cancels every queued or running job.
    pub fn stop(&self) {
        if let Some(epoch) = self.current_epoch() {
            if epoch.phase() == EpochPhase::Running {
                epoch.set_phase(EpochPhase::Stopped);
                tracing::info!(
                    processed = epoch.processed.load(std::sync::atomic::Ordering::Relaxed),
                    "generation stopped"
                );
            }
        }
        for job in self.queue.clear() {
            job.cancel();
        }
        for job in self.jobs.unfinished() {
            job.cancel();
        }
    }

    /// Graceful shutdown: stop computing, commit what was computed, deliver for a while.
    pub async fn shutdown(&self) {
        tracing::info!("shutting down");
        self.stop();
        for job in self.queue.close() {
            job.cancel();
        }
        let pool = self.pool.clone();
        let _ = tokio::task::spawn_blocking(move || pool.join(Duration::from_secs(10))).await;
        self.committer.close();
        let handles = std::mem::take(
            &mut *self
                .committer_threads
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        let _ = tokio::task::spawn_blocking(move || {
            for handle in handles {
                let _ = handle.join();
            }
        })
        .await;
        let sender = self.sender.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(sender) = sender {
            sender.shutdown(self.shutdown_grace, &self.outbox).await;
        }
        tracing::info!("shutdown complete");
    }
}
