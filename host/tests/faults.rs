//! Faulty devices among healthy ones: wrong bits are caught by the golden cross-check and never
//! reported; errors and hangs are reset; repeat offenders are quarantined while a healthy device
//! keeps generating.

mod common;

use std::time::Duration;

use common::*;
use host::receiver::Receiver;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_bits_are_caught_never_reported_and_the_device_quarantined() {
    const BLOCK: &str = "0xflips";
    const KEY: &str = "key-flips";
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
            max_hardware_errors = 3
            [callbacks]
            batch_interval_ms = 100
            [[device]]
            backend = "cpu"
            name = "good"
            [[device]]
            backend = "cpu"
            name = "bad"
            [device.fault]
            flip_bit = 14
            every = 1
            "#,
            dir = path_str(data.path())
        ),
    );
    let daemon = Daemon::start(&["--config", path_str(&config)]);
    let (code, _) = daemon
        .post(
            "/api/v1/pow/init/generate",
            &init_body(BLOCK, KEY, Some(&format!("http://{addr}"))),
        )
        .await;
    assert_eq!(code, 200);
    let text = wait_metric(
        &daemon,
        r#"host_device_quarantined{device="bad",backend="cpu"}"#,
        1.0,
        Duration::from_secs(120),
    )
    .await;
    assert!(
        metric(
            &text,
            r#"host_device_hardware_errors_total{device="bad",backend="cpu"}"#
        )
        .unwrap()
            >= 3.0
    );
    assert_eq!(
        metric(
            &text,
            r#"host_device_hardware_errors_total{device="good",backend="cpu"}"#
        ),
        Some(0.0)
    );
    assert_eq!(
        metric(&text, r#"host_device_up{device="good",backend="cpu"}"#),
        Some(1.0)
    );
    // The healthy device keeps going.
    let before = daemon.processed().await;
    daemon
        .wait_processed(before + scale(100, 2000), Duration::from_secs(600))
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
    // Not one wrong artifact was reported: all of them are the golden ones.
    let received = received_for(&receiver, BLOCK, KEY);
    assert_golden(BLOCK, KEY, &received);
    let text = daemon.metrics().await;
    assert_eq!(
        metric(
            &text,
            r#"host_device_artifacts_total{device="bad",backend="cpu"}"#
        ),
        Some(0.0),
        "no artifact of the bad device was committed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_hangs_are_reset_then_quarantined() {
    const BLOCK: &str = "0xhangs";
    const KEY: &str = "key-hangs";
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
            [health]
            max_faults = 2
            # Wide margins: the injected hangs never complete, so they are caught either way,
            # while a product or unit merely slowed by a loaded CI machine must not count as a
            # hang (with 1 s and the default factor 10, one did once).
            stall_s = 3.0
            hang_factor = 50.0
            [crosscheck]
            fraction = 0.05
            [callbacks]
            batch_interval_ms = 100
            [[device]]
            backend = "cpu"
            name = "good"
            [[device]]
            backend = "cpu"
            name = "erring"
            [device.fault]
            skip = 30
            error_every = 5
            [[device]]
            backend = "cpu"
            name = "hanging"
            [device.fault]
            skip = 30
            hang_every = 7
            "#,
            dir = path_str(data.path())
        ),
    );
    let daemon = Daemon::start(&["--config", path_str(&config)]);
    let (code, _) = daemon
        .post(
            "/api/v1/pow/init/generate",
            &init_body(BLOCK, KEY, Some(&format!("http://{addr}"))),
        )
        .await;
    assert_eq!(code, 200);
    wait_metric(
        &daemon,
        r#"host_device_quarantined{device="erring",backend="cpu"}"#,
        1.0,
        Duration::from_secs(120),
    )
    .await;
    let text = wait_metric(
        &daemon,
        r#"host_device_quarantined{device="hanging",backend="cpu"}"#,
        1.0,
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(
        metric(
            &text,
            r#"host_device_errors_total{device="erring",backend="cpu"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        metric(
            &text,
            r#"host_device_hangs_total{device="hanging",backend="cpu"}"#
        ),
        Some(2.0)
    );
    // Reset after the first fault, quarantined at the second.
    for device in ["erring", "hanging"] {
        assert_eq!(
            metric(
                &text,
                &format!(r#"host_device_resets_total{{device="{device}",backend="cpu"}}"#)
            ),
            Some(1.0),
            "{device}"
        );
    }
    // The pool still serves: generation continues and a job completes on the good device.
    let before = daemon.processed().await;
    daemon
        .wait_processed(before + 50, Duration::from_secs(120))
        .await;
    let nonces: Vec<u64> = (900..940).collect();
    let (code, job) = daemon
        .post(
            "/api/v1/pow/generate",
            &json!({"block_hash": BLOCK, "block_height": 1, "public_key": KEY, "node_id": 0,
                    "node_count": 1, "nonces": nonces, "wait": true, "batch_size": 4,
                    "params": {"model": MODEL, "seq_len": SEQ_LEN, "k_dim": K_DIM}}),
        )
        .await;
    assert_eq!(code, 200, "{job}");
    let artifacts: Vec<(u64, String)> = job["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["nonce"].as_u64().unwrap(),
                a["vector_b64"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(artifacts.len(), 40);
    assert_golden(BLOCK, KEY, &artifacts);
    daemon.post("/api/v1/pow/stop", &json!({})).await;
    let processed = daemon.processed_after_stop().await;
    assert!(
        receiver
            .wait_for(Duration::from_secs(60), |r| r.artifacts.len() as u64
                >= processed)
            .await
    );
    assert_golden(BLOCK, KEY, &received_for(&receiver, BLOCK, KEY));
}
