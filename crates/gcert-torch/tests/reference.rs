//! The libtorch reference of the exact line (`gcert_torch::reference`) against the engine (`gcert-exactline`):
//! in f64 both must find the same breakpoints and the same outputs there, on random networks shaped like the
//! benchmark's and on the committed trained generator and classifier; in f32 the reference must stay close.

use std::path::PathBuf;

use gcert_benches::{conv_classifier_card, dcgan_generator_card, latent_and_direction};
use gcert_core::{Network, Segment};
use gcert_exactline::ExactLine;
use gcert_torch::nn::Net;
use gcert_torch::reference::{exact_line, ReferenceChain};
use tch::{Device, Kind};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Largest difference between the two chains' ratios and outputs, after checking they have the same length.
fn compare(engine: &gcert_core::Chain, reference: &ReferenceChain) -> (f64, f64) {
    assert_eq!(
        engine.ratios.len(),
        reference.ratios.len(),
        "the two chains have different numbers of points"
    );
    let ratio_err =
        engine.ratios.iter().zip(&reference.ratios).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    let outputs =
        Vec::<f64>::try_from(reference.outputs.to_kind(Kind::Double).reshape([-1])).expect("outputs");
    assert_eq!(outputs.len(), engine.values.len());
    let scale = engine.values.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    let out_err = engine.values.iter().zip(&outputs).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max) / scale;
    (ratio_err, out_err)
}

fn segment(z: &[f64], d: &[f64], from: f64, to: f64) -> Segment {
    let a = z.iter().zip(d).map(|(z, d)| z + from * d).collect();
    let b = z.iter().zip(d).map(|(z, d)| z + to * d).collect();
    Segment::new(a, b).expect("segment")
}

#[test]
fn reference_equals_the_engine_on_random_networks() {
    tch::set_num_threads(1);
    let (gen_card, gen_tensors) = dcgan_generator_card(50, 7, 1.0).build();
    let (cls_card, cls_tensors) = conv_classifier_card(8).build();
    let gen = Network::from_card(&gen_card, &gen_tensors, "gen".as_ref()).expect("generator");
    let cls = Network::from_card(&cls_card, &cls_tensors, "cls".as_ref()).expect("classifier");
    let engine = ExactLine::for_networks(&[&gen, &cls]).expect("engine");
    let (z, d) = latent_and_direction(50, 9);
    let seg = segment(&z, &d, 0.0, 8.0);
    let chain = engine.chain(&seg).expect("chain");
    assert!(chain.pieces() > 150, "the segment is too easy: {} pieces", chain.pieces());

    let tg = Net::from_card(&gen_card, &gen_tensors, Kind::Double, Device::Cpu).expect("tch generator");
    let tc = Net::from_card(&cls_card, &cls_tensors, Kind::Double, Device::Cpu).expect("tch classifier");
    let reference = exact_line(&[&tg, &tc], seg.a(), seg.b()).expect("reference");
    let (ratio_err, out_err) = compare(&chain, &reference);
    eprintln!("{} pieces; f64: ratios within {ratio_err:.2e}, outputs within {out_err:.2e}", chain.pieces());
    assert!(ratio_err < 1e-9 && out_err < 1e-9, "f64 reference differs: {ratio_err:e} / {out_err:e}");

    // f32: the same algorithm in single precision finds nearly the same breakpoints.
    let (fg, fc) = (tg.to(Kind::Float, Device::Cpu), tc.to(Kind::Float, Device::Cpu));
    let single = exact_line(&[&fg, &fc], seg.a(), seg.b()).expect("f32 reference");
    let rel = (single.pieces() as f64 - chain.pieces() as f64).abs() / chain.pieces() as f64;
    eprintln!("f32: {} pieces against {} ({:.2}% apart)", single.pieces(), chain.pieces(), 100.0 * rel);
    assert!(rel < 0.05, "f32 reference has {} pieces against {}", single.pieces(), chain.pieces());
}

#[test]
fn reference_equals_the_engine_on_the_trained_fixtures() {
    tch::set_num_threads(1);
    let dir = root().join("fixtures/trained");
    let gen = Network::load(dir.join("generator.toml")).expect("generator");
    let cls = Network::load(dir.join("classifier-conv4.toml")).expect("classifier");
    let z = gcert_core::npy::read_npy(&dir.join("latents/gan-z-3.npy")).expect("latent").data;
    let f = gcert_directions::directions(&gen, &z, 1, &gcert_directions::FactorParams::default())
        .expect("directions");
    let d = f.directions().row(0).to_vec();
    let seg = segment(&z, &d, -1.0, 1.0);
    let engine = ExactLine::for_networks(&[&gen, &cls]).expect("engine");
    let chain = engine.chain(&seg).expect("chain");

    let tg = Net::load_card(&dir.join("generator.toml"), Kind::Double, Device::Cpu).expect("tch generator");
    let tc = Net::load_card(&dir.join("classifier-conv4.toml"), Kind::Double, Device::Cpu).expect("tch cls");
    let reference = exact_line(&[&tg, &tc], seg.a(), seg.b()).expect("reference");
    let (ratio_err, out_err) = compare(&chain, &reference);
    eprintln!("{} pieces; f64: ratios within {ratio_err:.2e}, outputs within {out_err:.2e}", chain.pieces());
    assert!(ratio_err < 1e-9 && out_err < 1e-9, "f64 reference differs: {ratio_err:e} / {out_err:e}");
}

#[test]
fn reference_names_what_it_cannot_chain() {
    let (card, tensors) = gcert_core::builder::CardBuilder::new("pool", &[1, 4, 4], 1)
        .conv2d(2, 3, 1, 1)
        .max_pool2d(2, 2, 0)
        .flatten()
        .linear(2)
        .build();
    let net = Net::from_card(&card, &tensors, Kind::Double, Device::Cpu).expect("net");
    let err = exact_line(&[&net], &[0.0; 16], &[1.0; 16]).expect_err("max pool is refused").to_string();
    assert!(err.contains("layer 1") && err.contains("max_pool2d"), "{err}");
    let err = exact_line(&[&net], &[0.0; 3], &[1.0; 16]).expect_err("wrong length").to_string();
    assert!(err.contains("takes 16"), "{err}");
}
