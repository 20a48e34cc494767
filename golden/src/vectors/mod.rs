//! Conformance vectors: generated, levelled, seeded, reproducible test suites for devices.
//!
//! In the spirit of Berkeley TestFloat, a *suite* is a set of cases built on purpose around
//! every corner of the numeric contract (`docs/numerics.md`), then filled with random bulk, with
//! the expected output of each case computed by the golden model. A device passes a suite when
//! its outputs equal the expected ones bit for bit. Levels:
//!
//! | level | suites | a case is |
//! |---|---|---|
//! | 0 | `mac-int8`, `mac-bf16`, `mac-fp16` | one MAC chain, as a `1×1×K` GEMM |
//! | 1 | `gemm-int8`, `gemm-bf16`, `gemm-fp16` | one GEMM of some shape |
//! | 2, 3 | (the PoC pipeline adds `layer` and `poc` suites) | a layer / a whole PoC run |
//!
//! Every case of levels 0 and 1 is a GEMM, so a device needs nothing but GEMM to run them.
//!
//! On disk (`docs/vectors.md` has every byte): a directory with `manifest.json` (suite, level,
//! seed, generator version, case count, categories, and each data file's size and SHA-256) and
//! data files in the safetensors container. A device writes its outputs into a *results file*
//! (also safetensors); the checker verifies the suite, then compares.
//!
//! In-process use (the simulator, certification tooling):
//!
//! ```no_run
//! use golden::vectors::{CheckOptions, Case, ResultsWriter, Suite};
//!
//! let suite = Suite::open("vectors/mac-bf16")?; // verifies sizes and SHA-256 of every file
//! let mut results = ResultsWriter::new(&suite, "my-device v1");
//! for case in suite.cases() {
//!     match case {
//!         Case::Gemm(g) => {
//!             // Run g.spec on the device with g.a, g.b, g.c; here: pretend it is perfect.
//!             results.push(g.index, g.expected)?;
//!         }
//!         // Kinds this device does not run get no result, and the check reports them missing.
//!         _ => continue,
//!     }
//! }
//! let results = results.finish();
//! results.write("mac-bf16.results.safetensors")?; // for `golden vectors check`
//! let report = suite.check(&results, &CheckOptions::default())?;
//! println!("{report}");
//! assert!(report.passed());
//! # Ok::<(), golden::vectors::VectorError>(())
//! ```

pub mod catalog;
mod check;
mod container;
mod display;
pub mod engine;
mod error;
mod gemm_file;
pub mod generate;
pub mod manifest;
pub mod prng;
mod results;
mod suite;

use serde::{Deserialize, Serialize};

pub use catalog::{find_suite, resolve, SuiteDef, SUITES};
pub use check::{
    CaseFailure, CategoryCounts, CheckOptions, ElementDiff, InputValues, Problem, Report,
};
pub use display::{Element, Shown};
pub use error::VectorError;
pub use generate::{generate, SuiteFiles, GENERATOR_VERSION};
pub use manifest::Manifest;
pub use results::{Results, ResultsWriter};
pub use suite::{Case, GemmCase, Suite};

/// What a case asks a device to do; fixes the tensors of the data files that hold such cases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Kind {
    /// `D = convert(C + A·B)` under the numeric contract (levels 0 and 1).
    Gemm,
}
