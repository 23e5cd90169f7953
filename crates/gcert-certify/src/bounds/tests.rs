use gcert_core::builder::CardBuilder;
use gcert_core::certificate::Decision;
use gcert_core::network::forward_layers;
use gcert_core::{Layer, Network, Segment};
use gcert_exactline::ExactLine;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use gcert_core::ops::{adjoint_layer, transpose_apply};

/// Small random networks covering every op the bounder handles.
fn random_net(arch: usize, seed: u64) -> Network {
    let b = match arch {
        0 => CardBuilder::new("mlp", &[3], seed)
            .gain(2.0)
            .linear(8)
            .relu()
            .linear(6)
            .leaky_relu(0.1)
            .linear(5)
            .clamp(-0.3, 0.4)
            .linear(3),
        1 => CardBuilder::new("conv", &[1, 6, 6], seed)
            .gain(2.0)
            .conv2d(3, 3, 1, 1)
            .batch_norm()
            .relu()
            .max_pool2d(2, 2, 0)
            .conv_transpose2d(2, 2, 2, 0, 0)
            .clamp(-0.2, 0.3)
            .avg_pool2d(2, 2, 0)
            .flatten()
            .linear(3),
        2 => CardBuilder::new("smooth", &[3], seed)
            .gain(2.0)
            .linear(7)
            .tanh()
            .linear(6)
            .leaky_relu(-0.5)
            .linear(5)
            .sigmoid()
            .linear(3),
        // Chord bounds take the next two (and the first): increasing piecewise-linear activations only.
        4 => CardBuilder::new("chords", &[1, 6, 6], seed)
            .gain(2.0)
            .conv2d(3, 3, 1, 1)
            .batch_norm()
            .relu()
            .conv_transpose2d(2, 2, 2, 0, 0)
            .leaky_relu(1.5)
            .avg_pool2d(2, 2, 0)
            .clamp(-0.2, 0.3)
            .flatten()
            .linear(5)
            .relu()
            .linear(3),
        5 => CardBuilder::new("deep", &[4], seed)
            .gain(2.5)
            .linear(9)
            .relu()
            .linear(9)
            .leaky_relu(0.2)
            .linear(9)
            .relu()
            .linear(3),
        _ => CardBuilder::new("pool", &[2, 5, 5], seed)
            .gain(2.0)
            .conv2d(2, 3, 1, 1)
            .max_pool2d(3, 1, 1)
            .leaky_relu(1.5)
            .flatten()
            .linear(4)
            .relu()
            .linear(3),
    };
    b.network().expect("random network is valid")
}

fn random_segment(len: usize, seed: u64, scale: f64) -> Segment {
    gcert_core::builder::random_segment(len, seed, scale).unwrap()
}

fn at(l0: f64, l1: f64, s: f64) -> f64 {
    l0 + s * (l1 - l0)
}

/// Outputs at `samples + 1` evenly spaced points of a sub-segment `[s0, s1]` of `seg`.
fn sampled(layers: &[&Layer], seg: &Segment, s0: f64, s1: f64, samples: usize) -> Vec<(f64, Vec<f64>)> {
    (0..=samples)
        .map(|i| {
            let s = i as f64 / samples as f64;
            let x = seg.point(s0 + s * (s1 - s0));
            (s, forward_layers(layers.iter().copied(), x.len(), &x, 1).unwrap())
        })
        .collect()
}

#[test]
fn transposes_are_adjoint() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let embed = Layer::embed(vec![0.5, -1.0], 3, vec![2.0]).unwrap();
    let nets: Vec<Network> = (0..4).map(|a| random_net(a, 11 + a as u64)).collect();
    let layers = nets.iter().flat_map(|n| n.layers().iter()).chain(std::iter::once(&embed));
    let mut scratch = Scratch::default();
    let mut checked = 0;
    for layer in layers.filter(|l| l.kind() == Kind::Affine) {
        let (n, m) = (layer.in_len(), layer.out_len());
        let x: Vec<f64> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let g: Vec<f64> = (0..2 * m).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let (mut ax, mut a0, mut gt) = (Vec::new(), Vec::new(), Vec::new());
        layer.apply(&x, 1, &mut ax, &mut scratch);
        layer.apply(&vec![0.0; n], 1, &mut a0, &mut scratch);
        // Every affine layer has exactly one transpose: an adjoint layer (weighted layers) or transpose_apply.
        let transposed = transpose_apply(layer, &g, 2, &mut gt);
        match adjoint_layer(layer) {
            Some(adjoint) => {
                assert!(!transposed, "{}: two transposes", layer.name());
                adjoint.apply(&g, 2, &mut gt, &mut scratch);
            }
            None => assert!(transposed, "{}: no transpose", layer.name()),
        }
        assert_eq!(gt.len(), 2 * n, "{}", layer.name());
        for r in 0..2 {
            let lhs: f64 = (0..m).map(|i| g[r * m + i] * (ax[i] - a0[i])).sum();
            let rhs: f64 = (0..n).map(|i| gt[r * n + i] * x[i]).sum();
            assert!((lhs - rhs).abs() < 1e-10 * (1.0 + lhs.abs()), "{}: {lhs} vs {rhs}", layer.name());
        }
        checked += 1;
    }
    assert!(checked >= 10);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Every neuron line brackets the network's value at every point of the chain (PL nets) and at
    /// sampled points (every net), on a random sub-segment.
    #[test]
    fn neuron_lines_bracket_the_network(arch in 0usize..4, seed in 0u64..1000, scale in 0.05f64..2.0,
                                        s0 in 0.0f64..0.5, len in 0.01f64..0.5, interval in any::<bool>()) {
        let net = random_net(arch, seed);
        let seg = random_segment(net.input_len(), seed + 1, scale);
        let s1 = s0 + len;
        let layers: Vec<&Layer> = net.layers().iter().collect();
        let relaxation = if interval { Relaxation::Interval } else { Relaxation::Linear };
        let bounder = Bounder::new(layers.clone(), &[], &[], relaxation);
        let lines = bounder.neuron_lines(&seg.point(s0), &seg.point(s1));
        let mut points = sampled(&layers, &seg, s0, s1, 64);
        if net.first_nonlinear().is_none() {
            let sub = Segment::new(seg.point(s0), seg.point(s1)).unwrap();
            let chain = ExactLine::for_networks(&[&net]).unwrap().chain(&sub).unwrap();
            points.extend((0..chain.ratios.len()).map(|i| (chain.ratios[i], chain.value(i).to_vec())));
        }
        for (s, y) in points {
            for (i, v) in y.iter().enumerate() {
                let lo = at(lines.l0[i], lines.l1[i], s);
                let hi = at(lines.u0[i], lines.u1[i], s);
                let tol = 1e-9 * (1.0 + v.abs());
                prop_assert!(lo <= v + tol && *v <= hi + tol, "neuron {i} at s={s}: {v} not in [{lo}, {hi}]");
            }
        }
    }

    /// Margin lines are never tighter than the exact margins (checked at the chain's points, where the
    /// exact extremes are, and at samples).
    #[test]
    fn margin_lines_are_sound(arch in 0usize..4, seed in 0u64..1000, scale in 0.05f64..2.0,
                              label in 0usize..3, interval in any::<bool>()) {
        let net = random_net(arch, seed);
        let seg = random_segment(net.input_len(), seed + 7, scale);
        let layers: Vec<&Layer> = net.layers().iter().collect();
        let decision = Decision::ArgMax { classes: 3 };
        let (rows, offsets) = decision.margin_rows(label, 3);
        let relaxation = if interval { Relaxation::Interval } else { Relaxation::Linear };
        let lines = Bounder::new(layers.clone(), &rows, &offsets, relaxation).margins(seg.a(), seg.b());
        let mut points = sampled(&layers, &seg, 0.0, 1.0, 64);
        if net.first_nonlinear().is_none() {
            let chain = ExactLine::for_networks(&[&net]).unwrap().chain(&seg).unwrap();
            points.extend((0..chain.ratios.len()).map(|i| (chain.ratios[i], chain.value(i).to_vec())));
        }
        let mut m = Vec::new();
        for (s, y) in points {
            decision.margins_of(label, &y, &mut m);
            for (j, v) in m.iter().enumerate() {
                let lo = at(lines.lower[0][j], lines.lower[1][j], s);
                let hi = at(lines.upper[0][j], lines.upper[1][j], s);
                prop_assert!(lo <= *v && *v <= hi, "margin {j} at s={s}: {v} not in [{lo}, {hi}]");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The forward lines of many regions bounded in one batch are sound on each region (at samples, and at the
    /// chain's points, where the exact extremes are), with or without the lower lines tightened through a tail
    /// of any length, and a region's lines do not depend on the regions batched with it.
    #[test]
    fn batched_forward_margins_are_sound(arch in 0usize..4, seed in 0u64..1000, scale in 0.05f64..3.0,
                                         label in 0usize..3, regions in 1usize..6, interval in any::<bool>(),
                                         tail in 0usize..14, tighten in any::<bool>()) {
        let net = random_net(arch, seed);
        let seg = random_segment(net.input_len(), seed + 11, scale);
        let layers: Vec<&Layer> = net.layers().iter().collect();
        let decision = Decision::ArgMax { classes: 3 };
        let (rows, offsets) = decision.margin_rows(label, 3);
        let relaxation = if interval { Relaxation::Interval } else { Relaxation::Linear };
        let bounder = Bounder::new(layers.clone(), &rows, &offsets, relaxation).with_tail(tail);
        let below = if tighten { f64::INFINITY } else { f64::NEG_INFINITY };
        let cuts: Vec<f64> = (0..=regions).map(|k| k as f64 / regions as f64).collect();
        let ends: Vec<f64> = cuts.windows(2).flat_map(|w| [seg.point(w[0]), seg.point(w[1])].concat()).collect();
        let all = bounder.forward_margins(&ends, regions, below);
        prop_assert_eq!(all.len(), regions);
        let chain = net.first_nonlinear().is_none().then(|| ExactLine::for_networks(&[&net]).unwrap().chain(&seg).unwrap());
        let mut m = Vec::new();
        for (k, lines) in all.iter().enumerate() {
            let (s0, s1) = (cuts[k], cuts[k + 1]);
            let n0 = net.input_len();
            let alone = bounder.forward_margins(&ends[2 * k * n0..2 * (k + 1) * n0], 1, below);
            prop_assert_eq!(&alone[0], lines);
            let mut points = sampled(&layers, &seg, s0, s1, 24);
            if let Some(chain) = &chain {
                points.extend((0..chain.ratios.len()).filter(|&i| chain.ratios[i] >= s0 && chain.ratios[i] <= s1)
                    .map(|i| ((chain.ratios[i] - s0) / (s1 - s0), chain.value(i).to_vec())));
            }
            // `sampled` and the chain's points both in the region's own ratio.
            for (local, y) in points {
                decision.margins_of(label, &y, &mut m);
                for (j, v) in m.iter().enumerate() {
                    let lo = at(lines.lower[0][j], lines.lower[1][j], local);
                    let hi = at(lines.upper[0][j], lines.upper[1][j], local);
                    prop_assert!(lo <= *v && *v <= hi, "region {k}, margin {j} at {local}: {v} not in [{lo}, {hi}]");
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The batched pass, which keeps each layer's bounds in the form the next layer reads (centre and radius
    /// lines, or lower and upper ones) and relaxes the relu in one fused loop, gives the same bits as the plain
    /// one-region pass (`neuron_lines`: lower and upper lines after every layer, `Activation::lines`).
    #[test]
    fn batched_forward_lines_equal_the_plain_pass(arch in 0usize..4, seed in 0u64..1000, scale in 0.05f64..3.0,
                                                 label in 0usize..3) {
        let net = random_net(arch, seed);
        let seg = random_segment(net.input_len(), seed + 5, scale);
        let layers: Vec<&Layer> = net.layers().iter().collect();
        let (rows, offsets) = Decision::ArgMax { classes: 3 }.margin_rows(label, 3);
        let bounder = Bounder::new(layers, &rows, &offsets, Relaxation::Linear);
        let (x0, x1) = (seg.point(0.0), seg.point(1.0));
        let batched = &bounder.forward_margins(&[x0.clone(), x1.clone()].concat(), 1, f64::NEG_INFINITY)[0];
        let plain = bounder.neuron_lines(&x0, &x1);
        let mut want = bounder.margin_lines([&plain.l0, &plain.l1], [&plain.u0, &plain.u1]);
        widen(&mut want);
        let bits = |l: &MarginLines| [&l.lower[0], &l.lower[1], &l.upper[0], &l.upper[1]]
            .map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<u64>>());
        prop_assert_eq!(bits(batched), bits(&want));
    }
}

/// A tail that reaches back past the first activation keeps the layers before it exact: the upper lines (which
/// the tail never touches) are the same bits with and without it, for lines and for intervals, on a network whose
/// first two layers are affine (an interval collapse there would widen them).
#[test]
fn a_long_tail_keeps_the_first_layers_exact() {
    for seed in 0..10 {
        let net = CardBuilder::new("affine-first", &[3], seed)
            .gain(2.0)
            .linear(5)
            .linear(4)
            .relu()
            .linear(3)
            .network()
            .unwrap();
        let seg = random_segment(3, seed + 3, 1.0);
        let layers: Vec<&Layer> = net.layers().iter().collect();
        let (rows, offsets) = Decision::ArgMax { classes: 3 }.margin_rows(0, 3);
        let ends = [seg.point(0.0), seg.point(1.0)].concat();
        for relaxation in [Relaxation::Linear, Relaxation::Interval] {
            let plain = Bounder::new(layers.clone(), &rows, &offsets, relaxation);
            let tailed = Bounder::new(layers.clone(), &rows, &offsets, relaxation).with_tail(usize::MAX);
            let before = &plain.forward_margins(&ends, 1, f64::NEG_INFINITY)[0];
            let after = &tailed.forward_margins(&ends, 1, f64::INFINITY)[0];
            let bits = |v: &[Vec<f64>; 2]| v.iter().flatten().map(|x| x.to_bits()).collect::<Vec<u64>>();
            assert_eq!(bits(&before.upper), bits(&after.upper), "seed {seed}, {relaxation:?}");
        }
    }
}

/// Back-substitution through a tail never loosens a lower line (it replaces one only where its mean is higher)
/// and leaves the upper lines and the rows it was not asked for alone; on a random network it tightens some.
#[test]
fn a_tail_only_tightens_the_rows_below_the_threshold() {
    let mut tightened = 0;
    for seed in 0..20 {
        let net = random_net(0, seed);
        let seg = random_segment(net.input_len(), seed + 3, 2.0);
        let layers: Vec<&Layer> = net.layers().iter().collect();
        let (rows, offsets) = Decision::ArgMax { classes: 3 }.margin_rows(0, 3);
        let plain = Bounder::new(layers.clone(), &rows, &offsets, Relaxation::Linear);
        let tailed = Bounder::new(layers, &rows, &offsets, Relaxation::Linear).with_tail(usize::MAX);
        let ends = [seg.point(0.0), seg.point(1.0)].concat();
        let before = &plain.forward_margins(&ends, 1, f64::INFINITY)[0];
        let threshold = before.lower[0][0].min(before.lower[1][0]);
        let after = &tailed.forward_margins(&ends, 1, threshold)[0];
        assert_eq!(before.upper, after.upper);
        for j in 0..2 {
            let mean = |l: &MarginLines| l.lower[0][j] + l.lower[1][j];
            assert!(mean(after) >= mean(before), "seed {seed}, margin {j}: a looser lower line");
            if before.lower[0][j].min(before.lower[1][j]) > threshold {
                assert_eq!((after.lower[0][j], after.lower[1][j]), (before.lower[0][j], before.lower[1][j]));
            }
            tightened += usize::from(mean(after) > mean(before));
        }
    }
    assert!(tightened > 0, "no lower line was tightened on 20 random networks");
}

/// On a segment short enough that no neuron changes face, linear bounds are exact up to the widening.
#[test]
fn linear_bounds_are_exact_on_one_piece() {
    let net = random_net(0, 3);
    let seg = random_segment(3, 4, 1.0);
    let chain = ExactLine::for_networks(&[&net]).unwrap().chain(&seg).unwrap();
    let (a, b) = (seg.point(chain.ratios[0]), seg.point(chain.ratios[1]));
    let layers: Vec<&Layer> = net.layers().iter().collect();
    let (rows, offsets) = Decision::ArgMax { classes: 3 }.margin_rows(0, 3);
    let lines = Bounder::new(layers, &rows, &offsets, Relaxation::Linear).margins(&a, &b);
    let mut exact = Vec::new();
    Decision::ArgMax { classes: 3 }.margins_of(0, chain.value(0), &mut exact);
    for j in 0..2 {
        assert!((lines.lower[0][j] - exact[j]).abs() < 1e-7, "{} vs {}", lines.lower[0][j], exact[j]);
        assert!((lines.upper[0][j] - exact[j]).abs() < 1e-7);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The bands around the chords between the ends' exact values ([`Bounder::chord_margins`]) are sound on
    /// every region (at samples, and at the chain's points, where the exact extremes are), with or without the
    /// lower lines tightened through a tail of any length; a region's lines are the same bits whichever regions
    /// are batched with it.
    #[test]
    fn chord_margins_are_sound(pick in 0usize..3, seed in 0u64..1000, scale in 0.05f64..3.0,
                               label in 0usize..3, regions in 1usize..6, tail in 0usize..14,
                               tighten in any::<bool>()) {
        let net = random_net([0, 4, 5][pick], seed);
        let seg = random_segment(net.input_len(), seed + 13, scale);
        let layers: Vec<&Layer> = net.layers().iter().collect();
        let decision = Decision::ArgMax { classes: 3 };
        let (rows, offsets) = decision.margin_rows(label, 3);
        let bounder = Bounder::new(layers.clone(), &rows, &offsets, Relaxation::Linear).with_tail(tail);
        prop_assert!(bounder.chords());
        let below = if tighten { f64::INFINITY } else { f64::NEG_INFINITY };
        let cuts: Vec<f64> = (0..=regions).map(|k| k as f64 / regions as f64).collect();
        let traces: Vec<Trace> = cuts.iter().map(|&s| bounder.trace(&seg.point(s))).collect();
        let ends: Vec<[&Trace; 2]> = traces.windows(2).map(|w| [&w[0], &w[1]]).collect();
        let all = bounder.chord_margins(&ends, below, f64::NEG_INFINITY);
        prop_assert_eq!(all.len(), regions);
        let chain = ExactLine::for_networks(&[&net]).unwrap().chain(&seg).unwrap();
        let mut m = Vec::new();
        for (k, lines) in all.iter().enumerate() {
            let bits = |l: &MarginLines| {
                l.lower.iter().chain(&l.upper).flatten().map(|x| x.to_bits()).collect::<Vec<u64>>()
            };
            let alone = bounder.chord_margins(&ends[k..k + 1], below, f64::NEG_INFINITY);
            prop_assert_eq!(bits(&alone[0]), bits(lines));
            let (s0, s1) = (cuts[k], cuts[k + 1]);
            let mut points = sampled(&layers, &seg, s0, s1, 24);
            points.extend((0..chain.ratios.len()).filter(|&i| chain.ratios[i] >= s0 && chain.ratios[i] <= s1)
                .map(|i| ((chain.ratios[i] - s0) / (s1 - s0), chain.value(i).to_vec())));
            for (local, y) in points {
                decision.margins_of(label, &y, &mut m);
                for (j, v) in m.iter().enumerate() {
                    let lo = at(lines.lower[0][j], lines.lower[1][j], local);
                    let hi = at(lines.upper[0][j], lines.upper[1][j], local);
                    prop_assert!(lo <= *v && *v <= hi, "region {k}, margin {j} at {local}: {v} not in [{lo}, {hi}]");
                }
            }
        }
    }

    /// One neuron through an activation in band form: for any input inside `chord(s) + d ± r` (the band's
    /// extremes and points between, at samples of `s` and at the kinks' crossings), the output lies in
    /// `chord'(s) + d' ± r'` with `r' ≥ |d'|`; the relu's vectorized step gives the generic step's band.
    #[test]
    fn a_chord_step_keeps_the_activation_in_its_band(act in 0usize..5, z0 in -3.0f64..3.0, z1 in -3.0f64..3.0,
                                                      d in -1.0f64..1.0, extra in 0.0f64..1.0, wide in any::<bool>()) {
        let act = [Activation::Leaky(0.0), Activation::Leaky(0.1), Activation::Leaky(1.5),
                   Activation::Clamp(-0.3, 0.4), Activation::Clamp(0.0, 1.0)][act];
        let (d, r) = if wide { (d, d.abs() + extra) } else { (0.0, 0.0) };
        let (nd, nr) = chord_step(act, z0, z1, d, r);
        prop_assert!(nr >= nd.abs() - 1e-15, "r' = {nr} < |d'| = {}", nd.abs());
        if act == Activation::Leaky(0.0) {
            let (mut vd, mut vr) = ([d], [r]);
            chord_steps(act, &[z0], &[z1], &mut vd, &mut vr);
            prop_assert!((vd[0] - nd).abs() <= 1e-12 * (1.0 + nd.abs()), "d': {} vs {nd}", vd[0]);
            prop_assert!((vr[0] - nr).abs() <= 1e-12 * (1.0 + nr.abs()), "r': {} vs {nr}", vr[0]);
        }
        let (x0, x1) = (act.value(z0), act.value(z1));
        let mut ss: Vec<f64> = (0..=64).map(|i| i as f64 / 64.0).collect();
        for k in [0.0, -0.3, 0.4, 1.0] {
            if z0 != z1 {
                let s = (k - z0) / (z1 - z0);
                if (0.0..=1.0).contains(&s) {
                    ss.push(s);
                }
            }
        }
        for s in ss {
            for e in [d - r, d + r, d, d - 0.5 * r, d + 0.3 * r] {
                let x = act.value(at(z0, z1, s) + e);
                let c = at(x0, x1, s);
                let tol = 1e-12 * (1.0 + x.abs() + c.abs());
                prop_assert!(c + nd - nr - tol <= x && x <= c + nd + nr + tol,
                    "{act:?} z {z0}..{z1} band {d}±{r}, s {s}, e {e}: {x} not in {c} + {nd} ± {nr}");
            }
        }
    }
}

/// On a sub-segment where no neuron changes face the network is affine, the bands stay empty and the chord
/// bounds are the exact margins at the ends (up to the widening); across one piece's boundary they are not.
#[test]
fn chord_bounds_are_exact_on_one_piece() {
    let mut checked = 0;
    for seed in 0..10 {
        // No clamp: a clamp saturated on both sides of a breakpoint would make the margins constant there.
        let net = random_net(5, seed);
        let seg = random_segment(4, seed + 4, 1.0);
        let chain = ExactLine::for_networks(&[&net]).unwrap().chain(&seg).unwrap();
        if chain.ratios.len() < 3 {
            continue;
        }
        let layers: Vec<&Layer> = net.layers().iter().collect();
        let decision = Decision::ArgMax { classes: 3 };
        let (rows, offsets) = decision.margin_rows(0, 3);
        let bounder = Bounder::new(layers, &rows, &offsets, Relaxation::Linear);
        let [a, b, c] = [0, 1, 2].map(|i| bounder.trace(&seg.point(chain.ratios[i])));
        let one = &bounder.chord_margins(&[[&a, &b]], f64::NEG_INFINITY, f64::NEG_INFINITY)[0];
        let mut exact = Vec::new();
        for (e, i) in [0, 1].into_iter().enumerate() {
            decision.margins_of(0, chain.value(i), &mut exact);
            for j in 0..2 {
                let tol = 1e-8 * (1.0 + exact[j].abs());
                assert!((one.lower[e][j] - exact[j]).abs() < tol, "{} vs {}", one.lower[e][j], exact[j]);
                assert!((one.upper[e][j] - exact[j]).abs() < tol, "{} vs {}", one.upper[e][j], exact[j]);
            }
        }
        // Two pieces: some neuron bends between the ends, and its band reaches the margins.
        let two = &bounder.chord_margins(&[[&a, &c]], f64::NEG_INFINITY, f64::NEG_INFINITY)[0];
        let width = |l: &MarginLines| (0..2).map(|j| l.upper[0][j] - l.lower[0][j]).fold(0.0, f64::max);
        assert!(width(two) > width(one), "seed {seed}: no band across a breakpoint");
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} segments of several pieces");
}

/// A band that overflowed (an offset or width that is infinite or not a number) is never turned into a finite
/// band by an activation step: it stays infinite or not a number, so that the hybrid leaves its region open.
#[test]
fn an_overflowed_band_stays_not_a_number() {
    let acts = [Activation::Leaky(0.0), Activation::Leaky(0.1), Activation::Clamp(0.0, 1.0)];
    for act in acts {
        for (z0, z1) in [(-1.0, 2.0), (0.5, 1.5), (-2.0, -1.0)] {
            for (d, r) in [(0.0, f64::NAN), (f64::NAN, 1.0), (f64::INFINITY, f64::INFINITY)] {
                let (mut vd, mut vr) = ([d; 3], [r; 3]);
                let bent = chord_steps(act, &[z0; 3], &[z1; 3], &mut vd, &mut vr);
                assert!(bent, "{act:?} {z0}..{z1} band {d}±{r}: reported empty");
                for (nd, nr) in vd.iter().zip(&vr) {
                    assert!(
                        !(nd.is_finite() && nr.is_finite()),
                        "{act:?} {z0}..{z1} band {d}±{r}: became the finite band {nd}±{nr}"
                    );
                }
            }
        }
    }
}
