//! Hugging Face checkpoints: `config.json` plus one or more `*.safetensors` files, memory-mapped.
//!
//! A safetensors file is an 8-byte little-endian header length `N`, `N` bytes of JSON mapping each
//! tensor name to `{"dtype", "shape", "data_offsets": [begin, end]}` (offsets relative to the byte
//! buffer after the header), then that buffer. We parse and check the header ourselves so every
//! defect (truncation, overlapping or out-of-range offsets, a shape that does not match its byte
//! count, a dtype we cannot read) is reported with the file and tensor name; then every tensor the
//! config implies is checked for presence, shape and dtype before any weight is used.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use serde_json::Value;

use super::config::{Dtype, ModelConfig};
use super::model::{ModelSource, TensorSpec};
use super::ModelError;
use crate::numerics::float;

/// Element types of safetensors files that we convert from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StDtype {
    /// `BF16`.
    Bf16,
    /// `F16`.
    F16,
    /// `F32`.
    F32,
}

impl StDtype {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "BF16" => Some(StDtype::Bf16),
            "F16" => Some(StDtype::F16),
            "F32" => Some(StDtype::F32),
            _ => None,
        }
    }

    fn bytes(self) -> usize {
        match self {
            StDtype::Bf16 | StDtype::F16 => 2,
            StDtype::F32 => 4,
        }
    }
}

/// Where one tensor lives.
#[derive(Clone, Debug)]
struct Entry {
    file: usize,
    dtype: Result<StDtype, String>,
    shape: Vec<usize>,
    /// Absolute byte range inside the mapped file.
    begin: usize,
    end: usize,
}

/// One memory-mapped safetensors file.
struct MappedFile {
    map: Mmap,
}

/// A Hugging Face checkpoint directory, memory-mapped and validated against its config.
pub struct SafetensorsModel {
    dir: PathBuf,
    config: ModelConfig,
    files: Vec<MappedFile>,
    index: HashMap<String, Entry>,
}

impl std::fmt::Debug for SafetensorsModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafetensorsModel")
            .field("dir", &self.dir)
            .field("tensors", &self.index.len())
            .finish()
    }
}

fn io_error(path: &Path, source: std::io::Error) -> ModelError {
    ModelError::Io {
        path: path.to_owned(),
        source,
    }
}

impl SafetensorsModel {
    /// Opens `dir`: reads `config.json`, maps every `*.safetensors` file, parses their headers and
    /// checks that every tensor the config implies is present with the right shape and a
    /// readable dtype (BF16, F16 or F32).
    pub fn open(dir: &Path, dtype_override: Option<Dtype>) -> Result<Self, ModelError> {
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(|e| io_error(&config_path, e))?;
        let config = ModelConfig::from_hf_json(&text, dtype_override).map_err(|e| match e {
            ModelError::Config { reason } => ModelError::Config {
                reason: format!("{}: {reason}", config_path.display()),
            },
            other => other,
        })?;
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| io_error(dir, e))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
            .collect();
        paths.sort();
        if paths.is_empty() {
            return Err(ModelError::Checkpoint {
                file: dir.to_owned(),
                reason: "no *.safetensors file in the checkpoint directory".into(),
            });
        }
        let mut files = Vec::new();
        let mut index = HashMap::new();
        for path in paths {
            let file = File::open(&path).map_err(|e| io_error(&path, e))?;
            let len = file.metadata().map_err(|e| io_error(&path, e))?.len();
            if len < 8 {
                return Err(ModelError::Checkpoint {
                    file: path,
                    reason: format!("file is {len} bytes, shorter than the 8-byte header length"),
                });
            }
            // SAFETY: the map is read-only and lives as long as `self`. A checkpoint modified by
            // another process while we run could change the bytes under us; like every tool that
            // maps model files, we require checkpoints not to be rewritten while in use.
            let map = unsafe { Mmap::map(&file) }.map_err(|e| io_error(&path, e))?;
            let file_index = files.len();
            for (name, entry) in parse_header(&path, &map, file_index)? {
                if index.insert(name.clone(), entry).is_some() {
                    return Err(ModelError::Checkpoint {
                        file: path,
                        reason: format!("tensor {name} appears in more than one file"),
                    });
                }
            }
            files.push(MappedFile { map });
        }
        let model = SafetensorsModel {
            dir: dir.to_owned(),
            config,
            files,
            index,
        };
        for spec in model.config.tensor_specs() {
            model.entry(&spec)?;
        }
        Ok(model)
    }

    fn entry(&self, spec: &TensorSpec) -> Result<&Entry, ModelError> {
        let entry = self
            .index
            .get(&spec.name)
            .ok_or_else(|| ModelError::MissingTensor {
                name: spec.name.clone(),
                dir: self.dir.clone(),
            })?;
        if entry.shape != spec.shape {
            return Err(ModelError::TensorShape {
                name: spec.name.clone(),
                expected: spec.shape.clone(),
                actual: entry.shape.clone(),
            });
        }
        if let Err(dtype) = &entry.dtype {
            return Err(ModelError::TensorDtype {
                name: spec.name.clone(),
                dtype: dtype.clone(),
            });
        }
        Ok(entry)
    }
}

fn parse_header(
    path: &Path,
    bytes: &[u8],
    file: usize,
) -> Result<Vec<(String, Entry)>, ModelError> {
    let bad = |reason: String| ModelError::Checkpoint {
        file: path.to_owned(),
        reason,
    };
    let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes checked"));
    let data_start = usize::try_from(header_len)
        .ok()
        .and_then(|n| n.checked_add(8))
        .filter(|&end| end <= bytes.len())
        .ok_or_else(|| {
            bad(format!(
                "header length {header_len} runs past the end of the {}-byte file (truncated or not a safetensors file)",
                bytes.len()
            ))
        })?;
    let json: Value = serde_json::from_slice(&bytes[8..data_start])
        .map_err(|e| bad(format!("header is not valid JSON: {e}")))?;
    let obj = json
        .as_object()
        .ok_or_else(|| bad("header must be a JSON object".into()))?;
    let data_len = bytes.len() - data_start;
    let mut out = Vec::new();
    for (name, value) in obj {
        if name == "__metadata__" {
            continue;
        }
        let field = |key: &str| {
            value
                .get(key)
                .ok_or_else(|| bad(format!("tensor {name} has no \"{key}\"")))
        };
        let dtype_name = field("dtype")?
            .as_str()
            .ok_or_else(|| bad(format!("tensor {name}: dtype must be a string")))?;
        let dims = |key: &str| -> Result<Vec<usize>, ModelError> {
            field(key)?
                .as_array()
                .ok_or_else(|| bad(format!("tensor {name}: {key} must be an array")))?
                .iter()
                .map(|v| {
                    v.as_u64()
                        .and_then(|v| usize::try_from(v).ok())
                        .ok_or_else(|| {
                            bad(format!(
                                "tensor {name}: {key} must hold non-negative integers"
                            ))
                        })
                })
                .collect()
        };
        let shape = dims("shape")?;
        let offsets = dims("data_offsets")?;
        let [begin, end] = offsets[..] else {
            return Err(bad(format!(
                "tensor {name}: data_offsets must be [begin, end]"
            )));
        };
        if begin > end || end > data_len {
            return Err(bad(format!(
                "tensor {name}: data_offsets [{begin}, {end}] are outside the {data_len}-byte data section (truncated file?)"
            )));
        }
        let dtype = StDtype::parse(dtype_name).ok_or_else(|| dtype_name.to_owned());
        if let Ok(dt) = dtype {
            let numel = shape.iter().try_fold(1usize, |a, &b| a.checked_mul(b));
            if numel.and_then(|n| n.checked_mul(dt.bytes())) != Some(end - begin) {
                return Err(bad(format!(
                    "tensor {name}: shape {shape:?} of {dtype_name} needs {} bytes but data_offsets span {}",
                    numel.map_or("too many".to_string(), |n| (n * dt.bytes()).to_string()),
                    end - begin
                )));
            }
        }
        out.push((
            name.clone(),
            Entry {
                file,
                dtype,
                shape,
                begin: data_start + begin,
                end: data_start + end,
            },
        ));
    }
    Ok(out)
}

impl ModelSource for SafetensorsModel {
    fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn describe(&self) -> String {
        format!(
            "{} ({}, {} file(s), {})",
            self.dir.display(),
            self.config.architecture.model_type(),
            self.files.len(),
            self.config.dtype.name()
        )
    }

    fn tensor(&self, spec: &TensorSpec) -> Result<Vec<u16>, ModelError> {
        let entry = self.entry(spec)?;
        let file = &self.files[entry.file];
        let bytes = &file.map[entry.begin..entry.end];
        let dtype = entry
            .dtype
            .clone()
            .map_err(|dtype| ModelError::TensorDtype {
                name: spec.name.clone(),
                dtype,
            })?;
        let target = self.config.dtype;
        Ok(match dtype {
            StDtype::Bf16 | StDtype::F16 => bytes
                .chunks_exact(2)
                .map(|c| {
                    let bits = u16::from_le_bytes([c[0], c[1]]);
                    match (dtype, target) {
                        (StDtype::Bf16, Dtype::Bf16) | (StDtype::F16, Dtype::F16) => bits,
                        (StDtype::Bf16, Dtype::F16) => target.round(float::bf16_to_f32(bits)),
                        _ => target.round(float::fp16_to_f32(bits)),
                    }
                })
                .collect(),
            StDtype::F32 => bytes
                .chunks_exact(4)
                .map(|c| target.round(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
        })
    }
}

/// Writes a safetensors file (for tests and for exporting synthetic models): `tensors` are
/// `(name, dtype name, shape, little-endian bytes)`.
pub fn write_file(
    path: &Path,
    tensors: &[(String, &str, Vec<usize>, Vec<u8>)],
) -> std::io::Result<()> {
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, dtype, shape, bytes) in tensors {
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + bytes.len()]}),
        );
        offset += bytes.len();
    }
    let mut text = serde_json::to_string(&Value::Object(header))?.into_bytes();
    while text.len() % 8 != 0 {
        text.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + offset);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    for (_, _, _, bytes) in tensors {
        out.extend_from_slice(bytes);
    }
    std::fs::write(path, out)
}

/// Exports a model source as a checkpoint directory (`config.json` + `model.safetensors`) in the
/// Hugging Face Llama layout, in the source's dtype.
pub fn export(source: &dyn ModelSource, dir: &Path) -> Result<(), ModelError> {
    let c = source.config();
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    let config = serde_json::json!({
        "architectures": [match c.architecture {
            super::config::Architecture::Llama => "LlamaForCausalLM",
            super::config::Architecture::Qwen2 => "Qwen2ForCausalLM",
            super::config::Architecture::Qwen3 => "Qwen3ForCausalLM",
        }],
        "model_type": c.architecture.model_type(),
        "hidden_size": c.hidden_size,
        "num_hidden_layers": c.num_layers,
        "num_attention_heads": c.num_heads,
        "num_key_value_heads": c.num_kv_heads,
        "head_dim": c.head_dim,
        "intermediate_size": c.intermediate_size,
        "rms_norm_eps": c.rms_norm_eps,
        "rope_theta": c.rope_theta,
        "attention_bias": c.qkv_bias && c.o_bias,
        "mlp_bias": c.mlp_bias,
        "torch_dtype": match c.dtype { Dtype::Bf16 => "bfloat16", Dtype::F16 => "float16" },
    });
    let path = dir.join("config.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&config).expect("JSON value"),
    )
    .map_err(|e| io_error(&path, e))?;
    let dtype = match c.dtype {
        Dtype::Bf16 => "BF16",
        Dtype::F16 => "F16",
    };
    let mut tensors = Vec::new();
    for spec in c.tensor_specs() {
        let bits = source.tensor(&spec)?;
        let bytes = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
        tensors.push((spec.name.clone(), dtype, spec.shape.clone(), bytes));
    }
    let path = dir.join("model.safetensors");
    write_file(&path, &tensors).map_err(|e| io_error(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poc::config::Preset;
    use crate::poc::model::SyntheticModel;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pocforge-st-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn exported_synthetic_model_reads_back_identically() {
        let dir = temp_dir("roundtrip");
        let synthetic = SyntheticModel::new(Preset::find("tiny").unwrap(), "rt", 1);
        export(&synthetic, &dir).unwrap();
        let loaded = SafetensorsModel::open(&dir, None).unwrap();
        assert_eq!(loaded.config(), synthetic.config());
        for spec in synthetic.config().tensor_specs() {
            assert_eq!(
                loaded.tensor(&spec).unwrap(),
                synthetic.tensor(&spec).unwrap()
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn defects_give_clear_errors() {
        let dir = temp_dir("defects");
        let synthetic = SyntheticModel::new(Preset::find("tiny").unwrap(), "d", 1);
        export(&synthetic, &dir).unwrap();
        let file = dir.join("model.safetensors");
        let good = std::fs::read(&file).unwrap();
        let msg = |dir: &Path| SafetensorsModel::open(dir, None).unwrap_err().to_string();

        std::fs::write(&file, &good[..good.len() - 10]).unwrap();
        assert!(msg(&dir).contains("outside the"), "{}", msg(&dir));
        std::fs::write(&file, &good[..4]).unwrap();
        assert!(msg(&dir).contains("shorter than"), "{}", msg(&dir));
        let mut bad_json = good.clone();
        bad_json[8] = b'[';
        std::fs::write(&file, &bad_json).unwrap();
        assert!(msg(&dir).contains("not valid JSON"), "{}", msg(&dir));

        // A missing tensor, a misshaped one and an unreadable dtype.
        let specs = synthetic.config().tensor_specs();
        let mut tensors: Vec<_> = specs
            .iter()
            .map(|s| {
                let bytes = synthetic
                    .tensor(s)
                    .unwrap()
                    .iter()
                    .flat_map(|b| b.to_le_bytes())
                    .collect();
                (s.name.clone(), "BF16", s.shape.clone(), bytes)
            })
            .collect();
        let removed = tensors.remove(3);
        write_file(&file, &tensors).unwrap();
        assert!(
            msg(&dir).contains(&format!("missing tensor {}", removed.0)),
            "{}",
            msg(&dir)
        );
        tensors.insert(3, removed.clone());
        tensors[3].2 = vec![removed.2[1], removed.2[0] / 2];
        tensors[3].3.truncate(removed.3.len() / 2);
        write_file(&file, &tensors).unwrap();
        assert!(msg(&dir).contains("has shape"), "{}", msg(&dir));
        tensors[3] = removed.clone();
        tensors[3].1 = "I16";
        write_file(&file, &tensors).unwrap();
        assert!(msg(&dir).contains("I16"), "{}", msg(&dir));
        tensors[3].1 = "F32";
        write_file(&file, &tensors).unwrap();
        assert!(msg(&dir).contains("needs"), "{}", msg(&dir));
        std::fs::remove_file(&file).unwrap();
        assert!(msg(&dir).contains("no *.safetensors"), "{}", msg(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
