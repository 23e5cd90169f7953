//! Sample quality of a generator, judged by a classifier card: how confidently and how evenly the classifier
//! recognises generated images. The same statistics as `gcert-torch`'s training-time `quality` (libtorch), in
//! pure Rust, so a committed generator's quality can be re-measured anywhere.

pub use gcert_core::measures::Quality;
use gcert_core::Network;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::{std_normal, Error, Result};

/// A generated image counts as confidently classified when its top softmax probability exceeds this.
pub const CONFIDENT: f64 = 0.9;

/// Latents per batch of the generator and the judge.
const BATCH: usize = 64;

fn check_judge(judge: &Network) -> Result<()> {
    if judge.input_shapes().len() != 1 {
        return Err(Error::Input(format!(
            "a judge classifies one image, {} takes {} inputs",
            judge.name(),
            judge.input_shapes().len()
        )));
    }
    if judge.output_len() < 2 {
        return Err(Error::Input(format!(
            "a judge needs at least 2 classes, {} has output shape {:?}",
            judge.name(),
            judge.output_shape()
        )));
    }
    Ok(())
}

/// Accumulates the per-image statistics of the judge's logits.
struct Tally {
    confidence: f64,
    confident: usize,
    counts: Vec<u64>,
}

impl Tally {
    fn new(classes: usize) -> Self {
        Tally { confidence: 0.0, confident: 0, counts: vec![0; classes] }
    }

    fn add(&mut self, logits: &[f64]) {
        // Softmax top probability: 1 / Σ exp(l_i − l_max), stable for any logits.
        let (mut arg, mut max) = (0, logits[0]);
        for (i, &l) in logits.iter().enumerate().skip(1) {
            if l > max {
                (arg, max) = (i, l);
            }
        }
        let top = 1.0 / logits.iter().map(|&l| (l - max).exp()).sum::<f64>();
        self.confidence += top;
        self.confident += usize::from(top > CONFIDENT);
        self.counts[arg] += 1;
    }

    fn finish(self) -> Quality {
        let n: u64 = self.counts.iter().sum();
        let class_entropy_bits = self
            .counts
            .iter()
            .filter(|&&c| c > 0)
            .map(|&c| {
                let q = c as f64 / n as f64;
                -q * q.log2()
            })
            .sum();
        Quality {
            samples: n as usize,
            mean_confidence: self.confidence / n as f64,
            confident_fraction: self.confident as f64 / n as f64,
            class_counts: self.counts,
            class_entropy_bits,
        }
    }
}

/// The judge's statistics on `n` given images (row-major, `n ×` the judge's input length).
pub fn judge_images(judge: &Network, images: &[f64], n: usize) -> Result<Quality> {
    check_judge(judge)?;
    if n == 0 {
        return Err(Error::Input("samples must be positive, found 0".into()));
    }
    let classes = judge.output_len();
    let logits = judge.forward(images, n)?;
    let mut tally = Tally::new(classes);
    for l in logits.chunks_exact(classes) {
        tally.add(l);
    }
    Ok(tally.finish())
}

/// The quality of `generator` judged by the classifier `judge` over `samples` latents from the standard normal
/// prior (the seeded ChaCha8 stream of this crate): mean top softmax probability, the fraction above 0.9, the
/// arg-max histogram and its entropy.
///
/// ```
/// use gcert_continuity::quality::quality;
/// use gcert_core::builder::CardBuilder;
///
/// let g = CardBuilder::new("g", &[3], 0).linear(8).relu().linear(6).network()?;
/// let judge = CardBuilder::new("judge", &[6], 1).linear(4).network()?;
/// let q = quality(&g, &judge, 100, 0)?;
/// assert_eq!(q.class_counts.iter().sum::<u64>(), 100);
/// assert!(q.mean_confidence > 0.25 && q.mean_confidence <= 1.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn quality(generator: &Network, judge: &Network, samples: usize, seed: u64) -> Result<Quality> {
    check_judge(judge)?;
    if generator.input_shapes().len() != 1 {
        return Err(Error::Input(format!(
            "a generator takes one latent, {} takes {} inputs",
            generator.name(),
            generator.input_shapes().len()
        )));
    }
    if generator.output_shape() != judge.input_shapes()[0].as_slice() {
        return Err(Error::Input(format!(
            "the generator {} makes images of shape {:?} but the judge {} takes {:?}",
            generator.name(),
            generator.output_shape(),
            judge.name(),
            judge.input_shapes()[0]
        )));
    }
    if samples == 0 {
        return Err(Error::Input("samples must be positive, found 0".into()));
    }
    let k = generator.input_len();
    let classes = judge.output_len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut tally = Tally::new(classes);
    let mut done = 0;
    while done < samples {
        let n = BATCH.min(samples - done);
        let z: Vec<f64> = (0..n * k).map(|_| std_normal(&mut rng)).collect();
        let images = generator.forward(&z, n)?;
        let logits = judge.forward(&images, n)?;
        for l in logits.chunks_exact(classes) {
            tally.add(l);
        }
        done += n;
    }
    Ok(tally.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use gcert_core::card::ModelCard;
    use gcert_core::tensors::{Tensor, TensorStore};
    use std::path::Path;

    /// `x ↦ W x + b` on a flat input (`W` row by row).
    fn affine(name: &str, w: &[&[f64]], b: &[f64]) -> Network {
        let (rows, cols) = (w.len(), w[0].len());
        let card: ModelCard = toml::from_str(&format!(
            "format = \"gcert-model/1\"\nname = \"{name}\"\nweights = \"m.safetensors\"\ninput_shape = [{cols}]\n\
             [[layers]]\nop = \"linear\"\nweight = \"w\"\nbias = \"b\"\n"
        ))
        .unwrap();
        let mut t = TensorStore::new();
        t.insert("w".into(), Tensor::new(vec![rows, cols], w.concat()));
        t.insert("b".into(), Tensor::new(vec![rows], b.to_vec()));
        Network::from_card(&card, &t, Path::new("m.toml")).unwrap()
    }

    fn identity(n: usize) -> Network {
        let rows: Vec<Vec<f64>> =
            (0..n).map(|i| (0..n).map(|j| f64::from(u8::from(i == j))).collect()).collect();
        let rows: Vec<&[f64]> = rows.iter().map(Vec::as_slice).collect();
        affine("identity", &rows, &vec![0.0; n])
    }

    /// A generator that ignores its latent and always makes the logits `ln(1, 2, 5)`: softmax `(1, 2, 5) / 8`.
    #[test]
    fn a_constant_generator_has_the_softmax_of_its_image() {
        let g = affine("g", &[&[0.0, 0.0], &[0.0, 0.0], &[0.0, 0.0]], &[0.0, 2f64.ln(), 5f64.ln()]);
        let q = quality(&g, &identity(3), 100, 7).unwrap();
        assert_eq!(q.samples, 100);
        assert!((q.mean_confidence - 0.625).abs() < 1e-12, "{q:?}");
        assert_eq!(q.confident_fraction, 0.0);
        assert_eq!(q.class_counts, vec![0, 0, 100]);
        assert_eq!(q.class_entropy_bits, 0.0);
    }

    /// Hand-picked logits: top probabilities `e²/(e²+1)` (0.881), `e³/(e³+1)` (0.953), 1/2 (a tie goes to the
    /// first class) and `e⁴/(e⁴+1)` (0.982); classes 0, 1, 0, 1: entropy 1 bit.
    #[test]
    fn judged_images_give_hand_computed_statistics() {
        let images = [2.0, 0.0, -1.0, 2.0, 0.5, 0.5, 0.0, 4.0];
        let q = judge_images(&identity(2), &images, 4).unwrap();
        let s = |x: f64| 1.0 / (1.0 + (-x).exp());
        let mean = (s(2.0) + s(3.0) + 0.5 + s(4.0)) / 4.0;
        assert!((q.mean_confidence - mean).abs() < 1e-12, "{q:?} vs {mean}");
        assert_eq!((q.samples, q.confident_fraction), (4, 0.5));
        assert_eq!(q.class_counts, vec![2, 2]);
        assert!((q.class_entropy_bits - 1.0).abs() < 1e-12);
    }

    /// Logits `(z, −z)` for a standard normal `z`: half the samples in each class (entropy near 1 bit), and the
    /// top probability exceeds 0.9 exactly when `|z| > ln(9) / 2`, which has probability 0.2722.
    #[test]
    fn a_symmetric_generator_splits_the_classes_evenly() {
        let g = affine("g", &[&[1.0], &[-1.0]], &[0.0, 0.0]);
        let q = quality(&g, &identity(2), 4000, 0).unwrap();
        assert_eq!(q.class_counts.iter().sum::<u64>(), 4000);
        assert!((q.class_counts[0] as f64 / 4000.0 - 0.5).abs() < 0.03, "{q:?}");
        assert!(q.class_entropy_bits > 0.99, "{q:?}");
        assert!((q.confident_fraction - 0.2722).abs() < 0.025, "{q:?}");
        assert_eq!(q, quality(&g, &identity(2), 4000, 0).unwrap(), "same seed, same numbers");
    }

    #[test]
    fn mismatched_shapes_and_empty_samples_are_refused() {
        let g = affine("g", &[&[1.0], &[-1.0]], &[0.0, 0.0]);
        let err = quality(&g, &identity(3), 10, 0).unwrap_err().to_string();
        assert!(
            err.contains("the generator g makes images of shape [2] but the judge identity takes [3]"),
            "{err}"
        );
        let err = quality(&g, &identity(2), 0, 0).unwrap_err().to_string();
        assert!(err.contains("samples must be positive"), "{err}");
        let one = affine("one", &[&[1.0, 1.0]], &[0.0]);
        let err = quality(&g, &one, 10, 0).unwrap_err().to_string();
        assert!(err.contains("at least 2 classes"), "{err}");
    }
}
