//! Hostile and careless use of the CLI (issue 15): unreadable inputs, outputs that would destroy inputs or be
//! left half-written, concurrent batch runs, paths outside a card's folder, NaN and unbounded options, values
//! that overflow inside a network. Every refusal is one `error: …` line and exit code 2.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gcert_core::builder::CardBuilder;
use gcert_core::network::save_card;
use gcert_core::npy::write_npy;
use gcert_core::tensors::Precision;
use tempfile::TempDir;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn gcert<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gcert")).args(args).output().expect("gcert runs")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Exit code 2, exactly one line starting `error: ` that contains `needle`, no panic.
fn fails_with<S: AsRef<OsStr>>(args: &[S], needle: &str) -> String {
    let out = gcert(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.starts_with("error: ") && stderr.contains(needle), "expected '{needle}' in: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// Like `fails_with`, for errors the option parser reports (clap adds a usage line after the error line).
fn refused_option<S: AsRef<OsStr>>(args: &[S], needle: &str) {
    let out = gcert(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    let first = stderr.lines().next().unwrap_or("");
    assert!(first.starts_with("error: ") && first.contains(needle), "expected '{needle}' in: {stderr}");
}

fn succeeds<S: AsRef<OsStr>>(args: &[S]) -> Output {
    let out = gcert(args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn mkfifo(p: &Path) -> bool {
    Command::new("mkfifo").arg(p).status().is_ok_and(|s| s.success())
}

#[test]
fn unreadable_inputs_are_refused_without_blocking() {
    let f = fixtures();
    let dir = TempDir::new().unwrap();
    let gen = f.join("generator.toml");
    fails_with(
        &["eval", "--model", "/dev/zero", "--input", "x.npy"],
        "must be a regular file, found a device",
    );
    fails_with(
        &["eval", "--model", s(&gen), "--input", "/dev/zero"],
        "must be a regular file, found a device",
    );
    fails_with(&["eval", "--model", s(dir.path()), "--input", "x.npy"], "found a directory");
    let fifo = dir.path().join("z.npy");
    if mkfifo(&fifo) {
        fails_with(&["eval", "--model", s(&gen), "--input", s(&fifo)], "found a FIFO");
        let jobs = dir.path().join("jobs.fifo");
        assert!(mkfifo(&jobs));
        let c = f.join("classifier.toml");
        fails_with(
            &["certify", "--generator", s(&gen), "--classifier", s(&c), "--batch", s(&jobs)],
            "found a FIFO",
        );
    }
    // An .npy whose header declares 10^11 values in a file of 8: refused before allocating.
    let mut header = "{'descr': '<f8', 'fortran_order': False, 'shape': (100000000000,), }".to_string();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&1.0f64.to_le_bytes());
    let huge = dir.path().join("huge.npy");
    std::fs::write(&huge, bytes).unwrap();
    fails_with(&["eval", "--model", s(&gen), "--input", s(&huge)], "more than the limit of 268435456");
    // The budget is an option; a smaller one refuses the fixture generator's weights.
    fails_with(
        &["eval", "--max-elements", "100", "--model", s(&gen), "--input", s(&huge)],
        "more than the limit of 100",
    );
}

#[test]
fn count_options_have_upper_bounds_and_number_options_must_be_finite() {
    let f = fixtures();
    let (g, c) = (f.join("generator.toml"), f.join("classifier.toml"));
    let (z, d) = (f.join("latent_a.npy"), f.join("direction.npy"));
    let certify =
        ["certify", "--generator", s(&g), "--classifier", s(&c), "--latent", s(&z), "--direction", s(&d)];
    refused_option(&[&certify[..], &["--eps", "nan"]].concat(), "must be a finite number");
    refused_option(&[&certify[..], &["--eps", "inf"]].concat(), "must be a finite number");
    refused_option(&[&certify[..], &["--eps", "1", "--budget", "1000000000000"]].concat(), "must be at most");
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("o.npy");
    let image = dir.path().join("x.npy");
    write_npy(&image, &[1, 16, 16], &[0.5; 256]).unwrap();
    let invert = ["invert", "--generator", s(&g), "--image", s(&image), "--out", s(&out)];
    refused_option(&[&invert[..], &["--prior", "nan"]].concat(), "must be a finite number");
    refused_option(&[&invert[..], &["--restarts", "100000000000"]].concat(), "must be at most 10000");
    let dirs = ["directions", "--generator", s(&g), "--latent", s(&z), "--out", s(&out)];
    refused_option(&[&dirs[..], &["--threshold", "NaN"]].concat(), "must be a finite number");
    refused_option(&[&dirs[..], &["--samples", "18446744073709551615"]].concat(), "must be at most 100000");
    let png = dir.path().join("s.png");
    let mutate = ["mutate", "--generator", s(&g), "--latent", s(&z), "--direction", s(&d), "--out", s(&png)];
    refused_option(&[&mutate[..], &["--eps", "1", "--steps", "1000000"]].concat(), "must be at most 1024");
    refused_option(&[&mutate[..], &["--eps", "nan"]].concat(), "must be a finite number");
    let cont = ["continuity", "--generator", s(&g)];
    refused_option(&[&cont[..], &["--pairs", "100000000000"]].concat(), "must be at most");
    refused_option(&[&cont[..], &["--eps", "nan"]].concat(), "must be a finite number");
    fails_with(&[&invert[..], &["--prior=-1"]].concat(), "--prior must be at least 0");
    assert!(!out.exists() && !png.exists());
}

#[test]
fn invert_never_overwrites_without_force_nor_writes_over_an_input() {
    let f = fixtures();
    let g = f.join("generator.toml");
    let dir = TempDir::new().unwrap();
    let image = dir.path().join("x.npy");
    write_npy(&image, &[1, 16, 16], &[0.5; 256]).unwrap();
    let out = dir.path().join("z.npy");
    std::fs::write(&out, b"keep me").unwrap();
    let args = |out: &Path| {
        vec!["invert", "--generator", s(&g), "--image", s(&image), "--restarts", "1", "--iters", "2"]
            .into_iter()
            .map(String::from)
            .chain(["--out".into(), s(out).into()])
            .collect::<Vec<String>>()
    };
    fails_with(&args(&out), "z.npy: already exists; pass --force to overwrite it");
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
    succeeds(&[args(&out), vec!["--force".into()]].concat());
    assert_eq!(gcert_core::npy::read_npy(&out).unwrap().shape, vec![8]);
    // Never over the image it reads, nor the generator's card or weights, even with --force.
    for input in [image.clone(), g.clone(), f.join("generator.safetensors")] {
        fails_with(&[args(&input), vec!["--force".into()]].concat(), "is one of this run's inputs");
    }
    // Never over a device: /dev/full would make every write fail with ENOSPC.
    fails_with(&[args(Path::new("/dev/full")), vec!["--force".into()]].concat(), "not a regular file");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 2, "a temporary file was left behind: {left:?}");
}

/// The fixture models and a jobs file of three jobs in `dir`.
fn batch_setup(dir: &Path) -> (Vec<String>, PathBuf) {
    let f = fixtures();
    std::fs::copy(f.join("latent_a.npy"), dir.join("z.npy")).unwrap();
    std::fs::copy(f.join("direction.npy"), dir.join("d.npy")).unwrap();
    let jobs = dir.join("jobs.jsonl");
    std::fs::write(
        &jobs,
        "{\"id\": \"a\", \"latent\": \"z.npy\", \"direction\": \"d.npy\", \"eps\": 0.5}\n\
         {\"id\": \"b\", \"latent\": \"z.npy\", \"direction\": \"d.npy\", \"eps\": 1.0}\n",
    )
    .unwrap();
    let args = vec![
        "certify".into(),
        "--generator".into(),
        s(&f.join("generator.toml")).into(),
        "--classifier".into(),
        s(&f.join("classifier.toml")).into(),
        "--batch".into(),
        s(&jobs).into(),
    ];
    (args, jobs)
}

#[test]
fn batch_results_go_only_to_a_results_file_one_run_at_a_time() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let (args, jobs) = batch_setup(d);
    let with_out = |out: &Path| [args.clone(), vec!["--out".into(), s(out).into()]].concat();
    let f = fixtures();
    // Not over the card it read, its weights, the jobs file or an array a job names.
    for input in [f.join("classifier.toml"), f.join("generator.safetensors"), jobs.clone(), d.join("z.npy")] {
        let before = std::fs::read(&input).unwrap();
        fails_with(&with_out(&input), "is one of this run's inputs");
        assert_eq!(std::fs::read(&input).unwrap(), before);
    }
    // Not into a file that is not a results file.
    let notes = d.join("notes.txt");
    std::fs::write(&notes, "my notes\n").unwrap();
    fails_with(&with_out(&notes), "notes.txt: line 1 is not JSON; this is not a gcert results file");
    let other = d.join("other.jsonl");
    std::fs::write(&other, "{\"id\": \"a\", \"latent\": \"z.npy\"}\n").unwrap();
    fails_with(&with_out(&other), "line 1 is not a result");
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "my notes\n");
    fails_with(&with_out(Path::new("/dev/full")), "a device, not a regular file");
    // A second run while the first holds the file refuses instead of duplicating every result.
    let results = d.join("results.jsonl");
    let held = gcert_core::io::LockedAppend::open(&results, 1 << 20).unwrap();
    fails_with(&with_out(&results), "another gcert run is writing results to this file");
    drop(held);
    succeeds(&with_out(&results));
    succeeds(&with_out(&results));
    assert_eq!(std::fs::read_to_string(&results).unwrap().lines().count(), 2);
}

#[test]
fn every_batch_job_is_checked_before_the_first_runs() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let (args, jobs) = batch_setup(d);
    let results = d.join("results.jsonl");
    let run = [args, vec!["--out".into(), s(&results).into()]].concat();
    for (bad, why) in [
        ("\"eps\": -1.0", "the tolerance must be positive and finite"),
        ("\"eps\": 1.0, \"label\": 99", "label 99 is out of range"),
        ("\"eps\": 1e-320", "the tolerance 1e-320 is too small to move the starting point"),
    ] {
        std::fs::write(
            &jobs,
            format!(
                "{{\"id\": \"a\", \"latent\": \"z.npy\", \"direction\": \"d.npy\", \"eps\": 0.5}}\n\
                 {{\"id\": \"b\", \"latent\": \"z.npy\", \"direction\": \"d.npy\", {bad}}}\n"
            ),
        )
        .unwrap();
        fails_with(&run, &format!("jobs.jsonl: line 2: {why}"));
        assert!(!results.exists(), "a result was written before the bad job was found");
    }
}

#[test]
fn weights_outside_the_cards_folder_need_allow_outside_weights() {
    let f = fixtures();
    let dir = TempDir::new().unwrap();
    let sub = dir.path().join("cards");
    std::fs::create_dir(&sub).unwrap();
    std::fs::copy(f.join("generator.safetensors"), dir.path().join("g.safetensors")).unwrap();
    let card = std::fs::read_to_string(f.join("generator.toml"))
        .unwrap()
        .replace("weights = \"generator.safetensors\"", "weights = \"../g.safetensors\"");
    std::fs::write(sub.join("g.toml"), card).unwrap();
    let z = f.join("latent_a.npy");
    let card_path = sub.join("g.toml");
    let eval = ["eval", "--model", s(&card_path), "--input", s(&z)];
    let e = fails_with(&eval, "the weights file '../g.safetensors' leaves the card's folder");
    assert!(e.contains("--allow-outside-weights") && e.lines().count() == 1, "{e}");
    succeeds(&[&eval[..], &["--allow-outside-weights"]].concat());
    let abs = std::fs::read_to_string(sub.join("g.toml"))
        .unwrap()
        .replace("\"../g.safetensors\"", "\"/etc/passwd\"");
    std::fs::write(sub.join("g.toml"), abs).unwrap();
    fails_with(&eval, "is an absolute path");
}

#[test]
fn card_errors_are_one_line_reason_first_with_line_and_column() {
    let f = fixtures();
    let dir = TempDir::new().unwrap();
    let card = dir.path().join("bad.toml");
    std::fs::write(&card, "format = \"gcert-model/1\"\nname = \"x\"\nweights = \"w\"\ninput_shape = [2\n")
        .unwrap();
    let e = fails_with(
        &["eval", "--model", s(&card), "--input", s(&f.join("latent_a.npy"))],
        "malformed model card: ",
    );
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains("bad.toml") && e.contains("(line 4, column") || e.contains("(line 5, column"), "{e}");
}

#[test]
fn overflow_inside_the_network_is_an_error_never_a_verdict() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    // A classifier whose second linear layer overflows for inputs far enough from 0.
    let (mut card, mut tensors) = CardBuilder::new("boom", &[2], 1).linear(2).relu().linear(2).build();
    for t in tensors.values_mut() {
        t.data.iter_mut().for_each(|v| *v = v.signum() * 1e200);
    }
    card.weights = "boom.safetensors".into();
    let path = d.join("boom.toml");
    save_card(&path, &card, &tensors, Precision::F64, false).unwrap();
    write_npy(&d.join("a.npy"), &[2], &[0.0, 0.0]).unwrap();
    write_npy(&d.join("b.npy"), &[2], &[1.0, 1.0]).unwrap();
    let (a, b) = (d.join("a.npy"), d.join("b.npy"));
    for method in ["complete", "quantitative"] {
        let args = ["certify", "--classifier", s(&path), "--from", s(&a), "--to", s(&b)];
        let e =
            fails_with(&[&args[..], &["--method", method, "--json"]].concat(), "produced a non-finite value");
        assert!(e.contains("layer 2 (linear)"), "{e}");
    }
    fails_with(
        &["eval", "--model", s(&path), "--input", s(&d.join("b.npy"))],
        "layer 2 (linear): produced a non-finite",
    );
}

#[cfg(unix)]
#[test]
fn non_utf8_paths_are_used_as_given_and_tiny_directions_are_not_called_zero() {
    use std::os::unix::ffi::OsStrExt;
    let f = fixtures();
    let dir = TempDir::new().unwrap();
    let odd = dir.path().join(OsStr::from_bytes(b"dir\xff.npy"));
    std::fs::copy(f.join("direction.npy"), &odd).unwrap();
    let png = dir.path().join("s.png");
    let gen = f.join("generator.toml");
    let mut args: Vec<&OsStr> =
        ["mutate", "--generator", s(&gen), "--latent"].into_iter().map(OsStr::new).collect();
    let z = f.join("latent_a.npy");
    args.extend([
        z.as_os_str(),
        OsStr::new("--direction"),
        odd.as_os_str(),
        OsStr::new("--eps"),
        OsStr::new("1"),
    ]);
    args.extend([OsStr::new("--out"), png.as_os_str()]);
    succeeds(&args);
    assert!(png.exists());
    // With a row suffix too.
    let mut spec = odd.as_os_str().to_owned();
    spec.push(":0");
    args[6] = &spec;
    args.push(OsStr::new("--force"));
    succeeds(&args);
    // A direction whose squared norm underflows (1e-200²) is normalised, not refused as "zero".
    let tiny = dir.path().join("tiny.npy");
    write_npy(&tiny, &[8], &[1e-200, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1e-200]).unwrap();
    let (g, c) = (f.join("generator.toml"), f.join("classifier.toml"));
    let certify =
        ["certify", "--generator", s(&g), "--classifier", s(&c), "--latent", s(&z), "--eps", "0.5", "--json"];
    let out = succeeds(&[&certify[..], &["--direction", s(&tiny)]].concat());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(["certified", "violated"].contains(&v["verdict"].as_str().unwrap()), "{v}");
    succeeds(&["bounds", "--generator", s(&g), "--latent", s(&z), "--direction", s(&tiny), "--eps", "0.5"]);
    let zero = dir.path().join("zero.npy");
    write_npy(&zero, &[8], &[0.0; 8]).unwrap();
    fails_with(&[&certify[..], &["--direction", s(&zero)]].concat(), "the direction is zero");
}

/// A real full disk: a 64 KiB tmpfs, filled, in a private mount namespace (`unshare -rm`). Skipped with a note
/// where the machine does not allow user namespaces; `gcert_core::io`'s tests inject a failing writer instead.
#[test]
fn a_full_disk_is_an_error_and_leaves_the_old_output_and_no_partial_file() {
    if !Command::new("unshare").args(["-rm", "true"]).status().is_ok_and(|s| s.success()) {
        eprintln!("skipped: this machine does not allow `unshare -rm` (no private tmpfs to fill)");
        return;
    }
    let f = fixtures();
    let dir = TempDir::new().unwrap();
    let d = dir.path().join("disk");
    std::fs::create_dir(&d).unwrap();
    std::fs::copy(f.join("latent_a.npy"), dir.path().join("z.npy")).unwrap();
    std::fs::copy(f.join("direction.npy"), dir.path().join("dir.npy")).unwrap();
    let jobs = dir.path().join("jobs.jsonl");
    std::fs::write(
        &jobs,
        "{\"id\": \"a\", \"latent\": \"z.npy\", \"direction\": \"dir.npy\", \"eps\": 0.5}\n",
    )
    .unwrap();
    let script = r#"
        mount -t tmpfs -o size=64k tmpfs "$D" || exit 99
        printf keep > "$D/old.npy"
        : > "$D/results.jsonl"
        dd if=/dev/zero of="$D/fill" bs=4k 2>/dev/null
        "$GCERT" bounds --generator "$G" --latent "$Z" --direction "$DIR" --eps 0.5 --out "$D/old.npy" --force
        echo "bounds rc=$?"
        "$GCERT" bounds --generator "$G" --latent "$Z" --direction "$DIR" --eps 0.5 --out "$D/new.npy"
        echo "new rc=$?"
        "$GCERT" certify --generator "$G" --classifier "$C" --batch "$JOBS" --out "$D/results.jsonl"
        echo "batch rc=$?"
        echo "old: $(cat "$D/old.npy")"
        echo "files: $(ls -A "$D" | tr '\n' ' ')"
        rm "$D/fill"
        "$GCERT" certify --generator "$G" --classifier "$C" --batch "$JOBS" --out "$D/results.jsonl"
        echo "rerun rc=$? lines=$(wc -l < "$D/results.jsonl")"
    "#;
    let out = Command::new("unshare")
        .args(["-rm", "sh", "-c", script])
        .env("D", &d)
        .env("GCERT", env!("CARGO_BIN_EXE_gcert"))
        .env("G", f.join("generator.toml"))
        .env("C", f.join("classifier.toml"))
        .env("Z", dir.path().join("z.npy"))
        .env("DIR", dir.path().join("dir.npy"))
        .env("JOBS", &jobs)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.code() == Some(99) {
        eprintln!("skipped: cannot mount a tmpfs here: {text}");
        return;
    }
    for want in [
        "old.npy: cannot write: No space left on device",
        "bounds rc=2",
        "new.npy: cannot write: No space left on device",
        "new rc=2",
        "results.jsonl: cannot write: No space left on device",
        "batch rc=2",
        "old: keep",
        "files: fill old.npy results.jsonl \n",
        "rerun rc=0 lines=1",
    ] {
        assert!(text.contains(want), "expected '{want}' in:\n{text}");
    }
    assert_eq!(text.matches("error: ").count(), 3, "{text}");
}
