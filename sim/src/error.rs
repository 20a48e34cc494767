//! The errors of the simulation crate.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

use crate::ports::PortError;

/// Everything that can go wrong building, loading or running a simulation. Messages say what
/// happened and what to do.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SimError {
    /// Verilator (or the C++ compiler it drives) is missing or unusable.
    #[error("{message}")]
    Toolchain {
        /// What is wrong and how to fix it.
        message: String,
    },

    /// The top module's ports could not be read from the Verilog.
    #[error(transparent)]
    Ports(#[from] PortError),

    /// Verilating or compiling the design failed.
    #[error("building the simulation of `{top}` failed: {message}\n(full log: {})", log.display())]
    Build {
        /// The top module.
        top: String,
        /// The end of the build log.
        message: String,
        /// The complete log.
        log: PathBuf,
    },

    /// A file-system or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// A built library could not be loaded or is not one of ours.
    #[error("cannot load the simulation library {}: {message}; delete that folder to rebuild it", path.display())]
    Load {
        /// The shared library.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },

    /// No port of that name.
    #[error("the design has no port `{name}`; its ports are: {available}")]
    PortNotFound {
        /// The name asked for.
        name: String,
        /// All port names.
        available: String,
    },

    /// A port used in the wrong direction.
    #[error("port `{name}` is an {actual} of the design, but was asked for as an {wanted}")]
    PortDirection {
        /// The port.
        name: String,
        /// Its direction in the design.
        actual: crate::ports::Direction,
        /// The direction asked for.
        wanted: crate::ports::Direction,
    },

    /// A port whose width does not fit its use.
    #[error("port `{name}` is {width} bits wide, but {expected}")]
    PortWidth {
        /// The port.
        name: String,
        /// Its width.
        width: u32,
        /// What was needed.
        expected: String,
    },

    /// A setting that cannot work (memory model, device configuration).
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A host access to the memory model outside the memory.
    #[error(
        "memory access of {len} bytes at {address:#x} is outside the memory ({size:#x} bytes at {base:#x})"
    )]
    MemoryRange {
        /// First address accessed.
        address: u64,
        /// Bytes accessed.
        len: u64,
        /// The memory's first address.
        base: u64,
        /// The memory's size.
        size: u64,
    },

    /// A register access the transport rules forbid (misaligned, out of the register space).
    #[error(transparent)]
    Transport(#[from] driver::TransportError),

    /// The model was clocked but has no clock port configured.
    #[error("the model has no clock port (asked for `{name}`); name the clock in ModelOptions")]
    NoClock {
        /// The clock name that was looked for.
        name: String,
    },

    /// A VCD trace could not be opened.
    #[error("tracing failed: {message}")]
    Trace {
        /// What went wrong.
        message: String,
    },

    /// The design executed `$finish`.
    #[error("the design executed $finish at cycle {cycle}")]
    Finished {
        /// The cycle it happened in.
        cycle: u64,
    },

    /// The design executed `$stop`/`$fatal` or failed an assertion.
    #[error("the design stopped with an error ($stop/$fatal/assertion) at cycle {cycle}; see its output above")]
    DesignError {
        /// The cycle it happened in.
        cycle: u64,
    },

    /// Verilator's runtime hit a fatal error; the model is unusable and must be recreated.
    #[error("the Verilated model failed at cycle {cycle}: {message}")]
    Broken {
        /// The cycle it happened in.
        cycle: u64,
        /// Verilator's message.
        message: String,
    },

    /// A fault could not be parsed, resolved or installed.
    #[error("fault injection: {message}")]
    Fault {
        /// What was wrong and what would be right.
        message: String,
    },

    /// Icarus Verilog is missing or the run failed.
    #[error("Icarus Verilog: {message}")]
    Icarus {
        /// What went wrong.
        message: String,
    },
}

impl SimError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        SimError::Io {
            context: context.into(),
            source,
        }
    }
}
