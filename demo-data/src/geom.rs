//! Plane geometry for the renderer: points, rotated rectangles and convex polygons, each with a signed
//! distance (positive inside) so that edges can be antialiased without supersampling.
//!
//! Coordinates are those of the picture: `x` grows to the east (right), `y` to the south (down).

use std::ops::{Add, Mul, Neg, Sub};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Vec2 {
    pub x: f32,
    pub y: f32,
}

impl Vec2 {
    pub const fn new(x: f32, y: f32) -> Self {
        Self { x, y }
    }

    /// The unit vector at `angle` radians from the `x` axis, turning towards `y` (clockwise on screen).
    pub fn from_angle(angle: f32) -> Self {
        Self::new(angle.cos(), angle.sin())
    }

    pub fn dot(self, other: Self) -> f32 {
        self.x * other.x + self.y * other.y
    }

    pub fn length(self) -> f32 {
        self.x.hypot(self.y)
    }

    /// This vector turned a quarter clockwise on screen.
    pub fn perp(self) -> Self {
        Self::new(-self.y, self.x)
    }
}

impl Add for Vec2 {
    type Output = Self;
    fn add(self, rhs: Self) -> Self {
        Self::new(self.x + rhs.x, self.y + rhs.y)
    }
}

impl Sub for Vec2 {
    type Output = Self;
    fn sub(self, rhs: Self) -> Self {
        Self::new(self.x - rhs.x, self.y - rhs.y)
    }
}

impl Mul<f32> for Vec2 {
    type Output = Self;
    fn mul(self, k: f32) -> Self {
        Self::new(self.x * k, self.y * k)
    }
}

impl Neg for Vec2 {
    type Output = Self;
    fn neg(self) -> Self {
        Self::new(-self.x, -self.y)
    }
}

/// An axis-aligned box, used to limit painting to the pixels a shape can touch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    pub min: Vec2,
    pub max: Vec2,
}

impl Bounds {
    pub fn around(points: impl IntoIterator<Item = Vec2>) -> Self {
        let mut bounds = Self {
            min: Vec2::new(f32::INFINITY, f32::INFINITY),
            max: Vec2::new(f32::NEG_INFINITY, f32::NEG_INFINITY),
        };
        for p in points {
            bounds.min = Vec2::new(bounds.min.x.min(p.x), bounds.min.y.min(p.y));
            bounds.max = Vec2::new(bounds.max.x.max(p.x), bounds.max.y.max(p.y));
        }
        bounds
    }

    pub fn circle(centre: Vec2, radius: f32) -> Self {
        Self {
            min: centre - Vec2::new(radius, radius),
            max: centre + Vec2::new(radius, radius),
        }
    }

    pub fn union(self, other: Self) -> Self {
        Self::around([self.min, self.max, other.min, other.max])
    }

    pub fn grown(self, by: f32) -> Self {
        Self {
            min: self.min - Vec2::new(by, by),
            max: self.max + Vec2::new(by, by),
        }
    }
}

/// A rectangle of half-sizes `hu` × `hv` turned by an angle: the local `u` axis is the rectangle's length.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    pub centre: Vec2,
    /// Unit vector of the local `u` axis.
    pub axis: Vec2,
    pub hu: f32,
    pub hv: f32,
}

impl Frame {
    pub fn new(centre: Vec2, angle: f32, hu: f32, hv: f32) -> Self {
        Self {
            centre,
            axis: Vec2::from_angle(angle),
            hu,
            hv,
        }
    }

    /// Local `(u, v)` coordinates of a picture point.
    pub fn local(&self, p: Vec2) -> Vec2 {
        let d = p - self.centre;
        Vec2::new(d.dot(self.axis), d.dot(self.axis.perp()))
    }

    /// The picture point at local coordinates `(u, v)`.
    pub fn point(&self, u: f32, v: f32) -> Vec2 {
        self.centre + self.axis * u + self.axis.perp() * v
    }

    /// Signed distance, positive inside; outside it is the Chebyshev distance, which is all antialiasing needs.
    pub fn sd(&self, p: Vec2) -> f32 {
        let l = self.local(p);
        (self.hu - l.x.abs()).min(self.hv - l.y.abs())
    }

    pub fn corners(&self) -> [Vec2; 4] {
        [
            self.point(-self.hu, -self.hv),
            self.point(self.hu, -self.hv),
            self.point(self.hu, self.hv),
            self.point(-self.hu, self.hv),
        ]
    }

    pub fn bounds(&self) -> Bounds {
        Bounds::around(self.corners())
    }

    pub fn grown(&self, by: f32) -> Self {
        Self {
            hu: self.hu + by,
            hv: self.hv + by,
            ..*self
        }
    }

    pub fn shifted(&self, by: Vec2) -> Self {
        Self {
            centre: self.centre + by,
            ..*self
        }
    }

    /// A smaller frame inside this one, given in this frame's local coordinates and turned with it.
    pub fn sub(&self, u: f32, v: f32, hu: f32, hv: f32) -> Self {
        Self {
            centre: self.point(u, v),
            axis: self.axis,
            hu,
            hv,
        }
    }
}

/// A convex polygon stored as its edges' supporting lines, for a cheap signed distance.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvexPolygon {
    /// A point of each edge and the edge's inward unit normal.
    edges: Vec<(Vec2, Vec2)>,
    bounds: Bounds,
}

impl ConvexPolygon {
    /// The convex hull of `points` (Andrew's monotone chain).
    pub fn hull(points: &[Vec2]) -> Self {
        let mut sorted = points.to_vec();
        sorted.sort_by(|a, b| a.x.total_cmp(&b.x).then(a.y.total_cmp(&b.y)));
        let cross = |o: Vec2, a: Vec2, b: Vec2| (a - o).x * (b - o).y - (a - o).y * (b - o).x;
        let mut hull: Vec<Vec2> = Vec::with_capacity(sorted.len() * 2);
        for pass in [sorted.clone(), sorted.iter().rev().copied().collect()] {
            let start = hull.len();
            for p in pass {
                while hull.len() >= start + 2 && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0.0 {
                    hull.pop();
                }
                hull.push(p);
            }
            hull.pop();
        }
        let n = hull.len();
        let centroid = hull.iter().fold(Vec2::new(0.0, 0.0), |acc, &p| acc + p)
            * (1.0 / crate::canvas::to_f32(n.max(1)));
        let edges = (0..n)
            .filter_map(|i| {
                let (a, b) = (hull[i], hull[(i + 1) % n]);
                let len = (b - a).length();
                (len > 1e-6).then(|| {
                    let normal = (b - a).perp() * (1.0 / len);
                    // The hull's winding depends on the axis convention; point the normal at the centroid.
                    if (centroid - a).dot(normal) >= 0.0 {
                        (a, normal)
                    } else {
                        (a, -normal)
                    }
                })
            })
            .collect();
        Self {
            edges,
            bounds: Bounds::around(hull),
        }
    }

    pub fn sd(&self, p: Vec2) -> f32 {
        self.edges
            .iter()
            .map(|&(a, n)| (p - a).dot(n))
            .fold(f32::INFINITY, f32::min)
    }

    pub fn bounds(&self) -> Bounds {
        self.bounds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turned_frame_round_trips_its_coordinates() {
        let frame = Frame::new(Vec2::new(10.0, 20.0), 0.5, 8.0, 3.0);
        let p = frame.point(2.0, -1.5);
        let back = frame.local(p);
        assert!(
            (back.x - 2.0).abs() < 1e-4 && (back.y + 1.5).abs() < 1e-4,
            "{back:?}"
        );
        assert!(frame.sd(frame.centre) > 2.9);
        assert!(frame.sd(frame.point(9.0, 0.0)) < 0.0);
    }

    #[test]
    fn the_hull_of_a_square_and_its_shift_contains_the_swept_area() {
        let square = Frame::new(Vec2::new(0.0, 0.0), 0.0, 1.0, 1.0);
        let mut points = square.corners().to_vec();
        points.extend(square.shifted(Vec2::new(4.0, 0.0)).corners());
        let hull = ConvexPolygon::hull(&points);
        assert!(hull.sd(Vec2::new(2.5, 0.0)) > 0.9);
        assert!(hull.sd(Vec2::new(2.5, 3.0)) < 0.0);
        assert!(hull.sd(Vec2::new(-2.0, 0.0)) < 0.0);
    }
}
