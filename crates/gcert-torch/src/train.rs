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
            lr: 1e-3,
            seed,
            max_batches: None,
        }
    }

    fn tag(&self, what: &str) -> String {
        format!("{what}:{}", serde_json::to_string(self).unwrap_or_default())
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
    tch::manual_seed(cfg.seed as i64);
    let mut vs = VarStore::new(device);
    let name = if cfg.augment.is_some() { format!("{arch}-aug") } else { arch.name().to_string() };
    let net = models::classifier(vs.root(), arch, &name);
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
    tch::manual_seed(cfg.seed as i64);
    let mut vs = VarStore::new(device);
    let net = models::pair_net(vs.root(), "pair");
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
