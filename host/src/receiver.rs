//! A callback receiver: the api-node side of `{url}/generated` and `{url}/validated`.
//!
//! It is what the integration tests, the benchmark and `host receive` use to play the api node:
//! it de-duplicates artifacts by `(block_hash, public_key, node_id, nonce)` and validation results
//! by `request_id` (the keys the daemon's at-least-once delivery relies on), counts duplicates,
//! and can be switched to answer 503 to simulate an api node that is down.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use tokio::sync::Notify;

use crate::api::wire::{GeneratedCallback, ValidatedCallback};

/// The de-duplication key of an artifact.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArtifactKey {
    /// Block hash.
    pub block_hash: String,
    /// Public key.
    pub public_key: String,
    /// Node index.
    pub node_id: u64,
    /// Nonce.
    pub nonce: u64,
}

/// What the receiver has accepted.
#[derive(Debug, Default)]
pub struct Received {
    /// Unique artifacts: key → (vector_b64, request_id of the batch that brought it).
    pub artifacts: BTreeMap<ArtifactKey, (String, Option<String>)>,
    /// Artifacts that arrived again (same key; the vector is checked to be identical).
    pub duplicate_artifacts: u64,
    /// Artifacts that arrived again with a *different* vector (must never happen).
    pub conflicting_artifacts: u64,
    /// Validation results by request id.
    pub validations: HashMap<String, ValidatedCallback>,
    /// Validation results that arrived again.
    pub duplicate_validations: u64,
    /// `/generated` requests accepted.
    pub generated_posts: u64,
}

/// A shared handle on a running receiver's state.
#[derive(Clone, Default)]
pub struct Receiver {
    inner: Arc<ReceiverInner>,
}

#[derive(Default)]
struct ReceiverInner {
    received: Mutex<Received>,
    down: AtomicBool,
    refused: AtomicU64,
    changed: Notify,
}

impl Receiver {
    /// A receiver that accepts everything.
    pub fn new() -> Self {
        Receiver::default()
    }

    /// The axum router serving `/generated` and `/validated` under any prefix-free base URL.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/generated", post(generated))
            .route("/validated", post(validated))
            .layer(DefaultBodyLimit::max(1 << 30))
            .with_state(self.clone())
    }

    /// Serves on `addr` (use port 0 for any) and returns the bound address.
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let app = self.router();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(bound)
    }

    /// While `down`, every callback is answered 503 (nothing is stored).
    pub fn set_down(&self, down: bool) {
        self.inner.down.store(down, Ordering::SeqCst);
    }

    /// Callbacks refused while down.
    pub fn refused(&self) -> u64 {
        self.inner.refused.load(Ordering::SeqCst)
    }

    /// Runs `f` on what was received.
    pub fn with<T>(&self, f: impl FnOnce(&Received) -> T) -> T {
        f(&self
            .inner
            .received
            .lock()
            .unwrap_or_else(|p| p.into_inner()))
    }

    /// Unique artifacts received so far.
    pub fn artifact_count(&self) -> usize {
        self.with(|r| r.artifacts.len())
    }

    /// Waits until `done` holds on what was received, or `timeout` passes; returns whether it held.
    pub async fn wait_for(
        &self,
        timeout: std::time::Duration,
        mut done: impl FnMut(&Received) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.changed.notified();
            if self.with(&mut done) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.with(&mut done);
            }
        }
    }
}

async fn generated(
    State(receiver): State<Receiver>,
    Json(body): Json<GeneratedCallback>,
) -> StatusCode {
    if receiver.inner.down.load(Ordering::SeqCst) {
        receiver.inner.refused.fetch_add(1, Ordering::SeqCst);
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    {
        let mut received = receiver
            .inner
            .received
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        received.generated_posts += 1;
        for artifact in body.artifacts {
            let key = ArtifactKey {
                block_hash: body.block_hash.clone(),
                public_key: body.public_key.clone(),
                node_id: body.node_id,
                nonce: artifact.nonce,
            };
            match received.artifacts.get(&key) {
                Some((previous, _)) if *previous == artifact.vector_b64 => {
                    received.duplicate_artifacts += 1
                }
                Some(_) => received.conflicting_artifacts += 1,
                None => {
                    received
                        .artifacts
                        .insert(key, (artifact.vector_b64, body.request_id.clone()));
                }
            }
        }
    }
    receiver.inner.changed.notify_waiters();
    StatusCode::OK
}

async fn validated(
    State(receiver): State<Receiver>,
    Json(body): Json<ValidatedCallback>,
) -> StatusCode {
    if receiver.inner.down.load(Ordering::SeqCst) {
        receiver.inner.refused.fetch_add(1, Ordering::SeqCst);
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    {
        let mut received = receiver
            .inner
            .received
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if received.validations.contains_key(&body.request_id) {
            received.duplicate_validations += 1;
        } else {
            received.validations.insert(body.request_id.clone(), body);
        }
    }
    receiver.inner.changed.notify_waiters();
    StatusCode::OK
}
