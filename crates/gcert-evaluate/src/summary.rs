//! `summary.json`: per classifier × mutation, the certified rate, the largest tolerance's mean and median in
//! the mutation's unit, the kept fraction and the time per image.

use serde::Serialize;

use crate::record::{Record, Status};

/// The aggregate of one classifier × mutation.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub classifier: String,
    pub mutation: String,
    pub unit: String,
    pub amount: f64,
    /// Images in the run.
    pub images: usize,
    /// Images certified, violated, undecided, skipped (reconstruction) and without the mutation.
    pub certified: usize,
    pub violated: usize,
    pub unknown: usize,
    pub skipped: usize,
    pub not_available: usize,
    /// Certified over evaluated (certified + violated + unknown); `None` when nothing was evaluated.
    pub certified_rate: Option<f64>,
    /// Mean and median of the largest tolerance over the evaluated images, in `unit`.
    pub mean_tolerance: Option<f64>,
    pub median_tolerance: Option<f64>,
    /// Evaluated images whose largest tolerance is the whole requested range.
    pub at_full_range: usize,
    /// Means of the kept fraction's bounds over the evaluated images.
    pub mean_kept_lower: Option<f64>,
    pub mean_kept_upper: Option<f64>,
    /// Mean and median certification time per evaluated image (milliseconds).
    pub mean_time_ms: Option<f64>,
    pub median_time_ms: Option<f64>,
    /// Evaluated images the classifier already gets wrong at the centre of the range (`G(z)`).
    pub wrong_at_center: usize,
}

/// Table 4 for one mutation: means over images of each image's mean width and medians of each image's median
/// width, gcert's exact bounds beside the pixel-space interval bounds.
#[derive(Debug, Clone, Serialize)]
pub struct PrecisionCell {
    pub mutation: String,
    pub images: usize,
    pub gcert_mean: f64,
    pub gcert_median: f64,
    pub interval_mean: f64,
    pub interval_median: f64,
    pub interval_split_mean: f64,
    pub interval_split_median: f64,
    /// Median milliseconds per image: gcert's bounds, and both interval bounds together.
    pub gcert_ms: f64,
    pub interval_ms: f64,
}

/// Everything `summary.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub images: usize,
    /// Images skipped for their reconstruction error.
    pub skipped_images: usize,
    /// Mean reconstruction error (per pixel) over all images.
    pub mean_reconstruction_mse: f64,
    pub records: usize,
    pub cells: Vec<Cell>,
    /// Table 4 per named mutation (runs with `--precision`).
    pub precision: Vec<PrecisionCell>,
    /// Wall-clock seconds of the run that wrote this summary (a resumed run counts only itself), and of every
    /// run of this folder together.
    pub wall_s: f64,
    pub total_wall_s: f64,
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// The median of `v` (`None` when empty).
pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    Some(if n % 2 == 1 { s[n / 2] } else { 0.5 * (s[n / 2 - 1] + s[n / 2]) })
}

impl Summary {
    pub fn new(records: &[Record], wall_s: f64) -> Summary {
        let mut classifiers: Vec<&str> = Vec::new();
        let mut mutations: Vec<&str> = Vec::new();
        for r in records {
            if !classifiers.contains(&r.classifier.as_str()) {
                classifiers.push(&r.classifier);
            }
            if !mutations.contains(&r.mutation.as_str()) {
                mutations.push(&r.mutation);
            }
        }
        let mut cells = Vec::new();
        for m in &mutations {
            for c in &classifiers {
                let rs: Vec<&Record> =
                    records.iter().filter(|r| r.classifier == *c && r.mutation == *m).collect();
                let Some(first) = rs.first() else { continue };
                let count = |s: Status| rs.iter().filter(|r| r.status == s).count();
                let ev: Vec<&&Record> = rs.iter().filter(|r| r.status.evaluated()).collect();
                let tol: Vec<f64> = ev.iter().filter_map(|r| r.max_tolerance).collect();
                let lower: Vec<f64> = ev.iter().filter_map(|r| r.kept.map(|k| k.lower)).collect();
                let upper: Vec<f64> = ev.iter().filter_map(|r| r.kept.map(|k| k.upper)).collect();
                let times: Vec<f64> = ev.iter().map(|r| r.time_ms).collect();
                let certified = count(Status::Certified);
                cells.push(Cell {
                    classifier: c.to_string(),
                    mutation: m.to_string(),
                    unit: first.unit.clone(),
                    amount: first.amount,
                    images: rs.len(),
                    certified,
                    violated: count(Status::Violated),
                    unknown: count(Status::Unknown),
                    skipped: count(Status::Skipped),
                    not_available: count(Status::NotAvailable),
                    certified_rate: (!ev.is_empty()).then(|| certified as f64 / ev.len() as f64),
                    mean_tolerance: mean(&tol),
                    median_tolerance: median(&tol),
                    at_full_range: tol.iter().filter(|&&t| t >= first.amount * (1.0 - 1e-9)).count(),
                    mean_kept_lower: mean(&lower),
                    mean_kept_upper: mean(&upper),
                    mean_time_ms: mean(&times),
                    median_time_ms: median(&times),
                    wrong_at_center: ev
                        .iter()
                        .filter(|r| r.prediction_at_center.is_some_and(|p| p != r.label))
                        .count(),
                });
            }
        }
        let mut per_image: std::collections::BTreeMap<usize, (f64, bool)> = std::collections::BTreeMap::new();
        for r in records {
            per_image.insert(r.image, (r.reconstruction_mse, r.status == Status::Skipped));
        }
        let mses: Vec<f64> = per_image.values().map(|v| v.0).collect();
        let mut precision = Vec::new();
        for m in &mutations {
            let mut seen = std::collections::BTreeSet::new();
            let ps: Vec<&crate::precision::Precision> = records
                .iter()
                .filter(|r| r.mutation == *m && seen.insert(r.image))
                .filter_map(|r| r.precision.as_ref())
                .collect();
            if ps.is_empty() {
                continue;
            }
            let col = |f: &dyn Fn(&crate::precision::Precision) -> f64| {
                ps.iter().map(|p| f(p)).collect::<Vec<f64>>()
            };
            precision.push(PrecisionCell {
                mutation: m.to_string(),
                images: ps.len(),
                gcert_mean: mean(&col(&|p| p.gcert.mean)).unwrap_or(0.0),
                gcert_median: median(&col(&|p| p.gcert.median)).unwrap_or(0.0),
                interval_mean: mean(&col(&|p| p.interval.mean)).unwrap_or(0.0),
                interval_median: median(&col(&|p| p.interval.median)).unwrap_or(0.0),
                interval_split_mean: mean(&col(&|p| p.interval_split.mean)).unwrap_or(0.0),
                interval_split_median: median(&col(&|p| p.interval_split.median)).unwrap_or(0.0),
                gcert_ms: median(&col(&|p| p.gcert_ms)).unwrap_or(0.0),
                interval_ms: median(&col(&|p| p.interval_ms)).unwrap_or(0.0),
            });
        }
        Summary {
            images: per_image.len(),
            skipped_images: per_image.values().filter(|v| v.1).count(),
            mean_reconstruction_mse: mean(&mses).unwrap_or(0.0),
            records: records.len(),
            cells,
            precision,
            wall_s,
            total_wall_s: wall_s,
        }
    }
}
