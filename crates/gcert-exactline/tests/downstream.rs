//! The engine crate used alone, as a downstream tool would: `examples/first_violation.rs` loads committed model
//! cards, streams the chain into its own sink and stops early; its answer must be the full chain's.

#[path = "../examples/first_violation.rs"]
#[allow(dead_code)]
mod first_violation;

use std::path::PathBuf;

use gcert_exactline::{ExactLine, Network, Segment};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures").join(name)
}

/// The first ratio at which the start's label stops being strictly ahead, from the whole chain.
fn first_violation_of_full_chain(ends: [&str; 2]) -> (Option<f64>, usize) {
    let g = Network::load(fixture("generator.toml")).unwrap();
    let n = Network::load(fixture("classifier.toml")).unwrap();
    let read = |f: &str| gcert_exactline::npy::read_npy(&fixture(f)).unwrap().data;
    let segment = Segment::new(read(ends[0]), read(ends[1])).unwrap();
    let chain = ExactLine::for_networks(&[&g, &n]).unwrap().chain(&segment).unwrap();
    let first = chain.value(0);
    let label = (0..first.len()).fold(0, |b, c| if first[c] > first[b] { c } else { b });
    for i in 1..chain.ratios.len() {
        let (u, v) = (chain.value(i - 1), chain.value(i));
        let mut best: Option<f64> = None;
        for c in (0..u.len()).filter(|&c| c != label) {
            let (m0, m1) = (u[label] - u[c], v[label] - v[c]);
            let s = if m0 <= 0.0 {
                0.0
            } else if m1 <= 0.0 {
                m0 / (m0 - m1)
            } else {
                continue;
            };
            best = Some(best.map_or(s, |b: f64| b.min(s)));
        }
        if let Some(s) = best {
            let (t0, t1) = (chain.ratios[i - 1], chain.ratios[i]);
            return (Some(t0 + s * (t1 - t0)), chain.ratios.len());
        }
    }
    (None, chain.ratios.len())
}

#[test]
fn a_sink_stops_the_walk_at_the_first_violation_with_the_full_chains_answer() {
    let (sink, flow) = first_violation::first_violation(
        &fixture("generator.toml"),
        &fixture("classifier.toml"),
        &fixture("latent_a.npy"),
        &fixture("latent_b.npy"),
    )
    .unwrap();
    let (expected, all_points) = first_violation_of_full_chain(["latent_a.npy", "latent_b.npy"]);
    let t = expected.expect("the committed fixture segment changes the label");
    assert!(flow.is_break(), "the sink stopped the walk");
    assert_eq!(sink.violation, Some(t), "same first violation as the full chain");
    assert!(
        sink.points < all_points,
        "stopping early delivers fewer points: {} of {all_points}",
        sink.points
    );
}

#[test]
fn without_a_violation_the_whole_chain_is_delivered() {
    // The segment from a point to a point very close to it keeps the label.
    let g = Network::load(fixture("generator.toml")).unwrap();
    let n = Network::load(fixture("classifier.toml")).unwrap();
    let a = gcert_exactline::npy::read_npy(&fixture("latent_a.npy")).unwrap().data;
    let mut b = a.clone();
    b[0] += 1e-9;
    let segment = Segment::new(a, b).unwrap();
    let engine = ExactLine::for_networks(&[&g, &n]).unwrap();
    let mut sink = first_violation::FirstViolation::default();
    let flow = engine.run(&segment, &mut sink).unwrap();
    assert!(flow.is_continue());
    assert_eq!(sink.violation, None);
    assert_eq!(sink.points, engine.chain(&segment).unwrap().ratios.len());
}
