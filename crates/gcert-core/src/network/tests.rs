use std::path::Path;

use tempfile::TempDir;

use super::*;
use crate::builder::CardBuilder;

const CARD: &str = r#"
format = "gcert-model/1"
name = "tiny"
weights = "tiny.safetensors"
input_shape = [1, 4, 4]

[[layers]]
op = "conv2d"
weight = "0.weight"
bias = "0.bias"
stride = [2, 2]
padding = [1, 1]

[[layers]]
op = "relu"

[[layers]]
op = "flatten"

[[layers]]
op = "linear"
weight = "3.weight"
"#;

fn tensors() -> TensorStore {
    let mut t = TensorStore::new();
    t.insert(
        "0.weight".into(),
        Tensor::new(vec![2, 1, 3, 3], (0..18).map(|i| i as f64 / 18.0 - 0.5).collect()),
    );
    t.insert("0.bias".into(), Tensor::new(vec![2], vec![0.1, -0.1]));
    t.insert("3.weight".into(), Tensor::new(vec![3, 8], (0..24).map(|i| (i % 5) as f64 - 2.0).collect()));
    t
}

/// Writes the card text and tensors into a temporary directory; returns the card path.
fn write(dir: &TempDir, card: &str, t: &TensorStore) -> std::path::PathBuf {
    let path = dir.path().join("tiny.toml");
    std::fs::write(&path, card).unwrap();
    write_safetensors(&dir.path().join("tiny.safetensors"), t, Precision::F32).unwrap();
    path
}

fn load_err(card: &str, t: &TensorStore) -> String {
    let dir = TempDir::new().unwrap();
    let path = write(&dir, card, t);
    let err = Network::load(&path).unwrap_err().to_string();
    assert!(err.contains("tiny"), "error does not name the file: {err}");
    err
}

#[test]
fn loads_and_chains_shapes() {
    let dir = TempDir::new().unwrap();
    let net = Network::load(write(&dir, CARD, &tensors())).unwrap();
    assert_eq!(net.layers.len(), 4);
    assert_eq!(net.layers[0].out_shape, vec![2, 2, 2]);
    assert_eq!(net.output_shape(), &[3]);
    let out = net.forward(&[0.5; 16], 1).unwrap();
    assert_eq!(out.len(), 3);
}

#[test]
fn conv_matches_a_direct_loop() {
    let net = Network::from_card(&toml::from_str(CARD).unwrap(), &tensors(), Path::new("tiny.toml")).unwrap();
    let x: Vec<f64> = (0..32).map(|i| ((i * 7) % 11) as f64 / 5.0 - 1.0).collect();
    let mut out = Vec::new();
    net.layers[0].apply(&x, 2, &mut out, &mut crate::ops::Scratch::default());
    let t = tensors();
    let (w, b) = (&t["0.weight"].data, &t["0.bias"].data);
    for s in 0..2 {
        for co in 0..2 {
            for oy in 0..2 {
                for ox in 0..2 {
                    let mut acc = b[co];
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (iy, ix) =
                                (oy as isize * 2 + ky as isize - 1, ox as isize * 2 + kx as isize - 1);
                            if (0..4).contains(&iy) && (0..4).contains(&ix) {
                                acc += w[co * 9 + ky * 3 + kx] * x[s * 16 + iy as usize * 4 + ix as usize];
                            }
                        }
                    }
                    let got = out[s * 8 + co * 4 + oy * 2 + ox];
                    assert!((got - acc).abs() < 1e-12, "{got} vs {acc}");
                }
            }
        }
    }
}

#[test]
fn conv_transpose_is_the_adjoint_of_conv() {
    // <conv(x), y> = <x, conv_transpose(y)> for the same weights and no bias.
    let conv = CardBuilder::new("c", &[2, 5, 5], 3).conv2d(3, 3, 2, 1).network().unwrap();
    let Op::Conv2d { weight, .. } = &conv.layers[0].op else { unreachable!() };
    let mut t = TensorStore::new();
    t.insert("w".into(), Tensor::new(vec![3, 2, 3, 3], weight.clone()));
    let card: ModelCard = toml::from_str(
        r#"format = "gcert-model/1"
        name = "ct"
        weights = "ct.safetensors"
        input_shape = [3, 3, 3]
        [[layers]]
        op = "conv_transpose2d"
        weight = "w"
        stride = 2
        padding = 1"#,
    )
    .unwrap();
    let ct = Network::from_card(&card, &t, Path::new("ct.toml")).unwrap();
    assert_eq!(ct.output_shape(), &[2, 5, 5]);
    let x: Vec<f64> = (0..50).map(|i| ((i * 13) % 17) as f64 - 8.0).collect();
    let y: Vec<f64> = (0..27).map(|i| ((i * 5) % 7) as f64 - 3.0).collect();
    let Op::Conv2d { bias, .. } = &conv.layers[0].op else { unreachable!() };
    let cx: Vec<f64> = conv
        .forward(&x, 1)
        .unwrap()
        .iter()
        .zip(bias.iter().flat_map(|b| [*b; 9]))
        .map(|(v, b)| v - b)
        .collect();
    let cty = ct.forward(&y, 1).unwrap();
    let lhs: f64 = cx.iter().zip(&y).map(|(a, b)| a * b).sum();
    let rhs: f64 = x.iter().zip(&cty).map(|(a, b)| a * b).sum();
    assert!((lhs - rhs).abs() < 1e-9 * (1.0 + lhs.abs()), "{lhs} vs {rhs}");
}

#[test]
fn malformed_toml() {
    let err = load_err("format = \"gcert-model/1\"\nname = [", &tensors());
    assert!(err.contains("malformed model card"), "{err}");
}

#[test]
fn unknown_op() {
    let err = load_err(&CARD.replace("op = \"relu\"", "op = \"gelu\""), &tensors());
    assert!(err.contains("unknown variant `gelu`"), "{err}");
}

#[test]
fn wrong_format() {
    let err = load_err(&CARD.replace("gcert-model/1", "gcert-model/9"), &tensors());
    assert!(err.contains("unsupported format"), "{err}");
}

#[test]
fn missing_tensor() {
    let mut t = tensors();
    t.remove("0.bias");
    let err = load_err(CARD, &t);
    assert!(err.contains("layer 0 (conv2d)") && err.contains("'0.bias' is missing"), "{err}");
}

#[test]
fn extra_tensor() {
    let mut t = tensors();
    t.insert("stray.weight".into(), Tensor::new(vec![1], vec![1.0]));
    let err = load_err(CARD, &t);
    assert!(err.contains("no layer uses: 'stray.weight'"), "{err}");
}

#[test]
fn wrong_shape() {
    let mut t = tensors();
    t.insert("3.weight".into(), Tensor::new(vec![3, 9], vec![0.0; 27]));
    let err = load_err(CARD, &t);
    assert!(err.contains("layer 3 (linear)") && err.contains("found shape [8]"), "{err}");
    let mut t = tensors();
    t.insert("0.weight".into(), Tensor::new(vec![2, 3, 3, 3], vec![0.0; 54]));
    let err = load_err(CARD, &t);
    assert!(err.contains("'0.weight' has shape [2, 3, 3, 3], expected [_, 1, _, _]"), "{err}");
}

#[test]
fn non_finite_weights() {
    let mut t = tensors();
    t.get_mut("0.bias").unwrap().data[1] = f64::NAN;
    let err = load_err(CARD, &t);
    assert!(err.contains("'0.bias' has a non-finite value (NaN) at flat index 1"), "{err}");
}

#[test]
fn missing_weights_file() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("tiny.toml");
    std::fs::write(&path, CARD).unwrap();
    let err = Network::load(&path).unwrap_err().to_string();
    assert!(err.contains("tiny.safetensors does not exist"), "{err}");
}

#[test]
fn truncated_weights_file() {
    let dir = TempDir::new().unwrap();
    let path = write(&dir, CARD, &tensors());
    let w = dir.path().join("tiny.safetensors");
    let bytes = std::fs::read(&w).unwrap();
    std::fs::write(&w, &bytes[..bytes.len() - 10]).unwrap();
    let err = Network::load(&path).unwrap_err().to_string();
    assert!(err.contains("tiny.safetensors") && err.contains("not a valid safetensors file"), "{err}");
}

#[test]
fn missing_card() {
    let err = Network::load("/nonexistent/card.toml").unwrap_err().to_string();
    assert!(err.contains("/nonexistent/card.toml"), "{err}");
}

#[test]
fn non_finite_input_and_wrong_batch() {
    let net = Network::from_card(&toml::from_str(CARD).unwrap(), &tensors(), Path::new("tiny.toml")).unwrap();
    let mut x = vec![0.0; 16];
    x[3] = f64::INFINITY;
    assert!(net.forward(&x, 1).unwrap_err().to_string().contains("non-finite value (inf) at index 3"));
    assert!(net.forward(&[0.0; 15], 1).unwrap_err().to_string().contains("needs 16 values, found 15"));
}

#[test]
fn save_refuses_to_overwrite() {
    let dir = TempDir::new().unwrap();
    let (card, t) = CardBuilder::new("m", &[2], 1).linear(2).relu().build();
    let path = dir.path().join("m.toml");
    save_card(&path, &card, &t, Precision::F64, false).unwrap();
    let err = save_card(&path, &card, &t, Precision::F64, false).unwrap_err().to_string();
    assert!(err.contains("refusing to overwrite"), "{err}");
    let net = Network::load(&path).unwrap();
    assert_eq!(net, Network::from_card(&card, &t, &path).unwrap());
}

#[test]
fn concat_of_two_inputs() {
    let card: ModelCard = toml::from_str(
        r#"format = "gcert-model/1"
        name = "pair"
        weights = "pair.safetensors"
        input_shapes = [[1, 2, 2], [1, 2, 2]]
        [[layers]]
        op = "concat"
        axis = 0
        [[layers]]
        op = "flatten"
        [[layers]]
        op = "linear"
        weight = "w""#,
    )
    .unwrap();
    let mut t = TensorStore::new();
    t.insert("w".into(), Tensor::new(vec![1, 8], (0..8).map(|i| i as f64).collect()));
    let net = Network::from_card(&card, &t, Path::new("pair.toml")).unwrap();
    assert_eq!(net.input_len(), 8);
    assert_eq!(net.layers[0].out_shape, vec![2, 2, 2]);
    let x: Vec<f64> = (0..8).map(|i| i as f64).collect();
    assert_eq!(net.forward(&x, 1).unwrap(), vec![(0..8).map(|i| (i * i) as f64).sum::<f64>()]);

    // Along the last axis the inputs interleave row by row.
    let card2 = ModelCard { layers: vec![LayerSpec::Concat { axis: 2 }, LayerSpec::Flatten], ..card };
    let net = Network::from_card(&card2, &TensorStore::new(), Path::new("pair.toml")).unwrap();
    assert_eq!(net.output_shape(), &[8]);
    assert_eq!(net.forward(&x, 1).unwrap(), vec![0.0, 1.0, 4.0, 5.0, 2.0, 3.0, 6.0, 7.0]);
}

#[test]
fn a_scalar_input_is_broadcast_as_a_channel() {
    // A translator's inputs: an image [1, 2, 2] and a strength α [1], which becomes a constant channel.
    let card: ModelCard = toml::from_str(
        r#"format = "gcert-model/1"
        name = "translator"
        weights = "t.safetensors"
        input_shapes = [[1, 2, 2], [1]]
        [[layers]]
        op = "concat"
        [[layers]]
        op = "flatten""#,
    )
    .unwrap();
    let net = Network::from_card(&card, &TensorStore::new(), Path::new("t.toml")).unwrap();
    assert_eq!(net.input_len(), 5);
    assert_eq!(net.layers[0].out_shape, vec![2, 2, 2]);
    let x = [1.0, 2.0, 3.0, 4.0, 0.5];
    assert_eq!(net.forward(&x, 1).unwrap(), vec![1.0, 2.0, 3.0, 4.0, 0.5, 0.5, 0.5, 0.5]);
    // The scalar may come first too.
    let first = ModelCard { input_shapes: Some(vec![vec![1], vec![1, 2, 2]]), ..card.clone() };
    let net = Network::from_card(&first, &TensorStore::new(), Path::new("t.toml")).unwrap();
    assert_eq!(
        net.forward(&[0.5, 1.0, 2.0, 3.0, 4.0], 1).unwrap(),
        vec![0.5, 0.5, 0.5, 0.5, 1.0, 2.0, 3.0, 4.0]
    );
    // Only along channels, and a vector that is not a scalar is not broadcast.
    for (shapes, axis, want) in [
        (vec![vec![1, 2, 2], vec![1]], 1, "differ outside axis 1"),
        (vec![vec![1, 2, 2], vec![2]], 0, "differ outside axis 0"),
        (vec![vec![1], vec![1]], 0, "all scalars"),
    ] {
        let bad = ModelCard {
            input_shapes: Some(shapes),
            layers: vec![LayerSpec::Concat { axis }, LayerSpec::Flatten],
            ..card.clone()
        };
        let e = Network::from_card(&bad, &TensorStore::new(), Path::new("t.toml")).unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
    }
}
