//! Finite weights whose products overflow `f64` along the segment (issue 15): the exact chain and the
//! certifiers built on it give one error naming the layer, never a verdict.

use std::path::Path;

use gcert_certify::{certifier, Method, Options, Problem};
use gcert_core::card::ModelCard;
use gcert_core::tensors::{Tensor, TensorStore};
use gcert_core::{Error, Network, Segment};
use gcert_exactline::ExactLine;

/// `x ↦ [1e200·relu(1e200·x), x]`: finite at `x = 0`, infinite for every `x ≥ 1e-200`.
fn overflowing() -> Network {
    let card: ModelCard = toml::from_str(
        r#"format = "gcert-model/1"
        name = "overflow"
        weights = "overflow.safetensors"
        input_shape = [1]
        [[layers]]
        op = "linear"
        weight = "a"
        [[layers]]
        op = "relu"
        [[layers]]
        op = "linear"
        weight = "b""#,
    )
    .unwrap();
    let mut t = TensorStore::new();
    t.insert("a".into(), Tensor::new(vec![2, 1], vec![1e200, 1.0]));
    t.insert("b".into(), Tensor::new(vec![2, 2], vec![1e200, 0.0, 0.0, 1.0]));
    Network::from_card(&card, &t, Path::new("overflow.toml")).unwrap()
}

#[test]
fn the_engine_stops_at_the_first_non_finite_layer_output() {
    let net = overflowing();
    let engine = ExactLine::for_networks(&[&net]).unwrap();
    let e = engine.chain(&Segment::new(vec![0.0], vec![1.0]).unwrap()).unwrap_err();
    assert!(matches!(e, Error::NonFinite { index: 2, .. }), "{e:?}");
    assert!(e.to_string().starts_with("layer 2 (linear): produced a non-finite value (inf)"), "{e}");
    // Streamed in small chunks the walk stops as well.
    let e = engine.with_chunk(2).chain(&Segment::new(vec![-1.0], vec![1.0]).unwrap()).unwrap_err();
    assert!(matches!(e, Error::NonFinite { index: 2, .. }), "{e:?}");
}

#[test]
fn no_backend_answers_a_verdict_when_the_network_overflows() {
    let net = overflowing();
    for method in [Method::Complete, Method::Quantitative, Method::Incomplete] {
        let p = Problem::between(net.layers().iter().collect(), vec![0.0], vec![1.0], Some(1)).unwrap();
        match certifier(method, Options::default()).certify(&p) {
            Err(e) => assert!(e.to_string().contains("non-finite"), "{method:?}: {e}"),
            // The bounded backend may prove nothing; it must then not claim certified.
            Ok(c) => {
                assert_eq!(method, Method::Incomplete, "{method:?} answered {:?}", c.verdict);
                assert_ne!(c.verdict.as_str(), "certified");
            }
        }
    }
}
