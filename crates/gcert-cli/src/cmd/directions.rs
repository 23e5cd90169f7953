//! `gcert directions`: the independent mutation directions of a generator at a latent point (or averaged over
//! prior samples), optionally restricted to a region of the image.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use gcert_core::npy::{read_npy, write_npy};
use gcert_directions::{
    directions, image_shape, local_directions, sample_latents, FactorParams, Factorization, LocalParams,
    Region, RpcaParams,
};
use serde_json::{json, Value};

use super::{fmt_values, load_network, print_json, read_input};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Generator model card
    #[arg(long)]
    generator: PathBuf,
    /// Latent point (.npy, shaped as the generator's input or flat)
    #[arg(long)]
    latent: PathBuf,
    /// Average JᵀJ over the latent point and N − 1 samples of the standard normal prior (global directions)
    #[arg(long, default_value_t = 1)]
    samples: usize,
    /// Seed of the prior samples
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Local directions for the rectangle x,y,w,h (pixels: column, row, width, height)
    #[arg(long, value_parser = parse_rect, conflicts_with = "mask")]
    region: Option<[usize; 4]>,
    /// Local directions for a mask (.npy, h×w or c×h×w; non-zero marks the region)
    #[arg(long)]
    mask: Option<PathBuf>,
    /// Where to write the directions (.npy, one unit direction per row)
    #[arg(long)]
    out: PathBuf,
    /// Overwrite --out if it exists
    #[arg(long)]
    force: bool,
    /// Print one JSON object instead of text
    #[arg(long)]
    json: bool,
    /// Robust PCA: weight of the sparse part (default 1/sqrt(k))
    #[arg(long)]
    lambda: Option<f64>,
    /// Robust PCA: penalty parameter (default k²/(4‖M‖₁))
    #[arg(long)]
    mu: Option<f64>,
    /// Robust PCA: relative residual at which to stop
    #[arg(long, default_value_t = 1e-7)]
    tol: f64,
    /// Robust PCA: iteration limit
    #[arg(long, default_value_t = 10_000)]
    max_iter: usize,
    /// Singular values of L above rank_tol·σ₁ count toward the rank
    #[arg(long, default_value_t = 1e-6)]
    rank_tol: f64,
    /// Latent step over which the finite leak of local directions is measured
    #[arg(long, default_value_t = 1.0)]
    step: f64,
}

fn parse_rect(s: &str) -> Result<[usize; 4], String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let values: Result<Vec<usize>, _> = parts.iter().map(|p| p.parse::<usize>()).collect();
    match values {
        Ok(v) if v.len() == 4 => Ok([v[0], v[1], v[2], v[3]]),
        _ => Err(format!("expected x,y,w,h as four non-negative integers, found '{s}'")),
    }
}

fn factorization_json(f: &Factorization) -> Value {
    json!({
        "rank": f.rank,
        "singular_values": f.singular_values,
        "rpca": f.rpca,
    })
}

fn describe(what: &str, f: &Factorization) -> String {
    let r = &f.rpca;
    format!(
        "{what}: rank {} | robust pca: lambda {:.4}, mu {:.4e}, {} iterations, residual {:.2e}{}, sparse share {:.3}",
        f.rank,
        r.lambda,
        r.mu,
        r.iterations,
        r.residual,
        if r.converged { "" } else { " (NOT converged: raise --max-iter)" },
        r.sparse_share
    )
}

fn write_rows(path: &Path, rows: &[Vec<f64>], k: usize) -> Result<()> {
    let data: Vec<f64> = rows.iter().flatten().copied().collect();
    write_npy(path, &[rows.len(), k], &data).with_context(|| format!("cannot write {}", path.display()))
}

pub fn run(args: Args) -> Result<()> {
    if args.out.exists() && !args.force {
        bail!("{}: already exists; pass --force to overwrite it", args.out.display());
    }
    let net = load_network(&args.generator)?;
    let k = net.input_len();
    let shape = if net.input_shapes.len() == 1 { net.input_shapes[0].clone() } else { vec![k] };
    let z = read_input(&args.latent, &shape, "the latent point")?;
    let zs = sample_latents(&z, args.samples, args.seed)?;
    let factor = FactorParams {
        rpca: RpcaParams { lambda: args.lambda, mu: args.mu, tol: args.tol, max_iter: args.max_iter },
        rank_tol: args.rank_tol,
    };
    let image = image_shape(&net)?;
    let region = match (&args.region, &args.mask) {
        (Some([x, y, w, h]), None) => Some(Region::Rect { x: *x, y: *y, w: *w, h: *h }),
        (None, Some(path)) => {
            let m = read_npy(path)?;
            Some(Region::Mask(m.data.iter().map(|&v| v != 0.0).collect()))
        }
        _ => None,
    };
    let header = json!({
        "generator": args.generator,
        "latent_len": k,
        "image_shape": image,
        "samples": args.samples,
        "seed": args.seed,
        "rank_tol": args.rank_tol,
        "out": args.out,
    });
    let Some(region) = region else {
        let f = directions(&net, &zs, args.samples, &factor)?;
        if f.rank == 0 {
            bail!(
                "{}: the image does not change along any latent direction at {} (rank 0)",
                args.generator.display(),
                args.latent.display()
            );
        }
        let rows: Vec<Vec<f64>> = f.directions().rows().into_iter().map(|r| r.to_vec()).collect();
        write_rows(&args.out, &rows, k)?;
        if args.json {
            let mut v = header;
            v["global"] = factorization_json(&f);
            return print_json(&v);
        }
        println!("generator: {} (latent {k}, image {image:?}), {} latent point(s)", net.name, args.samples);
        println!("{}", describe("directions", &f));
        println!("singular values: {}", fmt_values(&f.singular_values[..f.rank]));
        println!("wrote {} directions ({} × {k}) to {}", f.rank, f.rank, args.out.display());
        return Ok(());
    };
    let where_ = args.mask.as_ref().map_or_else(|| "--region".to_string(), |p| p.display().to_string());
    let mask = region.mask(image).with_context(|| format!("{where_}: unusable region"))?;
    let params = LocalParams { factor, step: args.step };
    let local = local_directions(&net, &zs, args.samples, &mask, &params)?;
    if local.directions.is_empty() {
        bail!(
            "no local direction: the region's {} direction(s) all move the background (foreground rank {}, \
             background rank {} of {k})",
            local.foreground.rank,
            local.foreground.rank,
            local.background.rank
        );
    }
    let rows: Vec<Vec<f64>> = local.directions.iter().map(|d| d.vector.clone()).collect();
    write_rows(&args.out, &rows, k)?;
    if args.json {
        let mut v = header;
        v["local"] = json!({
            "region_values": mask.iter().filter(|&&b| b).count(),
            "step": args.step,
            "foreground": factorization_json(&local.foreground),
            "background": factorization_json(&local.background),
            "directions": local.directions.iter().map(|d| json!({
                "source": d.source, "kept": d.kept, "leak_before": d.before, "leak_after": d.after,
            })).collect::<Vec<_>>(),
            "dropped": local.dropped,
        });
        return print_json(&v);
    }
    println!("generator: {} (latent {k}, image {image:?}), {} latent point(s)", net.name, args.samples);
    println!("region: {} of {} image values", mask.iter().filter(|&&b| b).count(), mask.len());
    println!("{}", describe("foreground", &local.foreground));
    println!("{}", describe("background", &local.background));
    println!("leak = background change / foreground change (first order | over a step of {})", args.step);
    println!("{:>4} {:>6} {:>8}  {:>23}  {:>23}", "row", "source", "kept", "leak before", "leak after");
    for (i, d) in local.directions.iter().enumerate() {
        println!(
            "{i:>4} {:>6} {:>8.4}  {:>10.3e} | {:>10.3e}  {:>10.3e} | {:>10.3e}",
            d.source, d.kept, d.before.first_order, d.before.finite, d.after.first_order, d.after.finite
        );
    }
    if !local.dropped.is_empty() {
        println!("dropped (no component in the background's null space): {:?}", local.dropped);
    }
    println!("wrote {} local directions ({} × {k}) to {}", rows.len(), rows.len(), args.out.display());
    Ok(())
}
