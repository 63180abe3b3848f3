//! Buildings seen from above: footprints made of rectangles, pitched roofs as height fields lit by the sun,
//! flat roofs with parapets, and what stands on roofs (chimneys, skylights, solar panels, plant units).
//!
//! A pitched roof is the upper envelope of its parts' height fields (a gable or a hip per rectangle), so that
//! L-, T- and cross-shaped houses get their valleys and hips for free; the slope of the winning part gives the
//! normal, and the normal and the sun give the shade. This is what makes the orientation readable: with the sun
//! in the south-west, south and west slopes are bright, north and east slopes dark, and a ridge line divides them.

use crate::canvas::{Canvas, Fbm, Noise, Rgb, coverage, mix, scale, tint};
use crate::geom::{Bounds, ConvexPolygon, Frame, Vec2};
use crate::rng::SplitMix64;

/// Light that reaches every surface (sky), then the share that depends on the angle to the sun.
const AMBIENT: f32 = 0.38;
const DIFFUSE: f32 = 0.78;
/// What a cast shadow keeps of the light, a little bluer than the sunlit ground (skylight).
const SHADOW: Rgb = [0.5, 0.54, 0.63];

/// The sun, somewhere in the south-west so that every slope direction gets its own shade.
#[derive(Debug, Clone, Copy)]
pub struct Sun {
    /// Unit vector on the picture pointing towards the sun.
    toward: Vec2,
    /// Unit vector towards the sun in (east, north, up).
    world: [f32; 3],
    tan_elevation: f32,
}

impl Sun {
    pub fn random(rng: &mut SplitMix64) -> Self {
        let azimuth = rng.range(205.0, 245.0).to_radians();
        let elevation = rng.range(36.0, 56.0).to_radians();
        let (sa, ca) = azimuth.sin_cos();
        Self {
            toward: Vec2::new(sa, -ca),
            world: [sa * elevation.cos(), ca * elevation.cos(), elevation.sin()],
            tan_elevation: elevation.tan(),
        }
    }

    /// The offset of the shadow of a point `height` units above the ground.
    pub fn shadow(&self, height: f32) -> Vec2 {
        -self.toward * (height / self.tan_elevation)
    }

    pub fn toward(&self) -> Vec2 {
        self.toward
    }

    /// Brightness of a surface whose height rises by `gradient` per unit along the picture axes.
    pub fn light(&self, gradient: Vec2) -> f32 {
        // The normal in (east, north, up): north is minus the picture's y.
        let n = [-gradient.x, gradient.y, 1.0];
        let len = (n[0] * n[0] + n[1] * n[1] + 1.0).sqrt();
        let lambert = (n[0] * self.world[0] + n[1] * self.world[1] + n[2] * self.world[2]) / len;
        AMBIENT + DIFFUSE * lambert.max(0.0)
    }

    pub fn flat_light(&self) -> f32 {
        self.light(Vec2::new(0.0, 0.0))
    }
}

/// Shared noise fields of one tile, sampled in design units.
pub struct Textures {
    /// Large patches: dry and green grass, stains on flat roofs.
    pub broad: Fbm,
    /// Blotches a few metres across.
    pub patch: Noise,
    pub mid: Noise,
    pub fine: Noise,
}

impl Textures {
    pub fn new(rng: &mut SplitMix64) -> Self {
        Self {
            broad: Fbm::new(rng, 70.0, 3),
            patch: Noise::new(rng, 16.0),
            mid: Noise::new(rng, 6.0),
            fine: Noise::new(rng, 1.7),
        }
    }
}

/// Darkens what is already painted where `sd` (design units, positive inside) says the shadow falls.
pub fn cast_shadow(canvas: &mut Canvas, bounds: Bounds, sd: impl Fn(Vec2) -> f32) {
    let zoom = canvas.zoom();
    canvas.paint(bounds, |p, px| {
        let cover = coverage(sd(p) * zoom);
        if cover > 0.0 {
            *px = mix(*px, tint(*px, SHADOW), cover);
        }
    });
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Two slopes meeting at a ridge along the frame's `u` axis.
    Gable,
    /// Four slopes; the ridge along `u` is shorter than the frame by `hv` at each end (a pyramid if `hu == hv`).
    Hip,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Part {
    pub frame: Frame,
    pub shape: Shape,
}

/// Where a point lies on one part's roof.
#[derive(Debug, Clone, Copy)]
struct Hit {
    /// Horizontal distance to the eaves: the height divided by the slope.
    run: f32,
    /// Gradient of `run` in the part's local axes (unit length on a slope).
    slope_local: Vec2,
    /// Coordinate across the tile courses (which run parallel to the eaves).
    across: f32,
    /// Distance to the nearest ridge or hip line.
    to_line: f32,
}

impl Part {
    fn hit(&self, p: Vec2) -> Hit {
        let l = self.frame.local(p);
        let across_v = self.frame.hv - l.y.abs();
        let sign_v = if l.y < 0.0 { -1.0 } else { 1.0 };
        match self.shape {
            Shape::Gable => Hit {
                run: across_v,
                slope_local: Vec2::new(0.0, -sign_v),
                across: l.y,
                to_line: l.y.abs(),
            },
            Shape::Hip => {
                let across_u = self.frame.hu - l.x.abs();
                let ridge_half = self.frame.hu - self.frame.hv;
                let to_ridge = if l.x.abs() <= ridge_half {
                    l.y.abs()
                } else {
                    f32::INFINITY
                };
                let to_hip = (across_v - across_u).abs() * std::f32::consts::FRAC_1_SQRT_2;
                let to_line = to_ridge.min(to_hip);
                if across_v <= across_u {
                    Hit {
                        run: across_v,
                        slope_local: Vec2::new(0.0, -sign_v),
                        across: l.y,
                        to_line,
                    }
                } else {
                    let sign_u = if l.x < 0.0 { -1.0 } else { 1.0 };
                    Hit {
                        run: across_u,
                        slope_local: Vec2::new(-sign_u, 0.0),
                        across: l.x,
                        to_line,
                    }
                }
            }
        }
    }

    /// Gradient of the roof height on the picture axes for a slope of `pitch` (rise over run).
    fn gradient(&self, hit: &Hit, pitch: f32) -> Vec2 {
        let axis = self.frame.axis;
        (axis * hit.slope_local.x + axis.perp() * hit.slope_local.y) * pitch
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cover {
    Pitched {
        albedo: Rgb,
        /// Rise over run.
        pitch: f32,
        /// Spacing of the tile courses, in design units.
        course: f32,
    },
    Flat {
        albedo: Rgb,
        parapet: Rgb,
        parapet_width: f32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fixture {
    Chimney {
        frame: Frame,
        colour: Rgb,
    },
    /// A roof window lying on the slope of part `part`.
    Skylight {
        part: usize,
        frame: Frame,
    },
    /// Photovoltaic modules lying on the slope of part `part`, in `columns` along `u`.
    Panels {
        part: usize,
        frame: Frame,
        columns: u8,
        rows: u8,
    },
    /// A box on a flat roof (air conditioning, lift motor room, vent).
    Unit {
        frame: Frame,
        height: f32,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Building {
    pub parts: Vec<Part>,
    pub cover: Cover,
    /// Height of the eaves above the ground, which sets the length of the cast shadow.
    pub height: f32,
    pub fixtures: Vec<Fixture>,
}

impl Building {
    /// Signed distance to the footprint (union of the parts).
    pub fn sd(&self, p: Vec2) -> f32 {
        self.parts
            .iter()
            .map(|part| part.frame.sd(p))
            .fold(f32::NEG_INFINITY, f32::max)
    }

    pub fn bounds(&self) -> Bounds {
        self.parts
            .iter()
            .map(|part| part.frame.bounds())
            .reduce(Bounds::union)
            .unwrap_or(Bounds {
                min: Vec2::new(0.0, 0.0),
                max: Vec2::new(0.0, 0.0),
            })
    }

    fn ridge_height(&self, part: &Part) -> f32 {
        match self.cover {
            Cover::Pitched { pitch, .. } => part.frame.hv * pitch,
            Cover::Flat { .. } => 0.0,
        }
    }

    /// The ground shadow: each part swept along the sun's shadow offset.
    pub fn draw_shadow(&self, canvas: &mut Canvas, sun: &Sun) {
        let polygons: Vec<ConvexPolygon> = self
            .parts
            .iter()
            .map(|part| {
                // The ridge casts further than the eaves; half-way is a fair average over the roof.
                let offset = sun.shadow(self.height + 0.5 * self.ridge_height(part));
                let mut points = part.frame.corners().to_vec();
                points.extend(part.frame.shifted(offset).corners());
                ConvexPolygon::hull(&points)
            })
            .collect();
        let Some(bounds) = polygons.iter().map(ConvexPolygon::bounds).reduce(Bounds::union) else {
            return;
        };
        cast_shadow(canvas, bounds, |p| {
            polygons
                .iter()
                .map(|poly| poly.sd(p))
                .fold(f32::NEG_INFINITY, f32::max)
        });
    }

    pub fn draw(&self, canvas: &mut Canvas, sun: &Sun, tex: &Textures) {
        match self.cover {
            Cover::Pitched {
                albedo,
                pitch,
                course,
            } => self.draw_pitched(canvas, sun, tex, albedo, pitch, course),
            Cover::Flat {
                albedo,
                parapet,
                parapet_width,
            } => {
                self.draw_flat(canvas, sun, tex, albedo, parapet, parapet_width);
            }
        }
        for fixture in &self.fixtures {
            self.draw_fixture(canvas, sun, tex, fixture);
        }
    }

    /// The highest part over `p` and where `p` is on it, plus the run of the next highest (for valleys).
    fn top(&self, p: Vec2) -> (usize, Hit, f32) {
        let mut best: Option<(usize, Hit)> = None;
        let mut second = f32::NEG_INFINITY;
        let mut nearest = (0, f32::NEG_INFINITY);
        for (i, part) in self.parts.iter().enumerate() {
            let sd = part.frame.sd(p);
            if sd > nearest.1 {
                nearest = (i, sd);
            }
            if sd < 0.0 {
                continue;
            }
            let hit = part.hit(p);
            match best {
                Some((_, top)) if top.run >= hit.run => second = second.max(hit.run),
                Some((_, top)) => {
                    second = second.max(top.run);
                    best = Some((i, hit));
                }
                None => best = Some((i, hit)),
            }
        }
        // Just outside every part (the antialiased rim), shade as the nearest part.
        best.map_or_else(
            || (nearest.0, self.parts[nearest.0].hit(p), second),
            |(i, hit)| (i, hit, second),
        )
    }

    fn draw_pitched(
        &self,
        canvas: &mut Canvas,
        sun: &Sun,
        tex: &Textures,
        albedo: Rgb,
        pitch: f32,
        course: f32,
    ) {
        let zoom = canvas.zoom();
        let quarter = 0.25 / zoom;
        let ridge_colour = scale(albedo, sun.flat_light() * 1.2);
        canvas.paint(self.bounds(), |p, px| {
            let sd = self.sd(p) * zoom;
            let cover = coverage(sd);
            if cover <= 0.0 {
                return;
            }
            // Four samples per pixel so that the shade edges along ridges, hips and valleys stay smooth.
            let mut light = 0.0;
            for (dx, dy) in [(-1.0, -1.0), (1.0, -1.0), (-1.0, 1.0), (1.0, 1.0)] {
                let (i, hit, _) = self.top(p + Vec2::new(dx * quarter, dy * quarter));
                light += sun.light(self.parts[i].gradient(&hit, pitch)) * 0.25;
            }
            let (_, hit, second) = self.top(p);
            let courses = 1.0 + 0.07 * (hit.across * std::f32::consts::TAU / course).sin();
            let texture =
                1.0 + 0.07 * tex.mid.at(p * 1.3) + 0.05 * tex.fine.at(p) + 0.08 * tex.patch.at(p * 0.8);
            let mut colour = scale(albedo, light * courses * texture);
            // Ridge and hip tiles: a light seam where two slopes meet over the top.
            let seam = coverage((0.75 - hit.to_line) * zoom);
            colour = mix(colour, scale(ridge_colour, texture), seam * 0.85);
            // Valleys, where one part's slope dives under another's: a dark seam.
            let valley = coverage((0.6 - (hit.run - second)) * zoom);
            colour = scale(colour, 1.0 - 0.35 * valley);
            // Gutters and the wall below them darken the outline a little.
            colour = scale(colour, 1.0 - 0.25 * (1.0 - (sd / 1.5).clamp(0.0, 1.0)));
            *px = mix(*px, colour, cover);
        });
    }

    fn draw_flat(
        &self,
        canvas: &mut Canvas,
        sun: &Sun,
        tex: &Textures,
        albedo: Rgb,
        parapet: Rgb,
        parapet_width: f32,
    ) {
        let zoom = canvas.zoom();
        let light = sun.flat_light();
        // The parapet's own shadow falls inside the roof, along the walls that face the sun.
        let inner_shadow = sun.toward() * (parapet_width * 1.6);
        canvas.paint(self.bounds(), |p, px| {
            let sd = self.sd(p);
            let cover = coverage(sd * zoom);
            if cover <= 0.0 {
                return;
            }
            let grit = 1.0 + 0.06 * tex.mid.at(p * 1.7) + 0.06 * tex.fine.at(p);
            let stains = 1.0 + 0.12 * tex.patch.at(p * 0.7);
            let mut colour = scale(albedo, light * grit * stains);
            let shaded = coverage((parapet_width - self.sd(p + inner_shadow)) * zoom);
            colour = mix(colour, tint(colour, SHADOW), shaded * 0.8);
            let on_parapet = coverage((parapet_width - sd) * zoom);
            colour = mix(colour, scale(parapet, light * grit), on_parapet);
            colour = scale(colour, 1.0 - 0.3 * (1.0 - (sd * zoom / 1.2).clamp(0.0, 1.0)));
            *px = mix(*px, colour, cover);
        });
    }

    fn draw_fixture(&self, canvas: &mut Canvas, sun: &Sun, tex: &Textures, fixture: &Fixture) {
        let zoom = canvas.zoom();
        match *fixture {
            Fixture::Chimney { frame, colour } => {
                let offset = sun.shadow(4.5);
                let shadow = frame.shifted(offset);
                cast_shadow(canvas, shadow.bounds(), |p| shadow.sd(p).min(self.sd(p)));
                let top = scale(colour, sun.flat_light());
                paint_box(canvas, frame, |p, sd| {
                    let rim = 1.0 - 0.45 * (1.0 - (sd * zoom / 1.3).clamp(0.0, 1.0));
                    scale(top, rim * (1.0 + 0.08 * tex.fine.at(p)))
                });
            }
            Fixture::Skylight { part, frame } => {
                let hit = self.parts[part].hit(frame.centre);
                let light = self.slope_light(sun, part, &hit);
                paint_box(canvas, frame, |p, sd| {
                    let glass = scale([52.0, 64.0, 80.0], light * (1.0 + 0.15 * tex.mid.at(p * 2.0)));
                    if sd * zoom < 0.9 {
                        scale([200.0, 200.0, 195.0], light)
                    } else {
                        glass
                    }
                });
            }
            Fixture::Panels {
                part,
                frame,
                columns,
                rows,
            } => {
                let hit = self.parts[part].hit(frame.centre);
                let light = self.slope_light(sun, part, &hit);
                let cell_u = 2.0 * frame.hu / f32::from(columns.max(1));
                let cell_v = 2.0 * frame.hv / f32::from(rows.max(1));
                paint_box(canvas, frame, |p, _| {
                    let l = frame.local(p);
                    let gu = ((l.x + frame.hu) % cell_u).min(cell_u - (l.x + frame.hu) % cell_u);
                    let gv = ((l.y + frame.hv) % cell_v).min(cell_v - (l.y + frame.hv) % cell_v);
                    let line = coverage((0.35 - gu.min(gv)) * zoom);
                    let cell = scale([30.0, 40.0, 72.0], 0.6 + 0.5 * light + 0.05 * tex.fine.at(p));
                    mix(cell, scale([150.0, 155.0, 165.0], light), line * 0.8)
                });
            }
            Fixture::Unit { frame, height } => {
                let shadow = frame.shifted(sun.shadow(height));
                cast_shadow(canvas, shadow.bounds(), |p| shadow.sd(p).min(self.sd(p)));
                let top = scale([188.0, 188.0, 184.0], sun.flat_light());
                paint_box(canvas, frame, |p, sd| {
                    let rim = 1.0 - 0.3 * (1.0 - (sd * zoom / 1.2).clamp(0.0, 1.0));
                    scale(top, rim * (1.0 + 0.05 * tex.fine.at(p)))
                });
            }
        }
    }

    fn slope_light(&self, sun: &Sun, part: usize, hit: &Hit) -> f32 {
        match self.cover {
            Cover::Pitched { pitch, .. } => sun.light(self.parts[part].gradient(hit, pitch)),
            Cover::Flat { .. } => sun.flat_light(),
        }
    }
}

/// Paints a rectangle with antialiased edges; `colour` gets the point and its signed distance to the edge.
pub fn paint_box(canvas: &mut Canvas, frame: Frame, colour: impl Fn(Vec2, f32) -> Rgb) {
    let zoom = canvas.zoom();
    canvas.paint(frame.bounds(), |p, px| {
        let sd = frame.sd(p);
        let cover = coverage(sd * zoom);
        if cover > 0.0 {
            *px = mix(*px, colour(p, sd), cover);
        }
    });
}
