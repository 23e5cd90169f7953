//! `cargo xtask test`, `demo` and `bench`: the pipelines the README and CI run.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::setup::{run, run_setup, torch_cargo};

/// Set-up, then the dependency-direction check, the formatting check, clippy with warnings as errors, and every
/// test of the workspace.
pub fn test(root: &Path) -> Result<()> {
    run_setup()?;
    crate::data::run_data(false)?;
    // No libtorch or BLAS in the engine (docs/contributing.md): neither may be in its dependency tree. The
    // evaluation pipeline (and so the CLI) runs without libtorch.
    let forbidden: [(&str, &[&str]); 2] = [
        ("gcert-exactline", &["tch", "torch-sys", "ndarray-linalg", "openblas-src"]),
        ("gcert-evaluate", &["tch", "torch-sys", "gcert-torch"]),
    ];
    for (krate, heavy) in forbidden {
        for heavy in heavy {
            let out = torch_cargo()?
                .args(["tree", "-p", krate, "-e", "normal", "-i", heavy])
                .output()
                .context("cargo tree")?;
            if out.status.success() && !out.stdout.is_empty() {
                bail!("{krate} depends on {heavy}:\n{}", String::from_utf8_lossy(&out.stdout));
            }
        }
    }
    run(torch_cargo()?.args(["fmt", "--all", "--", "--check"]).current_dir(root))?;
    run(torch_cargo()?
        .args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])
        .current_dir(root))?;
    run(torch_cargo()?.args(["test", "--workspace", "--no-fail-fast"]).current_dir(root))
}

/// `cargo xtask geometry-tables`: runs the `geometry_tables` example of the CLI crate (named mutations, Table 2
/// and Table 3 over the latents of the first real test digits) after making sure MNIST is in the cache.
pub fn geometry_tables(
    root: &Path,
    generator: &Path,
    digits: usize,
    restarts: usize,
    iters: usize,
    threads: usize,
    out: &Path,
) -> Result<()> {
    run_setup()?;
    crate::data::run_data(false)?;
    let abs = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { root.join(p) };
    let cache = crate::setup::cache_dir().join("geometry-tables");
    let s = |p: std::path::PathBuf| p.to_string_lossy().into_owned();
    run(torch_cargo()?
        .args(["run", "--quiet", "--release", "-p", "gcert-cli", "--example", "geometry_tables", "--"])
        .args(["--generator", &s(abs(generator)), "--mnist", &s(crate::data::mnist_file())])
        .args(["--cache", &s(cache), "--root", &s(root.to_path_buf()), "--out", &s(abs(out))])
        .args(["--digits", &digits.to_string(), "--restarts", &restarts.to_string()])
        .args(["--iters", &iters.to_string(), "--threads", &threads.to_string()])
        .current_dir(root))
}

/// Builds the `gcert` binary in release mode and returns its path.
pub fn build_gcert(root: &Path) -> Result<std::path::PathBuf> {
    run(torch_cargo()?.args(["build", "--release", "-p", "gcert-cli"]))?;
    Ok(root.join("target/release/gcert"))
}

/// The main job: the engine and the certifiers on the committed fixtures.
pub fn demo(root: &Path) -> Result<()> {
    run_setup()?;
    let gcert = build_gcert(root)?;
    let f = root.join("fixtures");
    let p = |name: &str| f.join(name).to_string_lossy().into_owned();
    let out = std::env::temp_dir().join("gcert-demo");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let o = |name: &str| out.join(name).to_string_lossy().into_owned();
    let (g, n, z, zb, d) =
        (p("generator.toml"), p("classifier.toml"), p("latent_a.npy"), p("latent_b.npy"), p("direction.npy"));
    let (cex, dirs) = (o("counterexample.npy"), o("directions.npy"));
    // The MNIST part runs on the continuity-regulated generator (docs/continuity.md) and the latent of a real
    // test "3" under it.
    let (tg, tc, tz) = (
        p("continuity/generator-regulated.toml"),
        p("trained/classifier-conv4.toml"),
        p("continuity/latents/gan-z-3.npy"),
    );
    let (mdirs, mcex, mstrip) =
        (o("mnist-directions.npy"), o("mnist-counterexample.npy"), o("mnist-strip.png"));
    let mdir = format!("{mdirs}:3");
    let steps: Vec<(&str, Vec<&str>)> = vec![
        (
            "exact chain of the fixture generator composed with the fixture classifier",
            vec!["exactline", "--model", &g, "--then", &n, "--from", &z, "--to", &zb],
        ),
        (
            "complete certification along the direction, tolerance 0.5, both sides",
            vec![
                "certify",
                "--generator",
                &g,
                "--classifier",
                &n,
                "--latent",
                &z,
                "--direction",
                &d,
                "--eps",
                "0.5",
                "--two-sided",
            ],
        ),
        (
            "a tolerance too large: a violation with its re-evaluated counterexample",
            vec![
                "certify",
                "--generator",
                &g,
                "--classifier",
                &n,
                "--latent",
                &z,
                "--direction",
                &d,
                "--eps",
                "2",
                "--two-sided",
                "--counterexample-out",
                &cex,
                "--force",
            ],
        ),
        (
            "the same question answered by bound propagation with splitting (incomplete)",
            vec![
                "certify",
                "--generator",
                &g,
                "--classifier",
                &n,
                "--latent",
                &z,
                "--direction",
                &d,
                "--eps",
                "0.5",
                "--two-sided",
                "--method",
                "incomplete",
            ],
        ),
        (
            "exact per-pixel bounds of the generator's images along the segment",
            vec!["bounds", "--generator", &g, "--latent", &z, "--direction", &d, "--eps", "0.5"],
        ),
        (
            "independent mutation directions of the generator at the latent point",
            vec!["directions", "--generator", &g, "--latent", &z, "--out", &dirs, "--force"],
        ),
        (
            "regulated MNIST generator: independent directions at the latent of a real test digit (a 3)",
            vec!["directions", "--generator", &tg, "--latent", &tz, "--out", &mdirs, "--force"],
        ),
        (
            "regulated MNIST generator and 4-conv classifier along direction 3, tolerance 8, both sides",
            vec![
                "certify",
                "--generator",
                &tg,
                "--classifier",
                &tc,
                "--latent",
                &tz,
                "--direction",
                &mdir,
                "--eps",
                "8",
                "--two-sided",
                "--counterexample-out",
                &mcex,
                "--force",
            ],
        ),
        (
            "the images along that direction, as a PNG strip",
            vec![
                "mutate",
                "--generator",
                &tg,
                "--latent",
                &tz,
                "--direction",
                &mdir,
                "--eps",
                "8",
                "--two-sided",
                "--out",
                &mstrip,
                "--force",
            ],
        ),
    ];
    for (title, args) in steps {
        println!("\n== {title}\n$ gcert {}", args.join(" "));
        run_quiet(Command::new(&gcert).args(&args))?;
    }
    // Last: the robustness of two classifiers over real test digits, as a report a person reads.
    crate::data::run_data(false)?;
    let (c4, c4a) = (p("trained/classifier-conv4.toml"), p("trained/classifier-conv4-aug.toml"));
    let (tgen, report) = (p("trained/generator.toml"), o("evaluate"));
    let args = vec![
        "evaluate",
        "--generator",
        &tgen,
        "--classifier",
        &c4,
        "--classifier",
        &c4a,
        "--mnist-test",
        "10",
        "--mutation",
        "rotation:15",
        "--mutation",
        "translate-y:2",
        "--mutation",
        "scale:15",
        "--precision",
        "--out",
        &report,
        "--force",
    ];
    println!(
        "\n== robustness of the 4-conv classifiers, plain and augmented, over 10 real test digits: a report\n$ gcert {}",
        args.join(" ")
    );
    run_quiet(Command::new(&gcert).args(&args))?;
    println!("\nfiles written under {}; open {}/report.html", out.display(), report);
    Ok(())
}

fn run_quiet(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// Runs the criterion benchmarks (the engine's in gcert-benches, the libtorch reference in gcert-torch, the
/// process start-up in gcert-cli) and prints the medians with the engine/floor and reference/engine ratios.
pub fn bench(root: &Path, filter: Option<&str>) -> Result<()> {
    run_setup()?;
    let mut cmd = torch_cargo()?;
    cmd.args(["bench", "-p", "gcert-benches", "-p", "gcert-torch", "-p", "gcert-cli", "--benches"]);
    if let Some(f) = filter {
        cmd.args(["--", f]);
    }
    run(&mut cmd)?;
    summary(&root.join("target/criterion"))
}

/// Reads criterion's estimates and prints one line per benchmark plus engine/floor ratios.
fn summary(dir: &Path) -> Result<()> {
    let mut medians = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() && p.file_name().is_some_and(|n| n != "report") {
                stack.push(p);
            } else if p.ends_with("new/estimates.json") {
                let text = std::fs::read_to_string(&p)?;
                let id = p.parent().and_then(Path::parent).and_then(|q| q.strip_prefix(dir).ok());
                if let (Some(id), Some(median)) = (id, median_ns(&text)) {
                    medians.insert(id.to_string_lossy().into_owned(), median);
                }
            }
        }
    }
    println!("\n{:<48} {:>14}", "benchmark", "median");
    for (id, ns) in &medians {
        println!("{id:<48} {:>11.3} ms", ns / 1e6);
    }
    for (id, ns) in &medians {
        if let Some(rest) = id.split_once("/serial/") {
            if let Some(p) = medians.get(&format!("{}/parallel/{}", rest.0, rest.1)) {
                println!("ratio {}/serial÷parallel at {}: {:.2}", rest.0, rest.1, ns / p);
            }
        }
        if let Some(rest) = id.split_once("/engine/") {
            let floor = format!("{}/floor/{}", rest.0, rest.1);
            if let Some(f) = medians.get(&floor) {
                println!("ratio {}/engine÷floor at {}: {:.2}", rest.0, rest.1, ns / f);
            }
            for reference in ["torch_f64", "torch_f32"] {
                if let Some(r) = medians.get(&format!("{}/{reference}/{}", rest.0, rest.1)) {
                    println!("ratio {}/{reference}÷engine at {}: {:.2}", rest.0, rest.1, r / ns);
                }
            }
        }
    }
    Ok(())
}

/// The median point estimate (ns) from criterion's `estimates.json`, without a JSON dependency.
fn median_ns(text: &str) -> Option<f64> {
    let at = text.find("\"median\"")?;
    let rest = &text[at..];
    let pe = rest.find("\"point_estimate\":")? + "\"point_estimate\":".len();
    let num: String = rest[pe..]
        .chars()
        .skip_while(|c| c.is_whitespace())
        .take_while(|c| !matches!(c, ',' | '}'))
        .collect();
    num.trim().parse().ok()
}
