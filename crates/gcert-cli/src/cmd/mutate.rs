//! `gcert mutate`: the images along `z + t·E·d`, as a PNG strip.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use gcert_directions::strip::write_mutation_strip;

use super::{load_network, read_direction, read_input};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Generator model card or ONNX file
    #[arg(long)]
    generator: PathBuf,
    /// Latent point (.npy, shaped as the generator's input or flat)
    #[arg(long)]
    latent: PathBuf,
    /// Direction: FILE.npy:ROW for a row of a directions file, or FILE.npy holding one direction
    #[arg(long)]
    direction: String,
    /// Tolerance E: the latent moves by t·E along the unit direction
    #[arg(long, allow_hyphen_values = true)]
    eps: f64,
    /// Number of images, t evenly spaced on [0, 1]
    #[arg(long, default_value_t = 9)]
    steps: usize,
    /// Spread t over [-1, 1] instead of [0, 1]
    #[arg(long)]
    two_sided: bool,
    /// Pixel magnification
    #[arg(long, default_value_t = 4)]
    scale: usize,
    /// Output PNG
    #[arg(long)]
    out: PathBuf,
    /// Overwrite --out if it exists
    #[arg(long)]
    force: bool,
}

pub fn run(args: Args) -> Result<()> {
    if args.out.exists() && !args.force {
        bail!("{}: already exists; pass --force to overwrite it", args.out.display());
    }
    let net = load_network(&args.generator)?;
    let k = net.input_len();
    let shape = net.input_point_shape();
    let z = read_input(&args.latent, &shape, "the latent point")?;
    let d = read_direction(&args.direction, k)?;
    write_mutation_strip(
        &net,
        &z,
        d.unit(),
        args.eps,
        args.steps,
        args.two_sided,
        &args.out,
        args.scale,
        args.force,
    )
    .with_context(|| format!("direction {}", args.direction))?;
    println!(
        "wrote {} images along {} (eps {}, t in [{}, 1]) to {}",
        args.steps,
        args.direction,
        args.eps,
        if args.two_sided { -1 } else { 0 },
        args.out.display()
    );
    Ok(())
}
