//! The instance hierarchy and signal declarations of a Verilog design, read from its text.
//!
//! Fault injection names internal state (`pe:2,3:acc`, a word of an operand buffer); this module
//! turns such names into hierarchical Verilog names by reading the design the simulator builds,
//! rather than assuming how the RTL is organised. It understands the regular Verilog that
//! rust-hdl writes (one declaration or instantiation per line), which is all the simulator
//! builds; it is not a general Verilog parser.

use std::collections::HashMap;

/// A declared signal of a module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signal {
    /// Its name (`q`, `acc$q`, `mem`).
    pub name: String,
    /// Bits per element.
    pub width: u32,
    /// Elements of a memory (`reg [15:0] mem [63:0]` has 64), `None` for a plain signal.
    pub words: Option<u32>,
    /// Whether it is a `reg` (state or procedural), as opposed to a `wire`.
    pub is_reg: bool,
}

/// One module: its signals and the instances it contains.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Module {
    /// Declared signals, in order.
    pub signals: Vec<Signal>,
    /// Instances: (instance name, module name), in order.
    pub instances: Vec<(String, String)>,
}

impl Module {
    /// The signal called `name`.
    pub fn signal(&self, name: &str) -> Option<&Signal> {
        self.signals.iter().find(|s| s.name == name)
    }

    /// The module of instance `name`.
    pub fn instance(&self, name: &str) -> Option<&str> {
        self.instances
            .iter()
            .find(|(i, _)| i == name)
            .map(|(_, m)| m.as_str())
    }
}

/// The modules of a design, with its top module's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hierarchy {
    /// The top module.
    pub top: String,
    /// Every module by name.
    pub modules: HashMap<String, Module>,
}

/// A signal found by its hierarchical path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located<'h> {
    /// Instance names from the top down, then the signal: `top.core.pes$3.acc.q`.
    pub path: String,
    /// The module that declares the signal.
    pub module: &'h str,
    /// The signal.
    pub signal: &'h Signal,
}

fn ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$'
}

/// `[hi:lo]` → number of elements, if the bounds are literal.
fn range_len(text: &str) -> Option<u32> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?;
    let (hi, lo) = inner.split_once(':')?;
    let (hi, lo): (i64, i64) = (hi.trim().parse().ok()?, lo.trim().parse().ok()?);
    u32::try_from((hi - lo).abs() + 1).ok()
}

/// Parses one declaration line (`input wire [3:0] a;`, `reg[15:0] mem[15:0];`, `wire x;`).
fn parse_declaration(line: &str) -> Option<Signal> {
    let mut rest = line.trim().strip_suffix(';')?.trim();
    for direction in ["input", "output"] {
        if let Some(r) = rest.strip_prefix(direction) {
            rest = r.trim_start();
        }
    }
    let is_reg = if let Some(r) = rest.strip_prefix("reg") {
        rest = r;
        true
    } else if let Some(r) = rest.strip_prefix("wire") {
        rest = r;
        false
    } else {
        return None;
    };
    if rest.starts_with(ident) {
        return None; // `register…`, `wired…`: not a declaration keyword
    }
    rest = rest.trim_start();
    if let Some(r) = rest.strip_prefix("signed") {
        rest = r.trim_start();
    }
    let mut width = 1;
    if rest.starts_with('[') {
        let close = rest.find(']')?;
        width = range_len(&rest[..=close])?;
        rest = rest[close + 1..].trim_start();
    }
    let name: String = rest.chars().take_while(|&c| ident(c)).collect();
    if name.is_empty() {
        return None;
    }
    let after = rest[name.len()..].trim();
    let words = if after.is_empty() {
        None
    } else {
        Some(range_len(after)?)
    };
    Some(Signal {
        name,
        width,
        words,
        is_reg,
    })
}

impl Hierarchy {
    /// Reads the modules of `verilog`; `top` must be one of them.
    pub fn parse(verilog: &str, top: &str) -> Result<Self, String> {
        let mut modules: HashMap<String, Module> = HashMap::new();
        let mut lines_of: Vec<(String, Vec<&str>)> = Vec::new();
        let mut current: Option<(String, Vec<&str>)> = None;
        for line in verilog.lines() {
            let trimmed = line.trim_start();
            if current.is_none() {
                if let Some(rest) = trimmed.strip_prefix("module ") {
                    let name: String = rest.chars().take_while(|&c| ident(c)).collect();
                    current = Some((name, Vec::new()));
                }
                continue;
            }
            if trimmed.starts_with("endmodule") {
                lines_of.extend(current.take());
                continue;
            }
            if let Some((_, lines)) = current.as_mut() {
                lines.push(trimmed);
            }
        }
        let names: std::collections::HashSet<String> =
            lines_of.iter().map(|(n, _)| n.clone()).collect();
        for (name, lines) in &lines_of {
            let mut module = Module::default();
            for line in lines {
                if let Some(signal) = parse_declaration(line) {
                    module.signals.push(signal);
                    continue;
                }
                // `modname instname(`
                let mut words = line.split_whitespace();
                if let (Some(m), Some(i)) = (words.next(), words.next()) {
                    if names.contains(m) {
                        if let Some(inst) = i.strip_suffix('(') {
                            if !inst.is_empty() && inst.chars().all(ident) {
                                module.instances.push((inst.to_owned(), m.to_owned()));
                            }
                        }
                    }
                }
            }
            modules.insert(name.clone(), module);
        }
        if !modules.contains_key(top) {
            return Err(format!("the design has no module `{top}`"));
        }
        Ok(Self {
            top: top.to_owned(),
            modules,
        })
    }

    /// The module called `name`.
    pub fn module(&self, name: &str) -> Option<&Module> {
        self.modules.get(name)
    }

    /// Every instance path (from the top module, `top.core.pes$3`) with its module, depth
    /// first in declaration order.
    pub fn instances(&self) -> Vec<(String, &str)> {
        let mut out = Vec::new();
        let mut stack = vec![(self.top.clone(), self.top.as_str(), 0usize)];
        while let Some((path, module, depth)) = stack.pop() {
            out.push((path.clone(), module));
            // A module instantiating itself would loop; real designs are at most a few dozen deep.
            if depth > 64 {
                continue;
            }
            if let Some(m) = self.modules.get(module) {
                for (inst, sub) in m.instances.iter().rev() {
                    stack.push((format!("{path}.{inst}"), sub.as_str(), depth + 1));
                }
            }
        }
        out
    }

    /// The first instance (depth first) named `name`, as (path, module).
    pub fn find_instance(&self, name: &str) -> Option<(String, &str)> {
        self.instances()
            .into_iter()
            .find(|(path, _)| path.rsplit('.').next() == Some(name))
    }

    /// The module of the instance at `path` (`top.core.pes$3`).
    pub fn module_at(&self, path: &str) -> Result<&str, String> {
        let mut parts = path.split('.');
        if parts.next() != Some(self.top.as_str()) {
            return Err(format!(
                "`{path}` does not start with the top module `{}`",
                self.top
            ));
        }
        let mut module = self.top.as_str();
        let mut walked = self.top.clone();
        for part in parts {
            let m = &self.modules[module];
            module = m.instance(part).ok_or_else(|| {
                let names: Vec<&str> = m.instances.iter().map(|(i, _)| i.as_str()).collect();
                format!(
                    "`{walked}` has no instance `{part}`; its instances are: {}",
                    if names.is_empty() {
                        "(none)".to_owned()
                    } else {
                        names.join(", ")
                    }
                )
            })?;
            walked = format!("{walked}.{part}");
        }
        Ok(module)
    }

    /// The signal at `path` (`top.core.pes$3.acc.q`: instances, then the signal's name).
    pub fn locate(&self, path: &str) -> Result<Located<'_>, String> {
        let (scope, name) = path
            .rsplit_once('.')
            .ok_or_else(|| format!("`{path}` names no signal: expected <instances>.<signal>"))?;
        let module = self.module_at(scope)?;
        let (module, m) = self
            .modules
            .get_key_value(module)
            .expect("module_at returns modules of the design");
        let signal = m.signal(name).ok_or_else(|| {
            let names: Vec<&str> = m
                .signals
                .iter()
                .filter(|s| s.is_reg)
                .map(|s| s.name.as_str())
                .collect();
            format!(
                "`{scope}` (module `{module}`) has no signal `{name}`; its registers are: {}",
                names.join(", ")
            )
        })?;
        Ok(Located {
            path: path.to_owned(),
            module,
            signal,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DESIGN: &str = "\
module top(clock,x);
    input wire  clock;
    output reg  [7:0] x;
    reg  [31:0] core$d;
    top$core core(
        .clock(clock)
    );
endmodule // top
module top$core(clock);
    input wire  clock;
    top$ff acc(
        .clock(clock)
    );
    top$ram bank$0(
    );
endmodule
module top$ff(d,q,clock);
    input wire  [31:0] d;
    output reg  [31:0] q;
    input wire  clock;
endmodule
module top$ram(read_data);
    output reg  [15:0] read_data;
    reg[15:0] mem[63:0];
endmodule
";

    #[test]
    fn declarations_parse() {
        let s = parse_declaration("input wire  [3:0] read_address;").unwrap();
        assert_eq!(
            (s.name.as_str(), s.width, s.words, s.is_reg),
            ("read_address", 4, None, false)
        );
        let s = parse_declaration("reg[15:0] mem[15:0];").unwrap();
        assert_eq!(
            (s.name.as_str(), s.width, s.words, s.is_reg),
            ("mem", 16, Some(16), true)
        );
        let s = parse_declaration("output reg  captured;").unwrap();
        assert_eq!((s.width, s.is_reg), (1, true));
        assert!(parse_declaration("assign x = y;").is_none());
        assert!(parse_declaration("registers x;").is_none());
    }

    #[test]
    fn paths_resolve_and_errors_list_what_exists() {
        let h = Hierarchy::parse(DESIGN, "top").unwrap();
        let q = h.locate("top.core.acc.q").unwrap();
        assert_eq!((q.module, q.signal.width), ("top$ff", 32));
        let mem = h.locate("top.core.bank$0.mem").unwrap();
        assert_eq!(mem.signal.words, Some(64));
        let err = h.locate("top.core.nothing.q").unwrap_err();
        assert!(err.contains("acc, bank$0"), "{err}");
        let err = h.locate("top.core.acc.z").unwrap_err();
        assert!(err.contains("registers are: q"), "{err}");
        assert_eq!(h.find_instance("bank$0").unwrap().0, "top.core.bank$0");
        assert_eq!(h.instances().len(), 4);
        assert!(Hierarchy::parse(DESIGN, "nope").is_err());
    }
}
