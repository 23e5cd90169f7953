//! `gcert invert`: the latent of a real image under a PL generator (GAN inversion), in pure Rust; the
//! method is `gcert_directions::invert` (Levenberg–Marquardt with the exact Jacobian).

use std::path::PathBuf;

use anyhow::Result;
use gcert_core::npy::write_npy_checked;
use gcert_directions::{invert, InvertParams};
use serde_json::json;

use super::{at_most, card_files, check_output, finite, load_network, print_json, read_input};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Generator card (flat latent input, image output)
    #[arg(long)]
    generator: PathBuf,
    /// The image (.npy, shaped as the generator's output or flat)
    #[arg(long)]
    image: PathBuf,
    /// Where to write the latent (.npy, shape [k]); written atomically, never over an input
    #[arg(long)]
    out: PathBuf,
    /// Overwrite --out if it exists
    #[arg(long)]
    force: bool,
    /// Starting points: z = 0 and seeded prior draws
    #[arg(long, default_value_t = 8, value_parser = at_most::<10_000>)]
    restarts: usize,
    /// Levenberg–Marquardt iterations per start
    #[arg(long, default_value_t = 60, value_parser = at_most::<100_000>)]
    iters: usize,
    /// Weight of the Gaussian prior term (finite, at least 0)
    #[arg(long, default_value_t = 1e-3, value_parser = finite)]
    prior: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object instead of text
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let mut inputs = card_files(&args.generator);
    inputs.push(args.image.clone());
    check_output(&args.out, args.force, &inputs)?;
    let net = load_network(&args.generator)?;
    let x = read_input(&args.image, net.output_shape(), "the image")?;
    let params =
        InvertParams { restarts: args.restarts, iters: args.iters, prior: args.prior, seed: args.seed };
    let inv = invert(&net, &x, params)?;
    write_npy_checked(&args.out, &[inv.z.len()], &inv.z, args.force)?;
    if args.json {
        print_json(&json!({
            "latent": args.out.display().to_string(),
            "mse": inv.mse,
            "rmse": inv.mse.sqrt(),
            "restart_mse": inv.restart_mse,
        }))
    } else {
        println!("latent: {} ({} values)", args.out.display(), inv.z.len());
        println!("reconstruction mse: {:.6} per pixel (rmse {:.4})", inv.mse, inv.mse.sqrt());
        Ok(())
    }
}
