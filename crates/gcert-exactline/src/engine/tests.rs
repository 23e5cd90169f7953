use gcert_core::builder::CardBuilder;
use gcert_core::{Network, Segment};
use proptest::prelude::*;

use super::*;
use crate::Bounds;

/// Small random networks covering every piecewise-linear op.
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
        2 => CardBuilder::new("gen", &[4], seed)
            .gain(2.0)
            .linear(18)
            .reshape(&[2, 3, 3])
            .conv_transpose2d(3, 4, 2, 1, 1)
            .batch_norm()
            .relu()
            .conv_transpose2d(1, 3, 1, 1, 0)
            .clamp(0.0, 1.0),
        _ => CardBuilder::new("pool", &[2, 5, 5], seed)
            .gain(2.0)
            .conv2d(2, 3, 1, 1)
            .max_pool2d(3, 1, 1)
            .relu()
            .flatten()
            .linear(4)
            .relu()
            .linear(2),
    };
    b.network().expect("random network is valid")
}

fn random_segment(len: usize, seed: u64, scale: f64) -> Segment {
    gcert_core::builder::random_segment(len, seed, scale).unwrap()
}

/// Which linear face every PL neuron is on at `x` (`None` where it sits on a boundary, within `tol`).
fn pattern(layers: &[&Layer], x: &[f64], tol: f64) -> Vec<Option<usize>> {
    let mut out = Vec::new();
    let mut cur = x.to_vec();
    let mut next = Vec::new();
    let mut scratch = Scratch::default();
    let mut window = Vec::new();
    for layer in layers {
        match layer.op() {
            Op::MaxPool2d(g) => {
                for ch in 0..g.c {
                    for oy in 0..g.oh {
                        for ox in 0..g.ow {
                            g.window(ch, oy, ox, &mut window);
                            let mut vals: Vec<(f64, usize)> = window.iter().map(|&i| (cur[i], i)).collect();
                            vals.sort_by(|a, b| b.0.total_cmp(&a.0));
                            let unique = vals.len() == 1 || vals[0].0 - vals[1].0 > tol;
                            out.push(unique.then_some(vals[0].1));
                        }
                    }
                }
            }
            _ if layer.kind() == Kind::Elementwise => {
                for &v in &cur {
                    let mut face = Some(0);
                    // Faces are ordered thresholds: the face index counts the thresholds below the value.
                    for (k, &f) in layer.faces().iter().enumerate() {
                        let c = layer.face_value(f);
                        if (v - c).abs() <= tol {
                            face = None;
                        } else if face.is_some() && v > c {
                            face = Some(k + 1);
                        }
                    }
                    out.push(face);
                }
            }
            _ => {}
        }
        layer.apply(&cur, 1, &mut next, &mut scratch);
        std::mem::swap(&mut cur, &mut next);
    }
    out
}

fn compatible(p: &[Option<usize>], q: &[Option<usize>]) -> bool {
    p.iter().zip(q).all(|(a, b)| a.is_none() || b.is_none() || a == b)
}

fn check_chain(layers: Vec<&Layer>, seg: &Segment) -> std::result::Result<Chain, TestCaseError> {
    let engine = ExactLine::new(layers.clone()).unwrap();
    let chain = engine.chain(seg).unwrap();
    prop_assert_eq!(chain.ratios[0], 0.0);
    prop_assert_eq!(*chain.ratios.last().unwrap(), 1.0);
    prop_assert!(chain.ratios.windows(2).all(|w| w[0] < w[1]), "ratios not strictly increasing");
    prop_assert_eq!(chain.values.len(), chain.ratios.len() * engine.output_len());
    let input_len = engine.input_len();
    for i in 0..chain.pieces() {
        let (t0, t1) = (chain.ratios[i], chain.ratios[i + 1]);
        let mut reference = None;
        for s in [0.13, 0.5, 0.87] {
            let t = t0 + s * (t1 - t0);
            let x = seg.point(t);
            let exact =
                gcert_core::network::forward_layers(layers.iter().copied(), input_len, &x, 1).unwrap();
            let interp = chain.interpolate(t);
            for (e, v) in exact.iter().zip(&interp) {
                prop_assert!((e - v).abs() <= 1e-6 * (1.0 + e.abs()), "piece {i} at t={t}: {e} vs {v}");
            }
            let p = pattern(&layers, &x, 1e-9);
            match &reference {
                None => reference = Some(p),
                Some(r) => prop_assert!(compatible(r, &p), "activation pattern changes inside piece {i}"),
            }
        }
    }
    // The chain's points themselves are the network's values.
    for k in [0, chain.ratios.len() / 2, chain.ratios.len() - 1] {
        let x = seg.point(chain.ratios[k]);
        let exact = gcert_core::network::forward_layers(layers.iter().copied(), input_len, &x, 1).unwrap();
        for (e, v) in exact.iter().zip(chain.value(k)) {
            prop_assert!((e - v).abs() <= 1e-6 * (1.0 + e.abs()));
        }
    }
    Ok(chain)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn chain_is_exact_on_every_op(arch in 0usize..4, seed in any::<u64>(), scale in 0.5f64..4.0) {
        let net = random_net(arch, seed);
        let seg = random_segment(net.input_len(), seed ^ 0x5eed, scale);
        check_chain(net.layers().iter().collect(), &seg)?;
    }

    #[test]
    fn composition_is_exact(seed in any::<u64>(), scale in 0.5f64..3.0) {
        let gen = random_net(2, seed);
        let cls = CardBuilder::new("cls", &[1, 7, 7], seed.wrapping_add(1))
            .gain(2.0)
            .conv2d(2, 3, 1, 0)
            .relu()
            .max_pool2d(2, 2, 0)
            .flatten()
            .linear(3)
            .network()
            .unwrap();
        let seg = random_segment(gen.input_len(), seed, scale);
        let layers = gcert_core::compose(&[&gen, &cls]).unwrap();
        let chain = check_chain(layers, &seg)?;
        let via = ExactLine::for_networks(&[&gen, &cls]).unwrap().chain(&seg).unwrap();
        prop_assert_eq!(chain, via);
    }

    #[test]
    fn chunking_changes_nothing(arch in 0usize..4, seed in any::<u64>(), chunk in 2usize..7) {
        let net = random_net(arch, seed);
        let seg = random_segment(net.input_len(), seed, 3.0);
        let engine = ExactLine::for_networks(&[&net]).unwrap();
        let whole = engine.chain(&seg).unwrap();
        let chunked = engine.clone().with_chunk(chunk).chain(&seg).unwrap();
        prop_assert_eq!(&whole.ratios, &chunked.ratios);
        for (a, b) in whole.values.iter().zip(&chunked.values) {
            prop_assert!((a - b).abs() <= 1e-12 * (1.0 + a.abs()));
        }
    }

    #[test]
    fn bounds_are_the_chain_extremes(seed in any::<u64>()) {
        let net = random_net(2, seed);
        let seg = random_segment(net.input_len(), seed, 2.0);
        let engine = ExactLine::for_networks(&[&net]).unwrap();
        let chain = engine.chain(&seg).unwrap();
        let mut bounds = Bounds::new(engine.output_len());
        let flow = engine.clone().with_chunk(3).run(&seg, &mut bounds).unwrap();
        prop_assert!(flow.is_continue(), "Bounds never stops the walk");
        prop_assert_eq!(bounds.pieces(), chain.pieces());
        for j in 0..chain.width {
            let col: Vec<f64> = (0..chain.ratios.len()).map(|i| chain.value(i)[j]).collect();
            prop_assert_eq!(bounds.lower[j], col.iter().copied().fold(f64::INFINITY, f64::min));
            prop_assert_eq!(bounds.upper[j], col.iter().copied().fold(f64::NEG_INFINITY, f64::max));
        }
    }
}

fn net_from(toml_text: &str, tensors: &[(&str, Vec<usize>, Vec<f64>)]) -> Network {
    let card: gcert_core::card::ModelCard = toml::from_str(toml_text).unwrap();
    let store = tensors
        .iter()
        .map(|(n, s, d)| (n.to_string(), gcert_core::tensors::Tensor::new(s.clone(), d.clone())))
        .collect();
    Network::from_card(&card, &store, std::path::Path::new("golden.toml")).unwrap()
}

/// f(x) = relu(x − 0.25) + relu(0.5 − x) on [0, 1]: kinks at 0.25 and 0.5, computed by hand.
#[test]
fn golden_two_relus() {
    let net = net_from(
        r#"
        format = "gcert-model/1"
        name = "golden"
        weights = "golden.safetensors"
        input_shape = [1]
        [[layers]]
        op = "linear"
        weight = "0.weight"
        bias = "0.bias"
        [[layers]]
        op = "relu"
        [[layers]]
        op = "linear"
        weight = "2.weight"
        "#,
        &[
            ("0.weight", vec![2, 1], vec![1.0, -1.0]),
            ("0.bias", vec![2], vec![-0.25, 0.5]),
            ("2.weight", vec![1, 2], vec![1.0, 1.0]),
        ],
    );
    let seg = Segment::new(vec![0.0], vec![1.0]).unwrap();
    let chain = ExactLine::for_networks(&[&net]).unwrap().chain(&seg).unwrap();
    assert_eq!(chain.ratios, vec![0.0, 0.25, 0.5, 1.0]);
    assert_eq!(chain.values, vec![0.5, 0.25, 0.25, 0.75]);
}

/// max(x0, x1) from (1, 0) to (0, 1) switches its arg-max at 0.5; clamp to [0.2, 0.6] adds faces at
/// 0.2 (never reached: the max stays ≥ 0.5) and 0.6 (at t = 0.4 and t = 0.6).
#[test]
fn golden_max_pool_and_clamp() {
    let net = net_from(
        r#"
        format = "gcert-model/1"
        name = "golden"
        weights = "golden.safetensors"
        input_shape = [1, 1, 2]
        [[layers]]
        op = "max_pool2d"
        kernel = [1, 2]
        [[layers]]
        op = "clamp"
        min = 0.2
        max = 0.6
        "#,
        &[],
    );
    let seg = Segment::new(vec![1.0, 0.0], vec![0.0, 1.0]).unwrap();
    let chain = ExactLine::for_networks(&[&net]).unwrap().chain(&seg).unwrap();
    let r: Vec<f64> = chain.ratios.iter().map(|t| (t * 1e12).round() / 1e12).collect();
    assert_eq!(r, vec![0.0, 0.4, 0.5, 0.6, 1.0]);
    let v: Vec<f64> = chain.values.iter().map(|t| (t * 1e12).round() / 1e12).collect();
    assert_eq!(v, vec![0.6, 0.6, 0.5, 0.6, 0.6]);
}

#[test]
fn non_piecewise_linear_layer_is_named() {
    let net = CardBuilder::new("head", &[2], 1).linear(2).relu().linear(1).sigmoid().network().unwrap();
    let err = ExactLine::for_networks(&[&net]).unwrap_err().to_string();
    assert!(err.contains("layer 3 (sigmoid)"), "{err}");
    assert!(err.contains("head.toml"), "{err}");
}

#[test]
fn wrong_segment_length_is_an_error() {
    let net = random_net(0, 3);
    let seg = Segment::new(vec![0.0; 2], vec![1.0; 2]).unwrap();
    let err = ExactLine::for_networks(&[&net]).unwrap().chain(&seg).unwrap_err().to_string();
    assert!(err.contains("2 coordinates") && err.contains("3 inputs"), "{err}");
}

/// Stops after `limit` points.
struct FirstPoints {
    limit: usize,
    chain: Chain,
}

impl Sink for FirstPoints {
    fn push(&mut self, ratios: &[f64], values: &[f64]) -> ControlFlow<()> {
        let w = self.chain.width;
        for (i, &r) in ratios.iter().enumerate() {
            if self.chain.ratios.len() == self.limit {
                return ControlFlow::Break(());
            }
            self.chain.ratios.push(r);
            self.chain.values.extend_from_slice(&values[i * w..(i + 1) * w]);
        }
        ControlFlow::Continue(())
    }
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Spreading a segment over threads changes nothing, bit for bit, whatever the thread count, the split
    /// threshold, the window of groups run ahead of the sink and the chunk size; a sink that stops early sees the
    /// same points.
    #[test]
    fn parallel_runs_give_the_serial_chain(
        arch in 0usize..4,
        seed in any::<u64>(),
        threads in 2usize..5,
        per_thread in 1usize..4,
        window in 1usize..4,
        chunk in 2usize..9,
        scale in 1.0f64..8.0,
        limit in 1usize..40,
    ) {
        let net = random_net(arch, seed);
        let seg = random_segment(net.input_len(), seed, scale);
        let serial = ExactLine::for_networks(&[&net]).unwrap().with_parallel(false);
        let mut parallel = serial.clone().with_parallel(true).with_chunk(chunk);
        parallel.groups_per_thread = per_thread;
        parallel.window_per_thread = window;
        let whole = serial.chain(&seg).unwrap();
        let split = pool(threads).install(|| parallel.chain(&seg)).unwrap();
        prop_assert_eq!(&whole, &split);
        let first = |engine: &ExactLine<'_>| {
            let mut sink = FirstPoints { limit, chain: Chain { width: engine.output_len(), ..Chain::default() } };
            let flow = pool(threads).install(|| engine.run(&seg, &mut sink)).unwrap();
            (flow, sink.chain)
        };
        let (a, b) = (first(&serial), first(&parallel));
        prop_assert_eq!(a.0.is_break(), b.0.is_break());
        prop_assert_eq!(a.1, b.1);
    }
}

/// `x ↦ 1e200·relu(1e200·Σ relu(x − i/40))` on [0, 1]: 40 breakpoints in the first ReLU, so a parallel run
/// splits at the second, and every group overflows in the last layer. The split run reports the serial error.
#[test]
fn a_split_run_reports_a_fault_inside_a_group() {
    let k = 40;
    let net = net_from(
        r#"
        format = "gcert-model/1"
        name = "overflow"
        weights = "overflow.safetensors"
        input_shape = [1]
        [[layers]]
        op = "linear"
        weight = "a"
        bias = "ab"
        [[layers]]
        op = "relu"
        [[layers]]
        op = "linear"
        weight = "b"
        [[layers]]
        op = "relu"
        [[layers]]
        op = "linear"
        weight = "c"
        "#,
        &[
            ("a", vec![k, 1], vec![1.0; k]),
            ("ab", vec![k], (0..k).map(|i| -(i as f64) / k as f64).collect()),
            ("b", vec![1, k], vec![1e200; k]),
            ("c", vec![1, 1], vec![1e200]),
        ],
    );
    let seg = Segment::new(vec![0.0], vec![1.0]).unwrap();
    let serial = ExactLine::for_networks(&[&net]).unwrap().with_parallel(false);
    let mut parallel = serial.clone().with_parallel(true);
    parallel.groups_per_thread = 4;
    parallel.window_per_thread = 1;
    let s = serial.chain(&seg).unwrap_err();
    let e = pool(2).install(|| parallel.chain(&seg)).unwrap_err();
    assert!(matches!(e, Error::NonFinite { index: 4, .. }), "{e:?}");
    assert_eq!(e.to_string(), s.to_string());
}
