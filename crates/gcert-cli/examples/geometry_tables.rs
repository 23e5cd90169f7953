//! Named mutations, the paper's Table 2 (independence) and Table 3 (between the ends) over the latents of the
//! first 100 real MNIST test digits; writes docs/geometry-tables.md. Run by `cargo xtask geometry-tables
//! --generator CARD` (an example of the CLI crate, not part of xtask, so that xtask links no BLAS):
//!
//! ```text
//! cargo run -p gcert-cli --example geometry_tables -- --generator CARD --mnist FILE --cache DIR --out PAGE
//! ```
//!
//! The digits are the first `--digits` indices of the fixed seeded test split (the split of
//! `gcert_torch::data::Mnist::split`, reimplemented here without libtorch: the same ChaCha8 shuffle of
//! `0..10000` with seed 20 230 801, the last 2,000 are the test set), padded to 32 × 32. Each is inverted
//! with `gcert_directions::invert` (what `gcert invert` runs); the latents are cached under
//! `~/.cache/gcert/geometry-tables/` keyed by the weights' contents and the inversion settings, so a rerun
//! after a change to the search only redoes the search.

use std::collections::hash_map::DefaultHasher;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use gcert_core::npy::{read_npy, write_npy};
use gcert_core::Network;
use gcert_directions::geometry::{
    between_check, independence_matrix, measure_direction, BetweenCheck, BetweenParams, DirectionGeometry,
    GeometryParams, Kind, NetworkImages, Property, BETWEEN_PROPERTIES,
};
use gcert_directions::{find_mutation, invert, Found, InvertParams, MutationParams, NamedMutation};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Settings of one run.
#[derive(Debug, Clone, clap::Parser)]
struct Settings {
    /// The generator card
    #[arg(long)]
    generator: PathBuf,
    /// How many test digits (the first of the fixed test split)
    #[arg(long, default_value_t = 100)]
    digits: usize,
    /// Inversion restarts per digit
    #[arg(long, default_value_t = 4)]
    restarts: usize,
    /// Inversion iterations per restart
    #[arg(long, default_value_t = 40)]
    iters: usize,
    /// Worker threads
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// The compact MNIST file of `cargo xtask data`
    #[arg(long)]
    mnist: PathBuf,
    /// Where inverted latents are cached
    #[arg(long)]
    cache: PathBuf,
    /// The repository root (paths on the page are shown relative to it)
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// The page to write
    #[arg(long)]
    out: PathBuf,
    /// How many top local directions span `find_mutation`'s search (`MutationParams::candidates`; the CLI's
    /// default is 16)
    #[arg(long, default_value_t = MutationParams::default().candidates)]
    candidates: usize,
}

const SPLIT_SEED: u64 = 20_230_801;
const RAW: usize = 28;
const SIDE: usize = 32;

/// The test digits (padded images, labels, indices in the file) of the fixed split, first `n` of them.
fn test_digits(path: &Path, n: usize) -> Result<Vec<(usize, u8, Vec<f64>)>> {
    let bytes = std::fs::read(path).with_context(|| {
        format!("{}: cannot read the MNIST file (run `cargo xtask data`)", path.display())
    })?;
    if bytes.len() < 12 || &bytes[..8] != b"GCMNIST1" {
        bail!("{}: not a gcert MNIST file; rerun `cargo xtask data --force`", path.display());
    }
    let count = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    let per = RAW * RAW;
    if bytes.len() != 12 + count * (1 + per) {
        bail!("{}: truncated MNIST file; rerun `cargo xtask data --force`", path.display());
    }
    let mut idx: Vec<usize> = (0..count).collect();
    idx.shuffle(&mut ChaCha8Rng::seed_from_u64(SPLIT_SEED));
    let test = idx.split_off(count * 8000 / 10_000);
    let pad = (SIDE - RAW) / 2;
    Ok(test
        .into_iter()
        .take(n)
        .map(|i| {
            let src = &bytes[12 + count + i * per..12 + count + (i + 1) * per];
            let mut img = vec![0.0; SIDE * SIDE];
            for r in 0..RAW {
                for c in 0..RAW {
                    img[(r + pad) * SIDE + c + pad] = f64::from(src[r * RAW + c]) / 255.0;
                }
            }
            (i, bytes[12 + i], img)
        })
        .collect())
}

/// What one digit gave.
struct DigitResult {
    mse: f64,
    found: Vec<Found>,
    /// The measured geometry of each found direction (for Table 2), by transform.
    measured: Vec<DirectionGeometry>,
    /// Table 3 along each found direction, by transform.
    between: Vec<(Property, BetweenCheck)>,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

fn cache_key(generator: &Path, s: &Settings, params: &InvertParams) -> Result<String> {
    let card =
        std::fs::read_to_string(generator).with_context(|| format!("reading {}", generator.display()))?;
    let mut h = DefaultHasher::new();
    card.as_bytes().hash(&mut h);
    // The weights file the card names (the loader's own parsing and path rules).
    let parsed = gcert_core::loader::parse_card(&card, generator)?;
    let weights = gcert_core::loader::weights_path(generator, &parsed.weights, false)?;
    std::fs::read(&weights).with_context(|| format!("reading {}", weights.display()))?.hash(&mut h);
    (params.restarts, params.iters, params.seed, params.prior.to_bits(), s.digits).hash(&mut h);
    Ok(format!("{:016x}", h.finish()))
}

fn main() -> Result<()> {
    let s = <Settings as clap::Parser>::parse();
    run(&s)
}

fn run(s: &Settings) -> Result<()> {
    let started = Instant::now();
    let net = Network::load(&s.generator).with_context(|| format!("loading {}", s.generator.display()))?;
    let digits = test_digits(&s.mnist, s.digits)?;
    let inv_params = InvertParams { restarts: s.restarts, iters: s.iters, ..InvertParams::default() };
    let cache = s.cache.join(cache_key(&s.generator, s, &inv_params)?);
    std::fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(s.threads.max(1)).build()?;
    let params = MutationParams { candidates: s.candidates, ..MutationParams::default() };
    let between_params = BetweenParams::default();
    eprintln!(
        "geometry-tables: {} digits, generator {}, latents cached in {}",
        digits.len(),
        s.generator.display(),
        cache.display()
    );
    let inversion_started = Instant::now();
    let cached = std::sync::atomic::AtomicUsize::new(0);
    let latents: Vec<(Vec<f64>, f64)> = pool.install(|| {
        digits
            .par_iter()
            .map(|(index, _, img)| -> Result<(Vec<f64>, f64)> {
                let zf = cache.join(format!("z-{index}.npy"));
                let mf = cache.join(format!("mse-{index}.npy"));
                if let (Ok(z), Ok(m)) = (read_npy(&zf), read_npy(&mf)) {
                    cached.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return Ok((z.data, m.data[0]));
                }
                let inv = invert(&net, img, inv_params)?;
                write_npy(&zf, &[inv.z.len()], &inv.z)?;
                write_npy(&mf, &[1], &[inv.mse])?;
                eprintln!("  inverted test digit {index}: mse {:.5}", inv.mse);
                Ok((inv.z, inv.mse))
            })
            .collect::<Result<Vec<_>>>()
    })?;
    let inversion_seconds = inversion_started.elapsed().as_secs_f64();
    let search_started = Instant::now();
    let results: Vec<DigitResult> = pool.install(|| {
        latents
            .par_iter()
            .map(|(z, mse)| -> Result<DigitResult> {
                let images = NetworkImages::new(&net)?;
                let mut found = Vec::new();
                let mut measured = Vec::new();
                let mut between = Vec::new();
                for t in Property::ALL {
                    let f = find_mutation(&net, z, t, &params)?;
                    if let Found::Named(m) = &f {
                        let d = m.direction.unit();
                        let g = GeometryParams { step: params.span, points: 13, ..params.geometry };
                        let mut geo = measure_direction(&images, z, d, &g)?;
                        geo.name = Some(t);
                        measured.push(geo);
                        // Table 3 over the verified segment z − span·d → z + span·d.
                        let start: Vec<f64> = z.iter().zip(d).map(|(a, b)| a - params.span * b).collect();
                        let bp = BetweenParams { eps: 2.0 * params.span, ..between_params };
                        between.push((t, between_check(&images, &start, d, &bp)?));
                    }
                    found.push(f);
                }
                Ok(DigitResult { mse: *mse, found, measured, between })
            })
            .collect::<Result<Vec<_>>>()
    })?;
    let search_seconds = search_started.elapsed().as_secs_f64();
    let timing = (inversion_seconds, search_seconds, cached.into_inner());
    let page = render(s, &digits, &results, &params, &between_params, timing, started);
    let out = s.out.clone();
    gcert_core::io::write_atomic(&out, true, |w| w.write_all(page.as_bytes()))
        .with_context(|| format!("writing {}", out.display()))?;
    eprintln!("wrote {} in {:.0} s", out.display(), started.elapsed().as_secs_f64());
    Ok(())
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".to_string(), |x| format!("{x:.digits$}"))
}

fn render(
    s: &Settings,
    digits: &[(usize, u8, Vec<f64>)],
    results: &[DigitResult],
    params: &MutationParams,
    between: &BetweenParams,
    (inversion_seconds, search_seconds, cached): (f64, f64, usize),
    started: Instant,
) -> String {
    let n = results.len();
    let mut p = String::new();
    let root = s.root.canonicalize().unwrap_or_else(|_| s.root.clone());
    let generator = s.generator.canonicalize().unwrap_or_else(|_| s.generator.clone());
    let gen = generator.strip_prefix(&root).unwrap_or(&generator).display();
    let _ = writeln!(p, "# Named mutations, Table 2 and Table 3 on real test digits\n");
    let _ = writeln!(
        p,
        "Generated by `cargo xtask geometry-tables --generator {gen}` (do not edit by hand; see \
         docs/directions.md \"Named mutations\" for the method and docs/mathematics.md for what is promised)."
    );
    let mses: Vec<f64> = results.iter().map(|r| r.mse).collect();
    let _ = writeln!(
        p,
        "\nGenerator `{gen}`. The first {n} digits of the fixed MNIST test split (positions 0–{} of the split; \
         indices {}… in the MNIST file), each \
         inverted with `gcert_directions::invert` ({} restarts, {} iterations; median reconstruction MSE {:.4} \
         per pixel, worst {:.4}). At each latent, `find_mutation` searches the top {} local directions for each \
         transform and verifies the result over t ∈ [−{}, {}]: found when the purity (largest cross effect over \
         the own effect, outline displacements) is at most {} and the linearity (R² of the property against t) \
         at least {}.",
        n.saturating_sub(1),
        digits.iter().take(5).map(|d| d.0.to_string()).collect::<Vec<_>>().join(", "),
        s.restarts,
        s.iters,
        median(mses.clone()).unwrap_or(f64::NAN),
        mses.iter().copied().fold(0.0, f64::max),
        params.candidates,
        params.span,
        params.span,
        params.max_cross,
        params.min_linearity
    );
    let _ = writeln!(
        p,
        "\nRunning time: {:.0} s in all ({:.0} s inverting{}, {:.0} s searching and checking; {} threads).",
        started.elapsed().as_secs_f64(),
        inversion_seconds,
        if cached > 0 { format!(", {cached} of the {n} latents read from the cache") } else { String::new() },
        search_seconds,
        s.threads
    );
    // Per transform.
    let _ = writeln!(p, "\n## Named mutations\n");
    let _ = writeln!(
        p,
        "| transform | found | median calibration (found) | median linearity (found) | median purity (found) | \
         reaches ±15° / ±2 px / ±10 % within \\|t\\| ≤ {} | most common reason when not found |",
        params.span
    );
    let _ = writeln!(p, "|---|---|---|---|---|---|---|");
    for (ti, t) in Property::ALL.iter().enumerate() {
        let named: Vec<&NamedMutation> = results.iter().filter_map(|r| r.found[ti].named()).collect();
        let goal = match t {
            Property::Rotation => Some(15.0),
            Property::TranslateX | Property::TranslateY => Some(2.0),
            Property::Scale => Some(10.0),
            Property::Shear => None,
        };
        let reach = goal.map_or("–".to_string(), |g| {
            let k = named.iter().filter(|m| g / m.per_latent_unit <= params.span).count();
            format!("{k}/{n}")
        });
        let mut reasons: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
        for r in results {
            if let Found::NotFound { why, .. } = &r.found[ti] {
                let key = if why.contains("purity bar") {
                    "impure"
                } else if why.contains("not linear") {
                    "not linear"
                } else if why.contains("more than it shears") {
                    "turns or scales more than it shears"
                } else if why.contains("leaves the image") || why.contains("cannot be verified") {
                    "object leaves the image"
                } else {
                    "no effect"
                };
                *reasons.entry(key).or_default() += 1;
            }
        }
        let reason =
            reasons.iter().max_by_key(|(_, c)| **c).map_or("–".to_string(), |(k, c)| format!("{k} ({c})"));
        let _ = writeln!(
            p,
            "| {} | {}/{n} | {} {}/latent unit | {} | {} | {reach} | {reason} |",
            t.name(),
            named.len(),
            fmt_opt(median(named.iter().map(|m| m.per_latent_unit).collect()), 3),
            t.unit(),
            fmt_opt(median(named.iter().map(|m| m.linearity).collect()), 3),
            fmt_opt(median(named.iter().map(|m| m.purity).collect()), 3),
        );
    }
    let best_purity: Vec<String> = Property::ALL
        .iter()
        .enumerate()
        .map(|(ti, t)| {
            let v: Vec<f64> = results
                .iter()
                .filter_map(|r| match &r.found[ti] {
                    Found::Named(m) => Some(m.purity),
                    Found::NotFound { best, .. } => best.as_ref().map(|b| b.purity),
                })
                .collect();
            format!("{} {}", t.name(), fmt_opt(median(v), 2))
        })
        .collect();
    let _ = writeln!(
        p,
        "\nMedian purity of the best candidate measured, found or not: {}.",
        best_purity.join(", ")
    );
    // Table 2.
    let _ = writeln!(p, "\n## Table 2: independence of the named directions\n");
    let _ = writeln!(
        p,
        "Per digit, the named directions found there are measured over ±{} (13 images) and \
         `geometry::independence_matrix` (tolerance {}) is built from them; a row's kind is represented by its \
         most dominant direction (translation: translate-x or translate-y). Each cell: digits where the row's \
         direction leaves the column's property unchanged / digits where the row's kind was found, and the \
         median ratio (column's effect over the row's own). N/A as in the paper (shear against rotation and \
         scaling, and the diagonal).\n",
        params.span, params.max_cross
    );
    let _ = writeln!(p, "| row \\ column | translation | rotation | scaling | shearing |");
    let _ = writeln!(p, "|---|---|---|---|---|");
    let matrices: Vec<_> =
        results.iter().map(|r| independence_matrix(&r.measured, params.max_cross)).collect();
    for (ri, kind) in Kind::ALL.iter().enumerate() {
        let mut cells = Vec::new();
        for ci in 0..4 {
            let vals: Vec<(f64, bool)> = matrices
                .iter()
                .filter_map(|m| match (m.cells[ri][ci].ratio, m.cells[ri][ci].independent) {
                    (Some(r), Some(i)) => Some((r, i)),
                    _ => None,
                })
                .collect();
            let has_row = matrices.iter().filter(|m| m.representatives[ri].1.is_some()).count();
            cells.push(if vals.is_empty() {
                if ri == ci || has_row == 0 { "–" } else { "N/A" }.to_string()
            } else {
                let yes = vals.iter().filter(|v| v.1).count();
                format!(
                    "{yes}/{} (median {:.2})",
                    vals.len(),
                    median(vals.iter().map(|v| v.0).collect()).unwrap()
                )
            });
        }
        let found = matrices.iter().filter(|m| m.representatives[ri].1.is_some()).count();
        let _ = writeln!(
            p,
            "| {kind:?} (found at {found}/{n}) | {} | {} | {} | {} |",
            cells[0], cells[1], cells[2], cells[3]
        );
    }
    // Table 3.
    let _ = writeln!(p, "\n## Table 3: between the ends along each named direction\n");
    let _ = writeln!(
        p,
        "`geometry::between_check` on the verified segment z − {}·d → z + {}·d of each found direction, {} \
         intermediate images, tolerance {}° and {} pixels (the measurement's own noise, see \
         `BetweenParams::default`). Each cell: intermediate images whose property lies between the two ends' \
         values (within the tolerance) over those checked, and in brackets the fraction without tolerance.\n",
        params.span, params.span, between.samples, between.tolerance_degrees, between.tolerance_pixels
    );
    let names: Vec<&str> = BETWEEN_PROPERTIES.iter().map(|p| p.name()).collect();
    let _ = writeln!(p, "| direction | segments | {} | all |", names.join(" | "));
    let _ = writeln!(p, "|---|---|{}---|", "---|".repeat(names.len()));
    for t in Property::ALL {
        let mut total = BetweenCheck::default();
        for r in results {
            for (p, c) in &r.between {
                if *p == t {
                    total.merge(c);
                }
            }
        }
        let cell = |passed: usize, strict: usize, checked: usize| {
            if checked == 0 {
                "–".to_string()
            } else {
                format!(
                    "{:.1} % ({:.1} %)",
                    100.0 * passed as f64 / checked as f64,
                    100.0 * strict as f64 / checked as f64
                )
            }
        };
        let cols: Vec<String> =
            total.properties.iter().map(|q| cell(q.passed, q.passed_strict, q.checked)).collect();
        let all = total.total();
        let _ = writeln!(
            p,
            "| {} | {} | {} | {} |",
            t.name(),
            total.segments,
            cols.join(" | "),
            cell(all.passed, all.passed_strict, all.checked)
        );
    }
    let labels: Vec<String> = digits.iter().map(|d| d.1.to_string()).collect();
    let _ = writeln!(p, "\nThe digits' labels, in order: {}.", labels.join(""));
    p
}
