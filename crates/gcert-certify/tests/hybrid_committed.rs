//! The hybrid complete certifier gives the full chain's answers on the committed models: the trained MNIST
//! generator with the 4-conv classifier (segments that keep the label and segments that lose it), and the
//! small random fixtures.

use std::path::PathBuf;

use gcert_certify::{Certificate, Certifier, Complete, Hybrid, Problem, ProblemSpec};
use gcert_core::npy::read_npy;
use gcert_core::{Direction, Network};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures").join(name)
}

fn assert_same(what: &str, a: &Certificate, b: &Certificate) {
    if let Err(why) = a.same_answers(b, 1e-9) {
        panic!("{what}: {why}");
    }
}

fn problem<'a>(g: &'a Network, n: &'a Network, z: Vec<f64>, d: Vec<f64>, eps: f64) -> Problem<'a> {
    Problem::new(ProblemSpec {
        generator: g.layers().iter().collect(),
        classifier: n.layers().iter().collect(),
        origin: z,
        direction: Direction::new(d).unwrap(),
        eps,
        two_sided: true,
        label: None,
    })
    .unwrap()
}

#[test]
fn hybrid_equals_the_full_chain_on_the_trained_generator_and_classifier() {
    let g = Network::load(fixture("trained/generator.toml")).unwrap();
    let n = Network::load(fixture("trained/classifier-conv4.toml")).unwrap();
    let mut verdicts = Vec::new();
    for (digit, eps) in [(3, 1.0), (3, 3.0), (0, 3.0), (7, 3.0), (3, 16.0), (7, 16.0)] {
        let z = read_npy(&fixture(&format!("trained/latents/gan-z-{digit}.npy"))).unwrap().data;
        let d: Vec<f64> = (0..z.len()).map(|i| ((i * 7 + digit) as f64 * 0.91).sin()).collect();
        let p = problem(&g, &n, z, d, eps);
        let (hybrid, full) = (Hybrid.certify(&p).unwrap(), Complete.certify(&p).unwrap());
        assert_same(&format!("gan-z-{digit}, eps {eps}"), &hybrid, &full);
        // A side whose chain ends within the first 64 points is chained whole; longer ones (here from ε = 1 on,
        // over 1,000 pieces a side) are partly decided by bounds.
        assert!(hybrid.pieces < full.pieces, "the hybrid chains less: {} vs {}", hybrid.pieces, full.pieces);
        verdicts.push(full.verdict);
    }
    assert!(verdicts.contains(&gcert_certify::Verdict::Certified), "{verdicts:?}");
    assert!(verdicts.contains(&gcert_certify::Verdict::Violated), "{verdicts:?}");
}

#[test]
fn hybrid_equals_the_full_chain_on_the_random_fixtures() {
    let g = Network::load(fixture("generator.toml")).unwrap();
    let n = Network::load(fixture("classifier.toml")).unwrap();
    let a = read_npy(&fixture("latent_a.npy")).unwrap().data;
    let b = read_npy(&fixture("latent_b.npy")).unwrap().data;
    let d: Vec<f64> = b.iter().zip(&a).map(|(b, a)| b - a).collect();
    for eps in [0.25, 1.0, 4.0] {
        let p = problem(&g, &n, a.clone(), d.clone(), eps);
        assert_same(
            &format!("fixtures, eps {eps}"),
            &Hybrid.certify(&p).unwrap(),
            &Complete.certify(&p).unwrap(),
        );
    }
}
