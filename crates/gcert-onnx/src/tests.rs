//! Unit tests of the merging of affine steps: every merge computes what the unmerged steps compute.

use std::path::Path;

use gcert_core::card::LayerSpec;
use gcert_core::Network;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::emit::{emit, Ir, Step};

fn rand_vec(rng: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect()
}

fn affine(rng: &mut ChaCha8Rng, shape: &[usize], per_channel: bool) -> Step {
    let n: usize = shape.iter().product();
    let (scale, shift) = if per_channel {
        let block = n / shape[0];
        let s = rand_vec(rng, shape[0]);
        let t = rand_vec(rng, shape[0]);
        (s.iter().flat_map(|&v| vec![v; block]).collect(), t.iter().flat_map(|&v| vec![v; block]).collect())
    } else {
        (rand_vec(rng, n), rand_vec(rng, n))
    };
    Step { ir: Ir::Affine { scale, shift }, in_shape: shape.to_vec(), out_shape: shape.to_vec() }
}

fn conv(rng: &mut ChaCha8Rng, [c, h, w]: [usize; 3], cout: usize, padding: usize, transpose: bool) -> Step {
    let k = 3;
    let weight = rand_vec(rng, c * cout * k * k);
    let (oh, ow) = if transpose {
        ((h - 1) * 2 + k - 2 * padding, (w - 1) * 2 + k - 2 * padding)
    } else {
        (h + 2 * padding - k + 1, w + 2 * padding - k + 1)
    };
    Step {
        ir: Ir::Conv {
            weight,
            bias: rand_vec(rng, cout),
            cin: c,
            cout,
            kernel: [k, k],
            stride: if transpose { [2, 2] } else { [1, 1] },
            padding: [padding; 2],
            transpose: transpose.then_some([0, 0]),
        },
        in_shape: vec![c, h, w],
        out_shape: vec![cout, oh, ow],
    }
}

fn linear(rng: &mut ChaCha8Rng, inputs: usize, outputs: usize) -> Step {
    Step {
        ir: Ir::Linear {
            weight: rand_vec(rng, inputs * outputs),
            bias: rand_vec(rng, outputs),
            inputs,
            outputs,
        },
        in_shape: vec![inputs],
        out_shape: vec![outputs],
    }
}

fn plain(spec: LayerSpec, shape: &[usize]) -> Step {
    Step { ir: Ir::Plain(spec), in_shape: shape.to_vec(), out_shape: shape.to_vec() }
}

fn reshape(from: &[usize], to: &[usize]) -> Step {
    Step { ir: Ir::Reshape, in_shape: from.to_vec(), out_shape: to.to_vec() }
}

/// Emits the steps merged and unmerged; checks both validate, agree on random inputs, and returns the merged
/// card's ops.
fn merged_ops(input: &[usize], steps: Vec<Step>) -> Vec<&'static str> {
    let net = |merge: bool| {
        let (card, tensors, _) = emit("t", input.to_vec(), String::new(), steps.clone(), merge);
        let ops = card.layers.iter().map(LayerSpec::op_name).collect::<Vec<_>>();
        (Network::from_card(&card, &tensors, Path::new("t.toml")).unwrap(), ops)
    };
    let ((merged, ops), (plain, _)) = (net(true), net(false));
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let x = rand_vec(&mut rng, 4 * merged.input_len());
    let (a, b) = (merged.forward(&x, 4).unwrap(), plain.forward(&x, 4).unwrap());
    let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    let diff = a.iter().zip(&b).fold(0.0f64, |m, (p, q)| m.max((p - q).abs()));
    assert!(diff <= 1e-12 * scale, "merged and unmerged differ by {diff} (scale {scale})");
    ops
}

#[test]
fn input_normalisation_folds_into_the_first_linear_layer() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let steps = vec![
        affine(&mut rng, &[1, 4, 4], false),
        reshape(&[1, 4, 4], &[16]),
        linear(&mut rng, 16, 5),
        plain(LayerSpec::Relu, &[5]),
    ];
    assert_eq!(merged_ops(&[1, 4, 4], steps), ["flatten", "linear", "relu"]);
}

#[test]
fn batch_norm_folds_into_the_convolution_before_it() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for transpose in [false, true] {
        let c = conv(&mut rng, [2, 5, 5], 3, 1, transpose);
        let out = c.out_shape.clone();
        let steps = vec![c, affine(&mut rng, &out, true), plain(LayerSpec::Relu, &out)];
        let first = if transpose { "conv_transpose2d" } else { "conv2d" };
        assert_eq!(merged_ops(&[2, 5, 5], steps), [first, "relu"]);
    }
}

#[test]
fn a_shift_before_a_padded_convolution_stays_a_batch_norm() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let steps = vec![affine(&mut rng, &[2, 5, 5], true), conv(&mut rng, [2, 5, 5], 3, 1, false)];
    assert_eq!(merged_ops(&[2, 5, 5], steps), ["batch_norm", "conv2d"]);
    // Without padding it folds.
    let steps = vec![affine(&mut rng, &[2, 5, 5], true), conv(&mut rng, [2, 5, 5], 3, 0, false)];
    assert_eq!(merged_ops(&[2, 5, 5], steps), ["conv2d"]);
}

#[test]
fn a_per_pixel_affine_between_activations_is_a_flat_batch_norm() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let steps = vec![
        plain(LayerSpec::Relu, &[2, 3, 3]),
        affine(&mut rng, &[2, 3, 3], false),
        plain(LayerSpec::LeakyRelu { slope: 0.1 }, &[2, 3, 3]),
    ];
    assert_eq!(merged_ops(&[2, 3, 3], steps), ["relu", "flatten", "batch_norm", "reshape", "leaky_relu"]);
}

#[test]
fn consecutive_linear_layers_merge_when_the_product_is_no_larger() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let steps = vec![linear(&mut rng, 6, 8), linear(&mut rng, 8, 3)];
    assert_eq!(merged_ops(&[6], steps), ["linear"]);
    // A wide product (100 x 100 from 100 x 2 and 2 x 100) stays two layers.
    let steps = vec![linear(&mut rng, 100, 2), linear(&mut rng, 2, 100)];
    assert_eq!(merged_ops(&[100], steps), ["linear", "linear"]);
}

#[test]
fn reshapes_collapse() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let steps = vec![
        reshape(&[1, 4, 1], &[4, 1]),
        reshape(&[4, 1], &[4]),
        linear(&mut rng, 4, 2),
        reshape(&[2], &[2]),
    ];
    assert_eq!(merged_ops(&[1, 4, 1], steps), ["flatten", "linear"]);
}

/// Damaged files are errors, never panics: every truncation of a small network, and random byte changes of a
/// larger one.
#[test]
fn damaged_files_are_errors_not_panics() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/onnx");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.onnx");
    let small = std::fs::read(fixtures.join("test_small.onnx")).unwrap();
    for cut in 0..small.len() {
        std::fs::write(&path, &small[..cut]).unwrap();
        assert!(crate::load(&path).is_err(), "a cut at byte {cut} of {} imported", small.len());
    }
    let large = std::fs::read(fixtures.join("test_sat.onnx")).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..300 {
        let mut bytes = large.clone();
        for _ in 0..rng.gen_range(1..4) {
            let i = rng.gen_range(0..bytes.len());
            bytes[i] = rng.gen();
        }
        std::fs::write(&path, &bytes).unwrap();
        match crate::load(&path) {
            Ok(net) => {
                // A change inside a weight imports; the network then evaluates (finite weights were checked).
                net.forward(&vec![0.5; net.input_len()], 1).unwrap();
                ok += 1;
            }
            Err(e) => {
                assert!(e.to_string().starts_with(path.to_str().unwrap()), "{e}");
                refused += 1;
            }
        }
    }
    assert!(ok > 0 && refused > 0, "{ok} imported, {refused} refused");
}
