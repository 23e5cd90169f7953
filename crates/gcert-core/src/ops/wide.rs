//! Elementwise loops compiled for the widest vector extension the CPU has.
//!
//! The workspace is compiled for baseline x86-64, where the compiler vectorizes a loop two values wide (SSE2).
//! [`wide`] runs a closure inside a function compiled for AVX-512F (or AVX2), where the same loop, inlined, is
//! vectorized eight (or four) values wide. Mark the closure `#[inline(always)]`: a closure the compiler keeps
//! out of line is compiled for the baseline, and the wrapper gains nothing. Write the loop indexed, with
//! selects (`if c { x } else { 0.0 }` on values, `&` on comparisons) rather than branches, or it stays scalar. Only for elementwise code: every value goes through the same
//! operations either way (Rust never fuses a multiply and an add by itself), so the bits do not depend on the
//! CPU (`tests::same_bits_whatever_the_width`).

/// Runs `f`, compiled with AVX-512F where the CPU has it, else AVX2, else as it is.
#[inline]
pub fn wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        // AVX-512F implies AVX2 and FMA to the compiler; checked too, against a virtual CPU that lists one only.
        if has!("avx512f") && has!("avx2") && has!("fma") {
            #[allow(unsafe_code)]
            // SAFETY: the CPU supports AVX-512F (and AVX2, FMA), checked just above; `f` itself is safe code.
            return unsafe { x86::avx512(f) };
        }
        if has!("avx2") {
            #[allow(unsafe_code)]
            // SAFETY: the CPU supports AVX2, checked just above; `f` itself is safe code.
            return unsafe { x86::avx2(f) };
        }
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
        f()
    }

    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
        f()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bits_whatever_the_width() {
        let x: Vec<f64> = (0..1003).map(|i| ((i * 37 % 101) as f64 - 50.0) / 7.0).collect();
        let f = |x: &[f64]| -> Vec<f64> {
            x.iter().map(|&v| (0.5 * (v + 1.25)).clamp(0.0, 3.0) - v * 0.3).collect()
        };
        let wide_bits: Vec<u64> = wide(|| f(&x)).iter().map(|v| v.to_bits()).collect();
        let plain_bits: Vec<u64> = f(&x).iter().map(|v| v.to_bits()).collect();
        assert_eq!(wide_bits, plain_bits);
    }
}
