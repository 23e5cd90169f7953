//! `gcert evaluate`: how robust are these classifiers, over these images, to these mutations? A thin front
//! end of `gcert-evaluate` (docs/evaluate.md): it reads the inputs, runs the evaluation on every core with a
//! progress bar, and writes the run folder.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use gcert_evaluate::{finish, manifest, Evaluation, Images, Mode, Mutation, RunDir, Settings, Status};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::{at_most, finite, load_network};
use crate::cmd::certify::MethodArg;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Classifier model card or ONNX file; give several to compare them side by side
    #[arg(long, required = true)]
    classifier: Vec<PathBuf>,
    /// Generator model card or ONNX file (latent -> image)
    #[arg(long)]
    generator: PathBuf,
    /// Images, a .npy of shape [n, C, H, W] in the generator's output range
    #[arg(long, requires = "labels", required_unless_present = "mnist_test")]
    images: Option<PathBuf>,
    /// Labels, a .npy of n integers
    #[arg(long, requires = "images")]
    labels: Option<PathBuf>,
    /// Instead of --images/--labels: the first N digits of the repository's MNIST test split (`cargo xtask data`)
    #[arg(long, value_name = "N", conflicts_with = "images", value_parser = at_most::<10_000>)]
    mnist_test: Option<usize>,
    /// The compact MNIST file for --mnist-test (default: the one `cargo xtask data` writes)
    #[arg(long, requires = "mnist_test")]
    mnist: Option<PathBuf>,
    /// A mutation, ±amount in its unit: rotation:DEG, translate-x:PX, translate-y:PX, scale:PCT, shear:PCT,
    /// local:X,Y,W,H:EPS[:RANK], file:PATH.npy[:ROW]:EPS (repeat for several)
    #[arg(long, required = true)]
    mutation: Vec<String>,
    /// The run folder: run.json, results.jsonl, summary.json, report.html, images/
    #[arg(long)]
    out: PathBuf,
    /// Continue the run in --out (the same inputs and settings), skipping the results it has
    #[arg(long, conflicts_with = "force")]
    resume: bool,
    /// Remove the run files in --out and start over
    #[arg(long)]
    force: bool,
    /// A VAE encoder (image -> latent mean) to use instead of GAN inversion
    #[arg(long)]
    encoder: Option<PathBuf>,
    /// Skip images whose reconstruction error (mean squared error per pixel) is above this
    #[arg(long, default_value_t = 0.02, value_parser = finite)]
    max_mse: f64,
    #[arg(long, value_enum, default_value = "complete")]
    method: MethodArg,
    /// Complete method: scan the whole exact chain instead of the hybrid (the same answers)
    #[arg(long)]
    exact_chain: bool,
    /// Bound evaluations for the incomplete and quantitative methods
    #[arg(long, value_parser = at_most::<100_000_000>)]
    budget: Option<usize>,
    /// Inversion: Levenberg–Marquardt starts, iterations per start, prior weight, seed
    #[arg(long, default_value_t = 8, value_parser = at_most::<1000>)]
    restarts: usize,
    #[arg(long, default_value_t = 60, value_parser = at_most::<100_000>)]
    iters: usize,
    #[arg(long, default_value_t = 1e-3, value_parser = finite)]
    prior: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Images per strip along a mutation in the report (odd)
    #[arg(long, default_value_t = 9, value_parser = at_most::<31>)]
    frames: usize,
    /// Also compute Table 4's per-pixel bounds for named mutations: gcert's exact bounds beside interval bounds
    /// of the transform applied to the image itself
    #[arg(long)]
    precision: bool,
    /// Worker threads (default: all cores)
    #[arg(long, value_parser = at_most::<1024>)]
    threads: Option<usize>,
}

pub fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    // Everything is read and checked before the run folder is touched.
    let mutations: Vec<Mutation> = args.mutation.iter().map(|m| m.parse()).collect::<Result<_, _>>()?;
    let generator = load_network(&args.generator)?;
    let encoder = args.encoder.as_deref().map(load_network).transpose()?;
    let classifiers = args.classifier.iter().map(|c| load_network(c)).collect::<Result<Vec<_>>>()?;
    let (images, images_json) = match (&args.images, &args.labels, args.mnist_test) {
        (Some(x), Some(y), _) => (
            Images::from_npy(x, y)?,
            json!({"images": x.display().to_string(), "labels": y.display().to_string()}),
        ),
        (_, _, Some(n)) => {
            let file = args.mnist.clone().unwrap_or_else(gcert_evaluate::images::default_mnist_path);
            (Images::mnist_test(&file, n)?, json!({"mnist_test": n, "file": file.display().to_string()}))
        }
        _ => anyhow::bail!("give --images and --labels, or --mnist-test N"),
    };
    let settings = Settings {
        method: args.method.into(),
        exact_chain: args.exact_chain,
        budget: args.budget,
        max_mse: args.max_mse,
        restarts: args.restarts,
        iters: args.iters,
        prior: args.prior,
        seed: args.seed,
        frames: args.frames,
        precision: args.precision,
    };
    let eval = Evaluation::new(generator, encoder, classifiers, images, mutations, settings)?;
    let mut inputs = eval.input_files();
    inputs.extend(args.images.iter().cloned());
    inputs.extend(args.labels.iter().cloned());
    let manifest = manifest(&eval, &images_json);
    let mode = if args.resume {
        Mode::Resume
    } else if args.force {
        Mode::Force
    } else {
        Mode::Fresh
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads.unwrap_or(0))
        .build()
        .context("cannot start worker threads")?;
    let dir = RunDir::open(&args.out, mode, &manifest, &inputs)?;
    let total = eval.keys().len();
    let have = dir.existing.len();
    if have > 0 {
        eprintln!(
            "{have} of {total} results already in {}; continuing with the rest",
            args.out.join("results.jsonl").display()
        );
    }
    let certified = AtomicUsize::new(dir.existing.iter().filter(|r| r.status == Status::Certified).count());
    let evaluated = AtomicUsize::new(dir.existing.iter().filter(|r| r.status.evaluated()).count());
    let bar = ProgressBar::new(total as u64);
    bar.set_position(have as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} results, {msg}, {elapsed} elapsed, eta {eta}")
            .expect("valid template"),
    );
    let rate = |c: usize, e: usize| {
        if e == 0 {
            "certified –".to_string()
        } else {
            format!("certified {c}/{e} ({:.1}%)", 100.0 * c as f64 / e as f64)
        }
    };
    bar.set_message(rate(certified.load(Ordering::Relaxed), evaluated.load(Ordering::Relaxed)));
    let progress = |records: &[gcert_evaluate::Record]| {
        let c = records.iter().filter(|r| r.status == Status::Certified).count();
        let e = records.iter().filter(|r| r.status.evaluated()).count();
        let c = certified.fetch_add(c, Ordering::Relaxed) + c;
        let e = evaluated.fetch_add(e, Ordering::Relaxed) + e;
        bar.set_message(rate(c, e));
        bar.inc(records.len() as u64);
    };
    let records = pool.install(|| dir.run(&eval, &progress))?;
    bar.finish_and_clear();
    let summary = finish(&args.out, &manifest, &records, started.elapsed().as_secs_f64())?;
    for c in &summary.cells {
        let ev = c.certified + c.violated + c.unknown;
        println!(
            "{:<24} {:<20} certified {}/{}{}, mean tolerance {} {}, not available {}, skipped {}",
            c.mutation,
            c.classifier,
            c.certified,
            ev,
            c.certified_rate.map_or_else(String::new, |r| format!(" ({:.1}%)", 100.0 * r)),
            c.mean_tolerance.map_or_else(|| "–".into(), |t| format!("{t:.2}")),
            c.unit,
            c.not_available,
            c.skipped
        );
    }
    for p in &summary.precision {
        println!(
            "{:<24} per-pixel bound width (mean/median): gcert {:.3}/{:.3}, interval {:.3}/{:.3}, interval with {} splits {:.3}/{:.3}",
            p.mutation,
            p.gcert_mean,
            p.gcert_median,
            p.interval_mean,
            p.interval_median,
            gcert_evaluate::precision::SPLITS,
            p.interval_split_mean,
            p.interval_split_median
        );
    }
    println!("wrote {}", args.out.join("report.html").display());
    Ok(())
}
