//! The daemon's configuration: a TOML file (`host run --config FILE`) or quick-start flags.
//!
//! Every section has defaults, so the smallest file is `model = "synthetic:tiny"` plus one
//! `[[device]]`. Unknown keys are errors (a typo must not silently fall back to a default).
//! `docs/host.md` is the reference for every key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::device::DeviceConfig;
use crate::outbox::OutboxLimits;
use crate::sender::SenderConfig;

/// The whole configuration.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (default `127.0.0.1:8080`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The served model: `synthetic:<preset>` or a checkpoint (see `docs/host.md`).
    pub model: String,
    /// Where the outbox lives (default `./host-data`).
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Who may call the API.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Request limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Golden cross-checking of device results.
    #[serde(default)]
    pub crosscheck: CrossCheckConfig,
    /// Device fault handling.
    #[serde(default)]
    pub health: HealthConfig,
    /// Callback delivery and the outbox.
    #[serde(default)]
    pub callbacks: CallbacksConfig,
    /// The devices that compute.
    #[serde(default, rename = "device")]
    pub devices: Vec<DeviceConfig>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("host-data")
}

/// Bearer-token authentication.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The token clients must send as `Authorization: Bearer <token>`.
    #[serde(default)]
    pub token: Option<String>,
    /// A file holding the token (first line), instead of `token`.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Listen on a non-loopback address without a token (refused unless set).
    #[serde(default)]
    pub allow_unauthenticated_remote: bool,
}

/// Limits on what requests may ask.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest request body in bytes (default 64 MiB: a validation of 100,000 artifacts is ~7 MB).
    pub max_body_bytes: usize,
    /// Most nonces queued at once; more answers 429 (default 100,000, the network's).
    pub queue_cap: u64,
    /// Largest `batch_size` (default 4096).
    pub max_batch_size: u64,
    /// Longest `seq_len` (default: the model's context length).
    pub max_seq_len: Option<u64>,
    /// Serve only this `seq_len` (others answer 409 on init, 400 on generate).
    pub seq_len: Option<u64>,
    /// Serve only this `k_dim`.
    pub k_dim: Option<u64>,
    /// How long finished `/generate` results stay readable, in seconds (default 300).
    pub job_retention_s: u64,
    /// Synthetic models kept in memory, one per block hash (default 2).
    pub model_cache: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body_bytes: 64 << 20,
            queue_cap: 100_000,
            max_batch_size: 4096,
            max_seq_len: None,
            seq_len: None,
            k_dim: None,
            job_retention_s: 300,
            model_cache: 2,
        }
    }
}

/// How much of each device's output the CPU golden model recomputes.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrossCheckConfig {
    /// Fraction of artifacts recomputed, 0…1 (default 0.01).
    pub fraction: f64,
    /// Recompute every artifact (same as `fraction = 1`; `host run --certify`).
    pub certify: bool,
    /// Hardware errors (bit differences) after which a device is quarantined (default 3).
    pub max_hardware_errors: u32,
    /// Committer threads: each cross-checks and commits one unit at a time (default 1).
    pub threads: usize,
    /// Threads of each golden recomputation (default 1).
    pub golden_threads: usize,
}

impl Default for CrossCheckConfig {
    fn default() -> Self {
        CrossCheckConfig {
            fraction: 0.01,
            certify: false,
            max_hardware_errors: 3,
            threads: 1,
            golden_threads: 1,
        }
    }
}

impl CrossCheckConfig {
    /// The fraction actually used.
    pub fn effective_fraction(&self) -> f64 {
        if self.certify {
            1.0
        } else {
            self.fraction
        }
    }
}

/// How device faults (errors, hangs) are handled.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Faults (errors, hangs, failed resets) after which a device is quarantined (default 3).
    pub max_faults: u32,
    /// A device that completes no matrix product (or weight upload) for this many seconds is
    /// hung (default 30).
    pub stall_s: f64,
    /// A unit that takes this many times what the device's measured speed predicts (and at least
    /// `stall_s`) is hung too (default 10).
    pub hang_factor: f64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            max_faults: 3,
            stall_s: 30.0,
            hang_factor: 10.0,
        }
    }
}

/// Callback delivery and the outbox.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallbacksConfig {
    /// How long generation artifacts wait to be batched, ms (default 5000).
    pub batch_interval_ms: u64,
    /// Most artifacts per `POST {url}/generated` (default 10,000).
    pub max_artifacts_per_post: usize,
    /// First retry delay, ms (default 1000).
    pub backoff_initial_ms: u64,
    /// Longest retry delay, ms (default 30,000).
    pub backoff_max_ms: u64,
    /// Timeout of one callback request, ms (default 30,000).
    pub request_timeout_ms: u64,
    /// Undelivered artifacts at which generation pauses (default 1,000,000).
    pub max_backlog_artifacts: u64,
    /// Outbox segment size, bytes (default 16 MiB).
    pub segment_bytes: u64,
    /// On SIGTERM, how long to keep delivering before exiting, ms (default 5000).
    pub shutdown_grace_ms: u64,
}

impl Default for CallbacksConfig {
    fn default() -> Self {
        let sender = SenderConfig::default();
        let outbox = OutboxLimits::default();
        CallbacksConfig {
            batch_interval_ms: sender.batch_interval.as_millis() as u64,
            max_artifacts_per_post: sender.max_artifacts_per_post,
            backoff_initial_ms: sender.backoff_initial.as_millis() as u64,
            backoff_max_ms: sender.backoff_max.as_millis() as u64,
            request_timeout_ms: sender.request_timeout.as_millis() as u64,
            max_backlog_artifacts: outbox.max_pending_artifacts,
            segment_bytes: outbox.segment_bytes,
            shutdown_grace_ms: 5000,
        }
    }
}

impl CallbacksConfig {
    /// The sender's settings.
    pub fn sender(&self) -> SenderConfig {
        SenderConfig {
            batch_interval: Duration::from_millis(self.batch_interval_ms),
            max_artifacts_per_post: self.max_artifacts_per_post.max(1),
            backoff_initial: Duration::from_millis(self.backoff_initial_ms.max(1)),
            backoff_max: Duration::from_millis(self.backoff_max_ms.max(self.backoff_initial_ms)),
            request_timeout: Duration::from_millis(self.request_timeout_ms.max(1)),
        }
    }

    /// The outbox's settings.
    pub fn outbox(&self) -> OutboxLimits {
        OutboxLimits {
            segment_bytes: self.segment_bytes.max(4096),
            max_pending_artifacts: self.max_backlog_artifacts.max(1),
            ..OutboxLimits::default()
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("config file {path} is invalid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML error, with line and key.
        message: String,
    },
    /// A value is out of range or values contradict each other.
    #[error("config: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads and checks a TOML configuration file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config: Config = toml::from_str(&text).map_err(|err| ConfigError::Parse {
            path: path.to_path_buf(),
            message: err.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// A configuration with defaults everywhere but the model and devices.
    pub fn quick(model: String, devices: Vec<DeviceConfig>) -> Self {
        Config {
            listen: default_listen(),
            model,
            data_dir: default_data_dir(),
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            crosscheck: CrossCheckConfig::default(),
            health: HealthConfig::default(),
            callbacks: CallbacksConfig::default(),
            devices,
        }
    }

    /// Checks ranges and cross-field rules.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.devices.is_empty() {
            return invalid(
                "no devices: add at least one [[device]] (e.g. backend = \"cpu\") or pass --device cpu"
                    .into(),
            );
        }
        let mut names = std::collections::HashSet::new();
        for (index, device) in self.devices.iter().enumerate() {
            let name = device.name(index);
            if !names.insert(name.clone()) {
                return invalid(format!(
                    "two devices are named {name:?}; give each [[device]] a unique name"
                ));
            }
            device
                .validate()
                .map_err(|e| ConfigError::Invalid(format!("device {name:?}: {e}")))?;
        }
        let fraction = self.crosscheck.fraction;
        if !(0.0..=1.0).contains(&fraction) {
            return invalid(format!(
                "crosscheck.fraction = {fraction} must be between 0 and 1"
            ));
        }
        if self.crosscheck.threads == 0 || self.crosscheck.golden_threads == 0 {
            return invalid(
                "crosscheck.threads and crosscheck.golden_threads must be at least 1".into(),
            );
        }
        if self.crosscheck.max_hardware_errors == 0 || self.health.max_faults == 0 {
            return invalid(
                "crosscheck.max_hardware_errors and health.max_faults must be at least 1".into(),
            );
        }
        let h = &self.health;
        if !(h.hang_factor.is_finite() && h.hang_factor >= 1.0) {
            return invalid(format!(
                "health.hang_factor = {} must be ≥ 1",
                h.hang_factor
            ));
        }
        if !(h.stall_s.is_finite() && h.stall_s > 0.0) {
            return invalid(format!("health.stall_s = {} must be > 0", h.stall_s));
        }
        let l = &self.limits;
        if l.queue_cap == 0 || l.max_batch_size == 0 || l.model_cache == 0 {
            return invalid(
                "limits.queue_cap, limits.max_batch_size and limits.model_cache must be at least 1"
                    .into(),
            );
        }
        if l.max_body_bytes < 1024 {
            return invalid(format!(
                "limits.max_body_bytes = {} is too small to hold a request; use at least 1024",
                l.max_body_bytes
            ));
        }
        if self.auth.token.is_some() && self.auth.token_file.is_some() {
            return invalid("set auth.token or auth.token_file, not both".into());
        }
        Ok(())
    }

    /// The bearer token, read from `auth.token_file` when that is set.
    pub fn token(&self) -> Result<Option<String>, ConfigError> {
        if let Some(path) = &self.auth.token_file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            let token = text.lines().next().unwrap_or("").trim().to_string();
            if token.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "auth.token_file {} is empty",
                    path.display()
                )));
            }
            return Ok(Some(token));
        }
        match &self.auth.token {
            Some(token) if token.trim().is_empty() => Err(ConfigError::Invalid(
                "auth.token is empty; remove it or set a real token".into(),
            )),
            other => Ok(other.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smallest_file_gets_defaults() {
        let config: Config = toml::from_str(
            r#"
            model = "synthetic:tiny"
            [[device]]
            backend = "cpu"
            "#,
        )
        .unwrap();
        config.validate().unwrap();
        assert_eq!(config.listen, default_listen());
        assert_eq!(config.limits.queue_cap, 100_000);
        assert_eq!(
            config.callbacks.sender().backoff_max,
            Duration::from_secs(30)
        );
        assert_eq!(config.devices.len(), 1);
    }

    #[test]
    fn typos_are_errors() {
        let err = toml::from_str::<Config>(
            r#"
            model = "synthetic:tiny"
            [limits]
            queue_cpa = 5
            "#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("queue_cpa"), "{err}");
        let err = toml::from_str::<Config>(
            r#"
            model = "synthetic:tiny"
            [[device]]
            backend = "cpu"
            treads = 2
            "#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("treads"), "{err}");
        let err = toml::from_str::<Config>(
            r#"
            model = "synthetic:tiny"
            [[device]]
            backend = "quantum"
            "#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("quantum"), "{err}");
    }

    #[test]
    fn cross_field_rules_are_checked() {
        let mut config: Config = toml::from_str(
            r#"
            model = "synthetic:tiny"
            [[device]]
            backend = "cpu"
            name = "a"
            [[device]]
            backend = "cpu"
            name = "a"
            "#,
        )
        .unwrap();
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("unique"), "{err}");
        config.devices.pop();
        config.crosscheck.fraction = 1.5;
        assert!(config.validate().is_err());
        config.crosscheck.fraction = 0.5;
        config.devices.clear();
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("no devices"));
    }
}
