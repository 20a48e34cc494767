//! The accelerator API: what the rest of PoCForge calls to run GEMMs on a PoCForge accelerator,
//! over any [`Transport`] (the simulator today, VFIO/PCIe and serial links next), unchanged.
//!
//! ```no_run
//! # fn demo(transport: impl driver::Transport) -> Result<(), driver::DriverError> {
//! use driver::accel::Accelerator;
//! use hdl::regmap::{GemmDescriptor, PrecisionCode};
//!
//! let mut accel = Accelerator::open(transport)?;      // reset, identify, check, enable irqs
//! println!("{}", accel.capabilities());
//! let a = accel.upload(&[0u8; 2 * 8 * 8], 16)?;       // DMA buffers (device memory)
//! let b = accel.upload(&[0u8; 2 * 8 * 8], 16)?;
//! let d = accel.alloc(4 * 8 * 8, 16)?;
//! let gemm = GemmDescriptor::dense(PrecisionCode::Bf16, 8, 8, 8,
//!     a.iova().get(), b.iova().get(), d.iova().get());
//! accel.run(&[gemm])?;                                // queued, waited for, errors mapped
//! let mut out = vec![0u8; 4 * 8 * 8];
//! accel.read(&d, 0, &mut out)?;
//! println!("{:?}", accel.perf()?);                     // busy cycles, MACs, stalls
//! # Ok(()) }
//! ```
//!
//! - [`Accelerator::open`] resets the device, reads `ID`, `VERSION` and the `CAP_*` registers,
//!   refuses devices this driver cannot drive, clears interrupt status and performance counters
//!   and enables the DONE and ERROR interrupts.
//! - [`Accelerator::run`] checks each descriptor in software ([`check::check_descriptor`]), then
//!   keeps up to `CAP_BUF.QUEUE_DEPTH` of them in the device's command queue, waits for the
//!   interrupt after each retirement, and maps a failed descriptor's `STATUS.LAST_ERROR` to
//!   [`DriverError::Command`] with what to do about it. Only descriptor registers whose value
//!   changed are written (the device keeps them between doorbells).
//! - [`gemm`] runs contract GEMMs ([`golden::gemm::GemmSpec`] with operand bytes) by laying
//!   them out in device memory; [`matmul`] is the PoC pipeline's matrix device
//!   (`golden::poc::MatmulDevice`) on the accelerator.
//!
//! Every constant comes from `hdl::regmap`, the single source of truth of the register map.

pub mod caps;
pub mod check;
pub mod error;
pub mod gemm;
pub mod matmul;

use std::time::{Duration, Instant};

use hdl::regmap::{self, fields, ErrorCode, GemmDescriptor, Reset};

pub use caps::Capabilities;
pub use error::DriverError;

use crate::transport::{DmaBuffer, Transport, WaitBudget};

/// How long to wait for a descriptor before giving up.
///
/// The cycle budget of a descriptor is `min_cycles + slack × tiles × (K·(R + C + 64) + 16·R·C +
/// 1000)`: far above what any correct implementation needs (the sequential controller of today
/// needs about `tiles × K·(R + C + 30)`), so a timeout means a hung device, not a slow one.
/// Hardware backends turn cycles into time with their clock; `wall` bounds every wait in real
/// time as well.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitPolicy {
    /// Cycles every wait may take at least.
    pub min_cycles: u64,
    /// Multiplier on the work estimate.
    pub slack: u64,
    /// Wall-clock limit of one wait.
    pub wall: Option<Duration>,
}

impl Default for WaitPolicy {
    fn default() -> Self {
        Self {
            min_cycles: 200_000,
            slack: 16,
            wall: Some(Duration::from_secs(600)),
        }
    }
}

/// The device's performance counters (`PERF_*`), since the last clear.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PerfCounters {
    /// Cycles with a descriptor in flight.
    pub busy: u64,
    /// Useful MACs (M·N·K summed over descriptors).
    pub macs: u64,
    /// Busy cycles waiting for operand reads.
    pub stall_read: u64,
    /// Busy cycles waiting for drain or writes.
    pub stall_write: u64,
    /// Busy cycles idle for other reasons.
    pub stall_other: u64,
}

impl PerfCounters {
    /// Useful MACs per busy cycle over the array's peak (`pes` MACs per cycle), in `[0, 1]`.
    pub fn utilization(&self, pes: u64) -> f64 {
        if self.busy == 0 || pes == 0 {
            0.0
        } else {
            self.macs as f64 / (self.busy as f64 * pes as f64)
        }
    }

    /// The counters accumulated since `earlier` (the busy counter is 32 bits and wraps).
    pub fn since(&self, earlier: &PerfCounters) -> PerfCounters {
        PerfCounters {
            busy: self.busy.wrapping_sub(earlier.busy) & 0xffff_ffff,
            macs: self.macs.wrapping_sub(earlier.macs),
            stall_read: self.stall_read.wrapping_sub(earlier.stall_read) & 0xffff_ffff,
            stall_write: self.stall_write.wrapping_sub(earlier.stall_write) & 0xffff_ffff,
            stall_other: self.stall_other.wrapping_sub(earlier.stall_other) & 0xffff_ffff,
        }
    }
}

/// What one [`Accelerator::run`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunOutcome {
    /// Descriptors retired.
    pub descriptors: usize,
    /// Interrupt waits.
    pub waits: u64,
    /// Device cycles spent in interrupt waits, where the transport counts them.
    pub wait_cycles: Option<u64>,
    /// Wall-clock time of the run.
    pub elapsed: Duration,
    /// Descriptor register writes skipped because the device already held the value.
    pub writes_skipped: u64,
}

/// Interrupts the driver enables.
const IRQS: u32 = fields::IRQ_ENABLE::DONE.encode(1) | fields::IRQ_ENABLE::ERROR.encode(1);

/// Empty wake-ups (interrupt without a retirement) tolerated in a row before giving up.
const MAX_EMPTY_WAKEUPS: u32 = 4;

/// One opened accelerator.
#[derive(Debug)]
pub struct Accelerator<T: Transport> {
    transport: T,
    caps: Capabilities,
    /// The value each `DESC_*` register holds on the device, when known.
    shadow: [Option<u32>; regmap::DESCRIPTOR.len()],
    /// `COMPLETED` and `ERRORS` as last read.
    completed: u32,
    errors: u32,
    wait: WaitPolicy,
}

impl<T: Transport> Accelerator<T> {
    /// Resets the device, identifies it and prepares it for work (see the module docs).
    pub fn open(transport: T) -> Result<Self, DriverError> {
        let mut accel = Accelerator {
            transport,
            caps: Capabilities {
                version_major: 0,
                version_minor: 0,
                contract: 0,
                rows: 0,
                cols: 0,
                precisions: Vec::new(),
                data_bytes: 0,
                addr_bits: 0,
                max_burst: 0,
                kdepth: 0,
                queue_depth: 0,
            },
            shadow: [None; regmap::DESCRIPTOR.len()],
            completed: 0,
            errors: 0,
            wait: WaitPolicy::default(),
        };
        accel.reset()?;
        Ok(accel)
    }

    /// Resets the device and sets it up again (after a failure, or to start clean).
    pub fn reset(&mut self) -> Result<(), DriverError> {
        self.transport.reset()?;
        let t = &mut self.transport;
        let id = t.read32(regmap::ID.into())?;
        let version = t.read32(regmap::VERSION.into())?;
        let mut cap = [0u32; 4];
        for (value, offset) in cap.iter_mut().zip([
            regmap::CAP_ARRAY,
            regmap::CAP_PREC,
            regmap::CAP_MEM,
            regmap::CAP_BUF,
        ]) {
            *value = t.read32(offset.into())?;
        }
        self.caps = Capabilities::decode(id, version, cap[0], cap[1], cap[2], cap[3])?;
        t.write32(regmap::IRQ_STATUS.into(), u32::MAX)?;
        t.write32(regmap::PERF_CTRL.into(), fields::PERF_CTRL::CLEAR.encode(1))?;
        t.write32(regmap::IRQ_ENABLE.into(), IRQS)?;
        (self.completed, self.errors) = self.counters()?;
        // After a reset the descriptor registers hold their documented reset values.
        for (slot, offset) in self.shadow.iter_mut().zip(regmap::DESCRIPTOR) {
            *slot = regmap::REGISTERS
                .iter()
                .find(|r| r.offset == offset)
                .and_then(|r| match r.reset {
                    Reset::Value(v) => Some(v),
                    Reset::Config => None,
                });
        }
        Ok(())
    }

    /// What the device offers.
    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// The transport, e.g. to read simulator statistics.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The transport, mutably. Register writes behind the driver's back make its shadow of the
    /// descriptor registers stale: call [`Accelerator::reset`] afterwards.
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Gives the transport back.
    pub fn into_transport(self) -> T {
        self.transport
    }

    /// How long waits may take.
    pub fn wait_policy(&self) -> WaitPolicy {
        self.wait
    }

    /// Changes how long waits may take.
    pub fn set_wait_policy(&mut self, policy: WaitPolicy) {
        self.wait = policy;
    }

    /// Allocates `len` bytes of device memory aligned to `align`.
    pub fn alloc(&mut self, len: u64, align: u64) -> Result<DmaBuffer, DriverError> {
        Ok(self.transport.alloc_dma(len, align)?)
    }

    /// Allocates device memory holding `data`.
    pub fn upload(&mut self, data: &[u8], align: u64) -> Result<DmaBuffer, DriverError> {
        let buffer = self
            .transport
            .alloc_dma((data.len() as u64).max(1), align)?;
        if let Err(e) = self.transport.write_dma(&buffer, 0, data) {
            let _ = self.transport.free_dma(buffer);
            return Err(e.into());
        }
        Ok(buffer)
    }

    /// Writes host bytes into device memory.
    pub fn write(
        &mut self,
        buffer: &DmaBuffer,
        offset: u64,
        data: &[u8],
    ) -> Result<(), DriverError> {
        Ok(self.transport.write_dma(buffer, offset, data)?)
    }

    /// Reads device memory into host bytes.
    pub fn read(
        &mut self,
        buffer: &DmaBuffer,
        offset: u64,
        out: &mut [u8],
    ) -> Result<(), DriverError> {
        Ok(self.transport.read_dma(buffer, offset, out)?)
    }

    /// Frees device memory. The device must be done with it.
    pub fn free(&mut self, buffer: DmaBuffer) -> Result<(), DriverError> {
        Ok(self.transport.free_dma(buffer)?)
    }

    /// Runs descriptors in order, several in flight, after checking each in software.
    /// Returns when all have retired; the first failure is returned after the descriptors
    /// already queued behind it have retired too (so no buffer is still in use).
    pub fn run(&mut self, descriptors: &[GemmDescriptor]) -> Result<RunOutcome, DriverError> {
        for (index, d) in descriptors.iter().enumerate() {
            check::check_descriptor(&self.caps, d)
                .map_err(|reason| DriverError::InvalidDescriptor { index, reason })?;
        }
        self.run_unchecked(descriptors)
    }

    /// [`Accelerator::run`] without the software check: the device validates alone (for
    /// testing the hardware's checks).
    pub fn run_unchecked(
        &mut self,
        descriptors: &[GemmDescriptor],
    ) -> Result<RunOutcome, DriverError> {
        let started = Instant::now();
        let depth = self.caps.queue_depth as usize;
        let n = descriptors.len();
        let mut outcome = RunOutcome::default();
        let mut submitted = 0usize;
        let mut retired = 0usize;
        let mut failure: Option<(usize, usize, ErrorCode)> = None;
        let mut wait_cycles: Option<u64> = Some(0);
        let mut empty_wakeups = 0u32;
        while retired < n {
            while failure.is_none() && submitted < n && submitted - retired < depth {
                outcome.writes_skipped += self.submit(&descriptors[submitted])?;
                submitted += 1;
            }
            if submitted == retired {
                break; // a failure stopped submission and everything queued has retired
            }
            let event = self
                .transport
                .wait_irq(self.budget_for(&descriptors[retired]))?;
            outcome.waits += 1;
            wait_cycles = match (wait_cycles, event.cycles) {
                (Some(total), Some(c)) => Some(total + c),
                _ => None,
            };
            // Clear the causes first, then read the counters: a retirement after the clear
            // raises the interrupt again, so none is lost.
            let status = self.transport.read32(regmap::IRQ_STATUS.into())?;
            if status != 0 {
                self.transport.write32(regmap::IRQ_STATUS.into(), status)?;
            }
            let (completed, errors) = self.counters()?;
            let done = completed.wrapping_sub(self.completed) as usize;
            let failed = errors.wrapping_sub(self.errors) as usize;
            if done > submitted - retired || failed > done {
                return Err(DriverError::Protocol {
                    detail: format!(
                        "COMPLETED advanced by {done} and ERRORS by {failed} with {} \
                         descriptors in flight",
                        submitted - retired
                    ),
                });
            }
            if done == 0 {
                empty_wakeups += 1;
                if empty_wakeups > MAX_EMPTY_WAKEUPS {
                    return Err(DriverError::Protocol {
                        detail: format!(
                            "the interrupt stays raised (IRQ_STATUS {status:#x}) but no \
                             descriptor retires"
                        ),
                    });
                }
                continue;
            }
            empty_wakeups = 0;
            if failed > 0 && failure.is_none() {
                let status = self.transport.read32(regmap::STATUS.into())?;
                let raw = fields::STATUS::LAST_ERROR.get(status);
                let code = ErrorCode::from_code(raw).ok_or_else(|| DriverError::Protocol {
                    detail: format!("STATUS.LAST_ERROR holds the unknown code {raw}"),
                })?;
                failure = Some((retired, retired + done - 1, code));
            }
            self.completed = completed;
            self.errors = errors;
            retired += done;
        }
        outcome.descriptors = retired;
        outcome.wait_cycles = wait_cycles;
        outcome.elapsed = started.elapsed();
        match failure {
            Some((first, last, code)) => Err(DriverError::Command { code, first, last }),
            None => Ok(outcome),
        }
    }

    /// A consistent snapshot of `COMPLETED` and `ERRORS`. A failure increments both at the same
    /// edge, but they are two reads: read COMPLETED, ERRORS, COMPLETED again, and retry until
    /// nothing retired in between.
    fn counters(&mut self) -> Result<(u32, u32), DriverError> {
        for _ in 0..16 {
            let before = self.transport.read32(regmap::COMPLETED.into())?;
            let errors = self.transport.read32(regmap::ERRORS.into())?;
            let after = self.transport.read32(regmap::COMPLETED.into())?;
            if before == after {
                return Ok((after, errors));
            }
        }
        Err(DriverError::Protocol {
            detail: "COMPLETED keeps changing between two reads three cycles apart".into(),
        })
    }

    /// Writes the descriptor registers that differ from what the device holds, then rings the
    /// doorbell. Returns the writes skipped.
    fn submit(&mut self, d: &GemmDescriptor) -> Result<u64, DriverError> {
        let mut skipped = 0;
        for (slot, (offset, value)) in self.shadow.iter_mut().zip(d.registers()) {
            if *slot == Some(value) {
                skipped += 1;
                continue;
            }
            // Forget the value first: if the write fails we no longer know what the device holds.
            *slot = None;
            self.transport.write32(offset.into(), value)?;
            *slot = Some(value);
        }
        self.transport.write32(regmap::DOORBELL.into(), 1)?;
        Ok(skipped)
    }

    /// The wait budget for the descriptor at the head of the queue (see [`WaitPolicy`]).
    fn budget_for(&self, d: &GemmDescriptor) -> WaitBudget {
        let (r, c) = (u64::from(self.caps.rows), u64::from(self.caps.cols));
        let tiles = u64::from(d.m).div_ceil(r) * u64::from(d.n).div_ceil(c);
        let per_tile = u64::from(d.k)
            .saturating_mul(r + c + 64)
            .saturating_add(16 * r * c + 1000);
        let cycles = self.wait.min_cycles.saturating_add(
            self.wait
                .slack
                .saturating_mul(tiles)
                .saturating_mul(per_tile),
        );
        let budget = WaitBudget::cycles(cycles);
        match self.wait.wall {
            Some(wall) => budget.with_wall(wall),
            None => budget,
        }
    }

    /// Reads the performance counters.
    pub fn perf(&mut self) -> Result<PerfCounters, DriverError> {
        let t = &mut self.transport;
        // The two halves are separate reads: if the high half moved in between, the low half
        // wrapped, and is read again.
        let hi = t.read32(regmap::PERF_MACS_HI.into())?;
        let mut lo = t.read32(regmap::PERF_MACS_LO.into())?;
        let hi2 = t.read32(regmap::PERF_MACS_HI.into())?;
        if hi2 != hi {
            lo = t.read32(regmap::PERF_MACS_LO.into())?;
        }
        Ok(PerfCounters {
            busy: t.read32(regmap::PERF_BUSY.into())?.into(),
            macs: (u64::from(hi2) << 32) | u64::from(lo),
            stall_read: t.read32(regmap::PERF_STALL_READ.into())?.into(),
            stall_write: t.read32(regmap::PERF_STALL_WRITE.into())?.into(),
            stall_other: t.read32(regmap::PERF_STALL_OTHER.into())?.into(),
        })
    }

    /// Zeroes the performance counters.
    pub fn clear_perf(&mut self) -> Result<(), DriverError> {
        Ok(self
            .transport
            .write32(regmap::PERF_CTRL.into(), fields::PERF_CTRL::CLEAR.encode(1))?)
    }

    /// Descriptors retired with an error since [`Accelerator::open`] / the last reset, as the
    /// device counts them (wrapping).
    pub fn errors_seen(&self) -> u32 {
        self.errors
    }
}
