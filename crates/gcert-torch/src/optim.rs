//! Adam with its state in plain tensors, and checkpoints that hold weights, optimiser state and progress, so
//! that a resumed run continues exactly where it stopped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{nn::VarStore, Tensor};

use crate::error::{Error, Result};

/// Adam (Kingma & Ba) over named variables.
#[derive(Debug)]
pub struct Adam {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub step: i64,
    vars: Vec<(String, Tensor)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

impl Adam {
    /// Adam over the trainable variables of a `VarStore`, sorted by name.
    pub fn new(vs: &VarStore, lr: f64, beta1: f64, beta2: f64) -> Adam {
        let mut vars: Vec<(String, Tensor)> =
            vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        Adam::over(vars, lr, beta1, beta2)
    }

    /// Adam over explicit tensors (which must require gradients).
    pub fn over(vars: Vec<(String, Tensor)>, lr: f64, beta1: f64, beta2: f64) -> Adam {
        let m = vars.iter().map(|(_, t)| t.zeros_like()).collect();
        let v = vars.iter().map(|(_, t)| t.zeros_like()).collect();
        Adam { lr, beta1, beta2, eps: 1e-8, step: 0, vars, m, v }
    }

    pub fn zero_grad(&mut self) {
        for (_, t) in &mut self.vars {
            let mut g = t.grad();
            if g.defined() {
                let _ = g.detach_();
                let _ = g.zero_();
            }
        }
    }

    /// Computes the gradients of `loss` and takes one step.
    pub fn backward_step(&mut self, loss: &Tensor) {
        self.zero_grad();
        loss.backward();
        self.apply();
    }

    /// One step with the gradients already accumulated in the variables.
    pub fn apply(&mut self) {
        self.step += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let c1 = 1.0 - b1.powi(self.step as i32);
        let c2 = 1.0 - b2.powi(self.step as i32);
        tch::no_grad(|| {
            for (i, (_, var)) in self.vars.iter_mut().enumerate() {
                let g = var.grad();
                if !g.defined() {
                    continue;
                }
                let m = &self.m[i] * b1 + &g * (1.0 - b1);
                let v = &self.v[i] * b2 + &g * &g * (1.0 - b2);
                let update = (&m / c1) / ((&v / c2).sqrt() + self.eps) * self.lr;
                let _ = var.f_sub_(&update);
                self.m[i].copy_(&m);
                self.v[i].copy_(&v);
            }
        });
    }

    fn state(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (i, (name, _)) in self.vars.iter().enumerate() {
            out.push((format!("{prefix}.m.{name}"), self.m[i].shallow_clone()));
            out.push((format!("{prefix}.v.{name}"), self.v[i].shallow_clone()));
        }
        out
    }

    fn restore(&mut self, prefix: &str, saved: &BTreeMap<String, Tensor>, path: &Path) -> Result<()> {
        for (i, (name, _)) in self.vars.iter().enumerate() {
            for (which, dst) in [("m", &mut self.m[i]), ("v", &mut self.v[i])] {
                let key = format!("{prefix}.{which}.{name}");
                let src = saved.get(&key).ok_or_else(|| Error::Checkpoint {
                    path: path.to_path_buf(),
                    message: format!("optimiser state '{key}' is missing"),
                })?;
                copy_checked(dst, src, &key, path)?;
            }
        }
        Ok(())
    }
}

fn copy_checked(dst: &mut Tensor, src: &Tensor, name: &str, path: &Path) -> Result<()> {
    if dst.size() != src.size() {
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            message: format!("'{name}' has shape {:?}, the model needs {:?}", src.size(), dst.size()),
        });
    }
    tch::no_grad(|| dst.copy_(&src.to_device(dst.device()).to_kind(dst.kind())));
    Ok(())
}

/// Progress recorded beside a checkpoint's tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// What was being trained, with its configuration; a resume with another configuration is refused.
    pub tag: String,
    /// Completed units of work (epochs or iterations, as the trainer counts them).
    pub done: u64,
    /// Seconds of training so far (summed over resumes).
    pub seconds: f64,
    /// Optimiser step counts, in the order the trainer lists its optimisers.
    pub steps: Vec<i64>,
}

/// A checkpoint directory: `state.safetensors` (variables and Adam moments) and `meta.json`.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub dir: PathBuf,
}

impl Checkpoint {
    pub fn new(dir: impl Into<PathBuf>) -> Checkpoint {
        Checkpoint { dir: dir.into() }
    }

    fn meta_path(&self) -> PathBuf {
        self.dir.join("meta.json")
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("state.safetensors")
    }

    pub fn exists(&self) -> bool {
        self.meta_path().exists() && self.state_path().exists()
    }

    /// Saves the variables of each store and each optimiser's state (written to temporary files first).
    pub fn save(
        &self,
        meta: &CheckpointMeta,
        stores: &[(&str, &VarStore)],
        opts: &[(&str, &Adam)],
    ) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let mut named: Vec<(String, Tensor)> = Vec::new();
        for (prefix, vs) in stores {
            let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
            vars.sort_by(|a, b| a.0.cmp(&b.0));
            named.extend(vars.into_iter().map(|(n, t)| (format!("{prefix}.var.{n}"), t)));
        }
        for (prefix, opt) in opts {
            named.extend(opt.state(prefix));
        }
        let tmp = self.dir.join("state.safetensors.tmp");
        Tensor::write_safetensors(&named, &tmp)?;
        std::fs::rename(&tmp, self.state_path()).map_err(|e| Error::io(self.state_path(), e))?;
        let json = serde_json::to_string_pretty(meta).map_err(|e| Error::input(e.to_string()))?;
        let tmp = self.dir.join("meta.json.tmp");
        std::fs::write(&tmp, json).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, self.meta_path()).map_err(|e| Error::io(self.meta_path(), e))
    }

    /// Restores a checkpoint saved with the same `tag`; returns its progress.
    pub fn load(
        &self,
        tag: &str,
        stores: &mut [(&str, &mut VarStore)],
        opts: &mut [(&str, &mut Adam)],
    ) -> Result<CheckpointMeta> {
        let mp = self.meta_path();
        let text = std::fs::read_to_string(&mp).map_err(|e| Error::io(&mp, e))?;
        let meta: CheckpointMeta = serde_json::from_str(&text)
            .map_err(|e| Error::Checkpoint { path: mp.clone(), message: format!("unreadable: {e}") })?;
        if meta.tag != tag {
            return Err(Error::Checkpoint {
                path: mp,
                message: format!(
                    "it was made by another configuration ('{}'), this run is '{tag}'; remove it or use another directory",
                    meta.tag
                ),
            });
        }
        if meta.steps.len() != opts.len() {
            return Err(Error::Checkpoint { path: mp, message: "optimiser count differs".into() });
        }
        let sp = self.state_path();
        let saved: BTreeMap<String, Tensor> = Tensor::read_safetensors(&sp)
            .map_err(|e| Error::Checkpoint { path: sp.clone(), message: format!("unreadable: {e}") })?
            .into_iter()
            .collect();
        for (prefix, vs) in stores.iter_mut() {
            for (name, mut var) in vs.variables() {
                let key = format!("{prefix}.var.{name}");
                let src = saved.get(&key).ok_or_else(|| Error::Checkpoint {
                    path: sp.clone(),
                    message: format!("variable '{key}' is missing"),
                })?;
                copy_checked(&mut var, src, &key, &sp)?;
            }
        }
        for ((prefix, opt), &step) in opts.iter_mut().zip(&meta.steps) {
            opt.restore(prefix, &saved, &sp)?;
            opt.step = step;
        }
        Ok(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, Device, Kind};

    #[test]
    fn adam_minimises_a_quadratic() {
        let vs = VarStore::new(Device::Cpu);
        let x = vs.root().var("x", &[3], nn::Init::Const(5.0));
        let mut opt = Adam::new(&vs, 0.1, 0.9, 0.999);
        for _ in 0..300 {
            let loss = (&x - Tensor::from_slice(&[1.0f32, -2.0, 0.5])).pow_tensor_scalar(2).sum(Kind::Float);
            opt.backward_step(&loss);
        }
        let v = Vec::<f32>::try_from(&x).unwrap();
        assert!((v[0] - 1.0).abs() < 1e-2 && (v[1] + 2.0).abs() < 1e-2 && (v[2] - 0.5).abs() < 1e-2, "{v:?}");
    }

    #[test]
    fn checkpoint_round_trip_and_tag_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let vs = VarStore::new(Device::Cpu);
        let x = vs.root().var("x", &[2], nn::Init::Const(1.0));
        let mut opt = Adam::new(&vs, 0.1, 0.9, 0.999);
        opt.backward_step(&(&x * &x).sum(Kind::Float));
        let ck = Checkpoint::new(dir.path().join("ck"));
        let meta = CheckpointMeta { tag: "t".into(), done: 3, seconds: 1.5, steps: vec![opt.step] };
        ck.save(&meta, &[("a", &vs)], &[("opt", &opt)]).unwrap();
        assert!(ck.exists());

        let mut vs2 = VarStore::new(Device::Cpu);
        let y = vs2.root().var("x", &[2], nn::Init::Const(0.0));
        let mut opt2 = Adam::new(&vs2, 0.1, 0.9, 0.999);
        let back = ck.load("t", &mut [("a", &mut vs2)], &mut [("opt", &mut opt2)]).unwrap();
        assert_eq!(back, meta);
        assert_eq!(Vec::<f32>::try_from(&y).unwrap(), Vec::<f32>::try_from(&x).unwrap());
        assert_eq!(opt2.step, 1);
        assert_eq!(Vec::<f32>::try_from(&opt2.m[0]).unwrap(), Vec::<f32>::try_from(&opt.m[0]).unwrap());

        let err =
            ck.load("other", &mut [("a", &mut vs2)], &mut [("opt", &mut opt2)]).unwrap_err().to_string();
        assert!(err.contains("another configuration ('t')"), "{err}");
        let mut vs3 = VarStore::new(Device::Cpu);
        let _ = vs3.root().var("x", &[5], nn::Init::Const(0.0));
        let mut opt3 = Adam::new(&vs3, 0.1, 0.9, 0.999);
        let err = ck.load("t", &mut [("a", &mut vs3)], &mut [("opt", &mut opt3)]).unwrap_err().to_string();
        assert!(err.contains("has shape [2], the model needs [5]"), "{err}");
    }
}
