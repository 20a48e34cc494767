//! The suites that exist: names, levels, precisions and default sizes.

use crate::numerics::Precision;

use super::{Kind, VectorError};

/// Which generator family builds a suite. New families (the PoC pipeline's `layer` and `poc`
/// suites) are added here and in [`generate`](super::generate::generate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Family {
    /// Level 0: MAC chains as `1×1×K` GEMMs.
    Mac(Precision),
    /// Level 1: GEMMs of many shapes.
    Gemm(Precision),
    /// Level 2: the matrix products of single PoC decoder layers.
    Layer(Precision),
    /// Level 3: the matrix products of whole PoC forwards.
    Poc(Precision),
}

/// A suite the generator can build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SuiteDef {
    /// Name used on the command line and in manifests (`mac-bf16`).
    pub name: &'static str,
    /// 0 MAC chains, 1 GEMMs, 2 layers, 3 whole PoC runs.
    pub level: u8,
    /// The kind of its cases (which fixes the data-file layout).
    pub kind: Kind,
    /// The operand precision of every case, where there is one.
    pub precision: Option<Precision>,
    /// Cases generated when `--count` is not given.
    pub default_count: u64,
    /// One line for `golden vectors list`.
    pub summary: &'static str,
    /// The generator.
    pub family: Family,
}

const fn mac(name: &'static str, precision: Precision, summary: &'static str) -> SuiteDef {
    SuiteDef {
        name,
        level: 0,
        kind: Kind::Gemm,
        precision: Some(precision),
        default_count: 10_000,
        summary,
        family: Family::Mac(precision),
    }
}

const fn gemm(name: &'static str, precision: Precision, summary: &'static str) -> SuiteDef {
    SuiteDef {
        name,
        level: 1,
        kind: Kind::Gemm,
        precision: Some(precision),
        // The full plan: 32 shapes × 4 distributions × 3 outputs × accumulate on/off.
        default_count: 768,
        summary,
        family: Family::Gemm(precision),
    }
}

const fn layer(name: &'static str, precision: Precision, summary: &'static str) -> SuiteDef {
    SuiteDef {
        name,
        level: 2,
        kind: Kind::Gemm,
        precision: Some(precision),
        // Three runs of one `small`-shaped layer (20 products each).
        default_count: 60,
        summary,
        family: Family::Layer(precision),
    }
}

const fn poc(name: &'static str, precision: Precision, summary: &'static str) -> SuiteDef {
    SuiteDef {
        name,
        level: 3,
        kind: Kind::Gemm,
        precision: Some(precision),
        // Two whole `synthetic:tiny` forwards of two nonces (40 products each).
        default_count: 80,
        summary,
        family: Family::Poc(precision),
    }
}

/// Every suite, in `golden vectors list` order.
pub const SUITES: &[SuiteDef] = &[
    mac(
        "mac-int8",
        Precision::Int8,
        "int8 MAC chains: extreme products, wrap-around at ±2^31, long chains, requantisation",
    ),
    mac(
        "mac-bf16",
        Precision::Bf16,
        "bf16 MAC chains: ties, sticky bits, subnormals, products beyond f32, overflow, NaN/inf, -0",
    ),
    mac(
        "mac-fp16",
        Precision::Fp16,
        "fp16 MAC chains: ties, sticky bits, subnormals, overflow, NaN/inf, -0, output rounding",
    ),
    gemm(
        "gemm-int8",
        Precision::Int8,
        "int8 GEMMs: 32 shapes x 4 distributions x {i32, i8 scaled, i8 random requant} x accumulate on/off",
    ),
    gemm(
        "gemm-bf16",
        Precision::Bf16,
        "bf16 GEMMs: 32 shapes x 4 distributions x {f32, bf16, fp16} x accumulate on/off",
    ),
    gemm(
        "gemm-fp16",
        Precision::Fp16,
        "fp16 GEMMs: 32 shapes x 4 distributions x {f32, bf16, fp16} x accumulate on/off",
    ),
    layer(
        "layer-bf16",
        Precision::Bf16,
        "bf16 PoC decoder layers (small shape): q|k|v, attention scores/values, o, gate|up, down products",
    ),
    layer(
        "layer-fp16",
        Precision::Fp16,
        "fp16 PoC decoder layers (small shape): q|k|v, attention scores/values, o, gate|up, down products",
    ),
    poc(
        "poc-bf16",
        Precision::Bf16,
        "bf16 whole PoC forwards (synthetic:tiny): every product, with the runs' artifacts in the manifest",
    ),
    poc(
        "poc-fp16",
        Precision::Fp16,
        "fp16 whole PoC forwards (synthetic:tiny): every product, with the runs' artifacts in the manifest",
    ),
];

fn available() -> String {
    SUITES.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
}

/// The suite called `name`.
pub fn find_suite(name: &str) -> Result<&'static SuiteDef, VectorError> {
    SUITES
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| VectorError::UnknownSuite {
            name: name.to_owned(),
            available: available(),
        })
}

/// Resolves a `--suite` / `--level` pair: a full name (`mac-bf16`, level optional but checked),
/// or a precision with a level (`bf16` + 0 → `mac-bf16`).
pub fn resolve(suite: &str, level: Option<u8>) -> Result<&'static SuiteDef, VectorError> {
    if let Ok(def) = find_suite(suite) {
        return match level {
            Some(l) if l != def.level => Err(VectorError::Invalid(format!(
                "suite {} is level {}, but --level {l} was given: drop --level or pick a \
                 level-{l} suite",
                def.name, def.level
            ))),
            _ => Ok(def),
        };
    }
    let Ok(precision) = suite.parse::<Precision>() else {
        return find_suite(suite);
    };
    let Some(level) = level else {
        return Err(VectorError::Invalid(format!(
            "`--suite {suite}` names a precision: add --level 0 (mac-{suite}) or --level 1 \
             (gemm-{suite}), or give the full suite name"
        )));
    };
    SUITES
        .iter()
        .find(|s| s.level == level && s.precision == Some(precision))
        .ok_or_else(|| {
            VectorError::Invalid(format!(
                "there is no level-{level} suite for {precision} yet: the suites are {}",
                available()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_levels_and_precisions_resolve() {
        assert_eq!(resolve("mac-bf16", None).unwrap().name, "mac-bf16");
        assert_eq!(resolve("mac-bf16", Some(0)).unwrap().level, 0);
        assert_eq!(resolve("fp16", Some(1)).unwrap().name, "gemm-fp16");
        assert_eq!(resolve("INT8", Some(0)).unwrap().name, "mac-int8");
        let err = resolve("mac-bf16", Some(1)).unwrap_err().to_string();
        assert!(err.contains("level 0"), "{err}");
        let err = resolve("bf16", None).unwrap_err().to_string();
        assert!(err.contains("--level 0"), "{err}");
        assert_eq!(resolve("bf16", Some(3)).unwrap().name, "poc-bf16");
        assert_eq!(resolve("fp16", Some(2)).unwrap().name, "layer-fp16");
        let err = resolve("int8", Some(3)).unwrap_err().to_string();
        assert!(err.contains("no level-3 suite"), "{err}");
        let err = resolve("fp64", None).unwrap_err().to_string();
        assert!(
            err.contains("unknown suite `fp64`") && err.contains("gemm-fp16"),
            "{err}"
        );
    }

    #[test]
    fn names_match_levels_and_precisions() {
        for s in SUITES {
            let prefix = ["mac", "gemm", "layer", "poc"][usize::from(s.level)];
            let precision = s.precision.unwrap();
            assert_eq!(s.name, format!("{prefix}-{precision}"));
        }
    }
}
