//! Named tensors and the safetensors files that hold them.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};

use crate::error::{Error, Result};
use crate::limits::Limits;

/// A dense tensor of `f64` values in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

impl Tensor {
    pub fn new(shape: Vec<usize>, data: Vec<f64>) -> Self {
        assert_eq!(shape.iter().product::<usize>(), data.len(), "tensor shape does not match its data");
        Tensor { shape, data }
    }
}

/// The tensors of a weights file, by name.
pub type TensorStore = BTreeMap<String, Tensor>;

/// Storage precision when writing a weights file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    F32,
    F64,
}

/// Reads every tensor of a safetensors file (f32 or f64) into `f64`.
pub fn read_safetensors(path: &Path) -> Result<TensorStore> {
    read_safetensors_with(path, &Limits::current())
}

/// [`read_safetensors`] under explicit limits: a regular file of at most [`Limits::max_weights_bytes`], with
/// at most [`Limits::max_elements`] values in all.
pub fn read_safetensors_with(path: &Path, limits: &Limits) -> Result<TensorStore> {
    let bytes = crate::io::read_capped(path, "a weights file", limits.max_weights_bytes())?;
    decode_safetensors(&bytes, path, limits)
}

/// Decodes the bytes of a safetensors file; `path` labels errors. The header's sizes are checked against the
/// data (by `safetensors`) and against the budget before any value is converted.
pub fn decode_safetensors(bytes: &[u8], path: &Path, limits: &Limits) -> Result<TensorStore> {
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| {
        Error::card(path, format!("not a valid safetensors file (truncated or corrupt?): {e}"))
    })?;
    let mut total = 0usize;
    for (name, view) in st.iter() {
        let n = crate::limits::numel(view.shape())
            .ok_or_else(|| Error::card(path, format!("tensor '{name}' has a shape whose size overflows")))?;
        total = total.saturating_add(n);
    }
    limits.check_elements("the weights file", total).map_err(|m| Error::card(path, m))?;
    let mut out = TensorStore::new();
    for (name, view) in st.tensors() {
        let data: Vec<f64> = match view.dtype() {
            Dtype::F32 => view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
                .collect(),
            Dtype::F64 => view
                .data()
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
            // PyTorch's batch-norm bookkeeping counter: no value gcert needs, but it must not break loading.
            Dtype::I64 if name.ends_with("num_batches_tracked") => continue,
            other => {
                return Err(Error::card(
                    path,
                    format!("tensor '{name}' has dtype {other:?}; gcert reads f32 and f64 weights"),
                ))
            }
        };
        out.insert(name, Tensor { shape: view.shape().to_vec(), data });
    }
    Ok(out)
}

/// Writes tensors to a safetensors file in the given precision.
pub fn write_safetensors(path: &Path, tensors: &TensorStore, precision: Precision) -> Result<()> {
    let encoded: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, t)| {
            let bytes = match precision {
                Precision::F32 => t.data.iter().flat_map(|&v| (v as f32).to_le_bytes()).collect(),
                Precision::F64 => t.data.iter().flat_map(|&v| v.to_le_bytes()).collect(),
            };
            (name.clone(), t.shape.clone(), bytes)
        })
        .collect();
    let dtype = match precision {
        Precision::F32 => Dtype::F32,
        Precision::F64 => Dtype::F64,
    };
    let views = encoded
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(dtype, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::card(path, format!("cannot encode tensor '{name}': {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let bytes = safetensors::serialize(views, &None)
        .map_err(|e| Error::card(path, format!("cannot write safetensors: {e}")))?;
    crate::io::write_atomic(path, true, |w| w.write_all(&bytes))
}
