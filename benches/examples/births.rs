//! Where the breakpoints of the issue-12 target case are born, and what its whole exact chain costs on one
//! thread: `cargo run --release -p gcert-benches --example births` (`REPS=n` repetitions, default 7).
//!
//! The case is `fixtures/trained/generator.toml` ∘ `classifier-conv4.toml`, ε = 3 two-sided along the top
//! global direction at the latents `gan-z-{0,3,7}`. For each, the points the chain gains at every activation
//! layer (from the chains of the network's prefixes), and the minimum and median time of the whole chain.

use std::time::Instant;

use gcert_benches::{digit_case, trained};
use gcert_core::{Network, Segment};
use gcert_exactline::ExactLine;

fn main() {
    let g = Network::load(trained("generator.toml")).expect("generator");
    let n = Network::load(trained("classifier-conv4.toml")).expect("classifier");
    let layers: Vec<_> = g.layers().iter().chain(n.layers()).collect();
    let reps: usize = std::env::var("REPS").ok().and_then(|c| c.parse().ok()).unwrap_or(7).max(1);
    for i in [0usize, 3, 7] {
        let (z, ds) = digit_case(&g, i, 1);
        let d = &ds[0][..];
        let a: Vec<f64> = z.iter().zip(d).map(|(z, d)| z - 3.0 * d).collect();
        let b: Vec<f64> = z.iter().zip(d).map(|(z, d)| z + 3.0 * d).collect();
        let seg = Segment::new(a, b).expect("segment");
        let mut births = String::new();
        let mut prev = 2;
        for k in 0..layers.len() {
            let points = ExactLine::new(layers[..=k].to_vec())
                .expect("prefix")
                .chain(&seg)
                .expect("chain")
                .ratios
                .len();
            if points != prev {
                births += &format!(" {}#{k}:+{}", layers[k].name(), points - prev);
            }
            prev = points;
        }
        let engine = ExactLine::new(layers.clone()).expect("engine").with_parallel(false);
        let mut times: Vec<f64> = (0..reps)
            .map(|_| {
                let start = Instant::now();
                let chain = engine.chain(&seg).expect("chain");
                assert_eq!(chain.ratios.len(), prev);
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        println!(
            "gan-z-{i}: {} pieces, one thread: min {:.0} ms, median {:.0} ms; born at{births}",
            prev - 1,
            times[0],
            times[reps / 2]
        );
    }
}
