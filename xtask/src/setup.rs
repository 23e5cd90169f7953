//! `cargo xtask setup`: installs what a fresh machine lacks for the libtorch crates, idempotently, and the
//! environment with which xtask runs cargo for them.
//!
//! - Debian packages the workspace needs (`libopenblas-dev`, `pkg-config`, `protobuf-compiler` for
//!   `gcert-onnx`'s build script, and `chromium`, in which the test of `gcert evaluate` opens its report), when
//!   missing (root only).
//! - A Python virtual environment with `torch==2.13.0` from PyPI (the libtorch that `tch` 0.26 binds) in a
//!   cache directory outside the repository (`$GCERT_CACHE/venv`, default `~/.cache/gcert/venv`), reused by
//!   every clone; with `onnx`, `onnxruntime` and `numpy`, which `gcert-onnx`'s tests use to export PyTorch
//!   models and to compute reference forward passes.
//!
//! Cargo then builds `tch` with `LIBTORCH_USE_PYTORCH=1` and that venv's `python3` first on `PATH`; the
//! binaries carry an rpath to torch's `lib/` directory, so running them needs no environment.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The torch version `tch` 0.26 binds.
pub const TORCH_VERSION: &str = "2.13.0";
const APT_PACKAGES: &[&str] = &["libopenblas-dev", "pkg-config", "protobuf-compiler", "chromium"];
/// The Python packages of `gcert-onnx`'s tests: `torch.onnx.export` needs `onnx`; `onnxruntime` is the reference.
const PIP_PACKAGES: &[&str] = &["onnx==1.23.2", "onnxruntime==1.32.0", "numpy==2.4.6"];

/// `$GCERT_CACHE`, else `~/.cache/gcert` (the same rule as `gcert_torch::data::cache_dir`).
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GCERT_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("gcert")
}

pub fn venv_dir() -> PathBuf {
    cache_dir().join("venv")
}

/// Whether the venv exists and imports the right torch.
fn torch_ok(venv: &Path) -> bool {
    let py = venv.join("bin").join("python3");
    let check = format!(
        "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '{TORCH_VERSION}' else 1)"
    );
    Command::new(&py).args(["-c", &check]).output().map(|o| o.status.success()).unwrap_or(false)
}

/// Whether the venv imports the packages of [`PIP_PACKAGES`].
fn onnx_ok(venv: &Path) -> bool {
    let py = venv.join("bin").join("python3");
    Command::new(&py)
        .args(["-c", "import onnx, onnxruntime, numpy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Runs a command, echoing it first; a failure names the command and its status.
pub fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {cmd:?}");
    let status = cmd.status().with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn apt_missing() -> Vec<&'static str> {
    APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg-query")
                .args(["-W", "-f=${Status}", p])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
                .unwrap_or(false)
        })
        .collect()
}

pub fn run_setup() -> Result<()> {
    let missing = apt_missing();
    if missing.is_empty() {
        eprintln!("debian packages: {} present", APT_PACKAGES.join(", "));
    } else {
        run(Command::new("apt-get").arg("update"))?;
        run(Command::new("apt-get").args(["install", "-y", "--no-install-recommends"]).args(&missing))?;
    }
    let venv = venv_dir();
    if torch_ok(&venv) {
        eprintln!("libtorch: torch=={TORCH_VERSION} present in {}", venv.display());
    } else {
        std::fs::create_dir_all(cache_dir())
            .with_context(|| format!("creating {}", cache_dir().display()))?;
        if !venv.join("bin").join("python3").exists() {
            run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        }
        run(Command::new(venv.join("bin").join("pip")).args([
            "install",
            "--disable-pip-version-check",
            &format!("torch=={TORCH_VERSION}"),
        ]))?;
        if !torch_ok(&venv) {
            bail!("torch=={TORCH_VERSION} did not install into {}", venv.display());
        }
    }
    if onnx_ok(&venv) {
        eprintln!("onnx: {} present in {}", PIP_PACKAGES.join(", "), venv.display());
    } else {
        run(Command::new(venv.join("bin").join("pip"))
            .args(["install", "--disable-pip-version-check"])
            .args(PIP_PACKAGES))?;
        if !onnx_ok(&venv) {
            bail!("{} did not install into {}", PIP_PACKAGES.join(", "), venv.display());
        }
    }
    eprintln!("environment for building the libtorch crates by hand:");
    println!("export LIBTORCH_USE_PYTORCH=1");
    println!("export PATH={}:$PATH", venv.join("bin").display());
    Ok(())
}

/// A `cargo` command with the environment that builds `tch` against the venv's torch.
pub fn torch_cargo() -> Result<Command> {
    let venv = venv_dir();
    if !venv.join("bin").join("python3").exists() {
        bail!("no libtorch venv at {}; run `cargo xtask setup` first", venv.display());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![venv.join("bin")];
    paths.extend(std::env::split_paths(&path));
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.env("LIBTORCH_USE_PYTORCH", "1").env("PATH", std::env::join_paths(paths)?).current_dir(crate::root());
    Ok(cmd)
}

/// Runs `cargo run -p gcert-torch --bin gcert-torch -- <args>` with the libtorch environment.
pub fn gcert_torch(args: &[String]) -> Result<()> {
    let mut cmd = torch_cargo()?;
    cmd.args(["run", "--quiet", "-p", "gcert-torch", "--bin", "gcert-torch", "--"]).args(args);
    run(&mut cmd)
}
