//! The `sim` command end to end on a small design (2×3, k depth 16: the configuration of
//! `accelerator.rs`, so the build cache is shared): a run that is bit-exact and says so in its
//! JSON report, a fault-injected run that fails naming cases and exits 1, and usage errors that
//! exit 2. `POCFORGE_FULL=1` runs the default 8×8 command as well.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

const SMALL: &[&str] = &[
    "--array",
    "2x3",
    "--kdepth",
    "16",
    "--queue-depth",
    "2",
    "--max-burst",
    "4",
    "--read-latency",
    "6",
    "-q",
];

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(args)
        .output()
        .expect("run the sim binary")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pocforge-sim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn text(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn report(path: &PathBuf) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("the report was written"))
        .expect("the report is JSON")
}

#[test]
fn a_small_run_is_bit_exact_and_reports_it() {
    let path = scratch("pass.json");
    let mut args = SMALL.to_vec();
    let path_text = path.to_str().unwrap();
    args.extend([
        "--suite",
        "mac-fp16,gemm-bf16",
        "--cases",
        "4",
        "--gemm",
        "8x12x20:bf16",
        "--nonces",
        "5",
        "--seq-len",
        "4",
        "--report",
        path_text,
    ]);
    let output = sim(&args);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    assert!(all.contains("BIT-EXACT"), "{all}");
    let r = report(&path);
    assert_eq!(r["bit_exact"], true);
    assert_eq!(r["config"]["rows"], 2);
    assert_eq!(r["config"]["cols"], 3);
    let suites = r["suites"].as_array().unwrap();
    assert_eq!(suites.len(), 2);
    for s in suites {
        assert!(s["passed"].as_u64().unwrap() >= 4, "{s}");
        assert_eq!(s["failed"], 0, "{s}");
        assert!(s["name"].is_string());
    }
    let gemm = r["gemm"].as_array().unwrap();
    let bench = gemm.iter().find(|g| g["source"] == "bench").unwrap();
    assert_eq!(
        (
            bench["m"].as_u64(),
            bench["n"].as_u64(),
            bench["k"].as_u64()
        ),
        (Some(8), Some(12), Some(20))
    );
    assert_eq!(bench["macs"], 8 * 12 * 20);
    assert!(bench["cycles"].as_u64().unwrap() > 0);
    let util = bench["utilization"].as_f64().unwrap();
    assert!(util > 0.0 && util <= 1.0, "{util}");
    assert_eq!(bench["bit_exact"], true);
    assert!(gemm.iter().any(|g| g["source"] == "poc-weight"));
    let poc = &r["poc"];
    assert_eq!(poc["nonces"], serde_json::json!([5]));
    assert_eq!(poc["artifacts_equal_golden"], true);
    assert!(poc["cycles_per_artifact"].as_f64().unwrap() > 0.0);
    assert!(r["sim_cycles_per_second"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_stuck_accumulator_bit_fails_the_run_naming_cases() {
    let path = scratch("fault.json");
    let mut args = SMALL.to_vec();
    args.extend([
        "--fault",
        "pe:1,2:acc:bit30:stuck1",
        "--suite",
        "gemm-bf16",
        "--cases",
        "6",
        "--no-gemm",
        "--no-poc",
        "--report",
        path.to_str().unwrap(),
    ]);
    let output = sim(&args);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(
        all.contains("NOT BIT-EXACT") && all.contains("FAIL"),
        "{all}"
    );
    assert!(
        all.contains("gemm-bf16 case "),
        "failing cases are named: {all}"
    );
    let r = report(&path);
    assert_eq!(r["bit_exact"], false);
    let suite = &r["suites"][0];
    assert!(suite["failed"].as_u64().unwrap() > 0, "{suite}");
    assert!(!suite["failures"].as_array().unwrap().is_empty());
    assert!(r["faults"][0]["hits"].as_u64().unwrap() > 0);
}

#[test]
fn usage_errors_exit_2_and_say_what_is_valid() {
    let output = sim(&["--array", "0x4"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let mut args = SMALL.to_vec();
    args.extend(["--fault", "pe:5,0:acc:bit1:stuck1", "--no-poc"]);
    let output = sim(&args);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(2), "{all}");
    assert!(all.contains("outside the 2×3 array"), "{all}");
    let mut args = SMALL.to_vec();
    args.push("--list-faults");
    let output = sim(&args);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    assert!(
        all.contains("pe:ROW,COL") && all.contains("buf:a:bankI:wordW"),
        "{all}"
    );
}

/// The README's main command with its defaults (8×8; minutes of simulation).
#[test]
fn the_default_run_is_bit_exact() {
    if std::env::var("POCFORGE_FULL").as_deref() != Ok("1") {
        eprintln!("skipped: set POCFORGE_FULL=1 to run the default 8×8 simulation");
        return;
    }
    let path = scratch("default.json");
    let output = sim(&["-q", "--report", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(report(&path)["bit_exact"], true);
}
