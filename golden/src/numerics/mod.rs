//! The numeric contract: precisions, number formats, MAC semantics and output conversions.
//!
//! The contract in one paragraph (the full text is `docs/numerics.md`): integer GEMMs multiply
//! two's-complement `i8` operands and accumulate into `i32` with wrapping; floating GEMMs decode
//! their operands exactly, form the product exactly, and round `acc + a·b` once to `f32` with
//! round-to-nearest-even, keeping subnormals and IEEE infinities. Each output element accumulates
//! over `k` ascending from 0, starting from `+0` or from a prior accumulator. Any NaN that leaves
//! the array is the one canonical quiet NaN of its format.

pub mod float;
pub mod mac;
mod precision;
pub mod requant;

pub use float::FloatFormat;
pub use precision::{Accumulator, OutputFormat, ParseError, Precision};
pub use requant::Requant;
