//! Results files: what a device produced for the cases of one suite.
//!
//! A results file is a safetensors file (see `docs/vectors.md`) with
//!
//! | tensor | dtype | shape | content |
//! |---|---|---|---|
//! | `results.case` | U64 | `[r]` | indices of the cases run, strictly ascending |
//! | `results.offsets` | U64 | `[r + 1]` | `output` byte offsets: case `i`'s bytes are `offsets[i]..offsets[i+1]` |
//! | `results.output` | U8 | `[Σ]` | every output, concatenated in the same order |
//!
//! and `__metadata__` `format = "pocforge-results"`, `format_version = "1"`, `suite` (its
//! name), `suite_manifest_sha256` (the SHA-256 of the suite's `manifest.json`, which binds the
//! results to one exact suite) and optionally `producer` (free text: the device, its version).
//! A device may run a subset of the cases; the checker reports the others as missing.

use std::collections::BTreeMap;
use std::path::Path;

use super::container::{self, TensorFile, TensorOut};
use super::{Suite, VectorError};

/// `__metadata__["format"]` of results files.
pub const RESULTS_FORMAT: &str = "pocforge-results";
/// `__metadata__["format_version"]` this code reads and writes.
pub const RESULTS_FORMAT_VERSION: &str = "1";

/// A device's outputs for (some of) the cases of one suite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Results {
    source: String,
    suite: String,
    suite_manifest_sha256: String,
    producer: String,
    cases: Vec<u64>,
    offsets: Vec<u64>,
    output: Vec<u8>,
}

impl Results {
    /// Reads and validates a results file.
    pub fn open(path: impl AsRef<Path>) -> Result<Results, VectorError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| VectorError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Results::from_bytes(&bytes, &path.display().to_string())
    }

    /// Parses a results file held in memory; `name` identifies it in messages.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Results, VectorError> {
        let bad = |message: String| VectorError::Results {
            file: name.to_owned(),
            message,
        };
        let file = TensorFile::parse(bytes).map_err(bad)?;
        let meta = file.metadata();
        let field = |key: &str| {
            meta.get(key).cloned().ok_or_else(|| {
                bad(format!(
                    "__metadata__ has no `{key}`: results files carry format, format_version, \
                     suite and suite_manifest_sha256 (docs/vectors.md)"
                ))
            })
        };
        let format = field("format")?;
        if format != RESULTS_FORMAT {
            return Err(bad(format!(
                "format is `{format}`, expected `{RESULTS_FORMAT}`"
            )));
        }
        let version = field("format_version")?;
        if version != RESULTS_FORMAT_VERSION {
            return Err(bad(format!(
                "format_version is `{version}`, but this golden reads `{RESULTS_FORMAT_VERSION}`"
            )));
        }
        let suite = field("suite")?;
        let suite_manifest_sha256 = field("suite_manifest_sha256")?;
        let producer = meta.get("producer").cloned().unwrap_or_default();
        file.require_exactly(&["results.case", "results.offsets", "results.output"])
            .map_err(bad)?;
        let cases = file.u64s("results.case", &[None]).map_err(bad)?;
        let offsets = file
            .u64s("results.offsets", &[Some(cases.len() + 1)])
            .map_err(bad)?;
        let output = file.bytes("results.output").map_err(bad)?.to_vec();
        if let Some(w) = cases.windows(2).find(|w| w[0] >= w[1]) {
            return Err(bad(format!(
                "results.case must be strictly ascending, but case {} is followed by {}",
                w[0], w[1]
            )));
        }
        if offsets[0] != 0 {
            return Err(bad(format!(
                "results.offsets[0] is {}, expected 0",
                offsets[0]
            )));
        }
        if let Some(i) = (0..cases.len()).find(|&i| offsets[i] > offsets[i + 1]) {
            return Err(bad(format!(
                "results.offsets decreases at entry {} (case {}): {} > {}",
                i + 1,
                cases[i],
                offsets[i],
                offsets[i + 1]
            )));
        }
        let end = *offsets.last().expect("r + 1 ≥ 1 entries");
        if end != output.len() as u64 {
            return Err(bad(format!(
                "results.offsets ends at {end} but results.output has {} bytes",
                output.len()
            )));
        }
        Ok(Results {
            source: name.to_owned(),
            suite,
            suite_manifest_sha256,
            producer,
            cases,
            offsets,
            output,
        })
    }

    /// Where the results came from (a path, or a name for in-memory results).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The suite name these results claim to be for.
    pub fn suite(&self) -> &str {
        &self.suite
    }

    /// The SHA-256 of the suite manifest these results were produced for.
    pub fn suite_manifest_sha256(&self) -> &str {
        &self.suite_manifest_sha256
    }

    /// Who produced them (free text; may be empty).
    pub fn producer(&self) -> &str {
        &self.producer
    }

    /// Number of cases with an output.
    pub fn len(&self) -> usize {
        self.cases.len()
    }

    /// Whether no case has an output.
    pub fn is_empty(&self) -> bool {
        self.cases.is_empty()
    }

    /// Every `(case index, output bytes)`, ascending.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        self.cases.iter().enumerate().map(move |(i, case)| {
            let range = self.offsets[i] as usize..self.offsets[i + 1] as usize;
            (*case, &self.output[range])
        })
    }

    /// The output of case `index`, if present.
    pub fn get(&self, index: u64) -> Option<&[u8]> {
        let i = self.cases.binary_search(&index).ok()?;
        Some(&self.output[self.offsets[i] as usize..self.offsets[i + 1] as usize])
    }

    /// The file contents (deterministic: the same results give the same bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut meta = BTreeMap::new();
        meta.insert("format".to_owned(), RESULTS_FORMAT.to_owned());
        meta.insert(
            "format_version".to_owned(),
            RESULTS_FORMAT_VERSION.to_owned(),
        );
        meta.insert("suite".to_owned(), self.suite.clone());
        meta.insert(
            "suite_manifest_sha256".to_owned(),
            self.suite_manifest_sha256.clone(),
        );
        if !self.producer.is_empty() {
            meta.insert("producer".to_owned(), self.producer.clone());
        }
        container::write(
            vec![
                TensorOut::u64s("results.case", &self.cases),
                TensorOut::u64s("results.offsets", &self.offsets),
                TensorOut::bytes("results.output", self.output.clone()),
            ],
            &meta,
        )
    }

    /// Writes the results file.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), VectorError> {
        let path = path.as_ref();
        std::fs::write(path, self.to_bytes()).map_err(|source| VectorError::Write {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// Collects a device's outputs case by case, for a simulator or a driver that runs a suite
/// in-process and wants a results file (or wants to [`check`](Suite::check) directly).
pub struct ResultsWriter {
    results: Results,
    case_count: u64,
}

impl ResultsWriter {
    /// Starts the results of `suite`; `producer` names the device (free text).
    pub fn new(suite: &Suite, producer: &str) -> ResultsWriter {
        ResultsWriter {
            results: Results {
                source: format!("results of {producer}"),
                suite: suite.manifest().suite.clone(),
                suite_manifest_sha256: suite.manifest_sha256().to_owned(),
                producer: producer.to_owned(),
                cases: Vec::new(),
                offsets: vec![0],
                output: Vec::new(),
            },
            case_count: suite.len(),
        }
    }

    /// Records the output of case `index`. Cases must come in ascending order (a subset is
    /// fine); the output is stored as given, whatever its length, for the checker to judge.
    pub fn push(&mut self, index: u64, output: &[u8]) -> Result<(), VectorError> {
        let r = &mut self.results;
        if index >= self.case_count {
            return Err(VectorError::Invalid(format!(
                "case {index} does not exist: suite {} has cases 0..{}",
                r.suite, self.case_count
            )));
        }
        if let Some(last) = r.cases.last() {
            if index <= *last {
                return Err(VectorError::Invalid(format!(
                    "case {index} pushed after case {last}: push each case once, in ascending order"
                )));
            }
        }
        r.cases.push(index);
        r.output.extend_from_slice(output);
        r.offsets.push(r.output.len() as u64);
        Ok(())
    }

    /// The finished results.
    pub fn finish(self) -> Results {
        self.results
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Results {
        Results {
            source: "r".into(),
            suite: "mac-bf16".into(),
            suite_manifest_sha256: "ab".repeat(32),
            producer: "unit test".into(),
            cases: vec![0, 2, 5],
            offsets: vec![0, 4, 4, 6],
            output: vec![1, 2, 3, 4, 5, 6],
        }
    }

    type Breaker = fn(&mut Results);

    #[test]
    fn round_trips() {
        let r = sample();
        let back = Results::from_bytes(&r.to_bytes(), "r").unwrap();
        assert_eq!(back, r);
        assert_eq!(back.get(2), Some(&[][..]));
        assert_eq!(back.get(5), Some(&[5, 6][..]));
        assert_eq!(back.get(1), None);
        assert_eq!(back.iter().count(), 3);
        assert_eq!(r.to_bytes(), sample().to_bytes(), "deterministic");
    }

    #[test]
    fn malformed_files_are_explained() {
        let broken: Vec<(Breaker, &str)> = vec![
            (|r| r.cases = vec![0, 5, 2], "strictly ascending"),
            (|r| r.offsets = vec![0, 4, 3, 6], "decreases"),
            (|r| r.offsets = vec![1, 4, 4, 6], "offsets[0] is 1"),
            (|r| r.output.push(9), "ends at 6 but results.output has 7"),
        ];
        for (break_it, needle) in broken {
            let mut r = sample();
            break_it(&mut r);
            let err = Results::from_bytes(&r.to_bytes(), "r")
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{err} should mention {needle}");
        }
        let mut r = sample();
        r.offsets.pop();
        let err = Results::from_bytes(&r.to_bytes(), "r")
            .unwrap_err()
            .to_string();
        assert!(err.contains("results.offsets"), "{err}");
        let plain = container::write(vec![TensorOut::bytes("x", vec![1])], &BTreeMap::new());
        let err = Results::from_bytes(&plain, "r").unwrap_err().to_string();
        assert!(err.contains("no `format`"), "{err}");
    }
}
