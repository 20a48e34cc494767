//! Precisions (what the array multiplies), accumulators and output formats.

use std::fmt;
use std::str::FromStr;

use super::float::{FloatFormat, BF16, FP16};
use super::requant::Requant;

/// The operand precision of a GEMM: what one processing element multiplies.
///
/// New precisions (FP8 E4M3/E5M2 are next) slot in as new variants with an operand
/// [`FloatFormat`]; the accumulator, output formats, vector files and register encodings are
/// all derived from the methods below, so nothing else changes shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Precision {
    /// `i8 × i8 → i32`, two's complement, wrapping accumulation.
    Int8,
    /// `bf16 × bf16 → f32`, fused multiply-add with one rounding.
    Bf16,
    /// `fp16 × fp16 → f32`, fused multiply-add with one rounding.
    Fp16,
}

/// The accumulator type of a precision: what lives in a processing element between `k` steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Accumulator {
    /// 32-bit two's complement, wrapping.
    I32,
    /// IEEE binary32.
    F32,
}

impl Precision {
    /// Every precision, in a stable order (used by generators and `--help` texts).
    pub const ALL: [Precision; 3] = [Precision::Int8, Precision::Bf16, Precision::Fp16];

    /// The name used on the command line, in suite names (`mac-bf16`) and in vector manifests.
    pub const fn name(self) -> &'static str {
        match self {
            Precision::Int8 => "int8",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
        }
    }

    /// Width of one operand element in bytes as stored in memory and in vector files.
    pub const fn operand_bytes(self) -> usize {
        match self {
            Precision::Int8 => 1,
            Precision::Bf16 | Precision::Fp16 => 2,
        }
    }

    /// The floating-point operand format, or `None` for integer precisions.
    pub const fn operand_format(self) -> Option<FloatFormat> {
        match self {
            Precision::Int8 => None,
            Precision::Bf16 => Some(BF16),
            Precision::Fp16 => Some(FP16),
        }
    }

    /// The accumulator of this precision.
    pub const fn accumulator(self) -> Accumulator {
        match self {
            Precision::Int8 => Accumulator::I32,
            Precision::Bf16 | Precision::Fp16 => Accumulator::F32,
        }
    }

    /// The output format that keeps the accumulator unchanged (`f32` or `i32`).
    pub const fn raw_output(self) -> OutputFormat {
        match self.accumulator() {
            Accumulator::I32 => OutputFormat::I32,
            Accumulator::F32 => OutputFormat::F32,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A string that names no known precision or output format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{given}`: expected one of {expected}")]
pub struct ParseError {
    what: &'static str,
    given: String,
    expected: &'static str,
}

impl FromStr for Precision {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Precision::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| ParseError {
                what: "precision",
                given: s.to_owned(),
                expected: "int8, bf16, fp16",
            })
    }
}

impl Accumulator {
    /// Bytes of one accumulator element.
    pub const fn bytes(self) -> usize {
        4
    }
}

/// How results leave the array: the accumulator as is, or converted to a narrower format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    /// The `f32` accumulator, NaN canonicalised.
    F32,
    /// `f32` rounded to bfloat16 (round-to-nearest-even).
    Bf16,
    /// `f32` rounded to IEEE binary16 (round-to-nearest-even).
    Fp16,
    /// The `i32` accumulator unchanged.
    I32,
    /// `i32` requantised to `i8` (see [`Requant`] for the exact rounding and saturation).
    I8(Requant),
}

impl OutputFormat {
    /// Short name for files and the command line (`f32`, `bf16`, `fp16`, `i32`, `i8`).
    pub const fn name(self) -> &'static str {
        match self {
            OutputFormat::F32 => "f32",
            OutputFormat::Bf16 => "bf16",
            OutputFormat::Fp16 => "fp16",
            OutputFormat::I32 => "i32",
            OutputFormat::I8(_) => "i8",
        }
    }

    /// Bytes of one output element.
    pub const fn bytes(self) -> usize {
        match self {
            OutputFormat::F32 | OutputFormat::I32 => 4,
            OutputFormat::Bf16 | OutputFormat::Fp16 => 2,
            OutputFormat::I8(_) => 1,
        }
    }

    /// The accumulator this output format converts from.
    pub const fn accumulator(self) -> Accumulator {
        match self {
            OutputFormat::F32 | OutputFormat::Bf16 | OutputFormat::Fp16 => Accumulator::F32,
            OutputFormat::I32 | OutputFormat::I8(_) => Accumulator::I32,
        }
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputFormat::I8(r) => write!(f, "i8({r})"),
            other => f.write_str(other.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_names_round_trip() {
        for p in Precision::ALL {
            assert_eq!(p.name().parse::<Precision>().unwrap(), p);
            assert_eq!(p.to_string(), p.name());
        }
        assert_eq!("BF16".parse::<Precision>().unwrap(), Precision::Bf16);
    }

    #[test]
    fn unknown_precision_error_lists_choices() {
        let err = "fp64".parse::<Precision>().unwrap_err().to_string();
        assert!(
            err.contains("fp64") && err.contains("int8, bf16, fp16"),
            "{err}"
        );
    }

    #[test]
    fn output_formats_match_accumulators() {
        for p in Precision::ALL {
            assert_eq!(p.raw_output().accumulator(), p.accumulator());
        }
    }
}
