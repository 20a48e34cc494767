//! Which cases of a suite a simulation runs.
//!
//! A cycle-accurate model is millions of times slower than the golden model, so a default run
//! takes a *sample*: `n` cases spread evenly over the suite by a stride coprime with its size
//! (suites are ordered by category and, at level 1, by a plan whose shape varies fastest, so an
//! even spread with such a stride meets every category and every shape), plus the first case of
//! every category the spread missed. Cases whose work estimate exceeds a cap are left out and
//! counted (the int8 chains of 2^17 MACs take minutes on a sequential array). Everything is
//! deterministic: the same suite and options select the same cases.

use golden::vectors::{Case, Suite};

/// A work estimate for a GEMM on an `r × c` array, in cycles: output tiles × K × (R + C + 32).
///
/// It is a cap for sampling, not a prediction: it grows like the work of a tiled array that
/// streams one k step per cycle and pays for loading operand rows and columns.
pub fn work_estimate(m: usize, n: usize, k: usize, rows: usize, cols: usize) -> u64 {
    let tiles = m.div_ceil(rows.max(1)) as u64 * n.div_ceil(cols.max(1)) as u64;
    tiles
        .saturating_mul(k as u64)
        .saturating_mul((rows + cols + 32) as u64)
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The selection of one suite.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// Case indices to run, ascending.
    pub cases: Vec<u64>,
    /// Cases the sample picked but the work cap left out.
    pub over_budget: u64,
}

/// Picks up to `sample` cases of `suite` (all when `None`), leaving out cases whose
/// [`work_estimate`] exceeds `max_work` (no cap when `None`).
pub fn select(
    suite: &Suite,
    sample: Option<u64>,
    max_work: Option<u64>,
    rows: usize,
    cols: usize,
) -> Selection {
    let total = suite.len();
    let mut picked: Vec<u64> = match sample {
        Some(n) if n < total => {
            let n = n.max(1);
            let mut stride = (total / n).max(1);
            while gcd(stride, total) != 1 {
                stride += 1;
            }
            let mut picked: Vec<u64> = (0..n).map(|i| (i * stride) % total).collect();
            // First case of each category the spread missed.
            let mut seen: Vec<&str> = picked
                .iter()
                .filter_map(|&i| suite.case(i).map(|c| c.category()))
                .collect();
            for case in suite.cases() {
                let category = case.category();
                if !seen.contains(&category) {
                    seen.push(category);
                    picked.push(case.index());
                }
            }
            picked.sort_unstable();
            picked.dedup();
            picked
        }
        _ => (0..total).collect(),
    };
    let before = picked.len() as u64;
    if let Some(cap) = max_work {
        picked.retain(|&i| match suite.case(i) {
            Some(Case::Gemm(g)) => work_estimate(g.spec.m, g.spec.n, g.spec.k, rows, cols) <= cap,
            // Kinds this device does not run are left to the runner to report.
            _ => true,
        });
    }
    Selection {
        over_budget: before - picked.len() as u64,
        cases: picked,
    }
}

#[cfg(test)]
mod tests {
    use golden::vectors::{find_suite, generate};

    use super::*;

    #[test]
    fn the_estimate_counts_tiles() {
        assert_eq!(work_estimate(1, 1, 10, 8, 8), 10 * 48);
        assert_eq!(work_estimate(9, 8, 1, 8, 8), 2 * 48);
    }

    #[test]
    fn a_sample_spreads_over_shapes_and_categories() {
        let def = find_suite("gemm-int8").unwrap();
        let suite = generate(def, 1, 768).unwrap().open().unwrap();
        let s = select(&suite, Some(48), None, 8, 8);
        assert!(
            s.cases.len() >= 48 && s.cases.len() <= 52,
            "{}",
            s.cases.len()
        );
        assert!(s.cases.windows(2).all(|w| w[0] < w[1]));
        // 32 plan shapes, index % 32: a stride coprime with 768 meets all of them.
        let mut shapes: Vec<u64> = s.cases.iter().map(|i| i % 32).collect();
        shapes.sort_unstable();
        shapes.dedup();
        assert_eq!(shapes.len(), 32);
        let mut categories: Vec<&str> = s
            .cases
            .iter()
            .map(|&i| suite.case(i).unwrap().category())
            .collect();
        categories.sort_unstable();
        categories.dedup();
        assert_eq!(categories.len(), 4);
        // Same inputs, same selection.
        assert_eq!(s, select(&suite, Some(48), None, 8, 8));
    }

    #[test]
    fn every_category_is_met_and_the_cap_leaves_cases_out() {
        let def = find_suite("mac-int8").unwrap();
        let suite = generate(def, 1, 600).unwrap().open().unwrap();
        let s = select(&suite, Some(20), None, 8, 8);
        let categories: std::collections::BTreeSet<&str> =
            suite.cases().map(|c| c.category()).collect();
        let met: std::collections::BTreeSet<&str> = s
            .cases
            .iter()
            .map(|&i| suite.case(i).unwrap().category())
            .collect();
        assert_eq!(categories, met);
        let capped = select(&suite, None, Some(100_000), 8, 8);
        assert!(capped.over_budget > 0, "the long chains exceed the cap");
        assert_eq!(capped.cases.len() as u64 + capped.over_budget, suite.len());
        assert_eq!(
            select(&suite, None, None, 8, 8).cases.len() as u64,
            suite.len()
        );
    }
}
