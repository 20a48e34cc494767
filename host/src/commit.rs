//! The committer: golden cross-check, then durable commit of device results.
//!
//! **Cross-check** (cgminer's "hardware error", made exact): a configurable fraction of every
//! device's artifacts (all of them with `--certify`) is recomputed by the CPU golden model. The
//! contract is bit-exact, so any difference, one bit in one artifact or a nonce dropped by one
//! side only, is a hardware error: the device's counter rises, the whole unit is discarded and
//! computed again elsewhere, and past `crosscheck.max_hardware_errors` the device is quarantined.
//! Wrong artifacts are never reported.
//!
//! **Commit**: generation artifacts are appended to the outbox (fsync'd) before they count in
//! `/status`; a job's result is appended (when it has a callback URL and did not ask to wait)
//! right after the job shows as completed.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use golden::poc::cpu::CpuDevice;
use golden::poc::validate::{self, StatTest};
use golden::poc::Engine;

use crate::api::wire::{
    Encoding, GeneratedCallback, ValidatedCallback, ValidationOutcome, WireArtifact,
};
use crate::engine::{self, Outcome, SharedWeights};
use crate::jobs::{Job, JobResult};
use crate::outbox::{Callback, Outbox};
use crate::pool::{retry_or_give_up, DeviceSlot};
use crate::queue::WorkQueue;
use crate::work::{Epoch, Origin, Unit};

/// A device's results for one unit.
pub struct Computed {
    /// The unit.
    pub unit: Unit,
    /// The device that computed it.
    pub slot: Arc<DeviceSlot>,
    /// One outcome per nonce of the unit.
    pub outcomes: Vec<Outcome>,
}

/// Cross-check settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CrossCheck {
    /// Fraction of artifacts recomputed (1 in certify mode).
    pub fraction: f64,
    /// Hardware errors before quarantine.
    pub max_hardware_errors: u32,
    /// Threads of each golden recomputation.
    pub golden_threads: usize,
}

/// What the committer threads share.
pub struct CommitShared {
    /// The outbox.
    pub outbox: Arc<Outbox>,
    /// The queue (units with hardware errors go back to it).
    pub queue: Arc<WorkQueue>,
    /// Cross-check settings.
    pub crosscheck: CrossCheck,
    /// Called when a device is quarantined.
    pub on_device_down: Box<dyn Fn() + Send + Sync>,
    /// Outbox appends that failed (disk errors).
    pub outbox_errors: std::sync::atomic::AtomicU64,
}

/// The sending side: device threads submit here (blocking when the committer is behind, which
/// slows the devices down instead of piling results up in memory).
#[derive(Clone)]
pub struct Committer {
    tx: Arc<Mutex<Option<SyncSender<Computed>>>>,
}

impl Committer {
    /// Starts `threads` committer threads.
    pub fn start(shared: Arc<CommitShared>, threads: usize) -> (Committer, Vec<JoinHandle<()>>) {
        let (tx, rx) = sync_channel::<Computed>(threads.max(1) * 2);
        let rx = Arc::new(Mutex::new(rx));
        let handles = (0..threads.max(1))
            .map(|i| {
                let shared = shared.clone();
                let rx = rx.clone();
                std::thread::Builder::new()
                    .name(format!("committer-{i}"))
                    .spawn(move || run(shared, rx))
                    .expect("the OS can start a thread")
            })
            .collect();
        (
            Committer {
                tx: Arc::new(Mutex::new(Some(tx))),
            },
            handles,
        )
    }

    /// Hands results over.
    pub fn submit(&self, computed: Computed) {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(tx) = tx {
            // Fails only when the committer has stopped (shutdown): then nothing more is taken.
            let _ = tx.send(computed);
        }
    }

    /// Stops taking results; the threads finish what they hold and exit.
    pub fn close(&self) {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

struct Golden {
    weights: SharedWeights,
    engine: Engine<CpuDevice>,
}

fn run(shared: Arc<CommitShared>, rx: Arc<Mutex<Receiver<Computed>>>) {
    let mut golden: Option<Golden> = None;
    loop {
        let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok(computed) = next else { return };
        match crosscheck(&shared, &mut golden, &computed) {
            Ok(checked) => {
                computed
                    .slot
                    .stats
                    .crosschecked
                    .fetch_add(checked, std::sync::atomic::Ordering::Relaxed);
                commit(&shared, computed);
            }
            Err(reason) => hardware_error(&shared, computed, reason),
        }
    }
}

/// Recomputes a sample of the unit with the CPU golden model; `Ok(n)`: n nonces checked and
/// equal; `Err`: what differed.
fn crosscheck(
    shared: &CommitShared,
    golden: &mut Option<Golden>,
    computed: &Computed,
) -> Result<u64, String> {
    let fraction = shared.crosscheck.fraction;
    if fraction <= 0.0 {
        return Ok(0);
    }
    let sample: Vec<usize> = (0..computed.unit.nonces.len())
        .filter(|_| fraction >= 1.0 || rand::random::<f64>() < fraction)
        .collect();
    if sample.is_empty() {
        return Ok(0);
    }
    let ctx = &computed.unit.ctx;
    let reload = !matches!(golden, Some(g) if Arc::ptr_eq(&g.weights, &ctx.weights));
    if reload {
        *golden = None;
        let threads = shared.crosscheck.golden_threads;
        let mut engine = Engine::load(&*ctx.weights, CpuDevice::new(threads))
            .map_err(|e| format!("the golden model could not load the weights: {e}"))?;
        engine.set_host_threads(threads);
        *golden = Some(Golden {
            weights: ctx.weights.clone(),
            engine,
        });
    }
    let engine = &mut golden.as_mut().expect("loaded above").engine;
    let nonces: Vec<u64> = sample.iter().map(|&i| computed.unit.nonces[i]).collect();
    let artifacts = engine
        .artifacts(&ctx.round, &nonces, nonces.len())
        .map_err(|e| format!("the golden recomputation failed: {e}"))?;
    let expected = engine::outcomes(&nonces, artifacts);
    for (&i, want) in sample.iter().zip(&expected) {
        let got = &computed.outcomes[i];
        if got != want {
            let describe = |o: &Outcome| match o {
                Some(a) => a.vector_b64(),
                None => "dropped (NaN)".to_string(),
            };
            return Err(format!(
                "nonce {}: device gave {}, golden gives {}",
                computed.unit.nonces[i],
                describe(got),
                describe(want)
            ));
        }
    }
    Ok(sample.len() as u64)
}

fn hardware_error(shared: &CommitShared, computed: Computed, reason: String) {
    let slot = computed.slot;
    let errors = slot
        .stats
        .hardware_errors
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        + 1;
    tracing::warn!(device = %slot.name, %reason, errors, "hardware error: the device's result differs from the golden model; discarding the unit");
    retry_or_give_up(&shared.queue, computed.unit, &reason);
    if errors >= u64::from(shared.crosscheck.max_hardware_errors) {
        slot.quarantine(format!("{errors} hardware errors (last: {reason})"));
        shared.queue.notify();
        (shared.on_device_down)();
    }
}

/// Appends to the outbox, retrying a failing disk a few times before giving up loudly.
fn append(shared: &CommitShared, url: &str, callback: Callback) -> bool {
    for attempt in 0..5 {
        match shared.outbox.append(url.to_string(), callback.clone()) {
            Ok(_) => return true,
            Err(err) => {
                shared
                    .outbox_errors
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::error!(error = %err, attempt, "outbox append failed");
                std::thread::sleep(Duration::from_millis(200 << attempt));
            }
        }
    }
    false
}

fn commit(shared: &CommitShared, computed: Computed) {
    let Computed {
        unit,
        slot,
        outcomes,
    } = computed;
    let artifacts = outcomes.iter().flatten().count() as u64;
    let dropped = outcomes.len() as u64 - artifacts;
    match &unit.origin {
        Origin::Generation(epoch) => commit_generation(shared, epoch, &unit, &outcomes),
        Origin::Job { job, offset } => {
            if let Some(all) = job.fill(*offset, outcomes) {
                finish_job(shared, job, all);
            }
        }
    }
    let relaxed = std::sync::atomic::Ordering::Relaxed;
    slot.stats.artifacts.fetch_add(artifacts, relaxed);
    slot.stats.dropped.fetch_add(dropped, relaxed);
    slot.rate.add(artifacts);
}

fn wire(outcomes: &[Outcome]) -> Vec<WireArtifact> {
    outcomes
        .iter()
        .flatten()
        .map(|a| WireArtifact {
            nonce: a.nonce,
            vector_b64: a.vector_b64(),
        })
        .collect()
}

fn commit_generation(shared: &CommitShared, epoch: &Epoch, unit: &Unit, outcomes: &[Outcome]) {
    let artifacts = wire(outcomes);
    let n = artifacts.len() as u64;
    let dropped = outcomes.len() as u64 - n;
    let request = &epoch.request;
    if let Some(url) = &request.url {
        if !artifacts.is_empty() {
            let callback = Callback::Generated(GeneratedCallback {
                public_key: request.public_key.clone(),
                block_hash: request.block_hash.clone(),
                block_height: request.block_height,
                node_id: request.node_id,
                artifacts,
                encoding: Encoding::f16(unit.ctx.k_dim),
                request_id: None,
            });
            if !append(shared, url, callback) {
                tracing::error!(
                    nonces = ?unit.nonces,
                    "artifacts could not be stored (disk failing); they are lost"
                );
                return;
            }
        }
    }
    epoch.record(n, dropped);
}

fn finish_job(shared: &CommitShared, job: &Job, all: Vec<Outcome>) {
    let request = &job.request;
    let (result, callback) = match &request.validation {
        None => {
            let artifacts = wire(&all);
            let callback = Callback::Generated(GeneratedCallback {
                public_key: request.public_key.clone(),
                block_hash: request.block_hash.clone(),
                block_height: request.block_height,
                node_id: request.node_id,
                artifacts: artifacts.clone(),
                encoding: Encoding::f16(request.params.k_dim),
                request_id: Some(job.id.clone()),
            });
            (JobResult::Artifacts(artifacts), callback)
        }
        Some(validation) => {
            let computed: std::collections::HashMap<u64, &Outcome> =
                request.nonces.iter().copied().zip(all.iter()).collect();
            let stat = request.stat_test.unwrap_or_default();
            let test = StatTest {
                dist_threshold: stat.dist_threshold,
                p_mismatch: stat.p_mismatch,
                fraud_threshold: stat.fraud_threshold,
            };
            let mismatches: Vec<u64> = validation
                .artifacts
                .iter()
                .filter(|received| {
                    let ours = computed.get(&received.nonce).and_then(|o| o.as_ref());
                    validate::is_mismatch(ours, &received.vector_b64, test.dist_threshold)
                })
                .map(|received| received.nonce)
                .collect();
            let verdict = validate::verdict(validation.artifacts.len() as u64, mismatches, &test);
            let outcome = ValidationOutcome {
                n_total: verdict.n_total,
                n_mismatch: verdict.n_mismatch,
                mismatch_nonces: verdict.mismatch_nonces,
                p_value: verdict.p_value,
                fraud_detected: verdict.fraud_detected,
            };
            let callback = Callback::Validated(ValidatedCallback {
                request_id: job.id.clone(),
                block_hash: request.block_hash.clone(),
                block_height: request.block_height,
                public_key: request.public_key.clone(),
                node_id: request.node_id,
                outcome: outcome.clone(),
            });
            (JobResult::Validation(outcome), callback)
        }
    };
    // Completed first, so that a receiver that reads the job on its callback sees it done; the
    // job's result lives in memory either way, the callback in the durable outbox.
    job.complete(result);
    if let (Some(url), false) = (&request.url, request.wait) {
        if !append(shared, url, callback) {
            tracing::error!(request_id = %job.id, "the job's callback could not be stored (disk failing); its result stays readable by GET");
        }
    }
}
