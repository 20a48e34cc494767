//! The accelerator's hardware blocks, in Rust-HDL.
