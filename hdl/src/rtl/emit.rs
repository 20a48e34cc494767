//! Verilog emission: elaborate the accelerator for a configuration, let rust-hdl write it, and
//! merge the modules that are identical up to their names.
//!
//! rust-hdl writes one module per block *instance*, so a 16×16 array would produce 256 copies of
//! the PE module (and thousands of flip-flop modules). [`dedup_modules`] keeps the first of every
//! group of modules whose text is identical once the module's own name is blanked out, and
//! renames the instantiations of the others; it repeats until nothing changes (merging the
//! flip-flops makes the PEs identical, and so on up). Behaviour is unchanged: only names differ
//! between merged modules.

use std::collections::HashMap;

use rust_hdl::prelude::*;

use super::top::Accelerator;
use super::{ConfigError, HdlConfig};

/// Name of the top module in the emitted Verilog.
pub const TOP_MODULE: &str = "top";

/// Elaborates `config` and returns deduplicated Verilog whose top module is [`TOP_MODULE`].
pub fn verilog(config: &HdlConfig) -> Result<String, ConfigError> {
    config.validate()?;
    // The buffers' address width: two halves of `kdepth` k steps.
    let raw = match config.kdepth {
        16 => raw_verilog::<5>(config),
        32 => raw_verilog::<6>(config),
        64 => raw_verilog::<7>(config),
        128 => raw_verilog::<8>(config),
        256 => raw_verilog::<9>(config),
        512 => raw_verilog::<10>(config),
        1024 => raw_verilog::<11>(config),
        other => unreachable!("validate() accepts only 16..=1024 powers of two, got {other}"),
    };
    Ok(dedup_modules(&raw))
}

/// The processing element alone (top module `top`) with `interleave` adder stages, for timing
/// the critical path.
pub fn pe_verilog(interleave: usize) -> Result<String, ConfigError> {
    if super::pe::stage_mask(interleave).is_none() {
        return Err(ConfigError(format!(
            "interleave {interleave}: must be one of {:?}",
            super::pe::INTERLEAVES
        )));
    }
    let mut pe = super::pe::Pe::new(interleave);
    pe.connect_all();
    Ok(dedup_modules(&generate_verilog(&pe)))
}

fn raw_verilog<const AW: usize>(config: &HdlConfig) -> String {
    let mut uut = Accelerator::<AW>::new(config);
    uut.connect_all();
    generate_verilog(&uut)
}

/// One `module … endmodule` block.
struct Module {
    name: String,
    text: String,
}

fn split_modules(verilog: &str) -> (String, Vec<Module>) {
    let mut prelude = String::new();
    let mut modules = Vec::new();
    let mut current: Option<Module> = None;
    for line in verilog.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if current.is_none() {
            if let Some(rest) = trimmed.strip_prefix("module ") {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '$')
                    .collect();
                current = Some(Module {
                    name,
                    text: line.to_owned(),
                });
            } else {
                prelude.push_str(line);
            }
            continue;
        }
        let module = current.as_mut().expect("inside a module");
        module.text.push_str(line);
        if trimmed.starts_with("endmodule") {
            modules.push(current.take().expect("inside a module"));
        }
    }
    if let Some(unterminated) = current {
        modules.push(unterminated);
    }
    (prelude, modules)
}

/// Replaces whole identifiers (`[A-Za-z0-9_$]+`) found in `map`.
fn rename_identifiers(text: &str, map: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut ident = String::new();
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$';
    for c in text.chars() {
        if is_ident(c) {
            ident.push(c);
            continue;
        }
        if !ident.is_empty() {
            out.push_str(map.get(&ident).map(String::as_str).unwrap_or(&ident));
            ident.clear();
        }
        out.push(c);
    }
    if !ident.is_empty() {
        out.push_str(map.get(&ident).map(String::as_str).unwrap_or(&ident));
    }
    out
}

/// Merges modules that are identical up to their own names (see the module documentation).
pub fn dedup_modules(verilog: &str) -> String {
    let (prelude, mut modules) = split_modules(verilog);
    loop {
        let mut canonical: HashMap<String, String> = HashMap::new(); // body → kept name
        let mut renames: HashMap<String, String> = HashMap::new();
        for m in &modules {
            let mut self_map = HashMap::new();
            self_map.insert(m.name.clone(), "\u{0}SELF".to_owned());
            let body = rename_identifiers(&m.text, &self_map);
            match canonical.get(&body) {
                Some(kept) => {
                    renames.insert(m.name.clone(), kept.clone());
                }
                None => {
                    canonical.insert(body, m.name.clone());
                }
            }
        }
        if renames.is_empty() {
            break;
        }
        modules.retain(|m| !renames.contains_key(&m.name));
        for m in &mut modules {
            m.text = rename_identifiers(&m.text, &renames);
        }
    }
    let mut out = prelude;
    for m in modules {
        out.push_str(&m.text);
    }
    out
}

/// Number of `module` definitions in a Verilog text.
pub fn module_count(verilog: &str) -> usize {
    split_modules(verilog).1.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_merges_identical_modules_and_renames_instances() {
        let v = "module top(a);\n  leaf$1 u1(a);\n  leaf$10 u2(a);\nendmodule\n\
                 module leaf$1(a);\n  input a;\nendmodule\n\
                 module leaf$10(a);\n  input a;\nendmodule\n";
        let d = dedup_modules(v);
        assert_eq!(module_count(&d), 2);
        assert!(d.contains("leaf$1 u2(a)"), "{d}");
        assert!(!d.contains("leaf$10"), "{d}");
    }

    #[test]
    fn emitted_design_is_deduplicated() {
        let config = HdlConfig {
            rows: 2,
            cols: 2,
            kdepth: 16,
            ..HdlConfig::default()
        };
        let v = verilog(&config).unwrap();
        assert!(
            v.contains(&format!("module {TOP_MODULE}(")),
            "top module missing"
        );
        // Four PEs (and their flip-flops) collapse into one PE module.
        assert!(
            v.contains("module top$core$pes$0("),
            "the first PE module is kept"
        );
        for n in 1..4 {
            assert!(
                !v.contains(&format!("module top$core$pes${n}(")),
                "PE {n} was not merged"
            );
        }
        assert!(module_count(&v) < 60, "{} modules left", module_count(&v));
        std::fs::create_dir_all(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")).unwrap();
        std::fs::write(
            concat!(env!("CARGO_MANIFEST_DIR"), "/../target/hdl-test-2x2.v"),
            &v,
        )
        .unwrap();
    }
}
