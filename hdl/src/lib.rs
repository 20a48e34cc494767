//! The PoCForge accelerator, described in Rust-HDL.
//!
//! - [`regmap`]: the register map and GEMM descriptor encoding, the single source of truth for
//!   the RTL, `docs/registers.md` and the driver (builds without rust-hdl:
//!   `hdl = { path = "../hdl", default-features = false }`);
//! - `rtl` (feature `rtl`, default): the hardware blocks (processing element, systolic array,
//!   buffers, controller, DMA, register file, top level) and the Verilog emitter.
//!
//! `docs/hardware.md` describes the design; `docs/numerics.md` is the contract the datapath
//! implements bit for bit.

pub mod regmap;

#[cfg(feature = "rtl")]
pub mod rtl;
