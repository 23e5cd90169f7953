//! Compiles the official ONNX protobuf schema (`proto/onnx.proto`, ONNX 1.23, Apache-2.0) into Rust types with
//! `prost-build`; this needs `protoc` (Debian's `protobuf-compiler`, installed by `cargo xtask setup`).

fn main() {
    println!("cargo:rerun-if-changed=proto/onnx.proto");
    if let Err(e) = prost_build::Config::new().compile_protos(&["proto/onnx.proto"], &["proto"]) {
        panic!("cannot compile proto/onnx.proto (is protoc installed? `cargo xtask setup` installs it): {e}");
    }
}
