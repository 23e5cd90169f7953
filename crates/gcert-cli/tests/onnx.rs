//! ONNX networks through the CLI: `gcert import`, `.onnx` wherever a card is accepted, and bad ONNX files
//! (one `error:` line naming the file, exit code 2, no panic).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gcert_onnx::proto::{
    tensor_proto, tensor_shape_proto, type_proto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use prost::Message;
use tempfile::TempDir;

fn onnx_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/onnx")
}

fn gcert(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gcert")).args(args).output().expect("gcert runs")
}

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Runs gcert expecting failure: exit code 2, one error line containing every needle, no panic.
fn fails_with(args: &[&str], needles: &[&str]) {
    let out = gcert(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.trim_end().lines().count() == 1,
        "one error line: {stderr}"
    );
    for n in needles {
        assert!(stderr.contains(n), "expected '{n}' in: {stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn import_writes_a_card_that_computes_what_the_onnx_file_does() {
    let dir = TempDir::new().unwrap();
    let onnx = onnx_fixtures().join("cifar_base_kw.onnx.gz");
    let card = dir.path().join("cifar.toml");
    let v = json(&gcert(&["import", arg(&onnx), "--out", arg(&card), "--json"]));
    assert_eq!(v["opset"], 9);
    assert_eq!(v["nodes"], 8);
    assert_eq!(v["precision"], "f32");
    assert_eq!(v["input_shape"], serde_json::json!([3, 32, 32]));
    assert_eq!(v["output_shape"], serde_json::json!([10]));
    let layers: Vec<&str> = v["layers"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    assert_eq!(layers, ["conv2d", "relu", "conv2d", "relu", "flatten", "linear", "relu", "linear"]);
    assert!(dir.path().join("cifar.safetensors").exists());
    let text = std::fs::read_to_string(&card).unwrap();
    assert!(text.contains("format = \"gcert-model/1\"") && text.contains("weights = \"cifar.safetensors\""));
    assert!(text.contains("imported from cifar_base_kw.onnx.gz"), "{text}");

    // The card and the ONNX file give the same logits.
    let input = dir.path().join("x.npy");
    let x: Vec<f64> = (0..3 * 32 * 32).map(|i| ((i * 37) % 101) as f64 / 101.0).collect();
    gcert_core::npy::write_npy(&input, &[3, 32, 32], &x).unwrap();
    let from_card = json(&gcert(&["eval", "--model", arg(&card), "--input", arg(&input), "--json"]));
    let from_onnx = json(&gcert(&["eval", "--model", arg(&onnx), "--input", arg(&input), "--json"]));
    assert_eq!(from_card["output"], from_onnx["output"]);
    assert_eq!(from_card["output"].as_array().unwrap().len(), 10);

    // A second import needs --force, for the card and for its weights.
    fails_with(&["import", arg(&onnx), "--out", arg(&card)], &["cifar.toml: already exists", "--force"]);
    std::fs::remove_file(&card).unwrap();
    fails_with(
        &["import", arg(&onnx), "--out", arg(&card)],
        &["cifar.safetensors: already exists", "--force"],
    );
    let out = gcert(&["import", arg(&onnx), "--out", arg(&card), "--force"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("layers: 8 (conv2d, relu, conv2d, relu, flatten, linear, relu, linear)"), "{text}");
}

#[test]
fn certify_and_exactline_take_onnx_networks() {
    let f = onnx_fixtures();
    let net = f.join("mnist-net_256x6.onnx.gz");
    let v = json(&gcert(&[
        "certify",
        "--classifier",
        arg(&net),
        "--from",
        arg(&f.join("mnist-4.npy")),
        "--to",
        arg(&f.join("mnist-7.npy")),
        "--json",
        "--exact-chain",
    ]));
    assert_eq!(v["verdict"], "violated");
    assert_eq!(v["label"], 4);
    assert_eq!(v["counterexample"]["predicted"], 7);
    let tolerance = v["max_tolerance"].as_f64().unwrap();
    assert!(tolerance > 0.5 && tolerance < 1.0, "{tolerance}");
    let pieces = v["pieces"].as_u64().unwrap();

    // The same segment through gcert exactline: the same pieces as the whole chain certify scanned.
    let e = json(&gcert(&[
        "exactline",
        "--model",
        arg(&net),
        "--from",
        arg(&f.join("mnist-4.npy")),
        "--to",
        arg(&f.join("mnist-7.npy")),
        "--json",
    ]));
    assert_eq!(e["pieces"].as_u64().unwrap(), pieces);
    assert_eq!(e["output_shape"], serde_json::json!([10]));
}

// ---- bad ONNX files, built with the generated protobuf types ----

fn dims(shape: &[i64]) -> Vec<tensor_shape_proto::Dimension> {
    shape
        .iter()
        .map(|&d| tensor_shape_proto::Dimension {
            value: Some(if d > 0 {
                tensor_shape_proto::dimension::Value::DimValue(d)
            } else {
                tensor_shape_proto::dimension::Value::DimParam("N".into())
            }),
            denotation: None,
        })
        .collect()
}

/// A float tensor value; dimensions of 0 or less are symbolic.
fn value(name: &str, shape: &[i64]) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(tensor_proto::DataType::Float as i32),
                shape: Some(TensorShapeProto { dim: dims(shape) }),
            })),
            denotation: None,
        }),
        ..Default::default()
    }
}

fn tensor(name: &str, shape: &[i64], data: Vec<f32>) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: shape.to_vec(),
        data_type: Some(tensor_proto::DataType::Float as i32),
        float_data: data,
        ..Default::default()
    }
}

fn node(name: &str, op: &str, inputs: &[&str], output: &str) -> NodeProto {
    NodeProto {
        name: Some(name.into()),
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        ..Default::default()
    }
}

/// `y = relu(x W + b)` on 3 inputs (W [3, 2]), with whatever the test changes.
fn model(opset: i64, edit: impl FnOnce(&mut GraphProto)) -> Vec<u8> {
    let mut graph = GraphProto {
        name: Some("g".into()),
        input: vec![value("x", &[1, 3])],
        output: vec![value("y", &[1, 2])],
        initializer: vec![
            tensor("W", &[3, 2], vec![1.0, -1.0, 0.5, 2.0, -0.25, 0.0]),
            tensor("b", &[2], vec![0.1, -0.2]),
        ],
        node: vec![
            node("fc", "MatMul", &["x", "W"], "h"),
            node("bias", "Add", &["h", "b"], "a"),
            node("act", "Relu", &["a"], "y"),
        ],
        ..Default::default()
    };
    edit(&mut graph);
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(opset) }],
        producer_name: Some("gcert tests".into()),
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}

#[test]
fn a_well_formed_model_built_in_code_imports() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("ok.onnx");
    std::fs::write(&path, model(13, |_| {})).unwrap();
    let input = dir.path().join("x.npy");
    gcert_core::npy::write_npy(&input, &[3], &[1.0, 2.0, 4.0]).unwrap();
    let v = json(&gcert(&["eval", "--model", arg(&path), "--input", arg(&input), "--json"]));
    // relu(x W + b) = [1 + 1 - 1 + 0.1, -1 + 4 + 0 - 0.2], with the biases as the f32 values they are stored as.
    let out: Vec<f64> = v["output"].as_array().unwrap().iter().map(|o| o.as_f64().unwrap()).collect();
    let expected = [1.0 + 0.1f32 as f64, 3.0 - 0.2f32 as f64];
    assert!(out.iter().zip(expected).all(|(o, e)| (o - e).abs() < 1e-12), "{out:?} against {expected:?}");
}

#[test]
fn bad_onnx_files_are_one_error_line() {
    let dir = TempDir::new().unwrap();
    let p = |name: &str| dir.path().join(name);
    let write = |name: &str, bytes: Vec<u8>| {
        std::fs::write(p(name), bytes).unwrap();
        p(name)
    };
    let eval = |path: &Path| -> Vec<String> {
        vec!["eval".into(), "--model".into(), arg(path).into(), "--input".into(), "x.npy".into()]
    };
    let check = |path: PathBuf, needles: &[&str]| {
        let args = eval(&path);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut all = vec![name.as_str(), "cannot import ONNX network"];
        all.extend_from_slice(needles);
        fails_with(&args, &all);
        // `gcert import` says the same.
        let out = p("out.toml");
        fails_with(&["import", arg(&path), "--out", arg(&out)], &all);
        assert!(!out.exists());
    };

    // Truncated and non-ONNX files.
    let good = std::fs::read(onnx_fixtures().join("test_sat.onnx")).unwrap();
    check(write("truncated.onnx", good[..good.len() / 2].to_vec()), &["not an ONNX model", "truncated"]);
    check(write("text.onnx", b"this is not a network\n".to_vec()), &["not an ONNX model"]);
    check(write("empty.onnx", Vec::new()), &["not an ONNX model"]);
    let gz = std::fs::read(onnx_fixtures().join("mnist-net_256x2.onnx.gz")).unwrap();
    check(write("cut.onnx.gz", gz[..gz.len() / 3].to_vec()), &["not a valid gzip file"]);
    check(p("missing.onnx"), &["cannot read the file"]);

    // Opsets.
    check(write("old.onnx", model(6, |_| {})), &["ONNX opset 6 is not supported", "opsets 7 to"]);
    check(write("new.onnx", model(99, |_| {})), &["ONNX opset 99 is not supported"]);

    // An operator gcert does not import: the node, its op type and the reason.
    check(
        write("erf.onnx", model(13, |g| g.node[2] = node("gelu_part", "Erf", &["a"], "y"))),
        &["node 'gelu_part' (Erf): is not supported by gcert import"],
    );
    check(
        write("softmax.onnx", model(13, |g| g.node[2] = node("probs", "Softmax", &["a"], "y"))),
        &["node 'probs' (Softmax)", "export the model without its final softmax"],
    );
    // A residual connection.
    check(
        write("skip.onnx", model(13, |g| g.node[2] = node("skip", "Add", &["a", "x"], "y"))),
        &["node 'skip' (Add)", "chain of layers"],
    );

    // Shapes that do not resolve.
    check(
        write("dynamic.onnx", model(13, |g| g.input[0] = value("x", &[1, -1]))),
        &["the graph input 'x' has the symbolic size 'N' at axis 1", "fixed"],
    );
    // A symbolic batch is fine.
    let batch = write("batch.onnx", model(13, |g| g.input[0] = value("x", &[-1, 3])));
    assert!(gcert_onnx::load(&batch).is_ok());

    // Several inputs where one is expected.
    check(
        write("two.onnx", model(13, |g| g.input.push(value("z", &[1, 3])))),
        &["the graph has 2 inputs ('x', 'z')", "exactly one input"],
    );

    // NaN and infinite weights.
    check(
        write("nan.onnx", model(13, |g| g.initializer[0].float_data[4] = f32::NAN)),
        &["initializer 'W' has a non-finite value (NaN) at flat index 4"],
    );
    check(
        write("inf.onnx", model(13, |g| g.initializer[1].float_data[1] = f32::INFINITY)),
        &["initializer 'b' has a non-finite value (inf) at flat index 1"],
    );

    // Weights in an external data file that is missing.
    let external = |g: &mut GraphProto| {
        let w = &mut g.initializer[0];
        w.float_data.clear();
        w.data_location = Some(tensor_proto::DataLocation::External as i32);
        w.external_data =
            vec![StringStringEntryProto { key: Some("location".into()), value: Some("weights.bin".into()) }];
    };
    check(
        write("external.onnx", model(13, external)),
        &["the external data file", "weights.bin of tensor 'W' does not exist"],
    );
    // With the file present it imports.
    let bytes: Vec<u8> = [1.0f32, -1.0, 0.5, 2.0, -0.25, 0.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(p("weights.bin"), bytes).unwrap();
    let direct = gcert_onnx::load(&write("inline.onnx", model(13, |_| {}))).unwrap();
    let ext = gcert_onnx::load(&p("external.onnx")).unwrap();
    assert_eq!(ext.forward(&[1.0, 2.0, 3.0], 1).unwrap(), direct.forward(&[1.0, 2.0, 3.0], 1).unwrap());
    // … and a short one is refused.
    std::fs::write(p("weights.bin"), [0u8; 8]).unwrap();
    check(p("external.onnx"), &["tensor 'W' holds 8 bytes", "needs 24"]);
}
