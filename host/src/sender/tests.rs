use std::time::Duration;

use super::*;
use crate::api::wire::{Encoding, ValidatedCallback, ValidationOutcome, WireArtifact};
use crate::outbox::OutboxLimits;
use crate::receiver::Receiver;

fn generated(nonces: std::ops::Range<u64>, request_id: Option<&str>) -> Callback {
    Callback::Generated(GeneratedCallback {
        public_key: "pk".into(),
        block_hash: "bh".into(),
        block_height: 3,
        node_id: 0,
        artifacts: nonces
            .map(|nonce| WireArtifact {
                nonce,
                vector_b64: format!("v{nonce}"),
            })
            .collect(),
        encoding: Encoding::f16(2),
        request_id: request_id.map(str::to_string),
    })
}

fn fast() -> SenderConfig {
    SenderConfig {
        batch_interval: Duration::from_millis(200),
        max_artifacts_per_post: 5,
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(100),
        request_timeout: Duration::from_secs(5),
    }
}

async fn setup() -> (tempfile::TempDir, Arc<Outbox>, Receiver, String) {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(dir.path(), OutboxLimits::default()).unwrap());
    let receiver = Receiver::new();
    let addr = receiver
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    (dir, outbox, receiver, format!("http://{addr}"))
}

#[tokio::test]
async fn batches_merge_and_are_acknowledged() {
    let (_dir, outbox, receiver, root) = setup().await;
    // A base URL with a trailing slash works too.
    let url = format!("{root}/");
    for i in 0..4 {
        outbox
            .append(url.clone(), generated(i * 3..i * 3 + 3, None))
            .unwrap();
    }
    let sender = Sender::start(outbox.clone(), fast());
    assert!(
        receiver
            .wait_for(Duration::from_secs(10), |r| r.artifacts.len() == 12)
            .await
    );
    // 12 artifacts in records of 3, at most 5 per post: records merge pairwise (6 > 5 stops).
    let posts = receiver.with(|r| r.generated_posts);
    assert!((3..=4).contains(&posts), "posts = {posts}");
    wait_backlog_empty(&outbox).await;
    assert_eq!(sender.stats.artifacts_delivered.load(Ordering::Relaxed), 12);
    sender.shutdown(Duration::from_secs(1), &outbox).await;
}

async fn wait_backlog_empty(outbox: &Outbox) {
    wait_backlog(outbox, 0).await
}

async fn wait_backlog(outbox: &Outbox, records: u64) {
    for _ in 0..500 {
        if outbox.backlog().records == records {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "backlog never reached {records} records: {:?}",
        outbox.backlog()
    );
}

#[tokio::test]
async fn a_receiver_that_is_down_gets_everything_once_it_is_back() {
    let (_dir, outbox, receiver, url) = setup().await;
    receiver.set_down(true);
    let sender = Sender::start(outbox.clone(), fast());
    for i in 0..10 {
        outbox
            .append(url.clone(), generated(i..i + 1, None))
            .unwrap();
    }
    outbox
        .append(
            url.clone(),
            Callback::Validated(ValidatedCallback {
                request_id: "r1".into(),
                block_hash: "bh".into(),
                block_height: 3,
                public_key: "pk".into(),
                node_id: 0,
                outcome: ValidationOutcome {
                    n_total: 1,
                    n_mismatch: 0,
                    mismatch_nonces: vec![],
                    p_value: 1.0,
                    fraud_detected: false,
                },
            }),
        )
        .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(receiver.refused() >= 2, "the sender kept retrying");
    assert_eq!(
        outbox.backlog().records,
        11,
        "nothing is dropped while down"
    );
    receiver.set_down(false);
    assert!(
        receiver
            .wait_for(Duration::from_secs(10), |r| r.artifacts.len() == 10
                && r.validations.contains_key("r1"))
            .await
    );
    wait_backlog_empty(&outbox).await;
    assert!(sender.stats.posts_failed.load(Ordering::Relaxed) >= 2);
    sender.shutdown(Duration::from_secs(1), &outbox).await;
}

#[tokio::test]
async fn a_dead_destination_does_not_hold_up_a_live_one() {
    let (_dir, outbox, receiver, live) = setup().await;
    let dead = "http://127.0.0.1:9/".to_string(); // discard port: connection refused
    outbox
        .append(dead.clone(), generated(0..1, Some("job-a")))
        .unwrap();
    outbox
        .append(live.clone(), generated(1..2, Some("job-b")))
        .unwrap();
    let sender = Sender::start(outbox.clone(), fast());
    assert!(
        receiver
            .wait_for(Duration::from_secs(10), |r| r.artifacts.len() == 1)
            .await
    );
    wait_backlog(&outbox, 1).await;
    sender.shutdown(Duration::from_millis(100), &outbox).await;
    assert_eq!(
        outbox.backlog().records,
        1,
        "undelivered stays in the outbox"
    );
}

#[test]
fn batches_never_mix_headers() {
    let pend = |seq, cb| Pending {
        record: Arc::new(crate::outbox::Record {
            seq,
            url: "u".into(),
            callback: cb,
        }),
        appended: None,
    };
    let pending = vec![
        pend(1, generated(0..2, None)),
        pend(2, generated(2..4, None)),
        pend(3, generated(4..5, Some("job"))),
    ];
    let batch = next_batch(&pending, 100).unwrap();
    assert_eq!(batch.seqs, [1, 2]);
    assert_eq!(batch.artifacts, 4);
    assert!(batch.batchable);
    let batch = next_batch(&pending[2..], 100).unwrap();
    assert_eq!(batch.body["request_id"], "job");
    assert!(!batch.batchable, "job results go out at once");
    // A single record larger than the cap still goes out (alone).
    let batch = next_batch(&pending, 1).unwrap();
    assert_eq!(batch.seqs, [1]);
}
