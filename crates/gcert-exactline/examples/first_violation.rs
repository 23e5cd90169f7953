//! A downstream tool built on `gcert-exactline` alone: where, along a segment, does a classifier first stop
//! predicting the label it has at the start?
//!
//! It loads a generator card and a classifier card, reads two latent points, streams the exact chain of
//! `classifier ∘ generator` into its own sink and stops the walk at the first piece on which the label
//! changes — the rest of the segment is never computed. On a piece every output is affine in the ratio, so
//! the first ratio at which a competitor ties with the label is found exactly.
//!
//! ```text
//! cargo run -p gcert-exactline --example first_violation -- \
//!     fixtures/generator.toml fixtures/classifier.toml fixtures/latent_a.npy fixtures/latent_b.npy
//! ```

use std::path::Path;

use gcert_exactline::{npy::read_npy, ControlFlow, ExactLine, Network, Segment, Sink};

/// Stops at the first ratio where some output catches up with the starting label's.
#[derive(Debug, Default)]
pub struct FirstViolation {
    /// The label at ratio 0 (the arg-max of the first output row).
    pub label: Option<usize>,
    /// The last point seen: its ratio and output.
    last: Option<(f64, Vec<f64>)>,
    /// The first ratio where the label is no longer strictly ahead, if any.
    pub violation: Option<f64>,
    /// Points delivered to the sink.
    pub points: usize,
}

impl FirstViolation {
    fn margin_root(label: usize, t0: f64, u: &[f64], t1: f64, v: &[f64]) -> Option<f64> {
        // m_c(s) = (u_y − u_c) + s·((v_y − v_c) − (u_y − u_c)), s ∈ [0, 1]: the first s with m_c(s) ≤ 0.
        let mut first: Option<f64> = None;
        for c in (0..u.len()).filter(|&c| c != label) {
            let (m0, m1) = (u[label] - u[c], v[label] - v[c]);
            let s = if m0 <= 0.0 {
                0.0
            } else if m1 <= 0.0 {
                m0 / (m0 - m1)
            } else {
                continue;
            };
            first = Some(first.map_or(s, |f: f64| f.min(s)));
        }
        first.map(|s| t0 + s * (t1 - t0))
    }
}

impl Sink for FirstViolation {
    fn push(&mut self, ratios: &[f64], values: &[f64]) -> ControlFlow<()> {
        let width = values.len() / ratios.len();
        for (&t, row) in ratios.iter().zip(values.chunks_exact(width)) {
            self.points += 1;
            let label = *self.label.get_or_insert_with(|| {
                (0..row.len()).fold(0, |best, c| if row[c] > row[best] { c } else { best })
            });
            let (t0, u) = self.last.take().unwrap_or((t, row.to_vec()));
            if let Some(t_star) = Self::margin_root(label, t0, &u, t, row) {
                self.violation = Some(t_star);
                return ControlFlow::Break(());
            }
            self.last = Some((t, row.to_vec()));
        }
        ControlFlow::Continue(())
    }
}

/// Runs the search for a generator and classifier card and two latent points.
pub fn first_violation(
    generator: &Path,
    classifier: &Path,
    from: &Path,
    to: &Path,
) -> gcert_exactline::Result<(FirstViolation, ControlFlow<()>)> {
    let g = Network::load(generator)?;
    let n = Network::load(classifier)?;
    let segment = Segment::new(read_npy(from)?.data, read_npy(to)?.data)?;
    // One thread: a parallel run computes a window of groups (up to half the segment at its first split) ahead
    // of the sink, so a search that stops early would compute much of the segment anyway.
    let engine = ExactLine::for_networks(&[&g, &n])?.with_parallel(false);
    let mut sink = FirstViolation::default();
    let flow = engine.run(&segment, &mut sink)?;
    Ok((sink, flow))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [g, n, a, b] = args.as_slice() else {
        eprintln!("usage: first_violation GENERATOR.toml CLASSIFIER.toml FROM.npy TO.npy");
        std::process::exit(2);
    };
    match first_violation(Path::new(g), Path::new(n), Path::new(a), Path::new(b)) {
        Ok((sink, flow)) => {
            let label = sink.label.unwrap_or(0);
            match sink.violation {
                Some(t) => {
                    println!("label {label} kept on [0, {t}); stopped early after {} points", sink.points)
                }
                None => println!("label {label} kept on the whole segment ({} points)", sink.points),
            }
            debug_assert_eq!(flow.is_break(), sink.violation.is_some());
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}
