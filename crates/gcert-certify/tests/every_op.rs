//! Every op of `gcert_core::Op` through every backend: the batched forward pass, the exact chain, the three
//! certifiers and the exact Jacobian.
//!
//! [`variant`] lists the ops in a `match` without a wildcard arm: adding an op to the core is a compile error
//! here until a network exercising it is added to [`op_networks`] (the test checks every variant is covered).

use gcert_certify::{Certifier, Complete, Incomplete, Quantitative};
use gcert_core::builder::CardBuilder;
use gcert_core::card::LayerSpec;
use gcert_core::certificate::{Problem, ProblemSpec, Verdict};
use gcert_core::network::forward_layers;
use gcert_core::{Direction, Error, Kind, Layer, Network, Op, Segment};
use gcert_directions::{finite_difference_jacobian, JacobianPlan};
use gcert_exactline::ExactLine;

/// The index of an op's variant; no wildcard, so a new op must be listed.
fn variant(op: &Op) -> usize {
    match op {
        Op::Linear { .. } => 0,
        Op::Conv2d { .. } => 1,
        Op::ConvTranspose2d { .. } => 2,
        Op::ChannelAffine { .. } => 3,
        Op::Relu => 4,
        Op::LeakyRelu { .. } => 5,
        Op::Clamp { .. } => 6,
        Op::Reshape => 7,
        Op::AvgPool2d(_) => 8,
        Op::MaxPool2d(_) => 9,
        Op::Sigmoid => 10,
        Op::Tanh => 11,
        Op::Gather { .. } => 12,
        Op::Embed { .. } => 13,
    }
}

const VARIANTS: usize = 14;

/// Small classifiers (3 outputs) over a `[2, 4, 4]` image, each built around one op.
fn op_networks() -> Vec<(&'static str, Network)> {
    let image = |name: &str, seed| CardBuilder::new(name, &[2, 4, 4], seed).gain(1.5);
    let head = |b: CardBuilder| b.flatten().linear(3).network().unwrap();
    let mut nets = vec![
        ("linear", image("linear", 1).flatten().linear(6).relu().linear(3).network().unwrap()),
        ("conv2d", head(image("conv2d", 2).conv2d(3, 3, 1, 1))),
        ("conv_transpose2d", head(image("convt", 3).conv_transpose2d(2, 3, 2, 1, 1))),
        ("batch_norm", head(image("bn", 4).batch_norm())),
        ("relu", head(image("relu", 5).conv2d(3, 3, 1, 1).relu())),
        ("leaky_relu", head(image("leaky", 6).conv2d(3, 3, 1, 1).leaky_relu(0.2))),
        ("leaky_relu_negative", head(image("leakyneg", 7).conv2d(3, 3, 1, 1).leaky_relu(-0.5))),
        ("clamp", head(image("clamp", 8).conv2d(3, 3, 1, 1).clamp(-0.3, 0.4))),
        ("reshape", head(image("reshape", 9).reshape(&[4, 2, 4]).conv2d(2, 2, 1, 0).relu())),
        ("avg_pool2d", head(image("avg", 10).avg_pool2d(2, 2, 0))),
        ("max_pool2d", head(image("max", 11).conv2d(3, 3, 1, 1).max_pool2d(2, 1, 1))),
        ("sigmoid", head(image("sigmoid", 12).conv2d(3, 3, 1, 1).sigmoid())),
        ("tanh", head(image("tanh", 13).conv2d(3, 3, 1, 1).tanh())),
    ];
    // Gather: two [1, 4, 4] inputs concatenated along the rows (axis 1).
    let (mut card, tensors) =
        CardBuilder::new("gather", &[1, 8, 4], 14).conv2d(2, 3, 1, 1).relu().flatten().linear(3).build();
    card.input_shape = None;
    card.input_shapes = Some(vec![vec![1, 4, 4], vec![1, 4, 4]]);
    card.layers.insert(0, LayerSpec::Concat { axis: 1 });
    let gather = Network::from_card(&card, &tensors, std::path::Path::new("gather.toml")).unwrap();
    nets.push(("gather", gather));
    nets
}

/// The layers of each case: each network's, and for `embed` an embedding of 16 values before `gather`'s.
fn cases<'a>(nets: &'a [(&'static str, Network)], embed: &'a Layer) -> Vec<(&'static str, Vec<&'a Layer>)> {
    let mut cases: Vec<(&str, Vec<&Layer>)> =
        nets.iter().map(|(n, net)| (*n, net.layers().iter().collect())).collect();
    let gather = &nets.iter().find(|(n, _)| *n == "gather").expect("a gather case").1;
    cases.push(("embed", std::iter::once(embed).chain(gather.layers()).collect()));
    cases
}

fn forward(layers: &[&Layer], x: &[f64]) -> Vec<f64> {
    forward_layers(layers.iter().copied(), x.len(), x, 1).unwrap()
}

fn min_margin(layers: &[&Layer], label: usize, x: &[f64]) -> f64 {
    let out = forward(layers, x);
    (0..out.len()).filter(|&c| c != label).map(|c| out[label] - out[c]).fold(f64::INFINITY, f64::min)
}

/// The exact chain: exact on every piece for PL models, refused (naming the layer) otherwise.
fn check_chain(name: &str, layers: &[&Layer], segment: &Segment, pl: bool) {
    match ExactLine::new(layers.to_vec()) {
        Ok(engine) => {
            assert!(pl, "{name}: the engine accepted a non-PL model");
            let chain = engine.chain(segment).unwrap();
            for i in 0..chain.pieces() {
                let t = 0.5 * (chain.ratios[i] + chain.ratios[i + 1]);
                let exact = forward(layers, &segment.point(t));
                for (a, b) in chain.interpolate(t).iter().zip(&exact) {
                    assert!((a - b).abs() <= 1e-7 * (1.0 + b.abs()), "{name}: piece {i}: {a} vs {b}");
                }
            }
        }
        Err(Error::NotPiecewiseLinear { op, .. }) => {
            assert!(!pl && (op == "sigmoid" || op == "tanh"), "{name}: refused {op}")
        }
        Err(e) => panic!("{name}: {e}"),
    }
}

/// The three certifiers against dense sampling of the two-sided segment.
fn check_certifiers(name: &str, layers: &[&Layer], origin: &[f64], d: &[f64], pl: bool) {
    let problem = Problem::new(ProblemSpec {
        generator: Vec::new(),
        classifier: layers.to_vec(),
        origin: origin.to_vec(),
        direction: Direction::new(d.to_vec()).unwrap(),
        eps: 2.0,
        two_sided: true,
        label: None,
    })
    .unwrap();
    let label = problem.label();
    let samples: Vec<f64> =
        (0..=2000).map(|i| min_margin(layers, label, &problem.point(-1.0 + i as f64 / 1000.0))).collect();
    let kept = samples.iter().filter(|&&m| m > 0.0).count() as f64 / samples.len() as f64;
    let mut backends: Vec<(&str, Box<dyn Certifier>)> = vec![
        ("quantitative", Box::new(Quantitative::default())),
        ("incomplete", Box::new(Incomplete::default())),
    ];
    if pl {
        backends.push(("complete", Box::new(Complete)));
    }
    for (backend, certifier) in backends {
        let c = certifier.certify(&problem).unwrap_or_else(|e| panic!("{name}/{backend}: {e}"));
        match c.verdict {
            Verdict::Certified => assert!(
                samples.iter().all(|&m| m > 0.0),
                "{name}/{backend}: certified, but a sample changes the label"
            ),
            Verdict::Violated => {
                let x = c.counterexample.as_ref().expect("violated carries a counterexample");
                let m = min_margin(layers, label, &problem.point(x.t));
                assert!(m <= 0.0, "{name}/{backend}: the counterexample keeps the label ({m})");
            }
            Verdict::Unknown => assert_ne!(backend, "complete", "{name}: complete answered unknown"),
        }
        assert!(
            c.fraction.lower <= kept + 0.01 && kept <= c.fraction.upper + 0.01,
            "{name}/{backend}: sampled kept fraction {kept} outside [{}, {}]",
            c.fraction.lower,
            c.fraction.upper
        );
    }
}

/// The exact Jacobian against central differences at `origin` (inside a piece for these models).
fn check_jacobian(name: &str, layers: &[&Layer], origin: &[f64]) {
    let j = JacobianPlan::for_layers(layers.to_vec()).unwrap().jacobian(origin).unwrap();
    let h = 1e-6;
    for i in (0..origin.len()).step_by(5) {
        let (mut p, mut q) = (origin.to_vec(), origin.to_vec());
        p[i] += h;
        q[i] -= h;
        let (fp, fq) = (forward(layers, &p), forward(layers, &q));
        for r in 0..fp.len() {
            let fd = (fp[r] - fq[r]) / (2.0 * h);
            assert!(
                (j[[r, i]] - fd).abs() <= 1e-5 * (1.0 + fd.abs()),
                "{name}: J[{r}, {i}] = {} vs {fd}",
                j[[r, i]]
            );
        }
    }
}

#[test]
fn every_op_runs_through_every_backend() {
    let nets = op_networks();
    let embed = Layer::embed((0..16).map(|i| (i as f64 * 0.37).sin()).collect(), 16, vec![]).unwrap();
    let mut covered = [false; VARIANTS];
    for (name, layers) in cases(&nets, &embed) {
        for l in &layers {
            covered[variant(l.op())] = true;
        }
        let n = layers[0].in_len();
        let origin: Vec<f64> = (0..n).map(|i| (i as f64 * 0.61).cos() * 0.5).collect();
        let d: Vec<f64> = (0..n).map(|i| (i as f64 * 1.3).sin()).collect();
        let pl = layers.iter().all(|l| l.kind() != Kind::NonLinear);
        let end: Vec<f64> = origin.iter().zip(&d).map(|(o, d)| o + 2.0 * d).collect();
        check_chain(name, &layers, &Segment::new(origin.clone(), end).unwrap(), pl);
        check_certifiers(name, &layers, &origin, &d, pl);
        check_jacobian(name, &layers, &origin);
    }
    let missing: Vec<usize> = (0..VARIANTS).filter(|&v| !covered[v]).collect();
    assert!(missing.is_empty(), "ops not exercised (variant indices): {missing:?}");
    // The plan of a card and the plan of its layers are one computation.
    let conv = &nets[1].1;
    let z: Vec<f64> = (0..conv.input_len()).map(|i| (i as f64).sin()).collect();
    let a = JacobianPlan::new(conv).jacobian(&z).unwrap();
    let b = finite_difference_jacobian(conv, &z, 1e-6).unwrap();
    assert!((&a - &b).iter().all(|v| v.abs() < 1e-6));
}
