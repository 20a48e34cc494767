//! A safe handle on a Verilated design: look ports up once, then set, get and clock.
//!
//! ```no_run
//! # use sim::{VerilatedLibrary, BuildOptions, Model, ModelOptions};
//! # fn main() -> Result<(), sim::SimError> {
//! let verilog = std::fs::read_to_string("top.v").unwrap();
//! let (library, report) = VerilatedLibrary::build(&verilog, "top", &BuildOptions::default())?;
//! println!("{report}");
//! let mut model = Model::new(&library, ModelOptions::default())?;
//! let reset = model.input("reset")?;
//! let count = model.output("count")?;
//! model.set(reset, 1);
//! model.tick()?;
//! model.set(reset, 0);
//! model.run(10)?;
//! println!("count = {}", model.get(count));
//! # Ok(()) }
//! ```
//!
//! Timing discipline: inputs set between ticks are applied before the next rising edge; outputs
//! read after a tick show the state after that edge, settled against the inputs set since (a read
//! after a `set` evaluates the design first, so combinational paths from inputs to outputs are
//! visible without clocking).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::error::SimError;
use crate::fault::SignalFault;
use crate::ffi::{RawLibrary, RawModel};
use crate::ports::Direction;
use crate::shim::{self, STATUS_BROKEN, STATUS_ERROR, STATUS_FINISHED, STATUS_OK};
use crate::verilate::{self, BuildOptions, BuildReport};

/// A port of the loaded design.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortInfo {
    /// Verilog name.
    pub name: String,
    /// Direction.
    pub direction: Direction,
    /// Width in bits.
    pub width: u32,
}

/// A loaded simulation library: the compiled design, from which [`Model`]s are made.
pub struct VerilatedLibrary {
    raw: Arc<RawLibrary>,
    ports: Vec<PortInfo>,
    path: PathBuf,
    /// Distinguishes libraries, so a port handle of one cannot be used with another.
    id: u32,
}

impl std::fmt::Debug for VerilatedLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerilatedLibrary")
            .field("path", &self.path)
            .field("ports", &self.ports.len())
            .finish()
    }
}

impl VerilatedLibrary {
    /// Builds the design (or takes it from the cache, see [`crate::verilate`]) and loads it.
    pub fn build(
        verilog: &str,
        top: &str,
        options: &BuildOptions,
    ) -> Result<(Arc<Self>, BuildReport), SimError> {
        let built = verilate::build(verilog, top, options)?;
        let library = Self::load(&built.library)?;
        let expected: Vec<PortInfo> = built
            .ports
            .iter()
            .map(|p| PortInfo {
                name: p.name.clone(),
                direction: p.direction,
                width: p.width,
            })
            .collect();
        if library.ports != expected {
            return Err(SimError::Load {
                path: built.library,
                message: "its port table does not match the Verilog (a damaged cache entry?)"
                    .into(),
            });
        }
        Ok((library, built.report))
    }

    /// Loads a library built earlier (`libpfsim.so` in a build folder).
    pub fn load(path: &Path) -> Result<Arc<Self>, SimError> {
        static NEXT_ID: AtomicU32 = AtomicU32::new(1);
        let raw = RawLibrary::open(path).map_err(|message| SimError::Load {
            path: path.to_path_buf(),
            message,
        })?;
        let ports = raw
            .ports()
            .into_iter()
            .map(|p| PortInfo {
                name: p.name,
                direction: if p.is_output {
                    Direction::Output
                } else {
                    Direction::Input
                },
                width: p.width,
            })
            .collect();
        Ok(Arc::new(Self {
            raw: Arc::new(raw),
            ports,
            path: path.to_path_buf(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }))
    }

    /// The design's top-level ports, in header order.
    pub fn ports(&self) -> &[PortInfo] {
        &self.ports
    }

    /// Where the library was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether it was built with tracing ([`BuildOptions::trace`]).
    pub fn has_trace(&self) -> bool {
        self.raw.has_trace()
    }

    /// Whether it was built for fault injection ([`BuildOptions::public_rw`]).
    pub fn has_faults(&self) -> bool {
        self.raw.has_faults()
    }

    fn port(&self, name: &str, wanted: Direction) -> Result<(u32, u32), SimError> {
        let Some(index) = self.ports.iter().position(|p| p.name == name) else {
            let available: Vec<&str> = self.ports.iter().map(|p| p.name.as_str()).collect();
            return Err(SimError::PortNotFound {
                name: name.to_owned(),
                available: available.join(", "),
            });
        };
        let port = &self.ports[index];
        if port.direction != wanted {
            return Err(SimError::PortDirection {
                name: name.to_owned(),
                actual: port.direction,
                wanted,
            });
        }
        let index =
            u32::try_from(index).map_err(|_| SimError::Config("more than 2^32 ports".into()))?;
        Ok((index, port.width))
    }
}

/// Handle of an input port: looked up by name once, then used on every access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InputPort {
    index: u32,
    width: u32,
    library: u32,
}

/// Handle of an output port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OutputPort {
    index: u32,
    width: u32,
    library: u32,
}

/// What both kinds of handle offer; inputs can be read back too.
pub trait PortHandle: Copy + private::Sealed {
    /// Width in bits.
    fn width(&self) -> u32;
    #[doc(hidden)]
    fn raw(&self) -> (u32, u32);
}

mod private {
    pub trait Sealed {}
    impl Sealed for super::InputPort {}
    impl Sealed for super::OutputPort {}
}

impl PortHandle for InputPort {
    fn width(&self) -> u32 {
        self.width
    }
    fn raw(&self) -> (u32, u32) {
        (self.index, self.library)
    }
}

impl PortHandle for OutputPort {
    fn width(&self) -> u32 {
        self.width
    }
    fn raw(&self) -> (u32, u32) {
        (self.index, self.library)
    }
}

/// How to instantiate a model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelOptions {
    /// The clock input that [`Model::tick`] toggles; `None` for purely combinational designs.
    pub clock: Option<String>,
    /// Write a VCD trace (GTKWave reads it) to this file; needs a library built with tracing.
    pub trace: Option<PathBuf>,
    /// Faults to inject from the start; needs a library built with their signals public
    /// ([`crate::BuildOptions::public_rw`]). A fresh model made from these options (a power
    /// cycle) gets the same faults again.
    pub faults: Vec<SignalFault>,
}

impl Default for ModelOptions {
    fn default() -> Self {
        Self {
            clock: Some("clock".into()),
            trace: None,
            faults: Vec::new(),
        }
    }
}

/// A running instance of a Verilated design.
///
/// The model is `Send` (it can move to another thread) but not `Sync`.
pub struct Model {
    raw: RawModel,
    library: Arc<VerilatedLibrary>,
    clock: Option<u32>,
    options: ModelOptions,
    /// Whether the design has been evaluated, clock low, since the last input change (the next
    /// tick may then go straight to the rising edge).
    settled: bool,
    /// Whether outputs are up to date for reading: after an evaluation, or right after a tick
    /// (whose rising-edge evaluation left them valid; the clock's fall changes no state of a
    /// rising-edge design).
    readable: bool,
    cycle: u64,
    /// A failure seen while settling for a read; reported by the next eval or tick.
    pending: i32,
    words: Vec<u32>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("library", &self.library.path)
            .field("cycle", &self.cycle)
            .finish()
    }
}

impl Model {
    /// Instantiates the design (in its own Verilator context).
    pub fn new(library: &Arc<VerilatedLibrary>, options: ModelOptions) -> Result<Self, SimError> {
        if options.trace.is_some() && !library.has_trace() {
            return Err(SimError::Trace {
                message: format!(
                    "{} was built without tracing; build with BuildOptions {{ trace: true, .. }}",
                    library.path.display()
                ),
            });
        }
        let clock = match &options.clock {
            Some(name) => Some(library.port(name, Direction::Input)?.0),
            None => None,
        };
        if let Some(path) = &options.trace {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .map_err(|e| SimError::io(format!("creating {}", parent.display()), e))?;
            }
        }
        if !options.faults.is_empty() && !library.has_faults() {
            return Err(SimError::Fault {
                message: format!(
                    "{} was built without fault support; build with the faulted signals in \
                     BuildOptions::public_rw",
                    library.path.display()
                ),
            });
        }
        let mut raw = RawModel::new(Arc::clone(&library.raw), options.trace.as_deref()).map_err(
            |message| {
                if options.trace.is_some() {
                    SimError::Trace { message }
                } else {
                    SimError::Broken { cycle: 0, message }
                }
            },
        )?;
        for fault in &options.faults {
            raw.fault_add(
                &crate::fault::vpi_name(&fault.signal),
                fault.word,
                fault.bit,
                fault.mode.code(),
                fault.from,
                fault.until,
            )
            .map_err(|message| SimError::Fault {
                message: format!("{fault}: {message}"),
            })?;
        }
        Ok(Self {
            raw,
            library: Arc::clone(library),
            clock,
            options,
            settled: false,
            readable: false,
            cycle: 0,
            pending: STATUS_OK,
            words: Vec::new(),
        })
    }

    /// The library this model runs.
    pub fn library(&self) -> &Arc<VerilatedLibrary> {
        &self.library
    }

    /// The options this model was made with (to make another one like it).
    pub fn options(&self) -> &ModelOptions {
        &self.options
    }

    /// The design's ports.
    pub fn ports(&self) -> &[PortInfo] {
        &self.library.ports
    }

    /// Looks up an input port by its Verilog name. The handle works with every model of the
    /// same library; using it with a model of another library is a bug and panics.
    pub fn input(&self, name: &str) -> Result<InputPort, SimError> {
        let (index, width) = self.library.port(name, Direction::Input)?;
        Ok(InputPort {
            index,
            width,
            library: self.library.id,
        })
    }

    /// Looks up an output port by its Verilog name.
    pub fn output(&self, name: &str) -> Result<OutputPort, SimError> {
        let (index, width) = self.library.port(name, Direction::Output)?;
        Ok(OutputPort {
            index,
            width,
            library: self.library.id,
        })
    }

    /// Clock cycles run so far.
    pub fn cycle(&self) -> u64 {
        self.cycle
    }

    /// Simulation time in the trace's units (10 per cycle).
    pub fn time(&self) -> u64 {
        self.raw.time()
    }

    fn index<P: PortHandle>(&self, port: P) -> u32 {
        let (index, library) = port.raw();
        // A handle from another library would silently address a different port.
        assert_eq!(
            library, self.library.id,
            "port handle used with a model of another design"
        );
        index
    }

    /// Sets an input. The value is truncated to the port's width; a port wider than 64 bits gets
    /// `value` in its low 64 bits and zeros above.
    pub fn set(&mut self, port: InputPort, value: u64) {
        let index = self.index(port);
        self.raw.set(index, value);
        self.settled = false;
        self.readable = false;
    }

    /// Sets an input from 32-bit words, least significant first; missing words are zero,
    /// words beyond the port's width are ignored.
    pub fn set_words(&mut self, port: InputPort, words: &[u32]) {
        let index = self.index(port);
        self.raw.set_words(index, words);
        self.settled = false;
        self.readable = false;
    }

    /// Sets an input from little-endian bytes (missing bytes are zero).
    pub fn set_bytes(&mut self, port: InputPort, bytes: &[u8]) {
        let mut words = std::mem::take(&mut self.words);
        words.clear();
        words.extend(bytes.chunks(4).map(|chunk| {
            let mut word = [0u8; 4];
            word[..chunk.len()].copy_from_slice(chunk);
            u32::from_le_bytes(word)
        }));
        self.set_words(port, &words);
        self.words = words;
    }

    /// Sets an input of up to 128 bits.
    pub fn set_u128(&mut self, port: InputPort, value: u128) {
        let words: [u32; 4] = std::array::from_fn(|k| (value >> (32 * k)) as u32);
        self.set_words(port, &words);
    }

    /// Evaluates the design if an input changed since it last settled (so reads see
    /// combinational effects of new inputs). A failure is kept and reported by the next
    /// [`Model::eval`] or [`Model::tick`].
    fn settle_for_read(&mut self) {
        if !self.readable {
            let status = self.raw.eval();
            self.settled = true;
            self.readable = true;
            if self.pending == STATUS_OK {
                self.pending = status;
            }
        }
    }

    /// Reads a port (the low 64 bits of wider ports).
    pub fn get<P: PortHandle>(&mut self, port: P) -> u64 {
        self.settle_for_read();
        let index = self.index(port);
        self.raw.get(index)
    }

    /// Reads a port as 32-bit words, least significant first, filling `out` (zeros beyond
    /// the port's width).
    pub fn get_words<P: PortHandle>(&mut self, port: P, out: &mut [u32]) {
        self.settle_for_read();
        let index = self.index(port);
        self.raw.get_words(index, out);
    }

    /// Reads a port into little-endian bytes, filling `out`.
    pub fn get_bytes<P: PortHandle>(&mut self, port: P, out: &mut [u8]) {
        let mut words = std::mem::take(&mut self.words);
        words.clear();
        words.resize(out.len().div_ceil(4), 0);
        self.get_words(port, &mut words);
        for (chunk, word) in out.chunks_mut(4).zip(&words) {
            chunk.copy_from_slice(&word.to_le_bytes()[..chunk.len()]);
        }
        self.words = words;
    }

    /// Reads a port of up to 128 bits.
    pub fn get_u128<P: PortHandle>(&mut self, port: P) -> u128 {
        let mut words = [0u32; 4];
        self.get_words(port, &mut words);
        words
            .iter()
            .enumerate()
            .fold(0u128, |acc, (k, &w)| acc | (u128::from(w) << (32 * k)))
    }

    /// Evaluates the design now (settles combinational logic after input changes).
    pub fn eval(&mut self) -> Result<(), SimError> {
        let status = self.raw.eval();
        self.settled = true;
        self.readable = true;
        let pending = std::mem::replace(&mut self.pending, STATUS_OK);
        self.check(if pending != STATUS_OK {
            pending
        } else {
            status
        })
    }

    /// One clock cycle: settle the inputs, rising edge (see [`crate::shim`]).
    pub fn tick(&mut self) -> Result<(), SimError> {
        self.run(1)
    }

    /// `cycles` clock cycles with the inputs held.
    pub fn run(&mut self, cycles: u64) -> Result<(), SimError> {
        let Some(clock) = self.clock else {
            return Err(SimError::NoClock {
                name: self.options.clock.clone().unwrap_or_default(),
            });
        };
        let pending = std::mem::replace(&mut self.pending, STATUS_OK);
        self.check(pending)?;
        if cycles == 0 {
            return Ok(());
        }
        let status = self.raw.tick(clock, cycles, self.settled);
        // The clock is left low without an evaluation: the next tick settles it first.
        self.settled = false;
        self.readable = true;
        // On a stop the shim leaves the loop early; the time tells how far it got.
        let done = if status == STATUS_OK {
            cycles
        } else {
            (self.raw.time() / 10).saturating_sub(self.cycle)
        };
        self.cycle += done;
        self.check(status)
    }

    /// For each fault of [`ModelOptions::faults`], the cycles on which it changed its signal
    /// (a stuck-at fault whose bit already had the stuck value changes nothing).
    pub fn fault_hits(&self) -> Vec<u64> {
        (0..self.options.faults.len())
            .map(|i| self.raw.fault_hits(i as u32))
            .collect()
    }

    /// Flushes the VCD trace to disk (it is also flushed when the model is dropped).
    pub fn flush_trace(&mut self) {
        self.raw.flush_trace();
    }

    fn check(&self, status: i32) -> Result<(), SimError> {
        match status {
            STATUS_OK => Ok(()),
            STATUS_FINISHED => Err(SimError::Finished { cycle: self.cycle }),
            STATUS_ERROR => Err(SimError::DesignError { cycle: self.cycle }),
            STATUS_BROKEN => Err(SimError::Broken {
                cycle: self.cycle,
                message: self.raw.error(),
            }),
            other => Err(SimError::Broken {
                cycle: self.cycle,
                message: format!(
                    "unknown shim status {other} (shim ABI {})",
                    shim::ABI_VERSION
                ),
            }),
        }
    }
}
