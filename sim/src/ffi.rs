//! The one place that calls into a Verilated shared library. Everything unsafe lives here.
//!
//! The C ABI is described in [`crate::shim`]. Safety rests on three facts:
//! - the function pointers are copied out of a [`libloading::Library`] that [`RawLibrary`] owns,
//!   and every [`RawModel`] holds an `Arc` of that library, so no pointer outlives its code;
//! - a model handle comes from `pf_new`, is used only through `&mut`/`&` of its [`RawModel`]
//!   (never from two threads at once) and is passed to `pf_delete` exactly once, in `Drop`;
//! - the shim checks port indices itself (unknown ports read as 0 and ignore writes) and takes
//!   explicit lengths for every buffer, so no argument value can make it access out of bounds.

use std::ffi::{c_char, c_void, CStr, CString};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::Arc;

use libloading::os::unix::{Library as UnixLibrary, RTLD_LOCAL, RTLD_NOW};
use libloading::Library;

use crate::shim::ABI_VERSION;

type U32Fn = unsafe extern "C" fn() -> u32;
type IndexU32Fn = unsafe extern "C" fn(u32) -> u32;
type IndexStrFn = unsafe extern "C" fn(u32) -> *const c_char;
type StrFn = unsafe extern "C" fn() -> *const c_char;
type NewFn = unsafe extern "C" fn(*const c_char) -> *mut c_void;
type ModelFn = unsafe extern "C" fn(*mut c_void);
type ModelStatusFn = unsafe extern "C" fn(*mut c_void) -> i32;
type TickFn = unsafe extern "C" fn(*mut c_void, u32, u64, u32) -> i32;
type GetFn = unsafe extern "C" fn(*mut c_void, u32) -> u64;
type SetFn = unsafe extern "C" fn(*mut c_void, u32, u64);
type GetWordsFn = unsafe extern "C" fn(*mut c_void, u32, *mut u32, u32);
type SetWordsFn = unsafe extern "C" fn(*mut c_void, u32, *const u32, u32);
type ModelStrFn = unsafe extern "C" fn(*mut c_void) -> *const c_char;
type ModelU64Fn = unsafe extern "C" fn(*mut c_void) -> u64;
type FaultAddFn = unsafe extern "C" fn(*mut c_void, *const c_char, i64, u32, u32, u64, u64) -> i32;
type FaultHitsFn = unsafe extern "C" fn(*mut c_void, u32) -> u64;

/// The shim's entry points.
struct Api {
    port_count: U32Fn,
    port_name: IndexStrFn,
    port_width: IndexU32Fn,
    port_is_output: IndexU32Fn,
    has_trace: U32Fn,
    last_error: StrFn,
    new: NewFn,
    delete: ModelFn,
    eval: ModelStatusFn,
    tick: TickFn,
    get: GetFn,
    set: SetFn,
    get_words: GetWordsFn,
    set_words: SetWordsFn,
    error: ModelStrFn,
    time: ModelU64Fn,
    trace_flush: ModelFn,
    has_faults: U32Fn,
    fault_add: FaultAddFn,
    fault_hits: FaultHitsFn,
}

/// A loaded simulation library.
pub(crate) struct RawLibrary {
    api: Api,
    // Declared after `api` so it is dropped (unloaded) after the pointers are gone.
    _library: Library,
}

/// A port as the library's table describes it.
pub(crate) struct RawPort {
    pub name: String,
    pub width: u32,
    pub is_output: bool,
}

impl RawLibrary {
    /// Loads the library, resolving every symbol now, and checks its ABI version.
    pub fn open(path: &Path) -> Result<Self, String> {
        // SAFETY: loading runs the library's static initialisers. Ours are the Verilator runtime's
        // and the shim's, which only initialise their own statics. RTLD_LOCAL keeps its symbols
        // out of the global namespace, so several libraries cannot interfere.
        let library: Library = unsafe { UnixLibrary::open(Some(path), RTLD_NOW | RTLD_LOCAL) }
            .map_err(|e| e.to_string())?
            .into();
        macro_rules! symbol {
            ($name:literal, $ty:ty) => {{
                // SAFETY: the shim defines this symbol with exactly this C signature (see
                // `shim.rs`, which generates both sides from one description); the ABI version
                // check below refuses libraries built from another shim. The pointer is copied
                // out but used only while `library` lives in the same struct.
                let symbol = unsafe { library.get::<$ty>(concat!($name, "\0").as_bytes()) };
                *symbol.map_err(|e| format!("missing symbol {}: {e}", $name))?
            }};
        }
        let abi_version: U32Fn = symbol!("pf_abi_version", U32Fn);
        // SAFETY: a plain function without arguments (see above).
        let abi = unsafe { abi_version() };
        if abi != ABI_VERSION {
            return Err(format!(
                "shim ABI version {abi}, but this program speaks version {ABI_VERSION}"
            ));
        }
        let api = Api {
            port_count: symbol!("pf_port_count", U32Fn),
            port_name: symbol!("pf_port_name", IndexStrFn),
            port_width: symbol!("pf_port_width", IndexU32Fn),
            port_is_output: symbol!("pf_port_is_output", IndexU32Fn),
            has_trace: symbol!("pf_has_trace", U32Fn),
            last_error: symbol!("pf_last_error", StrFn),
            new: symbol!("pf_new", NewFn),
            delete: symbol!("pf_delete", ModelFn),
            eval: symbol!("pf_eval", ModelStatusFn),
            tick: symbol!("pf_tick", TickFn),
            get: symbol!("pf_get", GetFn),
            set: symbol!("pf_set", SetFn),
            get_words: symbol!("pf_get_words", GetWordsFn),
            set_words: symbol!("pf_set_words", SetWordsFn),
            error: symbol!("pf_error", ModelStrFn),
            time: symbol!("pf_time", ModelU64Fn),
            trace_flush: symbol!("pf_trace_flush", ModelFn),
            has_faults: symbol!("pf_has_faults", U32Fn),
            fault_add: symbol!("pf_fault_add", FaultAddFn),
            fault_hits: symbol!("pf_fault_hits", FaultHitsFn),
        };
        Ok(Self {
            api,
            _library: library,
        })
    }

    /// The library's port table, in index order.
    pub fn ports(&self) -> Vec<RawPort> {
        // SAFETY: table accessors take any index (out of range gives null/0) and return
        // pointers to static, NUL-terminated strings that live as long as the library.
        unsafe {
            (0..(self.api.port_count)())
                .map(|i| RawPort {
                    name: c_string((self.api.port_name)(i)),
                    width: (self.api.port_width)(i),
                    is_output: (self.api.port_is_output)(i) != 0,
                })
                .collect()
        }
    }

    /// Whether the library was built with tracing.
    pub fn has_trace(&self) -> bool {
        // SAFETY: no arguments, returns a constant.
        unsafe { (self.api.has_trace)() != 0 }
    }

    /// Whether the library was built for fault injection.
    pub fn has_faults(&self) -> bool {
        // SAFETY: no arguments, returns a constant.
        unsafe { (self.api.has_faults)() != 0 }
    }
}

/// Copies a C string (null → empty).
///
/// # Safety
/// `text` is null or points to a NUL-terminated string valid for the duration of the call.
unsafe fn c_string(text: *const c_char) -> String {
    if text.is_null() {
        return String::new();
    }
    // SAFETY: non-null and NUL-terminated by the caller's contract.
    unsafe { CStr::from_ptr(text) }
        .to_string_lossy()
        .into_owned()
}

/// One model instance inside a loaded library.
pub(crate) struct RawModel {
    handle: NonNull<c_void>,
    library: Arc<RawLibrary>,
}

// SAFETY: a Verilated model and its context are plain heap objects without thread affinity
// (each eval re-binds Verilator's thread-local context pointer to the model's own context). A
// `RawModel` is only reached through `&mut self`/`&self` of its single owner, so it is never used
// from two threads at once; moving it to another thread is fine. It is deliberately not `Sync`.
unsafe impl Send for RawModel {}

impl RawModel {
    /// Creates a model; with `vcd`, it writes a VCD trace there.
    pub fn new(library: Arc<RawLibrary>, vcd: Option<&Path>) -> Result<Self, String> {
        let vcd = match vcd {
            Some(path) => Some(
                CString::new(path.as_os_str().as_encoded_bytes())
                    .map_err(|_| format!("trace path {} contains a NUL byte", path.display()))?,
            ),
            None => None,
        };
        let path_ptr = vcd.as_ref().map_or(std::ptr::null(), |p| p.as_ptr());
        // SAFETY: `path_ptr` is null or a NUL-terminated string that outlives the call.
        let handle = unsafe { (library.api.new)(path_ptr) };
        match NonNull::new(handle) {
            Some(handle) => Ok(Self { handle, library }),
            // SAFETY: returns a pointer to this thread's error text, valid until the next pf_new.
            None => Err(unsafe { c_string((library.api.last_error)()) }),
        }
    }

    /// `eval()`: settles the design; returns the shim status.
    pub fn eval(&mut self) -> i32 {
        // SAFETY: `handle` is a live model owned by `self` (see module docs).
        unsafe { (self.library.api.eval)(self.handle.as_ptr()) }
    }

    /// `cycles` clock cycles on input port `clock`; returns the shim status.
    pub fn tick(&mut self, clock: u32, cycles: u64, settled: bool) -> i32 {
        // SAFETY: live model; the shim validates `clock`.
        unsafe { (self.library.api.tick)(self.handle.as_ptr(), clock, cycles, u32::from(settled)) }
    }

    /// A port's value (low 64 bits).
    pub fn get(&self, port: u32) -> u64 {
        // SAFETY: live model; the shim validates `port`; reading does not mutate the model.
        unsafe { (self.library.api.get)(self.handle.as_ptr(), port) }
    }

    /// Sets an input port (masked to its width; wider ports get zeros above bit 63).
    pub fn set(&mut self, port: u32, value: u64) {
        // SAFETY: live model; the shim validates `port` and ignores outputs.
        unsafe { (self.library.api.set)(self.handle.as_ptr(), port, value) }
    }

    /// A port's value as 32-bit words, least significant first; fills all of `out`.
    pub fn get_words(&self, port: u32, out: &mut [u32]) {
        let n = u32::try_from(out.len()).unwrap_or(u32::MAX);
        // SAFETY: live model; the shim writes exactly `n` ≤ out.len() words.
        unsafe { (self.library.api.get_words)(self.handle.as_ptr(), port, out.as_mut_ptr(), n) }
    }

    /// Sets an input port from 32-bit words (missing words are zero, extra ones ignored).
    pub fn set_words(&mut self, port: u32, words: &[u32]) {
        let n = u32::try_from(words.len()).unwrap_or(u32::MAX);
        // SAFETY: live model; the shim reads at most `n` ≤ words.len() words.
        unsafe { (self.library.api.set_words)(self.handle.as_ptr(), port, words.as_ptr(), n) }
    }

    /// The message of the fatal error that broke the model, or empty.
    pub fn error(&self) -> String {
        // SAFETY: live model; the string is owned by the model and copied before any other call.
        unsafe { c_string((self.library.api.error)(self.handle.as_ptr())) }
    }

    /// The model's simulation time (10 units per cycle).
    pub fn time(&self) -> u64 {
        // SAFETY: live model.
        unsafe { (self.library.api.time)(self.handle.as_ptr()) }
    }

    /// Adds a fault on bit `bit` of the signal `name` (word `word` of a memory), active in
    /// cycles `from..=until`; `Err` carries the shim's reason.
    pub fn fault_add(
        &mut self,
        name: &str,
        word: Option<u32>,
        bit: u32,
        mode: u32,
        from: u64,
        until: u64,
    ) -> Result<(), String> {
        let name = CString::new(name).map_err(|_| format!("signal name {name:?} contains NUL"))?;
        let word = word.map_or(-1, i64::from);
        // SAFETY: live model; `name` is NUL-terminated and outlives the call; the shim checks
        // every other argument.
        let status = unsafe {
            (self.library.api.fault_add)(
                self.handle.as_ptr(),
                name.as_ptr(),
                word,
                bit,
                mode,
                from,
                until,
            )
        };
        if status == 0 {
            Ok(())
        } else {
            Err(self.error())
        }
    }

    /// Cycles on which fault `index` changed its signal.
    pub fn fault_hits(&self, index: u32) -> u64 {
        // SAFETY: live model; the shim checks the index.
        unsafe { (self.library.api.fault_hits)(self.handle.as_ptr(), index) }
    }

    /// Flushes the VCD trace, if one is open.
    pub fn flush_trace(&mut self) {
        // SAFETY: live model.
        unsafe { (self.library.api.trace_flush)(self.handle.as_ptr()) }
    }
}

impl Drop for RawModel {
    fn drop(&mut self) {
        // SAFETY: the handle came from pf_new and is deleted exactly once, here; the library
        // (held by `self.library`) is still loaded.
        unsafe { (self.library.api.delete)(self.handle.as_ptr()) }
    }
}
