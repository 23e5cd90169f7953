//! `gcert continuity --judge` (sample quality) and `--directions` (the between-ends check) end to end on the
//! committed trained fixtures.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures").join(name)
}

fn gcert(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gcert")).args(args).output().expect("gcert runs")
}

fn json_of(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn judged_quality_of_the_trained_generator() {
    let g = fixture("trained/generator.toml");
    let judge = fixture("trained/classifier-conv4-aug.toml");
    let (g, judge) = (g.to_str().unwrap(), judge.to_str().unwrap());
    let base = ["continuity", "--generator", g, "--pairs", "5", "--chains", "0"];
    let v = json_of(&gcert(&[&base[..], &["--judge", judge, "--samples", "200", "--json"]].concat()));
    let q = &v["quality"];
    assert_eq!(q["samples"], 200, "{v}");
    let counts: Vec<u64> =
        q["class_counts"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap()).collect();
    assert_eq!((counts.len(), counts.iter().sum::<u64>()), (10, 200), "{q}");
    let (mean, confident) =
        (q["mean_confidence"].as_f64().unwrap(), q["confident_fraction"].as_f64().unwrap());
    assert!(0.1 < mean && mean <= 1.0 && (0.0..=1.0).contains(&confident), "{q}");
    let entropy = q["class_entropy_bits"].as_f64().unwrap();
    assert!((0.0..=10f64.log2() + 1e-9).contains(&entropy), "{q}");
    // The existing fields are all still there, and no judge means no quality.
    for field in ["c", "ratio", "evenness", "straightness", "pieces", "collapsed", "time_ms"] {
        assert!(v.get(field).is_some(), "{field} missing: {v}");
    }
    let plain = json_of(&gcert(&[&base[..], &["--json"]].concat()));
    assert!(plain["quality"].is_null(), "{plain}");

    let text = gcert(&[&base[..], &["--judge", judge, "--samples", "50"]].concat());
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.status.success() && stdout.contains("quality (judge ") && stdout.contains("50 samples"),
        "{stdout}"
    );
}

#[test]
fn a_judge_of_the_wrong_shape_is_refused() {
    let g = fixture("trained/generator.toml");
    let g = g.to_str().unwrap();
    let out = gcert(&["continuity", "--generator", g, "--pairs", "2", "--chains", "0", "--judge", g]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains("[1, 32, 32]") && stderr.contains("[50]"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
