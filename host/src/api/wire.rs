//! The JSON bodies of the ML-node PoC API and of its callbacks, field for field as the network
//! defines them (`shared/network-poc.md`). Defaults are the network's; `params` rejects unknown
//! fields, the other objects ignore them (as the network's own node does).

use serde::{Deserialize, Serialize};

/// The network's default `k_dim` (coordinates kept per artifact).
pub const DEFAULT_K_DIM: u64 = 12;
/// The network's default forward batch size.
pub const DEFAULT_BATCH_SIZE: u64 = 32;

/// The model parameters a request is computed with; must match what the node serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The served model's name (`synthetic:tiny`, a checkpoint's name, …).
    pub model: String,
    /// Sequence length S of the random input embeddings.
    pub seq_len: u64,
    /// Coordinates kept per artifact.
    #[serde(default = "default_k_dim")]
    pub k_dim: u64,
}

fn default_k_dim() -> u64 {
    DEFAULT_K_DIM
}
fn default_batch_size() -> u64 {
    DEFAULT_BATCH_SIZE
}
fn default_n_groups() -> u64 {
    1
}

/// `POST /api/v1/pow/init/generate`: start generating this node's nonce sequence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitGenerateRequest {
    /// The epoch's block hash (seeds inputs, and the weights of synthetic models).
    pub block_hash: String,
    /// The epoch's block height (echoed in callbacks).
    pub block_height: u64,
    /// The participant's public key (seeds inputs).
    pub public_key: String,
    /// This ML node's index among the participant's nodes.
    pub node_id: u64,
    /// How many ML nodes the participant runs.
    pub node_count: u64,
    /// This node's group.
    #[serde(default)]
    pub group_id: u64,
    /// How many groups there are.
    #[serde(default = "default_n_groups")]
    pub n_groups: u64,
    /// Nonces per forward batch.
    #[serde(default = "default_batch_size")]
    pub batch_size: u64,
    /// Model parameters.
    pub params: Params,
    /// Callback base URL (artifacts go to `{url}/generated`).
    #[serde(default)]
    pub url: Option<String>,
}

/// One artifact: the nonce and its encoded vector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireArtifact {
    /// The nonce.
    pub nonce: u64,
    /// `k_dim` little-endian f16 values, standard base64 with padding.
    pub vector_b64: String,
}

/// The artifacts a validator received and wants recomputed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validation {
    /// Received artifacts, one per nonce of the request.
    pub artifacts: Vec<WireArtifact>,
}

/// Parameters of the mismatch threshold and the binomial fraud test.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatTest {
    /// Largest L2 distance between computed and received vectors that is still a match.
    #[serde(default = "default_dist_threshold")]
    pub dist_threshold: f64,
    /// Expected mismatch probability of an honest node.
    #[serde(default = "default_p_mismatch")]
    pub p_mismatch: f64,
    /// p-value below which fraud is declared.
    #[serde(default = "default_fraud_threshold")]
    pub fraud_threshold: f64,
}

fn default_dist_threshold() -> f64 {
    0.02
}
fn default_p_mismatch() -> f64 {
    0.001
}
fn default_fraud_threshold() -> f64 {
    0.01
}

impl Default for StatTest {
    fn default() -> Self {
        StatTest {
            dist_threshold: default_dist_threshold(),
            p_mismatch: default_p_mismatch(),
            fraud_threshold: default_fraud_threshold(),
        }
    }
}

/// `POST /api/v1/pow/generate`: compute (and optionally validate) an explicit list of nonces.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerateRequest {
    /// Block hash the nonces belong to.
    pub block_hash: String,
    /// Block height (echoed in callbacks).
    pub block_height: u64,
    /// Public key of the participant whose nonces these are.
    pub public_key: String,
    /// Node index (echoed in callbacks).
    pub node_id: u64,
    /// Node count (echoed; kept for symmetry with init).
    pub node_count: u64,
    /// The nonces to compute.
    pub nonces: Vec<u64>,
    /// Model parameters.
    pub params: Params,
    /// Nonces per forward batch.
    #[serde(default = "default_batch_size")]
    pub batch_size: u64,
    /// Answer only when the work is done (instead of queueing it).
    #[serde(default)]
    pub wait: bool,
    /// Callback base URL for a queued job's result.
    #[serde(default)]
    pub url: Option<String>,
    /// Received artifacts to validate against the recomputation.
    #[serde(default)]
    pub validation: Option<Validation>,
    /// Parameters of the fraud test (defaults when absent).
    #[serde(default)]
    pub stat_test: Option<StatTest>,
}

/// The artifact encoding every artifact list carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encoding {
    /// Always `"f16"`.
    pub dtype: EncodingDtype,
    /// Values per vector.
    pub k_dim: u64,
    /// Always `"le"`.
    pub endian: EncodingEndian,
}

/// The only artifact element type: IEEE binary16.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EncodingDtype {
    /// binary16.
    #[serde(rename = "f16")]
    F16,
}

/// The only artifact byte order: little-endian.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EncodingEndian {
    /// Little-endian.
    #[serde(rename = "le")]
    Le,
}

impl Encoding {
    /// The encoding of `k_dim`-value artifacts.
    pub fn f16(k_dim: u64) -> Self {
        Encoding {
            dtype: EncodingDtype::F16,
            k_dim,
            endian: EncodingEndian::Le,
        }
    }
}

/// The outcome of validating received artifacts (the `/generate` answer and `{url}/validated`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValidationOutcome {
    /// Nonces validated.
    pub n_total: u64,
    /// Nonces whose received vector did not match the recomputation.
    pub n_mismatch: u64,
    /// Those nonces.
    pub mismatch_nonces: Vec<u64>,
    /// `P(X ≥ n_mismatch)` for `X ~ Binomial(n_total, p_mismatch)`.
    pub p_value: f64,
    /// `p_value < fraud_threshold`.
    pub fraud_detected: bool,
}

/// Body of `POST {url}/generated`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratedCallback {
    /// Public key the artifacts were computed for.
    pub public_key: String,
    /// Block hash.
    pub block_hash: String,
    /// Block height.
    pub block_height: u64,
    /// Node index.
    pub node_id: u64,
    /// The artifacts.
    pub artifacts: Vec<WireArtifact>,
    /// Their encoding.
    pub encoding: Encoding,
    /// Set for the result of a queued `/generate` job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Body of `POST {url}/validated`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValidatedCallback {
    /// The `/generate` job this result answers.
    pub request_id: String,
    /// Block hash.
    pub block_hash: String,
    /// Block height.
    pub block_height: u64,
    /// Public key of the validated participant.
    pub public_key: String,
    /// Node index.
    pub node_id: u64,
    /// The outcome.
    #[serde(flatten)]
    pub outcome: ValidationOutcome,
}

/// The epoch configuration `/status` reports while generating.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusConfig {
    /// Block hash.
    pub block_hash: String,
    /// Block height.
    pub block_height: u64,
    /// Public key.
    pub public_key: String,
    /// Node index.
    pub node_id: u64,
    /// Node count.
    pub node_count: u64,
    /// Group index.
    pub group_id: u64,
    /// Group count.
    pub n_groups: u64,
    /// Sequence length.
    pub seq_len: u64,
    /// Coordinates per artifact.
    pub k_dim: u64,
}

/// Generation statistics `/status` reports while generating.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusStats {
    /// Artifacts computed (and committed) since generation started.
    pub total_processed: u64,
    /// Recent rate.
    pub nonces_per_second: f64,
}

/// Body of `GET /status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusResponse {
    /// `"IDLE"` or `"GENERATING"`.
    pub status: String,
    /// The epoch configuration, or `null` when idle.
    pub config: Option<StatusConfig>,
    /// Statistics, or `null` when idle.
    pub stats: Option<StatusStats>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_networks() {
        let req: InitGenerateRequest = serde_json::from_str(
            r#"{"block_hash":"h","block_height":1,"public_key":"p","node_id":0,"node_count":1,
                "params":{"model":"m","seq_len":4}}"#,
        )
        .unwrap();
        assert_eq!(
            (req.group_id, req.n_groups, req.batch_size, req.params.k_dim),
            (0, 1, 32, 12)
        );
        assert_eq!(req.url, None);
    }

    #[test]
    fn params_reject_unknown_fields() {
        let err = serde_json::from_str::<Params>(r#"{"model":"m","seq_len":4,"extra":1}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `extra`"), "{err}");
    }

    #[test]
    fn callbacks_serialise_field_for_field() {
        let cb = ValidatedCallback {
            request_id: "r".into(),
            block_hash: "h".into(),
            block_height: 7,
            public_key: "p".into(),
            node_id: 1,
            outcome: ValidationOutcome {
                n_total: 10,
                n_mismatch: 1,
                mismatch_nonces: vec![3],
                p_value: 0.5,
                fraud_detected: false,
            },
        };
        let value = serde_json::to_value(&cb).unwrap();
        let mut keys: Vec<_> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "block_hash",
                "block_height",
                "fraud_detected",
                "mismatch_nonces",
                "n_mismatch",
                "n_total",
                "node_id",
                "p_value",
                "public_key",
                "request_id"
            ]
        );
        let gen = GeneratedCallback {
            public_key: "p".into(),
            block_hash: "h".into(),
            block_height: 7,
            node_id: 0,
            artifacts: vec![],
            encoding: Encoding::f16(12),
            request_id: None,
        };
        let value = serde_json::to_value(&gen).unwrap();
        assert!(value.get("request_id").is_none());
        assert_eq!(
            value["encoding"],
            serde_json::json!({"dtype":"f16","k_dim":12,"endian":"le"})
        );
    }
}
