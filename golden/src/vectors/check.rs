//! Comparing a device's results with a suite, bit for bit, and reporting what differs.

use std::fmt;

use serde::Serialize;

use crate::numerics::OutputFormat;

use super::display::{Element, Shown};
use super::results::Results;
use super::{Case, GemmCase, Kind, Suite, VectorError};

/// How strict a check is and how much it reports.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Accept results that cover only some cases (a slow simulator running a sample). Missing
    /// cases are still counted and listed; without this they fail the check.
    pub allow_missing: bool,
    /// How many failing (and missing) cases to describe in detail.
    pub max_reported: usize,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            allow_missing: false,
            max_reported: 10,
        }
    }
}

/// The outcome of checking one suite. Serialises to the JSON of `golden vectors check --json`
/// (fields documented in `docs/vectors.md`).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `"pass"` or `"fail"`.
    pub verdict: &'static str,
    /// Suite name.
    pub suite: String,
    /// Suite level.
    pub level: u8,
    /// Suite precision, when it has one.
    pub precision: Option<String>,
    /// Generator seed.
    pub seed: u64,
    /// Generator version.
    pub generator_version: u32,
    /// Numeric contract version of the expected values.
    pub spec_version: u32,
    /// SHA-256 of the suite manifest (identifies the exact suite checked).
    pub suite_manifest_sha256: String,
    /// The results' producer string.
    pub producer: String,
    /// Cases in the suite.
    pub cases: u64,
    /// Cases with a result that matched bit for bit.
    pub passed: u64,
    /// Cases with a result that did not.
    pub failed: u64,
    /// Cases without a result.
    pub missing: u64,
    /// Whether missing cases were allowed.
    pub allow_missing: bool,
    /// Per-category counts, in manifest order.
    pub categories: Vec<CategoryCounts>,
    /// The first failing cases, described (at most `max_reported`).
    pub failures: Vec<CaseFailure>,
    /// The first missing case indices (at most `max_reported`).
    pub missing_cases: Vec<u64>,
}

/// Counts of one category.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct CategoryCounts {
    /// Category name.
    pub name: String,
    /// Matching cases.
    pub passed: u64,
    /// Differing cases.
    pub failed: u64,
    /// Cases without result.
    pub missing: u64,
}

/// One failing case, with what it asked and how the answer differs.
#[derive(Clone, Debug, Serialize)]
pub struct CaseFailure {
    /// Case index.
    pub case: u64,
    /// Its category.
    pub category: String,
    /// Its kind.
    pub kind: Kind,
    /// One-line description of the work (`bf16 1×1×3 accumulate → f32`).
    pub description: String,
    /// The full spec as fields (kind-specific; for `gemm`: precision, m, n, k, accumulate,
    /// output, requant).
    pub spec: serde_json::Value,
    /// What is wrong.
    #[serde(flatten)]
    pub problem: Problem,
}

/// How a result differs from the expectation.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    /// The output has the wrong number of bytes.
    WrongLength {
        /// Bytes expected.
        expected_bytes: u64,
        /// Bytes received.
        actual_bytes: u64,
    },
    /// Some elements differ.
    Mismatch {
        /// Output elements in the case.
        elements: u64,
        /// How many differ.
        differing_elements: u64,
        /// The first few differing elements.
        first: Vec<ElementDiff>,
        /// The inputs that produce the first differing element.
        inputs: Vec<InputValues>,
    },
}

/// One differing output element.
#[derive(Clone, Debug, Serialize)]
pub struct ElementDiff {
    /// Flat element index in the output.
    pub index: u64,
    /// Where it is (`D[2][5]`).
    pub at: String,
    /// What the contract says.
    pub expected: Shown,
    /// What the device gave.
    pub actual: Shown,
}

/// Some input values, for the report of a mismatch.
#[derive(Clone, Debug, Serialize)]
pub struct InputValues {
    /// What they are (`A[2][0..64]`).
    pub name: String,
    /// Their values (at most [`MAX_INPUT_VALUES`]).
    pub values: Vec<Shown>,
    /// How many more were left out.
    pub omitted: u64,
}

/// Input values shown per operand in a mismatch report.
pub const MAX_INPUT_VALUES: usize = 16;
/// Differing elements listed per failing case.
const MAX_ELEMENT_DIFFS: usize = 4;

impl Report {
    /// Whether the device passed.
    pub fn passed(&self) -> bool {
        self.verdict == "pass"
    }
}

impl Suite {
    /// Compares `results` with this suite's expected outputs, bit for bit.
    ///
    /// Errors (not failures) are results for a different suite or with case indices the suite
    /// does not have; a device's wrong outputs are failures in the [`Report`].
    pub fn check(&self, results: &Results, options: &CheckOptions) -> Result<Report, VectorError> {
        let manifest = self.manifest();
        let foreign = |message: String| VectorError::Results {
            file: results.source().to_owned(),
            message,
        };
        if results.suite_manifest_sha256() != self.manifest_sha256() {
            return Err(foreign(format!(
                "these results were produced for suite `{}` with manifest SHA-256 {}, but {} is \
                 suite `{}` with manifest SHA-256 {}: run the device on this suite",
                results.suite(),
                results.suite_manifest_sha256(),
                self.source(),
                manifest.suite,
                self.manifest_sha256()
            )));
        }
        let mut report = Report {
            verdict: "fail",
            suite: manifest.suite.clone(),
            level: manifest.level,
            precision: manifest.precision.clone(),
            seed: manifest.seed,
            generator_version: manifest.generator_version,
            spec_version: manifest.spec_version,
            suite_manifest_sha256: self.manifest_sha256().to_owned(),
            producer: results.producer().to_owned(),
            cases: self.len(),
            passed: 0,
            failed: 0,
            missing: 0,
            allow_missing: options.allow_missing,
            categories: manifest
                .categories
                .iter()
                .map(|name| CategoryCounts {
                    name: name.clone(),
                    passed: 0,
                    failed: 0,
                    missing: 0,
                })
                .collect(),
            failures: Vec::new(),
            missing_cases: Vec::new(),
        };
        let mut outputs = results.iter().peekable();
        for case in self.cases() {
            let category = manifest
                .categories
                .iter()
                .position(|c| c == case.category())
                .expect("case categories come from the manifest");
            let counts = &mut report.categories[category];
            // Both sequences ascend: advance the results to this case.
            let actual = match outputs.peek() {
                Some((index, output)) if *index == case.index() => {
                    let output = *output;
                    outputs.next();
                    Some(output)
                }
                _ => None,
            };
            match actual {
                None => {
                    counts.missing += 1;
                    report.missing += 1;
                    if report.missing_cases.len() < options.max_reported {
                        report.missing_cases.push(case.index());
                    }
                }
                Some(actual) if actual == case.expected() => {
                    counts.passed += 1;
                    report.passed += 1;
                }
                Some(actual) => {
                    counts.failed += 1;
                    report.failed += 1;
                    if report.failures.len() < options.max_reported {
                        report.failures.push(describe(&case, actual));
                    }
                }
            }
        }
        if let Some((index, _)) = outputs.next() {
            return Err(foreign(format!(
                "holds an output for case {index}, but suite `{}` has cases 0..{}",
                manifest.suite,
                self.len()
            )));
        }
        let complete = report.missing == 0 || options.allow_missing;
        if report.failed == 0 && complete && report.passed > 0 {
            report.verdict = "pass";
        }
        Ok(report)
    }
}

fn describe(case: &Case<'_>, actual: &[u8]) -> CaseFailure {
    match case {
        Case::Gemm(g) => describe_gemm(g, actual),
    }
}

fn describe_gemm(g: &GemmCase<'_>, actual: &[u8]) -> CaseFailure {
    let spec = &g.spec;
    let requant = match spec.output {
        OutputFormat::I8(r) => serde_json::json!({
            "multiplier": r.multiplier, "shift": r.shift, "zero_point": r.zero_point
        }),
        _ => serde_json::Value::Null,
    };
    let spec_json = serde_json::json!({
        "precision": spec.precision.name(),
        "m": spec.m, "n": spec.n, "k": spec.k,
        "accumulate": spec.accumulate,
        "output": spec.output.name(),
        "requant": requant,
    });
    let description = format!(
        "{} {}×{}×{}{} → {}",
        spec.precision,
        spec.m,
        spec.n,
        spec.k,
        if spec.accumulate { " accumulate" } else { "" },
        spec.output
    );
    let problem = if actual.len() != g.expected.len() {
        Problem::WrongLength {
            expected_bytes: g.expected.len() as u64,
            actual_bytes: actual.len() as u64,
        }
    } else {
        let out = Element::output(spec.output);
        let elements = spec.m * spec.n;
        let differing: Vec<usize> = (0..elements)
            .filter(|&e| out.read(g.expected, e) != out.read(actual, e))
            .collect();
        let first = differing
            .iter()
            .take(MAX_ELEMENT_DIFFS)
            .map(|&e| ElementDiff {
                index: e as u64,
                at: format!("D[{}][{}]", e / spec.n, e % spec.n),
                expected: out.show(out.read(g.expected, e)),
                actual: out.show(out.read(actual, e)),
            })
            .collect();
        let (i, j) = (differing[0] / spec.n, differing[0] % spec.n);
        Problem::Mismatch {
            elements: elements as u64,
            differing_elements: differing.len() as u64,
            first,
            inputs: gemm_inputs(g, i, j),
        }
    };
    CaseFailure {
        case: g.index,
        category: g.category.to_owned(),
        kind: Kind::Gemm,
        description,
        spec: spec_json,
        problem,
    }
}

/// The inputs of output element `(i, j)`: `C[i][j]`, row `i` of `A`, column `j` of `B`.
fn gemm_inputs(g: &GemmCase<'_>, i: usize, j: usize) -> Vec<InputValues> {
    let spec = &g.spec;
    let operand = Element::operand(spec.precision);
    let list = |name: String,
                indices: &mut dyn Iterator<Item = usize>,
                buffer: &[u8],
                element: Element| {
        let all: Vec<usize> = indices.collect();
        InputValues {
            name,
            values: all
                .iter()
                .take(MAX_INPUT_VALUES)
                .map(|&x| element.show(element.read(buffer, x)))
                .collect(),
            omitted: all.len().saturating_sub(MAX_INPUT_VALUES) as u64,
        }
    };
    let mut inputs = Vec::new();
    if let Some(c) = g.c {
        let acc = Element::accumulator(spec.precision);
        inputs.push(list(
            format!("C[{i}][{j}]"),
            &mut std::iter::once(i * spec.n + j),
            c,
            acc,
        ));
    }
    inputs.push(list(
        format!("A[{i}][0..{}]", spec.k),
        &mut (0..spec.k).map(|kk| i * spec.k + kk),
        g.a,
        operand,
    ));
    inputs.push(list(
        format!("B[0..{}][{j}]", spec.k),
        &mut (0..spec.k).map(|kk| kk * spec.n + j),
        g.b,
        operand,
    ));
    inputs
}

impl fmt::Display for Report {
    /// The human-readable report of `golden vectors check`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let precision = self.precision.as_deref().unwrap_or("mixed");
        writeln!(
            f,
            "suite {} (level {}, {precision}, seed {}, generator v{}, contract v{}, {} cases)",
            self.suite,
            self.level,
            self.seed,
            self.generator_version,
            self.spec_version,
            self.cases
        )?;
        writeln!(f, "  manifest sha256 {}", self.suite_manifest_sha256)?;
        if !self.producer.is_empty() {
            writeln!(f, "  results from    {}", self.producer)?;
        }
        writeln!(
            f,
            "{}: {} passed, {} failed, {} missing{}",
            self.verdict.to_uppercase(),
            self.passed,
            self.failed,
            self.missing,
            if self.allow_missing && self.missing > 0 {
                " (allowed)"
            } else {
                ""
            }
        )?;
        writeln!(f)?;
        let width = self
            .categories
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(8)
            .max(8);
        writeln!(
            f,
            "  {:width$}  {:>8}  {:>8}  {:>8}",
            "category", "passed", "failed", "missing"
        )?;
        for c in &self.categories {
            writeln!(
                f,
                "  {:width$}  {:>8}  {:>8}  {:>8}",
                c.name, c.passed, c.failed, c.missing
            )?;
        }
        if !self.failures.is_empty() {
            writeln!(f)?;
            writeln!(
                f,
                "first {} of {} failing cases:",
                self.failures.len(),
                self.failed
            )?;
            for failure in &self.failures {
                write!(f, "{failure}")?;
            }
        }
        if !self.missing_cases.is_empty() {
            writeln!(f)?;
            let list: Vec<String> = self.missing_cases.iter().map(u64::to_string).collect();
            let more = if self.missing > self.missing_cases.len() as u64 {
                ", …"
            } else {
                ""
            };
            writeln!(f, "missing cases: {}{more}", list.join(", "))?;
        }
        Ok(())
    }
}

impl fmt::Display for CaseFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "  case {} [{}]: {}",
            self.case, self.category, self.description
        )?;
        match &self.problem {
            Problem::WrongLength {
                expected_bytes,
                actual_bytes,
            } => writeln!(
                f,
                "    output has {actual_bytes} bytes, expected {expected_bytes}"
            ),
            Problem::Mismatch {
                elements,
                differing_elements,
                first,
                inputs,
            } => {
                writeln!(
                    f,
                    "    {differing_elements} of {elements} output elements differ"
                )?;
                for d in first {
                    writeln!(
                        f,
                        "    {}: expected {} ({}), actual {} ({})",
                        d.at, d.expected.hex, d.expected.value, d.actual.hex, d.actual.value
                    )?;
                }
                if let Some(d) = first.first() {
                    writeln!(f, "    inputs of {}:", d.at)?;
                }
                for input in inputs {
                    let values: Vec<String> = input
                        .values
                        .iter()
                        .map(|v| format!("{} ({})", v.hex, v.value))
                        .collect();
                    let more = if input.omitted > 0 {
                        format!(", … {} more", input.omitted)
                    } else {
                        String::new()
                    };
                    writeln!(f, "      {} = {}{more}", input.name, values.join(", "))?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectors::catalog::find_suite;
    use crate::vectors::engine::run_suite;
    use crate::vectors::generate::generate;
    use crate::vectors::results::ResultsWriter;

    fn suite(name: &str, count: u64) -> Suite {
        generate(find_suite(name).unwrap(), 1, count)
            .unwrap()
            .open()
            .unwrap()
    }

    #[test]
    fn golden_results_pass() {
        let s = suite("mac-bf16", 3000);
        let report = s
            .check(&run_suite(&s, "golden"), &CheckOptions::default())
            .unwrap();
        assert!(report.passed(), "{report}");
        assert_eq!((report.passed, report.failed, report.missing), (3000, 0, 0));
        assert_eq!(
            report.categories.iter().map(|c| c.passed).sum::<u64>(),
            3000
        );
    }

    #[test]
    fn one_flipped_bit_fails_and_names_the_case() {
        let s = suite("gemm-bf16", 40);
        assert_eq!(s.case(12).unwrap().expected().len(), 64 * 64 * 4);
        let mut writer = ResultsWriter::new(&s, "flipper");
        for case in s.cases() {
            let mut out = case.expected().to_vec();
            if case.index() == 12 {
                // Case 12 is 64×64×64 with f32 output; byte 5 lies in element 1.
                out[5] ^= 0x10;
            }
            writer.push(case.index(), &out).unwrap();
        }
        let report = s.check(&writer.finish(), &CheckOptions::default()).unwrap();
        assert!(!report.passed());
        assert_eq!((report.passed, report.failed), (39, 1));
        let failure = &report.failures[0];
        assert_eq!(failure.case, 12);
        let Problem::Mismatch {
            differing_elements,
            first,
            inputs,
            ..
        } = &failure.problem
        else {
            panic!("expected a mismatch: {failure:?}");
        };
        assert_eq!(*differing_elements, 1);
        assert_eq!(first[0].index, 1); // byte 5 lies in f32 element 1
        assert!(inputs.iter().any(|i| i.name.starts_with("A[")));
        let text = report.to_string();
        assert!(text.contains("case 12") && text.contains("FAIL"), "{text}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["failures"][0]["problem"], "mismatch");
        assert_eq!(json["verdict"], "fail");
    }

    #[test]
    fn wrong_lengths_missing_cases_and_foreign_results() {
        let s = suite("mac-int8", 500);
        let mut writer = ResultsWriter::new(&s, "partial");
        for case in s.cases().filter(|c| c.index() % 2 == 0) {
            let mut out = case.expected().to_vec();
            if case.index() == 10 {
                out.push(0);
            }
            writer.push(case.index(), &out).unwrap();
        }
        let results = writer.finish();
        let report = s.check(&results, &CheckOptions::default()).unwrap();
        assert_eq!((report.failed, report.missing), (1, 250));
        assert!(matches!(
            report.failures[0].problem,
            Problem::WrongLength {
                actual_bytes: 5,
                ..
            }
        ));
        assert_eq!(report.missing_cases[..3], [1, 3, 5]);
        let lenient = CheckOptions {
            allow_missing: true,
            ..CheckOptions::default()
        };
        assert!(
            !s.check(&results, &lenient).unwrap().passed(),
            "the wrong length still fails"
        );

        let other = suite("mac-fp16", 100);
        let err = other
            .check(&results, &CheckOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("produced for suite `mac-int8`"), "{err}");
    }

    #[test]
    fn partial_results_pass_only_when_allowed() {
        let s = suite("mac-fp16", 400);
        let mut writer = ResultsWriter::new(&s, "sample");
        for case in s.cases().take(100) {
            writer.push(case.index(), case.expected()).unwrap();
        }
        let results = writer.finish();
        assert!(!s
            .check(&results, &CheckOptions::default())
            .unwrap()
            .passed());
        let lenient = CheckOptions {
            allow_missing: true,
            ..CheckOptions::default()
        };
        assert!(s.check(&results, &lenient).unwrap().passed());
    }
}
