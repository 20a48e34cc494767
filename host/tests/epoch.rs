//! A full epoch against the real daemon binary: generation with callbacks that the golden model
//! reproduces bit for bit, stop, then validation of a batch with tampered vectors.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use common::*;
use host::receiver::Receiver;
use serde_json::json;

const BLOCK: &str = "0xepoch-block-hash";
const KEY: &str = "gonka1epochkey";

/// Changes one f16 value of a `vector_b64` enough to be a mismatch.
fn tamper(vector_b64: &str) -> String {
    let mut bytes = STANDARD.decode(vector_b64).unwrap();
    bytes[1] ^= 0x40; // an exponent bit of the first f16 value
    STANDARD.encode(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_epoch_generation_stop_and_validation() {
    let receiver = Receiver::new();
    let receiver_addr = receiver
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let callback_url = format!("http://{receiver_addr}/callbacks");
    let data = data_dir();
    let daemon = Daemon::start(&[
        "--model",
        MODEL,
        "--device",
        "cpu",
        "--data-dir",
        path_str(data.path()),
        "--batch-interval-ms",
        "200",
    ]);

    // Idle before anything.
    let (code, status) = daemon.get("/api/v1/pow/status").await;
    assert_eq!(code, 200);
    assert_eq!(
        status,
        json!({"status": "IDLE", "config": null, "stats": null})
    );

    // The receiver's routes are at its root: give it as the base URL.
    let callback_base = callback_url.trim_end_matches("/callbacks").to_string();
    let (code, body) = daemon
        .post(
            "/api/v1/pow/init/generate",
            &init_body(BLOCK, KEY, Some(&callback_base)),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body,
        json!({"status": "OK", "pow_status": {"status": "GENERATING"}})
    );

    // A second init while generating is a conflict.
    let (code, _) = daemon
        .post("/api/v1/pow/init/generate", &init_body(BLOCK, KEY, None))
        .await;
    assert_eq!(code, 409);

    let (_, status) = daemon.get("/api/v1/pow/status").await;
    assert_eq!(status["status"], "GENERATING");
    assert_eq!(
        status["config"],
        json!({"block_hash": BLOCK, "block_height": 100, "public_key": KEY, "node_id": 1,
               "node_count": 3, "group_id": 0, "n_groups": 1, "seq_len": SEQ_LEN, "k_dim": K_DIM})
    );

    daemon
        .wait_processed(scale(96, 2000), Duration::from_secs(600))
        .await;
    assert!(
        receiver
            .wait_for(Duration::from_secs(60), |r| r.artifacts.len() >= 64)
            .await,
        "callbacks arrive"
    );
    let (code, body) = daemon.post("/api/v1/pow/stop", &json!({})).await;
    assert_eq!(code, 200);
    assert_eq!(
        body,
        json!({"status": "OK", "pow_status": {"status": "STOPPED"}})
    );
    let (_, status) = daemon.get("/api/v1/pow/status").await;
    assert_eq!(status["status"], "IDLE");

    // Everything received is this node's nonce sequence (1 + 3x) and the golden artifact.
    let received = received_for(&receiver, BLOCK, KEY);
    assert!(received.len() >= 64);
    for (nonce, _) in &received {
        assert_eq!(nonce % 3, 1, "nonce {nonce} is not node 1 of 3's");
    }
    assert_golden(BLOCK, KEY, &received);
    receiver.with(|r| {
        assert_eq!(r.conflicting_artifacts, 0);
    });

    // Validation: 40 received artifacts, 3 of them tampered.
    let sample: Vec<(u64, String)> = received.iter().take(40).cloned().collect();
    let tampered: BTreeSet<u64> = sample.iter().step_by(13).map(|(n, _)| *n).collect();
    assert_eq!(tampered.len(), 4);
    let artifacts: Vec<serde_json::Value> = sample
        .iter()
        .map(|(nonce, v)| {
            let vector = if tampered.contains(nonce) {
                tamper(v)
            } else {
                v.clone()
            };
            json!({"nonce": nonce, "vector_b64": vector})
        })
        .collect();
    let nonces: Vec<u64> = sample.iter().map(|(n, _)| *n).collect();
    let request = json!({
        "block_hash": BLOCK, "block_height": 100, "public_key": KEY, "node_id": 1,
        "node_count": 3, "nonces": nonces,
        "params": {"model": MODEL, "seq_len": SEQ_LEN, "k_dim": K_DIM},
        "batch_size": 16, "wait": true,
        "validation": {"artifacts": artifacts},
    });
    let (code, result) = daemon.post("/api/v1/pow/generate", &request).await;
    assert_eq!(code, 200, "{result}");
    assert_eq!(result["status"], "completed");
    assert_eq!(result["n_total"], 40);
    assert_eq!(result["n_mismatch"], 4);
    let mismatches: BTreeSet<u64> = result["mismatch_nonces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(mismatches, tampered);
    let p_value = result["p_value"].as_f64().unwrap();
    let expected = golden::poc::validate::binomial_sf(4, 40, 0.001);
    assert!(
        (p_value - expected).abs() <= 1e-12 * expected.max(1e-300),
        "{p_value} vs {expected}"
    );
    assert_eq!(result["fraud_detected"], true);

    // The same batch untampered, queued with a callback: /validated arrives, and the job is
    // readable by its id.
    let honest: Vec<serde_json::Value> = sample
        .iter()
        .map(|(nonce, v)| json!({"nonce": nonce, "vector_b64": v}))
        .collect();
    let mut queued = request.clone();
    queued["wait"] = json!(false);
    queued["validation"] = json!({"artifacts": honest});
    queued["url"] = json!(callback_base);
    let (code, answer) = daemon.post("/api/v1/pow/generate", &queued).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["status"], "queued");
    assert_eq!(answer["queued_count"], 40);
    let request_id = answer["request_id"].as_str().unwrap().to_string();
    assert!(
        receiver
            .wait_for(Duration::from_secs(60), |r| r
                .validations
                .contains_key(&request_id))
            .await
    );
    receiver.with(|r| {
        let v = &r.validations[&request_id];
        assert_eq!((v.outcome.n_total, v.outcome.n_mismatch), (40, 0));
        assert!(!v.outcome.fraud_detected);
        assert_eq!(v.outcome.p_value, 1.0);
        assert_eq!(v.public_key, KEY);
    });
    let (code, job) = daemon
        .get(&format!("/api/v1/pow/generate/{request_id}"))
        .await;
    assert_eq!(code, 200);
    assert_eq!(job["status"], "completed");
    assert_eq!(job["n_mismatch"], 0);

    // A plain queued generation job: its artifacts come with its request id, golden again.
    let fresh: Vec<u64> = (5000..5010).collect();
    let job_request = json!({
        "block_hash": BLOCK, "block_height": 100, "public_key": KEY, "node_id": 1,
        "node_count": 3, "nonces": fresh,
        "params": {"model": MODEL, "seq_len": SEQ_LEN, "k_dim": K_DIM},
        "url": callback_base,
    });
    let (code, answer) = daemon.post("/api/v1/pow/generate", &job_request).await;
    assert_eq!(code, 200);
    let job_id = answer["request_id"].as_str().unwrap().to_string();
    assert!(
        receiver
            .wait_for(Duration::from_secs(60), |r| {
                r.artifacts
                    .values()
                    .filter(|(_, id)| id.as_deref() == Some(job_id.as_str()))
                    .count()
                    == 10
            })
            .await
    );
    let (_, job) = daemon.get(&format!("/api/v1/pow/generate/{job_id}")).await;
    assert_eq!(job["status"], "completed");
    assert_eq!(
        job["encoding"],
        json!({"dtype": "f16", "k_dim": K_DIM, "endian": "le"})
    );
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
    assert_eq!(artifacts.len(), 10);
    assert_golden(BLOCK, KEY, &artifacts);
    let (code, _) = daemon.get("/api/v1/pow/generate/no-such-id").await;
    assert_eq!(code, 404);
}
