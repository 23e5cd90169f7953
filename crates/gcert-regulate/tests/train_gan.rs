//! The continuity term through gcert-torch's WGAN-GP trainer: reported in the progress lines and changing
//! what is learned, with no change to the trainer.

use gcert_regulate::Continuity;
use gcert_torch::data::Dataset;
use gcert_torch::gan::{train_gan, GanConfig};
use gcert_torch::objective::GeneratorLoss;
use tch::{Device, Kind};

fn squares() -> Dataset {
    Dataset::rotated_squares(16)
}

/// The trainable weights and biases by name (not the batch-norm running statistics, which the term's extra
/// forward pass also moves).
fn weights(vs: &tch::nn::VarStore) -> Vec<(String, Vec<f64>)> {
    let mut v: Vec<(String, Vec<f64>)> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .map(|(name, t)| (name, Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn regulated_training_reports_the_term_and_learns_differently() {
    let cfg = GanConfig {
        iters: 4,
        batch: 8,
        widths: [8, 4, 4],
        critic_width: 4,
        log_every: 2,
        checkpoint_every: 2,
        ..GanConfig::default()
    };
    let data = squares();
    let mut lines = Vec::new();
    let extra: Vec<Box<dyn GeneratorLoss>> = vec![Box::new(Continuity::new(100.0, 3).unwrap())];
    let regulated =
        train_gan(&cfg, &data, Device::Cpu, &extra, None, &mut |l| lines.push(l.to_string())).unwrap();
    let plain = train_gan(&cfg, &data, Device::Cpu, &[], None, &mut |_| {}).unwrap();

    let last = lines.iter().find(|l| l.starts_with("iter 4/4")).expect("a progress line at the end");
    let value: f64 = last
        .split("continuity ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no continuity value in {last}"));
    assert!(value.is_finite() && value > 0.0, "{last}");
    let (a, b) = (weights(&regulated.gvs), weights(&plain.gvs));
    assert!(!a.is_empty() && a.iter().map(|x| &x.0).eq(b.iter().map(|x| &x.0)));
    let moved = a
        .iter()
        .zip(&b)
        .flat_map(|((_, x), (_, y))| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
        .fold(0.0, f64::max);
    assert!(moved > 1e-6, "the term changes the generator's updates: largest weight difference {moved}");
}
