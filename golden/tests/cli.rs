//! The `golden` binary end to end: generate → run → check, corruption, reproducibility,
//! exit codes. Counts are small by default; `POCFORGE_FULL=1` uses the suites' default sizes
//! and the 100,000-case `mac-bf16`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SUITES: [&str; 10] = [
    "mac-int8",
    "mac-bf16",
    "mac-fp16",
    "gemm-int8",
    "gemm-bf16",
    "gemm-fp16",
    "layer-bf16",
    "layer-fp16",
    "poc-bf16",
    "poc-fp16",
];

fn full() -> bool {
    std::env::var_os("POCFORGE_FULL").is_some()
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn golden(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_golden"))
        .args(args)
        .output()
        .expect("the golden binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs golden and asserts its exit code, returning (stdout, stderr).
fn expect(code: i32, args: &[&str]) -> (String, String) {
    let out = golden(args);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(code),
        "golden {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        args.join(" ")
    );
    (stdout, stderr)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("scratch paths are UTF-8")
}

fn count_for(suite: &str) -> String {
    match (suite.starts_with("mac"), full()) {
        (true, false) => "2500".into(), // more than every mac suite's directed cases
        (false, false) => "60".into(),
        (true, true) => "100000".into(),
        (false, true) => "768".into(),
    }
}

/// Generates `suite` and writes the golden model's results next to it.
fn generated(dir: &Path, suite: &str, seed: &str) -> (PathBuf, PathBuf) {
    let suite_dir = dir.join(suite);
    let results = dir.join(format!("{suite}.results.safetensors"));
    let count = count_for(suite);
    let args = [
        "vectors",
        "generate",
        "--suite",
        suite,
        "--seed",
        seed,
        "--count",
        &count,
        "--out",
        path(&suite_dir),
    ];
    let (stdout, stderr) = expect(0, &args);
    assert!(stdout.contains(&format!("generated {suite}")), "{stdout}");
    if suite.starts_with("mac") {
        assert!(
            !stderr.contains("warning"),
            "all directed cases included: {stderr}"
        );
    }
    expect(
        0,
        &["vectors", "run", path(&suite_dir), "--out", path(&results)],
    );
    (suite_dir, results)
}

#[test]
fn generate_run_check_passes_for_every_suite() {
    let dir = scratch("roundtrip");
    for suite in SUITES {
        let (suite_dir, results) = generated(&dir, suite, "7");
        let (stdout, _) = expect(
            0,
            &[
                "vectors",
                "check",
                path(&suite_dir),
                "--results",
                path(&results),
            ],
        );
        assert!(stdout.contains("PASS"), "{stdout}");
        assert!(stdout.contains(&format!("suite {suite} ")), "{stdout}");
        let (stdout, _) = expect(0, &["vectors", "verify", path(&suite_dir)]);
        assert!(stdout.contains("intact"), "{stdout}");
    }
}

#[test]
fn one_flipped_bit_fails_with_exit_code_1_and_names_the_case() {
    let dir = scratch("flip");
    let (suite_dir, results) = generated(&dir, "mac-bf16", "3");
    // The output bytes are the last tensor of a results file: flip one bit of the last case.
    let mut bytes = std::fs::read(&results).unwrap();
    *bytes.last_mut().unwrap() ^= 0x04;
    let flipped = dir.join("flipped.safetensors");
    std::fs::write(&flipped, bytes).unwrap();
    let last = count_for("mac-bf16").parse::<u64>().unwrap() - 1;

    let (stdout, _) = expect(
        1,
        &[
            "vectors",
            "check",
            path(&suite_dir),
            "--results",
            path(&flipped),
        ],
    );
    assert!(stdout.contains("FAIL"), "{stdout}");
    assert!(stdout.contains(&format!("case {last} [")), "{stdout}");
    assert!(
        stdout.contains("expected 0x") && stdout.contains("actual 0x"),
        "{stdout}"
    );
    assert!(stdout.contains("inputs of D[0][0]"), "{stdout}");

    let (stdout, _) = expect(
        1,
        &[
            "vectors",
            "check",
            path(&suite_dir),
            "--results",
            path(&flipped),
            "--json",
        ],
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["verdict"], "fail");
    assert_eq!(report["failed"], 1);
    assert_eq!(report["failures"][0]["case"], last);
    assert_eq!(report["failures"][0]["problem"], "mismatch");
    assert_eq!(report["failures"][0]["differing_elements"], 1);
}

#[test]
fn corrupt_suites_are_rejected_with_exit_code_2() {
    let dir = scratch("corrupt");
    let (suite_dir, results) = generated(&dir, "mac-int8", "1");
    let count: u64 = count_for("mac-int8").parse().unwrap();
    let data = suite_dir.join("cases-00000.safetensors");
    let original = std::fs::read(&data).unwrap();
    let check = [
        "vectors",
        "check",
        path(&suite_dir),
        "--results",
        path(&results),
    ];

    // Truncated by one byte.
    std::fs::write(&data, &original[..original.len() - 1]).unwrap();
    let (_, stderr) = expect(2, &check);
    assert!(stderr.contains("cases-00000.safetensors"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "has {} bytes but the manifest says {}",
            original.len() - 1,
            original.len()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("truncated"), "{stderr}");

    // Same size, one byte changed.
    let mut tampered = original.clone();
    tampered[original.len() / 2] ^= 0xFF;
    std::fs::write(&data, &tampered).unwrap();
    let (_, stderr) = expect(2, &check);
    assert!(
        stderr.contains("cases-00000.safetensors") && stderr.contains("SHA-256"),
        "{stderr}"
    );
    assert!(stderr.contains("modified"), "{stderr}");
    let (_, stderr) = expect(2, &["vectors", "verify", path(&suite_dir)]);
    assert!(stderr.contains("SHA-256"), "{stderr}");

    // Missing.
    std::fs::remove_file(&data).unwrap();
    let (_, stderr) = expect(2, &check);
    assert!(stderr.contains("is missing"), "{stderr}");
    std::fs::write(&data, &original).unwrap();
    expect(0, &check);

    // A manifest edited by hand.
    let manifest = suite_dir.join("manifest.json");
    let good = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        good.replacen(
            &format!("\"case_count\": {count}"),
            &format!("\"case_count\": {}", count + 1),
            1,
        ),
    )
    .unwrap();
    let (_, stderr) = expect(2, &check);
    assert!(
        stderr.contains("manifest.json")
            && stderr.contains(&format!("case_count is {}", count + 1)),
        "{stderr}"
    );

    // A valid suite, but not the one the results were produced for.
    std::fs::write(&manifest, good.replace("\"seed\": 1,", "\"seed\": 2,")).unwrap();
    let (_, stderr) = expect(2, &check);
    assert!(
        stderr.contains("produced for suite `mac-int8` with manifest SHA-256"),
        "{stderr}"
    );
    std::fs::write(&manifest, &good).unwrap();

    // A truncated results file.
    let r = std::fs::read(&results).unwrap();
    std::fs::write(&results, &r[..r.len() - 3]).unwrap();
    let (_, stderr) = expect(2, &check);
    assert!(
        stderr.contains("results file") && stderr.contains("safetensors"),
        "{stderr}"
    );

    // Not a suite at all.
    let (_, stderr) = expect(2, &["vectors", "verify", path(&dir)]);
    assert!(stderr.contains("not a vector suite directory"), "{stderr}");
}

#[test]
fn same_seed_same_bytes_different_seed_different_bytes() {
    let dir = scratch("repro");
    let make = |name: &str, seed: &str| {
        let out = dir.join(name);
        expect(
            0,
            &[
                "vectors",
                "generate",
                "--suite",
                "gemm-fp16",
                "--seed",
                seed,
                "--count",
                "40",
                "--out",
                path(&out),
            ],
        );
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        files.sort();
        files
    };
    let one = make("one", "99");
    let two = make("two", "99");
    let other = make("other", "100");
    assert_eq!(one.len(), 2);
    assert_eq!(one, two, "same seed, same bytes");
    assert_ne!(one[0].1, other[0].1, "different seed, different data");
}

#[test]
fn generate_refuses_to_overwrite_without_force() {
    let dir = scratch("force");
    let out = dir.join("suite");
    let args = [
        "vectors",
        "generate",
        "--suite",
        "fp16",
        "--level",
        "0",
        "--seed",
        "1",
        "--count",
        "1600",
        "--out",
        path(&out),
    ];
    expect(0, &args);
    let (_, stderr) = expect(2, &args);
    assert!(
        stderr.contains("not empty") && stderr.contains("--force"),
        "{stderr}"
    );
    let mut forced = args.to_vec();
    forced.push("--force");
    let (stdout, _) = expect(0, &forced);
    assert!(stdout.contains("generated mac-fp16"), "{stdout}");
    // Fewer cases than the directed set: allowed, with a warning.
    let small = dir.join("small");
    let (_, stderr) = expect(
        0,
        &[
            "vectors",
            "generate",
            "--suite",
            "mac-fp16",
            "--seed",
            "1",
            "--count",
            "10",
            "--out",
            path(&small),
        ],
    );
    assert!(
        stderr.contains("warning") && stderr.contains("directed"),
        "{stderr}"
    );
}

#[test]
fn usage_errors_exit_with_code_2() {
    let dir = scratch("usage");
    let out = dir.join("x");
    let (_, stderr) = expect(
        2,
        &[
            "vectors",
            "generate",
            "--suite",
            "mac-fp64",
            "--seed",
            "1",
            "--out",
            path(&out),
        ],
    );
    assert!(
        stderr.contains("unknown suite `mac-fp64`") && stderr.contains("mac-bf16"),
        "{stderr}"
    );
    let (_, stderr) = expect(
        2,
        &[
            "vectors",
            "generate",
            "--suite",
            "bf16",
            "--seed",
            "1",
            "--out",
            path(&out),
        ],
    );
    assert!(stderr.contains("--level"), "{stderr}");
    let (_, stderr) = expect(
        2,
        &[
            "vectors",
            "generate",
            "--suite",
            "mac-bf16",
            "--level",
            "1",
            "--seed",
            "1",
            "--out",
            path(&out),
        ],
    );
    assert!(stderr.contains("level 0"), "{stderr}");
    let (_, stderr) = expect(
        2,
        &[
            "vectors",
            "generate",
            "--suite",
            "mac-bf16",
            "--seed",
            "1",
            "--count",
            "0",
            "--out",
            path(&out),
        ],
    );
    assert!(stderr.contains("at least 1"), "{stderr}");
    expect(2, &["vectors", "generate", "--suite", "mac-bf16"]); // clap: missing --seed, --out
    expect(2, &["vectors", "frobnicate"]);
    let (_, stderr) = expect(
        2,
        &[
            "gemm",
            "--precision",
            "fp64",
            "--m",
            "1",
            "--n",
            "1",
            "--k",
            "1",
            "--seed",
            "1",
        ],
    );
    assert!(stderr.contains("int8, bf16, fp16"), "{stderr}");
    expect(
        2,
        &[
            "gemm",
            "--precision",
            "bf16",
            "--m",
            "0",
            "--n",
            "1",
            "--k",
            "1",
            "--seed",
            "1",
        ],
    );
    let (_, stderr) = expect(
        2,
        &[
            "gemm",
            "--precision",
            "bf16",
            "--m",
            "1",
            "--n",
            "1",
            "--k",
            "1",
            "--seed",
            "1",
            "--output",
            "i8",
        ],
    );
    assert!(
        stderr.contains("must be one of f32, bf16, fp16"),
        "{stderr}"
    );
    let (stdout, _) = expect(0, &["--help"]);
    assert!(stdout.contains("Exit codes"), "{stdout}");
}

#[test]
fn gemm_command_prints_digest_and_checks_against_the_reference() {
    // The README's first command, with --check.
    let args = [
        "gemm",
        "--precision",
        "bf16",
        "--m",
        "64",
        "--n",
        "64",
        "--k",
        "64",
        "--seed",
        "1",
    ];
    let (plain, _) = expect(0, &args);
    assert!(
        plain.contains("GFLOP/s") && plain.contains("D sha256"),
        "{plain}"
    );
    let mut checked = args.to_vec();
    checked.push("--check");
    let (stdout, _) = expect(0, &checked);
    assert!(stdout.contains("equal to the exact reference"), "{stdout}");
    let digest = |s: &str| {
        s.lines()
            .find(|l| l.contains("D sha256"))
            .unwrap()
            .to_owned()
    };
    assert_eq!(digest(&plain), digest(&stdout), "same seed, same D");

    let (json, _) = expect(
        0,
        &[
            "gemm",
            "--precision",
            "int8",
            "--m",
            "17",
            "--n",
            "5",
            "--k",
            "33",
            "--seed",
            "4",
            "--output",
            "i8",
            "--multiplier",
            "-3",
            "--shift",
            "9",
            "--zero-point",
            "-2",
            "--accumulate",
            "--check",
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["check"]["equal"], true);
    assert_eq!(v["d_bytes"], 85);
    assert_eq!(v["requant"]["multiplier"], -3);
    assert_eq!(v["d_sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn list_names_every_suite() {
    let (stdout, _) = expect(0, &["vectors", "list"]);
    for suite in SUITES {
        assert!(stdout.contains(suite), "{stdout}");
    }
    let (json, _) = expect(0, &["vectors", "list", "--json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    assert_eq!(rows.len(), SUITES.len());
    // Levels 0 and 1 open with many hand-designed corner cases; levels 2 and 3 are recorded
    // PoC products, all in a fixed order.
    assert!(rows.iter().all(|r| {
        let directed = r["directed_cases"].as_u64().unwrap();
        if r["level"].as_u64().unwrap() < 2 {
            directed > 100
        } else {
            directed == r["default_count"].as_u64().unwrap_or(directed)
        }
    }));
}
