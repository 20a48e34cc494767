//! The bridge to the golden PoC pipeline (`golden::poc`): the served model, its weights per
//! block hash, rounds, and the artifact/validation types the daemon passes around.
//!
//! The daemon never computes PoC math itself: every artifact comes from
//! [`golden::poc::Engine`] running its matrix products on a device's
//! [`MatmulDevice`](golden::poc::MatmulDevice), and every validation from
//! [`golden::poc::validate`].

use std::collections::HashMap;
use std::sync::Arc;

use golden::poc::config::ModelConfig;
use golden::poc::model::{ModelSource, ModelSpec, TensorSpec};
use golden::poc::{Artifact, ModelError, PocError, Round, RoundParams};

/// The model this daemon serves, as named in its configuration (`synthetic:tiny`, a checkpoint
/// directory); `params.model` must equal [`ServedModel::name`].
#[derive(Clone, Debug)]
pub struct ServedModel {
    name: String,
    spec: ModelSpec,
    config: ModelConfig,
}

impl ServedModel {
    /// Opens the model named `name` (reads a checkpoint's config; synthetic presets need no file).
    pub fn open(name: &str) -> Result<Self, ModelError> {
        let spec = ModelSpec::parse(name)?;
        let config = spec.open("", None, 1)?.config().clone();
        config.validate()?;
        Ok(ServedModel {
            name: name.to_string(),
            spec,
            config,
        })
    }

    /// The name requests must use.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The model's shape.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Whether the weights depend on the block hash (synthetic models are seeded by it).
    pub fn seeded_by_block_hash(&self) -> bool {
        matches!(self.spec, ModelSpec::Synthetic(_))
    }

    /// The key under which the weights for `block_hash` are cached.
    pub fn weights_key(&self, block_hash: &str) -> String {
        if self.seeded_by_block_hash() {
            block_hash.to_string()
        } else {
            String::new()
        }
    }

    /// Generates (synthetic) or reads (checkpoint) every weight for `block_hash`, once, so that
    /// each device and the cross-checker upload from memory instead of regenerating.
    /// Blocking and CPU-heavy for large models: call it off the async runtime.
    pub fn materialize(&self, block_hash: &str, threads: usize) -> Result<Weights, PocError> {
        let source = self.spec.open(block_hash, None, threads)?;
        let config = source.config().clone();
        let mut tensors = HashMap::new();
        for spec in config.tensor_specs() {
            let values = source.tensor(&spec)?;
            tensors.insert(spec.name.clone(), values);
        }
        Ok(Weights {
            key: self.weights_key(block_hash),
            describe: source.describe(),
            config,
            tensors,
        })
    }
}

/// A model's weights in memory: a [`ModelSource`] every device loads from.
pub struct Weights {
    key: String,
    describe: String,
    config: ModelConfig,
    tensors: HashMap<String, Vec<u16>>,
}

impl Weights {
    /// The cache key ([`ServedModel::weights_key`]).
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl std::fmt::Debug for Weights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Weights")
            .field("model", &self.describe)
            .finish()
    }
}

impl ModelSource for Weights {
    fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn tensor(&self, spec: &TensorSpec) -> Result<Vec<u16>, ModelError> {
        self.tensors
            .get(&spec.name)
            .cloned()
            .ok_or_else(|| ModelError::Config {
                reason: format!("tensor {} is not part of {}", spec.name, self.describe),
            })
    }
}

/// Prepares the round (seeds, layer reflections) of one request for `weights`' model.
pub fn round(
    weights: &Weights,
    block_hash: &str,
    public_key: &str,
    seq_len: usize,
    k_dim: usize,
) -> Result<Round, PocError> {
    let mut params = RoundParams::new(block_hash, public_key, seq_len);
    params.k_dim = k_dim;
    Round::new(params, &weights.config)
}

/// What a device produced for one nonce: an artifact, or `None` when the network's rule drops it
/// (a non-finite hidden state).
pub type Outcome = Option<Artifact>;

/// Pairs each nonce with its outcome, given the artifacts `Engine::artifacts` returned (in
/// order, dropped nonces absent).
pub fn outcomes(nonces: &[u64], artifacts: Vec<Artifact>) -> Vec<Outcome> {
    let by_nonce: HashMap<u64, Artifact> = artifacts.into_iter().map(|a| (a.nonce, a)).collect();
    // A nonce may appear twice in a request; both places get the same artifact.
    nonces
        .iter()
        .map(|nonce| by_nonce.get(nonce).cloned())
        .collect()
}

/// Shared handle on weights.
pub type SharedWeights = Arc<Weights>;
