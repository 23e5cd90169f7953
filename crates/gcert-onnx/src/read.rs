//! Reading an ONNX file: gzip detection, protobuf decoding (the generated `prost` types of the official
//! `onnx.proto`), tensors (inline or external data) and node attributes.

use std::path::{Path, PathBuf};

use prost::Message;

use crate::proto::{tensor_proto, AttributeProto, ModelProto, NodeProto, TensorProto};
use crate::{Error, Result};

/// A constant value of the graph (an initializer, a `Constant` node or a folded shape computation), in f64.
/// Integer tensors (shapes, axes, indices) are held exactly below 2^53, which every size is; larger ones are
/// sentinels like Slice's `i64::MAX`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Const {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
    /// Whether the ONNX element type is an integer (or bool) type: integer division and casts truncate.
    pub int: bool,
}

impl Const {
    pub fn scalar(v: f64, int: bool) -> Const {
        Const { shape: vec![], data: vec![v], int }
    }

    pub fn vector(data: Vec<f64>, int: bool) -> Const {
        Const { shape: vec![data.len()], data, int }
    }

    /// The values as integers (shape tensors, axes); an error message if any is not integral.
    pub fn ints(&self) -> std::result::Result<Vec<i64>, String> {
        self.data
            .iter()
            .map(|&v| {
                // `as` saturates: Slice's "to the end" sentinel i64::MAX (rounded in f64) stays the largest.
                if v.is_finite() && v.fract() == 0.0 {
                    Ok(v as i64)
                } else {
                    Err(format!("expected integers, found {v}"))
                }
            })
            .collect()
    }
}

/// Reads and decodes an ONNX model, gunzipping it first when it starts with the gzip magic bytes.
pub(crate) fn read_model(path: &Path) -> Result<ModelProto> {
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, format!("cannot read the file: {e}")))?;
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut out)
            .map_err(|e| Error::file(path, format!("not a valid gzip file (truncated?): {e}")))?;
        out
    } else {
        bytes
    };
    let model = ModelProto::decode(&bytes[..]).map_err(|e| {
        Error::file(
            path,
            format!("not an ONNX model (protobuf decoding failed: {e}); is the file truncated?"),
        )
    })?;
    if model.graph.is_none() || model.ir_version.unwrap_or(0) <= 0 {
        return Err(Error::file(
            path,
            "not an ONNX model: no ir_version or no graph (truncated, or another format?)",
        ));
    }
    Ok(model)
}

fn dtype_name(t: i32) -> String {
    tensor_proto::DataType::try_from(t)
        .map_or_else(|_| format!("type {t}"), |d| d.as_str_name().to_lowercase())
}

/// Whether an ONNX element type is one gcert reads as integers.
pub(crate) fn is_int_type(t: i32) -> bool {
    use tensor_proto::DataType as D;
    [D::Int64 as i32, D::Int32 as i32, D::Bool as i32].contains(&t)
}

/// Whether an ONNX element type is a floating type gcert computes with.
pub(crate) fn is_float_type(t: i32) -> bool {
    use tensor_proto::DataType as D;
    t == D::Float as i32 || t == D::Double as i32
}

pub(crate) fn type_name(t: i32) -> String {
    dtype_name(t)
}

/// Decodes a tensor into f64 values; `dir` is the folder external data paths are relative to. Errors are
/// messages naming the tensor (the caller adds the file or node).
pub(crate) fn tensor_value(t: &TensorProto, dir: &Path) -> std::result::Result<Const, String> {
    use tensor_proto::DataType as D;
    let name = t.name();
    let mut shape = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        if d < 0 {
            return Err(format!("tensor '{name}' has a negative dimension {d}"));
        }
        shape.push(d as usize);
    }
    let numel = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d).filter(|&n| n <= 1 << 34))
        .ok_or_else(|| format!("tensor '{name}' of shape {shape:?} is too large"))?;
    let dtype = t.data_type();
    let size = match D::try_from(dtype) {
        Ok(D::Float) | Ok(D::Int32) => 4,
        Ok(D::Double) | Ok(D::Int64) => 8,
        Ok(D::Bool) => 1,
        _ => {
            return Err(format!(
            "tensor '{name}' has element type {}; gcert reads float, double, int32, int64 and bool tensors",
            dtype_name(dtype)
        ))
        }
    };
    let external = t.data_location == Some(tensor_proto::DataLocation::External as i32);
    let raw: Option<Vec<u8>> = if external {
        Some(external_bytes(t, dir)?)
    } else if t.raw_data.as_ref().is_some_and(|r| !r.is_empty()) {
        t.raw_data.clone()
    } else {
        None
    };
    let data: Vec<f64> = match raw {
        Some(bytes) => {
            if bytes.len() != numel * size {
                return Err(format!(
                    "tensor '{name}' holds {} bytes, its shape {shape:?} of {} needs {}",
                    bytes.len(),
                    dtype_name(dtype),
                    numel * size
                ));
            }
            match D::try_from(dtype) {
                Ok(D::Float) => bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
                    .collect(),
                Ok(D::Int32) => bytes
                    .chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
                    .collect(),
                Ok(D::Double) => bytes
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
                Ok(D::Int64) => bytes
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f64)
                    .collect(),
                _ => bytes.iter().map(|&b| f64::from(b != 0)).collect(),
            }
        }
        None => match D::try_from(dtype) {
            Ok(D::Float) => t.float_data.iter().map(|&v| v as f64).collect(),
            Ok(D::Double) => t.double_data.clone(),
            Ok(D::Int64) => t.int64_data.iter().map(|&v| v as f64).collect(),
            _ => t.int32_data.iter().map(|&v| v as f64).collect(),
        },
    };
    if data.len() != numel {
        return Err(format!("tensor '{name}' has {} values, its shape {shape:?} needs {numel}", data.len()));
    }
    Ok(Const { shape, data, int: is_int_type(dtype) })
}

/// The bytes of a tensor stored in an external file (`location`, `offset`, `length` entries).
fn external_bytes(t: &TensorProto, dir: &Path) -> std::result::Result<Vec<u8>, String> {
    let name = t.name();
    let entry = |key: &str| t.external_data.iter().find(|e| e.key() == key).map(|e| e.value().to_string());
    let Some(location) = entry("location") else {
        return Err(format!("tensor '{name}' is stored externally but names no location"));
    };
    let parse = |key: &str| -> std::result::Result<Option<usize>, String> {
        entry(key)
            .map(|v| {
                v.parse::<usize>()
                    .map_err(|_| format!("tensor '{name}': external data {key} '{v}' is not a number"))
            })
            .transpose()
    };
    let (offset, length) = (parse("offset")?.unwrap_or(0), parse("length")?);
    let file: PathBuf = dir.join(&location);
    if !file.exists() {
        return Err(format!("the external data file {} of tensor '{name}' does not exist", file.display()));
    }
    let bytes = std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let end = length.map_or(bytes.len(), |l| offset.saturating_add(l));
    if offset > bytes.len() || end > bytes.len() {
        return Err(format!(
            "the external data file {} has {} bytes; tensor '{name}' needs bytes {offset}..{end}",
            file.display(),
            bytes.len()
        ));
    }
    Ok(bytes[offset..end].to_vec())
}

/// Node attributes by name.
pub(crate) struct Attrs<'a> {
    node: &'a NodeProto,
}

impl<'a> Attrs<'a> {
    pub fn new(node: &'a NodeProto) -> Self {
        Attrs { node }
    }

    fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.node.attribute.iter().find(|a| a.name() == name)
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        self.get(name).map(|a| a.i())
    }

    /// A float attribute as the f64 its shortest decimal spelling denotes: ONNX stores attributes as f32, so
    /// `alpha = 0.2` arrives as 0.200000003; the exporter meant 0.2, which f64 PyTorch also uses.
    pub fn float(&self, name: &str) -> Option<f64> {
        self.get(name).map(|a| decimal_f64(a.f()))
    }

    pub fn ints(&self, name: &str) -> Option<Vec<i64>> {
        self.get(name).map(|a| a.ints.clone())
    }

    pub fn string(&self, name: &str) -> Option<String> {
        self.get(name).map(|a| String::from_utf8_lossy(a.s()).into_owned())
    }

    pub fn tensor(&self, name: &str) -> Option<&'a TensorProto> {
        self.get(name).and_then(|a| a.t.as_ref())
    }

    /// The names of attributes this node sets, for messages about unknown ones.
    pub fn names(&self) -> Vec<&'a str> {
        self.node.attribute.iter().map(|a| a.name()).collect()
    }

    /// The floats of a `floats` attribute, as [`Attrs::float`] reads them.
    pub fn floats(&self, name: &str) -> Option<Vec<f64>> {
        self.get(name).map(|a| a.floats.iter().map(|&f| decimal_f64(f)).collect())
    }
}

/// The f64 nearest the shortest decimal that round-trips to `v` as f32.
pub(crate) fn decimal_f64(v: f32) -> f64 {
    if !v.is_finite() {
        return v as f64;
    }
    format!("{v}").parse::<f64>().unwrap_or(v as f64)
}
