//! `gcert mutate`: the images along `z + t·E·d`, as a PNG strip.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use gcert_directions::strip::write_mutation_strip;

use gcert_directions::Property;

use super::{
    at_most, card_files, check_output, describe_mutation, finite, load_network, named_mutation, positive,
    read_direction, read_input, transform, MutationArgs,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Generator model card or ONNX file
    #[arg(long)]
    generator: PathBuf,
    /// Latent point (.npy, shaped as the generator's input or flat)
    #[arg(long)]
    latent: PathBuf,
    /// Direction: FILE.npy:ROW for a row of a directions file, or FILE.npy holding one direction
    #[arg(long, required_unless_present = "mutation")]
    direction: Option<OsString>,
    /// Tolerance E: the latent moves by t·E along the unit direction
    #[arg(long, allow_hyphen_values = true, value_parser = finite, required_unless_present = "mutation")]
    eps: Option<f64>,
    /// Draw the images along the direction that realises this transform at --latent (rotation, translate-x,
    /// translate-y, scale, shear), over ±--amount in its unit (t in [-1, 1])
    #[arg(long, value_parser = transform, requires = "amount", conflicts_with_all = ["direction", "eps"])]
    mutation: Option<Property>,
    /// With --mutation: how much of the transform each way, in its unit (degrees, pixels, percent)
    #[arg(long, value_parser = positive, requires = "mutation", allow_negative_numbers = true)]
    amount: Option<f64>,
    #[command(flatten)]
    named: MutationArgs,
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
    inputs.push(args.latent.clone());
    inputs.extend(args.direction.as_ref().map(PathBuf::from));
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
    let (d, eps, two_sided, what) = match (args.mutation, args.amount, &args.direction, args.eps) {
        (Some(t), Some(amount), _, _) => {
            let m = named_mutation(&net, &args.generator, &args.latent, &z, t, &args.named)?;
            println!("{}", describe_mutation(&m));
            let eps = m.latent_tolerance(amount)?;
            (m.direction, eps, true, format!("{t} (±{amount} {})", t.unit()))
        }
        (_, _, Some(direction), Some(eps)) => {
            (read_direction(direction, k)?, eps, args.two_sided, Path::new(direction).display().to_string())
        }
        _ => bail!("give --direction and --eps, or --mutation and --amount"),
    };
    write_mutation_strip(&net, &z, d.unit(), eps, args.steps, two_sided, &args.out, args.scale, args.force)
        .with_context(|| format!("direction {what}"))?;
    println!(
        "wrote {} images along {what} (eps {eps}, t in [{}, 1]) to {}",
        args.steps,
        if two_sided { -1 } else { 0 },
        args.out.display()
    );
    Ok(())
}
