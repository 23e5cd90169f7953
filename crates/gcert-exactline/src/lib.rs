//! The gcert segment engine: the exact linear restriction of a piecewise-linear network to a segment.
//!
//! For a network `f` built of affine layers and piecewise-linear activations (relu, leaky relu, clamp,
//! max-pooling) and a segment from `a` to `b`, [`ExactLine`] computes the ratios `0 = t_0 < … < t_n = 1` on
//! whose pieces `f(a + t (b − a))` is affine, and the values at every ratio (the chain). Ratios are `f64`.
//!
//! How (docs/mathematics.md §2): layer by layer the engine keeps the breakpoints and their inputs. An affine
//! layer maps all breakpoints in one batched product and adds none. An activation inserts, between consecutive
//! breakpoints, every ratio where a coordinate crosses one of its thresholds, interpolating the pre-activation
//! vectors there. Max-pooling inserts the ratios where a window's arg-max changes. The engine streams: once a
//! layer holds more than a chunk of breakpoints, the rest of the network runs chunk by chunk and the output goes
//! to a [`Sink`], so memory does not grow with the number of pieces unless the sink keeps them.
//!
//! One segment uses all of rayon's threads (its global pool, or the pool a caller `install`s): once a layer's
//! input has enough intervals, contiguous groups of them run through the rest of the network in parallel and
//! reach the sink in order; a group's points are held back until the groups before it are done, and at most a
//! window of groups (4 per thread) runs ahead of the sink. The chain is the same, bit for bit, on any number of threads;
//! [`ExactLine::with_parallel`]`(false)` keeps a run on the calling thread.
//!
//! The crate re-exports what a tool built on the engine alone needs from `gcert-core` (networks, model cards,
//! segments, chains, errors, `.npy` input), so it can depend on `gcert-exactline` only:
//!
//! ```
//! use gcert_exactline::{card::ModelCard, tensors::{Tensor, TensorStore}, ExactLine, Network, Segment};
//! use std::path::Path;
//!
//! // f(x) = relu(x0 - x1), from (0, 1) to (1, 0): one kink at t = 0.5.
//! let card: ModelCard = toml::from_str(r#"
//!     format = "gcert-model/1"
//!     name = "kink"
//!     weights = "kink.safetensors"
//!     input_shape = [2]
//!     [[layers]]
//!     op = "linear"
//!     weight = "w"
//!     [[layers]]
//!     op = "relu"
//! "#).unwrap();
//! let mut t = TensorStore::new();
//! t.insert("w".into(), Tensor::new(vec![1, 2], vec![1.0, -1.0]));
//! let net = Network::from_card(&card, &t, Path::new("kink.toml")).unwrap();
//! let seg = Segment::new(vec![0.0, 1.0], vec![1.0, 0.0]).unwrap();
//! let chain = ExactLine::for_networks(&[&net]).unwrap().chain(&seg).unwrap();
//! assert_eq!(chain.ratios, vec![0.0, 0.5, 1.0]);
//! assert_eq!(chain.values, vec![0.0, 0.0, 1.0]);
//! ```
//!
//! A sink can stop the walk early: `examples/first_violation.rs` loads two model cards, streams the chain
//! into its own sink and stops at the first point where the predicted label changes.

mod engine;
mod sink;

pub use std::ops::ControlFlow;

pub use engine::{ExactLine, DEFAULT_CHUNK};
pub use gcert_core::{card, npy, ops, tensors};
pub use gcert_core::{compose, Chain, Error, Kind, Layer, Network, Op, Result, Segment};
pub use sink::{Bounds, Sink};
