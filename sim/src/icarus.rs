//! Running a test bench under Icarus Verilog: the speed baseline for the Verilated model.
//!
//! Issue 5 asks the Verilated accelerator to be at least 50× faster than Icarus on the same
//! work; this harness compiles a test bench with `iverilog -g2012` and runs it with `vvp`,
//! timing both steps. The test bench reports how many clock cycles it simulated by printing a
//! line `POCFORGE_CYCLES=<n>`; the harness turns that into cycles per second.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::SimError;
use crate::toolchain::on_path;
use crate::verilate::default_cache_dir;

/// The line prefix a test bench prints to report simulated cycles.
pub const CYCLES_MARKER: &str = "POCFORGE_CYCLES=";

/// What to install when Icarus is missing.
pub const INSTALL_HINT: &str = "apt-get install iverilog (scripts/setup does this)";

/// One finished Icarus run.
#[derive(Clone, Debug)]
pub struct IcarusRun {
    /// Everything the simulation printed.
    pub stdout: String,
    /// Time `iverilog` took to compile.
    pub compile_time: Duration,
    /// Time `vvp` took to simulate.
    pub run_time: Duration,
    /// Cycles the bench reported (`POCFORGE_CYCLES=`), if it did.
    pub cycles: Option<u64>,
}

impl IcarusRun {
    /// Simulated clock cycles per wall-clock second of `vvp`.
    pub fn cycles_per_second(&self) -> Option<f64> {
        let cycles = self.cycles? as f64;
        Some(cycles / self.run_time.as_secs_f64().max(1e-9))
    }
}

/// Compiles `sources` (file name, Verilog text) with top module `top` and runs the simulation
/// with the given `+plusargs` (without the `+`).
pub fn run(sources: &[(&str, &str)], top: &str, plusargs: &[&str]) -> Result<IcarusRun, SimError> {
    let iverilog = on_path("iverilog").ok_or_else(|| SimError::Icarus {
        message: format!("`iverilog` is not on PATH; install it: {INSTALL_HINT}"),
    })?;
    let vvp = on_path("vvp").ok_or_else(|| SimError::Icarus {
        message: format!("`vvp` is not on PATH; install it: {INSTALL_HINT}"),
    })?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir: PathBuf = default_cache_dir()
        .join("icarus")
        .join(format!("{}-{nanos}", std::process::id()));
    fs::create_dir_all(&dir).map_err(|e| SimError::io(format!("creating {}", dir.display()), e))?;
    let result = run_in(&dir, &iverilog, &vvp, sources, top, plusargs);
    let _ = fs::remove_dir_all(&dir);
    result
}

fn run_in(
    dir: &std::path::Path,
    iverilog: &std::path::Path,
    vvp: &std::path::Path,
    sources: &[(&str, &str)],
    top: &str,
    plusargs: &[&str],
) -> Result<IcarusRun, SimError> {
    let mut files = Vec::new();
    for (name, text) in sources {
        let path = dir.join(name);
        fs::write(&path, text)
            .map_err(|e| SimError::io(format!("writing {}", path.display()), e))?;
        files.push(path);
    }
    let image = dir.join("sim.vvp");
    let started = Instant::now();
    let output = Command::new(iverilog)
        .args(["-g2012", "-s", top, "-o"])
        .arg(&image)
        .args(&files)
        .output()
        .map_err(|e| SimError::Icarus {
            message: format!("cannot run iverilog: {e}"),
        })?;
    let compile_time = started.elapsed();
    if !output.status.success() {
        return Err(SimError::Icarus {
            message: format!(
                "iverilog failed ({}):\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    let started = Instant::now();
    let output = Command::new(vvp)
        .arg("-n")
        .arg(&image)
        .args(plusargs.iter().map(|a| format!("+{a}")))
        .output()
        .map_err(|e| SimError::Icarus {
            message: format!("cannot run vvp: {e}"),
        })?;
    let run_time = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(SimError::Icarus {
            message: format!(
                "the simulation failed ({}):\n{stdout}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    let cycles = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix(CYCLES_MARKER)?.trim().parse().ok());
    Ok(IcarusRun {
        stdout,
        compile_time,
        run_time,
        cycles,
    })
}
