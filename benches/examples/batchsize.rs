//! The cost of one forward pass of the trained generator ∘ classifier-conv4 per point, by batch size, and per
//! layer: how much a probe of one or two points pays for running alone.
//! `RAYON_NUM_THREADS=1 cargo run --release -p gcert-benches --example batchsize`
//!
//! Prints, per batch of 1 to 64 points, the microseconds per point of the whole pass and of each layer.

use gcert_benches::trained;
use gcert_core::ops::Scratch;
use gcert_core::Network;
use std::time::Instant;
fn main() {
    let g = Network::load(trained("generator.toml")).unwrap();
    let n = Network::load(trained("classifier-conv4.toml")).unwrap();
    let layers: Vec<_> = g.layers().iter().chain(n.layers().iter()).collect();
    for &b in &[1usize, 2, 4, 8, 16, 32, 64] {
        let x: Vec<f64> = (0..b * 50).map(|i| ((i * 7919) % 1000) as f64 / 1000.0 - 0.5).collect();
        let (mut cur, mut next, mut scratch) = (Vec::new(), Vec::new(), Scratch::default());
        let reps = 2000 / b;
        let start = Instant::now();
        for _ in 0..reps {
            cur.clear();
            cur.extend_from_slice(&x);
            for l in &layers {
                l.apply(&cur, b, &mut next, &mut scratch);
                std::mem::swap(&mut cur, &mut next);
            }
        }
        let per = start.elapsed().as_secs_f64() / (reps * b) as f64 * 1e6;
        let mut per_layer = vec![0.0; layers.len()];
        for _ in 0..reps.min(200) {
            cur.clear();
            cur.extend_from_slice(&x);
            for (i, l) in layers.iter().enumerate() {
                let t = Instant::now();
                l.apply(&cur, b, &mut next, &mut scratch);
                per_layer[i] += t.elapsed().as_secs_f64();
                std::mem::swap(&mut cur, &mut next);
            }
        }
        let pl: Vec<String> =
            per_layer.iter().map(|t| format!("{:.0}", t / (reps.min(200) * b) as f64 * 1e6)).collect();
        println!("batch {b}: {per:.1} us/point; layers {}", pl.join(" "));
    }
}
