//! Shared helpers of the integration tests: the real daemon binary as a child process, a real
//! callback receiver, and the golden model as the judge of artifacts.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use golden::poc::config::Preset;
use golden::poc::cpu::CpuDevice;
use golden::poc::model::SyntheticModel;
use golden::poc::{Engine, Round, RoundParams};
use serde_json::Value;

pub const MODEL: &str = "synthetic:tiny";

/// Whether the larger suites run (`POCFORGE_FULL=1`); by default every test runs, smaller, so
/// the crate's tests stay within about two CPU minutes on a 2-core CI machine.
pub fn full() -> bool {
    std::env::var("POCFORGE_FULL").is_ok_and(|v| v == "1")
}

/// `quick` by default, `large` under `POCFORGE_FULL=1`.
pub fn scale(quick: u64, large: u64) -> u64 {
    if full() {
        large
    } else {
        quick
    }
}
pub const SEQ_LEN: u64 = 16;
pub const K_DIM: u64 = 12;

/// The daemon binary running as a child process.
pub struct Daemon {
    pub child: Child,
    pub base: String,
    pub client: reqwest::Client,
}

impl Daemon {
    /// Starts `host run <args> --listen 127.0.0.1:0` and waits for its `listening on` line.
    pub fn start(args: &[&str]) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_host"))
            .arg("run")
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or("error".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the host binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(addr) = line.strip_prefix("listening on ") {
                        break addr.to_string();
                    }
                }
                _ => panic!("the daemon exited before listening (args {args:?})"),
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Daemon {
            child,
            base: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("the daemon answers");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("the daemon answers");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn processed(&self) -> u64 {
        let (_, status) = self.get("/api/v1/pow/status").await;
        status["stats"]["total_processed"].as_u64().unwrap_or(0)
    }

    /// After `/stop`: the artifacts committed for the stopped epoch, once in-flight units have
    /// settled (read from `/metrics`, as `/status` is idle now).
    pub async fn processed_after_stop(&self) -> u64 {
        let mut last = None;
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let m = self.metrics().await;
            let total = metric(&m, "host_epoch_artifacts").expect("host_epoch_artifacts");
            if last == Some(total) {
                return total as u64;
            }
            last = Some(total);
        }
    }

    /// Waits until `/status` reports at least `n` processed artifacts.
    pub async fn wait_processed(&self, n: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            let p = self.processed().await;
            if p >= n {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "only {p} of {n} artifacts after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(&mut self) {
        self.child.kill().expect("kill the daemon");
        self.child.wait().expect("reap the daemon");
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid fits pid_t");
        // SAFETY: kill(2) only sends a signal; `pid` is our own child, not yet reaped (we hold
        // its `Child`), so the number cannot have been reused by another process.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill(SIGTERM): {}", std::io::Error::last_os_error());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not exit on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A temporary directory for a daemon's data.
pub fn data_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

/// The body of an `/init/generate`.
pub fn init_body(block_hash: &str, public_key: &str, url: Option<&str>) -> Value {
    let mut body = serde_json::json!({
        "block_hash": block_hash,
        "block_height": 100,
        "public_key": public_key,
        "node_id": 1,
        "node_count": 3,
        "batch_size": 8,
        "params": {"model": MODEL, "seq_len": SEQ_LEN, "k_dim": K_DIM},
    });
    if let Some(url) = url {
        body["url"] = url.into();
    }
    body
}

/// The golden model's artifacts (`vector_b64`, or `None` when dropped) for `nonces`.
pub fn golden_artifacts(
    block_hash: &str,
    public_key: &str,
    nonces: &[u64],
) -> HashMap<u64, Option<String>> {
    golden_artifacts_at(block_hash, public_key, nonces, SEQ_LEN)
}

/// [`golden_artifacts`] for another `seq_len`.
pub fn golden_artifacts_at(
    block_hash: &str,
    public_key: &str,
    nonces: &[u64],
    seq_len: u64,
) -> HashMap<u64, Option<String>> {
    let model = SyntheticModel::new(Preset::find("tiny").unwrap(), block_hash, 1);
    let mut engine = Engine::load(&model, CpuDevice::new(1)).expect("golden loads tiny");
    let mut params = RoundParams::new(block_hash, public_key, seq_len as usize);
    params.k_dim = K_DIM as usize;
    let round = Round::new(params, engine.config()).unwrap();
    let artifacts = engine.artifacts(&round, nonces, 64).unwrap();
    let mut out: HashMap<u64, Option<String>> = nonces.iter().map(|n| (*n, None)).collect();
    for artifact in artifacts {
        out.insert(artifact.nonce, Some(artifact.vector_b64()));
    }
    out
}

/// Asserts that every received artifact is the golden one, bit for bit.
pub fn assert_golden(block_hash: &str, public_key: &str, received: &[(u64, String)]) {
    assert_golden_at(block_hash, public_key, received, SEQ_LEN);
}

/// [`assert_golden`] for another `seq_len`.
pub fn assert_golden_at(
    block_hash: &str,
    public_key: &str,
    received: &[(u64, String)],
    seq_len: u64,
) {
    let nonces: Vec<u64> = received.iter().map(|(n, _)| *n).collect();
    let golden = golden_artifacts_at(block_hash, public_key, &nonces, seq_len);
    for (nonce, vector) in received {
        assert_eq!(
            golden[nonce].as_deref(),
            Some(vector.as_str()),
            "nonce {nonce}: the daemon's artifact differs from the golden model's"
        );
    }
}

/// The `(nonce, vector_b64)` pairs of a `wait=true` answer or a job's result.
pub fn artifacts_of(body: &Value) -> Vec<(u64, String)> {
    body["artifacts"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|a| Some((a["nonce"].as_u64()?, a["vector_b64"].as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Polls `/metrics` until `sample` is at least `at_least`; returns the metrics text.
pub async fn wait_metric(
    daemon: &Daemon,
    sample: &str,
    at_least: f64,
    timeout: Duration,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = daemon.metrics().await;
        if metric(&text, sample).is_some_and(|v| v >= at_least) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{sample} never reached {at_least}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The artifacts a receiver got for one epoch, by nonce.
pub fn received_for(
    receiver: &host::receiver::Receiver,
    block_hash: &str,
    public_key: &str,
) -> Vec<(u64, String)> {
    receiver.with(|r| {
        r.artifacts
            .iter()
            .filter(|(k, _)| k.block_hash == block_hash && k.public_key == public_key)
            .map(|(k, (v, _))| (k.nonce, v.clone()))
            .collect()
    })
}

/// A value of a metric sample (`name{labels}` exactly as printed), if present.
pub fn metric(text: &str, sample: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == sample).then(|| value.parse().ok())?
    })
}

pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("host.toml");
    std::fs::write(&path, text).unwrap();
    path
}
