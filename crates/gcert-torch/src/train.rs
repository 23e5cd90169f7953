//! Training loops for classifiers and the pair network: seeded, with progress lines, per-epoch checkpoints
//! and exact resumes.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{nn::VarStore, Device, Kind, Tensor};

use crate::augment::{self, Augment};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::models::{self, ClassifierArch};
use crate::nn::Net;
use crate::optim::{Adam, Checkpoint, CheckpointMeta};

/// Where progress lines go (stderr in the binaries, a vector in tests).
pub type Log<'a> = &'a mut dyn FnMut(&str);

/// How a classifier is trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierConfig {
    pub arch: String,
    pub augment: Option<Augment>,
    pub epochs: u64,
    pub batch: usize,
    pub lr: f64,
    /// The learning rate of epoch `e` is `lr · lr_decay^e`.
    pub lr_decay: f64,
    pub seed: u64,
    /// Stop each epoch after this many batches (tiny test runs); `None` for full epochs.
    pub max_batches: Option<usize>,
}

impl ClassifierConfig {
    pub fn new(arch: ClassifierArch, augment: bool, epochs: u64, seed: u64) -> Self {
        ClassifierConfig {
            arch: arch.name().to_string(),
            augment: augment.then(Augment::default),
            epochs,
            batch: 64,
            lr: 2e-3,
            lr_decay: 0.7,
            seed,
            max_batches: None,
        }
    }

    /// Identifies the run in checkpoints; the epoch count is left out so that a run can be extended.
    fn tag(&self, what: &str) -> String {
        let key = ClassifierConfig { epochs: 0, ..self.clone() };
        format!("{what}:{}", serde_json::to_string(&key).unwrap_or_default())
    }
}

/// What a training run reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    pub epochs: u64,
    /// Wall-clock seconds of training (summed over resumes).
    pub seconds: f64,
    pub final_loss: f64,
    pub test_accuracy: f64,
    pub device: String,
}

/// A trained network and the variables behind it.
#[derive(Debug)]
pub struct Trained {
    pub vs: VarStore,
    pub net: Net,
    pub report: TrainReport,
}

/// Per-epoch seed: a resumed run draws exactly what an uninterrupted one would.
pub fn epoch_seed(seed: u64, epoch: u64) -> u64 {
    seed.wrapping_mul(1_000_003).wrapping_add(epoch)
}

/// Runs epochs `done..epochs` of `step_epoch`, checkpointing after each; returns (last loss, seconds).
fn run_epochs(
    tag: &str,
    epochs: u64,
    vs: &mut VarStore,
    opt: &mut Adam,
    checkpoint: Option<&Checkpoint>,
    log: Log<'_>,
    mut step_epoch: impl FnMut(u64, &mut Adam) -> Result<(f64, usize)>,
) -> Result<(f64, f64)> {
    let mut done = 0;
    let mut seconds = 0.0;
    if let Some(ck) = checkpoint.filter(|c| c.exists()) {
        let meta = ck.load(tag, &mut [("net", vs)], &mut [("opt", opt)])?;
        done = meta.done;
        seconds = meta.seconds;
        log(&format!("resumed from {} at epoch {done}/{epochs}", ck.dir.display()));
    }
    let mut last = f64::NAN;
    for epoch in done..epochs {
        let t0 = Instant::now();
        let (loss, samples) = step_epoch(epoch, opt)?;
        let dt = t0.elapsed().as_secs_f64();
        seconds += dt;
        last = loss;
        log(&format!(
            "epoch {}/{epochs}  loss {loss:.4}  {:.0} samples/s  {dt:.1} s",
            epoch + 1,
            samples as f64 / dt.max(1e-9)
        ));
        if let Some(ck) = checkpoint {
            let meta =
                CheckpointMeta { tag: tag.to_string(), done: epoch + 1, seconds, steps: vec![opt.step] };
            ck.save(&meta, &[("net", vs)], &[("opt", opt)])?;
        }
    }
    Ok((last, seconds))
}

/// Trains a Table 5 classifier on `train`, reports accuracy on `test`.
pub fn train_classifier(
    cfg: &ClassifierConfig,
    train: &Dataset,
    test: &Dataset,
    device: Device,
    checkpoint: Option<&Checkpoint>,
    log: Log<'_>,
) -> Result<Trained> {
    train.check("training set")?;
    test.check("test set")?;
    let arch: ClassifierArch = cfg.arch.parse()?;
    let mut vs = VarStore::new(device);
    let name = if cfg.augment.is_some() { format!("{arch}-aug") } else { arch.name().to_string() };
    let net = models::classifier(vs.root(), arch, &name, cfg.seed);
    let mut opt = Adam::new(&vs, cfg.lr, 0.9, 0.999);
    let (final_loss, seconds) =
        run_epochs(&cfg.tag("classifier"), cfg.epochs, &mut vs, &mut opt, checkpoint, log, |epoch, opt| {
            let seed = epoch_seed(cfg.seed, epoch);
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xA5A5);
            let (mut sum, mut n) = (0.0, 0usize);
            for (b, idx) in train.batches(cfg.batch, seed).iter().enumerate() {
                if cfg.max_batches.is_some_and(|m| b >= m) {
                    break;
                }
                let (x, y) = train.select(idx);
                let x = augment::maybe(cfg.augment.as_ref(), &x, &mut rng)?;
                let loss = net.forward(&x, true)?.cross_entropy_for_logits(&y);
                opt.backward_step(&loss);
                sum += loss.double_value(&[]) * idx.len() as f64;
                n += idx.len();
            }
            Ok((sum / n.max(1) as f64, n))
        })?;
    let test_accuracy = accuracy(&net, test, 500)?;
    let report = TrainReport {
        epochs: cfg.epochs,
        seconds,
        final_loss,
        test_accuracy,
        device: crate::device::describe(device),
    };
    Ok(Trained { vs, net, report })
}

/// Top-1 accuracy of a classifier on a dataset (eval mode, no gradients).
pub fn accuracy(net: &Net, data: &Dataset, batch: usize) -> Result<f64> {
    data.check("evaluation set")?;
    let mut correct = 0i64;
    tch::no_grad(|| -> Result<()> {
        for start in (0..data.len()).step_by(batch.max(1)) {
            let len = batch.min(data.len() - start) as i64;
            let x = data.images.narrow(0, start as i64, len);
            let y = data.labels.narrow(0, start as i64, len);
            let pred = net.forward(&x, false)?.argmax(-1, false);
            correct += pred.eq_tensor(&y).sum(Kind::Int64).int64_value(&[]);
        }
        Ok(())
    })?;
    Ok(correct as f64 / data.len().max(1) as f64)
}

/// Pairs `(i, j, same)` over a dataset: for each `i`, `j` is a random image of the same digit with
/// probability ½, else of another digit.
pub fn sample_pairs(
    labels: &[i64],
    firsts: &[i64],
    rng: &mut impl Rng,
) -> Result<(Vec<i64>, Vec<i64>, Vec<f32>)> {
    let mut by_class: Vec<Vec<i64>> = vec![Vec::new(); 10];
    for (i, &l) in labels.iter().enumerate() {
        let c = usize::try_from(l)
            .ok()
            .filter(|&c| c < 10)
            .ok_or_else(|| Error::input(format!("label {l} is not a digit")))?;
        by_class[c].push(i as i64);
    }
    if by_class.iter().filter(|c| !c.is_empty()).count() < 2 {
        return Err(Error::input("pairs need images of at least two digits"));
    }
    let (mut js, mut same) = (Vec::new(), Vec::new());
    for &i in firsts {
        let c = labels[i as usize] as usize;
        let s = rng.gen_bool(0.5);
        let pool = if s {
            &by_class[c]
        } else {
            let mut d = rng.gen_range(0..10);
            while d == c || by_class[d].is_empty() {
                d = rng.gen_range(0..10);
            }
            &by_class[d]
        };
        js.push(pool[rng.gen_range(0..pool.len())]);
        same.push(if s { 1.0 } else { 0.0 });
    }
    Ok((firsts.to_vec(), js, same))
}

/// Trains the pair network ("same digit?") with binary cross-entropy on the pre-sigmoid output.
pub fn train_pair(
    cfg: &ClassifierConfig,
    train: &Dataset,
    test: &Dataset,
    device: Device,
    checkpoint: Option<&Checkpoint>,
    log: Log<'_>,
) -> Result<Trained> {
    train.check("training set")?;
    test.check("test set")?;
    let mut vs = VarStore::new(device);
    let net = models::pair_net(vs.root(), "pair", cfg.seed);
    let labels = Vec::<i64>::try_from(train.labels.to_device(Device::Cpu))?;
    let mut opt = Adam::new(&vs, cfg.lr, 0.9, 0.999);
    let (final_loss, seconds) =
        run_epochs(&cfg.tag("pair"), cfg.epochs, &mut vs, &mut opt, checkpoint, log, |epoch, opt| {
            let seed = epoch_seed(cfg.seed, epoch);
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5A5A);
            let (mut sum, mut n) = (0.0, 0usize);
            for (b, idx) in train.batches(cfg.batch, seed).iter().enumerate() {
                if cfg.max_batches.is_some_and(|m| b >= m) {
                    break;
                }
                let (i, j, same) = sample_pairs(&labels, idx, &mut rng)?;
                let (xa, _) = train.select(&i);
                let (xb, _) = train.select(&j);
                let xa = augment::maybe(cfg.augment.as_ref(), &xa, &mut rng)?;
                let xb = augment::maybe(cfg.augment.as_ref(), &xb, &mut rng)?;
                let t = Tensor::from_slice(&same).to_device(device).unsqueeze(1);
                let loss = pair_logits(&net, &xa, &xb, true)?.binary_cross_entropy_with_logits::<Tensor>(
                    &t,
                    None,
                    None,
                    tch::Reduction::Mean,
                );
                opt.backward_step(&loss);
                sum += loss.double_value(&[]) * idx.len() as f64;
                n += idx.len();
            }
            Ok((sum / n.max(1) as f64, n))
        })?;
    let test_accuracy = pair_accuracy(&net, test, cfg.seed)?;
    let report = TrainReport {
        epochs: cfg.epochs,
        seconds,
        final_loss,
        test_accuracy,
        device: crate::device::describe(device),
    };
    Ok(Trained { vs, net, report })
}

/// The pair network's output before its final sigmoid.
pub fn pair_logits(net: &Net, a: &Tensor, b: &Tensor, train: bool) -> Result<Tensor> {
    let x = Tensor::f_cat(&[a, b], 1)?;
    net.forward_range(&x, 1..net.layers.len() - 1, train)
}

/// Accuracy of the pair network on seeded pairs of the test set (one pair per test image).
pub fn pair_accuracy(net: &Net, test: &Dataset, seed: u64) -> Result<f64> {
    let labels = Vec::<i64>::try_from(test.labels.to_device(Device::Cpu))?;
    let firsts: Vec<i64> = (0..labels.len() as i64).collect();
    let (i, j, same) = sample_pairs(&labels, &firsts, &mut ChaCha8Rng::seed_from_u64(seed ^ 0x7E57))?;
    let (xa, _) = test.select(&i);
    let (xb, _) = test.select(&j);
    let p = tch::no_grad(|| net.forward_multi(&[&xa, &xb], false))?;
    let pred = Vec::<f32>::try_from(p.flatten(0, -1).to_device(Device::Cpu))?;
    let correct = pred.iter().zip(&same).filter(|(p, s)| (**p > 0.5) == (**s > 0.5)).count();
    Ok(correct as f64 / same.len().max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::SquareParams;

    /// Two "digits": squares on the left (label 0) and on the right (label 1).
    fn two_class_data(n: usize) -> Dataset {
        let mut imgs = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n {
            let c = (i % 2) as i64;
            let tx = if c == 0 { -6.0 } else { 6.0 };
            imgs.extend(SquareParams { tx, ty: (i % 5) as f64 - 2.0, ..SquareParams::IDENTITY }.render());
            labels.push(c);
        }
        Dataset {
            images: Tensor::from_slice(&imgs).reshape([n as i64, 1, 32, 32]),
            labels: Tensor::from_slice(&labels),
        }
    }

    #[test]
    fn a_tiny_classifier_run_learns_checkpoints_and_resumes() {
        let data = two_class_data(64);
        let mut cfg = ClassifierConfig::new(ClassifierArch::Conv2, false, 3, 4);
        cfg.batch = 16;
        let mut lines = Vec::new();
        let t = train_classifier(&cfg, &data, &data, Device::Cpu, None, &mut |l| lines.push(l.to_string()))
            .unwrap();
        assert_eq!(lines.len(), 3);
        assert!(lines[2].starts_with("epoch 3/3") && lines[2].contains("samples/s"), "{lines:?}");
        assert!(t.report.test_accuracy > 0.9, "{}", t.report.test_accuracy);

        let dir = tempfile::tempdir().unwrap();
        let ck = Checkpoint::new(dir.path().join("ck"));
        let mut short = cfg.clone();
        short.epochs = 1;
        train_classifier(&short, &data, &data, Device::Cpu, Some(&ck), &mut |_| {}).unwrap();
        let mut lines = Vec::new();
        let resumed =
            train_classifier(&cfg, &data, &data, Device::Cpu, Some(&ck), &mut |l| lines.push(l.to_string()))
                .unwrap();
        assert!(lines[0].contains("resumed") && lines[0].contains("epoch 1/3"), "{lines:?}");
        assert_eq!(lines.len(), 3, "two more epochs after the resume: {lines:?}");
        for ((n, a), (_, b)) in t.net.named_tensors().iter().zip(resumed.net.named_tensors().iter()) {
            let d = (a - b).abs().max().double_value(&[]);
            assert!(d < 1e-5, "{n}: resumed run differs by {d}");
        }
    }

    #[test]
    fn augmentation_runs_and_bad_datasets_are_rejected() {
        let data = two_class_data(32);
        let mut cfg = ClassifierConfig::new(ClassifierArch::Fc3, true, 1, 0);
        cfg.max_batches = Some(1);
        let t = train_classifier(&cfg, &data, &data, Device::Cpu, None, &mut |_| {}).unwrap();
        assert_eq!(t.net.name, "fc3-aug");
        let bad = Dataset {
            images: Tensor::zeros([4, 3, 32, 32], (Kind::Float, Device::Cpu)),
            labels: Tensor::zeros([4], (Kind::Int64, Device::Cpu)),
        };
        let err =
            train_classifier(&cfg, &bad, &data, Device::Cpu, None, &mut |_| {}).unwrap_err().to_string();
        assert!(err.contains("training set") && err.contains("[4, 3, 32, 32]"), "{err}");
        cfg.arch = "resnet".into();
        let err =
            train_classifier(&cfg, &data, &data, Device::Cpu, None, &mut |_| {}).unwrap_err().to_string();
        assert!(err.contains("unknown classifier 'resnet'"), "{err}");
    }

    #[test]
    fn pairs_are_half_same_and_the_pair_network_trains() {
        let labels: Vec<i64> = (0..200).map(|i| i % 10).collect();
        let firsts: Vec<i64> = (0..200).collect();
        let (i, j, same) = sample_pairs(&labels, &firsts, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
        assert_eq!(i, firsts);
        for k in 0..200 {
            assert_eq!(labels[i[k] as usize] == labels[j[k] as usize], same[k] > 0.5);
        }
        let frac = same.iter().sum::<f32>() / 200.0;
        assert!((0.35..0.65).contains(&frac), "{frac}");
        let err = sample_pairs(&[3, 3], &[0, 1], &mut ChaCha8Rng::seed_from_u64(1)).unwrap_err();
        assert!(err.to_string().contains("at least two digits"));

        let data = two_class_data(32);
        let mut cfg = ClassifierConfig::new(ClassifierArch::Conv2, false, 1, 0);
        cfg.max_batches = Some(2);
        let t = train_pair(&cfg, &data, &data, Device::Cpu, None, &mut |_| {}).unwrap();
        assert!((0.0..=1.0).contains(&t.report.test_accuracy));
        let out = t.net.forward_multi(&[&data.images, &data.images], false).unwrap();
        assert_eq!(out.size(), [32, 1]);
        let (lo, hi) = (out.min().double_value(&[]), out.max().double_value(&[]));
        assert!(lo > 0.0 && hi < 1.0, "sigmoid head: {lo} {hi}");
    }
}
