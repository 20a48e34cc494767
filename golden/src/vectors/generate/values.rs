//! Operand and accumulator values: exact constructions and seeded distributions.
//!
//! Everything returns raw bits (`u32` holding a bf16/fp16 code or an `f32`), because that is
//! what vector files store and what corner cases are about.

#[cfg(test)]
use crate::numerics::float::Class;
use crate::numerics::float::{self, FloatFormat, F32};

use super::super::prng::SplitMix64;

/// The exact value `(-1)^negative × significand × 2^exponent` in `format`, if representable.
pub fn exact(format: FloatFormat, negative: bool, significand: u64, exponent: i32) -> Option<u32> {
    let magnitude = exact_f64(significand, exponent)?;
    let value = if negative { -magnitude } else { magnitude };
    let as_f32 = value as f32;
    if f64::from(as_f32) != value {
        return None;
    }
    let bits = format.encode_rne(as_f32);
    (format.decode(bits).to_bits() == as_f32.to_bits()).then_some(bits)
}

/// `significand × 2^exponent` as an `f64`, if exact and inside `f64`'s normal range.
fn exact_f64(significand: u64, exponent: i32) -> Option<f64> {
    if significand >= 1 << 53 {
        return None;
    }
    if significand == 0 {
        return Some(0.0);
    }
    if !(-1022..=1023).contains(&exponent) {
        return None;
    }
    Some(significand as f64 * float::pow2_f64(exponent))
}

/// The exact `f32` bits of `(-1)^negative × significand × 2^exponent`, if representable.
pub fn f32_exact(negative: bool, significand: u64, exponent: i32) -> Option<u32> {
    exact(F32, negative, significand, exponent)
}

/// `2^e` in `format`, if representable (normal or subnormal).
pub fn pow2(format: FloatFormat, e: i32) -> Option<u32> {
    exact(format, false, 1, e)
}

/// Negates a code of `format` (flips the sign bit).
pub fn negate(format: FloatFormat, bits: u32) -> u32 {
    bits ^ (1 << (format.width() - 1))
}

/// Encodes an `f32` into `format` with round-to-nearest-even.
pub fn round(format: FloatFormat, x: f32) -> u32 {
    format.encode_rne(x)
}

/// The largest finite value of `format` (positive).
pub fn max_finite(format: FloatFormat) -> u32 {
    let exp_all_ones = (1u32 << format.exponent_bits) - 1;
    ((exp_all_ones - 1) << format.mantissa_bits) | ((1 << format.mantissa_bits) - 1)
}

/// The positive infinity of `format`.
pub fn infinity(format: FloatFormat) -> u32 {
    ((1u32 << format.exponent_bits) - 1) << format.mantissa_bits
}

/// Assorted NaN codes of `format`: quiet and signalling, both signs, smallest and largest
/// payloads, the canonical one, and a random one. The contract gives them all one meaning.
pub fn nans(format: FloatFormat, rng: &mut SplitMix64) -> Vec<u32> {
    let inf = infinity(format);
    let sign = 1u32 << (format.width() - 1);
    let m = format.mantissa_bits;
    let quiet = 1u32 << (m - 1);
    let all = (1u32 << m) - 1;
    let random = 1 + (rng.next_u32() % all); // non-zero payload
    let mut out = vec![
        inf | quiet,
        sign | inf | quiet,
        inf | 1,
        sign | inf | 1,
        inf | all,
        sign | inf | all,
        inf | quiet | 1,
        inf | (quiet >> 1),
        inf | random,
        sign | inf | random,
    ];
    out.dedup();
    out
}

/// A random finite non-zero value of `format` with a uniformly random exponent field (including
/// subnormals): every binade equally likely, which stresses alignment far more than "typical"
/// values do.
pub fn wide_finite(format: FloatFormat, rng: &mut SplitMix64) -> u32 {
    loop {
        let biased = rng.below((1 << format.exponent_bits) - 1) as u32;
        let fraction = rng.next_u32() & ((1 << format.mantissa_bits) - 1);
        let sign = u32::from(rng.percent(50)) << (format.width() - 1);
        let bits = sign | (biased << format.mantissa_bits) | fraction;
        if biased != 0 || fraction != 0 {
            return bits;
        }
    }
}

/// Any code of `format`, uniformly (specials at their natural frequency).
pub fn uniform_bits(format: FloatFormat, rng: &mut SplitMix64) -> u32 {
    rng.next_u32() >> (32 - format.width())
}

/// A random subnormal of `format` (either sign).
pub fn subnormal(format: FloatFormat, rng: &mut SplitMix64) -> u32 {
    let fraction = 1 + rng.below((1 << format.mantissa_bits) - 1) as u32;
    let sign = u32::from(rng.percent(50)) << (format.width() - 1);
    sign | fraction
}

/// A roughly normal value with standard deviation `scale`, rounded to `format`.
pub fn normal(format: FloatFormat, rng: &mut SplitMix64, scale: f64) -> u32 {
    round(format, (rng.normal_f64() * scale) as f32)
}

/// A uniformly random integer in `-limit..=limit`, exactly, in `format`.
pub fn small_int(format: FloatFormat, rng: &mut SplitMix64, limit: i64) -> u32 {
    round(format, rng.range_i64(-limit, limit) as f32)
}

/// A value that is special or sits at a format boundary: zeros, infinities, NaNs, subnormals,
/// the smallest normal, the largest finite, one.
pub fn special(format: FloatFormat, rng: &mut SplitMix64) -> u32 {
    let sign = u32::from(rng.percent(50)) << (format.width() - 1);
    let min_normal = 1 << format.mantissa_bits;
    let choice = rng.below(9);
    match choice {
        0 => sign,                    // ±0
        1 => sign | infinity(format), // ±∞
        2 => {
            let candidates = nans(format, rng);
            rng.pick(&candidates) // NaN
        }
        3 => subnormal(format, rng),    // subnormal
        4 => sign | 1,                  // smallest subnormal
        5 => sign | (min_normal - 1),   // largest subnormal
        6 => sign | min_normal,         // smallest normal
        7 => sign | max_finite(format), // largest finite
        _ => sign | round(format, 1.0), // one
    }
}

/// Whether a code is a NaN of `format`.
#[cfg(test)]
pub fn is_nan(format: FloatFormat, bits: u32) -> bool {
    matches!(format.classify(bits), Class::Nan)
}

/// Finds operands `a`, `b` of `format` whose exact product is
/// `(-1)^negative × significand × 2^exponent`, splitting the power of two between them at a
/// random point. `significand` must fit one operand's significand; `None` if no split fits.
pub fn product(
    format: FloatFormat,
    rng: &mut SplitMix64,
    negative: bool,
    significand: u64,
    exponent: i32,
) -> Option<(u32, u32)> {
    product_of(format, rng, negative, significand, 1, exponent)
}

/// Like [`product`], with the product's significand given as two factors, one per operand.
pub fn product_of(
    format: FloatFormat,
    rng: &mut SplitMix64,
    negative: bool,
    significand_a: u64,
    significand_b: u64,
    exponent: i32,
) -> Option<(u32, u32)> {
    // `s × 2^e` (s odd or not) can only be representable when its last bit is at or above the
    // smallest subnormal and its top bit at or below the largest binade; that bounds the
    // exponent of `a`'s factor from both operands' sides before any trial encoding.
    let bits = |s: u64| 64 - s.leading_zeros() as i32;
    if significand_a == 0 || significand_b == 0 {
        return None;
    }
    // Trailing zeros of a significand belong to its exponent.
    let (tz_a, tz_b) = (
        significand_a.trailing_zeros(),
        significand_b.trailing_zeros(),
    );
    let (significand_a, significand_b) = (significand_a >> tz_a, significand_b >> tz_b);
    let exponent = exponent + (tz_a + tz_b) as i32;
    if significand_a == 0
        || significand_b == 0
        || bits(significand_a) > format.mantissa_bits as i32 + 1
        || bits(significand_b) > format.mantissa_bits as i32 + 1
    {
        return None;
    }
    let lowest = 1 - format.bias - format.mantissa_bits as i32; // exponent of the smallest subnormal
    let highest_top = format.bias; // exponent of the largest binade (IEEE formats)
    let top = |s: u64| highest_top - (bits(s) - 1); // largest exponent keeping s × 2^e finite
    let low = lowest.max(exponent - top(significand_b));
    let high = top(significand_a).min(exponent - lowest);
    if low > high {
        return None;
    }
    // Tried from a random starting point, so that repeated calls spread the magnitude
    // differently between the two operands.
    let span = (high - low + 1) as u64;
    let start = rng.below(span);
    let sign_a = rng.percent(50);
    for step in 0..span {
        let ea = low + ((start + step) % span) as i32;
        let a = exact(format, sign_a, significand_a, ea);
        let b = exact(format, sign_a != negative, significand_b, exponent - ea);
        if let (Some(a), Some(b)) = (a, b) {
            return Some((a, b));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numerics::float::{BF16, FP16};

    #[test]
    fn exact_constructions() {
        assert_eq!(exact(BF16, false, 1, 0), Some(0x3F80));
        assert_eq!(exact(BF16, true, 3, -1), Some(0xBFC0)); // -1.5
        assert_eq!(exact(BF16, false, 0x101, 0), None); // 9 significant bits
        assert_eq!(pow2(BF16, -133), Some(0x0001)); // smallest subnormal
        assert_eq!(pow2(BF16, -134), None);
        assert_eq!(pow2(FP16, -24), Some(0x0001));
        assert_eq!(pow2(FP16, 16), None);
        assert_eq!(max_finite(BF16), 0x7F7F);
        assert_eq!(max_finite(FP16), 0x7BFF);
        assert_eq!(
            f32_exact(false, (1 << 24) - 1, 104),
            Some(f32::MAX.to_bits())
        );
    }

    #[test]
    fn products_are_exact() {
        let mut rng = SplitMix64::new(3);
        for (format, exponent) in [
            (BF16, 128),
            (BF16, -266),
            (BF16, -150),
            (FP16, -48),
            (FP16, 30),
        ] {
            for negative in [false, true] {
                let (a, b) = product(format, &mut rng, negative, 1, exponent).unwrap();
                let p = f64::from(format.decode(a)) * f64::from(format.decode(b));
                assert_eq!(p, if negative { -1.0 } else { 1.0 } * 2f64.powi(exponent));
            }
        }
        assert!(product(FP16, &mut rng, false, 1, 31).is_none());
        let (a, b) = product_of(BF16, &mut rng, false, 0x81, 0x7F, -20).unwrap();
        let p = f64::from(BF16.decode(a)) * f64::from(BF16.decode(b));
        assert_eq!(p, f64::from(0x81 * 0x7F) * 2f64.powi(-20));
    }

    /// The bounded search finds a split whenever any split exists (brute force over every
    /// exponent), for both formats and assorted significands and target exponents.
    #[test]
    fn product_search_misses_nothing() {
        let mut rng = SplitMix64::new(5);
        for format in [BF16, FP16] {
            for (sa, sb) in [
                (1u64, 1u64),
                (3, 1),
                (0x81, 0x7F),
                (0xFF, 0xFF),
                (0x7FF, 0x401),
                (0x3FF, 1),
                (0x400, 0x401),
                (0x80, 6),
            ] {
                for exponent in (-300..300).step_by(3) {
                    let brute = (-400..400).any(|ea| {
                        exact(format, false, sa, ea).is_some()
                            && exact(format, false, sb, exponent - ea).is_some()
                    });
                    let found = product_of(format, &mut rng, false, sa, sb, exponent);
                    assert_eq!(
                        found.is_some(),
                        brute,
                        "{} {sa:#x}·{sb:#x}·2^{exponent}",
                        format.name
                    );
                }
            }
        }
    }

    #[test]
    fn distributions_stay_in_their_lanes() {
        let mut rng = SplitMix64::new(9);
        for _ in 0..2000 {
            for format in [BF16, FP16] {
                let w = wide_finite(format, &mut rng);
                assert!(matches!(format.classify(w), Class::Finite(f) if f.significand != 0));
                let s = subnormal(format, &mut rng);
                assert_eq!(
                    (s >> format.mantissa_bits) & ((1 << format.exponent_bits) - 1),
                    0
                );
                assert!(format.decode(small_int(format, &mut rng, 8)).abs() <= 8.0);
                assert!(uniform_bits(format, &mut rng) < 1 << 16);
                let _ = special(format, &mut rng);
            }
        }
        for n in nans(BF16, &mut rng) {
            assert!(is_nan(BF16, n), "{n:#x}");
        }
        for n in nans(FP16, &mut rng) {
            assert!(is_nan(FP16, n), "{n:#x}");
        }
    }
}
