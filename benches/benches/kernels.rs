//! The affine kernels against a GEMM: every affine layer of the trained composition
//! (`fixtures/trained/generator.toml` ∘ `classifier-conv4.toml`) applied to a batch of 512 points (a chain's
//! chunk) and of 32 (the hybrid's batch of 8 regions' bounds), in f64 GFLOP/s (`2 × Layer::cost` multiply-adds
//! per point) and as a share of `matrixmultiply`'s 256³ GEMM rate measured in the same run. Printed once per
//! layer and per layer kind at each batch size, then timed by criterion per kind at 512 points. The random
//! composition of the PyTorch reference bench (`gcert-torch/benches/reference.rs`: a DCGAN generator with
//! random weights ∘ a 4-conv classifier with small feature maps and wide channels) is printed too, not timed.
//! Last, the bounds' radius pass on the trained composition at 32 points: `|W|` in f32 (`Layer::single`, on
//! AVX-512) against `|W|` in f64 (`Layer::abs`), per layer, in GFLOP/s of the same arithmetic.

use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use gcert_benches::{conv_classifier, dcgan_generator, gemm_peak, median, trained};
use gcert_core::ops::Scratch;
use gcert_core::{Kind, Layer, Network};

const POINTS: usize = 512;

/// The batch sizes of the printed tables.
const BATCHES: [usize; 2] = [POINTS, 32];

/// The affine layers that do arithmetic (not copies), with an input batch for each.
fn layers_of(nets: &[Network]) -> Vec<(&Layer, Vec<f64>)> {
    nets.iter()
        .flat_map(|n| n.layers())
        .filter(|l| l.kind() == Kind::Affine && matches!(l.name(), "linear" | "conv2d" | "conv_transpose2d"))
        .map(|l| {
            let x = (0..POINTS * l.in_len()).map(|i| ((i % 97) as f64 - 48.0) / 50.0).collect();
            (l, x)
        })
        .collect()
}

/// The median time of `runs` calls of `f`.
fn median_seconds(runs: usize, mut f: impl FnMut()) -> f64 {
    median(
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn seconds(layer: &Layer, x: &[f64], points: usize, runs: usize) -> f64 {
    let (mut out, mut scratch) = (Vec::new(), Scratch::default());
    let x = &x[..points * layer.in_len()];
    median_seconds(runs, || {
        layer.apply(x, points, &mut out, &mut scratch);
        std::hint::black_box(&out);
    })
}

fn flops(layer: &Layer, points: usize) -> f64 {
    2.0 * (layer.cost().0.expect("a finite cost") * points) as f64
}

/// Prints each layer's rate at every batch size and each kind's over all its layers; returns the kinds.
fn print_rates<'a>(layers: &[(&'a Layer, Vec<f64>)], peak: f64) -> Vec<&'a str> {
    let mut kinds: Vec<&str> = Vec::new();
    for points in BATCHES {
        println!("on {points} points:");
        let mut sums: Vec<(&str, f64, f64)> = Vec::new();
        for (layer, x) in layers {
            let (f, s) = (flops(layer, points), seconds(layer, x, points, 9));
            println!(
                "  {:<17} {:>13} → {:<13} {:>6.1} GFLOP/s ({:>3.0}%)",
                layer.name(),
                format!("{:?}", layer.in_shape()),
                format!("{:?}", layer.out_shape()),
                f / s / 1e9,
                100.0 * f / s / peak
            );
            match sums.iter_mut().find(|k| k.0 == layer.name()) {
                Some(k) => {
                    k.1 += f;
                    k.2 += s;
                }
                None => sums.push((layer.name(), f, s)),
            }
        }
        for (kind, f, s) in &sums {
            println!(
                "{kind:<19} all layers: {:>6.1} GFLOP/s ({:>3.0}% of the GEMM rate)",
                f / s / 1e9,
                100.0 * f / s / peak
            );
        }
        kinds = sums.iter().map(|k| k.0).collect();
    }
    kinds
}

/// The radius pass of the bounds in f32 against f64, per layer that has a single-precision form.
fn print_radius(layers: &[(&Layer, Vec<f64>)]) {
    let points = 32;
    println!(
        "the bounds' radius pass on {points} points, |W| in f32 (Layer::single) against f64 (Layer::abs):"
    );
    let mut any = false;
    for (layer, x) in layers {
        let (Some(single), Some(abs)) = (layer.single(), layer.abs()) else { continue };
        any = true;
        let x32: Vec<f32> = x[..points * layer.in_len()].iter().map(|v| v.abs() as f32).collect();
        let (mut out, mut scratch) = (Vec::new(), Scratch::default());
        let s32 = median_seconds(9, || {
            single.apply(&x32, points, &mut out, &mut scratch);
            std::hint::black_box(&out);
        });
        let (f, s64) = (flops(layer, points), seconds(abs, x, points, 9));
        println!(
            "  {:<17} {:>13} → {:<13} f32 {:>6.1}, f64 {:>6.1} GFLOP/s ({:.2}×)",
            layer.name(),
            format!("{:?}", layer.in_shape()),
            format!("{:?}", layer.out_shape()),
            f / s32 / 1e9,
            f / s64 / 1e9,
            s64 / s32
        );
    }
    if !any {
        println!("  none: this CPU has no AVX-512F, so the radius runs in f64");
    }
}

fn bench_kernels(c: &mut Criterion) {
    let nets = [
        Network::load(trained("generator.toml")).expect("generator"),
        Network::load(trained("classifier-conv4.toml")).expect("classifier"),
    ];
    let layers = layers_of(&nets);
    let peak = gemm_peak();
    println!("matrixmultiply's f64 GEMM (256³): {:.1} GFLOP/s; each layer median of 9", peak / 1e9);
    println!("the trained composition (generator.toml ∘ classifier-conv4.toml)");
    let kinds = print_rates(&layers, peak);
    // The random composition (the PyTorch reference bench's): smaller feature maps, wider channels.
    let random = [dcgan_generator(50, 7), conv_classifier(8)];
    println!("the random composition (a DCGAN generator ∘ the benches' 4-conv classifier)");
    print_rates(&layers_of(&random), peak);
    print_radius(&layers);
    let mut group = c.benchmark_group("kernels");
    group.sample_size(10);
    for kind in &kinds {
        let of_kind: Vec<_> = layers.iter().filter(|(l, _)| l.name() == *kind).collect();
        let mut scratch = Scratch::default();
        let mut out = Vec::new();
        group.bench_function(BenchmarkId::new(*kind, POINTS), |b| {
            b.iter(|| {
                for (layer, x) in &of_kind {
                    layer.apply(x, POINTS, &mut out, &mut scratch);
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_kernels);
criterion_main!(benches);
