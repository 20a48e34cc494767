//! The accelerator's hardware blocks, in Rust-HDL, and its build configuration.
//!
//! Blocks, bottom up: [`mul`] (four multiply stages), [`fadd`] (the fused adder in eight
//! stages), [`pe`] (processing element interleaving L accumulations),
//! [`array`] (systolic array, operand buffers, skew, init/drain chains), [`outconv`] (output
//! conversion), [`dma`] (AXI4 read and write engines), [`queue`] (command queue), [`regfile`]
//! (generated from [`crate::regmap`]), [`controller`] (validation, tiling, sequencing) and
//! [`top`] (the accelerator with its external ports). [`emit`] writes the Verilog.

pub mod array;
pub mod controller;
pub mod dma;
pub mod emit;
pub mod fadd;
pub mod mul;
pub mod outconv;
pub mod pe;
pub mod queue;
pub mod regfile;
#[cfg(test)]
pub(crate) mod testbench;
pub mod top;

use crate::regmap::{self, fields, PrecisionCode};

/// The build parameters of one accelerator instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HdlConfig {
    /// Array rows R (1..=255).
    pub rows: usize,
    /// Array columns C (1..=255).
    pub cols: usize,
    /// k steps per operand buffer half (the chunk length): a power of two, 16..=1024. A GEMM
    /// with K up to this keeps its A panel on chip across column tiles.
    pub kdepth: usize,
    /// Command queue slots (1..=255).
    pub queue_depth: usize,
    /// Longest AXI read burst in beats (1..=256).
    pub max_burst: u16,
    /// Precisions accepted by this instance.
    pub precisions: Vec<PrecisionCode>,
    /// Accumulations interleaved per PE, L (1, 2, 4 or 8): the fused adder is cut into L
    /// pipeline stages and each PE computes L output rows of a tile round-robin
    /// ([`pe`] explains why this keeps the contract's k order).
    pub interleave: usize,
}

impl Default for HdlConfig {
    fn default() -> Self {
        HdlConfig {
            rows: 4,
            cols: 4,
            kdepth: 256,
            queue_depth: 4,
            max_burst: 16,
            precisions: PrecisionCode::ALL.to_vec(),
            interleave: DEFAULT_INTERLEAVE,
        }
    }
}

/// The interleave factor L built by default: one fused-adder stage per cycle on ECP5-class
/// parts (docs/hardware.md, "Processing element and critical path").
pub const DEFAULT_INTERLEAVE: usize = 8;

/// AXI data width in bytes (fixed in this version).
pub const DATA_BYTES: u32 = 16;
/// AXI address width in bits (fixed in this version).
pub const ADDR_BITS: u32 = 32;

/// A configuration outside what the hardware generator supports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid accelerator configuration: {0}")]
pub struct ConfigError(String);

impl HdlConfig {
    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |s: String| Err(ConfigError(s));
        if !(1..=255).contains(&self.rows) || !(1..=255).contains(&self.cols) {
            return err(format!(
                "array {}×{}: rows and columns must be 1..=255",
                self.rows, self.cols
            ));
        }
        if !self.kdepth.is_power_of_two() || !(16..=1024).contains(&self.kdepth) {
            return err(format!(
                "buffer depth {}: must be a power of two between 16 and 1024",
                self.kdepth
            ));
        }
        if !(1..=255).contains(&self.queue_depth) {
            return err(format!("queue depth {}: must be 1..=255", self.queue_depth));
        }
        if !(1..=256).contains(&self.max_burst) {
            return err(format!(
                "max burst {}: must be 1..=256 beats",
                self.max_burst
            ));
        }
        if pe::stage_mask(self.interleave).is_none() {
            return err(format!(
                "interleave {}: must be one of {:?}",
                self.interleave,
                pe::INTERLEAVES
            ));
        }
        if self.precisions.is_empty() {
            return err("no precision selected: choose at least one of int8, bf16, fp16".into());
        }
        Ok(())
    }

    /// Bit p set for every precision code p built in.
    pub fn precision_mask(&self) -> u32 {
        self.precisions.iter().fold(0, |m, p| m | 1 << *p as u32)
    }

    /// The capability registers [CAP_ARRAY, CAP_PREC, CAP_MEM, CAP_BUF].
    pub fn capabilities(&self) -> [u32; 4] {
        let array = fields::CAP_ARRAY::ROWS.encode(self.rows as u32)
            | fields::CAP_ARRAY::COLS.encode(self.cols as u32);
        let prec = self
            .precisions
            .iter()
            .fold(0, |m, p| m | p.capability().encode(1));
        let mem = fields::CAP_MEM::DATA_BYTES.encode(DATA_BYTES)
            | fields::CAP_MEM::ADDR_BITS.encode(ADDR_BITS)
            | fields::CAP_MEM::MAX_BURST.encode(u32::from(self.max_burst));
        let buf = fields::CAP_BUF::K_DEPTH.encode(self.kdepth as u32)
            | fields::CAP_BUF::QUEUE_DEPTH.encode(self.queue_depth as u32);
        let _ = regmap::CAP_ARRAY; // the four registers above, in table order
        [array, prec, mem, buf]
    }
}
