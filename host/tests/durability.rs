//! Durable callbacks: a receiver that is down for a while gets everything once it is back, and
//! a daemon killed with SIGKILL mid-run loses nothing it had committed.

mod common;

use std::time::Duration;

use common::*;
use host::receiver::Receiver;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_down_then_up_gets_every_artifact() {
    const BLOCK: &str = "0xdown-then-up";
    const KEY: &str = "key-down";
    let receiver = Receiver::new();
    let addr = receiver
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    receiver.set_down(true);
    let data = data_dir();
    let daemon = Daemon::start(&[
        "--model",
        MODEL,
        "--device",
        "cpu",
        "--data-dir",
        path_str(data.path()),
        "--batch-interval-ms",
        "100",
    ]);
    let (code, _) = daemon
        .post(
            "/api/v1/pow/init/generate",
            &init_body(BLOCK, KEY, Some(&format!("http://{addr}"))),
        )
        .await;
    assert_eq!(code, 200);
    daemon
        .wait_processed(scale(200, 3000), Duration::from_secs(600))
        .await;
    // The daemon keeps trying (and keeps generating) while the receiver is down.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(receiver.refused() >= 2, "the daemon retried");
    assert_eq!(receiver.artifact_count(), 0);
    let metrics = daemon.metrics().await;
    assert!(metric(&metrics, "host_callback_backlog_artifacts").unwrap() >= 200.0);
    let (_, _) = daemon.post("/api/v1/pow/stop", &json!({})).await;
    let processed = daemon.processed_after_stop().await;
    receiver.set_down(false);
    // Back-off is capped at 30 s; everything arrives within one more attempt.
    assert!(
        receiver
            .wait_for(Duration::from_secs(90), |r| r.artifacts.len() as u64
                >= processed)
            .await,
        "only {} of {processed} artifacts arrived",
        receiver.artifact_count()
    );
    let received = received_for(&receiver, BLOCK, KEY);
    assert_eq!(
        received.len() as u64,
        processed,
        "exactly what was generated"
    );
    assert_golden(BLOCK, KEY, &received);
    receiver.with(|r| assert_eq!(r.conflicting_artifacts, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_run_loses_nothing() {
    const BLOCK: &str = "0xkilled";
    const KEY: &str = "key-killed";
    let receiver = Receiver::new();
    let addr = receiver
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    receiver.set_down(true);
    let data = data_dir();
    let args = [
        "--model",
        MODEL,
        "--device",
        "cpu",
        "--data-dir",
        path_str(data.path()),
        "--batch-interval-ms",
        "100",
    ];
    let mut daemon = Daemon::start(&args);
    let (code, _) = daemon
        .post(
            "/api/v1/pow/init/generate",
            &init_body(BLOCK, KEY, Some(&format!("http://{addr}"))),
        )
        .await;
    assert_eq!(code, 200);
    // Everything /status counts is fsync'd in the outbox; more may be committed after this
    // read and before the kill, which must arrive too.
    let committed = daemon
        .wait_processed(scale(300, 5000), Duration::from_secs(600))
        .await;
    daemon.kill();
    assert_eq!(
        receiver.artifact_count(),
        0,
        "nothing was delivered before the kill"
    );

    // Restart on the same data directory (no init: the outbox alone delivers).
    receiver.set_down(false);
    let restarted = Daemon::start(&args);
    assert!(
        receiver
            .wait_for(Duration::from_secs(60), |r| r.artifacts.len() as u64
                >= committed)
            .await,
        "only {} of {committed} committed artifacts arrived after the restart",
        receiver.artifact_count()
    );
    // Let any tail settle, then check that nothing is pending and everything is golden.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let m = restarted.metrics().await;
        if metric(&m, "host_callback_backlog_records") == Some(0.0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "backlog never drained"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let received = received_for(&receiver, BLOCK, KEY);
    assert!(received.len() as u64 >= committed);
    assert_golden(BLOCK, KEY, &received);
    receiver.with(|r| assert_eq!(r.conflicting_artifacts, 0));
    // The restarted daemon is idle: generation resumes only when the api node says so.
    let (_, status) = restarted.get("/api/v1/pow/status").await;
    assert_eq!(status["status"], "IDLE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_cleanly_and_delivers() {
    const BLOCK: &str = "0xterm";
    const KEY: &str = "key-term";
    let receiver = Receiver::new();
    let addr = receiver
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let data = data_dir();
    let mut daemon = Daemon::start(&[
        "--model",
        MODEL,
        "--device",
        "cpu",
        "--data-dir",
        path_str(data.path()),
        // Long batching: only the shutdown flush can deliver in time.
        "--batch-interval-ms",
        "60000",
    ]);
    let (code, _) = daemon
        .post(
            "/api/v1/pow/init/generate",
            &init_body(BLOCK, KEY, Some(&format!("http://{addr}"))),
        )
        .await;
    assert_eq!(code, 200);
    daemon.wait_processed(50, Duration::from_secs(120)).await;
    let status = daemon.terminate();
    assert!(status.success(), "exit status {status}");
    let received = received_for(&receiver, BLOCK, KEY);
    assert!(
        received.len() >= 50,
        "the shutdown flush delivered {}",
        received.len()
    );
    assert_golden(BLOCK, KEY, &received);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_outbox_pauses_generation_instead_of_dropping() {
    const BLOCK: &str = "0xbackpressure";
    const KEY: &str = "key-bp";
    let receiver = Receiver::new();
    let addr = receiver
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    receiver.set_down(true);
    let data = data_dir();
    let config = write_config(
        data.path(),
        &format!(
            r#"
            model = "{MODEL}"
            data_dir = "{dir}"
            [callbacks]
            batch_interval_ms = 50
            backoff_max_ms = 200
            max_backlog_artifacts = 64
            [[device]]
            backend = "cpu"
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
    daemon.wait_processed(64, Duration::from_secs(120)).await;
    // Paused: the count stops short of the bound plus what was in flight (one unit of 8).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let paused_at = daemon.processed().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(daemon.processed().await, paused_at, "generation is paused");
    assert!(
        paused_at <= 64 + 8,
        "{paused_at} artifacts pending for a bound of 64"
    );
    assert_eq!(
        metric(&daemon.metrics().await, "host_outbox_full"),
        Some(1.0)
    );
    // The receiver comes back: everything arrives and generation resumes.
    receiver.set_down(false);
    daemon
        .wait_processed(paused_at + 100, Duration::from_secs(120))
        .await;
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
