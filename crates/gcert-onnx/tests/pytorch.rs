//! The PyTorch path: small random models (conv, transposed conv, batch norm, max and average pooling, leaky
//! relu, hard tanh, input normalisation, sigmoid/tanh/clamp; a classifier and a generator) exported in f64 with
//! `torch.onnx.export` in the project's venv, with and without the exporter's constant folding; gcert's forward
//! pass on the imported network matches PyTorch's to 1e-9 relative on random inputs, directly and through the
//! card `gcert import` writes.

mod common;

use gcert_core::npy::read_npy;
use gcert_core::tensors::Precision;
use gcert_core::Network;

#[test]
fn exported_pytorch_models_match_pytorch() {
    let py = common::python(&["torch", "onnx", "numpy"]);
    let dir = tempfile::tempdir().unwrap();
    let names = common::run_python(&py, &common::script("export_torch.py"), &[dir.path()]);
    let names: Vec<&str> = names.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    assert_eq!(names.len(), 6, "{names:?}");
    for name in names {
        let onnx = dir.path().join(format!("{name}.onnx"));
        let x = read_npy(&dir.path().join(format!("{name}-x.npy"))).unwrap();
        let y = read_npy(&dir.path().join(format!("{name}-y.npy"))).unwrap();
        let net = gcert_onnx::load(&onnx).unwrap_or_else(|e| panic!("{e}"));
        let n = x.shape[0];
        assert_eq!(x.data.len(), n * net.input_len(), "{name}");
        let out = net.forward(&x.data, n).unwrap();
        let rel = common::max_relative(&out, &y.data, net.output_len());
        eprintln!(
            "{name}: {} layers ({}), largest relative difference to PyTorch {rel:.3e}",
            net.layers().len(),
            net.layers().iter().map(|l| l.name()).collect::<Vec<_>>().join(", ")
        );
        assert!(rel <= 1e-9, "{name}: gcert differs from PyTorch by {rel:e} (relative)");

        // The written card computes exactly the same: its weights are stored in f32 only when every value is an
        // f32 (PyTorch initialises in f32, so a model without merged layers is), else in f64.
        let card = dir.path().join(format!("{name}.toml"));
        let imported = gcert_onnx::import_to(&onnx, &card, false).unwrap();
        let f32_exact = imported.tensors.values().all(|t| t.data.iter().all(|&v| (v as f32) as f64 == v));
        let expected = if f32_exact { Precision::F32 } else { Precision::F64 };
        assert_eq!(imported.precision, expected, "{name}");
        let reloaded = Network::load(&card).unwrap();
        assert_eq!(reloaded.forward(&x.data, n).unwrap(), out, "{name}");
    }
}
