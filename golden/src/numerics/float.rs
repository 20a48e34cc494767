//! Binary floating-point formats: exact decoding to `f32` and round-to-nearest-even encoding.
//!
//! One parameterised description, [`FloatFormat`], covers every format the contract uses
//! (`f32`, `bf16`, `fp16`) and the 8-bit formats planned next (`e4m3`, `e5m2`), so adding a
//! precision means adding a constant, not new arithmetic.
//!
//! Decoding is exact: every value of every listed format is an `f32` value (a narrower format's
//! significand has at most 24 bits and its exponent range lies inside `f32`'s, subnormals
//! included). Encoding rounds to nearest, ties to even, keeps subnormals, overflows to infinity and
//! turns every NaN into the format's canonical quiet NaN.

/// How a format spends its all-ones exponent field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Specials {
    /// IEEE 754: an all-ones exponent is infinity (zero mantissa) or NaN (non-zero mantissa).
    Ieee,
    /// OCP FP8 E4M3 ("FN", finite): no infinities; only the all-ones exponent *and* mantissa is
    /// NaN, the other all-ones-exponent codes are ordinary numbers.
    FiniteNanOnly,
}

/// A binary floating-point format: 1 sign bit, `exponent_bits`, `mantissa_bits` (stored fraction).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FloatFormat {
    /// Short name used in file formats and on the command line.
    pub name: &'static str,
    /// Width of the biased exponent field.
    pub exponent_bits: u32,
    /// Width of the stored fraction (the significand has one more, implicit, bit).
    pub mantissa_bits: u32,
    /// Exponent bias: a normal number is `1.f × 2^(e - bias)`.
    pub bias: i32,
    /// Meaning of the all-ones exponent.
    pub specials: Specials,
}

/// IEEE binary32: the accumulator format of every floating GEMM.
pub const F32: FloatFormat = FloatFormat {
    name: "fp32",
    exponent_bits: 8,
    mantissa_bits: 23,
    bias: 127,
    specials: Specials::Ieee,
};

/// bfloat16: `f32`'s exponent range with an 8-bit significand.
pub const BF16: FloatFormat = FloatFormat {
    name: "bf16",
    exponent_bits: 8,
    mantissa_bits: 7,
    bias: 127,
    specials: Specials::Ieee,
};

/// IEEE binary16.
pub const FP16: FloatFormat = FloatFormat {
    name: "fp16",
    exponent_bits: 5,
    mantissa_bits: 10,
    bias: 15,
    specials: Specials::Ieee,
};

/// OCP FP8 E4M3 (finite, NaN only at `S.1111.111`). Decoding only, for now: no GEMM precision
/// uses it yet, but the format description is what such a precision will be built from.
pub const FP8_E4M3: FloatFormat = FloatFormat {
    name: "fp8e4m3",
    exponent_bits: 4,
    mantissa_bits: 3,
    bias: 7,
    specials: Specials::FiniteNanOnly,
};

/// OCP FP8 E5M2 (IEEE-style specials). Decoding only, for now; see [`FP8_E4M3`].
pub const FP8_E5M2: FloatFormat = FloatFormat {
    name: "fp8e5m2",
    exponent_bits: 5,
    mantissa_bits: 2,
    bias: 15,
    specials: Specials::Ieee,
};

/// The canonical quiet NaN of `f32`: the only NaN a GEMM may output in `f32`.
pub const F32_CANONICAL_NAN: u32 = 0x7FC0_0000;
/// The canonical quiet NaN of `bf16`.
pub const BF16_CANONICAL_NAN: u16 = 0x7FC0;
/// The canonical quiet NaN of `fp16`.
pub const FP16_CANONICAL_NAN: u16 = 0x7E00;

/// A finite value split into exact integer parts: `(-1)^negative × significand × 2^exponent`.
///
/// This is the form the exact reference arithmetic works in; it never loses a bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finite {
    /// Sign; also meaningful for zero (`-0`).
    pub negative: bool,
    /// Integer significand, implicit bit included (zero for ±0).
    pub significand: u64,
    /// Power of two of the significand's least significant bit.
    pub exponent: i32,
}

/// A decoded value of some [`FloatFormat`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Any NaN (payloads carry no meaning in the contract).
    Nan,
    /// Signed infinity; `true` means negative.
    Infinity(bool),
    /// A zero, subnormal or normal number.
    Finite(Finite),
}

impl FloatFormat {
    /// Total width in bits (sign + exponent + mantissa).
    pub const fn width(&self) -> u32 {
        1 + self.exponent_bits + self.mantissa_bits
    }

    /// Largest biased exponent value (all ones).
    const fn max_biased_exponent(&self) -> u32 {
        (1 << self.exponent_bits) - 1
    }

    /// The format's canonical quiet NaN: sign 0, all-ones exponent, only the top mantissa bit set
    /// (for [`Specials::FiniteNanOnly`] the single NaN code with sign 0).
    pub const fn canonical_nan(&self) -> u32 {
        let exp_field = self.max_biased_exponent() << self.mantissa_bits;
        match self.specials {
            Specials::Ieee => exp_field | (1 << (self.mantissa_bits - 1)),
            Specials::FiniteNanOnly => exp_field | ((1 << self.mantissa_bits) - 1),
        }
    }

    /// Splits `bits` (the low [`width`](Self::width) bits are used) into its exact value.
    pub fn classify(&self, bits: u32) -> Class {
        let m_bits = self.mantissa_bits;
        let negative = (bits >> (self.exponent_bits + m_bits)) & 1 == 1;
        let biased = (bits >> m_bits) & self.max_biased_exponent();
        let fraction = bits & ((1 << m_bits) - 1);
        if biased == self.max_biased_exponent() {
            match self.specials {
                Specials::Ieee if fraction == 0 => return Class::Infinity(negative),
                Specials::Ieee => return Class::Nan,
                Specials::FiniteNanOnly if fraction == (1 << m_bits) - 1 => return Class::Nan,
                Specials::FiniteNanOnly => {}
            }
        }
        let min_exponent = 1 - self.bias - m_bits as i32;
        let finite = if biased == 0 {
            Finite {
                negative,
                significand: u64::from(fraction),
                exponent: min_exponent,
            }
        } else {
            Finite {
                negative,
                significand: u64::from(fraction | (1 << m_bits)),
                exponent: biased as i32 - self.bias - m_bits as i32,
            }
        };
        Class::Finite(finite)
    }

    /// Decodes `bits` to the `f32` of the same value (exact for every format listed here).
    pub fn decode(&self, bits: u32) -> f32 {
        match self.classify(bits) {
            Class::Nan => f32::from_bits(F32_CANONICAL_NAN),
            Class::Infinity(false) => f32::INFINITY,
            Class::Infinity(true) => f32::NEG_INFINITY,
            Class::Finite(v) => {
                // significand < 2^24 and the exponent lies in f64's normal range: exact in f64,
                // and the value is representable in f32, so the final cast is exact too.
                let magnitude = v.significand as f64 * pow2_f64(v.exponent);
                let value = magnitude as f32;
                if v.negative {
                    -value
                } else {
                    value
                }
            }
        }
    }

    /// Encodes an `f32` into this format, rounding to nearest with ties to even.
    ///
    /// Subnormal results are kept; magnitudes that round past the largest finite value become
    /// infinity; every NaN becomes [`canonical_nan`](Self::canonical_nan). Only formats with
    /// [`Specials::Ieee`] are supported (the FP8 E4M3 saturation rule is not part of the
    /// contract yet); for others the result is the canonical NaN for NaN input and otherwise
    /// follows the IEEE rule, which callers must not rely on.
    pub fn encode_rne(&self, x: f32) -> u32 {
        if x.is_nan() {
            return self.canonical_nan();
        }
        let sign_bit = u32::from(x.is_sign_negative()) << (self.exponent_bits + self.mantissa_bits);
        let inf = self.max_biased_exponent() << self.mantissa_bits;
        if x.is_infinite() {
            return sign_bit | inf;
        }
        let Class::Finite(v) = F32.classify(x.to_bits()) else {
            unreachable!("NaN and infinity were handled above")
        };
        if v.significand == 0 {
            return sign_bit;
        }
        sign_bit | self.round_magnitude(v.significand, v.exponent)
    }

    /// Rounds the positive value `significand × 2^exponent` (significand < 2^63) to this format
    /// with round-to-nearest-even and returns the encoded magnitude (sign bit clear).
    fn round_magnitude(&self, significand: u64, exponent: i32) -> u32 {
        let m_bits = self.mantissa_bits as i32;
        let top_bit = 63 - significand.leading_zeros() as i32;
        let unbiased = top_bit + exponent;
        let min_normal_exponent = 1 - self.bias;
        // The weight of the result's least significant bit.
        let quantum = unbiased.max(min_normal_exponent) - m_bits;
        let drop = quantum - exponent;
        let mut kept = if drop <= 0 {
            significand << (-drop)
        } else if drop >= 64 {
            0 // far below half a quantum: rounds to zero
        } else {
            let kept = significand >> drop;
            let remainder = significand & ((1u64 << drop) - 1);
            let half = 1u64 << (drop - 1);
            if remainder > half || (remainder == half && kept & 1 == 1) {
                kept + 1
            } else {
                kept
            }
        };
        let mut quantum = quantum;
        if kept == 1 << (m_bits + 1) {
            // Rounding carried into a new binade.
            kept >>= 1;
            quantum += 1;
        }
        let implicit = 1u64 << m_bits;
        if kept < implicit {
            return kept as u32; // subnormal (or zero): exponent field 0
        }
        let biased = quantum + m_bits + self.bias;
        if biased >= self.max_biased_exponent() as i32 {
            return self.max_biased_exponent() << self.mantissa_bits; // overflow: infinity
        }
        ((biased as u32) << self.mantissa_bits) | (kept - implicit) as u32
    }
}

/// `2^e` as an `f64`, exact for `-1022 <= e <= 1023`.
pub(crate) fn pow2_f64(e: i32) -> f64 {
    assert!(
        (-1022..=1023).contains(&e),
        "2^{e} is outside f64's normal range"
    );
    f64::from_bits(((e + 1023) as u64) << 52)
}

/// Decodes bfloat16 bits to `f32` (exact; a shift, as in hardware).
#[inline]
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits(u32::from(bits) << 16)
}

/// Decodes IEEE binary16 bits to `f32` (exact).
#[inline]
pub fn fp16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits & 0x8000) << 16;
    let exp = u32::from(bits >> 10) & 0x1F;
    let frac = u32::from(bits & 0x3FF);
    let magnitude = match exp {
        0 => {
            // ±0 and subnormals: frac × 2^-24, exact in f32.
            return f32::from_bits(sign | (frac as f32 * (1.0 / 16_777_216.0)).to_bits());
        }
        0x1F => 0x7F80_0000 | (frac << 13),
        _ => ((exp + 127 - 15) << 23) | (frac << 13),
    };
    f32::from_bits(sign | magnitude)
}

/// Rounds an `f32` to bfloat16 with round-to-nearest-even; NaN becomes [`BF16_CANONICAL_NAN`].
#[inline]
pub fn f32_to_bf16_rne(x: f32) -> u16 {
    if x.is_nan() {
        return BF16_CANONICAL_NAN;
    }
    let bits = x.to_bits();
    let lsb = (bits >> 16) & 1;
    // Adding 0x7FFF + lsb rounds to nearest with ties to even; a carry out of the mantissa
    // correctly bumps the exponent, and the largest finite values round up to infinity.
    ((bits + 0x7FFF + lsb) >> 16) as u16
}

/// Rounds an `f32` to IEEE binary16 with round-to-nearest-even; NaN becomes
/// [`FP16_CANONICAL_NAN`].
#[inline]
pub fn f32_to_fp16_rne(x: f32) -> u16 {
    FP16.encode_rne(x) as u16
}

/// Replaces any NaN by the canonical `f32` NaN, leaving every other value's bits untouched.
#[inline]
pub fn canonicalize_f32(x: f32) -> f32 {
    if x.is_nan() {
        f32::from_bits(F32_CANONICAL_NAN)
    } else {
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_decode_matches_generic_and_half_for_every_code() {
        for bits in 0..=u16::MAX {
            let fast = bf16_to_f32(bits);
            let generic = BF16.decode(u32::from(bits));
            let half = half::bf16::from_bits(bits).to_f32();
            if half.is_nan() {
                assert!(fast.is_nan() && generic.is_nan(), "{bits:#06x}");
            } else {
                assert_eq!(fast.to_bits(), generic.to_bits(), "{bits:#06x}");
                assert_eq!(fast.to_bits(), half.to_bits(), "{bits:#06x}");
            }
        }
    }

    #[test]
    fn fp16_decode_matches_generic_and_half_for_every_code() {
        for bits in 0..=u16::MAX {
            let fast = fp16_to_f32(bits);
            let generic = FP16.decode(u32::from(bits));
            let half = half::f16::from_bits(bits).to_f32();
            if half.is_nan() {
                assert!(fast.is_nan() && generic.is_nan(), "{bits:#06x}");
            } else {
                assert_eq!(fast.to_bits(), generic.to_bits(), "{bits:#06x}");
                assert_eq!(fast.to_bits(), half.to_bits(), "{bits:#06x}");
            }
        }
    }

    #[test]
    fn fp8_formats_decode_known_values() {
        // E4M3: max finite 448, NaN only at 0x7F/0xFF, min subnormal 2^-9.
        assert_eq!(FP8_E4M3.decode(0x7E), 448.0);
        assert!(FP8_E4M3.decode(0x7F).is_nan());
        assert_eq!(FP8_E4M3.decode(0x78), 256.0);
        assert_eq!(FP8_E4M3.decode(0x01), 2f32.powi(-9));
        assert_eq!(FP8_E4M3.decode(0x80).to_bits(), (-0.0f32).to_bits());
        // E5M2: max finite 57344, 0x7C is +inf, min subnormal 2^-16.
        assert_eq!(FP8_E5M2.decode(0x7B), 57344.0);
        assert_eq!(FP8_E5M2.decode(0x7C), f32::INFINITY);
        assert!(FP8_E5M2.decode(0x7D).is_nan());
        assert_eq!(FP8_E5M2.decode(0x01), 2f32.powi(-16));
    }

    #[test]
    fn canonical_nans() {
        assert_eq!(F32.canonical_nan(), F32_CANONICAL_NAN);
        assert_eq!(BF16.canonical_nan(), u32::from(BF16_CANONICAL_NAN));
        assert_eq!(FP16.canonical_nan(), u32::from(FP16_CANONICAL_NAN));
        assert_eq!(FP8_E4M3.canonical_nan(), 0x7F);
    }

    #[test]
    fn f32_generic_encode_is_identity() {
        for bits in (0..=u32::MAX).step_by(65_537) {
            let x = f32::from_bits(bits);
            let expected = if x.is_nan() { F32_CANONICAL_NAN } else { bits };
            assert_eq!(F32.encode_rne(x), expected, "{bits:#010x}");
        }
    }

    /// Samples every f32 exponent and the bit patterns around every rounding boundary.
    fn rounding_probe_values() -> impl Iterator<Item = u32> {
        let strided = (0..=u32::MAX).step_by(4_099);
        let boundaries = (0u32..512).flat_map(|sign_exp| {
            let base = sign_exp << 23;
            // Around the bf16 and fp16 rounding points: ..., half - 1, half, half + 1, ...
            [
                0u32, 1, 0x0FFF, 0x1000, 0x1001, 0x1FFF, 0x2000, 0x3000, 0x7FFF, 0x8000, 0x8001,
                0x1_8000, 0x7F_FFFF, 0x7F_E000, 0x7F_F000,
            ]
            .into_iter()
            .map(move |m| base | m)
        });
        strided.chain(boundaries)
    }

    #[test]
    fn bf16_encode_matches_generic_and_half() {
        for bits in rounding_probe_values() {
            let x = f32::from_bits(bits);
            let fast = f32_to_bf16_rne(x);
            assert_eq!(u32::from(fast), BF16.encode_rne(x), "{bits:#010x}");
            if !x.is_nan() {
                assert_eq!(fast, half::bf16::from_f32(x).to_bits(), "{bits:#010x}");
            }
        }
    }

    #[test]
    fn fp16_encode_matches_half() {
        for bits in rounding_probe_values() {
            let x = f32::from_bits(bits);
            let ours = f32_to_fp16_rne(x);
            if x.is_nan() {
                assert_eq!(ours, FP16_CANONICAL_NAN);
            } else {
                assert_eq!(ours, half::f16::from_f32(x).to_bits(), "{bits:#010x}");
            }
        }
    }

    #[test]
    fn fp16_encode_corner_cases() {
        // Largest finite, and the tie just above it that rounds to infinity.
        assert_eq!(f32_to_fp16_rne(65504.0), 0x7BFF);
        assert_eq!(f32_to_fp16_rne(65519.996), 0x7BFF);
        assert_eq!(f32_to_fp16_rne(65520.0), 0x7C00);
        // Smallest subnormal, half of it (tie to even: zero) and a bit more (rounds up).
        assert_eq!(f32_to_fp16_rne(2f32.powi(-24)), 0x0001);
        assert_eq!(f32_to_fp16_rne(2f32.powi(-25)), 0x0000);
        assert_eq!(f32_to_fp16_rne(2f32.powi(-25) * 1.000_001), 0x0001);
        assert_eq!(f32_to_fp16_rne(-2f32.powi(-25)), 0x8000);
        // 1.5 × 2^-24 is a tie between subnormal codes 1 and 2: even wins.
        assert_eq!(f32_to_fp16_rne(1.5 * 2f32.powi(-24)), 0x0002);
        // Largest subnormal rounding up into the smallest normal.
        assert_eq!(
            f32_to_fp16_rne(2f32.powi(-14) * (1.0 - 2f32.powi(-12))),
            0x0400
        );
    }
}
