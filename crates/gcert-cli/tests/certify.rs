//! The `certify` and `bounds` subcommands end to end: JSON fields, files written, batch runs, bad inputs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gcert_core::builder::CardBuilder;
use gcert_core::card::LayerSpec;
use gcert_core::network::save_card;
use gcert_core::npy::{read_npy, write_npy};
use gcert_core::tensors::Precision;
use serde_json::Value;
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

fn json_of(out: &Output) -> Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

/// Runs gcert expecting failure: exit code 2, one error line naming `needle`, and no panic.
fn fails_with(args: &[&str], needle: &str) {
    let out = gcert(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.starts_with("error: ") && stderr.contains(needle), "expected '{needle}' in: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The fixture models and latent segment, with extra arguments.
fn certify_args<'a>(f: &'a Path, eps: &'a str, extra: &[&'a str]) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "certify".into(),
        "--generator".into(),
        arg(&f.join("generator.toml")).into(),
        "--classifier".into(),
        arg(&f.join("classifier.toml")).into(),
        "--latent".into(),
        arg(&f.join("latent_a.npy")).into(),
        "--direction".into(),
        arg(&f.join("direction.npy")).into(),
        "--eps".into(),
        eps.into(),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn run(args: &[String]) -> Output {
    gcert(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The prediction at t = 0 (the default label), by `gcert eval` on the generated image.
fn prediction_at_origin(f: &Path, dir: &Path) -> u64 {
    let g = gcert_core::Network::load(f.join("generator.toml")).unwrap();
    let z = read_npy(&f.join("latent_a.npy")).unwrap().data;
    let image = dir.join("origin.npy");
    write_npy(&image, &[1, 16, 16], &g.forward(&z, 1).unwrap()).unwrap();
    let out = gcert(&["eval", "--model", arg(&f.join("classifier.toml")), "--input", arg(&image), "--json"]);
    json_of(&out)["argmax"].as_u64().unwrap()
}

#[test]
fn certify_json_has_every_field_for_every_method() {
    let f = fixtures();
    let dir = TempDir::new().unwrap();
    let label = prediction_at_origin(&f, dir.path());
    for method in ["complete", "incomplete", "quantitative"] {
        let v = json_of(&run(&certify_args(&f, "1.0", &["--method", method, "--json"])));
        assert_eq!(v["method"], method);
        assert_eq!(v["verdict"], "certified", "{v}");
        assert_eq!(v["label"].as_u64(), Some(label));
        assert!(v["pieces"].as_u64().unwrap() >= 1);
        assert_eq!(v["max_tolerance"].as_f64(), Some(1.0));
        assert_eq!(v["violated"], serde_json::json!([]));
        assert_eq!(v["fraction"]["lower"].as_f64(), Some(1.0));
        assert_eq!(v["fraction"]["upper"].as_f64(), Some(1.0));
        assert!(v["counterexample"].is_null());
        assert!(v["min_margin"]["margin"].as_f64().unwrap() > 0.0);
        assert!(v["time_ms"].as_f64().unwrap() >= 0.0);
    }
    let complete = json_of(&run(&certify_args(&f, "1.0", &["--json"])));
    assert!(complete["pieces"].as_u64().unwrap() > 10, "the fixture segment crosses many regions");
}

#[test]
fn a_violation_has_a_counterexample_and_writes_its_image() {
    let f = fixtures();
    let dir = TempDir::new().unwrap();
    let label = prediction_at_origin(&f, dir.path());
    let other = (label + 1) % 10;
    let cx = dir.path().join("cx.npy");
    let other = other.to_string();
    let args = certify_args(&f, "2.0", &["--label", &other, "--json", "--counterexample-out", arg(&cx)]);
    let v = json_of(&run(&args));
    assert_eq!(v["verdict"], "violated");
    assert_eq!(v["max_tolerance"].as_f64(), Some(0.0));
    let c = &v["counterexample"];
    assert!(c["margin"].as_f64().unwrap() <= 0.0);
    assert_ne!(c["predicted"].as_u64().unwrap().to_string(), other);
    let t = c["t"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&t));
    let image = read_npy(&cx).unwrap();
    assert_eq!(image.shape, vec![1, 16, 16]);
    // The image is the generator's output at t: evaluating it gives the reported prediction.
    let out = gcert(&["eval", "--model", arg(&f.join("classifier.toml")), "--input", arg(&cx), "--json"]);
    assert_eq!(json_of(&out)["argmax"], c["predicted"]);
    // No overwriting without --force.
    let again: Vec<&str> = args.iter().map(String::as_str).collect();
    fails_with(&again, "already exists; pass --force");
    let mut forced = args.clone();
    forced.push("--force".into());
    json_of(&run(&forced));
}

#[test]
fn two_sided_text_output() {
    let f = fixtures();
    let out = run(&certify_args(&f, "0.5", &["--two-sided"]));
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let keys: Vec<&str> = text.lines().map(|l| l.split(':').next().unwrap()).collect();
    assert_eq!(
        keys,
        ["verdict", "label", "pieces", "max tolerance", "kept fraction", "smallest margin", "time"],
        "{text}"
    );
    assert!(text.starts_with("verdict: certified\n"), "{text}");
}

#[test]
fn pixel_space_segment() {
    let f = fixtures();
    let dir = TempDir::new().unwrap();
    let (a, b) = (dir.path().join("a.npy"), dir.path().join("b.npy"));
    let av: Vec<f64> = (0..256).map(|i| (i % 16) as f64 / 16.0).collect();
    let bv: Vec<f64> = (0..256).map(|i| (i / 16) as f64 / 16.0).collect();
    write_npy(&a, &[1, 16, 16], &av).unwrap();
    write_npy(&b, &[256], &bv).unwrap();
    let classifier = f.join("classifier.toml");
    for method in ["complete", "incomplete", "quantitative"] {
        let out = gcert(&[
            "certify",
            "--classifier",
            arg(&classifier),
            "--from",
            arg(&a),
            "--to",
            arg(&b),
            "--method",
            method,
            "--json",
        ]);
        let v = json_of(&out);
        assert!(["certified", "violated", "unknown"].contains(&v["verdict"].as_str().unwrap()));
        let (lo, hi) = (v["fraction"]["lower"].as_f64().unwrap(), v["fraction"]["upper"].as_f64().unwrap());
        assert!(0.0 <= lo && lo <= hi && hi <= 1.0);
        let m = v["max_tolerance"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&m));
    }
}

#[test]
fn pair_network_with_a_reference_input() {
    let dir = TempDir::new().unwrap();
    let (mut card, tensors) = CardBuilder::new("pair", &[2, 16, 16], 3)
        .conv2d(2, 4, 4, 0)
        .relu()
        .flatten()
        .linear(8)
        .relu()
        .linear(1)
        .sigmoid()
        .build();
    card.input_shape = None;
    card.input_shapes = Some(vec![vec![1, 16, 16], vec![1, 16, 16]]);
    card.layers.insert(0, LayerSpec::Concat { axis: 0 });
    let pair = dir.path().join("pair.toml");
    save_card(&pair, &card, &tensors, Precision::F64, false).unwrap();
    let reference = dir.path().join("ref.npy");
    write_npy(&reference, &[1, 16, 16], &[0.5; 256]).unwrap();
    let f = fixtures();
    let (g, z, d) = (f.join("generator.toml"), f.join("latent_a.npy"), f.join("direction.npy"));
    let base = |extra: &[&str]| {
        let mut a = vec![
            "certify",
            "--generator",
            arg(&g),
            "--classifier",
            arg(&pair),
            "--latent",
            arg(&z),
            "--direction",
            arg(&d),
            "--eps",
            "1.5",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let v = json_of(&run(&base(&["--reference", arg(&reference), "--method", "quantitative", "--json"])));
    assert!(v["label"].as_u64().unwrap() <= 1, "a score head has labels 0 and 1");
    assert!(v["fraction"]["lower"].as_f64().unwrap() <= v["fraction"]["upper"].as_f64().unwrap());
    let out = run(&base(&["--method", "complete"]));
    assert_eq!(out.status.code(), Some(2));
    fails_with(
        &base(&["--method", "quantitative"]).iter().map(String::as_str).collect::<Vec<_>>(),
        "give the fixed ones with --reference",
    );
}

#[test]
fn bounds_json_and_npy() {
    let f = fixtures();
    let dir = TempDir::new().unwrap();
    let out_path = dir.path().join("bounds.npy");
    let (g, z, d) = (f.join("generator.toml"), f.join("latent_a.npy"), f.join("direction.npy"));
    let args = [
        "bounds",
        "--generator",
        arg(&g),
        "--latent",
        arg(&z),
        "--direction",
        arg(&d),
        "--eps",
        "3",
        "--out",
        arg(&out_path),
        "--json",
    ];
    let v = json_of(&gcert(&args));
    let (mean, median) = (v["mean_width"].as_f64().unwrap(), v["median_width"].as_f64().unwrap());
    assert!(mean > 0.0 && median >= 0.0, "{v}");
    assert_eq!(v["pixels"].as_u64(), Some(256));
    let b = read_npy(&out_path).unwrap();
    assert_eq!(b.shape, vec![2, 1, 16, 16]);
    let widths: Vec<f64> = (0..256).map(|i| b.data[256 + i] - b.data[i]).collect();
    assert!(widths.iter().all(|&w| w >= 0.0));
    assert!((widths.iter().sum::<f64>() / 256.0 - mean).abs() < 1e-12);
    fails_with(&args, "already exists; pass --force");
}

#[test]
fn batch_runs_resumes_and_shards() {
    let f = fixtures();
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    std::fs::copy(f.join("latent_a.npy"), d.join("z.npy")).unwrap();
    std::fs::copy(f.join("direction.npy"), d.join("d.npy")).unwrap();
    let jobs = d.join("jobs.jsonl");
    std::fs::write(
        &jobs,
        [
            r#"{"id": "a", "latent": "z.npy", "direction": "d.npy", "eps": 0.5}"#,
            r#"{"id": "b", "latent": "z.npy", "direction": [1, 0, 0, 0, 0, 0, 0, 0], "eps": 2.0, "two_sided": true}"#,
            "",
            r#"{"latent": "z.npy", "direction": "d.npy", "eps": 1.0, "method": "incomplete"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let results = d.join("results.jsonl");
    let (g, n) = (f.join("generator.toml"), f.join("classifier.toml"));
    let models = ["--generator", arg(&g), "--classifier", arg(&n)];
    let batch = |extra: &[&str]| {
        let mut a = vec!["certify", "--batch", arg(&jobs)];
        a.extend(models);
        a.extend(extra);
        gcert(&a)
    };
    let out = batch(&["--out", arg(&results)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> = std::fs::read_to_string(&results)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut ids: Vec<&str> = lines.iter().map(|v| v["id"].as_str().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, ["4", "a", "b"], "a job without an id is named by its line number");
    for v in &lines {
        assert!(v["verdict"].is_string() && v["fraction"]["lower"].is_number() && v["time_ms"].is_number());
    }
    let by_id = |id: &str| lines.iter().find(|v| v["id"] == id).unwrap().clone();
    assert_eq!(by_id("4")["method"], "incomplete");
    assert_eq!(by_id("a")["method"], "complete");

    // Resuming skips every job that has a result.
    let out = batch(&["--out", arg(&results)]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("3 of 3 jobs already have results"));
    assert_eq!(std::fs::read_to_string(&results).unwrap().lines().count(), 3);

    // A killed run's partial line is left alone and the missing job is redone.
    let partial = d.join("partial.jsonl");
    let first = serde_json::to_string(&by_id("a")).unwrap();
    std::fs::write(&partial, format!("{first}\n{{\"id\": \"b\", \"verd")).unwrap();
    assert!(batch(&["--out", arg(&partial)]).status.success());
    let text = std::fs::read_to_string(&partial).unwrap();
    let done: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert_eq!(done.len(), 3, "{text}");

    // Shards split the jobs by index.
    let s0 = d.join("s0.jsonl");
    let s1 = d.join("s1.jsonl");
    assert!(batch(&["--shard", "0/2", "--out", arg(&s0)]).status.success());
    assert!(batch(&["--shard", "1/2", "--out", arg(&s1), "--threads", "1"]).status.success());
    let ids_of = |p: &Path| -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].as_str().unwrap().to_string())
            .collect()
    };
    let mut s0_ids = ids_of(&s0);
    s0_ids.sort();
    assert_eq!(s0_ids, ["4", "a"]);
    assert_eq!(ids_of(&s1), ["b"]);

    // Without --out, results go to stdout.
    let out = batch(&[]);
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 3);

    // Malformed lines and bad shards name the file and line.
    std::fs::write(
        d.join("bad.jsonl"),
        "{\"latent\": \"z.npy\", \"direction\": \"d.npy\", \"eps\": 1}\n{oops\n",
    )
    .unwrap();
    let bad = d.join("bad.jsonl");
    let mut a = vec!["certify", "--batch", arg(&bad)];
    a.extend(models);
    fails_with(&a, "bad.jsonl: line 2: malformed job");
    std::fs::write(
        d.join("neg.jsonl"),
        "{\"latent\": \"z.npy\", \"direction\": \"d.npy\", \"eps\": 1, \"colour\": 1}\n",
    )
    .unwrap();
    let neg = d.join("neg.jsonl");
    let mut a = vec!["certify", "--batch", arg(&neg)];
    a.extend(models);
    fails_with(&a, "unknown field `colour`");
    std::fs::write(
        d.join("zero.jsonl"),
        "{\"latent\": \"z.npy\", \"direction\": [0,0,0,0,0,0,0,0], \"eps\": 1}\n",
    )
    .unwrap();
    let zero = d.join("zero.jsonl");
    let mut a = vec!["certify", "--batch", arg(&zero)];
    a.extend(models);
    fails_with(&a, "zero.jsonl: line 1: the direction is zero");
    let mut a = vec!["certify", "--batch", arg(&jobs), "--shard", "2/2"];
    a.extend(models);
    fails_with(&a, "--shard must be i/n");
}

#[test]
fn bad_inputs_exit_2_with_one_clear_error() {
    let f = fixtures();
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let run_fail = |args: Vec<String>, needle: &str| {
        fails_with(&args.iter().map(String::as_str).collect::<Vec<_>>(), needle);
    };
    // Mismatched generator output and classifier input.
    let mut a = certify_args(&f, "1.0", &[]);
    a[4] = arg(&f.join("generator.toml")).into();
    run_fail(a, "outputs shape [1, 16, 16] but the classifier");
    // Label out of range.
    run_fail(certify_args(&f, "1.0", &["--label", "10"]), "label 10 is out of range");
    // Negative and zero tolerance.
    run_fail(certify_args(&f, "-0.5", &[]), "tolerance must be positive");
    run_fail(certify_args(&f, "0", &[]), "tolerance must be positive");
    // Zero direction, naming the file.
    let zero = d.join("zero.npy");
    write_npy(&zero, &[8], &[0.0; 8]).unwrap();
    let mut a = certify_args(&f, "1.0", &[]);
    a[8] = arg(&zero).into();
    run_fail(a, "zero.npy: the direction is zero");
    // NaN in the latent point, naming the file.
    let mut nan = vec![0.0; 8];
    nan[3] = f64::NAN;
    let nan_path = d.join("nan.npy");
    write_npy(&nan_path, &[8], &nan).unwrap();
    let mut a = certify_args(&f, "1.0", &[]);
    a[6] = arg(&nan_path).into();
    run_fail(a, "nan.npy: non-finite value");
    // A latent of the wrong length.
    let short = d.join("short.npy");
    write_npy(&short, &[5], &[0.0; 5]).unwrap();
    let mut a = certify_args(&f, "1.0", &[]);
    a[6] = arg(&short).into();
    run_fail(a, "short.npy: the latent point must have shape [8]");
    // Complete certification of a model it cannot chain.
    let (card, tensors) =
        CardBuilder::new("smooth", &[1, 16, 16], 1).flatten().linear(4).tanh().linear(3).build();
    let smooth = d.join("smooth.toml");
    save_card(&smooth, &card, &tensors, Precision::F32, false).unwrap();
    let mut a = certify_args(&f, "1.0", &[]);
    a[4] = arg(&smooth).into();
    run_fail(a.clone(), "not piecewise linear");
    a.extend(["--method".to_string(), "incomplete".to_string(), "--json".to_string()]);
    let v = json_of(&run(&a));
    assert!(["certified", "unknown", "violated"].contains(&v["verdict"].as_str().unwrap()));
    // Bounds: zero direction and negative tolerance.
    let g = f.join("generator.toml");
    let z = f.join("latent_a.npy");
    fails_with(
        &["bounds", "--generator", arg(&g), "--latent", arg(&z), "--direction", arg(&zero), "--eps", "1"],
        "the direction is zero",
    );
    fails_with(
        &["bounds", "--generator", arg(&g), "--latent", arg(&z), "--direction", arg(&z), "--eps", "-1"],
        "tolerance must be positive",
    );
}
