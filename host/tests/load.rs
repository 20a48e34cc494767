//! A load test from a second process (`host loadtest`): concurrent `/status` and `/generate`
//! requests, bounded in count and time, with no errors, and the queue cap answering 429.

mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

#[test]
fn concurrent_status_and_generate_from_another_process() {
    let data = data_dir();
    let daemon = Daemon::start(&[
        "--model",
        MODEL,
        "--device",
        "cpu",
        "--data-dir",
        path_str(data.path()),
        "--queue-cap",
        "256",
    ]);
    let seconds = scale(3, 30).to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_host"))
        .args([
            "loadtest",
            "--url",
            &daemon.base,
            "--seconds",
            &seconds,
            "--status-concurrency",
            "4",
            "--generate-concurrency",
            "3",
            "--max-requests",
            if full() { "400000" } else { "20000" },
            "--nonces",
            "64",
            "--model",
            MODEL,
            "--seq-len",
            &SEQ_LEN.to_string(),
            "--expect-429",
        ])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run host loadtest");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "loadtest failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(&stdout).expect("a JSON report");
    assert_eq!(report["errors"], 0, "{report}");
    assert!(report["status_ok"].as_u64().unwrap() > 100, "{report}");
    assert!(report["generate_queued"].as_u64().unwrap() > 0, "{report}");
    assert!(report["generate_429"].as_u64().unwrap() > 0, "{report}");
    eprintln!(
        "/status p50 {:.2} ms, p99 {:.2} ms over {} requests",
        report["status_p50_ms"].as_f64().unwrap(),
        report["status_p99_ms"].as_f64().unwrap(),
        report["status_ok"]
    );
}
