//! The PoC pipeline's matrix device (`driver::accel::matmul::AcceleratorMatmul`) on the
//! Verilated accelerator: every call gives the bits of the CPU reference device, errors are
//! refused without touching the device, and a whole PoC forward on it gives the golden artifacts.
//! One small design (2×3, k depth 16, the same as `accelerator.rs`, so the build cache is
//! shared) serves every test of this file.

use std::sync::OnceLock;

use driver::accel::matmul::AcceleratorMatmul;
use driver::Accelerator;
use golden::numerics::Precision;
use golden::poc::cpu::ReferenceDevice;
use golden::poc::device::{BatchSpec, DeviceError, MatOut, MatmulDevice, WeightUpload};
use golden::poc::model::ModelSpec;
use golden::poc::{Engine, Round, RoundParams};
use hdl::rtl::HdlConfig;
use sim::accel::{Design, DesignOptions};
use sim::{MemoryConfig, SimDevice};

fn design() -> &'static Design {
    static DESIGN: OnceLock<Design> = OnceLock::new();
    DESIGN.get_or_init(|| {
        let design = Design::build(&DesignOptions {
            config: HdlConfig {
                rows: 2,
                cols: 3,
                kdepth: 16,
                queue_depth: 2,
                max_burst: 4,
                ..HdlConfig::default()
            },
            ..DesignOptions::default()
        })
        .expect("build the 2×3 accelerator");
        eprintln!("{}", design.build);
        design
    })
}

fn device() -> AcceleratorMatmul<SimDevice> {
    let memory = MemoryConfig {
        size: 4 << 20,
        read_latency: 6,
        ..MemoryConfig::default()
    };
    let transport = design().device(memory, None).expect("device");
    AcceleratorMatmul::new(Accelerator::open(transport).expect("open"))
}

/// Deterministic operands of moderate magnitude (xorshift), with a few signed zeros and
/// subnormal-range values, as raw bf16 or fp16 bits.
fn operands(precision: Precision, len: usize, seed: u64) -> Vec<u16> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let sign = ((state >> 63) as u16) << 15;
            let mantissa = (state >> 20) as u16;
            match (i % 29, precision) {
                (0, _) => sign,                     // ±0
                (1, Precision::Bf16) => sign | 0x3, // subnormal
                (1, _) => sign | 0x1,
                (_, Precision::Bf16) => {
                    sign | ((120 + (state % 12) as u16) << 7) | (mantissa & 0x7f)
                }
                (_, _) => sign | ((9 + (state % 10) as u16) << 10) | (mantissa & 0x3ff),
            }
        })
        .collect()
}

/// Which output conversion to ask for.
#[derive(Clone, Copy, Debug)]
enum Out {
    F32,
    Bf16,
    Fp16,
}

/// Output bits of a call, in one comparable form.
fn call<D: MatmulDevice>(
    device: &mut D,
    out: Out,
    len: usize,
    f: impl FnOnce(&mut D, MatOut<'_>) -> Result<(), DeviceError>,
) -> Vec<u32> {
    match out {
        Out::F32 => {
            let mut d = vec![f32::NAN; len];
            f(device, MatOut::F32(&mut d)).expect("call");
            d.iter().map(|v| v.to_bits()).collect()
        }
        Out::Bf16 | Out::Fp16 => {
            let mut d = vec![0xdeadu16; len];
            let target = match out {
                Out::Bf16 => MatOut::Bf16(&mut d),
                _ => MatOut::Fp16(&mut d),
            };
            f(device, target).expect("call");
            d.iter().map(|&v| u32::from(v)).collect()
        }
    }
}

#[test]
fn weight_products_equal_the_reference_device() {
    let mut sim = device();
    let mut reference = ReferenceDevice::new();
    // (precision, K, N, bias): K spans several k-depth chunks, N several column tiles.
    let weights = [
        (Precision::Bf16, 37, 7, false),
        (Precision::Bf16, 9, 5, true),
        (Precision::Fp16, 20, 4, true),
    ];
    for (w, &(precision, k, n, with_bias)) in weights.iter().enumerate() {
        let bt = operands(precision, k * n, 10 + w as u64);
        let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.375 - 1.0).collect();
        let upload = WeightUpload {
            name: "test.weight",
            precision,
            k,
            n,
            bt: &bt,
            bias: with_bias.then_some(&bias[..]),
        };
        let ours = sim.upload_weight(&upload).expect("upload");
        let theirs = reference.upload_weight(&upload).expect("upload");
        // Growing and shrinking row counts: the bias rows are rebuilt when m grows.
        for (call_index, (m, out)) in [(1, Out::F32), (5, Out::Bf16), (3, Out::Fp16), (6, Out::F32)]
            .into_iter()
            .enumerate()
        {
            let a = operands(precision, m * k, 100 * w as u64 + call_index as u64);
            let got = call(&mut sim, out, m * n, |d, o| d.matmul_weight(ours, &a, m, o));
            let want = call(&mut reference, out, m * n, |d, o| {
                d.matmul_weight(theirs, &a, m, o)
            });
            assert_eq!(
                got, want,
                "weight {w} ({precision}, K {k}, N {n}), m {m}, {out:?}"
            );
        }
    }
    let stats = sim.stats();
    assert!(stats.keys().all(|(kind, ..)| *kind == "weight"));
    let macs: u64 = stats.values().map(|s| s.macs).sum();
    let expected: u64 = weights
        .iter()
        .map(|&(_, k, n, _)| (k * n * (1 + 5 + 3 + 6)) as u64)
        .sum();
    assert_eq!(macs, expected, "the device's MAC counter");
    sim.release_weights().unwrap();
    let a = vec![0u16; 37];
    let mut d = vec![0f32; 7];
    let err = sim
        .matmul_weight(
            golden::poc::device::WeightHandle(0),
            &a,
            1,
            MatOut::F32(&mut d),
        )
        .unwrap_err();
    assert!(matches!(err, DeviceError::Rejected { .. }), "{err}");
    let accel = sim.into_accelerator().expect("give the accelerator back");
    assert_eq!(accel.capabilities().rows, 2);
}

#[test]
fn batches_equal_the_reference_device() {
    let mut sim = device();
    let mut reference = ReferenceDevice::new();
    for (i, (precision, count, m, k, n, out)) in [
        (Precision::Bf16, 3, 5, 7, 4, Out::F32),
        (Precision::Fp16, 2, 4, 17, 3, Out::Fp16),
        (Precision::Bf16, 1, 1, 1, 1, Out::Bf16),
    ]
    .into_iter()
    .enumerate()
    {
        let spec = BatchSpec {
            precision,
            count,
            m,
            k,
            n,
        };
        let a = operands(precision, count * m * k, 7 + i as u64);
        let b = operands(precision, count * k * n, 70 + i as u64);
        let len = count * m * n;
        let got = call(&mut sim, out, len, |d, o| d.matmul_batch(&spec, &a, &b, o));
        let want = call(&mut reference, out, len, |d, o| {
            d.matmul_batch(&spec, &a, &b, o)
        });
        assert_eq!(got, want, "batch {i}: {spec:?}, {out:?}");
        let stats = sim.stats()[&("batch", m, n, k)];
        assert_eq!(stats.products, count as u64);
        assert_eq!(stats.macs, (count * m * n * k) as u64);
    }
}

#[test]
fn malformed_calls_are_rejected() {
    let mut sim = device();
    let spec = BatchSpec {
        precision: Precision::Bf16,
        count: 2,
        m: 2,
        k: 3,
        n: 2,
    };
    let mut d = vec![0f32; 8];
    let err = sim
        .matmul_batch(&spec, &[0; 11], &[0; 12], MatOut::F32(&mut d))
        .unwrap_err();
    assert!(
        matches!(&err, DeviceError::Rejected { reason, .. } if reason.contains("A has 11")),
        "{err}"
    );
    let int8 = BatchSpec {
        precision: Precision::Int8,
        ..spec
    };
    assert!(sim
        .matmul_batch(&int8, &[0; 12], &[0; 12], MatOut::F32(&mut d))
        .is_err());
    let bt = vec![0u16; 6];
    let handle = sim
        .upload_weight(&WeightUpload {
            name: "w",
            precision: Precision::Fp16,
            k: 3,
            n: 2,
            bt: &bt,
            bias: None,
        })
        .unwrap();
    let mut d = vec![0u16; 4];
    let err = sim
        .matmul_weight(handle, &[0; 5], 2, MatOut::Bf16(&mut d))
        .unwrap_err();
    assert!(err.to_string().contains("m = 2 needs 6"), "{err}");
    assert!(sim.describe().contains("2×3"), "{}", sim.describe());
}

/// A whole PoC forward (`synthetic:tiny`, shortened to 4 positions) with every product on the
/// simulated accelerator gives the CPU golden model's artifacts, byte for byte.
#[test]
fn a_poc_forward_on_the_accelerator_gives_the_golden_artifacts() {
    let (block_hash, public_key) = ("00ab", "sim-test");
    let spec = ModelSpec::parse("synthetic:tiny").unwrap();
    let source = spec.open(block_hash, None, 1).unwrap();
    let nonces = [3u64, 11];
    let mut golden = Engine::load(&*source, ReferenceDevice::new()).unwrap();
    let round = Round::new(RoundParams::new(block_hash, public_key, 4), golden.config()).unwrap();
    let want = golden.artifacts(&round, &nonces, 2).unwrap();
    let mut engine = Engine::load(&*source, device()).unwrap();
    let got = engine.artifacts(&round, &nonces, 2).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got, want);
    let stats = engine.device().stats();
    assert!(stats.keys().any(|(kind, ..)| *kind == "batch"));
    assert!(stats.values().all(|s| s.busy_cycles > 0));
}
