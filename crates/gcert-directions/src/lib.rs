//! Mutation directions of a generator (docs/mathematics.md §6, paper §5.1, §5.4): which latent moves
//! change the image, how many independent ones there are, which of them stay inside a region, and what each one
//! does geometrically.
//!
//! The pipeline:
//! 1. [`JacobianPlan`]: the exact Jacobian `J = ∂G/∂z` at `z` by forward-mode propagation of the identity
//!    through `z`'s activation pattern (pure Rust, from the model card; no autograd).
//! 2. [`factorize`]: `M = JᵀJ` (averaged over latent points for global directions, [`sample_latents`]) split by
//!    robust PCA into `L + S` ([`robust_pca`]), then the SVD of `L`: its rank is the number of independent
//!    mutations, its first right-singular vectors are the directions.
//! 3. [`local_directions`]: directions that move a region ([`Region`]) and leave the rest of the image unchanged
//!    to first order, with their leaks.
//! 4. [`geometry`]: the minimum-area enclosing rectangle of the generated object, to name directions (rotation,
//!    translation, scale, shear) and calibrate them in degrees, pixels and percent.
//! 5. [`strip`]: the images along a direction, as a PNG strip.
//!
//! ```
//! use gcert_directions::{directions, sample_latents, synthetic, FactorParams};
//!
//! // A generator whose Jacobian has rank 3 everywhere: 3 independent mutations out of 40 latent dimensions.
//! let net = synthetic::low_rank(40, 3, 8, 1).network()?;
//! let z = vec![0.5; 40];
//! let zs = sample_latents(&z, 4, 7)?; // z and 3 prior samples: global directions
//! let f = directions(&net, &zs, 4, &FactorParams::default())?;
//! assert_eq!(f.rank, 3);
//! assert_eq!(f.directions().dim(), (3, 40));
//! # Ok::<(), gcert_directions::Error>(())
//! ```

pub mod error;
pub mod factor;
pub mod geometry;
pub mod invert;
pub mod jacobian;
pub mod local;
pub mod mutation;
pub mod rpca;
pub mod strip;
pub mod synthetic;

pub use error::{Error, Result};
pub use factor::{directions, factorize, sample_latents, FactorParams, Factorization, RpcaSummary};
pub use geometry::Property;
pub use invert::{invert, Inversion, InvertParams};
pub use jacobian::{finite_difference_jacobian, jacobian, JacobianPlan};
pub use local::{
    image_shape, local_directions, Leak, LocalDirection, LocalDirections, LocalParams, NullSpace, Region,
};
pub use mutation::{find_mutation, find_mutation_in, local_basis, Found, MutationParams, NamedMutation};
pub use rpca::{robust_pca, Rpca, RpcaParams};

#[cfg(test)]
mod tests;
