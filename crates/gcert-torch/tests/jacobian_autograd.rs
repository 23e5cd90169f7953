//! gcert-directions' exact forward-mode Jacobian against libtorch's autograd on the trained generator.
//!
//! Autograd gives vector-Jacobian products `vᵀJ`; comparing them for random `v` against the exact `J` checks
//! every entry of `J` in aggregate without 1,024 backward passes.

use std::path::{Path, PathBuf};

use gcert_core::npy::read_npy;
use gcert_core::Network;
use gcert_torch::nn::Net;
use tch::{Device, Kind, Tensor};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/trained")
}

#[test]
fn exact_jacobian_matches_autograd_on_the_trained_generator() {
    let card = dir().join("generator.toml");
    let core = Network::load(&card).unwrap();
    let torch = Net::load_card(&card, Kind::Double, Device::Cpu).unwrap();
    for latent in ["gan-z-3.npy", "gan-z-8.npy"] {
        let z = read_npy(&dir().join("latents").join(latent)).unwrap().data;
        let k = z.len();
        let jac = gcert_directions::jacobian::jacobian(&core, &z).unwrap();
        let n = jac.nrows();
        assert_eq!(jac.ncols(), k);
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..3 {
            // A deterministic pseudo-random cotangent in [-1, 1].
            let v: Vec<f64> = (0..n)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
                })
                .collect();
            let zt = Tensor::from_slice(&z).reshape([1, k as i64]).set_requires_grad(true);
            let out = torch.forward(&zt, false).unwrap().reshape([n as i64]);
            let dot = (out * Tensor::from_slice(&v)).sum(Kind::Double);
            dot.backward();
            let grad: Vec<f64> = Vec::<f64>::try_from(zt.grad().reshape([k as i64])).unwrap();
            let exact: Vec<f64> = (0..k).map(|j| (0..n).map(|i| v[i] * jac[[i, j]]).sum()).collect();
            for (g, e) in grad.iter().zip(&exact) {
                assert!((g - e).abs() <= 1e-9 * (1.0 + e.abs()), "{latent}: autograd {g} vs exact {e}");
            }
        }
    }
}
