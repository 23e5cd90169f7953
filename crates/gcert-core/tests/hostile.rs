//! Hostile and careless inputs to the loaders (issue 15): sizes that wrap or exceed the budget, degenerate
//! tensors, values that overflow inside the network, unbounded or malformed files. Every case is one error
//! naming the file (and the layer), found at load time, never a panic, an abort on allocation or a hang.

use std::path::{Path, PathBuf};

use gcert_core::limits::Limits;
use gcert_core::loader::LoadOptions;
use gcert_core::npy::{read_npy, read_npy_with};
use gcert_core::tensors::{write_safetensors, Precision, Tensor, TensorStore};
use gcert_core::{Error, Network};
use tempfile::TempDir;

const HEAD: &str = "format = \"gcert-model/1\"\nname = \"h\"\nweights = \"h.safetensors\"\n";

fn write(dir: &Path, card: &str, tensors: &[(&str, Vec<usize>, Vec<f64>)]) -> PathBuf {
    let path = dir.join("h.toml");
    std::fs::write(&path, format!("{HEAD}{card}")).unwrap();
    let mut t = TensorStore::new();
    for (name, shape, data) in tensors {
        t.insert(name.to_string(), Tensor::new(shape.clone(), data.clone()));
    }
    write_safetensors(&dir.join("h.safetensors"), &t, Precision::F64).unwrap();
    path
}

/// Loads a card expected to fail; returns the message, which must name the card.
fn load_err(card: &str, tensors: &[(&str, Vec<usize>, Vec<f64>)]) -> String {
    let dir = TempDir::new().unwrap();
    let path = write(dir.path(), card, tensors);
    let e = Network::load(&path).unwrap_err().to_string();
    assert!(e.contains("h.toml"), "the error does not name the card: {e}");
    assert!(!e.contains('\n'), "the error is not one line: {e}");
    e
}

fn ones(shape: &[usize]) -> (Vec<usize>, Vec<f64>) {
    (shape.to_vec(), vec![1.0; shape.iter().product()])
}

#[test]
fn an_input_shape_whose_product_wraps_is_refused() {
    // 2^32 · 2^32 wraps to 0 in usize; 5 · 3689348814741910324 wraps to 4.
    let (s, d) = ones(&[1, 1]);
    let e = load_err("input_shape = [4294967296, 4294967296]\n[[layers]]\nop = \"relu\"\n", &[]);
    assert!(e.contains("more values than a usize can count"), "{e}");
    let e = load_err("input_shape = [5, 3689348814741910324]\n[[layers]]\nop = \"relu\"\n", &[]);
    assert!(e.contains("more values than a usize can count"), "{e}");
    // A reshape target that wraps to the input's size.
    let e = load_err(
        "input_shape = [4]\n[[layers]]\nop = \"reshape\"\nshape = [5, 3689348814741910324]\n[[layers]]\nop = \"linear\"\nweight = \"w\"\n",
        &[("w", s, d)],
    );
    assert!(e.contains("layer 0 (reshape)") && e.contains("overflows"), "{e}");
}

#[test]
fn a_padding_that_wraps_is_refused() {
    // 2 · (2^63 − 1) + 4 wraps to 2 in a release build: the output would not depend on the input.
    let (s, d) = ones(&[1, 1, 3, 3]);
    let e = load_err(
        "input_shape = [1, 4, 4]\n[[layers]]\nop = \"conv2d\"\nweight = \"w\"\npadding = [9223372036854775807, 0]\n",
        &[("w", s, d)],
    );
    assert!(e.contains("layer 0 (conv2d)") && e.contains("overflows"), "{e}");
}

#[test]
fn a_huge_conv_transpose_stride_is_refused_at_once() {
    let (s, d) = ones(&[1, 1, 2, 2]);
    let start = std::time::Instant::now();
    let e = load_err(
        "input_shape = [1, 3, 3]\n[[layers]]\nop = \"conv_transpose2d\"\nweight = \"w\"\nstride = 9223372036854775807\n",
        &[("w", s.clone(), d.clone())],
    );
    assert!(e.contains("layer 0 (conv_transpose2d)") && e.contains("overflows"), "{e}");
    // A stride that does not overflow but declares a 300001×300001 output: over the budget, before allocating.
    let e = load_err(
        "input_shape = [1, 4, 4]\n[[layers]]\nop = \"conv_transpose2d\"\nweight = \"w\"\nstride = 100000\n",
        &[("w", s, d)],
    );
    assert!(e.contains("layer 0 (conv_transpose2d)") && e.contains("more than the limit"), "{e}");
    assert!(start.elapsed().as_secs() < 5);
}

#[test]
fn a_huge_declared_layer_is_refused_before_allocation() {
    // 2^20 × 2^20 image: 2^40 values for one sample would be requested by the first evaluation.
    let e = load_err("input_shape = [1, 1048576, 1048576]\n[[layers]]\nop = \"relu\"\n", &[]);
    assert!(e.contains("more than the limit of 268435456"), "{e}");
    // A pool whose window is enormous (allowed by PyTorch's padding rule) but whose work is not bounded.
    let e = load_err(
        "input_shape = [1, 16384, 16384]\n[[layers]]\nop = \"max_pool2d\"\nkernel = 16384\nstride = 2\npadding = 8192\n",
        &[],
    );
    assert!(e.contains("layer 0 (max_pool2d)") && e.contains("operations per sample"), "{e}");
    // The budget is overridable, and a smaller one is honoured everywhere.
    let dir = TempDir::new().unwrap();
    let (s, d) = ones(&[64, 64]);
    let path = write(
        dir.path(),
        "input_shape = [64]\n[[layers]]\nop = \"linear\"\nweight = \"w\"\n",
        &[("w", s, d)],
    );
    let small = LoadOptions { limits: Limits::default().with_max_elements(1000), ..LoadOptions::default() };
    let e = Network::load_with(&path, &small).unwrap_err().to_string();
    assert!(e.contains("the weights file has 4096 values, more than the limit of 1000"), "{e}");
    assert!(Network::load_with(&path, &LoadOptions::default()).is_ok());
}

#[test]
fn degenerate_tensors_are_refused() {
    let e = load_err(
        "input_shape = [4]\n[[layers]]\nop = \"linear\"\nweight = \"w\"\n",
        &[("w", vec![0, 4], vec![])],
    );
    assert!(e.contains("layer 0 (linear)") && e.contains("empty dimension"), "{e}");
    // Batch norm after a linear layer with no outputs: refused at the linear layer, never a division by zero.
    let e = load_err(
        "input_shape = [4]\n[[layers]]\nop = \"linear\"\nweight = \"w\"\n[[layers]]\nop = \"batch_norm\"\nrunning_mean = \"m\"\nrunning_var = \"v\"\n",
        &[("w", vec![0, 4], vec![]), ("m", vec![0], vec![]), ("v", vec![0], vec![])],
    );
    assert!(e.contains("layer 0 (linear)") && e.contains("empty dimension"), "{e}");
    let e = load_err(
        "input_shape = [1, 4, 4]\n[[layers]]\nop = \"conv2d\"\nweight = \"w\"\nbias = \"b\"\n",
        &[("w", vec![1, 1, 0, 0], vec![]), ("b", vec![1], vec![0.5])],
    );
    assert!(e.contains("layer 0 (conv2d)") && e.contains("kernel size must be at least 1"), "{e}");
    let e = load_err(
        "input_shape = [1, 4, 4]\n[[layers]]\nop = \"conv2d\"\nweight = \"w\"\n",
        &[("w", vec![0, 1, 3, 3], vec![])],
    );
    assert!(e.contains("layer 0 (conv2d)") && e.contains("empty dimension"), "{e}");
    // A batch norm whose folded scale overflows.
    let e = load_err(
        "input_shape = [1, 2, 2]\n[[layers]]\nop = \"batch_norm\"\nweight = \"g\"\nrunning_mean = \"m\"\nrunning_var = \"v\"\neps = 0.0\n",
        &[("g", vec![1], vec![1e300]), ("m", vec![1], vec![0.0]), ("v", vec![1], vec![1e-300])],
    );
    assert!(e.contains("layer 0 (batch_norm)") && e.contains("overflow f64"), "{e}");
}

#[test]
fn values_that_overflow_inside_the_network_are_an_error_naming_the_layer() {
    let dir = TempDir::new().unwrap();
    let path = write(
        dir.path(),
        "input_shape = [2]\n[[layers]]\nop = \"linear\"\nweight = \"a\"\n[[layers]]\nop = \"relu\"\n[[layers]]\nop = \"linear\"\nweight = \"b\"\n",
        &[("a", vec![2, 2], vec![1e200, 0.0, 0.0, 1.0]), ("b", vec![2, 2], vec![1e200, 0.0, 1.0, -1.0])],
    );
    let net = Network::load(&path).unwrap();
    // Finite weights, finite input: 1e200 · 1e200 overflows in layer 2.
    let e = net.forward(&[1.0, 1.0], 1).unwrap_err();
    assert!(matches!(e, Error::NonFinite { index: 2, .. }), "{e:?}");
    let e = e.to_string();
    assert!(e.starts_with("layer 2 (linear): produced a non-finite value (inf)"), "{e}");
    // In a batch the second sample overflows and the error says which.
    let e = net.forward(&[0.0, 0.0, 1.0, 0.0], 2).unwrap_err().to_string();
    assert!(e.contains("of sample 1"), "{e}");
    assert_eq!(net.forward(&[1e-300, 2.0], 1).unwrap().len(), 2);
}

#[test]
fn a_batch_evaluated_in_chunks_names_the_overflowing_sample_and_keeps_every_bit() {
    // 40,000 values at the widest layer: `forward_layers` runs 3 points per chunk, so a batch of 8 spans three
    // chunks, and the sample that overflows (6) is the first of the last one.
    let wide = 40_000;
    let dir = TempDir::new().unwrap();
    let a: Vec<f64> =
        (0..wide).flat_map(|k| [if k == 0 { 1e200 } else { 0.0 }, 1.0 + k as f64 * 1e-3]).collect();
    let b: Vec<f64> = (0..2 * wide).map(|k| if k == 0 { 1e200 } else { (k % 7) as f64 - 3.0 }).collect();
    let path = write(
        dir.path(),
        "input_shape = [2]\n[[layers]]\nop = \"linear\"\nweight = \"a\"\n[[layers]]\nop = \"relu\"\n[[layers]]\nop = \"linear\"\nweight = \"b\"\n",
        &[("a", vec![wide, 2], a), ("b", vec![2, wide], b)],
    );
    let net = Network::load(&path).unwrap();
    let layers: Vec<&gcert_core::Layer> = net.layers().iter().collect();
    assert_eq!(gcert_core::network::chunk_points(&layers, 2), 3);
    let mut batch: Vec<f64> = (0..8).flat_map(|k| [0.0, k as f64 - 3.5]).collect();
    let whole = net.forward(&batch, 8).unwrap();
    for k in 0..8 {
        assert_eq!(net.forward(&batch[2 * k..2 * k + 2], 1).unwrap(), whole[2 * k..2 * k + 2], "point {k}");
    }
    batch[12] = 1.0;
    let e = net.forward(&batch, 8).unwrap_err().to_string();
    assert!(e.starts_with("layer 2 (linear)") && e.contains("of sample 6"), "{e}");
}

#[test]
fn unreadable_kinds_of_file_are_refused_without_blocking() {
    let e = Network::load("/dev/zero").unwrap_err().to_string();
    assert!(e.contains("/dev/zero: a model card must be a regular file, found a device"), "{e}");
    let e = read_npy(Path::new("/dev/zero")).unwrap_err().to_string();
    assert!(e.contains("must be a regular file"), "{e}");
    let dir = TempDir::new().unwrap();
    let fifo = dir.path().join("card.toml");
    if std::process::Command::new("mkfifo").arg(&fifo).status().is_ok_and(|s| s.success()) {
        let e = Network::load(&fifo).unwrap_err().to_string();
        assert!(e.contains("found a FIFO"), "{e}");
    }
    // Weights that are a FIFO, named by an otherwise valid card.
    std::fs::write(
        dir.path().join("m.toml"),
        format!("{}input_shape = [2]\n[[layers]]\nop = \"relu\"\n", HEAD.replace("h.safetensors", "w.fifo")),
    )
    .unwrap();
    if std::process::Command::new("mkfifo").arg(dir.path().join("w.fifo")).status().is_ok_and(|s| s.success())
    {
        let e = Network::load(dir.path().join("m.toml")).unwrap_err().to_string();
        assert!(e.contains("a weights file must be a regular file, found a FIFO"), "{e}");
    }
}

/// A `.npy` v1 file with this header dictionary and these data bytes.
fn npy(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut header = dict.to_string();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

#[test]
fn npy_headers_are_checked_against_the_file_before_allocation() {
    let dir = TempDir::new().unwrap();
    let p = dir.path().join("a.npy");
    let one = 1.5f64.to_le_bytes();
    let cases: [(&str, &str); 6] = [
        ("{'descr': '<f8', 'fortran_order': False, 'shape': (100000000000, 1000000000), }", "overflows"),
        ("{'descr': '<f8', 'fortran_order': False, 'shape': (100000000000,), }", "more than the limit"),
        ("{'descr': '<f8', 'fortran_order': False, 'shape': (1000,), }", "truncated"),
        ("{'descr': '<f8', 'fortran_order': False, 'shape': (), }", "ok"),
        ("{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", "unsupported dtype '<i8'"),
        ("{'descr': '<f8', 'fortran_order': maybe, 'shape': (1,), }", "not a valid .npy file"),
    ];
    for (dict, want) in cases {
        std::fs::write(&p, npy(dict, &one)).unwrap();
        match read_npy(&p) {
            Ok(a) => assert_eq!((want, a.data), ("ok", vec![1.5])),
            Err(e) => {
                let e = e.to_string();
                assert!(e.contains(want) && e.contains("a.npy"), "{dict}: {e}");
            }
        }
    }
    // Fortran order is read back in row-major order; big-endian f4 is decoded.
    let data: Vec<u8> = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&p, npy("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", &data)).unwrap();
    assert_eq!(read_npy(&p).unwrap().data, vec![1.0, 3.0, 5.0, 2.0, 4.0, 6.0]);
    std::fs::write(
        &p,
        npy("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", &2.5f32.to_be_bytes()),
    )
    .unwrap();
    assert_eq!(read_npy(&p).unwrap().data, vec![2.5]);
    // A smaller budget refuses a file the default accepts.
    std::fs::write(&p, npy("{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }", &[0; 32])).unwrap();
    assert!(read_npy(&p).is_ok());
    let e = read_npy_with(&p, &Limits::default().with_max_elements(3)).unwrap_err().to_string();
    assert!(e.contains("more than the limit of 3"), "{e}");
}
