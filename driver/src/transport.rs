//! The transport: how the driver reaches one accelerator.
//!
//! Every backend — the cycle-accurate simulator, VFIO/PCIe, a serial link — offers the same four
//! things, and nothing more is needed to run the accelerator:
//!
//! 1. **registers**: 32-bit reads and writes at byte offsets of the device's register space
//!    (`docs/registers.md` fixes the map; offsets are multiples of 4);
//! 2. **DMA memory**: buffers the device can read and write by itself, addressed by the device
//!    through an [`Iova`] (an I/O virtual address — *not* a host pointer and not an offset into
//!    any host object), filled and drained by the host through [`Transport::write_dma`] and
//!    [`Transport::read_dma`];
//! 3. **interrupts**: [`Transport::wait_irq`] blocks until the device raises its interrupt or a
//!    [`WaitBudget`] runs out. For the simulator this is where time passes: the model is clocked
//!    only while the driver waits (and for the few cycles each register access takes);
//! 4. **reset** of the device to its power-on state.
//!
//! # Implementing a backend
//!
//! - Keep the trait object-safe and the backend `Send`: the host daemon holds devices as
//!   `Box<dyn Transport>` and moves them between worker threads (it never shares one between
//!   threads without a lock, hence `&mut self` everywhere and no `Sync`).
//! - Manage the device address window with [`crate::AddressAllocator`] unless the platform
//!   allocates IOVAs for you; hand out [`DmaBuffer`]s with [`DmaBuffer::new`] and check on every
//!   call that a buffer is one of yours ([`TransportError::UnknownBuffer`] otherwise).
//! - Never panic on what a device or a caller does: a register offset out of range, a buffer
//!   access past its end, a device that stops answering are all [`TransportError`]s.
//! - Interrupt semantics are *level-like*: a wait returns at once if the device already asserts
//!   its interrupt (line-based devices, the simulator) or if an interrupt message arrived since the
//!   previous wait returned (MSI/MSI-X: keep the eventfd count). The caller acknowledges the cause
//!   through the device's registers before waiting again.

use std::fmt;
use std::io;
use std::time::Duration;

use thiserror::Error;

use crate::alloc::AllocError;

/// An address in the device's view of memory (an I/O virtual address).
///
/// It is what the device puts on its DMA bus: behind an IOMMU it is translated to physical
/// memory, on the simulator it is an address of the memory model. It deliberately has no
/// conversion to or from host pointers or `usize` offsets, so the two cannot be mixed up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Iova(u64);

impl Iova {
    /// Wraps a raw device address (as read from a device register or an allocator).
    pub const fn new(raw: u64) -> Self {
        Self(raw)
    }

    /// The raw device address, for writing into device registers and descriptors.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The address `bytes` further on, or `None` if that overflows 64 bits.
    pub fn checked_add(self, bytes: u64) -> Option<Self> {
        self.0.checked_add(bytes).map(Self)
    }
}

impl fmt::Display for Iova {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "iova {:#x}", self.0)
    }
}

/// A buffer of DMA-able device memory, as handed out by [`Transport::alloc_dma`].
///
/// It is a handle: the bytes live with the backend (in the simulator's memory model, in pinned
/// host pages mapped through the IOMMU, …) and are reached through [`Transport::write_dma`] and
/// [`Transport::read_dma`]. It is neither `Clone` nor `Copy`, so [`Transport::free_dma`] consumes
/// the only handle and a buffer cannot be freed twice by accident.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DmaBuffer {
    iova: Iova,
    len: u64,
    token: u64,
}

impl DmaBuffer {
    /// Creates a handle; for backends only. `token` is whatever the backend needs to recognise
    /// its own buffers again (an index into its table, a generation count); users ignore it.
    pub const fn new(iova: Iova, len: u64, token: u64) -> Self {
        Self { iova, len, token }
    }

    /// Where the device sees the first byte of the buffer: what goes into descriptors.
    pub const fn iova(&self) -> Iova {
        self.iova
    }

    /// The buffer's length in bytes (at least what was asked for).
    pub const fn len(&self) -> u64 {
        self.len
    }

    /// Whether the buffer has no bytes (never true for buffers from a well-behaved backend).
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The backend's identification of the buffer (see [`DmaBuffer::new`]).
    pub const fn token(&self) -> u64 {
        self.token
    }

    /// Checks that `len` bytes at byte `offset` lie inside the buffer, for backends to call
    /// before touching memory.
    pub fn check_range(&self, offset: u64, len: u64) -> Result<(), TransportError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(TransportError::AddressOutOfRange {
                what: "DMA buffer",
                offset,
                len,
                limit: self.len,
            }),
        }
    }
}

/// What kind of backend a device is reached through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeviceKind {
    /// The cycle-accurate RTL simulation (`sim` crate).
    Simulator,
    /// A PCIe card driven from userspace through VFIO.
    Pcie,
    /// A board reached over a serial link (UART, USB-serial).
    Serial,
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceKind::Simulator => "simulator",
            DeviceKind::Pcie => "PCIe (VFIO)",
            DeviceKind::Serial => "serial",
        })
    }
}

/// A description of a device, for logs, metrics and choosing buffer sizes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// A human-readable name that identifies this device among others of its kind
    /// (`sim:acc-4x4`, `0000:03:00.0`, `/dev/ttyUSB0`).
    pub name: String,
    /// The backend kind.
    pub kind: DeviceKind,
    /// Size of the register space in bytes; valid offsets are `0..register_bytes`, step 4.
    pub register_bytes: u64,
    /// The device address window DMA buffers are allocated from: first address and size.
    pub dma_base: Iova,
    /// Size of the DMA window in bytes.
    pub dma_bytes: u64,
    /// The accelerator clock in Hz when known (hardware), for turning cycle counts into time.
    pub clock_hz: Option<u64>,
}

/// How long [`Transport::wait_irq`] may wait.
///
/// A simulator counts *device cycles* (its notion of time); hardware counts *wall-clock time*.
/// A budget may carry either or both; a wait stops when the first given limit is reached.
/// Backends that cannot measure one kind convert: hardware turns cycles into time with
/// [`DeviceInfo::clock_hz`]; the simulator honours a wall-clock limit as a safety net for slow
/// models. A budget with neither limit is rejected ([`TransportError::NoWaitBudget`]): no wait
/// may hang forever.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct WaitBudget {
    /// Maximum device clock cycles to wait.
    pub cycles: Option<u64>,
    /// Maximum wall-clock time to wait.
    pub wall: Option<Duration>,
}

impl WaitBudget {
    /// A budget of `cycles` device clock cycles.
    pub const fn cycles(cycles: u64) -> Self {
        Self {
            cycles: Some(cycles),
            wall: None,
        }
    }

    /// A budget of wall-clock time.
    pub const fn wall(wall: Duration) -> Self {
        Self {
            cycles: None,
            wall: Some(wall),
        }
    }

    /// This budget with a wall-clock limit added (or replaced).
    pub const fn with_wall(self, wall: Duration) -> Self {
        Self {
            cycles: self.cycles,
            wall: Some(wall),
        }
    }

    /// This budget with a cycle limit added (or replaced).
    pub const fn with_cycles(self, cycles: u64) -> Self {
        Self {
            cycles: Some(cycles),
            wall: self.wall,
        }
    }
}

impl fmt::Display for WaitBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.cycles, self.wall) {
            (Some(c), Some(w)) => write!(f, "{c} cycles or {w:?}, whichever comes first"),
            (Some(c), None) => write!(f, "{c} cycles"),
            (None, Some(w)) => write!(f, "{w:?}"),
            (None, None) => f.write_str("no limit"),
        }
    }
}

/// What a successful [`Transport::wait_irq`] observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IrqEvent {
    /// Device cycles that passed during the wait, where the backend can count them
    /// (the simulator always can; hardware with a cycle-counter register may).
    pub cycles: Option<u64>,
    /// Wall-clock time the wait took.
    pub elapsed: Duration,
}

/// Everything that can go wrong talking to a device. Each message says what happened and what
/// to do about it.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The interrupt did not come within the budget.
    #[error(
        "the device did not raise its interrupt within {budget} (waited {waited_cycles:?} cycles, \
         {elapsed:?}); check that the command was started and its interrupt enabled, or give a \
         larger budget"
    )]
    Timeout {
        /// The budget that ran out.
        budget: WaitBudget,
        /// Cycles waited, where known.
        waited_cycles: Option<u64>,
        /// Wall-clock time waited.
        elapsed: Duration,
    },

    /// A wait was asked for without any limit.
    #[error("wait_irq needs a cycle or wall-clock budget (WaitBudget::cycles / WaitBudget::wall)")]
    NoWaitBudget,

    /// No free block of device memory is large enough.
    #[error(
        "out of device memory: {requested} bytes aligned to {align} requested, but the largest \
         free block is {largest_free} bytes ({free_total} free in all); free buffers or give the \
         device a larger DMA window"
    )]
    OutOfDeviceMemory {
        /// Bytes asked for.
        requested: u64,
        /// Alignment asked for.
        align: u64,
        /// The largest free block (before alignment).
        largest_free: u64,
        /// All free bytes together.
        free_total: u64,
    },

    /// An access reaches outside the register space or outside a DMA buffer.
    #[error(
        "{what} access out of range: {len} bytes at offset {offset:#x}, but the {what} has \
         {limit:#x} bytes"
    )]
    AddressOutOfRange {
        /// What was accessed ("register space", "DMA buffer", …).
        what: &'static str,
        /// The offending byte offset.
        offset: u64,
        /// Length of the access in bytes.
        len: u64,
        /// Size of what was accessed.
        limit: u64,
    },

    /// A register offset that is not a multiple of 4.
    #[error("register offset {offset:#x} is not a multiple of 4; registers are 32-bit words")]
    MisalignedRegister {
        /// The offending offset.
        offset: u64,
    },

    /// An alignment that is not a power of two, or a zero-length allocation.
    #[error("invalid DMA allocation: {reason}")]
    InvalidAllocation {
        /// What was wrong with the request.
        reason: String,
    },

    /// A [`DmaBuffer`] this backend did not hand out, or already freed.
    #[error(
        "{iova} is not a live DMA buffer of this device (freed already, or from another device)"
    )]
    UnknownBuffer {
        /// The buffer's device address.
        iova: Iova,
    },

    /// The device misbehaved: it reported an error, stopped, or (simulator) the model failed.
    #[error("device {device} fault: {detail}; reset the device before using it again")]
    DeviceFault {
        /// [`DeviceInfo::name`] of the device.
        device: String,
        /// What the backend observed.
        detail: String,
    },

    /// An operating-system call failed (VFIO ioctls, serial port I/O, mapping memory).
    #[error("{context}: {source}")]
    Io {
        /// What the backend was doing.
        context: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

impl From<AllocError> for TransportError {
    fn from(error: AllocError) -> Self {
        match error {
            AllocError::OutOfSpace {
                requested,
                align,
                largest_free,
                free_total,
            } => TransportError::OutOfDeviceMemory {
                requested,
                align,
                largest_free,
                free_total,
            },
            AllocError::NotAllocated { address } => TransportError::UnknownBuffer {
                iova: Iova::new(address),
            },
            other @ (AllocError::ZeroSize | AllocError::BadAlignment { .. }) => {
                TransportError::InvalidAllocation {
                    reason: other.to_string(),
                }
            }
        }
    }
}

/// One accelerator as the driver sees it. See the [module documentation](self) for the contract.
///
/// All methods take `&mut self`: a simulator clocks its model on every access, and hardware
/// backends serialise register sequences. Wrap a device in a `Mutex` to share it.
pub trait Transport: Send {
    /// Describes the device. Cheap; call it as often as needed.
    fn info(&self) -> DeviceInfo;

    /// Reads the 32-bit register at byte `offset` of the register space.
    ///
    /// Errors: [`TransportError::MisalignedRegister`], [`TransportError::AddressOutOfRange`],
    /// [`TransportError::DeviceFault`] (the device did not answer).
    fn read32(&mut self, offset: u64) -> Result<u32, TransportError>;

    /// Writes the 32-bit register at byte `offset` of the register space.
    ///
    /// Errors: as for [`Transport::read32`].
    fn write32(&mut self, offset: u64, value: u32) -> Result<(), TransportError>;

    /// Allocates `len` bytes of DMA memory whose device address is a multiple of `align`
    /// (a power of two). The contents are unspecified until written.
    ///
    /// Errors: [`TransportError::OutOfDeviceMemory`], [`TransportError::InvalidAllocation`].
    fn alloc_dma(&mut self, len: u64, align: u64) -> Result<DmaBuffer, TransportError>;

    /// Frees a buffer. The device must no longer be using it.
    ///
    /// Errors: [`TransportError::UnknownBuffer`].
    fn free_dma(&mut self, buffer: DmaBuffer) -> Result<(), TransportError>;

    /// Copies host bytes into the buffer at byte `offset`, so the device sees them at
    /// `buffer.iova() + offset`.
    ///
    /// Errors: [`TransportError::AddressOutOfRange`], [`TransportError::UnknownBuffer`].
    fn write_dma(
        &mut self,
        buffer: &DmaBuffer,
        offset: u64,
        data: &[u8],
    ) -> Result<(), TransportError>;

    /// Copies bytes the device wrote (or the host put there) out of the buffer at byte `offset`.
    ///
    /// Errors: [`TransportError::AddressOutOfRange`], [`TransportError::UnknownBuffer`].
    fn read_dma(
        &mut self,
        buffer: &DmaBuffer,
        offset: u64,
        out: &mut [u8],
    ) -> Result<(), TransportError>;

    /// Waits until the device raises its interrupt (returns at once if it already does) or the
    /// budget runs out. On the simulator the model runs only during this call and register
    /// accesses; the returned [`IrqEvent`] says how many cycles passed.
    ///
    /// Errors: [`TransportError::Timeout`], [`TransportError::NoWaitBudget`],
    /// [`TransportError::DeviceFault`].
    fn wait_irq(&mut self, budget: WaitBudget) -> Result<IrqEvent, TransportError>;

    /// Resets the device to its power-on state. DMA buffers stay allocated and keep their
    /// contents; whatever the device was doing is abandoned.
    fn reset(&mut self) -> Result<(), TransportError>;
}

/// Checks a register access the way every backend must: a multiple of 4, inside the space.
pub fn check_register_offset(offset: u64, register_bytes: u64) -> Result<(), TransportError> {
    if !offset.is_multiple_of(4) {
        return Err(TransportError::MisalignedRegister { offset });
    }
    let inside = matches!(offset.checked_add(4), Some(end) if end <= register_bytes);
    if !inside {
        return Err(TransportError::AddressOutOfRange {
            what: "register space",
            offset,
            len: 4,
            limit: register_bytes,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trait_is_object_safe_and_send() {
        fn assert_send<T: Send + ?Sized>() {}
        assert_send::<Box<dyn Transport>>();
    }

    #[test]
    fn buffer_ranges_are_checked_without_overflow() {
        let buffer = DmaBuffer::new(Iova::new(0x1000), 64, 7);
        assert!(buffer.check_range(0, 64).is_ok());
        assert!(buffer.check_range(60, 4).is_ok());
        assert!(buffer.check_range(64, 0).is_ok());
        assert!(matches!(
            buffer.check_range(61, 4),
            Err(TransportError::AddressOutOfRange {
                offset: 61,
                len: 4,
                limit: 64,
                ..
            })
        ));
        assert!(buffer.check_range(u64::MAX, 2).is_err());
    }

    #[test]
    fn register_offsets_must_be_aligned_and_inside() {
        assert!(check_register_offset(0, 256).is_ok());
        assert!(check_register_offset(252, 256).is_ok());
        assert!(matches!(
            check_register_offset(2, 256),
            Err(TransportError::MisalignedRegister { offset: 2 })
        ));
        assert!(matches!(
            check_register_offset(256, 256),
            Err(TransportError::AddressOutOfRange { .. })
        ));
        assert!(check_register_offset(u64::MAX - 3, u64::MAX).is_err());
    }

    #[test]
    fn iova_arithmetic_does_not_wrap() {
        assert_eq!(Iova::new(0x10).checked_add(0x20), Some(Iova::new(0x30)));
        assert_eq!(Iova::new(u64::MAX).checked_add(1), None);
        assert_eq!(Iova::new(0x1000).to_string(), "iova 0x1000");
    }

    #[test]
    fn allocator_errors_become_transport_errors() {
        let error: TransportError = AllocError::OutOfSpace {
            requested: 10,
            align: 4,
            largest_free: 8,
            free_total: 8,
        }
        .into();
        assert!(matches!(
            error,
            TransportError::OutOfDeviceMemory { requested: 10, .. }
        ));
        let error: TransportError = AllocError::BadAlignment { align: 3 }.into();
        assert!(error.to_string().contains("power of two"), "{error}");
    }
}
