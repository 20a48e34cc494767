//! Cross-checks the golden PoC pipeline against an independent NumPy implementation written
//! from the protocol text (`tests/python/poc_numpy.py`), and loads checkpoints written by the
//! Python `safetensors` package. Needs `python3` with `numpy` and `safetensors` (installed by
//! `scripts/setup`); `POCFORGE_PYTHON` picks another interpreter.

use std::path::{Path, PathBuf};
use std::process::Command;

use golden::poc::artifact::decode_vector_b64;
use golden::poc::cpu::CpuDevice;
use golden::poc::model::{ModelSource, ModelSpec};
use golden::poc::safetensors::SafetensorsModel;
use golden::poc::validate::distance;
use golden::poc::{Engine, Round, RoundParams};

const BLOCK_HASH: &str = "0000000000000000000a1b2c3d4e5f60718293a4b5c6d7e8f9";
const PUBLIC_KEY: &str = "gonka1xyzexamplepublickey";

fn python() -> String {
    std::env::var("POCFORGE_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/poc_numpy.py")
}

fn run_python(args: &[&str]) -> String {
    let out = Command::new(python())
        .arg(script())
        .args(args)
        // One BLAS thread: the Rust side already uses the cores, and oversubscribed BLAS
        // threads make the test many times slower on a shared 2-core machine.
        .env("OPENBLAS_NUM_THREADS", "1")
        .env("OMP_NUM_THREADS", "1")
        .env("MKL_NUM_THREADS", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} (run scripts/setup): {e}", python()));
    assert!(
        out.status.success(),
        "poc_numpy.py {args:?} failed (run scripts/setup for numpy and safetensors):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// `(nonce, f16 bits)` of the Python implementation's artifacts.
fn python_artifacts(
    model: &str,
    nonces: std::ops::Range<u64>,
    seq_len: usize,
) -> Vec<(u64, Vec<u16>)> {
    let text = run_python(&[
        "artifacts",
        "--model",
        model,
        "--block-hash",
        BLOCK_HASH,
        "--public-key",
        PUBLIC_KEY,
        "--nonces",
        &nonces.start.to_string(),
        &nonces.end.to_string(),
        "--seq-len",
        &seq_len.to_string(),
    ]);
    let json: serde_json::Value = serde_json::from_str(&text).expect("JSON from poc_numpy.py");
    json["artifacts"]
        .as_array()
        .expect("artifacts array")
        .iter()
        .map(|a| {
            let nonce = a["nonce"].as_u64().unwrap();
            (
                nonce,
                decode_vector_b64(a["vector_b64"].as_str().unwrap()).unwrap(),
            )
        })
        .collect()
}

/// Computes our artifacts for the same nonces and returns the L2 distances to Python's.
fn distances(source: &dyn ModelSource, python: &[(u64, Vec<u16>)], seq_len: usize) -> Vec<f64> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut engine = Engine::load(source, CpuDevice::new(threads)).unwrap();
    engine.set_host_threads(threads);
    let round = Round::new(
        RoundParams::new(BLOCK_HASH, PUBLIC_KEY, seq_len),
        engine.config(),
    )
    .unwrap();
    let nonces: Vec<u64> = python.iter().map(|(n, _)| *n).collect();
    let ours = engine.artifacts(&round, &nonces, 64).unwrap();
    assert_eq!(ours.len(), python.len(), "both sides keep the same nonces");
    ours.iter()
        .zip(python)
        .map(|(a, (nonce, v))| {
            assert_eq!(a.nonce, *nonce);
            distance(&a.vector, v).expect("finite vectors of equal length")
        })
        .collect()
}

fn summary(d: &[f64]) -> String {
    let max = d.iter().cloned().fold(0.0, f64::max);
    let mean = d.iter().sum::<f64>() / d.len() as f64;
    let over = d.iter().filter(|&&x| x > 0.02).count();
    format!(
        "{} nonces: mean distance {mean:.5}, max {max:.5}, {over} over 0.02",
        d.len()
    )
}

#[test]
fn synthetic_small_agrees_with_numpy_within_network_threshold() {
    let n: u64 = 1000;
    let seq_len = 32;
    let python = python_artifacts("synthetic:small", 0..n, seq_len);
    assert_eq!(python.len(), n as usize);
    let source = ModelSpec::parse("synthetic:small")
        .unwrap()
        .open(BLOCK_HASH, None, 2)
        .unwrap();
    let d = distances(source.as_ref(), &python, seq_len);
    let within = d.iter().filter(|&&x| x <= 0.02).count();
    eprintln!("synthetic:small vs NumPy: {}", summary(&d));
    assert!(
        within as f64 >= 0.999 * n as f64,
        "only {within} of {n} within 0.02: {}",
        summary(&d)
    );
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pocforge-py-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn write_checkpoint(arch: &str, dtype: &str, dir: &Path) {
    run_python(&[
        "write-checkpoint",
        "--arch",
        arch,
        "--dtype",
        dtype,
        "--out",
        dir.to_str().unwrap(),
    ]);
}

#[test]
fn checkpoints_written_by_python_safetensors_load_and_agree() {
    for (arch, dtype) in [("llama", "F32"), ("qwen2", "F16"), ("qwen3", "F32")] {
        let dir = temp_dir(arch);
        write_checkpoint(arch, dtype, &dir);
        let model = SafetensorsModel::open(&dir, None).unwrap();
        let seq_len = 16;
        let python = python_artifacts(dir.to_str().unwrap(), 0..64, seq_len);
        let d = distances(&model, &python, seq_len);
        eprintln!("{arch} ({dtype}) vs NumPy: {}", summary(&d));
        let within = d.iter().filter(|&&x| x <= 0.02).count();
        assert!(within >= 63, "{arch}: {}", summary(&d));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn damaged_python_checkpoints_give_clear_errors() {
    let dir = temp_dir("damaged");
    write_checkpoint("qwen3", "F32", &dir);
    let open_err = |dir: &Path| SafetensorsModel::open(dir, None).unwrap_err().to_string();
    let config_path = dir.join("config.json");
    let config = std::fs::read_to_string(&config_path).unwrap();

    // The config says Llama: the q/k norms are simply unused, so this still loads.
    std::fs::write(&config_path, config.replace("\"qwen3\"", "\"llama\"")).unwrap();
    assert!(SafetensorsModel::open(&dir, None).is_ok());
    // A config whose shapes disagree with the tensors.
    std::fs::write(
        &config_path,
        config.replace("\"intermediate_size\": 160", "\"intermediate_size\": 128"),
    )
    .unwrap();
    let msg = open_err(&dir);
    assert!(
        msg.contains("has shape [160, 64]") && msg.contains("[128, 64]"),
        "{msg}"
    );
    // Qwen2 expects q/k/v biases that this checkpoint does not have.
    std::fs::write(&config_path, config.replace("\"qwen3\"", "\"qwen2\"")).unwrap();
    let msg = open_err(&dir);
    assert!(
        msg.contains("missing tensor model.layers.0.self_attn.q_proj.bias"),
        "{msg}"
    );
    // Broken JSON.
    std::fs::write(&config_path, "{\"model_type\": ").unwrap();
    assert!(open_err(&dir).contains("not valid JSON"));
    std::fs::write(&config_path, &config).unwrap();
    // A truncated shard.
    let shard = dir.join("model-00002-of-00002.safetensors");
    let bytes = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, &bytes[..bytes.len() / 2]).unwrap();
    let msg = open_err(&dir);
    assert!(
        msg.contains("model-00002-of-00002.safetensors") && msg.contains("truncated"),
        "{msg}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
