//! The `sim` backend: the accelerator's RTL, Verilated and driven through the driver, as a device
//! of the pool. A healthy one computes golden artifacts (every one cross-checked); one with a
//! stuck accumulator bit injected into a processing element by the simulator is caught by the
//! golden cross-check, never reported, and quarantined while a CPU device keeps generating.
//!
//! The 2×3 array and the fault are those of the `sim` crate's own tests, so the Verilator builds
//! are shared through the build cache. `seq_len` 4 and two nonces per forward keep the
//! simulation to seconds.

mod common;

use std::time::Duration;

use common::*;
use host::receiver::Receiver;
use serde_json::json;

const SIM_SEQ_LEN: u64 = 4;

/// A `[[device]]` table of the 2×3 simulated accelerator.
fn sim_device(name: &str, rtl_faults: &[&str]) -> String {
    let faults: Vec<String> = rtl_faults.iter().map(|f| format!("{f:?}")).collect();
    format!(
        r#"
        [[device]]
        backend = "sim"
        name = "{name}"
        rows = 2
        cols = 3
        kdepth = 16
        queue_depth = 2
        max_burst = 4
        memory_mib = 8
        max_batch_tokens = {tokens}
        rtl_faults = [{faults}]
        "#,
        tokens = 2 * SIM_SEQ_LEN,
        faults = faults.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_accelerator_serves_golden_artifacts() {
    const BLOCK: &str = "0xsim-block";
    const KEY: &str = "key-sim";
    let data = data_dir();
    let config = write_config(
        data.path(),
        &format!(
            r#"
            model = "{MODEL}"
            data_dir = "{dir}"
            [crosscheck]
            certify = true
            {device}
            "#,
            dir = path_str(data.path()),
            device = sim_device("rtl", &[]),
        ),
    );
    let daemon = Daemon::start(&["--config", path_str(&config)]);
    let nonces: Vec<u64> = (0..scale(4, 16)).collect();
    let (code, answer) = daemon
        .post(
            "/api/v1/pow/generate",
            &json!({"block_hash": BLOCK, "block_height": 7, "public_key": KEY, "node_id": 0,
                    "node_count": 1, "nonces": nonces, "wait": true, "batch_size": 2,
                    "params": {"model": MODEL, "seq_len": SIM_SEQ_LEN, "k_dim": K_DIM}}),
        )
        .await;
    assert_eq!(code, 200, "{answer}");
    let artifacts = artifacts_of(&answer);
    assert_eq!(artifacts.len(), nonces.len(), "{answer}");
    assert_golden_at(BLOCK, KEY, &artifacts, SIM_SEQ_LEN);
    let text = daemon.metrics().await;
    let n = nonces.len() as f64;
    for (sample, want) in [
        (
            r#"host_device_artifacts_total{device="rtl",backend="sim"}"#,
            n,
        ),
        (
            r#"host_device_crosschecked_total{device="rtl",backend="sim"}"#,
            n,
        ),
        (
            r#"host_device_hardware_errors_total{device="rtl",backend="sim"}"#,
            0.0,
        ),
        (
            r#"host_device_errors_total{device="rtl",backend="sim"}"#,
            0.0,
        ),
    ] {
        assert_eq!(metric(&text, sample), Some(want), "{sample}\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_bit_in_the_rtl_is_caught_and_the_accelerator_quarantined() {
    const BLOCK: &str = "0xsim-fault";
    const KEY: &str = "key-sim-fault";
    let receiver = Receiver::new();
    let addr = receiver
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let data = data_dir();
    let config = write_config(
        data.path(),
        &format!(
            r#"
            model = "{MODEL}"
            data_dir = "{dir}"
            [crosscheck]
            certify = true
            max_hardware_errors = 2
            [callbacks]
            batch_interval_ms = 100
            [[device]]
            backend = "cpu"
            name = "good"
            {device}
            "#,
            dir = path_str(data.path()),
            // Accumulator bit 30 (the f32 exponent's top bit) of PE (1, 2) stuck at 1.
            device = sim_device("broken", &["pe:1,2:acc:bit30:stuck1"]),
        ),
    );
    let daemon = Daemon::start(&["--config", path_str(&config)]);
    let mut init = init_body(BLOCK, KEY, Some(&format!("http://{addr}")));
    init["params"]["seq_len"] = json!(SIM_SEQ_LEN);
    init["batch_size"] = json!(2);
    let (code, answer) = daemon.post("/api/v1/pow/init/generate", &init).await;
    assert_eq!(code, 200, "{answer}");
    let text = wait_metric(
        &daemon,
        r#"host_device_quarantined{device="broken",backend="sim"}"#,
        1.0,
        Duration::from_secs(300),
    )
    .await;
    assert_eq!(
        metric(
            &text,
            r#"host_device_hardware_errors_total{device="broken",backend="sim"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        metric(
            &text,
            r#"host_device_artifacts_total{device="broken",backend="sim"}"#
        ),
        Some(0.0),
        "nothing the broken accelerator computed was committed"
    );
    assert_eq!(
        metric(&text, r#"host_device_up{device="good",backend="cpu"}"#),
        Some(1.0)
    );
    // The CPU device keeps generating.
    let before = daemon.processed().await;
    daemon
        .wait_processed(before + scale(50, 500), Duration::from_secs(120))
        .await;
    let (_, status) = daemon.get("/api/v1/pow/status").await;
    assert_eq!(status["status"], "GENERATING");
    daemon.post("/api/v1/pow/stop", &json!({})).await;
    let processed = daemon.processed_after_stop().await;
    assert!(
        receiver
            .wait_for(Duration::from_secs(60), |r| r.artifacts.len() as u64
                >= processed)
            .await
    );
    // Every reported artifact is the golden one: the wrong ones never left the daemon.
    assert_golden_at(
        BLOCK,
        KEY,
        &received_for(&receiver, BLOCK, KEY),
        SIM_SEQ_LEN,
    );
}
