//! The weights cache: synthetic weights are a function of the block hash, so a new block hash
//! means generating the model (seconds for large presets). That happens on a blocking thread,
//! once per block hash even when many requests ask at the same time, and the last few are kept.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use crate::engine::{ServedModel, SharedWeights};

type Slot = Arc<OnceCell<Result<SharedWeights, String>>>;

/// Weights by block hash, most recent first.
pub struct WeightsCache {
    served: ServedModel,
    capacity: usize,
    threads: usize,
    entries: Mutex<VecDeque<(String, Slot)>>,
}

impl WeightsCache {
    /// A cache of `capacity` models of `served`, generated with `threads` threads.
    pub fn new(served: ServedModel, capacity: usize, threads: usize) -> Self {
        WeightsCache {
            served,
            capacity: capacity.max(1),
            threads: threads.max(1),
            entries: Mutex::new(VecDeque::new()),
        }
    }

    /// The weights for `block_hash`, generating them if needed (off the async runtime).
    pub async fn get(&self, block_hash: &str) -> Result<SharedWeights, String> {
        let key = self.served.weights_key(block_hash);
        let slot = {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            let slot = match entries.iter().position(|(k, _)| *k == key) {
                Some(i) => {
                    let entry = entries.remove(i).expect("found above");
                    let slot = entry.1.clone();
                    entries.push_front(entry);
                    slot
                }
                None => {
                    let slot: Slot = Arc::new(OnceCell::new());
                    entries.push_front((key.clone(), slot.clone()));
                    // Evicted weights live on while units still use them.
                    entries.truncate(self.capacity);
                    slot
                }
            };
            slot
        };
        let result = slot
            .get_or_init(|| async {
                let served = self.served.clone();
                let block_hash = block_hash.to_string();
                let threads = self.threads;
                let started = std::time::Instant::now();
                let built =
                    tokio::task::spawn_blocking(move || served.materialize(&block_hash, threads))
                        .await;
                match built {
                    Ok(Ok(weights)) => {
                        tracing::info!(
                            model = %self.served.name(),
                            key = %weights.key(),
                            seconds = started.elapsed().as_secs_f64(),
                            "model weights ready"
                        );
                        Ok(Arc::new(weights))
                    }
                    Ok(Err(err)) => Err(format!("cannot load {}: {err}", self.served.name())),
                    Err(join) => Err(format!("weight generation failed: {join}")),
                }
            })
            .await
            .clone();
        if result.is_err() {
            // Do not cache failures: the next request tries again.
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            entries.retain(|(_, s)| !Arc::ptr_eq(s, &slot));
        }
        result
    }
}
