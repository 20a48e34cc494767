//! The durable outbox: every callback the daemon owes an api node is written here, fsync'd,
//! before the work that produced it counts as done; the [sender](crate::sender) delivers it and
//! only then acknowledges it here.
//!
//! Layout of the outbox directory:
//! - `seg-<first seq, 20 digits>.log`: append-only segments of [records](Record), one frame each
//!   (see [`frame`]). A new segment starts when the active one passes the segment size, and on
//!   every start of the daemon (recovered segments are never appended to again).
//! - `acks.log`: frames naming delivered sequence numbers, plus a *floor* frame after compaction
//!   (the next sequence number at that time, so numbers are never reused even when every
//!   segment is gone).
//!
//! Recovery reads every segment and the acknowledgement log, truncates a torn tail (the only
//! damage a crash can do under fsync-before-ack), and keeps every record that was appended but
//! not acknowledged as pending. A segment whose records are all acknowledged is deleted; the
//! acknowledgement log is rewritten (write, fsync, rename, fsync directory) when it grows.
//!
//! Delivery is at least once: a crash between a receiver's success answer and the fsync of the
//! acknowledgement re-sends those records after restart. Receivers de-duplicate artifacts by
//! `(block_hash, public_key, node_id, nonce)` and validation results by `request_id`.

pub mod frame;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::api::wire::{GeneratedCallback, ValidatedCallback};

const SEGMENT_MAGIC: &[u8; 8] = b"PFOBSEG1";
const ACKS_MAGIC: &[u8; 8] = b"PFOBACK1";
const ACKS_FILE: &str = "acks.log";
const ACK_KIND_LIST: u8 = 0;
const ACK_KIND_FLOOR: u8 = 1;

/// One callback owed to an api node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Callback {
    /// `POST {url}/generated`.
    Generated(GeneratedCallback),
    /// `POST {url}/validated`.
    Validated(ValidatedCallback),
}

impl Callback {
    /// Artifacts this callback carries (what the backlog bound counts).
    pub fn artifact_count(&self) -> u64 {
        match self {
            Callback::Generated(body) => body.artifacts.len() as u64,
            Callback::Validated(_) => 0,
        }
    }
}

/// A stored callback: its sequence number, its destination base URL and its body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Position in the outbox, unique for the outbox's whole life.
    pub seq: u64,
    /// The callback base URL (`/generated` or `/validated` is appended when sending).
    pub url: String,
    /// The body.
    pub callback: Callback,
}

/// A pending record and when it was appended (records recovered from disk count as old).
#[derive(Clone, Debug)]
pub struct Pending {
    /// The record.
    pub record: Arc<Record>,
    /// When it was appended in this process; `None` for a record recovered at start.
    pub appended: Option<Instant>,
}

/// Sizes that shape and bound the outbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutboxLimits {
    /// A new segment starts once the active one has this many bytes.
    pub segment_bytes: u64,
    /// Undelivered artifacts at which the outbox reports itself full (generation then pauses).
    pub max_pending_artifacts: u64,
    /// The acknowledgement log is compacted once it has this many bytes.
    pub acks_compact_bytes: u64,
}

impl Default for OutboxLimits {
    fn default() -> Self {
        OutboxLimits {
            segment_bytes: 16 << 20,
            max_pending_artifacts: 1_000_000,
            acks_compact_bytes: 1 << 20,
        }
    }
}

/// What the outbox holds undelivered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Records (callbacks) not yet delivered.
    pub records: u64,
    /// Artifacts in those records.
    pub artifacts: u64,
}

/// Why the outbox failed; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// A file operation failed.
    #[error("outbox {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A file is not an outbox file of this version.
    #[error("{path} is not a PoCForge outbox file of this version (wrong magic); move it away or point data_dir elsewhere")]
    Foreign {
        /// The file.
        path: PathBuf,
    },
    /// A record's CRC matched but its content does not parse: written by an incompatible build.
    #[error("record at offset {offset} of {path} does not parse ({source}); it was written by an incompatible version")]
    Undecodable {
        /// The segment.
        path: PathBuf,
        /// The record's offset.
        offset: u64,
        /// The parse error.
        source: serde_json::Error,
    },
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> OutboxError + 'a {
    move |source| OutboxError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

struct Segment {
    path: PathBuf,
    /// Highest sequence number stored in it (`first - 1` while empty).
    last_seq: u64,
    /// Records in it not yet acknowledged.
    live: u64,
}

struct Active {
    file: File,
    first_seq: u64,
    bytes: u64,
}

struct Inner {
    dir: PathBuf,
    limits: OutboxLimits,
    /// Segments by first sequence number.
    segments: BTreeMap<u64, Segment>,
    active: Option<Active>,
    pending: BTreeMap<u64, Pending>,
    by_url: HashMap<String, BTreeSet<u64>>,
    backlog: Backlog,
    next_seq: u64,
    acks: File,
    acks_bytes: u64,
}

/// The outbox. Cheap to share (`Arc`); all methods are blocking file I/O behind one lock.
pub struct Outbox {
    inner: Mutex<Inner>,
    changes: watch::Sender<u64>,
}

impl Outbox {
    /// Opens (creating if needed) the outbox in `dir` and recovers what a previous run left.
    pub fn open(dir: &Path, limits: OutboxLimits) -> Result<Self, OutboxError> {
        fs::create_dir_all(dir).map_err(io("create directory", dir))?;
        let mut segments = BTreeMap::new();
        let mut pending = BTreeMap::new();
        let mut floor = 1u64;
        for (first_seq, path) in list_segments(dir)? {
            floor = floor.max(first_seq);
            let records = recover_segment(&path)?;
            let last_seq = records
                .last()
                .map_or(first_seq.saturating_sub(1), |r| r.seq);
            floor = floor.max(last_seq.saturating_add(1));
            let live = records.len() as u64;
            for record in records {
                pending.insert(
                    record.seq,
                    Pending {
                        record: Arc::new(record),
                        appended: None,
                    },
                );
            }
            segments.insert(
                first_seq,
                Segment {
                    path,
                    last_seq,
                    live,
                },
            );
        }
        let acks_path = dir.join(ACKS_FILE);
        let (acked, acks_floor, acks_bytes) = recover_acks(&acks_path)?;
        floor = floor.max(acks_floor);
        for seq in &acked {
            floor = floor.max(seq.saturating_add(1));
            if pending.remove(seq).is_some() {
                if let Some((_, segment)) = segments.range_mut(..=*seq).next_back() {
                    segment.live = segment.live.saturating_sub(1);
                }
            }
        }
        let acks = OpenOptions::new()
            .append(true)
            .open(&acks_path)
            .map_err(io("open", &acks_path))?;
        let mut inner = Inner {
            dir: dir.to_path_buf(),
            limits,
            segments,
            active: None,
            pending: BTreeMap::new(),
            by_url: HashMap::new(),
            backlog: Backlog::default(),
            next_seq: floor,
            acks,
            acks_bytes,
        };
        for (seq, entry) in pending {
            inner.index(seq, entry);
        }
        inner.delete_finished_segments()?;
        if !inner.pending.is_empty() {
            tracing::info!(
                records = inner.backlog.records,
                artifacts = inner.backlog.artifacts,
                "outbox recovered undelivered callbacks"
            );
        }
        let (changes, _) = watch::channel(0);
        Ok(Outbox {
            inner: Mutex::new(inner),
            changes,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the files consistent (every write is a whole
        // frame or a torn tail that recovery handles), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a callback durably (written and fsync'd when this returns) and returns its
    /// sequence number. Never blocks on fullness: callers check [`Outbox::is_full`] before
    /// producing more work, so the bound is soft by at most the work already in flight.
    pub fn append(&self, url: String, callback: Callback) -> Result<u64, OutboxError> {
        let seq = {
            let mut inner = self.lock();
            let seq = inner.next_seq;
            let record = Record { seq, url, callback };
            let payload = serde_json::to_vec(&record).expect("records always serialise");
            inner.write(seq, &frame::encode(&payload))?;
            inner.next_seq += 1;
            inner.index(
                seq,
                Pending {
                    record: Arc::new(record),
                    appended: Some(Instant::now()),
                },
            );
            seq
        };
        self.changes.send_modify(|n| *n += 1);
        Ok(seq)
    }

    /// Marks records delivered (durably), forgets them, and deletes segments left empty.
    pub fn ack(&self, seqs: &[u64]) -> Result<(), OutboxError> {
        let mut inner = self.lock();
        let seqs: Vec<u64> = seqs
            .iter()
            .copied()
            .filter(|s| inner.pending.contains_key(s))
            .collect();
        if seqs.is_empty() {
            return Ok(());
        }
        let mut payload = vec![ACK_KIND_LIST];
        for seq in &seqs {
            payload.extend_from_slice(&seq.to_le_bytes());
        }
        let encoded = frame::encode(&payload);
        let acks_path = inner.dir.join(ACKS_FILE);
        frame::append_durably(&mut inner.acks, &encoded).map_err(io("append to", &acks_path))?;
        inner.acks_bytes += encoded.len() as u64;
        for seq in seqs {
            inner.unindex(seq);
        }
        inner.delete_finished_segments()?;
        if inner.acks_bytes > inner.limits.acks_compact_bytes {
            inner.compact_acks()?;
        }
        drop(inner);
        self.changes.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Base URLs with undelivered records.
    pub fn destinations(&self) -> Vec<String> {
        self.lock().by_url.keys().cloned().collect()
    }

    /// The oldest undelivered records for `url`, in order, at most `max_records` of them.
    pub fn pending_for(&self, url: &str, max_records: usize) -> Vec<Pending> {
        let inner = self.lock();
        let Some(seqs) = inner.by_url.get(url) else {
            return Vec::new();
        };
        seqs.iter()
            .take(max_records)
            .filter_map(|seq| inner.pending.get(seq).cloned())
            .collect()
    }

    /// What is undelivered.
    pub fn backlog(&self) -> Backlog {
        self.lock().backlog
    }

    /// Whether the undelivered artifacts reached the bound (generation should pause).
    pub fn is_full(&self) -> bool {
        let inner = self.lock();
        inner.backlog.artifacts >= inner.limits.max_pending_artifacts
    }

    /// A receiver that changes whenever records are appended or acknowledged.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

impl Inner {
    fn index(&mut self, seq: u64, entry: Pending) {
        self.backlog.records += 1;
        self.backlog.artifacts += entry.record.callback.artifact_count();
        self.by_url
            .entry(entry.record.url.clone())
            .or_default()
            .insert(seq);
        self.pending.insert(seq, entry);
    }

    fn unindex(&mut self, seq: u64) {
        let Some(entry) = self.pending.remove(&seq) else {
            return;
        };
        self.backlog.records -= 1;
        self.backlog.artifacts -= entry.record.callback.artifact_count();
        if let Some(seqs) = self.by_url.get_mut(&entry.record.url) {
            seqs.remove(&seq);
            if seqs.is_empty() {
                self.by_url.remove(&entry.record.url);
            }
        }
        if let Some((_, segment)) = self.segments.range_mut(..=seq).next_back() {
            segment.live = segment.live.saturating_sub(1);
        }
    }

    /// Writes one record frame to the active segment (starting one if needed), durably.
    fn write(&mut self, seq: u64, encoded: &[u8]) -> Result<(), OutboxError> {
        let roll = match &self.active {
            None => true,
            Some(active) => active.bytes >= self.limits.segment_bytes,
        };
        if roll {
            self.start_segment(seq)?;
        }
        let active = self.active.as_mut().expect("a segment was just started");
        let path = self.segments[&active.first_seq].path.clone();
        if let Err(source) = frame::append_durably(&mut active.file, encoded) {
            // The tail may now be torn; never append behind it. The next write starts a new
            // segment, and recovery truncates this one's tail.
            self.active = None;
            return Err(OutboxError::Io {
                action: "append to",
                path,
                source,
            });
        }
        active.bytes += encoded.len() as u64;
        let segment = self
            .segments
            .get_mut(&active.first_seq)
            .expect("the active segment is listed");
        segment.last_seq = seq;
        segment.live += 1;
        Ok(())
    }

    fn start_segment(&mut self, first_seq: u64) -> Result<(), OutboxError> {
        let path = self.dir.join(format!("seg-{first_seq:020}.log"));
        let mut file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(io("create", &path))?;
        frame::append_durably(&mut file, SEGMENT_MAGIC).map_err(io("write", &path))?;
        sync_dir(&self.dir)?;
        self.segments.insert(
            first_seq,
            Segment {
                path,
                last_seq: first_seq - 1,
                live: 0,
            },
        );
        self.active = Some(Active {
            file,
            first_seq,
            bytes: SEGMENT_MAGIC.len() as u64,
        });
        Ok(())
    }

    fn delete_finished_segments(&mut self) -> Result<(), OutboxError> {
        let active = self.active.as_ref().map(|a| a.first_seq);
        let finished: Vec<u64> = self
            .segments
            .iter()
            .filter(|(first, s)| s.live == 0 && Some(**first) != active)
            .map(|(first, _)| *first)
            .collect();
        if finished.is_empty() {
            return Ok(());
        }
        for first in finished {
            let segment = self.segments.remove(&first).expect("listed above");
            fs::remove_file(&segment.path).map_err(io("delete", &segment.path))?;
        }
        // Make the deletions durable before any compaction forgets their acknowledgements.
        sync_dir(&self.dir)
    }

    /// Rewrites the acknowledgement log with only what the remaining segments need.
    fn compact_acks(&mut self) -> Result<(), OutboxError> {
        let mut payload = vec![ACK_KIND_LIST];
        for (first, segment) in &self.segments {
            for seq in *first..=segment.last_seq {
                if !self.pending.contains_key(&seq) {
                    payload.extend_from_slice(&seq.to_le_bytes());
                }
            }
        }
        let mut floor = vec![ACK_KIND_FLOOR];
        floor.extend_from_slice(&self.next_seq.to_le_bytes());
        let mut content = ACKS_MAGIC.to_vec();
        content.extend(frame::encode(&floor));
        content.extend(frame::encode(&payload));
        let final_path = self.dir.join(ACKS_FILE);
        let tmp_path = self.dir.join("acks.log.tmp");
        let mut tmp = File::create(&tmp_path).map_err(io("create", &tmp_path))?;
        frame::append_durably(&mut tmp, &content).map_err(io("write", &tmp_path))?;
        fs::rename(&tmp_path, &final_path).map_err(io("rename", &tmp_path))?;
        sync_dir(&self.dir)?;
        self.acks = OpenOptions::new()
            .append(true)
            .open(&final_path)
            .map_err(io("open", &final_path))?;
        self.acks_bytes = content.len() as u64;
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> Result<(), OutboxError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync directory", dir))
}

fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, OutboxError> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).map_err(io("list", dir))? {
        let entry = entry.map_err(io("list", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(first) = name
            .strip_prefix("seg-")
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        segments.push((first, entry.path()));
    }
    segments.sort();
    Ok(segments)
}

/// Reads a segment's records, truncating a torn tail.
fn recover_segment(path: &Path) -> Result<Vec<Record>, OutboxError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io("open", path))?;
    let content = frame::read_all(&mut file).map_err(io("read", path))?;
    let scan = frame::scan(&content, SEGMENT_MAGIC).ok_or_else(|| OutboxError::Foreign {
        path: path.to_path_buf(),
    })?;
    let mut records = Vec::with_capacity(scan.frames.len());
    for (offset, payload) in &scan.frames {
        let record: Record =
            serde_json::from_slice(payload).map_err(|source| OutboxError::Undecodable {
                path: path.to_path_buf(),
                offset: *offset,
                source,
            })?;
        records.push(record);
    }
    if scan.torn {
        tracing::warn!(
            path = %path.display(),
            kept_records = records.len(),
            dropped_bytes = content.len() as u64 - scan.valid_len,
            "outbox segment had a torn tail (a crash during an append); truncating it"
        );
        truncate(&file, path, scan.valid_len, SEGMENT_MAGIC)?;
    }
    Ok(records)
}

/// Reads the acknowledgement log (creating it if missing): acknowledged sequence numbers, the
/// sequence floor, and the file's valid length.
fn recover_acks(path: &Path) -> Result<(BTreeSet<u64>, u64, u64), OutboxError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io("open", path))?;
    let content = frame::read_all(&mut file).map_err(io("read", path))?;
    let scan = frame::scan(&content, ACKS_MAGIC).ok_or_else(|| OutboxError::Foreign {
        path: path.to_path_buf(),
    })?;
    let mut acked = BTreeSet::new();
    let mut floor = 0;
    for (_, payload) in &scan.frames {
        match payload.split_first() {
            Some((&ACK_KIND_LIST, seqs)) => {
                acked.extend(
                    seqs.chunks_exact(8)
                        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))),
                );
            }
            Some((&ACK_KIND_FLOOR, value)) if value.len() == 8 => {
                floor = floor.max(u64::from_le_bytes(value.try_into().expect("8 bytes")));
            }
            _ => {
                tracing::warn!(path = %path.display(), "ignoring an unknown acknowledgement frame")
            }
        }
    }
    let mut valid_len = scan.valid_len;
    if scan.torn || content.is_empty() {
        if scan.torn {
            tracing::warn!(path = %path.display(), "acknowledgement log had a torn tail; truncating it");
        }
        truncate(&file, path, scan.valid_len, ACKS_MAGIC)?;
        valid_len = valid_len.max(ACKS_MAGIC.len() as u64);
    }
    Ok((acked, floor, valid_len))
}

/// Cuts `file` to `len` bytes (rewriting the magic if the cut reaches into it) and syncs.
fn truncate(file: &File, path: &Path, len: u64, magic: &[u8; 8]) -> Result<(), OutboxError> {
    use std::io::{Seek, SeekFrom, Write};
    let mut file = file;
    if len < magic.len() as u64 {
        file.set_len(0).map_err(io("truncate", path))?;
        file.seek(SeekFrom::Start(0)).map_err(io("seek", path))?;
        file.write_all(magic).map_err(io("write", path))?;
    } else {
        file.set_len(len).map_err(io("truncate", path))?;
    }
    file.sync_all().map_err(io("sync", path))
}

#[cfg(test)]
mod tests;
