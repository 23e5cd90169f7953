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

#[test]
fn between_ends_check_on_the_trained_generator() {
    let g = fixture("trained/generator.toml");
    let z = fixture("trained/latents/gan-z-3.npy");
    let (g, z) = (g.to_str().unwrap(), z.to_str().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let dirs = dir.path().join("dirs.npy");
    let dirs = dirs.to_str().unwrap();
    let made = json_of(&gcert(&["directions", "--generator", g, "--latent", z, "--out", dirs, "--json"]));
    let rows = made["global"]["rank"].as_u64().expect("directions reports its rank") as usize;
    assert!(rows > 0, "{made}");

    let base = ["continuity", "--generator", g, "--pairs", "3", "--chains", "0"];
    let check = ["--directions", dirs, "--latent", z, "--latent", z, "--between", "6", "--eps", "1.5"];
    let v = json_of(&gcert(&[&base[..], &check[..], &["--json"]].concat()));
    let b = &v["between"];
    assert_eq!((b["latents"].as_u64(), b["directions"].as_u64()), (Some(2), Some(rows as u64)), "{b}");
    assert_eq!((b["eps"].as_f64(), b["samples"].as_u64()), (Some(1.5), Some(6)), "{b}");
    let segments = b["segments"].as_u64().unwrap();
    assert_eq!(segments + b["skipped"].as_u64().unwrap(), 2 * rows as u64, "{b}");
    let (mut checked, mut passed) = (0, 0);
    for name in ["angle", "center_x", "center_y", "size"] {
        let p = &b["properties"][name];
        let (c, ok, strict) = (
            p["checked"].as_u64().unwrap(),
            p["passed"].as_u64().unwrap(),
            p["passed_strict"].as_u64().unwrap(),
        );
        assert_eq!(c, 6 * segments, "{name}: {p}");
        assert!(strict <= ok && ok <= c, "{name}: {p}");
        let fraction = p["fraction"].as_f64().unwrap();
        assert!((fraction - ok as f64 / c as f64).abs() < 1e-12, "{name}: {p}");
        // A generator trained for continuity keeps most intermediate rectangles between the ends.
        assert!(fraction > 0.8, "{name}: {p}");
        assert!(p["worst"].as_f64().unwrap() >= 0.0, "{name}: {p}");
        (checked, passed) = (checked + c, passed + ok);
    }
    assert_eq!((b["checked"].as_u64(), b["passed"].as_u64()), (Some(checked), Some(passed)), "{b}");
    assert!(json_of(&gcert(&[&base[..], &["--json"]].concat()))["between"].is_null());

    let text = gcert(&[&base[..], &check[..]].concat());
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(text.status.success(), "{}", String::from_utf8_lossy(&text.stderr));
    assert!(stdout.contains("between-ends check: ") && stdout.contains("  center_x: "), "{stdout}");

    let out = gcert(&[&base[..], &["--directions", dirs]].concat());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("--latent"), "{stderr}");
    // A digit image is no directions file for a 50-value latent.
    let digit = fixture("trained/latents/digit-3.npy");
    let out = gcert(&[&base[..], &["--directions", digit.to_str().unwrap(), "--latent", z]].concat());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with("error: ") && stderr.contains("directions file must have shape"), "{stderr}");
}
