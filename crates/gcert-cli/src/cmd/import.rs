//! `gcert import`: an ONNX network to a model card with its weights beside it.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use gcert_core::tensors::Precision;
use gcert_core::Network;
use serde_json::json;

use super::{check_output, print_json};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// ONNX network (.onnx, or gzipped .onnx.gz)
    onnx: PathBuf,
    /// Model card to write; the weights go beside it as CARD-STEM.safetensors
    #[arg(long)]
    out: PathBuf,
    /// Overwrite the card and its weights if they exist
    #[arg(long)]
    force: bool,
    /// Print one JSON object instead of text
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let stem = args.out.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let weights = args.out.with_file_name(format!("{stem}.safetensors"));
    // Neither output may be the ONNX file itself, and neither is replaced without --force.
    check_output(&args.out, args.force, std::slice::from_ref(&args.onnx))?;
    check_output(&weights, args.force, std::slice::from_ref(&args.onnx))?;
    let start = Instant::now();
    let imported = gcert_onnx::import_to(&args.onnx, &args.out, args.force)
        .with_context(|| format!("cannot import ONNX network {}", args.onnx.display()))?;
    let time_ms = start.elapsed().as_secs_f64() * 1e3;
    let net = Network::load(&args.out)?;
    let precision = match imported.precision {
        Precision::F32 => "f32",
        Precision::F64 => "f64",
    };
    let ops: Vec<&str> = imported.card.layers.iter().map(|l| l.op_name()).collect();
    if args.json {
        return print_json(&json!({
            "card": args.out,
            "weights": weights,
            "opset": imported.opset,
            "nodes": imported.nodes,
            "layers": ops,
            "input_shape": net.input_point_shape(),
            "output_shape": net.output_shape(),
            "precision": precision,
            "time_ms": time_ms,
        }));
    }
    println!("imported: {} (ONNX opset {}, {} nodes)", args.onnx.display(), imported.opset, imported.nodes);
    println!("layers: {} ({})", ops.len(), ops.join(", "));
    println!("input shape: {:?}", net.input_point_shape());
    println!("output shape: {:?}", net.output_shape());
    println!("wrote: {} and {} ({precision})", args.out.display(), weights.display());
    println!("time: {time_ms:.2} ms");
    Ok(())
}
