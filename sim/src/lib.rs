//! Cycle-accurate simulation of the PoCForge accelerator.
//!
//! The accelerator's Verilog (written by the `hdl` crate) is turned into a shared library by
//! Verilator and driven from Rust, cycle by cycle:
//!
//! - [`verilate`]: Verilog → shared library (Verilator `--cc --build` plus our C++ [`shim`]),
//!   cached by content so that a second run starts in milliseconds;
//! - [`model`]: a safe [`Model`] over the library: typed port handles, set/get, clocking, VCD;
//! - [`memory`]: the AXI4 memory the accelerator's DMA master talks to, with latency, bandwidth
//!   and outstanding-burst limits, byte strobes, bounds checks and statistics;
//! - [`csr`]: the host side of the accelerator's register port;
//! - [`bench`]: a model and its memory clocked together;
//! - [`device`]: [`SimDevice`], all of the above as a `driver::Transport`;
//! - [`icarus`]: running a test bench under Icarus Verilog, the speed baseline;
//! - [`accel`]: the PoCForge accelerator for a configuration: emitted, built, wired as a device;
//! - [`fault`] (with [`hier`]): fault injection into named internal state;
//! - [`run`], [`report`]: the `sim` command's work (conformance suites, PoC batches, GEMM
//!   benchmarks) and its reports.
//!
//! See `docs/sim.md` for the conventions.

pub mod accel;
pub mod bench;
pub mod csr;
pub mod device;
pub mod error;
pub mod fault;
mod ffi;
pub mod hier;
pub mod icarus;
pub mod memory;
pub mod model;
pub mod ports;
pub mod report;
pub mod run;
pub mod shim;
pub mod toolchain;
pub mod verilate;

pub use bench::Bench;
pub use csr::{CsrAddressing, CsrPort};
pub use device::{SimDevice, SimDeviceConfig};
pub use error::SimError;
pub use memory::{AxiMemory, AxiPorts, Bandwidth, MemoryConfig, MemoryStats};
pub use model::{
    InputPort, Model, ModelOptions, OutputPort, PortHandle, PortInfo, VerilatedLibrary,
};
pub use toolchain::Verilator;
pub use verilate::{BuildOptions, BuildReport};
