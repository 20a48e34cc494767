//! The C++ shim compiled into every Verilated shared library.
//!
//! Verilator turns the design into a C++ class (`Vdut`, we pass `--prefix Vdut`) whose top-level
//! ports are public members: `CData`/`SData`/`IData`/`QData` for ports of up to 8/16/32/64 bits,
//! `VlWide<N>` (N 32-bit words, least significant first) above that. The shim wraps that class in
//! a small C ABI that Rust loads with `libloading`:
//!
//! | function | what it does |
//! |---|---|
//! | `pf_abi_version()` | [`ABI_VERSION`]; the loader refuses other versions |
//! | `pf_port_count/name/width/is_output(i)` | the port table, in header order |
//! | `pf_has_trace()` | whether the library was built with `--trace` |
//! | `pf_new(vcd_path)` / `pf_delete(m)` | a model in its own `VerilatedContext`; `final()` on delete |
//! | `pf_eval(m)` | settle the design after inputs changed |
//! | `pf_tick(m, clock, n, settled)` | `n` clock cycles (see below) |
//! | `pf_get/pf_set(m, port, u64)` | ports as up to 64 bits (wider: the low 64, rest zero) |
//! | `pf_get_words/pf_set_words(m, port, u32*, n)` | any port as 32-bit words, least significant first |
//! | `pf_error(m)`, `pf_last_error()` | messages for a failed model / a failed `pf_new` |
//! | `pf_has_faults()` | whether the library was built for fault injection (VPI) |
//! | `pf_fault_add(m, name, word, bit, mode, from, until)` | a fault on an internal signal (below) |
//! | `pf_fault_hits(m, i)` | cycles on which fault `i` changed the signal's value |
//!
//! Inputs are masked to their width on every write (Verilator requires clean upper bits).
//! `vl_fatal` (Verilator's internal fatal errors, which would otherwise `exit()` the host
//! process) throws a C++ exception that every entry point catches: the model is then marked
//! broken and every later call returns [`STATUS_BROKEN`]. `$stop`/`$fatal` set the context's error
//! flag ([`STATUS_ERROR`]) and `$finish` its finish flag ([`STATUS_FINISHED`]).
//!
//! **Faults** (libraries built with `faults`, see [`crate::fault`]): Verilator `--vpi` and the
//! faulted signals made `public_flat_rw`. `pf_fault_add` looks a signal up by its hierarchical
//! name (`vpi_handle_by_name`, with `[word]` for a memory word) and records a fault on one bit:
//! mode [`FAULT_FLIP`] inverts it, [`FAULT_STUCK0`]/[`FAULT_STUCK1`] force it, after every
//! rising edge of the cycles `from..=until` (cycles count rising edges from 1). The design is
//! settled again before the next edge, so everything downstream sees the faulted value for the
//! whole cycle, as it would with a real flipped or stuck flip-flop.
//!
//! One clock cycle (`pf_tick`) at time `t` (10 units per cycle): clock low and `eval()` to settle
//! the inputs set since the last cycle (skipped when the caller says it already settled), VCD dump
//! at `t`; clock high and `eval()` (the rising edge), dump at `t + 5`; clock set low again without
//! an `eval()`. Outputs read after a tick therefore show the state after the rising edge.

use std::fmt::Write as _;

use crate::ports::{Direction, PortDecl};

/// Version of the C ABI between the shim and [`crate::ffi`]; bump on any change of signatures
/// or semantics (it is part of the build-cache key through the shim text).
pub const ABI_VERSION: u32 = 2;
/// `pf_eval`/`pf_tick`: all well.
pub const STATUS_OK: i32 = 0;
/// The design executed `$finish`.
pub const STATUS_FINISHED: i32 = 1;
/// The design executed `$stop` or `$fatal` (or an assertion failed).
pub const STATUS_ERROR: i32 = 2;
/// Verilator hit an internal fatal error; the model must not be used again.
pub const STATUS_BROKEN: i32 = 3;

/// Fault mode: invert the bit.
pub const FAULT_FLIP: u32 = 0;
/// Fault mode: force the bit to 0.
pub const FAULT_STUCK0: u32 = 1;
/// Fault mode: force the bit to 1.
pub const FAULT_STUCK1: u32 = 2;

/// Preprocessor definitions every translation unit of the build needs (passed with `-CFLAGS`):
/// position-independent code for the shared library, and our own `vl_fatal`.
pub const CXX_FLAGS: &[&str] = &["-fPIC", "-DVL_USER_FATAL"];

/// The class prefix given to Verilator, so the shim does not depend on the top module's name.
pub const PREFIX: &str = "Vdut";

/// Writes the shim for these ports. `trace` must match whether Verilator runs with `--trace`,
/// `faults` whether it runs with `--vpi` (fault injection).
pub fn generate(ports: &[PortDecl], trace: bool, faults: bool) -> String {
    let mut out = String::new();
    out.push_str(
        &TEMPLATE_HEAD
            .replace("@TRACE@", &u8::from(trace).to_string())
            .replace("@FAULTS@", &u8::from(faults).to_string()),
    );
    out.push_str(&TEMPLATE_SUPPORT.replace("@ABI@", &ABI_VERSION.to_string()));

    let _ = writeln!(out, "static const char* const pf_names[] = {{");
    for port in ports {
        let _ = writeln!(out, "    \"{}\",", c_escape(&port.name));
    }
    let _ = writeln!(out, "    nullptr}};");
    let widths: Vec<String> = ports.iter().map(|p| p.width.to_string()).collect();
    let outputs: Vec<String> = ports
        .iter()
        .map(|p| u8::from(p.direction == Direction::Output).to_string())
        .collect();
    let _ = writeln!(
        out,
        "static const uint32_t pf_widths[] = {{{}0}};",
        join_comma(&widths)
    );
    let _ = writeln!(
        out,
        "static const uint32_t pf_outputs[] = {{{}0}};",
        join_comma(&outputs)
    );
    let _ = writeln!(out, "static const uint32_t pf_count = {};\n", ports.len());

    // get as u64
    out.push_str("static uint64_t pf_get_impl(Vdut* t, uint32_t port) {\n    switch (port) {\n");
    for (i, port) in ports.iter().enumerate() {
        let member = format!("t->{}", port.cpp_name());
        if port.width <= 64 {
            let _ = writeln!(out, "    case {i}: return static_cast<uint64_t>({member});");
        } else {
            let _ = writeln!(
                out,
                "    case {i}: return static_cast<uint64_t>({member}[0]) | \
                 (static_cast<uint64_t>({member}[1]) << 32);"
            );
        }
    }
    out.push_str("    default: return 0;\n    }\n}\n\n");

    // set from u64 (inputs only)
    out.push_str(
        "static void pf_set_impl(Vdut* t, uint32_t port, uint64_t v) {\n    switch (port) {\n",
    );
    for (i, port) in inputs(ports) {
        let member = format!("t->{}", port.cpp_name());
        if port.width <= 64 {
            let _ = writeln!(
                out,
                "    case {i}: {member} = static_cast<{}>(v & {}ULL); break;",
                scalar_type(port.width),
                mask64(port.width)
            );
        } else {
            let words = word_count(port.width);
            let _ = write!(
                out,
                "    case {i}: {member}[0] = static_cast<uint32_t>(v); \
                 {member}[1] = static_cast<uint32_t>(v >> 32);"
            );
            for k in 2..words {
                let _ = write!(out, " {member}[{k}] = 0;");
            }
            let _ = writeln!(out, " break;");
        }
    }
    out.push_str("    default: break;\n    }\n}\n\n");

    // get as words
    out.push_str(
        "static void pf_get_words_impl(Vdut* t, uint32_t port, uint32_t* out, uint32_t n) {\n    \
         switch (port) {\n",
    );
    for (i, port) in ports.iter().enumerate() {
        let member = format!("t->{}", port.cpp_name());
        if port.width <= 64 {
            let _ = writeln!(
                out,
                "    case {i}: pf_put64(out, n, static_cast<uint64_t>({member})); return;"
            );
        } else {
            let words = word_count(port.width);
            let _ = writeln!(
                out,
                "    case {i}: for (uint32_t k = 0; k < n; ++k) out[k] = k < {words} ? \
                 static_cast<uint32_t>({member}[k]) : 0u; return;"
            );
        }
    }
    out.push_str("    default: pf_put64(out, n, 0); return;\n    }\n}\n\n");

    // set from words (inputs only)
    out.push_str(
        "static void pf_set_words_impl(Vdut* t, uint32_t port, const uint32_t* in, uint32_t n) \
         {\n    switch (port) {\n",
    );
    for (i, port) in inputs(ports) {
        let member = format!("t->{}", port.cpp_name());
        if port.width <= 64 {
            let _ = writeln!(
                out,
                "    case {i}: {member} = static_cast<{}>(pf_take64(in, n) & {}ULL); return;",
                scalar_type(port.width),
                mask64(port.width)
            );
        } else {
            let words = word_count(port.width);
            let top_mask = top_word_mask(port.width);
            let _ = writeln!(
                out,
                "    case {i}: for (uint32_t k = 0; k < {words}; ++k) {member}[k] = k < n ? in[k] : \
                 0u; {member}[{last}] &= {top_mask}u; return;",
                last = words - 1
            );
        }
    }
    out.push_str("    default: return;\n    }\n}\n\n");

    out.push_str(TEMPLATE_ENTRY_POINTS);
    out
}

fn inputs(ports: &[PortDecl]) -> impl Iterator<Item = (usize, &PortDecl)> {
    ports
        .iter()
        .enumerate()
        .filter(|(_, p)| p.direction == Direction::Input)
}

fn join_comma(items: &[String]) -> String {
    items.iter().map(|s| format!("{s}, ")).collect()
}

/// The Verilator scalar type holding a port of `width` ≤ 64 bits.
fn scalar_type(width: u32) -> &'static str {
    match width {
        0..=8 => "CData",
        9..=16 => "SData",
        17..=32 => "IData",
        _ => "QData",
    }
}

fn mask64(width: u32) -> String {
    if width >= 64 {
        format!("{:#x}", u64::MAX)
    } else {
        format!("{:#x}", (1u64 << width) - 1)
    }
}

/// Number of 32-bit words Verilator uses for a port.
pub fn word_count(width: u32) -> u32 {
    width.div_ceil(32)
}

fn top_word_mask(width: u32) -> String {
    match width % 32 {
        0 => "0xffffffff".into(),
        bits => format!("{:#x}", (1u32 << bits) - 1),
    }
}

fn c_escape(name: &str) -> String {
    name.chars()
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            _ => vec![c],
        })
        .collect()
}

const TEMPLATE_HEAD: &str = r#"// Generated by the PoCForge `sim` crate: a C ABI over the Verilated model `Vdut`.
// Do not edit; it is regenerated (and part of the build-cache key) on every build.
#define PF_TRACE @TRACE@
#define PF_FAULTS @FAULTS@
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>

#include "verilated.h"
#if PF_TRACE
#include "verilated_vcd_c.h"
#endif
#include "Vdut.h"
#if PF_FAULTS
#include <vector>
#include "verilated_vpi.h"
#endif

#define PF_EXPORT extern "C" __attribute__((visibility("default")))
"#;

const TEMPLATE_SUPPORT: &str = r#"
namespace {

constexpr uint32_t PF_ABI_VERSION = @ABI@;
constexpr int32_t PF_OK = 0;
constexpr int32_t PF_FINISHED = 1;
constexpr int32_t PF_ERROR = 2;
constexpr int32_t PF_BROKEN = 3;

// Thrown by vl_fatal; caught by every entry point.
struct PfFatal {
    std::string message;
};

#if PF_FAULTS
// One fault on one bit of a signal (or memory word), active in cycles from..=until.
struct PfFault {
    vpiHandle handle;
    uint32_t bit;
    uint32_t mode;  // 0 flip, 1 stuck at 0, 2 stuck at 1
    uint64_t from;
    uint64_t until;
    uint64_t hits;  // cycles on which the fault changed the value
};
#endif

struct PfModel {
    std::unique_ptr<VerilatedContext> ctx;
    std::unique_ptr<Vdut> top;
#if PF_TRACE
    std::unique_ptr<VerilatedVcdC> vcd;
#endif
#if PF_FAULTS
    std::vector<PfFault> faults;
#endif
    std::string error;
    bool broken = false;
};

thread_local std::string pf_last_error_text;

void pf_put64(uint32_t* out, uint32_t n, uint64_t v) {
    for (uint32_t k = 0; k < n; ++k) {
        out[k] = k == 0 ? static_cast<uint32_t>(v) : k == 1 ? static_cast<uint32_t>(v >> 32) : 0u;
    }
}

uint64_t pf_take64(const uint32_t* in, uint32_t n) {
    uint64_t v = 0;
    if (n > 0) v |= in[0];
    if (n > 1) v |= static_cast<uint64_t>(in[1]) << 32;
    return v;
}

}  // namespace

// Verilator calls this on internal fatal errors (a design that does not converge, a failed
// runtime check). Its default prints and exit()s the whole process, which would take the host
// daemon down with a broken RTL model; we unwind to the entry point instead.
void vl_fatal(const char* filename, int linenum, const char* hier, const char* msg) {
    (void)hier;
    Verilated::threadContextp()->gotError(true);
    Verilated::threadContextp()->gotFinish(true);
    std::string text = std::string(filename ? filename : "?") + ":" + std::to_string(linenum)
        + ": " + (msg ? msg : "Verilator fatal error");
    throw PfFatal{text};
}

"#;

const TEMPLATE_ENTRY_POINTS: &str = r#"
namespace {

int32_t pf_status(PfModel* m) {
    if (m->broken) return PF_BROKEN;
    if (m->ctx->gotError()) return PF_ERROR;
    if (m->ctx->gotFinish()) return PF_FINISHED;
    return PF_OK;
}

void pf_dump(PfModel* m) {
#if PF_TRACE
    if (m->vcd) m->vcd->dump(m->ctx->time());
#else
    (void)m;
#endif
}

#if PF_FAULTS
// Applies the faults active in `cycle` (just after its rising edge). The caller evaluates the
// design again before the next edge, so the faulted value propagates.
void pf_apply_faults(PfModel* m, uint64_t cycle) {
    Verilated::threadContextp(m->ctx.get());
    for (PfFault& f : m->faults) {
        if (cycle < f.from || cycle > f.until) continue;
        s_vpi_value value;
        value.format = vpiVectorVal;
        vpi_get_value(f.handle, &value);
        if (!value.value.vector) continue;
        const uint32_t word = f.bit / 32;
        const uint32_t mask = 1u << (f.bit % 32);
        const uint32_t before = static_cast<uint32_t>(value.value.vector[word].aval);
        uint32_t after = before;
        if (f.mode == 0) after = before ^ mask;
        else if (f.mode == 1) after = before & ~mask;
        else after = before | mask;
        if (after == before) continue;
        value.value.vector[word].aval = static_cast<PLI_INT32>(after);
        vpi_put_value(f.handle, &value, nullptr, vpiNoDelay);
        ++f.hits;
    }
}
#endif

template <typename F>
int32_t pf_guard(PfModel* m, F body) {
    if (m->broken) return PF_BROKEN;
    try {
        body();
    } catch (const PfFatal& fatal) {
        m->broken = true;
        m->error = fatal.message;
    } catch (const std::exception& e) {
        m->broken = true;
        m->error = std::string("C++ exception: ") + e.what();
    } catch (...) {
        m->broken = true;
        m->error = "unknown C++ exception";
    }
    return pf_status(m);
}

}  // namespace

PF_EXPORT uint32_t pf_abi_version(void) { return PF_ABI_VERSION; }
PF_EXPORT uint32_t pf_port_count(void) { return pf_count; }
PF_EXPORT const char* pf_port_name(uint32_t i) { return i < pf_count ? pf_names[i] : nullptr; }
PF_EXPORT uint32_t pf_port_width(uint32_t i) { return i < pf_count ? pf_widths[i] : 0; }
PF_EXPORT uint32_t pf_port_is_output(uint32_t i) { return i < pf_count ? pf_outputs[i] : 0; }
PF_EXPORT uint32_t pf_has_trace(void) { return PF_TRACE; }
PF_EXPORT const char* pf_last_error(void) { return pf_last_error_text.c_str(); }

PF_EXPORT void* pf_new(const char* vcd_path) {
    pf_last_error_text.clear();
    PfModel* m = nullptr;
    try {
        std::unique_ptr<PfModel> model(new PfModel());
        model->ctx.reset(new VerilatedContext());
        model->ctx->fatalOnError(false);
#if PF_TRACE
        if (vcd_path) model->ctx->traceEverOn(true);
#endif
        // Scopes (VPI's name table) register with the thread's current context while the
        // model is constructed, and unregister the same way when it is destroyed: bind ours.
        Verilated::threadContextp(model->ctx.get());
        model->top.reset(new Vdut(model->ctx.get(), "top"));
        if (vcd_path) {
#if PF_TRACE
            model->vcd.reset(new VerilatedVcdC());
            model->top->trace(model->vcd.get(), 99);
            model->vcd->open(vcd_path);
            if (!model->vcd->isOpen()) {
                pf_last_error_text = std::string("cannot open VCD file ") + vcd_path;
                return nullptr;
            }
#else
            pf_last_error_text = "library built without --trace";
            return nullptr;
#endif
        }
        m = model.release();
    } catch (const PfFatal& fatal) {
        pf_last_error_text = fatal.message;
        return nullptr;
    } catch (const std::exception& e) {
        pf_last_error_text = std::string("C++ exception: ") + e.what();
        return nullptr;
    } catch (...) {
        pf_last_error_text = "unknown C++ exception while creating the model";
        return nullptr;
    }
    return m;
}

PF_EXPORT void pf_delete(void* handle) {
    PfModel* m = static_cast<PfModel*>(handle);
    if (!m) return;
    if (!m->broken) {
        try {
            m->top->final();
        } catch (...) {
        }
    }
#if PF_TRACE
    if (m->vcd) {
        m->vcd->close();
        m->vcd.reset();
    }
#endif
    try {
        Verilated::threadContextp(m->ctx.get());
        m->top.reset();
    } catch (...) {
    }
    delete m;
}

PF_EXPORT int32_t pf_eval(void* handle) {
    PfModel* m = static_cast<PfModel*>(handle);
    return pf_guard(m, [&] { m->top->eval(); });
}

PF_EXPORT int32_t pf_tick(void* handle, uint32_t clock, uint64_t cycles, uint32_t settled) {
    PfModel* m = static_cast<PfModel*>(handle);
    return pf_guard(m, [&] {
        Vdut* t = m->top.get();
        for (uint64_t i = 0; i < cycles; ++i) {
            if (i > 0 || !settled) {
                pf_set_impl(t, clock, 0);
                t->eval();
            }
            pf_dump(m);
            m->ctx->timeInc(5);
            pf_set_impl(t, clock, 1);
            t->eval();
#if PF_FAULTS
            if (!m->faults.empty()) pf_apply_faults(m, m->ctx->time() / 10 + 1);
#endif
            pf_dump(m);
            m->ctx->timeInc(5);
            pf_set_impl(t, clock, 0);
            if (m->ctx->gotError() || m->ctx->gotFinish()) break;
        }
    });
}

PF_EXPORT uint64_t pf_get(void* handle, uint32_t port) {
    PfModel* m = static_cast<PfModel*>(handle);
    return m->broken ? 0 : pf_get_impl(m->top.get(), port);
}

PF_EXPORT void pf_set(void* handle, uint32_t port, uint64_t value) {
    PfModel* m = static_cast<PfModel*>(handle);
    if (!m->broken) pf_set_impl(m->top.get(), port, value);
}

PF_EXPORT void pf_get_words(void* handle, uint32_t port, uint32_t* out, uint32_t n) {
    PfModel* m = static_cast<PfModel*>(handle);
    if (m->broken) {
        pf_put64(out, n, 0);
        return;
    }
    pf_get_words_impl(m->top.get(), port, out, n);
}

PF_EXPORT void pf_set_words(void* handle, uint32_t port, const uint32_t* in, uint32_t n) {
    PfModel* m = static_cast<PfModel*>(handle);
    if (!m->broken) pf_set_words_impl(m->top.get(), port, in, n);
}

PF_EXPORT uint32_t pf_has_faults(void) { return PF_FAULTS; }

// Adds a fault; returns 0, or -1 with the reason in pf_error(m) (the model stays usable).
PF_EXPORT int32_t pf_fault_add(void* handle, const char* name, int64_t word, uint32_t bit,
                               uint32_t mode, uint64_t from, uint64_t until) {
    PfModel* m = static_cast<PfModel*>(handle);
    if (m->broken) return -1;
#if PF_FAULTS
    Verilated::threadContextp(m->ctx.get());
    // Scope names start with the model's instance name (pf_new names it "top").
    std::string full = std::string(m->top->name()) + "." + name;
    vpiHandle h = vpi_handle_by_name(const_cast<PLI_BYTE8*>(full.c_str()), nullptr);
    if (!h) {
        m->error = std::string("no public signal ") + full
            + " (is it in the fault list the library was built with?)";
        return -1;
    }
    if (word >= 0) {
        const PLI_INT32 size = vpi_get(vpiSize, h);
        if (word >= size) {
            m->error = std::string(name) + " has " + std::to_string(size) + " words, not "
                + std::to_string(word + 1);
            return -1;
        }
        vpiHandle w = vpi_handle_by_index(h, static_cast<PLI_INT32>(word));
        if (!w) {
            m->error = std::string("cannot address word ") + std::to_string(word) + " of " + name;
            return -1;
        }
        h = w;
    }
    const PLI_INT32 width = vpi_get(vpiSize, h);
    if (width <= 0 || bit >= static_cast<uint32_t>(width)) {
        m->error = std::string(name) + " has " + std::to_string(width) + " bits; bit "
            + std::to_string(bit) + " does not exist";
        return -1;
    }
    if (mode > 2) {
        m->error = "unknown fault mode " + std::to_string(mode);
        return -1;
    }
    m->faults.push_back(PfFault{h, bit, mode, from, until, 0});
    m->error.clear();
    return 0;
#else
    (void)name; (void)word; (void)bit; (void)mode; (void)from; (void)until;
    m->error = "the library was built without fault support (BuildOptions::faults)";
    return -1;
#endif
}

PF_EXPORT uint64_t pf_fault_hits(void* handle, uint32_t index) {
#if PF_FAULTS
    PfModel* m = static_cast<PfModel*>(handle);
    return index < m->faults.size() ? m->faults[index].hits : 0;
#else
    (void)handle; (void)index;
    return 0;
#endif
}

PF_EXPORT const char* pf_error(void* handle) {
    return static_cast<PfModel*>(handle)->error.c_str();
}

PF_EXPORT uint64_t pf_time(void* handle) {
    return static_cast<PfModel*>(handle)->ctx->time();
}

PF_EXPORT void pf_trace_flush(void* handle) {
#if PF_TRACE
    PfModel* m = static_cast<PfModel*>(handle);
    if (m->vcd) m->vcd->flush();
#else
    (void)handle;
#endif
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors_match_verilator_storage() {
        let ports = vec![
            PortDecl {
                name: "clock".into(),
                direction: Direction::Input,
                width: 1,
            },
            PortDecl {
                name: "csr$addr".into(),
                direction: Direction::Input,
                width: 12,
            },
            PortDecl {
                name: "axi$wdata".into(),
                direction: Direction::Output,
                width: 128,
            },
            PortDecl {
                name: "in$wide".into(),
                direction: Direction::Input,
                width: 100,
            },
        ];
        let text = generate(&ports, true, false);
        assert!(text.contains("#define PF_TRACE 1"));
        assert!(text.contains("case 1: t->csr__024addr = static_cast<SData>(v & 0xfffULL); break;"));
        assert!(text.contains("t->axi__024wdata[1]"));
        // Outputs get no setters; wide inputs mask their top word (100 = 3·32 + 4 bits).
        assert!(!text.contains("t->axi__024wdata[0] ="));
        assert!(text.contains("t->in__024wide[3] &= 0xfu;"));
        assert!(text.contains("static const uint32_t pf_widths[] = {1, 12, 128, 100, 0};"));
        assert!(text.contains("\"csr$addr\","));
    }
}
