//! On-the-fly geometric augmentation: random rotation, translation, scale and shear of a batch, applied with
//! libtorch's affine grid sampler (bilinear, zero padding), so it runs on the training device.

use gcert_core::rect::min_area_rect;
use rand::Rng;
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

/// Ranges of the random affine transform; each sample draws its own.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Augment {
    /// Rotation drawn from ±`rotation_deg`.
    pub rotation_deg: f64,
    /// Translation drawn from ±`translate` of the image side in each axis.
    pub translate: f64,
    /// Scale drawn from [`scale_min`, `scale_max`].
    pub scale_min: f64,
    pub scale_max: f64,
    /// Horizontal shear angle drawn from ±`shear_deg`.
    pub shear_deg: f64,
}

impl Default for Augment {
    fn default() -> Self {
        Augment { rotation_deg: 30.0, translate: 0.1, scale_min: 0.85, scale_max: 1.15, shear_deg: 15.0 }
    }
}

impl Augment {
    /// The sampling matrices (`[n, 2, 3]`, normalised coordinates, output → input) for `n` random transforms.
    pub fn thetas(&self, n: usize, rng: &mut impl Rng) -> Vec<f32> {
        let mut out = Vec::with_capacity(n * 6);
        for _ in 0..n {
            let ang = rng.gen_range(-self.rotation_deg..=self.rotation_deg).to_radians();
            let sh = rng.gen_range(-self.shear_deg..=self.shear_deg).to_radians().tan();
            let k = rng.gen_range(self.scale_min..=self.scale_max);
            // Normalised coordinates span 2 units over the image side.
            let tx = rng.gen_range(-self.translate..=self.translate) * 2.0;
            let ty = rng.gen_range(-self.translate..=self.translate) * 2.0;
            let (s, c) = ang.sin_cos();
            // Forward map A = R · Sh · k; the sampler needs the inverse: input = A⁻¹ (output − t).
            let a = [[c * k, (c * sh - s) * k], [s * k, (s * sh + c) * k]];
            let det = a[0][0] * a[1][1] - a[0][1] * a[1][0];
            let inv = [[a[1][1] / det, -a[0][1] / det], [-a[1][0] / det, a[0][0] / det]];
            let b0 = -(inv[0][0] * tx + inv[0][1] * ty);
            let b1 = -(inv[1][0] * tx + inv[1][1] * ty);
            out.extend([inv[0][0], inv[0][1], b0, inv[1][0], inv[1][1], b1].map(|v| v as f32));
        }
        out
    }

    /// A randomly transformed copy of a batch `[n, c, h, w]`; values stay in the input's range.
    pub fn apply(&self, images: &Tensor, rng: &mut impl Rng) -> Result<Tensor> {
        let size = images.size();
        if size.len() != 4 {
            return Err(Error::input(format!("augmentation needs a batch [n, c, h, w], found {size:?}")));
        }
        let n = size[0] as usize;
        let theta = Tensor::from_slice(&self.thetas(n, rng))
            .reshape([n as i64, 2, 3])
            .to_device(images.device())
            .to_kind(images.kind());
        let grid = Tensor::f_affine_grid_generator(&theta, size.as_slice(), false)?;
        // interpolation 0: bilinear; padding 0: zeros.
        Ok(images.f_grid_sampler(&grid, 0, 0, false)?.clamp(0.0, 1.0))
    }
}

/// Geometry coordinates of a latent: four latent units that a generator is trained to turn into a rotation,
/// a translation along x and y and a scaling of its image, at fixed rates per latent unit. [`Geometry::apply`]
/// makes the training target: the image transformed by the parameters that the coordinates `g` (`[n, 4]`, in
/// the order rotation, translate-x, translate-y, scale) stand for.
///
/// Conventions are those of `gcert_directions::geometry` (x: column, y: row, down): a positive rotation turns
/// the x axis towards y, positive translations move the object right and down, a positive scale enlarges it.
/// Rotation and scaling are about the centre of each object's minimum-area rectangle (its pixels brighter than
/// 0.5, [`gcert_core::rect::min_area_rect`], the measurement `gcert_directions::geometry` names directions
/// with), so that a rotation or a scaling leaves the rectangle's centre where it is: measured on the transforms
/// themselves at 100 real test digits, rotation's largest cross effect has median 0.011 of its own effect about
/// that centre and 0.13 about the centre of the axis-aligned box (docs/directions.md, "Where rotation lost its
/// purity").
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Geometry {
    /// Degrees of rotation per latent unit.
    pub rotation_deg: f64,
    /// Pixels of translation per latent unit (both axes).
    pub translate_px: f64,
    /// Percent of scale change per latent unit (the factor is `1 + scale_pct / 100 · g`).
    pub scale_pct: f64,
}

impl Default for Geometry {
    fn default() -> Self {
        Geometry { rotation_deg: 10.0, translate_px: 4.0 / 3.0, scale_pct: 20.0 / 3.0 }
    }
}

impl Geometry {
    /// Latent units these coordinates take (the last four of the latent).
    pub const DIMS: i64 = 4;

    /// The sampling matrices (`[n, 2, 3]`, normalised coordinates, output → input) of the transforms that the
    /// coordinates `g` stand for, about the centres `centre` (`[n, 2]`, normalised).
    fn thetas(&self, g: &Tensor, centre: &Tensor, size: [i64; 2]) -> Tensor {
        let [h, w] = size;
        let col = |i: i64| g.select(1, i);
        let ang = col(0) * self.rotation_deg.to_radians();
        let tx = col(1) * (self.translate_px * 2.0 / w as f64);
        let ty = col(2) * (self.translate_px * 2.0 / h as f64);
        let k = (col(3) * (self.scale_pct / 100.0) + 1.0).clamp_min(0.05);
        let (c, s) = (ang.cos() / &k, ang.sin() / &k);
        // Forward map: out = k R (in − m) + m + t, R = [[cos, −sin], [sin, cos]]; the sampler needs its inverse
        // in = A (out − m − t) + m with A = R⁻¹ / k = [[cos, sin], [−sin, cos]] / k.
        let (mx, my) = (centre.select(1, 0), centre.select(1, 1));
        let (px, py) = (&mx + &tx, &my + &ty);
        let b0 = &mx - (&c * &px + &s * &py);
        let b1 = &my - (-&s * &px + &c * &py);
        Tensor::stack(&[&c, &s, &b0, &(-&s), &c, &b1], 1).reshape([-1, 2, 3])
    }

    /// Each image of `images` (`[n, c, h, w]`, values in [0, 1]) transformed as its row of `g` (`[n, 4]`) says.
    pub fn apply(&self, images: &Tensor, g: &Tensor) -> Result<Tensor> {
        let size = images.size();
        if size.len() != 4 || g.size() != [size[0], Self::DIMS] {
            return Err(Error::input(format!(
                "geometry needs a batch [n, c, h, w] and coordinates [n, 4], found {size:?} and {:?}",
                g.size()
            )));
        }
        let (h, w) = (size[2], size[3]);
        // The centre of each object's minimum-area rectangle (pixels brighter than 0.5), in normalised
        // coordinates (align_corners = false: pixel i's centre i + 0.5 is (i + 0.5) · 2 / w − 1); the image
        // centre when no pixel is. Measured on the CPU: a batch is a few hundred kilobytes.
        let shape = [size[1] as usize, h as usize, w as usize];
        let per = shape.iter().product::<usize>();
        let flat = Vec::<f64>::try_from(images.to_kind(Kind::Double).to_device(Device::Cpu).reshape([-1]))?;
        let centres: Vec<f64> = flat
            .chunks(per)
            .flat_map(|img| match min_area_rect(img, shape, 0.5) {
                Some(r) => [r.cx * 2.0 / w as f64 - 1.0, r.cy * 2.0 / h as f64 - 1.0],
                None => [0.0, 0.0],
            })
            .collect();
        let centre = Tensor::from_slice(&centres)
            .reshape([size[0], 2])
            .to_kind(images.kind())
            .to_device(images.device());
        let theta = self.thetas(&g.to_kind(images.kind()).to_device(images.device()), &centre, [h, w]);
        let grid = Tensor::f_affine_grid_generator(&theta, size.as_slice(), false)?;
        Ok(images.f_grid_sampler(&grid, 0, 0, false)?.clamp(0.0, 1.0))
    }
}

/// Applies `aug` when given, else returns the batch unchanged (a shallow copy).
pub fn maybe(aug: Option<&Augment>, images: &Tensor, rng: &mut impl Rng) -> Result<Tensor> {
    match aug {
        Some(a) => a.apply(images, rng),
        None => Ok(images.shallow_clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::SquareParams;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use tch::{Device, Kind};

    fn square() -> Tensor {
        Tensor::from_slice(&SquareParams::IDENTITY.render()).reshape([1, 1, 32, 32])
    }

    #[test]
    fn zero_ranges_are_the_identity() {
        let aug =
            Augment { rotation_deg: 0.0, translate: 0.0, scale_min: 1.0, scale_max: 1.0, shear_deg: 0.0 };
        let x = square();
        let y = aug.apply(&x, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
        let diff = (&y - &x).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "{diff}");
    }

    #[test]
    fn transforms_are_random_seeded_and_keep_mass_roughly() {
        let x = square().repeat([8, 1, 1, 1]);
        let aug = Augment::default();
        let a = aug.apply(&x, &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
        let b = aug.apply(&x, &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
        assert_eq!(a.size(), [8, 1, 32, 32]);
        assert_eq!((&a - &b).abs().max().double_value(&[]), 0.0, "same seed, same transforms");
        let first = a.get(0);
        let second = a.get(1);
        assert!((&first - &second).abs().max().double_value(&[]) > 0.1, "samples differ");
        // Area changes only by the scale (0.85² to 1.15²) and resampling.
        let areas: Vec<f64> = (0..8).map(|i| a.get(i).sum(Kind::Float).double_value(&[])).collect();
        assert!(areas.iter().all(|&s| (60.0..140.0).contains(&s)), "{areas:?}");
        assert!(a.min().double_value(&[]) >= 0.0 && a.max().double_value(&[]) <= 1.0);
    }

    #[test]
    fn a_pure_translation_moves_the_centre() {
        let aug =
            Augment { rotation_deg: 0.0, translate: 0.1, scale_min: 1.0, scale_max: 1.0, shear_deg: 0.0 };
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let th = aug.thetas(1, &mut rng.clone());
        let y = aug.apply(&square(), &mut rng).unwrap();
        let (bx, by) = (-th[2] as f64 * 16.0, -th[5] as f64 * 16.0);
        let img = Vec::<f32>::try_from(y.flatten(0, -1)).unwrap();
        let m: f32 = img.iter().sum();
        let cx = img.iter().enumerate().map(|(i, v)| v * ((i % 32) as f32 + 0.5)).sum::<f32>() / m;
        let cy = img.iter().enumerate().map(|(i, v)| v * ((i / 32) as f32 + 0.5)).sum::<f32>() / m;
        assert!(
            (cx as f64 - 16.0 - bx).abs() < 0.05 && (cy as f64 - 16.0 - by).abs() < 0.05,
            "{cx} {cy} {bx} {by}"
        );
    }

    fn moments(img: &Tensor) -> (f64, f64, f64) {
        let v = Vec::<f32>::try_from(img.flatten(0, -1)).unwrap();
        let m: f32 = v.iter().sum();
        let cx = v.iter().enumerate().map(|(i, a)| a * ((i % 32) as f32 + 0.5)).sum::<f32>() / m;
        let cy = v.iter().enumerate().map(|(i, a)| a * ((i / 32) as f32 + 0.5)).sum::<f32>() / m;
        (cx as f64, cy as f64, m as f64)
    }

    #[test]
    fn geometry_coordinates_move_rotate_and_scale_as_calibrated() {
        let geo = Geometry::default();
        // An off-centre bar: rotation about its centre keeps that centre.
        let bar: Vec<f32> = (0..1024)
            .map(|i| if (12..26).contains(&(i % 32)) && (9..14).contains(&(i / 32)) { 1.0 } else { 0.0 })
            .collect();
        let x = Tensor::from_slice(&bar).reshape([1, 1, 32, 32]).repeat([5, 1, 1, 1]);
        let g = Tensor::from_slice(&[
            0.0f32, 0.0, 0.0, 0.0, //
            0.0, 1.5, 0.0, 0.0, //
            0.0, 0.0, -1.5, 0.0, //
            1.0, 0.0, 0.0, 0.0, //
            0.0, 0.0, 0.0, 1.5,
        ])
        .reshape([5, 4]);
        let y = geo.apply(&x, &g).unwrap();
        let (cx0, cy0, m0) = moments(&y.get(0));
        let (cx1, cy1, _) = moments(&y.get(1));
        assert!((cx1 - cx0 - 2.0).abs() < 0.05 && (cy1 - cy0).abs() < 0.05, "{cx0} {cx1} {cy1}");
        let (cx2, cy2, _) = moments(&y.get(2));
        assert!((cy2 - cy0 + 2.0).abs() < 0.05 && (cx2 - cx0).abs() < 0.05, "{cy0} {cy2}");
        let (cx3, cy3, _) = moments(&y.get(3));
        assert!((cx3 - cx0).abs() < 0.1 && (cy3 - cy0).abs() < 0.1, "rotation keeps the centre: {cx3} {cy3}");
        let rect = |img: &Tensor| {
            let v = Vec::<f32>::try_from(img.flatten(0, -1)).unwrap();
            let on: Vec<(f64, f64)> = (0..1024)
                .filter(|&i| v[i] > 0.5)
                .map(|i| ((i % 32) as f64 + 0.5, (i / 32) as f64 + 0.5))
                .collect();
            let n = on.len() as f64;
            let (mx, my) = (on.iter().map(|p| p.0).sum::<f64>() / n, on.iter().map(|p| p.1).sum::<f64>() / n);
            let (sxx, syy, sxy) = on.iter().fold((0.0, 0.0, 0.0), |a, p| {
                (a.0 + (p.0 - mx).powi(2), a.1 + (p.1 - my).powi(2), a.2 + (p.0 - mx) * (p.1 - my))
            });
            (0.5 * (2.0 * sxy).atan2(sxx - syy)).to_degrees()
        };
        let turn = rect(&y.get(3)) - rect(&y.get(0));
        assert!((turn - 10.0).abs() < 2.0, "one unit turns the bar by 10 degrees towards y: {turn}");
        let (_, _, m4) = moments(&y.get(4));
        let k = 1.0 + 1.5 * 20.0 / 300.0;
        assert!((m4 / m0 - k * k).abs() < 0.05, "scaled area {m4} / {m0}, want {}", k * k);
        assert!(geo.apply(&x, &g.narrow(1, 0, 3)).unwrap_err().to_string().contains("[n, 4]"));
    }

    #[test]
    fn rotation_and_scale_keep_the_minimum_area_rectangle_centred() {
        // A slanted bar with a bump on one side of its middle: its minimum-area rectangle is tilted along the
        // bar and reaches out to the bump on one side only, so that its centre is not the centre of the
        // axis-aligned box (which the bump does not widen).
        let (a, b) = ((11.0, 6.0), (21.0, 26.0));
        let bar = |x: f64, y: f64| {
            let (dx, dy) = (b.0 - a.0, b.1 - a.1);
            let t = ((x - a.0) * dx + (y - a.1) * dy) / (dx * dx + dy * dy);
            let d = ((x - a.0) * dy - (y - a.1) * dx).abs() / (dx * dx + dy * dy).sqrt();
            (0.0..=1.0).contains(&t) && d < 2.0
        };
        let img: Vec<f64> = (0..1024)
            .map(|i| {
                let (x, y) = ((i % 32) as f64 + 0.5, (i / 32) as f64 + 0.5);
                f64::from(u8::from(bar(x, y) || (x - 19.5).hypot(y - 14.0) < 2.5))
            })
            .collect();
        let shape = [1, 32, 32];
        let r0 = min_area_rect(&img, shape, 0.5).unwrap();
        let on: Vec<(f64, f64)> = (0..1024)
            .filter(|&i| img[i] > 0.5)
            .map(|i| ((i % 32) as f64 + 0.5, (i / 32) as f64 + 0.5))
            .collect();
        let mid = |v: Vec<f64>| {
            (v.iter().copied().fold(f64::MAX, f64::min) + v.iter().copied().fold(0.0, f64::max)) / 2.0
        };
        let (bx, by) = (mid(on.iter().map(|p| p.0).collect()), mid(on.iter().map(|p| p.1).collect()));
        // 2.2 px apart: a 15° turn about the box centre would move the rectangle by 0.6 px.
        let off = (r0.cx - bx).hypot(r0.cy - by);
        assert!(off > 0.5, "the shape's rectangle and box centres differ: {off}");
        let x = Tensor::from_slice(&img).to_kind(Kind::Float).reshape([1, 1, 32, 32]).repeat([4, 1, 1, 1]);
        let g = Tensor::from_slice(&[
            -1.5f32, 0.0, 0.0, 0.0, 1.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.5, 0.0, 0.0, 0.0, -1.5,
        ])
        .reshape([4, 4]);
        let y = Geometry::default().apply(&x, &g).unwrap();
        for i in 0..4 {
            let v = Vec::<f64>::try_from(y.get(i).to_kind(Kind::Double).flatten(0, -1)).unwrap();
            let r = min_area_rect(&v, shape, 0.5).unwrap();
            let moved = (r.cx - r0.cx).hypot(r.cy - r0.cy);
            assert!(moved < 0.3, "transform {i} moved the rectangle's centre by {moved} px: {r:?} vs {r0:?}");
        }
    }

    #[test]
    fn wrong_rank_is_an_error() {
        let err = Augment::default()
            .apply(&Tensor::zeros([32, 32], (Kind::Float, Device::Cpu)), &mut ChaCha8Rng::seed_from_u64(0))
            .unwrap_err()
            .to_string();
        assert!(err.contains("[n, c, h, w]"), "{err}");
    }
}
