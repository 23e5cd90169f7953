//! `gcert`: certify that a network keeps its prediction under semantic mutations of its input.
//!
//! Each subcommand lives in its own module under `cmd/`; this file only parses arguments, sets up logging and
//! turns errors into one message on stderr and exit code 2.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

#[derive(Debug, Parser)]
#[command(name = "gcert", version, about = "Exact robustness certification along latent segments")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Read a card's weights file even if it lies outside the card's folder (absolute, `..`, or a link out of
    /// it); off by default, so that a card from an untrusted place cannot make gcert read other files
    #[arg(long, global = true)]
    allow_outside_weights: bool,
    /// The budget of values every input is checked against before anything is allocated: weights, one
    /// tensor, one layer's output or scratch, one .npy array (docs/limits.md)
    #[arg(long, global = true, value_name = "N", default_value_t = gcert_core::limits::DEFAULT_MAX_ELEMENTS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1 << 40))]
    max_elements: usize,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The exact chain of a network (or a composition) along the segment between two inputs
    Exactline(cmd::exactline::Args),
    /// Evaluate a network on one input
    Eval(cmd::eval::Args),
    /// Independent mutation directions of a generator (exact Jacobian, robust PCA, SVD), global or local
    Directions(cmd::directions::Args),
    /// The images along a latent direction, as a PNG strip
    Mutate(cmd::mutate::Args),
    /// Certify that the classifier keeps its label along a latent (or pixel-space) segment
    Certify(Box<cmd::certify::Args>),
    /// Exact per-pixel bounds of the generator's images along a latent segment
    Bounds(cmd::bounds::Args),
    /// The latent of a real image under a PL generator (GAN inversion), with its reconstruction error
    Invert(cmd::invert::Args),
    /// How continuous a generator is: Def. 3's constant C, path evenness and exact-chain pieces over random
    /// latent pairs
    Continuity(cmd::continuity::Args),
    /// How robust classifiers are over a set of images: invert each image, find each mutation at its latent,
    /// certify, and write results.jsonl, summary.json and a self-contained report.html
    Evaluate(Box<cmd::evaluate::Args>),
    /// Import an ONNX network (.onnx or .onnx.gz) as a model card with its weights beside it
    Import(cmd::import::Args),
    /// Train a generator (WGAN-GP or VAE) on MNIST, optionally with continuity regulation (`--regulate λ`);
    /// runs the gcert-train binary, which needs libtorch
    Train(cmd::train::Args),
}

/// `gcert … | head` closes stdout early; `println!` then panics with "Broken pipe". Leave quietly with the status
/// a process killed by SIGPIPE has (128 + 13), as other command-line tools do, instead of a panic message.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    quiet_on_broken_pipe();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("GCERT_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    cmd::set_load_options(gcert_core::loader::LoadOptions {
        limits: gcert_core::Limits::default().with_max_elements(cli.max_elements),
        allow_outside_weights: cli.allow_outside_weights,
    });
    let result = match cli.command {
        Command::Exactline(a) => cmd::exactline::run(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::Directions(a) => cmd::directions::run(a),
        Command::Mutate(a) => cmd::mutate::run(a),
        Command::Certify(a) => cmd::certify::run(*a),
        Command::Bounds(a) => cmd::bounds::run(a),
        Command::Invert(a) => cmd::invert::run(a),
        Command::Continuity(a) => cmd::continuity::run(a),
        Command::Evaluate(a) => cmd::evaluate::run(*a),
        Command::Import(a) => cmd::import::run(a),
        Command::Train(a) => cmd::train::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
