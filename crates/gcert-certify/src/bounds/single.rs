//! The centre and radius lines through an affine layer: the centre in `f64`, the radius in `f32` where the
//! layer has a single-precision `|W|` ([`gcert_core::ops::Single`]), with every rounding of that pass added to
//! the radius (docs/mathematics.md §5.4).
//!
//! With `u = 2^-24`, `γ_k = k·u / (1 − k·u)`, `n` the layer's taps (products per output) and `|Ŵ| ≥ |W|` the
//! weights' magnitudes rounded up to `f32`, an input radius `r ≥ 0` is rounded up to `ρ ≥ r` in `f32` (a zero
//! stays zero, anything else is raised to at least `INPUT_FLOOR` = `2^-60`) and the kernel computes
//! `ŝ = f32(|Ŵ|·ρ)`. Every product is then zero or at least `2^-100` (the weights are zero or at least `2^-40`),
//! and every partial sum of these non-negative products at least as large, so no operation underflows and each
//! rounds by at most `u` relative: `ŝ ≥ (1 − γ_n)·|Ŵ|·ρ`, and the output radius
//! `R = ŝ / (1 − γ_{n+1}) ≥ |Ŵ|·ρ ≥ |W|·r` (the extra index covers the `f64` division). A zero radius stays
//! exactly zero, as through `|A|` in `f64`. A value out of `f32`'s range, or not a number, makes the layer's
//! radius run in `f64` for that batch.

use gcert_core::ops::{wide, Scratch, Single, INPUT_FLOOR};
use gcert_core::Layer;

/// `f32`'s unit roundoff.
const U: f64 = 1.0 / (1u64 << 24) as f64;

fn gamma(k: usize) -> f64 {
    let ku = k as f64 * U;
    ku / (1.0 - ku)
}

/// Whether every value is finite: an OR of exponent tests, branch-free so that it is vectorized (an early-exit
/// `all` is not).
fn finite(v: &[f32]) -> bool {
    const EXP: u32 = 0x7f80_0000;
    wide(
        #[inline(always)]
        || v.iter().fold(0u32, |acc, x| acc | u32::from(!x.to_bits() & EXP == 0)) == 0,
    )
}

/// Buffers of the affine step, kept across layers and batches.
#[derive(Debug, Default)]
pub(super) struct Affine {
    pub(super) scratch: Scratch,
    c: Vec<f64>,
    r: Vec<f64>,
    r32: Vec<f32>,
    s32: Vec<f32>,
    d32: Vec<f32>,
}

impl Affine {
    /// Maps `rows` centre lines `mid` and radius lines `rad` (each `[rows][in_len]`) through the affine `layer`:
    /// on return `mid` holds the output's centres and `rad` radii that cover every point of the input boxes.
    pub(super) fn apply(&mut self, layer: &Layer, mid: &mut Vec<f64>, rad: &mut Vec<f64>, rows: usize) {
        layer.apply(mid, rows, &mut self.c, &mut self.scratch);
        std::mem::swap(mid, &mut self.c);
        if let Some(single) = layer.single() {
            if self.single(single, rad, rows) {
                return;
            }
        }
        let abs = layer.abs().expect("affine layers have an absolute part");
        abs.apply(rad, rows, &mut self.r, &mut self.scratch);
        std::mem::swap(rad, &mut self.r);
    }

    /// Maps `rows` bands (offsets `d`, widths `r`, each `[rows][in_len]`) through the linear part of the affine
    /// `layer`: `d` becomes `W d` and `r` a width that covers `|W| r` and every rounding of both passes
    /// (mathematics §5.7). Where the layer has single-precision forms of `W` and `|W|`, the offset runs in
    /// `f32` too: offsets below [`INPUT_FLOOR`] move into the width (the band `d ± r` lies inside `0 ± (r + |d|)`),
    /// the others round to nearest, and with `n` the layer's taps the computed `W d` is within
    /// `(γ_n (1 + u)² + 2u(1 + u))·|W| |d| ≤ γ_{n+3}·|W| r` of the exact one (each weight and offset rounded by at
    /// most `u`, `n` fused multiply-adds of products that are zero or at least `2^-100`), which the width then
    /// takes on: `r ← R (1 + 2 γ_{n+3})` for the computed `R ≥ |W| r`. `constant` is the layer's output at zero
    /// (its bias), taken off the `f64` pass.
    pub(super) fn band(
        &mut self,
        layer: &Layer,
        constant: &[f64],
        d: &mut Vec<f64>,
        r: &mut Vec<f64>,
        rows: usize,
    ) {
        if let Some(signed) = layer.single_signed() {
            let d32 = &mut self.d32;
            d32.clear();
            // Branch-free, so that the loop is vectorized; a NaN stays a NaN (caught below).
            wide(
                #[inline(always)]
                || {
                    d32.extend(d.iter().zip(r.iter_mut()).map(|(dv, rv)| {
                        let tiny = dv.abs() < INPUT_FLOOR;
                        *rv += if tiny { dv.abs() } else { 0.0 };
                        if tiny {
                            0.0
                        } else {
                            *dv as f32
                        }
                    }))
                },
            );
            if finite(d32) {
                signed.apply(d32, rows, &mut self.s32, &mut self.scratch);
                if finite(&self.s32) {
                    d.clear();
                    let s32 = &self.s32;
                    wide(
                        #[inline(always)]
                        || d.extend(s32.iter().map(|&v| f64::from(v))),
                    );
                    let single = layer.single().expect("a layer with a signed f32 form has an |W| one");
                    if !self.single(single, r, rows) {
                        let abs = layer.abs().expect("affine layers have an absolute part");
                        abs.apply(r, rows, &mut self.r, &mut self.scratch);
                        std::mem::swap(r, &mut self.r);
                    }
                    let widen = 1.0 + 2.0 * gamma(signed.taps() + 3);
                    wide(
                        #[inline(always)]
                        || r.iter_mut().for_each(|v| *v *= widen),
                    );
                    return;
                }
            }
        }
        self.apply(layer, d, r, rows);
        let m = layer.out_len();
        for dg in d.chunks_exact_mut(m) {
            for (v, c) in dg.iter_mut().zip(constant) {
                *v -= c;
            }
        }
    }

    /// The `f32` radius (module notes); `false`, with `rad` untouched, where a value is out of `f32`'s range or
    /// not a number (the `f64` pass carries a NaN on).
    fn single(&mut self, single: &Single, rad: &mut Vec<f64>, rows: usize) -> bool {
        let n = single.taps();
        let r32 = &mut self.r32;
        r32.clear();
        // Rounding up: 4u above a value in f32's normal range covers its rounding to nearest. Zeros stay zero;
        // a NaN stays a NaN (caught below), where `max` would have turned it into the floor.
        wide(
            #[inline(always)]
            || {
                r32.extend(rad.iter().map(|&r| {
                    let r = if r < INPUT_FLOOR {
                        if r == 0.0 {
                            0.0
                        } else {
                            INPUT_FLOOR
                        }
                    } else {
                        r
                    };
                    (r * (1.0 + 4.0 * U)) as f32
                }))
            },
        );
        if !finite(r32) {
            return false;
        }
        single.apply(r32, rows, &mut self.s32, &mut self.scratch);
        let s32 = &self.s32;
        if !finite(s32) {
            return false;
        }
        let inv = 1.0 / (1.0 - gamma(n + 1));
        rad.clear();
        wide(
            #[inline(always)]
            || rad.extend(s32.iter().map(|&s| f64::from(s) * inv)),
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use gcert_core::builder::CardBuilder;
    use gcert_core::ops::Kind;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// The `f32` radius is never below `|W|·r` computed in `f64` (less that sum's own rounding, `2n·2^-53`),
    /// nor above it by more than its rounding allowance, for radii of every magnitude (zero, below `INPUT_FLOOR`,
    /// `1e-30` to `1e30`, mixed in one point) through convolutions of both row strides and linear layers; the
    /// centres are the `f64` layer's, bit for bit. Radii beyond `f32`'s range, or not numbers, take the `f64` pass
    /// (same bits).
    #[test]
    fn the_f32_radius_covers_the_f64_one() {
        let net = CardBuilder::new("radius", &[3, 11, 13], 7)
            .conv2d(9, 3, 1, 1)
            .relu()
            .conv2d(17, 4, 2, 1)
            .relu()
            .flatten()
            .linear(37)
            .network()
            .expect("a valid network");
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut singles = 0;
        for layer in net.layers().iter().filter(|l| l.kind() == Kind::Affine) {
            let Some(single) = layer.single() else { continue };
            singles += 1;
            let (n, rows) = (single.taps(), 5);
            for scale in ["zero", "tiny", "wide", "huge", "nan"] {
                let rad: Vec<f64> = (0..rows * layer.in_len())
                    .map(|_| match scale {
                        "zero" => 0.0,
                        "tiny" => rng.gen_range(0.0..1e-20),
                        "wide" => 10f64.powf(rng.gen_range(-30.0..30.0)),
                        "nan" => f64::NAN,
                        _ => 1e300,
                    })
                    .collect();
                let mid: Vec<f64> = (0..rows * layer.in_len()).map(|_| rng.gen_range(-3.0..3.0)).collect();
                let (mut c, mut r) = (mid.clone(), rad.clone());
                let mut affine = Affine::default();
                affine.apply(layer, &mut c, &mut r, rows);
                let (mut want_c, mut want_r, mut scratch) = (Vec::new(), Vec::new(), Scratch::default());
                layer.apply(&mid, rows, &mut want_c, &mut scratch);
                layer.abs().expect("affine").apply(&rad, rows, &mut want_r, &mut scratch);
                assert_eq!(c, want_c, "{} {scale}: the centre is the f64 layer's", layer.name());
                if scale == "huge" || scale == "nan" {
                    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<u64>>();
                    assert_eq!(bits(&r), bits(&want_r), "{} {scale}: the f64 pass", layer.name());
                    continue;
                }
                let f64_rounding = 1.0 - 2.0 * n as f64 * f64::EPSILON;
                let allowance = (1.0 + gamma(n + 1)) / (1.0 - gamma(n + 1)) * (1.0 + 4.0 * U);
                for (i, (&got, &want)) in r.iter().zip(&want_r).enumerate() {
                    if want == 0.0 {
                        assert_eq!(got, 0.0, "{} {scale} output {i}: a zero radius stays zero", layer.name());
                    }
                    assert!(
                        got >= want * f64_rounding,
                        "{} {scale} output {i}: {got} < {want}",
                        layer.name()
                    );
                    // Above: the rounding allowance, and INPUT_FLOOR times the layer's largest row of |W|.
                    let cap = want * allowance + 1e-12;
                    assert!(got <= cap, "{} {scale} output {i}: {got} > {cap}", layer.name());
                }
            }
        }
        // Every layer has an f32 form on a CPU with AVX-512F or with AVX2 and FMA.
        let wide = cfg!(target_arch = "x86_64") && {
            #[cfg(target_arch = "x86_64")]
            let has = {
                use std::arch::is_x86_feature_detected as has;
                has!("avx512f") || (has!("avx2") && has!("fma"))
            };
            #[cfg(not(target_arch = "x86_64"))]
            let has = false;
            has
        };
        assert_eq!(singles, if wide { 3 } else { 0 });
    }

    /// The band through a layer ([`Affine::band`], the `f32` offset where the layer has one) covers the exact
    /// band through it: for offsets of every magnitude (zero, below `INPUT_FLOOR`, `1e-30` to `1e30`, mixed in one
    /// point) and widths at least as large, `|d' − W d| + |W| r ≤ r'` against `W d` and `|W| r` in `f64` (less
    /// their own rounding), through convolutions of both row strides and linear layers; offsets beyond `f32`'s
    /// range take the `f64` pass (the layer's output less its bias). On these inputs the offset's rounding stays
    /// inside the radius pass's own allowance, so this test would not notice a missing `1 + 2γ_{n+3}`: that
    /// factor rests on the worst-case argument of [`Affine::band`], not on a measurement.
    #[test]
    fn the_f32_band_covers_the_f64_one() {
        let net = CardBuilder::new("band", &[3, 11, 13], 8)
            .conv2d(9, 3, 1, 1)
            .relu()
            .conv2d(17, 4, 2, 1)
            .relu()
            .flatten()
            .linear(37)
            .network()
            .expect("a valid network");
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut signed = 0;
        for layer in net.layers().iter().filter(|l| l.kind() == Kind::Affine && l.single().is_some()) {
            signed += usize::from(layer.single_signed().is_some());
            let (rows, n) = (4, layer.in_len());
            let mut constant = Vec::new();
            layer.apply(&vec![0.0; n], 1, &mut constant, &mut Scratch::default());
            for scale in ["zero", "tiny", "unit", "wide", "huge"] {
                let d: Vec<f64> = (0..rows * n)
                    .map(|_| {
                        let sign = if rng.gen_bool(0.5) { 1.0 } else { -1.0 };
                        sign * match scale {
                            "zero" => 0.0,
                            "tiny" => rng.gen_range(0.0..1e-19),
                            "unit" => rng.gen_range(0.0..3.0),
                            "wide" => 10f64.powf(rng.gen_range(-30.0..30.0)),
                            _ => 1e300,
                        }
                    })
                    .collect();
                let r: Vec<f64> = d
                    .iter()
                    .map(|v| v.abs() * if rng.gen_bool(0.5) { 1.0 } else { rng.gen_range(1.0..2.0) })
                    .collect();
                let (mut bd, mut br) = (d.clone(), r.clone());
                Affine::default().band(layer, &constant, &mut bd, &mut br, rows);
                let (mut wd, mut wr, mut scratch) = (Vec::new(), Vec::new(), Scratch::default());
                layer.apply(&d, rows, &mut wd, &mut scratch);
                layer.abs().expect("affine").apply(&r, rows, &mut wr, &mut scratch);
                let m = layer.out_len();
                for (i, (&got_d, &got_r)) in bd.iter().zip(&br).enumerate() {
                    let want_d = wd[i] - constant[i % m];
                    let need = (got_d - want_d).abs() + wr[i];
                    // The f64 sums' own rounding: relative to the magnitudes, and the bias taken off.
                    let slack = 1e-12 * (wr[i] + constant[i % m].abs());
                    assert!(need <= got_r + slack, "{} {scale} output {i}: {need} > {got_r}", layer.name());
                }
            }
        }
        assert_eq!(signed, net.layers().iter().filter(|l| l.single().is_some()).count());
    }
}
