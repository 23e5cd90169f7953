//! `gcert mutate`: the images along `z + t·E·d`, or along a style translator's strength α ∈ [0, E] with the
//! image held fixed, as a PNG strip.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use gcert_directions::strip::{ratios, write_mutation_strip, write_strip_png};

use gcert_directions::Property;

use super::{
    at_most, card_files, check_output, describe_mutation, finite, load_network, load_translator,
    named_mutation, positive, read_direction, read_input, style_name, transform, MutationArgs,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Generator model card or ONNX file
    #[arg(long, required_unless_present = "translator")]
    generator: Option<PathBuf>,
    /// Latent point (.npy, shaped as the generator's input or flat)
    #[arg(long, required_unless_present = "translator")]
    latent: Option<PathBuf>,
    /// Direction: FILE.npy:ROW for a row of a directions file, or FILE.npy holding one direction
    #[arg(long, required_unless_present_any = ["mutation", "translator"])]
    direction: Option<OsString>,
    /// Tolerance E: the latent moves by t·E along the unit direction
    #[arg(long, allow_hyphen_values = true, value_parser = finite,
          required_unless_present_any = ["mutation", "translator"])]
    eps: Option<f64>,
    /// A style translator card T(x, α) instead of a generator: the strip runs along α in [0, --strength] with
    /// --image held fixed (docs/stylized.md)
    #[arg(long, conflicts_with_all = ["generator", "latent", "direction", "eps", "mutation", "two_sided"],
          requires_all = ["image", "strength"])]
    translator: Option<PathBuf>,
    /// With --translator: the image x (.npy)
    #[arg(long, requires = "translator")]
    image: Option<PathBuf>,
    /// With --translator: the largest strength E
    #[arg(long, value_parser = positive, requires = "translator", allow_negative_numbers = true)]
    strength: Option<f64>,
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

/// Refuses a strip whose pixels, counted before any image is computed (steps · (w + 1)·scale · h·scale ·
/// channels), would exceed the element budget.
fn check_strip_size(output_shape: &[usize], steps: usize, scale: usize) -> Result<()> {
    let pixels = output_shape.iter().product::<usize>().checked_mul(steps).and_then(|n| {
        let [c, h, w] = match output_shape {
            [c, h, w] => [*c, *h, *w],
            _ => return Some(n),
        };
        let per = (w.checked_add(1)?).checked_mul(h)?.checked_mul(c)?;
        per.checked_mul(steps)?.checked_mul(scale.checked_mul(scale)?)
    });
    let limit = gcert_core::Limits::current().max_elements;
    if pixels.is_none_or(|p| p > limit) {
        bail!(
            "a strip of {steps} images at scale {scale} would exceed the limit of {limit} values (docs/limits.md); \
             use fewer --steps or a smaller --scale"
        );
    }
    Ok(())
}

/// `--translator`: the images `T(x, α)` for α evenly spaced on [0, E].
fn run_translator(args: &Args, card: &Path, image: &Path, strength: f64) -> Result<()> {
    let mut inputs = card_files(card);
    inputs.push(image.to_path_buf());
    check_output(&args.out, args.force, &inputs)?;
    let t = load_translator(card, image)?;
    check_strip_size(t.image_shape(), args.steps, args.scale)?;
    let shape: [usize; 3] = t.image_shape().try_into().map_err(|_| {
        anyhow::anyhow!(
            "{}: a strip needs image outputs [C, H, W], found {:?}",
            card.display(),
            t.image_shape()
        )
    })?;
    let alphas: Vec<f64> = ratios(args.steps, false)?.into_iter().map(|r| r * strength).collect();
    let images = t.images(&alphas)?;
    write_strip_png(&args.out, &images, shape, args.scale, args.force)?;
    println!(
        "wrote {} images of {} along α in [0, {strength}] to {}",
        args.steps,
        style_name(&t),
        args.out.display()
    );
    Ok(())
}

pub fn run(args: Args) -> Result<()> {
    if let (Some(card), Some(image), Some(strength)) = (&args.translator, &args.image, args.strength) {
        return run_translator(&args, card, image, strength);
    }
    let (Some(generator), Some(latent)) = (&args.generator, &args.latent) else {
        bail!("give --generator and --latent, or --translator, --image and --strength");
    };
    let mut inputs = card_files(generator);
    inputs.push(latent.clone());
    inputs.extend(args.direction.as_ref().map(PathBuf::from));
    check_output(&args.out, args.force, &inputs)?;
    let net = load_network(generator)?;
    check_strip_size(net.output_shape(), args.steps, args.scale)?;
    let k = net.input_len();
    let shape = net.input_point_shape();
    let z = read_input(latent, &shape, "the latent point")?;
    let (d, eps, two_sided, what) = match (args.mutation, args.amount, &args.direction, args.eps) {
        (Some(t), Some(amount), _, _) => {
            let m = named_mutation(&net, generator, latent, &z, t, &args.named)?;
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
