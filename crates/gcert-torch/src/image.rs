//! PNG grids of image batches.

use std::io::BufWriter;
use std::path::Path;

use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

/// Writes a batch `[n, 1, h, w]` (values in [0, 1]) as a grey PNG grid of `cols` columns, each image scaled
/// by `zoom` and separated by a 2-pixel grey border.
pub fn write_grid(path: &Path, images: &Tensor, cols: usize, zoom: usize) -> Result<()> {
    let s = images.size();
    if s.len() != 4 || s[1] != 1 {
        return Err(Error::input(format!("a PNG grid needs images [n, 1, h, w], found {s:?}")));
    }
    let (n, h, w) = (s[0] as usize, s[2] as usize, s[3] as usize);
    let cols = cols.clamp(1, n.max(1));
    let rows = n.div_ceil(cols);
    let zoom = zoom.max(1);
    let gap = 2;
    let (ch, cw) = (h * zoom + gap, w * zoom + gap);
    let (width, height) = (cols * cw + gap, rows * ch + gap);
    let mut buf = vec![96u8; width * height];
    let px =
        Vec::<f32>::try_from(images.detach().to_device(Device::Cpu).to_kind(Kind::Float).flatten(0, -1))?;
    for k in 0..n {
        let (r0, c0) = (gap + (k / cols) * ch, gap + (k % cols) * cw);
        for y in 0..h * zoom {
            for x in 0..w * zoom {
                let v = px[k * h * w + (y / zoom) * w + x / zoom];
                buf[(r0 + y) * width + c0 + x] = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
            }
        }
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut enc = png::Encoder::new(BufWriter::new(file), width as u32, height as u32);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    let png_err = |e: png::EncodingError| Error::data(path, format!("cannot write PNG: {e}"));
    let mut writer = enc.write_header().map_err(png_err)?;
    writer.write_image_data(&buf).map_err(png_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_decodable_grid() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.png");
        let x = Tensor::rand([5, 1, 4, 4], (Kind::Float, Device::Cpu));
        write_grid(&p, &x, 3, 2).unwrap();
        let dec = png::Decoder::new(std::fs::File::open(&p).unwrap());
        let reader = dec.read_info().unwrap();
        let info = reader.info();
        // 3 columns of 8 px + 2 px gaps; 2 rows.
        assert_eq!((info.width, info.height), (3 * 10 + 2, 2 * 10 + 2));
        let err = write_grid(&p, &Tensor::zeros([4, 4], (Kind::Float, Device::Cpu)), 2, 1).unwrap_err();
        assert!(err.to_string().contains("[n, 1, h, w]"));
    }
}
