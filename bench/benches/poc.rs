//! PoC pipeline throughput: artifacts per second of the golden model for the small synthetic
//! presets, and synthetic weight generation. (The launch-size preset and the matrix-product/host
//! split are measured by `golden poc --bench`, see docs/benchmarks.md: criterion's repeated
//! sampling would take many minutes there.)
//!
//! `cargo bench -p bench --bench poc`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use golden::poc::config::Preset;
use golden::poc::cpu::CpuDevice;
use golden::poc::model::{ModelSource, SyntheticModel};
use golden::poc::{Engine, Round, RoundParams};

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn artifacts(c: &mut Criterion) {
    let mut group = c.benchmark_group("poc-artifacts");
    group.sample_size(10);
    for (name, nonces) in [("tiny", 256u64), ("small", 32)] {
        let preset = Preset::find(name).unwrap();
        let model = SyntheticModel::new(preset, "bench", threads());
        let mut engine = Engine::load(&model, CpuDevice::new(threads())).unwrap();
        engine.set_host_threads(threads());
        let round = Round::new(
            RoundParams::new("bench", "pk", preset.seq_len),
            model.config(),
        )
        .unwrap();
        let batch: Vec<u64> = (0..nonces).collect();
        group.throughput(Throughput::Elements(nonces));
        group.bench_with_input(BenchmarkId::new("synthetic", name), &batch, |b, batch| {
            b.iter(|| engine.artifacts(&round, batch, 32).unwrap())
        });
    }
    group.finish();
}

fn weights(c: &mut Criterion) {
    let mut group = c.benchmark_group("poc-synthetic-weights");
    group.sample_size(10);
    let preset = Preset::find("small").unwrap();
    let model = SyntheticModel::new(preset, "bench", threads());
    let specs = model.config().tensor_specs();
    let values: u64 = specs.iter().map(|s| s.numel() as u64).sum();
    group.throughput(Throughput::Elements(values));
    group.bench_function("small", |b| {
        b.iter(|| {
            specs
                .iter()
                .map(|s| model.tensor(s).unwrap().len())
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(benches, artifacts, weights);
criterion_main!(benches);
