//! The network's seeded random numbers: `seed32`, the u32 mix, uniform and Box–Muller normal.
//!
//! Every random quantity of the PoC (input embeddings, synthetic weights, layer reflections, the
//! k-pick and the rotation) comes from these few functions, so they are specified to the bit:
//!
//! - [`seed32`]: the first four bytes of SHA-256 of a UTF-8 string, big-endian;
//! - [`mix`]: one block of MurmurHash3 x86_32 *without* the length xor before the finaliser;
//! - [`uniform_at`]: `f32(mix(i, seed)) · 2^-32` (the u32 → f32 conversion rounds to nearest even,
//!   so 1.0 can occur);
//! - [`normal`]: Box–Muller over `u1 = max(u[0..m], 1e-10)`, `u2 = u[m..2m]`, with `ln`, `sqrt`,
//!   `cos(2π·u2)` and `sin(2π·u2)` evaluated in `f64` by the fixed, pure-Rust code of
//!   [`super::math`] and rounded once to `f32`.
//!
//! The value at index `i` depends only on `(seed, i, n)`, so generation can be split into chunks
//! and threads freely without changing a bit ([`normal_into_parallel`]).

use sha2::{Digest, Sha256};

use super::math;

/// The network's string seed: the first 4 bytes of SHA-256 of `s`, read big-endian.
pub fn seed32(s: &str) -> u32 {
    let digest = Sha256::digest(s.as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// The eight big-endian `u32` words of SHA-256 of `s`: the seeds of the "stronger RNG" variant.
pub fn seed32x8(s: &str) -> [u32; 8] {
    let digest = Sha256::digest(s.as_bytes());
    std::array::from_fn(|w| {
        u32::from_be_bytes([
            digest[4 * w],
            digest[4 * w + 1],
            digest[4 * w + 2],
            digest[4 * w + 3],
        ])
    })
}

/// One block of MurmurHash3 x86_32 keyed by `seed`, without the length xor (the network's mix).
#[inline(always)]
pub fn mix(key: u32, seed: u32) -> u32 {
    let mut k = key.wrapping_mul(0xcc9e_2d51);
    k = k.rotate_left(15);
    k = k.wrapping_mul(0x1b87_3593);
    let mut h = seed ^ k;
    h = h.rotate_left(13);
    h = h.wrapping_mul(5).wrapping_add(0xe654_6b64);
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// `uniform(seed, ·)[i]`: `f32(mix(i, seed)) / 2^32`, the u32 → f32 conversion rounding to
/// nearest even (so the result lies in `[0, 1]`, 1.0 included).
#[inline(always)]
pub fn uniform_at(seed: u32, i: u32) -> f32 {
    // `as f32` rounds to nearest, ties to even; the scaling by 2^-32 is exact.
    mix(i, seed) as f32 * (1.0 / 4_294_967_296.0)
}

/// `uniform(seed, n)`: `n` uniform values.
pub fn uniform(seed: u32, n: usize) -> Vec<f32> {
    (0..n).map(|i| uniform_at(seed, index32(i))).collect()
}

/// The smallest `u1` Box–Muller takes the logarithm of (the network's clamp).
pub const U1_FLOOR: f32 = 1e-10;

/// One Box–Muller pair from the uniform values `u1` (clamped here) and `u2`:
/// `(sqrt(-2 ln u1)·cos(2π u2), sqrt(-2 ln u1)·sin(2π u2))`, computed in `f64` by
/// [`math::ln`], [`f64::sqrt`] and [`math::cos_sin_turns`], each product rounded once to `f32`.
#[inline]
pub fn box_muller(u1: f32, u2: f32) -> (f32, f32) {
    let u1 = if u1 > U1_FLOOR { u1 } else { U1_FLOOR };
    let radius = (-2.0 * math::ln(f64::from(u1))).sqrt();
    let (cos, sin) = math::cos_sin_turns(f64::from(u2));
    ((radius * cos) as f32, (radius * sin) as f32)
}

/// `normal(seed, n)`: `m = ceil(n/2)` Box–Muller pairs over `uniform(seed, 2m)`; the cosines fill
/// `[0, m)` and the sines `[m, n)` (the last sine is dropped when `n` is odd).
pub fn normal(seed: u32, n: usize) -> Vec<f32> {
    let mut out = vec![0.0; n];
    normal_into(seed, &mut out);
    out
}

/// [`normal`] written into `out` (`n = out.len()`).
pub fn normal_into(seed: u32, out: &mut [f32]) {
    let n = out.len();
    let m = n.div_ceil(2);
    let (cosines, sines) = out.split_at_mut(m);
    fill_pairs(seed, m, 0, cosines, sines);
}

/// [`normal`] written into `out`, split over `threads` threads. Bit-identical to [`normal_into`]
/// for every thread count: each value is a pure function of `(seed, index, n)`.
pub fn normal_into_parallel(seed: u32, out: &mut [f32], threads: usize) {
    let n = out.len();
    let m = n.div_ceil(2);
    let threads = threads.clamp(1, 64);
    if threads == 1 || n < 1 << 16 {
        return normal_into(seed, out);
    }
    let (cosines, sines) = out.split_at_mut(m);
    let per = m.div_ceil(threads);
    std::thread::scope(|scope| {
        let mut cos_rest = cosines;
        let mut sin_rest = sines;
        let mut start = 0;
        while start < m {
            let len = per.min(m - start);
            let (cos_chunk, cos_tail) = cos_rest.split_at_mut(len);
            let sin_len = len.min(sin_rest.len());
            let (sin_chunk, sin_tail) = sin_rest.split_at_mut(sin_len);
            cos_rest = cos_tail;
            sin_rest = sin_tail;
            scope.spawn(move || fill_pairs(seed, m, start, cos_chunk, sin_chunk));
            start += len;
        }
    });
}

/// Fills Box–Muller pairs `first .. first + cosines.len()` of a normal vector with `m` pairs:
/// pair `p` uses `u1 = uniform[p]` and `u2 = uniform[m + p]`; its cosine goes to `cosines` and
/// its sine (when the output has room for it) to `sines`.
fn fill_pairs(seed: u32, m: usize, first: usize, cosines: &mut [f32], sines: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: AVX-512 F/DQ/VL support was just detected at run time.
        unsafe { fill_pairs_avx512(seed, m, first, cosines, sines) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 support was just detected at run time.
        unsafe { fill_pairs_avx2(seed, m, first, cosines, sines) };
        return;
    }
    fill_pairs_body(seed, m, first, cosines, sines);
}

/// Whether this CPU runs [`fill_pairs_avx512`].
#[cfg(target_arch = "x86_64")]
fn avx512() -> bool {
    std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512dq")
        && std::is_x86_feature_detected!("avx512vl")
}

/// [`fill_pairs_body`] compiled for AVX-512: eight `f64` lanes per instruction (twice AVX2's)
/// and a native `u32 → f32` conversion, with the same IEEE operations and bits (no FMA).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl,avx2")]
unsafe fn fill_pairs_avx512(
    seed: u32,
    m: usize,
    first: usize,
    cosines: &mut [f32],
    sines: &mut [f32],
) {
    fill_pairs_body(seed, m, first, cosines, sines);
}

/// [`fill_pairs_body`] compiled for AVX2: wider vectors, the same IEEE operations and bits (no
/// FMA is enabled, and Rust never contracts `a·b + c` on its own).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fill_pairs_avx2(
    seed: u32,
    m: usize,
    first: usize,
    cosines: &mut [f32],
    sines: &mut [f32],
) {
    fill_pairs_body(seed, m, first, cosines, sines);
}

#[inline(always)]
fn fill_pairs_body(seed: u32, m: usize, first: usize, cosines: &mut [f32], sines: &mut [f32]) {
    // Work in blocks of straight-line, branch-free code so the loops vectorise.
    const BLOCK: usize = 256;
    let mut z0 = [0f32; BLOCK];
    let mut z1 = [0f32; BLOCK];
    let mut u1 = [0f64; BLOCK];
    let mut u2 = [0f64; BLOCK];
    let mut start = 0;
    while start < cosines.len() {
        let len = BLOCK.min(cosines.len() - start);
        let p0 = index32(first + start);
        let q0 = index32(m + first + start);
        // Three straight loops (uniforms, radii, angles) that the compiler can vectorise.
        for t in 0..BLOCK {
            let a = uniform_at(seed, p0.wrapping_add(t as u32));
            u1[t] = f64::from(if a > U1_FLOOR { a } else { U1_FLOOR });
            u2[t] = f64::from(uniform_at(seed, q0.wrapping_add(t as u32)));
        }
        for r in u1.iter_mut() {
            *r = (-2.0 * math::ln(*r)).sqrt();
        }
        for t in 0..BLOCK {
            let (cos, sin) = math::cos_sin_turns(u2[t]);
            z0[t] = (u1[t] * cos) as f32;
            z1[t] = (u1[t] * sin) as f32;
        }
        cosines[start..start + len].copy_from_slice(&z0[..len]);
        let sin_end = (start + len).min(sines.len());
        if start < sin_end {
            sines[start..sin_end].copy_from_slice(&z1[..sin_end - start]);
        }
        start += len;
    }
}

/// The network indexes its streams with 32-bit keys; longer streams would repeat. Every stream
/// the PoC draws (at most a weight matrix of a few hundred million values) fits.
#[inline]
fn index32(i: usize) -> u32 {
    debug_assert!(
        i <= u32::MAX as usize,
        "RNG index {i} beyond the 32-bit key space"
    );
    i as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed32_is_sha256_prefix_big_endian() {
        // SHA-256("abc") = ba7816bf 8f01cfea ...
        assert_eq!(seed32("abc"), 0xba78_16bf);
        // SHA-256("") = e3b0c442 98fc1c14 ...
        assert_eq!(seed32(""), 0xe3b0_c442);
        let words = seed32x8("abc");
        assert_eq!(words[0], 0xba78_16bf);
        assert_eq!(words[7], 0xf200_15ad);
    }

    #[test]
    fn mix_is_murmur3_block_without_length() {
        // MurmurHash3_x86_32 of the 4 bytes LE(key) with seed s equals fmix(mix-body ^ 4);
        // undo the length xor to compare with the standard function.
        fn murmur3_x86_32_one_block(key: u32, seed: u32) -> u32 {
            let mut k = key.wrapping_mul(0xcc9e2d51).rotate_left(15);
            k = k.wrapping_mul(0x1b873593);
            let mut h = (seed ^ k).rotate_left(13);
            h = h.wrapping_mul(5).wrapping_add(0xe6546b64);
            h ^= 4;
            h ^= h >> 16;
            h = h.wrapping_mul(0x85ebca6b);
            h ^= h >> 13;
            h = h.wrapping_mul(0xc2b2ae35);
            h ^ (h >> 16)
        }
        // Published MurmurHash3_x86_32 test vectors for 4-byte keys (seed 0x9747b28c):
        // "aaaa" -> 0x5a97808a, "abcd" -> 0xf0478627. They check the shared block body.
        assert_eq!(
            murmur3_x86_32_one_block(0x6161_6161, 0x9747_b28c),
            0x5a97_808a
        );
        assert_eq!(
            murmur3_x86_32_one_block(0x6463_6261, 0x9747_b28c),
            0xf047_8627
        );
        // Our mix is the same body without the `^ 4`; values from an independent Python
        // implementation of network-poc.md step 2.
        assert_eq!(mix(0, 0), 0xff19_274a);
        assert_eq!(mix(1, 0), 0x87be_548a);
        assert_eq!(mix(7, 42), 0x45cf_604a);
        assert_eq!(mix(u32::MAX, 0xdead_beef), 0x29b1_bdcb);
    }

    /// Values from the independent NumPy implementation (`tests/python/poc_numpy.py`):
    /// `seed32("pin")`, `uniform(seed, 4)` exactly, and `normal(seed, 5)` (NumPy's `f64` libm, so
    /// equal to within one `f32` ulp).
    #[test]
    fn values_agree_with_the_numpy_implementation() {
        let seed = seed32("pin");
        assert_eq!(seed, 0x64f4_6a75);
        let u: Vec<u32> = uniform(seed, 4).iter().map(|v| v.to_bits()).collect();
        assert_eq!(u, [0x3e3a_928a, 0x3eea_f47d, 0x3e08_6a2f, 0x3f38_5d5a]);
        let numpy = [
            0xbeb0_061du32,
            0x3f9f_2557,
            0xbfb5_65c1,
            0xbfe8_11a5,
            0x3de0_562d,
        ];
        for (ours, theirs) in normal(seed, 5).iter().zip(numpy) {
            let diff = (ours.to_bits() as i64 - i64::from(theirs)).abs();
            assert!(diff <= 1, "{:#x} vs {theirs:#x}", ours.to_bits());
        }
    }

    #[test]
    fn uniform_rounds_to_nearest_and_can_reach_one() {
        // u32::MAX rounds to 2^32 as f32, so the uniform value is exactly 1.0.
        assert_eq!(u32::MAX as f32 * (1.0 / 4_294_967_296.0), 1.0);
        let u = uniform(1234, 1000);
        assert!(u.iter().all(|&x| (0.0..=1.0).contains(&x)));
        let mean: f64 = u.iter().map(|&x| f64::from(x)).sum::<f64>() / 1000.0;
        assert!((mean - 0.5).abs() < 0.05, "{mean}");
    }

    #[test]
    fn normal_layout_and_statistics() {
        let seed = seed32("layout");
        let n = 7;
        let z = normal(seed, n);
        let m = 4;
        for p in 0..m {
            let (c, s) = box_muller(uniform_at(seed, p as u32), uniform_at(seed, (m + p) as u32));
            assert_eq!(z[p].to_bits(), c.to_bits());
            if m + p < n {
                assert_eq!(z[m + p].to_bits(), s.to_bits());
            }
        }
        let big = normal(seed32("stats"), 200_000);
        let mean = big.iter().map(|&x| f64::from(x)).sum::<f64>() / 2e5;
        let var = big.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / 2e5 - mean * mean;
        assert!(
            mean.abs() < 0.01 && (var - 1.0).abs() < 0.02,
            "{mean} {var}"
        );
    }

    #[test]
    fn box_muller_matches_f64_libm_closely() {
        for i in 0..2000u32 {
            let u1 = uniform_at(99, i);
            let u2 = uniform_at(98, i);
            let (c, s) = box_muller(u1, u2);
            let r = (-2.0 * libm::log(f64::from(u1.max(U1_FLOOR)))).sqrt();
            let t = 2.0 * std::f64::consts::PI * f64::from(u2);
            let (ec, es) = ((r * libm::cos(t)) as f32, (r * libm::sin(t)) as f32);
            assert!((c - ec).abs() <= 1e-6 * r as f32 + f32::EPSILON, "{c} {ec}");
            assert!((s - es).abs() <= 1e-6 * r as f32 + f32::EPSILON, "{s} {es}");
        }
    }

    /// Each compiled variant of the Box–Muller loop (portable, AVX2, AVX-512, where this CPU has
    /// them) gives the bits of the scalar [`box_muller`] for every pair.
    #[test]
    fn simd_variants_equal_scalar_box_muller() {
        let seed = seed32("variants");
        let m = 3_000; // several blocks and a partial one
        let expect: Vec<(u32, u32)> = (0..m)
            .map(|p| {
                let (c, s) =
                    box_muller(uniform_at(seed, p as u32), uniform_at(seed, (m + p) as u32));
                (c.to_bits(), s.to_bits())
            })
            .collect();
        let check = |name: &str, fill: &dyn Fn(&mut [f32], &mut [f32])| {
            let (mut c, mut s) = (vec![0f32; m], vec![0f32; m]);
            fill(&mut c, &mut s);
            for (p, &(ec, es)) in expect.iter().enumerate() {
                assert_eq!(
                    (c[p].to_bits(), s[p].to_bits()),
                    (ec, es),
                    "{name} pair {p}"
                );
            }
        };
        check("portable", &|c, s| fill_pairs_body(seed, m, 0, c, s));
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 support was just detected at run time.
            check("avx2", &|c, s| unsafe { fill_pairs_avx2(seed, m, 0, c, s) });
        }
        #[cfg(target_arch = "x86_64")]
        if avx512() {
            // SAFETY: AVX-512 F/DQ/VL support was just detected at run time.
            check("avx512", &|c, s| unsafe {
                fill_pairs_avx512(seed, m, 0, c, s)
            });
        }
    }

    #[test]
    fn parallel_generation_is_bit_identical() {
        for n in [1usize, 2, 3, 65_537, 200_001] {
            let seed = seed32(&format!("par{n}"));
            let serial = normal(seed, n);
            for threads in [2, 3, 7] {
                let mut par = vec![0.0; n];
                normal_into_parallel(seed, &mut par, threads);
                assert!(serial
                    .iter()
                    .zip(&par)
                    .all(|(a, b)| a.to_bits() == b.to_bits()));
            }
        }
    }
}
