//! `--mutation NAME --amount A` (issue 9): `gcert certify`, `gcert directions` and `gcert mutate` along the
//! direction that realises a named transform, on the piecewise-linear generator of geometric mutations of
//! `gcert_directions::synthetic` (a rectangle's first-order rotation, translations and scaling, mixed), and
//! every way of asking for one badly: one `error:` line and exit code 2.

use std::path::Path;
use std::process::{Command, Output};

use gcert_core::network::save_card;
use gcert_core::npy::{read_npy, write_npy};
use gcert_core::tensors::Precision;
use gcert_directions::synthetic;
use tempfile::TempDir;

fn gcert(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gcert")).args(args).output().expect("gcert runs")
}

fn classifier() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/trained/classifier-conv4.toml")
        .to_string_lossy()
        .into_owned()
}

/// The geometric generator (latent 16) and the zero latent, written into `dir`.
fn setup(dir: &Path) -> (String, String) {
    let g = synthetic::geometric(16, 3);
    let card = dir.join("geometric.toml");
    save_card(&card, &g.card, &g.tensors, Precision::F64, false).unwrap();
    let z = dir.join("z.npy");
    write_npy(&z, &[16], &[0.0; 16]).unwrap();
    (card.to_string_lossy().into_owned(), z.to_string_lossy().into_owned())
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit code 2, the first line `error: …` containing `needle`, no panic.
fn fails_with(o: &Output, needle: &str) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stderr: {e}");
    let first = e.lines().next().unwrap_or("");
    assert!(first.starts_with("error: ") && first.contains(needle), "expected '{needle}' in: {e}");
    assert!(!e.contains("panicked"), "{e}");
}

/// Exit code 2 and an `error: …` from the option parser, which names what is missing on a later line.
fn refused(o: &Output, needle: &str) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stderr: {e}");
    assert!(e.starts_with("error: ") && e.contains(needle), "expected '{needle}' in: {e}");
}

// The generator's transforms are first order, so they are verified over a short span (±0.05 latent units:
// about ±2.2° of rotation at its 44.7°/unit).
const SPAN: &str = "0.05";

#[test]
fn certify_along_a_named_rotation_reports_the_amount_in_degrees() {
    let dir = TempDir::new().unwrap();
    let (g, z) = setup(dir.path());
    let c = classifier();
    let args = [
        "certify",
        "--generator",
        &g,
        "--latent",
        &z,
        "--classifier",
        &c,
        "--mutation",
        "rotation",
        "--amount",
        "2",
        "--span",
        SPAN,
        "--json",
    ];
    let out = gcert(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let m = &v["mutation"];
    assert_eq!(m["transform"], "rotation");
    assert_eq!(m["unit"], "degrees");
    assert_eq!(m["amount"], 2.0);
    let per = m["per_latent_unit"].as_f64().unwrap();
    assert!((35.0..60.0).contains(&per), "{m}");
    assert!(m["linearity"].as_f64().unwrap() > 0.99 && m["purity"].as_f64().unwrap() < 0.1, "{m}");
    // Every field of a plain certificate is still there, and the largest tolerance comes back in degrees.
    for field in
        ["verdict", "label", "pieces", "max_tolerance", "violated", "fraction", "min_margin", "time_ms"]
    {
        assert!(v.get(field).is_some(), "{field} missing: {v}");
    }
    let max_t = v["max_tolerance"].as_f64().unwrap();
    let max_amount = v["max_amount"].as_f64().unwrap();
    assert!((max_amount - max_t * per).abs() <= 1e-9 * (1.0 + max_amount), "{v}");
    assert!(max_amount <= 2.0 + 1e-9);
    if v["verdict"] == "certified" {
        assert!((max_amount - 2.0).abs() < 1e-9, "{v}");
    } else {
        assert!(v["counterexample"].is_object(), "{v}");
    }
    // Two-sided: the smallest margin may be reached at a negative t.
    assert!(v["min_margin"]["t"].as_f64().unwrap() >= -1.0);

    // The text output names the mutation and the largest amount.
    let out = gcert(&args[..args.len() - 1]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("mutation: 2 degrees of rotation each way"), "{text}");
    assert!(text.contains("max amount: ") && text.contains(" degrees"), "{text}");

    // More than the verified span allows is refused, with the largest amount that fits.
    let mut far = args.to_vec();
    far[10] = "20";
    fails_with(&gcert(&far), "beyond the ±0.05 over which the direction was verified");
}

#[test]
fn directions_and_mutate_use_the_named_direction() {
    let dir = TempDir::new().unwrap();
    let (g, z) = setup(dir.path());
    let d = dir.path().join("tx.npy");
    let ds = d.to_string_lossy().into_owned();
    let out = gcert(&[
        "directions",
        "--generator",
        &g,
        "--latent",
        &z,
        "--mutation",
        "translate-x",
        "--span",
        SPAN,
        "--out",
        &ds,
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["mutation"]["transform"], "translate-x");
    assert!(v["mutation"]["per_latent_unit"].as_f64().unwrap() > 0.5, "{v}");
    let row = read_npy(&d).unwrap();
    assert_eq!(row.shape, vec![1, 16]);
    let norm: f64 = row.data.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-12);

    let png = dir.path().join("strip.png");
    let ps = png.to_string_lossy().into_owned();
    let out = gcert(&[
        "mutate",
        "--generator",
        &g,
        "--latent",
        &z,
        "--mutation",
        "translate-x",
        "--amount",
        "0.02",
        "--span",
        SPAN,
        "--out",
        &ps,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let img = image::open(&png).unwrap();
    assert_eq!(img.height(), 32 * 4);
    // It has no shear: nothing is drawn or certified along a direction that does something else.
    fails_with(
        &gcert(&[
            "directions",
            "--generator",
            &g,
            "--latent",
            &z,
            "--mutation",
            "shear",
            "--span",
            SPAN,
            "--out",
            &ds,
            "--force",
        ]),
        "no direction realises shear cleanly",
    );
}

#[test]
fn bad_mutation_requests_are_one_error_each() {
    let dir = TempDir::new().unwrap();
    let (g, z) = setup(dir.path());
    let c = classifier();
    let base = ["certify", "--generator", &g, "--latent", &z, "--classifier", &c];
    let with = |extra: &[&str]| -> Output {
        let mut a: Vec<&str> = base.to_vec();
        a.extend_from_slice(extra);
        gcert(&a)
    };
    fails_with(&with(&["--mutation", "spin", "--amount", "2"]), "unknown transform 'spin'");
    let o = with(&["--mutation", "spin", "--amount", "2"]);
    assert!(stderr(&o).contains("rotation, translate-x, translate-y, scale, shear"), "{}", stderr(&o));
    for amount in ["0", "-3", "nan", "inf", "-inf", "abc"] {
        let flag = format!("--amount={amount}");
        let o = with(&["--mutation", "rotation", &flag]);
        assert_eq!(o.status.code(), Some(2), "{amount}: {}", stderr(&o));
        assert!(stderr(&o).starts_with("error: ") && stderr(&o).contains("--amount"), "{}", stderr(&o));
    }
    let d = dir.path().join("d.npy");
    write_npy(&d, &[16], &[1.0; 16]).unwrap();
    let ds = d.to_string_lossy().into_owned();
    fails_with(
        &with(&["--mutation", "rotation", "--amount", "2", "--direction", &ds]),
        "cannot be used with",
    );
    refused(&with(&["--mutation", "rotation"]), "--amount");
    refused(&with(&["--amount", "2"]), "--mutation");
    // A "generator" whose output is not an image: the classifier itself (10 scores).
    let image_latent = dir.path().join("x.npy");
    write_npy(&image_latent, &[1, 32, 32], &[0.5; 1024]).unwrap();
    let x = image_latent.to_string_lossy().into_owned();
    let o = gcert(&[
        "certify",
        "--generator",
        &c,
        "--latent",
        &x,
        "--classifier",
        &c,
        "--mutation",
        "rotation",
        "--amount",
        "2",
    ]);
    // The composition is refused first or the search says the output is not an image; either way one error.
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).starts_with("error: ") && !stderr(&o).contains("panicked"), "{}", stderr(&o));
    let o = gcert(&[
        "directions",
        "--generator",
        &c,
        "--latent",
        &x,
        "--mutation",
        "rotation",
        "--out",
        &ds,
        "--force",
    ]);
    fails_with(&o, "not an image");
}
