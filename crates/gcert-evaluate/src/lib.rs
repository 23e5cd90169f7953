//! Robustness of classifiers over a test set (`gcert evaluate`, docs/evaluate.md): images → the latent of each
//! image (GAN inversion or an encoder; images the generator cannot reproduce closely enough are reported and
//! skipped) → the requested mutations at that latent (named geometric mutations with amounts in their units,
//! local regions, explicit directions) → certification (complete by default) → per image × mutation ×
//! classifier a [`Record`]: verdict, largest tolerance in the mutation's unit, kept fraction, counterexample
//! image, time. A run folder holds the records (`results.jsonl`, resumable), `summary.json` and a
//! self-contained `report.html`.
//!
//! [`precision`] is the paper's Table 4: gcert's exact per-pixel bounds along a geometric mutation against the
//! interval bounds a pixel-space verifier gets for the same transform of the image itself.

pub mod error;
pub mod images;
pub mod mutation;
pub mod output;
pub mod precision;
pub mod record;
pub mod report;
pub mod run;
pub mod summary;

pub use error::{Error, Result};
pub use images::Images;
pub use mutation::{Mutation, Prepared, Resolved};
pub use output::{finish, manifest, Mode, RunDir};
pub use record::{Record, Status};
pub use run::{Evaluation, Settings};
pub use summary::Summary;
