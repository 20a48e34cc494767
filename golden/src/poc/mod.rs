//! The network's Proof of Compute, computed bit-exactly: everything an ML node computes for a
//! nonce, from seeds to the `vector_b64` artifact, plus validation and the hash mode.
//!
//! The protocol is described in `shared/network-poc.md`; our choices where it is silent, the
//! rounding points and the hash mode are in `docs/poc.md` and `docs/numerics.md` ("PoC pipeline:
//! rounding points and transcendentals").
//!
//! - [`rng`], [`math`]: seeds, the u32 mix, uniform and Box–Muller normals; deterministic `ln`,
//!   `cos`/`sin`, `exp` and fixed-order reductions (no platform libm anywhere);
//! - [`inputs`]: input embeddings, layer reflections, the k-pick and the Haar rotation;
//! - [`config`], [`model`], [`safetensors`]: model shapes and weight sources (synthetic presets
//!   and Hugging Face checkpoints);
//! - [`device`]: the [`device::MatmulDevice`] trait every matrix product goes through, with the
//!   CPU implementations in [`cpu`];
//! - [`forward`]: the batched transformer forward (host side of the split), with `lanes` for its
//!   fixed-order reductions of many rows at once;
//! - [`artifact`]: normalisation, pick, rotation and the f16/base64 encoding;
//! - [`validate`]: the mismatch rule and the binomial fraud test;
//! - [`hash`]: the bit-exact hash mode.

pub mod artifact;
pub mod config;
pub mod cpu;
pub mod device;
pub mod forward;
pub mod hash;
pub mod inputs;
mod lanes;
pub mod math;
pub mod model;
pub mod record;
pub mod rng;
pub mod safetensors;
mod tile;
pub mod validate;

use std::path::PathBuf;

pub use artifact::{Artifact, Round, RoundParams};
pub use device::{DeviceError, MatmulDevice};
pub use forward::Engine;
/// The thread pool a [`cpu::CpuDevice`] computes on, which [`Engine::set_host_pool`] can share
/// with the host passes (re-exported so users need not name the `rayon` version).
pub use rayon::ThreadPool;

/// Why a model could not be opened or read. Each variant says what was wrong and what would be
/// right.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// `synthetic:<name>` with an unknown name.
    #[error("unknown synthetic preset `{name}`: expected one of {choices}")]
    UnknownPreset {
        /// The name given.
        name: String,
        /// The valid names.
        choices: String,
    },
    /// The configuration is unreadable or describes a model we cannot run.
    #[error("model configuration: {reason}")]
    Config {
        /// What was wrong.
        reason: String,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A checkpoint file is malformed.
    #[error("checkpoint file {file}: {reason}")]
    Checkpoint {
        /// The file.
        file: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A tensor the config implies is absent.
    #[error("missing tensor {name} in {dir}: the config implies it (check model_type and the bias/norm flags)")]
    MissingTensor {
        /// Its Hugging Face name.
        name: String,
        /// The checkpoint directory.
        dir: PathBuf,
    },
    /// A tensor has the wrong shape for the config.
    #[error("tensor {name} has shape {actual:?} but the config implies {expected:?}")]
    TensorShape {
        /// Its name.
        name: String,
        /// What the config implies.
        expected: Vec<usize>,
        /// What the file has.
        actual: Vec<usize>,
    },
    /// A tensor has a dtype we cannot convert.
    #[error("tensor {name} has dtype {dtype}: expected BF16, F16 or F32")]
    TensorDtype {
        /// Its name.
        name: String,
        /// The dtype in the file.
        dtype: String,
    },
}

/// Any failure of the PoC pipeline.
#[derive(Debug, thiserror::Error)]
pub enum PocError {
    /// The model could not be loaded.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A device call failed.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The round's parameters are not usable with this model.
    #[error("invalid PoC parameters: {0}")]
    Params(String),
}
