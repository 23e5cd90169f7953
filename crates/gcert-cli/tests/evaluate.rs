//! `gcert evaluate` end to end on the committed MNIST models and real test digits: the run folder, the refusals,
//! a resumed run, and the report opened in headless Chromium (no console message, no broken image, a
//! screenshot saved).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gcert_core::npy::{read_npy, write_npy};
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

/// Runs gcert expecting failure: exit code 2, one `error:` line naming `needle`, no panic.
fn fails_with(args: &[&str], needle: &str) {
    let out = gcert(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.starts_with("error: ") && stderr.contains(needle), "expected '{needle}' in: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Real test digits 1, 3, 7 (fixtures/trained/latents) as images.npy and labels.npy.
fn digits(dir: &Path) -> (PathBuf, PathBuf) {
    let mut pixels = Vec::new();
    let digits = [1usize, 3, 7];
    for d in digits {
        let a = read_npy(&fixtures().join(format!("trained/latents/digit-{d}.npy"))).unwrap();
        pixels.extend(a.data);
    }
    let (x, y) = (dir.join("images.npy"), dir.join("labels.npy"));
    write_npy(&x, &[3, 1, 32, 32], &pixels).unwrap();
    write_npy(&y, &[3], &digits.map(|d| d as f64)).unwrap();
    (x, y)
}

fn base_args<'a>(x: &'a str, y: &'a str, out: &'a str, g: &'a str, c: &'a str) -> Vec<&'a str> {
    vec![
        "evaluate",
        "--generator",
        g,
        "--classifier",
        c,
        "--images",
        x,
        "--labels",
        y,
        "--out",
        out,
        "--restarts",
        "2",
        "--iters",
        "30",
    ]
}

#[test]
fn bad_input_is_one_error_line_and_nothing_is_written() {
    let tmp = TempDir::new().unwrap();
    let (x, y) = digits(tmp.path());
    let out = tmp.path().join("run");
    let g = fixtures().join("trained/generator.toml");
    let c = fixtures().join("trained/classifier-fc3.toml");
    let (g, c) = (arg(&g).to_string(), arg(&c).to_string());
    let with = |x: &Path, y: &Path, m: &str, needle: &str| {
        let mut a = base_args(arg(x), arg(y), arg(&out), &g, &c);
        a.extend(["--mutation", m]);
        fails_with(&a, needle);
        assert!(!out.exists(), "nothing may be written for {needle}");
    };
    // Counts that differ.
    let y2 = tmp.path().join("y2.npy");
    write_npy(&y2, &[2], &[1.0, 3.0]).unwrap();
    with(&x, &y2, "rotation:10", "holds 2 labels but");
    // The wrong shape: [n, H, W] and a size the generator does not make.
    let x2 = tmp.path().join("x2.npy");
    write_npy(&x2, &[3, 32, 32], &vec![0.0; 3 * 1024]).unwrap();
    with(&x2, &y, "rotation:10", "must have shape [n, C, H, W], found [3, 32, 32]");
    let x3 = tmp.path().join("x3.npy");
    write_npy(&x3, &[3, 1, 28, 28], &vec![0.0; 3 * 784]).unwrap();
    with(&x3, &y, "rotation:10", "the images have shape [1, 28, 28] but the generator");
    // Outside the generator's range (its last layer clamps to [0, 1]).
    let x4 = tmp.path().join("x4.npy");
    let mut bright = read_npy(&x).unwrap().data;
    bright[1024 + 40] = 2.0;
    write_npy(&x4, &[3, 1, 32, 32], &bright).unwrap();
    with(
        &x4,
        &y,
        "rotation:10",
        "image 1 has value 2 at pixel 40, outside the generator's output range [0, 1]",
    );
    // A label the classifier does not have.
    let y3 = tmp.path().join("y3.npy");
    write_npy(&y3, &[3], &[1.0, 12.0, 7.0]).unwrap();
    with(&x, &y3, "rotation:10", "label 12 of image 1 is not a class");
    // Unknown mutations and amounts that are not positive.
    with(&x, &y, "twist:3", "unknown mutation 'twist'");
    with(&x, &y, "rotation:0", "the amount must be positive");
    with(&x, &y, "scale:-5", "the amount must be positive");
    with(&x, &y, "rotation", "has no amount");
    with(&x, &y, "local:30,0,8,8:1", "reaches outside");
}

#[test]
fn a_small_evaluation_end_to_end_resumed_and_opened_in_chromium() {
    let tmp = TempDir::new().unwrap();
    let (x, y) = digits(tmp.path());
    let out = tmp.path().join("run");
    let g = fixtures().join("trained/generator.toml");
    let c1 = fixtures().join("trained/classifier-fc3.toml");
    let c2 = fixtures().join("trained/classifier-conv2.toml");
    // A fixed direction: the difference of two committed latents.
    let za = read_npy(&fixtures().join("trained/latents/gan-z-3.npy")).unwrap().data;
    let zb = read_npy(&fixtures().join("trained/latents/gan-z-8.npy")).unwrap().data;
    let d = tmp.path().join("d.npy");
    write_npy(&d, &[50], &za.iter().zip(&zb).map(|(a, b)| b - a).collect::<Vec<_>>()).unwrap();
    let file_m = format!("file:{}:1.5", arg(&d));
    let mut args = base_args(arg(&x), arg(&y), arg(&out), arg(&g), arg(&c1));
    args.extend([
        "--classifier",
        arg(&c2),
        "--mutation",
        "rotation:10",
        "--mutation",
        &file_m,
        "--precision",
    ]);
    let run = gcert(&args);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("wrote") && stdout.contains("certified"), "{stdout}");
    let text = std::fs::read_to_string(out.join("results.jsonl")).unwrap();
    let records: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 3 * 2 * 2, "one line per image × mutation × classifier");
    for r in &records {
        let status = r["status"].as_str().unwrap();
        assert!(["certified", "violated", "not-available", "skipped"].contains(&status), "{r}");
        if status == "violated" {
            let cx = &r["counterexample"];
            assert!(out.join(cx["image"].as_str().unwrap()).is_file(), "{r}");
            assert_ne!(cx["predicted"], r["label"]);
        }
        if status == "not-available" {
            assert!(r["reason"].as_str().unwrap().starts_with("mutation not available at this image"), "{r}");
        }
        if r["kind"] == "file" {
            assert!(status == "certified" || status == "violated" || status == "skipped", "{r}");
        }
        if r["kind"] == "rotation" && r["status"] != "not-available" && r["status"] != "skipped" {
            assert_eq!(r["unit"], "degrees");
            assert!(r["precision"]["gcert"]["mean"].as_f64().unwrap() >= 0.0, "{r}");
        }
    }
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["cells"].as_array().unwrap().len(), 4);
    assert_eq!(summary["records"], 12);

    // Another run into the same folder is refused; a resumed one has nothing left to do and loses nothing.
    fails_with(&args, "holds another run's files");
    let mut resume = args.clone();
    resume.push("--resume");
    let again = gcert(&resume);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success() && stderr.contains("12 of 12 results already"), "{stderr}");
    assert_eq!(std::fs::read_to_string(out.join("results.jsonl")).unwrap(), text);
    // Resumed with another mutation list: refused, naming what differs.
    let mut other = resume.clone();
    other.extend(["--mutation", "scale:5"]);
    fails_with(&other, "'mutations' differs");

    // Every strip and counterexample is embedded in the report.
    let mut images: Vec<&str> = records.iter().filter_map(|r| r["strip"].as_str()).collect();
    images.sort_unstable();
    images.dedup();
    let images = images.len() + records.iter().filter(|r| r["counterexample"].is_object()).count();
    assert!(images >= 3, "the file direction is certified or violated at each digit");
    browser_check(&out.join("report.html"), images);
}

/// Opens the report in headless Chromium: fails on any console message (the report logs a broken image there)
/// or an image that did not load, and saves a screenshot beside the test's build files.
fn browser_check(report: &Path, images: usize) {
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
        .expect("no headless Chromium: install Debian's chromium package (`cargo xtask setup` does)");
    let url = format!("file://{}", report.canonicalize().unwrap().display());
    let common =
        ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=5000"];
    let dom = Command::new(chromium)
        .args(common)
        .args(["--enable-logging=stderr", "--v=0", "--dump-dom", &url])
        .output()
        .unwrap();
    assert!(dom.status.success(), "{}", String::from_utf8_lossy(&dom.stderr));
    let stderr = String::from_utf8_lossy(&dom.stderr);
    let console: Vec<&str> = stderr.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    let html = String::from_utf8_lossy(&dom.stdout);
    let attr = |name: &str| -> usize {
        let at =
            html.find(&format!("{name}=\"")).unwrap_or_else(|| panic!("the page's image check did not run"));
        let rest = &html[at + name.len() + 2..];
        rest[..rest.find('"').unwrap()].parse().unwrap()
    };
    assert_eq!(attr("data-images-checked"), images, "the report embeds every strip and counterexample");
    assert_eq!(attr("data-images-broken"), 0);
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("evaluate-report.png");
    let _ = std::fs::remove_file(&shot);
    let out = Command::new(chromium)
        .args(common)
        .args(["--window-size=1400,2400", &format!("--screenshot={}", shot.display()), &url])
        .output()
        .unwrap();
    assert!(out.status.success() && shot.is_file(), "{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("screenshot of the report: {}", shot.display());
}

/// A run killed (SIGKILL) as soon as its first results are on disk, then resumed: every result of an
/// uninterrupted run is there exactly once, with the same answers, and what was written before the kill is kept.
#[test]
fn a_killed_run_resumes_and_loses_nothing() {
    let tmp = TempDir::new().unwrap();
    let (x, y) = digits(tmp.path());
    let g = fixtures().join("trained/generator.toml");
    let c = fixtures().join("trained/classifier-fc3.toml");
    let za = read_npy(&fixtures().join("trained/latents/gan-z-1.npy")).unwrap().data;
    let d = tmp.path().join("d.npy");
    write_npy(&d, &[50], &za).unwrap();
    let file_m = format!("file:{}:1", arg(&d));
    let args = |out: &Path| -> Vec<String> {
        let mut a: Vec<String> =
            base_args(arg(&x), arg(&y), arg(out), arg(&g), arg(&c)).into_iter().map(String::from).collect();
        a.extend(["--mutation".into(), file_m.clone(), "--mutation".into(), "rotation:10".into()]);
        a
    };
    let whole = tmp.path().join("whole");
    let out = gcert(&args(&whole).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let expected = std::fs::read_to_string(whole.join("results.jsonl")).unwrap();

    let cut = tmp.path().join("cut");
    let mut child = Command::new(env!("CARGO_BIN_EXE_gcert"))
        .args(args(&cut))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let results = cut.join("results.jsonl");
    let started = std::time::Instant::now();
    let killed_after = loop {
        let text = std::fs::read_to_string(&results).unwrap_or_default();
        if !text.is_empty() {
            child.kill().unwrap();
            child.wait().unwrap();
            break text;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before any result appeared");
        }
        assert!(started.elapsed().as_secs() < 600, "no result after 10 minutes");
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    let before = std::fs::read_to_string(&results).unwrap();
    assert!(before.starts_with(&killed_after));
    assert!(!cut.join("report.html").exists(), "killed before the end");
    let mut resume = args(&cut);
    resume.push("--resume".into());
    let again = gcert(&resume.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    let after = std::fs::read_to_string(&results).unwrap();
    assert!(after.starts_with(&before), "what was written before the kill is kept");
    let answers = |text: &str| -> Vec<Value> {
        let mut v: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|mut r| {
                let o = r.as_object_mut().unwrap();
                o.remove("time_ms");
                o.remove("setup_ms");
                r
            })
            .collect();
        v.sort_by_key(|r| r["key"].as_str().unwrap().to_string());
        v
    };
    let (want, got) = (answers(&expected), answers(&after));
    assert_eq!(got.len(), want.len(), "every key exactly once");
    for (a, b) in want.iter().zip(&got) {
        assert_eq!(a["key"], b["key"]);
        assert_eq!(
            (&a["status"], &a["violated"], &a["counterexample"]),
            (&b["status"], &b["violated"], &b["counterexample"])
        );
        let (ta, tb) = (a["max_tolerance"].as_f64(), b["max_tolerance"].as_f64());
        assert!(ta.zip(tb).is_none_or(|(p, q)| (p - q).abs() <= 1e-9 * (1.0 + p.abs())), "{a} {b}");
    }
    assert!(cut.join("report.html").is_file());
}
