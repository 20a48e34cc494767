//! The accelerator's hardware blocks, in Rust-HDL.

pub mod array;
pub mod dma;
pub mod mac;
pub mod outconv;
pub mod pe;
#[cfg(test)]
pub(crate) mod testbench;
