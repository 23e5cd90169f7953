//! Exact Jacobians of a generator by forward-mode propagation of the identity.
//!
//! At a latent point `z` a piecewise-linear generator is affine on the piece that contains `z`; its Jacobian is
//! the linear part of that piece. Forward mode computes it exactly: push the `k` unit tangents `e_1 … e_k`
//! through the network as one batch of `k` samples, with every layer replaced by its derivative at `z`:
//!
//! - affine layers (linear, convolutions, folded batch norm, pooling by averaging, reshapes, concatenation with
//!   fixed inputs): their linear part, i.e. the same layer with its bias, shift or constant inputs set to zero,
//!   applied as one batched product;
//! - relu, leaky relu and clamp: the derivative mask read from the pre-activation at `z` (`1` on the identity
//!   face, `0` or the leak slope elsewhere). Exactly on a face (`x = 0` for relu) the derivative of the flat
//!   side is used, i.e. the face `x > 0` is open; points inside a piece, where the Jacobian is unique, are never
//!   affected;
//! - max pooling: the tangent of each window's arg-max at `z` (the first one on ties);
//! - sigmoid and tanh: their exact derivative `s(1 - s)` and `1 - tanh²` at `z`. Forward mode is exact for any
//!   differentiable layer, so generators with these layers need no autograd; their Jacobian is then the
//!   derivative at `z`, not the linear part of an affine piece.
//!
//! Several latent points run as one batch: affine layers see all `m·k` tangents at once, elementwise masks are
//! taken per point.

use std::borrow::Cow;

use gcert_core::ops::{Kind, PoolGeom, Scratch};
use gcert_core::{Layer, Network, Op};
use ndarray::Array2;

use crate::error::{check_finite, Error, Result};

/// Upper bound on the tangent values held per batch (32 MiB of f64); more latent points run in chunks.
const TANGENT_LIMIT: usize = 1 << 22;

/// How a layer acts on tangents.
#[derive(Debug)]
enum Step<'a> {
    /// A linear map (the layer itself if it has no constant term, else a bias-free copy), boxed: a layer is
    /// large next to the other variants.
    Linear(Box<Cow<'a, Layer>>),
    /// Multiply by the activation's derivative at the pre-activation.
    Elementwise(&'a Layer),
    /// Select each window's arg-max at the pre-activation.
    MaxPool(PoolGeom),
}

/// A generator prepared for Jacobians: the bias-free linear parts of its affine layers are built once and reused
/// for every latent point.
#[derive(Debug)]
pub struct JacobianPlan<'a> {
    layers: Vec<&'a Layer>,
    steps: Vec<Step<'a>>,
    input_len: usize,
    output_len: usize,
}

impl<'a> JacobianPlan<'a> {
    pub fn new(net: &'a Network) -> Self {
        JacobianPlan::for_layers(net.layers().iter().collect()).expect("a network's layers chain")
    }

    /// A plan over layers applied in order (a composition, or layers that no card describes, such as an
    /// embedding of one input among fixed ones). Errors if there are none or their sizes do not chain.
    pub fn for_layers(layers: Vec<&'a Layer>) -> Result<Self> {
        let (Some(first), Some(last)) = (layers.first(), layers.last()) else {
            return Err(Error::input("a Jacobian needs at least one layer"));
        };
        if let Some(i) = layers.windows(2).position(|p| p[0].out_len() != p[1].in_len()) {
            return Err(Error::input(format!(
                "layer {i} outputs {} values but layer {} takes {}",
                layers[i].out_len(),
                i + 1,
                layers[i + 1].in_len()
            )));
        }
        let (input_len, output_len) = (first.in_len(), last.out_len());
        let steps = layers.iter().map(|l| step(l)).collect();
        Ok(JacobianPlan { layers, steps, input_len, output_len })
    }

    /// Latent size `k`.
    pub fn latent_len(&self) -> usize {
        self.input_len
    }

    /// Number of output values `n` (pixels times channels).
    pub fn output_len(&self) -> usize {
        self.output_len
    }

    /// The exact Jacobian `∂G/∂z` at `z`, an `n × k` matrix (row: output value, column: latent coordinate).
    pub fn jacobian(&self, z: &[f64]) -> Result<Array2<f64>> {
        let t = self.tangents(z, 1)?;
        let (k, n) = (self.latent_len(), self.output_len());
        Ok(Array2::from_shape_vec((k, n), t)
            .expect("tangent shape")
            .reversed_axes()
            .as_standard_layout()
            .into_owned())
    }

    /// The Jacobians at `m` latent points (`zs` is `m × k`, row-major), one `n × k` matrix each.
    pub fn jacobians(&self, zs: &[f64], m: usize) -> Result<Vec<Array2<f64>>> {
        let (k, n) = (self.latent_len(), self.output_len());
        let mut out = Vec::with_capacity(m);
        self.for_each_chunk(zs, m, |t, mc| {
            for s in 0..mc {
                let jt = Array2::from_shape_vec((k, n), t[s * k * n..(s + 1) * k * n].to_vec())
                    .expect("tangent shape");
                out.push(jt.reversed_axes().as_standard_layout().into_owned());
            }
        })?;
        Ok(out)
    }

    /// The mean of `JᵀJ` over `m` latent points (`zs` is `m × k`), weighting output values by `weight` when
    /// given (a 0/1 mask selects rows of `J`); a `k × k` symmetric matrix.
    pub fn mean_gram(&self, zs: &[f64], m: usize, weight: Option<&[bool]>) -> Result<Array2<f64>> {
        let (k, n) = (self.latent_len(), self.output_len());
        if let Some(w) = weight {
            if w.len() != n {
                return Err(Error::input(format!("a row mask needs {n} values, found {}", w.len())));
            }
        }
        let rows: Option<Vec<usize>> =
            weight.map(|w| w.iter().enumerate().filter(|(_, &b)| b).map(|(i, _)| i).collect());
        let mut gram = Array2::<f64>::zeros((k, k));
        self.for_each_chunk(zs, m, |t, mc| {
            for s in 0..mc {
                let block = &t[s * k * n..(s + 1) * k * n];
                let jt = match &rows {
                    None => Array2::from_shape_vec((k, n), block.to_vec()).expect("tangent shape"),
                    Some(r) => Array2::from_shape_fn((k, r.len()), |(i, j)| block[i * n + r[j]]),
                };
                ndarray::linalg::general_mat_mul(1.0 / m as f64, &jt, &jt.t(), 1.0, &mut gram);
            }
        })?;
        Ok(gram)
    }

    /// Runs the tangents of `m` points in chunks bounded by [`TANGENT_LIMIT`]; `f` receives each chunk's
    /// tangents (`mc·k × n`, sample-major) and its number of points.
    fn for_each_chunk(&self, zs: &[f64], m: usize, mut f: impl FnMut(&[f64], usize)) -> Result<()> {
        let k = self.latent_len();
        if m == 0 {
            return Err(Error::input("no latent points to differentiate at"));
        }
        if zs.len() != m * k {
            return Err(Error::input(format!(
                "{m} latent points of size {k} need {} values, found {}",
                m * k,
                zs.len()
            )));
        }
        let widest = self.layers.iter().map(|l| l.in_len().max(l.out_len())).max().unwrap_or(k).max(k);
        let chunk = (TANGENT_LIMIT / (k * widest)).clamp(1, m);
        let mut start = 0;
        while start < m {
            let mc = chunk.min(m - start);
            let t = self.tangents(&zs[start * k..(start + mc) * k], mc)?;
            f(&t, mc);
            start += mc;
        }
        Ok(())
    }

    /// The tangents of `m` points: `m·k` rows of `n` values, row `s·k + i` is `∂G(z_s)/∂z_i`.
    fn tangents(&self, zs: &[f64], m: usize) -> Result<Vec<f64>> {
        let k = self.latent_len();
        if zs.len() != m * k {
            return Err(Error::input(format!(
                "a latent point needs {k} values, found {}",
                zs.len() / m.max(1)
            )));
        }
        check_finite("the latent point", zs)?;
        let mut scratch = Scratch::default();
        // Primal values: the input of the current layer for the m points.
        let mut x = zs.to_vec();
        let mut x_next = Vec::new();
        // Tangents: m blocks of the k×k identity.
        let mut t = vec![0.0; m * k * k];
        for s in 0..m {
            for i in 0..k {
                t[(s * k + i) * k + i] = 1.0;
            }
        }
        let mut t_next = Vec::new();
        let mut window = Vec::new();
        for (layer, step) in self.layers.iter().zip(&self.steps) {
            let (in_len, out_len) = (layer.in_len(), layer.out_len());
            match step {
                Step::Linear(lin) => lin.apply(&t, m * k, &mut t_next, &mut scratch),
                Step::Elementwise(l) => {
                    t_next.clear();
                    t_next.extend_from_slice(&t);
                    for s in 0..m {
                        let xs = &x[s * in_len..(s + 1) * in_len];
                        let d: Vec<f64> = xs.iter().map(|&v| derivative(l, v)).collect();
                        for row in t_next[s * k * in_len..(s + 1) * k * in_len].chunks_exact_mut(in_len) {
                            for (v, dv) in row.iter_mut().zip(&d) {
                                *v *= dv;
                            }
                        }
                    }
                }
                Step::MaxPool(g) => {
                    t_next.clear();
                    t_next.resize(m * k * out_len, 0.0);
                    let mut arg = vec![0usize; out_len];
                    for s in 0..m {
                        let xs = &x[s * in_len..(s + 1) * in_len];
                        for ch in 0..g.c {
                            for oy in 0..g.oh {
                                for ox in 0..g.ow {
                                    g.window(ch, oy, ox, &mut window);
                                    let mut best = window[0];
                                    for &i in &window[1..] {
                                        if xs[i] > xs[best] {
                                            best = i;
                                        }
                                    }
                                    arg[(ch * g.oh + oy) * g.ow + ox] = best;
                                }
                            }
                        }
                        for r in 0..k {
                            let row = (s * k + r) * in_len;
                            let dst = &mut t_next[(s * k + r) * out_len..(s * k + r + 1) * out_len];
                            for (d, &a) in dst.iter_mut().zip(&arg) {
                                *d = t[row + a];
                            }
                        }
                    }
                }
            }
            std::mem::swap(&mut t, &mut t_next);
            layer.apply(&x, m, &mut x_next, &mut scratch);
            std::mem::swap(&mut x, &mut x_next);
        }
        check_finite("the Jacobian", &t)?;
        Ok(t)
    }
}

fn step(layer: &Layer) -> Step<'_> {
    match layer.kind() {
        // The linear part of an affine layer maps Jacobian columns; layers without a constant term are their
        // own linear part.
        Kind::Affine => Step::Linear(Box::new(layer.linear_part().map_or(Cow::Borrowed(layer), Cow::Owned))),
        Kind::MaxPool => match layer.op() {
            Op::MaxPool2d(g) => Step::MaxPool(*g),
            _ => unreachable!("a max-pool layer holds a max-pool op"),
        },
        Kind::Elementwise | Kind::NonLinear => Step::Elementwise(layer),
    }
}

/// The derivative of an elementwise activation at `x` (see the module documentation for the faces).
fn derivative(layer: &Layer, x: f64) -> f64 {
    layer.activation().expect("an elementwise step is an activation").derivative(x)
}

/// The exact Jacobian of `net` at `z` (`n × k`); see [`JacobianPlan`] to reuse the preparation.
pub fn jacobian(net: &Network, z: &[f64]) -> Result<Array2<f64>> {
    JacobianPlan::new(net).jacobian(z)
}

/// Central finite differences `(G(z + h e_i) − G(z − h e_i)) / 2h` for every coordinate: `2k` forward passes
/// run as one batch. Inside an affine piece (every `z ± h e_i` in the same piece) this equals the exact
/// Jacobian up to rounding; it is the baseline the exact Jacobian is checked and benchmarked against.
pub fn finite_difference_jacobian(net: &Network, z: &[f64], h: f64) -> Result<Array2<f64>> {
    let k = net.input_len();
    if z.len() != k {
        return Err(Error::input(format!("a latent point needs {k} values, found {}", z.len())));
    }
    if !(h > 0.0 && h.is_finite()) {
        return Err(Error::input(format!("the finite-difference step must be positive, found {h}")));
    }
    let mut batch = Vec::with_capacity(2 * k * k);
    for i in 0..k {
        for sign in [1.0, -1.0] {
            let mut p = z.to_vec();
            p[i] += sign * h;
            batch.extend_from_slice(&p);
        }
    }
    let out = net.forward(&batch, 2 * k)?;
    let n = net.output_len();
    Ok(Array2::from_shape_fn((n, k), |(p, i)| (out[2 * i * n + p] - out[(2 * i + 1) * n + p]) / (2.0 * h)))
}
