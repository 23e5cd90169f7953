//! `gcert bounds`: exact per-pixel bounds of the generator's images along a latent segment (paper Table 4), or
//! of a style translator's images along its strength α ∈ [0, E] with the image held fixed.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use gcert_certify::pixel_bounds;
use gcert_core::npy::write_npy_checked;
use gcert_core::{Direction, Provenance};
use serde_json::json;

use super::{
    card_files, check_output, finite, load_network, load_translator, positive, print_json, read_input,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Generator model card or ONNX file (latent -> image)
    #[arg(long, required_unless_present = "translator")]
    generator: Option<PathBuf>,
    /// Latent point z (.npy)
    #[arg(long, required_unless_present = "translator")]
    latent: Option<PathBuf>,
    /// Mutation direction d (.npy); normalised to unit length
    #[arg(long, required_unless_present = "translator")]
    direction: Option<PathBuf>,
    /// Tolerance E: the segment is z + t·E·d, t in [0, 1]
    #[arg(long, allow_negative_numbers = true, value_parser = finite, required_unless_present = "translator")]
    eps: Option<f64>,
    /// A style translator card T(x, α) instead of a generator: bounds along α in [0, --strength] with --image
    /// held fixed (docs/stylized.md)
    #[arg(long, conflicts_with_all = ["generator", "latent", "direction", "eps", "two_sided"],
          requires_all = ["image", "strength"])]
    translator: Option<PathBuf>,
    /// With --translator: the image x (.npy)
    #[arg(long, requires = "translator")]
    image: Option<PathBuf>,
    /// With --translator: the largest strength E
    #[arg(long, value_parser = positive, requires = "translator", allow_negative_numbers = true)]
    strength: Option<f64>,
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
        let mut inputs = Vec::new();
        for card in [&args.generator, &args.translator].into_iter().flatten() {
            inputs.extend(card_files(card));
        }
        inputs.extend([&args.latent, &args.direction, &args.image].into_iter().flatten().cloned());
        check_output(p, args.force, &inputs)?;
    }
    let (b, out_shape, time_ms) = match (&args.translator, &args.image, args.strength) {
        (Some(card), Some(image), Some(strength)) => {
            let t = load_translator(card, image)?;
            let segment = t.segment(strength)?;
            let start = Instant::now();
            let b = pixel_bounds(t.layers(), &[segment])?;
            (b, t.image_shape().to_vec(), start.elapsed().as_secs_f64() * 1e3)
        }
        _ => {
            let (Some(generator), Some(latent), Some(direction), Some(eps)) =
                (&args.generator, &args.latent, &args.direction, args.eps)
            else {
                bail!("give --generator, --latent, --direction and --eps, or --translator, --image and --strength");
            };
            let g = load_network(generator)?;
            let shape = g.single_input_shape("generator")?.to_vec();
            let z = read_input(latent, &shape, "the latent point")?;
            let d = read_input(direction, &shape, "the direction")?;
            let source = direction.display().to_string();
            let d = Direction::from_values(d, Provenance::Given { source })?;
            if !(eps.is_finite() && eps > 0.0) {
                bail!("the tolerance must be positive and finite, found {eps}");
            }
            let signs: &[f64] = if args.two_sided { &[1.0, -1.0] } else { &[1.0] };
            let segments = signs
                .iter()
                .map(|&s| d.segment(&z, s * eps))
                .collect::<gcert_core::Result<Vec<_>>>()
                .context("the tolerance is too small to move the latent point")?;
            let start = Instant::now();
            let b = pixel_bounds(g.layers().iter().collect(), &segments)?;
            (b, g.output_shape().to_vec(), start.elapsed().as_secs_f64() * 1e3)
        }
    };
    if let Some(p) = &args.out {
        let mut shape = vec![2];
        shape.extend_from_slice(&out_shape);
        write_npy_checked(p, &shape, &[b.lower.as_slice(), b.upper.as_slice()].concat(), args.force)?;
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
