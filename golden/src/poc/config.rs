//! The shape of a transformer the PoC runs: hidden size, layers, heads, MLP width, RoPE, variant
//! flags, and the activation/weight dtype. Built from a synthetic preset or a Hugging Face
//! `config.json`.

use serde_json::Value;

use crate::numerics::{float, Precision};

use super::ModelError;

/// The model families whose Hugging Face layout we load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Architecture {
    /// `LlamaForCausalLM` (optional `attention_bias`, `mlp_bias`).
    Llama,
    /// `Qwen2ForCausalLM`: Llama plus biases on the q/k/v projections.
    Qwen2,
    /// `Qwen3ForCausalLM`: Llama plus per-head RMSNorm of q and k before RoPE.
    Qwen3,
}

impl Architecture {
    /// The `model_type` string of the Hugging Face config.
    pub const fn model_type(self) -> &'static str {
        match self {
            Architecture::Llama => "llama",
            Architecture::Qwen2 => "qwen2",
            Architecture::Qwen3 => "qwen3",
        }
    }
}

/// The dtype of weights and activations: the operand precision of every GEMM of the forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// bfloat16.
    Bf16,
    /// IEEE binary16.
    F16,
}

impl Dtype {
    /// The GEMM precision with this operand format.
    pub const fn precision(self) -> Precision {
        match self {
            Dtype::Bf16 => Precision::Bf16,
            Dtype::F16 => Precision::Fp16,
        }
    }

    /// The name used on the command line and in manifests.
    pub const fn name(self) -> &'static str {
        match self {
            Dtype::Bf16 => "bf16",
            Dtype::F16 => "f16",
        }
    }

    /// Rounds an `f32` to this dtype (round to nearest even, the contract's output conversion).
    #[inline]
    pub fn round(self, x: f32) -> u16 {
        match self {
            Dtype::Bf16 => float::f32_to_bf16_rne(x),
            Dtype::F16 => float::f32_to_fp16_rne(x),
        }
    }

    /// The exact `f32` value of raw bits of this dtype.
    #[inline]
    pub fn decode(self, bits: u16) -> f32 {
        match self {
            Dtype::Bf16 => f32::from_bits(u32::from(bits) << 16),
            Dtype::F16 => float::fp16_to_f32(bits),
        }
    }

    /// Rounds a slice of `f32` into raw bits.
    pub fn round_slice(self, x: &[f32], out: &mut [u16]) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = self.round(v);
        }
    }

    /// Decodes a slice of raw bits into `f32`.
    pub fn decode_slice(self, bits: &[u16], out: &mut [f32]) {
        for (o, &b) in out.iter_mut().zip(bits) {
            *o = self.decode(b);
        }
    }
}

/// How RoPE frequencies are modified for long contexts (`rope_scaling` in the HF config).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE.
    None,
    /// `rope_type: "linear"`: every inverse frequency divided by `factor`.
    Linear {
        /// Position interpolation factor.
        factor: f64,
    },
    /// `rope_type: "llama3"`: Llama 3.1's wavelength-dependent scaling.
    Llama3 {
        /// Scaling of low frequencies.
        factor: f64,
        /// Wavelength boundary factor for low frequencies.
        low_freq_factor: f64,
        /// Wavelength boundary factor for high frequencies.
        high_freq_factor: f64,
        /// Context length the base model was trained with.
        original_max_position_embeddings: f64,
    },
}

/// Everything the forward needs to know about a model's shape.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// The family (tensor names and variant features follow from it).
    pub architecture: Architecture,
    /// Hidden size `d`.
    pub hidden_size: usize,
    /// Number of decoder layers `L`.
    pub num_layers: usize,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads (grouped-query attention when fewer than `num_heads`).
    pub num_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// RMSNorm epsilon (as `f32`, the precision the norm runs in).
    pub rms_norm_eps: f32,
    /// RoPE base.
    pub rope_theta: f64,
    /// RoPE frequency scaling.
    pub rope_scaling: RopeScaling,
    /// Biases on the q, k and v projections.
    pub qkv_bias: bool,
    /// Bias on the output projection.
    pub o_bias: bool,
    /// Biases on the MLP projections.
    pub mlp_bias: bool,
    /// Per-head RMSNorm of q and k (Qwen3).
    pub qk_norm: bool,
    /// Weight and activation dtype.
    pub dtype: Dtype,
}

/// A named synthetic model shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preset {
    /// Name after `synthetic:`.
    pub name: &'static str,
    /// Hidden size.
    pub d: usize,
    /// Layers.
    pub layers: usize,
    /// Heads (query and key/value).
    pub heads: usize,
    /// MLP width.
    pub ffn: usize,
    /// The sequence length the preset is meant to run with.
    pub seq_len: usize,
}

/// The synthetic presets: `tiny` and `small` for tests, `launch` the size of the network's
/// launch model.
pub const PRESETS: [Preset; 3] = [
    Preset {
        name: "tiny",
        d: 64,
        layers: 2,
        heads: 4,
        ffn: 192,
        seq_len: 16,
    },
    Preset {
        name: "small",
        d: 256,
        layers: 4,
        heads: 8,
        ffn: 768,
        seq_len: 32,
    },
    Preset {
        name: "launch",
        d: 2048,
        layers: 16,
        heads: 16,
        ffn: 7168,
        seq_len: 16,
    },
];

impl Preset {
    /// Looks a preset up by name.
    pub fn find(name: &str) -> Result<Preset, ModelError> {
        PRESETS
            .into_iter()
            .find(|p| p.name == name)
            .ok_or_else(|| ModelError::UnknownPreset {
                name: name.to_owned(),
                choices: PRESETS.map(|p| p.name).join(", "),
            })
    }

    /// The Llama configuration of this preset (bf16, RMSNorm ε = 1e-5, RoPE θ = 10000).
    pub fn config(&self) -> ModelConfig {
        ModelConfig {
            architecture: Architecture::Llama,
            hidden_size: self.d,
            num_layers: self.layers,
            num_heads: self.heads,
            num_kv_heads: self.heads,
            head_dim: self.d / self.heads,
            intermediate_size: self.ffn,
            rms_norm_eps: 1e-5,
            rope_theta: 10_000.0,
            rope_scaling: RopeScaling::None,
            qkv_bias: false,
            o_bias: false,
            mlp_bias: false,
            qk_norm: false,
            dtype: Dtype::Bf16,
        }
    }
}

impl ModelConfig {
    /// Width of the query projection (`num_heads · head_dim`).
    pub fn q_dim(&self) -> usize {
        self.num_heads * self.head_dim
    }

    /// Width of each of the key and value projections (`num_kv_heads · head_dim`).
    pub fn kv_dim(&self) -> usize {
        self.num_kv_heads * self.head_dim
    }

    /// Checks the shape is one the forward can run.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |reason: String| Err(ModelError::Config { reason });
        if self.hidden_size == 0 || self.num_layers == 0 || self.intermediate_size == 0 {
            return bad(
                "hidden_size, num_hidden_layers and intermediate_size must be positive".into(),
            );
        }
        if self.num_heads == 0
            || self.num_kv_heads == 0
            || !self.num_heads.is_multiple_of(self.num_kv_heads)
        {
            return bad(format!(
                "num_attention_heads ({}) must be a positive multiple of num_key_value_heads ({})",
                self.num_heads, self.num_kv_heads
            ));
        }
        if self.head_dim == 0 || !self.head_dim.is_multiple_of(2) {
            return bad(format!(
                "head_dim ({}) must be positive and even for RoPE",
                self.head_dim
            ));
        }
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps >= 0.0) {
            return bad(format!(
                "rms_norm_eps ({}) must be finite and non-negative",
                self.rms_norm_eps
            ));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 1.0) {
            return bad(format!(
                "rope_theta ({}) must be a finite number above 1",
                self.rope_theta
            ));
        }
        Ok(())
    }

    /// Reads a Hugging Face `config.json` (Llama, Qwen2, Qwen3). `dtype_override` replaces the
    /// config's `torch_dtype`; an `f32` checkpoint without an override runs in bf16.
    pub fn from_hf_json(text: &str, dtype_override: Option<Dtype>) -> Result<Self, ModelError> {
        let json: Value = serde_json::from_str(text).map_err(|e| ModelError::Config {
            reason: format!("config.json is not valid JSON: {e}"),
        })?;
        let obj = json.as_object().ok_or_else(|| ModelError::Config {
            reason: "config.json must be a JSON object".into(),
        })?;
        let model_type = obj
            .get("model_type")
            .and_then(Value::as_str)
            .ok_or_else(|| ModelError::Config {
                reason: "config.json has no string field \"model_type\" (expected llama, qwen2 or qwen3)".into(),
            })?;
        let architecture = match model_type {
            "llama" => Architecture::Llama,
            "qwen2" => Architecture::Qwen2,
            "qwen3" => Architecture::Qwen3,
            other => {
                return Err(ModelError::Config {
                    reason: format!(
                        "model_type \"{other}\" is not supported: expected llama, qwen2 or qwen3"
                    ),
                })
            }
        };
        let int = |key: &str| -> Result<usize, ModelError> {
            obj.get(key)
                .and_then(Value::as_u64)
                .map(|v| v as usize)
                .ok_or_else(|| ModelError::Config {
                    reason: format!("config.json needs a non-negative integer \"{key}\""),
                })
        };
        let opt_int = |key: &str| -> Result<Option<usize>, ModelError> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(_) => int(key).map(Some),
            }
        };
        let float_or = |key: &str, default: f64| -> Result<f64, ModelError> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => v.as_f64().ok_or_else(|| ModelError::Config {
                    reason: format!("config.json field \"{key}\" must be a number"),
                }),
            }
        };
        let bool_or = |key: &str, default: bool| -> Result<bool, ModelError> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => v.as_bool().ok_or_else(|| ModelError::Config {
                    reason: format!("config.json field \"{key}\" must be true or false"),
                }),
            }
        };
        let hidden_size = int("hidden_size")?;
        let num_heads = int("num_attention_heads")?;
        let num_kv_heads = opt_int("num_key_value_heads")?.unwrap_or(num_heads);
        let head_dim =
            opt_int("head_dim")?.unwrap_or(hidden_size.checked_div(num_heads).unwrap_or(0));
        let dtype = match dtype_override {
            Some(d) => d,
            None => match obj.get("torch_dtype").or_else(|| obj.get("dtype")).and_then(Value::as_str) {
                Some("bfloat16") | None => Dtype::Bf16,
                Some("float16") => Dtype::F16,
                Some("float32") => Dtype::Bf16,
                Some(other) => {
                    return Err(ModelError::Config {
                        reason: format!("torch_dtype \"{other}\" is not supported: expected bfloat16, float16 or float32"),
                    })
                }
            },
        };
        let attention_bias = bool_or("attention_bias", false)?;
        let config = ModelConfig {
            architecture,
            hidden_size,
            num_layers: int("num_hidden_layers")?,
            num_heads,
            num_kv_heads,
            head_dim,
            intermediate_size: int("intermediate_size")?,
            rms_norm_eps: float_or("rms_norm_eps", 1e-6)? as f32,
            rope_theta: float_or("rope_theta", 10_000.0)?,
            rope_scaling: parse_rope_scaling(obj.get("rope_scaling"))?,
            qkv_bias: architecture == Architecture::Qwen2 || attention_bias,
            o_bias: architecture != Architecture::Qwen2 && attention_bias,
            mlp_bias: architecture == Architecture::Llama && bool_or("mlp_bias", false)?,
            qk_norm: architecture == Architecture::Qwen3,
            dtype,
        };
        config.validate()?;
        Ok(config)
    }

    /// The RoPE inverse frequencies `1 / θ^(2i/head_dim)` for `i < head_dim/2`, after scaling,
    /// computed in `f64` with the deterministic [`super::math`] functions and rounded to `f32`.
    pub fn rope_inv_freq(&self) -> Vec<f32> {
        let half = self.head_dim / 2;
        let ln_theta = super::math::ln(self.rope_theta);
        (0..half)
            .map(|i| {
                let exponent = (2 * i) as f64 / self.head_dim as f64;
                let inv = super::math::exp(-exponent * ln_theta);
                let scaled = match self.rope_scaling {
                    RopeScaling::None => inv,
                    RopeScaling::Linear { factor } => inv / factor,
                    RopeScaling::Llama3 {
                        factor,
                        low_freq_factor,
                        high_freq_factor,
                        original_max_position_embeddings: original,
                    } => {
                        let low_freq_wavelen = original / low_freq_factor;
                        let high_freq_wavelen = original / high_freq_factor;
                        let wavelen = 2.0 * std::f64::consts::PI / inv;
                        if wavelen < high_freq_wavelen {
                            inv
                        } else if wavelen > low_freq_wavelen {
                            inv / factor
                        } else {
                            let smooth = (original / wavelen - low_freq_factor)
                                / (high_freq_factor - low_freq_factor);
                            (1.0 - smooth) * inv / factor + smooth * inv
                        }
                    }
                };
                scaled as f32
            })
            .collect()
    }
}

fn parse_rope_scaling(value: Option<&Value>) -> Result<RopeScaling, ModelError> {
    let Some(Value::Object(obj)) = value else {
        return match value {
            None | Some(Value::Null) => Ok(RopeScaling::None),
            Some(_) => Err(ModelError::Config {
                reason: "rope_scaling must be null or an object".into(),
            }),
        };
    };
    let kind = obj
        .get("rope_type")
        .or_else(|| obj.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let num = |key: &str| -> Result<f64, ModelError> {
        obj.get(key)
            .and_then(Value::as_f64)
            .filter(|v| v.is_finite() && *v > 0.0)
            .ok_or_else(|| ModelError::Config {
                reason: format!("rope_scaling of type {kind} needs a positive number \"{key}\""),
            })
    };
    match kind {
        "default" => Ok(RopeScaling::None),
        "linear" => Ok(RopeScaling::Linear {
            factor: num("factor")?,
        }),
        "llama3" => {
            let scaling = RopeScaling::Llama3 {
                factor: num("factor")?,
                low_freq_factor: num("low_freq_factor")?,
                high_freq_factor: num("high_freq_factor")?,
                original_max_position_embeddings: num("original_max_position_embeddings")?,
            };
            if let RopeScaling::Llama3 {
                low_freq_factor,
                high_freq_factor,
                ..
            } = scaling
            {
                if high_freq_factor <= low_freq_factor {
                    return Err(ModelError::Config {
                        reason: "rope_scaling llama3 needs high_freq_factor > low_freq_factor".into(),
                    });
                }
            }
            Ok(scaling)
        }
        other => Err(ModelError::Config {
            reason: format!(
                "rope_scaling type \"{other}\" is not supported: expected default, linear or llama3 \
                 (others change results with the sequence length the PoC never reaches)"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid() {
        for p in PRESETS {
            p.config().validate().unwrap();
        }
        assert!(Preset::find("huge")
            .unwrap_err()
            .to_string()
            .contains("tiny, small, launch"));
    }

    #[test]
    fn hf_configs_parse_with_variants() {
        let qwen3 = r#"{"model_type":"qwen3","hidden_size":64,"num_hidden_layers":2,
            "num_attention_heads":4,"num_key_value_heads":2,"head_dim":32,"intermediate_size":96,
            "rms_norm_eps":1e-6,"rope_theta":1000000.0,"torch_dtype":"float16"}"#;
        let c = ModelConfig::from_hf_json(qwen3, None).unwrap();
        assert!(c.qk_norm && !c.qkv_bias && c.head_dim == 32 && c.dtype == Dtype::F16);
        let qwen2 = qwen3.replace("qwen3", "qwen2");
        let c = ModelConfig::from_hf_json(&qwen2, Some(Dtype::Bf16)).unwrap();
        assert!(c.qkv_bias && !c.o_bias && !c.qk_norm && c.dtype == Dtype::Bf16);
        let err = ModelConfig::from_hf_json(&qwen3.replace("qwen3", "gpt2"), None).unwrap_err();
        assert!(err.to_string().contains("gpt2"), "{err}");
        let err = ModelConfig::from_hf_json("{not json", None).unwrap_err();
        assert!(err.to_string().contains("not valid JSON"), "{err}");
        let err =
            ModelConfig::from_hf_json(&qwen3.replace("\"hidden_size\":64,", ""), None).unwrap_err();
        assert!(err.to_string().contains("hidden_size"), "{err}");
    }

    #[test]
    fn rope_frequencies_follow_the_formula() {
        let c = Preset::find("small").unwrap().config();
        let f = c.rope_inv_freq();
        assert_eq!(f.len(), 16);
        assert_eq!(f[0], 1.0);
        for (i, &v) in f.iter().enumerate() {
            let expect = 10_000f64.powf(-(2.0 * i as f64) / 32.0);
            assert!((f64::from(v) - expect).abs() <= expect * 1e-7);
        }
    }
}
