//! The accelerator API (`driver::accel`) on the Verilated accelerator: identification, GEMMs
//! equal to the golden model, hardware error codes mapped, and fault injection that breaks
//! results. One small design (2×3, k depth 16) is built once for all tests of this file.

use std::sync::OnceLock;

use driver::accel::gemm::{GemmJob, GemmRunner};
use driver::{Accelerator, DriverError};
use golden::gemm::{reference, GemmSpec};
use golden::numerics::{OutputFormat, Precision, Requant};
use golden::vectors::generate::random_gemm_inputs;
use hdl::regmap::{ErrorCode, GemmDescriptor, PrecisionCode};
use hdl::rtl::HdlConfig;
use sim::accel::{Design, DesignOptions};
use sim::{MemoryConfig, SimDevice};

fn config() -> HdlConfig {
    HdlConfig {
        rows: 2,
        cols: 3,
        kdepth: 16,
        queue_depth: 2,
        max_burst: 4,
        ..HdlConfig::default()
    }
}

fn design() -> &'static Design {
    static DESIGN: OnceLock<Design> = OnceLock::new();
    DESIGN.get_or_init(|| {
        let design = Design::build(&DesignOptions {
            config: config(),
            ..DesignOptions::default()
        })
        .expect("build the 2×3 accelerator");
        eprintln!("{}", design.build);
        design
    })
}

fn memory() -> MemoryConfig {
    MemoryConfig {
        size: 1 << 20,
        read_latency: 6,
        ..MemoryConfig::default()
    }
}

fn open(design: &Design) -> Accelerator<SimDevice> {
    Accelerator::open(design.device(memory(), None).expect("device")).expect("open")
}

/// A mix of shapes (edge tiles, several k chunks), precisions, outputs and accumulation.
fn specs() -> Vec<GemmSpec> {
    let mut specs = Vec::new();
    for (precision, m, n, k) in [
        (Precision::Bf16, 5, 4, 19),
        (Precision::Fp16, 3, 7, 5),
        (Precision::Int8, 4, 5, 33),
        (Precision::Bf16, 1, 1, 1),
    ] {
        let mut spec = GemmSpec::new(precision, m, n, k);
        specs.push(spec);
        spec.accumulate = true;
        spec.output = match precision {
            Precision::Int8 => OutputFormat::I8(Requant {
                multiplier: 77,
                shift: 9,
                zero_point: -3,
            }),
            Precision::Bf16 => OutputFormat::Fp16,
            Precision::Fp16 => OutputFormat::Bf16,
        };
        specs.push(spec);
    }
    specs
}

type Inputs = (GemmSpec, Vec<u8>, Vec<u8>, Option<Vec<u8>>);

fn inputs() -> Vec<Inputs> {
    specs()
        .into_iter()
        .enumerate()
        .map(|(i, spec)| {
            let (a, b, c) = random_gemm_inputs(&spec, 100 + i as u64);
            (spec, a, b, c)
        })
        .collect()
}

fn expected(inputs: &[Inputs]) -> Vec<Vec<u8>> {
    inputs
        .iter()
        .map(|(spec, a, b, c)| {
            let mut d = vec![0u8; spec.d_bytes()];
            reference::gemm(spec, a, b, c.as_deref(), &mut d).unwrap();
            d
        })
        .collect()
}

fn run_all(accel: &mut Accelerator<SimDevice>, inputs: &[Inputs]) -> Vec<Vec<u8>> {
    let jobs: Vec<GemmJob<'_>> = inputs
        .iter()
        .map(|(spec, a, b, c)| GemmJob {
            spec: *spec,
            a,
            b,
            c: c.as_deref(),
        })
        .collect();
    let mut outputs = vec![Vec::new(); jobs.len()];
    // A small arena, so the list runs in several chunks.
    let mut runner = GemmRunner::new(2048);
    runner.run(accel, &jobs, &mut outputs).expect("run");
    runner.release(accel).unwrap();
    outputs
}

#[test]
fn the_device_identifies_itself() {
    let accel = open(design());
    let caps = accel.capabilities();
    assert_eq!((caps.rows, caps.cols, caps.kdepth), (2, 3, 16));
    assert_eq!(caps.queue_depth, 2);
    assert_eq!(caps.max_burst, 4);
    assert_eq!(caps.precisions, PrecisionCode::ALL.to_vec());
}

#[test]
fn gemms_equal_the_golden_model_and_count_their_macs() {
    let mut accel = open(design());
    let inputs = inputs();
    let outputs = run_all(&mut accel, &inputs);
    for (i, (got, want)) in outputs.iter().zip(expected(&inputs)).enumerate() {
        assert_eq!(got, &want, "GEMM {i}: {:?}", inputs[i].0);
    }
    let perf = accel.perf().unwrap();
    let macs: u64 = inputs.iter().map(|(s, ..)| (s.m * s.n * s.k) as u64).sum();
    assert_eq!(perf.macs, macs);
    assert!(perf.busy > 0 && perf.utilization(6) > 0.0 && perf.utilization(6) <= 1.0);
}

#[test]
fn hardware_errors_are_mapped_to_the_failing_descriptor() {
    let mut accel = open(design());
    let buffer = accel.upload(&[0u8; 4096], 4096).unwrap();
    let base = buffer.iova().get();
    let good = GemmDescriptor::dense(PrecisionCode::Bf16, 2, 3, 4, base, base + 256, base + 512);
    let misaligned = GemmDescriptor {
        a: base + 1,
        ..good
    };
    // The software check refuses it first, naming the descriptor…
    let err = accel.run(&[good, misaligned]).unwrap_err();
    assert!(
        matches!(err, DriverError::InvalidDescriptor { index: 1, .. }),
        "{err}"
    );
    // …and the hardware's own check reports the same, for the same descriptor.
    let err = accel.run_unchecked(&[good, misaligned, good]).unwrap_err();
    match err {
        DriverError::Command { code, first, last } => {
            assert_eq!(code, ErrorCode::Misaligned);
            assert!(first <= 1 && last >= 1, "{first}..={last}");
        }
        other => panic!("expected a command error, got {other}"),
    }
    // Memory the device cannot reach answers with an error response.
    let outside = GemmDescriptor { a: 1 << 24, ..good };
    let err = accel.run(&[outside]).unwrap_err();
    assert!(
        matches!(
            err,
            DriverError::Command {
                code: ErrorCode::ReadResponse,
                first: 0,
                last: 0
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("DMA buffers"), "{err}");
    // The device keeps working afterwards.
    accel.run(&[good]).unwrap();
}

#[test]
fn a_stuck_accumulator_bit_breaks_results() {
    let design = Design::build(&DesignOptions {
        config: config(),
        faults: vec!["pe:1,2:acc:bit30:stuck1".parse().unwrap()],
        ..DesignOptions::default()
    })
    .expect("fault build");
    let mut accel = open(&design);
    let inputs = inputs();
    let outputs = run_all(&mut accel, &inputs);
    let wrong = outputs
        .iter()
        .zip(expected(&inputs))
        .filter(|(got, want)| *got != want)
        .count();
    assert!(wrong > 0, "a stuck accumulator bit went unnoticed");
    let hits = accel.transport().bench_ref().model_ref().fault_hits();
    assert!(hits[0] > 0, "the fault never changed the state");
}

#[test]
fn unknown_fault_targets_list_the_valid_ones() {
    let err = Design::build(&DesignOptions {
        config: config(),
        faults: vec!["pe:0,0:accumulator:bit1:stuck1".parse().unwrap()],
        ..DesignOptions::default()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("no register `accumulator`"), "{err}");
    assert!(err.contains("acc (= acc)") && err.contains("r_a1"), "{err}");
    assert!(err.contains("buf:a:bankI:wordW"), "{err}");
    let err = Design::build(&DesignOptions {
        config: config(),
        faults: vec!["pe:2,0:acc:bit1:stuck1".parse().unwrap()],
        ..DesignOptions::default()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("outside the 2×3 array"), "{err}");
}
