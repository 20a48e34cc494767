//! Validation as the network's validators do it: the mismatch rule and the one-sided binomial
//! fraud test.

use super::artifact::{decode_vector_b64, Artifact};
use crate::numerics::float;

/// The network's default statistical-test parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StatTest {
    /// L2 distance above which a vector is a mismatch (0.02).
    pub dist_threshold: f64,
    /// Probability of an honest mismatch (0.001).
    pub p_mismatch: f64,
    /// p-value below which the batch is fraud (0.01).
    pub fraud_threshold: f64,
}

impl Default for StatTest {
    fn default() -> Self {
        StatTest {
            dist_threshold: 0.02,
            p_mismatch: 0.001,
            fraud_threshold: 0.01,
        }
    }
}

/// The verdict on a submitted batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// Nonces checked.
    pub n_total: u64,
    /// Nonces that mismatched.
    pub n_mismatch: u64,
    /// Which, in submission order.
    pub mismatch_nonces: Vec<u64>,
    /// `P(X ≥ n_mismatch)`, `X ~ Binomial(n_total, p_mismatch)`.
    pub p_value: f64,
    /// `p_value < fraud_threshold`.
    pub fraud_detected: bool,
}

/// L2 distance between two f16 vectors (`f64` arithmetic, index order); `None` when the
/// received vector has a non-finite entry or a different length.
pub fn distance(computed: &[u16], received: &[u16]) -> Option<f64> {
    if computed.len() != received.len() {
        return None;
    }
    let mut sum = 0f64;
    for (&c, &r) in computed.iter().zip(received) {
        let r = float::fp16_to_f32(r);
        if !r.is_finite() {
            return None;
        }
        let diff = f64::from(float::fp16_to_f32(c)) - f64::from(r);
        sum += diff * diff;
    }
    Some(sum.sqrt())
}

/// Whether a received `vector_b64` mismatches our computed artifact (`None`: we dropped that
/// nonce, so any submission for it is a mismatch). An undecodable vector is a mismatch.
pub fn is_mismatch(computed: Option<&Artifact>, received_b64: &str, dist_threshold: f64) -> bool {
    let Some(computed) = computed else {
        return true;
    };
    match decode_vector_b64(received_b64) {
        Ok(received) => match distance(&computed.vector, &received) {
            Some(dist) => dist > dist_threshold,
            None => true,
        },
        Err(_) => true,
    }
}

/// Builds the verdict from the mismatching nonces.
pub fn verdict(n_total: u64, mismatch_nonces: Vec<u64>, test: &StatTest) -> Verdict {
    let n_mismatch = mismatch_nonces.len() as u64;
    let p_value = binomial_sf(n_mismatch, n_total, test.p_mismatch);
    Verdict {
        n_total,
        n_mismatch,
        mismatch_nonces,
        p_value,
        fraud_detected: p_value < test.fraud_threshold,
    }
}

/// `P(X ≥ k)` for `X ~ Binomial(n, p)`, to about 1e-13 relative.
///
/// The terms come from Loader's saddle-point form of the binomial probability (the method of R's
/// `dbinom`: Stirling-series remainders and the deviance `bd0`, no cancelling `lgamma`
/// differences), then a recurrence sums the shorter tail: the upper one from `k` upwards when `k`
/// lies above the mean, otherwise `1 − P(X ≤ k−1)` summed downwards (that complement is at least
/// about 1/2, so nothing is lost to cancellation).
pub fn binomial_sf(k: u64, n: u64, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n {
        return 0.0;
    }
    if p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    let q = 1.0 - p;
    let (nf, kf) = (n as f64, k as f64);
    let ratio = p / q;
    if kf > nf * p {
        // Upper tail, terms decreasing from k.
        let mut term = dbinom(k, n, p, q);
        let mut sum = term;
        let mut i = k;
        while i < n {
            term *= (n - i) as f64 / (i + 1) as f64 * ratio;
            i += 1;
            sum += term;
            if term <= sum * 1e-17 {
                break;
            }
        }
        sum.min(1.0)
    } else {
        // Lower tail P(X ≤ k−1), terms decreasing downwards from k−1.
        let mut i = k - 1;
        let mut term = dbinom(i, n, p, q);
        let mut sum = term;
        while i > 0 {
            term *= i as f64 / (n - i + 1) as f64 / ratio;
            i -= 1;
            sum += term;
            if term <= sum * 1e-17 {
                break;
            }
        }
        (1.0 - sum).max(0.0)
    }
}

/// `P(X = x)` for `X ~ Binomial(n, p)`, `q = 1 − p` (Loader 2000).
fn dbinom(x: u64, n: u64, p: f64, q: f64) -> f64 {
    let (xf, nf) = (x as f64, n as f64);
    if x == 0 {
        let lc = if p < 0.1 {
            -bd0(nf, nf * q) - nf * p
        } else {
            nf * libm::log(q)
        };
        return libm::exp(lc);
    }
    if x == n {
        let lc = if q < 0.1 {
            -bd0(nf, nf * p) - nf * q
        } else {
            nf * libm::log(p)
        };
        return libm::exp(lc);
    }
    let lc =
        stirlerr(nf) - stirlerr(xf) - stirlerr(nf - xf) - bd0(xf, nf * p) - bd0(nf - xf, nf * q);
    let lf = libm::log(2.0 * std::f64::consts::PI) + libm::log(xf) + libm::log1p(-xf / nf);
    libm::exp(lc - 0.5 * lf)
}

/// `ln(n!) − [(n + ½)·ln n − n + ½·ln 2π]`, the Stirling remainder, for integer `n ≥ 1`.
fn stirlerr(n: f64) -> f64 {
    if n <= 15.0 {
        let half_ln_2pi = 0.918_938_533_204_672_8;
        return libm::lgamma(n + 1.0) - (n + 0.5) * libm::log(n) + n - half_ln_2pi;
    }
    let nn = n * n;
    const S0: f64 = 1.0 / 12.0;
    const S1: f64 = 1.0 / 360.0;
    const S2: f64 = 1.0 / 1260.0;
    const S3: f64 = 1.0 / 1680.0;
    const S4: f64 = 1.0 / 1188.0;
    (S0 - (S1 - (S2 - (S3 - S4 / nn) / nn) / nn) / nn) / n
}

/// The deviance term `x·ln(x/m) + m − x`, accurate when `x ≈ m`.
fn bd0(x: f64, m: f64) -> f64 {
    if (x - m).abs() < 0.1 * (x + m) {
        let v = (x - m) / (x + m);
        let mut s = (x - m) * v;
        let mut ej = 2.0 * x * v;
        let v2 = v * v;
        for j in 1..1000 {
            ej *= v2;
            let s1 = s + ej / f64::from(2 * j + 1);
            if s1 == s {
                return s1;
            }
            s = s1;
        }
        return s;
    }
    x * libm::log(x / m) + m - x
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_bigint::BigUint;
    use num_traits::{One, ToPrimitive, Zero};

    /// Exact `P(X ≥ k)` for `p = a/b` as a ratio of big integers, converted to `f64` carefully.
    fn exact_sf(k: u64, n: u64, a: u64, b: u64) -> f64 {
        let mut num = BigUint::zero();
        let mut binom = BigUint::one(); // C(n, i), starting at i = 0
        for i in 0..=n {
            if i >= k {
                num += &binom
                    * BigUint::from(a).pow(i as u32)
                    * BigUint::from(b - a).pow((n - i) as u32);
            }
            binom = binom * BigUint::from(n - i) / BigUint::from(i + 1);
        }
        let den = BigUint::from(b).pow(n as u32);
        if num.is_zero() {
            return 0.0;
        }
        // Scale so the quotient has ~60 significant bits, then convert.
        let shift = den.bits() as i64 - num.bits() as i64 + 64;
        let q = if shift >= 0 {
            (num << shift as u64) / &den
        } else {
            num / (den << (-shift) as u64)
        };
        q.to_f64().unwrap() * 2f64.powi(-(shift as i32))
    }

    #[test]
    fn p_values_match_exact_rational_sums() {
        let cases = [
            (0, 10, 1, 1000),
            (1, 10, 1, 1000),
            (1, 1000, 1, 1000),
            (2, 1000, 1, 1000),
            (5, 1000, 1, 1000),
            (20, 1000, 1, 1000),
            (3, 200, 1, 1000),
            (1, 5000, 1, 1000),
            (9, 5000, 1, 1000),
            (60, 5000, 1, 1000),
            (500, 1000, 1, 2),
            (480, 1000, 1, 2),
            (7, 7, 1, 3),
            (12, 40, 3, 10),
            (2000, 2000, 999, 1000),
            (1990, 2000, 999, 1000),
        ];
        for (k, n, a, b) in cases {
            let want = exact_sf(k, n, a, b);
            let got = binomial_sf(k, n, a as f64 / b as f64);
            let rel = ((got - want) / want).abs();
            assert!(
                rel < 1e-9,
                "P(X>={k}) n={n} p={a}/{b}: got {got:e}, exact {want:e}, rel {rel:e}"
            );
        }
    }

    #[test]
    fn verdicts_follow_the_threshold() {
        let v = verdict(100, vec![], &StatTest::default());
        assert_eq!((v.p_value, v.fraud_detected), (1.0, false));
        let v = verdict(100, vec![1, 2, 3], &StatTest::default());
        assert!(v.fraud_detected && v.p_value < 2e-4, "{v:?}");
        let v = verdict(1000, vec![5], &StatTest::default());
        assert!(!v.fraud_detected);
    }

    #[test]
    fn mismatch_rule() {
        let a = Artifact {
            nonce: 1,
            vector: vec![0x3C00, 0x0000],
        }; // (1, 0)
        let same = a.vector_b64();
        assert!(!is_mismatch(Some(&a), &same, 0.02));
        let near = Artifact {
            nonce: 1,
            vector: vec![0x3BFF, 0x1400],
        }; // (0.9995, 0.00098)
        assert!(!is_mismatch(Some(&a), &near.vector_b64(), 0.02));
        let far = Artifact {
            nonce: 1,
            vector: vec![0x0000, 0x3C00],
        };
        assert!(is_mismatch(Some(&a), &far.vector_b64(), 0.02));
        let nan = Artifact {
            nonce: 1,
            vector: vec![0x7E00, 0x0000],
        };
        assert!(is_mismatch(Some(&a), &nan.vector_b64(), 0.02));
        assert!(is_mismatch(Some(&a), "not base64!", 0.02));
        assert!(is_mismatch(None, &same, 0.02));
        let short = Artifact {
            nonce: 1,
            vector: vec![0x3C00],
        };
        assert!(is_mismatch(Some(&a), &short.vector_b64(), 0.02));
    }
}
