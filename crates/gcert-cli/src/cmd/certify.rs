//! `gcert certify`: does the classifier keep its label along a latent (or pixel-space) segment?
//!
//! One job from the command line, or many from a JSON-lines file (`--batch`, see `batch.rs` and
//! docs/certify.md).

mod batch;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use gcert_certify::job::{Job, JobSegment, Models};
use gcert_certify::{Certificate, Method, Options, Relaxation};
use gcert_core::npy::write_npy_checked;

use gcert_directions::{NamedMutation, Property};
use serde_json::json;

use super::{
    at_most, card_files, check_output, describe_mutation, finite, fmt_values, load_network, load_translator,
    named_mutation, positive, print_json, read_direction, read_input, style_name, transform, MutationArgs,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MethodArg {
    Complete,
    Incomplete,
    Quantitative,
}

impl From<MethodArg> for Method {
    fn from(m: MethodArg) -> Method {
        match m {
            MethodArg::Complete => Method::Complete,
            MethodArg::Incomplete => Method::Incomplete,
            MethodArg::Quantitative => Method::Quantitative,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RelaxationArg {
    /// Linear bounds in t with back-substitution (DeepPoly/CROWN)
    Linear,
    /// Interval bound propagation
    Interval,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Generator model card or ONNX file (latent -> image); leave out for a pixel-space segment (--from/--to)
    #[arg(long)]
    generator: Option<PathBuf>,
    /// Classifier model card or ONNX file (image -> logits, or one score)
    #[arg(long)]
    classifier: Option<PathBuf>,
    /// Latent point z (.npy)
    #[arg(long)]
    latent: Option<PathBuf>,
    /// Mutation direction d: FILE.npy, or FILE.npy:ROW for a row of a `gcert directions` file; normalised
    #[arg(long)]
    direction: Option<PathBuf>,
    /// Tolerance E: the segment is z + t·E·d, t in [0, 1]
    #[arg(long, allow_negative_numbers = true, value_parser = finite)]
    eps: Option<f64>,
    /// Certify against a named transform instead of --direction/--eps: rotation, translate-x, translate-y,
    /// scale or shear. The direction that realises it at --latent is found and verified (docs/directions.md);
    /// --amount in the transform's unit becomes the latent tolerance, both ways (t in [-1, 1])
    #[arg(long, value_parser = transform, requires = "amount", conflicts_with_all = ["direction", "eps"])]
    mutation: Option<Property>,
    /// With --mutation: how much of the transform, in its unit (degrees for rotation, pixels for translations,
    /// percent for scale and shear), each way
    #[arg(long, value_parser = positive, requires = "mutation", allow_negative_numbers = true)]
    amount: Option<f64>,
    #[command(flatten)]
    named: MutationArgs,
    /// A style translator card T(x, α) (docs/stylized.md), instead of a generator: certify along the strength
    /// α in [0, --strength] with --image held fixed; max_tolerance is in units of α
    #[arg(long, conflicts_with_all = ["generator", "latent", "direction", "eps", "mutation", "two_sided", "batch"],
          requires_all = ["image", "strength"])]
    translator: Option<PathBuf>,
    /// With --translator: the image x (.npy, shaped as the translator's image input or flat)
    #[arg(long, requires = "translator")]
    image: Option<PathBuf>,
    /// With --translator: the largest strength E; the segment is α in [0, E]
    #[arg(long, value_parser = positive, requires = "translator", allow_negative_numbers = true)]
    strength: Option<f64>,
    /// Pixel-space segment start (.npy), instead of --generator/--latent/--direction/--eps
    #[arg(long, conflicts_with_all = ["generator", "latent", "direction", "eps", "mutation", "translator"])]
    from: Option<PathBuf>,
    /// Pixel-space segment end (.npy)
    #[arg(long, requires = "from")]
    to: Option<PathBuf>,
    /// t in [-1, 1] instead of [0, 1]
    #[arg(long)]
    two_sided: bool,
    /// The label to keep (default: the prediction at t = 0)
    #[arg(long)]
    label: Option<usize>,
    #[arg(long, value_enum, default_value = "complete")]
    method: MethodArg,
    /// Complete method: scan the whole exact chain instead of bounding first and chaining only the
    /// sub-intervals the bounds leave undecided (the same answers; for comparison and timing)
    #[arg(long)]
    exact_chain: bool,
    /// Bounds used by the incomplete method (and by the quantitative one past a sigmoid/tanh layer)
    #[arg(long, value_enum, default_value = "linear")]
    relaxation: RelaxationArg,
    /// Bound evaluations for branch and bound over t (incomplete: 256, quantitative: 4096)
    #[arg(long, value_parser = at_most::<100_000_000>)]
    budget: Option<usize>,
    /// For a classifier with several inputs: the values of the inputs held fixed (.npy, concatenated)
    #[arg(long)]
    reference: Option<PathBuf>,
    /// For a classifier with several inputs: which input the segment moves (default: the last)
    #[arg(long)]
    mutated_input: Option<usize>,
    /// Write the counterexample image G(z(t*)) here (.npy), if there is one
    #[arg(long)]
    counterexample_out: Option<PathBuf>,
    /// Overwrite existing output files
    #[arg(long)]
    force: bool,
    /// Print one JSON object instead of text
    #[arg(long)]
    json: bool,
    /// Certify every job of a JSON-lines file (see docs/certify.md), with the models given here
    #[arg(long, conflicts_with_all = ["latent", "direction", "eps", "from", "to", "counterexample_out", "mutation"])]
    batch: Option<PathBuf>,
    /// Run only shard i of n (jobs whose index modulo n is i), e.g. 3/8
    #[arg(long, requires = "batch")]
    shard: Option<String>,
    /// Results file (JSON lines) for --batch; jobs already in it are skipped, new results are appended
    #[arg(long, requires = "batch")]
    out: Option<PathBuf>,
    /// Worker threads for --batch (default: all cores)
    #[arg(long, requires = "batch", value_parser = at_most::<1024>)]
    threads: Option<usize>,
}

/// The JSON object of a certificate (the fields docs/certify.md lists): the certificate's own serialisation.
pub fn certificate_json(c: &Certificate) -> serde_json::Value {
    serde_json::to_value(c).expect("a certificate serialises")
}

/// The `mutation` object of a certificate's JSON: what was asked for and how the direction realises it.
fn mutation_json(m: &NamedMutation, amount: f64) -> serde_json::Value {
    json!({
        "transform": m.transform,
        "unit": m.transform.unit(),
        "amount": amount,
        "per_latent_unit": m.per_latent_unit,
        "linearity": m.linearity,
        "purity": m.purity,
        "cross": m.cross,
    })
}

/// Every file a run of `gcert certify` reads: the cards, their weights, the arrays named on the command line.
fn input_files(args: &Args) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for card in [&args.generator, &args.classifier, &args.translator].into_iter().flatten() {
        files.extend(card_files(card));
    }
    for p in
        [&args.latent, &args.from, &args.to, &args.reference, &args.batch, &args.image].into_iter().flatten()
    {
        files.push(p.clone());
    }
    if let Some(d) = &args.direction {
        files.push(d.clone());
    }
    files
}

fn options(args: &Args) -> Options {
    let relaxation = match args.relaxation {
        RelaxationArg::Linear => Relaxation::Linear,
        RelaxationArg::Interval => Relaxation::Interval,
    };
    Options { budget: args.budget, relaxation, exact_chain: args.exact_chain }
}

pub fn run(args: Args) -> Result<()> {
    let Some(classifier) = args.classifier.as_deref() else {
        bail!("--classifier is required");
    };
    if let (Some(card), Some(image), Some(strength)) = (&args.translator, &args.image, args.strength) {
        return run_translator(&args, card, image, strength, classifier);
    }
    let generator = args.generator.as_deref().map(load_network).transpose()?;
    let classifier = load_network(classifier)?;
    let models =
        Models::with_reference_file(generator, classifier, args.reference.as_deref(), args.mutated_input)
            .context("cannot load the models")?;
    if let Some(jobs) = &args.batch {
        return batch::run(&args, &models, jobs);
    }
    if let Some(p) = &args.counterexample_out {
        check_output(p, args.force, &input_files(&args))?;
    }
    let mut named: Option<(NamedMutation, f64)> = None;
    let segment = match (&args.from, &args.to) {
        (Some(from), Some(to)) => JobSegment::Pixels {
            from: read_input(from, models.image_shape(), "the segment start")?,
            to: read_input(to, models.image_shape(), "the segment end")?,
        },
        (Some(_), None) => bail!("--from needs --to"),
        _ => {
            let Some(shape) = models.latent_shape() else {
                bail!("give --generator with --latent/--direction/--eps, or a pixel-space segment with --from/--to");
            };
            if let (Some(t), Some(amount)) = (args.mutation, args.amount) {
                let (Some(latent), Some(generator), Some(net)) =
                    (&args.latent, &args.generator, models.generator())
                else {
                    bail!("--mutation needs --generator and --latent");
                };
                let z = read_input(latent, &shape, "the latent point")?;
                let m = named_mutation(net, generator, latent, &z, t, &args.named)?;
                let eps = m.latent_tolerance(amount)?;
                if eps > args.named.span {
                    bail!(
                        "{amount} {} of {t} needs a latent tolerance of {eps:.3} at {} ({:.4} {}/latent unit), beyond \
                         the ±{} over which the direction was verified; ask for at most {:.3} {} or raise --span",
                        t.unit(),
                        latent.display(),
                        m.per_latent_unit,
                        t.unit(),
                        args.named.span,
                        m.amount(args.named.span),
                        t.unit()
                    );
                }
                let d = m.direction.clone();
                named = Some((m, amount));
                JobSegment::Latent { latent: z, direction: d, eps }
            } else {
                let (Some(latent), Some(direction), Some(eps)) = (&args.latent, &args.direction, args.eps)
                else {
                    bail!(
                        "a latent segment needs --latent, --direction and --eps (or --mutation and --amount)"
                    );
                };
                let z = read_input(latent, &shape, "the latent point")?;
                let d = read_direction(direction.as_os_str(), shape.iter().product())?;
                JobSegment::Latent { latent: z, direction: d, eps }
            }
        }
    };
    // A named transform is certified both ways: "robust to 15° of rotation" means clockwise and anticlockwise.
    let two_sided = args.two_sided || named.is_some();
    let job = Job { segment, two_sided, label: args.label, method: args.method.into() };
    let cert = models.certify(&job, options(&args)).context("cannot certify")?;
    write_counterexample(&args, &models, &cert)?;
    if args.json {
        let mut value = certificate_json(&cert);
        if let Some((m, amount)) = &named {
            value["mutation"] = mutation_json(m, *amount);
            value["max_amount"] = json!(m.amount(cert.max_tolerance));
        }
        return print_json(&value);
    }
    if let Some((m, amount)) = &named {
        println!(
            "mutation: {amount} {} of {} each way = latent tolerance {}",
            m.transform.unit(),
            m.transform,
            m.latent_tolerance(*amount)?
        );
        println!("direction: {}", describe_mutation(m));
    }
    print_certificate(&cert, named.as_ref().map(|(m, _)| m));
    Ok(())
}

/// Writes the counterexample image, if asked for and there is one.
fn write_counterexample(args: &Args, models: &Models, cert: &Certificate) -> Result<()> {
    if let (Some(path), Some(c)) = (&args.counterexample_out, &cert.counterexample) {
        let mut shape = models.image_shape().to_vec();
        if shape.is_empty() {
            shape.push(c.image.len());
        }
        write_npy_checked(path, &shape, &c.image, args.force)?;
    }
    Ok(())
}

/// `--translator`: certify along the strength α ∈ [0, E] of a style translator with the image held fixed.
fn run_translator(
    args: &Args,
    card: &std::path::Path,
    image: &std::path::Path,
    strength: f64,
    classifier: &std::path::Path,
) -> Result<()> {
    if args.reference.is_some() || args.mutated_input.is_some() {
        bail!("--translator certifies a one-input classifier; --reference and --mutated-input do not apply");
    }
    if let Some(p) = &args.counterexample_out {
        check_output(p, args.force, &input_files(args))?;
    }
    let translator = load_translator(card, image)?;
    let style = style_name(&translator);
    let classifier = load_network(classifier)?;
    let models =
        Models::with_translator(translator, classifier, None, None).context("cannot load the models")?;
    let segment = JobSegment::strength(strength, &style)?;
    let job = Job { segment, two_sided: false, label: args.label, method: args.method.into() };
    let cert = models.certify(&job, options(args)).context("cannot certify")?;
    write_counterexample(args, &models, &cert)?;
    if args.json {
        let mut value = certificate_json(&cert);
        value["translator"] = json!(card.display().to_string());
        value["strength"] = json!(strength);
        return print_json(&value);
    }
    println!("strength: α in [0, {strength}] of {style} ({}), image {}", card.display(), image.display());
    print_certificate(&cert, None);
    Ok(())
}

/// The human-readable certificate (a named mutation adds its amount in the transform's unit).
fn print_certificate(cert: &Certificate, named: Option<&NamedMutation>) {
    println!("verdict: {}", cert.verdict.as_str());
    println!("label: {}", cert.label);
    println!("pieces: {}", cert.pieces);
    println!("max tolerance: {}", cert.max_tolerance);
    if let Some(m) = named {
        println!("max amount: {} {}", m.amount(cert.max_tolerance), m.transform.unit());
    }
    println!("kept fraction: [{}, {}]", cert.fraction.lower, cert.fraction.upper);
    println!("smallest margin: {} at t = {}", cert.min_margin.margin, cert.min_margin.t);
    if !cert.violated.is_empty() {
        let shown: Vec<String> = cert.violated.iter().take(8).map(|iv| fmt_values(iv)).collect();
        let more = cert.violated.len().saturating_sub(8);
        let tail = if more > 0 { format!(" and {more} more") } else { String::new() };
        println!("violated: {}{tail}", shown.join(", "));
    }
    if let Some(c) = &cert.counterexample {
        println!("counterexample: t = {}, predicted {}, margin {}", c.t, c.predicted, c.margin);
    }
    println!("time: {:.2} ms", cert.time_ms);
}
