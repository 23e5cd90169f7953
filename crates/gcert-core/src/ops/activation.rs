//! The elementwise activations: their values, derivatives, linear faces and relaxations, in one place.
//!
//! Every backend that treats an activation — the exact engine (faces), the Jacobian (derivatives), the bounds
//! of the incomplete and quantitative certifiers (relaxations) — reads it from here, so an activation's
//! mathematics is written once. The relaxations are the ones `docs/mathematics.md` §5 derives.

/// An elementwise activation, with its parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// `x` for `x ≥ 0`, `a·x` below (relu: `a = 0`); convex for `a ≤ 1`, concave for `a > 1`.
    Leaky(f64),
    /// `min(max(x, lo), hi)`; either bound may be infinite.
    Clamp(f64, f64),
    Sigmoid,
    Tanh,
}

/// A linear face of a piecewise-linear activation: the threshold at which its slope changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Face {
    Lower,
    Upper,
}

/// Widening of relaxations of transcendental functions, whose library values are not correctly rounded.
pub const SLACK: f64 = 1e-10;

impl Activation {
    /// Whether the activation is piecewise linear (its faces are then its only breakpoints).
    pub fn is_piecewise_linear(self) -> bool {
        match self {
            Activation::Leaky(_) | Activation::Clamp(..) => true,
            Activation::Sigmoid | Activation::Tanh => false,
        }
    }

    /// The value at `x`.
    #[inline]
    pub fn value(self, x: f64) -> f64 {
        match self {
            Activation::Leaky(a) => {
                if x >= 0.0 {
                    x
                } else {
                    a * x
                }
            }
            Activation::Clamp(lo, hi) => x.max(lo).min(hi),
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Activation::Tanh => x.tanh(),
        }
    }

    /// The derivative at `x`; on a face of a piecewise-linear activation, the slope of the piece that starts
    /// there going down for relu-like kinks (`x = 0` takes the slope `a`) and the flat side for clamp.
    #[inline]
    pub fn derivative(self, x: f64) -> f64 {
        match self {
            Activation::Leaky(a) => {
                if x > 0.0 {
                    1.0
                } else {
                    a
                }
            }
            Activation::Clamp(lo, hi) => f64::from(u8::from(x > lo && x < hi)),
            Activation::Sigmoid => {
                let s = self.value(x);
                s * (1.0 - s)
            }
            Activation::Tanh => 1.0 - x.tanh().powi(2),
        }
    }

    /// The faces at which a piecewise-linear activation changes its slope (none for smooth ones).
    pub fn faces(self) -> &'static [Face] {
        match self {
            Activation::Leaky(_) => &[Face::Lower],
            Activation::Clamp(..) => &[Face::Lower, Face::Upper],
            Activation::Sigmoid | Activation::Tanh => &[],
        }
    }

    /// The threshold of a face (`0` for relu-like kinks, the bounds for clamp).
    pub fn face_value(self, face: Face) -> f64 {
        match (self, face) {
            (Activation::Clamp(lo, _), Face::Lower) => lo,
            (Activation::Clamp(_, hi), Face::Upper) => hi,
            (Activation::Leaky(_), _) => 0.0,
            (Activation::Sigmoid | Activation::Tanh, _) => f64::NAN,
        }
    }

    /// Whether the activation never decreases.
    pub fn monotone(self) -> bool {
        !matches!(self, Activation::Leaky(a) if a < 0.0)
    }

    /// Whether the activation is convex on `[p, q]`.
    pub fn convex_on(self, p: f64, q: f64) -> bool {
        match self {
            Activation::Leaky(a) => a <= 1.0 || q <= 0.0 || p >= 0.0,
            Activation::Clamp(_, hi) => q <= hi,
            Activation::Sigmoid | Activation::Tanh => q <= 0.0,
        }
    }

    /// Whether the activation is concave on `[p, q]`.
    pub fn concave_on(self, p: f64, q: f64) -> bool {
        match self {
            Activation::Leaky(a) => a >= 1.0 || q <= 0.0 || p >= 0.0,
            Activation::Clamp(lo, _) => p >= lo,
            Activation::Sigmoid | Activation::Tanh => p >= 0.0,
        }
    }

    /// Output lines `(l0, l1, u0, u1)` of the activation from input lines, all given as values at the two
    /// ends of an interval of the segment variable: sound whenever the input lies between the input lines.
    pub fn lines(self, l0: f64, l1: f64, u0: f64, u1: f64) -> (f64, f64, f64, f64) {
        let smooth = !self.is_piecewise_linear();
        let slack = if smooth { SLACK } else { 0.0 };
        if let (false, Activation::Leaky(a)) = (self.monotone(), self) {
            // Leaky with a negative slope: max(x, a·x) is convex, so the largest of its values at the two
            // input lines is convex in s (chord above); below, x ≥ l(s) and a·x ≥ a·u(s).
            let hi0 = self.value(l0).max(self.value(u0));
            let hi1 = self.value(l1).max(self.value(u1));
            let (lo0, lo1) = if l0 + l1 >= a * (u0 + u1) { (l0, l1) } else { (a * u0, a * u1) };
            return (lo0, lo1, hi0, hi1);
        }
        // σ is increasing: σ(x(s)) ≥ σ(l(s)) and ≤ σ(u(s)).
        let (pl, ql) = (l0.min(l1), l0.max(l1));
        let (lo0, lo1) = if self.concave_on(pl, ql) {
            (self.value(l0) - slack, self.value(l1) - slack)
        } else {
            let [al, bl, _, _] = self.relax(pl, ql);
            (al * l0 + bl, al * l1 + bl)
        };
        let (pu, qu) = (u0.min(u1), u0.max(u1));
        let (hi0, hi1) = if self.convex_on(pu, qu) {
            (self.value(u0) + slack, self.value(u1) + slack)
        } else {
            let [_, _, au, bu] = self.relax(pu, qu);
            (au * u0 + bu, au * u1 + bu)
        };
        (lo0, lo1, hi0, hi1)
    }

    /// `[al, bl, au, bu]` with `al·x + bl ≤ σ(x) ≤ au·x + bu` for `x ∈ [p, q]`; slopes are never negative
    /// for increasing `σ`.
    pub fn relax(self, p: f64, q: f64) -> [f64; 4] {
        match self {
            Activation::Leaky(a) => {
                if q <= 0.0 {
                    [a, 0.0, a, 0.0]
                } else if p >= 0.0 {
                    [1.0, 0.0, 1.0, 0.0]
                } else {
                    let k = (q - a * p) / (q - p);
                    let chord = [k, q - k * q];
                    let side = if q > -p { [1.0, 0.0] } else { [a, 0.0] };
                    if a <= 1.0 {
                        [side[0], side[1], chord[0], chord[1]]
                    } else {
                        [chord[0], chord[1], side[0], side[1]]
                    }
                }
            }
            Activation::Clamp(lo, hi) => {
                if q <= lo {
                    return [0.0, lo, 0.0, lo];
                }
                if p >= hi {
                    return [0.0, hi, 0.0, hi];
                }
                if p >= lo && q <= hi {
                    return [1.0, 0.0, 1.0, 0.0];
                }
                let mid = 0.5 * (p + q);
                let lower = if p >= lo {
                    let k = (hi - p) / (q - p);
                    [k, p - k * p]
                } else if mid > lo {
                    let k = (q.min(hi) - lo) / (q - lo);
                    [k, lo - k * lo]
                } else {
                    [0.0, lo]
                };
                let upper = if q <= hi {
                    let k = (q - lo) / (q - p);
                    [k, lo - k * p]
                } else if mid < hi {
                    let k = (hi - p.max(lo)) / (hi - p);
                    [k, hi - k * hi]
                } else {
                    [0.0, hi]
                };
                [lower[0], lower[1], upper[0], upper[1]]
            }
            Activation::Sigmoid | Activation::Tanh => {
                let (fp, fq) = (self.value(p), self.value(q));
                if q - p <= 1e-9 * (1.0 + p.abs()) {
                    return [0.0, fp - SLACK, 0.0, fq + SLACK];
                }
                let chord_k = (fq - fp) / (q - p);
                let chord = [chord_k, fp - chord_k * p];
                let m = 0.5 * (p + q);
                let tangent = [self.derivative(m), self.value(m) - self.derivative(m) * m];
                let dmin = self.derivative(p).min(self.derivative(q));
                let lower = if p >= 0.0 {
                    chord
                } else if q <= 0.0 {
                    tangent
                } else {
                    [dmin, fp - dmin * p]
                };
                let upper = if q <= 0.0 {
                    chord
                } else if p >= 0.0 {
                    tangent
                } else {
                    [dmin, fq - dmin * q]
                };
                [lower[0], lower[1] - SLACK, upper[0], upper[1] + SLACK]
            }
        }
    }
}
