//! Unit tests on the committed VNN-COMP fixtures (the reference comparison is in `tests/reference.rs`).

use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/onnx").join(name)
}

#[test]
fn every_fixture_imports() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/onnx");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| crate::is_onnx_path(p))
        .collect();
    names.sort();
    for p in names {
        let t = std::time::Instant::now();
        let imp = crate::import(&p).unwrap_or_else(|e| panic!("{e}"));
        let net = crate::load(&p).unwrap();
        eprintln!(
            "{}: {} nodes -> {} layers {:?} in {:?}; {:?} -> {:?} {:?}",
            p.display(),
            imp.nodes,
            imp.card.layers.len(),
            imp.card.layers.iter().map(|l| l.op_name()).collect::<Vec<_>>(),
            t.elapsed(),
            net.input_shapes(),
            net.output_shape(),
            imp.precision
        );
    }
}
