//! One suite for every backend, written against [`Certifier`] and instantiated per backend below.
//!
//! Problems are random small generators and classifiers. Piecewise-linear ones are checked against the
//! complete certifier and against dense sampling; models with sigmoid/tanh layers against sampling only.

use gcert_core::builder::CardBuilder;
use gcert_core::card::LayerSpec;
use gcert_core::certificate::{Problem, ProblemSpec, Verdict};
use gcert_core::{Direction, Error, Layer, Network};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::*;

/// A random generator from `k` latent values to a 1×4×4 image in [0, 1].
fn generator(arch: usize, k: usize, seed: u64) -> Network {
    let b = match arch % 3 {
        0 => CardBuilder::new("g-mlp", &[k], seed).gain(2.0).linear(12).relu().linear(16).clamp(0.0, 1.0),
        1 => CardBuilder::new("g-dcgan", &[k], seed)
            .gain(2.0)
            .reshape(&[k, 1, 1])
            .conv_transpose2d(4, 2, 1, 0, 0)
            .batch_norm()
            .leaky_relu(0.2)
            .conv_transpose2d(1, 2, 2, 0, 0)
            .clamp(0.0, 1.0),
        _ => CardBuilder::new("g-deep", &[k], seed)
            .gain(2.5)
            .linear(10)
            .relu()
            .linear(10)
            .relu()
            .linear(16)
            .clamp(0.0, 1.0),
    };
    let b = if arch % 3 == 1 { b } else { b.reshape(&[1, 4, 4]) };
    b.network().expect("valid generator")
}

/// A random classifier of 1×4×4 images into `classes` labels; `smooth` puts sigmoid/tanh layers in.
fn classifier(arch: usize, classes: usize, smooth: bool, seed: u64) -> Network {
    let b = CardBuilder::new("n", &[1, 4, 4], seed).gain(3.0);
    let b = match (arch % 2, smooth) {
        (0, false) => b.flatten().linear(10).relu().linear(classes),
        (_, false) => {
            b.conv2d(3, 2, 1, 0).relu().max_pool2d(2, 1, 0).flatten().linear(8).relu().linear(classes)
        }
        (0, true) => b.flatten().linear(8).tanh().linear(classes),
        (_, true) => b.conv2d(2, 2, 1, 0).relu().flatten().linear(6).sigmoid().linear(classes),
    };
    b.network().expect("valid classifier")
}

struct Case {
    g: Network,
    n: Network,
    z: Vec<f64>,
    d: Vec<f64>,
    eps: f64,
    two_sided: bool,
}

impl Case {
    fn new(arch: usize, smooth: bool, seed: u64) -> Case {
        let k = 3;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let z = (0..k).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let d = (0..k).map(|_| rng.gen_range(-1.0..1.0)).collect();
        Case {
            g: generator(arch, k, seed),
            n: classifier(arch / 3, 3, smooth, seed + 1),
            z,
            d,
            eps: rng.gen_range(0.2..3.0),
            two_sided: rng.gen_bool(0.3),
        }
    }

    fn problem(&self, eps: f64) -> Problem<'_> {
        Problem::new(ProblemSpec {
            generator: self.g.layers().iter().collect(),
            classifier: self.n.layers().iter().collect(),
            origin: self.z.clone(),
            direction: Direction::new(self.d.clone()).unwrap(),
            eps,
            two_sided: self.two_sided,
            label: None,
        })
        .expect("valid problem")
    }
}

/// The smallest margin at `samples + 1` evenly spaced values of `t`.
fn sample(p: &Problem<'_>, samples: usize) -> Vec<(f64, f64)> {
    let t0 = p.t_min();
    (0..=samples)
        .map(|i| {
            let t = t0 + (1.0 - t0) * i as f64 / samples as f64;
            (t, p.decision().min_margin(p.label(), &p.evaluate(t).unwrap().1))
        })
        .collect()
}

/// The largest tolerance by bisection over complete runs (what the one-pass answer replaces).
fn bisect_max_tolerance(case: &Case) -> f64 {
    let ok = |e: f64| Complete.certify(&case.problem(e)).unwrap().verdict == Verdict::Certified;
    if ok(case.eps) {
        return case.eps;
    }
    let (mut lo, mut hi) = (0.0, case.eps);
    for _ in 0..40 {
        let mid = 0.5 * (lo + hi);
        if mid > 0.0 && ok(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// The properties every backend must have on a piecewise-linear problem.
fn check_pl(backend: &dyn Certifier, case: &Case) -> Result<(), TestCaseError> {
    let p = case.problem(case.eps);
    let cert = backend.certify(&p).unwrap();
    let exact = Complete.certify(&p).unwrap();
    prop_assert_eq!(cert.method, backend.method());
    prop_assert_eq!(cert.label, p.label());
    let samples = sample(&p, 2000);
    let worst = samples.iter().copied().fold((0.0, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a });
    // Agreement with dense sampling.
    if cert.verdict == Verdict::Certified {
        prop_assert!(worst.1 > -1e-9, "certified, but the margin at t={} is {}", worst.0, worst.1);
        prop_assert_eq!(exact.verdict, Verdict::Certified, "certified where the exact chain is not");
    }
    if worst.1 < -1e-9 {
        prop_assert!(cert.verdict != Verdict::Certified);
        if backend.method() != Method::Incomplete {
            prop_assert_eq!(cert.verdict, Verdict::Violated, "a sampled violation at t={}", worst.0);
        }
    }
    if cert.verdict == Verdict::Violated {
        let c = cert.counterexample.as_ref().expect("a violation comes with a counterexample");
        let (image, out) = p.evaluate(c.t).unwrap();
        prop_assert!(p.decision().min_margin(p.label(), &out) <= 0.0);
        prop_assert!(c.predicted != p.label() && c.margin <= 0.0);
        prop_assert_eq!(&image, &c.image);
        prop_assert!(c.t >= p.t_min() && c.t <= 1.0);
    }
    // Exact methods agree with the chain; bounded ones never claim more than it shows.
    let lo = cert.fraction.lower;
    let hi = cert.fraction.upper;
    prop_assert!(lo <= hi && lo >= 0.0 && hi <= 1.0);
    prop_assert!(
        lo <= exact.fraction.lower + 1e-9 && hi >= exact.fraction.upper - 1e-9,
        "fraction [{lo}, {hi}] excludes the exact {}",
        exact.fraction.lower
    );
    let sampled = samples.iter().filter(|s| s.1 > 0.0).count() as f64 / samples.len() as f64;
    let grid = 2.0 * (exact.violated.len() + 1) as f64 / samples.len() as f64;
    prop_assert!(lo <= sampled + grid && sampled <= hi + grid, "sampled {sampled} outside [{lo}, {hi}]");
    prop_assert!(
        cert.min_margin.margin <= exact.min_margin.margin + 1e-9 * (1.0 + exact.min_margin.margin.abs()),
        "margin bound {} is tighter than the exact {}",
        cert.min_margin.margin,
        exact.min_margin.margin
    );
    prop_assert!(cert.max_tolerance <= exact.max_tolerance * (1.0 + 1e-9));
    for iv in &cert.violated {
        let mid = 0.5 * (iv[0] + iv[1]);
        let m = p.decision().min_margin(p.label(), &p.evaluate(mid).unwrap().1);
        prop_assert!(m <= 1e-9, "reported violated at t={mid}, margin {m}");
    }
    if backend.method() != Method::Incomplete {
        prop_assert_eq!(cert.fraction.lower, cert.fraction.upper);
        same_answers(&cert, &exact)?;
    }
    Ok(())
}

/// Two exact certificates give the same answers (`Certificate::same_answers`, to 1e-9 relative).
fn same_answers(a: &Certificate, b: &Certificate) -> Result<(), TestCaseError> {
    a.same_answers(b, 1e-9).map_err(TestCaseError::fail)
}

/// The properties every backend that accepts non-PL models must have on one.
fn check_smooth(backend: &dyn Certifier, case: &Case) -> Result<(), TestCaseError> {
    let p = case.problem(case.eps);
    let result = backend.certify(&p);
    if backend.method() == Method::Complete {
        let rejected = matches!(result, Err(Error::NotPiecewiseLinear { .. }));
        prop_assert!(rejected, "the complete method must reject non-PL layers");
        return Ok(());
    }
    let cert = result.unwrap();
    let samples = sample(&p, 2000);
    let worst = samples.iter().map(|s| s.1).fold(f64::INFINITY, f64::min);
    if cert.verdict == Verdict::Certified {
        prop_assert!(worst > -1e-9);
    }
    if cert.verdict == Verdict::Violated {
        let c = cert.counterexample.as_ref().unwrap();
        prop_assert!(p.decision().min_margin(p.label(), &p.evaluate(c.t).unwrap().1) <= 0.0);
    }
    let sampled = samples.iter().filter(|s| s.1 > 0.0).count() as f64 / samples.len() as f64;
    let grid = 0.01;
    prop_assert!(
        cert.fraction.lower <= sampled + grid && sampled <= cert.fraction.upper + grid,
        "sampled {sampled} outside [{}, {}]",
        cert.fraction.lower,
        cert.fraction.upper
    );
    let prefix_ok = samples.iter().filter(|s| s.0.abs() * p.eps() <= cert.max_tolerance).all(|s| s.1 > -1e-9);
    prop_assert!(prefix_ok, "a sampled violation inside the claimed tolerance {}", cert.max_tolerance);
    Ok(())
}

macro_rules! backend_suite {
    ($name:ident, $backend:expr) => {
        mod $name {
            use super::*;

            proptest! {
                #![proptest_config(ProptestConfig::with_cases(40))]

                #[test]
                fn sound_on_piecewise_linear_models(arch in 0usize..6, seed in 0u64..10_000) {
                    check_pl(&$backend, &Case::new(arch, false, seed))?;
                }

                #[test]
                fn sound_on_models_with_sigmoid_or_tanh(arch in 0usize..6, seed in 0u64..10_000) {
                    check_smooth(&$backend, &Case::new(arch, true, seed))?;
                }
            }
        }
    };
}

backend_suite!(complete, Complete);
backend_suite!(hybrid, Hybrid);
backend_suite!(quantitative, Quantitative::default());
backend_suite!(incomplete_linear, Incomplete::default());
backend_suite!(incomplete_interval, Incomplete { budget: 256, relaxation: Relaxation::Interval });

proptest! {
    #![proptest_config(ProptestConfig::with_cases(60))]

    /// Bounds first and the chain only where they decide nothing give the full chain's answers.
    #[test]
    fn hybrid_gives_the_full_chains_answers(arch in 0usize..6, seed in 0u64..10_000, scale in 0.2f64..3.0) {
        let case = Case::new(arch, false, seed);
        let p = case.problem(case.eps * scale);
        same_answers(&Hybrid.certify(&p).unwrap(), &Complete.certify(&p).unwrap())?;
    }
}

/// `E_max` from one pass equals bisection over complete runs, on problems where it is below the tolerance
/// as well as on ones where the whole segment is certified.
#[test]
fn one_pass_max_tolerance_equals_bisection() {
    let mut crossing = 0;
    for seed in 0..24u64 {
        let case = Case::new(seed as usize % 6, false, 100 + seed);
        let one_pass = Complete.certify(&case.problem(case.eps)).unwrap().max_tolerance;
        let bisected = bisect_max_tolerance(&case);
        assert!((one_pass - bisected).abs() <= 1e-9 * case.eps, "seed {seed}: {one_pass} vs {bisected}");
        if one_pass > 0.0 && one_pass < case.eps {
            crossing += 1;
        }
    }
    assert!(crossing >= 3, "only {crossing} problems with 0 < E_max < eps");
}

/// Counts verdicts over many random problems so the suite is known to exercise both answers.
#[test]
fn random_problems_exercise_both_verdicts() {
    let (mut certified, mut violated, mut incomplete_certified) = (0, 0, 0);
    for seed in 0..60 {
        let case = Case::new(seed as usize % 6, false, seed);
        let p = case.problem(case.eps);
        match Complete.certify(&p).unwrap().verdict {
            Verdict::Certified => certified += 1,
            Verdict::Violated => violated += 1,
            Verdict::Unknown => {}
        }
        if Incomplete::default().certify(&p).unwrap().verdict == Verdict::Certified {
            incomplete_certified += 1;
        }
    }
    assert!(certified >= 5 && violated >= 5, "certified {certified}, violated {violated}");
    assert!(incomplete_certified >= 3, "incomplete certified only {incomplete_certified}");
}

/// A pair network (two inputs joined by a concat): the generator's image goes into the second input and
/// the first is held fixed; the quantitative answer brackets sampling.
#[test]
fn pair_network_with_one_input_fixed() {
    let (mut card, tensors) = CardBuilder::new("pair", &[2, 4, 4], 9)
        .gain(2.0)
        .conv2d(3, 2, 1, 0)
        .relu()
        .flatten()
        .linear(6)
        .relu()
        .linear(1)
        .sigmoid()
        .build();
    card.input_shape = None;
    card.input_shapes = Some(vec![vec![1, 4, 4], vec![1, 4, 4]]);
    card.layers.insert(0, LayerSpec::Concat { axis: 0 });
    let pair = Network::from_card(&card, &tensors, std::path::Path::new("pair.toml")).unwrap();
    let g = generator(0, 3, 4);
    let reference = g.forward(&[0.3, -0.2, 0.5], 1).unwrap();
    let embed = Layer::embed(reference, 16, vec![]).unwrap();
    let classifier: Vec<&Layer> = std::iter::once(&embed).chain(pair.layers()).collect();
    let p = Problem::new(ProblemSpec {
        generator: g.layers().iter().collect(),
        classifier,
        origin: vec![0.3, -0.2, 0.5],
        direction: Direction::new(vec![1.0, 0.5, -1.0]).unwrap(),
        eps: 2.0,
        two_sided: true,
        label: None,
    })
    .unwrap();
    assert_eq!(p.decision(), gcert_core::certificate::Decision::Threshold { threshold: 0.5 });
    let q = Quantitative::default().certify(&p).unwrap();
    let samples = sample(&p, 4000);
    let sampled = samples.iter().filter(|s| s.1 > 0.0).count() as f64 / samples.len() as f64;
    assert!(q.fraction.lower <= sampled + 0.01 && sampled <= q.fraction.upper + 0.01, "{sampled} vs {q:?}");
    assert!(q.fraction.upper - q.fraction.lower < 0.05, "splitting should tighten the bounds: {q:?}");
}

/// Bad requests are errors that say what is wrong, never panics.
#[test]
fn bad_requests_are_errors() {
    let case = Case::new(0, false, 1);
    let spec = |f: &dyn Fn(&mut ProblemSpec<'_>)| {
        let mut s = ProblemSpec {
            generator: case.g.layers().iter().collect(),
            classifier: case.n.layers().iter().collect(),
            origin: case.z.clone(),
            direction: Direction::new(case.d.clone()).unwrap(),
            eps: 1.0,
            two_sided: false,
            label: None,
        };
        f(&mut s);
        Problem::new(s).map(|_| ()).unwrap_err().to_string()
    };
    assert!(Direction::new(vec![0.0; 3]).unwrap_err().to_string().contains("direction is zero"));
    assert!(spec(&|s| s.direction = Direction::new(vec![1.0; 4]).unwrap()).contains("direction has 4 values"));
    assert!(spec(&|s| s.eps = -1.0).contains("tolerance must be positive"));
    assert!(spec(&|s| s.eps = f64::NAN).contains("tolerance must be positive"));
    assert!(spec(&|s| s.origin[1] = f64::NAN).contains("non-finite"));
    assert!(spec(&|s| s.label = Some(3)).contains("label 3 is out of range"));
    assert!(spec(&|s| s.origin.push(0.0)).contains("starting point has 4 values"));
    let other = generator(1, 3, 2);
    let wide = CardBuilder::new("wide", &[25], 1).linear(3).network().unwrap();
    let msg = Problem::new(ProblemSpec {
        generator: other.layers().iter().collect(),
        classifier: wide.layers().iter().collect(),
        origin: case.z.clone(),
        direction: Direction::new(case.d.clone()).unwrap(),
        eps: 1.0,
        two_sided: false,
        label: None,
    })
    .unwrap_err()
    .to_string();
    assert!(msg.contains("the generator outputs 16 values"), "{msg}");
}

/// Per-pixel bounds are exact: they contain every sampled image and are reached by the chain.
#[test]
fn pixel_bounds_contain_samples() {
    let g = generator(1, 3, 5);
    let z = vec![0.1, 0.2, -0.3];
    let seg = gcert_core::Segment::new(z.clone(), vec![1.1, -0.8, 0.5]).unwrap();
    let b = pixel_bounds(g.layers().iter().collect(), std::slice::from_ref(&seg)).unwrap();
    assert!(b.pieces >= 1);
    for i in 0..=500 {
        let x = seg.point(i as f64 / 500.0);
        let y = g.forward(&x, 1).unwrap();
        for (p, v) in y.iter().enumerate() {
            assert!(b.lower[p] <= *v + 1e-12 && *v <= b.upper[p] + 1e-12);
        }
    }
    let widths: Vec<f64> = b.lower.iter().zip(&b.upper).map(|(l, u)| u - l).collect();
    assert!((b.mean_width - widths.iter().sum::<f64>() / widths.len() as f64).abs() < 1e-12);
    assert!(b.median_width >= 0.0 && b.median_width <= widths.iter().copied().fold(0.0, f64::max));
}

/// On random generator ∘ classifier compositions with up to about 900 pieces, the hybrid bounds parts of the long
/// sides (it chains fewer pieces than the full chain: 13 of these 18 problems with the chord bands, 11 with forward
/// lines) and gives the full chain's answers, whether the label is kept or lost, on short and long segments.
#[test]
fn hybrid_bounds_long_sides_and_gives_the_full_chains_answers() {
    let (mut bounded, mut verdicts) = (0, Vec::new());
    for seed in 0..6u64 {
        let gen = CardBuilder::new("gen", &[6], 20 + seed)
            .gain(1.5)
            .linear(32)
            .reshape(&[2, 4, 4])
            .conv_transpose2d(4, 4, 2, 1, 0)
            .batch_norm()
            .relu()
            .conv_transpose2d(1, 3, 1, 1, 0)
            .clamp(0.0, 1.0)
            .network()
            .unwrap();
        let cls = CardBuilder::new("cls", &[1, 8, 8], 40 + seed)
            .gain(1.5)
            .conv2d(6, 3, 1, 1)
            .relu()
            .conv2d(8, 3, 2, 1)
            .relu()
            .flatten()
            .linear(12)
            .relu()
            .linear(4)
            .network()
            .unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let z: Vec<f64> = (0..6).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let d: Vec<f64> = (0..6).map(|_| rng.gen_range(-1.0..1.0)).collect();
        for eps in [0.5, 4.0, 12.0] {
            let p = Problem::new(ProblemSpec {
                generator: gen.layers().iter().collect(),
                classifier: cls.layers().iter().collect(),
                origin: z.clone(),
                direction: Direction::new(d.clone()).unwrap(),
                eps,
                two_sided: true,
                label: None,
            })
            .unwrap();
            let (hybrid, full) = (Hybrid.certify(&p).unwrap(), Complete.certify(&p).unwrap());
            if let Err(why) = hybrid.same_answers(&full, 1e-9) {
                panic!("seed {seed}, eps {eps}: {why}");
            }
            bounded += usize::from(hybrid.pieces < full.pieces);
            verdicts.push(full.verdict);
        }
    }
    assert!(bounded >= 8, "the bounds decided parts of only {bounded} of 18 problems");
    assert!(verdicts.contains(&Verdict::Certified) && verdicts.contains(&Verdict::Violated), "{verdicts:?}");
}
