//! A [`MatmulDevice`] wrapper that records every product it runs, as contract GEMMs.
//!
//! The conformance suites of levels 2 and 3 (`layer-*`, `poc-*`) are made of exactly the products
//! a PoC forward sends to its device, recorded with this wrapper; a device that reproduces them
//! bit for bit computes the same artifacts as the golden model. It is also a handy trace of what
//! a forward asks of a device.

use std::collections::HashMap;

use crate::gemm::GemmSpec;
use crate::numerics::{OutputFormat, Precision};

use super::device::{BatchSpec, DeviceError, MatOut, MatmulDevice, WeightHandle, WeightUpload};

/// The purposes of the forward's products (category names of the suites).
pub const CATEGORIES: [&str; 6] = ["qkv", "attn-scores", "attn-values", "o", "gate-up", "down"];

/// One recorded product in the contract's byte form (`docs/numerics.md` §7).
#[derive(Clone, Debug)]
pub struct RecordedProduct {
    /// One of [`CATEGORIES`].
    pub category: &'static str,
    /// The GEMM (precision, shape, accumulate flag, output format).
    pub spec: GemmSpec,
    /// `A`, `M×K` little-endian operands.
    pub a: Vec<u8>,
    /// `B`, `K×N` little-endian operands.
    pub b: Vec<u8>,
    /// `C` (the bias in every row) when the product accumulates.
    pub c: Option<Vec<u8>>,
}

struct RecordedWeight {
    category: &'static str,
    precision: Precision,
    k: usize,
    n: usize,
    b: Vec<u8>,
    bias: Option<Vec<f32>>,
}

/// Runs every call on `inner` and records it.
pub struct RecordingDevice<D> {
    inner: D,
    weights: HashMap<WeightHandle, RecordedWeight>,
    /// Products recorded so far, in call order (a streamed batch gives one per product).
    pub products: Vec<RecordedProduct>,
}

impl<D: MatmulDevice> RecordingDevice<D> {
    /// Wraps `inner`.
    pub fn new(inner: D) -> Self {
        RecordingDevice {
            inner,
            weights: HashMap::new(),
            products: Vec::new(),
        }
    }
}

fn le16(v: &[u16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn output_format(d: &MatOut<'_>) -> OutputFormat {
    match d {
        MatOut::F32(_) => OutputFormat::F32,
        MatOut::Bf16(_) => OutputFormat::Bf16,
        MatOut::Fp16(_) => OutputFormat::Fp16,
    }
}

/// The category of a weight from its upload name (`layer3.gate_up` → `gate-up`).
fn weight_category(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "qkv" => "qkv",
        "o" => "o",
        "gate_up" => "gate-up",
        _ => "down",
    }
}

impl<D: MatmulDevice> MatmulDevice for RecordingDevice<D> {
    fn describe(&self) -> String {
        format!("recording {}", self.inner.describe())
    }

    fn upload_weight(&mut self, w: &WeightUpload<'_>) -> Result<WeightHandle, DeviceError> {
        let handle = self.inner.upload_weight(w)?;
        let b = super::device::transpose_upload(w);
        self.weights.insert(
            handle,
            RecordedWeight {
                category: weight_category(w.name),
                precision: w.precision,
                k: w.k,
                n: w.n,
                b: le16(&b),
                bias: w.bias.map(<[f32]>::to_vec),
            },
        );
        Ok(handle)
    }

    fn release_weights(&mut self) -> Result<(), DeviceError> {
        self.weights.clear();
        self.inner.release_weights()
    }

    fn matmul_weight(
        &mut self,
        weight: WeightHandle,
        a: &[u16],
        m: usize,
        d: MatOut<'_>,
    ) -> Result<(), DeviceError> {
        if let Some(w) = self.weights.get(&weight) {
            let spec = GemmSpec {
                accumulate: w.bias.is_some(),
                output: output_format(&d),
                ..GemmSpec::new(w.precision, m, w.n, w.k)
            };
            let c = w.bias.as_ref().map(|bias| {
                (0..m)
                    .flat_map(|_| bias.iter().flat_map(|v| v.to_bits().to_le_bytes()))
                    .collect()
            });
            self.products.push(RecordedProduct {
                category: w.category,
                spec,
                a: le16(a),
                b: w.b.clone(),
                c,
            });
        }
        self.inner.matmul_weight(weight, a, m, d)
    }

    fn matmul_batch(
        &mut self,
        spec: &BatchSpec,
        a: &[u16],
        b: &[u16],
        d: MatOut<'_>,
    ) -> Result<(), DeviceError> {
        let output = output_format(&d);
        let category = if output == OutputFormat::F32 {
            "attn-scores"
        } else {
            "attn-values"
        };
        let (m, k, n) = (spec.m, spec.k, spec.n);
        if a.len() == spec.count * m * k && b.len() == spec.count * k * n {
            for p in 0..spec.count {
                self.products.push(RecordedProduct {
                    category,
                    spec: GemmSpec {
                        output,
                        ..GemmSpec::new(spec.precision, m, n, k)
                    },
                    a: le16(&a[p * m * k..(p + 1) * m * k]),
                    b: le16(&b[p * k * n..(p + 1) * k * n]),
                    c: None,
                });
            }
        }
        self.inner.matmul_batch(spec, a, b, d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::reference;
    use crate::poc::config::Preset;
    use crate::poc::cpu::CpuDevice;
    use crate::poc::forward::Engine;
    use crate::poc::model::SyntheticModel;
    use crate::poc::{Round, RoundParams};

    #[test]
    fn recorded_products_reproduce_the_device_outputs() {
        let model = SyntheticModel::new(Preset::find("tiny").unwrap(), "rec", 1);
        let mut engine = Engine::load(&model, RecordingDevice::new(CpuDevice::new(1))).unwrap();
        let round = Round::new(RoundParams::new("rec", "pk", 4), engine.config()).unwrap();
        engine.artifacts(&round, &[1], 1).unwrap();
        let products = &engine.device().products;
        // Per layer: qkv, 4 score and 4 value products, o, gate-up, down.
        assert_eq!(products.len(), 2 * 12);
        for p in products {
            let mut d = vec![0u8; p.spec.d_bytes()];
            reference::gemm(&p.spec, &p.a, &p.b, p.c.as_deref(), &mut d).unwrap();
            assert!(CATEGORIES.contains(&p.category));
        }
        assert_eq!(products[0].category, "qkv");
        assert_eq!(products[1].category, "attn-scores");
        assert_eq!(products[5].category, "attn-values");
    }
}
