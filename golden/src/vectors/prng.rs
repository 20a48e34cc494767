//! The one pseudo-random generator behind every generated vector: SplitMix64.
//!
//! Vector suites must be reproducible bit for bit from `(suite, seed, generator_version)` on any
//! machine, today and in ten years. A generator from a crate could change its stream in a
//! future release (or its seeding helper could), so we own the few lines instead. SplitMix64
//! (Steele, Lea and Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014; the
//! reference C is Vigna's `splitmix64.c`) passes BigCrush, needs 64 bits of state, and its
//! output function doubles as a strong 64-bit mixer for deriving independent streams.
//!
//! Every derivation below is spelled out in `docs/vectors.md` so another implementation can
//! reproduce the streams. Only integer arithmetic is used, plus exact `f64` scaling, so the
//! results do not depend on the platform's maths library.

/// The SplitMix64 increment (the odd integer nearest to 2^64/φ).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function: a bijective 64-bit mixer (Stafford's variant 13).
pub const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// 64-bit FNV-1a of a string: turns a suite name into a stream key.
pub const fn fnv1a64(text: &str) -> u64 {
    let bytes = text.as_bytes();
    let mut hash: u64 = 0xCBF2_9CE4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01B3);
        i += 1;
    }
    hash
}

/// A SplitMix64 stream.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A stream starting from `seed` (the first output is `mix64(seed + GAMMA)`).
    pub const fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The stream of one case of one suite: independent of every other case, so any case can be
    /// regenerated alone and a suite of `n` cases is a prefix of the same suite with more.
    ///
    /// `state = mix64(mix64(seed) ^ fnv1a64(suite)) ^ mix64(index.wrapping_add(1))` — see
    /// `docs/vectors.md`.
    pub fn for_case(seed: u64, suite: &str, index: u64) -> Self {
        SplitMix64::new(suite_key(seed, suite) ^ mix64(index.wrapping_add(1)))
    }

    /// The stream a suite's directed (hand-designed) cases draw their free choices from.
    pub fn for_directed(seed: u64, suite: &str) -> Self {
        SplitMix64::new(suite_key(seed, suite) ^ DIRECTED_TAG)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        mix64(self.state)
    }

    /// The next 32 random bits (the high half of [`next_u64`](Self::next_u64)).
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// A number in `0..n` (`n > 0`) by the multiply-high method: `(x · n) >> 64`. Its bias is
    /// below `n / 2^64`, irrelevant for test vectors, and it takes exactly one draw, which keeps
    /// streams easy to reproduce.
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0, "below(0) has no valid result");
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// An integer in `lo..=hi` (one draw).
    pub fn range_i64(&mut self, lo: i64, hi: i64) -> i64 {
        debug_assert!(lo <= hi);
        let span = (hi as i128 - lo as i128 + 1) as u128;
        if span > u128::from(u64::MAX) {
            return self.next_u64() as i64; // the full 64-bit range
        }
        (lo as i128 + self.below(span as u64) as i128) as i64
    }

    /// An index into a slice of `len` elements (one draw).
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// `true` with probability `percent / 100` (one draw).
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// A uniformly random element of `items` (one draw).
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.index(items.len())]
    }

    /// A multiple of 2^-53 in `[0, 1)`: the top 53 bits of one draw, scaled exactly.
    pub fn unit_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }

    /// An approximately standard-normal number: the Irwin–Hall sum of four uniforms, centred and
    /// scaled to unit variance. No `ln`/`cos` (whose results differ between maths libraries), so
    /// the value is the same on every machine; the tails end at ±3.46, which is what we want for
    /// "typical" operands anyway.
    pub fn normal_f64(&mut self) -> f64 {
        let sum = self.unit_f64() + self.unit_f64() + self.unit_f64() + self.unit_f64();
        // Irwin–Hall(4) has mean 2 and variance 4/12; sqrt(3) is written out as a constant.
        (sum - 2.0) * 1.732_050_807_568_877_2
    }
}

/// Distinguishes the directed-case stream from every per-case stream.
const DIRECTED_TAG: u64 = 0xD1EC_7ED0_CA5E_5EED;

fn suite_key(seed: u64, suite: &str) -> u64 {
    mix64(mix64(seed) ^ fnv1a64(suite))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_splitmix64() {
        // First outputs of Vigna's splitmix64.c seeded with 0 and with 1234567.
        let mut zero = SplitMix64::new(0);
        assert_eq!(zero.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(zero.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        let mut other = SplitMix64::new(1_234_567);
        assert_eq!(other.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(other.next_u64(), 3_203_168_211_198_807_973);
    }

    #[test]
    fn fnv1a_matches_published_values() {
        assert_eq!(fnv1a64(""), 0xCBF2_9CE4_8422_2325);
        assert_eq!(fnv1a64("a"), 0xAF63_DC4C_8601_EC8C);
    }

    #[test]
    fn case_streams_are_independent_of_each_other() {
        let a = SplitMix64::for_case(1, "mac-bf16", 0).next_u64();
        let b = SplitMix64::for_case(1, "mac-bf16", 1).next_u64();
        let c = SplitMix64::for_case(2, "mac-bf16", 0).next_u64();
        let d = SplitMix64::for_case(1, "mac-fp16", 0).next_u64();
        assert!(a != b && a != c && a != d && b != c);
        assert_eq!(a, SplitMix64::for_case(1, "mac-bf16", 0).next_u64());
    }

    #[test]
    fn bounded_draws_stay_in_range() {
        let mut rng = SplitMix64::new(7);
        for _ in 0..10_000 {
            assert!(rng.below(10) < 10);
            let x = rng.range_i64(-128, 127);
            assert!((-128..=127).contains(&x));
            let u = rng.unit_f64();
            assert!((0.0..1.0).contains(&u));
            assert!(rng.normal_f64().abs() <= 3.47);
        }
        assert!((0..100).any(|_| rng.range_i64(i64::MIN, i64::MAX) < 0));
    }
}
