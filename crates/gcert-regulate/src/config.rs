//! Training configurations for `gcert-train` (and `gcert train`): a TOML file of format `gcert-train/1`.
//!
//! ```toml
//! format = "gcert-train/1"
//! model = "gan"                 # gan (WGAN-GP), vae, or style (a style translator pair)
//! data = "mnist.bin"            # optional; default: the cache's, written by `cargo xtask data`
//! judge = "classifier.toml"     # optional; a classifier card that scores the samples in the report
//!
//! [gan]                         # any field of gcert_torch::gan::GanConfig; missing ones keep their defaults
//! iters = 2500
//! seed = 1
//!
//! [vae]                         # any field of gcert_torch::vae::VaeConfig
//! epochs = 20
//!
//! [style]                       # any field of gcert_torch::style::StyleConfig
//! style = "fog"                 # fog, rain or thick
//!
//! [regulate]                    # the continuity term (absent or lambda = 0: not regulated); for a style,
//!                               # continuity in the strength α (pairs and reduction do not apply)
//! lambda = 100.0
//! pairs = 64                    # optional; default: as many pairs as the step has latents
//! seed = 0
//! reduction = "per-element"     # or "per-sample"
//! ```
//!
//! Relative paths are resolved against the file's folder. Command-line flags override the file.

use std::path::{Path, PathBuf};

use gcert_torch::gan::GanConfig;
use gcert_torch::style::StyleConfig;
use gcert_torch::vae::VaeConfig;
use serde::{Deserialize, Serialize};

use crate::{Continuity, Error, Reduction, Result, StrengthContinuity};

/// The format tag every configuration file carries.
pub const FORMAT: &str = "gcert-train/1";

/// Which generator a configuration trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// The piecewise-linear generator, trained with WGAN-GP against a critic.
    Gan,
    /// The VAE whose decoder is the same piecewise-linear generator.
    Vae,
    /// A pair of style translators `T(x, α)` (CycleGAN-style, with a strength input α).
    Style,
}

/// The continuity term's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Regulate {
    /// The weight λ (finite, `≥ 0`; 0 trains without the term).
    pub lambda: f64,
    /// Pairs per step (default: as many as the step has latents).
    pub pairs: Option<usize>,
    /// Seed of the term's pairs (independent of the trainer's seed).
    pub seed: u64,
    pub reduction: Reduction,
}

impl Default for Regulate {
    fn default() -> Self {
        Regulate { lambda: 0.0, pairs: None, seed: 0, reduction: Reduction::PerElement }
    }
}

impl Regulate {
    /// The term to add to the generator's objective, or `None` when `λ = 0`.
    pub fn term(&self) -> Result<Option<Continuity>> {
        let term = Continuity::new(self.lambda, self.seed)?.with_reduction(self.reduction);
        let term = match self.pairs {
            Some(p) => term.with_pairs(p)?,
            None => term,
        };
        Ok((self.lambda > 0.0).then_some(term))
    }

    /// The continuity-in-α term of a style translator, or `None` when `λ = 0`.
    pub fn strength_term(&self) -> Result<Option<StrengthContinuity>> {
        let term = StrengthContinuity::new(self.lambda, self.seed)?;
        Ok((self.lambda > 0.0).then_some(term))
    }
}

/// A whole configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub format: String,
    pub model: ModelKind,
    #[serde(default)]
    pub data: Option<PathBuf>,
    #[serde(default)]
    pub judge: Option<PathBuf>,
    #[serde(default)]
    pub gan: GanConfig,
    #[serde(default)]
    pub vae: VaeConfig,
    #[serde(default)]
    pub style: StyleConfig,
    #[serde(default)]
    pub regulate: Regulate,
}

impl TrainConfig {
    /// The defaults for `model`, with no file.
    pub fn new(model: ModelKind) -> Self {
        TrainConfig {
            format: FORMAT.into(),
            model,
            data: None,
            judge: None,
            gan: GanConfig::default(),
            vae: VaeConfig::default(),
            style: StyleConfig::default(),
            regulate: Regulate::default(),
        }
    }

    /// Parses a configuration; `origin` names it in errors and its folder anchors relative paths.
    pub fn parse(text: &str, origin: &Path) -> Result<Self> {
        let bad = |what: String| Error::Config(format!("{}: {what}", origin.display()));
        let mut cfg: TrainConfig = toml::from_str(text).map_err(|e| {
            // One line: where, then what (toml's own message draws the line under it over several lines).
            let line = e.span().map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            let what = e.message().trim().replace('\n', "; ");
            bad(line.map_or(what.clone(), |l| format!("line {l}: {what}")))
        })?;
        if cfg.format != FORMAT {
            return Err(bad(format!("format must be \"{FORMAT}\", found \"{}\"", cfg.format)));
        }
        let base = origin.parent().unwrap_or(Path::new(""));
        for p in [&mut cfg.data, &mut cfg.judge].into_iter().flatten() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        cfg.check().map_err(|e| bad(e.to_string().trim_start_matches("continuity: ").to_string()))?;
        Ok(cfg)
    }

    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("{}: cannot read: {e}", path.display())))?;
        Self::parse(&text, path)
    }

    /// Every value in range (the trainers check the data themselves).
    pub fn check(&self) -> Result<()> {
        self.regulate.term()?;
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::Config(format!("{name} must be positive and finite, found {v}")))
            }
        };
        match self.model {
            ModelKind::Style => {
                self.style.check().map_err(|e| Error::Config(e.to_string()))?;
                if self.regulate.pairs.is_some() || self.regulate.reduction != Reduction::PerElement {
                    return Err(Error::Config(
                        "regulate.pairs and regulate.reduction apply to generators; a style's continuity term \
                         draws one strength per image and averages per element"
                            .into(),
                    ));
                }
            }
            ModelKind::Gan => {
                let g = &self.gan;
                positive("gan.lr", g.lr)?;
                if g.iters == 0 || g.batch == 0 || g.n_critic == 0 || g.latent <= 0 {
                    return Err(Error::Config(format!(
                        "gan.iters, gan.batch, gan.n_critic and gan.latent must be positive, found {}, {}, {}, {}",
                        g.iters, g.batch, g.n_critic, g.latent
                    )));
                }
                if g.widths.iter().any(|&w| w <= 0) || g.critic_width <= 0 {
                    return Err(Error::Config(format!(
                        "gan.widths and gan.critic_width must be positive, found {:?} and {}",
                        g.widths, g.critic_width
                    )));
                }
            }
            ModelKind::Vae => {
                let v = &self.vae;
                positive("vae.lr", v.lr)?;
                positive("vae.sigma", v.sigma)?;
                if v.epochs == 0 || v.batch == 0 || v.latent <= 0 || v.widths.iter().any(|&w| w <= 0) {
                    return Err(Error::Config(format!(
                        "vae.epochs, vae.batch, vae.latent and vae.widths must be positive, found {}, {}, {}, {:?}",
                        v.epochs, v.batch, v.latent, v.widths
                    )));
                }
                if !(v.kl_weight.is_finite() && v.kl_weight >= 0.0) {
                    return Err(Error::Config(format!(
                        "vae.kl_weight must be finite and non-negative, found {}",
                        v.kl_weight
                    )));
                }
                if let Some(g) = &v.geometry {
                    for (name, value) in [
                        ("rotation_deg", g.rotation_deg),
                        ("translate_px", g.translate_px),
                        ("scale_pct", g.scale_pct),
                    ] {
                        positive(&format!("vae.geometry.{name}"), value)?;
                    }
                    if v.latent <= gcert_torch::augment::Geometry::DIMS {
                        return Err(Error::Config(format!(
                            "vae.latent must exceed the 4 geometry coordinates, found {}",
                            v.latent
                        )));
                    }
                }
                if let Some(a) = &v.adversarial {
                    positive("vae.adversarial.weight", a.weight)?;
                    positive("vae.adversarial.lr", a.lr)?;
                    if a.critic_width <= 0 || !(a.lambda_gp.is_finite() && a.lambda_gp >= 0.0) {
                        return Err(Error::Config(format!(
                            "vae.adversarial.critic_width must be positive and lambda_gp finite and non-negative, \
                             found {} and {}",
                            a.critic_width, a.lambda_gp
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TrainConfig> {
        TrainConfig::parse(text, Path::new("/configs/run.toml"))
    }

    #[test]
    fn a_partial_file_keeps_the_defaults_and_anchors_paths() {
        let cfg = parse(
            "format = \"gcert-train/1\"\nmodel = \"gan\"\ndata = \"mnist.bin\"\n\
             [gan]\niters = 7\nseed = 3\n[regulate]\nlambda = 100.0\npairs = 16\nreduction = \"per-sample\"\n",
        )
        .unwrap();
        assert_eq!(cfg.model, ModelKind::Gan);
        assert_eq!((cfg.gan.iters, cfg.gan.seed), (7, 3));
        assert_eq!(cfg.gan.batch, GanConfig::default().batch);
        assert_eq!(cfg.vae, VaeConfig::default());
        assert_eq!(cfg.data.as_deref(), Some(Path::new("/configs/mnist.bin")));
        assert_eq!(cfg.regulate.reduction, Reduction::PerSample);
        let term = cfg.regulate.term().unwrap().expect("λ > 0 regulates");
        assert_eq!(term.weight(), 100.0);
        assert!(TrainConfig::new(ModelKind::Vae).regulate.term().unwrap().is_none(), "λ = 0 does not");
    }

    #[test]
    fn the_committed_geometric_configuration_is_the_fixture_vae() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/trained/geometric.toml");
        let cfg = TrainConfig::load(&path).unwrap();
        assert_eq!(cfg.model, ModelKind::Vae);
        assert_eq!(
            cfg.vae,
            VaeConfig::geometric(30),
            "geometric.toml and gcert-torch's fixture VAE must agree"
        );
        assert!(cfg.regulate.term().unwrap().is_none());
    }

    #[test]
    fn the_committed_style_configurations_parse() {
        for style in ["fog", "rain"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("../../fixtures/trained/style-{style}.toml"));
            let cfg = TrainConfig::load(&path).unwrap();
            assert_eq!((cfg.model, cfg.style.style.name()), (ModelKind::Style, style));
            assert!(cfg.judge.is_some() && cfg.regulate.strength_term().unwrap().is_none());
        }
        let e =
            parse("format = \"gcert-train/1\"\nmodel = \"style\"\n[style]\nstyle = \"snow\"\n").unwrap_err();
        assert!(e.to_string().contains("unknown variant `snow`"), "{e}");
        let e = parse("format = \"gcert-train/1\"\nmodel = \"style\"\n[regulate]\nlambda = 1.0\npairs = 4\n")
            .unwrap_err();
        assert!(e.to_string().contains("apply to generators"), "{e}");
    }

    #[test]
    fn bad_files_name_the_file_and_the_problem() {
        let cases = [
            ("model = \"gan\"\n", "missing field `format`"),
            ("format = \"gcert-train/2\"\nmodel = \"gan\"\n", "format must be \"gcert-train/1\""),
            ("format = \"gcert-train/1\"\nmodel = \"diffusion\"\n", "unknown variant `diffusion`"),
            ("format = \"gcert-train/1\"\nmodel = \"gan\"\n[gan]\nitres = 3\n", "unknown field `itres`"),
            (
                "format = \"gcert-train/1\"\nmodel = \"gan\"\n[regulate]\nlambda = -1.0\n",
                "λ must be finite and non-negative",
            ),
            (
                "format = \"gcert-train/1\"\nmodel = \"gan\"\n[regulate]\nlambda = 1.0\npairs = 0\n",
                "pairs must be positive",
            ),
            (
                "format = \"gcert-train/1\"\nmodel = \"vae\"\n[vae]\nsigma = 0.0\n",
                "vae.sigma must be positive",
            ),
            ("format = \"gcert-train/1\"\nmodel = \"gan\"\n[gan]\niters = 0\n", "must be positive"),
            (
                "format = \"gcert-train/1\"\nmodel = \"vae\"\n[vae.geometry]\nrotation_deg = 0.0\ntranslate_px = 1.0\nscale_pct = 5.0\n",
                "vae.geometry.rotation_deg must be positive",
            ),
            ("format = \"gcert-train/1\"\nmodel = \"vae\"\n[vae]\nkl_weight = -1.0\n", "vae.kl_weight must be finite"),
            (
                "format = \"gcert-train/1\"\nmodel = \"vae\"\n[vae]\nlatent = 4\n[vae.geometry]\nrotation_deg = 1.0\ntranslate_px = 1.0\nscale_pct = 1.0\n",
                "must exceed the 4 geometry coordinates",
            ),
            ("format = \"gcert-train/1\"\nmodel = \"gan\"\n[gan\n", "/configs/run.toml"),
        ];
        for (text, want) in cases {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains("/configs/run.toml"), "{e}");
            assert!(e.contains(want), "{text:?}: {e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
        let e = TrainConfig::load(Path::new("/nonexistent/run.toml")).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/run.toml: cannot read"), "{e}");
    }
}
