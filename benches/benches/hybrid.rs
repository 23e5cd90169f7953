//! Complete certification on the committed MNIST models, the hybrid path (bounds first, the exact chain only on
//! undecided regions; the default) against the whole exact chain, measured side by side in one run.
//!
//! The problem is the target case: `fixtures/trained/generator.toml` ∘ `classifier-conv4.toml`, ε = 3,
//! two-sided, at the latents of test digits (`latents/gan-z-*.npy`). The directions are the generator's top
//! global directions at each latent (computed once, outside the timings). Groups:
//! - `hybrid/{digit}` and `exact_chain/{digit}`: one certification each, both on all available cores (rayon:
//!   the hybrid's regions, the chain's two sides and the groups each side is split into);
//! - a summary over 10 digits × 3 directions is printed once: median times, median ratio, median chained
//!   pieces, and a check that every answer agrees;
//! - the arithmetic floor: the composition's multiply-adds per point (`Layer::cost`) at this core's f64 GEMM peak
//!   (`matrixmultiply`'s dgemm on 256 × 256 × 256, best of 20: an outside kernel), and what the median whole
//!   chain would cost at that floor on one core.

use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use gcert_benches::{digit_case, gemm_peak, macs_per_point, median, target_problem as problem, trained};
use gcert_certify::{Certificate, Certifier, Complete, Hybrid};
use gcert_core::Network;

fn agree(a: &Certificate, b: &Certificate) -> bool {
    a.same_answers(b, 1e-9).is_ok()
}

fn bench_hybrid(c: &mut Criterion) {
    let g = Network::load(trained("generator.toml")).expect("generator");
    let n = Network::load(trained("classifier-conv4.toml")).expect("classifier");
    let cases: Vec<(Vec<f64>, Vec<Vec<f64>>)> = (0..10).map(|i| digit_case(&g, i, 3)).collect();

    let (mut th, mut te, mut ratio, mut pieces, mut agreed) = (vec![], vec![], vec![], vec![], 0);
    for (z, ds) in &cases {
        for d in ds {
            let p = problem(&g, &n, z, d);
            let start = Instant::now();
            let h = Hybrid.certify(&p).expect("hybrid");
            let t_h = start.elapsed().as_secs_f64() * 1e3;
            let start = Instant::now();
            let e = Complete.certify(&p).expect("exact chain");
            let t_e = start.elapsed().as_secs_f64() * 1e3;
            agreed += usize::from(agree(&h, &e));
            th.push(t_h);
            te.push(t_e);
            ratio.push(t_e / t_h);
            pieces.push((h.pieces as f64, e.pieces as f64));
        }
    }
    let total = th.len();
    let macs = macs_per_point(g.layers().iter().chain(n.layers()));
    let peak = gemm_peak();
    let floor_ms = 2.0 * macs as f64 / peak * 1e3;
    let whole = median(pieces.iter().map(|p| p.1).collect());
    println!(
        "floor: {:.2} MFLOP per point at {:.1} GFLOP/s = {:.1} µs per point; the median whole chain ({whole:.0} \
         pieces) costs at least {:.0} ms on one core",
        2.0 * macs as f64 / 1e6,
        peak / 1e9,
        floor_ms * 1e3,
        (whole + 1.0) * floor_ms
    );
    println!(
        "hybrid over {total} certifications (10 digits × 3 directions, eps 3, two-sided): median {:.0} ms, \
         exact chain {:.0} ms, median ratio {:.2}x; median pieces chained {:.0} of {:.0}; answers agree: {agreed}/{total}",
        median(th),
        median(te),
        median(ratio),
        median(pieces.iter().map(|p| p.0).collect()),
        median(pieces.iter().map(|p| p.1).collect()),
    );

    let mut group = c.benchmark_group("complete");
    group.sample_size(10);
    for digit in [0usize, 3, 7] {
        let (z, ds) = &cases[digit];
        let p = problem(&g, &n, z, &ds[0]);
        group.bench_function(BenchmarkId::new("hybrid", digit), |b| b.iter(|| Hybrid.certify(&p).unwrap()));
        group.bench_function(BenchmarkId::new("exact_chain", digit), |b| {
            b.iter(|| Complete.certify(&p).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench_hybrid);
criterion_main!(benches);
