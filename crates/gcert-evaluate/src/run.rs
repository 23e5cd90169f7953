//! The evaluation itself: models, images and mutations checked together once, then every image inverted,
//! every mutation found at its latent and certified for every classifier.

use std::path::{Path, PathBuf};
use std::time::Instant;

use gcert_certify::job::{Job, JobSegment, Models};
use gcert_certify::{Method, Options};
use gcert_core::certificate::Decision;
use gcert_core::Network;
use gcert_directions::strip::write_strip_png;
use gcert_directions::{invert, InvertParams, MutationParams};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::images::Images;
use crate::mutation::{Mutation, Prepared, Resolved};
use crate::record::{key, CounterexampleRecord, Kept, Record, Status};

/// How an evaluation certifies.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Settings {
    /// Complete (default), quantitative or incomplete.
    pub method: Method,
    /// Complete runs: scan the whole exact chain instead of the hybrid (the same answers).
    pub exact_chain: bool,
    /// Bound evaluations of the bounded methods (their defaults when `None`).
    pub budget: Option<usize>,
    /// Images whose reconstruction error (mean squared error per pixel) is above this are skipped.
    pub max_mse: f64,
    /// Inversion settings (Levenberg–Marquardt restarts, iterations, prior weight, seed).
    pub restarts: usize,
    pub iters: usize,
    pub prior: f64,
    pub seed: u64,
    /// Images in each strip along a mutation (odd, so the centre is one of them).
    pub frames: usize,
    /// For named mutations, also the per-pixel bounds of Table 4 ([`crate::precision`]).
    pub precision: bool,
}

impl Default for Settings {
    fn default() -> Self {
        let inv = InvertParams::default();
        Settings {
            method: Method::Complete,
            exact_chain: false,
            budget: None,
            max_mse: 0.02,
            restarts: inv.restarts,
            iters: inv.iters,
            prior: inv.prior,
            seed: inv.seed,
            frames: 9,
            precision: false,
        }
    }
}

impl Settings {
    /// Checks the settings; an error names the option.
    pub fn check(&self) -> Result<()> {
        if !(self.max_mse.is_finite() && self.max_mse > 0.0) {
            return Err(Error::input(format!(
                "--max-mse must be positive and finite, found {}",
                self.max_mse
            )));
        }
        if self.restarts == 0 {
            return Err(Error::input("--restarts must be at least 1"));
        }
        if !(self.prior.is_finite() && self.prior >= 0.0) {
            return Err(Error::input(format!("--prior must be at least 0 and finite, found {}", self.prior)));
        }
        if self.frames < 3 || self.frames.is_multiple_of(2) || self.frames > 31 {
            return Err(Error::input(format!(
                "--frames must be odd, between 3 and 31, found {}",
                self.frames
            )));
        }
        Ok(())
    }

    fn invert_params(&self) -> InvertParams {
        InvertParams { restarts: self.restarts, iters: self.iters, prior: self.prior, seed: self.seed }
    }

    fn options(&self) -> Options {
        Options { budget: self.budget, exact_chain: self.exact_chain, ..Options::default() }
    }
}

/// A classifier of the run.
#[derive(Debug)]
pub struct Classifier {
    /// Its card's file stem (made unique within the run).
    pub name: String,
    pub path: PathBuf,
    pub models: Models,
}

/// Everything an evaluation needs, checked to fit together.
#[derive(Debug)]
pub struct Evaluation {
    pub generator: Network,
    /// Maps an image to its latent instead of inversion (a VAE's encoder mean).
    pub encoder: Option<Network>,
    pub classifiers: Vec<Classifier>,
    pub images: Images,
    pub mutations: Vec<Prepared>,
    pub settings: Settings,
    pub mutation_params: MutationParams,
}

impl Evaluation {
    /// Checks that everything fits: images against the generator (shape, range) and the classifiers (labels),
    /// the generator against each classifier and the encoder, every mutation against the generator. Nothing
    /// runs and nothing is written before this succeeds.
    pub fn new(
        generator: Network,
        encoder: Option<Network>,
        classifiers: Vec<Network>,
        images: Images,
        mutations: Vec<Mutation>,
        settings: Settings,
    ) -> Result<Evaluation> {
        settings.check()?;
        if classifiers.is_empty() {
            return Err(Error::input("an evaluation needs at least one --classifier"));
        }
        if mutations.is_empty() {
            return Err(Error::input("an evaluation needs at least one --mutation"));
        }
        images.check_fits(&generator, &images.source)?;
        let k = generator.input_len();
        if generator.input_shapes().len() != 1 {
            return Err(Error::input(format!(
                "the generator {} has {} inputs; it needs one latent input",
                generator.path().display(),
                generator.input_shapes().len()
            )));
        }
        if let Some(e) = &encoder {
            let image_len: usize = images.shape.iter().product();
            if e.input_len() != image_len || e.output_len() != k {
                return Err(Error::input(format!(
                    "the encoder {} maps {} values to {}, but the images have {image_len} and the generator's latent {k}",
                    e.path().display(),
                    e.input_len(),
                    e.output_len()
                )));
            }
        }
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for (i, c) in classifiers.into_iter().enumerate() {
            let path = c.path().to_path_buf();
            let stem = path
                .file_stem()
                .map_or_else(|| format!("classifier{i}"), |s| s.to_string_lossy().into_owned());
            let name = if seen.insert(stem.clone()) { stem } else { format!("{stem}#{i}") };
            seen.insert(name.clone());
            let last = c.layers().last().ok_or_else(|| Error::file(&path, "the classifier has no layers"))?;
            let classes = Decision::for_output(last).classes();
            images.check_labels(classes, &path, &images.source)?;
            let models = Models::new(Some(generator.clone()), c, None, None)?;
            out.push(Classifier { name, path, models });
        }
        let mut prepared = Vec::new();
        let mut specs = std::collections::HashSet::new();
        for m in mutations {
            if !specs.insert(m.to_string()) {
                return Err(Error::input(format!("mutation '{m}' is given twice")));
            }
            prepared.push(Prepared::new(m, &generator)?);
        }
        Ok(Evaluation {
            generator,
            encoder,
            classifiers: out,
            images,
            mutations: prepared,
            settings,
            mutation_params: MutationParams::default(),
        })
    }

    /// Every key of the run, in order.
    pub fn keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        for i in 0..self.images.len() {
            for m in &self.mutations {
                for c in &self.classifiers {
                    keys.push(key(i, &m.mutation.to_string(), &c.name));
                }
            }
        }
        keys
    }

    /// The files the run reads (an output must be none of them).
    pub fn input_files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.generator.path().to_path_buf()];
        files.extend(self.encoder.iter().map(|e| e.path().to_path_buf()));
        files.extend(self.classifiers.iter().map(|c| c.path.clone()));
        files.extend(self.mutations.iter().flat_map(Prepared::files));
        files
    }

    /// The latent of image `i` and its reconstruction error: the encoder's output, or a GAN inversion.
    pub fn latent(&self, i: usize) -> Result<(Vec<f64>, f64)> {
        let x = self.images.image(i);
        let z = match &self.encoder {
            Some(e) => e.forward(x, 1)?,
            None => {
                return Ok(
                    invert(&self.generator, x, self.settings.invert_params()).map(|inv| (inv.z, inv.mse))?
                )
            }
        };
        let g = self.generator.forward(&z, 1)?;
        let mse = g.iter().zip(x).map(|(a, b)| (a - b) * (a - b)).sum::<f64>() / x.len() as f64;
        Ok((z, mse))
    }

    /// Evaluates image `i` for the keys `todo` accepts, writing its PNGs under `images_dir` (relative names
    /// in the records are `images/…`).
    pub fn evaluate_image(
        &self,
        i: usize,
        todo: &dyn Fn(&str) -> bool,
        images_dir: &Path,
    ) -> Result<Vec<Record>> {
        let wanted: Vec<(usize, usize)> = (0..self.mutations.len())
            .flat_map(|m| (0..self.classifiers.len()).map(move |c| (m, c)))
            .filter(|&(m, c)| {
                todo(&key(i, &self.mutations[m].mutation.to_string(), &self.classifiers[c].name))
            })
            .collect();
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let start = Instant::now();
        let (z, mse) = self.latent(i)?;
        let latent_ms = ms(start);
        let label = self.images.labels[i];
        let mut records = Vec::new();
        let base = |m: usize, c: usize, status: Status| {
            let mutation = &self.mutations[m].mutation;
            let spec = mutation.to_string();
            let cl = &self.classifiers[c];
            Record {
                key: key(i, &spec, &cl.name),
                image: i,
                image_name: self.images.names[i].clone(),
                label,
                classifier: cl.name.clone(),
                classifier_path: cl.path.display().to_string(),
                mutation: spec,
                kind: mutation.kind().to_string(),
                unit: mutation.unit().to_string(),
                amount: mutation.amount(),
                status,
                reason: None,
                reconstruction_mse: mse,
                prediction_at_center: None,
                max_tolerance: None,
                kept: None,
                violated: Vec::new(),
                min_margin: None,
                counterexample: None,
                eps_latent: None,
                per_latent_unit: None,
                linearity: None,
                purity: None,
                method: None,
                pieces: None,
                strip: None,
                precision: None,
                time_ms: 0.0,
                setup_ms: latent_ms,
            }
        };
        if mse > self.settings.max_mse {
            for &(m, c) in &wanted {
                let mut r = base(m, c, Status::Skipped);
                r.reason = Some(format!(
                    "reconstruction error {mse:.5} per pixel is above --max-mse {}: the generator does not produce this image closely enough",
                    self.settings.max_mse
                ));
                records.push(r);
            }
            return Ok(records);
        }
        let center = self.generator.forward(&z, 1)?;
        let shape = self.images.shape;
        for m in 0..self.mutations.len() {
            let classifiers: Vec<usize> = wanted.iter().filter(|w| w.0 == m).map(|w| w.1).collect();
            if classifiers.is_empty() {
                continue;
            }
            let found = Instant::now();
            let resolved = self.mutations[m].resolve(&self.generator, &z, &self.mutation_params)?;
            let setup_ms = latent_ms + ms(found);
            let (direction, eps, per_unit, calibration) = match resolved {
                Resolved::NotAvailable { why } => {
                    for c in classifiers {
                        let mut r = base(m, c, Status::NotAvailable);
                        r.reason = Some(format!("mutation not available at this image: {why}"));
                        r.setup_ms = setup_ms;
                        records.push(r);
                    }
                    continue;
                }
                Resolved::Ready { direction, eps, per_unit, calibration } => {
                    (direction, eps, per_unit, calibration)
                }
            };
            let precision = match (&self.mutations[m].mutation, self.settings.precision) {
                (Mutation::Named { transform, amount }, true) => {
                    let started = Instant::now();
                    let b = crate::precision::gcert_bounds(&self.generator, &z, &direction, eps)?;
                    let gcert_ms = ms(started);
                    let started = Instant::now();
                    let x = self.images.image(i);
                    let (l1, u1) = crate::precision::interval_bounds(x, shape, *transform, *amount, 1)?;
                    let (ls, us) = crate::precision::interval_bounds(
                        x,
                        shape,
                        *transform,
                        *amount,
                        crate::precision::SPLITS,
                    )?;
                    Some(crate::precision::Precision {
                        gcert: crate::precision::Widths::of(&b.lower, &b.upper),
                        gcert_pieces: b.pieces,
                        gcert_ms,
                        interval: crate::precision::Widths::of(&l1, &u1),
                        interval_split: crate::precision::Widths::of(&ls, &us),
                        interval_ms: ms(started),
                    })
                }
                _ => None,
            };
            let frames = self.settings.frames;
            let mut strip_values = Vec::new();
            for f in 0..frames {
                let t = -1.0 + 2.0 * f as f64 / (frames - 1) as f64;
                let zt: Vec<f64> = z.iter().zip(direction.unit()).map(|(a, d)| a + t * eps * d).collect();
                strip_values.extend(self.generator.forward(&zt, 1)?);
            }
            let strip_name = format!("images/{i}-m{m}-strip.png");
            write_strip_png(&images_dir.join(format!("{i}-m{m}-strip.png")), &strip_values, shape, 2, true)?;
            for c in classifiers {
                let cl = &self.classifiers[c];
                let job = Job {
                    segment: JobSegment::Latent { latent: z.clone(), direction: direction.clone(), eps },
                    two_sided: true,
                    label: Some(label),
                    method: self.settings.method,
                };
                let started = Instant::now();
                let cert = cl.models.certify(&job, self.settings.options())?;
                let time_ms = ms(started);
                let unit = eps * per_unit;
                let amount = self.mutations[m].mutation.amount();
                let output = cl.models.classifier().forward(&center, 1)?;
                let last = cl.models.classifier().layers().last().expect("validated");
                let mut r = base(m, c, Status::from(cert.verdict));
                r.prediction_at_center = Some(Decision::for_output(last).predict(&output));
                // Certified means the whole range; the product of the latent tolerance and the calibration
                // would only round it.
                r.max_tolerance = Some(match cert.verdict {
                    gcert_core::certificate::Verdict::Certified => amount,
                    _ => (cert.max_tolerance * per_unit).min(amount),
                });
                r.kept = Some(Kept { lower: cert.fraction.lower, upper: cert.fraction.upper });
                r.violated = cert.violated.iter().map(|v| [v[0] * unit, v[1] * unit]).collect();
                r.min_margin = Some(cert.min_margin.margin);
                if let Some(cx) = &cert.counterexample {
                    let name = format!("{i}-m{m}-c{c}-cx.png");
                    write_strip_png(&images_dir.join(&name), &cx.image, shape, 3, true)?;
                    r.counterexample = Some(CounterexampleRecord {
                        at: cx.t * unit,
                        t: cx.t,
                        predicted: cx.predicted,
                        margin: cx.margin,
                        image: format!("images/{name}"),
                    });
                }
                r.eps_latent = Some(eps);
                r.per_latent_unit = Some(per_unit);
                r.linearity = calibration.map(|c| c.linearity);
                r.purity = calibration.map(|c| c.purity);
                r.method = Some(cert.method.as_str().to_string());
                r.pieces = Some(cert.pieces);
                r.strip = Some(strip_name.clone());
                r.precision = precision.clone();
                r.time_ms = time_ms;
                r.setup_ms = setup_ms;
                records.push(r);
            }
        }
        Ok(records)
    }
}

impl From<gcert_core::certificate::Verdict> for Status {
    fn from(v: gcert_core::certificate::Verdict) -> Status {
        use gcert_core::certificate::Verdict;
        match v {
            Verdict::Certified => Status::Certified,
            Verdict::Violated => Status::Violated,
            Verdict::Unknown => Status::Unknown,
        }
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}
