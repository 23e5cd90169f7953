//! The architectures gcert trains: the paper's Table 5 MNIST classifiers, a pair network, the DCGAN-style
//! piecewise-linear generator (docs/mathematics.md §8), a WGAN critic and a VAE encoder.

use std::fmt;
use std::str::FromStr;

use tch::nn;

use crate::error::{Error, Result};
use crate::nn::{Net, NetBuilder};

/// Shape of every image model input: one 32×32 grey channel.
pub const IMAGE: [i64; 3] = [1, 32, 32];
/// The generator's latent size (docs/mathematics.md §8).
pub const LATENT: i64 = 50;

/// The classifiers of the paper's Table 5 (MNIST).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassifierArch {
    /// 0 conv + 3 linear: 1024 → 128 → 64 → 10.
    Fc3,
    /// 2 conv + 1 linear: conv 16 (k4 s2) → conv 32 (k4 s2) → linear 10.
    Conv2,
    /// 4 conv + 2 linear: conv 8 (k3) → conv 16 (k4 s2) → conv 16 (k3) → conv 32 (k4 s2) → 100 → 10.
    Conv4,
}

impl ClassifierArch {
    pub const ALL: [ClassifierArch; 3] = [ClassifierArch::Fc3, ClassifierArch::Conv2, ClassifierArch::Conv4];

    pub fn name(self) -> &'static str {
        match self {
            ClassifierArch::Fc3 => "fc3",
            ClassifierArch::Conv2 => "conv2",
            ClassifierArch::Conv4 => "conv4",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            ClassifierArch::Fc3 => "0 conv + 3 linear: flatten, linear 1024→128, relu, linear 128→64, relu, linear 64→10",
            ClassifierArch::Conv2 => {
                "2 conv + 1 linear: conv 1→16 k4 s2 p1, relu, conv 16→32 k4 s2 p1, relu, flatten, linear 2048→10"
            }
            ClassifierArch::Conv4 => {
                "4 conv + 2 linear: conv 1→8 k3 p1, relu, conv 8→16 k4 s2 p1, relu, conv 16→16 k3 p1, relu, \
                 conv 16→32 k4 s2 p1, relu, flatten, linear 2048→100, relu, linear 100→10"
            }
        }
    }
}

impl FromStr for ClassifierArch {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "fc3" => Ok(ClassifierArch::Fc3),
            "conv2" => Ok(ClassifierArch::Conv2),
            "conv4" => Ok(ClassifierArch::Conv4),
            _ => Err(Error::input(format!("unknown classifier '{s}': expected fc3, conv2 or conv4"))),
        }
    }
}

impl fmt::Display for ClassifierArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A classifier `[1, 32, 32]` → 10 logits.
pub fn classifier(root: nn::Path<'_>, arch: ClassifierArch, name: &str, seed: u64) -> Net {
    let b = NetBuilder::new(root, name, &IMAGE).seeded(seed);
    let b = match arch {
        ClassifierArch::Fc3 => b.flatten().linear(128).relu().linear(64).relu().linear(10),
        ClassifierArch::Conv2 => b.conv2d(16, 4, 2, 1).relu().conv2d(32, 4, 2, 1).relu().flatten().linear(10),
        ClassifierArch::Conv4 => b
            .conv2d(8, 3, 1, 1)
            .relu()
            .conv2d(16, 4, 2, 1)
            .relu()
            .conv2d(16, 3, 1, 1)
            .relu()
            .conv2d(32, 4, 2, 1)
            .relu()
            .flatten()
            .linear(100)
            .relu()
            .linear(10),
    };
    b.build(arch.describe())
}

/// "Same digit?": two images concatenated on channels, a sigmoid probability out (shape `[1]`).
pub fn pair_net(root: nn::Path<'_>, name: &str, seed: u64) -> Net {
    NetBuilder::concat(root, name, &[IMAGE.to_vec(), IMAGE.to_vec()])
        .seeded(seed)
        .conv2d(16, 4, 2, 1)
        .relu()
        .conv2d(32, 4, 2, 1)
        .relu()
        .flatten()
        .linear(64)
        .relu()
        .linear(1)
        .sigmoid()
        .build(
            "pair network: concat(x_ref, x) on channels, conv 2→16 k4 s2 p1, relu, conv 16→32 k4 s2 p1, relu, \
             flatten, linear 2048→64, relu, linear 64→1, sigmoid (probability of the same digit)",
        )
}

/// The DCGAN-style PL generator: latent `k` → `[1, 32, 32]` in [0, 1]. `widths` are the channels of the
/// first three transposed convolutions (docs/mathematics.md §8: 16, 8, 4); the last maps to 1 channel, then
/// `clamp(0, 1)`.
pub fn generator(root: nn::Path<'_>, latent: i64, widths: [i64; 3], name: &str, seed: u64) -> Net {
    let [a, b, c] = widths;
    NetBuilder::new(root, name, &[latent])
        .seeded(seed)
        .reshape(&[latent, 1, 1])
        .conv_transpose2d(a, 4, 1, 0, false)
        .batch_norm()
        .relu()
        .conv_transpose2d(b, 4, 2, 1, false)
        .batch_norm()
        .relu()
        .conv_transpose2d(c, 4, 2, 1, false)
        .batch_norm()
        .relu()
        .conv_transpose2d(1, 4, 2, 1, true)
        .clamp(0.0, 1.0)
        .build(format!(
            "PL generator: latent {latent}, reshape [{latent},1,1], convT→{a} k4 s1 p0 (4×4), bn, relu, \
             convT→{b} k4 s2 p1 (8×8), bn, relu, convT→{c} k4 s2 p1 (16×16), bn, relu, convT→1 k4 s2 p1 (32×32), \
             clamp(0,1)"
        ))
}

/// The WGAN-GP critic (no batch-norm, as the gradient penalty asks): `[1, 32, 32]` → a score.
pub fn critic(root: nn::Path<'_>, width: i64, seed: u64) -> Net {
    NetBuilder::new(root, "critic", &IMAGE)
        .seeded(seed)
        .conv2d(width, 4, 2, 1)
        .leaky_relu(0.2)
        .conv2d(2 * width, 4, 2, 1)
        .leaky_relu(0.2)
        .conv2d(4 * width, 4, 2, 1)
        .leaky_relu(0.2)
        .flatten()
        .linear(1)
        .build(format!(
            "WGAN critic: conv {width}/{}/{} k4 s2 p1 with leaky relu 0.2, linear 1",
            2 * width,
            4 * width
        ))
}

/// A VAE encoder: `[1, 32, 32]` → the latent mean (the card), and a head giving the log-variance from the
/// trunk's features (layers `..len-1` of the first network).
pub fn encoder(root: &nn::Path<'_>, latent: i64, name: &str, seed: u64) -> (Net, Net) {
    let mu = NetBuilder::new(root / "enc", name, &IMAGE)
        .seeded(seed)
        .conv2d(16, 4, 2, 1)
        .relu()
        .conv2d(32, 4, 2, 1)
        .relu()
        .flatten()
        .linear(128)
        .relu()
        .linear(latent)
        .build(format!(
            "VAE encoder (latent mean): conv 1→16 k4 s2 p1, relu, conv 16→32 k4 s2 p1, relu, flatten, \
             linear 2048→128, relu, linear 128→{latent}"
        ));
    let logvar = NetBuilder::new(root / "logvar", "logvar", &[128])
        .seeded(seed ^ 1)
        .linear(latent)
        .build("VAE log-variance head");
    (mu, logvar)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn::VarStore, Device};

    #[test]
    fn shapes_are_as_documented() {
        let vs = VarStore::new(Device::Cpu);
        for arch in ClassifierArch::ALL {
            let net = classifier(vs.root() / arch.name(), arch, arch.name(), 0);
            assert_eq!(net.output_shape().unwrap(), [10], "{arch}");
            assert_eq!(arch.name().parse::<ClassifierArch>().unwrap(), arch);
        }
        assert_eq!(pair_net(vs.root() / "pair", "pair", 0).output_shape().unwrap(), [1]);
        assert_eq!(generator(vs.root() / "g", LATENT, [16, 8, 4], "g", 0).output_shape().unwrap(), IMAGE);
        assert_eq!(critic(vs.root() / "c", 8, 0).output_shape().unwrap(), [1]);
        let (mu, lv) = encoder(&(vs.root() / "v"), LATENT, "enc", 0);
        assert_eq!(mu.output_shape().unwrap(), [LATENT]);
        assert_eq!(lv.output_shape().unwrap(), [LATENT]);
        assert!("conv9".parse::<ClassifierArch>().unwrap_err().to_string().contains("expected fc3"));
    }
}
