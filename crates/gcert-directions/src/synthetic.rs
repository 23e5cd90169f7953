//! Random generators with known structure, for tests, benchmarks and examples.
//!
//! Each builder returns a model card and its tensors (so that a test can also write them to disk with
//! `gcert_core::network::save_card`) and is deterministic in its seed.

use std::path::Path;

use gcert_core::card::{LayerSpec, ModelCard, Pair, FORMAT};
use gcert_core::tensors::{Tensor, TensorStore};
use gcert_core::Network;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::error::Result;

/// A model card with its tensors.
#[derive(Debug, Clone)]
pub struct Generator {
    pub card: ModelCard,
    pub tensors: TensorStore,
}

impl Generator {
    /// Validates the card into a network (`origin` labels messages).
    pub fn network(&self) -> Result<Network> {
        Ok(Network::from_card(&self.card, &self.tensors, Path::new(&format!("{}.toml", self.card.name)))?)
    }
}

fn card(name: &str, input_shape: Vec<usize>, layers: Vec<LayerSpec>) -> ModelCard {
    ModelCard {
        format: FORMAT.to_string(),
        name: name.to_string(),
        weights: format!("{name}.safetensors"),
        input_shape: Some(input_shape),
        input_shapes: None,
        description: Some("random generator built by gcert_directions::synthetic".to_string()),
        layers,
    }
}

fn gaussian(rng: &mut ChaCha8Rng, len: usize, scale: f64) -> Vec<f64> {
    (0..len).map(|_| scale * rng.sample::<f64, _>(StandardNormal)).collect()
}

fn linear(tensors: &mut TensorStore, name: &str, weight: Tensor, bias: Option<Tensor>) -> LayerSpec {
    tensors.insert(format!("{name}.weight"), weight);
    let bias = bias.map(|b| {
        tensors.insert(format!("{name}.bias"), b);
        format!("{name}.bias")
    });
    LayerSpec::Linear { weight: format!("{name}.weight"), bias }
}

/// A linear generator `z ↦ reshape(B A z + c)` with `A` `r × k` and `B` `side² × r` Gaussian: its Jacobian has
/// rank exactly `r` (almost surely, for `r ≤ min(k, side²)`) at every `z`.
pub fn low_rank(k: usize, r: usize, side: usize, seed: u64) -> Generator {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = side * side;
    let mut tensors = TensorStore::new();
    let a = Tensor::new(vec![r, k], gaussian(&mut rng, r * k, 1.0 / (k as f64).sqrt()));
    let b = Tensor::new(vec![n, r], gaussian(&mut rng, n * r, 0.1 / (r as f64).sqrt()));
    let c = Tensor::new(vec![n], vec![0.5; n]);
    let layers = vec![
        linear(&mut tensors, "0", a, None),
        linear(&mut tensors, "1", b, Some(c)),
        LayerSpec::Reshape { shape: vec![1, side, side] },
    ];
    Generator { card: card("low-rank", vec![k], layers), tensors }
}

/// A generator on a `side × side` image whose pixels outside the rectangle `region = [x, y, w, h]` (the
/// background) depend on only `k_bg` of the `k` latent directions, while the region depends on all of them:
/// `z ↦ relu(W Q z + c)` with `Q` a dense random mixing and `W`'s background rows zero beyond column `k_bg`.
/// The background's Jacobian has rank `k_bg` and a null space of dimension `k − k_bg` that no coordinate axis
/// spans; the bias keeps every relu active near `z = 0`.
pub fn separable(k: usize, k_bg: usize, side: usize, region: [usize; 4], seed: u64) -> Generator {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = side * side;
    let [rx, ry, rw, rh] = region;
    let inside = |p: usize| {
        let (y, x) = (p / side, p % side);
        x >= rx && x < rx + rw && y >= ry && y < ry + rh
    };
    let mut tensors = TensorStore::new();
    let q = Tensor::new(vec![k, k], gaussian(&mut rng, k * k, 1.0 / (k as f64).sqrt()));
    let mut w = gaussian(&mut rng, n * k, 0.05 / (k as f64).sqrt());
    for p in (0..n).filter(|&p| !inside(p)) {
        w[p * k + k_bg..(p + 1) * k].fill(0.0);
    }
    let layers = vec![
        linear(&mut tensors, "0", q, None),
        linear(&mut tensors, "1", Tensor::new(vec![n, k], w), Some(Tensor::new(vec![n], vec![0.5; n]))),
        LayerSpec::Relu,
        LayerSpec::Reshape { shape: vec![1, side, side] },
    ];
    Generator { card: card("separable", vec![k], layers), tensors }
}

/// A DCGAN-shaped generator (docs/mathematics.md §8): latent `k` as `[k, 1, 1]` →
/// `ConvT(16, k4, s1, p0) → BN → ReLU → ConvT(8, k4, s2, p1) → BN → ReLU → ConvT(4) → BN → ReLU → ConvT(1)
/// → clamp(0, 1)`, a `1 × 32 × 32` image.
///
/// Weights are Gaussian; the batch norms' running statistics are calibrated on 64 prior samples (so every
/// pre-activation is about standard), and the last bias and scale put the output at mean about 0.3 and
/// standard deviation about 0.3, so that most pixels are on the clamp's identity face.
pub fn dcgan(k: usize, seed: u64) -> Result<Generator> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut tensors = TensorStore::new();
    let mut layers: Vec<LayerSpec> = Vec::new();
    let mut shape = vec![k, 1, 1];
    let channels = [16, 8, 4, 1];
    let probe = gaussian(&mut rng, 64 * k, 1.0);
    for (i, &cout) in channels.iter().enumerate() {
        let cin = shape[0];
        let name = format!("{}", layers.len());
        let w = gaussian(&mut rng, cin * cout * 16, 1.0 / ((cin * 16) as f64).sqrt());
        tensors.insert(format!("{name}.weight"), Tensor::new(vec![cin, cout, 4, 4], w));
        let (stride, padding) = if i == 0 { (1, 0) } else { (2, 1) };
        let last = i + 1 == channels.len();
        if last {
            tensors.insert(format!("{name}.bias"), Tensor::new(vec![cout], vec![0.0; cout]));
        }
        layers.push(LayerSpec::ConvTranspose2d {
            weight: format!("{name}.weight"),
            bias: last.then(|| format!("{name}.bias")),
            stride: Pair::One(stride),
            padding: Pair::One(padding),
            output_padding: Pair::One(0),
        });
        // Statistics of this layer's output over the probe batch.
        let net =
            Network::from_card(&card("probe", vec![k, 1, 1], layers.clone()), &tensors, Path::new("probe"))?;
        let out = net.forward(&probe, 64)?;
        let out_shape = net.output_shape().to_vec();
        let spatial = out_shape[1] * out_shape[2];
        let mut mean = vec![0.0; cout];
        let mut var = vec![0.0; cout];
        for s in out.chunks_exact(cout * spatial) {
            for c in 0..cout {
                for v in &s[c * spatial..(c + 1) * spatial] {
                    mean[c] += v;
                    var[c] += v * v;
                }
            }
        }
        let count = (64 * spatial) as f64;
        for c in 0..cout {
            mean[c] /= count;
            var[c] = (var[c] / count - mean[c] * mean[c]).max(1e-12);
        }
        if last {
            // Rescale the last layer so the image has mean 0.3 and deviation 0.3 over the probe.
            let scale = 0.3 / var[0].sqrt();
            let wt = tensors.get_mut(&format!("{name}.weight")).expect("inserted above");
            wt.data.iter_mut().for_each(|v| *v *= scale);
            tensors.insert(format!("{name}.bias"), Tensor::new(vec![1], vec![0.3 - mean[0] * scale]));
            layers.push(LayerSpec::Clamp { min: Some(0.0), max: Some(1.0) });
        } else {
            let bn = format!("{}", layers.len());
            let beta = gaussian(&mut rng, cout, 0.1);
            let gamma: Vec<f64> = gaussian(&mut rng, cout, 0.1).iter().map(|g| 1.0 + g).collect();
            tensors.insert(format!("{bn}.weight"), Tensor::new(vec![cout], gamma));
            tensors.insert(format!("{bn}.bias"), Tensor::new(vec![cout], beta));
            tensors.insert(format!("{bn}.running_mean"), Tensor::new(vec![cout], mean));
            tensors.insert(format!("{bn}.running_var"), Tensor::new(vec![cout], var));
            layers.push(LayerSpec::BatchNorm {
                weight: Some(format!("{bn}.weight")),
                bias: Some(format!("{bn}.bias")),
                running_mean: format!("{bn}.running_mean"),
                running_var: format!("{bn}.running_var"),
                eps: 1e-5,
            });
            layers.push(LayerSpec::Relu);
        }
        shape = out_shape;
    }
    Ok(Generator { card: card(&format!("dcgan-{k}"), vec![k, 1, 1], layers), tensors })
}

/// A soft-edged `12 × 6` rectangle at the centre of a `32 × 32` image (edges a logistic ramp about one pixel
/// wide), as a function of its rotation (radians), translation `x`, `y` (pixels) and log scale.
pub fn soft_rectangle(angle: f64, dx: f64, dy: f64, log_scale: f64) -> Vec<f64> {
    let ramp = |t: f64| 1.0 / (1.0 + (-2.5 * t).exp());
    let (c, s, k) = (angle.cos(), angle.sin(), (-log_scale).exp());
    let mut out = Vec::with_capacity(32 * 32);
    for y in 0..32 {
        for x in 0..32 {
            let (px, py) = (x as f64 + 0.5 - 16.0 - dx, y as f64 + 0.5 - 16.0 - dy);
            let (u, v) = (k * (c * px + s * py), k * (-s * px + c * py));
            out.push(ramp(6.0 - u.abs()) * ramp(3.0 - v.abs()));
        }
    }
    out
}

/// A piecewise-linear generator of geometric mutations: `z ↦ clamp(R + D Q z, 0, 1)` on a `1 × 32 × 32`
/// image, where `R` is [`soft_rectangle`] at rest, the four columns of `D` are its derivatives in rotation
/// (per radian), translation `x` and `y` (per pixel) and log scale, and `Q` (`k × k`, `k ≥ 4`) is a random
/// orthogonal mixing, so no latent axis is a geometric direction and `k − 4` directions change nothing. Near
/// `z = 0` the image moves to first order as the transforms do; the four derivative images have different
/// symmetries (odd/even in `x` and `y`), so they are orthogonal and the SVD separates them.
pub fn geometric(k: usize, seed: u64) -> Generator {
    assert!(k >= 4, "a geometric generator needs at least 4 latent dimensions");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Gram-Schmidt on a Gaussian matrix: a random orthogonal Q.
    let mut q = gaussian(&mut rng, k * k, 1.0);
    for i in 0..k {
        for j in 0..i {
            let dot: f64 = (0..k).map(|c| q[i * k + c] * q[j * k + c]).sum();
            for c in 0..k {
                q[i * k + c] -= dot * q[j * k + c];
            }
        }
        let norm: f64 = (0..k).map(|c| q[i * k + c].powi(2)).sum::<f64>().sqrt();
        for c in 0..k {
            q[i * k + c] /= norm;
        }
    }
    let n = 32 * 32;
    let rest = soft_rectangle(0.0, 0.0, 0.0, 0.0);
    let h = 1e-4;
    let derivative = |f: &dyn Fn(f64) -> Vec<f64>| -> Vec<f64> {
        f(h).iter().zip(f(-h)).map(|(a, b)| (a - b) / (2.0 * h)).collect()
    };
    let columns = [
        derivative(&|t| soft_rectangle(t, 0.0, 0.0, 0.0)),
        derivative(&|t| soft_rectangle(0.0, t, 0.0, 0.0)),
        derivative(&|t| soft_rectangle(0.0, 0.0, t, 0.0)),
        derivative(&|t| soft_rectangle(0.0, 0.0, 0.0, t)),
    ];
    // D is n × k with zero columns beyond the fourth.
    let mut d = vec![0.0; n * k];
    for (j, col) in columns.iter().enumerate() {
        for p in 0..n {
            d[p * k + j] = col[p];
        }
    }
    let mut tensors = TensorStore::new();
    let layers = vec![
        linear(&mut tensors, "0", Tensor::new(vec![k, k], q), None),
        linear(&mut tensors, "1", Tensor::new(vec![n, k], d), Some(Tensor::new(vec![n], rest))),
        LayerSpec::Clamp { min: Some(0.0), max: Some(1.0) },
        LayerSpec::Reshape { shape: vec![1, 32, 32] },
    ];
    Generator { card: card("geometric", vec![k], layers), tensors }
}
