//! The wrapper every device runs inside: interruption (by `/stop`, a job's end, or the hang
//! watchdog) between matrix products, and optional fault injection.
//!
//! The golden [`Engine`](golden::poc::Engine) owns a [`GuardedDevice`] handle; the device's
//! worker thread keeps another one to reset the device and read its telemetry.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use golden::poc::device::{BatchSpec, MatOut, WeightHandle, WeightUpload};
use golden::poc::{DeviceError, Engine, MatmulDevice, ThreadPool};

use super::fault::{FaultConfig, FaultInjector, Injection};
use super::{Device, Telemetry};
use crate::work::CancelFlag;

/// The line between the device's worker and the watchdog: interruption (why a call was
/// stopped: a hang or a cancel) and progress (when the device last completed a call).
pub struct Interrupt {
    aborted: AtomicBool,
    cancel: Mutex<Option<CancelFlag>>,
    epoch: Instant,
    progress_ns: AtomicU64,
}

impl Default for Interrupt {
    fn default() -> Self {
        Interrupt {
            aborted: AtomicBool::new(false),
            cancel: Mutex::new(None),
            epoch: Instant::now(),
            progress_ns: AtomicU64::new(0),
        }
    }
}

impl Interrupt {
    /// Prepares for a new unit: clears an old abort, watches the unit's cancel flag, and counts
    /// as progress.
    pub fn arm(&self, cancel: CancelFlag) {
        self.aborted.store(false, Ordering::SeqCst);
        *self.cancel.lock().unwrap_or_else(|p| p.into_inner()) = Some(cancel);
        self.progressed();
    }

    /// Records that the device completed a call.
    pub fn progressed(&self) {
        let ns = self.epoch.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
        self.progress_ns.store(ns, Ordering::SeqCst);
    }

    /// How long since the device last completed a call (or the unit started).
    pub fn since_progress(&self) -> Duration {
        let last = Duration::from_nanos(self.progress_ns.load(Ordering::SeqCst));
        self.epoch.elapsed().saturating_sub(last)
    }

    /// Aborts the running unit (the watchdog found it hung).
    pub fn abort(&self) {
        self.aborted.store(true, Ordering::SeqCst);
    }

    /// Whether the running unit was aborted by the watchdog.
    pub fn aborted(&self) -> bool {
        self.aborted.load(Ordering::SeqCst)
    }

    fn check(&self, device: &str) -> Result<(), DeviceError> {
        if self.aborted() {
            return Err(DeviceError::Failed {
                device: device.to_string(),
                reason: "aborted by the hang watchdog".into(),
            });
        }
        let cancelled = self
            .cancel
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(CancelFlag::is_cancelled);
        if cancelled {
            return Err(DeviceError::Failed {
                device: device.to_string(),
                reason: "the work was cancelled".into(),
            });
        }
        Ok(())
    }
}

struct Guarded {
    device: Box<dyn Device>,
    describe: String,
    interrupt: Arc<Interrupt>,
    fault: Option<FaultInjector>,
}

/// A shared handle on a device inside its guard.
#[derive(Clone)]
pub struct GuardedDevice(Arc<Mutex<Guarded>>);

impl GuardedDevice {
    /// Wraps `device`, interrupted through `interrupt`, with optional fault injection.
    pub fn new(
        device: Box<dyn Device>,
        interrupt: Arc<Interrupt>,
        fault: Option<FaultConfig>,
    ) -> Self {
        let describe = device.describe();
        GuardedDevice(Arc::new(Mutex::new(Guarded {
            device,
            describe,
            interrupt,
            fault: fault.map(FaultInjector::new),
        })))
    }

    fn lock(&self) -> MutexGuard<'_, Guarded> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resets the device (resident weights are gone afterwards).
    pub fn reset(&self) -> Result<(), DeviceError> {
        self.lock().device.reset()
    }

    /// The device's telemetry.
    pub fn telemetry(&self) -> Telemetry {
        self.lock().device.telemetry()
    }

    /// The device's batch limit.
    pub fn max_batch_tokens(&self) -> Option<usize> {
        self.lock().device.max_batch_tokens()
    }

    /// Threads for the host side of the forward.
    pub fn host_threads(&self) -> usize {
        self.lock().device.host_threads()
    }

    /// The pool the host side of the forward should share with the device, if any.
    pub fn host_pool(&self) -> Option<Arc<ThreadPool>> {
        self.lock().device.host_pool()
    }

    /// Points `engine`'s host-side work at this device's pool where it has one, else at a pool
    /// of [`GuardedDevice::host_threads`] threads.
    pub fn configure_host<D: MatmulDevice>(&self, engine: &mut Engine<D>) {
        match self.host_pool() {
            Some(pool) => engine.set_host_pool(pool),
            None => engine.set_host_threads(self.host_threads()),
        }
    }

    /// The backend's name.
    pub fn backend(&self) -> &'static str {
        self.lock().device.backend()
    }
}

impl Guarded {
    /// Runs one matrix product under the interrupt and the fault injector.
    fn product(
        &mut self,
        d: MatOut<'_>,
        call: impl FnOnce(&mut dyn Device, MatOut<'_>) -> Result<(), DeviceError>,
    ) -> Result<(), DeviceError> {
        self.interrupt.check(&self.describe)?;
        let injection = match &mut self.fault {
            Some(injector) => injector.next_call(),
            None => Injection::None,
        };
        match injection {
            Injection::Hang => loop {
                std::thread::sleep(Duration::from_millis(5));
                if let Err(err) = self.interrupt.check(&self.describe) {
                    return Err(DeviceError::Failed {
                        device: self.describe.clone(),
                        reason: format!("hung (injected fault) until interrupted: {err}"),
                    });
                }
            },
            Injection::Error => {
                return Err(DeviceError::Failed {
                    device: self.describe.clone(),
                    reason: "injected fault: the call failed".into(),
                })
            }
            Injection::None | Injection::Flip { .. } => {}
        }
        match d {
            MatOut::F32(out) => {
                call(&mut *self.device, MatOut::F32(&mut *out))?;
                if let Injection::Flip { bit, element } = injection {
                    if !out.is_empty() {
                        let e = &mut out[element % out.len()];
                        *e = f32::from_bits(e.to_bits() ^ (1 << (bit % 32)));
                    }
                }
            }
            MatOut::Bf16(out) => {
                call(&mut *self.device, MatOut::Bf16(&mut *out))?;
                flip16(out, injection);
            }
            MatOut::Fp16(out) => {
                call(&mut *self.device, MatOut::Fp16(&mut *out))?;
                flip16(out, injection);
            }
        }
        self.interrupt.progressed();
        self.interrupt.check(&self.describe)
    }
}

fn flip16(out: &mut [u16], injection: Injection) {
    if let Injection::Flip { bit, element } = injection {
        if !out.is_empty() {
            let len = out.len();
            out[element % len] ^= 1 << (bit % 16);
        }
    }
}

impl MatmulDevice for GuardedDevice {
    fn describe(&self) -> String {
        self.lock().describe.clone()
    }

    fn upload_weight(&mut self, weight: &WeightUpload<'_>) -> Result<WeightHandle, DeviceError> {
        let mut guarded = self.lock();
        guarded.interrupt.check(&guarded.describe)?;
        let handle = guarded.device.upload_weight(weight)?;
        guarded.interrupt.progressed();
        Ok(handle)
    }

    fn release_weights(&mut self) -> Result<(), DeviceError> {
        self.lock().device.release_weights()
    }

    fn matmul_weight(
        &mut self,
        weight: WeightHandle,
        a: &[u16],
        m: usize,
        d: MatOut<'_>,
    ) -> Result<(), DeviceError> {
        self.lock()
            .product(d, |device, d| device.matmul_weight(weight, a, m, d))
    }

    fn matmul_batch(
        &mut self,
        spec: &BatchSpec,
        a: &[u16],
        b: &[u16],
        d: MatOut<'_>,
    ) -> Result<(), DeviceError> {
        self.lock()
            .product(d, |device, d| device.matmul_batch(spec, a, b, d))
    }
}
