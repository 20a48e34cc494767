//! `manifest.json`: what a suite is, and the fingerprint of every byte that belongs to it.
//!
//! The manifest is the suite's table of contents and its seal: a device checker first proves
//! that every data file is exactly the one the generator wrote (size and SHA-256), and only then
//! reads cases. It is written with a fixed field order and 2-space indentation, so the same
//! suite always gives the same manifest bytes, and its own SHA-256 identifies the suite in
//! results files and reports.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Kind;

/// The value of [`Manifest::format`]: says "this is a PoCForge vector suite".
pub const FORMAT: &str = "pocforge-vectors";
/// The on-disk format version this code reads and writes (`docs/vectors.md`).
pub const FORMAT_VERSION: u32 = 1;
/// The numeric contract version the expected values follow (`docs/numerics.md`).
pub const SPEC_VERSION: u32 = 1;
/// The manifest's file name inside a suite directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// A suite's manifest. Field order here is the order in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`FORMAT_VERSION`] for files this code accepts.
    pub format_version: u32,
    /// The numeric contract the expected values were computed under ([`SPEC_VERSION`]).
    pub spec_version: u32,
    /// Suite name, e.g. `mac-bf16` (see `golden vectors list`).
    pub suite: String,
    /// Level: 0 MAC chains, 1 GEMMs, 2 layers, 3 whole PoC runs.
    pub level: u8,
    /// The operand precision shared by all cases, when there is one (informational: every case
    /// records its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<String>,
    /// The seed the suite was generated from.
    pub seed: u64,
    /// Version of the generator: the same suite, seed and generator version give the same bytes.
    pub generator_version: u32,
    /// Number of cases, numbered `0..case_count`.
    pub case_count: u64,
    /// Cases `0..directed_cases` are the hand-designed corner cases; the rest are random.
    pub directed_cases: u64,
    /// Category names; each case stores an index into this list.
    pub categories: Vec<String>,
    /// Suite-wide parameters of kinds that need them (empty, and absent from the file, for
    /// `gemm`). Reserved so that later kinds extend the manifest without reshaping it.
    #[serde(
        default,
        skip_serializing_if = "serde_json::Map::is_empty",
        rename = "parameters"
    )]
    pub parameters: serde_json::Map<String, serde_json::Value>,
    /// The data files, in case order.
    pub files: Vec<FileEntry>,
}

/// One data file of a suite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// File name inside the suite directory (no directories).
    pub path: String,
    /// What kind of cases it holds, which fixes its tensors.
    pub kind: Kind,
    /// Index of its first case.
    pub first_case: u64,
    /// Number of cases in it.
    pub case_count: u64,
    /// Exact size in bytes.
    pub bytes: u64,
    /// SHA-256 of its contents, lowercase hex.
    pub sha256: String,
}

impl Manifest {
    /// Serialises the manifest exactly as it is stored (pretty JSON and a final newline).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut text = serde_json::to_vec_pretty(self).expect("a manifest always serialises");
        text.push(b'\n');
        text
    }

    /// Parses and validates a manifest; the error says what is wrong (the caller adds the path).
    pub fn parse(bytes: &[u8]) -> Result<Manifest, String> {
        // Check the format tag first so that a wrong file gets a clear message, not a list of
        // missing fields.
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
        match value.get("format").and_then(|f| f.as_str()) {
            Some(FORMAT) => {}
            Some(other) => {
                return Err(format!(
                    "format is `{other}`, expected `{FORMAT}`: this is not a vector suite"
                ))
            }
            None => {
                return Err(format!(
                    "no `format` field: expected \"format\": \"{FORMAT}\""
                ))
            }
        }
        if let Some(version) = value.get("format_version").and_then(|v| v.as_u64()) {
            if version != u64::from(FORMAT_VERSION) {
                return Err(format!(
                    "format_version is {version}, but this golden reads version {FORMAT_VERSION}: \
                     use the golden release that wrote the suite, or regenerate it"
                ));
            }
        }
        let manifest: Manifest =
            serde_json::from_value(value).map_err(|e| format!("malformed manifest: {e}"))?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Checks the manifest's internal consistency (everything that needs no data file).
    pub fn validate(&self) -> Result<(), String> {
        if self.spec_version != SPEC_VERSION {
            return Err(format!(
                "spec_version is {}, but this golden implements numeric contract version \
                 {SPEC_VERSION} (docs/numerics.md)",
                self.spec_version
            ));
        }
        if self.suite.is_empty() {
            return Err("suite name is empty".into());
        }
        if self.level > 3 {
            return Err(format!("level is {}, expected 0 to 3", self.level));
        }
        if self.directed_cases > self.case_count {
            return Err(format!(
                "directed_cases ({}) exceeds case_count ({})",
                self.directed_cases, self.case_count
            ));
        }
        if self.categories.is_empty() || self.categories.len() > usize::from(u16::MAX) + 1 {
            return Err(format!(
                "{} categories: expected between 1 and 65536",
                self.categories.len()
            ));
        }
        let mut next_case = 0u64;
        for (i, file) in self.files.iter().enumerate() {
            if !is_plain_file_name(&file.path) {
                return Err(format!(
                    "files[{i}].path `{}` is not a plain file name: data files must lie inside \
                     the suite directory",
                    file.path
                ));
            }
            if self.files[..i].iter().any(|f| f.path == file.path) {
                return Err(format!("files[{i}].path `{}` is listed twice", file.path));
            }
            if file.first_case != next_case {
                return Err(format!(
                    "files[{i}] ({}) starts at case {}, expected {next_case}: files must cover \
                     the cases in order without gaps",
                    file.path, file.first_case
                ));
            }
            if file.case_count == 0 {
                return Err(format!("files[{i}] ({}) holds no cases", file.path));
            }
            if !is_sha256_hex(&file.sha256) {
                return Err(format!(
                    "files[{i}].sha256 `{}` is not 64 lowercase hex digits",
                    file.sha256
                ));
            }
            next_case = next_case
                .checked_add(file.case_count)
                .ok_or("case counts overflow")?;
        }
        if next_case != self.case_count {
            return Err(format!(
                "the files hold {next_case} cases but case_count is {}",
                self.case_count
            ));
        }
        Ok(())
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A name that stays inside its directory on every platform: no separators, not `.`/`..`, only
/// portable characters.
fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            spec_version: SPEC_VERSION,
            suite: "mac-bf16".into(),
            level: 0,
            precision: Some("bf16".into()),
            seed: u64::MAX,
            generator_version: 1,
            case_count: 10,
            directed_cases: 4,
            categories: vec!["tie".into(), "random".into()],
            parameters: serde_json::Map::new(),
            files: vec![
                FileEntry {
                    path: "cases-00000.safetensors".into(),
                    kind: Kind::Gemm,
                    first_case: 0,
                    case_count: 6,
                    bytes: 100,
                    sha256: sha256_hex(b"x"),
                },
                FileEntry {
                    path: "cases-00001.safetensors".into(),
                    kind: Kind::Gemm,
                    first_case: 6,
                    case_count: 4,
                    bytes: 100,
                    sha256: sha256_hex(b"y"),
                },
            ],
        }
    }

    type Breaker = fn(&mut Manifest);

    #[test]
    fn round_trips_and_is_stable() {
        let m = sample();
        let bytes = m.to_bytes();
        assert_eq!(Manifest::parse(&bytes).unwrap(), m);
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.starts_with("{\n  \"format\": \"pocforge-vectors\",\n  \"format_version\": 1,")
        );
        assert!(
            text.contains("\"seed\": 18446744073709551615"),
            "u64 seeds are exact"
        );
        assert!(!text.contains("parameters"), "empty parameters are omitted");
        assert!(text.contains("\"kind\": \"gemm\""));
    }

    #[test]
    fn rejects_inconsistent_manifests_with_reasons() {
        let cases: Vec<(Breaker, &str)> = vec![
            (
                |m| m.files[1].first_case = 5,
                "starts at case 5, expected 6",
            ),
            (|m| m.case_count = 11, "hold 10 cases but case_count is 11"),
            (
                |m| m.files[0].path = "../etc/passwd".into(),
                "not a plain file name",
            ),
            (
                |m| m.files[1].path = m.files[0].path.clone(),
                "listed twice",
            ),
            (|m| m.files[0].sha256 = "ABC".into(), "64 lowercase hex"),
            (|m| m.spec_version = 2, "numeric contract version 1"),
            (|m| m.directed_cases = 11, "exceeds case_count"),
            (|m| m.categories.clear(), "categories"),
        ];
        for (break_it, needle) in cases {
            let mut m = sample();
            break_it(&mut m);
            let err = Manifest::parse(&m.to_bytes()).unwrap_err();
            assert!(err.contains(needle), "{err} should mention {needle}");
        }
    }

    #[test]
    fn rejects_foreign_and_future_files() {
        let err = Manifest::parse(b"{\"format\":\"other\"}").unwrap_err();
        assert!(err.contains("not a vector suite"), "{err}");
        let err = Manifest::parse(b"[1,2]").unwrap_err();
        assert!(err.contains("no `format` field"), "{err}");
        let future = String::from_utf8(sample().to_bytes())
            .unwrap()
            .replace("\"format_version\": 1", "\"format_version\": 2");
        let err = Manifest::parse(future.as_bytes()).unwrap_err();
        assert!(err.contains("format_version is 2"), "{err}");
        let unknown_kind = String::from_utf8(sample().to_bytes())
            .unwrap()
            .replace("\"kind\": \"gemm\"", "\"kind\": \"teleport\"");
        let err = Manifest::parse(unknown_kind.as_bytes()).unwrap_err();
        assert!(err.contains("teleport"), "{err}");
        assert!(Manifest::parse(b"not json")
            .unwrap_err()
            .contains("not valid JSON"));
    }
}
