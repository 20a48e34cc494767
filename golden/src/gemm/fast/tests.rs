//! The fast GEMM equals the reference bit for bit: every kernel family this CPU has, every
//! precision, output format and accumulate mode, both entry points, any blocking, any thread
//! count, strided views, on random and deliberately adversarial values.
//!
//! Cases are generated from a seed (proptest picks shape, value *mode* and seed, and shrinks
//! them); the values come from a seeded generator per mode, so a failure names a seed that
//! reproduces it. Small blockings (a few rows, one panel, a handful of `k` per block) make
//! shapes small enough for the exact reference cross many tile and block boundaries; separate
//! tests use the real blocking on large shapes against a `mac::fast` triple loop (itself tested
//! equal to the exact MAC in `numerics::mac`).

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::driver::Blocking;
use super::*;
use crate::gemm::{read_operand, read_u32, reference, write_output};
use crate::numerics::{mac, FloatFormat, Requant};

/// `POCFORGE_FULL=1` multiplies the number of cases.
fn cases(default: u32) -> u32 {
    if std::env::var_os("POCFORGE_FULL").is_some() {
        default * 20
    } else {
        default
    }
}

/// How a case's values are chosen; each mode aims at one class of hard inputs.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// Uniformly random bit patterns (NaNs with any payload, infinities, subnormals included).
    RandomBits,
    /// Values of similar scale, mostly ordinary numbers: the common case.
    Ordinary,
    /// Small integers and halves against accumulators near 2^24..2^26: ties to even.
    Ties,
    /// Tiny operands and accumulators: subnormal products, sums and results.
    Subnormal,
    /// Huge operands and accumulators: overflow to ±∞, ∞ − ∞, ∞ · 0.
    Overflow,
    /// Pairs of opposite products (`A[k+1] = −A[k]`, `B[k+1] = B[k]`) and near-cancelling
    /// accumulators: massive cancellation.
    Cancel,
    /// Zeros of both signs everywhere, accumulators `±0`: the sign rules of IEEE zero sums.
    SignedZeros,
    /// Ordinary values with a sprinkling of NaNs (assorted payloads and signs), ∞ and 0.
    Specials,
}

const MODES: [Mode; 8] = [
    Mode::RandomBits,
    Mode::Ordinary,
    Mode::Ties,
    Mode::Subnormal,
    Mode::Overflow,
    Mode::Cancel,
    Mode::SignedZeros,
    Mode::Specials,
];

/// Encodes `sign × 2^exp × (1 + frac/2^m)` in `format` (exponent clamped to the normal range).
fn encode(format: FloatFormat, negative: bool, exp: i32, frac: u32) -> u16 {
    let max_biased = (1 << format.exponent_bits) - 2;
    let biased = (exp + format.bias).clamp(1, max_biased) as u32;
    let frac = frac & ((1 << format.mantissa_bits) - 1);
    let sign = u32::from(negative) << (format.width() - 1);
    (sign | (biased << format.mantissa_bits) | frac) as u16
}

fn special_operand(format: FloatFormat, rng: &mut StdRng) -> u16 {
    let m = format.mantissa_bits;
    let exp_all = ((1u32 << format.exponent_bits) - 1) << m;
    let sign = if rng.random_bool(0.5) {
        1u32 << (format.width() - 1)
    } else {
        0
    };
    let payload = rng.random_range(1..(1u32 << m));
    let code = match rng.random_range(0..6) {
        0 => exp_all | payload,        // NaN, any payload (quiet or signalling)
        1 => exp_all | (1 << (m - 1)), // canonical-looking quiet NaN
        2 => exp_all,                  // ∞
        3 => 0,                        // 0
        4 => rng.random_range(1..(1u32 << m)), // subnormal
        _ => exp_all - (1 << m) + (1 << m) - 1, // largest finite
    };
    (sign | code) as u16
}

fn float_operand(format: FloatFormat, mode: Mode, rng: &mut StdRng) -> u16 {
    let m = format.mantissa_bits;
    let negative = rng.random_bool(0.5);
    let frac = rng.random::<u32>();
    let max_exp = format.bias;
    let min_exp = 1 - format.bias;
    match mode {
        Mode::RandomBits => rng.random::<u16>(),
        Mode::Ordinary | Mode::Cancel => encode(format, negative, rng.random_range(-6..6), frac),
        Mode::Ties => {
            // ±1, ±2, ±0.5, ±1.5, small integers: exact products, sums that hit ties.
            let choices = [1.0f32, 2.0, 0.5, 1.5, 3.0, 0.75, 4.0, 1.0, 1.0];
            let v = choices[rng.random_range(0..choices.len())];
            let v = if negative { -v } else { v };
            format.encode_rne(v) as u16
        }
        Mode::Subnormal => {
            if rng.random_bool(0.3) {
                // Operand subnormals.
                let sign = u32::from(negative) << (format.width() - 1);
                (sign | rng.random_range(0..(1u32 << m))) as u16
            } else {
                // Smallest normal exponents: products reach below f32's normal range (bf16).
                encode(
                    format,
                    negative,
                    rng.random_range(min_exp..min_exp + 12),
                    frac,
                )
            }
        }
        Mode::Overflow => {
            if rng.random_bool(0.05) {
                special_operand(format, rng)
            } else {
                encode(
                    format,
                    negative,
                    rng.random_range(max_exp - 8..=max_exp),
                    frac,
                )
            }
        }
        Mode::SignedZeros => {
            if rng.random_bool(0.9) {
                (u32::from(negative) << (format.width() - 1)) as u16
            } else {
                encode(format, negative, rng.random_range(-3..3), frac)
            }
        }
        Mode::Specials => {
            if rng.random_bool(0.04) {
                special_operand(format, rng)
            } else {
                encode(format, negative, rng.random_range(-8..8), frac)
            }
        }
    }
}

fn float_accumulator(format: FloatFormat, mode: Mode, rng: &mut StdRng) -> u32 {
    let negative = rng.random_bool(0.5);
    let sign = u32::from(negative) << 31;
    let bits = match mode {
        Mode::RandomBits => return rng.random::<u32>(),
        Mode::Ordinary | Mode::Specials => {
            let v = rng.random_range(-64.0f32..64.0);
            if matches!(mode, Mode::Specials) && rng.random_bool(0.05) {
                return [
                    0x7FC0_0000,
                    0xFFC0_0001,
                    0x7F80_0001,
                    0x7F80_0000,
                    0xFF80_0000,
                ][rng.random_range(0..5)];
            }
            return v.to_bits();
        }
        // 2^24..2^26 with random low bits: adding ±1, ±0.5 … lands on ties.
        Mode::Ties => (rng.random_range(151u32..153) << 23) | rng.random_range(0..16),
        Mode::Subnormal => {
            if rng.random_bool(0.6) {
                rng.random_range(0..0x0080_0000) // subnormal or zero
            } else {
                rng.random_range(0x0080_0000..0x0200_0000) // just above
            }
        }
        Mode::Overflow => {
            if format.exponent_bits == 5 {
                // fp16 products stay below 2^32: only accumulators near f32::MAX overflow.
                rng.random_range(0x7F00_0000..0x7F80_0000)
            } else {
                rng.random_range(0x7E00_0000..0x7F80_0001)
            }
        }
        Mode::Cancel => {
            // Near minus a typical product sum: cancellation against the accumulator too.
            let v = rng.random_range(1.0f32..4.0);
            return (if negative { -v } else { v }).to_bits();
        }
        Mode::SignedZeros => 0,
    };
    sign | bits
}

fn int8_operand(mode: Mode, rng: &mut StdRng) -> i8 {
    match mode {
        Mode::Overflow | Mode::SignedZeros => [-128, -128, -128, 127, -127][rng.random_range(0..5)],
        Mode::Ties | Mode::Subnormal => [-128, 127, -1, 0, 1][rng.random_range(0..5)],
        _ => rng.random::<i8>(),
    }
}

fn int8_accumulator(mode: Mode, rng: &mut StdRng) -> i32 {
    match mode {
        // Near the wrap-around points, so a few products wrap.
        Mode::Overflow | Mode::Ties | Mode::SignedZeros => {
            let d = rng.random_range(0..100_000);
            if rng.random_bool(0.5) {
                i32::MAX - d
            } else {
                i32::MIN + d
            }
        }
        _ => rng.random::<i32>(),
    }
}

fn random_requant(rng: &mut StdRng) -> Requant {
    Requant {
        multiplier: match rng.random_range(0..3) {
            0 => rng.random(),
            1 => rng.random_range(-5..6),
            _ => [i32::MIN, i32::MAX, 1, -1][rng.random_range(0..4)],
        },
        shift: rng.random_range(0..=62),
        zero_point: rng.random(),
    }
}

/// One GEMM with its inputs in the reference's byte layout.
#[derive(Debug)]
struct Case {
    spec: GemmSpec,
    a: Vec<u8>,
    b: Vec<u8>,
    c: Option<Vec<u8>>,
}

fn make_case(
    precision: Precision,
    (m, n, k): (usize, usize, usize),
    mode: Mode,
    seed: u64,
) -> Case {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut spec = GemmSpec::new(precision, m, n, k);
    spec.accumulate = rng.random_bool(0.5) || matches!(mode, Mode::Ties | Mode::SignedZeros);
    let (a, b, c) = match precision.operand_format() {
        Some(format) => {
            let mut a: Vec<u16> = (0..m * k)
                .map(|_| float_operand(format, mode, &mut rng))
                .collect();
            let mut b: Vec<u16> = (0..k * n)
                .map(|_| float_operand(format, mode, &mut rng))
                .collect();
            if matches!(mode, Mode::Cancel) {
                let sign = 1u16 << (format.width() - 1);
                for kk in (1..k).step_by(2) {
                    for i in 0..m {
                        a[i * k + kk] = a[i * k + kk - 1] ^ sign;
                    }
                    for j in 0..n {
                        b[kk * n + j] = b[(kk - 1) * n + j];
                    }
                }
            }
            let c: Vec<u8> = (0..m * n)
                .flat_map(|_| float_accumulator(format, mode, &mut rng).to_le_bytes())
                .collect();
            spec.output =
                [OutputFormat::F32, OutputFormat::Bf16, OutputFormat::Fp16][rng.random_range(0..3)];
            let bytes = |v: Vec<u16>| v.into_iter().flat_map(u16::to_le_bytes).collect();
            (bytes(a), bytes(b), c)
        }
        None => {
            let a = (0..m * k)
                .map(|_| int8_operand(mode, &mut rng) as u8)
                .collect();
            let b = (0..k * n)
                .map(|_| int8_operand(mode, &mut rng) as u8)
                .collect();
            let c = (0..m * n)
                .flat_map(|_| int8_accumulator(mode, &mut rng).to_le_bytes())
                .collect();
            spec.output = if rng.random_bool(0.5) {
                OutputFormat::I32
            } else {
                OutputFormat::I8(random_requant(&mut rng))
            };
            (a, b, c)
        }
    };
    let c = spec.accumulate.then_some(c);
    Case { spec, a, b, c }
}

fn reference_output(case: &Case) -> Vec<u8> {
    let mut d = vec![0; case.spec.d_bytes()];
    reference::gemm(&case.spec, &case.a, &case.b, case.c.as_deref(), &mut d).unwrap();
    d
}

/// The contract's triple loop with `mac::fast` (for shapes too large for the exact MAC).
fn fast_reference_output(case: &Case) -> Vec<u8> {
    let s = &case.spec;
    let out_bytes = s.output.bytes();
    let mut d = vec![0; s.d_bytes()];
    let a: Vec<u32> = (0..s.m * s.k)
        .map(|i| read_operand(s.precision, &case.a, i))
        .collect();
    let b: Vec<u32> = (0..s.k * s.n)
        .map(|i| read_operand(s.precision, &case.b, i))
        .collect();
    for i in 0..s.m {
        for j in 0..s.n {
            let mut acc = case.c.as_ref().map_or(0, |c| read_u32(c, i * s.n + j));
            for kk in 0..s.k {
                let (x, y) = (a[i * s.k + kk], b[kk * s.n + j]);
                acc = match s.precision.operand_format() {
                    None => mac::mac_int8(acc as i32, x as u8 as i8, y as u8 as i8) as u32,
                    Some(format) => mac::fast(format, f32::from_bits(acc), x, y).to_bits(),
                };
            }
            let at = (i * s.n + j) * out_bytes;
            write_output(s.output, acc, &mut d[at..at + out_bytes]);
        }
    }
    d
}

/// Copies a dense matrix into a strided one (`pad` extra elements per row, filled with `fill`).
fn strided<T: Copy>(dense: &[T], rows: usize, cols: usize, pad: usize, fill: T) -> Vec<T> {
    let mut out = vec![fill; rows * (cols + pad)];
    for i in 0..rows {
        out[i * (cols + pad)..][..cols].copy_from_slice(&dense[i * cols..][..cols]);
    }
    out
}

/// Gathers a strided matrix back into dense order, checking that the gaps kept `fill`.
fn gather<T: Copy + PartialEq + std::fmt::Debug>(
    data: &[T],
    rows: usize,
    cols: usize,
    pad: usize,
    fill: T,
) -> Vec<T> {
    let mut out = Vec::with_capacity(rows * cols);
    for i in 0..rows {
        let row = &data[i * (cols + pad)..];
        out.extend_from_slice(&row[..cols]);
        if i + 1 < rows {
            assert!(
                row[cols..cols + pad].iter().all(|&x| x == fill),
                "a gap between output rows was written"
            );
        }
    }
    out
}

/// How the typed path is driven in one run.
#[derive(Clone, Copy, Debug)]
struct Drive {
    isa: Isa,
    threads: usize,
    blocking: Option<Blocking>,
    pad: usize,
    /// Accumulate through `Prior::Output` (D preloaded with C) when the output allows it.
    in_place: bool,
}

/// Runs a case through [`gemm_packed`] with typed strided views; returns `D` as dense bytes.
fn typed_output(case: &Case, drive: Drive) -> Vec<u8> {
    let s = &case.spec;
    let (m, n, k, pad) = (s.m, s.n, s.k, drive.pad);
    let options = Options {
        isa: drive.isa,
        threads: drive.threads,
    };
    let u16s = |b: &[u8]| -> Vec<u16> {
        b.chunks_exact(2)
            .map(|x| u16::from_le_bytes([x[0], x[1]]))
            .collect()
    };
    let u32s = |b: &[u8]| -> Vec<u32> {
        b.chunks_exact(4)
            .map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]))
            .collect()
    };
    let int8 = s.precision == Precision::Int8;
    let (a16, b16, a8, b8) = if int8 {
        let i8s = |b: &[u8]| -> Vec<i8> { b.iter().map(|&x| x as i8).collect() };
        (
            Vec::new(),
            Vec::new(),
            strided(&i8s(&case.a), m, k, pad, -128),
            strided(&i8s(&case.b), k, n, pad, -128),
        )
    } else {
        (
            strided(&u16s(&case.a), m, k, pad, 0x7FC1),
            strided(&u16s(&case.b), k, n, pad, 0xFFFF),
            Vec::new(),
            Vec::new(),
        )
    };
    let (a, b) = match s.precision {
        Precision::Int8 => (
            Operand::Int8(MatRef::new(&a8, m, k, k + pad).unwrap()),
            Operand::Int8(MatRef::new(&b8, k, n, n + pad).unwrap()),
        ),
        Precision::Bf16 => (
            Operand::Bf16(MatRef::new(&a16, m, k, k + pad).unwrap()),
            Operand::Bf16(MatRef::new(&b16, k, n, n + pad).unwrap()),
        ),
        Precision::Fp16 => (
            Operand::Fp16(MatRef::new(&a16, m, k, k + pad).unwrap()),
            Operand::Fp16(MatRef::new(&b16, k, n, n + pad).unwrap()),
        ),
    };
    let packed = PackedB::new(b).unwrap();
    let c32 = case
        .c
        .as_ref()
        .map(|c| strided(&u32s(c), m, n, pad, 0x7F80_0001));
    let c_f32: Option<Vec<f32>> = c32
        .as_ref()
        .map(|c| c.iter().map(|&x| f32::from_bits(x)).collect());
    let c_i32: Option<Vec<i32>> = c32.as_ref().map(|c| c.iter().map(|&x| x as i32).collect());
    let raw_out = matches!(s.output, OutputFormat::F32 | OutputFormat::I32);
    let in_place = drive.in_place && raw_out && s.accumulate;
    let prior = match (&c_f32, &c_i32, s.precision.accumulator(), in_place) {
        (_, _, _, true) => Prior::Output,
        (Some(c), _, crate::numerics::Accumulator::F32, _) => {
            Prior::F32(MatRef::new(c, m, n, n + pad).unwrap())
        }
        (_, Some(c), crate::numerics::Accumulator::I32, _) => {
            Prior::I32(MatRef::new(c, m, n, n + pad).unwrap())
        }
        _ => Prior::Zero,
    };
    let run = |out: Output<'_>| match drive.blocking {
        Some(blocking) => gemm_packed_blocked(a, &packed, prior, out, options, blocking),
        None => gemm_packed(a, &packed, prior, out, options),
    };
    let len = m * (n + pad) - pad;
    match s.output {
        OutputFormat::F32 => {
            let mut d = match (&c_f32, in_place) {
                (Some(c), true) => c[..len].to_vec(),
                _ => vec![f32::from_bits(0x7F80_0002); len],
            };
            let gap = d.get(n).map_or(0, |x| x.to_bits());
            run(Output::F32(MatMut::new(&mut d, m, n, n + pad).unwrap())).unwrap();
            let bits: Vec<u32> = d.iter().map(|x| x.to_bits()).collect();
            let dense = gather(&bits, m, n, pad, gap);
            dense.into_iter().flat_map(u32::to_le_bytes).collect()
        }
        OutputFormat::Bf16 | OutputFormat::Fp16 => {
            let mut d = vec![0x5A5Au16; len];
            let view = MatMut::new(&mut d, m, n, n + pad).unwrap();
            run(if s.output == OutputFormat::Bf16 {
                Output::Bf16(view)
            } else {
                Output::Fp16(view)
            })
            .unwrap();
            gather(&d, m, n, pad, 0x5A5A)
                .into_iter()
                .flat_map(u16::to_le_bytes)
                .collect()
        }
        OutputFormat::I32 => {
            let mut d = match (&c_i32, in_place) {
                (Some(c), true) => c[..len].to_vec(),
                _ => vec![0x1234_5678; len],
            };
            let gap = d.get(n).copied().unwrap_or(0);
            run(Output::I32(MatMut::new(&mut d, m, n, n + pad).unwrap())).unwrap();
            gather(&d, m, n, pad, gap)
                .into_iter()
                .flat_map(i32::to_le_bytes)
                .collect()
        }
        OutputFormat::I8(requant) => {
            let mut d = vec![0x5Ai8; len];
            run(Output::I8(
                MatMut::new(&mut d, m, n, n + pad).unwrap(),
                requant,
            ))
            .unwrap();
            gather(&d, m, n, pad, 0x5A)
                .into_iter()
                .map(|x| x as u8)
                .collect()
        }
    }
}

fn assert_same(expected: &[u8], actual: &[u8], case: &Case, what: &str) {
    if expected != actual {
        let width = case.spec.output.bytes();
        let first = expected
            .chunks(width)
            .zip(actual.chunks(width))
            .position(|(e, a)| e != a)
            .unwrap();
        panic!(
            "{what}: output element {} (row {}, col {}) is {:02x?}, reference {:02x?}; spec {:?}",
            first,
            first / case.spec.n,
            first % case.spec.n,
            &actual[first * width..][..width],
            &expected[first * width..][..width],
            case.spec
        );
    }
}

/// Compares every kernel family, both entry points, a small blocking and several thread
/// counts with `expected`.
fn check_all_paths(case: &Case, expected: &[u8], seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x9E37_79B9_7F4A_7C15);
    for &isa in available() {
        let mut d = vec![0; case.spec.d_bytes()];
        let options = Options { isa, threads: 1 };
        gemm_with(
            &case.spec,
            &case.a,
            &case.b,
            case.c.as_deref(),
            &mut d,
            options,
        )
        .unwrap();
        assert_same(expected, &d, case, &format!("gemm_with {isa}"));
        let blocking = Blocking {
            mc_panels: rng.random_range(1..3),
            nc_panels: rng.random_range(1..3),
            kc: rng.random_range(1..10),
        };
        let drive = Drive {
            isa,
            threads: rng.random_range(1..5),
            blocking: Some(blocking),
            pad: rng.random_range(0..3),
            in_place: rng.random_bool(0.5),
        };
        let d = typed_output(case, drive);
        assert_same(expected, &d, case, &format!("gemm_packed {drive:?}"));
    }
}

fn shape() -> impl Strategy<Value = (usize, usize, usize)> {
    // M up to 2+ register blocks of the widest kernel; N past two 32-column panels; K past
    // several small K blocks. Primes and 1 come up often.
    let dim = |max: usize| {
        prop_oneof![
            2 => 1..=max,
            1 => prop::sample::select(vec![1usize, 2, 3, 5, 7, 13, 17, 31]),
        ]
    };
    (
        dim(31),
        prop_oneof![1 => 1usize..=75, 1 => 1usize..=33],
        dim(19),
    )
}

fn mode() -> impl Strategy<Value = Mode> {
    prop::sample::select(MODES.to_vec())
}

fn equal_to_reference(precision: Precision, shape: (usize, usize, usize), mode: Mode, seed: u64) {
    let case = make_case(precision, shape, mode, seed);
    let expected = reference_output(&case);
    check_all_paths(&case, &expected, seed);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(2000)))]

    #[test]
    fn bf16_equals_reference(shape in shape(), mode in mode(), seed in any::<u64>()) {
        equal_to_reference(Precision::Bf16, shape, mode, seed);
    }

    #[test]
    fn fp16_equals_reference(shape in shape(), mode in mode(), seed in any::<u64>()) {
        equal_to_reference(Precision::Fp16, shape, mode, seed);
    }
}

proptest! {
    // The int8 reference has no big-integer arithmetic: many more cases fit the same time.
    #![proptest_config(ProptestConfig::with_cases(cases(5000)))]

    #[test]
    fn int8_equals_reference(shape in shape(), mode in mode(), seed in any::<u64>()) {
        equal_to_reference(Precision::Int8, shape, mode, seed);
    }
}

/// Large shapes with the real blocking (several tiles and `K` blocks in every dimension) and
/// 1…4 threads, against the `mac::fast` triple loop.
fn large_case_all_paths(precision: Precision, shape: (usize, usize, usize), mode: Mode) {
    let case = make_case(precision, shape, mode, 7 + shape.0 as u64);
    let expected = fast_reference_output(&case);
    for &isa in available() {
        for threads in 1..=4 {
            let drive = Drive {
                isa,
                threads,
                blocking: None,
                pad: threads - 1,
                in_place: threads % 2 == 0,
            };
            let d = typed_output(&case, drive);
            assert_same(&expected, &d, &case, &format!("{drive:?}"));
        }
    }
}

#[test]
fn large_float_shapes_cross_every_block() {
    // 130 > MC (112 or 96 rows), 290 > NC (256), 530 > 2·KC (256).
    for precision in [Precision::Bf16, Precision::Fp16] {
        for mode in [Mode::Ordinary, Mode::Ties, Mode::Specials] {
            large_case_all_paths(precision, (130, 290, 530), mode);
        }
    }
}

#[test]
fn large_int8_shapes_cross_every_block() {
    // K = 2 100 > 2·KC (1024), not a multiple of 4.
    for mode in [Mode::RandomBits, Mode::Overflow] {
        large_case_all_paths(Precision::Int8, (115, 290, 2_101), mode);
    }
}

#[test]
fn int8_chains_of_most_negative_products_wrap_like_the_contract() {
    // (-128)·(-128) = 2^14; 2^17 + 5 of them sum to 2^31 + 5·2^14, which wraps past i32::MAX.
    let k = (1 << 17) + 5;
    let (m, n) = (2, 33);
    let spec = GemmSpec::new(Precision::Int8, m, n, k);
    let a = vec![0x80u8; m * k];
    let b = vec![0x80u8; k * n];
    let case = Case {
        spec,
        a,
        b,
        c: None,
    };
    let expected = reference_output(&case);
    let wrapped = (i64::from(k as i32) << 14) as i32; // mod 2^32
    assert_eq!(read_u32(&expected, 0) as i32, wrapped);
    assert!(wrapped < 0, "the chain must wrap");
    for &isa in available() {
        for threads in [1, 3] {
            let drive = Drive {
                isa,
                threads,
                blocking: None,
                pad: 0,
                in_place: false,
            };
            assert_same(
                &expected,
                &typed_output(&case, drive),
                &case,
                &format!("{drive:?}"),
            );
        }
    }
}

#[test]
fn ties_to_even_chain_from_the_reference_tests() {
    // 2^24 + 1 + 1 with k ascending stays 2^24 (two ties to even); any reassociation gives
    // 2^24 + 2.
    let spec = GemmSpec::new(Precision::Bf16, 1, 1, 3);
    let bf16 = |x: f32| crate::numerics::float::f32_to_bf16_rne(x).to_le_bytes();
    let a: Vec<u8> = [16_777_216.0, 1.0, 1.0]
        .into_iter()
        .flat_map(bf16)
        .collect();
    let b: Vec<u8> = [1.0, 1.0, 1.0].into_iter().flat_map(bf16).collect();
    for &isa in available() {
        let mut d = vec![0; 4];
        gemm_with(&spec, &a, &b, None, &mut d, Options { isa, threads: 1 }).unwrap();
        assert_eq!(
            f32::from_le_bytes(d.try_into().unwrap()),
            16_777_216.0,
            "{isa}"
        );
    }
}

#[test]
fn default_entry_point_matches_reference() {
    let case = make_case(Precision::Fp16, (9, 40, 11), Mode::Specials, 42);
    let mut d = vec![0; case.spec.d_bytes()];
    gemm(&case.spec, &case.a, &case.b, case.c.as_deref(), &mut d).unwrap();
    assert_same(&reference_output(&case), &d, &case, "gemm");
}

#[test]
fn byte_api_rejects_what_the_reference_rejects() {
    let spec = GemmSpec::new(Precision::Bf16, 2, 3, 4);
    let (a, b, mut d) = (vec![0; 16], vec![0; 24], vec![0; 24]);
    let err = gemm(&spec, &a[..15], &b, None, &mut d).unwrap_err();
    assert!(err.to_string().contains("operand A has 15 bytes"), "{err}");
    let zero_threads = Options {
        isa: Isa::Portable,
        threads: 0,
    };
    assert_eq!(
        gemm_with(&spec, &a, &b, None, &mut d, zero_threads),
        Err(GemmError::ZeroThreads)
    );
    for isa in Isa::ALL {
        let result = gemm_with(&spec, &a, &b, None, &mut d, Options { isa, threads: 1 });
        if isa.is_supported() {
            result.unwrap();
        } else {
            let err = result.unwrap_err().to_string();
            assert!(
                err.contains(isa.name()) && err.contains("portable"),
                "{err}"
            );
        }
    }
}

#[test]
fn typed_api_rejects_mismatches_before_touching_the_output() {
    let w = vec![0u16; 6];
    let packed = PackedB::new(Operand::Bf16(MatRef::dense(&w, 3, 2).unwrap())).unwrap();
    let x = vec![0u16; 6];
    let x8 = vec![0i8; 6];
    let mut y = vec![7f32; 4];
    let options = Options::single_threaded();
    let a = Operand::Bf16(MatRef::dense(&x, 2, 3).unwrap());

    let err = gemm_packed(
        Operand::Int8(MatRef::dense(&x8, 2, 3).unwrap()),
        &packed,
        Prior::Zero,
        Output::F32(MatMut::dense(&mut y, 2, 2).unwrap()),
        options,
    )
    .unwrap_err();
    assert!(matches!(err, GemmError::PrecisionMismatch { .. }), "{err}");

    let err = gemm_packed(
        Operand::Bf16(MatRef::dense(&x, 3, 2).unwrap()),
        &packed,
        Prior::Zero,
        Output::F32(MatMut::dense(&mut y, 2, 2).unwrap()),
        options,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("A is 3×2 but this GEMM needs 3×3"),
        "{err}"
    );

    let err = gemm_packed(
        a,
        &packed,
        Prior::Zero,
        Output::F32(MatMut::new(&mut y, 1, 2, 2).unwrap()),
        options,
    )
    .unwrap_err();
    assert!(err.to_string().contains("D is 1×2"), "{err}");

    let err = gemm_packed(
        a,
        &packed,
        Prior::Zero,
        Output::I32(MatMut::dense(&mut [0i32; 4], 2, 2).unwrap()),
        options,
    )
    .unwrap_err();
    assert!(matches!(err, GemmError::OutputMismatch { .. }), "{err}");

    let c = [0i32; 4];
    let err = gemm_packed(
        a,
        &packed,
        Prior::I32(MatRef::dense(&c, 2, 2).unwrap()),
        Output::F32(MatMut::dense(&mut y, 2, 2).unwrap()),
        options,
    )
    .unwrap_err();
    assert!(err.to_string().contains("Prior::F32"), "{err}");

    let mut y16 = [0u16; 4];
    let err = gemm_packed(
        a,
        &packed,
        Prior::Output,
        Output::Bf16(MatMut::dense(&mut y16, 2, 2).unwrap()),
        options,
    )
    .unwrap_err();
    assert!(err.to_string().contains("Prior::Output"), "{err}");

    let w8 = vec![0i8; 6];
    let packed8 = PackedB::new(Operand::Int8(MatRef::dense(&w8, 3, 2).unwrap())).unwrap();
    let bad_shift = Requant {
        multiplier: 1,
        shift: 63,
        zero_point: 0,
    };
    let err = gemm_packed(
        Operand::Int8(MatRef::dense(&x8, 2, 3).unwrap()),
        &packed8,
        Prior::Zero,
        Output::I8(MatMut::dense(&mut [0i8; 4], 2, 2).unwrap(), bad_shift),
        options,
    )
    .unwrap_err();
    assert!(matches!(err, GemmError::Requant(_)), "{err}");

    assert!(
        y.iter().all(|&v| v == 7.0),
        "a rejected GEMM wrote its output"
    );
}

#[test]
fn thread_counts_give_identical_bits() {
    let case = make_case(Precision::Bf16, (200, 300, 300), Mode::Ordinary, 3);
    let one = typed_output(
        &case,
        Drive {
            isa: best(),
            threads: 1,
            blocking: None,
            pad: 0,
            in_place: false,
        },
    );
    for threads in [2, 3, 5, 8] {
        let many = typed_output(
            &case,
            Drive {
                isa: best(),
                threads,
                blocking: None,
                pad: 0,
                in_place: false,
            },
        );
        assert_same(&one, &many, &case, &format!("{threads} threads"));
    }
}

#[test]
fn packed_b_is_reusable_across_threads_and_calls() {
    // One PackedB shared by several OS threads, each running its own GEMMs concurrently.
    let (m, n, k) = (40, 70, 50);
    let mut case = make_case(Precision::Int8, (m, n, k), Mode::RandomBits, 11);
    case.spec.output = OutputFormat::I32;
    case.spec.accumulate = true;
    let c: Vec<i32> = (0..m * n)
        .map(|i| (i as i32).wrapping_mul(0x2545_F491))
        .collect();
    case.c = Some(c.iter().flat_map(|x| x.to_le_bytes()).collect());
    let expected = fast_reference_output(&case);
    let a: Vec<i8> = case.a.iter().map(|&x| x as i8).collect();
    let b: Vec<i8> = case.b.iter().map(|&x| x as i8).collect();
    let packed = PackedB::new(Operand::Int8(MatRef::dense(&b, k, n).unwrap())).unwrap();
    std::thread::scope(|scope| {
        for t in 0..3 {
            let (packed, a, c, expected, case) = (&packed, &a, &c, &expected, &case);
            scope.spawn(move || {
                for _ in 0..3 {
                    let mut d = vec![0i32; m * n];
                    gemm_packed(
                        Operand::Int8(MatRef::dense(a, m, k).unwrap()),
                        packed,
                        Prior::I32(MatRef::dense(c, m, n).unwrap()),
                        Output::I32(MatMut::dense(&mut d, m, n).unwrap()),
                        Options::with_threads(t + 1),
                    )
                    .unwrap();
                    let bytes: Vec<u8> = d.iter().flat_map(|x| x.to_le_bytes()).collect();
                    assert_same(expected, &bytes, case, "shared PackedB");
                }
            });
        }
    });
}
