//! Shared builders for the gcert benchmarks: the DCGAN-shaped generator and convolutional classifier
//! with random weights, segments tuned to a target number of pieces, and the committed trained models' target
//! case (issue 12).

use std::path::PathBuf;
use std::time::Instant;

use gcert_certify::{Problem, ProblemSpec};
use gcert_core::builder::CardBuilder;
use gcert_core::npy::read_npy;
use gcert_core::{Direction, Layer, Network, Segment};
use gcert_directions::{directions, sample_latents, FactorParams};
use gcert_exactline::ExactLine;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Latent 50 → 1×32×32: conv-transpose 50→16→8→4→1 channels, kernel 4, batch-norm + ReLU between, clamp.
pub fn dcgan_generator(latent: usize, seed: u64) -> Network {
    dcgan_generator_with_gain(latent, seed, 1.0)
}

/// The same shape with weights drawn at `gain` (larger image changes per latent step).
pub fn dcgan_generator_with_gain(latent: usize, seed: u64, gain: f64) -> Network {
    dcgan_generator_card(latent, seed, gain).network().expect("valid generator")
}

/// The card of [`dcgan_generator_with_gain`] (e.g. to load the same network elsewhere).
pub fn dcgan_generator_card(latent: usize, seed: u64, gain: f64) -> CardBuilder {
    CardBuilder::new("dcgan", &[latent], seed)
        .gain(gain)
        .reshape(&[latent, 1, 1])
        .conv_transpose2d(16, 4, 1, 0, 0)
        .batch_norm()
        .relu()
        .conv_transpose2d(8, 4, 2, 1, 0)
        .batch_norm()
        .relu()
        .conv_transpose2d(4, 4, 2, 1, 0)
        .batch_norm()
        .relu()
        .conv_transpose2d(1, 4, 2, 1, 0)
        .clamp(0.0, 1.0)
}

/// 1×32×32 → 10: four convolutions (16/32/64/10 channels, kernel 4) and two linear layers.
pub fn conv_classifier(seed: u64) -> Network {
    conv_classifier_card(seed).network().expect("valid classifier")
}

/// The card of [`conv_classifier`].
pub fn conv_classifier_card(seed: u64) -> CardBuilder {
    CardBuilder::new("classifier", &[1, 32, 32], seed)
        .conv2d(16, 4, 2, 1)
        .relu()
        .conv2d(32, 4, 2, 1)
        .relu()
        .conv2d(64, 4, 2, 1)
        .relu()
        .conv2d(10, 4, 1, 0)
        .relu()
        .flatten()
        .linear(32)
        .relu()
        .linear(10)
}

/// A latent point from the standard normal prior and a random unit direction.
pub fn latent_and_direction(k: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut normal = move || {
        let (u1, u2): (f64, f64) = (rng.gen_range(f64::EPSILON..1.0), rng.gen());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    };
    let z: Vec<f64> = (0..k).map(|_| normal()).collect();
    let d: Vec<f64> = (0..k).map(|_| normal()).collect();
    let n = d.iter().map(|v| v * v).sum::<f64>().sqrt();
    (z, d.into_iter().map(|v| v / n).collect())
}

/// The segment `z + t·eps·d`, `t ∈ [0, 1]`.
pub fn segment(z: &[f64], d: &[f64], eps: f64) -> Segment {
    let b = z.iter().zip(d).map(|(z, d)| z + eps * d).collect();
    Segment::new(z.to_vec(), b).expect("valid segment")
}

/// The tolerance whose segment has about `target` pieces (bisection on `eps`, piece counts grow with it).
pub fn eps_for_pieces(engine: &ExactLine<'_>, z: &[f64], d: &[f64], target: usize) -> (f64, usize) {
    let pieces = |eps: f64| engine.chain(&segment(z, d, eps)).expect("chain").pieces();
    let (mut lo, mut hi) = (0.0, 1.0);
    while pieces(hi) < target {
        lo = hi;
        hi *= 2.0;
    }
    for _ in 0..20 {
        let mid = 0.5 * (lo + hi);
        let p = pieces(mid);
        if (p as f64 - target as f64).abs() <= 0.1 * target as f64 {
            return (mid, p);
        }
        if p < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (hi, pieces(hi))
}

/// FLOP/s of this core's f64 GEMM: `matrixmultiply`'s `dgemm` (a BLIS-style pure-Rust GEMM with AVX-512 and
/// AVX2 kernels, the engine's own matrix product until it got packed linear kernels) on 256 × 256 × 256, best
/// of 20. The arithmetic floor of the benches divides by this, so the engine's kernels are measured against an
/// outside one, never against themselves.
pub fn gemm_peak() -> f64 {
    const N: usize = 256;
    let a = vec![0.5; N * N];
    let b = vec![0.25; N * N];
    let mut c = vec![0.0; N * N];
    let best = (0..20)
        .map(|_| {
            let start = Instant::now();
            #[allow(unsafe_code)]
            // SAFETY: A, B and C are N × N row-major slices of their own (strides N and 1), C borrowed mutably.
            unsafe {
                matrixmultiply::dgemm(
                    N,
                    N,
                    N,
                    1.0,
                    a.as_ptr(),
                    N as isize,
                    1,
                    b.as_ptr(),
                    N as isize,
                    1,
                    0.0,
                    c.as_mut_ptr(),
                    N as isize,
                    1,
                );
            }
            std::hint::black_box(&mut c);
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    2.0 * (N as f64).powi(3) / best
}

/// Multiply-adds of one point through `layers` (`Layer::cost`).
pub fn macs_per_point<'a>(layers: impl IntoIterator<Item = &'a Layer>) -> usize {
    layers.into_iter().map(|l| l.cost().0.expect("a finite cost")).sum()
}

/// The median of `v` (the upper one for an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A file of the committed trained models, `fixtures/trained/{name}`.
pub fn trained(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/trained").join(name)
}

/// The latent of test digit `digit` (`latents/gan-z-{digit}.npy`) and the generator's top `rows` global
/// directions there.
pub fn digit_case(g: &Network, digit: usize, rows: usize) -> (Vec<f64>, Vec<Vec<f64>>) {
    let z = read_npy(&trained(&format!("latents/gan-z-{digit}.npy"))).expect("committed latent").data;
    let zs = sample_latents(&z, 1, 0).expect("latent");
    let f = directions(g, &zs, 1, &FactorParams::default()).expect("directions");
    let d = f.directions().rows().into_iter().take(rows).map(|r| r.to_vec()).collect();
    (z, d)
}

/// The target question on `generator ∘ classifier`: ε = 3, two-sided, along `d` from `z`.
pub fn target_problem<'a>(g: &'a Network, n: &'a Network, z: &[f64], d: &[f64]) -> Problem<'a> {
    Problem::new(ProblemSpec {
        generator: g.layers().iter().collect(),
        classifier: n.layers().iter().collect(),
        origin: z.to_vec(),
        direction: Direction::new(d.to_vec()).expect("a unit direction"),
        eps: 3.0,
        two_sided: true,
        label: None,
    })
    .expect("a valid problem")
}
