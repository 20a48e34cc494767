//! Deterministic transcendental and reduction functions for the non-GEMM parts of the PoC.
//!
//! The artifact must have the same bits on every machine, so nothing here calls the platform's
//! libm (`f32::ln`, `f64::cos`, … may differ between C libraries and CPUs). Each function is a
//! fixed sequence of IEEE 754 basic operations (`+ − × ÷ √`, conversions, rounding to an
//! integer), which every conforming machine evaluates identically; Rust never contracts `a·b + c`
//! into a fused multiply-add on its own. The polynomials are accurate to a few `f64` ulps, far
//! more than the `f32` results need, but *which* bits they give is fixed by this code, not by
//! their accuracy.
//!
//! Reductions (sums of squares, dot products) run sequentially from index 0 in `f32`, each
//! product and each sum rounded separately (no FMA), so the order is part of the contract.

const LN2: f64 = std::f64::consts::LN_2;
const SQRT2: f64 = std::f64::consts::SQRT_2;
const TWO_PI: f64 = 2.0 * std::f64::consts::PI;

/// Natural logarithm of a positive, normal, finite `f64` (the domain Box–Muller needs).
///
/// `x = 2^e · m` with `m ∈ [√½, √2)`; `ln m = 2·atanh(s)`, `s = (m−1)/(m+1)`, by its odd series
/// to `s^23` (`|s| ≤ 0.1716`, so the first omitted term is below 2^-60 relative).
#[inline(always)]
pub fn ln(x: f64) -> f64 {
    let bits = x.to_bits();
    let exponent_field = (bits >> 52) & 0x7ff;
    let m0 = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    let above = m0 > SQRT2;
    let m = if above { m0 * 0.5 } else { m0 };
    // The exponent as f64 without an integer conversion (64-bit lanes have none before
    // AVX-512): 2^52 + field is exact, and subtracting 2^52 + 1023 is exact.
    let e = f64::from_bits(0x4330_0000_0000_0000 | exponent_field)
        - (4_503_599_627_370_496.0 + 1023.0)
        + if above { 1.0 } else { 0.0 };
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    // 2·(s + s³/3 + s⁵/5 + … + s²³/23), Horner from the highest term.
    let mut p = 1.0 / 23.0;
    p = p * s2 + 1.0 / 21.0;
    p = p * s2 + 1.0 / 19.0;
    p = p * s2 + 1.0 / 17.0;
    p = p * s2 + 1.0 / 15.0;
    p = p * s2 + 1.0 / 13.0;
    p = p * s2 + 1.0 / 11.0;
    p = p * s2 + 1.0 / 9.0;
    p = p * s2 + 1.0 / 7.0;
    p = p * s2 + 1.0 / 5.0;
    p = p * s2 + 1.0 / 3.0;
    p = p * s2 + 1.0;
    e * LN2 + 2.0 * s * p
}

/// `(cos 2πu, sin 2πu)` for `u` in turns (`|u| < 2^48`; Box–Muller passes `u ∈ [0, 1]`).
///
/// The argument is reduced exactly in turns (`r = u − n/4`, `n = round(4u)`, so `|r| ≤ 1/8`),
/// then `θ = 2π·r ∈ [−π/4, π/4]` and Taylor polynomials to `θ^17`/`θ^18`; the quadrant `n mod 4`
/// picks and signs the results. Reducing in turns avoids the rounding of `2π·u` for large `u`.
#[inline(always)]
pub fn cos_sin_turns(u: f64) -> (f64, f64) {
    let shifted = 4.0 * u + ROUND_MAGIC; // nearest integer, ties to even, in the low bits
    let n = shifted - ROUND_MAGIC;
    let quadrant = shifted.to_bits() & 3; // n mod 4 (2^51 ≡ 0 mod 4, so negative n work too)
    let r = u - n * 0.25; // exact: both terms are multiples of u's ulp and close together
    let t = r * TWO_PI;
    let t2 = t * t;
    let mut s = -1.0 / 355_687_428_096_000.0; // −1/17!
    s = s * t2 + 1.0 / 1_307_674_368_000.0; // 1/15!
    s = s * t2 - 1.0 / 6_227_020_800.0; // −1/13!
    s = s * t2 + 1.0 / 39_916_800.0; // 1/11!
    s = s * t2 - 1.0 / 362_880.0; // −1/9!
    s = s * t2 + 1.0 / 5_040.0;
    s = s * t2 - 1.0 / 120.0;
    s = s * t2 + 1.0 / 6.0;
    let sin = t - t * t2 * s;
    let mut c = 1.0 / 6_402_373_705_728_000.0; // 1/18!
    c = c * t2 - 1.0 / 20_922_789_888_000.0; // −1/16!
    c = c * t2 + 1.0 / 87_178_291_200.0; // 1/14!
    c = c * t2 - 1.0 / 479_001_600.0; // −1/12!
    c = c * t2 + 1.0 / 3_628_800.0; // 1/10!
    c = c * t2 - 1.0 / 40_320.0;
    c = c * t2 + 1.0 / 720.0;
    c = c * t2 - 1.0 / 24.0;
    c = c * t2 + 0.5;
    let cos = 1.0 - t2 * c;
    // Quadrant q: (c, s), (−s, c), (−c, −s), (s, −c). Written as a swap and two sign-bit flips
    // (exactly IEEE negation) rather than a `match`, so loops over this function vectorise.
    let odd = quadrant & 1 == 1;
    let a = if odd { sin } else { cos };
    let b = if odd { cos } else { sin };
    let c_out = f64::from_bits(a.to_bits() ^ ((((quadrant + 1) >> 1) & 1) << 63));
    let s_out = f64::from_bits(b.to_bits() ^ (((quadrant >> 1) & 1) << 63));
    (c_out, s_out)
}

/// `2^52 + 2^51`: adding it to a value of magnitude below 2^51 rounds that value to an integer
/// (to nearest, ties to even) held in the low mantissa bits. Unlike `f64::round`, which is a
/// library call on baseline x86-64, this is one addition, and vectorises.
const ROUND_MAGIC: f64 = 6_755_399_441_055_744.0;

/// `e^x` in `f64` for the range `f32` results need: `+0` below −708 (where `f64` turns
/// subnormal; every `f32` result there is 0 anyway), `+∞` above 709.78, NaN for NaN.
///
/// `x = n·ln2 + r`, `|r| ≤ ln2/2` (with `ln2` split in two parts so the reduction is exact to
/// 2^-100), a Taylor polynomial to `r^14`, and an exact scaling by `2^n` built from the bits of
/// `n`. Written without branches so loops over it vectorise; the bits are the same either way.
#[inline(always)]
pub fn exp(x: f64) -> f64 {
    let ln2_hi = f64::from_bits(0x3FE6_2E42_FEE0_0000);
    let ln2_lo = f64::from_bits(0x3DEA_39EF_3579_3C76);
    let xc = x.clamp(-708.0, 709.79);
    let shifted = xc * (1.0 / LN2) + ROUND_MAGIC;
    let n = shifted - ROUND_MAGIC;
    let r = (xc - n * ln2_hi) - n * ln2_lo;
    let mut p = 1.0 / 87_178_291_200.0; // 1/14!
    p = p * r + 1.0 / 6_227_020_800.0;
    p = p * r + 1.0 / 479_001_600.0;
    p = p * r + 1.0 / 39_916_800.0;
    p = p * r + 1.0 / 3_628_800.0;
    p = p * r + 1.0 / 362_880.0;
    p = p * r + 1.0 / 40_320.0;
    p = p * r + 1.0 / 5_040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    // n ∈ [−1022, 1024] sits in the low bits of `shifted`; 2^n = bits (n + 1023) << 52. For
    // n = 1024 (x near 709.78) the product overflows to +∞ as it should; the exponent field
    // would wrap, so that case takes 2^1023 · 2.
    let n_bits = shifted.to_bits().wrapping_sub(ROUND_MAGIC.to_bits()) as i64;
    let big = n_bits > 1023;
    let scale = f64::from_bits(((n_bits - i64::from(big) + 1023) as u64) << 52);
    let y = p * scale * if big { 2.0 } else { 1.0 };
    let y = if x < -708.0 { 0.0 } else { y };
    let y = if x > 709.782_712_893_384 {
        f64::INFINITY
    } else {
        y
    };
    if x.is_nan() {
        x
    } else {
        y
    }
}

/// `e^x` for `f32` arguments and results, in `f32` arithmetic only (8 or 16 lanes per vector
/// instruction, so SiLU and softmax stay cheap next to the matrix products).
///
/// `x = n·ln2 + r` (`n` the nearest integer to `x·log2 e`, `ln2` split in two so `n·ln2_hi` is
/// exact), `e^r` by its Taylor polynomial to `r^7` in Horner form (`|r| ≤ 0.347`: truncation
/// below 2^-24 relative), times `2^n` built from the bits of `n`. Results: `+0` for
/// `x < −87.33` (no subnormal results), `+∞` for `x > 88.72`, NaN for NaN. Accurate to about
/// 2 ulp; what matters is that these exact operations give the same bits everywhere.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23: adding it rounds to an integer
    let ln2_hi = f32::from_bits(0x3F31_7200); // 0.693145751953125, 16 significant bits
    let ln2_lo = f32::from_bits(0x35BF_BE8E); // ln 2 − ln2_hi
    let xc = x.clamp(-87.4, 88.73);
    let shifted = xc * std::f32::consts::LOG2_E + MAGIC;
    let n = shifted - MAGIC;
    let r = (xc - n * ln2_hi) - n * ln2_lo;
    let mut p = 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    // n ∈ [−126, 128] sits in the low bits of `shifted`; 2^n = bits (n + 127) << 23, with
    // n = 128 taken as 2^127 · 2 (the exponent field would wrap).
    let n_bits = shifted.to_bits().wrapping_sub(MAGIC.to_bits()) as i32;
    let big = n_bits > 127;
    let scale = f32::from_bits(((n_bits - i32::from(big) + 127) as u32) << 23);
    let y = p * scale * if big { 2.0 } else { 1.0 };
    let y = if x < -87.33 { 0.0 } else { y };
    let y = if x > 88.722_84 { f32::INFINITY } else { y };
    if x.is_nan() {
        x
    } else {
        y
    }
}

/// SiLU `x·σ(x) = x / (1 + e^−x)` in `f32` ([`exp_f32`], one addition, one division).
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + exp_f32(-x))
}

/// `Σ x_i²` in `f32`, sequentially from index 0, each square and each sum rounded.
#[inline]
pub fn sum_squares(x: &[f32]) -> f32 {
    let mut s = 0.0f32;
    for &v in x {
        s += v * v;
    }
    s
}

/// `Σ a_i·b_i` in `f32`, sequentially from index 0, each product and each sum rounded.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut s = 0.0f32;
    for (&x, &y) in a.iter().zip(b) {
        s += x * y;
    }
    s
}

/// The network's output normalisation `x / (‖x‖ + 1e-8)` in `f32`: `‖x‖ = √(sum_squares(x))`
/// (IEEE square root), one addition, one division per element.
pub fn normalize_eps(x: &mut [f32]) {
    let denom = sum_squares(x).sqrt() + 1e-8;
    for v in x {
        *v /= denom;
    }
}

/// A unit vector for a Householder reflection: `x / ‖x‖` in `f32` (no epsilon, so the reflection
/// `I − 2vvᵀ` is orthogonal up to rounding). A zero vector stays zero (the reflection is then the
/// identity); a vector of [`super::rng::normal`] values is never zero in practice.
pub fn normalize_unit(x: &mut [f32]) {
    let norm = sum_squares(x).sqrt();
    if norm > 0.0 {
        for v in x {
            *v /= norm;
        }
    }
}

/// Householder reflection in place: `y ← y − 2(v·y)·v`, in `f32` (`t = 2·dot(v, y)`, then
/// `y_i − t·v_i` with the product and the difference rounded separately).
pub fn reflect(y: &mut [f32], v: &[f32]) {
    let t = 2.0 * dot(v, y);
    for (yi, &vi) in y.iter_mut().zip(v) {
        *yi -= t * vi;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(a: f64, b: f64) -> f64 {
        if a == b {
            0.0
        } else {
            (a - b).abs() / b.abs().max(f64::MIN_POSITIVE)
        }
    }

    #[test]
    fn ln_is_accurate_over_box_muller_domain() {
        let mut x = 1e-10f64;
        while x <= 1.0 {
            assert!(rel(ln(x), libm::log(x)) < 4e-16, "{x}");
            x *= 1.000_731;
        }
        assert_eq!(ln(1.0), 0.0);
        assert!(rel(ln(2.0), LN2) < 2e-16);
        assert!(rel(ln(1e300), libm::log(1e300)) < 4e-16);
    }

    #[test]
    fn cos_sin_turns_are_accurate() {
        for i in 0..=100_000 {
            let u = f64::from(i as f32 / 100_000.0);
            let (c, s) = cos_sin_turns(u);
            let t = TWO_PI * u;
            assert!((c - libm::cos(t)).abs() < 1e-15, "{u}");
            assert!((s - libm::sin(t)).abs() < 1e-15, "{u}");
        }
        assert_eq!(cos_sin_turns(0.0), (1.0, 0.0));
        assert_eq!(cos_sin_turns(0.25), (-0.0, 1.0));
        assert_eq!(cos_sin_turns(0.5), (-1.0, -0.0));
    }

    #[test]
    fn exp_is_accurate_and_saturates() {
        let mut x = -708.0f64;
        while x < 709.7 {
            assert!(rel(exp(x), libm::exp(x)) < 1e-15, "{x}");
            x += 0.0137;
        }
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-708.5), 0.0);
        assert_eq!(exp(709.78), libm::exp(709.78));
        assert_eq!(exp(709.8), f64::INFINITY);
        assert_eq!(exp(-1000.0), 0.0);
        assert_eq!(exp(1000.0), f64::INFINITY);
        assert!(exp(f64::NAN).is_nan());
    }

    #[test]
    fn exp_f32_is_accurate_and_saturates() {
        let mut x = -87.0f32;
        while x < 88.7 {
            let want = libm::exp(f64::from(x));
            let got = f64::from(exp_f32(x));
            assert!((got - want).abs() <= 3e-7 * want, "{x}: {got} vs {want}");
            x += 0.0123;
        }
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-200.0), 0.0);
        assert_eq!(exp_f32(100.0), f32::INFINITY);
        assert_eq!(exp_f32(88.72), libm::expf(88.72));
        assert!(exp_f32(f32::NAN).is_nan());
    }

    #[test]
    fn silu_known_values() {
        assert_eq!(silu(0.0), 0.0);
        assert!((silu(1.0) - 0.731_058_6).abs() < 1e-7);
        assert!((silu(-20.0) + 4.122_307e-8).abs() < 1e-13);
        assert_eq!(silu(100.0), 100.0);
        assert_eq!(silu(-1000.0), -0.0);
    }

    #[test]
    fn reflection_is_an_involution_up_to_rounding() {
        let mut v = vec![3.0f32, 4.0, 0.0, 12.0];
        normalize_unit(&mut v);
        let y0 = vec![1.0f32, -2.0, 0.5, 0.25];
        let mut y = y0.clone();
        reflect(&mut y, &v);
        reflect(&mut y, &v);
        for (a, b) in y.iter().zip(&y0) {
            assert!((a - b).abs() < 1e-6);
        }
        let mut z = vec![3.0f32, 4.0];
        normalize_eps(&mut z);
        assert!((z[0] - 0.6).abs() < 1e-7 && (z[1] - 0.8).abs() < 1e-7);
    }
}
