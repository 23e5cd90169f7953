//! The one matrix product of the kernels: `matrixmultiply`'s pure-Rust `dgemm` behind a bounds-checked wrapper.
//!
//! Called directly rather than through `ndarray::linalg`, whose backend switches to BLAS whenever any crate in
//! the build enables `ndarray/blas` (as `ndarray-linalg` does): the engine's speed and its exact rounding must
//! not depend on which other crates a binary links.

/// A matrix in a flat slice: `(row stride, column stride)` in elements.
pub(crate) type Strides = (usize, usize);

fn fits(rows: usize, cols: usize, (rs, cs): Strides, len: usize) -> bool {
    rows == 0 || cols == 0 || (rows - 1) * rs + (cols - 1) * cs < len
}

/// `C[m×n] = A[m×k] · B[k×n] + beta · C`.
pub(crate) fn gemm(
    (m, k, n): (usize, usize, usize),
    a: &[f64],
    sa: Strides,
    b: &[f64],
    sb: Strides,
    beta: f64,
    c: &mut [f64],
    sc: Strides,
) {
    assert!(fits(m, k, sa, a.len()) && fits(k, n, sb, b.len()) && fits(m, n, sc, c.len()), "gemm bounds");
    if m == 0 || n == 0 {
        return;
    }
    let s = |v: usize| v as isize;
    #[allow(unsafe_code)]
    // SAFETY: the assertion above proves every index `i·rs + j·cs` that dgemm touches lies inside the slice
    // it addresses (A, B read-only; C exclusively borrowed), and the strides are non-negative.
    unsafe {
        matrixmultiply::dgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            s(sa.0),
            s(sa.1),
            b.as_ptr(),
            s(sb.0),
            s(sb.1),
            beta,
            c.as_mut_ptr(),
            s(sc.0),
            s(sc.1),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_naive_product_with_transposes() {
        let (m, k, n) = (3, 4, 5);
        let a: Vec<f64> = (0..m * k).map(|i| i as f64 - 5.0).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i * 3 % 7) as f64).collect();
        let mut c = vec![1.0; m * n];
        // B read transposed from an [n×k] buffer.
        let bt: Vec<f64> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        gemm((m, k, n), &a, (k, 1), &bt, (1, k), 2.0, &mut c, (n, 1));
        for i in 0..m {
            for j in 0..n {
                let want: f64 = 2.0 + (0..k).map(|l| a[i * k + l] * b[l * n + j]).sum::<f64>();
                assert_eq!(c[i * n + j], want);
            }
        }
    }
}
