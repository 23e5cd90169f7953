//! `gcert-train`: trains a piecewise-linear generator (WGAN-GP or VAE) on MNIST, with or without continuity
//! regulation, and exports it as a model card. `gcert train …` runs this binary.
//!
//! ```text
//! gcert-train gan --out runs/g.toml --regulate 100 [--config run.toml] [--iters 2500] [--seed 1] [--judge c.toml]
//! gcert-train vae --out runs/vae.toml --regulate 100 [--epochs 20]
//! gcert-train style --style fog --out runs/fog.toml --regulate 100 [--iters 3000] [--judge c.toml]
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Parser;
use gcert_regulate::config::{ModelKind, TrainConfig};
use gcert_torch::data::{self, Dataset};
use gcert_torch::device::{describe, DeviceChoice};
use gcert_torch::nn::Net;
use gcert_torch::objective::GeneratorLoss;
use gcert_torch::optim::Checkpoint;
use gcert_torch::style::{self as styles, Style};
use gcert_torch::{gan, quality, vae};
use serde_json::json;
use tch::Kind;

#[derive(Debug, Parser)]
#[command(
    name = "gcert-train",
    about = "Train a piecewise-linear generator (WGAN-GP or VAE) or a style translator pair on MNIST, optionally \
             with continuity regulation"
)]
struct Cli {
    /// gan, vae or style (the configuration file's `model` when omitted)
    model: Option<ModelKind>,
    /// The style of a style translator: fog, rain or thick
    #[arg(long)]
    style: Option<Style>,
    /// A gcert-train/1 TOML configuration; flags override it
    #[arg(long)]
    config: Option<PathBuf>,
    /// Model card to write (weights, samples PNG and a JSON report beside it; a VAE's encoder as
    /// <stem>-encoder.toml)
    #[arg(long)]
    out: PathBuf,
    /// Weight λ of the continuity term (0: not regulated)
    #[arg(long, value_name = "λ", allow_hyphen_values = true)]
    regulate: Option<f64>,
    /// Latent pairs per step of the continuity term (default: the step's batch size)
    #[arg(long)]
    regulate_pairs: Option<usize>,
    /// Seed of the continuity term's pairs
    #[arg(long)]
    regulate_seed: Option<u64>,
    /// Generator steps (gan) or translator steps (style)
    #[arg(long)]
    iters: Option<u64>,
    /// Epochs (vae)
    #[arg(long)]
    epochs: Option<u64>,
    /// Seed of the initial weights and of every batch
    #[arg(long)]
    seed: Option<u64>,
    /// Train on plain digits (gan default: geometrically augmented)
    #[arg(long)]
    no_augment: bool,
    /// The compact MNIST file (default: the cache's, written by `cargo xtask data`)
    #[arg(long)]
    data: Option<PathBuf>,
    /// A classifier card that scores 1,000 samples in the report (confidence, class spread)
    #[arg(long)]
    judge: Option<PathBuf>,
    /// Checkpoint folder: an interrupted run of the same configuration resumes from it
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Overwrite existing output files
    #[arg(long)]
    force: bool,
    /// auto (CUDA when available, else CPU), cpu, cuda or cuda:N
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    /// libtorch's CPU threads (1 by default: on a shared machine one thread is the fastest, see gcert-torch)
    #[arg(long, default_value_t = 1)]
    threads: i32,
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

/// The configuration: the file (or the model's defaults) with the flags applied.
fn resolve(cli: &Cli) -> Result<TrainConfig> {
    let mut cfg = match (&cli.config, cli.model) {
        (Some(path), model) => {
            let cfg = TrainConfig::load(path)?;
            if let Some(m) = model.filter(|&m| m != cfg.model) {
                bail!(
                    "{}: the file trains a {:?}, the command line asks for a {m:?}",
                    path.display(),
                    cfg.model
                );
            }
            cfg
        }
        (None, Some(model)) => TrainConfig::new(model),
        (None, None) => bail!("say which model to train (gan, vae or style) or give --config"),
    };
    if let Some(l) = cli.regulate {
        cfg.regulate.lambda = l;
    }
    if let Some(p) = cli.regulate_pairs {
        cfg.regulate.pairs = Some(p);
    }
    if let Some(s) = cli.regulate_seed {
        cfg.regulate.seed = s;
    }
    match (cfg.model, cli.iters, cli.epochs) {
        (ModelKind::Gan | ModelKind::Style, _, Some(_)) => {
            bail!("--epochs is for the vae; a gan or a style trains for --iters")
        }
        (ModelKind::Vae, Some(_), _) => bail!("--iters is for the gan; a vae trains for --epochs"),
        _ => {}
    }
    if let Some(n) = cli.iters {
        cfg.gan.iters = n;
        cfg.style.iters = n;
    }
    match (cfg.model, cli.style) {
        (ModelKind::Style, Some(s)) => cfg.style.style = s,
        (ModelKind::Style, None) if cli.config.is_none() => {
            bail!("say which style to train: --style fog, rain or thick")
        }
        (ModelKind::Gan | ModelKind::Vae, Some(_)) => bail!("--style is for `style`, not a generator"),
        _ => {}
    }
    if let Some(n) = cli.epochs {
        cfg.vae.epochs = n;
    }
    if let Some(s) = cli.seed {
        cfg.gan.seed = s;
        cfg.vae.seed = s;
        cfg.style.seed = s;
    }
    if cli.no_augment {
        cfg.gan.augment = None;
        cfg.vae.augment = None;
    }
    if cli.data.is_some() {
        cfg.data.clone_from(&cli.data);
    }
    if cli.judge.is_some() {
        cfg.judge.clone_from(&cli.judge);
    }
    cfg.check()?;
    Ok(cfg)
}

/// Everything the run will write, refused up front when one exists and `--force` is not given.
fn outputs(out: &Path, model: ModelKind) -> Result<Vec<PathBuf>> {
    if out.extension().and_then(|e| e.to_str()) != Some("toml") {
        bail!("--out must name a .toml model card, found {}", out.display());
    }
    let stem = out.file_stem().and_then(|s| s.to_str()).context("--out has no file name")?;
    let dir = out.parent().unwrap_or(Path::new(""));
    let mut files = vec![
        out.to_path_buf(),
        dir.join(format!("{stem}.safetensors")),
        dir.join(format!("{stem}-samples.png")),
        dir.join(format!("{stem}.json")),
    ];
    if model == ModelKind::Vae {
        files.push(dir.join(format!("{stem}-encoder.toml")));
        files.push(dir.join(format!("{stem}-encoder.safetensors")));
    }
    if model == ModelKind::Style {
        files.push(dir.join(format!("{stem}-reverse.toml")));
        files.push(dir.join(format!("{stem}-reverse.safetensors")));
    }
    Ok(files)
}

fn run(cli: Cli) -> Result<()> {
    if cli.threads < 1 {
        bail!("--threads must be at least 1");
    }
    let mut cfg = resolve(&cli)?;
    let files = outputs(&cli.out, cfg.model)?;
    if !cli.force {
        if let Some(f) = files.iter().find(|f| f.exists()) {
            bail!("{} exists; pass --force to overwrite it", f.display());
        }
    }
    if let Some(dir) = cli.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    tch::set_num_threads(cli.threads);
    let device = cli.device.resolve()?;
    let judge = match &cfg.judge {
        Some(p) => {
            Some(Net::load_card(p, Kind::Float, device).with_context(|| format!("loading {}", p.display()))?)
        }
        None => None,
    };
    let data_path = cfg.data.get_or_insert_with(data::default_mnist_path).clone();
    let (train, test, _) = Dataset::mnist_split(&data_path, device)
        .with_context(|| format!("loading {}", data_path.display()))?;
    let term = cfg.regulate.term()?;
    let extra: Vec<Box<dyn GeneratorLoss>> =
        term.into_iter().map(|t| Box::new(t) as Box<dyn GeneratorLoss>).collect();
    let regulation = if extra.is_empty() {
        "not regulated".to_string()
    } else {
        format!("continuity λ = {}", cfg.regulate.lambda)
    };
    let ck = cli.checkpoint.as_ref().map(Checkpoint::new);
    let mut log = |line: &str| eprintln!("{line}");
    let (generator, model_report, latent) = match cfg.model {
        ModelKind::Style => return run_style(&cli, &cfg, &files, &train, &test, judge.as_ref(), device),
        ModelKind::Gan => {
            eprintln!("training the generator (WGAN-GP, {regulation}) on {}", describe(device));
            let t = gan::train_gan(&cfg.gan, &train, device, &extra, ck.as_ref(), &mut log)?;
            let report = json!({ "seconds": t.report.seconds, "iters": t.report.iters,
                "wasserstein": t.report.wasserstein, "device": t.report.device });
            (t.generator, report, cfg.gan.latent)
        }
        ModelKind::Vae => {
            eprintln!("training the VAE ({regulation}) on {}", describe(device));
            let t = vae::train_vae(&cfg.vae, &train, &test, device, &extra, ck.as_ref(), &mut log)?;
            t.encoder.save_card(&files[4], true)?;
            let report = json!({ "seconds": t.report.seconds, "epochs": t.report.epochs,
                "test_mse": t.report.test_mse, "final_loss": t.report.final_loss, "device": t.report.device });
            // The card's latent (one unit longer than the VAE's with a class-conditional prior).
            let latent = t.decoder.input_shapes[0][0];
            (t.decoder, report, latent)
        }
    };
    generator.save_card(&cli.out, true)?;
    let samples = gan::sample(&generator, latent, 1000, 2)?;
    gcert_torch::image::write_grid(&files[2], &samples.narrow(0, 0, 64), 8, 2)?;
    let quality = match &judge {
        Some(j) => Some(quality::quality(j, &samples)?),
        None => None,
    };
    let report = json!({
        "format": "gcert-train-report/1",
        "card": cli.out.display().to_string(),
        "model": cfg.model,
        "regulate": cfg.regulate,
        "config": cfg,
        "training": model_report,
        "quality": quality,
    });
    std::fs::write(&files[3], serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {}", files[3].display()))?;
    if let Some(q) = &quality {
        eprintln!(
            "quality ({} samples): mean confidence {:.3}, confident {:.3}, class entropy {:.3} bits",
            q.samples, q.mean_confidence, q.confident_fraction, q.class_entropy_bits
        );
    }
    eprintln!("card {}, samples {}, report {}", cli.out.display(), files[2].display(), files[3].display());
    Ok(())
}

/// `gcert-train style`: the translator pair, its card (and the reverse one), a strip PNG and the report.
fn run_style(
    cli: &Cli,
    cfg: &TrainConfig,
    files: &[PathBuf],
    train: &Dataset,
    test: &Dataset,
    judge: Option<&Net>,
    device: tch::Device,
) -> Result<()> {
    use gcert_torch::objective::StrengthLoss;
    let extra: Vec<Box<dyn StrengthLoss>> =
        cfg.regulate.strength_term()?.into_iter().map(|t| Box::new(t) as Box<dyn StrengthLoss>).collect();
    let regulation = if extra.is_empty() {
        "not regulated".to_string()
    } else {
        format!("continuity in α, λ = {}", cfg.regulate.lambda)
    };
    let style = cfg.style.style;
    eprintln!("training the {style} translators ({regulation}) on {}", describe(device));
    let ck = cli.checkpoint.as_ref().map(Checkpoint::new);
    let mut log = |line: &str| eprintln!("{line}");
    let t = styles::train_style(&cfg.style, train, device, &extra, ck.as_ref(), &mut log)?;
    let describe_card = |net: &mut Net, what: &str| {
        net.description = Some(format!(
            "{} ({what}; {}; {regulation}; {} iterations)",
            net.description.as_deref().unwrap_or("style translator"),
            style.describe(),
            cfg.style.iters
        ));
    };
    let (mut forward, mut reverse) = (t.forward, t.reverse);
    describe_card(&mut forward, "real digits → style");
    describe_card(&mut reverse, "style → real digits");
    forward.save_card(&cli.out, true)?;
    reverse.save_card(&files[4], true)?;
    let x = test.images.narrow(0, 0, 8);
    let grid = styles::strip_grid(&forward, &x, style, 1)?;
    gcert_torch::image::write_grid(&files[2], &grid, styles::STRIP_COLUMNS, 2)?;
    let metrics = styles::measure(&forward, test, style, judge, 1000, 1)?;
    let report = json!({
        "format": "gcert-train-report/1",
        "card": cli.out.display().to_string(),
        "reverse_card": files[4].display().to_string(),
        "model": cfg.model,
        "regulate": cfg.regulate,
        "config": cfg,
        "training": t.report,
        "metrics": metrics,
    });
    std::fs::write(&files[3], serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("writing {}", files[3].display()))?;
    eprintln!(
        "identity at α = 0: mean |T(x,0) − x| {:.4}; change at α = 1: {:.4}; judged accuracy on T(x,1): {}",
        metrics.identity_mean_abs,
        metrics.change_at_one,
        metrics.accuracy_translated.map_or("no judge".into(), |a| format!("{a:.3}"))
    );
    eprintln!("card {}, strip {}, report {}", cli.out.display(), files[2].display(), files[3].display());
    Ok(())
}
