use super::*;
use gcert_torch::models;
use gcert_torch::nn::NetBuilder;
use gcert_torch::objective::generator_objective;
use tch::nn::VarStore;
use tch::{Device, Kind};

const K: i64 = 3;

/// `z ↦ A2 (A1 z + b1) + b2`, reshaped to a small image: affine, with two layers so that the test does
/// not rely on a single matrix product.
fn affine(vs: &VarStore) -> Net {
    NetBuilder::new(vs.root(), "affine", &[K]).linear(5).linear(12).reshape(&[1, 3, 4]).build("affine")
}

/// The same shape with a ReLU in between: curved wherever a segment crosses a ReLU boundary.
fn curved(vs: &VarStore) -> Net {
    NetBuilder::new(vs.root(), "curved", &[K])
        .linear(16)
        .relu()
        .linear(12)
        .reshape(&[1, 3, 4])
        .build("curved")
}

fn normal(seed: u64, shape: &[i64]) -> Tensor {
    random::normal(&mut ChaCha8Rng::seed_from_u64(seed), shape, Device::Cpu).to_kind(Kind::Double)
}

fn value(t: &Tensor) -> f64 {
    t.double_value(&[])
}

#[test]
fn zero_for_an_affine_generator_for_every_reduction_and_seed() {
    let vs = VarStore::new(Device::Cpu);
    let g = affine(&vs).to(Kind::Double, Device::Cpu);
    let z = normal(0, &[64, K]);
    for seed in 0..5 {
        for reduction in [Reduction::PerElement, Reduction::PerSample] {
            let term = Continuity::new(1.0, seed).unwrap().with_reduction(reduction);
            let l = value(&term.weighted(&g, &z, 0, true).unwrap());
            assert!((0.0..=1e-10).contains(&l), "seed {seed}, {reduction:?}: {l}");
        }
    }
}

#[test]
fn positive_for_a_curved_generator_and_scaled_by_the_weight() {
    let vs = VarStore::new(Device::Cpu);
    let g = curved(&vs).to(Kind::Double, Device::Cpu);
    let z = normal(1, &[64, K]);
    let one = value(&Continuity::new(1.0, 9).unwrap().weighted(&g, &z, 0, true).unwrap());
    let hundred = value(&Continuity::new(100.0, 9).unwrap().weighted(&g, &z, 0, true).unwrap());
    assert!(one > 1e-6, "a ReLU net is curved along random segments: {one}");
    assert!((hundred - 100.0 * one).abs() <= 1e-9 * hundred, "{hundred} against 100 × {one}");
    let per_sample = Continuity::new(1.0, 9).unwrap().with_reduction(Reduction::PerSample);
    let s = value(&per_sample.weighted(&g, &z, 0, true).unwrap());
    assert!((s - 12.0 * one).abs() <= 1e-9 * s, "the squared norm is 12 elements' sum: {s} against {one}");
}

/// For an affine `G`, `G(z_γ) − ((1 − f) G(z1) + f G(z2)) = (γ − f(γ)) (G(z2) − G(z1))`: a non-even pace
/// gives exactly that value, computed here independently.
#[test]
fn a_pluggable_pace_changes_the_target_path() {
    #[derive(Debug)]
    struct Square;
    impl Pace for Square {
        fn name(&self) -> &str {
            "square"
        }
        fn pace(&self, gamma: &Tensor) -> Tensor {
            gamma.square()
        }
    }
    let vs = VarStore::new(Device::Cpu);
    let g = affine(&vs).to(Kind::Double, Device::Cpu);
    let (z1, z2) = (normal(2, &[10, K]), normal(3, &[10, K]));
    let gamma = Tensor::linspace(0.0, 1.0, 10, (Kind::Double, Device::Cpu));
    let l = value(&continuity_loss(&g, &z1, &z2, &gamma, &Square, Reduction::PerElement, false).unwrap());
    let diff = g.forward(&z2, false).unwrap() - g.forward(&z1, false).unwrap();
    let c = (&gamma - gamma.square()).reshape([10, 1, 1, 1]);
    let expected = value(&(diff * c).square().mean(Kind::Double));
    assert!(expected > 1e-3, "{expected}");
    assert!((l - expected).abs() <= 1e-12 * expected, "{l} against {expected}");
    let even = continuity_loss(&g, &z1, &z2, &gamma, &EvenPace, Reduction::PerElement, false).unwrap();
    assert!(value(&even) <= 1e-10);
}

#[test]
fn the_gradient_reaches_the_generator_and_not_the_latents() {
    let vs = VarStore::new(Device::Cpu);
    let g = models::generator(vs.root(), 4, [4, 4, 2], "g", 0);
    let z = Tensor::randn([6, 4], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let fake = g.forward(&z, true).unwrap();
    let step = GeneratorStep { generator: &g, z: &z, fake: &fake, iteration: 0 };
    let extra: Vec<Box<dyn GeneratorLoss>> = vec![Box::new(Continuity::new(10.0, 4).unwrap())];
    let (total, parts) = generator_objective(Tensor::from(0.0f32), &step, &extra).unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].0, "continuity");
    assert!(parts[0].1 > 0.0 && (value(&total) - parts[0].1).abs() < 1e-6);
    total.backward();
    let trainable: Vec<Tensor> = vs.trainable_variables();
    assert!(!trainable.is_empty());
    let reached = trainable
        .iter()
        .filter(|v| v.grad().defined() && value(&v.grad().abs().sum(Kind::Float)) > 0.0)
        .count();
    assert!(reached * 2 > trainable.len(), "{reached} of {} variables have a gradient", trainable.len());
    assert!(!z.grad().defined(), "the step's latents are not the term's and get no gradient");

    // Latents handed in with requires_grad are detached by the term itself.
    let z1 = Tensor::randn([5, 4], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let z2 = Tensor::randn([5, 4], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let gamma = Tensor::rand([5], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let l = continuity_loss(&g, &z1, &z2, &gamma, &EvenPace, Reduction::PerElement, true).unwrap();
    assert!(l.requires_grad());
    l.backward();
    for (name, t) in [("z1", &z1), ("z2", &z2), ("gamma", &gamma)] {
        assert!(!t.grad().defined(), "{name} got a gradient");
    }
}

#[test]
fn the_same_seed_repeats_and_another_differs() {
    let vs = VarStore::new(Device::Cpu);
    let g = curved(&vs).to(Kind::Double, Device::Cpu);
    let z = normal(5, &[32, K]);
    let draw = |seed, it| value(&Continuity::new(1.0, seed).unwrap().weighted(&g, &z, it, false).unwrap());
    assert_eq!(draw(11, 3), draw(11, 3), "a step's pairs depend on (seed, iteration) only");
    assert_ne!(draw(11, 3), draw(12, 3));
    assert_ne!(draw(11, 3), draw(11, 4), "each step draws new pairs");
    let pairs = Continuity::new(1.0, 11).unwrap().with_pairs(7).unwrap();
    assert!(value(&pairs.weighted(&g, &z, 0, false).unwrap()) > 0.0);
    // The checkpoint tag records every setting that changes the term.
    let tag = Continuity::new(100.0, 11).unwrap().with_pairs(7).unwrap().tag();
    assert_eq!(tag, "continuity(lambda=100, pairs=7, pace=even, reduction=PerElement, seed=11)");
    assert_ne!(Continuity::new(10.0, 11).unwrap().tag(), Continuity::new(100.0, 11).unwrap().tag());
}

#[test]
fn bad_settings_and_inputs_are_refused_with_what_was_wrong() {
    for w in [-1.0, f64::NAN, f64::INFINITY] {
        let e = Continuity::new(w, 0).unwrap_err().to_string();
        assert!(e.contains("weight λ must be finite and non-negative"), "{e}");
    }
    let e = Continuity::new(1.0, 0).unwrap().with_pairs(0).unwrap_err().to_string();
    assert!(e.contains("pairs must be positive, found 0"), "{e}");

    let vs = VarStore::new(Device::Cpu);
    let g = affine(&vs).to(Kind::Double, Device::Cpu);
    let (z1, z2) = (normal(6, &[4, K]), normal(7, &[4, K]));
    let gamma = Tensor::from_slice(&[0.0f64, 0.5, 1.0, 0.25]);
    let run = |a: &Tensor, b: &Tensor, c: &Tensor| {
        continuity_loss(&g, a, b, c, &EvenPace, Reduction::PerElement, false).unwrap_err().to_string()
    };
    let e = run(&z1, &normal(8, &[3, K]), &gamma);
    assert!(e.contains("z1 and z2 differ in shape: [4, 3] against [3, 3]"), "{e}");
    let e = run(&z1, &z2, &Tensor::from_slice(&[0.5f64, 0.5]));
    assert!(e.contains("gamma must have shape [4], found [2]"), "{e}");
    let e = run(&z1, &z2, &Tensor::from_slice(&[0.0f64, 0.5, 1.5, 0.25]));
    assert!(e.contains("gamma must lie in [0, 1]"), "{e}");
    let e = run(&normal(9, &[0, K]), &normal(9, &[0, K]), &Tensor::zeros([0], (Kind::Double, Device::Cpu)));
    assert!(e.contains("non-empty batch"), "{e}");

    #[derive(Debug)]
    struct Scalar;
    impl Pace for Scalar {
        fn name(&self) -> &str {
            "scalar"
        }
        fn pace(&self, gamma: &Tensor) -> Tensor {
            gamma.mean(gamma.kind())
        }
    }
    let e = continuity_loss(&g, &z1, &z2, &gamma, &Scalar, Reduction::PerElement, false).unwrap_err();
    assert!(e.to_string().contains("pace 'scalar' must return shape [4], found []"), "{e}");
    let as_torch: gcert_torch::Error = e.into();
    assert!(matches!(as_torch, gcert_torch::Error::Input(_)));
}

#[test]
fn the_strength_term_is_zero_on_the_straight_path_and_reaches_the_translator() {
    use gcert_torch::objective::{strength_objective, StrengthLoss, StrengthStep};
    use gcert_torch::style;
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let t = style::translator(vs.root(), "t", 4, 0);
    let x = Tensor::rand([3, 1, 32, 32], (tch::Kind::Float, tch::Device::Cpu));
    let at0 = t
        .forward_multi_before_clamp(&[&x, &Tensor::zeros([3, 1], (tch::Kind::Float, tch::Device::Cpu))], true)
        .unwrap();
    let at1 = t
        .forward_multi_before_clamp(&[&x, &Tensor::ones([3, 1], (tch::Kind::Float, tch::Device::Cpu))], true)
        .unwrap();
    // At γ = 0 and γ = 1 the path's ends are the target itself.
    for g in [0.0f32, 1.0] {
        let gamma = Tensor::full([3], g as f64, (tch::Kind::Float, tch::Device::Cpu));
        let v = StrengthContinuity::unweighted(&t, &x, &at0, &at1, &gamma).unwrap().double_value(&[]);
        assert!(v < 1e-10, "γ = {g}: {v}");
    }
    let term = StrengthContinuity::new(50.0, 3).unwrap();
    assert!(StrengthContinuity::new(-1.0, 0).is_err() && StrengthContinuity::new(f64::NAN, 0).is_err());
    let step = StrengthStep { translator: &t, x: &x, at0: &at0, at1: &at1, iteration: 4, direction: 0 };
    let a = term.loss(&step).unwrap().double_value(&[]);
    let b = term.loss(&step).unwrap().double_value(&[]);
    assert_eq!(a, b, "seeded by (seed, iteration, direction)");
    let extra: Vec<Box<dyn StrengthLoss>> = vec![Box::new(term)];
    let (total, parts) = strength_objective(Tensor::from(0.0f32), &[step], &extra).unwrap();
    assert_eq!(parts[0].0, "continuity");
    assert!(parts[0].1 > 0.0, "a random conv translator is not affine in α");
    total.backward();
    let w = &t.layers[1].params["weight"];
    assert!(w.grad().abs().sum(tch::Kind::Float).double_value(&[]) > 0.0);
}
