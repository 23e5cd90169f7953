//! The whole `gcert` process on a small problem: start, load two model cards, chain a segment of about 100
//! pieces, print JSON, exit — against the bare start of the same binary (`gcert --version`), measured side by
//! side. The target is under 20 ms for the whole process.
//!
//! The segment runs from `fixtures/latent_a.npy` 6 % of the way to `fixtures/latent_b.npy` through
//! `fixtures/generator.toml` then `fixtures/classifier.toml` (103 pieces).

use std::path::{Path, PathBuf};
use std::process::Command;

use criterion::{criterion_group, criterion_main, Criterion};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_gcert")).args(args).output().expect("gcert runs");
    assert!(out.status.success(), "gcert {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

fn bench_startup(c: &mut Criterion) {
    let fixtures = root().join("fixtures");
    let dir = tempfile::tempdir().expect("temporary folder");
    let a = gcert_core::npy::read_npy(&fixtures.join("latent_a.npy")).expect("latent a");
    let b = gcert_core::npy::read_npy(&fixtures.join("latent_b.npy")).expect("latent b");
    let near: Vec<f64> = a.data.iter().zip(&b.data).map(|(a, b)| a + 0.06 * (b - a)).collect();
    let to = dir.path().join("near.npy");
    gcert_core::npy::write_npy(&to, &a.shape, &near).expect("write the segment end");
    let path = |p: &Path| p.to_str().expect("a UTF-8 path").to_string();
    let (g, n, from, to) = (
        path(&fixtures.join("generator.toml")),
        path(&fixtures.join("classifier.toml")),
        path(&fixtures.join("latent_a.npy")),
        path(&to),
    );
    let args = ["exactline", "--model", &g, "--then", &n, "--from", &from, "--to", &to, "--json"];
    let json: serde_json::Value = serde_json::from_str(&run(&args)).expect("JSON");
    eprintln!("the segment has {} pieces", json["pieces"]);

    let mut group = c.benchmark_group("startup");
    group.sample_size(30);
    group.bench_function("version", |bench| bench.iter(|| run(&["--version"])));
    group.bench_function("exactline_100_pieces", |bench| bench.iter(|| run(&args)));
    group.finish();
}

criterion_group!(benches, bench_startup);
criterion_main!(benches);
