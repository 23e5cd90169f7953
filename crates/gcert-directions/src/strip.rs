//! The images along a latent segment `z + t·E·d`, side by side in one PNG, so a person can see what a
//! direction does.

use std::path::Path;

use gcert_core::Network;
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder};

use crate::error::{check_finite, Error, Result};
use crate::local::image_shape;

/// A unit direction from `d`: an error if it is zero, non-finite or of the wrong size.
pub fn unit_direction(d: &[f64], k: usize) -> Result<Vec<f64>> {
    if d.len() != k {
        return Err(Error::input(format!(
            "a direction needs {k} values (the latent size), found {}",
            d.len()
        )));
    }
    check_finite("the direction", d)?;
    // Normalised without squaring into underflow or overflow; only an all-zero direction is "zero".
    if d.iter().all(|&v| v == 0.0) {
        return Err(Error::input("the direction is zero: it does not move the latent point"));
    }
    gcert_core::limits::unit(d).map_err(|why| Error::input(format!("the direction {why}")))
}

/// The ratios `t` of `steps` evenly spaced points on `[0, 1]`, or on `[-1, 1]` when `two_sided`.
pub fn ratios(steps: usize, two_sided: bool) -> Result<Vec<f64>> {
    if steps < 2 {
        return Err(Error::input(format!("a strip needs at least 2 steps, found {steps}")));
    }
    let lo = if two_sided { -1.0 } else { 0.0 };
    Ok((0..steps).map(|i| lo + (1.0 - lo) * i as f64 / (steps - 1) as f64).collect())
}

/// The generator's images at `z + t·eps·d` for each `t` (`d` is normalised first), one after the other.
pub fn segment_images(net: &Network, z: &[f64], d: &[f64], eps: f64, ts: &[f64]) -> Result<Vec<f64>> {
    let k = net.input_len();
    if z.len() != k {
        return Err(Error::input(format!("the latent point needs {k} values, found {}", z.len())));
    }
    check_finite("the latent point", z)?;
    if !eps.is_finite() || eps == 0.0 {
        return Err(Error::input(format!("the tolerance eps must be finite and non-zero, found {eps}")));
    }
    let d = unit_direction(d, k)?;
    let mut batch = Vec::with_capacity(ts.len() * k);
    for &t in ts {
        batch.extend(z.iter().zip(&d).map(|(a, b)| a + t * eps * b));
    }
    Ok(net.forward(&batch, ts.len())?)
}

/// Writes images (`count × c·h·w` values in `[0, 1]`, clamped) side by side as an 8-bit PNG, each pixel blown up
/// to `scale × scale`, separated by a grey gap of `scale` pixels. One channel gives a grey image, three an RGB
/// one. An existing file is an error unless `overwrite`.
pub fn write_strip_png(
    path: &Path,
    images: &[f64],
    shape: [usize; 3],
    scale: usize,
    overwrite: bool,
) -> Result<()> {
    let [c, h, w] = shape;
    let color = match c {
        1 => ExtendedColorType::L8,
        3 => ExtendedColorType::Rgb8,
        _ => return Err(Error::input(format!("a PNG strip needs 1 or 3 channels, the images have {c}"))),
    };
    if !(1..=64).contains(&scale) {
        return Err(Error::input(format!("the scale of a strip must be between 1 and 64, found {scale}")));
    }
    let len = c * h * w;
    if len == 0 || images.is_empty() || !images.len().is_multiple_of(len) {
        return Err(Error::input(format!(
            "{} values are not a whole number of {c}×{h}×{w} images",
            images.len()
        )));
    }
    let count = images.len() / len;
    let (tile_w, tile_h) = (w * scale, h * scale);
    let width = count * tile_w + (count - 1) * scale;
    let mut buf = vec![128u8; width * tile_h * c];
    for (i, img) in images.chunks_exact(len).enumerate() {
        let x0 = i * (tile_w + scale);
        for y in 0..tile_h {
            for x in 0..tile_w {
                for ch in 0..c {
                    let v = img[(ch * h + y / scale) * w + x / scale];
                    buf[(y * width + x0 + x) * c + ch] = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                }
            }
        }
    }
    // Encoded in memory, then written atomically with every write, the flush and the sync checked: a failing
    // disk is an error, never an empty or truncated PNG reported as written.
    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(&buf, width as u32, tile_h as u32, color)
        .map_err(|e| Error::file(path, format!("cannot encode the PNG: {e}")))?;
    gcert_core::io::write_atomic(path, overwrite, |w| w.write_all(&png)).map_err(|e| match e {
        gcert_core::Error::File { message, .. } => Error::file(path, message),
        e => Error::file(path, e.to_string()),
    })
}

/// The strip of `net` along `z + t·eps·d` for `steps` ratios, written to `path`.
pub fn write_mutation_strip(
    net: &Network,
    z: &[f64],
    d: &[f64],
    eps: f64,
    steps: usize,
    two_sided: bool,
    path: &Path,
    scale: usize,
    overwrite: bool,
) -> Result<()> {
    let shape = image_shape(net)?;
    let ts = ratios(steps, two_sided)?;
    let images = segment_images(net, z, d, eps, &ts)?;
    write_strip_png(path, &images, shape, scale, overwrite)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_has_the_right_size_and_pixels_and_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.png");
        // Two 1×2×2 images: black then white.
        let images = [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.5];
        write_strip_png(&path, &images, [1, 2, 2], 3, false).unwrap();
        let img = image::open(&path).unwrap().to_luma8();
        assert_eq!(img.dimensions(), (2 * 6 + 3, 6));
        assert_eq!(img.get_pixel(0, 0).0, [0]);
        assert_eq!(img.get_pixel(6, 0).0, [128]);
        assert_eq!(img.get_pixel(14, 5).0, [255]);
        let e = write_strip_png(&path, &images, [1, 2, 2], 3, false).unwrap_err().to_string();
        assert!(e.contains("already exists"), "{e}");
        write_strip_png(&path, &images, [1, 2, 2], 1, true).unwrap();
        assert_eq!(image::open(&path).unwrap().to_luma8().dimensions(), (5, 2));
    }

    #[test]
    fn zero_and_misshaped_directions_are_errors() {
        assert!(unit_direction(&[0.0; 3], 3).unwrap_err().to_string().contains("zero"));
        assert!(unit_direction(&[1.0; 2], 3).unwrap_err().to_string().contains("needs 3"));
        assert!(unit_direction(&[1.0, f64::NAN, 0.0], 3).unwrap_err().to_string().contains("non-finite"));
        assert_eq!(unit_direction(&[3.0, 4.0], 2).unwrap(), vec![0.6, 0.8]);
        assert_eq!(ratios(3, true).unwrap(), vec![-1.0, 0.0, 1.0]);
        assert!(ratios(1, false).is_err());
        let e = write_strip_png(Path::new("unused.png"), &[0.0; 4], [1, 2, 2], 0, false).unwrap_err();
        assert!(e.to_string().contains("between 1 and 64"), "{e}");
        let e = write_strip_png(Path::new("unused.png"), &[0.0; 8], [2, 2, 2], 1, false).unwrap_err();
        assert!(e.to_string().contains("1 or 3 channels"), "{e}");
    }
}
