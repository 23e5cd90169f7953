//! The hybrid alone on the issue-12 target case, for profiling and for comparing two builds in turns:
//! `RAYON_NUM_THREADS=1 cargo run --release -p gcert-benches --example hybrid_only` (`REPS=n` passes over the
//! 30 certifications, default 3).
//!
//! The case is the `hybrid` bench's: `fixtures/trained/generator.toml` ∘ `classifier-conv4.toml`, ε = 3
//! two-sided, 10 test latents × top 3 global directions. It prints the median time of one certification and
//! the total of the reported pieces (chained pieces plus one per region the bounds decided), which changes only
//! when the hybrid's decisions do. The bench times the whole chain next to it; this example does not, so a
//! profile shows the hybrid only.

use std::time::Instant;

use gcert_benches::{digit_case, median, target_problem, trained};
use gcert_certify::{Certifier, Hybrid};
use gcert_core::Network;

fn main() {
    let reps: usize = std::env::var("REPS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let g = Network::load(trained("generator.toml")).expect("generator");
    let n = Network::load(trained("classifier-conv4.toml")).expect("classifier");
    let cases: Vec<(Vec<f64>, Vec<f64>)> = (0..10)
        .flat_map(|i| {
            let (z, ds) = digit_case(&g, i, 3);
            ds.into_iter().map(move |d| (z.clone(), d))
        })
        .collect();
    let (mut times, mut pieces) = (Vec::new(), 0);
    for _ in 0..reps {
        for (z, d) in &cases {
            let problem = target_problem(&g, &n, z, d);
            let start = Instant::now();
            let cert = Hybrid.certify(&problem).expect("hybrid");
            times.push(start.elapsed().as_secs_f64() * 1e3);
            pieces += cert.pieces;
        }
    }
    let runs = times.len();
    println!(
        "hybrid: median {:.1} ms over {runs} certifications; {pieces} pieces reported in all",
        median(times)
    );
}
