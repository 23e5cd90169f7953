//! Certifier backends on the DCGAN generator composed with the convolutional classifier (latent 50 →
//! 1×32×32 → 10), one CPU core.
//!
//! - `certify/complete/{200,1000,3000}`: complete certification of one (image, direction) at the tolerance
//!   whose exact chain has about that many pieces (throughput: pieces per second).
//! - `certify/incomplete/{200,1000,3000}`: the incomplete backend (linear bounds + branch and bound, default
//!   budget) on the same segments; how often it answers (certified, or violated with a counterexample) over
//!   20 (image, direction) pairs is printed once, with the median times of both.
//! - The random classifier keeps its label everywhere (its answers are all `certified`), so the label-changing
//!   measurements use the committed MNIST-trained classifier `fixtures/trained/classifier-conv4.toml` (4 conv and
//!   2 linear layers, 1×32×32 → 10) after the same DCGAN shape with weights at gain 2: the incomplete backend's
//!   answer rate and times over 20 pairs, and `certify/max_tolerance/{one_pass,bisection}`: `E_max` from one
//!   complete run against bisection over complete runs (relative precision 1e-6) on a pair whose label
//!   changes; their ratio is printed.

use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gcert_benches::{conv_classifier, dcgan_generator, eps_for_pieces, latent_and_direction};
use gcert_certify::{Certifier, Complete, Incomplete, Problem, ProblemSpec, Verdict};
use gcert_core::{Direction, Layer, Network};
use gcert_exactline::ExactLine;

fn problem<'a>(g: &'a Network, n: &'a Network, z: &[f64], d: &[f64], eps: f64) -> Problem<'a> {
    labelled(g, n, z, d, eps, None)
}

fn labelled<'a>(
    g: &'a Network,
    n: &'a Network,
    z: &[f64],
    d: &[f64],
    eps: f64,
    label: Option<usize>,
) -> Problem<'a> {
    Problem::new(ProblemSpec {
        generator: g.layers().iter().collect::<Vec<&Layer>>(),
        classifier: n.layers().iter().collect(),
        origin: z.to_vec(),
        direction: Direction::new(d.to_vec()).expect("a non-zero direction"),
        eps,
        two_sided: false,
        label,
    })
    .expect("valid problem")
}

/// The DCGAN shape of `gcert_benches::dcgan_generator` with weights drawn at `gain`: larger image
/// changes per latent step, so a trained classifier's label does change along segments.
fn dcgan_with_gain(gain: f64, seed: u64) -> Network {
    gcert_benches::dcgan_generator_with_gain(50, seed, gain)
}

/// Incomplete against complete over 20 (image, direction) pairs at `eps`.
fn answer_rate(g: &Network, n: &Network, eps: f64, what: &str) {
    let (mut answered, mut agree, mut violated, mut t_complete, mut t_incomplete) =
        (0, 0, 0, Vec::new(), Vec::new());
    for seed in 0..20 {
        let (z, d) = latent_and_direction(50, 1000 + seed);
        let p = problem(g, n, &z, &d, eps);
        let start = Instant::now();
        let exact = Complete.certify(&p).expect("certify");
        t_complete.push(start.elapsed().as_secs_f64() * 1e3);
        let start = Instant::now();
        let bounded = Incomplete::default().certify(&p).expect("certify");
        t_incomplete.push(start.elapsed().as_secs_f64() * 1e3);
        violated += usize::from(exact.verdict == Verdict::Violated);
        if bounded.verdict != Verdict::Unknown {
            answered += 1;
            agree += usize::from(bounded.verdict == exact.verdict);
        }
    }
    eprintln!(
        "{what}, eps {eps:.4}: complete finds {violated}/20 violated; incomplete answered {answered}/20 \
         (agreeing with complete: {agree}); median time complete {:.1} ms, incomplete {:.1} ms",
        median(t_complete),
        median(t_incomplete)
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `E_max` by bisection over complete runs, to relative precision `tol`.
fn bisect(g: &Network, n: &Network, z: &[f64], d: &[f64], eps: f64, tol: f64) -> (f64, usize) {
    let label = problem(g, n, z, d, eps).label();
    let ok = |e: f64| {
        let p = labelled(g, n, z, d, e, Some(label));
        Complete.certify(&p).expect("certify").verdict == Verdict::Certified
    };
    let mut runs = 1;
    if ok(eps) {
        return (eps, runs);
    }
    let (mut lo, mut hi) = (0.0, eps);
    while hi - lo > tol * eps {
        let mid = 0.5 * (lo + hi);
        runs += 1;
        if ok(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (0.5 * (lo + hi), runs)
}

fn bench_certify(c: &mut Criterion) {
    // One core, as the figures say: the engine and the certifiers otherwise use every rayon thread.
    let _ = rayon::ThreadPoolBuilder::new().num_threads(1).build_global();
    let g = dcgan_generator(50, 7);
    let n = conv_classifier(8);
    let engine = ExactLine::for_networks(&[&g, &n]).expect("engine");
    let (z, d) = latent_and_direction(50, 9);

    let mut group = c.benchmark_group("certify");
    group.sample_size(10);
    let mut segments = Vec::new();
    for target in [200, 1000, 3000] {
        let (eps, pieces) = eps_for_pieces(&engine, &z, &d, target);
        let p = problem(&g, &n, &z, &d, eps);
        let exact = Complete.certify(&p).expect("certify");
        let bounded = Incomplete::default().certify(&p).expect("certify");
        eprintln!(
            "eps={eps:.4}: {pieces} pieces; complete {} (E_max {:.4}, {:.1} ms), incomplete {} ({:.1} ms)",
            exact.verdict.as_str(),
            exact.max_tolerance,
            exact.time_ms,
            bounded.verdict.as_str(),
            bounded.time_ms
        );
        group.throughput(Throughput::Elements(pieces as u64));
        group.bench_with_input(BenchmarkId::new("complete", target), &p, |b, p| {
            b.iter(|| Complete.certify(p).expect("certify"))
        });
        group.bench_with_input(BenchmarkId::new("incomplete", target), &p, |b, p| {
            b.iter(|| Incomplete::default().certify(p).expect("certify"))
        });
        segments.push((target, eps));
    }

    for &(target, eps) in &segments {
        answer_rate(&g, &n, eps, &format!("random DCGAN∘classifier, ~{target} pieces"));
    }

    // A classifier whose label does change: the trained MNIST one after the DCGAN at gain 2.
    let trained =
        Network::load(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/trained/classifier-conv4.toml"))
            .expect("the committed trained classifier");
    let (g, n) = (dcgan_with_gain(2.0, 7), trained);
    let engine = ExactLine::for_networks(&[&g, &n]).expect("engine");
    let mut segments = Vec::new();
    for target in [200, 1000] {
        let (eps, _) = eps_for_pieces(&engine, &z, &d, target);
        answer_rate(&g, &n, eps, &format!("DCGAN (gain 2)∘trained conv4, ~{target} pieces"));
        segments.push((target, eps));
    }

    // One-pass E_max against bisection, on a pair whose label changes within the longest tolerance.
    let (_, eps) = segments[segments.len() - 1];
    let pair = (0..40).map(|s| latent_and_direction(50, 2000 + s)).find(|(z, d)| {
        let m = Complete.certify(&problem(&g, &n, z, d, eps)).expect("certify").max_tolerance;
        m > 0.0 && m < eps
    });
    if let Some((z, d)) = pair {
        let p = problem(&g, &n, &z, &d, eps);
        let first = Complete.certify(&p).expect("certify");
        let one = first.max_tolerance;
        group.throughput(Throughput::Elements(first.pieces as u64));
        let (bis, runs) = bisect(&g, &n, &z, &d, eps, 1e-6);
        let start = Instant::now();
        Complete.certify(&p).expect("certify");
        let t_one = start.elapsed().as_secs_f64();
        let start = Instant::now();
        bisect(&g, &n, &z, &d, eps, 1e-6);
        let t_bis = start.elapsed().as_secs_f64();
        eprintln!(
            "E_max: one pass {one:.6} in {:.1} ms; bisection {bis:.6} ({runs} complete runs) in {:.1} ms; \
             bisection/one-pass = {:.1}x",
            t_one * 1e3,
            t_bis * 1e3,
            t_bis / t_one
        );
        group.bench_function(BenchmarkId::new("max_tolerance", "one_pass"), |b| {
            b.iter(|| Complete.certify(&p).expect("certify").max_tolerance)
        });
        group.bench_function(BenchmarkId::new("max_tolerance", "bisection"), |b| {
            b.iter(|| bisect(&g, &n, &z, &d, eps, 1e-6))
        });
    } else {
        eprintln!("E_max: no pair among 40 changes its label within eps={eps:.4}; bisection not timed");
    }
    group.finish();
}

criterion_group!(benches, bench_certify);
criterion_main!(benches);
