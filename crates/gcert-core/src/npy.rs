//! Reading and writing numpy `.npy` arrays (f32 or f64) as flat `f64` vectors.

use std::path::Path;

use ndarray::{ArrayD, IxDyn, ShapeBuilder};
use ndarray_npy::WriteNpyExt;

use crate::error::{Error, Result};
use crate::limits::{numel, Limits};

/// A flat array read from a `.npy` file, with its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

/// Reads a `.npy` file of f64 or f32 values; any other dtype, a truncated file or a NaN/Inf is an error.
pub fn read_npy(path: &Path) -> Result<NpyArray> {
    read_npy_with(path, &Limits::current())
}

/// [`read_npy`] under explicit limits: a regular file of at most [`Limits::max_npy_bytes`] whose header
/// declares at most [`Limits::max_elements`] values, exactly as many as the file holds.
pub fn read_npy_with(path: &Path, limits: &Limits) -> Result<NpyArray> {
    let bytes = crate::io::read_capped(path, "an array (.npy)", limits.max_npy_bytes())?;
    decode_npy(&bytes, path, limits)
}

/// The parts of a `.npy` header gcert needs.
#[derive(Debug, Clone, PartialEq)]
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
    /// Offset of the first value.
    data_start: usize,
}

/// Parses the magic, version and header dictionary of a `.npy` file (formats 1.0, 2.0 and 3.0).
fn parse_header(bytes: &[u8]) -> std::result::Result<Header, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("the file does not start with the .npy magic string".into());
    }
    let (len, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => {
            (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
        }
        v => return Err(format!("unsupported format version {v}.{}", bytes[7])),
    };
    let end = start.checked_add(len).filter(|&e| e <= bytes.len()).ok_or("the header is truncated")?;
    let text = std::str::from_utf8(&bytes[start..end]).map_err(|_| "the header is not text")?;
    let dict = text.trim_end_matches(['\n', ' ', '\0']).trim();
    let inner =
        dict.strip_prefix('{').and_then(|d| d.strip_suffix('}')).ok_or("the header is not a dictionary")?;
    let value = |key: &str| -> std::result::Result<&str, String> {
        let pat = format!("'{key}':");
        let at = inner.find(&pat).ok_or(format!("the header has no '{key}'"))?;
        Ok(inner[at + pat.len()..].trim_start())
    };
    let descr = value("descr")?;
    let descr = descr
        .strip_prefix('\'')
        .and_then(|d| d.split_once('\''))
        .map(|(d, _)| d.to_string())
        .ok_or("the header's 'descr' is not a simple type string")?;
    let fortran = value("fortran_order")?;
    let fortran_order = if fortran.starts_with("True") {
        true
    } else if fortran.starts_with("False") {
        false
    } else {
        return Err("the header's 'fortran_order' is neither True nor False".into());
    };
    let shape_text = value("shape")?;
    let tuple = shape_text
        .strip_prefix('(')
        .and_then(|t| t.split_once(')'))
        .map(|(t, _)| t)
        .ok_or("the header's 'shape' is not a tuple")?;
    let mut shape = Vec::new();
    for part in tuple.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let part = part.strip_suffix('L').unwrap_or(part);
        shape.push(
            part.parse::<usize>().map_err(|_| format!("the header's shape has an invalid size '{part}'"))?,
        );
    }
    Ok(Header { descr, fortran_order, shape, data_start: end })
}

/// Decodes the bytes of a `.npy` file of f32 or f64 values; `path` labels errors. The declared shape is checked
/// against the budget and against the number of bytes the file holds before anything of its size is allocated.
pub fn decode_npy(bytes: &[u8], path: &Path, limits: &Limits) -> Result<NpyArray> {
    let err = |message: String| Error::Npy { path: path.to_path_buf(), message };
    let h = parse_header(bytes).map_err(|e| err(format!("not a valid .npy file: {e}")))?;
    let (little, size) = match h.descr.as_str() {
        "<f8" | "=f8" | "f8" => (true, 8),
        "<f4" | "=f4" | "f4" => (true, 4),
        ">f8" => (false, 8),
        ">f4" => (false, 4),
        d => return Err(err(format!("unsupported dtype '{d}'; expected float32 or float64"))),
    };
    let count = numel(&h.shape)
        .ok_or_else(|| err(format!("the header declares shape {:?}, whose size overflows", h.shape)))?;
    limits.check_elements(&format!("the array of shape {:?}", h.shape), count).map_err(err)?;
    let have = bytes.len() - h.data_start;
    let need = count * size;
    if have < need {
        return Err(err("the file is truncated (fewer values than its header declares)".to_string()));
    }
    if have > need {
        return Err(err(format!("the file has {} bytes beyond the values its header declares", have - need)));
    }
    let raw = &bytes[h.data_start..];
    let values: Vec<f64> = if size == 8 {
        raw.chunks_exact(8)
            .map(|c| {
                let b = [c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]];
                if little {
                    f64::from_le_bytes(b)
                } else {
                    f64::from_be_bytes(b)
                }
            })
            .collect()
    } else {
        raw.chunks_exact(4)
            .map(|c| {
                let b = [c[0], c[1], c[2], c[3]];
                f64::from(if little { f32::from_le_bytes(b) } else { f32::from_be_bytes(b) })
            })
            .collect()
    };
    let data = if h.fortran_order && h.shape.len() > 1 {
        let arr = ArrayD::from_shape_vec(IxDyn(&h.shape).f(), values).map_err(|e| err(e.to_string()))?;
        arr.iter().copied().collect()
    } else {
        values
    };
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(err(format!("non-finite value ({}) at flat index {i}", data[i])));
    }
    Ok(NpyArray { shape: h.shape, data })
}

/// Reads a `.npy` file of integers (`int8` to `int64`, `uint8` to `uint64`, either byte order), or of floats
/// whose values are all whole numbers: class labels, say. Returns the shape and the values in C order.
pub fn read_npy_integers(path: &Path) -> Result<(Vec<usize>, Vec<i64>)> {
    let limits = Limits::current();
    let bytes = crate::io::read_capped(path, "an array (.npy)", limits.max_npy_bytes())?;
    let err = |message: String| Error::Npy { path: path.to_path_buf(), message };
    let h = parse_header(&bytes).map_err(|e| err(format!("not a valid .npy file: {e}")))?;
    let d = h.descr.as_str();
    if d.ends_with("f4") || d.ends_with("f8") {
        let a = decode_npy(&bytes, path, &limits)?;
        let mut out = Vec::with_capacity(a.data.len());
        for (i, v) in a.data.iter().enumerate() {
            if v.fract() != 0.0 || v.abs() > 9.0e15 {
                return Err(err(format!("value {v} at flat index {i} is not a whole number")));
            }
            out.push(*v as i64);
        }
        return Ok((a.shape, out));
    }
    let (order, kind, size) = match d.as_bytes() {
        [o @ (b'<' | b'>' | b'=' | b'|'), k @ (b'i' | b'u'), s] => (*o, *k, (*s as char).to_digit(10)),
        _ => (b'?', b'?', None),
    };
    let size = match size {
        Some(s @ (1 | 2 | 4 | 8)) => s as usize,
        _ => return Err(err(format!("unsupported dtype '{d}'; expected integers or floats"))),
    };
    let big = order == b'>';
    let count = numel(&h.shape)
        .ok_or_else(|| err(format!("the header declares shape {:?}, whose size overflows", h.shape)))?;
    limits.check_elements(&format!("the array of shape {:?}", h.shape), count).map_err(err)?;
    let have = bytes.len() - h.data_start;
    if have != count * size {
        return Err(err(format!(
            "the file holds {have} bytes of values, its header declares {} ({count} values of {size} bytes)",
            count * size
        )));
    }
    let mut values = Vec::with_capacity(count);
    for (i, c) in bytes[h.data_start..].chunks_exact(size).enumerate() {
        let mut b = [0u8; 8];
        if big {
            b[8 - size..].copy_from_slice(c);
            b.reverse();
        } else {
            b[..size].copy_from_slice(c);
        }
        let raw = u64::from_le_bytes(b);
        let v = if kind == b'i' {
            let shift = 64 - 8 * size as u32;
            ((raw << shift) as i64) >> shift
        } else if raw > i64::MAX as u64 {
            return Err(err(format!("value {raw} at flat index {i} is too large")));
        } else {
            raw as i64
        };
        values.push(v);
    }
    let values = if h.fortran_order && h.shape.len() > 1 {
        let arr = ArrayD::from_shape_vec(IxDyn(&h.shape).f(), values).map_err(|e| err(e.to_string()))?;
        arr.iter().copied().collect()
    } else {
        values
    };
    Ok((h.shape, values))
}

/// Reads a `.npy` file that must hold exactly `len` values (any shape with that many elements).
pub fn read_npy_len(path: &Path, len: usize, what: &str) -> Result<Vec<f64>> {
    let a = read_npy(path)?;
    if a.data.len() != len {
        return Err(Error::Npy {
            path: path.to_path_buf(),
            message: format!(
                "{what} needs {len} values, the file holds {} (shape {:?})",
                a.data.len(),
                a.shape
            ),
        });
    }
    Ok(a.data)
}

/// Writes values as an f64 `.npy` file of the given shape, atomically (see [`crate::io::write_atomic`]);
/// replaces an existing regular file.
pub fn write_npy(path: &Path, shape: &[usize], data: &[f64]) -> Result<()> {
    write_npy_checked(path, shape, data, true)
}

/// [`write_npy`], replacing an existing file only if `overwrite` (an existing file is otherwise an error, even
/// one created while the values were computed).
pub fn write_npy_checked(path: &Path, shape: &[usize], data: &[f64], overwrite: bool) -> Result<()> {
    let arr = ArrayD::from_shape_vec(IxDyn(shape), data.to_vec())
        .map_err(|e| Error::Npy { path: path.to_path_buf(), message: e.to_string() })?;
    let mut bytes = Vec::new();
    arr.write_npy(&mut bytes).map_err(|e| Error::Npy { path: path.to_path_buf(), message: e.to_string() })?;
    crate::io::write_atomic(path, overwrite, |w| w.write_all(&bytes))
}
