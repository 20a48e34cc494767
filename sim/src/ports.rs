//! The top module's ports, read from the Verilog text.
//!
//! The C++ shim needs each top-level port's name, direction and width before Verilator runs, so
//! that it can be compiled into the same shared library. Rust-HDL writes a non-ANSI header
//! (`module top(clock,csr$addr,…);` followed by `input wire [7:0] csr$addr;` declarations);
//! hand-written test benches often use ANSI headers (`module m(input wire [7:0] a, …);`). Both
//! are understood, with literal bit ranges. This is not a Verilog parser: it reads the one
//! module's header and port declarations and nothing else.

use std::fmt;

use thiserror::Error;

/// Direction of a top-level port, seen from the design.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Driven by the simulator (Rust), read by the design.
    Input,
    /// Driven by the design, read by the simulator.
    Output,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Input => "input",
            Direction::Output => "output",
        })
    }
}

/// One top-level port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PortDecl {
    /// The Verilog name (`csr$addr`).
    pub name: String,
    /// Its direction.
    pub direction: Direction,
    /// Its width in bits (at least 1).
    pub width: u32,
}

impl PortDecl {
    /// The name Verilator gives the port's member in the generated C++ class.
    pub fn cpp_name(&self) -> String {
        verilator_cpp_name(&self.name)
    }
}

/// Why the port list could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PortError {
    /// No `module <top>` in the text.
    #[error("no module named `{top}` in the Verilog; the modules there are: {found}")]
    NoSuchModule {
        /// The requested top module.
        top: String,
        /// Module names that were found.
        found: String,
    },
    /// The header or a declaration is not in a form this reader understands.
    #[error("cannot read the ports of module `{top}`: {detail}")]
    Syntax {
        /// The top module.
        top: String,
        /// What was unexpected, and where.
        detail: String,
    },
    /// A port is listed in the header but never declared.
    #[error("port `{port}` of module `{top}` is listed in its header but has no input/output declaration")]
    Undeclared {
        /// The top module.
        top: String,
        /// The port.
        port: String,
    },
    /// `inout` ports have no meaning for a simulator driven through values.
    #[error(
        "port `{port}` of module `{top}` is an inout; the simulator drives only inputs and reads \
         only outputs, so wrap tristate pins in the top level"
    )]
    Inout {
        /// The top module.
        top: String,
        /// The port.
        port: String,
    },
}

/// The C++ member name Verilator gives a Verilog identifier: letters and digits stay, a `_`
/// stays unless doubled, anything else becomes `__0` and two upper-case hex digits
/// (`csr$addr` → `csr__024addr`). Mirrors `AstNode::encodeName` in Verilator 5.
pub fn verilator_cpp_name(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out = String::with_capacity(name.len() + 8);
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let keep = if i == 0 {
            c.is_ascii_alphabetic()
        } else {
            c.is_ascii_alphanumeric()
        };
        if keep {
            out.push(c as char);
        } else if c == b'_' {
            if bytes.get(i + 1) == Some(&b'_') {
                out.push_str("___05F");
                i += 1;
            } else {
                out.push('_');
            }
        } else {
            out.push_str(&format!("__0{c:02X}"));
        }
        i += 1;
    }
    out
}

/// Reads the ports of module `top` from Verilog text, in header order.
pub fn parse_ports(verilog: &str, top: &str) -> Result<Vec<PortDecl>, PortError> {
    let tokens = tokenize(&strip_comments(verilog));
    let syntax = |detail: String| PortError::Syntax {
        top: top.to_owned(),
        detail,
    };

    let start = find_module(&tokens, top)?;
    let mut cursor = Cursor {
        tokens: &tokens,
        pos: start,
    };
    // Optional parameter list `#( … )`.
    if cursor.peek() == Some("#") {
        cursor.next();
        cursor.skip_balanced_parens().map_err(syntax)?;
    }
    let mut declared: Vec<(String, Option<(Direction, u32)>)> = Vec::new();
    let mut inout = None;
    if cursor.peek() == Some("(") {
        cursor.next();
        read_header(&mut cursor, &mut declared, &mut inout).map_err(syntax)?;
    }
    cursor.expect(";").map_err(syntax)?;

    // Non-ANSI declarations in the body, up to `endmodule`.
    while let Some(token) = cursor.next() {
        match token {
            "endmodule" => break,
            "input" | "output" | "inout" => {
                let direction = direction_of(token);
                let (width, names) = read_declaration(&mut cursor).map_err(syntax)?;
                for name in names {
                    let Some(entry) = declared.iter_mut().find(|(n, _)| *n == name) else {
                        return Err(syntax(format!(
                            "`{token} {name}` declares a port that is not in the module header"
                        )));
                    };
                    match direction {
                        Some(d) => entry.1 = Some((d, width)),
                        None => inout = inout.or(Some(name)),
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(port) = inout {
        return Err(PortError::Inout {
            top: top.to_owned(),
            port,
        });
    }

    let mut ports = Vec::with_capacity(declared.len());
    for (name, decl) in declared {
        let Some((direction, width)) = decl else {
            return Err(PortError::Undeclared {
                top: top.to_owned(),
                port: name,
            });
        };
        ports.push(PortDecl {
            name,
            direction,
            width,
        });
    }
    Ok(ports)
}

fn direction_of(keyword: &str) -> Option<Direction> {
    match keyword {
        "input" => Some(Direction::Input),
        "output" => Some(Direction::Output),
        _ => None,
    }
}

/// Reads the header's port list after `(`, through the closing `)`. Handles plain name lists
/// and ANSI declarations (where a direction applies to the names that follow it).
fn read_header(
    cursor: &mut Cursor<'_>,
    declared: &mut Vec<(String, Option<(Direction, u32)>)>,
    inout: &mut Option<String>,
) -> Result<(), String> {
    if cursor.peek() == Some(")") {
        cursor.next();
        return Ok(());
    }
    let mut current: Option<(Option<Direction>, u32)> = None;
    loop {
        let token = cursor.peek().ok_or("the module header is not closed")?;
        if matches!(token, "input" | "output" | "inout") {
            cursor.next();
            let direction = direction_of(token);
            let width = read_type_and_range(cursor)?;
            current = Some((direction, width));
        }
        let name = cursor.identifier()?;
        match current {
            Some((Some(direction), width)) => declared.push((name, Some((direction, width)))),
            Some((None, _)) => {
                *inout = inout.take().or(Some(name.clone()));
                declared.push((name, None));
            }
            None => declared.push((name, None)),
        }
        match cursor.next() {
            Some(",") => continue,
            Some(")") => return Ok(()),
            other => {
                return Err(format!(
                    "expected `,` or `)` in the module header, found {other:?}"
                ))
            }
        }
    }
}

/// Reads `[wire|reg|logic] [signed] [range] name {, name} ;` after a direction keyword.
fn read_declaration(cursor: &mut Cursor<'_>) -> Result<(u32, Vec<String>), String> {
    let width = read_type_and_range(cursor)?;
    let mut names = vec![cursor.identifier()?];
    loop {
        match cursor.next() {
            Some(",") => names.push(cursor.identifier()?),
            Some(";") => return Ok((width, names)),
            other => {
                return Err(format!(
                    "expected `,` or `;` after port `{}`, found {other:?} (arrays and initial \
                     values on ports are not supported)",
                    names.last().map(String::as_str).unwrap_or("?")
                ))
            }
        }
    }
}

/// Skips net/variable type keywords and `signed`, then reads an optional `[msb:lsb]`.
fn read_type_and_range(cursor: &mut Cursor<'_>) -> Result<u32, String> {
    while matches!(
        cursor.peek(),
        Some("wire" | "reg" | "logic" | "signed" | "unsigned" | "var" | "tri")
    ) {
        cursor.next();
    }
    if cursor.peek() != Some("[") {
        return Ok(1);
    }
    cursor.next();
    let mut expr = Vec::new();
    loop {
        match cursor.next() {
            Some("]") => break,
            Some(token) => expr.push(token),
            None => return Err("unterminated `[` in a port range".into()),
        }
    }
    let text = expr.join(" ");
    let (msb, lsb) = match expr.as_slice() {
        [msb, ":", lsb] => (parse_int(msb), parse_int(lsb)),
        _ => (None, None),
    };
    match (msb, lsb) {
        (Some(msb), Some(lsb)) => {
            let width = msb.abs_diff(lsb) + 1;
            u32::try_from(width).map_err(|_| format!("port range [{text}] is too wide"))
        }
        _ => Err(format!(
            "port range [{text}] is not two integer literals; the shim needs literal widths \
             (rust-hdl writes them; in hand-written Verilog replace parameters by numbers)"
        )),
    }
}

fn parse_int(token: &str) -> Option<u64> {
    token.replace('_', "").parse().ok()
}

/// Finds the token index just after `module <top>`.
fn find_module(tokens: &[String], top: &str) -> Result<usize, PortError> {
    let mut found = Vec::new();
    for i in 0..tokens.len() {
        if matches!(tokens[i].as_str(), "module" | "macromodule") {
            if let Some(name) = tokens.get(i + 1) {
                if name == top {
                    return Ok(i + 2);
                }
                found.push(name.clone());
            }
        }
    }
    Err(PortError::NoSuchModule {
        top: top.to_owned(),
        found: if found.is_empty() {
            "(none)".into()
        } else {
            found.join(", ")
        },
    })
}

struct Cursor<'a> {
    tokens: &'a [String],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<&'a str> {
        self.tokens.get(self.pos).map(String::as_str)
    }

    fn next(&mut self) -> Option<&'a str> {
        let token = self.peek();
        self.pos += usize::from(token.is_some());
        token
    }

    fn expect(&mut self, want: &str) -> Result<(), String> {
        match self.next() {
            Some(token) if token == want => Ok(()),
            other => Err(format!("expected `{want}`, found {other:?}")),
        }
    }

    fn identifier(&mut self) -> Result<String, String> {
        match self.next() {
            Some(token) if is_identifier(token) => Ok(token.to_owned()),
            other => Err(format!("expected a port name, found {other:?}")),
        }
    }

    fn skip_balanced_parens(&mut self) -> Result<(), String> {
        self.expect("(")?;
        let mut depth = 1;
        while depth > 0 {
            match self.next() {
                Some("(") => depth += 1,
                Some(")") => depth -= 1,
                Some(_) => {}
                None => return Err("unterminated parameter list".into()),
            }
        }
        Ok(())
    }
}

fn is_identifier(token: &str) -> bool {
    token
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && !matches!(
            token,
            "input" | "output" | "inout" | "wire" | "reg" | "logic" | "signed"
        )
}

/// Removes `// …` and `/* … */` comments, leaving string literals alone.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                out.push(c);
                while let Some(s) = chars.next() {
                    out.push(s);
                    if s == '\\' {
                        if let Some(escaped) = chars.next() {
                            out.push(escaped);
                        }
                    } else if s == '"' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                for s in chars.by_ref() {
                    if s == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for s in chars.by_ref() {
                    if last == '*' && s == '/' {
                        break;
                    }
                    last = s;
                }
                out.push(' ');
            }
            _ => out.push(c),
        }
    }
    out
}

/// Splits into identifiers (with `$`), numbers, escaped identifiers (backslash to whitespace,
/// the backslash dropped), string literals, and single punctuation characters.
fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '`' {
            let mut word = String::new();
            while let Some(&w) = chars.peek() {
                if w.is_ascii_alphanumeric() || w == '_' || w == '$' || w == '`' || w == '\'' {
                    word.push(w);
                    chars.next();
                } else {
                    break;
                }
            }
            tokens.push(word);
        } else if c == '\\' {
            chars.next();
            let mut word = String::new();
            while let Some(&w) = chars.peek() {
                if w.is_whitespace() {
                    break;
                }
                word.push(w);
                chars.next();
            }
            tokens.push(word);
        } else if c == '"' {
            let mut literal = String::new();
            chars.next();
            while let Some(s) = chars.next() {
                if s == '\\' {
                    chars.next();
                } else if s == '"' {
                    break;
                } else {
                    literal.push(s);
                }
            }
            tokens.push(format!("\"{literal}\""));
        } else {
            tokens.push(c.to_string());
            chars.next();
        }
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUST_HDL_STYLE: &str = r#"

module top(clock,reset,csr$addr,csr$rdata,axi$wdata,irq);

    // Module arguments
    input wire  clock;
    input wire  reset;
    input wire  [7:0] csr$addr;
    output reg  [31:0] csr$rdata;
    output reg  [127:0] axi$wdata;
    output reg  signed [15:0] irq;

    // Stub signals
    reg  [31:0] count$d; /* not a port */
    // input wire [3:0] commented_out;
endmodule // top

module top$count(clock, d);
    input wire clock;
    input wire [31:0] d;
endmodule
"#;

    #[test]
    fn reads_rust_hdl_headers() {
        let ports = parse_ports(RUST_HDL_STYLE, "top").unwrap();
        let got: Vec<(&str, Direction, u32)> = ports
            .iter()
            .map(|p| (p.name.as_str(), p.direction, p.width))
            .collect();
        assert_eq!(
            got,
            vec![
                ("clock", Direction::Input, 1),
                ("reset", Direction::Input, 1),
                ("csr$addr", Direction::Input, 8),
                ("csr$rdata", Direction::Output, 32),
                ("axi$wdata", Direction::Output, 128),
                ("irq", Direction::Output, 16),
            ]
        );
    }

    #[test]
    fn reads_ansi_headers_with_parameters() {
        let text = "module m #(parameter W = 8) (input wire clk, input [3:0] a, b,\n\
                    output reg [0:63] q, output wire done);\n assign done = 1; endmodule";
        let ports = parse_ports(text, "m").unwrap();
        let got: Vec<(&str, Direction, u32)> = ports
            .iter()
            .map(|p| (p.name.as_str(), p.direction, p.width))
            .collect();
        assert_eq!(
            got,
            vec![
                ("clk", Direction::Input, 1),
                ("a", Direction::Input, 4),
                ("b", Direction::Input, 4),
                ("q", Direction::Output, 64),
                ("done", Direction::Output, 1),
            ]
        );
    }

    #[test]
    fn mangles_names_like_verilator() {
        assert_eq!(verilator_cpp_name("csr$addr"), "csr__024addr");
        assert_eq!(verilator_cpp_name("clock"), "clock");
        assert_eq!(verilator_cpp_name("a_b"), "a_b");
        assert_eq!(verilator_cpp_name("a__b"), "a___05Fb");
        assert_eq!(verilator_cpp_name("_x"), "_x");
        assert_eq!(verilator_cpp_name("a.b"), "a__02Eb");
    }

    #[test]
    fn explains_what_it_cannot_read() {
        let missing = parse_ports(RUST_HDL_STYLE, "nope").unwrap_err();
        assert!(missing.to_string().contains("top, top$count"), "{missing}");

        let param = "module t(a); input wire [W-1:0] a; endmodule";
        let error = parse_ports(param, "t").unwrap_err();
        assert!(error.to_string().contains("literal widths"), "{error}");

        let undeclared = "module t(a, b); input wire a; endmodule";
        assert_eq!(
            parse_ports(undeclared, "t"),
            Err(PortError::Undeclared {
                top: "t".into(),
                port: "b".into()
            })
        );

        let tristate = "module t(a); inout wire a; endmodule";
        assert!(matches!(
            parse_ports(tristate, "t"),
            Err(PortError::Inout { .. })
        ));
    }
}
