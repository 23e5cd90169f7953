//! The segment engine on the DCGAN generator composed with the convolutional classifier.
//!
//! For segments of about 200, 1,000 and 3,000 pieces, `engine` computes the exact chain and `floor` evaluates
//! the same composition once at every final ratio in one batched forward pass: the least any exact method must
//! do. `cargo xtask bench` prints the engine/floor ratios from these medians. Peak memory is measured by the
//! `memory` bench.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gcert_benches::{conv_classifier, dcgan_generator, eps_for_pieces, latent_and_direction, segment};
use gcert_core::network::forward_layers;
use gcert_exactline::ExactLine;

fn bench_exactline(c: &mut Criterion) {
    let gen = dcgan_generator(50, 7);
    let cls = conv_classifier(8);
    // One thread, like the floor it is compared with (the `parallel` bench splits segments over cores).
    let engine = ExactLine::for_networks(&[&gen, &cls]).expect("engine").with_parallel(false);
    let (z, d) = latent_and_direction(50, 9);
    let layers = gcert_core::compose(&[&gen, &cls]).expect("compose");
    let mut group = c.benchmark_group("exactline");
    group
        .sample_size(10)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(4));
    for target in [200, 1000, 3000] {
        let (eps, pieces) = eps_for_pieces(&engine, &z, &d, target);
        let seg = segment(&z, &d, eps);
        let chain = engine.chain(&seg).expect("chain");
        let points: Vec<f64> = chain.ratios.iter().flat_map(|&t| seg.point(t)).collect();
        eprintln!("segment eps={eps:.4}: {pieces} pieces");
        group.throughput(Throughput::Elements(pieces as u64));
        group.bench_with_input(BenchmarkId::new("engine", target), &seg, |b, seg| {
            b.iter(|| engine.chain(seg).expect("chain"))
        });
        group.bench_with_input(BenchmarkId::new("floor", target), &points, |b, points| {
            b.iter(|| {
                forward_layers(layers.iter().copied(), 50, points, chain.ratios.len()).expect("forward")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_exactline);
criterion_main!(benches);
