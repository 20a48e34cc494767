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

/// Places one GEMM in memory, returns (script lines, expected D rows: (address, bytes)).
fn case(
    mem: &mut [u8],
    spec: GemmSpec,
    seed: u64,
    base: usize,
) -> (Vec<String>, Vec<(usize, Vec<u8>)>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (m, n, k) = (spec.m, spec.n, spec.k);
    let (eb, ob) = (spec.precision.operand_bytes(), spec.output.bytes());
    let (lda, ldb, ldc, ldd) = (k * eb + 6, n * eb + 2, n * 4 + 8, n * ob + 4);
    let (a_at, b_at, c_at, d_at) = (base, base + 0x1000, base + 0x2000, base + 0x3000);
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
    (script, rows)
}

#[test]
fn verilated_design_matches_golden() {
    let dir = concat!(env!("CARGO_TARGET_TMPDIR"), "/vsim-2x3");
    let dir_path = Path::new(dir);
    std::fs::create_dir_all(dir_path).unwrap();
    run(Command::new(env!("CARGO_BIN_EXE_hdl")).args([
        "emit",
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
        "--out",
        dir,
    ]));
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
        ])
        .args(["--top-module", "top", "--Mdir"])
        .arg(dir_path.join("obj"))
        .arg(dir_path.join("top.v"))
        .arg(harness)
        .args(["-o", "vtop"]));

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
        let (lines, rows) = case(&mut mem, *spec, n as u64 + 10, 0x4000 * n);
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
