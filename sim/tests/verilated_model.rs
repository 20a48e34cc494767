//! The Verilator bridge on real Rust-HDL Verilog: build, cache, clock, ports, tracing.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use common::accumulator::{self, Reference};
use proptest::prelude::*;
use sim::{BuildOptions, BuildReport, Model, ModelOptions, SimError, VerilatedLibrary};

struct Built {
    library: Arc<VerilatedLibrary>,
    report: BuildReport,
    options: BuildOptions,
}

/// One build for all tests of this file, in a fresh cache so that it is a real miss.
fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let options = BuildOptions {
            trace: true,
            cache_dir: Some(common::scratch_dir("cache")),
            ..BuildOptions::default()
        };
        let (library, report) =
            VerilatedLibrary::build(&accumulator::verilog(), "top", &options).expect("build");
        eprintln!("{report}");
        Built {
            library,
            report,
            options,
        }
    })
}

fn model() -> Model {
    Model::new(&built().library, ModelOptions::default()).expect("model")
}

#[test]
fn first_build_is_a_miss_and_the_second_a_hit() {
    let first = &built().report;
    assert!(!first.cache_hit, "a fresh cache cannot hit: {first}");
    let (_, second) =
        VerilatedLibrary::build(&accumulator::verilog(), "top", &built().options).expect("rebuild");
    assert!(second.cache_hit, "{second}");
    assert_eq!(second.dir, first.dir);
    assert_eq!(second.key, first.key);
    // Nothing but the finished build is left in the cache folder.
    let cache = built().options.cache_dir.as_ref().unwrap();
    let entries: Vec<String> = std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(first.dir.join("libpfsim.so").is_file());
    assert!(first.dir.join("build.log").is_file());
}

#[test]
fn ports_come_from_the_verilog_with_their_widths() {
    let ports: Vec<(String, u32)> = built()
        .library
        .ports()
        .iter()
        .map(|p| (p.name.clone(), p.width))
        .collect();
    let expected = [
        ("clock", 1),
        ("reset", 1),
        ("feed$add", 32),
        ("feed$enable", 1),
        ("feed$wide", 128),
        ("feed$echo", 32),
        ("count", 32),
        ("total", 128),
        ("middle", 64),
    ];
    let expected: Vec<(String, u32)> = expected.iter().map(|&(n, w)| (n.to_owned(), w)).collect();
    assert_eq!(ports, expected);
}

#[test]
fn counts_and_accumulates_wide_values() {
    let mut m = model();
    let reset = m.input("reset").unwrap();
    let enable = m.input("feed$enable").unwrap();
    let add = m.input("feed$add").unwrap();
    let wide = m.input("feed$wide").unwrap();
    let count = m.output("count").unwrap();
    let total = m.output("total").unwrap();
    let middle = m.output("middle").unwrap();

    m.set(reset, 1);
    m.run(2).unwrap();
    m.set(reset, 0);
    m.set(enable, 1);
    m.set(add, 5);
    // Carries across every 32-bit word boundary.
    let step: u128 = (u128::from(u64::MAX) << 32) | 0xffff_ffff;
    m.set_u128(wide, step);
    m.run(10).unwrap();
    assert_eq!(m.get(count), 50);
    let expected = step.wrapping_mul(10);
    assert_eq!(m.get_u128(total), expected);
    assert_eq!(m.get(middle), (expected >> 32) as u64);
    // `get` on a wide port gives the low 64 bits; bytes are little-endian.
    assert_eq!(m.get(total), expected as u64);
    let mut bytes = [0u8; 16];
    m.get_bytes(total, &mut bytes);
    assert_eq!(u128::from_le_bytes(bytes), expected);

    // Holding enable low holds the state.
    m.set(enable, 0);
    m.run(5).unwrap();
    assert_eq!(m.get(count), 50);
    assert_eq!(m.cycle(), 17);
}

#[test]
fn combinational_outputs_follow_inputs_without_a_clock() {
    let mut m = model();
    let add = m.input("feed$add").unwrap();
    let echo = m.output("feed$echo").unwrap();
    m.set(add, 41);
    assert_eq!(m.get(echo), 42);
    // Inputs are truncated to the port width: 2^32 + 7 is 7 on a 32-bit port.
    m.set(add, (1 << 32) + 7);
    assert_eq!(m.get(echo), 8);
    assert_eq!(m.get(add), 7);
    m.set_bytes(add, &[0xff, 0xff, 0xff, 0xff, 0x01]);
    assert_eq!(m.get(echo), 0);
    assert_eq!(m.cycle(), 0);
}

#[test]
fn port_lookups_explain_mistakes() {
    let m = model();
    let missing = m.input("feed$nothing").unwrap_err();
    assert!(matches!(missing, SimError::PortNotFound { .. }));
    assert!(missing.to_string().contains("feed$add"), "{missing}");
    let wrong = m.input("count").unwrap_err();
    assert!(wrong.to_string().contains("is an output"), "{wrong}");
    let no_clock = Model::new(
        &built().library,
        ModelOptions {
            clock: Some("clk".into()),
            trace: None,
            ..ModelOptions::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(no_clock, SimError::PortNotFound { .. }),
        "{no_clock}"
    );
    let mut combinational = Model::new(
        &built().library,
        ModelOptions {
            clock: None,
            trace: None,
            ..ModelOptions::default()
        },
    )
    .unwrap();
    assert!(matches!(
        combinational.tick(),
        Err(SimError::NoClock { .. })
    ));
}

#[test]
fn models_are_independent_and_can_move_between_threads() {
    let mut a = model();
    let b = model();
    let handle = std::thread::spawn(move || {
        let mut b = b;
        let enable = b.input("feed$enable").unwrap();
        let add = b.input("feed$add").unwrap();
        b.set(enable, 1);
        b.set(add, 3);
        b.run(4).unwrap();
        let count = b.output("count").unwrap();
        b.get(count)
    });
    let count = a.output("count").unwrap();
    a.run(3).unwrap();
    assert_eq!(a.get(count), 0);
    assert_eq!(handle.join().unwrap(), 12);
}

#[test]
fn tracing_writes_a_vcd_file() {
    let dir = common::scratch_dir("trace");
    let path: PathBuf = dir.join("waves").join("acc.vcd");
    {
        let mut m = Model::new(
            &built().library,
            ModelOptions {
                clock: Some("clock".into()),
                trace: Some(path.clone()),
                ..ModelOptions::default()
            },
        )
        .unwrap();
        let enable = m.input("feed$enable").unwrap();
        let add = m.input("feed$add").unwrap();
        m.set(enable, 1);
        m.set(add, 2);
        m.run(8).unwrap();
    }
    let vcd = std::fs::read_to_string(&path).expect("VCD written");
    assert!(vcd.contains("$enddefinitions"), "not a VCD header");
    assert!(vcd.contains(" count "), "count not traced");
    assert!(
        vcd.contains("#75"),
        "the rising edge of cycle 7 is at time 75"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: common::cases(12, 200), ..ProptestConfig::default() })]

    #[test]
    fn matches_the_reference_on_random_stimulus(
        steps in prop::collection::vec((any::<bool>(), any::<bool>(), any::<u32>(), any::<u128>()), 1..150)
    ) {
        let mut m = model();
        let reset = m.input("reset").unwrap();
        let enable = m.input("feed$enable").unwrap();
        let add = m.input("feed$add").unwrap();
        let wide = m.input("feed$wide").unwrap();
        let count = m.output("count").unwrap();
        let total = m.output("total").unwrap();
        let mut reference = Reference::default();
        for (r, e, a, w) in steps {
            // Reset rarely, so that sums build up.
            let r = r && a % 8 == 0;
            m.set(reset, u64::from(r));
            m.set(enable, u64::from(e));
            m.set(add, u64::from(a));
            m.set_u128(wide, w);
            m.tick().unwrap();
            reference.step(r, e, a, w);
            prop_assert_eq!(m.get(count), u64::from(reference.count));
            prop_assert_eq!(m.get_u128(total), reference.total);
        }
    }
}
