//! Reading and writing numpy `.npy` arrays (f32 or f64) as flat `f64` vectors.

use std::path::Path;

use ndarray::{ArrayD, IxDyn};
use ndarray_npy::{ReadNpyError, ReadNpyExt, WriteNpyExt};

use crate::error::{Error, Result};

/// A flat array read from a `.npy` file, with its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

fn open(path: &Path) -> Result<std::fs::File> {
    std::fs::File::open(path).map_err(|e| Error::io(path, e))
}

/// Reads a `.npy` file of f64 or f32 values; any other dtype, a truncated file or a NaN/Inf is an error.
pub fn read_npy(path: &Path) -> Result<NpyArray> {
    let npy_err = |e: ReadNpyError| Error::Npy { path: path.to_path_buf(), message: npy_message(e) };
    let arr: ArrayD<f64> = match ArrayD::<f64>::read_npy(open(path)?) {
        Ok(a) => a,
        Err(ReadNpyError::WrongDescriptor(_)) => ArrayD::<f32>::read_npy(open(path)?)
            .map_err(|e| match e {
                ReadNpyError::WrongDescriptor(d) => Error::Npy {
                    path: path.to_path_buf(),
                    message: format!("unsupported dtype {d}; expected float32 or float64"),
                },
                e => npy_err(e),
            })?
            .mapv(f64::from),
        Err(e) => return Err(npy_err(e)),
    };
    let shape = arr.shape().to_vec();
    let data: Vec<f64> = arr.iter().copied().collect();
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(Error::Npy {
            path: path.to_path_buf(),
            message: format!("non-finite value ({}) at flat index {i}", data[i]),
        });
    }
    Ok(NpyArray { shape, data })
}

fn npy_message(e: ReadNpyError) -> String {
    match e {
        ReadNpyError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the file is truncated (fewer values than its header declares)".to_string()
        }
        ReadNpyError::MissingData => {
            "the file is truncated (fewer values than its header declares)".to_string()
        }
        ReadNpyError::ExtraBytes(n) => {
            format!("the file has {n} bytes beyond the values its header declares")
        }
        e => format!("not a valid .npy file: {e}"),
    }
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

/// Writes values as an f64 `.npy` file of the given shape.
pub fn write_npy(path: &Path, shape: &[usize], data: &[f64]) -> Result<()> {
    let arr = ArrayD::from_shape_vec(IxDyn(shape), data.to_vec())
        .map_err(|e| Error::Npy { path: path.to_path_buf(), message: e.to_string() })?;
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    arr.write_npy(std::io::BufWriter::new(file))
        .map_err(|e| Error::Npy { path: path.to_path_buf(), message: e.to_string() })
}
