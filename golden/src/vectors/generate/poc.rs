//! Levels 2 and 3: the matrix products of real PoC forwards.
//!
//! A PoC forward sends every matrix product to its device (`golden::poc::device`); these suites
//! are exactly those products, recorded from golden forwards of synthetic models
//! ([`crate::poc::record::RecordingDevice`]), with real activations, real weights, biases as
//! prior accumulators and the forward's output conversions. A device that passes them runs the
//! PoC bit-exactly.
//!
//! - level 2, `layer-<precision>`: the products of single decoder layers of the `small` shape
//!   (d 256, 8 heads, ffn 768, S 32): one layer per run, one nonce per run;
//! - level 3, `poc-<precision>`: every product of complete forwards of `synthetic:tiny`
//!   (2 layers, S 16, 2 nonces per run: 40 products). The manifest's `parameters` name each run (block
//!   hash, public key, nonces, its cases) and the artifacts it yields, so a runner can also
//!   check the end result.
//!
//! Run `r` of a suite with seed `s` uses block hash `"vectors-{s:016x}-{r}"`; runs are appended
//! until the suite has `count` cases, so a shorter suite is a prefix of a longer one.

use serde_json::{json, Map, Value};

use crate::numerics::Precision;
use crate::poc::config::{Dtype, Preset};
use crate::poc::cpu::CpuDevice;
use crate::poc::forward::Engine;
use crate::poc::model::SyntheticModel;
use crate::poc::record::{RecordingDevice, CATEGORIES};
use crate::poc::{Round, RoundParams};

use super::super::prng::SplitMix64;
use super::{GemmInputs, GemmSource};

/// The public key of every recorded run.
const PUBLIC_KEY: &str = "pocforge-vectors";

/// Which forward a suite records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// One decoder layer of the `small` shape per run (level 2).
    Layer,
    /// Whole forwards of `synthetic:tiny` (level 3).
    Whole,
}

/// A suite source holding the recorded products.
pub(crate) struct PocSource {
    cases: Vec<GemmInputs>,
    parameters: Map<String, Value>,
}

impl PocSource {
    /// Records runs until at least `count` products exist.
    pub(crate) fn new(scope: Scope, precision: Precision, seed: u64, count: u64) -> Self {
        let dtype = if precision == Precision::Fp16 {
            Dtype::F16
        } else {
            Dtype::Bf16
        };
        let (preset, nonces_per_run) = match scope {
            Scope::Layer => (
                Preset {
                    name: "small-1-layer",
                    layers: 1,
                    ..Preset::find("small").expect("built-in preset")
                },
                1,
            ),
            Scope::Whole => (Preset::find("tiny").expect("built-in preset"), 2),
        };
        let mut cases = Vec::new();
        let mut runs = Vec::new();
        let mut run = 0u64;
        while (cases.len() as u64) < count {
            let block_hash = format!("vectors-{seed:016x}-{run}");
            let model = SyntheticModel::new(preset, &block_hash, 1).with_dtype(dtype);
            let mut engine = Engine::load(&model, RecordingDevice::new(CpuDevice::new(1)))
                .expect("synthetic models always load");
            let round = Round::new(
                RoundParams::new(&block_hash, PUBLIC_KEY, preset.seq_len),
                engine.config(),
            )
            .expect("valid synthetic round");
            let nonces: Vec<u64> = (0..nonces_per_run)
                .map(|i| run * nonces_per_run + i)
                .collect();
            let artifacts = engine
                .artifacts(&round, &nonces, nonces.len())
                .expect("the CPU device does not fail");
            let first = cases.len();
            cases.extend(engine.device().products.iter().map(|p| {
                GemmInputs {
                    category: CATEGORIES
                        .iter()
                        .find(|c| **c == p.category)
                        .expect("recorded categories are listed"),
                    spec: p.spec,
                    a: p.a.clone(),
                    b: p.b.clone(),
                    c: p.c.clone(),
                }
            }));
            runs.push(json!({
                "block_hash": block_hash,
                "public_key": PUBLIC_KEY,
                "nonces": nonces,
                "first_case": first,
                "case_count": cases.len() - first,
                "recorded_cases": cases.len() - first,
                "artifacts": artifacts.iter().map(|a| json!({"nonce": a.nonce, "vector_b64": a.vector_b64()})).collect::<Vec<_>>(),
            }));
            run += 1;
        }
        cases.truncate(count as usize);
        // The last run may be cut short by `count`: say how many of its cases the suite holds.
        for r in &mut runs {
            let first = r["first_case"].as_u64().unwrap_or(0);
            let held = (count.saturating_sub(first)).min(r["case_count"].as_u64().unwrap_or(0));
            r["case_count"] = json!(held);
            // Its artifacts are only reproducible from its products when all of them are there.
            r["complete"] = json!(Some(held) == r["recorded_cases"].as_u64());
        }
        let mut parameters = Map::new();
        parameters.insert(
            "model".into(),
            json!(match scope {
                Scope::Layer => "synthetic:small with 1 layer",
                Scope::Whole => "synthetic:tiny",
            }),
        );
        parameters.insert("dtype".into(), json!(dtype.name()));
        parameters.insert("seq_len".into(), json!(preset.seq_len));
        parameters.insert("k_dim".into(), json!(crate::poc::artifact::DEFAULT_K_DIM));
        parameters.insert("runs".into(), Value::Array(runs));
        PocSource { cases, parameters }
    }
}

impl GemmSource for PocSource {
    fn categories(&self) -> &[&'static str] {
        &CATEGORIES
    }

    fn directed_count(&self) -> u64 {
        // Every case is a recorded product in a fixed order; none draws from the random stream.
        self.cases.len() as u64
    }

    fn case(&self, index: u64, _rng: &mut SplitMix64) -> GemmInputs {
        self.cases[index as usize].clone()
    }

    fn parameters(&self) -> Map<String, Value> {
        self.parameters.clone()
    }
}
