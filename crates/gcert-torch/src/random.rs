//! Random tensors drawn from a seeded ChaCha stream in Rust rather than libtorch's global generator, so
//! that runs repeat exactly even when other threads (parallel tests) reseed or draw from libtorch.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use tch::{Device, Tensor};

/// Standard normal values of the given shape (f32).
pub fn normal(rng: &mut ChaCha8Rng, shape: &[i64], device: Device) -> Tensor {
    let n: i64 = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.sample(StandardNormal)).collect();
    Tensor::from_slice(&v).reshape(shape).to_device(device)
}

/// Uniform values in `[lo, hi)` of the given shape (f32).
pub fn uniform(rng: &mut ChaCha8Rng, shape: &[i64], lo: f64, hi: f64, device: Device) -> Tensor {
    let n: i64 = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.gen_range(lo..hi) as f32).collect();
    Tensor::from_slice(&v).reshape(shape).to_device(device)
}
