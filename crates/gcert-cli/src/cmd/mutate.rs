//! `gcert mutate`: the images along `z + t·E·d`, as a PNG strip.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use gcert_directions::strip::write_mutation_strip;

use super::{at_most, card_files, check_output, finite, load_network, read_direction, read_input};

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
    direction: OsString,
    /// Tolerance E: the latent moves by t·E along the unit direction
    #[arg(long, allow_hyphen_values = true, value_parser = finite)]
    eps: f64,
    /// Number of images, t evenly spaced on [0, 1]
    #[arg(long, default_value_t = 9, value_parser = at_most::<1024>)]
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
    let mut inputs = card_files(&args.generator);
    inputs.extend([args.latent.clone(), PathBuf::from(&args.direction)]);
    check_output(&args.out, args.force, &inputs)?;
    let net = load_network(&args.generator)?;
    // The strip's pixels, counted before any image is computed: steps · (w + 1)·scale · h·scale · channels.
    let pixels = net.output_shape().iter().product::<usize>().checked_mul(args.steps).and_then(|n| {
        let [c, h, w] = match net.output_shape() {
            [c, h, w] => [*c, *h, *w],
            _ => return Some(n),
        };
        let per = (w.checked_add(1)?).checked_mul(h)?.checked_mul(c)?;
        per.checked_mul(args.steps)?.checked_mul(args.scale.checked_mul(args.scale)?)
    });
    let limit = gcert_core::Limits::current().max_elements;
    if pixels.is_none_or(|p| p > limit) {
        bail!(
            "a strip of {} images at scale {} would exceed the limit of {limit} values (docs/limits.md); use fewer \
             --steps or a smaller --scale",
            args.steps,
            args.scale
        );
    }
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
    .with_context(|| format!("direction {}", Path::new(&args.direction).display()))?;
    println!(
        "wrote {} images along {} (eps {}, t in [{}, 1]) to {}",
        args.steps,
        Path::new(&args.direction).display(),
        args.eps,
        if args.two_sided { -1 } else { 0 },
        args.out.display()
    );
    Ok(())
}
