//! `gcert exactline`: the exact chain of a network, or a composition, along a segment.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use gcert_core::Segment;
use gcert_exactline::ExactLine;
use serde_json::json;

use super::{fmt_some_values, load_network, print_json, read_input};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model card (or ONNX file) of the (first) network
    #[arg(long)]
    model: PathBuf,
    /// Model card (or ONNX file) of a network applied after the first (e.g. a classifier after a generator)
    #[arg(long)]
    then: Option<PathBuf>,
    /// Start of the segment (.npy, shaped as the model's input or flat)
    #[arg(long)]
    from: PathBuf,
    /// End of the segment (.npy)
    #[arg(long)]
    to: PathBuf,
    /// Print one JSON object instead of text
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let first = load_network(&args.model)?;
    let second = args.then.as_deref().map(load_network).transpose()?;
    let nets: Vec<_> = std::iter::once(&first).chain(second.as_ref()).collect();
    let shape = first.input_point_shape();
    let a = read_input(&args.from, &shape, "the segment start")?;
    let b = read_input(&args.to, &shape, "the segment end")?;
    let segment = Segment::new(a, b)?;
    let start = Instant::now();
    let engine = ExactLine::for_networks(&nets)?;
    let chain = engine.chain(&segment)?;
    let time_ms = start.elapsed().as_secs_f64() * 1e3;
    if args.json {
        let outputs: Vec<&[f64]> = (0..chain.ratios.len()).map(|i| chain.value(i)).collect();
        print_json(&json!({
            "pieces": chain.pieces(),
            "ratios": chain.ratios,
            "outputs": outputs,
            "output_shape": nets.last().map(|n| n.output_shape()),
            "time_ms": time_ms,
        }))
    } else {
        println!("pieces: {}", chain.pieces());
        println!("ratios: {}", fmt_some_values(&chain.ratios, 8));
        println!("time: {time_ms:.2} ms");
        Ok(())
    }
}
