//! The pipeline end to end on small synthetic models: records for every image × mutation × classifier, a
//! resumed run that loses nothing and redoes nothing, and the run folder's refusals.

use std::path::Path;

use gcert_core::builder::CardBuilder;
use gcert_core::Network;
use gcert_evaluate::output::parse_results;
use gcert_evaluate::{
    finish, manifest, Evaluation, Images, Mode, Mutation, Record, RunDir, Settings, Status,
};
use serde_json::json;

/// A generator of a soft rectangle whose latent moves rotate, translate and scale it (so named mutations
/// exist), through a random mixing.
fn generator() -> Network {
    gcert_directions::synthetic::geometric(6, 3).network().unwrap()
}

fn classifier(name: &str, seed: u64) -> Network {
    CardBuilder::new(name, &[1, 32, 32], seed).flatten().linear(12).relu().linear(3).network().unwrap()
}

/// Images the generator makes (so they invert), labelled by the first classifier; one more image far from
/// anything the generator makes (all ones would be outside its reach), to be skipped.
fn images(g: &Network) -> Images {
    let c = classifier("c1", 5);
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for s in 0..4 {
        let z: Vec<f64> = (0..6).map(|i| ((i * 7 + s * 3) % 5) as f64 * 0.03 - 0.06).collect();
        let x = g.forward(&z, 1).unwrap();
        let out = c.forward(&x, 1).unwrap();
        labels.push((0..3).max_by(|&a, &b| out[a].total_cmp(&out[b])).unwrap());
        pixels.extend(x);
    }
    // A checkerboard of 0 and 1: no latent of this generator comes close.
    pixels.extend((0..1024).map(|i| ((i + i / 32) % 2) as f64));
    labels.push(0);
    Images {
        shape: [1, 32, 32],
        pixels,
        labels,
        names: (0..5).map(|i| format!("synthetic[{i}]")).collect(),
        source: "synthetic".into(),
    }
}

fn evaluation(dir: &Path, frames: usize) -> Evaluation {
    let g = generator();
    let d = dir.join("d.npy");
    if !d.exists() {
        let values: Vec<f64> = (0..12).map(|i| ((i * 5) % 7) as f64 - 3.0).collect();
        gcert_core::npy::write_npy(&d, &[2, 6], &values).unwrap();
    }
    let mutations: Vec<Mutation> = vec![
        format!("file:{}:1:0.8", d.display()).parse().unwrap(),
        "rotation:2".parse().unwrap(),
        "translate-x:0.04".parse().unwrap(),
    ];
    let settings =
        Settings { restarts: 3, iters: 40, prior: 1e-6, max_mse: 1e-3, frames, ..Settings::default() };
    let mut eval = Evaluation::new(
        g.clone(),
        None,
        vec![classifier("c1", 5), classifier("c2", 9)],
        images(&g),
        mutations,
        settings,
    )
    .unwrap();
    // The rectangle moves geometrically near its rest pose: measure the mutations over a small span.
    eval.mutation_params = gcert_directions::MutationParams {
        geometry: gcert_directions::geometry::GeometryParams { step: 0.02, ..Default::default() },
        span: 0.05,
        ..Default::default()
    };
    eval
}

fn run(dir: &Path, mode: Mode) -> gcert_evaluate::Result<Vec<Record>> {
    let eval = evaluation(dir, 5);
    let m = manifest(&eval, &json!("synthetic"));
    let out = dir.join("run");
    let records = RunDir::open(&out, mode, &m, &eval.input_files())?.run(&eval, &|_| {})?;
    finish(&out, &m, &records, 0.0)?;
    Ok(records)
}

/// A record without its timings (which differ between runs), as JSON.
fn untimed(r: &Record) -> serde_json::Value {
    serde_json::to_value(Record { time_ms: 0.0, setup_ms: 0.0, precision: None, ..r.clone() }).unwrap()
}

/// JSON values equal up to the last bits of their numbers (a float read back from a results file may differ
/// from the one computed in its last bit).
fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-12 * (1.0 + x.abs().max(y.abs()))
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

#[test]
fn every_key_once_and_a_resumed_run_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let full = run(dir, Mode::Fresh).unwrap();
    let eval = evaluation(dir, 5);
    assert_eq!(
        full.iter().map(|r| r.key.clone()).collect::<Vec<_>>(),
        eval.keys(),
        "one record per key, in order"
    );
    assert_eq!(full.len(), 5 * 3 * 2);
    // The checkerboard is skipped for its reconstruction error, with the reason, never certified.
    for r in full.iter().filter(|r| r.image == 4) {
        assert_eq!(r.status, Status::Skipped, "{r:?}");
        assert!(r.reason.as_deref().unwrap().contains("above --max-mse"), "{r:?}");
        assert!(r.max_tolerance.is_none() && r.counterexample.is_none());
    }
    for r in full.iter().filter(|r| r.image < 4) {
        assert!(r.reconstruction_mse < 1e-3, "{r:?}");
        match r.status {
            Status::Certified => {
                assert_eq!(r.max_tolerance, Some(r.amount));
                assert!(r.violated.is_empty() && r.counterexample.is_none());
            }
            Status::Violated => {
                let cx = r.counterexample.as_ref().expect("a violation has a counterexample");
                assert!(cx.predicted != r.label && cx.margin <= 0.0);
                assert!(dir.join("run").join(&cx.image).is_file());
                assert!(r.max_tolerance.unwrap() < r.amount && !r.violated.is_empty());
                assert!(r.violated.iter().any(|v| v[0] <= cx.at && cx.at <= v[1]), "{r:?}");
            }
            // Not available: the reason says so; nothing was certified.
            Status::NotAvailable => {
                assert!(r.reason.as_deref().unwrap().starts_with("mutation not available at this image"));
                assert!(r.max_tolerance.is_none() && r.strip.is_none());
            }
            s => panic!("unexpected {s:?}"),
        }
        if r.kind == "file" {
            assert!(r.status.evaluated(), "{r:?}");
        }
    }
    assert!(full.iter().any(|r| r.status == Status::Certified));
    // The generator rotates and translates its rectangle: the named mutations are found, in their units.
    for r in full.iter().filter(|r| r.image < 4 && r.kind != "file") {
        assert!(r.status.evaluated(), "{r:?}");
        assert!(r.per_latent_unit.unwrap() > 0.0 && r.linearity.unwrap() > 0.9, "{r:?}");
        assert!(r.max_tolerance.unwrap() <= r.amount);
    }
    let results = dir.join("run/results.jsonl");
    let text = std::fs::read_to_string(&results).unwrap();
    assert_eq!(text.lines().count(), full.len());
    assert!(dir.join("run/summary.json").is_file() && dir.join("run/report.html").is_file());

    // Interrupted: a kill after 7 complete lines and part of the 8th; the summary and report never written.
    let lines: Vec<&str> = text.lines().collect();
    let mut cut = lines[..7].join("\n");
    cut.push('\n');
    cut.push_str(&lines[7][..lines[7].len() / 2]);
    std::fs::write(&results, cut).unwrap();
    std::fs::remove_file(dir.join("run/summary.json")).unwrap();
    std::fs::remove_file(dir.join("run/report.html")).unwrap();
    // A fresh run refuses the folder; a resumed one finishes it.
    let err = run(dir, Mode::Fresh).unwrap_err().to_string();
    assert!(err.contains("holds another run's files") && err.contains("--resume"), "{err}");
    let resumed = run(dir, Mode::Resume).unwrap();
    assert_eq!(resumed.len(), full.len());
    for (a, b) in full.iter().zip(&resumed) {
        assert!(same(&untimed(a), &untimed(b)), "resumed record differs:\n{a:?}\n{b:?}");
    }
    // The first 7 lines are kept as they were; the cut line was redone; every key is in the file exactly once.
    let after = std::fs::read_to_string(&results).unwrap();
    assert!(after.starts_with(&lines[..7].join("\n")));
    let parsed = parse_results(after.as_bytes(), &results).unwrap();
    assert_eq!(parsed.len(), full.len());
    let mut keys: Vec<String> = parsed.iter().map(|r| r.key.clone()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), full.len());
    // The cut line stays in the file (a results file is only ever appended to) and is ignored when read.
    assert_eq!(after.lines().count(), full.len() + 1);
    // Resuming a finished run does nothing and loses nothing.
    let again = run(dir, Mode::Resume).unwrap();
    assert_eq!(again.len(), full.len());
    assert_eq!(std::fs::read_to_string(&results).unwrap(), after);
}

#[test]
fn the_run_folder_refuses_other_runs_and_other_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    run(dir, Mode::Fresh).unwrap();
    // Other settings (frames) under --resume: refused, naming the field; nothing appended.
    let before = std::fs::read(dir.join("run/results.jsonl")).unwrap();
    let eval = evaluation(dir, 7);
    let m = manifest(&eval, &json!("synthetic"));
    let err = RunDir::open(&dir.join("run"), Mode::Resume, &m, &eval.input_files()).unwrap_err().to_string();
    assert!(err.contains("'settings' differs"), "{err}");
    assert_eq!(std::fs::read(dir.join("run/results.jsonl")).unwrap(), before);
    // The same settings but an input rewritten in place (the direction file): refused, naming the contents.
    let eval = evaluation(dir, 5);
    let m = manifest(&eval, &json!("synthetic"));
    let d = dir.join("d.npy");
    let original = std::fs::read(&d).unwrap();
    let values: Vec<f64> = (0..12).map(|i| ((i * 3) % 7) as f64 - 3.0).collect();
    gcert_core::npy::write_npy(&d, &[2, 6], &values).unwrap();
    let err = RunDir::open(&dir.join("run"), Mode::Resume, &m, &eval.input_files()).unwrap_err().to_string();
    assert!(err.contains("'contents' differs"), "{err}");
    assert_eq!(std::fs::read(dir.join("run/results.jsonl")).unwrap(), before);
    std::fs::write(&d, original).unwrap();
    assert!(
        RunDir::open(&dir.join("run"), Mode::Resume, &m, &eval.input_files()).is_ok(),
        "the same bytes resume"
    );
    // --force starts over and leaves other files alone.
    std::fs::write(dir.join("run/notes.txt"), "mine").unwrap();
    let out = dir.join("run");
    let records = RunDir::open(&out, Mode::Force, &m, &[]).unwrap();
    assert!(records.existing.is_empty());
    assert_eq!(std::fs::read_to_string(dir.join("run/notes.txt")).unwrap(), "mine");
    assert!(!dir.join("run/summary.json").exists());
    // A results file that is something else is never appended to.
    std::fs::write(dir.join("other.jsonl"), "{\"a\": 1}\n{\"b\": 2}\n").unwrap();
    let err = parse_results(b"{\"a\": 1}\n{\"b\": 2}\n", &dir.join("other.jsonl")).unwrap_err().to_string();
    assert!(err.contains("not a gcert evaluate result"), "{err}");
}

#[test]
fn bad_inputs_are_refused_before_anything_runs() {
    let g = generator();
    let imgs = images(&g);
    let c = || vec![classifier("c1", 5)];
    let m = || vec!["local:0,0,16,32:0.5".parse::<Mutation>().unwrap()];
    let s = Settings::default;
    let err = |r: gcert_evaluate::Result<Evaluation>| match r {
        Ok(e) => panic!(
            "accepted {:?} {:?}",
            e.images.shape,
            e.mutations.iter().map(|m| m.mutation.to_string()).collect::<Vec<_>>()
        ),
        Err(e) => e.to_string(),
    };
    // Wrong shape for the generator.
    let wrong = Images { shape: [1, 16, 64], ..imgs.clone() };
    assert!(err(Evaluation::new(g.clone(), None, c(), wrong, m(), s())).contains("outputs"));
    // Outside the generator's range.
    let mut bright = imgs.clone();
    bright.pixels[1030] = 1.5;
    let e = err(Evaluation::new(g.clone(), None, c(), bright, m(), s()));
    assert!(
        e.contains("image 1 has value 1.5 at pixel 6, outside the generator's output range [0, 1]"),
        "{e}"
    );
    // A label the classifier does not have.
    let mut labels = imgs.clone();
    labels.labels[2] = 7;
    assert!(err(Evaluation::new(g.clone(), None, c(), labels, m(), s())).contains("label 7 of image 2"));
    // A region outside the image, a mutation given twice, no mutation.
    let outside = vec!["local:20,0,16,8:0.5".parse::<Mutation>().unwrap()];
    assert!(
        err(Evaluation::new(g.clone(), None, c(), imgs.clone(), outside, s())).contains("reaches outside")
    );
    let twice = vec![m()[0].clone(), m()[0].clone()];
    assert!(err(Evaluation::new(g.clone(), None, c(), imgs.clone(), twice, s())).contains("given twice"));
    assert!(err(Evaluation::new(g.clone(), None, c(), imgs.clone(), vec![], s()))
        .contains("at least one --mutation"));
    let bad = Settings { max_mse: 0.0, ..s() };
    assert!(err(Evaluation::new(g, None, c(), imgs, m(), bad)).contains("--max-mse"));
}

#[test]
fn npy_images_and_integer_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let x = tmp.path().join("x.npy");
    gcert_core::npy::write_npy(&x, &[3, 1, 2, 2], &[0.0; 12]).unwrap();
    // int64 labels as numpy writes them.
    let y = tmp.path().join("y.npy");
    let mut header = "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }".to_string();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    for v in [2i64, 0, 9] {
        bytes.extend(v.to_le_bytes());
    }
    std::fs::write(&y, &bytes).unwrap();
    let imgs = Images::from_npy(&x, &y).unwrap();
    assert_eq!(imgs.labels, vec![2, 0, 9]);
    assert_eq!(imgs.shape, [1, 2, 2]);
    assert_eq!(imgs.names[2], "x.npy[2]");
    // Counts that differ, and a batch of the wrong rank.
    let y2 = tmp.path().join("y2.npy");
    gcert_core::npy::write_npy(&y2, &[2], &[1.0, 2.0]).unwrap();
    let e = Images::from_npy(&x, &y2).unwrap_err().to_string();
    assert!(e.contains("holds 2 labels but") && e.contains("holds 3 images"), "{e}");
    let x3 = tmp.path().join("x3.npy");
    gcert_core::npy::write_npy(&x3, &[3, 4], &[0.0; 12]).unwrap();
    let e = Images::from_npy(&x3, &y).unwrap_err().to_string();
    assert!(e.contains("[n, C, H, W]"), "{e}");
    let y3 = tmp.path().join("y3.npy");
    gcert_core::npy::write_npy(&y3, &[3], &[1.0, 2.5, 0.0]).unwrap();
    assert!(Images::from_npy(&x, &y3).unwrap_err().to_string().contains("not a whole number"));
}

#[test]
fn the_mnist_test_split_is_the_one_the_classifiers_were_tested_on() {
    let file = gcert_evaluate::images::default_mnist_path();
    if !file.exists() {
        // `cargo xtask test` fetches the data first; a bare `cargo test` without it has nothing to compare.
        eprintln!("{} is missing; run `cargo xtask data`", file.display());
        return;
    }
    let imgs = Images::mnist_test(&file, 26).unwrap();
    // fixtures/trained/README.md: the first test image of each digit and its index in the test split.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/trained/latents");
    for (digit, index) in [(0, 25), (1, 0), (2, 11), (3, 7), (4, 6), (5, 1), (6, 12), (7, 4), (8, 5), (9, 9)]
    {
        assert_eq!(imgs.labels[index], digit);
        let committed = gcert_core::npy::read_npy(&root.join(format!("digit-{digit}.npy"))).unwrap();
        let d = committed.data.iter().zip(imgs.image(index)).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(d < 1e-6, "digit {digit}: {d}");
    }
}

#[test]
fn local_mutations_move_only_their_region() {
    // Pixels outside columns 0..4 depend on only 3 of the 6 latent directions: a region with local directions.
    let g = gcert_directions::synthetic::separable(6, 3, 8, [0, 0, 4, 8], 2).network().unwrap();
    let z = vec![0.1, -0.2, 0.3, 0.0, 0.2, -0.1];
    let x = g.forward(&z, 1).unwrap();
    let c = CardBuilder::new("c", &[1, 8, 8], 4).flatten().linear(8).relu().linear(2).network().unwrap();
    let out = c.forward(&x, 1).unwrap();
    let label = usize::from(out[1] > out[0]);
    let imgs = Images {
        shape: [1, 8, 8],
        pixels: x,
        labels: vec![label],
        names: vec!["x".into()],
        source: "s".into(),
    };
    let m = vec!["local:0,0,4,8:0.5".parse::<Mutation>().unwrap()];
    let settings =
        Settings { restarts: 2, iters: 40, prior: 1e-8, max_mse: 1e-4, frames: 3, ..Settings::default() };
    let eval = Evaluation::new(g, None, vec![c], imgs, m, settings).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let records = eval.evaluate_image(0, &|_| true, tmp.path()).unwrap();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert!(r.status.evaluated(), "{r:?}");
    assert_eq!((r.unit.as_str(), r.kind.as_str()), ("latent", "local"));
    assert!(tmp.path().join("0-m0-strip.png").is_file());
}
