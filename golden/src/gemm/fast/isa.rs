//! Which instruction-set extensions a kernel may use, detected at run time.
//!
//! The fast GEMM ships several kernels for the same contract. They differ only in speed: every
//! one is tested bit for bit against the reference on every machine that can run it. Detection
//! happens at run time (`is_x86_feature_detected!`), so one binary runs everywhere and uses the
//! best kernel the CPU has; [`available`] lists all of them so tests and benchmarks can exercise
//! each path, not only the fastest.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// A family of kernels, named after the instruction-set extensions it needs.
///
/// | variant | float kernels (bf16, fp16) | int8 kernel | required CPU features |
/// |---|---|---|---|
/// | `Portable` | plain Rust, `f64` multiply-add | plain Rust, wrapping `i32` | none (any architecture) |
/// | `Avx2` | 6×16 `f32` FMA | `vpmaddwd` on sign-extended bytes | AVX2, FMA, F16C |
/// | `Avx512` | 14×32 `f32` FMA | as `Avx2` | AVX-512F, AVX2, FMA, F16C |
/// | `Avx512Vnni` | as `Avx512` | `vpdpbusd` (4 MACs per lane and instruction) | `Avx512` + AVX-512 VNNI |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Isa {
    /// Plain Rust: correct on every architecture, the slowest.
    Portable,
    /// 256-bit AVX2 with FMA and F16C (Haswell and later, Zen).
    Avx2,
    /// 512-bit AVX-512F (Skylake-SP and later, Zen 4).
    Avx512,
    /// AVX-512 with the VNNI dot-product instructions (Cascade Lake and later, Zen 4).
    Avx512Vnni,
}

impl Isa {
    /// Every kernel family, slowest first.
    pub const ALL: [Isa; 4] = [Isa::Portable, Isa::Avx2, Isa::Avx512, Isa::Avx512Vnni];

    /// The name used in benchmark labels and on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Avx512Vnni => "avx512vnni",
        }
    }

    /// Whether this CPU can run this family's kernels (checked once, then cached).
    pub fn is_supported(self) -> bool {
        available().contains(&self)
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A string that names no kernel family.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown kernel family `{0}`: expected one of portable, avx2, avx512, avx512vnni")]
pub struct UnknownIsa(pub String);

impl FromStr for Isa {
    type Err = UnknownIsa;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Isa::ALL
            .into_iter()
            .find(|isa| isa.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownIsa(s.to_owned()))
    }
}

/// The kernel families this CPU supports, slowest first; always starts with [`Isa::Portable`].
pub fn available() -> &'static [Isa] {
    static AVAILABLE: OnceLock<Vec<Isa>> = OnceLock::new();
    AVAILABLE.get_or_init(detect)
}

/// The fastest kernel family this CPU supports.
pub fn best() -> Isa {
    *available()
        .last()
        .expect("available() always lists Portable")
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Vec<Isa> {
    let mut found = vec![Isa::Portable];
    let avx2 = is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c");
    if avx2 {
        found.push(Isa::Avx2);
        if is_x86_feature_detected!("avx512f") {
            found.push(Isa::Avx512);
            if is_x86_feature_detected!("avx512vnni") {
                found.push(Isa::Avx512Vnni);
            }
        }
    }
    found
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Vec<Isa> {
    vec![Isa::Portable]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portable_is_always_available_and_best_is_last() {
        assert_eq!(available()[0], Isa::Portable);
        assert!(Isa::Portable.is_supported());
        assert_eq!(best(), *available().last().unwrap());
        let mut sorted = available().to_vec();
        sorted.sort();
        assert_eq!(sorted, available());
    }

    #[test]
    fn names_round_trip() {
        for isa in Isa::ALL {
            assert_eq!(isa.name().parse::<Isa>().unwrap(), isa);
        }
        let err = "sse9".parse::<Isa>().unwrap_err().to_string();
        assert!(err.contains("sse9") && err.contains("avx512vnni"), "{err}");
    }
}
