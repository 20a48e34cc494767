//! The work queue between the HTTP layer and the device threads.
//!
//! Devices *pull* units: each device thread asks for the next unit when it is free, so work
//! splits across devices in proportion to their measured throughput without a central plan.
//! At the tail of a job (fewer nonces left than the devices could take in full batches), a
//! device takes only its throughput share of what is left, so a slow device does not hold the
//! job's last batch while fast ones idle.
//!
//! Order: units handed back after a device fault first, then `/generate` jobs in arrival order,
//! then the generation stream. Jobs are how validators ask for work, so they never wait behind
//! the endless stream. The stream pauses while the outbox is full (back-pressure instead of the
//! network's "drop the oldest"). The queue cap bounds the nonces of accepted jobs not yet handed
//! to a device; a request that would pass it is refused (429).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::jobs::Job;
use crate::work::{Epoch, Origin, Unit, WorkContext};

/// The queue cap would be passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the queue holds {queued} nonces; {requested} more would pass the cap of {cap}: retry later"
)]
pub struct QueueFull {
    /// Nonces queued now.
    pub queued: u64,
    /// Nonces requested.
    pub requested: u64,
    /// The cap.
    pub cap: u64,
}

struct JobFeed {
    job: Arc<Job>,
    ctx: Arc<WorkContext>,
    next: usize,
}

struct StreamFeed {
    epoch: Arc<Epoch>,
    ctx: Arc<WorkContext>,
    next_x: u64,
}

#[derive(Default)]
struct State {
    retry: VecDeque<Unit>,
    jobs: VecDeque<JobFeed>,
    stream: Option<StreamFeed>,
    /// Nonces of accepted jobs not yet handed to a device (including jobs still loading).
    reserved: u64,
    closed: bool,
}

/// What a device asks for.
#[derive(Clone, Copy, Debug)]
pub struct Pull {
    /// Most `batch × seq_len` rows the device takes in one forward.
    pub max_tokens: usize,
    /// The device's share of the pool's measured throughput, in (0, 1].
    pub share: f64,
    /// Devices currently healthy (for the tail split).
    pub healthy_devices: usize,
}

/// The queue. Shared by the HTTP layer (async) and the device threads (blocking).
pub struct WorkQueue {
    state: Mutex<State>,
    ready: Condvar,
    cap: u64,
    paused: Box<dyn Fn() -> bool + Send + Sync>,
}

impl WorkQueue {
    /// A queue with a cap on queued nonces; `stream_paused` says when the generation stream must
    /// wait (the outbox is full). It is polled, so it may be a cheap check of shared state.
    pub fn new(cap: u64, stream_paused: Box<dyn Fn() -> bool + Send + Sync>) -> Self {
        WorkQueue {
            state: Mutex::new(State::default()),
            ready: Condvar::new(),
            cap,
            paused: stream_paused,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves room for `n` nonces of a new job, or says why not (429).
    pub fn reserve(&self, n: u64) -> Result<(), QueueFull> {
        let mut state = self.lock();
        if state.reserved + n > self.cap {
            return Err(QueueFull {
                queued: state.reserved,
                requested: n,
                cap: self.cap,
            });
        }
        state.reserved += n;
        Ok(())
    }

    /// Gives back a reservation whose job never reached the queue.
    pub fn unreserve(&self, n: u64) {
        let mut state = self.lock();
        state.reserved = state.reserved.saturating_sub(n);
    }

    /// Queues a job whose nonces were reserved.
    pub fn push_job(&self, job: Arc<Job>, ctx: Arc<WorkContext>) {
        let mut state = self.lock();
        if state.closed || job.cancel.is_cancelled() {
            state.reserved = state
                .reserved
                .saturating_sub(job.request.nonces.len() as u64);
            drop(state);
            job.cancel();
            return;
        }
        state.jobs.push_back(JobFeed { job, ctx, next: 0 });
        drop(state);
        self.ready.notify_all();
    }

    /// Starts the generation stream of `epoch` (replacing any previous one).
    pub fn start_stream(&self, epoch: Arc<Epoch>, ctx: Arc<WorkContext>) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        state.stream = Some(StreamFeed {
            epoch,
            ctx,
            next_x: 0,
        });
        drop(state);
        self.ready.notify_all();
    }

    /// Hands a unit back (its device failed); it goes out again before anything else.
    pub fn requeue(&self, mut unit: Unit) {
        unit.attempts += 1;
        let mut state = self.lock();
        if let Origin::Job { .. } = unit.origin {
            state.reserved += unit.nonces.len() as u64;
        }
        state.retry.push_back(unit);
        drop(state);
        self.ready.notify_all();
    }

    /// Removes the stream and every queued job (`/stop`); returns the jobs, to be cancelled.
    pub fn clear(&self) -> Vec<Arc<Job>> {
        let mut state = self.lock();
        state.stream = None;
        let mut jobs = Vec::new();
        for feed in std::mem::take(&mut state.jobs) {
            let left = (feed.job.request.nonces.len() - feed.next) as u64;
            state.reserved = state.reserved.saturating_sub(left);
            jobs.push(feed.job);
        }
        for unit in std::mem::take(&mut state.retry) {
            if let Origin::Job { job, .. } = unit.origin {
                state.reserved = state.reserved.saturating_sub(unit.nonces.len() as u64);
                jobs.push(job);
            }
        }
        // Jobs still loading their weights keep their reservation until they reach
        // `push_job`, which refuses them once they are cancelled.
        jobs
    }

    /// Stops handing out work: every waiting and future [`WorkQueue::next`] returns `None`.
    pub fn close(&self) -> Vec<Arc<Job>> {
        let jobs = self.clear();
        self.lock().closed = true;
        self.ready.notify_all();
        jobs
    }

    /// Nonces queued (accepted, not yet handed to a device).
    pub fn depth(&self) -> u64 {
        self.lock().reserved
    }

    /// Blocks until a unit is available for a device asking `pull`, or the queue closes.
    pub fn next(&self, pull: Pull) -> Option<Unit> {
        let mut state = self.lock();
        loop {
            if state.closed {
                return None;
            }
            if let Some(unit) = take(&mut state, pull, &*self.paused) {
                return Some(unit);
            }
            // The stream's pause (outbox full) is polled; everything else notifies.
            state = self
                .ready
                .wait_timeout(state, Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Wakes the device threads (a device's state changed).
    pub fn notify(&self) {
        self.ready.notify_all();
    }
}

fn take(state: &mut State, pull: Pull, paused: &dyn Fn() -> bool) -> Option<Unit> {
    while let Some(unit) = state.retry.pop_front() {
        if let Origin::Job { .. } = unit.origin {
            state.reserved = state.reserved.saturating_sub(unit.nonces.len() as u64);
        }
        if !unit.ctx.cancel.is_cancelled() {
            return Some(unit);
        }
    }
    while let Some(feed) = state.jobs.front_mut() {
        let total = feed.job.request.nonces.len();
        let left = total - feed.next;
        if feed.ctx.cancel.is_cancelled() || left == 0 {
            state.reserved = state.reserved.saturating_sub(left as u64);
            state.jobs.pop_front();
            continue;
        }
        let full = batch_for(&feed.ctx, pull);
        let size = tail_share(left, full, pull);
        let offset = feed.next;
        feed.next += size;
        let unit = Unit {
            ctx: feed.ctx.clone(),
            nonces: feed.job.request.nonces[offset..offset + size].to_vec(),
            origin: Origin::Job {
                job: feed.job.clone(),
                offset,
            },
            attempts: 0,
        };
        feed.job.mark_running();
        if feed.next == total {
            state.jobs.pop_front();
        }
        state.reserved = state.reserved.saturating_sub(size as u64);
        return Some(unit);
    }
    let stream = state.stream.as_mut()?;
    if stream.ctx.cancel.is_cancelled() {
        state.stream = None;
        return None;
    }
    if paused() {
        return None;
    }
    let size = batch_for(&stream.ctx, pull);
    let mut nonces = Vec::with_capacity(size);
    for i in 0..size as u64 {
        match stream.epoch.sequence.nonce(stream.next_x + i) {
            Some(nonce) => nonces.push(nonce),
            None => break,
        }
    }
    if nonces.is_empty() {
        // The 64-bit nonce space of this node is exhausted (never in practice).
        state.stream = None;
        return None;
    }
    stream.next_x += nonces.len() as u64;
    Some(Unit {
        ctx: stream.ctx.clone(),
        nonces,
        origin: Origin::Generation(stream.epoch.clone()),
        attempts: 0,
    })
}

/// The forward batch of a request on a device: the request's, within the device's row limit.
fn batch_for(ctx: &WorkContext, pull: Pull) -> usize {
    let per_device = pull.max_tokens / ctx.round.params.seq_len.max(1);
    ctx.batch.min(per_device).max(1)
}

/// How many of the `left` nonces of a job a device takes: a full batch while plenty are left;
/// near the end, its throughput share of what is left (at least one).
fn tail_share(left: usize, full: usize, pull: Pull) -> usize {
    if left >= full * pull.healthy_devices.max(1) {
        return full;
    }
    let share = (left as f64 * pull.share.clamp(0.0, 1.0)).ceil() as usize;
    share.clamp(1, full).min(left)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pull(share: f64, devices: usize) -> Pull {
        Pull {
            max_tokens: 1000,
            share,
            healthy_devices: devices,
        }
    }

    #[test]
    fn tail_is_split_by_throughput_share() {
        // Plenty left: full batches.
        assert_eq!(tail_share(100, 32, pull(0.25, 2)), 32);
        // 40 left, two devices: a device with 3/4 of the throughput takes 30, the other 10.
        assert_eq!(tail_share(40, 32, pull(0.75, 2)), 30);
        assert_eq!(tail_share(40, 32, pull(0.25, 2)), 10);
        // Never zero, never more than left or a full batch.
        assert_eq!(tail_share(1, 32, pull(0.01, 4)), 1);
        assert_eq!(tail_share(5, 32, pull(1.0, 1)), 5);
    }

    #[test]
    fn reservations_enforce_the_cap() {
        let queue = WorkQueue::new(10, Box::new(|| false));
        queue.reserve(6).unwrap();
        let err = queue.reserve(5).unwrap_err();
        assert_eq!(
            err,
            QueueFull {
                queued: 6,
                requested: 5,
                cap: 10
            }
        );
        assert!(err.to_string().contains("cap of 10"));
        queue.unreserve(6);
        queue.reserve(10).unwrap();
        assert_eq!(queue.depth(), 10);
    }

    #[test]
    fn a_closed_queue_returns_none() {
        let queue = Arc::new(WorkQueue::new(10, Box::new(|| false)));
        let q = queue.clone();
        let waiter = std::thread::spawn(move || q.next(pull(1.0, 1)).is_none());
        std::thread::sleep(Duration::from_millis(50));
        queue.close();
        assert!(waiter.join().unwrap());
    }
}
