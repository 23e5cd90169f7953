//! The minimum-area rectangle enclosing an object in an image: the measurement behind the geometric
//! properties of `gcert_directions::geometry` (angle, centre, size, elongation; paper §7.1.2, Fig. 9), and the
//! centre about which gcert-torch's geometry coordinates rotate and scale training digits, so that the
//! transforms a generator learns move the rectangle exactly as the measurement sees them.
//!
//! The object is the set of pixels brighter than a threshold (channels averaged); its outline is located to
//! sub-pixel precision by interpolating the threshold crossing between neighbouring pixel centres, and its
//! rectangle is found by rotating calipers over the convex hull of the outline (the minimum-area rectangle has
//! a side on a hull edge).

use serde::Serialize;

/// A minimum-area enclosing rectangle.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rect {
    /// Centre, in pixels (x: column, y: row; a pixel's centre is at `+0.5`).
    pub cx: f64,
    pub cy: f64,
    /// The long and the short side.
    pub length: f64,
    pub breadth: f64,
    /// Direction of the long side in degrees, in `(-90, 90]`, measured from the x axis towards y (down).
    pub angle: f64,
}

impl Rect {
    pub fn size(&self) -> f64 {
        (self.length * self.breadth).sqrt()
    }
    pub fn elongation(&self) -> f64 {
        self.length / self.breadth
    }
}

/// The minimum-area rectangle enclosing the pixels of `image` (`c × h × w`, channels averaged) brighter than
/// `threshold`; `None` when no pixel is.
pub fn min_area_rect(image: &[f64], shape: [usize; 3], threshold: f64) -> Option<Rect> {
    let [c, h, w] = shape;
    let value = |x: usize, y: usize| (0..c).map(|ch| image[(ch * h + y) * w + x]).sum::<f64>() / c as f64;
    // The object's outline at sub-pixel precision: the centres of its pixels, and where the brightness crosses
    // the threshold between a pixel and its right or lower neighbour (linear interpolation between centres); an
    // object pixel on the border of the image reaches the border.
    let mut points = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let v = value(x, y);
            let (px, py) = (x as f64 + 0.5, y as f64 + 0.5);
            if v > threshold {
                points.push((px, py));
                if x == 0 || x + 1 == w {
                    points.push((if x == 0 { 0.0 } else { w as f64 }, py));
                }
                if y == 0 || y + 1 == h {
                    points.push((px, if y == 0 { 0.0 } else { h as f64 }));
                }
            }
            for (nx, ny) in [(x + 1, y), (x, y + 1)] {
                if nx < w && ny < h {
                    let u = value(nx, ny);
                    if (v > threshold) != (u > threshold) {
                        let t = (threshold - v) / (u - v);
                        points.push((px + t * (nx - x) as f64, py + t * (ny - y) as f64));
                    }
                }
            }
        }
    }
    if points.is_empty() {
        return None;
    }
    let hull = convex_hull(points);
    let mut best: Option<(f64, Rect)> = None;
    for i in 0..hull.len() {
        let (a, b) = (hull[i], hull[(i + 1) % hull.len()]);
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let norm = (dx * dx + dy * dy).sqrt();
        if norm == 0.0 {
            continue;
        }
        let (ux, uy) = (dx / norm, dy / norm);
        let (mut lo_u, mut hi_u, mut lo_v, mut hi_v) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(px, py) in &hull {
            let (u, v) = (px * ux + py * uy, -px * uy + py * ux);
            lo_u = lo_u.min(u);
            hi_u = hi_u.max(u);
            lo_v = lo_v.min(v);
            hi_v = hi_v.max(v);
        }
        let (eu, ev) = (hi_u - lo_u, hi_v - lo_v);
        let area = eu * ev;
        if best.as_ref().is_some_and(|(a, _)| *a <= area) {
            continue;
        }
        let (mu, mv) = ((lo_u + hi_u) / 2.0, (lo_v + hi_v) / 2.0);
        let (cx, cy) = (mu * ux - mv * uy, mu * uy + mv * ux);
        // The long side's direction: along the edge, or perpendicular to it.
        let (length, breadth, ax, ay) = if eu >= ev { (eu, ev, ux, uy) } else { (ev, eu, -uy, ux) };
        let mut angle = ay.atan2(ax).to_degrees();
        if angle <= -90.0 {
            angle += 180.0;
        } else if angle > 90.0 {
            angle -= 180.0;
        }
        best = Some((area, Rect { cx, cy, length, breadth, angle }));
    }
    best.map(|(_, r)| r)
}

/// Andrew's monotone chain; collinear points dropped.
fn convex_hull(mut p: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    p.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    p.dedup();
    if p.len() < 3 {
        return p;
    }
    let cross =
        |o: (f64, f64), a: (f64, f64), b: (f64, f64)| (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0);
    let mut hull: Vec<(f64, f64)> = Vec::with_capacity(2 * p.len());
    for pass in 0..2 {
        let start = hull.len();
        let iter: Box<dyn Iterator<Item = &(f64, f64)>> =
            if pass == 0 { Box::new(p.iter()) } else { Box::new(p.iter().rev()) };
        for &q in iter {
            while hull.len() >= start + 2 && cross(hull[hull.len() - 2], hull[hull.len() - 1], q) <= 0.0 {
                hull.pop();
            }
            hull.push(q);
        }
        hull.pop();
    }
    hull
}
