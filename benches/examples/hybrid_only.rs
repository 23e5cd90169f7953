//! The hybrid alone on the issue-12 target case, for profiling and for comparing two builds in turns:
//! `RAYON_NUM_THREADS=1 cargo run --release -p gcert-benches --example hybrid_only` (`REPS=n` passes over the
//! 30 certifications, default 3).
//!
//! The case is the `hybrid` bench's: `fixtures/trained/generator.toml` ∘ `classifier-conv4.toml`, ε = 3
//! two-sided, 10 test latents × top 3 global directions. It prints the median time of one certification and
//! the total of the reported pieces (chained pieces plus one per region the bounds decided), which changes only
//! when the hybrid's decisions do. The bench times the whole chain next to it; this example does not, so a
//! profile shows the hybrid only.

use std::path::PathBuf;
use std::time::Instant;

use gcert_benches::median;
use gcert_certify::{Certifier, Hybrid, Problem, ProblemSpec};
use gcert_core::npy::read_npy;
use gcert_core::{Direction, Network};
use gcert_directions::{directions, sample_latents, FactorParams};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/trained").join(name)
}

fn main() {
    let reps: usize = std::env::var("REPS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let g = Network::load(fixture("generator.toml")).expect("generator");
    let n = Network::load(fixture("classifier-conv4.toml")).expect("classifier");
    let mut cases = Vec::new();
    for i in 0..10 {
        let z = read_npy(&fixture(&format!("latents/gan-z-{i}.npy"))).expect("committed latent").data;
        let zs = sample_latents(&z, 1, 0).expect("latent");
        let f = directions(&g, &zs, 1, &FactorParams::default()).expect("directions");
        for d in f.directions().rows().into_iter().take(3) {
            cases.push((z.clone(), d.to_vec()));
        }
    }
    let (mut times, mut pieces) = (Vec::new(), 0);
    for _ in 0..reps {
        for (z, d) in &cases {
            let problem = Problem::new(ProblemSpec {
                generator: g.layers().iter().collect(),
                classifier: n.layers().iter().collect(),
                origin: z.clone(),
                direction: Direction::new(d.clone()).expect("a unit direction"),
                eps: 3.0,
                two_sided: true,
                label: None,
            })
            .expect("a valid problem");
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
