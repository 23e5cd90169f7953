//! `gcert eval`: a network's output on one input.

use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;

use super::{fmt_values, load_network, print_json, read_input};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model card or ONNX file (.onnx, .onnx.gz)
    #[arg(long)]
    model: PathBuf,
    /// Input (.npy, shaped as the model's input or flat)
    #[arg(long)]
    input: PathBuf,
    /// Print one JSON object instead of text
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let net = load_network(&args.model)?;
    let shape = net.input_point_shape();
    let x = read_input(&args.input, &shape, "the input")?;
    let output = net.forward(&x, 1)?;
    let argmax = output.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i);
    if args.json {
        print_json(&json!({ "output": output, "output_shape": net.output_shape(), "argmax": argmax }))
    } else {
        println!("output: {}", fmt_values(&output));
        if let Some(i) = argmax {
            println!("argmax: {i}");
        }
        Ok(())
    }
}
