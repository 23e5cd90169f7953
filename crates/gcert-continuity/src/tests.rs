use super::*;
use gcert_core::builder::CardBuilder;
use gcert_core::card::ModelCard;
use gcert_core::tensors::{Tensor, TensorStore};
use std::path::Path;

/// `z ↦ W z` for a `rows × cols` matrix given row by row, optionally followed by `extra` card layers.
fn matrix_net(w: &[&[f64]], extra: &str) -> Network {
    let (rows, cols) = (w.len(), w[0].len());
    let card: ModelCard = toml::from_str(&format!(
        "format = \"gcert-model/1\"\nname = \"m\"\nweights = \"m.safetensors\"\ninput_shape = [{cols}]\n\
         [[layers]]\nop = \"linear\"\nweight = \"w\"\n{extra}"
    ))
    .unwrap();
    let mut t = TensorStore::new();
    t.insert("w".into(), Tensor::new(vec![rows, cols], w.concat()));
    Network::from_card(&card, &t, Path::new("m.toml")).unwrap()
}

/// `z ↦ (relu(z), relu(−z))` on a 1-d latent: an isometry on each half-line, folded at 0.
fn fold() -> Network {
    matrix_net(&[&[1.0], &[-1.0]], "[[layers]]\nop = \"relu\"\n")
}

fn options(pairs: usize) -> Options {
    Options { pairs, chain_pairs: pairs.min(200), ..Options::default() }
}

#[test]
fn percentiles_interpolate_between_ranks() {
    let s = Summary::of(&[5.0, 1.0, 4.0, 2.0, 3.0]).unwrap();
    assert_eq!((s.count, s.min, s.p25, s.median, s.p75, s.max, s.mean), (5, 1.0, 2.0, 3.0, 4.0, 5.0, 3.0));
    assert!((s.p5 - 1.2).abs() < 1e-12 && (s.p95 - 4.8).abs() < 1e-12, "{s:?}");
    assert_eq!(Summary::of(&[]), None);
    assert_eq!(Summary::of(&[7.0]).unwrap().p95, 7.0);
}

/// A scaled rotation `2 R` stretches every pair by exactly 2 and maps segments onto evenly paced straight
/// paths, in one affine piece.
#[test]
fn a_scaled_rotation_has_c_equal_to_its_scale() {
    let (c, s) = (2.0 * 0.6, 2.0 * 0.8);
    let g = matrix_net(&[&[c, -s], &[s, c]], "");
    let r = measure(&g, &options(500)).unwrap();
    assert!((r.ratio.min - 2.0).abs() < 1e-12 && (r.ratio.max - 2.0).abs() < 1e-12, "{:?}", r.ratio);
    assert!((r.c - 2.0).abs() < 1e-12);
    // Every distance scales by the same factor: after rescaling d_X, an isometry.
    assert!((r.c_rescaled - 1.0).abs() < 1e-12 && (r.c_rescaled_p5_p95 - 1.0).abs() < 1e-12);
    assert!(r.evenness.unwrap().max < 1e-12 && r.straightness.unwrap().max < 1e-12);
    let p = r.pieces.unwrap();
    assert_eq!((p.count, p.min, p.max), (200, 1.0, 1.0));
    assert_eq!(r.collapsed, 0);
}

/// For a linear generator the ratios lie between the extreme singular values and, over many random
/// directions, come close to both: `C = max(σ_max, 1 / σ_min)`.
#[test]
fn a_linear_generator_has_c_from_its_singular_values() {
    // Singular values 3 and 0.5 (the zero row adds an output dimension, not a singular value): C = 3.
    let g = matrix_net(&[&[3.0, 0.0], &[0.0, 0.5], &[0.0, 0.0]], "");
    let r = measure(&g, &Options { pairs: 4000, chain_pairs: 0, ..Options::default() }).unwrap();
    assert!(r.ratio.min >= 0.5 - 1e-12 && r.ratio.max <= 3.0 + 1e-12, "{:?}", r.ratio);
    assert!((r.ratio.min - 0.5).abs() < 1e-3 && (r.ratio.max - 3.0).abs() < 1e-3, "{:?}", r.ratio);
    assert!((r.c - 3.0).abs() < 1e-3, "{}", r.c);
    // Rescaled: √(σ_max / σ_min) = √6, whatever the unit; the percentiles give less.
    assert!((r.c_rescaled - 6f64.sqrt()).abs() < 1e-3, "{}", r.c_rescaled);
    assert!(r.c_rescaled_p5_p95 > 1.0 && r.c_rescaled_p5_p95 < r.c_rescaled);
    assert_eq!(r.pieces, None);

    // A contraction (σ = 0.25, 0.5, rotated by 45°): C = 1 / σ_min = 4.
    let h = std::f64::consts::FRAC_1_SQRT_2;
    let g = matrix_net(&[&[0.25 * h, -0.25 * h], &[0.5 * h, 0.5 * h]], "");
    let r = measure(&g, &Options { pairs: 4000, chain_pairs: 0, ..Options::default() }).unwrap();
    assert!((r.c - 4.0).abs() < 1e-2, "{}", r.c);
    assert!(r.evenness.unwrap().max < 1e-12);
}

/// The fold, on `z1 = −1, z2 = 1`: images `(0, 1)` and `(1, 0)`, `G(0) = (0, 0)`.
#[test]
fn the_fold_is_uneven_and_bent_by_known_amounts() {
    let g = fold();
    let gammas = [0.25, 0.5, 0.75];
    let zs = [-0.5, 0.0, 0.5];
    let out = g.forward(&zs, 3).unwrap();
    let images: Vec<&[f64]> = out.chunks(2).collect();
    let s = segment_stats(&[-1.0], &[1.0], &[0.0, 1.0], &[1.0, 0.0], &gammas, &images);
    assert!((s.ratio - 0.5f64.sqrt()).abs() < 1e-15);
    // At γ = 1/2 the image is the origin: distance 1 of √2 from G(z1), 1/√2 of √2 from the straight path.
    assert!((s.evenness.unwrap() - (0.5f64.sqrt() - 0.5)).abs() < 1e-15, "{s:?}");
    assert!((s.straightness.unwrap() - 0.5).abs() < 1e-15, "{s:?}");
}

/// Random pairs on the fold: segments within a half-line are isometric and one piece; segments across 0
/// are two pieces with ratios in `[1/√2, 1]`, so `C` approaches √2 from below.
#[test]
fn random_pairs_on_the_fold() {
    let r = measure(&fold(), &options(3000)).unwrap();
    assert!((r.ratio.max - 1.0).abs() < 1e-12, "{:?}", r.ratio);
    assert!(r.ratio.min >= 0.5f64.sqrt() - 1e-12 && r.ratio.min < 0.5f64.sqrt() + 1e-3, "{:?}", r.ratio);
    assert!(r.c <= 2f64.sqrt() + 1e-12 && r.c > 2f64.sqrt() - 1e-2, "{}", r.c);
    let p = r.pieces.unwrap();
    assert_eq!((p.min, p.max), (1.0, 2.0), "{p:?}");
    assert!(p.mean > 1.3 && p.mean < 1.7, "about half the segments cross 0: {p:?}");
    // Same-side segments are evenly paced; crossing ones deviate by at most sup_{a,b,γ} ≈ 0.2325 (found by
    // a fine grid over the crossing point and γ).
    let e = r.evenness.unwrap();
    assert!(e.min < 1e-12 && e.max > 0.15 && e.max < 0.233, "{e:?}");
}

#[test]
fn results_repeat_for_a_seed_and_do_not_depend_on_the_batch() {
    let g = CardBuilder::new("g", &[3], 1).linear(16).relu().linear(16).relu().linear(5).network().unwrap();
    let base = Options { pairs: 70, chain_pairs: 20, ..Options::default() };
    let a = measure(&g, &base).unwrap();
    assert_eq!(a, measure(&g, &Options { batch: 1, ..base.clone() }).unwrap());
    assert_eq!(a, measure(&g, &Options { batch: 64, ..base.clone() }).unwrap());
    assert_ne!(a, measure(&g, &Options { seed: 1, ..base.clone() }).unwrap());
    assert_eq!(
        (a.ratio.count, a.evenness.as_ref().unwrap().count, a.pieces.as_ref().unwrap().count),
        (70, 70, 20)
    );
    assert!(a.pieces.unwrap().max > 1.0, "a random ReLU net bends some segments");
}

#[test]
fn a_constant_generator_collapses_every_pair() {
    let g = matrix_net(&[&[0.0, 0.0]], "");
    let r = measure(&g, &options(10)).unwrap();
    assert_eq!((r.collapsed, r.ratio.max), (10, 0.0));
    assert!(r.c.is_infinite());
    assert_eq!((r.evenness, r.straightness), (None, None));
}

#[test]
fn bad_options_and_generators_are_refused_with_what_was_wrong() {
    let g = fold();
    let err = |o: Options| measure(&g, &o).unwrap_err().to_string();
    assert!(err(Options { pairs: 0, ..Options::default() }).contains("pairs must be positive, found 0"));
    assert!(err(Options { batch: 0, ..Options::default() }).contains("batch must be positive, found 0"));
    let e = err(Options { pairs: 5, chain_pairs: 6, ..Options::default() });
    assert!(e.contains("chain_pairs (6) must not exceed pairs (5)"), "{e}");

    let smooth = matrix_net(&[&[1.0], &[-1.0]], "[[layers]]\nop = \"tanh\"\n");
    let e = measure(&smooth, &options(5)).unwrap_err().to_string();
    assert!(e.contains("tanh"), "{e}");
    let r = measure(&smooth, &Options { pairs: 5, chain_pairs: 0, ..Options::default() }).unwrap();
    assert_eq!((r.ratio.count, r.pieces), (5, None));
}
