//! What a certifier is asked and what it answers: the shared request ([`Problem`]) and answer
//! ([`Certificate`]) of every certifier backend.
//!
//! A problem is a model split into a *generator* part (possibly empty, for pixel-space segments) and a
//! *classifier* part, a segment `origin + t·delta` of the generator's input, and the label to keep. The
//! segment variable `t` ranges over `[0, 1]`, or `[-1, 1]` when the tolerance is two-sided; `delta` is
//! `eps·d` for a unit direction `d`, so `t·eps` is the distance travelled along `d`.
//!
//! The decision rule is linear in the classifier's output: a model with several outputs keeps label `y` at
//! `t` iff every *margin* `m_c = N_y − N_c` (`c ≠ y`) is positive; a model with one output (a score head)
//! predicts 1 iff the score is above its threshold (0.5 after a sigmoid, 0 otherwise), and its one margin is
//! `score − threshold` for label 1 and `threshold − score` for label 0. Because margins are linear in the
//! output, they are linear in `t` on every piece of an exact chain.

use serde::Serialize;

use crate::direction::{Direction, Provenance};
use crate::error::{Error, Result};
use crate::network::{check_finite, forward_layers};
use crate::ops::{Layer, Op};

/// Which certifier answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Complete,
    Incomplete,
    Quantitative,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Complete => "complete",
            Method::Incomplete => "incomplete",
            Method::Quantitative => "quantitative",
        }
    }
}

/// The answer to "is the label kept for every `t`?".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Proven: the label is kept on the whole segment.
    Certified,
    /// Disproven by a counterexample evaluated with a plain forward pass.
    Violated,
    /// Neither proven nor disproven within the budget.
    Unknown,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Certified => "certified",
            Verdict::Violated => "violated",
            Verdict::Unknown => "unknown",
        }
    }
}

/// Bounds on the fraction of the segment, by length, on which the label is kept.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Fraction {
    pub lower: f64,
    pub upper: f64,
}

/// A point of the segment where the label is not kept, checked by evaluating the model there.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Counterexample {
    /// The segment variable.
    pub t: f64,
    /// The label the model predicts at `t` (by a plain forward pass).
    pub predicted: usize,
    /// The smallest margin at `t` (by the same forward pass); not positive.
    pub margin: f64,
    /// The generator's input at `t` (the latent point, or the pixel-space point without a generator).
    #[serde(skip)]
    pub input: Vec<f64>,
    /// The classifier's input at `t`: the image `G(z(t))`.
    #[serde(skip)]
    pub image: Vec<f64>,
}

/// The smallest margin over the segment and where it is reached; a lower bound for incomplete methods.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MinMargin {
    pub t: f64,
    pub margin: f64,
}

/// What a certifier answers. Exact methods fill every field exactly; incomplete ones give sound bounds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Certificate {
    pub method: Method,
    pub verdict: Verdict,
    pub label: usize,
    /// Affine pieces of the exact chain (complete, quantitative), or sub-intervals of `t` bounded
    /// (incomplete).
    pub pieces: usize,
    /// The largest `E' ≤ eps` such that the label is kept for every `t·eps` in `[0, E']` (and `[−E', 0]`
    /// when two-sided): exact for complete and piecewise-linear quantitative runs, a lower bound otherwise.
    pub max_tolerance: f64,
    /// Sub-intervals `[t0, t1]` of `t` on which the label is not kept (exact methods; for bounded methods,
    /// the sub-intervals proven violated).
    pub violated: Vec<[f64; 2]>,
    pub fraction: Fraction,
    /// The smallest margin over the segment and where (a lower bound for incomplete methods, where `t` is
    /// the start of the sub-interval that gave it).
    pub min_margin: MinMargin,
    pub counterexample: Option<Counterexample>,
    pub time_ms: f64,
}

impl Certificate {
    /// Whether two certificates of the same problem give the same answers: the same verdict, label and
    /// predicted label of the counterexample, and the same violated intervals, largest tolerance, kept fraction,
    /// smallest margin and counterexample margin up to `rel` relative (rounding in the last bits, for two exact
    /// methods). On a plateau of the smallest margin any point of it is the answer, so where it is reached is
    /// not compared. `Err` says what differs.
    pub fn same_answers(&self, other: &Certificate, rel: f64) -> std::result::Result<(), String> {
        let close = |x: f64, y: f64| (x - y).abs() <= rel * (1.0 + x.abs().max(y.abs()));
        let differ = |what: &str, a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| {
            Err(format!("{what}: {a:?} vs {b:?}"))
        };
        if self.verdict != other.verdict || self.label != other.label {
            return differ("verdict and label", &(self.verdict, self.label), &(other.verdict, other.label));
        }
        let same_violated = self.violated.len() == other.violated.len()
            && self.violated.iter().zip(&other.violated).all(|(x, y)| close(x[0], y[0]) && close(x[1], y[1]));
        if !same_violated {
            return differ("violated intervals", &self.violated, &other.violated);
        }
        if !close(self.max_tolerance, other.max_tolerance) {
            return differ("largest tolerance", &self.max_tolerance, &other.max_tolerance);
        }
        if !close(self.fraction.lower, other.fraction.lower)
            || !close(self.fraction.upper, other.fraction.upper)
        {
            return differ("kept fraction", &self.fraction, &other.fraction);
        }
        if !close(self.min_margin.margin, other.min_margin.margin) {
            return differ("smallest margin", &self.min_margin, &other.min_margin);
        }
        match (&self.counterexample, &other.counterexample) {
            (None, None) => Ok(()),
            (Some(x), Some(y)) if x.predicted == y.predicted && close(x.margin, y.margin) => Ok(()),
            (x, y) => differ("counterexample", x, y),
        }
    }
}

/// How the classifier's output is turned into margins (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// Arg-max over `classes` outputs.
    ArgMax { classes: usize },
    /// One score: label 1 iff `score > threshold`.
    Threshold { threshold: f64 },
}

impl Decision {
    /// The decision rule of a classifier whose last layer is `last`.
    pub fn for_output(last: &Layer) -> Decision {
        match (last.out_len(), &last.op) {
            (1, Op::Sigmoid) => Decision::Threshold { threshold: 0.5 },
            (1, _) => Decision::Threshold { threshold: 0.0 },
            (n, _) => Decision::ArgMax { classes: n },
        }
    }

    /// Number of labels.
    pub fn classes(&self) -> usize {
        match self {
            Decision::ArgMax { classes } => *classes,
            Decision::Threshold { .. } => 2,
        }
    }

    /// Number of margins.
    pub fn margins(&self) -> usize {
        match self {
            Decision::ArgMax { classes } => classes - 1,
            Decision::Threshold { .. } => 1,
        }
    }

    /// The predicted label (ties go to the lowest index).
    pub fn predict(&self, output: &[f64]) -> usize {
        match self {
            Decision::ArgMax { .. } => {
                let mut best = 0;
                for (i, v) in output.iter().enumerate() {
                    if *v > output[best] {
                        best = i;
                    }
                }
                best
            }
            Decision::Threshold { threshold } => usize::from(output[0] > *threshold),
        }
    }

    /// The margins of `label` as linear forms of the output: `m_j(o) = Σ_i rows[j][i]·o_i + offsets[j]`.
    pub fn margin_rows(&self, label: usize, width: usize) -> (Vec<Vec<f64>>, Vec<f64>) {
        match self {
            Decision::ArgMax { classes } => {
                let rows = (0..*classes)
                    .filter(|&c| c != label)
                    .map(|c| {
                        let mut r = vec![0.0; width];
                        r[label] = 1.0;
                        r[c] = -1.0;
                        r
                    })
                    .collect();
                (rows, vec![0.0; classes - 1])
            }
            Decision::Threshold { threshold } => {
                let sign = if label == 1 { 1.0 } else { -1.0 };
                (vec![vec![sign]], vec![-sign * threshold])
            }
        }
    }

    /// Writes the margins of `label` at `output` into `out`.
    pub fn margins_of(&self, label: usize, output: &[f64], out: &mut Vec<f64>) {
        out.clear();
        match self {
            Decision::ArgMax { .. } => {
                let y = output[label];
                out.extend(output.iter().enumerate().filter(|(c, _)| *c != label).map(|(_, v)| y - v));
            }
            Decision::Threshold { threshold } => {
                let m = output[0] - threshold;
                out.push(if label == 1 { m } else { -m });
            }
        }
    }

    /// The smallest margin of `label` at `output`.
    pub fn min_margin(&self, label: usize, output: &[f64]) -> f64 {
        let mut m = Vec::new();
        self.margins_of(label, output, &mut m);
        m.into_iter().fold(f64::INFINITY, f64::min)
    }
}

/// A certification request: does `classifier(generator(origin + t·delta))` keep `label` for every `t`?
///
/// Made only by [`Problem::new`] or [`Problem::between`], which validate it; read it through the accessors.
#[derive(Debug, Clone)]
pub struct Problem<'a> {
    generator: Vec<&'a Layer>,
    classifier: Vec<&'a Layer>,
    origin: Vec<f64>,
    direction: Direction,
    delta: Vec<f64>,
    eps: f64,
    two_sided: bool,
    label: usize,
    decision: Decision,
}

/// The parts of a problem before validation.
#[derive(Debug, Clone)]
pub struct ProblemSpec<'a> {
    pub generator: Vec<&'a Layer>,
    pub classifier: Vec<&'a Layer>,
    pub origin: Vec<f64>,
    /// The unit direction of the move.
    pub direction: Direction,
    pub eps: f64,
    pub two_sided: bool,
    /// The label to keep; the prediction at `t = 0` when `None`.
    pub label: Option<usize>,
}

impl<'a> Problem<'a> {
    /// Validates a request: layer shapes chain, the origin and direction are finite and of the right
    /// length, the direction is not zero, `eps` is positive and finite, the label is in range.
    pub fn new(spec: ProblemSpec<'a>) -> Result<Problem<'a>> {
        let ProblemSpec { generator, classifier, origin, direction, eps, two_sided, label } = spec;
        let last = *classifier.last().ok_or_else(|| Error::input("the classifier has no layers"))?;
        let layers: Vec<&Layer> = generator.iter().chain(&classifier).copied().collect();
        for (i, pair) in layers.windows(2).enumerate() {
            if pair[0].out_len() != pair[1].in_len() {
                let what = if i + 1 == generator.len() {
                    format!(
                        "the generator outputs {} values (shape {:?}) but the classifier takes {} (shape {:?})",
                        pair[0].out_len(),
                        pair[0].out_shape,
                        pair[1].in_len(),
                        pair[1].in_shape
                    )
                } else {
                    format!(
                        "layer {i} outputs {} values but layer {} takes {}",
                        pair[0].out_len(),
                        i + 1,
                        pair[1].in_len()
                    )
                };
                return Err(Error::input(what));
            }
        }
        let input_len = layers[0].in_len();
        if origin.len() != input_len {
            return Err(Error::input(format!(
                "the starting point has {} values but the model takes {input_len}",
                origin.len()
            )));
        }
        if direction.len() != input_len {
            return Err(Error::input(format!(
                "the direction has {} values but the model takes {input_len}",
                direction.len()
            )));
        }
        check_finite("the starting point", &origin)?;
        if !eps.is_finite() || eps <= 0.0 {
            return Err(Error::input(format!("the tolerance must be positive and finite, found {eps}")));
        }
        let delta = direction.scaled(eps);
        if delta.iter().zip(&origin).all(|(d, o)| o + d == *o) {
            return Err(Error::input(format!(
                "the tolerance {eps:e} is too small to move the starting point"
            )));
        }
        let decision = Decision::for_output(last);
        let mut problem =
            Problem { generator, classifier, origin, direction, delta, eps, two_sided, label: 0, decision };
        problem.label = match label {
            Some(l) if l < decision.classes() => l,
            Some(l) => {
                return Err(Error::input(format!(
                    "label {l} is out of range: the classifier has {} labels (0 to {})",
                    decision.classes(),
                    decision.classes() - 1
                )))
            }
            None => decision.predict(&problem.evaluate(0.0)?.1),
        };
        Ok(problem)
    }

    /// A pixel-space problem: the segment from `a` to `b` through `classifier` alone, `t ∈ [0, 1]`
    /// (`max_tolerance` is then the fraction of the way from `a` to `b`).
    pub fn between(
        classifier: Vec<&'a Layer>,
        a: Vec<f64>,
        b: Vec<f64>,
        label: Option<usize>,
    ) -> Result<Problem<'a>> {
        if a.len() != b.len() {
            return Err(Error::input(format!(
                "the segment ends differ in length: {} and {} values",
                a.len(),
                b.len()
            )));
        }
        check_finite("the segment start", &a)?;
        check_finite("the segment end", &b)?;
        let delta: Vec<f64> = b.iter().zip(&a).map(|(b, a)| b - a).collect();
        let direction = Direction::from_values(
            delta.clone(),
            Provenance::Given { source: String::from("the segment from start to end") },
        )?;
        let norm = direction.given_norm();
        let mut p = Problem::new(ProblemSpec {
            generator: Vec::new(),
            classifier,
            origin: a,
            direction,
            eps: norm.clamp(f64::MIN_POSITIVE, f64::MAX),
            two_sided: false,
            label,
        })?;
        // Keep the exact difference rather than the renormalised one.
        p.delta = delta;
        p.eps = 1.0;
        Ok(p)
    }

    /// Layers producing the image from the segment's space; empty for a pixel-space segment.
    pub fn generator(&self) -> &[&'a Layer] {
        &self.generator
    }

    /// Layers from the image to the output.
    pub fn classifier(&self) -> &[&'a Layer] {
        &self.classifier
    }

    /// The point at `t = 0`.
    pub fn origin(&self) -> &[f64] {
        &self.origin
    }

    /// The unit direction of the move (for a pixel-space problem, that of `b − a`).
    pub fn direction(&self) -> &Direction {
        &self.direction
    }

    /// The move at `t = 1`: `eps·d` (for a pixel-space problem, exactly `b − a`).
    pub fn delta(&self) -> &[f64] {
        &self.delta
    }

    /// The tolerance, in the units `max_tolerance` is reported in (1 for a pixel-space problem).
    pub fn eps(&self) -> f64 {
        self.eps
    }

    /// Whether `t ∈ [−1, 1]` instead of `[0, 1]`.
    pub fn two_sided(&self) -> bool {
        self.two_sided
    }

    /// The label to keep.
    pub fn label(&self) -> usize {
        self.label
    }

    /// How the classifier's output is turned into margins.
    pub fn decision(&self) -> Decision {
        self.decision
    }

    /// All layers, generator first.
    pub fn layers(&self) -> Vec<&'a Layer> {
        self.generator.iter().chain(&self.classifier).copied().collect()
    }

    pub fn input_len(&self) -> usize {
        self.origin.len()
    }

    pub fn output_len(&self) -> usize {
        self.classifier.last().map_or(0, |l| l.out_len())
    }

    /// The lowest value of `t`: `−1` when two-sided, else `0`.
    pub fn t_min(&self) -> f64 {
        if self.two_sided {
            -1.0
        } else {
            0.0
        }
    }

    /// The segment's point at `t`.
    pub fn point(&self, t: f64) -> Vec<f64> {
        self.origin.iter().zip(&self.delta).map(|(o, d)| o + t * d).collect()
    }

    /// The image (classifier input) and the output at `t`, by a plain forward pass.
    pub fn evaluate(&self, t: f64) -> Result<(Vec<f64>, Vec<f64>)> {
        let x = self.point(t);
        let image = forward_layers(self.generator.iter().copied(), x.len(), &x, 1)?;
        let output = forward_layers(self.classifier.iter().copied(), image.len(), &image, 1)?;
        Ok((image, output))
    }

    /// Evaluates the model at `t` and returns a counterexample if the label is not kept there.
    pub fn counterexample_at(&self, t: f64) -> Result<Option<Counterexample>> {
        let (image, output) = self.evaluate(t)?;
        let margin = self.decision.min_margin(self.label, &output);
        if margin > 0.0 {
            return Ok(None);
        }
        let predicted = match self.decision {
            Decision::ArgMax { .. } => {
                // The strongest competitor; on a tie it is the label the model cannot tell apart.
                let mut best = usize::from(self.label == 0);
                for (c, v) in output.iter().enumerate() {
                    if c != self.label && *v > output[best] {
                        best = c;
                    }
                }
                best
            }
            Decision::Threshold { .. } => 1 - self.label,
        };
        Ok(Some(Counterexample { t, predicted, margin, input: self.point(t), image }))
    }
}
