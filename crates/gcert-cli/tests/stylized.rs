//! `--translator T.toml --image x.npy --strength E` (issue 10): `gcert certify`, `gcert bounds` and `gcert
//! mutate` along a style translator's strength on the committed fog translator and a real test digit, and
//! every way of asking badly: one `error:` line and exit code 2.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gcert_core::npy::write_npy;
use tempfile::TempDir;

fn gcert(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gcert")).args(args).output().expect("gcert runs")
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/trained")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit code 2, an `error: …` containing `needle`, no panic.
fn fails_with(o: &Output, needle: &str) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stderr: {e}");
    assert!(e.starts_with("error: ") && e.contains(needle), "expected '{needle}' in: {e}");
    assert!(!e.contains("panicked"), "{e}");
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", stderr(o));
    serde_json::from_slice(&o.stdout).expect("one JSON object")
}

#[test]
fn certify_bounds_and_mutate_take_a_translator() {
    let (t, x, n) =
        (fixture("translator-fog.toml"), fixture("latents/digit-3.npy"), fixture("classifier-conv4.toml"));
    let base = ["certify", "--translator", &t, "--image", &x, "--classifier", &n, "--json"];
    let cert = json(&gcert(&[&base[..], &["--strength", "1"]].concat()));
    for field in
        ["verdict", "label", "pieces", "max_tolerance", "violated", "fraction", "min_margin", "time_ms"]
    {
        assert!(cert.get(field).is_some(), "{field} missing: {cert}");
    }
    assert_eq!(cert["strength"], 1.0);
    assert_eq!(cert["translator"], t.as_str());
    let e_max = cert["max_tolerance"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&e_max), "in units of α: {e_max}");
    // The exact chain and the hybrid agree; every method answers.
    let exact = json(&gcert(&[&base[..], &["--strength", "1", "--exact-chain"]].concat()));
    assert_eq!(exact["verdict"], cert["verdict"]);
    assert!((exact["max_tolerance"].as_f64().unwrap() - e_max).abs() < 1e-9);
    for method in ["incomplete", "quantitative"] {
        let c = json(&gcert(&[&base[..], &["--strength", "1", "--method", method]].concat()));
        assert!(c["max_tolerance"].as_f64().unwrap() <= e_max + 1e-9, "{method}: {c}");
    }
    // Certified up to E_max: asking for less is certified.
    if e_max > 0.01 {
        let below = format!("{}", e_max * 0.5);
        let c = json(&gcert(&[&base[..], &["--strength", &below]].concat()));
        assert_eq!(c["verdict"], "certified", "{c}");
    }

    let dir = TempDir::new().unwrap();
    let out = dir.path().join("b.npy");
    let o = gcert(&[
        "bounds",
        "--translator",
        &t,
        "--image",
        &x,
        "--strength",
        "0.5",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    let b = json(&o);
    assert_eq!(b["pixels"], 1024);
    assert!(b["pieces"].as_u64().unwrap() >= 1 && b["mean_width"].as_f64().unwrap() > 0.0, "{b}");
    let arr = gcert_core::npy::read_npy(&out).unwrap();
    assert_eq!(arr.shape, vec![2, 1, 32, 32]);
    assert!(arr.data[..1024].iter().zip(&arr.data[1024..]).all(|(lo, hi)| lo <= hi));

    let png = dir.path().join("strip.png");
    let o = gcert(&[
        "mutate",
        "--translator",
        &t,
        "--image",
        &x,
        "--strength",
        "1",
        "--steps",
        "5",
        "--out",
        png.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let img = image::open(&png).unwrap();
    assert_eq!(
        (img.width(), img.height()),
        ((5 * 32 + 4) * 4, 32 * 4),
        "5 images of 32 px, 1 px between them, scale 4"
    );
    // Nothing is overwritten without --force.
    let again = gcert(&[
        "mutate",
        "--translator",
        &t,
        "--image",
        &x,
        "--strength",
        "1",
        "--out",
        png.to_str().unwrap(),
    ]);
    fails_with(&again, "exists");
}

#[test]
fn bad_translator_inputs_are_one_error_and_exit_code_2() {
    let dir = TempDir::new().unwrap();
    let (t, x, n) =
        (fixture("translator-fog.toml"), fixture("latents/digit-3.npy"), fixture("classifier-conv4.toml"));
    let wrong: PathBuf = dir.path().join("wrong.npy");
    write_npy(&wrong, &[1, 28, 28], &vec![0.0; 784]).unwrap();
    let nan: PathBuf = dir.path().join("nan.npy");
    let mut v = vec![0.0; 1024];
    v[17] = f64::NAN;
    write_npy(&nan, &[1, 32, 32], &v).unwrap();
    let (wrong, nan) = (wrong.to_str().unwrap(), nan.to_str().unwrap());
    let certify = |extra: &[&str]| gcert(&[&["certify", "--classifier", &n][..], extra].concat());
    // An image of the wrong shape, or with a NaN.
    fails_with(
        &certify(&["--translator", &t, "--image", wrong, "--strength", "1"]),
        "the image must have shape [1, 32, 32]",
    );
    fails_with(&certify(&["--translator", &t, "--image", nan, "--strength", "1"]), "non-finite");
    // A card that is not a translator: a generator, a classifier, the two-image pair network.
    for card in ["generator.toml", "classifier-conv2.toml", "pair.toml"] {
        fails_with(
            &certify(&["--translator", &fixture(card), "--image", &x, "--strength", "1"]),
            "not a style translator",
        );
    }
    // Strength ≤ 0 or not finite.
    for s in ["0", "-0.5", "nan", "inf"] {
        let o = certify(&["--translator", &t, "--image", &x, "--strength", s]);
        fails_with(&o, "--strength");
    }
    // --translator with --generator (or with a latent segment's options), or without its image or strength.
    let g = fixture("generator.toml");
    fails_with(
        &certify(&["--translator", &t, "--image", &x, "--strength", "1", "--generator", &g]),
        "cannot be used with",
    );
    fails_with(
        &certify(&["--translator", &t, "--image", &x, "--strength", "1", "--two-sided"]),
        "cannot be used with",
    );
    fails_with(&certify(&["--translator", &t, "--strength", "1"]), "--image");
    fails_with(&certify(&["--translator", &t, "--image", &x]), "--strength");
    fails_with(&certify(&["--image", &x, "--strength", "1"]), "--translator");
    // bounds and mutate refuse the same way.
    fails_with(
        &gcert(&["bounds", "--translator", &t, "--image", wrong, "--strength", "1"]),
        "the image must have shape",
    );
    fails_with(
        &gcert(&["bounds", "--translator", &fixture("pair.toml"), "--image", &x, "--strength", "1"]),
        "not a style translator",
    );
    let png = dir.path().join("s.png");
    let png = png.to_str().unwrap();
    fails_with(
        &gcert(&["mutate", "--translator", &t, "--image", &x, "--strength", "-1", "--out", png]),
        "--strength",
    );
    fails_with(
        &gcert(&[
            "mutate",
            "--translator",
            &t,
            "--image",
            &x,
            "--strength",
            "1",
            "--generator",
            &g,
            "--out",
            png,
        ]),
        "cannot be used with",
    );
    assert!(!Path::new(png).exists(), "no output is left behind");
}
