//! Sample quality of a generator, measured with a fixture classifier: how confidently and how evenly the
//! classifier recognises generated digits, against the same numbers on real test digits.

use tch::{Device, Kind, Tensor};

pub use gcert_core::measures::Quality;

use crate::error::Result;
use crate::nn::Net;

/// Classifier statistics on a batch of images `[n, 1, 32, 32]`.
pub fn quality(classifier: &Net, images: &Tensor) -> Result<Quality> {
    let p = tch::no_grad(|| classifier.forward(images, false))?.softmax(-1, Kind::Float);
    let (top, arg) = p.max_dim(-1, false);
    let n = images.size()[0] as usize;
    let mean_confidence = top.mean(Kind::Float).double_value(&[]);
    let confident_fraction = top.gt(0.9).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
    let arg = Vec::<i64>::try_from(arg.to_device(Device::Cpu))?;
    let mut class_counts = vec![0u64; 10];
    for a in arg {
        if let Some(c) = class_counts.get_mut(a as usize) {
            *c += 1;
        }
    }
    let class_entropy_bits = class_counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let q = c as f64 / n.max(1) as f64;
            -q * q.log2()
        })
        .sum();
    Ok(Quality { samples: n, mean_confidence, confident_fraction, class_counts, class_entropy_bits })
}
