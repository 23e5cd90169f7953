//! Certification jobs over loaded models: the models of a run (a generator, a classifier, and for a classifier
//! with several inputs the fixed inputs), one job's segment, and running a job through a backend.
//!
//! This is what `gcert certify` (one job, or a `--batch` of them) and any library user who certifies many
//! segments over the same models share: the models are loaded and checked to fit once.

use std::path::Path;

use gcert_core::certificate::{Certificate, Method, Problem, ProblemSpec};
use gcert_core::loader::LoadOptions;
use gcert_core::{Direction, Error, Layer, Network, Result, Translator};

use crate::{certifier, Options};

/// The models of a run, loaded and checked once: the generator (if any), the classifier, and for a classifier
/// with several inputs the layer that places the mutated input among the fixed ones.
#[derive(Debug)]
pub struct Models {
    generator: Option<Network>,
    /// A style translator with its image held fixed, in place of a generator: the latent is the strength α.
    translator: Option<Translator>,
    classifier: Network,
    embed: Option<Layer>,
    image_shape: Vec<usize>,
}

impl Models {
    /// Loads the model cards. For a classifier with several inputs, `reference` holds the values of the inputs
    /// that stay fixed (concatenated, in order) and `mutated_input` says which input the segment moves
    /// (default: the last). Checks that the generator's output fits the classifier's (mutated) input.
    pub fn load(
        generator: Option<&Path>,
        classifier: &Path,
        reference: Option<&Path>,
        mutated_input: Option<usize>,
    ) -> Result<Models> {
        Models::load_with(generator, classifier, reference, mutated_input, &LoadOptions::current())
    }

    /// [`Models::load`] with explicit load options (limits, weights outside the card's folder).
    pub fn load_with(
        generator: Option<&Path>,
        classifier: &Path,
        reference: Option<&Path>,
        mutated_input: Option<usize>,
        options: &LoadOptions,
    ) -> Result<Models> {
        let generator = generator.map(|g| Network::load_with(g, options)).transpose()?;
        let classifier = Network::load_with(classifier, options)?;
        Models::with_reference_file(generator, classifier, reference, mutated_input)
    }

    /// The same from networks already loaded (by a caller that reads other formats, like the CLI's ONNX
    /// import), with the fixed inputs of a multi-input classifier read from `reference` as [`Models::load`]
    /// reads them.
    pub fn with_reference_file(
        generator: Option<Network>,
        classifier: Network,
        reference: Option<&Path>,
        mutated_input: Option<usize>,
    ) -> Result<Models> {
        let reference = match reference {
            Some(path) if classifier.input_shapes().len() > 1 => {
                let fixed = fixed_len(&classifier, mutated_input)?;
                Some(gcert_core::npy::read_npy_len(path, fixed, "the reference input")?)
            }
            Some(_) => return Err(several_inputs_only(&classifier)),
            None => None,
        };
        Models::new(generator, classifier, reference, mutated_input)
    }

    /// The same from networks in memory; `reference` as for [`Models::load`], as values.
    pub fn new(
        generator: Option<Network>,
        classifier: Network,
        reference: Option<Vec<f64>>,
        mutated_input: Option<usize>,
    ) -> Result<Models> {
        let inputs = classifier.input_shapes().len();
        let (embed, image_shape) = if inputs == 1 {
            if reference.is_some() || mutated_input.is_some() {
                return Err(several_inputs_only(&classifier));
            }
            (None, classifier.input_shapes()[0].clone())
        } else {
            let k = mutated_input.unwrap_or(inputs - 1);
            let fixed = fixed_len(&classifier, Some(k))?;
            let Some(values) = reference else {
                return Err(Error::card(
                    classifier.path(),
                    format!("the classifier has {inputs} inputs; give the fixed ones with --reference"),
                ));
            };
            if values.len() != fixed {
                return Err(Error::input(format!(
                    "the reference input needs {fixed} values, found {}",
                    values.len()
                )));
            }
            let sizes = input_sizes(&classifier);
            let before: usize = sizes[..k].iter().sum();
            let suffix = values[before..].to_vec();
            let mut prefix = values;
            prefix.truncate(before);
            let layer = Layer::embed(prefix, sizes[k], suffix)?;
            (Some(layer), classifier.input_shapes()[k].clone())
        };
        let image_len: usize = image_shape.iter().product();
        if let Some(g) = &generator {
            let fits =
                g.output_len() == image_len && (g.output_shape() == image_shape || image_shape.len() == 1);
            if !fits {
                return Err(Error::input(format!(
                    "the generator {} outputs shape {:?} but the classifier {} takes {:?}",
                    g.path().display(),
                    g.output_shape(),
                    classifier.path().display(),
                    image_shape
                )));
            }
        }
        Ok(Models { generator, translator: None, classifier, embed, image_shape })
    }

    /// A style translator with its image held fixed as the generator (docs/stylized.md): a job's latent is
    /// `[0]`, its direction `[1]` and its tolerance the strength `E`, so the segment is `α ∈ [0, E]`.
    /// `reference` and `mutated_input` as for [`Models::new`].
    pub fn with_translator(
        translator: Translator,
        classifier: Network,
        reference: Option<Vec<f64>>,
        mutated_input: Option<usize>,
    ) -> Result<Models> {
        let mut models = Models::new(None, classifier, reference, mutated_input)?;
        let image_len: usize = models.image_shape.iter().product();
        let out = translator.image_shape();
        if out.iter().product::<usize>() != image_len
            || (out != models.image_shape && models.image_shape.len() != 1)
        {
            return Err(Error::input(format!(
                "the translator {} outputs shape {out:?} but the classifier {} takes {:?}",
                translator.network().path().display(),
                models.classifier.path().display(),
                models.image_shape
            )));
        }
        models.translator = Some(translator);
        Ok(models)
    }

    pub fn generator(&self) -> Option<&Network> {
        self.generator.as_ref()
    }

    /// The translator, when the run moves a style's strength rather than a latent point.
    pub fn translator(&self) -> Option<&Translator> {
        self.translator.as_ref()
    }

    pub fn classifier(&self) -> &Network {
        &self.classifier
    }

    /// Shape of the classifier input the segment moves (the image).
    pub fn image_shape(&self) -> &[usize] {
        &self.image_shape
    }

    /// The layers from the segment's input to the image: the generator's, or the translator's after the
    /// embedding of α among its fixed image.
    pub fn generator_layers(&self) -> Vec<&Layer> {
        if let Some(t) = &self.translator {
            return t.layers();
        }
        self.generator.as_ref().map_or_else(Vec::new, |g| g.layers().iter().collect())
    }

    /// The classifier's layers, after the embedding of the mutated input for a multi-input classifier.
    pub fn classifier_layers(&self) -> Vec<&Layer> {
        self.embed.iter().chain(self.classifier.layers()).collect()
    }

    /// Shape of the generator's input (the latent), if there is a generator.
    pub fn latent_shape(&self) -> Option<Vec<usize>> {
        if self.translator.is_some() {
            return Some(vec![1]);
        }
        self.generator.as_ref().map(Network::input_point_shape)
    }

    /// Builds the problem of a job.
    pub fn problem(&self, job: &Job) -> Result<Problem<'_>> {
        match &job.segment {
            JobSegment::Latent { latent, direction, eps } => Problem::new(ProblemSpec {
                generator: self.generator_layers(),
                classifier: self.classifier_layers(),
                origin: latent.clone(),
                direction: direction.clone(),
                eps: *eps,
                two_sided: job.two_sided,
                label: job.label,
            }),
            JobSegment::Pixels { from, to } => {
                if job.two_sided {
                    return Err(Error::input(
                        "--two-sided needs a latent segment; a pixel-space segment runs from --from to --to",
                    ));
                }
                Problem::between(self.classifier_layers(), from.clone(), to.clone(), job.label)
            }
        }
    }

    /// Builds the problem of a job and runs its backend.
    pub fn certify(&self, job: &Job, options: Options) -> Result<Certificate> {
        certifier(job.method, options).certify(&self.problem(job)?)
    }
}

fn input_sizes(net: &Network) -> Vec<usize> {
    net.input_shapes().iter().map(|s| s.iter().product()).collect()
}

/// The number of fixed values of a multi-input classifier when input `k` is mutated.
fn fixed_len(classifier: &Network, mutated_input: Option<usize>) -> Result<usize> {
    let sizes = input_sizes(classifier);
    let k = mutated_input.unwrap_or(sizes.len() - 1);
    if k >= sizes.len() {
        return Err(Error::card(
            classifier.path(),
            format!("--mutated-input {k} is out of range: the classifier has {} inputs", sizes.len()),
        ));
    }
    Ok(sizes.iter().sum::<usize>() - sizes[k])
}

fn several_inputs_only(classifier: &Network) -> Error {
    Error::card(
        classifier.path(),
        "--reference and --mutated-input are for classifiers with several inputs; this one has one",
    )
}

/// The segment of one job.
#[derive(Debug, Clone)]
pub enum JobSegment {
    /// `latent + t·eps·direction` through the generator.
    Latent { latent: Vec<f64>, direction: Direction, eps: f64 },
    /// From one classifier input to another, without a generator.
    Pixels { from: Vec<f64>, to: Vec<f64> },
}

impl JobSegment {
    /// The segment `α ∈ [0, strength]` of a style translator's strength (for [`Models::with_translator`]);
    /// `style` names it in the direction's provenance.
    pub fn strength(strength: f64, style: &str) -> Result<JobSegment> {
        if !(strength.is_finite() && strength > 0.0) {
            return Err(Error::input(format!("the strength must be positive and finite, found {strength}")));
        }
        let direction =
            Direction::from_values(vec![1.0], gcert_core::Provenance::Strength { style: style.into() })?;
        Ok(JobSegment::Latent { latent: vec![0.0], direction, eps: strength })
    }
}

/// One certification: what to certify and how.
#[derive(Debug, Clone)]
pub struct Job {
    pub segment: JobSegment,
    pub two_sided: bool,
    pub label: Option<usize>,
    pub method: Method,
}
