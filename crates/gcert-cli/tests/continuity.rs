//! The `continuity` subcommand end to end on the committed fixture generator, and on bad arguments.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures").join(name)
}

fn gcert(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gcert")).args(args).output().expect("gcert runs")
}

#[test]
fn continuity_json_on_the_fixture_generator() {
    let g = fixture("generator.toml");
    let args = ["continuity", "--generator", g.to_str().unwrap(), "--pairs", "40", "--chains", "5", "--json"];
    let out = gcert(&args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["pairs"], 40);
    assert_eq!(v["ratio"]["count"], 40);
    assert_eq!(v["pieces"]["count"], 5);
    let (min, max, c) =
        (v["ratio"]["min"].as_f64().unwrap(), v["ratio"]["max"].as_f64().unwrap(), v["c"].as_f64().unwrap());
    assert!(0.0 < min && min <= max && c == max.max(1.0 / min), "{v}");
    assert!(v["pieces"]["min"].as_f64().unwrap() >= 1.0, "{v}");
    let e = v["evenness"]["max"].as_f64().unwrap();
    assert!(e >= v["evenness"]["median"].as_f64().unwrap() && e >= 0.0, "{v}");

    let again = gcert(&args);
    let w: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!((&v["c"], &v["evenness"], &v["pieces"]), (&w["c"], &w["evenness"], &w["pieces"]), "same seed");

    let text = gcert(&["continuity", "--generator", g.to_str().unwrap(), "--pairs", "10", "--chains", "0"]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(text.status.success() && stdout.contains("C (Def. 3): "), "{stdout}");
    assert!(stdout.contains("pieces per segment: none"), "{stdout}");
}

#[test]
fn continuity_refuses_bad_arguments_with_one_error_line() {
    let g = fixture("generator.toml");
    let g = g.to_str().unwrap();
    for (args, needle) in [
        (vec!["continuity", "--generator", g, "--pairs", "0", "--chains", "0"], "pairs must be positive"),
        (
            vec!["continuity", "--generator", g, "--pairs", "3", "--chains", "4"],
            "--chains (4) must not exceed",
        ),
        (vec!["continuity", "--generator", "missing.toml"], "cannot load model card missing.toml"),
    ] {
        let out = gcert(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.starts_with("error: ") && stderr.contains(needle), "expected '{needle}' in: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
