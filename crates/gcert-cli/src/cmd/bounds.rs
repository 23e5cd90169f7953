//! `gcert bounds`: exact per-pixel bounds of the generator's images along a latent segment (paper Table 4).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use gcert_certify::pixel_bounds;
use gcert_core::npy::write_npy_checked;
use gcert_core::{Direction, Provenance};
use serde_json::json;

use super::{card_files, check_output, finite, load_network, print_json, read_input};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Generator model card or ONNX file (latent -> image)
    #[arg(long)]
    generator: PathBuf,
    /// Latent point z (.npy)
    #[arg(long)]
    latent: PathBuf,
    /// Mutation direction d (.npy); normalised to unit length
    #[arg(long)]
    direction: PathBuf,
    /// Tolerance E: the segment is z + t·E·d, t in [0, 1]
    #[arg(long, allow_negative_numbers = true, value_parser = finite)]
    eps: f64,
    /// t in [-1, 1] instead of [0, 1]
    #[arg(long)]
    two_sided: bool,
    /// Write the bounds here (.npy of shape [2, ..image shape]: lower, then upper)
    #[arg(long)]
    out: Option<PathBuf>,
    /// Overwrite an existing --out file
    #[arg(long)]
    force: bool,
    /// Print one JSON object instead of text
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    if let Some(p) = &args.out {
        let mut inputs = card_files(&args.generator);
        inputs.extend([args.latent.clone(), args.direction.clone()]);
        check_output(p, args.force, &inputs)?;
    }
    let g = load_network(&args.generator)?;
    let shape = g.single_input_shape("generator")?.to_vec();
    let z = read_input(&args.latent, &shape, "the latent point")?;
    let d = read_input(&args.direction, &shape, "the direction")?;
    let source = args.direction.display().to_string();
    let d = Direction::from_values(d, Provenance::Given { source })?;
    if !(args.eps.is_finite() && args.eps > 0.0) {
        bail!("the tolerance must be positive and finite, found {}", args.eps);
    }
    let signs: &[f64] = if args.two_sided { &[1.0, -1.0] } else { &[1.0] };
    let segments = signs
        .iter()
        .map(|&s| d.segment(&z, s * args.eps))
        .collect::<gcert_core::Result<Vec<_>>>()
        .context("the tolerance is too small to move the latent point")?;
    let start = Instant::now();
    let b = pixel_bounds(g.layers().iter().collect(), &segments)?;
    let time_ms = start.elapsed().as_secs_f64() * 1e3;
    if let Some(p) = &args.out {
        let mut out_shape = vec![2];
        out_shape.extend_from_slice(g.output_shape());
        write_npy_checked(p, &out_shape, &[b.lower.as_slice(), b.upper.as_slice()].concat(), args.force)?;
    }
    if args.json {
        return print_json(&json!({
            "pieces": b.pieces,
            "pixels": b.lower.len(),
            "mean_width": b.mean_width,
            "median_width": b.median_width,
            "time_ms": time_ms,
        }));
    }
    println!("pieces: {}", b.pieces);
    println!("pixels: {}", b.lower.len());
    println!("mean width: {:.6}", b.mean_width);
    println!("median width: {:.6}", b.median_width);
    println!("time: {time_ms:.2} ms");
    Ok(())
}
