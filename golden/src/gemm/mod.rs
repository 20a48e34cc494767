//! Matrix multiplication under the numeric contract: `D = convert(C + A·B)`.
//!
//! Shapes: `A` is `M×K`, `B` is `K×N`, the optional prior accumulator `C` and the output `D` are
//! `M×N`; all are dense, row-major, little-endian. Operands use the precision's element width
//! (1 byte for `int8`, 2 for `bf16`/`fp16`), `C` uses the accumulator (`i32`/`f32`), and `D` the
//! chosen [`OutputFormat`]. Each output element is accumulated over `k` ascending from 0,
//! starting from `+0` (or from `C` when [`GemmSpec::accumulate`] is set), one contract MAC per
//! step; the result is then converted once.
//!
//! [`reference`] is the triple loop anyone can audit; every faster implementation (the SIMD CPU
//! kernels, the RTL, an FPGA, an ASIC) must equal it bit for bit.

pub mod fast;
pub mod reference;

use crate::numerics::requant::ShiftOutOfRange;
use crate::numerics::{float, Accumulator, OutputFormat, Precision};

/// One GEMM: its precision, shape, accumulate flag and output conversion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GemmSpec {
    /// Operand precision (what the processing elements multiply).
    pub precision: Precision,
    /// Rows of `A` and `D`.
    pub m: usize,
    /// Columns of `B` and `D`.
    pub n: usize,
    /// Columns of `A`, rows of `B`: the accumulation length.
    pub k: usize,
    /// Start each output element from `C` (in the accumulator format) instead of `+0`.
    pub accumulate: bool,
    /// How the accumulator leaves the array.
    pub output: OutputFormat,
}

/// Why a GEMM was rejected. Every variant names what was wrong and what would be right.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GemmError {
    /// A dimension is zero.
    #[error("GEMM dimension {name} is 0: M, N and K must all be at least 1")]
    ZeroDimension {
        /// `"M"`, `"N"` or `"K"`.
        name: &'static str,
    },
    /// The shape's element counts overflow the address space.
    #[error("GEMM shape {m}×{n}×{k} is too large to address on this machine")]
    TooLarge {
        /// Rows.
        m: usize,
        /// Columns.
        n: usize,
        /// Accumulation length.
        k: usize,
    },
    /// The output format does not convert from this precision's accumulator.
    #[error(
        "output format {output} cannot follow {precision} GEMMs: their accumulator is {accumulator:?}, \
         so the output must be one of {choices}"
    )]
    OutputMismatch {
        /// The GEMM precision.
        precision: Precision,
        /// The rejected output format.
        output: OutputFormat,
        /// The precision's accumulator.
        accumulator: Accumulator,
        /// The valid choices, for the message.
        choices: &'static str,
    },
    /// Requantisation parameters out of range.
    #[error(transparent)]
    Requant(#[from] ShiftOutOfRange),
    /// A buffer has the wrong length for the shape.
    #[error("operand {operand} has {actual} bytes but a {shape} GEMM needs exactly {expected}")]
    BufferSize {
        /// `"A"`, `"B"`, `"C"` or `"D"`.
        operand: &'static str,
        /// Bytes required.
        expected: usize,
        /// Bytes given.
        actual: usize,
        /// The shape, for the message.
        shape: String,
    },
    /// `accumulate` is set but no `C` was given, or `C` was given without `accumulate`.
    #[error("{0}")]
    AccumulatorPresence(&'static str),
    /// A typed matrix view has a zero dimension.
    #[error("{what} is {rows}×{cols}: matrices need at least one row and one column")]
    EmptyView {
        /// Which view.
        what: &'static str,
        /// Rows given.
        rows: usize,
        /// Columns given.
        cols: usize,
    },
    /// A typed matrix view's rows would overlap.
    #[error("{what} has row stride {row_stride} but {cols} columns: the stride must be at least the column count")]
    StrideTooSmall {
        /// Which view.
        what: &'static str,
        /// Stride given, in elements.
        row_stride: usize,
        /// Columns given.
        cols: usize,
    },
    /// A typed matrix view reaches past the end of its slice.
    #[error(
        "{what} of {rows}×{cols} with row stride {row_stride} needs at least \
         (rows − 1) × stride + cols elements, but its slice has {len}"
    )]
    ViewTooShort {
        /// Which view.
        what: &'static str,
        /// Rows given.
        rows: usize,
        /// Columns given.
        cols: usize,
        /// Stride given, in elements.
        row_stride: usize,
        /// Elements in the slice.
        len: usize,
    },
    /// A dense view's slice does not hold exactly `rows × cols` elements.
    #[error("a dense {rows}×{cols} matrix needs exactly {} elements, but the slice has {len}", rows * cols)]
    DenseLength {
        /// Rows given.
        rows: usize,
        /// Columns given.
        cols: usize,
        /// Elements in the slice.
        len: usize,
    },
    /// `A` and `B` have different precisions.
    #[error("A is {a} but the packed B is {b}: both operands of a GEMM share one precision")]
    PrecisionMismatch {
        /// Precision of `A`.
        a: Precision,
        /// Precision of `B`.
        b: Precision,
    },
    /// A matrix has the wrong shape for the GEMM.
    #[error("{operand} is {rows}×{cols} but this GEMM needs {expected_rows}×{expected_cols}")]
    ShapeMismatch {
        /// `"A"`, `"C"` or `"D"`.
        operand: &'static str,
        /// Rows given.
        rows: usize,
        /// Columns given.
        cols: usize,
        /// Rows required.
        expected_rows: usize,
        /// Columns required.
        expected_cols: usize,
    },
    /// The prior accumulator does not fit the precision or the output.
    #[error("{0}")]
    PriorMismatch(&'static str),
    /// The requested kernel family cannot run on this CPU.
    #[error("kernel family {isa} is not supported by this CPU; available here: {available}")]
    UnsupportedIsa {
        /// The family asked for.
        isa: fast::Isa,
        /// What this CPU supports, for the message.
        available: String,
    },
    /// A thread count of zero.
    #[error("thread count is 0: use at least 1 thread")]
    ZeroThreads,
}

impl GemmSpec {
    /// A plain GEMM: no prior accumulator, the raw accumulator as output.
    pub fn new(precision: Precision, m: usize, n: usize, k: usize) -> Self {
        GemmSpec {
            precision,
            m,
            n,
            k,
            accumulate: false,
            output: precision.raw_output(),
        }
    }

    /// Checks the shape and the output conversion against the contract.
    pub fn validate(&self) -> Result<(), GemmError> {
        for (name, value) in [("M", self.m), ("N", self.n), ("K", self.k)] {
            if value == 0 {
                return Err(GemmError::ZeroDimension { name });
            }
        }
        let too_large = GemmError::TooLarge {
            m: self.m,
            n: self.n,
            k: self.k,
        };
        let mk = self.m.checked_mul(self.k).and_then(|x| x.checked_mul(2));
        let kn = self.k.checked_mul(self.n).and_then(|x| x.checked_mul(2));
        let mn = self.m.checked_mul(self.n).and_then(|x| x.checked_mul(4));
        if mk.is_none() || kn.is_none() || mn.is_none() {
            return Err(too_large);
        }
        let accumulator = self.precision.accumulator();
        if self.output.accumulator() != accumulator {
            return Err(GemmError::OutputMismatch {
                precision: self.precision,
                output: self.output,
                accumulator,
                choices: match accumulator {
                    Accumulator::F32 => "f32, bf16, fp16",
                    Accumulator::I32 => "i32, i8",
                },
            });
        }
        if let OutputFormat::I8(requant) = self.output {
            requant.validate()?;
        }
        Ok(())
    }

    /// Bytes of `A` (`M×K` operands).
    pub fn a_bytes(&self) -> usize {
        self.m * self.k * self.precision.operand_bytes()
    }

    /// Bytes of `B` (`K×N` operands).
    pub fn b_bytes(&self) -> usize {
        self.k * self.n * self.precision.operand_bytes()
    }

    /// Bytes of `C` (`M×N` accumulators), whether or not this GEMM reads it.
    pub fn c_bytes(&self) -> usize {
        self.m * self.n * self.precision.accumulator().bytes()
    }

    /// Bytes of `D` (`M×N` outputs).
    pub fn d_bytes(&self) -> usize {
        self.m * self.n * self.output.bytes()
    }

    /// Multiply-accumulate steps this GEMM performs (`M·N·K`).
    pub fn macs(&self) -> u64 {
        self.m as u64 * self.n as u64 * self.k as u64
    }

    /// Validates the spec and the four buffers' presence and lengths.
    pub fn check_buffers(
        &self,
        a: &[u8],
        b: &[u8],
        c: Option<&[u8]>,
        d: &[u8],
    ) -> Result<(), GemmError> {
        self.validate()?;
        let shape = || format!("{}×{}×{} {}", self.m, self.n, self.k, self.precision);
        let check = |operand, expected, actual| {
            if expected == actual {
                Ok(())
            } else {
                Err(GemmError::BufferSize {
                    operand,
                    expected,
                    actual,
                    shape: shape(),
                })
            }
        };
        check("A", self.a_bytes(), a.len())?;
        check("B", self.b_bytes(), b.len())?;
        check("D", self.d_bytes(), d.len())?;
        match (self.accumulate, c) {
            (true, Some(c)) => check("C", self.c_bytes(), c.len()),
            (false, None) => Ok(()),
            (true, None) => Err(GemmError::AccumulatorPresence(
                "accumulate is set but no prior accumulator C was given: pass C or clear accumulate",
            )),
            (false, Some(_)) => Err(GemmError::AccumulatorPresence(
                "a prior accumulator C was given but accumulate is not set: set accumulate or drop C",
            )),
        }
    }
}

/// Converts one raw accumulator (`i32` or `f32` bits) to `format` and writes it little-endian
/// into `dst` (exactly `format.bytes()` long). This is the contract's output stage.
pub fn write_output(format: OutputFormat, acc_bits: u32, dst: &mut [u8]) {
    match format {
        OutputFormat::F32 => {
            let value = float::canonicalize_f32(f32::from_bits(acc_bits));
            dst.copy_from_slice(&value.to_bits().to_le_bytes());
        }
        OutputFormat::Bf16 => {
            let value = float::f32_to_bf16_rne(f32::from_bits(acc_bits));
            dst.copy_from_slice(&value.to_le_bytes());
        }
        OutputFormat::Fp16 => {
            let value = float::f32_to_fp16_rne(f32::from_bits(acc_bits));
            dst.copy_from_slice(&value.to_le_bytes());
        }
        OutputFormat::I32 => dst.copy_from_slice(&acc_bits.to_le_bytes()),
        OutputFormat::I8(requant) => dst[0] = requant.apply(acc_bits as i32) as u8,
    }
}

/// Reads operand element `index` of a dense little-endian operand buffer as raw bits.
#[inline]
pub fn read_operand(precision: Precision, buffer: &[u8], index: usize) -> u32 {
    match precision.operand_bytes() {
        1 => u32::from(buffer[index]),
        _ => u32::from(u16::from_le_bytes([
            buffer[2 * index],
            buffer[2 * index + 1],
        ])),
    }
}

/// Reads 32-bit element `index` of a dense little-endian accumulator buffer as raw bits.
#[inline]
pub fn read_u32(buffer: &[u8], index: usize) -> u32 {
    let i = 4 * index;
    u32::from_le_bytes([buffer[i], buffer[i + 1], buffer[i + 2], buffer[i + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numerics::Requant;

    #[test]
    fn zero_dimensions_are_rejected_by_name() {
        let err = GemmSpec::new(Precision::Bf16, 4, 0, 4)
            .validate()
            .unwrap_err();
        assert_eq!(err, GemmError::ZeroDimension { name: "N" });
        assert!(err.to_string().contains("at least 1"));
    }

    #[test]
    fn output_must_match_accumulator() {
        let mut spec = GemmSpec::new(Precision::Int8, 2, 2, 2);
        spec.output = OutputFormat::Bf16;
        let msg = spec.validate().unwrap_err().to_string();
        assert!(msg.contains("i32, i8"), "{msg}");
        spec.output = OutputFormat::I8(Requant {
            multiplier: 1,
            shift: 70,
            zero_point: 0,
        });
        assert!(matches!(spec.validate(), Err(GemmError::Requant(_))));
    }

    #[test]
    fn buffer_lengths_are_checked() {
        let spec = GemmSpec::new(Precision::Bf16, 2, 3, 4);
        let (a, b, d) = (vec![0; 16], vec![0; 24], vec![0; 24]);
        assert!(spec.check_buffers(&a, &b, None, &d).is_ok());
        let err = spec.check_buffers(&a[..15], &b, None, &d).unwrap_err();
        assert!(err.to_string().contains("operand A has 15 bytes"), "{err}");
        assert!(spec.check_buffers(&a, &b, Some(&d), &d).is_err());
    }

    #[test]
    fn huge_shapes_are_rejected_not_overflowed() {
        let spec = GemmSpec::new(Precision::Fp16, usize::MAX / 2, 3, 3);
        assert!(matches!(spec.validate(), Err(GemmError::TooLarge { .. })));
    }
}
