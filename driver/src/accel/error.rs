//! What can go wrong driving an accelerator, with what to do about it.

use hdl::regmap::ErrorCode;
use thiserror::Error;

use crate::transport::TransportError;

/// Every failure of the accelerator API. Each message says what happened and what would be
/// right.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DriverError {
    /// The transport failed (timeout, device fault, memory, I/O).
    #[error(transparent)]
    Transport(#[from] TransportError),

    /// The ID register does not identify a PoCForge accelerator.
    #[error(
        "the device's ID register reads {found:#010x}, not {expected:#010x} (`PCFG`): this is not \
         a PoCForge accelerator, or its register window is mapped at the wrong place"
    )]
    NotAnAccelerator {
        /// What ID read.
        found: u32,
        /// What a PoCForge accelerator reads.
        expected: u32,
    },

    /// The device speaks a register map or numeric contract this driver does not.
    #[error(
        "the device implements register map {major}.{minor} and numeric contract {contract}, but \
         this driver speaks register map {expected_major}.x and contract {expected_contract}: \
         update the driver or the bitstream so that they match"
    )]
    IncompatibleVersion {
        /// The device's register-map major version.
        major: u32,
        /// The device's register-map minor version.
        minor: u32,
        /// The device's numeric contract version.
        contract: u32,
        /// The major version this driver knows.
        expected_major: u32,
        /// The contract version this driver knows.
        expected_contract: u32,
    },

    /// The capability registers describe a device the driver cannot use.
    #[error("the device reports impossible capabilities: {reason}; check the bitstream")]
    BadCapabilities {
        /// What was wrong.
        reason: String,
    },

    /// A descriptor was refused before it reached the device.
    #[error("descriptor {index} is invalid: {reason}")]
    InvalidDescriptor {
        /// Its position in the submitted list.
        index: usize,
        /// What was wrong and what would be right.
        reason: String,
    },

    /// The device retired a descriptor with an error.
    #[error(
        "the device rejected or failed {which}: {code:?} ({description}); {hint}",
        description = code.description(),
        hint = hint(*code),
        which = describe_which(*first, *last)
    )]
    Command {
        /// The error code from STATUS.LAST_ERROR.
        code: ErrorCode,
        /// First descriptor (position in the submitted list) that may have failed.
        first: usize,
        /// Last descriptor that may have failed (equal to `first` when known exactly).
        last: usize,
    },

    /// The device's counters moved in a way no correct device does.
    #[error("the device misbehaved: {detail}; reset it before using it again")]
    Protocol {
        /// What was observed.
        detail: String,
    },

    /// A request the API cannot express for this device (a size beyond its registers, …).
    #[error("{0}")]
    Unsupported(String),
}

fn describe_which(first: usize, last: usize) -> String {
    if first == last {
        format!("descriptor {first}")
    } else {
        format!("one of descriptors {first}..={last} (several retired together)")
    }
}

/// What a user can do about a hardware error code.
pub fn hint(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::None => "no action needed",
        ErrorCode::ZeroDimension => "give M, N and K of at least 1",
        ErrorCode::UnsupportedPrecision => {
            "use a precision listed in the device's capabilities (Accelerator::capabilities)"
        }
        ErrorCode::UnsupportedOutput => {
            "choose raw/bf16/fp16 output for floating precisions and raw/i8 for int8"
        }
        ErrorCode::AddressOverflow => {
            "place the operands lower in the device address space or shorten the strides"
        }
        ErrorCode::StrideTooSmall => "make every row stride at least one row of its matrix",
        ErrorCode::ShiftRange => "use a requantisation shift of at most 62",
        ErrorCode::ReadResponse | ErrorCode::WriteResponse => {
            "the memory refused the access: check that A, B, C and D lie inside DMA buffers the \
             device may reach (IOMMU mapping, memory window)"
        }
        ErrorCode::QueueFull => {
            "the driver rang the doorbell with the queue full: a driver bug or another agent \
             writing the same device; reset the device"
        }
        ErrorCode::Misaligned => {
            "align addresses and strides to the element size (2 bytes for bf16/fp16, 4 for C \
             and f32/i32 outputs)"
        }
    }
}
