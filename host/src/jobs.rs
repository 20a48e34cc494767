//! `/generate` jobs: their state from queued to completed, their results, and the registry that
//! keeps finished results readable for a while (`GET /generate/{request_id}`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::watch;

use crate::api::wire::{Encoding, GenerateRequest, ValidationOutcome, WireArtifact};
use crate::engine::Outcome;
use crate::work::CancelFlag;

/// A job's lifecycle, as `GET /generate/{request_id}` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobStatus {
    /// Accepted, nothing computed yet.
    Queued,
    /// Devices are computing it.
    Running,
    /// Done; the result is available.
    Completed,
    /// Could not be done (the reason is kept).
    Failed,
    /// Cancelled by `/stop` or shutdown.
    Cancelled,
}

impl JobStatus {
    /// The network's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// Whether the job is over.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

/// A finished job's result.
#[derive(Clone, Debug, PartialEq)]
pub enum JobResult {
    /// The artifacts of the requested nonces (dropped nonces absent), in request order.
    Artifacts(Vec<WireArtifact>),
    /// The validation outcome.
    Validation(ValidationOutcome),
}

struct JobState {
    status: JobStatus,
    outcomes: Vec<Option<Outcome>>,
    filled: usize,
    result: Option<JobResult>,
    error: Option<String>,
    finished: Option<Instant>,
}

/// One `/generate` request being served.
pub struct Job {
    /// The request id (a random UUID).
    pub id: String,
    /// The request.
    pub request: GenerateRequest,
    /// Set when the job is cancelled or failed, so devices stop working on it.
    pub cancel: CancelFlag,
    state: Mutex<JobState>,
    done: watch::Sender<bool>,
}

impl Job {
    /// A queued job for `request`.
    pub fn new(request: GenerateRequest) -> Arc<Job> {
        let n = request.nonces.len();
        let (done, _) = watch::channel(false);
        Arc::new(Job {
            id: new_request_id(),
            request,
            cancel: CancelFlag::new(),
            state: Mutex::new(JobState {
                status: JobStatus::Queued,
                outcomes: vec![None; n],
                filled: 0,
                result: None,
                error: None,
                finished: None,
            }),
            done,
        })
    }

    fn lock(&self) -> MutexGuard<'_, JobState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current status.
    pub fn status(&self) -> JobStatus {
        self.lock().status
    }

    /// Marks the job running (its first unit went to a device).
    pub fn mark_running(&self) {
        let mut state = self.lock();
        if state.status == JobStatus::Queued {
            state.status = JobStatus::Running;
        }
    }

    /// Stores the outcomes of the nonces at `offset..`; returns all outcomes, once, when this
    /// filled the last ones.
    pub fn fill(&self, offset: usize, outcomes: Vec<Outcome>) -> Option<Vec<Outcome>> {
        let mut state = self.lock();
        if state.status.is_final() {
            return None;
        }
        for (i, outcome) in outcomes.into_iter().enumerate() {
            let Some(slot) = state.outcomes.get_mut(offset + i) else {
                break;
            };
            if slot.is_none() {
                *slot = Some(outcome);
                state.filled += 1;
            }
        }
        if state.filled == state.outcomes.len() {
            let all = std::mem::take(&mut state.outcomes);
            Some(all.into_iter().map(|o| o.expect("all filled")).collect())
        } else {
            None
        }
    }

    /// Finishes the job with its result.
    pub fn complete(&self, result: JobResult) {
        self.finish(JobStatus::Completed, Some(result), None);
    }

    /// Finishes the job as failed.
    pub fn fail(&self, reason: String) {
        self.finish(JobStatus::Failed, None, Some(reason));
    }

    /// Finishes the job as cancelled.
    pub fn cancel(&self) {
        self.finish(JobStatus::Cancelled, None, None);
    }

    fn finish(&self, status: JobStatus, result: Option<JobResult>, error: Option<String>) {
        {
            let mut state = self.lock();
            if state.status.is_final() {
                return;
            }
            state.status = status;
            state.result = result;
            state.error = error;
            state.finished = Some(Instant::now());
            state.outcomes = Vec::new();
        }
        if status != JobStatus::Completed {
            self.cancel.cancel();
        }
        self.done.send_replace(true);
    }

    /// Waits until the job is over.
    pub async fn wait(&self) {
        let mut done = self.done.subscribe();
        let _ = done.wait_for(|d| *d).await;
    }

    fn finished_before(&self, deadline: Instant) -> bool {
        self.lock().finished.is_some_and(|t| t < deadline)
    }

    /// The `GET /generate/{request_id}` body (also the `wait=true` answer when completed).
    pub fn to_json(&self) -> Value {
        let state = self.lock();
        let mut body = json!({ "status": state.status.as_str(), "request_id": self.id });
        let object = body.as_object_mut().expect("a JSON object");
        match (&state.result, &state.error) {
            (Some(JobResult::Artifacts(artifacts)), _) => {
                object.insert("artifacts".into(), json!(artifacts));
                object.insert(
                    "encoding".into(),
                    json!(Encoding::f16(self.request.params.k_dim)),
                );
            }
            (Some(JobResult::Validation(outcome)), _) => {
                if let Value::Object(fields) = json!(outcome) {
                    object.extend(fields);
                }
            }
            (None, Some(error)) => {
                object.insert("error".into(), json!(error));
            }
            (None, None) => {
                if !state.status.is_final() {
                    object.insert("processed".into(), json!(state.filled));
                    object.insert("total".into(), json!(self.request.nonces.len()));
                }
            }
        }
        body
    }
}

/// A random (version 4) UUID, as the network's node uses for request ids.
fn new_request_id() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// All jobs, until their results expire.
pub struct JobRegistry {
    jobs: Mutex<HashMap<String, Arc<Job>>>,
    retention: Duration,
}

impl JobRegistry {
    /// A registry that forgets finished jobs after `retention`.
    pub fn new(retention: Duration) -> Self {
        JobRegistry {
            jobs: Mutex::new(HashMap::new()),
            retention,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Job>>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a job.
    pub fn insert(&self, job: Arc<Job>) {
        self.lock().insert(job.id.clone(), job);
    }

    /// Looks a job up.
    pub fn get(&self, id: &str) -> Option<Arc<Job>> {
        self.lock().get(id).cloned()
    }

    /// Jobs not finished yet.
    pub fn unfinished(&self) -> Vec<Arc<Job>> {
        self.lock()
            .values()
            .filter(|j| !j.status().is_final())
            .cloned()
            .collect()
    }

    /// Forgets finished jobs older than the retention; returns how many were forgotten.
    pub fn sweep(&self) -> usize {
        let Some(deadline) = Instant::now().checked_sub(self.retention) else {
            return 0;
        };
        let mut jobs = self.lock();
        let before = jobs.len();
        jobs.retain(|_, job| !job.finished_before(deadline));
        before - jobs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::error::parse_json;

    fn request(nonces: &str) -> GenerateRequest {
        parse_json(
            format!(
                r#"{{"block_hash":"h","block_height":1,"public_key":"p","node_id":0,"node_count":1,
                   "nonces":{nonces},"params":{{"model":"m","seq_len":4}}}}"#
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn request_ids_are_uuid_v4() {
        let id = new_request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(id, new_request_id());
    }

    #[test]
    fn outcomes_fill_in_any_order_and_complete_once() {
        let job = Job::new(request("[5,6,7]"));
        assert_eq!(job.to_json()["status"], "queued");
        assert!(job.fill(1, vec![None, None]).is_none());
        let all = job.fill(0, vec![None]).expect("complete");
        assert_eq!(all.len(), 3);
        assert!(
            job.fill(0, vec![None]).is_none(),
            "completion is reported once"
        );
        job.complete(JobResult::Artifacts(vec![]));
        let body = job.to_json();
        assert_eq!(body["status"], "completed");
        assert_eq!(body["encoding"]["k_dim"], 12);
        job.fail("late".into());
        assert_eq!(job.status(), JobStatus::Completed, "final states stick");
    }

    #[test]
    fn failed_and_cancelled_jobs_say_so_and_stop_work() {
        let job = Job::new(request("[1]"));
        job.fail("no healthy device".into());
        assert_eq!(job.to_json()["error"], "no healthy device");
        assert!(job.cancel.is_cancelled());
        let job = Job::new(request("[1]"));
        job.cancel();
        assert_eq!(job.to_json()["status"], "cancelled");
    }

    #[test]
    fn finished_jobs_expire_after_the_retention() {
        let registry = JobRegistry::new(Duration::ZERO);
        let job = Job::new(request("[1]"));
        registry.insert(job.clone());
        assert_eq!(registry.sweep(), 0, "unfinished jobs stay");
        job.cancel();
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(registry.sweep(), 1);
        assert!(registry.get(&job.id).is_none());
    }
}
