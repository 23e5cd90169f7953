//! The mutations an evaluation certifies, as the user names them, and what they become at one image's latent:
//! a unit direction, a latent tolerance, and the factor that turns latent distance into the mutation's unit.
//!
//! Forms (`--mutation`):
//! - `rotation:15`, `translate-x:2`, `translate-y:2`, `scale:10`, `shear:10`: a named geometric mutation of
//!   ±amount in its unit (degrees, pixels, percent), found at each image's latent by
//!   [`gcert_directions::find_mutation`]; where the generator realises the transform too poorly there, the
//!   image's result says "mutation not available at this image" with the reason, and nothing is certified
//!   along another direction instead.
//! - `local:X,Y,W,H:EPS` (optionally `local:X,Y,W,H:EPS:RANK`): the `RANK`-th (default 0) local direction of the
//!   rectangle of columns `X..X+W` and rows `Y..Y+H` at each image's latent, ±`EPS` latent units.
//! - `file:PATH.npy:EPS` or `file:PATH.npy:ROW:EPS`: a fixed latent direction from a file, ±`EPS` latent units.

use std::path::{Path, PathBuf};

use gcert_core::{Direction, Network, Provenance};
use gcert_directions::geometry::Property;
use gcert_directions::{find_mutation, local_directions, Found, LocalParams, MutationParams, Region};
use serde::Serialize;

use crate::error::{Error, Result};

/// A mutation as given on the command line.
#[derive(Debug, Clone, PartialEq)]
pub enum Mutation {
    /// A named geometric transform, `±amount` in its unit.
    Named { transform: Property, amount: f64 },
    /// A local direction of an image region, `±eps` latent units.
    Local { x: usize, y: usize, w: usize, h: usize, eps: f64, rank: usize },
    /// A fixed latent direction from a file (row `row` of a `[rows, k]` file), `±eps` latent units.
    File { path: PathBuf, row: Option<usize>, eps: f64 },
}

/// The forms a mutation may take, for error messages.
pub const FORMS: &str = "rotation:DEG, translate-x:PX, translate-y:PX, scale:PCT, shear:PCT, \
local:X,Y,W,H:EPS[:RANK] or file:PATH.npy[:ROW]:EPS";

fn amount(text: &str, spec: &str) -> Result<f64> {
    let v: f64 = text
        .trim()
        .parse()
        .map_err(|_| Error::input(format!("mutation '{spec}': '{text}' is not a number ({FORMS})")))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(Error::input(format!(
            "mutation '{spec}': the amount must be positive and finite, found {v}"
        )));
    }
    Ok(v)
}

impl std::str::FromStr for Mutation {
    type Err = Error;

    fn from_str(spec: &str) -> Result<Mutation> {
        let (head, rest) = spec.split_once(':').ok_or_else(|| {
            Error::input(format!("mutation '{spec}' has no amount; expected one of {FORMS}"))
        })?;
        if let Some(&transform) = Property::ALL.iter().find(|p| p.name() == head) {
            return Ok(Mutation::Named { transform, amount: amount(rest, spec)? });
        }
        match head {
            "local" => {
                let parts: Vec<&str> = rest.split(':').collect();
                let (rect, eps, rank) = match parts.as_slice() {
                    [rect, eps] => (*rect, *eps, "0"),
                    [rect, eps, rank] => (*rect, *eps, *rank),
                    _ => return Err(Error::input(format!("mutation '{spec}': expected local:X,Y,W,H:EPS[:RANK]"))),
                };
                let nums: Vec<usize> = rect.split(',').map(|n| n.trim().parse::<usize>()).collect::<Result<_, _>>().map_err(
                    |_| Error::input(format!("mutation '{spec}': the region must be four whole numbers X,Y,W,H")),
                )?;
                let [x, y, w, h] = nums[..] else {
                    return Err(Error::input(format!("mutation '{spec}': the region must be four whole numbers X,Y,W,H")));
                };
                if w == 0 || h == 0 {
                    return Err(Error::input(format!("mutation '{spec}': the region is empty")));
                }
                let rank = rank
                    .trim()
                    .parse()
                    .map_err(|_| Error::input(format!("mutation '{spec}': the rank '{rank}' is not a whole number")))?;
                Ok(Mutation::Local { x, y, w, h, eps: amount(eps, spec)?, rank })
            }
            "file" => {
                let (front, eps) = rest
                    .rsplit_once(':')
                    .ok_or_else(|| Error::input(format!("mutation '{spec}': expected file:PATH.npy[:ROW]:EPS")))?;
                let eps = amount(eps, spec)?;
                let (path, row) = match front.rsplit_once(':') {
                    Some((p, r)) if !p.is_empty() && r.parse::<usize>().is_ok() => (p, r.parse().ok()),
                    _ => (front, None),
                };
                if path.is_empty() {
                    return Err(Error::input(format!("mutation '{spec}': no file given")));
                }
                Ok(Mutation::File { path: PathBuf::from(path), row, eps })
            }
            "style" | "stylized" | "rain" | "fog" | "brightness" => Err(Error::input(format!(
                "mutation '{spec}': stylized mutations are certified along a style translator's strength with `gcert \
                 certify --translator T.toml --image x.npy --strength E`, and measured over test digits by `cargo \
                 xtask styles` (docs/stylized.md); gcert evaluate does not take translators yet; expected one of {FORMS}"
            ))),
            _ => Err(Error::input(format!("unknown mutation '{head}' in '{spec}'; expected one of {FORMS}"))),
        }
    }
}

impl std::fmt::Display for Mutation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mutation::Named { transform, amount } => write!(f, "{}:{amount}", transform.name()),
            Mutation::Local { x, y, w, h, eps, rank } => write!(f, "local:{x},{y},{w},{h}:{eps}:{rank}"),
            Mutation::File { path, row: Some(r), eps } => write!(f, "file:{}:{r}:{eps}", path.display()),
            Mutation::File { path, row: None, eps } => write!(f, "file:{}:{eps}", path.display()),
        }
    }
}

impl Mutation {
    /// The unit tolerances are reported in: the transform's unit, or `latent` for local and file directions.
    pub fn unit(&self) -> &'static str {
        match self {
            Mutation::Named { transform, .. } => transform.unit(),
            Mutation::Local { .. } | Mutation::File { .. } => "latent",
        }
    }

    /// The requested half-range in [`Mutation::unit`].
    pub fn amount(&self) -> f64 {
        match self {
            Mutation::Named { amount, .. } => *amount,
            Mutation::Local { eps, .. } | Mutation::File { eps, .. } => *eps,
        }
    }

    /// What kind of mutation this is: the transform's name, `local` or `file`.
    pub fn kind(&self) -> &'static str {
        match self {
            Mutation::Named { transform, .. } => transform.name(),
            Mutation::Local { .. } => "local",
            Mutation::File { .. } => "file",
        }
    }
}

/// A mutation checked against the generator once, before any image: a file direction read and normalised, a
/// region checked to lie inside the image.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub mutation: Mutation,
    /// The direction of a `file:` mutation.
    fixed: Option<Direction>,
    /// The region mask of a `local:` mutation.
    mask: Option<Vec<bool>>,
}

impl Prepared {
    /// Checks `mutation` against `generator` (latent size, image shape); reads a direction file.
    pub fn new(mutation: Mutation, generator: &Network) -> Result<Prepared> {
        let k = generator.input_len();
        let mut p = Prepared { mutation: mutation.clone(), fixed: None, mask: None };
        match &mutation {
            Mutation::Named { .. } => {}
            Mutation::Local { x, y, w, h, .. } => {
                let shape = gcert_directions::image_shape(generator)?;
                let region = Region::Rect { x: *x, y: *y, w: *w, h: *h };
                p.mask = Some(
                    region.mask(shape).map_err(|e| Error::input(format!("mutation '{mutation}': {e}")))?,
                );
            }
            Mutation::File { path, row, .. } => {
                let rows = read_rows(path, k)?;
                let r = match row {
                    Some(r) if *r < rows.len() => *r,
                    Some(r) => {
                        return Err(Error::file(
                            path,
                            format!("row {r} does not exist, the file has {} direction(s)", rows.len()),
                        ))
                    }
                    None if rows.len() == 1 => 0,
                    None => {
                        return Err(Error::file(
                            path,
                            format!("the file has {} directions; name one as file:PATH:ROW:EPS", rows.len()),
                        ))
                    }
                };
                let source = format!("{}", path.display());
                p.fixed = Some(Direction::from_values(rows[r].clone(), Provenance::Given { source })?);
            }
        }
        Ok(p)
    }

    /// The files this mutation reads.
    pub fn files(&self) -> Vec<PathBuf> {
        match &self.mutation {
            Mutation::File { path, .. } => vec![path.clone()],
            _ => Vec::new(),
        }
    }

    /// What the mutation is at latent `z` of `generator`.
    pub fn resolve(&self, generator: &Network, z: &[f64], params: &MutationParams) -> Result<Resolved> {
        match &self.mutation {
            Mutation::Named { transform, amount } => match find_mutation(generator, z, *transform, params)? {
                Found::Named(m) => Ok(Resolved::Ready {
                    eps: m.latent_tolerance(*amount)?,
                    direction: m.direction.clone(),
                    per_unit: m.per_latent_unit,
                    calibration: Some(Calibration {
                        per_latent_unit: m.per_latent_unit,
                        linearity: m.linearity,
                        purity: m.purity,
                    }),
                }),
                Found::NotFound { why, .. } => Ok(Resolved::NotAvailable { why }),
            },
            Mutation::Local { rank, eps, .. } => {
                let mask = self.mask.as_ref().expect("prepared with its mask");
                let local = local_directions(generator, z, 1, mask, &LocalParams::default())?;
                match local.directions.get(*rank) {
                    Some(d) => {
                        let direction = Direction::from_values(
                            d.vector.clone(),
                            Provenance::Local { rank: *rank, region: self.region() },
                        )?;
                        Ok(Resolved::Ready { direction, eps: *eps, per_unit: 1.0, calibration: None })
                    }
                    None => Ok(Resolved::NotAvailable {
                        why: format!(
                            "the region has {} local direction(s) at this image (foreground rank {}, background rank {}); rank {rank} does not exist",
                            local.directions.len(),
                            local.foreground.rank,
                            local.background.rank
                        ),
                    }),
                }
            }
            Mutation::File { eps, .. } => Ok(Resolved::Ready {
                direction: self.fixed.clone().expect("prepared with its direction"),
                eps: *eps,
                per_unit: 1.0,
                calibration: None,
            }),
        }
    }

    /// The region `[x0, y0, x1, y1]` of a local mutation.
    fn region(&self) -> Option<[usize; 4]> {
        match self.mutation {
            Mutation::Local { x, y, w, h, .. } => Some([x, y, x + w, y + h]),
            _ => None,
        }
    }
}

/// A named mutation's calibration at one image, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Calibration {
    /// The mutation's unit per latent unit.
    pub per_latent_unit: f64,
    /// R² of the property against the latent step.
    pub linearity: f64,
    /// Largest cross effect over the own effect.
    pub purity: f64,
}

/// A mutation at one latent point.
#[derive(Debug, Clone)]
pub enum Resolved {
    /// Certify `z + t·eps·direction`, `t ∈ [−1, 1]`; `per_unit` turns latent distance into the unit.
    Ready { direction: Direction, eps: f64, per_unit: f64, calibration: Option<Calibration> },
    /// The mutation does not exist here; `why` is one sentence.
    NotAvailable { why: String },
}

fn read_rows(path: &Path, k: usize) -> Result<Vec<Vec<f64>>> {
    let arr = gcert_core::npy::read_npy(path)?;
    match arr.shape.as_slice() {
        [n] if *n == k => Ok(vec![arr.data]),
        [r, n] if *n == k && *r > 0 => Ok(arr.data.chunks_exact(k).map(<[f64]>::to_vec).collect()),
        s => Err(Error::file(
            path,
            format!("a direction file must have shape [{k}] or [rows, {k}], found {s:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form_and_refuses_the_rest() {
        let m: Mutation = "rotation:15".parse().unwrap();
        assert_eq!(m, Mutation::Named { transform: Property::Rotation, amount: 15.0 });
        assert_eq!(m.to_string(), "rotation:15");
        assert_eq!(m.unit(), "degrees");
        let t: Mutation = "translate-x:2.5".parse().unwrap();
        assert_eq!(t.to_string(), "translate-x:2.5");
        let l: Mutation = "local:4,5,10,8:0.5".parse().unwrap();
        assert_eq!(l, Mutation::Local { x: 4, y: 5, w: 10, h: 8, eps: 0.5, rank: 0 });
        let l2: Mutation = "local:4,5,10,8:0.5:2".parse().unwrap();
        assert_eq!(l2.to_string(), "local:4,5,10,8:0.5:2");
        let f: Mutation = "file:dirs.npy:3:0.25".parse().unwrap();
        assert_eq!(f, Mutation::File { path: "dirs.npy".into(), row: Some(3), eps: 0.25 });
        let f1: Mutation = "file:a:b.npy:1".parse().unwrap();
        assert_eq!(f1, Mutation::File { path: "a:b.npy".into(), row: None, eps: 1.0 });
        for (bad, why) in [
            ("rotation", "has no amount"),
            ("rotation:0", "must be positive"),
            ("rotation:-3", "must be positive"),
            ("scale:nan", "must be positive"),
            ("twist:3", "unknown mutation 'twist'"),
            ("rain:0.5", "gcert certify --translator"),
            ("rotation:abc", "is not a number"),
            ("local:1,2,3:0.5", "four whole numbers"),
            ("local:1,2,0,3:0.5", "empty"),
            ("file::1", "no file"),
        ] {
            let err = bad.parse::<Mutation>().unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
