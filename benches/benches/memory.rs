//! Peak heap memory of the engine on long segments of the DCGAN generator ∘ classifier.
//!
//! Not a timing: one run each, measured with a counting allocator. The streamed run hands the chain to a sink
//! that keeps only the logits' bounds, on one thread and split over the cores; the baseline keeps the whole chain (ratios and logits). Both are far
//! below what keeping every layer's values at every breakpoint would take (printed for comparison).
//! Last, the complete certifiers on the issue-12 target case (trained generator ∘ classifier-conv4, ε = 3
//! two-sided, one digit × 3 directions): the hybrid keeps every probe's trace (the exact values its bands
//! read) while the side's regions may still be bounded, the exact-chain scan streams.
//! Run with `cargo bench -p gcert-benches --bench memory`.

use gcert_benches::{
    conv_classifier, dcgan_generator, digit_case, latent_and_direction, segment, target_problem, trained,
};
use gcert_certify::{Certifier, Complete, Hybrid};
use gcert_core::Network;
use gcert_exactline::{Bounds, ExactLine};
use peak_alloc::PeakAlloc;

#[global_allocator]
static PEAK: PeakAlloc = PeakAlloc;

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1u64 << 20) as f64
}

/// Peak heap bytes above the baseline while `f` runs.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    PEAK.reset_peak_usage();
    let base = PEAK.current_usage();
    let out = f();
    (out, PEAK.peak_usage().saturating_sub(base))
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let gen = dcgan_generator(50, 7);
    let cls = conv_classifier(8);
    let engine = ExactLine::for_networks(&[&gen, &cls]).expect("engine").with_parallel(false);
    let per_point: usize =
        gcert_core::compose(&[&gen, &cls]).expect("compose").iter().map(|l| l.in_len() + l.out_len()).sum();
    let (z, d) = latent_and_direction(50, 9);
    // Segments through z in both directions; pieces grow with the length until the network turns linear far out.
    for eps in [640.0, 5_000.0, 40_000.0] {
        let a: Vec<f64> = z.iter().zip(&d).map(|(z, d)| z - eps * d).collect();
        let seg = segment(&a, &d, 2.0 * eps);
        let start = std::time::Instant::now();
        let (bounds, streamed) = peak_of(|| {
            let mut bounds = Bounds::new(engine.output_len());
            let flow = engine.run(&seg, &mut bounds).expect("stream");
            assert!(flow.is_continue(), "Bounds streams the whole chain");
            bounds
        });
        let elapsed = start.elapsed();
        // Split over the cores, a wave of groups is buffered before it reaches the sink.
        let (split, split_peak) = peak_of(|| {
            let mut bounds = Bounds::new(engine.output_len());
            let _ = engine.clone().with_parallel(true).run(&seg, &mut bounds).expect("stream");
            bounds
        });
        assert_eq!(split, bounds);
        let (chain, kept) = peak_of(|| engine.chain(&seg).expect("chain"));
        assert_eq!(chain.pieces(), bounds.pieces());
        let naive = mib(bounds.points * per_point * 8);
        println!(
            "memory: {:>6} pieces ({:.1} s): peak streamed {:.1} MiB (split over {} threads {:.1} MiB), chain kept \
             {:.1} MiB, every layer at every point would be {naive:.0} MiB",
            bounds.pieces(),
            elapsed.as_secs_f64(),
            mib(streamed),
            rayon::current_num_threads(),
            mib(split_peak),
            mib(kept)
        );
    }
    let g = Network::load(trained("generator.toml")).expect("generator");
    let n = Network::load(trained("classifier-conv4.toml")).expect("classifier");
    let (z, ds) = digit_case(&g, 3, 3);
    for (k, d) in ds.iter().enumerate() {
        let problem = target_problem(&g, &n, &z, d);
        let (hybrid, hybrid_peak) = peak_of(|| Hybrid.certify(&problem).expect("hybrid"));
        let (full, full_peak) = peak_of(|| Complete.certify(&problem).expect("exact chain"));
        println!(
            "memory: target case gan-z-3, direction {k} ({} threads): hybrid peak {:.1} MiB ({} pieces), \
             exact-chain scan {:.1} MiB ({} pieces)",
            rayon::current_num_threads(),
            mib(hybrid_peak),
            hybrid.pieces,
            mib(full_peak),
            full.pieces
        );
    }
}
