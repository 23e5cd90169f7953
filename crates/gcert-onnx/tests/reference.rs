//! Every committed VNN-COMP network imports, and its exact chain along a seeded random segment equals a
//! reference forward pass at every breakpoint: in f64 (onnxruntime on the model converted to double, or ONNX's
//! reference evaluator where onnxruntime has no double kernel) to 1e-9, and onnxruntime on the f32 model as
//! it is to 1e-4 (f32 rounding).

mod common;

use gcert_core::npy::{read_npy, write_npy};
use gcert_exactline::{ExactLine, Segment};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn vnncomp_networks_match_the_reference_at_every_breakpoint() {
    let py = common::python(&["onnx", "onnxruntime", "numpy"]);
    let mut files: Vec<_> = std::fs::read_dir(common::fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| gcert_onnx::is_onnx_path(p))
        .collect();
    files.sort();
    assert_eq!(files.len(), 20, "the fixtures hold the 20 VNN-COMP networks");
    let dir = tempfile::tempdir().unwrap();
    let (mut worst, mut worst32, mut total) = ((0.0, String::new()), (0.0, String::new()), 0);
    for (k, file) in files.iter().enumerate() {
        let net = gcert_onnx::load(file).unwrap_or_else(|e| panic!("{e}"));
        let n = net.input_len();
        let mut rng = ChaCha8Rng::seed_from_u64(k as u64);
        let a: Vec<f64> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let b: Vec<f64> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let seg = Segment::new(a, b).unwrap();
        let chain = ExactLine::for_networks(&[&net]).unwrap().chain(&seg).unwrap();
        let points: Vec<f64> = chain.ratios.iter().flat_map(|&t| seg.point(t)).collect();
        let (p, o, o32) = (dir.path().join("p.npy"), dir.path().join("o.npy"), dir.path().join("o32.npy"));
        write_npy(&p, &[chain.ratios.len(), n], &points).unwrap();
        let which = common::run_python(&py, &common::script("reference.py"), &[file, &p, &o, &o32]);
        let (reference, reference32) = (read_npy(&o).unwrap(), read_npy(&o32).unwrap());
        assert_eq!(reference.shape, [chain.ratios.len(), net.output_len()]);
        let rel = common::max_relative(&chain.values, &reference.data, chain.width);
        let rel32 = common::max_relative(&chain.values, &reference32.data, chain.width);
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        eprintln!(
            "{name}: {} breakpoints; largest relative difference {rel:.3e} against {} and {rel32:.3e} against \
             onnxruntime f32",
            chain.ratios.len(),
            which.trim()
        );
        assert!(rel <= 1e-9, "{name}: the chain differs from the f64 reference by {rel:e} (relative)");
        assert!(rel32 <= 1e-4, "{name}: the chain differs from onnxruntime (f32) by {rel32:e} (relative)");
        total += chain.ratios.len();
        if rel > worst.0 {
            worst = (rel, name.clone());
        }
        if rel32 > worst32.0 {
            worst32 = (rel32, name);
        }
    }
    eprintln!(
        "{total} breakpoints in all; largest relative difference {:.3e} ({}) in f64, {:.3e} ({}) against f32",
        worst.0, worst.1, worst32.0, worst32.1
    );
}
