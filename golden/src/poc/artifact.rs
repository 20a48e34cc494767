//! From a final hidden state to the network's artifact: normalise, pick `k` coordinates, rotate,
//! normalise, round to f16, base64.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::config::ModelConfig;
use super::inputs::{self, EmbeddingRng, PickOrder};
use super::math;
use super::PocError;
use crate::numerics::float;

/// The network's default `k_dim`.
pub const DEFAULT_K_DIM: usize = 12;

/// What identifies a PoC round for one participant: the network's parameters plus our explicit
/// choices where the protocol leaves one open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoundParams {
    /// The epoch's block hash (a string, used verbatim in every seed).
    pub block_hash: String,
    /// The participant's public key (a string, used verbatim).
    pub public_key: String,
    /// Sequence length `S`.
    pub seq_len: usize,
    /// Number of output coordinates `k`.
    pub k_dim: usize,
    /// Input-embedding generator.
    pub embedding_rng: EmbeddingRng,
    /// Order of the picked coordinates.
    pub pick_order: PickOrder,
}

impl RoundParams {
    /// Parameters with the network's defaults for everything but the identifiers and `S`.
    pub fn new(block_hash: &str, public_key: &str, seq_len: usize) -> Self {
        RoundParams {
            block_hash: block_hash.to_owned(),
            public_key: public_key.to_owned(),
            seq_len,
            k_dim: DEFAULT_K_DIM,
            embedding_rng: EmbeddingRng::Single,
            pick_order: PickOrder::Ascending,
        }
    }
}

/// A round prepared for one model: its parameters and the per-layer reflection vectors (which
/// depend only on the block hash and the model's shape).
#[derive(Clone, Debug)]
pub struct Round {
    /// The parameters.
    pub params: RoundParams,
    /// Hidden size of the model the round was prepared for.
    pub hidden_size: usize,
    /// Unit reflection vector of each layer.
    pub reflections: Vec<Vec<f32>>,
}

impl Round {
    /// Prepares `params` for a model of shape `config`.
    pub fn new(params: RoundParams, config: &ModelConfig) -> Result<Self, PocError> {
        if params.seq_len == 0 {
            return Err(PocError::Params("seq_len must be at least 1".into()));
        }
        if params.k_dim == 0 || params.k_dim > config.hidden_size {
            return Err(PocError::Params(format!(
                "k_dim {} must be between 1 and the hidden size {}",
                params.k_dim, config.hidden_size
            )));
        }
        let reflections = (0..config.num_layers)
            .map(|i| inputs::layer_reflection(&params.block_hash, i, config.hidden_size))
            .collect();
        Ok(Round {
            params,
            hidden_size: config.hidden_size,
            reflections,
        })
    }
}

/// One nonce's artifact: `k` f16 values (raw bits).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Artifact {
    /// The nonce.
    pub nonce: u64,
    /// The f16 vector, raw bits.
    pub vector: Vec<u16>,
}

impl Artifact {
    /// The f16 little-endian bytes of the vector (what `vector_b64` encodes and the hash mode
    /// hashes).
    pub fn bytes(&self) -> Vec<u8> {
        self.vector.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// Standard base64 with padding of [`Artifact::bytes`]: the network's `vector_b64`.
    pub fn vector_b64(&self) -> String {
        STANDARD.encode(self.bytes())
    }

    /// The vector as `f32` values.
    pub fn values(&self) -> Vec<f32> {
        self.vector.iter().map(|&b| float::fp16_to_f32(b)).collect()
    }
}

/// Why a submitted `vector_b64` could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not standard base64.
    #[error("vector_b64 is not standard base64: {0}")]
    Base64(String),
    /// An odd number of bytes cannot hold f16 values.
    #[error("vector_b64 decodes to {0} bytes, not a whole number of f16 values")]
    OddLength(usize),
}

/// Decodes a `vector_b64` into f16 bits.
pub fn decode_vector_b64(text: &str) -> Result<Vec<u16>, DecodeError> {
    let bytes = STANDARD
        .decode(text)
        .map_err(|e| DecodeError::Base64(e.to_string()))?;
    if bytes.len() % 2 != 0 {
        return Err(DecodeError::OddLength(bytes.len()));
    }
    Ok(bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect())
}

/// Steps 8–12 of the protocol for one nonce: `None` when the hidden state is not finite (the
/// network drops such a nonce; an infinite entry would turn the normalised vector into NaN).
pub fn artifact_from_hidden(round: &Round, nonce: u64, hidden: &[f32]) -> Option<Artifact> {
    if hidden.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let p = &round.params;
    let mut h = hidden.to_vec();
    math::normalize_eps(&mut h);
    let picked = inputs::pick_indices(
        &p.block_hash,
        &p.public_key,
        nonce,
        h.len(),
        p.k_dim,
        p.pick_order,
    );
    let mut y: Vec<f32> = picked.iter().map(|&j| h[j]).collect();
    inputs::rotate(&p.block_hash, &p.public_key, nonce, &mut y);
    math::normalize_eps(&mut y);
    Some(Artifact {
        nonce,
        vector: y.iter().map(|&v| float::f32_to_fp16_rne(v)).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poc::config::Preset;

    #[test]
    fn base64_round_trip_and_errors() {
        let a = Artifact {
            nonce: 1,
            vector: vec![0x3C00, 0xBC00, 0x0001],
        };
        assert_eq!(a.bytes(), [0x00, 0x3C, 0x00, 0xBC, 0x01, 0x00]);
        assert_eq!(a.vector_b64(), "ADwAvAEA");
        assert_eq!(decode_vector_b64("ADwAvAEA").unwrap(), a.vector);
        assert!(matches!(
            decode_vector_b64("ADw"),
            Err(DecodeError::Base64(_))
        ));
        assert_eq!(decode_vector_b64("AAAA"), Err(DecodeError::OddLength(3)));
    }

    #[test]
    fn artifact_is_a_unit_f16_vector_and_nan_is_dropped() {
        let config = Preset::find("tiny").unwrap().config();
        let round = Round::new(RoundParams::new("b", "p", 4), &config).unwrap();
        let hidden: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin()).collect();
        let art = artifact_from_hidden(&round, 5, &hidden).unwrap();
        assert_eq!(art.vector.len(), 12);
        let norm: f32 = art.values().iter().map(|v| v * v).sum();
        assert!((norm - 1.0).abs() < 2e-3, "{norm}");
        let mut bad = hidden.clone();
        bad[3] = f32::NAN;
        assert!(artifact_from_hidden(&round, 5, &bad).is_none());
        assert!(Round::new(
            RoundParams {
                k_dim: 65,
                ..RoundParams::new("b", "p", 4)
            },
            &config
        )
        .is_err());
    }
}
