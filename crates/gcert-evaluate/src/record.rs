//! One line of `results.jsonl`: the answer for one image × mutation × classifier (docs/evaluate.md lists the
//! fields).

use serde::{Deserialize, Serialize};

/// What happened to one image × mutation × classifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The label is kept on the whole range.
    Certified,
    /// Some point of the range changes the label (a re-evaluated counterexample comes with it).
    Violated,
    /// An incomplete method could not decide.
    Unknown,
    /// The image's reconstruction error is above the threshold: not certified at all.
    Skipped,
    /// The mutation does not exist at this image's latent (`reason` says why): not certified at all.
    NotAvailable,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Certified => "certified",
            Status::Violated => "violated",
            Status::Unknown => "unknown",
            Status::Skipped => "skipped",
            Status::NotAvailable => "not-available",
        }
    }

    /// Whether a certifier ran (certified, violated or unknown).
    pub fn evaluated(self) -> bool {
        matches!(self, Status::Certified | Status::Violated | Status::Unknown)
    }
}

/// Bounds on the fraction of the range on which the label is kept.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Kept {
    pub lower: f64,
    pub upper: f64,
}

/// A point of the range where the label changes, re-evaluated by a forward pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CounterexampleRecord {
    /// Where, in the mutation's unit (negative: the other side).
    pub at: f64,
    /// The segment variable `t ∈ [−1, 1]`.
    pub t: f64,
    /// The label the classifier predicts there.
    pub predicted: usize,
    /// The smallest margin there (not positive).
    pub margin: f64,
    /// The image `G(z + t·eps·d)`, a PNG under the run folder.
    pub image: String,
}

/// One line of `results.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// `image|mutation|classifier`: unique in a run; a resumed run skips the keys it finds.
    pub key: String,
    /// Index of the image in the run's images.
    pub image: usize,
    pub image_name: String,
    /// The true label (the label certified).
    pub label: usize,
    /// The classifier's name (its card's file stem) and path.
    pub classifier: String,
    pub classifier_path: String,
    /// The mutation as given (`rotation:15`).
    pub mutation: String,
    /// `rotation`, `translate-x`, …, `local` or `file`.
    pub kind: String,
    /// The unit of `amount`, `max_tolerance` and `violated`: degrees, pixels, percent or latent.
    pub unit: String,
    /// The half-range certified: `[−amount, amount]`.
    pub amount: f64,
    pub status: Status,
    /// Why an image was skipped or a mutation is not available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Mean squared error per pixel of the image's reconstruction `G(z)`.
    pub reconstruction_mse: f64,
    /// The classifier's label for `G(z)`, the centre of the range (absent when not evaluated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction_at_center: Option<usize>,
    /// The largest `E ≤ amount` with the label kept on `[−E, E]`, in `unit` (exact for complete runs, a lower
    /// bound otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tolerance: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept: Option<Kept>,
    /// Sub-ranges `[a, b]` (in `unit`) where the label is not kept (proven violated ones for bounded methods).
    #[serde(default)]
    pub violated: Vec<[f64; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_margin: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counterexample: Option<CounterexampleRecord>,
    /// Latent tolerance `eps` of the segment and the unit per latent unit (1 for latent mutations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eps_latent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_latent_unit: Option<f64>,
    /// Linearity and purity of a named mutation at this image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linearity: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purity: Option<f64>,
    /// Which certifier ran and the pieces it looked at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pieces: Option<usize>,
    /// The images along the range (a PNG strip under the run folder, `frames` images from −amount to +amount).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strip: Option<String>,
    /// Table 4's per-pixel bounds at this image (named mutations with `--precision`; the same for every
    /// classifier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<crate::precision::Precision>,
    /// Milliseconds: certification of this record, and the image's inversion plus this mutation's search.
    pub time_ms: f64,
    pub setup_ms: f64,
}

/// The key of one image × mutation × classifier.
pub fn key(image: usize, mutation: &str, classifier: &str) -> String {
    format!("{image}|{mutation}|{classifier}")
}
