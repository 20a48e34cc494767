//! Fault injection: flip or force bits of the accelerator's internal state while it runs, so
//! that a test harness can prove it *detects* a broken chip.
//!
//! Faults are injected by the simulator, not by the RTL: the faulted variables are made writable
//! at build time (Verilator `public_flat_rw` for exactly those variables, plus VPI), and the
//! shim changes them after the rising edge of the chosen cycles ([`crate::shim`]). The design
//! itself is unchanged, and a fault build has its own cache entry.
//!
//! # Grammar
//!
//! ```text
//! FAULT  := TARGET ":bit" N ":" MODE
//! TARGET := "pe:" ROW "," COL ":" REGISTER        a register of a processing element
//!         | "buf:" ("a" | "b") ":bank" I ":word" W  a word of an operand buffer bank
//!         | "sig:" PATH ["[" WORD "]"]             any register by hierarchical name
//! MODE   := ("stuck0" | "stuck1") ["@" FROM [".." UNTIL]]   forced from cycle FROM (default 1)
//!         | "flip@" AT [".." UNTIL]                          inverted at cycle AT (…to UNTIL)
//! ```
//!
//! `REGISTER` is `acc` (the fused adder's last stage, which every accumulation passes each
//! round), `drain` and `init` (both `sh0`, the first entry of the PE's init/drain chain), or the
//! instance name of any register of the PE module
//! (`r_a1`, `a_r`, …). Cycles count rising edges from 1, as `Model::cycle` does. Examples:
//!
//! ```text
//! pe:2,3:acc:bit7:stuck1            PE row 2, column 3: accumulator bit 7 stuck at 1
//! buf:a:bank1:word5:bit3:flip@1000  operand buffer A, bank 1, word 5, bit 3 flipped once
//! sig:top.core.pes$0.sh0.q:bit31:stuck0@5000..9000
//! ```
//!
//! Names are resolved against the emitted Verilog ([`crate::hier`]): PE `(r, c)` is the
//! instance `pes$<r·cols + c>`, buffer bank `i` the instance `a_banks$<i>`/`b_banks$<i>`,
//! wherever they sit in the hierarchy. A name that does not exist is an error listing the
//! valid targets ([`targets`]).

use std::fmt;
use std::str::FromStr;

use crate::error::SimError;
use crate::hier::Hierarchy;
use crate::shim;

/// What a fault does to its bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultMode {
    /// Inverts the bit (a single-event upset when active for one cycle).
    Flip,
    /// Forces the bit to 0.
    Stuck0,
    /// Forces the bit to 1.
    Stuck1,
}

impl FaultMode {
    /// The shim's code for the mode.
    pub fn code(self) -> u32 {
        match self {
            FaultMode::Flip => shim::FAULT_FLIP,
            FaultMode::Stuck0 => shim::FAULT_STUCK0,
            FaultMode::Stuck1 => shim::FAULT_STUCK1,
        }
    }
}

/// A resolved fault, as the model applies it: one bit of one signal (or memory word), by its
/// hierarchical name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignalFault {
    /// What the user asked for (the spec text), for messages and reports.
    pub label: String,
    /// Hierarchical name of the signal (`top.core.pes$3.acc.q`).
    pub signal: String,
    /// The word of a memory, `None` for a plain signal.
    pub word: Option<u32>,
    /// The bit.
    pub bit: u32,
    /// What happens to it.
    pub mode: FaultMode,
    /// First cycle the fault is active.
    pub from: u64,
    /// Last cycle the fault is active.
    pub until: u64,
}

impl fmt::Display for SignalFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fault `{}` ({}", self.label, self.signal)?;
        if let Some(word) = self.word {
            write!(f, "[{word}]")?;
        }
        write!(f, " bit {})", self.bit)
    }
}

/// The name VPI knows a hierarchical path by: components with characters other than letters,
/// digits and `_` (rust-hdl's `pes$3`) are Verilog escaped identifiers, `\pes$3 ` (a backslash,
/// the name, a space), as Verilator's scope table spells them.
pub fn vpi_name(path: &str) -> String {
    path.split('.')
        .map(|part| {
            if part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                part.to_owned()
            } else {
                format!("\\{part} ")
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Which operand buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operand {
    /// The A (row) operand banks.
    A,
    /// The B (column) operand banks.
    B,
}

/// What a fault spec points at, before resolution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A register of the processing element at `row`, `col`.
    Pe {
        /// Array row.
        row: u32,
        /// Array column.
        col: u32,
        /// `acc`, `drain`, `init` or a register instance name of the PE.
        register: String,
    },
    /// A word of an operand buffer bank.
    Buffer {
        /// A or B.
        operand: Operand,
        /// Bank (A: array row, B: array column).
        bank: u32,
        /// Word (k step).
        word: u32,
    },
    /// A signal by hierarchical name.
    Signal {
        /// `top.core.pes$0.acc.q`.
        path: String,
        /// Word of a memory.
        word: Option<u32>,
    },
}

/// A parsed fault, see the [module documentation](self) for the grammar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultSpec {
    /// The text it was parsed from.
    pub text: String,
    /// Where.
    pub target: Target,
    /// Which bit.
    pub bit: u32,
    /// What happens.
    pub mode: FaultMode,
    /// First active cycle.
    pub from: u64,
    /// Last active cycle.
    pub until: u64,
}

const GRAMMAR: &str = "expected pe:ROW,COL:REGISTER:bitN:MODE, buf:a|b:bankI:wordW:bitN:MODE or \
     sig:PATH[:…]:bitN:MODE, with MODE stuck0, stuck1, stuck0@FROM[..UNTIL] or flip@CYCLE[..UNTIL] \
     (docs/sim.md, \"Fault injection\")";

fn number<T: FromStr>(text: &str, what: &str, spec: &str) -> Result<T, SimError> {
    text.trim().parse().map_err(|_| SimError::Fault {
        message: format!("`{spec}`: {what} `{text}` is not a number; {GRAMMAR}"),
    })
}

fn prefixed<'t>(text: &'t str, prefix: &str, spec: &str) -> Result<&'t str, SimError> {
    text.strip_prefix(prefix).ok_or_else(|| SimError::Fault {
        message: format!("`{spec}`: expected `{prefix}…` but found `{text}`; {GRAMMAR}"),
    })
}

/// `N` or `N..M` (inclusive); `N..` means from N on.
fn window(text: &str, spec: &str) -> Result<(u64, u64), SimError> {
    match text.split_once("..") {
        Some((from, "")) => Ok((number(from, "cycle", spec)?, u64::MAX)),
        Some((from, until)) => {
            let (from, until) = (number(from, "cycle", spec)?, number(until, "cycle", spec)?);
            if until < from {
                return Err(SimError::Fault {
                    message: format!("`{spec}`: cycle window {from}..{until} is empty"),
                });
            }
            Ok((from, until))
        }
        None => {
            let at = number(text, "cycle", spec)?;
            Ok((at, at))
        }
    }
}

impl FromStr for FaultSpec {
    type Err = SimError;

    fn from_str(text: &str) -> Result<Self, SimError> {
        let spec = text.trim();
        let fail = |message: String| SimError::Fault {
            message: format!("`{spec}`: {message}; {GRAMMAR}"),
        };
        let (rest, mode_text) = spec
            .rsplit_once(':')
            .ok_or_else(|| fail("no mode".into()))?;
        let (target_text, bit_text) = rest.rsplit_once(':').ok_or_else(|| fail("no bit".into()))?;
        let bit = number(prefixed(bit_text, "bit", spec)?, "bit", spec)?;
        let (mode_name, cycles) = match mode_text.split_once('@') {
            Some((m, c)) => (m, Some(c)),
            None => (mode_text, None),
        };
        let (mode, (from, until)) = match (mode_name, cycles) {
            ("stuck0", c) => (
                FaultMode::Stuck0,
                c.map_or(Ok((1, u64::MAX)), |c| window(c, spec))?,
            ),
            ("stuck1", c) => (
                FaultMode::Stuck1,
                c.map_or(Ok((1, u64::MAX)), |c| window(c, spec))?,
            ),
            ("flip", Some(c)) => (FaultMode::Flip, window(c, spec)?),
            ("flip", None) => return Err(fail("`flip` needs a cycle: flip@CYCLE".into())),
            (other, _) => return Err(fail(format!("unknown mode `{other}`"))),
        };
        let target = if let Some(rest) = target_text.strip_prefix("pe:") {
            let (position, register) = rest
                .split_once(':')
                .ok_or_else(|| fail("a PE target is pe:ROW,COL:REGISTER".into()))?;
            let (row, col) = position
                .split_once(',')
                .ok_or_else(|| fail(format!("PE position `{position}` is not ROW,COL")))?;
            if register.is_empty() {
                return Err(fail("no PE register named".into()));
            }
            Target::Pe {
                row: number(row, "row", spec)?,
                col: number(col, "column", spec)?,
                register: register.to_owned(),
            }
        } else if let Some(rest) = target_text.strip_prefix("buf:") {
            let parts: Vec<&str> = rest.split(':').collect();
            let [operand, bank, word] = parts[..] else {
                return Err(fail("a buffer target is buf:a|b:bankI:wordW".into()));
            };
            let operand = match operand {
                "a" | "A" => Operand::A,
                "b" | "B" => Operand::B,
                other => return Err(fail(format!("buffer `{other}` is neither a nor b"))),
            };
            Target::Buffer {
                operand,
                bank: number(prefixed(bank, "bank", spec)?, "bank", spec)?,
                word: number(prefixed(word, "word", spec)?, "word", spec)?,
            }
        } else if let Some(rest) = target_text.strip_prefix("sig:") {
            let (path, word) = match rest.strip_suffix(']').and_then(|r| r.rsplit_once('[')) {
                Some((path, word)) => (path, Some(number(word, "word", spec)?)),
                None => (rest, None),
            };
            if path.is_empty() {
                return Err(fail("no signal path".into()));
            }
            Target::Signal {
                path: path.to_owned(),
                word,
            }
        } else {
            return Err(fail(format!("unknown target `{target_text}`")));
        };
        Ok(FaultSpec {
            text: spec.to_owned(),
            target,
            bit,
            mode,
            from,
            until,
        })
    }
}

/// Friendly PE register names and the register instances they stand for.
/// The pipelined PE keeps start values and results in one chain (`sh0` … `sh{L−1}`): `sh0` is
/// the entry a finished result enters on the swap and the chain's shift writes.
pub const PE_ALIASES: &[(&str, &str)] = &[("acc", "acc"), ("drain", "sh0"), ("init", "sh0")];

/// A resolved fault: how the model applies it, and which variable the build makes writable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedFault {
    /// For the model.
    pub fault: SignalFault,
    /// (module, variable) to make `public_flat_rw`.
    pub public: (String, String),
}

/// The registers of a module that faults can target by instance name: sub-instances whose
/// module has a register `q` (rust-hdl's flip-flops), and its own registers.
fn registers_of(h: &Hierarchy, module: &str) -> Vec<String> {
    let Some(m) = h.module(module) else {
        return Vec::new();
    };
    m.instances
        .iter()
        .filter(|(_, sub)| {
            h.module(sub)
                .and_then(|s| s.signal("q"))
                .is_some_and(|q| q.is_reg)
        })
        .map(|(inst, _)| inst.clone())
        .collect()
}

/// Resolves a spec against a design with `rows × cols` PEs.
pub fn resolve(
    spec: &FaultSpec,
    h: &Hierarchy,
    rows: u32,
    cols: u32,
) -> Result<ResolvedFault, SimError> {
    let fail = |message: String| SimError::Fault {
        message: format!("`{}`: {message}", spec.text),
    };
    let (path, word) = match &spec.target {
        Target::Pe { row, col, register } => {
            if *row >= rows || *col >= cols {
                return Err(fail(format!(
                    "PE ({row}, {col}) is outside the {rows}×{cols} array (rows 0..{rows}, \
                     columns 0..{cols})"
                )));
            }
            let name = format!("pes${}", row * cols + col);
            let (pe, module) = h
                .find_instance(&name)
                .ok_or_else(|| fail(format!("the design has no PE instance `{name}`")))?;
            let instance = PE_ALIASES
                .iter()
                .find(|(alias, _)| alias == register)
                .map_or(register.as_str(), |(_, inst)| inst);
            let registers = registers_of(h, module);
            if registers.iter().any(|r| r == instance) {
                (format!("{pe}.{instance}.q"), None)
            } else if h
                .module(module)
                .and_then(|m| m.signal(instance))
                .is_some_and(|s| s.is_reg)
            {
                (format!("{pe}.{instance}"), None)
            } else {
                let aliases: Vec<String> = PE_ALIASES
                    .iter()
                    .map(|(a, i)| format!("{a} (= {i})"))
                    .collect();
                return Err(fail(format!(
                    "a PE has no register `{register}`; valid: {}, {}",
                    aliases.join(", "),
                    registers.join(", ")
                )));
            }
        }
        Target::Buffer {
            operand,
            bank,
            word,
        } => {
            let (prefix, count) = match operand {
                Operand::A => ("a_banks", rows),
                Operand::B => ("b_banks", cols),
            };
            if *bank >= count {
                return Err(fail(format!(
                    "buffer {} has banks 0..{count} (one per array {})",
                    prefix.trim_end_matches("_banks").to_uppercase(),
                    if *operand == Operand::A {
                        "row"
                    } else {
                        "column"
                    }
                )));
            }
            let name = format!("{prefix}${bank}");
            let (instance, module) = h
                .find_instance(&name)
                .ok_or_else(|| fail(format!("the design has no buffer bank `{name}`")))?;
            let memory = h
                .module(module)
                .and_then(|m| m.signals.iter().find(|s| s.words.is_some()))
                .ok_or_else(|| fail(format!("bank `{instance}` holds no memory array")))?;
            (format!("{instance}.{}", memory.name), Some(*word))
        }
        Target::Signal { path, word } => (path.clone(), *word),
    };
    let located = h.locate(&path).map_err(fail)?;
    let signal = located.signal;
    if !signal.is_reg {
        return Err(fail(format!(
            "`{path}` is a wire; faults go on registers (state), which wires follow"
        )));
    }
    match (word, signal.words) {
        (Some(w), Some(words)) if w >= words => {
            return Err(fail(format!("`{path}` has words 0..{words}, not {w}")));
        }
        (Some(_), None) => {
            return Err(fail(format!("`{path}` is not a memory; drop the [word]")));
        }
        (None, Some(words)) => {
            return Err(fail(format!(
                "`{path}` is a memory of {words} words; name one: {path}[WORD]"
            )));
        }
        _ => {}
    }
    if spec.bit >= signal.width {
        return Err(fail(format!(
            "`{path}` has {} bits (bit0..bit{}), not bit{}",
            signal.width,
            signal.width - 1,
            spec.bit
        )));
    }
    Ok(ResolvedFault {
        fault: SignalFault {
            label: spec.text.clone(),
            signal: path,
            word,
            bit: spec.bit,
            mode: spec.mode,
            from: spec.from,
            until: spec.until,
        },
        public: (located.module.to_owned(), signal.name.clone()),
    })
}

/// A human-readable list of fault targets of a design, for `--list-faults` and errors.
pub fn targets(h: &Hierarchy, rows: u32, cols: u32) -> String {
    let mut out = String::new();
    let pe = h.find_instance("pes$0");
    out.push_str(&format!(
        "pe:ROW,COL:REGISTER   ROW 0..{rows}, COL 0..{cols}; REGISTER one of: "
    ));
    let aliases: Vec<&str> = PE_ALIASES.iter().map(|(a, _)| *a).collect();
    out.push_str(&aliases.join(", "));
    if let Some((_, module)) = &pe {
        out.push_str(", ");
        out.push_str(&registers_of(h, module).join(", "));
    }
    out.push('\n');
    for (prefix, letter, count) in [("a_banks", "a", rows), ("b_banks", "b", cols)] {
        if let Some((_, module)) = h.find_instance(&format!("{prefix}$0")) {
            if let Some(memory) = h
                .module(module)
                .and_then(|m| m.signals.iter().find(|s| s.words.is_some()))
            {
                out.push_str(&format!(
                    "buf:{letter}:bankI:wordW  I 0..{count}, W 0..{}, {} bits per word\n",
                    memory.words.unwrap_or(0),
                    memory.width
                ));
            }
        }
    }
    out.push_str("sig:PATH[WORD]        any register, e.g. ");
    match &pe {
        Some((path, _)) => out.push_str(&format!("sig:{path}.acc.q")),
        None => out.push_str("sig:top.<instances>.<register>"),
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grammar_parses() {
        let f: FaultSpec = "pe:2,3:acc:bit7:stuck1".parse().unwrap();
        assert_eq!(
            f.target,
            Target::Pe {
                row: 2,
                col: 3,
                register: "acc".into()
            }
        );
        assert_eq!(
            (f.bit, f.mode, f.from, f.until),
            (7, FaultMode::Stuck1, 1, u64::MAX)
        );
        let f: FaultSpec = "buf:a:bank1:word5:bit3:flip@1000".parse().unwrap();
        assert_eq!(
            f.target,
            Target::Buffer {
                operand: Operand::A,
                bank: 1,
                word: 5
            }
        );
        assert_eq!((f.mode, f.from, f.until), (FaultMode::Flip, 1000, 1000));
        let f: FaultSpec = "sig:top.core.pes$0.sh0.q:bit31:stuck0@5000..9000"
            .parse()
            .unwrap();
        assert_eq!(
            f.target,
            Target::Signal {
                path: "top.core.pes$0.sh0.q".into(),
                word: None
            }
        );
        assert_eq!((f.from, f.until), (5000, 9000));
        let f: FaultSpec = "sig:top.x.mem[12]:bit0:stuck1@10..".parse().unwrap();
        assert_eq!(
            f.target,
            Target::Signal {
                path: "top.x.mem".into(),
                word: Some(12)
            }
        );
        assert_eq!((f.from, f.until), (10, u64::MAX));
    }

    #[test]
    fn vpi_names_escape_dollar_components() {
        assert_eq!(vpi_name("top.core.pes$5.acc.q"), "top.core.\\pes$5 .acc.q");
        assert_eq!(vpi_name("top.core"), "top.core");
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (text, needle) in [
            ("pe:2,3:acc:bit7", "bit"),
            ("pe:2,3:acc:bit7:stuck2", "unknown mode"),
            ("pe:2,3:acc:bit7:flip", "needs a cycle"),
            ("pe:2:acc:bit7:stuck1", "ROW,COL"),
            ("pe:x,3:acc:bit7:stuck1", "row `x`"),
            ("buf:c:bank1:word5:bit3:stuck0", "neither a nor b"),
            ("buf:a:1:word5:bit3:stuck0", "bank"),
            ("mem:x:bit1:stuck0", "unknown target"),
            ("pe:1,1:acc:bit1:flip@9..3", "empty"),
        ] {
            let err = text.parse::<FaultSpec>().unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
