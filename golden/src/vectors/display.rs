//! How values appear in reports: raw bits as hex, and the decoded value.

use serde::Serialize;

use crate::numerics::float::{bf16_to_f32, fp16_to_f32};
use crate::numerics::{OutputFormat, Precision};

/// The element types a GEMM case stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Element {
    /// Two's-complement `i8`.
    I8,
    /// bfloat16.
    Bf16,
    /// IEEE binary16.
    Fp16,
    /// IEEE binary32.
    F32,
    /// Two's-complement `i32`.
    I32,
}

/// A value shown twice: its raw bits and what they mean.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Shown {
    /// Raw bits, `0x`-prefixed, zero-padded to the element width.
    pub hex: String,
    /// The decoded value (`NaN`, `inf`, `-0.0`, `1.5`, `1e-45`, `-128` …).
    pub value: String,
}

impl Element {
    /// The operand element of a precision.
    pub fn operand(precision: Precision) -> Element {
        match precision {
            Precision::Int8 => Element::I8,
            Precision::Bf16 => Element::Bf16,
            Precision::Fp16 => Element::Fp16,
        }
    }

    /// The accumulator element of a precision.
    pub fn accumulator(precision: Precision) -> Element {
        match precision {
            Precision::Int8 => Element::I32,
            _ => Element::F32,
        }
    }

    /// The element of an output format.
    pub fn output(output: OutputFormat) -> Element {
        match output {
            OutputFormat::F32 => Element::F32,
            OutputFormat::Bf16 => Element::Bf16,
            OutputFormat::Fp16 => Element::Fp16,
            OutputFormat::I32 => Element::I32,
            OutputFormat::I8(_) => Element::I8,
        }
    }

    /// Bytes per element.
    pub fn bytes(self) -> usize {
        match self {
            Element::I8 => 1,
            Element::Bf16 | Element::Fp16 => 2,
            Element::F32 | Element::I32 => 4,
        }
    }

    /// Raw bits of element `index` of a little-endian buffer.
    pub fn read(self, buffer: &[u8], index: usize) -> u32 {
        let w = self.bytes();
        buffer[index * w..(index + 1) * w]
            .iter()
            .rev()
            .fold(0u32, |acc, byte| (acc << 8) | u32::from(*byte))
    }

    /// Hex and decoded value of raw bits.
    pub fn show(self, bits: u32) -> Shown {
        let digits = 2 * self.bytes();
        let hex = format!("0x{bits:0digits$x}");
        let value = match self {
            Element::I8 => (bits as u8 as i8).to_string(),
            Element::I32 => (bits as i32).to_string(),
            Element::Bf16 => float(bf16_to_f32(bits as u16)),
            Element::Fp16 => float(fp16_to_f32(bits as u16)),
            Element::F32 => float(f32::from_bits(bits)),
        };
        Shown { hex, value }
    }
}

/// Shortest round-tripping decimal (exponent form for very large or small magnitudes).
fn float(x: f32) -> String {
    if x.is_nan() {
        let sign = if x.is_sign_negative() { "-" } else { "" };
        format!("{sign}NaN")
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.to_owned()
    } else {
        format!("{x:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_hex_and_value() {
        assert_eq!(Element::F32.show(0x3F80_0000).value, "1.0");
        assert_eq!(Element::F32.show(0x3F80_0000).hex, "0x3f800000");
        assert_eq!(Element::F32.show(1).value, "1e-45");
        assert_eq!(Element::F32.show(0x8000_0000).value, "-0.0");
        assert_eq!(Element::F32.show(0xFFC0_0001).value, "-NaN");
        assert_eq!(Element::Bf16.show(0xFF80).value, "-inf");
        assert_eq!(Element::Fp16.show(0x3C00).hex, "0x3c00");
        assert_eq!(Element::I8.show(0x80).value, "-128");
        assert_eq!(Element::I8.show(0x80).hex, "0x80");
        assert_eq!(Element::I32.show(0xFFFF_FFFF).value, "-1");
    }

    #[test]
    fn reads_little_endian() {
        let buffer = [0x00, 0x00, 0x80, 0x3F, 0x01, 0x02];
        assert_eq!(Element::F32.read(&buffer, 0), 0x3F80_0000);
        assert_eq!(Element::Bf16.read(&buffer, 2), 0x0201);
        assert_eq!(Element::I8.read(&buffer, 3), 0x3F);
    }
}
