//! The exact chain of gcert's engine against the same algorithm batched in PyTorch (`gcert_torch::reference`,
//! through `tch`) in f64 and in f32, and against the arithmetic floor, on one core, side by side in one run.
//!
//! Cases (the same networks and segments for every implementation):
//! - `random/<pieces>`: the DCGAN-shaped generator (50 → 1×32×32) with random weights composed with a 4-conv +
//!   2-linear classifier, on segments of about 1,000 and 3,000 pieces;
//! - `trained/gan-z-3`: `fixtures/trained/generator.toml` ∘ `classifier-conv4.toml` at the latent of test digit
//!   3, along the generator's top direction there, ε = 3 two-sided (the segment `z − 3d → z + 3d`).
//!
//! Both libtorch and the engine run on one thread (`tch::set_num_threads(1)`; the engine with `ExactLine::with_parallel(false)`).
//! Printed once before criterion's groups: per case, the pieces, the median of 7 timed runs of each
//! implementation, the ratios, and the floor — the composition's multiply-adds per point (`Layer::cost`)
//! times the chain's points at the core's f64 GEMM rate (`matrixmultiply`'s, measured in the same run). The kernels' own rates are in
//! `benches/benches/kernels.rs`.

use std::path::PathBuf;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use gcert_benches::{
    conv_classifier_card, dcgan_generator_card, eps_for_pieces, gemm_peak, latent_and_direction,
    macs_per_point, median,
};
use gcert_core::{Network, Segment};
use gcert_exactline::ExactLine;
use gcert_torch::nn::Net;
use gcert_torch::reference::exact_line;
use tch::{Device, Kind};

/// One case: the pure-Rust networks, the same networks on libtorch in f64 and f32, and the segment.
struct Case {
    name: String,
    nets: [Network; 2],
    f64_nets: [Net; 2],
    f32_nets: [Net; 2],
    segment: Segment,
}

impl Case {
    fn engine(&self) -> ExactLine<'_> {
        ExactLine::for_networks(&[&self.nets[0], &self.nets[1]]).expect("engine").with_parallel(false)
    }
    fn run_engine(&self, engine: &ExactLine<'_>) -> usize {
        engine.chain(&self.segment).expect("chain").pieces()
    }
    fn run_torch(&self, nets: &[Net; 2]) -> usize {
        exact_line(&[&nets[0], &nets[1]], self.segment.a(), self.segment.b()).expect("reference").pieces()
    }
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/trained").join(name)
}

fn segment(z: &[f64], d: &[f64], from: f64, to: f64) -> Segment {
    let a = z.iter().zip(d).map(|(z, d)| z + from * d).collect();
    let b = z.iter().zip(d).map(|(z, d)| z + to * d).collect();
    Segment::new(a, b).expect("segment")
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    let (gc, gt) = dcgan_generator_card(50, 7, 1.0).build();
    let (cc, ct) = conv_classifier_card(8).build();
    let tch_pair = |kind| {
        [
            Net::from_card(&gc, &gt, kind, Device::Cpu).expect("generator"),
            Net::from_card(&cc, &ct, kind, Device::Cpu).expect("classifier"),
        ]
    };
    let (z, d) = latent_and_direction(50, 9);
    for target in [1000, 3000] {
        let nets = [
            Network::from_card(&gc, &gt, "dcgan".as_ref()).expect("generator"),
            Network::from_card(&cc, &ct, "classifier".as_ref()).expect("classifier"),
        ];
        let engine = ExactLine::for_networks(&[&nets[0], &nets[1]]).expect("engine").with_parallel(false);
        let (eps, _) = eps_for_pieces(&engine, &z, &d, target);
        let seg = segment(&z, &d, 0.0, eps);
        drop(engine);
        out.push(Case {
            name: format!("random/{target}"),
            nets,
            f64_nets: tch_pair(Kind::Double),
            f32_nets: tch_pair(Kind::Float),
            segment: seg,
        });
    }
    let (gp, cp) = (fixture("generator.toml"), fixture("classifier-conv4.toml"));
    let g = Network::load(&gp).expect("generator");
    let c = Network::load(&cp).expect("classifier");
    let z = gcert_core::npy::read_npy(&fixture("latents/gan-z-3.npy")).expect("latent").data;
    let f = gcert_directions::directions(&g, &z, 1, &gcert_directions::FactorParams::default())
        .expect("directions");
    let d = f.directions().row(0).to_vec();
    let load = |kind| {
        [
            Net::load_card(&gp, kind, Device::Cpu).expect("generator"),
            Net::load_card(&cp, kind, Device::Cpu).expect("classifier"),
        ]
    };
    out.push(Case {
        name: "trained/gan-z-3".into(),
        nets: [g, c],
        f64_nets: load(Kind::Double),
        f32_nets: load(Kind::Float),
        segment: segment(&z, &d, -3.0, 3.0),
    });
    out
}

fn time_ms(runs: usize, mut f: impl FnMut() -> usize) -> f64 {
    median(
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(f());
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    )
}

fn bench_reference(c: &mut Criterion) {
    tch::set_num_threads(1);
    let cases = cases();
    let peak = gemm_peak();
    println!("one core; matrixmultiply's f64 GEMM (256³): {:.1} GFLOP/s", peak / 1e9);
    println!(
        "{:<18} {:>7} {:>11} {:>11} {:>11} {:>10} {:>9} {:>9} {:>10}",
        "case",
        "pieces",
        "engine ms",
        "torch f64",
        "torch f32",
        "floor ms",
        "f64/eng",
        "f32/eng",
        "eng/floor"
    );
    for case in &cases {
        let engine = case.engine();
        let pieces = case.run_engine(&engine);
        assert_eq!(case.run_torch(&case.f64_nets), pieces, "{}: the f64 reference disagrees", case.name);
        let e = time_ms(7, || case.run_engine(&engine));
        let t64 = time_ms(7, || case.run_torch(&case.f64_nets));
        let t32 = time_ms(7, || case.run_torch(&case.f32_nets));
        let macs = macs_per_point(case.nets[0].layers().iter().chain(case.nets[1].layers()));
        let floor = 2.0 * macs as f64 * (pieces + 1) as f64 / peak * 1e3;
        println!(
            "{:<18} {:>7} {:>11.1} {:>11.1} {:>11.1} {:>10.1} {:>8.2}x {:>8.2}x {:>9.2}x",
            case.name,
            pieces,
            e,
            t64,
            t32,
            floor,
            t64 / e,
            t32 / e,
            e / floor
        );
    }

    let mut group = c.benchmark_group("reference");
    group.sample_size(10);
    for case in &cases {
        let engine = case.engine();
        group.bench_function(BenchmarkId::new("engine", &case.name), |b| b.iter(|| case.run_engine(&engine)));
        group.bench_function(BenchmarkId::new("torch_f64", &case.name), |b| {
            b.iter(|| case.run_torch(&case.f64_nets))
        });
        group.bench_function(BenchmarkId::new("torch_f32", &case.name), |b| {
            b.iter(|| case.run_torch(&case.f32_nets))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_reference);
criterion_main!(benches);
