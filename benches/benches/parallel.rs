//! Both cores on one segment: the exact chain of one one-sided segment of about 5,000 pieces, computed on one
//! thread (`ExactLine::with_parallel(false)`) and split over rayon's threads (the default), side by side.
//!
//! Cases:
//! - `random`: the random DCGAN generator ∘ 4-conv classifier of the `exactline` bench;
//! - `trained`: `fixtures/trained/generator.toml` ∘ `classifier-conv4.toml` at `latents/gan-z-3.npy` along the
//!   generator's top global direction there.
//!
//! The tolerance of each case is found by bisection so that its chain has about 5,000 pieces. Before timing, the
//! two chains are checked to be identical, bit for bit. `cargo xtask bench` prints the serial÷parallel ratio.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gcert_benches::{
    conv_classifier, dcgan_generator, digit_case, eps_for_pieces, latent_and_direction, segment, trained,
};
use gcert_core::Network;
use gcert_exactline::ExactLine;

const PIECES: usize = 5_000;

fn bench_case(c: &mut Criterion, name: &str, nets: [&Network; 2], z: &[f64], d: &[f64]) {
    let parallel = ExactLine::for_networks(&nets).expect("engine");
    let serial = parallel.clone().with_parallel(false);
    let (eps, pieces) = eps_for_pieces(&serial, z, d, PIECES);
    let seg = segment(z, d, eps);
    let (a, b) = (serial.chain(&seg).expect("chain"), parallel.chain(&seg).expect("chain"));
    assert_eq!(a, b, "the split chain must be the serial one, bit for bit");
    eprintln!("parallel/{name}: eps {eps:.4}, {pieces} pieces, {} threads", rayon::current_num_threads());
    let mut group = c.benchmark_group("parallel");
    group.sample_size(10).warm_up_time(std::time::Duration::from_secs(1));
    group.throughput(Throughput::Elements(pieces as u64));
    group.bench_with_input(BenchmarkId::new("serial", name), &seg, |bch, seg| {
        bch.iter(|| serial.chain(seg).expect("chain"))
    });
    group.bench_with_input(BenchmarkId::new("parallel", name), &seg, |bch, seg| {
        bch.iter(|| parallel.chain(seg).expect("chain"))
    });
    group.finish();
}

fn bench_parallel(c: &mut Criterion) {
    let gen = dcgan_generator(50, 7);
    let cls = conv_classifier(8);
    let (z, d) = latent_and_direction(50, 9);
    bench_case(c, "random", [&gen, &cls], &z, &d);

    let g = Network::load(trained("generator.toml")).expect("generator");
    let n = Network::load(trained("classifier-conv4.toml")).expect("classifier");
    let (z, ds) = digit_case(&g, 3, 1);
    bench_case(c, "trained", [&g, &n], &z, &ds[0]);
}

criterion_group!(benches, bench_parallel);
criterion_main!(benches);
