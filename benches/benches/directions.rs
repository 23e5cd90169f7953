//! Mutation directions on a DCGAN-shaped generator (latent k → ConvT 16/8/4/1, kernel 4, batch norm + relu,
//! clamp; 1×32×32 output) for k ∈ {50, 100}.
//!
//! - `exact_jacobian`: forward-mode propagation of the k×k identity (one batched pass);
//! - `fd_jacobian`: the baseline, central finite differences (2k forward passes, batched);
//! - `factorize`: robust PCA of M = JᵀJ (ADMM, default parameters) and the SVD of its low-rank part;
//! - `pipeline`: exact Jacobian + JᵀJ + factorize, the whole of `gcert directions` at one point (target ≤ 100 ms).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use gcert_directions::{
    factorize, finite_difference_jacobian, sample_latents, synthetic, FactorParams, JacobianPlan,
};

fn bench_directions(c: &mut Criterion) {
    let mut group = c.benchmark_group("directions");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    for k in [50usize, 100] {
        let net = synthetic::dcgan(k, 7).expect("generator").network().expect("network");
        let z = sample_latents(&vec![0.0; k], 2, 11).expect("latents")[k..].to_vec();
        let plan = JacobianPlan::new(&net);
        let j = plan.jacobian(&z).expect("jacobian");
        let m = j.t().dot(&j);
        let params = FactorParams::default();
        let f = factorize(&m, &params).expect("factorize");
        eprintln!(
            "k={k}: rank {} of {k}, robust pca {} iterations (converged {}), sparse share {:.3}",
            f.rank, f.rpca.iterations, f.rpca.converged, f.rpca.sparse_share
        );
        group.bench_with_input(BenchmarkId::new("exact_jacobian", k), &z, |b, z| {
            b.iter(|| plan.jacobian(z).expect("jacobian"))
        });
        group.bench_with_input(BenchmarkId::new("fd_jacobian", k), &z, |b, z| {
            b.iter(|| finite_difference_jacobian(&net, z, 1e-6).expect("fd"))
        });
        group.bench_with_input(BenchmarkId::new("factorize", k), &m, |b, m| {
            b.iter(|| factorize(m, &params).expect("factorize"))
        });
        group.bench_with_input(BenchmarkId::new("pipeline", k), &z, |b, z| {
            b.iter(|| {
                let gram = plan.mean_gram(z, 1, None).expect("gram");
                factorize(&gram, &params).expect("factorize")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_directions);
criterion_main!(benches);
