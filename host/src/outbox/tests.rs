use super::*;
use crate::api::wire::{Encoding, WireArtifact};

fn generated(nonces: std::ops::Range<u64>) -> Callback {
    Callback::Generated(GeneratedCallback {
        public_key: "pk".into(),
        block_hash: "bh".into(),
        block_height: 3,
        node_id: 0,
        artifacts: nonces
            .map(|nonce| WireArtifact {
                nonce,
                vector_b64: "AAAA".into(),
            })
            .collect(),
        encoding: Encoding::f16(2),
        request_id: None,
    })
}

fn small() -> OutboxLimits {
    OutboxLimits {
        segment_bytes: 400,
        max_pending_artifacts: 10,
        acks_compact_bytes: 200,
    }
}

fn pending_seqs(outbox: &Outbox, url: &str) -> Vec<u64> {
    outbox
        .pending_for(url, usize::MAX)
        .iter()
        .map(|p| p.record.seq)
        .collect()
}

fn segment_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("seg-"))
        .collect();
    names.sort();
    names
}

#[test]
fn appended_records_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let outbox = Outbox::open(dir.path(), small()).unwrap();
        assert_eq!(
            outbox.append("http://a".into(), generated(0..3)).unwrap(),
            1
        );
        assert_eq!(
            outbox.append("http://b".into(), generated(3..4)).unwrap(),
            2
        );
        assert_eq!(
            outbox.append("http://a".into(), generated(4..6)).unwrap(),
            3
        );
        assert_eq!(
            outbox.backlog(),
            Backlog {
                records: 3,
                artifacts: 6
            }
        );
    }
    let outbox = Outbox::open(dir.path(), small()).unwrap();
    assert_eq!(pending_seqs(&outbox, "http://a"), [1, 3]);
    assert_eq!(pending_seqs(&outbox, "http://b"), [2]);
    let recovered = outbox.pending_for("http://a", 1);
    assert_eq!(recovered[0].record.callback, generated(0..3));
    assert!(
        recovered[0].appended.is_none(),
        "recovered records count as old"
    );
    assert_eq!(
        outbox.append("http://a".into(), generated(9..10)).unwrap(),
        4
    );
}

#[test]
fn acknowledged_records_stay_delivered_and_segments_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    {
        let outbox = Outbox::open(dir.path(), small()).unwrap();
        for i in 0..12 {
            outbox
                .append("http://a".into(), generated(i..i + 1))
                .unwrap();
        }
        assert!(
            segment_files(dir.path()).len() > 2,
            "small segments roll over"
        );
        outbox.ack(&(1..=10).collect::<Vec<_>>()).unwrap();
        assert_eq!(pending_seqs(&outbox, "http://a"), [11, 12]);
        assert_eq!(outbox.backlog().artifacts, 2);
    }
    let before = segment_files(dir.path());
    let outbox = Outbox::open(dir.path(), small()).unwrap();
    assert_eq!(pending_seqs(&outbox, "http://a"), [11, 12]);
    assert!(segment_files(dir.path()).len() <= before.len());
    outbox.ack(&[11, 12]).unwrap();
    assert_eq!(outbox.backlog(), Backlog::default());
    assert!(outbox.destinations().is_empty());
}

#[test]
fn sequence_numbers_are_never_reused_after_everything_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    {
        let outbox = Outbox::open(dir.path(), small()).unwrap();
        for i in 0..30 {
            let seq = outbox
                .append("http://a".into(), generated(i..i + 1))
                .unwrap();
            outbox.ack(&[seq]).unwrap(); // compacts the ack log several times
        }
    }
    let outbox = Outbox::open(dir.path(), small()).unwrap();
    assert_eq!(outbox.backlog(), Backlog::default());
    assert_eq!(
        outbox.append("http://a".into(), generated(0..1)).unwrap(),
        31
    );
    drop(outbox);
    let outbox = Outbox::open(dir.path(), small()).unwrap();
    assert_eq!(pending_seqs(&outbox, "http://a"), [31]);
}

#[test]
fn a_torn_tail_is_truncated_and_the_rest_kept() {
    let dir = tempfile::tempdir().unwrap();
    {
        let outbox = Outbox::open(dir.path(), OutboxLimits::default()).unwrap();
        outbox.append("http://a".into(), generated(0..2)).unwrap();
        outbox.append("http://a".into(), generated(2..4)).unwrap();
    }
    let segment = dir.path().join(&segment_files(dir.path())[0]);
    let full = fs::read(&segment).unwrap();
    // Simulate crashes at every point of the second record's append.
    let first_end = {
        let scan = frame::scan(&full, SEGMENT_MAGIC).unwrap();
        scan.frames[1].0 as usize
    };
    for cut in first_end..full.len() {
        fs::write(&segment, &full[..cut]).unwrap();
        let outbox = Outbox::open(dir.path(), OutboxLimits::default()).unwrap();
        assert_eq!(pending_seqs(&outbox, "http://a"), [1], "cut at {cut}");
        drop(outbox);
        for name in segment_files(dir.path()) {
            if dir.path().join(&name) != segment {
                fs::remove_file(dir.path().join(name)).unwrap();
            }
        }
        assert_eq!(fs::read(&segment).unwrap().len(), first_end);
    }
}

#[test]
fn a_corrupt_ack_tail_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    {
        let outbox = Outbox::open(dir.path(), OutboxLimits::default()).unwrap();
        outbox.append("http://a".into(), generated(0..1)).unwrap();
        outbox.append("http://a".into(), generated(1..2)).unwrap();
        outbox.ack(&[1]).unwrap();
        outbox.ack(&[2]).unwrap();
    }
    let acks = dir.path().join(ACKS_FILE);
    let mut content = fs::read(&acks).unwrap();
    let last = content.len() - 1;
    content[last] ^= 1; // the second ack frame is now corrupt: seq 2 counts as undelivered
    fs::write(&acks, content).unwrap();
    let outbox = Outbox::open(dir.path(), OutboxLimits::default()).unwrap();
    assert_eq!(pending_seqs(&outbox, "http://a"), [2]);
}

#[test]
fn fullness_counts_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path(), small()).unwrap();
    outbox.append("http://a".into(), generated(0..9)).unwrap();
    assert!(!outbox.is_full());
    let seq = outbox.append("http://a".into(), generated(9..10)).unwrap();
    assert!(outbox.is_full());
    outbox.ack(&[seq]).unwrap();
    assert!(!outbox.is_full());
}

#[test]
fn foreign_files_are_refused_with_their_name() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("seg-00000000000000000001.log"),
        b"not ours at all",
    )
    .unwrap();
    let err = Outbox::open(dir.path(), small()).err().unwrap().to_string();
    assert!(err.contains("seg-00000000000000000001.log"), "{err}");
}
