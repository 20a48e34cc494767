//! Units of work: what a device computes in one go, and the request context it belongs to.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use golden::poc::Round;

use crate::api::wire::{InitGenerateRequest, StatusConfig};
use crate::engine::SharedWeights;
use crate::jobs::Job;
use crate::nonce::NonceSequence;
use crate::rate::RateMeter;

/// A flag that cancels work (set by `/stop`, by shutdown, by a job's failure).
#[derive(Clone, Debug, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    /// A flag not yet set.
    pub fn new() -> Self {
        CancelFlag::default()
    }

    /// Sets it.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether it is set.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Everything a device needs to compute nonces of one request, shared by all its units.
pub struct WorkContext {
    /// Block hash.
    pub block_hash: String,
    /// Block height (for callbacks).
    pub block_height: u64,
    /// Public key.
    pub public_key: String,
    /// Node index (for callbacks).
    pub node_id: u64,
    /// Coordinates per artifact.
    pub k_dim: u64,
    /// Nonces per forward pass.
    pub batch: usize,
    /// The model's weights for this block hash.
    pub weights: SharedWeights,
    /// Seeds and reflections of this round.
    pub round: Arc<Round>,
    /// Set when the work should stop.
    pub cancel: CancelFlag,
}

/// Where a unit's results go.
#[derive(Clone)]
pub enum Origin {
    /// The generation stream of an epoch.
    Generation(Arc<Epoch>),
    /// Part of a `/generate` job, starting at `offset` in its nonce list.
    Job {
        /// The job.
        job: Arc<Job>,
        /// Index of the unit's first nonce in the job's list.
        offset: usize,
    },
}

/// Nonces a device computes in one go.
#[derive(Clone)]
pub struct Unit {
    /// The request context.
    pub ctx: Arc<WorkContext>,
    /// The nonces.
    pub nonces: Vec<u64>,
    /// Where the results go.
    pub origin: Origin,
    /// Earlier attempts that failed (device fault, hang, hardware error).
    pub attempts: u32,
}

/// What phase an epoch's generation is in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EpochPhase {
    /// Generating (or loading the weights first).
    Running,
    /// Stopped by `/stop` or shutdown.
    Stopped,
    /// Could not run (weights failed to load, no healthy device).
    Failed(String),
}

/// One generation stage started by `/init/generate`.
pub struct Epoch {
    /// The request that started it.
    pub request: InitGenerateRequest,
    /// The node's nonce sequence.
    pub sequence: NonceSequence,
    /// Set by `/stop`.
    pub cancel: CancelFlag,
    /// Artifacts committed (durably) so far.
    pub processed: AtomicU64,
    /// Nonces dropped by the network's NaN rule.
    pub dropped: AtomicU64,
    /// When it started.
    pub started: Instant,
    rate: RateMeter,
    phase: Mutex<EpochPhase>,
}

impl Epoch {
    /// A running epoch for `request`.
    pub fn new(request: InitGenerateRequest, sequence: NonceSequence) -> Self {
        Epoch {
            request,
            sequence,
            cancel: CancelFlag::new(),
            processed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            started: Instant::now(),
            rate: RateMeter::new(Duration::from_secs(10)),
            phase: Mutex::new(EpochPhase::Running),
        }
    }

    /// Records committed artifacts and dropped nonces.
    pub fn record(&self, artifacts: u64, dropped: u64) {
        self.processed.fetch_add(artifacts, Ordering::Relaxed);
        self.dropped.fetch_add(dropped, Ordering::Relaxed);
        self.rate.add(artifacts + dropped);
    }

    /// Nonces per second over the last seconds.
    pub fn nonces_per_second(&self) -> f64 {
        self.rate.per_second()
    }

    /// The current phase.
    pub fn phase(&self) -> EpochPhase {
        self.phase.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Moves to `phase` (and cancels work unless it is `Running`).
    pub fn set_phase(&self, phase: EpochPhase) {
        if phase != EpochPhase::Running {
            self.cancel.cancel();
        }
        *self.phase.lock().unwrap_or_else(|p| p.into_inner()) = phase;
    }

    /// The configuration `/status` reports.
    pub fn status_config(&self) -> StatusConfig {
        let r = &self.request;
        StatusConfig {
            block_hash: r.block_hash.clone(),
            block_height: r.block_height,
            public_key: r.public_key.clone(),
            node_id: r.node_id,
            node_count: r.node_count,
            group_id: r.group_id,
            n_groups: r.n_groups,
            seq_len: r.params.seq_len,
            k_dim: r.params.k_dim,
        }
    }
}
