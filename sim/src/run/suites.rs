//! Conformance suites on the simulated accelerator: generate in memory, select, run through the
//! driver, check with the golden vectors' checker.

use driver::accel::gemm::{GemmJob, GemmRunner};
use driver::Capabilities;
use golden::vectors::{generate, Case, CheckOptions, Problem, ResultsWriter, Suite, SuiteDef};
use hdl::regmap::PrecisionCode;
use indicatif::ProgressBar;

use super::select::{select, Selection};
use super::{RunOptions, SimAccelerator};
use crate::error::SimError;
use crate::report::{FailureReport, SuiteReport};

/// Cases sent to the device per batch (progress granularity; several stay in flight).
const BATCH: usize = 32;

/// A generated suite and its selection.
pub struct Prepared {
    /// The suite's definition.
    pub def: &'static SuiteDef,
    /// The suite, in memory.
    pub suite: Suite,
    /// What runs.
    pub selection: Selection,
}

fn precision_code(p: golden::numerics::Precision) -> PrecisionCode {
    match p {
        golden::numerics::Precision::Int8 => PrecisionCode::Int8,
        golden::numerics::Precision::Bf16 => PrecisionCode::Bf16,
        golden::numerics::Precision::Fp16 => PrecisionCode::Fp16,
    }
}

/// Generates every requested suite the device can run and selects its cases.
pub fn prepare(options: &RunOptions, caps: &Capabilities) -> Result<Vec<Prepared>, SimError> {
    let mut out = Vec::new();
    for request in &options.suites {
        if let Some(p) = request.def.precision {
            if !caps.supports(precision_code(p)) {
                return Err(SimError::Config(format!(
                    "suite {} needs {p}, which this design does not build in ({}); add it to \
                     --precisions or drop the suite",
                    request.def.name,
                    caps.precision_names()
                )));
            }
        }
        let files = generate(request.def, options.seed, request.count)
            .and_then(|f| f.open())
            .map_err(|e| SimError::Config(format!("generating {}: {e}", request.def.name)))?;
        let selection = select(
            &files,
            request.sample,
            options.max_case_work,
            caps.rows as usize,
            caps.cols as usize,
        );
        out.push(Prepared {
            def: request.def,
            suite: files,
            selection,
        });
    }
    Ok(out)
}

fn detail(problem: &Problem) -> String {
    match problem {
        Problem::WrongLength {
            expected_bytes,
            actual_bytes,
        } => format!("output has {actual_bytes} bytes, expected {expected_bytes}"),
        Problem::Mismatch {
            elements,
            differing_elements,
            first,
            ..
        } => {
            let mut text = format!("{differing_elements} of {elements} elements differ");
            if let Some(e) = first.first() {
                text.push_str(&format!(
                    "; {}: expected {} ({}), actual {} ({})",
                    e.at, e.expected.hex, e.expected.value, e.actual.hex, e.actual.value
                ));
            }
            text
        }
    }
}

/// Runs the selected cases of one suite and checks them.
pub fn run(
    accel: &mut SimAccelerator,
    runner: &mut GemmRunner,
    prepared: &Prepared,
    show_failures: usize,
    progress: &ProgressBar,
) -> SuiteReport {
    let suite = &prepared.suite;
    let pes = accel.capabilities().pes();
    let mut report = SuiteReport {
        name: prepared.def.name.into(),
        level: prepared.def.level,
        cases: suite.len(),
        selected: prepared.selection.cases.len() as u64 + prepared.selection.over_budget,
        over_budget: prepared.selection.over_budget,
        ..SuiteReport::default()
    };
    let producer = format!("pocforge sim {}", accel.transport().config().name);
    let mut writer = ResultsWriter::new(suite, &producer);
    let cycles_before = accel.transport().cycles();
    let perf_before = accel.perf().ok();
    for chunk in prepared.selection.cases.chunks(BATCH) {
        let cases: Vec<_> = chunk
            .iter()
            .filter_map(|&i| match suite.case(i) {
                Some(Case::Gemm(g)) => Some(g),
                _ => None,
            })
            .collect();
        let jobs: Vec<GemmJob<'_>> = cases
            .iter()
            .map(|g| GemmJob {
                spec: g.spec,
                a: g.a,
                b: g.b,
                c: g.c,
            })
            .collect();
        let mut outputs = vec![Vec::new(); jobs.len()];
        match runner.run(accel, &jobs, &mut outputs) {
            Ok(_) => {
                for (g, out) in cases.iter().zip(&outputs) {
                    // Indices ascend and are unique by construction of the selection.
                    let _ = writer.push(g.index, out);
                }
            }
            Err(e) => {
                // A device error (a hung or misbehaving chip): record it, reset, go on with
                // the next suite. The cases of this suite without results count as not run.
                report.error = Some(e.to_string());
                let _ = accel.reset();
                progress.inc(chunk.len() as u64);
                break;
            }
        }
        progress.inc(chunk.len() as u64);
    }
    report.cycles = accel.transport().cycles() - cycles_before;
    if let (Some(before), Ok(after)) = (perf_before, accel.perf()) {
        let delta = after.since(&before);
        report.busy_cycles = delta.busy;
        report.macs = delta.macs;
        report.utilization = delta.utilization(pes);
    }
    let results = writer.finish();
    match suite.check(
        &results,
        &CheckOptions {
            allow_missing: true,
            max_reported: show_failures,
        },
    ) {
        Ok(check) => {
            report.passed = check.passed;
            report.failed = check.failed;
            // Missing = not selected + selected but not run.
            report.not_run =
                (prepared.selection.cases.len() as u64).saturating_sub(check.passed + check.failed);
            report.failures = check
                .failures
                .iter()
                .map(|f| FailureReport {
                    case: f.case,
                    category: f.category.clone(),
                    description: f.description.clone(),
                    detail: detail(&f.problem),
                })
                .collect();
        }
        Err(e) => {
            report.error = Some(format!("checking the results: {e}"));
        }
    }
    report
}
