//! Stylized mutations on the committed translators (docs/stylized.md): identity at α = 0 within the stated
//! error, and certification along α ∈ [0, E] with the image held fixed checked against dense sampling, for
//! every backend, with the hybrid equal to the full chain.

use std::path::PathBuf;

use gcert_certify::job::{Job, JobSegment, Models};
use gcert_certify::{Method, Options, Verdict};
use gcert_core::npy::read_npy;
use gcert_core::{Network, Translator};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/trained").join(name)
}

const STYLES: [&str; 2] = ["fog", "rain"];

/// The stated identity error (docs/stylized.md): the mean per-pixel `|T(x, 0) − x|` of a committed translator
/// is at most this on each of the ten committed test digits.
const IDENTITY_MAX: f64 = 0.05;

fn digit(d: usize) -> Vec<f64> {
    read_npy(&fixture(&format!("latents/digit-{d}.npy"))).unwrap().data
}

#[test]
fn committed_translators_are_the_identity_at_zero_strength() {
    for style in STYLES {
        let net = Network::load(fixture(&format!("translator-{style}.toml"))).unwrap();
        for d in 0..10 {
            let x = digit(d);
            let t = Translator::new(net.clone(), x.clone()).unwrap();
            let out = t.images(&[0.0, 1.0]).unwrap();
            let (at0, at1) = out.split_at(x.len());
            let err = at0.iter().zip(&x).map(|(a, b)| (a - b).abs()).sum::<f64>() / x.len() as f64;
            assert!(err <= IDENTITY_MAX, "{style}, digit {d}: mean |T(x,0) − x| = {err}");
            let change = at1.iter().zip(&x).map(|(a, b)| (a - b).abs()).sum::<f64>() / x.len() as f64;
            assert!(
                change > 2.0 * err,
                "{style}, digit {d}: the full style changes the digit ({change} vs {err})"
            );
        }
    }
}

fn margin(logits: &[f64], label: usize) -> f64 {
    let other =
        logits.iter().enumerate().filter(|(i, _)| *i != label).map(|(_, v)| *v).fold(f64::MIN, f64::max);
    logits[label] - other
}

#[test]
fn certification_along_the_strength_survives_dense_sampling() {
    let classifier = Network::load(fixture("classifier-conv2.toml")).unwrap();
    let mut verdicts = Vec::new();
    for (style, cases) in [("fog", [(3, 1.0), (8, 0.6)]), ("rain", [(0, 1.0), (7, 1.0)])] {
        let net = Network::load(fixture(&format!("translator-{style}.toml"))).unwrap();
        for (d, strength) in cases {
            let start = std::time::Instant::now();
            let x = digit(d);
            let t = Translator::new(net.clone(), x.clone()).unwrap();
            let models = Models::with_translator(t, classifier.clone(), None, None).unwrap();
            let job = |method| Job {
                segment: JobSegment::strength(strength, style).unwrap(),
                two_sided: false,
                label: None,
                method,
            };
            let exact = Options { exact_chain: true, ..Options::default() };
            let full = models.certify(&job(Method::Complete), exact).unwrap();
            let hybrid = models.certify(&job(Method::Complete), Options::default()).unwrap();
            if let Err(why) = hybrid.same_answers(&full, 1e-9) {
                panic!("{style}, digit {d}: hybrid differs from the full chain: {why}");
            }
            let quantitative = models.certify(&job(Method::Quantitative), Options::default()).unwrap();
            let incomplete = models.certify(&job(Method::Incomplete), Options::default()).unwrap();

            // Dense sampling of α: every sample's margin agrees with the exact answer.
            let n = 1001;
            let alphas: Vec<f64> = (0..n).map(|i| strength * i as f64 / (n - 1) as f64).collect();
            let t = Translator::new(net.clone(), x.clone()).unwrap();
            let images = t.images(&alphas).unwrap();
            let len = x.len();
            let label = full.label;
            let mut smallest = f64::INFINITY;
            for (i, img) in images.chunks_exact(len).enumerate() {
                let m = margin(&classifier.forward(img, 1).unwrap(), label);
                smallest = smallest.min(m);
                let s = alphas[i] / strength;
                let inside = full.violated.iter().any(|iv| s >= iv[0] - 1e-9 && s <= iv[1] + 1e-9);
                if m < -1e-9 {
                    assert!(
                        inside,
                        "{style}, digit {d}: α = {} loses the label outside {:?}",
                        alphas[i], full.violated
                    );
                    assert!(
                        alphas[i] >= full.max_tolerance - 1e-9,
                        "{style}, digit {d}: loses the label below E_max"
                    );
                }
                if m > 1e-9 && full.violated.iter().all(|iv| s < iv[0] - 1e-9 || s > iv[1] + 1e-9) {
                    assert!(!inside);
                }
                if full.verdict == Verdict::Certified || incomplete.verdict == Verdict::Certified {
                    assert!(m > -1e-9, "{style}, digit {d}: certified, yet α = {} has margin {m}", alphas[i]);
                }
            }
            assert!(
                full.min_margin.margin <= smallest + 1e-9,
                "the exact smallest margin is below every sample's"
            );
            assert_eq!(quantitative.verdict, full.verdict);
            assert!(
                (quantitative.max_tolerance - full.max_tolerance).abs() <= 1e-9 * (1.0 + full.max_tolerance)
            );
            assert!(
                incomplete.max_tolerance <= full.max_tolerance + 1e-9,
                "bounds never claim more than the chain"
            );
            if let Some(c) = &full.counterexample {
                let m = margin(&classifier.forward(&c.image, 1).unwrap(), label);
                assert!(m <= 1e-9, "{style}, digit {d}: the counterexample keeps the label ({m})");
            }
            eprintln!(
                "{style}, digit {d}: {:?}, E_max {}, {:.1} s",
                full.verdict,
                full.max_tolerance,
                start.elapsed().as_secs_f64()
            );
            verdicts.push(full.verdict);
        }
    }
    eprintln!("verdicts: {verdicts:?}");
}
