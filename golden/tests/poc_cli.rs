//! `golden poc` end to end: the network's JSON shape, validation verdicts and exit codes, the
//! hash mode, and equal bits from the fast and the reference device.

use std::process::{Command, Output};

fn golden(args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_golden"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("golden runs");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

const ROUND: [&str; 8] = [
    "--model",
    "synthetic:tiny",
    "--block-hash",
    "00ab",
    "--public-key",
    "pk",
    "--seq-len",
    "8",
];

fn generate(extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["poc"];
    args.extend(ROUND);
    args.extend(["--nonces", "0..8", "--json"]);
    args.extend(extra);
    let out = golden(&args, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn validate(batch: &serde_json::Value, extra: &[&str]) -> (i32, serde_json::Value) {
    let mut args = vec!["poc", "validate"];
    args.extend(ROUND);
    args.extend(extra);
    let out = golden(&args, Some(&batch.to_string()));
    let verdict = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), verdict)
}

#[test]
fn artifacts_have_the_network_shape_and_validate() {
    let batch = generate(&[]);
    assert_eq!(
        batch["encoding"],
        serde_json::json!({"dtype": "f16", "k_dim": 12, "endian": "le"})
    );
    let artifacts = batch["artifacts"].as_array().unwrap();
    assert_eq!(artifacts.len(), 8);
    assert_eq!(artifacts[3]["nonce"], 3);
    assert_eq!(artifacts[3]["vector_b64"].as_str().unwrap().len(), 32); // 24 bytes, base64

    let (code, v) = validate(&batch, &[]);
    assert_eq!(code, 0);
    assert_eq!(
        (v["n_total"].as_u64(), v["n_mismatch"].as_u64()),
        (Some(8), Some(0))
    );
    assert_eq!(v["fraud_detected"], false);

    // One wrong vector out of 8: P(X ≥ 1) = 1 − 0.999^8 ≈ 0.008 < 0.01, so fraud (exit code 1).
    let mut forged = batch.clone();
    forged["artifacts"][5]["vector_b64"] = batch["artifacts"][4]["vector_b64"].clone();
    let (code, v) = validate(&forged, &[]);
    assert_eq!(code, 1);
    assert_eq!(v["mismatch_nonces"], serde_json::json!([5]));
    let p = v["p_value"].as_f64().unwrap();
    assert!((p - (1.0 - 0.999f64.powi(8))).abs() < 1e-12, "{p}");
    assert_eq!(v["fraud_detected"], true);
}

#[test]
fn hash_mode_shares_validate_exactly() {
    let all = generate(&["--hash-difficulty", "0"]);
    assert_eq!(all["hash"]["scheme"], "pocforge-share-v1");
    assert_eq!(all["artifacts"].as_array().unwrap().len(), 8);
    assert_eq!(all["artifacts"][0]["share"].as_str().unwrap().len(), 64);
    // Difficulty 3 keeps about one share in eight, and exactly those whose digest qualifies.
    let some = generate(&["--hash-difficulty", "3"]);
    for share in some["artifacts"].as_array().unwrap() {
        let hex = share["share"].as_str().unwrap();
        assert!(u8::from_str_radix(&hex[..2], 16).unwrap() < 0x20, "{hex}");
    }
    let (code, v) = validate(&all, &["--hash-difficulty", "0"]);
    assert_eq!((code, v["n_rejected"].as_u64()), (0, Some(0)));
    // Flip the lowest bit of one f16 value: within the 0.02 threshold, but not exact.
    let mut nudged = all.clone();
    let b64 = all["artifacts"][2]["vector_b64"].as_str().unwrap();
    let mut bytes = base64_decode(b64);
    bytes[0] ^= 1;
    nudged["artifacts"][2]["vector_b64"] = base64_encode(&bytes).into();
    let (code, v) = validate(&nudged, &[]);
    assert_eq!((code, v["n_mismatch"].as_u64()), (0, Some(0)));
    let (code, v) = validate(&nudged, &["--hash-difficulty", "0"]);
    assert_eq!((code, v["n_rejected"].as_u64()), (1, Some(1)));
}

#[test]
fn reference_device_gives_the_same_bits() {
    let mut args = vec!["poc"];
    args.extend(ROUND);
    args.extend(["--nonces", "7", "--json"]);
    let fast = golden(&args, None);
    args.extend(["--device", "reference", "--threads", "1"]);
    let reference = golden(&args, None);
    assert!(fast.status.success() && reference.status.success());
    assert_eq!(fast.stdout, reference.stdout);
}

#[test]
fn bad_arguments_are_explained() {
    let mut args = vec!["poc"];
    args.extend(ROUND);
    args.extend(["--nonces", "9..3"]);
    let out = golden(&args, None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("selects no nonce"));
    let out = golden(
        &[
            "poc",
            "--model",
            "synthetic:huge",
            "--block-hash",
            "b",
            "--public-key",
            "p",
            "--nonces",
            "1",
        ],
        None,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("tiny, small, launch"));
    let out = golden(
        &[
            "poc",
            "--model",
            "/nonexistent/dir",
            "--block-hash",
            "b",
            "--public-key",
            "p",
            "--nonces",
            "1",
        ],
        None,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("config.json"));
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
