//! The accelerator's hardware blocks, in Rust-HDL.

pub mod array;
pub mod dma;
pub mod mac;
pub mod outconv;
pub mod pe;
pub mod queue;
pub mod regfile;
#[cfg(test)]
pub(crate) mod testbench;
