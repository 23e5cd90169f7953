//! The input budget and checked size arithmetic.
//!
//! Every size a card, a weights file or an `.npy` header declares is multiplied with checked arithmetic and
//! compared against one budget of values ([`Limits::max_elements`]) *before* any buffer of that size is
//! allocated; the byte caps of the files gcert reads follow from it. The geometry of convolutions, transposed
//! convolutions and pools follows PyTorch's own validity rules (every dimension at least 1, the kernel no larger
//! than the padded input, `output_padding < stride`, pool padding at most half the kernel). `docs/limits.md`
//! states the defaults and how to raise them.

use std::sync::RwLock;

use crate::ops::Layer;

/// Default budget of values: 2²⁸ (2 GiB as `f64`).
pub const DEFAULT_MAX_ELEMENTS: usize = 1 << 28;

/// Default cap of a model card's size (TOML text).
pub const DEFAULT_MAX_CARD_BYTES: u64 = 16 << 20;

/// Default cap of a jobs file or a results file of `gcert certify --batch` (JSON lines).
pub const DEFAULT_MAX_JOBS_BYTES: u64 = 1 << 30;

/// Bytes allowed beyond the values themselves for a file's header (safetensors' JSON, `.npy`'s dictionary).
pub const HEADER_ALLOWANCE: u64 = 16 << 20;

/// Multiply-adds one layer may spend on one sample, per value of the budget (see [`Limits::max_work`]).
pub const WORK_PER_ELEMENT: u64 = 64;

/// The budget every loader checks before allocating: stated here, overridable per run (the CLI's
/// `--max-elements`), never exceeded silently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most values (`f64`) of: all the tensors of one weights file together; one tensor; one sample's
    /// input, or any layer's output for one sample; one layer's per-sample scratch (im2col columns); one
    /// `.npy` array.
    pub max_elements: usize,
    /// The largest model card (bytes of TOML).
    pub max_card_bytes: u64,
    /// The largest jobs file or batch results file (bytes of JSON lines).
    pub max_jobs_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_elements: DEFAULT_MAX_ELEMENTS,
            max_card_bytes: DEFAULT_MAX_CARD_BYTES,
            max_jobs_bytes: DEFAULT_MAX_JOBS_BYTES,
        }
    }
}

static CURRENT: RwLock<Option<Limits>> = RwLock::new(None);

impl Limits {
    /// The limits with another budget of values (at least 1).
    pub fn with_max_elements(self, max_elements: usize) -> Self {
        Limits { max_elements: max_elements.max(1), ..self }
    }

    /// The largest weights file: the budget's values as `f64`, plus a header allowance.
    pub fn max_weights_bytes(&self) -> u64 {
        (self.max_elements as u64).saturating_mul(8).saturating_add(HEADER_ALLOWANCE)
    }

    /// The largest `.npy` file: the budget's values as `f64`, plus a header allowance.
    pub fn max_npy_bytes(&self) -> u64 {
        self.max_weights_bytes()
    }

    /// Multiply-adds (or window reads) one layer may spend on one sample: [`WORK_PER_ELEMENT`] per value of
    /// the budget, so that a card cannot declare a layer whose evaluation runs for hours.
    pub fn max_work(&self) -> u64 {
        (self.max_elements as u64).saturating_mul(WORK_PER_ELEMENT)
    }

    /// The limits of this process: the defaults unless [`Limits::set_current`] changed them.
    pub fn current() -> Limits {
        CURRENT.read().map(|g| g.unwrap_or_default()).unwrap_or_default()
    }

    /// Sets the limits the loaders of this process use when none are passed explicitly (the CLI does this
    /// once, from its options).
    pub fn set_current(limits: Limits) {
        if let Ok(mut g) = CURRENT.write() {
            *g = Some(limits);
        }
    }

    /// An error message if `count` values of `what` exceed the budget.
    pub fn check_elements(&self, what: &str, count: usize) -> Result<(), String> {
        if count > self.max_elements {
            return Err(format!(
                "{what} has {count} values, more than the limit of {} (raise it with --max-elements)",
                self.max_elements
            ));
        }
        Ok(())
    }

    /// Checks a resolved layer against the budget: every dimension at least 1, its per-sample output and
    /// scratch within the budget of values, its per-sample work within [`Limits::max_work`].
    pub fn check_layer(&self, layer: &Layer) -> Result<(), String> {
        if layer.out_shape.is_empty() || layer.out_shape.contains(&0) {
            return Err(format!(
                "its output shape {:?} has an empty dimension; every dimension must be at least 1",
                layer.out_shape
            ));
        }
        let out = numel(&layer.out_shape).ok_or_else(|| overflow("its output shape", &layer.out_shape))?;
        self.check_elements("its output", out)?;
        let (work, scratch) = layer.cost();
        let scratch = scratch.ok_or_else(|| "its scratch size overflows".to_string())?;
        self.check_elements("its per-sample scratch", scratch)?;
        let work = work.ok_or_else(|| "its amount of work per sample overflows".to_string())?;
        if work as u64 > self.max_work() {
            return Err(format!(
                "it needs {work} operations per sample, more than the limit of {} ({WORK_PER_ELEMENT} per value of \
                 the budget; raise it with --max-elements)",
                self.max_work()
            ));
        }
        Ok(())
    }
}

fn overflow(what: &str, shape: &[usize]) -> String {
    format!("{what} {shape:?} has more values than a usize can count")
}

/// The product of sizes, or `None` if it overflows.
pub fn mul(sizes: &[usize]) -> Option<usize> {
    sizes.iter().try_fold(1usize, |acc, &s| acc.checked_mul(s))
}

/// The number of values of a shape (the product of its dimensions), or `None` if it overflows.
pub fn numel(shape: &[usize]) -> Option<usize> {
    mul(shape)
}

/// The number of values of a shape, which must be non-empty with every dimension at least 1 and at most the
/// budget's values in all.
pub fn checked_numel(shape: &[usize], what: &str, limits: &Limits) -> Result<usize, String> {
    if shape.is_empty() || shape.contains(&0) {
        return Err(format!("{what} {shape:?} must have at least one dimension, each at least 1"));
    }
    let n = numel(shape).ok_or_else(|| overflow(what, shape))?;
    limits.check_elements(what, n)?;
    Ok(n)
}

fn positive(what: &str, v: [usize; 2]) -> Result<(), String> {
    if v.contains(&0) {
        return Err(format!("{what} must be at least 1, found {v:?}"));
    }
    Ok(())
}

/// `size + 2·padding` per dimension, checked.
fn padded(size: [usize; 2], padding: [usize; 2]) -> Result<[usize; 2], String> {
    let one = |i: usize| {
        padding[i].checked_mul(2).and_then(|p| p.checked_add(size[i])).filter(|&v| v <= isize::MAX as usize)
    };
    match (one(0), one(1)) {
        (Some(a), Some(b)) => Ok([a, b]),
        _ => Err(format!("padding {padding:?} around an input of {size:?} overflows")),
    }
}

/// Output size `[oh, ow]` of a 2-D convolution (no dilation) on an `h×w` input, by PyTorch's rules: kernel
/// and stride at least 1, the kernel no larger than the padded input.
pub fn conv2d_out(
    size: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
) -> Result<[usize; 2], String> {
    positive("the kernel size", kernel)?;
    positive("the stride", stride)?;
    let p = padded(size, padding)?;
    if p[0] < kernel[0] || p[1] < kernel[1] {
        return Err(format!(
            "kernel {}x{} is larger than the padded input {}x{} ({}x{} with padding {:?})",
            kernel[0], kernel[1], p[0], p[1], size[0], size[1], padding
        ));
    }
    Ok([(p[0] - kernel[0]) / stride[0] + 1, (p[1] - kernel[1]) / stride[1] + 1])
}

/// Output size of a 2-D transposed convolution (no dilation), by PyTorch's rules:
/// `(h − 1)·stride − 2·padding + kernel + output_padding`, kernel and stride at least 1,
/// `output_padding < stride`, and an output of at least 1×1.
pub fn conv_transpose2d_out(
    size: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    output_padding: [usize; 2],
) -> Result<[usize; 2], String> {
    positive("the kernel size", kernel)?;
    positive("the stride", stride)?;
    positive("the input size", size)?;
    if output_padding[0] >= stride[0] || output_padding[1] >= stride[1] {
        return Err(format!(
            "output_padding {output_padding:?} must be smaller than stride {stride:?} in each dimension"
        ));
    }
    let mut out = [0; 2];
    for i in 0..2 {
        let full = (size[i] - 1)
            .checked_mul(stride[i])
            .and_then(|v| v.checked_add(kernel[i]))
            .and_then(|v| v.checked_add(output_padding[i]))
            .filter(|&v| v <= isize::MAX as usize)
            .ok_or_else(|| {
                format!("the output size of an input of {size:?} with stride {stride:?} and kernel {kernel:?} overflows")
            })?;
        let cut = padding[i].checked_mul(2).ok_or_else(|| format!("padding {padding:?} overflows"))?;
        if full <= cut {
            return Err(format!(
                "padding {padding:?} leaves an empty output (the full output is {full} high or wide)"
            ));
        }
        out[i] = full - cut;
    }
    Ok(out)
}

/// Output size of a 2-D pool, by PyTorch's rules: kernel and stride at least 1, padding at most half the
/// kernel, the kernel no larger than the padded input.
pub fn pool2d_out(
    size: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
) -> Result<[usize; 2], String> {
    positive("the kernel size", kernel)?;
    positive("the stride", stride)?;
    if padding[0] > kernel[0] / 2 || padding[1] > kernel[1] / 2 {
        return Err(format!("padding {padding:?} must be at most half the kernel {kernel:?}"));
    }
    conv2d_out(size, kernel, stride, padding)
}

/// The largest magnitude `m` of `v` and `‖v / m‖` (between 1 and `√len`): `‖v‖ = m·‖v/m‖` with nothing squared
/// into underflow or overflow. `m` is 0 for an all-zero `v`, infinite if an entry is; NaN entries make the second
/// value NaN.
fn scaled_norm(v: &[f64]) -> (f64, f64) {
    let m = v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    if m == 0.0 || !m.is_finite() {
        return (m, 1.0);
    }
    (m, v.iter().map(|x| (x / m) * (x / m)).sum::<f64>().sqrt())
}

/// The Euclidean norm of `v` without underflow or overflow in the squares (scaled by the largest magnitude),
/// for the values of any finite vector; `0` exactly when every value is zero.
pub fn norm(v: &[f64]) -> f64 {
    let (m, s) = scaled_norm(v);
    m * s
}

/// `v / ‖v‖`, or why it cannot be: zero, or a non-finite entry. Dividing by the largest magnitude first, then by
/// the norm of the scaled vector, normalises every finite non-zero vector exactly, from subnormal entries to
/// `f64::MAX`.
pub fn unit(v: &[f64]) -> Result<Vec<f64>, String> {
    if v.iter().all(|&x| x == 0.0) {
        return Err("is zero: it has no length to normalise".into());
    }
    let (m, s) = scaled_norm(v);
    if !m.is_finite() {
        return Err("is too large to normalise (it has an infinite value)".into());
    }
    if s.is_nan() || v.iter().any(|x| x.is_nan()) {
        return Err("has a non-finite value".into());
    }
    Ok(v.iter().map(|x| x / m / s).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Op;

    #[test]
    fn products_that_wrap_are_refused() {
        assert_eq!(numel(&[1 << 32, 1 << 32]), None);
        assert_eq!(numel(&[2, (1 << 63) + 2]), None);
        let l = Limits::default();
        let e = checked_numel(&[1 << 40, 1 << 40], "input shape", &l).unwrap_err();
        assert!(e.contains("more values than a usize"), "{e}");
        let e = checked_numel(&[1 << 20, 1 << 20], "input shape", &l).unwrap_err();
        assert!(e.contains("more than the limit of 268435456"), "{e}");
        assert!(checked_numel(&[3, 0], "input shape", &l).unwrap_err().contains("at least 1"));
        assert_eq!(checked_numel(&[3, 4], "input shape", &l), Ok(12));
    }

    #[test]
    fn conv_geometry_follows_pytorch() {
        assert_eq!(conv2d_out([4, 4], [3, 3], [2, 2], [1, 1]), Ok([2, 2]));
        assert_eq!(conv2d_out([28, 28], [5, 5], [1, 1], [0, 0]), Ok([24, 24]));
        assert!(conv2d_out([4, 4], [0, 0], [1, 1], [0, 0])
            .unwrap_err()
            .contains("kernel size must be at least 1"));
        assert!(conv2d_out([4, 4], [5, 5], [1, 1], [0, 0])
            .unwrap_err()
            .contains("larger than the padded input"));
        assert!(conv2d_out([4, 4], [3, 3], [0, 1], [0, 0]).unwrap_err().contains("stride"));
        // A padding whose double wraps around to a small number.
        let e = conv2d_out([4, 4], [3, 3], [1, 1], [usize::MAX / 2 + 1, 0]).unwrap_err();
        assert!(e.contains("overflows"), "{e}");
    }

    #[test]
    fn conv_transpose_geometry_follows_pytorch() {
        assert_eq!(conv_transpose2d_out([3, 3], [3, 3], [2, 2], [1, 1], [0, 0]), Ok([5, 5]));
        assert_eq!(conv_transpose2d_out([7, 7], [4, 4], [2, 2], [1, 1], [1, 1]), Ok([15, 15]));
        let e = conv_transpose2d_out([4, 4], [3, 3], [usize::MAX / 2, 1], [0, 0], [0, 0]).unwrap_err();
        assert!(e.contains("overflows"), "{e}");
        assert!(conv_transpose2d_out([3, 3], [3, 3], [1, 1], [0, 0], [1, 0])
            .unwrap_err()
            .contains("output_padding"));
        assert!(conv_transpose2d_out([1, 1], [1, 1], [1, 1], [1, 1], [0, 0])
            .unwrap_err()
            .contains("empty output"));
        assert!(conv_transpose2d_out([3, 3], [0, 3], [1, 1], [0, 0], [0, 0]).is_err());
    }

    #[test]
    fn pool_geometry_follows_pytorch() {
        assert_eq!(pool2d_out([4, 4], [2, 2], [2, 2], [0, 0]), Ok([2, 2]));
        assert_eq!(pool2d_out([5, 5], [3, 3], [2, 2], [1, 1]), Ok([3, 3]));
        assert!(pool2d_out([4, 4], [2, 2], [2, 2], [2, 0]).unwrap_err().contains("half the kernel"));
        assert!(pool2d_out([4, 4], [usize::MAX, 2], [1, 1], [usize::MAX / 2, 0])
            .unwrap_err()
            .contains("overflows"));
    }

    #[test]
    fn norms_neither_underflow_nor_overflow() {
        assert_eq!(norm(&[3.0, 4.0]), 5.0);
        let tiny = [1e-200, 1e-200];
        assert!(tiny.iter().map(|x| x * x).sum::<f64>() == 0.0, "the plain sum of squares underflows");
        let u = unit(&tiny).unwrap();
        assert!((u[0] - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-15);
        let huge = [1e200, -1e200];
        assert!(huge.iter().map(|x| x * x).sum::<f64>().is_infinite(), "the plain sum of squares overflows");
        let u = unit(&huge).unwrap();
        assert!((u[1] + std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-15);
        assert!(unit(&[0.0, -0.0]).unwrap_err().contains("zero"));
        // Dividing by the largest magnitude first normalises even the extremes of f64 exactly.
        for extreme in [f64::MAX, 5e-324] {
            let u = unit(&[extreme, -extreme]).unwrap();
            assert!((u[0] - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-15, "{extreme}: {u:?}");
            assert!((u[1] + std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-15, "{extreme}: {u:?}");
        }
        assert_eq!(unit(&[5e-324]).unwrap(), vec![1.0]);
        assert!(unit(&[f64::INFINITY, 1.0]).unwrap_err().contains("too large to normalise"));
    }

    #[test]
    fn layer_budget() {
        let l = Limits::default().with_max_elements(100);
        let layer = Layer {
            name: "relu",
            op: Op::Relu,
            in_shape: vec![200],
            out_shape: vec![200],
            plan: Default::default(),
        };
        assert!(l.check_layer(&layer).unwrap_err().contains("more than the limit of 100"));
        let empty = Layer {
            name: "linear",
            op: Op::Reshape,
            in_shape: vec![4],
            out_shape: vec![0],
            plan: Default::default(),
        };
        assert!(l.check_layer(&empty).unwrap_err().contains("empty dimension"));
    }
}
