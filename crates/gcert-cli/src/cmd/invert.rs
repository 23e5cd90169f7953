//! `gcert invert`: the latent of a real image under a PL generator (GAN inversion), in pure Rust.
//!
//! Minimises `‖G(z) − x‖² / n + prior · ‖z‖² / k` by Levenberg–Marquardt with the generator's exact Jacobian
//! (gcert-directions' forward-mode `J` on `z`'s affine piece), from `z = 0` and seeded prior draws; the best
//! start wins. No libtorch is needed.

use std::path::PathBuf;

use anyhow::{bail, Result};
use gcert_core::npy::write_npy_checked;
use gcert_core::Network;
use gcert_directions::{sample_latents, JacobianPlan};
use serde_json::json;

use super::{at_most, card_files, check_output, finite, load_network, print_json, read_input};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Generator card (flat latent input, image output)
    #[arg(long)]
    generator: PathBuf,
    /// The image (.npy, shaped as the generator's output or flat)
    #[arg(long)]
    image: PathBuf,
    /// Where to write the latent (.npy, shape [k]); written atomically, never over an input
    #[arg(long)]
    out: PathBuf,
    /// Overwrite --out if it exists
    #[arg(long)]
    force: bool,
    /// Starting points: z = 0 and seeded prior draws
    #[arg(long, default_value_t = 8, value_parser = at_most::<10_000>)]
    restarts: usize,
    /// Levenberg–Marquardt iterations per start
    #[arg(long, default_value_t = 60, value_parser = at_most::<100_000>)]
    iters: usize,
    /// Weight of the Gaussian prior term (finite, at least 0)
    #[arg(long, default_value_t = 1e-3, value_parser = finite)]
    prior: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object instead of text
    #[arg(long)]
    json: bool,
}

/// The result of one inversion.
#[derive(Debug, Clone, PartialEq)]
pub struct Inversion {
    pub z: Vec<f64>,
    /// Per-pixel mean squared error of `G(z)` against the image.
    pub mse: f64,
    pub restart_mse: Vec<f64>,
}

fn objective(net: &Network, z: &[f64], x: &[f64], prior: f64) -> Result<(f64, f64, Vec<f64>)> {
    let g = net.forward(z, 1)?;
    let r: Vec<f64> = g.iter().zip(x).map(|(a, b)| a - b).collect();
    let mse = r.iter().map(|v| v * v).sum::<f64>() / r.len() as f64;
    let reg = prior * z.iter().map(|v| v * v).sum::<f64>() / z.len() as f64;
    Ok((mse + reg, mse, r))
}

/// Solves the symmetric positive definite system `a · d = b` (`k × k`, row-major) by Cholesky.
fn solve_spd(a: &[f64], b: &[f64], k: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; k * k];
    for i in 0..k {
        for j in 0..=i {
            let s = a[i * k + j] - (0..j).map(|p| l[i * k + p] * l[j * k + p]).sum::<f64>();
            if i == j {
                if s <= 0.0 {
                    return None;
                }
                l[i * k + i] = s.sqrt();
            } else {
                l[i * k + j] = s / l[j * k + j];
            }
        }
    }
    let mut y = vec![0.0; k];
    for i in 0..k {
        y[i] = (b[i] - (0..i).map(|p| l[i * k + p] * y[p]).sum::<f64>()) / l[i * k + i];
    }
    let mut d = vec![0.0; k];
    for i in (0..k).rev() {
        d[i] = (y[i] - (i + 1..k).map(|p| l[p * k + i] * d[p]).sum::<f64>()) / l[i * k + i];
    }
    Some(d)
}

/// Inverts `net` for the image `x` (flat, `net.output_len()` values).
pub fn invert(
    net: &Network,
    x: &[f64],
    restarts: usize,
    iters: usize,
    prior: f64,
    seed: u64,
) -> Result<Inversion> {
    if net.input_shapes.len() != 1 || net.input_shapes[0].len() != 1 {
        bail!(
            "{}: inversion needs a generator with a flat latent input, found {:?}",
            net.path.display(),
            net.input_shapes
        );
    }
    if restarts == 0 {
        bail!("--restarts must be at least 1");
    }
    let plan = JacobianPlan::new(net);
    let (k, n) = (plan.latent_len(), plan.output_len());
    let starts = sample_latents(&vec![0.0; k], restarts, seed)?;
    let mut best: Option<Inversion> = None;
    let mut restart_mse = Vec::with_capacity(restarts);
    for s in 0..restarts {
        let mut z = starts[s * k..(s + 1) * k].to_vec();
        let (mut f, mut mse, mut r) = objective(net, &z, x, prior)?;
        let mut lambda = 1e-3;
        for _ in 0..iters {
            let j = plan.jacobian(&z)?;
            let j = j.as_standard_layout();
            let jv = j.as_slice().expect("standard layout");
            // Normal equations of the damped Gauss–Newton step: (JᵀJ/n + p/k I + λ diag) δ = −(Jᵀr/n + p/k z).
            let mut a = vec![0.0; k * k];
            let mut b = vec![0.0; k];
            for row in 0..n {
                let jr = &jv[row * k..(row + 1) * k];
                for p in 0..k {
                    if jr[p] == 0.0 {
                        continue;
                    }
                    b[p] -= jr[p] * r[row] / n as f64;
                    for q in 0..=p {
                        a[p * k + q] += jr[p] * jr[q] / n as f64;
                    }
                }
            }
            for p in 0..k {
                for q in 0..p {
                    a[q * k + p] = a[p * k + q];
                }
                a[p * k + p] += prior / k as f64;
                b[p] -= prior / k as f64 * z[p];
            }
            let mut improved = false;
            for _ in 0..8 {
                let mut damped = a.clone();
                for p in 0..k {
                    damped[p * k + p] += lambda * (a[p * k + p] + 1e-9);
                }
                let Some(d) = solve_spd(&damped, &b, k) else {
                    lambda *= 4.0;
                    continue;
                };
                let trial: Vec<f64> = z.iter().zip(&d).map(|(a, b)| a + b).collect();
                let (ft, mt, rt) = objective(net, &trial, x, prior)?;
                if ft < f {
                    (z, f, mse, r) = (trial, ft, mt, rt);
                    lambda = (lambda / 3.0).max(1e-9);
                    improved = true;
                    break;
                }
                lambda *= 4.0;
            }
            if !improved {
                break;
            }
        }
        restart_mse.push(mse);
        if best.as_ref().is_none_or(|b| mse < b.mse) {
            best = Some(Inversion { z, mse, restart_mse: Vec::new() });
        }
    }
    let mut best = best.expect("at least one restart");
    best.restart_mse = restart_mse;
    Ok(best)
}

pub fn run(args: Args) -> Result<()> {
    let mut inputs = card_files(&args.generator);
    inputs.push(args.image.clone());
    check_output(&args.out, args.force, &inputs)?;
    if args.prior < 0.0 {
        bail!("--prior must be at least 0, found {}", args.prior);
    }
    let net = load_network(&args.generator)?;
    let x = read_input(&args.image, net.output_shape(), "the image")?;
    let inv = invert(&net, &x, args.restarts, args.iters, args.prior, args.seed)?;
    write_npy_checked(&args.out, &[inv.z.len()], &inv.z, args.force)?;
    if args.json {
        print_json(&json!({
            "latent": args.out.display().to_string(),
            "mse": inv.mse,
            "rmse": inv.mse.sqrt(),
            "restart_mse": inv.restart_mse,
        }))
    } else {
        println!("latent: {} ({} values)", args.out.display(), inv.z.len());
        println!("reconstruction mse: {:.6} per pixel (rmse {:.4})", inv.mse, inv.mse.sqrt());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_solves() {
        let a = [4.0, 2.0, 2.0, 3.0];
        let d = solve_spd(&a, &[2.0, 1.0], 2).unwrap();
        assert!(
            (4.0 * d[0] + 2.0 * d[1] - 2.0).abs() < 1e-12 && (2.0 * d[0] + 3.0 * d[1] - 1.0).abs() < 1e-12
        );
        assert!(solve_spd(&[-1.0], &[1.0], 1).is_none());
    }

    #[test]
    fn recovers_a_latent_the_generator_can_reach() {
        use gcert_core::builder::CardBuilder;
        let net =
            CardBuilder::new("g", &[4], 3).linear(32).relu().linear(16).clamp(0.0, 1.0).network().unwrap();
        let z_true = [0.3, -0.5, 0.8, 0.1];
        let x = net.forward(&z_true, 1).unwrap();
        let inv = invert(&net, &x, 4, 60, 1e-6, 0).unwrap();
        assert_eq!(inv.restart_mse.len(), 4);
        assert!(inv.mse < 1e-8, "mse {}", inv.mse);
        let y = net.forward(&inv.z, 1).unwrap();
        let d = y.iter().zip(&x).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(d < 1e-3, "{d}");

        let classifier = CardBuilder::new("c", &[1, 4, 4], 3).flatten().linear(2).network().unwrap();
        let err = invert(&classifier, &[0.0; 2], 1, 1, 0.0, 0).unwrap_err().to_string();
        assert!(err.contains("flat latent input"), "{err}");
        assert!(invert(&net, &x, 0, 1, 0.0, 0).unwrap_err().to_string().contains("--restarts"));
    }
}
