//! Model sources: where the weights of the forward come from.
//!
//! Tensors are named and shaped as in the Hugging Face Llama layout (`model.layers.{i}.…`);
//! matrices are `[out, in]` row-major (`torch.nn.Linear.weight`). A source hands out each tensor
//! already rounded to the model dtype, one at a time, so the engine can upload a tensor to its
//! device and drop it before asking for the next (peak memory: the device copy plus one tensor).
//!
//! - [`SyntheticModel`]: no weight file; `W = 0.02 · normal(seed32("{block_hash}_{name}"), numel)`
//!   (`f32` product, rounded to the dtype), norm weights 1.
//! - [`super::safetensors::SafetensorsModel`]: a Hugging Face checkpoint directory.

use super::config::{ModelConfig, Preset};
use super::rng::{normal_into_parallel, seed32};
use super::ModelError;

/// What a tensor is, which decides how a synthetic model fills it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorKind {
    /// A projection matrix `[out, in]`.
    Matrix,
    /// A bias vector.
    Bias,
    /// An RMSNorm weight vector.
    Norm,
}

/// One tensor the forward needs: its HF name, shape and kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    /// Hugging Face name, e.g. `model.layers.0.self_attn.q_proj.weight`.
    pub name: String,
    /// Shape, outermost first (`[out, in]` for matrices).
    pub shape: Vec<usize>,
    /// Kind.
    pub kind: TensorKind,
}

impl TensorSpec {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// The names of one layer's tensors (present or not, depending on the variant).
#[derive(Clone, Debug)]
pub struct LayerNames {
    /// RMSNorm before attention.
    pub input_norm: TensorSpec,
    /// q, k, v projections and their optional biases.
    pub q: TensorSpec,
    /// Key projection.
    pub k: TensorSpec,
    /// Value projection.
    pub v: TensorSpec,
    /// Biases of q, k, v (when the config has them).
    pub qkv_bias: Option<[TensorSpec; 3]>,
    /// Output projection.
    pub o: TensorSpec,
    /// Its bias.
    pub o_bias: Option<TensorSpec>,
    /// Per-head q and k norms (Qwen3).
    pub qk_norm: Option<[TensorSpec; 2]>,
    /// RMSNorm before the MLP.
    pub post_norm: TensorSpec,
    /// MLP gate, up and down projections.
    pub gate: TensorSpec,
    /// MLP up projection.
    pub up: TensorSpec,
    /// MLP down projection.
    pub down: TensorSpec,
    /// MLP biases (gate, up, down).
    pub mlp_bias: Option<[TensorSpec; 3]>,
}

fn spec(name: String, shape: &[usize], kind: TensorKind) -> TensorSpec {
    TensorSpec {
        name,
        shape: shape.to_vec(),
        kind,
    }
}

impl ModelConfig {
    /// The tensor names and shapes of layer `i`.
    pub fn layer_names(&self, i: usize) -> LayerNames {
        let p = format!("model.layers.{i}.");
        let (d, q, kv, f, hd) = (
            self.hidden_size,
            self.q_dim(),
            self.kv_dim(),
            self.intermediate_size,
            self.head_dim,
        );
        let m =
            |n: &str, shape: &[usize]| spec(format!("{p}{n}.weight"), shape, TensorKind::Matrix);
        let b = |n: &str, len: usize| spec(format!("{p}{n}.bias"), &[len], TensorKind::Bias);
        let norm = |n: &str, len: usize| spec(format!("{p}{n}.weight"), &[len], TensorKind::Norm);
        LayerNames {
            input_norm: norm("input_layernorm", d),
            q: m("self_attn.q_proj", &[q, d]),
            k: m("self_attn.k_proj", &[kv, d]),
            v: m("self_attn.v_proj", &[kv, d]),
            qkv_bias: self.qkv_bias.then(|| {
                [
                    b("self_attn.q_proj", q),
                    b("self_attn.k_proj", kv),
                    b("self_attn.v_proj", kv),
                ]
            }),
            o: m("self_attn.o_proj", &[d, q]),
            o_bias: self.o_bias.then(|| b("self_attn.o_proj", d)),
            qk_norm: self
                .qk_norm
                .then(|| [norm("self_attn.q_norm", hd), norm("self_attn.k_norm", hd)]),
            post_norm: norm("post_attention_layernorm", d),
            gate: m("mlp.gate_proj", &[f, d]),
            up: m("mlp.up_proj", &[f, d]),
            down: m("mlp.down_proj", &[d, f]),
            mlp_bias: self.mlp_bias.then(|| {
                [
                    b("mlp.gate_proj", f),
                    b("mlp.up_proj", f),
                    b("mlp.down_proj", d),
                ]
            }),
        }
    }

    /// The final RMSNorm's tensor.
    pub fn final_norm_name(&self) -> TensorSpec {
        spec(
            "model.norm.weight".into(),
            &[self.hidden_size],
            TensorKind::Norm,
        )
    }

    /// Every tensor the forward reads, in load order.
    pub fn tensor_specs(&self) -> Vec<TensorSpec> {
        let mut out = Vec::new();
        for i in 0..self.num_layers {
            let l = self.layer_names(i);
            out.push(l.input_norm);
            out.extend([l.q, l.k, l.v]);
            out.extend(l.qkv_bias.into_iter().flatten());
            out.push(l.o);
            out.extend(l.o_bias);
            out.extend(l.qk_norm.into_iter().flatten());
            out.push(l.post_norm);
            out.extend([l.gate, l.up, l.down]);
            out.extend(l.mlp_bias.into_iter().flatten());
        }
        out.push(self.final_norm_name());
        out
    }
}

/// A place weights come from.
pub trait ModelSource {
    /// The model's shape and dtype.
    fn config(&self) -> &ModelConfig;
    /// A one-line description for logs and reports (`synthetic:small@<block hash>`, a path…).
    fn describe(&self) -> String;
    /// The tensor's values rounded to the model dtype, as raw bits, row-major in HF layout.
    fn tensor(&self, spec: &TensorSpec) -> Result<Vec<u16>, ModelError>;
}

/// The standard deviation of synthetic weights.
pub const SYNTHETIC_STD: f32 = 0.02;

/// A synthetic Llama model whose weights are a pure function of the block hash.
#[derive(Clone, Debug)]
pub struct SyntheticModel {
    preset: Preset,
    config: ModelConfig,
    block_hash: String,
    threads: usize,
}

impl SyntheticModel {
    /// The synthetic model `preset` for `block_hash`, generating with `threads` threads (the
    /// values do not depend on it).
    pub fn new(preset: Preset, block_hash: &str, threads: usize) -> Self {
        SyntheticModel {
            preset,
            config: preset.config(),
            block_hash: block_hash.to_owned(),
            threads: threads.max(1),
        }
    }

    /// The same model with another dtype (weights and activations).
    pub fn with_dtype(mut self, dtype: super::config::Dtype) -> Self {
        self.config.dtype = dtype;
        self
    }

    /// The preset.
    pub fn preset(&self) -> Preset {
        self.preset
    }

    /// The seed string of one tensor: `"{block_hash}_{tensor_name}"`.
    pub fn seed_string(&self, tensor_name: &str) -> String {
        format!("{}_{}", self.block_hash, tensor_name)
    }
}

impl ModelSource for SyntheticModel {
    fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn describe(&self) -> String {
        format!(
            "synthetic:{} (block hash {})",
            self.preset.name, self.block_hash
        )
    }

    fn tensor(&self, spec: &TensorSpec) -> Result<Vec<u16>, ModelError> {
        let dtype = self.config.dtype;
        let n = spec.numel();
        match spec.kind {
            TensorKind::Norm => Ok(vec![dtype.round(1.0); n]),
            TensorKind::Bias => Ok(vec![dtype.round(0.0); n]),
            TensorKind::Matrix => {
                let mut values = vec![0f32; n];
                normal_into_parallel(
                    seed32(&self.seed_string(&spec.name)),
                    &mut values,
                    self.threads,
                );
                let mut bits = vec![0u16; n];
                let chunk = n.div_ceil(self.threads).max(1 << 16);
                std::thread::scope(|scope| {
                    for (src, dst) in values.chunks(chunk).zip(bits.chunks_mut(chunk)) {
                        scope.spawn(move || {
                            for (d, &z) in dst.iter_mut().zip(src) {
                                *d = dtype.round(SYNTHETIC_STD * z);
                            }
                        });
                    }
                });
                Ok(bits)
            }
        }
    }
}

/// Parses a model argument: `synthetic:<preset>` or a checkpoint directory path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSpec {
    /// `synthetic:<preset>`.
    Synthetic(Preset),
    /// A Hugging Face checkpoint directory.
    Checkpoint(std::path::PathBuf),
}

impl ModelSpec {
    /// Parses `synthetic:<preset>` or a directory path.
    pub fn parse(s: &str) -> Result<Self, ModelError> {
        match s.strip_prefix("synthetic:") {
            Some(name) => Ok(ModelSpec::Synthetic(Preset::find(name)?)),
            None => Ok(ModelSpec::Checkpoint(s.into())),
        }
    }

    /// Opens the source for `block_hash` (synthetic weights depend on it).
    pub fn open(
        &self,
        block_hash: &str,
        dtype_override: Option<super::config::Dtype>,
        threads: usize,
    ) -> Result<Box<dyn ModelSource + Send + Sync>, ModelError> {
        match self {
            ModelSpec::Synthetic(preset) => {
                let mut model = SyntheticModel::new(*preset, block_hash, threads);
                if let Some(dtype) = dtype_override {
                    model.config.dtype = dtype;
                }
                Ok(Box::new(model))
            }
            ModelSpec::Checkpoint(dir) => Ok(Box::new(super::safetensors::SafetensorsModel::open(
                dir,
                dtype_override,
            )?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poc::rng::normal;

    #[test]
    fn synthetic_weights_follow_the_recipe() {
        let model = SyntheticModel::new(Preset::find("tiny").unwrap(), "abc", 3);
        let specs = model.config().tensor_specs();
        assert_eq!(specs.len(), 2 * 9 + 1);
        let q = &specs[1];
        assert_eq!(q.name, "model.layers.0.self_attn.q_proj.weight");
        let bits = model.tensor(q).unwrap();
        let z = normal(
            seed32("abc_model.layers.0.self_attn.q_proj.weight"),
            64 * 64,
        );
        for (b, z) in bits.iter().zip(&z) {
            assert_eq!(*b, crate::numerics::float::f32_to_bf16_rne(0.02 * z));
        }
        let norm = model.tensor(&specs[0]).unwrap();
        assert!(norm.iter().all(|&b| b == 0x3F80));
        let single = SyntheticModel::new(Preset::find("tiny").unwrap(), "abc", 1);
        assert_eq!(single.tensor(q).unwrap(), bits);
    }

    #[test]
    fn model_spec_parses() {
        assert!(
            matches!(ModelSpec::parse("synthetic:small"), Ok(ModelSpec::Synthetic(p)) if p.d == 256)
        );
        assert!(ModelSpec::parse("synthetic:nope").is_err());
        assert!(matches!(
            ModelSpec::parse("/tmp/x"),
            Ok(ModelSpec::Checkpoint(_))
        ));
    }
}
