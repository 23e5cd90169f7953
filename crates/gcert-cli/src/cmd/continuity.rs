//! `gcert continuity`: a generator's continuity (docs/mathematics.md §7, paper Def. 3, Table 8) over random
//! latent pairs: the constant `C` with the distribution of `d_X / d_Z`, path evenness, straightness and
//! exact-chain pieces per segment; with `--judge`, the generator's sample quality judged by a classifier card;
//! with `--directions` and `--latent`, Table 3's between-ends check of the object's enclosing rectangle.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use gcert_continuity::{measure, quality, Options, Quality, Summary};
use gcert_directions::geometry::{between_check, BetweenCheck, BetweenParams, NetworkImages, PropertyTally};
use serde_json::{json, Value};

use super::{at_most, finite, load_network, print_json, read_directions, read_input};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Generator model card or ONNX file (latent -> image)
    #[arg(long)]
    generator: PathBuf,
    /// Random latent pairs from the standard normal prior
    #[arg(long, default_value_t = 10_000, value_parser = at_most::<10_000_000>)]
    pairs: usize,
    /// How many of the pairs also get an exact chain (0: none, for a generator that is not piecewise linear)
    #[arg(long, default_value_t = 100, value_parser = at_most::<1_000_000>)]
    chains: usize,
    /// Interior points γ per segment for evenness and straightness
    #[arg(long, default_value_t = 15, value_parser = at_most::<10_000>)]
    gammas: usize,
    /// Seed of the latent pairs (and of the --judge samples)
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Classifier card that judges the generator's samples (mean top softmax probability, fraction above 0.9,
    /// class histogram and its entropy)
    #[arg(long)]
    judge: Option<PathBuf>,
    /// Prior samples for --judge
    #[arg(long, default_value_t = 1000, value_parser = at_most::<1_000_000>)]
    samples: usize,
    /// Between-ends check (paper Table 3): directions file (.npy, one direction per row, as written by
    /// `gcert directions --out`); every row is checked from every --latent
    #[arg(long, requires = "latent")]
    directions: Option<PathBuf>,
    /// Between-ends check: segment starts (.npy, each shaped as the generator's input or flat); one or more
    #[arg(long, num_args = 1.., requires = "directions")]
    latent: Vec<PathBuf>,
    /// Between-ends check: each segment is z -> z + eps·d
    #[arg(long, default_value_t = 1.0, value_parser = finite)]
    eps: f64,
    /// Between-ends check: intermediate images per segment (the ends excluded)
    #[arg(long, default_value_t = 20, value_parser = at_most::<100_000>)]
    between: usize,
    /// Between-ends check: pixels brighter than this belong to the object
    #[arg(long, default_value_t = 0.5, value_parser = finite)]
    threshold: f64,
    /// Between-ends check: an angle this many degrees outside the ends' still passes
    #[arg(long, default_value_t = BetweenParams::default().tolerance_degrees, value_parser = finite)]
    tolerance_degrees: f64,
    /// Between-ends check: a centre or size this many pixels outside the ends' still passes
    #[arg(long, default_value_t = BetweenParams::default().tolerance_pixels, value_parser = finite)]
    tolerance_pixels: f64,
    /// Print one JSON object instead of text
    #[arg(long)]
    json: bool,
}

fn summary_json(s: &Option<Summary>) -> Value {
    match s {
        None => Value::Null,
        Some(s) => json!({
            "count": s.count, "min": s.min, "p5": s.p5, "p25": s.p25, "median": s.median,
            "p75": s.p75, "p95": s.p95, "max": s.max, "mean": s.mean,
        }),
    }
}

fn summary_line(s: &Option<Summary>) -> String {
    match s {
        None => "none".into(),
        Some(s) => format!(
            "min {:.4}  p5 {:.4}  median {:.4}  p95 {:.4}  max {:.4}  mean {:.4}  (n = {})",
            s.min, s.p5, s.median, s.p95, s.max, s.mean, s.count
        ),
    }
}

fn quality_json(q: &Option<Quality>) -> Value {
    serde_json::to_value(q).expect("a quality report serialises")
}

/// The rectangle properties of the between-ends check, in `BETWEEN_PROPERTIES` order: JSON key and unit.
const BETWEEN_NAMES: [(&str, &str); 4] =
    [("angle", "°"), ("center_x", " px"), ("center_y", " px"), ("size", " px")];

fn tally_json(t: &PropertyTally) -> Value {
    json!({
        "checked": t.checked, "passed": t.passed, "passed_strict": t.passed_strict, "fraction": t.fraction(),
        "worst": t.worst,
    })
}

fn between_json(b: &Option<(BetweenParams, usize, usize, BetweenCheck)>) -> Value {
    let Some((p, latents, directions, c)) = b else { return Value::Null };
    let total = c.total();
    let mut properties = serde_json::Map::new();
    for ((name, _), t) in BETWEEN_NAMES.iter().zip(&c.properties) {
        properties.insert((*name).into(), tally_json(t));
    }
    json!({
        "eps": p.eps, "samples": p.samples, "threshold": p.threshold,
        "tolerance_degrees": p.tolerance_degrees, "tolerance_pixels": p.tolerance_pixels,
        "latents": latents, "directions": directions, "segments": c.segments, "skipped": c.skipped,
        "properties": properties,
        "checked": total.checked, "passed": total.passed, "passed_strict": total.passed_strict,
        "fraction": total.fraction(),
    })
}

fn percent(t: &PropertyTally) -> String {
    t.fraction().map_or("-".into(), |f| format!("{:.1}%", 100.0 * f))
}

pub fn run(args: Args) -> Result<()> {
    let g = load_network(&args.generator)?;
    g.single_input_shape("generator")?;
    if args.chains > args.pairs {
        bail!("--chains ({}) must not exceed --pairs ({})", args.chains, args.pairs);
    }
    let options = Options {
        pairs: args.pairs,
        gammas: args.gammas,
        chain_pairs: args.chains,
        seed: args.seed,
        ..Options::default()
    };
    let start = Instant::now();
    let r = measure(&g, &options).with_context(|| format!("measuring {}", args.generator.display()))?;
    let judged = match &args.judge {
        None => None,
        Some(path) => {
            let judge = load_network(path)?;
            let q = quality(&g, &judge, args.samples, args.seed)
                .with_context(|| format!("judging {} with {}", args.generator.display(), path.display()))?;
            Some((path, q))
        }
    };
    let between = match &args.directions {
        None => None,
        Some(path) => {
            let k = g.input_len();
            let dirs = read_directions(path, k, "a directions file")?;
            let latents = args
                .latent
                .iter()
                .map(|l| read_input(l, &g.input_shapes()[0], "the latent point"))
                .collect::<Result<Vec<_>>>()?;
            let params = BetweenParams {
                eps: args.eps,
                samples: args.between,
                threshold: args.threshold,
                tolerance_degrees: args.tolerance_degrees,
                tolerance_pixels: args.tolerance_pixels,
            };
            let images = NetworkImages::new(&g)
                .with_context(|| format!("between-ends check on {}", args.generator.display()))?;
            let mut check = BetweenCheck::default();
            for z in &latents {
                for d in &dirs {
                    check.merge(&between_check(&images, z, d, &params).context("between-ends check")?);
                }
            }
            Some((params, latents.len(), dirs.len(), check))
        }
    };
    let time_ms = start.elapsed().as_secs_f64() * 1e3;
    let q = judged.as_ref().map(|(_, q)| q.clone());
    let ratio = Some(r.ratio.clone());
    if args.json {
        return print_json(&json!({
            "generator": args.generator.display().to_string(),
            "pairs": args.pairs,
            "seed": args.seed,
            "c": if r.c.is_finite() { json!(r.c) } else { Value::Null },
            "c_rescaled": if r.c_rescaled.is_finite() { json!(r.c_rescaled) } else { Value::Null },
            "c_rescaled_p5_p95": if r.c_rescaled_p5_p95.is_finite() { json!(r.c_rescaled_p5_p95) } else { Value::Null },
            "ratio": summary_json(&ratio),
            "evenness": summary_json(&r.evenness),
            "straightness": summary_json(&r.straightness),
            "pieces": summary_json(&r.pieces),
            "collapsed": r.collapsed,
            "quality": quality_json(&q),
            "between": between_json(&between),
            "time_ms": time_ms,
        }));
    }
    println!(
        "generator: {} (latent {:?} -> {:?})",
        args.generator.display(),
        g.input_shapes()[0],
        g.output_shape()
    );
    println!("pairs: {} (seed {}), exact chains on {}", args.pairs, args.seed, args.chains);
    println!(
        "C (Def. 3): {:.4}; after the best rescaling of d_X: {:.4} (from p5/p95: {:.4})",
        r.c, r.c_rescaled, r.c_rescaled_p5_p95
    );
    println!("d_X/d_Z: {}", summary_line(&ratio));
    println!("evenness, max |ratio - γ| per segment: {}", summary_line(&r.evenness));
    println!(
        "straightness, max distance from the straight path per segment: {}",
        summary_line(&r.straightness)
    );
    println!("pieces per segment: {}", summary_line(&r.pieces));
    println!("collapsed pairs (G(z1) = G(z2)): {}", r.collapsed);
    if let Some((path, q)) = &judged {
        println!(
            "quality (judge {}, {} samples): mean confidence {:.4}, confident (> 0.9) {:.4}, class entropy {:.3} \
             bits, classes {:?}",
            path.display(),
            q.samples,
            q.mean_confidence,
            q.confident_fraction,
            q.class_entropy_bits,
            q.class_counts
        );
    }
    if let Some((p, latents, directions, c)) = &between {
        println!(
            "between-ends check: {} segments ({latents} latent(s) × {directions} direction(s), z -> z + {}·d), \
             {} skipped (no object); {} intermediate images each, threshold {}, tolerance {}° / {} px",
            c.segments, p.eps, c.skipped, p.samples, p.threshold, p.tolerance_degrees, p.tolerance_pixels
        );
        for ((name, unit), t) in BETWEEN_NAMES.iter().zip(&c.properties) {
            println!(
                "  {name}: {}/{} between the ends ({}), {} without tolerance, worst {:.3}{unit} outside",
                t.passed,
                t.checked,
                percent(t),
                t.passed_strict,
                t.worst
            );
        }
        let t = c.total();
        println!(
            "  all: {}/{} ({}), {} without tolerance",
            t.passed,
            t.checked,
            percent(&t),
            t.passed_strict
        );
    }
    println!("time: {time_ms:.0} ms");
    Ok(())
}
