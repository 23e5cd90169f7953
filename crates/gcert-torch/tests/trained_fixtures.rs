//! The committed trained fixtures (`fixtures/trained/`): every card loads in gcert-core and computes what
//! libtorch computes on the committed real test digits and latents.

use std::path::{Path, PathBuf};

use gcert_core::npy::read_npy;
use gcert_core::Network;
use gcert_torch::nn::Net;
use tch::{Device, Kind, Tensor};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/trained")
}

fn tensor(values: &[f64], shape: &[i64]) -> Tensor {
    Tensor::from_slice(values).reshape(shape).to_kind(Kind::Float)
}

/// The committed digit images (10 × [1, 32, 32]) and their labels.
fn digits() -> (Vec<f64>, Vec<i64>) {
    let mut all = Vec::new();
    for d in 0..10 {
        let a = read_npy(&dir().join(format!("latents/digit-{d}.npy"))).unwrap();
        assert_eq!(a.shape, [1, 32, 32]);
        all.extend(a.data);
    }
    (all, (0..10).collect())
}

fn latents(kind: &str) -> Vec<f64> {
    (0..10).flat_map(|d| read_npy(&dir().join(format!("latents/{kind}-z-{d}.npy"))).unwrap().data).collect()
}

/// Max |gcert-core − libtorch (f32, as trained)| on a batch.
fn max_diff(card: &str, input: &[f64], shape: &[i64]) -> (f64, Vec<f64>) {
    let path = dir().join(card);
    let core = Network::load(&path).unwrap();
    let n = shape[0] as usize;
    let ours = core.forward(input, n).unwrap();
    let net = Net::load_card(&path, Kind::Float, Device::Cpu).unwrap();
    let x = tensor(input, shape);
    let theirs = if net.input_shapes.len() == 2 {
        let half = x.reshape([n as i64, 2, 1, 32, 32]);
        let (a, b) = (half.select(1, 0), half.select(1, 1));
        tch::no_grad(|| net.forward_multi(&[&a, &b], false)).unwrap()
    } else {
        tch::no_grad(|| net.forward(&x, false)).unwrap()
    };
    let theirs = Vec::<f64>::try_from(theirs.to_kind(Kind::Double).flatten(0, -1)).unwrap();
    assert_eq!(ours.len(), theirs.len(), "{card}");
    (ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max), ours)
}

#[test]
fn classifiers_match_libtorch_and_recognise_the_committed_digits() {
    let (x, labels) = digits();
    for card in
        ["classifier-fc3.toml", "classifier-conv2.toml", "classifier-conv4.toml", "classifier-conv4-aug.toml"]
    {
        let (d, logits) = max_diff(card, &x, &[10, 1, 32, 32]);
        assert!(d <= 1e-5, "{card}: gcert-core and libtorch differ by {d:e}");
        let correct = (0..10)
            .filter(|&i| {
                let row = &logits[i * 10..(i + 1) * 10];
                let arg = row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
                arg as i64 == labels[i]
            })
            .count();
        // A broken export recognises about one digit in ten.
        assert!(correct >= 7, "{card}: only {correct}/10 committed digits recognised");
    }
}

#[test]
fn pair_network_matches_libtorch_and_says_same_for_identical_digits() {
    let (x, _) = digits();
    // (digit d, digit d) then (digit d, digit d+1).
    let mut input = Vec::new();
    for d in 0..10 {
        input.extend_from_slice(&x[d * 1024..(d + 1) * 1024]);
        input.extend_from_slice(&x[d * 1024..(d + 1) * 1024]);
    }
    for d in 0..10 {
        input.extend_from_slice(&x[d * 1024..(d + 1) * 1024]);
        let e = (d + 1) % 10;
        input.extend_from_slice(&x[e * 1024..(e + 1) * 1024]);
    }
    let (d, p) = max_diff("pair.toml", &input, &[20, 2048]);
    assert!(d <= 1e-5, "pair: {d:e}");
    let same = p[..10].iter().filter(|&&v| v > 0.5).count();
    let differ = p[10..].iter().filter(|&&v| v < 0.5).count();
    assert!(same >= 8 && differ >= 7, "same {same}/10, different {differ}/10: {p:?}");
}

#[test]
fn generators_are_piecewise_linear_match_libtorch_and_reconstruct_the_digits() {
    let (x, _) = digits();
    for (card, kind) in [("generator.toml", "gan"), ("vae-decoder.toml", "vae")] {
        let z = latents(kind);
        // The latent's length is the card's (51 for the VAE: its class selector comes first).
        let k = Network::load(dir().join(card)).unwrap().input_len();
        assert_eq!(z.len(), 10 * k, "{card}: the committed latents have the card's length");
        let (d, images) = max_diff(card, &z, &[10, k as i64]);
        assert!(d <= 1e-5, "{card}: {d:e}");
        let core = Network::load(dir().join(card)).unwrap();
        assert_eq!(core.first_nonlinear(), None, "{card} must be piecewise linear");
        assert_eq!(core.output_shape(), [1, 32, 32]);
        assert!(images.iter().all(|v| (0.0..=1.0).contains(v)), "{card}: outputs leave [0, 1]");
        let mse = images.iter().zip(&x).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / images.len() as f64;
        assert!(mse < 0.06, "{card}: the committed latents reconstruct the digits with mse {mse}");
    }
    let (d, mu) = max_diff("vae-encoder.toml", &x, &[10, 1, 32, 32]);
    assert!(d <= 1e-5, "encoder: {d:e}");
    let committed = latents("vae");
    let e = mu.iter().zip(&committed).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(e < 1e-4, "the committed VAE latents are the encoder's means ({e})");
}
