//! The fast CPU GEMM: SIMD micro-kernels, cache blocking and threads, equal to
//! [`reference::gemm`](super::reference::gemm) **bit for bit** for every precision, output
//! format and accumulate mode.
//!
//! # Two entry points
//!
//! - [`gemm`] / [`gemm_with`]: the same signature and buffers as the reference (dense,
//!   row-major, little-endian bytes described by a [`GemmSpec`]). Convenient and checked; it
//!   copies operands into typed form and packs `B` on every call.
//! - [`gemm_packed`]: the hot path for resident weights. Pack `B` once with [`PackedB::new`],
//!   then multiply any number of `A` matrices by it: typed slices with row strides
//!   ([`MatRef`]/[`MatMut`]), raw `bf16`/`fp16` bits as `u16`, `i8` for `int8`, an optional
//!   prior accumulator, and the output written in place in the format of your choice. It does
//!   not allocate once each thread's scratch buffers have grown to the largest shape seen.
//!
//! ```
//! use golden::gemm::fast::{gemm_packed, MatMut, MatRef, Operand, Options, Output, PackedB, Prior};
//! # fn main() -> Result<(), golden::gemm::GemmError> {
//! // W: 3×2 bf16 weights (resident), X: 2×3 bf16 activations.
//! let bf16 = |x: f32| (x.to_bits() >> 16) as u16; // exact for these small integers
//! let w: Vec<u16> = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0].map(bf16).to_vec();
//! let x: Vec<u16> = [1.0, 0.0, -1.0, 2.0, 2.0, 2.0].map(bf16).to_vec();
//! let packed = PackedB::new(Operand::Bf16(MatRef::dense(&w, 3, 2)?))?;
//! let mut y = vec![0f32; 4];
//! gemm_packed(
//!     Operand::Bf16(MatRef::dense(&x, 2, 3)?),
//!     &packed,
//!     Prior::Zero,
//!     Output::F32(MatMut::dense(&mut y, 2, 2)?),
//!     Options::default(),
//! )?;
//! assert_eq!(y, [-4.0, -4.0, 18.0, 24.0]);
//! # Ok(()) }
//! ```
//!
//! # Why it is bit-exact
//!
//! Every output element is accumulated over `k` ascending, one rounding per step, exactly as
//! the contract orders it (docs/numerics.md §5): blocking `K` stores the `f32` accumulator
//! between blocks, which is exact; tiles and threads change which core computes an element,
//! never the order. A floating step is one IEEE `f32` fused multiply-add on the exactly
//! widened operands (§2, §8); NaNs are canonicalised and narrow outputs rounded only at the
//! end, by code tested against [`write_output`](super::write_output). `int8` uses wrapping
//! `i32` arithmetic, which is associative, so the VNNI and `vpmaddwd` kernels may group
//! products freely. Property tests compare every kernel family this CPU has ([`available`])
//! with the reference on random and adversarial inputs, across thread counts and entry points.
//!
//! # Requirements on the caller's thread state
//!
//! The x86 kernels assume the default floating-point environment (round-to-nearest, no
//! flush-to-zero, no denormals-are-zero), which Rust programs never change. Code that sets
//! `MXCSR` (through foreign libraries) must restore it before calling.

mod buffer;
mod convert;
mod driver;
mod float_kernels;
mod int8_kernels;
mod isa;
mod matrix;
mod pack_a;
mod packed;

#[cfg(test)]
mod tests;

pub use isa::{available, best, Isa, UnknownIsa};
pub use matrix::{MatMut, MatRef, Operand, Output, Prior};
pub use packed::{PackedB, NR};

use super::{GemmError, GemmSpec};
use crate::numerics::{Accumulator, OutputFormat, Precision};
use driver::{Blocking, Job};

/// How to run a fast GEMM: which kernel family and how many threads.
///
/// The result does not depend on either (that is tested); they only change the speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// The kernel family; must be in [`available`] (else [`GemmError::UnsupportedIsa`]).
    pub isa: Isa,
    /// At most this many threads work on one GEMM (1: only the calling thread). Threads come
    /// from rayon's current pool.
    pub threads: usize,
}

impl Default for Options {
    /// The best kernel family of this CPU and every thread of rayon's current pool.
    fn default() -> Self {
        Options {
            isa: best(),
            threads: rayon::current_num_threads(),
        }
    }
}

impl Options {
    /// The default options with `threads` threads.
    pub fn with_threads(threads: usize) -> Self {
        Options {
            threads,
            ..Options::default()
        }
    }

    /// The default options on the calling thread only (no thread pool involved), e.g. for
    /// callers that already run one GEMM per thread.
    pub fn single_threaded() -> Self {
        Options::with_threads(1)
    }

    /// These options with kernel family `isa`.
    pub fn isa(self, isa: Isa) -> Self {
        Options { isa, ..self }
    }

    fn validate(&self) -> Result<(), GemmError> {
        if self.threads == 0 {
            return Err(GemmError::ZeroThreads);
        }
        if !self.isa.is_supported() {
            let names: Vec<&str> = available().iter().map(|isa| isa.name()).collect();
            return Err(GemmError::UnsupportedIsa {
                isa: self.isa,
                available: names.join(", "),
            });
        }
        Ok(())
    }
}

/// `D = convert(C + A·B)` over the reference's byte buffers, with [`Options::default`].
///
/// Same contract, checks and errors as [`reference::gemm`](super::reference::gemm).
pub fn gemm(
    spec: &GemmSpec,
    a: &[u8],
    b: &[u8],
    c: Option<&[u8]>,
    d: &mut [u8],
) -> Result<(), GemmError> {
    gemm_with(spec, a, b, c, d, Options::default())
}

/// [`gemm`] with an explicit kernel family and thread count.
pub fn gemm_with(
    spec: &GemmSpec,
    a: &[u8],
    b: &[u8],
    c: Option<&[u8]>,
    d: &mut [u8],
    options: Options,
) -> Result<(), GemmError> {
    spec.check_buffers(a, b, c, d)?;
    options.validate()?;
    let (m, n, k) = (spec.m, spec.n, spec.k);
    let packed = PackedB::from_le_bytes(spec.precision, k, n, b)?;
    let u16s = |bytes: &[u8]| -> Vec<u16> {
        bytes
            .chunks_exact(2)
            .map(|x| u16::from_le_bytes([x[0], x[1]]))
            .collect()
    };
    let u32s = |bytes: &[u8]| -> Vec<u32> {
        bytes
            .chunks_exact(4)
            .map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]))
            .collect()
    };
    let a_i8: Vec<i8>;
    let a_u16: Vec<u16>;
    let a = match spec.precision {
        Precision::Int8 => {
            a_i8 = a.iter().map(|&x| x as i8).collect();
            Operand::Int8(MatRef::dense(&a_i8, m, k)?)
        }
        Precision::Bf16 => {
            a_u16 = u16s(a);
            Operand::Bf16(MatRef::dense(&a_u16, m, k)?)
        }
        Precision::Fp16 => {
            a_u16 = u16s(a);
            Operand::Fp16(MatRef::dense(&a_u16, m, k)?)
        }
    };
    let c_f32: Vec<f32>;
    let c_i32: Vec<i32>;
    let prior = match (c, spec.precision.accumulator()) {
        (None, _) => Prior::Zero,
        (Some(c), Accumulator::F32) => {
            c_f32 = u32s(c).into_iter().map(f32::from_bits).collect();
            Prior::F32(MatRef::dense(&c_f32, m, n)?)
        }
        (Some(c), Accumulator::I32) => {
            c_i32 = u32s(c).into_iter().map(|x| x as i32).collect();
            Prior::I32(MatRef::dense(&c_i32, m, n)?)
        }
    };
    match spec.output {
        OutputFormat::F32 => {
            let mut out = vec![0f32; m * n];
            gemm_packed(
                a,
                &packed,
                prior,
                Output::F32(MatMut::dense(&mut out, m, n)?),
                options,
            )?;
            for (dst, x) in d.chunks_exact_mut(4).zip(out) {
                dst.copy_from_slice(&x.to_bits().to_le_bytes());
            }
        }
        OutputFormat::Bf16 | OutputFormat::Fp16 => {
            let mut out = vec![0u16; m * n];
            let view = MatMut::dense(&mut out, m, n)?;
            let output = if spec.output == OutputFormat::Bf16 {
                Output::Bf16(view)
            } else {
                Output::Fp16(view)
            };
            gemm_packed(a, &packed, prior, output, options)?;
            for (dst, x) in d.chunks_exact_mut(2).zip(out) {
                dst.copy_from_slice(&x.to_le_bytes());
            }
        }
        OutputFormat::I32 => {
            let mut out = vec![0i32; m * n];
            gemm_packed(
                a,
                &packed,
                prior,
                Output::I32(MatMut::dense(&mut out, m, n)?),
                options,
            )?;
            for (dst, x) in d.chunks_exact_mut(4).zip(out) {
                dst.copy_from_slice(&x.to_le_bytes());
            }
        }
        OutputFormat::I8(requant) => {
            let mut out = vec![0i8; m * n];
            let view = MatMut::dense(&mut out, m, n)?;
            gemm_packed(a, &packed, prior, Output::I8(view, requant), options)?;
            for (dst, x) in d.iter_mut().zip(out) {
                *dst = x as u8;
            }
        }
    }
    Ok(())
}

/// `out = convert(prior + a·b)` with a pre-packed `b`: the allocation-free hot path.
///
/// - `a`: `M×K`, the same precision as `b` (else [`GemmError::PrecisionMismatch`]).
/// - `b`: `K×N`, packed once with [`PackedB::new`].
/// - `prior`: where accumulation starts: [`Prior::Zero`], a `C` matrix (`M×N`, `f32` for
///   floating precisions, `i32` for `int8`), or [`Prior::Output`] for `D += A·B` (only with the
///   raw-accumulator outputs `F32`/`I32`).
/// - `out`: `M×N` in one of the precision's output formats (`F32`, `Bf16`, `Fp16` for floating
///   precisions; `I32`, `I8` for `int8`). Columns outside the view and the gaps between rows
///   of a strided view are never touched.
///
/// Every shape, stride, format and option is checked before any work; an error leaves `out`
/// untouched.
pub fn gemm_packed(
    a: Operand<'_>,
    b: &PackedB,
    prior: Prior<'_>,
    out: Output<'_>,
    options: Options,
) -> Result<(), GemmError> {
    check(&a, b, &prior, &out, &options)?;
    let int8 = a.precision() == Precision::Int8;
    let job = Job {
        a,
        b,
        prior,
        isa: options.isa,
        threads: options.threads,
        blocking: Blocking::default_for(options.isa, int8),
    };
    job.run(out);
    Ok(())
}

/// Every check of [`gemm_packed`], before any work.
fn check(
    a: &Operand<'_>,
    b: &PackedB,
    prior: &Prior<'_>,
    out: &Output<'_>,
    options: &Options,
) -> Result<(), GemmError> {
    options.validate()?;
    let precision = a.precision();
    if precision != b.precision() {
        return Err(GemmError::PrecisionMismatch {
            a: precision,
            b: b.precision(),
        });
    }
    let (m, k) = a.shape();
    let n = b.n();
    let shape_check = |operand, (rows, cols): (usize, usize), expected: (usize, usize)| {
        if (rows, cols) == expected {
            Ok(())
        } else {
            Err(GemmError::ShapeMismatch {
                operand,
                rows,
                cols,
                expected_rows: expected.0,
                expected_cols: expected.1,
            })
        }
    };
    shape_check("A", (m, k), (m, b.k()))?;
    shape_check("D", out.shape(), (m, n))?;
    // The output format, validated exactly as a GemmSpec would be.
    let mut spec = GemmSpec::new(precision, m, n, k);
    spec.output = out.format();
    spec.validate()?;
    let accumulator = precision.accumulator();
    match prior {
        Prior::Zero => Ok(()),
        Prior::F32(c) if accumulator == Accumulator::F32 => {
            shape_check("C", (c.rows(), c.cols()), (m, n))
        }
        Prior::I32(c) if accumulator == Accumulator::I32 => {
            shape_check("C", (c.rows(), c.cols()), (m, n))
        }
        Prior::F32(_) | Prior::I32(_) => Err(GemmError::PriorMismatch(
            "the prior accumulator C has the wrong type: floating GEMMs take Prior::F32, \
             int8 GEMMs take Prior::I32",
        )),
        Prior::Output if matches!(out, Output::F32(_) | Output::I32(_)) => Ok(()),
        Prior::Output => Err(GemmError::PriorMismatch(
            "Prior::Output accumulates into the output, so the output must hold raw \
             accumulators (Output::F32 or Output::I32); pass the prior as Prior::F32 or \
             Prior::I32 to convert to a narrower format",
        )),
    }
}

/// [`gemm_packed`] with explicit cache blocking, so tests can cross many block boundaries with
/// shapes small enough for the exact reference.
#[cfg(test)]
pub(crate) fn gemm_packed_blocked(
    a: Operand<'_>,
    b: &PackedB,
    prior: Prior<'_>,
    out: Output<'_>,
    options: Options,
    blocking: Blocking,
) -> Result<(), GemmError> {
    check(&a, b, &prior, &out, &options)?;
    let job = Job {
        a,
        b,
        prior,
        isa: options.isa,
        threads: options.threads,
        blocking,
    };
    job.run(out);
    Ok(())
}
