//! `golden poc`: compute artifacts like an ML node, validate a submitted batch like a validator,
//! export a synthetic model as a checkpoint, and measure throughput.
//!
//! ```text
//! golden poc --model synthetic:small --block-hash H --public-key P --nonces 0..100 --json
//! golden poc validate --model synthetic:small --block-hash H --public-key P --input batch.json
//! golden poc export --model synthetic:tiny --block-hash H --out ./tiny-checkpoint
//! ```

use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Value};

use golden::poc::config::Dtype;
use golden::poc::cpu::{CpuDevice, ReferenceDevice};
use golden::poc::device::MatmulDevice;
use golden::poc::hash;
use golden::poc::inputs::{EmbeddingRng, PickOrder};
use golden::poc::model::{ModelSource, ModelSpec};
use golden::poc::validate::{self, StatTest};
use golden::poc::{Artifact, Engine, Round, RoundParams};

use super::Outcome;

/// `golden poc`: computes artifacts (default) or runs a subcommand.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct PocArgs {
    #[command(subcommand)]
    action: Option<PocAction>,
    #[command(flatten)]
    round: RoundArgs,
    /// Nonces: `A..B` (B excluded), `A..=B`, or a comma list `1,5,9`.
    #[arg(long, required = true)]
    nonces: Option<String>,
    /// Print the network's JSON (`{"artifacts":[{nonce,vector_b64}],"encoding":{..}}`).
    #[arg(long)]
    json: bool,
    /// Hash mode: print only the artifacts whose share meets this many leading zero bits, each
    /// with its share digest.
    #[arg(long)]
    hash_difficulty: Option<u32>,
    /// Print throughput and the matrix-product/host split to stderr.
    #[arg(long)]
    bench: bool,
}

#[derive(Subcommand, Debug)]
enum PocAction {
    /// Check a submitted batch like a validator (mismatch rule and binomial fraud test, or exact
    /// share checks with --hash-difficulty).
    Validate(ValidateArgs),
    /// Write a model (e.g. `synthetic:tiny`) as a Hugging Face checkpoint directory.
    Export(ExportArgs),
}

/// What identifies the round and the computation.
#[derive(Args, Debug)]
struct RoundArgs {
    /// `synthetic:<tiny|small|launch>` or a Hugging Face checkpoint directory.
    #[arg(long, required = true)]
    model: Option<String>,
    /// The epoch's block hash.
    #[arg(long, required = true)]
    block_hash: Option<String>,
    /// The participant's public key.
    #[arg(long, required = true)]
    public_key: Option<String>,
    /// Sequence length (default: the preset's, or 16 for checkpoints).
    #[arg(long)]
    seq_len: Option<usize>,
    /// Output coordinates.
    #[arg(long, default_value_t = 12)]
    k_dim: usize,
    /// Input-embedding generator.
    #[arg(long, value_enum, default_value_t = RngArg::Single)]
    rng: RngArg,
    /// Order of the picked coordinates.
    #[arg(long, value_enum, default_value_t = OrderArg::Ascending)]
    pick_order: OrderArg,
    /// Override the model dtype.
    #[arg(long, value_enum)]
    dtype: Option<DtypeArg>,
    /// Nonces per forward pass (bits do not depend on it).
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Threads (default: all cores; bits do not depend on it).
    #[arg(long)]
    threads: Option<usize>,
    /// The device running the matrix products.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    device: DeviceArg,
}

#[derive(Args, Debug)]
struct ValidateArgs {
    #[command(flatten)]
    round: RoundArgs,
    /// The submitted batch (JSON with `artifacts` or `validation.artifacts`), `-` for stdin.
    #[arg(long, default_value = "-")]
    input: String,
    /// L2 distance above which a vector mismatches.
    #[arg(long, default_value_t = 0.02)]
    dist_threshold: f64,
    /// Probability of an honest mismatch.
    #[arg(long, default_value_t = 0.001)]
    p_mismatch: f64,
    /// p-value below which the batch is fraud.
    #[arg(long, default_value_t = 0.01)]
    fraud_threshold: f64,
    /// Hash mode: exact recomputation and this difficulty for every share.
    #[arg(long)]
    hash_difficulty: Option<u32>,
}

#[derive(Args, Debug)]
struct ExportArgs {
    /// The model to export.
    #[arg(long)]
    model: String,
    /// Block hash (synthetic weights depend on it).
    #[arg(long)]
    block_hash: String,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Override the dtype.
    #[arg(long, value_enum)]
    dtype: Option<DtypeArg>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum RngArg {
    Single,
    Split8,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum OrderArg {
    Ascending,
    Score,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DtypeArg {
    Bf16,
    F16,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DeviceArg {
    /// The fast CPU golden model.
    Cpu,
    /// The reference GEMM (exact MAC, very slow; for cross-checks on tiny models).
    Reference,
}

impl DtypeArg {
    fn dtype(self) -> Dtype {
        match self {
            DtypeArg::Bf16 => Dtype::Bf16,
            DtypeArg::F16 => Dtype::F16,
        }
    }
}

/// Runs `golden poc …`. `validate` ends in [`Outcome::Mismatch`] (exit code 1) when it finds
/// fraud (or, in hash mode, any rejected share).
pub fn run(args: PocArgs) -> Result<Outcome> {
    match args.action {
        Some(PocAction::Validate(v)) => run_validate(v),
        Some(PocAction::Export(e)) => run_export(e).map(|()| Outcome::Success),
        None => run_generate(
            &args.round,
            args.nonces.as_deref().unwrap_or_default(),
            args.json,
            args.hash_difficulty,
            args.bench,
        )
        .map(|()| Outcome::Success),
    }
}

/// Parses `A..B`, `A..=B`, a comma list, or a single nonce.
pub fn parse_nonces(text: &str) -> Result<Vec<u64>> {
    let num = |s: &str| -> Result<u64> {
        s.trim()
            .parse::<u64>()
            .with_context(|| format!("`{s}` is not a non-negative integer nonce"))
    };
    let nonces: Vec<u64> = if let Some((a, b)) = text.split_once("..=") {
        (num(a)?..=num(b)?).collect()
    } else if let Some((a, b)) = text.split_once("..") {
        (num(a)?..num(b)?).collect()
    } else {
        text.split(',').map(num).collect::<Result<_>>()?
    };
    if nonces.is_empty() {
        bail!("--nonces `{text}` selects no nonce: use A..B with A < B, A..=B, or a comma list");
    }
    Ok(nonces)
}

struct Prepared {
    engine: Engine<Box<dyn MatmulDevice>>,
    round: Round,
    batch: usize,
    load_seconds: f64,
    model: String,
}

fn prepare(args: &RoundArgs) -> Result<Prepared> {
    let model_arg = args.model.as_deref().context("--model is required")?;
    let block_hash = args
        .block_hash
        .as_deref()
        .context("--block-hash is required")?;
    let public_key = args
        .public_key
        .as_deref()
        .context("--public-key is required")?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let spec = ModelSpec::parse(model_arg)?;
    let seq_len = args.seq_len.unwrap_or(match &spec {
        ModelSpec::Synthetic(p) => p.seq_len,
        ModelSpec::Checkpoint(_) => 16,
    });
    let start = Instant::now();
    let source: Box<dyn ModelSource + Send + Sync> =
        spec.open(block_hash, args.dtype.map(DtypeArg::dtype), threads)?;
    // A CPU device and the host passes share one pool of `threads` workers.
    let (device, shared_pool): (Box<dyn MatmulDevice>, _) = match args.device {
        DeviceArg::Cpu => {
            let cpu = CpuDevice::new(threads);
            let pool = cpu.pool();
            (Box::new(cpu), Some(pool))
        }
        DeviceArg::Reference => (Box::new(ReferenceDevice::new()), None),
    };
    let mut engine = Engine::load(source.as_ref(), device)?;
    match shared_pool {
        Some(pool) => engine.set_host_pool(pool),
        None => engine.set_host_threads(threads),
    }
    engine.reserve(args.batch.max(1), seq_len);
    let load_seconds = start.elapsed().as_secs_f64();
    let params = RoundParams {
        k_dim: args.k_dim,
        embedding_rng: match args.rng {
            RngArg::Single => EmbeddingRng::Single,
            RngArg::Split8 => EmbeddingRng::Split8,
        },
        pick_order: match args.pick_order {
            OrderArg::Ascending => PickOrder::Ascending,
            OrderArg::Score => PickOrder::Score,
        },
        ..RoundParams::new(block_hash, public_key, seq_len)
    };
    let round = Round::new(params, engine.config())?;
    Ok(Prepared {
        engine,
        round,
        batch: args.batch.max(1),
        load_seconds,
        model: source.describe(),
    })
}

fn encoding(k_dim: usize) -> Value {
    json!({"dtype": "f16", "k_dim": k_dim, "endian": "le"})
}

fn run_generate(
    args: &RoundArgs,
    nonces: &str,
    as_json: bool,
    difficulty: Option<u32>,
    bench: bool,
) -> Result<()> {
    let nonces = parse_nonces(nonces)?;
    let mut p = prepare(args)?;
    let start = Instant::now();
    let artifacts = p.engine.artifacts(&p.round, &nonces, p.batch)?;
    let seconds = start.elapsed().as_secs_f64();
    let (bh, pk) = (&p.round.params.block_hash, &p.round.params.public_key);
    let shown: Vec<(&Artifact, Option<String>)> = match difficulty {
        None => artifacts.iter().map(|a| (a, None)).collect(),
        Some(d) => artifacts
            .iter()
            .filter_map(|a| {
                let digest = hash::share_digest(bh, pk, a);
                hash::meets_difficulty(&digest, d).then(|| (a, Some(hash::hex(&digest))))
            })
            .collect(),
    };
    if as_json {
        let list: Vec<Value> = shown
            .iter()
            .map(|(a, share)| {
                let mut v = json!({"nonce": a.nonce, "vector_b64": a.vector_b64()});
                if let Some(share) = share {
                    v["share"] = json!(share);
                }
                v
            })
            .collect();
        let mut out = json!({"artifacts": list, "encoding": encoding(p.round.params.k_dim)});
        if let Some(d) = difficulty {
            out["hash"] = json!({"difficulty": d, "scheme": hash::SCHEME});
        }
        say!("{out}");
    } else {
        for (a, share) in &shown {
            match share {
                Some(s) => say!("{} {} {s}", a.nonce, a.vector_b64()),
                None => say!("{} {}", a.nonce, a.vector_b64()),
            }
        }
    }
    let dropped = nonces.len() - artifacts.len();
    if dropped > 0 {
        eprintln!("{dropped} nonce(s) dropped: their hidden state was not finite");
    }
    if bench {
        let t = p.engine.timing();
        eprintln!(
            "model {} | device {} | load {:.2} s | {} nonces in {:.3} s = {:.2} artifacts/s | \
             matrix products {:.3} s ({:.1}%), host {:.3} s ({:.1}%) | off the critical path: \
             next batches' input embeddings and first RMSNorm, previous batches' artifact steps {:.3} s on a background thread",
            p.model,
            p.engine.device().describe(),
            p.load_seconds,
            nonces.len(),
            seconds,
            nonces.len() as f64 / seconds,
            t.device.as_secs_f64(),
            100.0 * (1.0 - t.host_fraction()),
            t.host().as_secs_f64(),
            100.0 * t.host_fraction(),
            t.overlapped.as_secs_f64(),
        );
    }
    Ok(())
}

/// The submitted `(nonce, vector_b64)` pairs of a batch.
fn read_submission(input: &str) -> Result<Vec<(u64, String)>> {
    let mut text = String::new();
    if input == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the batch from stdin")?;
    } else {
        text = std::fs::read_to_string(input).with_context(|| format!("reading {input}"))?;
    }
    let json: Value = serde_json::from_str(&text).context("the batch is not valid JSON")?;
    let list = json
        .get("artifacts")
        .or_else(|| json.get("validation").and_then(|v| v.get("artifacts")))
        .and_then(Value::as_array)
        .context("the batch needs an `artifacts` array (or `validation.artifacts`)")?;
    list.iter()
        .enumerate()
        .map(|(i, a)| {
            let nonce = a
                .get("nonce")
                .and_then(Value::as_u64)
                .with_context(|| format!("artifact {i} has no non-negative integer `nonce`"))?;
            let vector = a
                .get("vector_b64")
                .and_then(Value::as_str)
                .with_context(|| format!("artifact {i} has no string `vector_b64`"))?;
            Ok((nonce, vector.to_owned()))
        })
        .collect()
}

fn run_validate(args: ValidateArgs) -> Result<Outcome> {
    let submitted = read_submission(&args.input)?;
    let mut p = prepare(&args.round)?;
    let nonces: Vec<u64> = submitted.iter().map(|(n, _)| *n).collect();
    let computed = p.engine.artifacts(&p.round, &nonces, p.batch)?;
    let by_nonce: std::collections::HashMap<u64, &Artifact> =
        computed.iter().map(|a| (a.nonce, a)).collect();
    let (bh, pk) = (&p.round.params.block_hash, &p.round.params.public_key);
    if let Some(difficulty) = args.hash_difficulty {
        let mut rejections = Vec::new();
        for (nonce, b64) in &submitted {
            if let Err(e) = hash::check_share(
                bh,
                pk,
                by_nonce.get(nonce).copied(),
                *nonce,
                b64,
                difficulty,
            ) {
                rejections.push(json!({"nonce": nonce, "reason": e.to_string()}));
            }
        }
        let out = json!({
            "n_total": submitted.len(),
            "n_accepted": submitted.len() - rejections.len(),
            "n_rejected": rejections.len(),
            "rejections": rejections,
            "hash": {"difficulty": difficulty, "scheme": hash::SCHEME},
        });
        say!("{out}");
        return Ok(if rejections.is_empty() {
            Outcome::Success
        } else {
            Outcome::Mismatch
        });
    }
    let test = StatTest {
        dist_threshold: args.dist_threshold,
        p_mismatch: args.p_mismatch,
        fraud_threshold: args.fraud_threshold,
    };
    let mismatches: Vec<u64> = submitted
        .iter()
        .filter(|(nonce, b64)| {
            validate::is_mismatch(by_nonce.get(nonce).copied(), b64, test.dist_threshold)
        })
        .map(|(n, _)| *n)
        .collect();
    let v = validate::verdict(submitted.len() as u64, mismatches, &test);
    say!(
        "{}",
        json!({
            "n_total": v.n_total,
            "n_mismatch": v.n_mismatch,
            "mismatch_nonces": v.mismatch_nonces,
            "p_value": v.p_value,
            "fraud_detected": v.fraud_detected,
        })
    );
    Ok(if v.fraud_detected {
        Outcome::Mismatch
    } else {
        Outcome::Success
    })
}

fn run_export(args: ExportArgs) -> Result<()> {
    let spec = ModelSpec::parse(&args.model)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let source = spec.open(&args.block_hash, args.dtype.map(DtypeArg::dtype), threads)?;
    golden::poc::safetensors::export(source.as_ref(), &args.out)?;
    eprintln!("wrote {} to {}", source.describe(), args.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_ranges_parse() {
        assert_eq!(parse_nonces("3..6").unwrap(), [3, 4, 5]);
        assert_eq!(parse_nonces("3..=4").unwrap(), [3, 4]);
        assert_eq!(parse_nonces("9, 1,5").unwrap(), [9, 1, 5]);
        assert!(parse_nonces("5..5").is_err());
        assert!(parse_nonces("-1").is_err());
    }
}
