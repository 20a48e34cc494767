//! The PoCForge golden model: the definition of "the right answer" for every device.
//!
//! Every implementation of PoCForge — the Verilated RTL, an FPGA bitstream, a certified ASIC, the
//! GPU model — must produce exactly the bits this crate produces. The contract itself is written
//! down in `docs/numerics.md`; this crate is its executable form:
//!
//! - [`numerics`]: precisions, number formats, the fused multiply-accumulate and the output
//!   conversions, each with an obviously-correct reference and a fast equivalent;
//! - [`gemm`]: matrix multiplication `D = convert(C + A·B)` under that contract;
//! - [`poc`]: the network's Proof-of-Compute pipeline on top of it (seeds, forward, artifacts,
//!   validation, hash mode).

pub mod gemm;
pub mod numerics;
pub mod poc;
pub mod vectors;
