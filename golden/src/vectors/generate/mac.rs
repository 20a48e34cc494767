//! Level 0: single MACs and accumulation chains, each a `1×1×K` GEMM.
//!
//! In the spirit of Berkeley TestFloat, the suite opens with *directed* cases built on purpose
//! for every corner the contract has (ties, sticky bits, subnormals, overflow, infinities, NaNs,
//! signed zeros, cancellation, output conversions; for `int8`: extreme products, wrap-around,
//! requantisation), then fills the rest with random chains. A device needs nothing but GEMM to
//! run it: `A` is the `1×K` row of left operands, `B` the `K×1` column of right operands, `C`
//! (when present) the starting accumulator, `D` the one output.

use crate::gemm::GemmSpec;
use crate::numerics::float::{FloatFormat, F32_CANONICAL_NAN};
use crate::numerics::{OutputFormat, Precision, Requant};

use super::super::prng::SplitMix64;
use super::values::{self as v, f32_exact};
use super::{accumulator_bytes, operand_bytes, GemmInputs, GemmSource};

/// Categories of the floating MAC suites, in manifest order.
const FLOAT_CATEGORIES: &[&str] = &[
    "tie",
    "sticky",
    "subnormal-operand",
    "subnormal-product",
    "subnormal-sum",
    "beyond-f32-range",
    "overflow",
    "infinity",
    "inf-minus-inf",
    "inf-times-zero",
    "nan-operand",
    "nan-accumulator",
    "nan-chain",
    "signed-zero",
    "cancellation",
    "chain",
    "output-bf16",
    "output-fp16",
    "random",
];

/// Categories of the integer MAC suite, in manifest order.
const INT_CATEGORIES: &[&str] = &[
    "product",
    "wrap",
    "long-chain",
    "requant-shift-0",
    "requant-shift-62",
    "requant-tie",
    "requant-saturation",
    "requant-zero-point",
    "random",
];

const F32_MAX: u32 = 0x7F7F_FFFF;
const F32_INF: u32 = 0x7F80_0000;
const F32_SIGN: u32 = 0x8000_0000;

/// The level-0 case source of one precision.
pub struct MacSource {
    precision: Precision,
    directed: Vec<GemmInputs>,
    categories: Vec<&'static str>,
}

impl MacSource {
    /// Builds the directed cases (their free choices come from the suite's directed stream).
    pub fn new(precision: Precision, rng: &mut SplitMix64) -> MacSource {
        let (directed, all) = match precision.operand_format() {
            Some(format) => (float_directed(precision, format, rng), FLOAT_CATEGORIES),
            None => (int_directed(rng), INT_CATEGORIES),
        };
        // List only the categories this precision has (fp16 products cannot leave f32's range,
        // for instance), keeping the fixed order.
        let categories = all
            .iter()
            .copied()
            .filter(|c| *c == "random" || directed.iter().any(|d| d.category == *c))
            .collect();
        MacSource {
            precision,
            directed,
            categories,
        }
    }
}

impl GemmSource for MacSource {
    fn categories(&self) -> &[&'static str] {
        &self.categories
    }

    fn directed_count(&self) -> u64 {
        self.directed.len() as u64
    }

    fn case(&self, index: u64, rng: &mut SplitMix64) -> GemmInputs {
        match self.directed.get(index as usize) {
            Some(case) => case.clone(),
            None => match self.precision.operand_format() {
                Some(format) => random_float(self.precision, format, rng),
                None => random_int(rng),
            },
        }
    }
}

/// A `1×1×K` case from `(a, b)` operand pairs, an optional starting accumulator and an output.
fn chain(
    category: &'static str,
    precision: Precision,
    ops: &[(u32, u32)],
    c: Option<u32>,
    output: OutputFormat,
) -> GemmInputs {
    let spec = GemmSpec {
        precision,
        m: 1,
        n: 1,
        k: ops.len(),
        accumulate: c.is_some(),
        output,
    };
    GemmInputs {
        category,
        spec,
        a: operand_bytes(precision, ops.iter().map(|op| op.0)),
        b: operand_bytes(precision, ops.iter().map(|op| op.1)),
        c: c.map(|c| accumulator_bytes([c])),
    }
}

// ---------------------------------------------------------------------------------------------
// Floating precisions
// ---------------------------------------------------------------------------------------------

/// Builder state for the floating directed cases.
struct Float<'r> {
    precision: Precision,
    format: FloatFormat,
    rng: &'r mut SplitMix64,
    out: Vec<GemmInputs>,
}

impl Float<'_> {
    fn is_bf16(&self) -> bool {
        self.precision == Precision::Bf16
    }

    /// One MAC `c + a·b` with `f32` output.
    fn one(&mut self, category: &'static str, a: u32, b: u32, c: Option<u32>) {
        self.push(category, &[(a, b)], c, OutputFormat::F32);
    }

    fn push(
        &mut self,
        category: &'static str,
        ops: &[(u32, u32)],
        c: Option<u32>,
        output: OutputFormat,
    ) {
        self.out
            .push(chain(category, self.precision, ops, c, output));
    }

    /// Operands whose exact product is `±sig × 2^exp`.
    fn product(&mut self, negative: bool, sig: u64, exp: i32) -> Option<(u32, u32)> {
        v::product(self.format, self.rng, negative, sig, exp)
    }

    fn op(&self, x: f32) -> u32 {
        let bits = v::round(self.format, x);
        debug_assert_eq!(
            self.format.decode(bits),
            x,
            "{x} is not exact in {}",
            self.format.name
        );
        bits
    }

    /// `(+0)·(−0) = −0`: adding it leaves every accumulator unchanged (also `±0`, `±∞`, NaN),
    /// so `C` passes straight to the output stage.
    fn pass_through(&self) -> (u32, u32) {
        (0, v::negate(self.format, 0))
    }

    /// A random 24-bit normal significand with the given parity, away from the binade edges.
    fn significand(&mut self, odd: bool) -> u64 {
        let base = (1u64 << 23) + 512 + self.rng.below((1 << 23) - 1024);
        (base & !1) | u64::from(odd)
    }
}

fn float_directed(
    precision: Precision,
    format: FloatFormat,
    rng: &mut SplitMix64,
) -> Vec<GemmInputs> {
    let mut g = Float {
        precision,
        format,
        rng,
        out: Vec::new(),
    };
    ties(&mut g);
    sticky(&mut g);
    subnormal_operands(&mut g);
    if g.is_bf16() {
        subnormal_products(&mut g);
    }
    subnormal_sums(&mut g);
    if g.is_bf16() {
        beyond_f32_range(&mut g);
    }
    overflow(&mut g);
    infinities(&mut g);
    nans(&mut g);
    signed_zeros(&mut g);
    cancellation(&mut g);
    chains(&mut g);
    output_bf16(&mut g);
    output_fp16(&mut g);
    g.out
}

/// `acc + a·b` exactly halfway between two `f32` values, for every accumulator exponent where
/// the format can form the half-ulp product: accumulators of both parities (so the tie goes up
/// as often as down), both signs, products of both signs and of several odd multiples of the
/// half ulp.
fn ties(g: &mut Float) {
    let per_exponent = if g.is_bf16() { 2 } else { 4 };
    for q in -149..=104 {
        for variant in 0..per_exponent {
            let odd = variant % 2 == 1;
            let sig = if q == -149 && g.rng.percent(30) {
                // A subnormal accumulator: its ulp is 2^-149 too.
                let s = 512 + g.rng.below((1 << 23) - 1024);
                (s & !1) | u64::from(odd)
            } else {
                g.significand(odd)
            };
            let acc_negative = g.rng.percent(50);
            let Some(acc) = f32_exact(acc_negative, sig, q) else {
                continue;
            };
            // Odd multiples of the half ulp, from a random start, first one the format can form:
            // whether a case exists depends on the exponent only, never on the seed.
            let start = if variant < 2 { 0 } else { g.rng.below(64) };
            let product_negative = g.rng.percent(50);
            let found = (0..64).find_map(|i| {
                let multiple = 2 * ((start + i) % 64) + 1;
                g.product(product_negative, multiple, q - 1)
            });
            if let Some((a, b)) = found {
                g.one("tie", a, b, Some(acc));
            }
        }
    }
}

/// Products that sit just above or just below the half ulp of the accumulator, or far below
/// it, with bits spread over many positions: the rounding must see every one of them (the
/// "sticky" bit), not just the first few below the accumulator's last place.
fn sticky(g: &mut Float) {
    let h = 1u64 << g.format.mantissa_bits; // the implicit bit
    let pairs = [
        (h + 1, h - 1),         // 2^2F − 1: all ones, just below a power of two
        (h + 1, h + 1),         // h² + 2h + 1: a power of two plus far-apart bits
        (h + 1, h),             // h² + h
        (2 * h - 1, 2 * h - 1), // 4h² − 4h + 1
        (2 * h - 1, h + 1),
        (h - 1, h - 1),
    ];
    let (step, per_exponent) = if g.is_bf16() { (2, 2) } else { (1, 3) };
    for q in (-149..=104).step_by(step) {
        for _ in 0..per_exponent {
            // Every (pair, depth) combination, from a random start; the first one the format can
            // form is used, so whether a case exists depends on the exponent only.
            let depths = [0, 1, 3, 8, 20, 40];
            let combos = pairs.len() * depths.len();
            let start = g.rng.index(combos);
            let odd = g.rng.percent(50);
            let sig = g.significand(odd);
            let Some(acc) = f32_exact(g.rng.percent(50), sig, q) else {
                continue;
            };
            let negative = g.rng.percent(50);
            let found = (0..combos).find_map(|i| {
                let at = (start + i) % combos;
                let (sa, sb) = pairs[at % pairs.len()];
                let below = depths[at / pairs.len()];
                let length = 64 - (sa * sb).leading_zeros() as i32;
                // Top bit at the half-ulp position, one below it, or far below.
                let exponent = q - 1 - below - (length - 1);
                v::product_of(g.format, g.rng, negative, sa, sb, exponent)
            });
            if let Some((a, b)) = found {
                g.one("sticky", a, b, Some(acc));
            }
        }
    }
}

/// Subnormal operands (exponent field 0) times all kinds of partners.
fn subnormal_operands(g: &mut Float) {
    let f = g.format;
    let big = v::pow2(f, if g.is_bf16() { 120 } else { 15 }).expect("in range");
    for i in 0..48 {
        let a = v::subnormal(f, g.rng);
        let b = match i % 4 {
            0 => v::subnormal(f, g.rng),
            1 => v::wide_finite(f, g.rng),
            2 => big ^ (u32::from(g.rng.percent(50)) << 15),
            _ => g.op(1.0),
        };
        let (a, b) = if i % 2 == 0 { (a, b) } else { (b, a) };
        let c = match i % 3 {
            0 => None,
            1 => Some(
                v::f32_exact(g.rng.percent(50), 1 + g.rng.below(1 << 23), -149).expect("subnormal"),
            ),
            _ => Some(v::normal(crate::numerics::float::F32, g.rng, 1.0)),
        };
        g.one("subnormal-operand", a, b, c);
    }
}

/// `bf16` products that land in `f32`'s subnormal range or below it: the smallest subnormal,
/// the tie at 2^-150 (rounds to 0), just above and below it, 1.5 ulp ties, products of two
/// subnormals (round to a signed zero), and random products down there.
fn subnormal_products(g: &mut Float) {
    let exact: [(u64, u64, i32); 12] = [
        (1, 1, -149),       // smallest subnormal
        (1, 1, -150),       // tie between 0 and 2^-149: to even, 0
        (3, 1, -151),       // 0.75 ulp: up to 2^-149
        (1, 1, -151),       // 0.25 ulp: down to 0
        (0x81, 1, -157),    // just above the tie: 2^-149
        (0xFF, 1, -158),    // just below the tie: 0
        (3, 1, -150),       // 1.5 ulp: tie to even, 2^-148
        (5, 1, -151),       // 1.25 ulp: 2^-149
        (1, 1, -126),       // smallest normal
        (0xFF, 0xFF, -142), // many bits across the subnormal boundary
        (1, 1, -266),       // two smallest subnormals: a signed zero
        (0x7F, 0x7F, -266),
    ];
    for (sa, sb, e) in exact {
        for negative in [false, true] {
            if let Some((a, b)) = v::product_of(g.format, g.rng, negative, sa, sb, e) {
                g.one("subnormal-product", a, b, None);
            }
        }
    }
    for _ in 0..40 {
        let e = g.rng.range_i64(-175, -128) as i32;
        let (sa, sb) = (0x80 | g.rng.below(0x80), 0x80 | g.rng.below(0x80));
        let negative = g.rng.percent(50);
        if let Some((a, b)) = v::product_of(g.format, g.rng, negative, sa, sb, e - 14) {
            let c = g.rng.percent(30).then(|| {
                f32_exact(g.rng.percent(50), 1 + g.rng.below(1 << 23), -149).expect("subnormal")
            });
            g.one("subnormal-product", a, b, c);
        }
    }
}

/// Subnormal accumulators, and sums that enter or leave the subnormal range.
fn subnormal_sums(g: &mut Float) {
    let f = g.format;
    for i in 0..32 {
        let acc = f32_exact(g.rng.percent(50), 1 + g.rng.below((1 << 23) - 1), -149).expect("sub");
        let (a, b) = if g.is_bf16() && i % 2 == 0 {
            // A product in the subnormal range, either sign.
            let e = g.rng.range_i64(-160, -140) as i32;
            let negative = g.rng.percent(50);
            let sig = 1 + g.rng.below(0xFF);
            g.product(negative, sig, e).unwrap_or((0, 0))
        } else {
            // A zero product of either sign: the accumulator passes through (sign rules apply).
            let zero = v::negate(f, 0) * u32::from(g.rng.percent(50));
            (zero, v::wide_finite(f, g.rng))
        };
        g.one("subnormal-sum", a, b, Some(acc));
    }
    if g.is_bf16() {
        let min_sub = g.product(false, 1, -149).expect("bf16 reaches 2^-149");
        let neg_min_sub = (v::negate(g.format, min_sub.0), min_sub.1);
        // Largest subnormal + smallest subnormal = smallest normal, and back.
        g.one("subnormal-sum", min_sub.0, min_sub.1, Some(0x007F_FFFF));
        g.one(
            "subnormal-sum",
            neg_min_sub.0,
            neg_min_sub.1,
            Some(0x0080_0000),
        );
        g.one("subnormal-sum", min_sub.0, min_sub.1, Some(0x8080_0000));
        // A subnormal that cancels exactly: +0.
        for sig in [1u64, 0x5A, 0xFFFF] {
            let acc = f32_exact(true, sig, -149).expect("subnormal");
            if let Some((a, b)) = g.product(false, sig, -149) {
                g.one("subnormal-sum", a, b, Some(acc));
            }
        }
    }
}

/// `bf16` products outside `f32`'s range (up to 2^254) that an accumulator brings back into
/// range, or that overflow; a product must not be rounded or clamped to `f32` before the add.
fn beyond_f32_range(g: &mut Float) {
    let neg_max = F32_SIGN | F32_MAX;
    for (c, negative) in [
        (Some(neg_max), false), // 2^128 − (2^128 − 2^104) = 2^104
        (Some(F32_MAX), true),  // −2^128 + (2^128 − 2^104) = −2^104
        (None, false),          // 2^128 alone: +∞
        (None, true),
        (Some(F32_MAX), false), // +∞
    ] {
        if let Some((a, b)) = g.product(negative, 1, 128) {
            g.one("beyond-f32-range", a, b, c);
        }
    }
    // Products in [2^128, 2^130) against ∓MAX: most come back into range.
    for _ in 0..24 {
        let (sa, sb) = (0x80 | g.rng.below(0x80), 0x80 | g.rng.below(0x80));
        let length = 64 - (sa * sb).leading_zeros() as i32;
        let e = 128 + g.rng.below(2) as i32 - (length - 1);
        let negative = g.rng.percent(50);
        if let Some((a, b)) = v::product_of(g.format, g.rng, negative, sa, sb, e) {
            let c = if negative { F32_MAX } else { neg_max };
            g.one("beyond-f32-range", a, b, Some(c));
        }
    }
    // Far beyond: 2^254 (largest bf16 squared) against finite and infinite accumulators.
    let max = v::max_finite(g.format);
    for c in [None, Some(neg_max), Some(F32_SIGN | F32_INF), Some(F32_INF)] {
        g.one("beyond-f32-range", max, max, c);
    }
    // A two-step chain: 2^128 rounds to +∞ at step one, so −2^128 at step two gives NaN, not 0.
    if let (Some(p), Some(n)) = (g.product(false, 1, 128), g.product(true, 1, 128)) {
        g.push("beyond-f32-range", &[p, n], None, OutputFormat::F32);
        // With −MAX first, step one is back in range (2^104) and step two adds −2^104: +0.
        if let Some(back) = g.product(true, 1, 104) {
            g.push(
                "beyond-f32-range",
                &[p, back],
                Some(neg_max),
                OutputFormat::F32,
            );
        }
    }
}

/// Sums at and around `f32`'s overflow threshold `2^128 − 2^103`, both signs.
fn overflow(g: &mut Float) {
    for sign in [0, F32_SIGN] {
        let negative = sign != 0;
        let max = sign | F32_MAX;
        // MAX + 2^103 is the tie between MAX (odd) and 2^128: to even, so ∞.
        // MAX + (2^103 − 2^95) is just below it: MAX.  MAX + 2^103 + 2^96: ∞.
        for (sa, sb, e) in [(1u64, 1u64, 103), (0xFF, 1, 95), (0x81, 1, 96), (1, 1, 104)] {
            if let Some((a, b)) = v::product_of(g.format, g.rng, negative, sa, sb, e) {
                g.one("overflow", a, b, Some(max));
            }
        }
        // (MAX − ulp) + 1.5 ulp: the tie again, reached from below.
        if let Some((a, b)) = v::product_of(g.format, g.rng, negative, 3, 1, 103) {
            g.one("overflow", a, b, Some(sign | (F32_MAX - 1)));
        }
        // The largest product on its own (∞ for bf16, finite for fp16) and on top of MAX.
        let big = v::max_finite(g.format) | (sign >> 16);
        g.one("overflow", big, v::max_finite(g.format), None);
        g.one("overflow", big, v::max_finite(g.format), Some(max));
        g.one(
            "overflow",
            big,
            v::max_finite(g.format),
            Some(max ^ F32_SIGN),
        );
    }
}

/// Infinite operands and accumulators that give infinities (no NaN).
fn infinities(g: &mut Float) {
    let f = g.format;
    let inf = v::infinity(f);
    for _ in 0..6 {
        let x = v::wide_finite(f, g.rng);
        let c = v::normal(crate::numerics::float::F32, g.rng, 1e6);
        let s = u32::from(g.rng.percent(50)) << 15;
        g.one("infinity", inf | s, x, None); // ±∞ · x
        g.one("infinity", x, inf | s, Some(c)); // c + x · ±∞
        let y = v::wide_finite(f, g.rng);
        g.one("infinity", x, y, Some(F32_INF | (s << 16))); // ±∞ + finite
        g.one("infinity", inf | s, inf, Some(F32_INF | (s << 16))); // same-signed infinities
    }
    for s in [0, 0x8000u32] {
        let p = g.pass_through();
        g.one("infinity", p.0, p.1, Some(F32_INF | (s << 16))); // ±∞ + (−0)
        g.one("infinity", inf | s, inf | s, None); // (±∞)² = +∞
    }
}

/// Every way to make a NaN, and NaNs of every payload and sign in every position: the output
/// must be the canonical NaN of the output format.
fn nans(g: &mut Float) {
    let f = g.format;
    let inf = v::infinity(f);
    let zero = 0;
    let neg_zero = v::negate(f, 0);
    // ∞ − ∞, both ways, from the accumulator or within a chain.
    for s in [0u32, 0x8000] {
        let x = v::wide_finite(f, g.rng) & 0x7FFF;
        g.one(
            "inf-minus-inf",
            inf | s,
            x,
            Some(F32_INF | ((s ^ 0x8000) << 16)),
        );
        g.one(
            "inf-minus-inf",
            x | s,
            inf,
            Some(F32_INF | ((s ^ 0x8000) << 16)),
        );
        g.one(
            "inf-minus-inf",
            inf | s,
            inf,
            Some(F32_INF | ((s ^ 0x8000) << 16)),
        );
        g.push(
            "inf-minus-inf",
            &[(inf | s, x), (inf, x | (s ^ 0x8000))],
            None,
            OutputFormat::F32,
        );
        g.push(
            "inf-minus-inf",
            &[(inf, inf), (inf | s, inf | (s ^ 0x8000))],
            None,
            OutputFormat::Bf16,
        );
        g.push(
            "inf-minus-inf",
            &[(inf, inf), (inf | s, inf | (s ^ 0x8000))],
            None,
            OutputFormat::Fp16,
        );
    }
    // ∞ · 0 in both orders with every sign, against assorted accumulators.
    let accs = [
        None,
        Some(0),
        Some(0x3F80_0000),
        Some(F32_INF),
        Some(F32_SIGN | F32_INF),
        Some(0xFFC0_0001),
    ];
    for z in [zero, neg_zero] {
        for i in [inf, v::negate(f, inf)] {
            for (n, c) in accs.iter().enumerate() {
                let (a, b) = if n % 2 == 0 { (i, z) } else { (z, i) };
                g.one("inf-times-zero", a, b, *c);
            }
        }
    }
    // NaN operands with assorted payloads and signs.
    let payloads = v::nans(f, g.rng);
    let outputs = [OutputFormat::F32, OutputFormat::Bf16, OutputFormat::Fp16];
    for (n, nan) in payloads.iter().enumerate() {
        let partners = [zero, inf, v::wide_finite(f, g.rng), *nan];
        let partner = partners[n % partners.len()];
        let c = match n % 3 {
            0 => None,
            1 => Some(F32_SIGN | F32_INF),
            _ => Some(v::normal(crate::numerics::float::F32, g.rng, 10.0)),
        };
        let ops = if n % 2 == 0 {
            (*nan, partner)
        } else {
            (partner, *nan)
        };
        g.push("nan-operand", &[ops], c, outputs[n % 3]);
    }
    // NaN accumulators with assorted payloads, against every kind of product.
    let acc_nans = [
        F32_CANONICAL_NAN,
        F32_SIGN | F32_CANONICAL_NAN,
        F32_INF | 1,
        F32_SIGN | F32_INF | 1,
        0x7FFF_FFFF,
        0xFFFF_FFFF,
        0x7FA0_0000,
        F32_INF | (1 + g.rng.below(0x7F_FFFF) as u32),
    ];
    for (n, acc) in acc_nans.iter().enumerate() {
        let products = [
            (zero, zero),
            (inf, g.op(1.0)),
            (v::negate(f, inf), g.op(2.0)),
            (v::wide_finite(f, g.rng), v::wide_finite(f, g.rng)),
        ];
        for (m, p) in products.iter().enumerate() {
            g.push("nan-accumulator", &[*p], Some(*acc), outputs[(n + m) % 3]);
        }
    }
    // NaN created or injected mid-chain, followed by steps that would otherwise be finite or ∞.
    for n in 0..12 {
        let k = 3 + g.rng.below(6) as usize;
        let mut ops: Vec<(u32, u32)> = (0..k)
            .map(|_| (v::normal(f, g.rng, 4.0), v::normal(f, g.rng, 4.0)))
            .collect();
        let at = g.rng.index(k - 1);
        ops[at] = match n % 3 {
            0 => (payloads[n % payloads.len()], g.op(1.0)),
            1 => (inf, zero),
            _ => (inf, g.op(1.0)),
        };
        if n % 3 == 2 {
            ops[at + 1] = (v::negate(f, inf), g.op(1.0)); // ∞ then −∞
        } else {
            ops[k - 1] = (inf, inf); // a later +∞ must not revive the chain
        }
        g.push("nan-chain", &ops, None, outputs[n % 3]);
    }
}

/// Signs of zero: every combination of zero and non-zero operands with `+0`, `−0` or no
/// accumulator, exact cancellation to `+0`, and `−0` surviving a chain and the output stage.
fn signed_zeros(g: &mut Float) {
    let f = g.format;
    let neg = |x| v::negate(f, x);
    let x = g.rng.pick(&[1.5, 3.0, 0.375, 5.0, 96.0]);
    let x = g.op(x);
    let y = g.op(0.75);
    let values = [0, neg(0), x, neg(x)];
    let partners = [0, neg(0), y, neg(y)];
    for acc in [None, Some(0u32), Some(F32_SIGN)] {
        for a in values {
            for b in partners {
                let is_zero = |bits: u32| bits & 0x7FFF == 0;
                if is_zero(a) || is_zero(b) {
                    g.one("signed-zero", a, b, acc);
                }
            }
        }
    }
    // x·y + (−x·y) = +0 exactly, whichever sign comes first.
    let product = f.decode(x) * f.decode(y); // exact: few significant bits
    for s in [0, F32_SIGN] {
        g.one(
            "signed-zero",
            x ^ (s >> 16),
            y,
            Some((-product).to_bits() ^ s),
        );
    }
    // −0 through a chain of −0 products, into each output format.
    let nz = (0, neg(0));
    for output in [OutputFormat::F32, OutputFormat::Bf16, OutputFormat::Fp16] {
        g.push("signed-zero", &[nz, nz, nz, nz], Some(F32_SIGN), output);
        g.push("signed-zero", &[nz, nz, nz, nz], None, output);
    }
    // A tiny product that rounds to zero keeps its own sign (bf16 only reaches below 2^-150).
    if g.is_bf16() {
        for (negative, acc) in [
            (true, None),
            (true, Some(0)),
            (false, Some(F32_SIGN)),
            (true, Some(F32_SIGN)),
        ] {
            if let Some((a, b)) = g.product(negative, 1, -152) {
                g.one("signed-zero", a, b, acc);
            }
        }
    }
}

/// Massive cancellation: `acc ≈ −a·b`, leaving a few ulps (exactly representable); chains
/// where large terms cancel and the small remainder depends on every earlier rounding.
fn cancellation(g: &mut Float) {
    let f = g.format;
    let f32_format = crate::numerics::float::F32;
    let mut made = 0;
    while made < 48 {
        let scale = crate::numerics::float::pow2_f64(g.rng.range_i64(-20, 20) as i32);
        let a = v::normal(f, g.rng, scale);
        let b = v::normal(f, g.rng, 1.0);
        let p = f64::from(f.decode(a)) * f64::from(f.decode(b));
        let p32 = p as f32;
        if p == 0.0 || f64::from(p32) != p || !p32.is_normal() {
            continue;
        }
        let k = g.rng.range_i64(-3, 3) as i32;
        let acc_bits = (-p32).to_bits().wrapping_add_signed(k);
        let acc = f32::from_bits(acc_bits);
        if !acc.is_finite() || acc.is_sign_negative() != (-p32).is_sign_negative() {
            continue;
        }
        g.one("cancellation", a, b, Some(acc_bits));
        made += 1;
    }
    for _ in 0..16 {
        // big, −big·(1 ± tiny), small: the result is dominated by rounding of the first steps.
        let big = v::normal(f, g.rng, 1000.0);
        let one = g.op(1.0);
        // 1 − 2^-F: the largest operand below one.
        let nearly = g.op(1.0 - f32::from_bits((127 - f.mantissa_bits) << 23));
        let small = v::normal(f, g.rng, 0.001);
        let c = g.rng.percent(50).then(|| v::normal(f32_format, g.rng, 1.0));
        g.push(
            "cancellation",
            &[(big, one), (v::negate(f, big), nearly), (small, one)],
            c,
            OutputFormat::F32,
        );
    }
}

/// Accumulation order and per-step rounding: `2^e + 2^(e−24) + 2^(e−24) …` stays `2^e`
/// (each step is a tie to even), while the small terms first add up; alternations and long
/// random chains of mixed magnitudes.
fn chains(g: &mut Float) {
    let f = g.format;
    let exponents: Vec<i32> = if g.is_bf16() {
        (-100..=100).step_by(25).collect()
    } else {
        vec![0, 5, 10, 20, 28]
    };
    for e in exponents {
        for n in [2usize, 3, 8] {
            let (Some(big), Some(small)) = (g.product(false, 1, e), g.product(false, 1, e - 24))
            else {
                continue;
            };
            let mut ops = vec![big];
            ops.extend(std::iter::repeat_n(small, n));
            g.push("chain", &ops, None, OutputFormat::F32);
            ops.rotate_left(1); // the small terms first
            g.push("chain", &ops, None, OutputFormat::F32);
        }
    }
    for _ in 0..8 {
        let big = v::normal(f, g.rng, 1e4);
        let tiny = v::normal(f, g.rng, 1e-3);
        let one = g.op(1.0);
        // big, tiny, −big: the tiny term is lost (or not) depending on big's ulp.
        g.push(
            "chain",
            &[(big, one), (tiny, one), (v::negate(f, big), one)],
            None,
            OutputFormat::F32,
        );
        g.push(
            "chain",
            &[(big, one), (v::negate(f, big), one), (tiny, one)],
            None,
            OutputFormat::F32,
        );
    }
    for k in [17usize, 31, 64, 100, 257] {
        let ops: Vec<(u32, u32)> = (0..k)
            .map(|i| {
                let scale = crate::numerics::float::pow2_f64((i % 13) as i32 - 6);
                (v::normal(f, g.rng, scale), v::normal(f, g.rng, 1.0))
            })
            .collect();
        let c = Some(v::normal(crate::numerics::float::F32, g.rng, 10.0));
        g.push("chain", &ops, c, OutputFormat::F32);
    }
}

/// `f32 → bf16` conversion: ties of both parities at many exponents, one below and above each
/// tie, subnormals, the overflow threshold `2^128 − 2^119`, zeros, infinities and NaNs.
fn output_bf16(g: &mut Float) {
    let mut values = Vec::new();
    for i in 0..24 {
        let biased = if i < 4 {
            i as u32
        } else {
            1 + g.rng.below(253) as u32
        };
        let high = (g.rng.below(128) as u32) << 16;
        for low in [0x8000, 0x7FFF, 0x8001] {
            values.push((biased << 23) | high | low);
            values.push((biased << 23) | high | 0x1_0000 | low); // the other parity
        }
    }
    values.extend([
        0x7F7F_7FFF, // just below the threshold: bf16 MAX
        0x7F7F_8000, // the tie at 2^128 − 2^119: to even, ∞
        0x7F7F_FFFF,
        0x7F7F_0000,
        0x0000_8000, // subnormal tie: 0
        0x0001_8000, // subnormal tie: 0x0002
        0x0000_7FFF,
        0x0000_FFFF,
        0x007F_FFFF, // rounds up to the smallest normal
        0x0000_0001,
        0,
        F32_INF,
        F32_CANONICAL_NAN,
        0x7F80_0001,
        0xFFFF_FFFF,
    ]);
    let pass = g.pass_through();
    for bits in values {
        for sign in [0, F32_SIGN] {
            g.push(
                "output-bf16",
                &[pass],
                Some(bits ^ sign),
                OutputFormat::Bf16,
            );
        }
    }
}

/// `f32 → fp16` conversion: ties in the normal and subnormal ranges, the overflow threshold
/// 65520, values that underflow to zero, zeros, infinities and NaNs.
fn output_fp16(g: &mut Float) {
    let mut values = Vec::new();
    for i in 0..24 {
        let e = if i < 3 {
            -14 + i
        } else {
            g.rng.range_i64(-14, 15) as i32
        };
        let biased = (e + 127) as u32;
        let high = (g.rng.below(1024) as u32) << 13;
        for low in [0x1000, 0x0FFF, 0x1001] {
            values.push((biased << 23) | high | low);
            values.push((biased << 23) | (high ^ 0x2000) | low);
        }
    }
    for i in 0..12 {
        // Subnormal fp16 results (f32 values in [2^-25, 2^-14)): exact ties (2t+1)·2^-25
        // between two subnormals, and arbitrary values.
        let value = if i % 2 == 0 {
            f32_exact(false, 2 * g.rng.below(1024) + 1, -25)
        } else {
            let e = g.rng.range_i64(-25, -15) as i32;
            f32_exact(false, (1 << 23) | g.rng.below(1 << 23), e - 23)
        };
        values.push(value.expect("normal f32"));
    }
    values.extend([
        0x477F_E000, // 65504: fp16 MAX
        0x477F_EFFF, // just below 65520: MAX
        0x477F_F000, // 65520, the tie: ∞
        0x4780_0000, // 65536
        F32_MAX,
        0x3380_0000, // 2^-24: smallest subnormal
        0x3300_0000, // 2^-25: tie, 0
        0x3300_0001, // just above: 2^-24
        0x33C0_0000, // 1.5·2^-24: tie, 2^-23
        0x387F_C000, // 2^-14 − 2^-25: tie, rounds up to the smallest normal
        0x3280_0000, // 2^-26: 0
        0x0000_0001, // f32 subnormal: 0
        0,
        F32_INF,
        F32_CANONICAL_NAN,
        0xFF80_0001,
    ]);
    let pass = g.pass_through();
    for bits in values {
        for sign in [0, F32_SIGN] {
            g.push(
                "output-fp16",
                &[pass],
                Some(bits ^ sign),
                OutputFormat::Fp16,
            );
        }
    }
}

/// A random floating chain: lengths mostly 1 to 8, operands from one of several distributions,
/// an accumulator half of the time, outputs in every format.
fn random_float(precision: Precision, format: FloatFormat, rng: &mut SplitMix64) -> GemmInputs {
    let f32_format = crate::numerics::float::F32;
    let k = match rng.below(100) {
        0..=49 => 1,
        50..=89 => 2 + rng.below(7) as usize,
        _ => 9 + rng.below(56) as usize,
    };
    let style = rng.below(4);
    let scale = crate::numerics::float::pow2_f64(rng.range_i64(-8, 8) as i32);
    let draw = |rng: &mut SplitMix64| match style {
        0 => v::normal(format, rng, scale),
        1 => v::wide_finite(format, rng),
        2 => v::uniform_bits(format, rng),
        _ if rng.percent(15) => v::special(format, rng),
        _ => v::normal(format, rng, scale),
    };
    let ops: Vec<(u32, u32)> = (0..k).map(|_| (draw(rng), draw(rng))).collect();
    let c = rng.percent(50).then(|| match rng.below(4) {
        0 => v::normal(f32_format, rng, scale * scale * 4.0),
        1 => v::wide_finite(f32_format, rng),
        2 => v::special(f32_format, rng),
        _ => {
            // Near the negated first product: cancellation.
            let (a, b) = ops[0];
            let p = (f64::from(format.decode(a)) * f64::from(format.decode(b))) as f32;
            (-p).to_bits().wrapping_add(rng.below(5) as u32)
        }
    });
    let output = match rng.below(20) {
        0..=13 => OutputFormat::F32,
        14..=16 => OutputFormat::Bf16,
        _ => OutputFormat::Fp16,
    };
    chain("random", precision, &ops, c, output)
}

// ---------------------------------------------------------------------------------------------
// int8
// ---------------------------------------------------------------------------------------------

fn i8_op(x: i64) -> u32 {
    u32::from(x as i8 as u8)
}

fn int_case(
    category: &'static str,
    ops: &[(i64, i64)],
    c: Option<i32>,
    output: OutputFormat,
) -> GemmInputs {
    let ops: Vec<(u32, u32)> = ops.iter().map(|(a, b)| (i8_op(*a), i8_op(*b))).collect();
    chain(category, Precision::Int8, &ops, c.map(|c| c as u32), output)
}

fn rq(multiplier: i32, shift: u8, zero_point: i8) -> OutputFormat {
    OutputFormat::I8(Requant {
        multiplier,
        shift,
        zero_point,
    })
}

fn int_directed(rng: &mut SplitMix64) -> Vec<GemmInputs> {
    let mut out = Vec::new();
    let edges = [-128i64, -127, -64, -2, -1, 0, 1, 2, 63, 64, 126, 127];
    // Extreme products, alone and on top of an accumulator.
    for a in edges {
        for b in edges {
            out.push(int_case("product", &[(a, b)], None, OutputFormat::I32));
        }
    }
    // Wrap-around at ±2^31 in one step.
    let (max, min) = (i32::MAX, i32::MIN);
    for (c, a, b) in [
        (max, 1, 1),
        (max, -128, -128),
        (max - 16383, -128, -128), // exactly 2^31: wraps to MIN
        (max - 16384, -128, -128), // MAX exactly
        (min, -1, 1),
        (min, -128, 127),
        (min + 16255, -128, 127), // exactly −2^31 − 1: wraps to MAX
        (min + 16256, -128, 127), // MIN exactly
        (-1, -128, -128),
        (0, 0, 0),
        (max, 0, 0),
        (min, 0, 0),
    ] {
        out.push(int_case("wrap", &[(a, b)], Some(c), OutputFormat::I32));
        out.push(int_case("wrap", &[(b, a)], Some(c), OutputFormat::I32));
    }
    // Long chains of the largest product: 2^17 · 2^14 = 2^31 wraps to MIN, 2^18 steps back to 0.
    for (k, a, b, c) in [
        (131_072usize, -128, -128, None),
        (131_071, -128, -128, None),
        (131_073, -128, -128, None),
        (262_144, -128, -128, None),
        (132_106, -128, 127, None),
        (4_096, -128, -128, Some(max - 40_000_000)),
    ] {
        let ops = vec![(a, b); k];
        out.push(int_case("long-chain", &ops, c, OutputFormat::I32));
    }
    // Requantisation, shift 0: saturation and zero points with identity and negative scales.
    for acc in [
        i32::MIN,
        -129,
        -128,
        -127,
        -1,
        0,
        1,
        126,
        127,
        128,
        i32::MAX,
    ] {
        for (m, zp) in [(1, 0), (1, 5), (1, -5), (-1, 0), (2, 0)] {
            out.push(int_case(
                "requant-shift-0",
                &[(0, 0)],
                Some(acc),
                rq(m, 0, zp),
            ));
        }
    }
    // Shift 62: products near 2^62 against the largest multipliers.
    for acc in [
        i32::MIN,
        i32::MAX,
        1 << 30,
        -(1 << 30),
        3 << 29,
        -(3 << 29),
        1,
        -1,
    ] {
        for m in [i32::MIN, i32::MAX, 1 << 30, -(1 << 30), 3] {
            out.push(int_case(
                "requant-shift-62",
                &[(0, 0)],
                Some(acc),
                rq(m, 62, 0),
            ));
        }
    }
    // Exact ties (acc·m = odd · 2^(shift−1)) at every shift, both signs: rounded half up.
    for shift in 1..=62u8 {
        let s = u32::from(shift);
        for negative in [false, true] {
            let (multiplier, magnitude) = if s >= 33 {
                // Weight 2^31 in the multiplier (−2^31), the rest in the accumulator.
                let e = s - 32;
                (i32::MIN, odd_up_to(rng, i64::from(i32::MAX) >> e) << e)
            } else {
                let low = (s - 1).saturating_sub(29);
                let high = (s - 1).min(30);
                let j = low + rng.below(u64::from(high - low + 1)) as u32;
                let rest = s - 1 - j;
                (
                    1i32 << j,
                    odd_up_to(rng, i64::from(i32::MAX) >> rest) << rest,
                )
            };
            let acc = if negative { -magnitude } else { magnitude };
            let zp = rng.range_i64(-3, 3) as i8;
            let acc = i32::try_from(acc).expect("constructed to fit");
            out.push(int_case(
                "requant-tie",
                &[(0, 0)],
                Some(acc),
                rq(multiplier, shift, zp),
            ));
        }
    }
    // Saturation: results just inside and outside [−128, 127] after scaling and zero point.
    for target in [-130i64, -129, -128, -127, 126, 127, 128, 129, 1000, -1000] {
        for shift in [4u8, 16, 31] {
            let acc = target << shift;
            if let Ok(acc) = i32::try_from(acc) {
                out.push(int_case(
                    "requant-saturation",
                    &[(0, 0)],
                    Some(acc),
                    rq(1, shift, 0),
                ));
            }
        }
    }
    // Zero points at their extremes, moving results across both bounds.
    for zp in [-128i8, -100, -1, 1, 100, 127] {
        for acc in [-300, -255, -1, 0, 1, 255, 300] {
            out.push(int_case(
                "requant-zero-point",
                &[(1, 1)],
                Some(acc - 1),
                rq(1, 1, zp),
            ));
        }
    }
    out
}

/// A random odd number in `1..=max` (at most 15), `max ≥ 1`.
fn odd_up_to(rng: &mut SplitMix64, max: i64) -> i64 {
    2 * rng.below((((max - 1) / 2) + 1).min(8) as u64) as i64 + 1
}

fn random_int(rng: &mut SplitMix64) -> GemmInputs {
    let k = match rng.below(100) {
        0..=49 => 1,
        50..=89 => 2 + rng.below(15) as usize,
        _ => 17 + rng.below(240) as usize,
    };
    let style = rng.below(3);
    let draw = |rng: &mut SplitMix64| match style {
        0 => rng.range_i64(-128, 127),
        1 => rng.range_i64(-8, 8),
        _ => rng.pick(&[-128, -127, -1, 0, 1, 126, 127]),
    };
    let ops: Vec<(i64, i64)> = (0..k).map(|_| (draw(rng), draw(rng))).collect();
    let c = rng.percent(50).then(|| match rng.below(3) {
        0 => rng.next_u32() as i32,
        1 => {
            let near = rng.range_i64(0, 1 << 20) as i32;
            if rng.percent(50) {
                i32::MAX - near
            } else {
                i32::MIN + near
            }
        }
        _ => rng.range_i64(-1000, 1000) as i32,
    });
    let output = if rng.percent(70) {
        OutputFormat::I32
    } else {
        let shift = rng.below(63) as u8;
        let multiplier = match rng.below(3) {
            0 => rng.next_u32() as i32,
            1 => rng.range_i64(-1000, 1000) as i32,
            _ => 1 << rng.below(31),
        };
        rq(multiplier, shift, rng.range_i64(-128, 127) as i8)
    };
    int_case("random", &ops, c, output)
}
