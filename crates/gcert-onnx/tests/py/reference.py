"""Reference forward pass of an ONNX network with onnxruntime, for tests/reference.rs.

usage: reference.py MODEL(.onnx|.onnx.gz) POINTS.npy OUT.npy OUT32.npy

POINTS holds one sample per row (flat). The model is converted to double precision first (initializers,
constants, casts, input and output types), so that the reference computes in f64 like gcert: onnxruntime
where it has double kernels, else ONNX's own reference evaluator (`onnx.reference`, numpy); OUT gets one output
row per point (flat, f64), and OUT32 the outputs of onnxruntime on the model as it is (f32). Prints which
reference computed OUT.
"""
import gzip
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, numpy_helper
from onnx.reference import ReferenceEvaluator


def to_double(model):
    g = model.graph
    for i, t in enumerate(g.initializer):
        if t.data_type == TensorProto.FLOAT:
            g.initializer[i].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float64), t.name))
    for node in g.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT:
                a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float64), a.t.name))
            if node.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT:
                a.i = TensorProto.DOUBLE
    for v in list(g.input) + list(g.output):
        if v.type.tensor_type.elem_type == TensorProto.FLOAT:
            v.type.tensor_type.elem_type = TensorProto.DOUBLE
    del g.value_info[:]
    return model


def main():
    path, points_path, out_path, out32_path = sys.argv[1:5]
    data = open(path, "rb").read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    model = onnx.load_from_string(data)
    init = {t.name for t in model.graph.initializer}
    inp = [i for i in model.graph.input if i.name not in init][0]
    shape = [d.dim_value if d.dim_value > 0 else 1 for d in inp.type.tensor_type.shape.dim]
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    double = to_double(onnx.load_from_string(data))
    try:
        sess = ort.InferenceSession(double.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        run, precision = sess.run, "onnxruntime f64"
    except Exception:
        # onnxruntime has no double kernel for some operators (Conv): ONNX's own reference evaluator, in f64.
        run, precision = ReferenceEvaluator(double).run, "onnx.reference f64"
    points = np.load(points_path)
    outs = []
    for row in points:
        y = run(None, {inp.name: row.astype(np.float64).reshape(shape)})[0]
        outs.append(np.asarray(y, dtype=np.float64).reshape(-1))
    np.save(out_path, np.stack(outs))
    sess32 = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    outs32 = [sess32.run(None, {inp.name: row.astype(np.float32).reshape(shape)})[0].reshape(-1) for row in points]
    np.save(out32_path, np.stack(outs32).astype(np.float64))
    print(precision)


main()
