//! The device pool: one OS thread per device pulling units from the [queue](crate::queue),
//! running the golden forward with its matrix products on the device, and handing results to
//! the [committer](crate::commit). A watchdog aborts a unit when the device completes no matrix
//! product for `health.stall_s`, or runs far longer than its measured speed predicts. A device that errors or hangs is reset and its unit goes back to the
//! queue for another device; after `health.max_faults` faults (or `crosscheck.max_hardware_errors`
//! wrong results) it is quarantined and the others carry on.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use golden::poc::{Engine, PocError};

use crate::commit::{Committer, Computed};
use crate::config::HealthConfig;
use crate::device::guard::{GuardedDevice, Interrupt};
use crate::device::{DeviceConfig, Telemetry};
use crate::engine::{self, SharedWeights};
use crate::queue::{Pull, WorkQueue};
use crate::rate::RateMeter;
use crate::work::{Origin, Unit};

/// A unit that failed this many times on devices is given up (the job fails).
pub const MAX_ATTEMPTS: u32 = 5;

const HEALTHY: u8 = 0;
const QUARANTINED: u8 = 1;
const HUNG: u8 = 2;

/// Counters of one device, for `/metrics`.
#[derive(Debug, Default)]
pub struct DeviceStats {
    /// Artifacts committed.
    pub artifacts: AtomicU64,
    /// Nonces dropped by the NaN rule.
    pub dropped: AtomicU64,
    /// Artifacts recomputed by the golden cross-check.
    pub crosschecked: AtomicU64,
    /// Cross-check differences (hardware errors).
    pub hardware_errors: AtomicU64,
    /// Device calls that failed.
    pub errors: AtomicU64,
    /// Units aborted by the hang watchdog.
    pub hangs: AtomicU64,
    /// Resets.
    pub resets: AtomicU64,
}

struct Busy {
    unit: Unit,
    deadline: Option<Instant>,
    taken_over: bool,
}

/// One device's place in the pool: its identity, health, statistics and current work.
pub struct DeviceSlot {
    /// Configured name.
    pub name: String,
    /// Backend (`cpu`, …).
    pub backend: &'static str,
    /// The device's own description.
    pub describe: String,
    /// Counters.
    pub stats: DeviceStats,
    /// Committed artifacts per second, recently.
    pub rate: RateMeter,
    state: AtomicU8,
    reason: Mutex<Option<String>>,
    throughput: Mutex<Option<f64>>,
    telemetry: Mutex<Telemetry>,
    interrupt: Arc<Interrupt>,
    busy: Mutex<Option<Busy>>,
    faults: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl DeviceSlot {
    /// Whether it takes work.
    pub fn is_healthy(&self) -> bool {
        self.state.load(Ordering::SeqCst) == HEALTHY
    }

    /// Whether it was taken out of service.
    pub fn is_quarantined(&self) -> bool {
        self.state.load(Ordering::SeqCst) == QUARANTINED
    }

    /// `healthy`, `hung` or `quarantined`.
    pub fn state_name(&self) -> &'static str {
        match self.state.load(Ordering::SeqCst) {
            HEALTHY => "healthy",
            HUNG => "hung",
            _ => "quarantined",
        }
    }

    /// Why it was quarantined.
    pub fn quarantine_reason(&self) -> Option<String> {
        lock(&self.reason).clone()
    }

    /// Measured compute speed, nonces per second (exponential average over units).
    pub fn throughput(&self) -> Option<f64> {
        *lock(&self.throughput)
    }

    /// Last telemetry reading.
    pub fn telemetry(&self) -> Telemetry {
        *lock(&self.telemetry)
    }

    fn record_speed(&self, nonces: usize, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if seconds <= 0.0 {
            return;
        }
        let speed = nonces as f64 / seconds;
        let mut throughput = lock(&self.throughput);
        *throughput = Some(match *throughput {
            Some(old) => 0.7 * old + 0.3 * speed,
            None => speed,
        });
    }

    /// Takes the device out of service for good (until the daemon restarts).
    pub fn quarantine(&self, reason: String) {
        let previous = self.state.swap(QUARANTINED, Ordering::SeqCst);
        if previous != QUARANTINED {
            tracing::error!(device = %self.name, %reason, "device quarantined");
            *lock(&self.reason) = Some(reason);
        }
    }

    /// Counts a fault; returns whether the device must now be quarantined.
    fn fault(&self, max_faults: u32) -> bool {
        self.faults.fetch_add(1, Ordering::SeqCst) + 1 >= u64::from(max_faults)
    }
}

/// Settings and shared parts every worker needs.
pub struct PoolShared {
    /// Where units come from.
    pub queue: Arc<WorkQueue>,
    /// Where results go.
    pub committer: Committer,
    /// Fault handling.
    pub health: HealthConfig,
    /// The most `batch × seq_len` rows in one forward (the operator's limit).
    pub max_batch_tokens: usize,
    /// Called when a device leaves service, so the node can react if none is left.
    pub on_device_down: Box<dyn Fn() + Send + Sync>,
    /// Set at shutdown.
    pub stopping: AtomicBool,
}

/// The pool: its slots, worker threads and watchdog.
pub struct Pool {
    slots: Vec<Arc<DeviceSlot>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    shared: Arc<PoolShared>,
}

impl Pool {
    /// Opens every configured device and starts its worker thread, and the watchdog. A device
    /// that cannot be opened is quarantined from the start (the others serve); if none opens,
    /// this fails with every device's error.
    pub fn start(devices: &[DeviceConfig], shared: PoolShared) -> Result<Arc<Pool>, String> {
        let shared = Arc::new(shared);
        let mut all = Vec::new();
        let mut running = Vec::new();
        let mut handles = Vec::new();
        let mut errors = Vec::new();
        for (index, config) in devices.iter().enumerate() {
            let backend_config = config.backend();
            let name = config.name(index);
            let slot = |backend, describe, state| DeviceSlot {
                name: name.clone(),
                backend,
                describe,
                stats: DeviceStats::default(),
                rate: RateMeter::new(Duration::from_secs(10)),
                state: AtomicU8::new(state),
                reason: Mutex::new(None),
                throughput: Mutex::new(None),
                telemetry: Mutex::new(Telemetry::default()),
                interrupt: Arc::new(Interrupt::default()),
                busy: Mutex::new(None),
                faults: AtomicU64::new(0),
            };
            match backend_config.open() {
                Ok(device) => {
                    let interrupt = Arc::new(Interrupt::default());
                    let guarded = GuardedDevice::new(
                        device,
                        interrupt.clone(),
                        backend_config.fault().cloned(),
                    );
                    let slot = Arc::new(DeviceSlot {
                        interrupt,
                        ..slot(
                            guarded.backend(),
                            golden::poc::MatmulDevice::describe(&guarded),
                            HEALTHY,
                        )
                    });
                    if backend_config.fault().is_some() {
                        tracing::warn!(device = %slot.name, "fault injection is ON for this device (tests and operations only)");
                    }
                    all.push(slot.clone());
                    running.push((slot, guarded));
                }
                Err(err) => {
                    tracing::error!(device = %name, error = %err, "device could not be opened; quarantined");
                    let slot = Arc::new(slot(config.kind(), "not opened".into(), QUARANTINED));
                    *lock(&slot.reason) = Some(format!("could not be opened: {err}"));
                    errors.push(format!("{name}: {err}"));
                    all.push(slot);
                }
            }
        }
        if running.is_empty() {
            return Err(format!("no device could be opened ({})", errors.join("; ")));
        }
        let pool = Arc::new(Pool {
            slots: all,
            threads: Mutex::new(Vec::new()),
            shared: shared.clone(),
        });
        for (slot, guarded) in running {
            let pool_ref = pool.clone();
            let handle = std::thread::Builder::new()
                .name(format!("device-{}", slot.name))
                .spawn(move || worker(pool_ref, slot, guarded))
                .expect("the OS can start a thread");
            handles.push(handle);
        }
        let watchdog_pool = pool.clone();
        handles.push(
            std::thread::Builder::new()
                .name("watchdog".into())
                .spawn(move || watchdog(watchdog_pool))
                .expect("the OS can start a thread"),
        );
        *lock(&pool.threads) = handles;
        Ok(pool)
    }

    /// The slots, in configuration order.
    pub fn slots(&self) -> &[Arc<DeviceSlot>] {
        &self.slots
    }

    /// Devices taking work now.
    pub fn healthy(&self) -> usize {
        self.slots.iter().filter(|s| s.is_healthy()).count()
    }

    /// Devices not quarantined (healthy, or hung and being reset).
    pub fn available(&self) -> usize {
        self.slots.iter().filter(|s| !s.is_quarantined()).count()
    }

    /// A device's share of the healthy devices' measured throughput (equal shares until
    /// measured).
    fn share(&self, slot: &DeviceSlot) -> (f64, usize) {
        let healthy: Vec<&Arc<DeviceSlot>> = self.slots.iter().filter(|s| s.is_healthy()).collect();
        let n = healthy.len().max(1);
        let known: Vec<f64> = healthy.iter().filter_map(|s| s.throughput()).collect();
        if known.len() < healthy.len() || known.is_empty() {
            return (1.0 / n as f64, n);
        }
        let total: f64 = known.iter().sum();
        let mine = slot.throughput().unwrap_or(total / n as f64);
        if total > 0.0 {
            ((mine / total).clamp(0.0, 1.0), n)
        } else {
            (1.0 / n as f64, n)
        }
    }

    /// Stops the workers (the queue must be closed first) and waits up to `grace` for them.
    pub fn join(&self, grace: Duration) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        for slot in &self.slots {
            slot.interrupt.abort();
        }
        let handles = std::mem::take(&mut *lock(&self.threads));
        let deadline = Instant::now() + grace;
        for handle in handles {
            while !handle.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if handle.is_finished() {
                let _ = handle.join();
            } else {
                tracing::warn!(thread = ?handle.thread().name(), "device thread did not stop in time; leaving it");
            }
        }
    }
}

/// Hands a failed unit back to the queue, or gives up on it after [`MAX_ATTEMPTS`].
pub fn retry_or_give_up(queue: &WorkQueue, unit: Unit, why: &str) {
    if unit.attempts + 1 >= MAX_ATTEMPTS {
        match &unit.origin {
            Origin::Job { job, .. } => job.fail(format!(
                "nonces {:?} failed on {MAX_ATTEMPTS} device attempts; last: {why}",
                unit.nonces
            )),
            Origin::Generation(_) => tracing::error!(
                nonces = ?unit.nonces,
                "giving up on generation nonces after {MAX_ATTEMPTS} failed attempts: {why}"
            ),
        }
        return;
    }
    queue.requeue(unit);
}

struct Loaded {
    weights: SharedWeights,
    engine: Engine<GuardedDevice>,
}

fn worker(pool: Arc<Pool>, slot: Arc<DeviceSlot>, device: GuardedDevice) {
    let shared = pool.shared.clone();
    let device_tokens = device
        .max_batch_tokens()
        .unwrap_or(usize::MAX)
        .min(shared.max_batch_tokens)
        .max(1);
    let mut loaded: Option<Loaded> = None;
    while slot.is_healthy() && !shared.stopping.load(Ordering::SeqCst) {
        let (share, healthy_devices) = pool.share(&slot);
        let pull = Pull {
            max_tokens: device_tokens,
            share,
            healthy_devices,
        };
        let Some(unit) = shared.queue.next(pull) else {
            break;
        };
        slot.interrupt.arm(unit.ctx.cancel.clone());
        let needs_load = !matches!(&loaded, Some(l) if Arc::ptr_eq(&l.weights, &unit.ctx.weights));
        let deadline = deadline_for(&slot, &shared.health, unit.nonces.len(), needs_load);
        *lock(&slot.busy) = Some(Busy {
            unit: unit.clone(),
            deadline,
            taken_over: false,
        });
        let started = Instant::now();
        let result = run_unit(&device, &mut loaded, needs_load, &unit);
        let elapsed = started.elapsed();
        let taken_over = lock(&slot.busy).take().is_some_and(|b| b.taken_over);
        if taken_over {
            // The watchdog already counted the hang and requeued the unit.
            loaded = None;
            if !slot.is_quarantined() {
                reset(&slot, &device);
            }
            continue;
        }
        match result {
            Ok(outcomes) => {
                if !needs_load {
                    slot.record_speed(unit.nonces.len(), elapsed);
                }
                *lock(&slot.telemetry) = device.telemetry();
                shared.committer.submit(Computed {
                    unit,
                    slot: slot.clone(),
                    outcomes,
                });
            }
            Err(_) if unit.ctx.cancel.is_cancelled() || shared.stopping.load(Ordering::SeqCst) => {
                // Stopped on purpose: nothing to report, nothing wrong with the device.
            }
            Err(err) => {
                slot.stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(device = %slot.name, error = %err, "device error; resetting it and handing the unit to the pool");
                let quarantine = slot.fault(shared.health.max_faults);
                loaded = None;
                retry_or_give_up(&shared.queue, unit, &err.to_string());
                if quarantine {
                    slot.quarantine(format!("{} faults (last: {err})", shared.health.max_faults));
                } else {
                    reset(&slot, &device);
                }
            }
        }
    }
    if slot.is_quarantined() {
        shared.queue.notify();
        (shared.on_device_down)();
    }
}

fn run_unit(
    device: &GuardedDevice,
    loaded: &mut Option<Loaded>,
    needs_load: bool,
    unit: &Unit,
) -> Result<Vec<engine::Outcome>, PocError> {
    if needs_load {
        *loaded = None;
        let mut engine = Engine::load(&*unit.ctx.weights, device.clone())?;
        device.configure_host(&mut engine);
        *loaded = Some(Loaded {
            weights: unit.ctx.weights.clone(),
            engine,
        });
    }
    let loaded = loaded.as_mut().expect("loaded above");
    let artifacts =
        loaded
            .engine
            .artifacts(&unit.ctx.round, &unit.nonces, unit.nonces.len().max(1))?;
    Ok(engine::outcomes(&unit.nonces, artifacts))
}

fn reset(slot: &DeviceSlot, device: &GuardedDevice) {
    slot.stats.resets.fetch_add(1, Ordering::Relaxed);
    if let Err(err) = device.reset() {
        slot.quarantine(format!("reset failed: {err}"));
        return;
    }
    // A hung device that came back is healthy again (unless quarantined meanwhile).
    let _ = slot
        .state
        .compare_exchange(HUNG, HEALTHY, Ordering::SeqCst, Ordering::SeqCst);
}

/// When a unit of `nonces` is overdue: `hang_factor` times the time the device's measured speed
/// predicts, never less than `stall_s`. No deadline while the speed is unknown or weights are
/// being uploaded (only the stall rule applies then).
fn deadline_for(
    slot: &DeviceSlot,
    health: &HealthConfig,
    nonces: usize,
    loading: bool,
) -> Option<Instant> {
    let speed = slot.throughput().filter(|s| *s > 0.0 && !loading)?;
    let seconds = (health.hang_factor * nonces as f64 / speed).max(health.stall_s);
    Some(Instant::now() + Duration::from_secs_f64(seconds.min(86_400.0)))
}

fn watchdog(pool: Arc<Pool>) {
    let shared = pool.shared.clone();
    let stall = Duration::from_secs_f64(shared.health.stall_s);
    while !shared.stopping.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
        let now = Instant::now();
        for slot in &pool.slots {
            let mut busy = lock(&slot.busy);
            let Some(b) = busy.as_mut() else { continue };
            let stalled = slot.interrupt.since_progress() > stall;
            let overdue = b.deadline.is_some_and(|d| now > d);
            if b.taken_over || !(stalled || overdue) {
                continue;
            }
            b.taken_over = true;
            let unit = b.unit.clone();
            drop(busy);
            slot.interrupt.abort();
            slot.stats.hangs.fetch_add(1, Ordering::Relaxed);
            let _ = slot
                .state
                .compare_exchange(HEALTHY, HUNG, Ordering::SeqCst, Ordering::SeqCst);
            tracing::warn!(device = %slot.name, nonces = unit.nonces.len(), "device hung; aborting its unit and handing it to the pool");
            retry_or_give_up(&shared.queue, unit, "the device hung");
            if slot.fault(shared.health.max_faults) {
                slot.quarantine(format!("{} faults (last: hung)", shared.health.max_faults));
                shared.queue.notify();
                (shared.on_device_down)();
            }
        }
    }
}
