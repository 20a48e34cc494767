//! The multiply-accumulate step of the contract, twice: exactly as specified, and fast.
//!
//! [`exact`] is the specification in code: it decodes both operands into integers, forms the
//! product and the sum with unbounded integers (nothing is ever rounded or lost), and rounds the
//! one final result to `f32`. Anyone can audit it without knowing any floating-point theorems.
//!
//! [`fast`] computes the same bits with ordinary floating-point hardware. For every floating
//! precision of the contract the product of two operands has at most 22 significant bits, and
//! it is exact in `f64` (operand exponents stay far inside `f64`'s range). `f64` then adds the
//! `f32` accumulator; when that sum is inexact in `f64` the two addends differ by more than 2^29
//! in magnitude, so the `f64` rounding error is far below half an `f32` ulp of the result and
//! cannot create or break an `f32` tie. The final `f64 → f32` conversion therefore rounds the
//! exact sum correctly (the classical "double rounding is innocuous when p ≥ 2q + 2" argument,
//! 53 ≥ 2·24 + 2). Tests compare the two on millions of random and adversarial operands.
//!
//! The SIMD GEMM uses a third equivalent: a hardware `f32` fused multiply-add on the decoded
//! operands, which by IEEE 754's definition of FMA rounds `acc + a·b` once from the exact value.

use num_bigint::{BigInt, Sign};
use num_traits::{Signed, Zero};

use super::float::{self, canonicalize_f32, Class, FloatFormat, F32, F32_CANONICAL_NAN};
use super::Precision;

/// Integer MAC: `acc + a·b` with two's-complement wrap-around (the contract's only integer rule).
#[inline]
pub fn mac_int8(acc: i32, a: i8, b: i8) -> i32 {
    acc.wrapping_add(i32::from(a) * i32::from(b))
}

/// A floating MAC of the contract, computed exactly and rounded once (the specification).
///
/// `a` and `b` are the raw bits of two operands of `format`; the result is the `f32`
/// `round_nearest_even(acc + a·b)`, with every NaN replaced by the canonical NaN.
pub fn exact(format: FloatFormat, acc: f32, a: u32, b: u32) -> f32 {
    let product = match (format.classify(a), format.classify(b)) {
        (Class::Nan, _) | (_, Class::Nan) => return nan(),
        (Class::Infinity(sa), Class::Infinity(sb)) => Class::Infinity(sa ^ sb),
        (Class::Infinity(s), Class::Finite(v)) | (Class::Finite(v), Class::Infinity(s)) => {
            if v.significand == 0 {
                return nan(); // ∞ · 0
            }
            Class::Infinity(s ^ v.negative)
        }
        (Class::Finite(x), Class::Finite(y)) => Class::Finite(float::Finite {
            negative: x.negative ^ y.negative,
            significand: x.significand * y.significand,
            exponent: x.exponent + y.exponent,
        }),
    };
    match (F32.classify(acc.to_bits()), product) {
        (Class::Nan, _) => nan(),
        (Class::Infinity(sa), Class::Infinity(sp)) if sa != sp => nan(), // ∞ − ∞
        (Class::Infinity(s), _) | (Class::Finite(_), Class::Infinity(s)) => {
            if s {
                f32::NEG_INFINITY
            } else {
                f32::INFINITY
            }
        }
        (Class::Finite(x), Class::Finite(p)) => round_sum_to_f32(x, p),
        (Class::Finite(_), Class::Nan) => unreachable!("NaN products returned early"),
    }
}

/// The least significant bit weight of the fixed-point grid the exact sum is formed on. Every
/// value the contract can produce is a multiple of it: `f32` values are multiples of 2^-149 and
/// the smallest product (two bf16 subnormals) is 2^-266.
const GRID_EXPONENT: i32 = -300;

fn to_grid(v: float::Finite) -> BigInt {
    let shift = v.exponent - GRID_EXPONENT;
    assert!(shift >= 0, "value below the exact-arithmetic grid");
    let magnitude = BigInt::from(v.significand) << shift as usize;
    if v.negative {
        -magnitude
    } else {
        magnitude
    }
}

/// Rounds the exact sum `x + p` to `f32` (round-to-nearest-even, subnormals kept, overflow to ∞).
fn round_sum_to_f32(x: float::Finite, p: float::Finite) -> f32 {
    let sum = to_grid(x) + to_grid(p);
    if sum.is_zero() {
        // IEEE 754: an exact zero sum is +0 under round-to-nearest, unless both addends are -0.
        let both_negative_zero =
            x.negative && x.significand == 0 && p.negative && p.significand == 0;
        return if both_negative_zero { -0.0 } else { 0.0 };
    }
    let negative = sum.sign() == Sign::Minus;
    let magnitude = sum
        .abs()
        .to_biguint()
        .expect("absolute value is non-negative");
    let bit_length = magnitude.bits() as i32;
    let unbiased = bit_length - 1 + GRID_EXPONENT;
    // Weight of the f32 result's last bit: 24 significant bits, never below 2^-149.
    let quantum = unbiased.max(-126) - 23;
    let drop = (quantum - GRID_EXPONENT) as u64; // quantum ≥ -149 > GRID_EXPONENT
    let kept = &magnitude >> drop;
    let remainder = &magnitude - (&kept << drop);
    let half = num_bigint::BigUint::from(1u8) << (drop - 1);
    let round_up = remainder > half || (remainder == half && kept.bit(0));
    let kept = if round_up { kept + 1u8 } else { kept };
    // `kept` now has at most 25 bits; re-express it as significand × 2^quantum and encode.
    let significand: u64 = kept
        .try_into()
        .expect("a rounded f32 significand fits in 64 bits");
    let magnitude = encode_f32_magnitude(significand, quantum);
    if negative {
        -magnitude
    } else {
        magnitude
    }
}

/// Encodes `significand × 2^quantum` (already rounded: `significand ≤ 2^24`) as an `f32`.
fn encode_f32_magnitude(mut significand: u64, mut quantum: i32) -> f32 {
    if significand == 1 << 24 {
        significand >>= 1;
        quantum += 1;
    }
    if significand < 1 << 23 {
        return f32::from_bits(significand as u32); // subnormal: quantum is -149
    }
    let biased = quantum + 23 + 127;
    if biased >= 255 {
        return f32::INFINITY;
    }
    f32::from_bits(((biased as u32) << 23) | (significand as u32 & 0x7F_FFFF))
}

fn nan() -> f32 {
    f32::from_bits(F32_CANONICAL_NAN)
}

/// A floating MAC of the contract computed with `f64` hardware arithmetic: the same bits as
/// [`exact`] (see the module documentation for why), a few nanoseconds instead of a microsecond.
#[inline]
pub fn fast(format: FloatFormat, acc: f32, a: u32, b: u32) -> f32 {
    fast_decoded(acc, format.decode(a), format.decode(b))
}

/// [`fast`] on operands already decoded to `f32` (decoding is exact for every operand format).
#[inline]
pub fn fast_decoded(acc: f32, a: f32, b: f32) -> f32 {
    let product = f64::from(a) * f64::from(b); // exact: at most 22 significant bits
    canonicalize_f32((f64::from(acc) + product) as f32)
}

/// The contract's MAC for any precision on raw operand bits, using the exact reference for
/// floating precisions. `acc` holds the accumulator's raw 32 bits (`i32` or `f32`).
pub fn reference(precision: Precision, acc: u32, a: u32, b: u32) -> u32 {
    match precision.operand_format() {
        None => mac_int8(acc as i32, a as u8 as i8, b as u8 as i8) as u32,
        Some(format) => exact(format, f32::from_bits(acc), a, b).to_bits(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numerics::float::{BF16, FP16};
    use proptest::prelude::*;

    fn bits(x: f32) -> u32 {
        x.to_bits()
    }

    #[test]
    fn int8_wraps() {
        assert_eq!(mac_int8(i32::MAX, 1, 1), i32::MIN);
        assert_eq!(mac_int8(0, -128, -128), 16384);
        assert_eq!(mac_int8(5, -3, 7), -16);
    }

    #[test]
    fn exact_known_values() {
        let one = 0x3F80; // bf16 1.0
        let two = 0x4000; // bf16 2.0
        assert_eq!(exact(BF16, 1.0, one, two), 3.0);
        // The product is exact: (1 + 2^-7)^2 = 1 + 2^-6 + 2^-14, not rounded before the add.
        let a = 0x3F81; // 1 + 2^-7
        let expected = 1.0 + 2f32.powi(-6) + 2f32.powi(-14);
        assert_eq!(exact(BF16, 0.0, a, a), expected);
        // The final rounding is to nearest even: 2^24 + 1 is a tie between 2^24 and 2^24 + 2.
        assert_eq!(exact(BF16, 16_777_216.0, one, one), 16_777_216.0);
        assert_eq!(exact(BF16, 16_777_218.0, one, one), 16_777_220.0);
    }

    #[test]
    fn exact_specials() {
        let inf = 0x7F80;
        let zero = 0x0000;
        let one = 0x3F80;
        assert_eq!(bits(exact(BF16, 0.0, inf, zero)), F32_CANONICAL_NAN); // ∞·0
        assert_eq!(
            bits(exact(BF16, f32::NEG_INFINITY, inf, one)),
            F32_CANONICAL_NAN
        ); // −∞+∞
        assert_eq!(exact(BF16, 1.0, inf, one), f32::INFINITY);
        assert_eq!(bits(exact(BF16, f32::NAN, one, one)), F32_CANONICAL_NAN);
        assert_eq!(bits(exact(BF16, 0.0, 0x7FC1, one)), F32_CANONICAL_NAN);
        // −0 + (−0) = −0; −0 + (+0) = +0; 1 − 1 = +0.
        assert_eq!(bits(exact(BF16, -0.0, 0x8000, one)), bits(-0.0));
        assert_eq!(bits(exact(BF16, -0.0, zero, one)), bits(0.0));
        assert_eq!(bits(exact(BF16, 1.0, 0xBF80, one)), bits(0.0));
    }

    #[test]
    fn exact_product_beyond_f32_range_is_not_rounded_early() {
        // 2^64 · 2^64 = 2^128 overflows f32, yet 2^128 − f32::MAX = 2^104 is representable.
        let two_pow_64 = 0x5F80; // bf16 2^64
        assert_eq!(
            exact(BF16, -f32::MAX, two_pow_64, two_pow_64),
            2f32.powi(104)
        );
        // 2^-100 · 2^-100 = 2^-200 is far below f32's range, yet it is not lost early.
        let tiny = 0x0D80; // bf16 2^-100
        let acc = 1.0 + 2f32.powi(-23);
        assert_eq!(exact(BF16, acc, tiny, tiny), acc);
    }

    #[test]
    fn exact_bits_below_the_accumulator_ulp_act_as_sticky() {
        // 2^24 has ulp 2; adding 1 + 2^-7 lands just above the tie at 2^24 + 1, so it rounds up.
        // An adder that dropped the product's bits below the ulp would see an exact tie and
        // round to even (2^24).
        assert_eq!(exact(BF16, 16_777_216.0, 0x3F81, 0x3F80), 16_777_218.0);
    }

    #[test]
    fn exact_subnormal_sums() {
        // Min subnormal + half of it: exactly 1.5 × 2^-149, a tie that rounds to even (2^-148).
        let min_sub = f32::from_bits(1);
        let p = 0x1A00; // bf16 2^-75; p·p = 2^-150, half the smallest f32 subnormal
        assert_eq!(bits(exact(BF16, min_sub, p, p)), 2);
        assert_eq!(bits(exact(BF16, 0.0, p, p)), 0); // 2^-150 alone ties to +0 (even)
    }

    fn exhaustive_pairs_agree(format: FloatFormat, accs: &[f32], codes: &[u32]) {
        for &acc in accs {
            for &a in codes {
                for &b in codes {
                    let e = exact(format, acc, a, b);
                    let f = fast(format, acc, a, b);
                    assert_eq!(
                        e.to_bits(),
                        f.to_bits(),
                        "{} acc={acc:e} ({:#010x}) a={a:#06x} b={b:#06x}",
                        format.name,
                        acc.to_bits()
                    );
                }
            }
        }
    }

    /// Operand codes covering every exponent, both signs, subnormals, zeros, infinities and NaNs.
    fn corner_codes(format: FloatFormat) -> Vec<u32> {
        let m = format.mantissa_bits;
        let exps = (1u32 << format.exponent_bits) - 1;
        let mut codes = Vec::new();
        for e in (0..=exps).step_by(3).chain([0, 1, exps - 1, exps]) {
            for frac in [0, 1, (1 << m) - 1, 1 << (m - 1)] {
                for sign in [0, 1 << (format.width() - 1)] {
                    codes.push(sign | (e << m) | frac);
                }
            }
        }
        codes.sort_unstable();
        codes.dedup();
        codes
    }

    fn corner_accumulators() -> Vec<f32> {
        let mut v = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            f32::MAX,
            -f32::MAX,
            f32::MIN_POSITIVE,
            f32::from_bits(1),
            f32::from_bits(0x8000_0001),
            f32::from_bits(0x007F_FFFF),
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            1.0 + f32::EPSILON,
            3.0e38,
            1.0e-30,
        ];
        v.extend((-150..128).step_by(7).map(|e| 1.5 * 2f32.powi(e)));
        v
    }

    #[test]
    fn fast_equals_exact_on_corner_grid_bf16() {
        exhaustive_pairs_agree(BF16, &corner_accumulators(), &corner_codes(BF16));
    }

    #[test]
    fn fast_equals_exact_on_corner_grid_fp16() {
        exhaustive_pairs_agree(FP16, &corner_accumulators(), &corner_codes(FP16));
    }

    fn any_f32() -> impl Strategy<Value = f32> {
        prop_oneof![
            any::<u32>().prop_map(f32::from_bits),
            // Values near the product scale, where cancellation and ties happen.
            (any::<u16>(), -40i32..40).prop_map(|(m, e)| f32::from(m) * 2f32.powi(e)),
            (any::<u16>(), any::<bool>())
                .prop_map(|(m, s)| f32::from_bits(u32::from(m) | (u32::from(s) << 31))),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn fast_equals_exact_bf16(acc in any_f32(), a in any::<u16>(), b in any::<u16>()) {
            let (a, b) = (u32::from(a), u32::from(b));
            prop_assert_eq!(exact(BF16, acc, a, b).to_bits(), fast(BF16, acc, a, b).to_bits());
        }

        #[test]
        fn fast_equals_exact_fp16(acc in any_f32(), a in any::<u16>(), b in any::<u16>()) {
            let (a, b) = (u32::from(a), u32::from(b));
            prop_assert_eq!(exact(FP16, acc, a, b).to_bits(), fast(FP16, acc, a, b).to_bits());
        }

        #[test]
        fn hardware_fma_equals_exact_bf16(acc in any_f32(), a in any::<u16>(), b in any::<u16>()) {
            let (a, b) = (u32::from(a), u32::from(b));
            let fma = canonicalize_f32(BF16.decode(a).mul_add(BF16.decode(b), acc));
            prop_assert_eq!(exact(BF16, acc, a, b).to_bits(), fma.to_bits());
        }

        #[test]
        fn cancellation_near_product_bf16(a in any::<u16>(), b in any::<u16>(), ulps in -4i32..4) {
            // acc ≈ −a·b: the sum cancels almost completely, the hardest case for alignment.
            let (a, b) = (u32::from(a), u32::from(b));
            let p = f64::from(BF16.decode(a)) * f64::from(BF16.decode(b));
            let near = (-p) as f32;
            let acc = f32::from_bits(near.to_bits().wrapping_add(ulps as u32));
            prop_assert_eq!(exact(BF16, acc, a, b).to_bits(), fast(BF16, acc, a, b).to_bits());
        }
    }
}
