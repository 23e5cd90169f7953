//! `cargo xtask`: the maintainer pipelines (see ARCHITECTURE.md).

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {}
}
