//! The PoCForge userspace driver.
//!
//! The driver moves tensors to and from accelerators and runs commands on them. It is layered:
//!
//! - [`transport`]: the narrow waist every device backend implements — 32-bit register access,
//!   DMA-able device memory, interrupt waits, reset. Backends: the cycle-accurate simulator
//!   (`sim::SimDevice`), VFIO/PCIe and a serial link (next issues).
//! - [`alloc`]: a first-fit allocator for a device address space, shared by backends that manage
//!   their own IOVA window.
//!
//! The accelerator API (descriptors, tensor moves, commands) sits on top of [`Transport`] and is
//! written once for all backends.

pub mod alloc;
pub mod transport;

pub use alloc::{AddressAllocator, AllocError};
pub use transport::{
    DeviceInfo, DeviceKind, DmaBuffer, Iova, IrqEvent, Transport, TransportError, WaitBudget,
};
