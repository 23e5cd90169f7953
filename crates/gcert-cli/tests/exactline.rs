//! The `exactline` and `eval` subcommands end to end, on the committed fixtures and on broken inputs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gcert_core::npy::write_npy;
use tempfile::TempDir;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn gcert(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gcert")).args(args).output().expect("gcert runs")
}

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs gcert expecting failure: exit code 2, one error line naming `needle`, and no panic.
fn fails_with(args: &[&str], needle: &str) {
    let out = gcert(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.starts_with("error: ") && stderr.contains(needle), "expected '{needle}' in: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A hand-written .npy header for dtypes gcert does not read.
fn write_raw_npy(path: &Path, descr: &str, shape: &str, data: &[u8]) {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({shape}), }}");
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn exactline_json_on_the_fixtures() {
    let f = fixtures();
    let out = gcert(&[
        "exactline",
        "--model",
        arg(&f.join("generator.toml")),
        "--then",
        arg(&f.join("classifier.toml")),
        "--from",
        arg(&f.join("latent_a.npy")),
        "--to",
        arg(&f.join("latent_b.npy")),
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ratios: Vec<f64> = v["ratios"].as_array().unwrap().iter().map(|r| r.as_f64().unwrap()).collect();
    let pieces = v["pieces"].as_u64().unwrap() as usize;
    assert_eq!(ratios.len(), pieces + 1);
    assert!(pieces > 10, "the fixture segment should cross many regions, got {pieces}");
    assert_eq!(ratios[0], 0.0);
    assert_eq!(ratios[pieces], 1.0);
    assert!(ratios.windows(2).all(|w| w[0] < w[1]));
    let outputs = v["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), pieces + 1);
    assert!(outputs.iter().all(|o| o.as_array().unwrap().len() == 10));
    assert!(v["time_ms"].as_f64().unwrap() >= 0.0);

    // The last output is the classifier's logits at the segment's end, as `eval` computes them.
    let dir = TempDir::new().unwrap();
    let image = dir.path().join("image.npy");
    let gen = gcert_core::Network::load(f.join("generator.toml")).unwrap();
    let b = gcert_core::npy::read_npy(&f.join("latent_b.npy")).unwrap().data;
    write_npy(&image, &[1, 16, 16], &gen.forward(&b, 1).unwrap()).unwrap();
    let out = gcert(&["eval", "--model", arg(&f.join("classifier.toml")), "--input", arg(&image), "--json"]);
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (x, y) in e["output"].as_array().unwrap().iter().zip(outputs[pieces].as_array().unwrap()) {
        let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
        assert!((x - y).abs() < 1e-9 * (1.0 + x.abs()), "{x} vs {y}");
    }
}

#[test]
fn exactline_text_output() {
    let f = fixtures();
    let out = gcert(&[
        "exactline",
        "--model",
        arg(&f.join("generator.toml")),
        "--from",
        arg(&f.join("latent_a.npy")),
        "--to",
        arg(&f.join("latent_b.npy")),
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let pieces: usize = lines.next().unwrap().strip_prefix("pieces: ").unwrap().parse().unwrap();
    let ratios = lines.next().unwrap();
    assert!(ratios.starts_with("ratios: [0.000000, ") && ratios.ends_with(", 1.000000]"), "{text}");
    // A terminal gets the first and last 8 ratios and the count of the rest, not thousands of numbers.
    assert!(pieces + 1 > 16, "the fixture chain is long: {pieces}");
    assert_eq!(ratios.matches(", ").count(), 16, "{ratios}");
    assert!(ratios.contains(&format!("… {} more …", pieces + 1 - 16)), "{ratios}");
}

#[test]
fn bad_inputs_exit_2_with_one_clear_error() {
    let f = fixtures();
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let gen = f.join("generator.toml");
    let a = f.join("latent_a.npy");

    // A missing file.
    fails_with(&["eval", "--model", arg(&d.join("nope.toml")), "--input", arg(&a)], "nope.toml");
    // Malformed TOML.
    std::fs::write(d.join("bad.toml"), "format = \"gcert-model/1\"\nlayers = [[").unwrap();
    fails_with(&["eval", "--model", arg(&d.join("bad.toml")), "--input", arg(&a)], "malformed model card");
    // An unknown op, naming the file.
    let card = std::fs::read_to_string(&gen).unwrap().replace("op = \"relu\"", "op = \"swish\"");
    std::fs::write(d.join("generator.toml"), card).unwrap();
    std::fs::copy(f.join("generator.safetensors"), d.join("generator.safetensors")).unwrap();
    fails_with(
        &["eval", "--model", arg(&d.join("generator.toml")), "--input", arg(&a)],
        "unknown variant `swish`",
    );
    // An input of the wrong length.
    write_npy(&d.join("short.npy"), &[7], &[0.0; 7]).unwrap();
    fails_with(&["eval", "--model", arg(&gen), "--input", arg(&d.join("short.npy"))], "must have shape [8]");
    // An input of the wrong dtype.
    write_raw_npy(&d.join("int.npy"), "<i8", "8,", &[0u8; 64]);
    fails_with(&["eval", "--model", arg(&gen), "--input", arg(&d.join("int.npy"))], "unsupported dtype");
    // A truncated .npy.
    write_raw_npy(&d.join("cut.npy"), "<f8", "8,", &[0u8; 40]);
    fails_with(&["eval", "--model", arg(&gen), "--input", arg(&d.join("cut.npy"))], "truncated");
    // NaN in an input.
    let mut nan = vec![0.0; 8];
    nan[2] = f64::NAN;
    write_npy(&d.join("nan.npy"), &[8], &nan).unwrap();
    fails_with(&["eval", "--model", arg(&gen), "--input", arg(&d.join("nan.npy"))], "non-finite value (NaN)");
    // A zero-length segment.
    fails_with(
        &["exactline", "--model", arg(&gen), "--from", arg(&a), "--to", arg(&a)],
        "segment start and end are equal",
    );
    // A composition whose shapes do not fit.
    fails_with(
        &[
            "exactline",
            "--model",
            arg(&gen),
            "--then",
            arg(&gen),
            "--from",
            arg(&a),
            "--to",
            arg(&f.join("latent_b.npy")),
        ],
        "outputs shape [1, 16, 16] but generator",
    );
}

/// `gcert … | head -1`: the reader goes away after one line; gcert leaves quietly (status 141, as a process
/// killed by SIGPIPE) instead of panicking.
#[test]
fn a_closed_stdout_is_a_quiet_exit_not_a_panic() {
    use std::io::Read;
    use std::process::Stdio;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    let g = fixtures.join("generator.toml");
    let z = fixtures.join("latent_a.npy");
    let mut child = Command::new(env!("CARGO_BIN_EXE_gcert"))
        .args(["directions", "--generator", g.to_str().unwrap(), "--latent", z.to_str().unwrap()])
        .args(["--samples", "8", "--name-geometric", "--threshold", "0.3", "--out"])
        .arg(std::env::temp_dir().join(format!("gcert-pipe-{}.npy", std::process::id())))
        .arg("--force")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the pipe before gcert writes anything (it computes for a while first).
    drop(child.stdout.take());
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let status = child.wait().unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(status.code(), Some(141), "{err}");
}

/// A model with several inputs takes a point of all its inputs concatenated (`[2048]` for the pair network's
/// two 32×32 images; the old code asked for the sum of the input ranks, 6 values). The pair network ends in a
/// sigmoid, which the exact chain refuses by name once the inputs are read; the same network without it gives
/// a chain that ends at the network's output at either end.
#[test]
fn exactline_on_a_multi_input_model_takes_all_inputs_concatenated() {
    use gcert_core::card::ModelCard;
    use gcert_core::tensors::{read_safetensors, Precision};

    let f = fixtures();
    let dir = TempDir::new().unwrap();
    let (a, b) = (dir.path().join("a.npy"), dir.path().join("b.npy"));
    let pa: Vec<f64> = (0..2048).map(|i| ((i as f64) * 0.013).sin().abs()).collect();
    let pb: Vec<f64> = (0..2048).map(|i| ((i as f64) * 0.007).cos().abs()).collect();
    write_npy(&a, &[2048], &pa).unwrap();
    write_npy(&b, &[2048], &pb).unwrap();
    let pair = arg(&f.join("trained/pair.toml")).to_string();
    fails_with(&["exactline", "--model", &pair, "--from", arg(&a), "--to", arg(&b)], "layer 9 (sigmoid)");
    let short = dir.path().join("short.npy");
    write_npy(&short, &[6], &[0.5; 6]).unwrap();
    fails_with(&["exactline", "--model", &pair, "--from", arg(&short), "--to", arg(&b)], "[2048]");

    // The pair network up to its score (no sigmoid): piecewise linear, two inputs.
    let text = std::fs::read_to_string(f.join("trained/pair.toml")).unwrap();
    let mut card: ModelCard = toml::from_str(&text).unwrap();
    assert_eq!(card.layers.pop().map(|l| l.op_name()), Some("sigmoid"));
    let tensors = read_safetensors(&f.join("trained").join(&card.weights)).unwrap();
    card.weights = "score.safetensors".into();
    let score = dir.path().join("score.toml");
    gcert_core::network::save_card(&score, &card, &tensors, Precision::F64, false).unwrap();
    let out = gcert(&["exactline", "--model", arg(&score), "--from", arg(&a), "--to", arg(&b), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["pieces"].as_u64().unwrap() >= 1);
    let outputs = v["outputs"].as_array().unwrap();
    let net = gcert_core::Network::load(&score).unwrap();
    assert_eq!(net.input_shapes().len(), 2);
    for (point, row) in [(&pa, &outputs[0]), (&pb, outputs.last().unwrap())] {
        let expected = net.forward(point, 1).unwrap();
        let got: Vec<f64> = row.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        assert_eq!(got.len(), expected.len());
        for (g, e) in got.iter().zip(&expected) {
            assert!((g - e).abs() <= 1e-9 * (1.0 + e.abs()), "{g} vs {e}");
        }
    }
}
