//! Plane geometry on normalized image coordinates: x right, y DOWN, both 0..1.
//!
//! Sums and products run in f64: differences of f32 values are exact there, so a point
//! exactly on an edge or a line tests as exactly on it (side 0), not as a rounding accident.

use crate::engine::BBox;

/// `[x, y]`, normalized to the frame.
pub type Point = [f32; 2];

/// Which way a track crossed a line; see [`crossing`] for which side is which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    In,
    Out,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// The bottom centre of a box: where a person's feet or a car's wheels touch the ground,
/// so it decides zone membership and line crossings (as in Frigate and nvdsanalytics).
pub fn bottom_centre(b: &BBox) -> Point {
    [b.l + b.w / 2.0, b.t + b.h]
}

pub fn centre(b: &BBox) -> Point {
    [b.l + b.w / 2.0, b.t + b.h / 2.0]
}

/// Cross product (b - a) x (p - a). Positive: `p` is on the RIGHT of a->b as seen on the
/// image (y down); negative: on the left; zero: on the line through a and b.
pub fn side(a: Point, b: Point, p: Point) -> f64 {
    let (ax, ay) = (a[0] as f64, a[1] as f64);
    let (bx, by) = (b[0] as f64, b[1] as f64);
    let (px, py) = (p[0] as f64, p[1] as f64);
    (bx - ax) * (py - ay) - (by - ay) * (px - ax)
}

/// `p` lies on the closed segment a-b.
pub fn on_segment(p: Point, a: Point, b: Point) -> bool {
    side(a, b, p) == 0.0 && within(p, a, b)
}

/// `p` is inside the bounding box of a-b (for points already known to be collinear).
fn within(p: Point, a: Point, b: Point) -> bool {
    p[0] >= a[0].min(b[0])
        && p[0] <= a[0].max(b[0])
        && p[1] >= a[1].min(b[1])
        && p[1] <= a[1].max(b[1])
}

/// Closed segments a-b and c-d share at least one point (touching counts).
pub fn segments_intersect(a: Point, b: Point, c: Point, d: Point) -> bool {
    let (d1, d2) = (side(c, d, a), side(c, d, b));
    let (d3, d4) = (side(a, b, c), side(a, b, d));
    if ((d1 > 0.0 && d2 < 0.0) || (d1 < 0.0 && d2 > 0.0))
        && ((d3 > 0.0 && d4 < 0.0) || (d3 < 0.0 && d4 > 0.0))
    {
        return true;
    }
    (d1 == 0.0 && within(a, c, d))
        || (d2 == 0.0 && within(b, c, d))
        || (d3 == 0.0 && within(c, a, b))
        || (d4 == 0.0 && within(d, a, b))
}

/// A closed axis-aligned box around a polygon.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    min: Point,
    max: Point,
}

impl Bounds {
    pub fn of(poly: &[Point]) -> Bounds {
        let mut b = Bounds {
            min: [f32::INFINITY; 2],
            max: [f32::NEG_INFINITY; 2],
        };
        for p in poly {
            b.min = [b.min[0].min(p[0]), b.min[1].min(p[1])];
            b.max = [b.max[0].max(p[0]), b.max[1].max(p[1])];
        }
        b
    }

    /// Boundary included, like [`point_in_polygon`].
    pub fn contains(&self, p: Point) -> bool {
        p[0] >= self.min[0] && p[0] <= self.max[0] && p[1] >= self.min[1] && p[1] <= self.max[1]
    }
}

/// Point in polygon, boundary included (like OpenCV's `pointPolygonTest >= 0`, which
/// Frigate uses): a foot exactly on a zone's edge is in the zone.
pub fn point_in_polygon(p: Point, poly: &[Point]) -> bool {
    if poly.len() < 3 {
        return false;
    }
    let n = poly.len();
    if (0..n).any(|i| on_segment(p, poly[i], poly[(i + 1) % n])) {
        return true;
    }
    // Crossing number with the half-open rule on y, so a vertex level with p counts once.
    let (px, py) = (p[0] as f64, p[1] as f64);
    let mut inside = false;
    for i in 0..n {
        let (a, b) = (poly[i], poly[(i + 1) % n]);
        let (ax, ay, bx, by) = (a[0] as f64, a[1] as f64, b[0] as f64, b[1] as f64);
        if (ay > py) != (by > py) {
            let x = ax + (py - ay) * (bx - ax) / (by - ay);
            if px < x {
                inside = !inside;
            }
        }
    }
    inside
}

/// Directed crossing of the line `from -> to` by the step `prev -> cur`.
///
/// Standing at `from` and facing `to`, as seen on the image, `In` is a crossing from the
/// left-hand side to the right-hand side, `Out` the reverse. For a horizontal line drawn
/// left to right, walking DOWN the image is `In`. Both points must be strictly off the line
/// (callers skip points exactly on it and keep the last point that was off it), and the
/// step must meet the segment itself, endpoints included, not just its extension.
pub fn crossing(from: Point, to: Point, prev: Point, cur: Point) -> Option<Direction> {
    let (s0, s1) = (side(from, to, prev), side(from, to, cur));
    let dir = if s0 < 0.0 && s1 > 0.0 {
        Direction::In
    } else if s0 > 0.0 && s1 < 0.0 {
        Direction::Out
    } else {
        return None;
    };
    let (e0, e1) = (side(prev, cur, from), side(prev, cur, to));
    if (e0 > 0.0 && e1 > 0.0) || (e0 < 0.0 && e1 < 0.0) {
        return None;
    }
    Some(dir)
}

/// Twice the signed area (shoelace); zero for a degenerate polygon.
pub fn area2(poly: &[Point]) -> f64 {
    let n = poly.len();
    (0..n)
        .map(|i| {
            let (a, b) = (poly[i], poly[(i + 1) % n]);
            a[0] as f64 * b[1] as f64 - b[0] as f64 * a[1] as f64
        })
        .sum()
}

/// The first pair of edges (by index) that intersect where they should not: non-adjacent
/// edges that touch, or adjacent edges that fold back over each other. `None`: simple.
pub fn self_intersection(poly: &[Point]) -> Option<(usize, usize)> {
    let n = poly.len();
    if n < 3 {
        return None;
    }
    let edge = |i: usize| (poly[i], poly[(i + 1) % n]);
    for i in 0..n {
        let (a, b) = edge(i);
        // Adjacent edge a-b, b-c folds back if c lies on the ray b->a.
        let c = poly[(i + 2) % n];
        if side(a, b, c) == 0.0 {
            let dot = (a[0] as f64 - b[0] as f64) * (c[0] as f64 - b[0] as f64)
                + (a[1] as f64 - b[1] as f64) * (c[1] as f64 - b[1] as f64);
            if dot > 0.0 {
                return Some((i, (i + 1) % n));
            }
        }
        for j in i + 2..n {
            if i == 0 && j == n - 1 {
                continue; // first and last edges are adjacent
            }
            let (c, d) = edge(j);
            if segments_intersect(a, b, c, d) {
                return Some((i, j));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SQUARE: [Point; 4] = [[0.2, 0.2], [0.6, 0.2], [0.6, 0.6], [0.2, 0.6]];

    #[test]
    fn bottom_centre_is_the_feet() {
        let b = BBox {
            l: 0.1,
            t: 0.2,
            w: 0.2,
            h: 0.5,
        };
        let p = bottom_centre(&b);
        assert!((p[0] - 0.2).abs() < 1e-6 && (p[1] - 0.7).abs() < 1e-6);
        assert!((centre(&b)[1] - 0.45).abs() < 1e-6);
    }

    #[test]
    fn inside_outside_and_boundary() {
        assert!(point_in_polygon([0.4, 0.4], &SQUARE));
        assert!(!point_in_polygon([0.1, 0.4], &SQUARE));
        assert!(!point_in_polygon([0.7, 0.4], &SQUARE));
        // Exactly on an edge and on a vertex: inside.
        assert!(point_in_polygon([0.2, 0.4], &SQUARE));
        assert!(point_in_polygon([0.6, 0.5], &SQUARE));
        assert!(point_in_polygon([0.6, 0.6], &SQUARE));
        // Level with a vertex but outside: the ray through the vertex counts once.
        let diamond = [[0.5, 0.1], [0.9, 0.5], [0.5, 0.9], [0.1, 0.5]];
        assert!(!point_in_polygon([0.05, 0.5], &diamond));
        assert!(point_in_polygon([0.5, 0.5], &diamond));
        assert!(!point_in_polygon([0.95, 0.5], &diamond));
    }

    #[test]
    fn bounds_are_closed() {
        let b = Bounds::of(&SQUARE);
        assert!(b.contains([0.2, 0.6]) && b.contains([0.4, 0.4]));
        assert!(!b.contains([0.19, 0.4]) && !b.contains([0.4, 0.61]));
    }

    #[test]
    fn concave_polygon() {
        // A "U": the notch between the arms is outside.
        let u = [
            [0.1, 0.1],
            [0.3, 0.1],
            [0.3, 0.6],
            [0.7, 0.6],
            [0.7, 0.1],
            [0.9, 0.1],
            [0.9, 0.9],
            [0.1, 0.9],
        ];
        assert!(!point_in_polygon([0.5, 0.3], &u));
        assert!(point_in_polygon([0.2, 0.3], &u));
        assert!(point_in_polygon([0.5, 0.8], &u));
    }

    #[test]
    fn side_sign_on_the_image() {
        // Line drawn left to right; y grows downward, so below is the right-hand side.
        assert!(side([0.0, 0.5], [1.0, 0.5], [0.5, 0.7]) > 0.0);
        assert!(side([0.0, 0.5], [1.0, 0.5], [0.5, 0.3]) < 0.0);
        assert_eq!(side([0.0, 0.5], [1.0, 0.5], [0.3, 0.5]), 0.0);
    }

    #[test]
    fn directed_crossings() {
        let (f, t) = ([0.2, 0.5], [0.8, 0.5]);
        assert_eq!(crossing(f, t, [0.5, 0.4], [0.5, 0.6]), Some(Direction::In));
        assert_eq!(crossing(f, t, [0.5, 0.6], [0.5, 0.4]), Some(Direction::Out));
        // Beyond the segment's end: no crossing.
        assert_eq!(crossing(f, t, [0.9, 0.4], [0.9, 0.6]), None);
        // Through the endpoint exactly: counts.
        assert_eq!(crossing(f, t, [0.8, 0.4], [0.8, 0.6]), Some(Direction::In));
        // Same side, or onto the line: no crossing (yet).
        assert_eq!(crossing(f, t, [0.5, 0.4], [0.6, 0.45]), None);
        assert_eq!(crossing(f, t, [0.5, 0.4], [0.5, 0.5]), None);
        // Reversing the line reverses the direction.
        assert_eq!(crossing(t, f, [0.5, 0.4], [0.5, 0.6]), Some(Direction::Out));
    }

    #[test]
    fn segments_touching_and_apart() {
        assert!(segments_intersect(
            [0.0, 0.0],
            [1.0, 1.0],
            [0.0, 1.0],
            [1.0, 0.0]
        ));
        assert!(segments_intersect(
            [0.0, 0.0],
            [0.5, 0.5],
            [0.5, 0.5],
            [1.0, 0.0]
        ));
        assert!(!segments_intersect(
            [0.0, 0.0],
            [0.4, 0.4],
            [0.5, 0.5],
            [1.0, 1.0]
        ));
        assert!(segments_intersect(
            [0.0, 0.0],
            [0.6, 0.6],
            [0.5, 0.5],
            [1.0, 1.0]
        ));
        assert!(!segments_intersect(
            [0.0, 0.0],
            [1.0, 0.0],
            [0.0, 0.1],
            [1.0, 0.1]
        ));
    }

    #[test]
    fn self_intersection_found() {
        assert_eq!(self_intersection(&SQUARE), None);
        let bowtie = [[0.2, 0.2], [0.6, 0.6], [0.6, 0.2], [0.2, 0.6]];
        assert!(self_intersection(&bowtie).is_some());
        // A spike folding back on its own edge.
        let spike = [[0.2, 0.2], [0.6, 0.2], [0.4, 0.2], [0.4, 0.6]];
        assert!(self_intersection(&spike).is_some());
        // A vertex touching a non-adjacent edge.
        let pinch = [[0.1, 0.1], [0.9, 0.1], [0.5, 0.9], [0.5, 0.1], [0.3, 0.5]];
        assert!(self_intersection(&pinch).is_some());
        assert!(area2(&SQUARE).abs() > 0.0);
        assert_eq!(area2(&[[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]]), 0.0);
    }
}
