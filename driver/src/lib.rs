//! The PoCForge userspace driver.
//!
//! The driver moves tensors to and from accelerators and runs commands on them. It is layered:
//!
//! - [`transport`]: the narrow waist every device backend implements — 32-bit register access,
//!   DMA-able device memory, interrupt waits, reset. Backends: the cycle-accurate simulator
//!   (`sim::SimDevice`), VFIO/PCIe and a serial link (next issues).
//! - [`alloc`]: a first-fit allocator for a device address space, shared by backends that manage
//!   their own IOVA window.
//! - [`accel`]: the accelerator API on top of any [`Transport`]: identify and check the device,
//!   program GEMM descriptors from `hdl::regmap` (the register map's single source of truth),
//!   keep the command queue busy, wait for interrupts, map error codes, read performance
//!   counters; contract GEMMs ([`accel::gemm`]) and the PoC pipeline's matrix device on top.
//!
//! Written once for all backends: real hardware gets everything above the transport unchanged.

pub mod accel;
pub mod alloc;
pub mod transport;

pub use accel::{Accelerator, Capabilities, DriverError, PerfCounters, RunOutcome, WaitPolicy};
pub use alloc::{AddressAllocator, AllocError};
pub use transport::{
    DeviceInfo, DeviceKind, DmaBuffer, Iova, IrqEvent, Transport, TransportError, WaitBudget,
};
