//! `gcert directions`: the independent mutation directions of a generator at a latent point (or averaged over
//! prior samples), optionally restricted to a region of the image.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use gcert_core::npy::{read_npy, write_npy_checked};
use gcert_directions::geometry::{
    independence_matrix, measure_direction, GeometryParams, NetworkImages, Property,
};
use gcert_directions::{
    directions, image_shape, local_directions, sample_latents, FactorParams, Factorization, LocalParams,
    NullSpace, Region, RpcaParams,
};
use serde_json::{json, Value};

use super::{
    at_most, card_files, check_output, describe_mutation, finite, fmt_values, load_network, named_mutation,
    print_json, read_input, transform, MutationArgs,
};

/// `--null-space`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NullSpaceArg {
    Gram,
    LowRank,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Generator model card or ONNX file
    #[arg(long)]
    generator: PathBuf,
    /// Latent point (.npy, shaped as the generator's input or flat)
    #[arg(long)]
    latent: PathBuf,
    /// Average JᵀJ over the latent point and N − 1 samples of the standard normal prior (global directions)
    #[arg(long, default_value_t = 1, value_parser = at_most::<100_000>)]
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
    #[arg(long, value_parser = finite)]
    lambda: Option<f64>,
    /// Robust PCA: penalty parameter (default k²/(4‖M‖₁))
    #[arg(long, value_parser = finite)]
    mu: Option<f64>,
    /// Robust PCA: relative residual at which to stop
    #[arg(long, default_value_t = 1e-7, value_parser = finite)]
    tol: f64,
    /// Robust PCA: iteration limit
    #[arg(long, default_value_t = 10_000, value_parser = at_most::<10_000_000>)]
    max_iter: usize,
    /// Singular values of L above rank_tol·σ₁ count toward the rank
    #[arg(long, default_value_t = 1e-6, value_parser = finite)]
    rank_tol: f64,
    /// Latent step over which the finite leak of local directions is measured
    #[arg(long, default_value_t = 1.0, value_parser = finite)]
    step: f64,
    /// Local directions: the background's null space from its Gram matrix (gram: the k − r_B least-moving
    /// eigenvectors, the smallest leak) or from robust PCA's low-rank part (low-rank: the paper's Eq. 15–17)
    #[arg(long, value_enum, default_value_t = NullSpaceArg::Gram)]
    null_space: NullSpaceArg,
    /// Name each direction by what it does to the object's minimum enclosing rectangle (rotation,
    /// translate-x/y, scale, shear), with its calibration and the independence matrix
    #[arg(long)]
    name_geometric: bool,
    /// The direction that realises this transform at the latent point (rotation, translate-x, translate-y,
    /// scale, shear), verified over ±--span: written as the one row of --out, with its calibration
    #[arg(long, value_parser = transform, conflicts_with_all = ["region", "mask", "name_geometric", "samples"])]
    mutation: Option<Property>,
    #[command(flatten)]
    named: MutationArgs,
    /// Naming: the rectangle is measured at t in [-S, S] along each unit direction
    #[arg(long, default_value_t = 0.5, value_parser = finite)]
    geometry_step: f64,
    /// Naming: the largest effect must exceed the second by this factor
    #[arg(long, default_value_t = 2.0, value_parser = finite)]
    dominance: f64,
    /// Naming: cross effects up to this fraction of a direction's own effect count as independent
    #[arg(long, default_value_t = 0.25, value_parser = finite)]
    independence_tol: f64,
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
    serde_json::to_value(f).expect("a factorization serialises")
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
    ) + &if r.split_kept {
        String::new()
    } else {
        format!(
            " | its sparse part was dense ({:.0} % of entries), so the rank is that of JᵀJ itself",
            100.0 * r.sparse_support
        )
    }
}

fn write_rows(path: &Path, rows: &[Vec<f64>], k: usize, force: bool) -> Result<()> {
    let data: Vec<f64> = rows.iter().flatten().copied().collect();
    write_npy_checked(path, &[rows.len(), k], &data, force)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Names each direction by what it does to the object's enclosing rectangle; adds the report to `report`
/// (JSON) and `lines` (text).
fn name_geometric(
    args: &Args,
    net: &gcert_core::Network,
    z: &[f64],
    rows: &[Vec<f64>],
    report: &mut Value,
    lines: &mut Vec<String>,
) -> Result<()> {
    let gen = NetworkImages::new(net)?;
    let params = GeometryParams {
        threshold: args.named.threshold,
        step: args.geometry_step,
        points: 9,
        dominance: args.dominance,
    };
    let mut measured = Vec::with_capacity(rows.len());
    for (i, d) in rows.iter().enumerate() {
        let g = measure_direction(&gen, z, d, &params)
            .with_context(|| format!("naming direction {i} (try another --threshold)"))?;
        measured.push(g);
    }
    let matrix = independence_matrix(&measured, args.independence_tol);
    lines.push(format!(
        "geometry (threshold {}, t in ±{}): per unit latent step; effect = outline displacement in pixels",
        args.named.threshold, args.geometry_step
    ));
    lines.push(format!(
        "{:>4} {:<12} {:>22} {:>9}  effects rot/tx/ty/scale/shear",
        "row", "name", "calibration", "dominance"
    ));
    for (i, g) in measured.iter().enumerate() {
        let cal = g.calibration().map_or("-".to_string(), |(p, v)| format!("{v:.3} {}", p.unit()));
        let name = g.name.map_or("mixed", |p| p.name());
        let e: Vec<String> = g.effects.iter().map(|v| format!("{v:.3}")).collect();
        lines.push(format!("{i:>4} {name:<12} {cal:>22} {:>9.2}  {}", g.dominance, e.join("/")));
    }
    lines.push(format!(
        "independence (row's direction leaves column's property unchanged: ratio <= {}):",
        args.independence_tol
    ));
    lines.push(format!(
        "{:>16} {:>12} {:>12} {:>12} {:>12}",
        "", "translation", "rotation", "scaling", "shearing"
    ));
    for (r, (kind, rep)) in matrix.representatives.iter().enumerate() {
        let cells: Vec<String> = matrix.cells[r]
            .iter()
            .map(|c| match (c.ratio, c.independent) {
                (Some(x), Some(true)) => format!("yes {x:.2}"),
                (Some(x), _) => format!("NO {x:.2}"),
                _ => "N/A".to_string(),
            })
            .collect();
        let label = format!("{kind:?}{}", rep.map_or(" (none)".to_string(), |i| format!(" #{i}")));
        lines
            .push(format!("{label:>16} {:>12} {:>12} {:>12} {:>12}", cells[0], cells[1], cells[2], cells[3]));
    }
    report["geometry"] = json!({
        "params": params,
        "directions": measured.iter().enumerate().map(|(i, g)| g.report(i)).collect::<Vec<_>>(),
        "independence": matrix,
    });
    Ok(())
}

pub fn run(args: Args) -> Result<()> {
    let mut inputs = card_files(&args.generator);
    inputs.push(args.latent.clone());
    inputs.extend(args.mask.clone());
    check_output(&args.out, args.force, &inputs)?;
    let net = load_network(&args.generator)?;
    let k = net.input_len();
    let shape = net.input_point_shape();
    let z = read_input(&args.latent, &shape, "the latent point")?;
    if let Some(transform) = args.mutation {
        let m = named_mutation(&net, &args.generator, &args.latent, &z, transform, &args.named)?;
        write_rows(&args.out, &[m.direction.unit().to_vec()], k, args.force)?;
        if args.json {
            return print_json(&json!({
                "generator": args.generator.display().to_string(),
                "latent_len": k,
                "params": args.named.params(),
                "mutation": m,
                "out": args.out.display().to_string(),
            }));
        }
        println!("generator: {} (latent {k}) at {}", net.name(), args.latent.display());
        println!("{}", describe_mutation(&m));
        println!("wrote the {transform} direction (1 × {k}) to {}", args.out.display());
        return Ok(());
    }
    let zs = sample_latents(&z, args.samples, args.seed)?;
    let factor = FactorParams {
        rpca: RpcaParams { lambda: args.lambda, mu: args.mu, tol: args.tol, max_iter: args.max_iter },
        rank_tol: args.rank_tol,
    };
    let output = net.output_shape().to_vec();
    let region = match (&args.region, &args.mask) {
        (Some([x, y, w, h]), None) => Some(Region::Rect { x: *x, y: *y, w: *w, h: *h }),
        (None, Some(path)) => {
            let m = read_npy(path)?;
            Some(Region::Mask(m.data.iter().map(|&v| v != 0.0).collect()))
        }
        _ => None,
    };
    let mut report = json!({
        "generator": args.generator.display().to_string(),
        "latent_len": k,
        "output_shape": output,
        "samples": args.samples,
        "seed": args.seed,
        "rank_tol": args.rank_tol,
        "out": args.out.display().to_string(),
    });
    let mut lines = vec![format!(
        "generator: {} (latent {k}, output {output:?}), {} latent point(s)",
        net.name(),
        args.samples
    )];
    let rows: Vec<Vec<f64>> = match region {
        None => {
            let f = directions(&net, &zs, args.samples, &factor)?;
            if f.rank == 0 {
                bail!(
                    "{}: the image does not change along any latent direction at {} (rank 0)",
                    args.generator.display(),
                    args.latent.display()
                );
            }
            report["global"] = factorization_json(&f);
            lines.push(describe("directions", &f));
            lines.push(format!("singular values: {}", fmt_values(&f.singular_values[..f.rank])));
            f.directions().rows().into_iter().map(|r| r.to_vec()).collect()
        }
        Some(region) => {
            let where_ =
                args.mask.as_ref().map_or_else(|| "--region".to_string(), |p| p.display().to_string());
            let image = image_shape(&net)?;
            let mask = region.mask(image).with_context(|| format!("{where_}: unusable region"))?;
            let null_space = match args.null_space {
                NullSpaceArg::Gram => NullSpace::Gram,
                NullSpaceArg::LowRank => NullSpace::LowRank,
            };
            let params = LocalParams { factor, step: args.step, null_space };
            let local = local_directions(&net, &zs, args.samples, &mask, &params)?;
            if local.foreground.rank == 0 {
                bail!(
                    "{}: the region does not change along any latent direction at {} (foreground rank 0)",
                    args.generator.display(),
                    args.latent.display()
                );
            }
            if local.directions.is_empty() {
                bail!(
                    "no local direction: the region's {} direction(s) all move the background (foreground rank {}, \
                     background rank {} of {k})",
                    local.foreground.rank,
                    local.foreground.rank,
                    local.background.rank
                );
            }
            let inside = mask.iter().filter(|&&b| b).count();
            report["local"] = json!({
                "region_values": inside,
                "step": args.step,
                "null_space": null_space,
                "foreground": factorization_json(&local.foreground),
                "background": factorization_json(&local.background),
                "directions": local.directions,
                "dropped": local.dropped,
            });
            lines.push(format!("region: {inside} of {} image values", mask.len()));
            lines.push(describe("foreground", &local.foreground));
            lines.push(describe("background", &local.background));
            lines.push(format!(
                "leak = background change / foreground change (first order | over a step of {}); null space from {}",
                args.step,
                match null_space {
                    NullSpace::Gram => "the background's Gram matrix",
                    NullSpace::LowRank => "robust PCA's low-rank part",
                }
            ));
            lines.push(format!(
                "{:>4} {:>6} {:>8}  {:>23}  {:>23}",
                "row", "source", "kept", "leak before", "leak after"
            ));
            for (i, d) in local.directions.iter().enumerate() {
                lines.push(format!(
                    "{i:>4} {:>6} {:>8.4}  {:>10.3e} | {:>10.3e}  {:>10.3e} | {:>10.3e}",
                    d.source,
                    d.kept,
                    d.before.first_order,
                    d.before.finite,
                    d.after.first_order,
                    d.after.finite
                ));
            }
            if !local.dropped.is_empty() {
                lines.push(format!(
                    "dropped (no component in the background's null space): {:?}",
                    local.dropped
                ));
            }
            local.directions.into_iter().map(|d| d.vector).collect()
        }
    };
    if args.name_geometric {
        name_geometric(&args, &net, &z, &rows, &mut report, &mut lines)?;
    }
    write_rows(&args.out, &rows, k, args.force)?;
    if args.json {
        return print_json(&report);
    }
    lines.push(format!("wrote {} directions ({} × {k}) to {}", rows.len(), rows.len(), args.out.display()));
    for l in lines {
        println!("{l}");
    }
    Ok(())
}
