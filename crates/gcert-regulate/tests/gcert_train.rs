//! `gcert-train` end to end: a two-step regulated run on the cached MNIST (written by `cargo xtask data`,
//! which `cargo xtask test` runs first) writes a card that gcert-core loads, and a report that records λ;
//! bad input is one clear error and exit code 2; nothing is overwritten without `--force`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn trainer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gcert-train")).args(args).output().expect("gcert-train runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn mnist() -> PathBuf {
    let p = gcert_torch::data::default_mnist_path();
    assert!(p.exists(), "{} is missing: run `cargo xtask data` (cargo xtask test does)", p.display());
    p
}

fn judge() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/trained/classifier-conv4-aug.toml")
}

#[test]
fn a_short_regulated_run_writes_a_loadable_card_and_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let card = dir.path().join("g.toml");
    let (card_s, data, judge) =
        (card.to_str().unwrap(), mnist().display().to_string(), judge().display().to_string());
    let args = [
        "gan",
        "--iters",
        "2",
        "--regulate",
        "50",
        "--regulate-pairs",
        "8",
        "--out",
        card_s,
        "--data",
        &data,
    ];
    let o = trainer(&[&args[..], &["--judge", &judge]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let log = stderr(&o);
    assert!(log.contains("continuity λ = 50") && log.contains("continuity "), "{log}");

    let net = gcert_core::Network::load(&card).unwrap();
    assert_eq!(net.input_len(), 50);
    assert_eq!(net.output_shape(), &[1, 32, 32]);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("g.json")).unwrap()).unwrap();
    assert_eq!(report["format"], "gcert-train-report/1");
    assert_eq!(report["regulate"]["lambda"], 50.0);
    assert_eq!(report["regulate"]["pairs"], 8);
    assert_eq!(report["config"]["gan"]["iters"], 2);
    let c = report["quality"]["mean_confidence"].as_f64().unwrap();
    assert!(c > 0.0 && c <= 1.0, "{c}");
    assert!(dir.path().join("g-samples.png").exists());

    // The same command again: refused, nothing touched; with --force it runs.
    let before = std::fs::read(&card).unwrap();
    let o = trainer(&args);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("exists; pass --force"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&card).unwrap(), before);
}

#[test]
fn bad_settings_are_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("g.toml");
    let out = out.to_str().unwrap();
    let cfg = dir.path().join("run.toml");
    std::fs::write(&cfg, "format = \"gcert-train/1\"\nmodel = \"vae\"\n[vae]\nepocs = 3\n").unwrap();
    let cfg = cfg.to_str().unwrap();
    let cases: [(&[&str], &str); 6] = [
        (&["gan", "--out", out, "--regulate", "-1"], "λ must be finite and non-negative"),
        (&["gan", "--out", out, "--regulate", "NaN"], "λ must be finite and non-negative"),
        (&["gan", "--out", out, "--epochs", "3"], "--epochs is for the vae"),
        (&["--out", out], "say which model to train"),
        (&["--config", cfg, "--out", out], "unknown field `epocs`"),
        (&["gan", "--out", "g.png"], "--out must name a .toml model card"),
    ];
    for (args, want) in cases {
        let o = trainer(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let e = stderr(&o);
        assert!(e.starts_with("error: ") && e.contains(want), "{args:?}: {e}");
        assert_eq!(e.lines().count(), 1, "one line: {e}");
    }
    assert!(!Path::new(out).exists());
}
