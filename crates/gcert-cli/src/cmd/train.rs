//! `gcert train …`: runs the `gcert-train` binary (crate gcert-regulate), which trains generators on libtorch.
//! The `gcert` binary itself never links libtorch, so that it builds and runs on machines without it; training
//! is a separate executable, found beside `gcert` or on `PATH`, and every argument goes to it unchanged.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    /// Arguments of gcert-train (`gcert train --help` shows them)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    args: Vec<OsString>,
}

/// The executable name of the trainer.
pub const TRAINER: &str = "gcert-train";

/// `gcert-train` beside the running `gcert`, or `None` (then `PATH` is searched).
fn beside_this_executable() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let candidate = exe.parent()?.join(format!("{TRAINER}{}", std::env::consts::EXE_SUFFIX));
    candidate.is_file().then_some(candidate)
}

pub fn run(args: Args) -> Result<()> {
    let program = beside_this_executable().unwrap_or_else(|| PathBuf::from(TRAINER));
    let status = match Command::new(&program).args(&args.args).status() {
        Ok(status) => status,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "`gcert train` runs the {TRAINER} binary, which was found neither beside gcert nor on PATH; it needs \
             libtorch: build it with `cargo build --release -p gcert-regulate --bin {TRAINER}` (see README, \
             \"Training\")"
        ),
        Err(e) => return Err(e).with_context(|| format!("running {}", program.display())),
    };
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => std::process::exit(code),
        None => bail!("{} was stopped by a signal ({status})", program.display()),
    }
}
