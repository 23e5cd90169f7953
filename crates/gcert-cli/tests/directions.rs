//! End-to-end tests of `gcert directions` and `gcert mutate` on generators built in the test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gcert_core::network::save_card;
use gcert_core::npy::{read_npy, write_npy};
use gcert_core::tensors::Precision;
use gcert_directions::synthetic::{self, Generator};

fn gcert(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gcert")).args(args).current_dir(dir).output().expect("gcert runs")
}

fn save(g: &Generator, dir: &Path) -> PathBuf {
    let path = dir.join(format!("{}.toml", g.card.name));
    save_card(&path, &g.card, &g.tensors, Precision::F64, false).unwrap();
    path
}

fn latent(dir: &Path, name: &str, values: &[f64]) -> PathBuf {
    let path = dir.join(name);
    write_npy(&path, &[values.len()], values).unwrap();
    path
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit code 2 with one error line that contains `needle`, and no panic.
fn fails_with(o: &Output, needle: &str) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stderr: {e}");
    assert!(e.starts_with("error: ") && e.contains(needle), "expected '{needle}' in: {e}");
    assert!(!e.contains("panicked"), "{e}");
}

#[test]
fn global_directions_recover_the_planted_rank_and_write_unit_rows() {
    let dir = tempfile::tempdir().unwrap();
    let g = save(&synthetic::low_rank(30, 4, 8, 2), dir.path());
    let z = latent(dir.path(), "z.npy", &[0.2; 30]);
    let o = gcert(
        &[
            "directions",
            "--generator",
            g.to_str().unwrap(),
            "--latent",
            z.to_str().unwrap(),
            "--samples",
            "3",
            "--out",
            "d.npy",
            "--json",
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["global"]["rank"], 4);
    assert_eq!(v["samples"], 3);
    assert_eq!(v["global"]["rpca"]["converged"], true);
    let d = read_npy(&dir.path().join("d.npy")).unwrap();
    assert_eq!(d.shape, vec![4, 30]);
    for row in d.data.chunks(30) {
        let norm: f64 = row.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-9);
    }
    // The text report, and the refusal to overwrite.
    let o = gcert(
        &["directions", "--generator", g.to_str().unwrap(), "--latent", "z.npy", "--out", "d.npy"],
        dir.path(),
    );
    fails_with(&o, "d.npy: already exists; pass --force");
    let o = gcert(
        &["directions", "--generator", g.to_str().unwrap(), "--latent", "z.npy", "--out", "d.npy", "--force"],
        dir.path(),
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        out.contains("directions: rank 4 |") && out.contains("wrote 4 directions (4 × 30) to d.npy"),
        "{out}"
    );
}

#[test]
fn local_directions_report_their_leak_before_and_after_projection() {
    let dir = tempfile::tempdir().unwrap();
    let g = save(&synthetic::separable(30, 5, 16, [4, 4, 8, 8], 4), dir.path());
    let z = latent(dir.path(), "z.npy", &[0.05; 30]);
    let base = ["directions", "--generator", g.to_str().unwrap(), "--latent", z.to_str().unwrap()];
    let o =
        gcert(&[&base[..], &["--region", "4,4,8,8", "--out", "local.npy", "--json"]].concat(), dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["local"]["background"]["rank"], 5);
    assert_eq!(v["local"]["region_values"], 64);
    let dirs = v["local"]["directions"].as_array().unwrap();
    assert!(!dirs.is_empty());
    for d in dirs {
        assert!(d["leak_after"]["first_order"].as_f64().unwrap() < 1e-5, "{d}");
        assert!(d["leak_before"]["first_order"].as_f64().unwrap() > 0.1, "{d}");
    }
    assert_eq!(read_npy(&dir.path().join("local.npy")).unwrap().shape, vec![dirs.len(), 30]);
    // The same region as a mask file gives the same directions.
    let mask: Vec<f64> = (0..256)
        .map(|i| f64::from(u8::from((4..12).contains(&(i % 16)) && (4..12).contains(&(i / 16)))))
        .collect();
    write_npy(&dir.path().join("m.npy"), &[16, 16], &mask).unwrap();
    let o = gcert(&[&base[..], &["--mask", "m.npy", "--out", "local2.npy"]].concat(), dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("region: 64 of 256 image values"));
    assert_eq!(
        read_npy(&dir.path().join("local.npy")).unwrap(),
        read_npy(&dir.path().join("local2.npy")).unwrap()
    );
    // The paper's null space (robust PCA's low-rank part) is available and recorded; here it is exact too.
    let o = gcert(
        &[&base[..], &["--region", "4,4,8,8", "--null-space", "low-rank", "--out", "l3.npy", "--json"]]
            .concat(),
        dir.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let w: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((&v["local"]["null_space"], &w["local"]["null_space"]), (&"gram".into(), &"low-rank".into()));
    for d in w["local"]["directions"].as_array().unwrap() {
        assert!(d["leak_after"]["first_order"].as_f64().unwrap() < 1e-5, "{d}");
    }
}

#[test]
fn mutate_writes_a_strip_and_refuses_to_overwrite_it() {
    let dir = tempfile::tempdir().unwrap();
    let g = save(&synthetic::dcgan(10, 1).unwrap(), dir.path());
    let z = latent(dir.path(), "z.npy", &[0.3; 10]);
    let d: Vec<f64> = (0..20).map(|i| if i == 13 { 1.0 } else { 0.0 }).collect();
    write_npy(&dir.path().join("dirs.npy"), &[2, 10], &d).unwrap();
    let args = [
        "mutate",
        "--generator",
        g.to_str().unwrap(),
        "--latent",
        z.to_str().unwrap(),
        "--direction",
        "dirs.npy:1",
        "--eps",
        "2",
        "--steps",
        "5",
        "--scale",
        "2",
        "--out",
        "s.png",
    ];
    let o = gcert(&args, dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let img = image::open(dir.path().join("s.png")).unwrap().to_luma8();
    assert_eq!(img.dimensions(), (5 * 64 + 4 * 2, 64));
    fails_with(&gcert(&args, dir.path()), "s.png: already exists; pass --force");
    let o = gcert(&[&args[..], &["--force", "--two-sided"]].concat(), dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn bad_inputs_are_one_clear_error_each() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let g = save(&synthetic::low_rank(6, 2, 4, 1), p);
    let g = g.to_str().unwrap();
    latent(p, "z.npy", &[0.1; 6]);
    latent(p, "short.npy", &[0.1; 5]);
    latent(p, "nan.npy", &[0.1, f64::NAN, 0.0, 0.0, 0.0, 0.0]);
    latent(p, "zero.npy", &[0.0; 6]);
    write_npy(&p.join("empty_mask.npy"), &[4, 4], &[0.0; 16]).unwrap();
    let dirs =
        |extra: &[&str]| gcert(&[&["directions", "--generator", g, "--out", "o.npy"][..], extra].concat(), p);
    fails_with(&dirs(&["--latent", "short.npy"]), "short.npy: the latent point must have shape [6]");
    fails_with(&dirs(&["--latent", "nan.npy"]), "nan.npy: non-finite value (NaN) at flat index 1");
    fails_with(&dirs(&["--latent", "missing.npy"]), "missing.npy");
    fails_with(&dirs(&["--latent", "z.npy", "--region", "0,0,4,4"]), "covers the whole image");
    fails_with(&dirs(&["--latent", "z.npy", "--region", "3,3,2,2"]), "reaches outside the 4×4 image");
    fails_with(&dirs(&["--latent", "z.npy", "--mask", "empty_mask.npy"]), "empty_mask.npy: unusable region");
    fails_with(&dirs(&["--latent", "z.npy", "--lambda=-1"]), "lambda must be positive");
    // Naming needs an object: no pixel is brighter than 2.
    let dark = save(&synthetic::dcgan(6, 2).unwrap(), p);
    let o = gcert(
        &[
            "directions",
            "--generator",
            dark.to_str().unwrap(),
            "--latent",
            "z.npy",
            "--out",
            "o.npy",
            "--threshold",
            "2",
            "--name-geometric",
        ],
        p,
    );
    fails_with(&o, "no pixel above the threshold 2");
    // A generator clamped flat at z: nothing moves, globally or in a region.
    let mut flat = synthetic::low_rank(6, 2, 4, 1);
    flat.card.name = "flat".into();
    flat.card.weights = "flat.safetensors".into();
    flat.tensors.get_mut("1.bias").unwrap().data.fill(-10.0);
    flat.card.layers.insert(2, gcert_core::card::LayerSpec::Clamp { min: Some(0.0), max: None });
    let flat = save(&flat, p);
    let flat_args =
        ["directions", "--generator", flat.to_str().unwrap(), "--latent", "z.npy", "--out", "o.npy"];
    fails_with(
        &gcert(&flat_args, p),
        "flat.toml: the image does not change along any latent direction at z.npy (rank 0)",
    );
    fails_with(&gcert(&[&flat_args[..], &["--region", "0,0,2,2"]].concat(), p), "the region does not change");
    assert!(!p.join("o.npy").exists());
    let mutate = |extra: &[&str]| {
        gcert(
            &[&["mutate", "--generator", g, "--latent", "z.npy", "--eps", "1", "--out", "s.png"][..], extra]
                .concat(),
            p,
        )
    };
    fails_with(&mutate(&["--direction", "zero.npy"]), "the direction is zero");
    fails_with(&mutate(&["--direction", "short.npy"]), "short.npy: a direction file must have shape [6]");
    fails_with(&mutate(&["--direction", "z.npy:3"]), "row 3 does not exist");
    fails_with(&mutate(&["--direction", "z.npy", "--steps", "1"]), "at least 2 steps");
    assert!(!p.join("s.png").exists());
}

#[test]
fn geometric_directions_are_named_with_calibrations_and_an_independence_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let g = save(&synthetic::geometric(16, 3), dir.path());
    let z = latent(dir.path(), "z.npy", &[0.0; 16]);
    let args = [
        "directions",
        "--generator",
        g.to_str().unwrap(),
        "--latent",
        z.to_str().unwrap(),
        "--max-iter",
        "100000",
        "--name-geometric",
    ];
    let o = gcert(&[&args[..], &["--out", "g.npy", "--json"]].concat(), dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> =
        v["geometry"]["directions"].as_array().unwrap().iter().filter_map(|d| d["name"].as_str()).collect();
    for expected in ["rotation", "translate-x", "translate-y", "scale"] {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
    let cal =
        v["geometry"]["directions"].as_array().unwrap().iter().find(|d| d["name"] == "translate-x").unwrap();
    assert_eq!(cal["calibration"]["unit"], "pixels");
    assert!(cal["calibration"]["per_unit_step"].as_f64().unwrap().abs() > 0.1);
    // Table 2: translation leaves rotation and scale alone, and rotation and scaling leave each other alone.
    let cells = &v["geometry"]["independence"]["cells"];
    assert_eq!(cells[0][1]["independent"], true, "{cells}");
    assert_eq!(cells[0][2]["independent"], true, "{cells}");
    assert_eq!(cells[1][2]["independent"], true, "{cells}");
    assert_eq!(cells[2][1]["independent"], true, "{cells}");
    assert!(cells[1][1]["ratio"].is_null());
    // The text report carries the same table.
    let o = gcert(&[&args[..], &["--out", "g2.npy"]].concat(), dir.path());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.contains("independence (row's direction leaves column's property unchanged"), "{out}");
    assert!(out.contains("rotation") && out.contains("degrees"), "{out}");
}

#[test]
fn global_directions_need_no_image_output() {
    // A generator with a flat, non-square output: global directions work, a region does not.
    let dir = tempfile::tempdir().unwrap();
    let mut g = synthetic::low_rank(8, 2, 4, 5);
    g.card.layers.pop(); // drop the reshape to [1, 4, 4]
    let mut w = g.tensors["1.weight"].clone();
    w.shape = vec![16, 2];
    g.tensors.insert("1.weight".into(), w);
    let path = save(&g, dir.path());
    let z = latent(dir.path(), "z.npy", &[0.1; 8]);
    let args = ["directions", "--generator", path.to_str().unwrap(), "--latent", z.to_str().unwrap()];
    let o = gcert(&[&args[..], &["--out", "d.npy"]].concat(), dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("output [16]"));
    let mut g2 = g.clone();
    g2.card.name = "odd".into();
    g2.card.weights = "odd.safetensors".into();
    let mut w = g2.tensors["1.weight"].clone();
    w.shape = vec![15, 2];
    w.data.truncate(30);
    g2.tensors.insert("1.weight".into(), w);
    let mut b = g2.tensors["1.bias"].clone();
    b.shape = vec![15];
    b.data.truncate(15);
    g2.tensors.insert("1.bias".into(), b);
    let path2 = save(&g2, dir.path());
    let o = gcert(
        &[
            "directions",
            "--generator",
            path2.to_str().unwrap(),
            "--latent",
            "z.npy",
            "--region",
            "0,0,1,1",
            "--out",
            "e.npy",
        ],
        dir.path(),
    );
    fails_with(&o, "outputs 15 values, not an image");
}
