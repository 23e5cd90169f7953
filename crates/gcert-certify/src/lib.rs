//! gcert's certifier backends: given a generator `G`, a classifier `N`, a latent point `z`, a direction `d`
//! and a tolerance `E`, decide if `N(G(z + t·E·d))` keeps its label for all `t` (docs/mathematics.md §3–5).
//!
//! Every backend implements [`Certifier`]: it takes a [`Problem`] and returns a [`Certificate`] (both in
//! `gcert_core::certificate`, so that every crate reads the same request and answer).
//!
//! - [`Complete`]: the exact chain of `N∘G`; `certified` or `violated`, with the violated sub-intervals, the
//!   smallest margin, the exact kept fraction, a counterexample re-evaluated by a forward pass, and the
//!   largest tolerance `E_max` from the same single pass (no bisection).
//! - [`Quantitative`]: bounds on the fraction of the segment that keeps the label; exact for PL models, and
//!   for models with sigmoid/tanh layers the exact chain up to the first of them, then bounds per piece with
//!   splitting within a budget.
//! - [`Incomplete`]: interval or linear bounds in `t` with back-substitution, and branch and bound over `t`;
//!   `certified`, `unknown`, or `violated` only with an evaluated counterexample. Works with any layers.
//!
//! Soundness is the invariant all of them keep: a bound may be loose, never wrong; nothing claims more than
//! the exact chain shows.
//!
//! ```
//! use gcert_core::builder::CardBuilder;
//! use gcert_core::certificate::{Problem, ProblemSpec, Verdict};
//! use gcert_core::Direction;
//! use gcert_certify::{Certifier, Complete, Incomplete};
//!
//! let g = CardBuilder::new("g", &[2], 1).linear(6).relu().linear(4).clamp(0.0, 1.0).network().unwrap();
//! let n = CardBuilder::new("n", &[4], 2).linear(5).relu().linear(3).network().unwrap();
//! let problem = Problem::new(ProblemSpec {
//!     generator: g.layers().iter().collect(),
//!     classifier: n.layers().iter().collect(),
//!     origin: vec![0.1, -0.2],
//!     direction: Direction::new(vec![1.0, 1.0]).unwrap(),
//!     eps: 0.5,
//!     two_sided: false,
//!     label: None,
//! })
//! .unwrap();
//! let exact = Complete.certify(&problem).unwrap();
//! let bounded = Incomplete::default().certify(&problem).unwrap();
//! if bounded.verdict == Verdict::Certified {
//!     assert_eq!(exact.verdict, Verdict::Certified);
//! }
//! assert!(exact.max_tolerance <= 0.5);
//! ```

mod bounds;
mod complete;
mod hybrid;
mod incomplete;
pub mod job;
mod margin;
mod pixels;
mod quantitative;
mod regions;
mod sides;

pub use bounds::Relaxation;
pub use complete::Complete;
pub use gcert_core::certificate::{Certificate, Method, Problem, ProblemSpec, Verdict};
pub use hybrid::Hybrid;
pub use incomplete::Incomplete;
pub use pixels::{pixel_bounds, PixelBounds};
pub use quantitative::Quantitative;

use gcert_core::Result;

/// One certifier backend: a problem in, a certificate out.
pub trait Certifier {
    fn method(&self) -> Method;
    fn certify(&self, problem: &Problem<'_>) -> Result<Certificate>;
}

/// Options shared by the bounded backends.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Bounder evaluations for branch and bound (incomplete, and quantitative past a non-PL layer).
    pub budget: Option<usize>,
    pub relaxation: Relaxation,
    /// Complete certification from the whole exact chain ([`Complete`]) instead of bounds first and the chain
    /// only where they decide nothing ([`Hybrid`], the default; the same answers).
    pub exact_chain: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { budget: None, relaxation: Relaxation::Linear, exact_chain: false }
    }
}

/// The backend for `method`.
pub fn certifier(method: Method, options: Options) -> Box<dyn Certifier + Send + Sync> {
    match method {
        Method::Complete if options.exact_chain => Box::new(Complete),
        Method::Complete => Box::new(Hybrid),
        Method::Incomplete => {
            let d = Incomplete::default();
            Box::new(Incomplete {
                budget: options.budget.unwrap_or(d.budget),
                relaxation: options.relaxation,
            })
        }
        Method::Quantitative => {
            let d = Quantitative::default();
            Box::new(Quantitative {
                budget: options.budget.unwrap_or(d.budget),
                relaxation: options.relaxation,
            })
        }
    }
}

#[cfg(test)]
mod tests;
