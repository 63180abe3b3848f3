//! One tile: a building of the requested class in the middle, and around it what aerial photographs of
//! French suburbs show (lawns, yards, a street with cars, neighbouring roofs, trees, sometimes a pool).
//!
//! Everything is placed in design units (see [`crate::canvas`]) and drawn back to front: ground, paved
//! surfaces, cast shadows, cars, roofs, then trees, whose crowns may overhang anything but the main roof.

use std::f32::consts::{FRAC_PI_2, PI};

use crate::RoofClass;
use crate::canvas::{Canvas, DESIGN, Rgb, coverage, mix, scale};
use crate::geom::{Bounds, Frame, Vec2};
use crate::rng::SplitMix64;
use crate::roof::{Building, Cover, Fixture, Part, Shape, Sun, Textures, cast_shadow, paint_box};

const CENTRE: Vec2 = Vec2::new(DESIGN / 2.0, DESIGN / 2.0);

/// Clay tiles (orange to brown), slates, concrete tiles: the roofs of France seen from above.
const PITCHED_ROOFS: [Rgb; 9] = [
    [182.0, 96.0, 64.0],
    [165.0, 82.0, 58.0],
    [192.0, 118.0, 80.0],
    [150.0, 92.0, 70.0],
    [128.0, 78.0, 62.0],
    [96.0, 100.0, 110.0],
    [112.0, 115.0, 121.0],
    [122.0, 116.0, 112.0],
    [172.0, 104.0, 78.0],
];
/// Gravel, bitumen, white membrane, grey concrete, a planted roof.
const FLAT_ROOFS: [Rgb; 6] = [
    [168.0, 163.0, 152.0],
    [92.0, 90.0, 88.0],
    [208.0, 207.0, 201.0],
    [140.0, 140.0, 137.0],
    [104.0, 124.0, 74.0],
    [150.0, 128.0, 110.0],
];
const LAWNS: [Rgb; 4] = [
    [92.0, 122.0, 58.0],
    [104.0, 128.0, 66.0],
    [80.0, 106.0, 54.0],
    [118.0, 130.0, 74.0],
];
const DRY_GRASS: [Rgb; 3] = [[148.0, 142.0, 96.0], [130.0, 128.0, 82.0], [120.0, 112.0, 84.0]];
const YARDS: [Rgb; 4] = [
    [178.0, 168.0, 146.0],
    [152.0, 150.0, 144.0],
    [196.0, 186.0, 164.0],
    [134.0, 124.0, 112.0],
];
const CARS: [Rgb; 8] = [
    [225.0, 225.0, 222.0],
    [170.0, 172.0, 176.0],
    [40.0, 42.0, 46.0],
    [150.0, 30.0, 30.0],
    [40.0, 62.0, 120.0],
    [90.0, 92.0, 96.0],
    [205.0, 205.0, 200.0],
    [120.0, 124.0, 110.0],
];
const FOLIAGE: [Rgb; 4] = [
    [52.0, 78.0, 38.0],
    [64.0, 88.0, 44.0],
    [44.0, 64.0, 42.0],
    [72.0, 92.0, 52.0],
];

/// Renders one tile of `size` × `size` pixels as 8-bit RGB.
pub fn render(class: RoofClass, seed: u64, size: usize) -> Vec<u8> {
    let mut rng = SplitMix64::new(seed ^ class.salt());
    let sun = Sun::random(&mut rng);
    let tex = Textures::new(&mut rng.fork());
    let grain_seed = rng.next_u64();
    let scene = Scene::compose(class, &mut rng, &sun);
    let mut canvas = Canvas::new(size);
    scene.draw(&mut canvas, &sun, &tex);
    canvas.into_rgb8(grain_seed)
}

/// The building a tile of `(class, seed)` is about, as [`render`] places it.
#[cfg(test)]
pub(crate) fn main_building(class: RoofClass, seed: u64) -> Building {
    let mut rng = SplitMix64::new(seed ^ class.salt());
    let sun = Sun::random(&mut rng);
    let _textures = rng.fork();
    let _grain = rng.next_u64();
    Scene::compose(class, &mut rng, &sun).buildings.swap_remove(0)
}

struct Road {
    frame: Frame,
    sidewalk: f32,
    centre_line: bool,
}

struct Tree {
    centre: Vec2,
    radius: f32,
    colour: Rgb,
    height: f32,
}

struct Scene {
    lawn: Rgb,
    dry: Rgb,
    yard: Option<(Vec<Frame>, Rgb)>,
    road: Option<Road>,
    driveway: Option<(Frame, Rgb)>,
    pool: Option<Frame>,
    cars: Vec<(Frame, Rgb)>,
    /// The main building first, then an annex and neighbours.
    buildings: Vec<Building>,
    trees: Vec<Tree>,
}

impl Scene {
    fn compose(class: RoofClass, rng: &mut SplitMix64, sun: &Sun) -> Self {
        let centre = CENTRE + Vec2::new(rng.jitter(7.0), rng.jitter(7.0));
        let mut buildings = main_buildings(class, rng, centre);
        let main = buildings[0].clone();
        let mut obstacles: Vec<Frame> = buildings
            .iter()
            .flat_map(|b| b.parts.iter().map(|p| p.frame))
            .collect();

        let road = rng.chance(0.6).then(|| place_road(rng, &obstacles)).flatten();
        let yard = rng.chance(0.45).then(|| {
            let margin = rng.range(4.0, 12.0);
            let frames = main
                .parts
                .iter()
                .map(|p| p.frame.grown(margin))
                .collect::<Vec<_>>();
            (frames, pick_varied(rng, &YARDS, 0.05))
        });
        let driveway = road.as_ref().and_then(|road| {
            rng.chance(0.6).then(|| {
                let normal = road.frame.axis.perp();
                let side = if (road.frame.centre - centre).dot(normal) > 0.0 {
                    1.0
                } else {
                    -1.0
                };
                let start = centre + road.frame.axis * rng.jitter(20.0);
                let end_distance = (road.frame.centre - start).dot(normal) * side;
                let frame = Frame {
                    centre: start + normal * (side * end_distance * 0.5),
                    axis: normal,
                    hu: end_distance * 0.5,
                    hv: rng.range(5.0, 7.0),
                };
                (frame, pick_varied(rng, &YARDS, 0.05))
            })
        });
        if let Some(road) = &road {
            obstacles.push(road.frame.grown(road.sidewalk));
        }

        let pool = rng.chance(0.18).then(|| place_pool(rng, &obstacles)).flatten();
        if let Some(pool) = pool {
            obstacles.push(pool.grown(3.0));
        }

        for _ in 0..rng.below(4) {
            if let Some(neighbour) = place_neighbour(rng, &obstacles, main.parts[0].frame.axis) {
                obstacles.extend(neighbour.parts.iter().map(|p| p.frame));
                buildings.push(neighbour);
            }
        }

        let cars = place_cars(
            rng,
            road.as_ref(),
            driveway.as_ref().map(|(frame, _)| frame),
            &main,
        );
        let trees = place_trees(rng, sun, &main, &obstacles[main.parts.len()..]);

        Self {
            lawn: pick_varied(rng, &LAWNS, 0.06),
            dry: rng_pick(rng, &DRY_GRASS),
            yard,
            road,
            driveway,
            pool,
            cars,
            buildings,
            trees,
        }
    }

    fn draw(&self, canvas: &mut Canvas, sun: &Sun, tex: &Textures) {
        let zoom = canvas.zoom();
        canvas.paint_all(|p, px| {
            let dryness = (tex.broad.at(p) * 1.4 + 0.35).clamp(0.0, 1.0);
            let base = mix(self.lawn, self.dry, dryness);
            let texture = 1.0 + 0.1 * tex.mid.at(p) + 0.07 * tex.fine.at(p) + 0.08 * tex.patch.at(p);
            *px = scale(base, texture);
        });
        if let Some((frames, colour)) = &self.yard {
            let bounds = frames.iter().map(Frame::bounds).reduce(Bounds::union);
            if let Some(bounds) = bounds {
                canvas.paint(bounds, |p, px| {
                    let sd = frames.iter().map(|f| f.sd(p)).fold(f32::NEG_INFINITY, f32::max);
                    let cover = coverage(sd * zoom);
                    if cover > 0.0 {
                        *px = mix(
                            *px,
                            scale(*colour, 1.0 + 0.06 * tex.fine.at(p) + 0.05 * tex.mid.at(p)),
                            cover,
                        );
                    }
                });
            }
        }
        if let Some(road) = &self.road {
            draw_road(canvas, road, tex);
        }
        if let Some((drive, colour)) = &self.driveway {
            paint_box(canvas, *drive, |p, _| scale(*colour, 1.0 + 0.06 * tex.fine.at(p)));
        }
        if let Some(pool) = self.pool {
            draw_pool(canvas, pool, sun, tex);
        }
        for building in &self.buildings {
            building.draw_shadow(canvas, sun);
        }
        for (car, colour) in &self.cars {
            draw_car(canvas, *car, *colour, sun);
        }
        // Neighbours first, so that an annex or the main roof is never hidden by them.
        for building in self.buildings.iter().rev() {
            building.draw(canvas, sun, tex);
        }
        for tree in &self.trees {
            let shadow_centre = tree.centre + sun.shadow(tree.height);
            let radius = tree.radius;
            cast_shadow(canvas, Bounds::circle(shadow_centre, radius * 1.3), |p| {
                radius * (1.0 + 0.22 * tex.mid.at(p * 0.6)) - (p - shadow_centre).length()
            });
        }
        for tree in &self.trees {
            draw_tree(canvas, tree, sun, tex);
        }
    }
}

/// Cars parked along the street, and sometimes one on the driveway.
fn place_cars(
    rng: &mut SplitMix64,
    road: Option<&Road>,
    driveway: Option<&Frame>,
    main: &Building,
) -> Vec<(Frame, Rgb)> {
    let main_frames: Vec<Frame> = main.parts.iter().map(|p| p.frame).collect();
    let mut cars = Vec::new();
    if let Some(road) = road {
        for _ in 0..rng.below(4) {
            let lane = if rng.chance(0.5) { 0.5 } else { -0.5 } * road.frame.hv;
            let u = rng.jitter(110.0);
            let car = road.frame.sub(
                u,
                lane + rng.jitter(1.0),
                rng.range(13.0, 15.5),
                rng.range(5.6, 6.3),
            );
            if cars
                .iter()
                .all(|(other, _): &(Frame, Rgb)| (other.centre - car.centre).length() > 34.0)
            {
                cars.push((car, rng_pick(rng, &CARS)));
            }
        }
    }
    if let Some(drive) = driveway {
        // Parked on the driveway, between the house and the street.
        let car = drive.sub(drive.hu * rng.range(0.0, 0.7), 0.0, rng.range(13.0, 15.5), 5.8);
        if rng.chance(0.5) && clear_of(&main_frames, &car, 2.0) {
            cars.push((car, rng_pick(rng, &CARS)));
        }
    }
    cars
}

/// Trees in the gardens, clear of the main roof (neither crown nor shadow on it) and of everything else.
fn place_trees(rng: &mut SplitMix64, sun: &Sun, main: &Building, others: &[Frame]) -> Vec<Tree> {
    let mut trees = Vec::new();
    for _ in 0..rng.below(9) {
        let radius = rng.range(7.0, 20.0);
        let tree_centre = Vec2::new(rng.range(-8.0, DESIGN + 8.0), rng.range(-8.0, DESIGN + 8.0));
        let height = radius * rng.range(1.2, 1.8);
        let shadow_end = tree_centre + sun.shadow(height);
        let clear_of_main = main.sd(tree_centre) < -(radius + 5.0) && main.sd(shadow_end) < -(radius + 3.0);
        let clear_of_rest = others.iter().all(|f| f.sd(tree_centre) < -radius * 0.4);
        if clear_of_main && clear_of_rest {
            trees.push(Tree {
                centre: tree_centre,
                radius,
                colour: rng_pick(rng, &FOLIAGE),
                height,
            });
        }
    }

    trees
}

fn rng_pick(rng: &mut SplitMix64, items: &[Rgb]) -> Rgb {
    rng.pick(items)
}

fn pick_varied(rng: &mut SplitMix64, items: &[Rgb], amount: f32) -> Rgb {
    let colour = rng.pick(items);
    vary(rng, colour, amount)
}

/// A colour a few per cent off, channel by channel, so that no two roofs or lawns are quite the same.
fn vary(rng: &mut SplitMix64, colour: Rgb, amount: f32) -> Rgb {
    let k = 1.0 + rng.jitter(amount);
    [
        colour[0] * k * (1.0 + rng.jitter(amount * 0.5)),
        colour[1] * k * (1.0 + rng.jitter(amount * 0.5)),
        colour[2] * k * (1.0 + rng.jitter(amount * 0.5)),
    ]
}

fn pitched_cover(rng: &mut SplitMix64) -> Cover {
    Cover::Pitched {
        albedo: pick_varied(rng, &PITCHED_ROOFS, 0.08),
        pitch: rng.range(0.6, 1.0),
        course: rng.range(2.4, 3.4),
    }
}

fn flat_cover(rng: &mut SplitMix64) -> Cover {
    let albedo = pick_varied(rng, &FLAT_ROOFS, 0.06);
    let parapet = if rng.chance(0.5) {
        scale(albedo, 1.18)
    } else {
        vary(rng, [186.0, 184.0, 178.0], 0.05)
    };
    Cover::Flat {
        albedo,
        parapet,
        parapet_width: rng.range(1.2, 2.6),
    }
}

/// A frame turned a quarter from `base`: its `u` axis runs along `base`'s `v` axis.
fn across(base: &Frame, u: f32, v: f32, hu: f32, hv: f32) -> Frame {
    Frame {
        centre: base.point(u, v),
        axis: base.axis.perp(),
        hu,
        hv,
    }
}

/// The building the tile is about, and sometimes a low annex (garage) that keeps the class readable.
fn main_buildings(class: RoofClass, rng: &mut SplitMix64, centre: Vec2) -> Vec<Building> {
    let jitter = rng.jitter(10.0_f32.to_radians());
    let mut buildings = match class {
        RoofClass::NorthSouth => vec![ridged_house(rng, centre, jitter)],
        RoofClass::EastWest => vec![ridged_house(rng, centre, FRAC_PI_2 + jitter)],
        RoofClass::Flat => vec![flat_block(rng, centre)],
        RoofClass::Other => {
            let angle = jitter + rng.pick(&[0.0, FRAC_PI_2]);
            vec![complex_house(rng, centre, angle)]
        }
    };
    let main = &buildings[0];
    if matches!(class, RoofClass::NorthSouth | RoofClass::EastWest) && rng.chance(0.25) {
        let body = main.parts[0].frame;
        let (hu, hv) = (rng.range(8.0, 13.0), rng.range(9.0, body.hv.min(14.0)));
        let end = if rng.chance(0.5) { 1.0 } else { -1.0 };
        let frame = body.sub(end * (body.hu + hu - 0.5), rng.jitter(body.hv - hv), hu, hv);
        let mut cover = flat_cover(rng);
        if let Cover::Flat { albedo, .. } = &mut cover {
            // Garages are rarely planted or white: keep the annex sober so the house stays the subject.
            *albedo = vary(rng, [132.0, 130.0, 126.0], 0.08);
        }
        buildings.push(Building {
            parts: vec![Part {
                frame,
                shape: Shape::Gable,
            }],
            cover,
            height: 6.0,
            fixtures: vec![],
        });
    }
    buildings
}

/// A house with one ridge along `angle` (0: the ridge runs east–west).
fn ridged_house(rng: &mut SplitMix64, centre: Vec2, angle: f32) -> Building {
    let hv = rng.range(19.0, 30.0);
    let hu = (hv * rng.range(1.25, 2.1)).min(64.0);
    let shape = if hu >= 1.55 * hv && rng.chance(0.3) {
        Shape::Hip
    } else {
        Shape::Gable
    };
    let frame = Frame::new(centre, angle, hu, hv);
    let cover = pitched_cover(rng);
    let part = Part { frame, shape };
    let mut fixtures = Vec::new();
    let usable = if shape == Shape::Hip { hu - hv } else { hu - 4.0 };
    if rng.chance(0.5) {
        let colour = if rng.chance(0.5) {
            vary(rng, [150.0, 82.0, 64.0], 0.1)
        } else {
            [170.0, 166.0, 158.0]
        };
        let size = rng.range(2.2, 3.4);
        let chimney = frame.sub(
            rng.jitter(usable * 0.8),
            rng.jitter(hv * 0.5),
            size,
            size * rng.range(0.8, 1.3),
        );
        fixtures.push(Fixture::Chimney {
            frame: chimney,
            colour,
        });
    }
    // `v > 0` is the south slope when the ridge runs east–west, the west slope when it runs north–south:
    // the sunny side, where owners put their panels.
    if rng.chance(0.22) {
        let columns = rng.range(3.0, 7.0).min(usable * 2.0 / 6.6).floor().max(2.0);
        let half_u = columns * 3.3;
        let rows = if rng.chance(0.5) { 2 } else { 1 };
        let half_v = f32::from(rows) * 4.8;
        let frame = frame.sub(
            rng.jitter((usable - half_u).max(0.0)),
            hv * 0.52,
            half_u,
            half_v.min(hv * 0.4),
        );
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "2 to 7 columns"
        )]
        let columns = columns as u8;
        fixtures.push(Fixture::Panels {
            part: 0,
            frame,
            columns,
            rows,
        });
    }
    if rng.chance(0.35) {
        let side = if rng.chance(0.5) { 1.0 } else { -1.0 };
        for _ in 0..=rng.below(3) {
            let skylight = frame.sub(
                rng.jitter(usable * 0.85),
                side * hv * rng.range(0.35, 0.6),
                2.6,
                3.8,
            );
            fixtures.push(Fixture::Skylight {
                part: 0,
                frame: skylight,
            });
        }
    }
    Building {
        parts: vec![part],
        cover,
        height: rng.range(9.0, 16.0),
        fixtures,
    }
}

fn flat_block(rng: &mut SplitMix64, centre: Vec2) -> Building {
    let angle = rng.range(0.0, PI);
    let hu = rng.range(28.0, 60.0);
    let hv = rng.range(22.0, 44.0_f32.min(hu));
    let body = Frame::new(centre, angle, hu, hv);
    let mut parts = vec![Part {
        frame: body,
        shape: Shape::Gable,
    }];
    if rng.chance(0.35) {
        let (wu, wv) = (rng.range(10.0, hu * 0.6), rng.range(12.0, 26.0));
        let su = if rng.chance(0.5) { 1.0 } else { -1.0 };
        let sv = if rng.chance(0.5) { 1.0 } else { -1.0 };
        parts.push(Part {
            frame: body.sub(su * (hu - wu), sv * (hv + wv - 2.0), wu, wv),
            shape: Shape::Gable,
        });
    }
    let mut fixtures = Vec::new();
    for _ in 0..rng.below(5) {
        let (fu, fv) = (rng.range(2.5, 7.0), rng.range(2.0, 4.5));
        let unit = body.sub(rng.jitter(hu - fu - 5.0), rng.jitter(hv - fv - 5.0), fu, fv);
        fixtures.push(Fixture::Unit {
            frame: unit,
            height: rng.range(1.5, 4.0),
        });
    }
    Building {
        parts,
        cover: flat_cover(rng),
        height: rng.range(10.0, 22.0),
        fixtures,
    }
}

/// Roofs that have no single orientation: pyramids, L, T, cross and U plans.
fn complex_house(rng: &mut SplitMix64, centre: Vec2, angle: f32) -> Building {
    let pick_shape = |rng: &mut SplitMix64, frame: &Frame| {
        if frame.hu >= frame.hv * 1.3 && rng.chance(0.4) {
            Shape::Hip
        } else {
            Shape::Gable
        }
    };
    let variant = rng.below(5);
    let parts = if variant == 0 {
        let half = rng.range(24.0, 38.0);
        vec![Part {
            frame: Frame::new(centre, angle, half, half),
            shape: Shape::Hip,
        }]
    } else {
        let body_half_width = rng.range(15.0, 23.0);
        let body_half_length = rng.range(36.0, 52.0);
        let body = Frame::new(centre, angle, body_half_length, body_half_width);
        let hv_b = rng.range(13.0, body_half_width);
        let reach = rng.range(16.0, 32.0);
        let side = if rng.chance(0.5) { 1.0 } else { -1.0 };
        let end = if rng.chance(0.5) { 1.0 } else { -1.0 };
        // Wings along the body's `v` axis; `reach` is how far a wing sticks out past the body's side.
        let wing = |u: f32, side: f32, reach: f32| {
            across(&body, u, side * reach * 0.5, body_half_width + reach * 0.5, hv_b)
        };
        let mut wings = match variant {
            1 => vec![wing(end * (body_half_length - hv_b), side, reach)],
            2 => vec![wing(rng.jitter(body_half_length * 0.3), side, reach)],
            3 => {
                let other = rng.range(12.0, 26.0);
                vec![across(
                    &body,
                    rng.jitter(body_half_length * 0.35),
                    side * (reach - other) * 0.5,
                    body_half_width + (reach + other) * 0.5,
                    hv_b,
                )]
            }
            _ => vec![
                wing(body_half_length - hv_b, side, reach),
                wing(-(body_half_length - hv_b), side, reach),
            ],
        };
        let mut parts = vec![Part {
            frame: body,
            shape: pick_shape(rng, &body),
        }];
        for frame in wings.drain(..) {
            let shape = pick_shape(rng, &frame);
            parts.push(Part { frame, shape });
        }
        // Keep the composition centred on the tile rather than on the body.
        let bounds = parts.iter().map(|p| p.frame.bounds()).reduce(Bounds::union);
        if let Some(bounds) = bounds {
            let shift = centre - (bounds.min + bounds.max) * 0.5;
            for part in &mut parts {
                part.frame = part.frame.shifted(shift);
            }
        }
        parts
    };
    let mut fixtures = Vec::new();
    if rng.chance(0.5) {
        let body = parts[0].frame;
        let chimney = body.sub(rng.jitter(body.hu * 0.5), rng.jitter(body.hv * 0.4), 2.8, 2.8);
        fixtures.push(Fixture::Chimney {
            frame: chimney,
            colour: vary(rng, [150.0, 82.0, 64.0], 0.1),
        });
    }
    Building {
        parts,
        cover: pitched_cover(rng),
        height: rng.range(9.0, 16.0),
        fixtures,
    }
}

/// A street passing beside the main building, if one fits in the tile without touching it.
fn place_road(rng: &mut SplitMix64, obstacles: &[Frame]) -> Option<Road> {
    let angle = rng.pick(&[0.0, FRAC_PI_2]) + rng.jitter(18.0_f32.to_radians());
    let axis = Vec2::from_angle(angle);
    let normal = axis.perp();
    let half_width = rng.range(12.0, 20.0);
    let sidewalk = rng.range(3.5, 7.0);
    let side = if rng.chance(0.5) { 1.0 } else { -1.0 };
    let reach = obstacles
        .iter()
        .flat_map(Frame::corners)
        .map(|corner| (corner - CENTRE).dot(normal) * side)
        .fold(0.0_f32, f32::max);
    let offset = reach + rng.range(8.0, 24.0) + sidewalk + half_width;
    // The road must show at least a lane's width inside the tile.
    if offset - half_width - sidewalk > DESIGN * 0.5 - 12.0 {
        return None;
    }
    let frame = Frame {
        centre: CENTRE + normal * (side * offset),
        axis,
        hu: DESIGN * 1.5,
        hv: half_width,
    };
    Some(Road {
        frame,
        sidewalk,
        centre_line: half_width > 14.0 && rng.chance(0.7),
    })
}

fn clear_of(obstacles: &[Frame], frame: &Frame, gap: f32) -> bool {
    let grown = frame.grown(gap);
    let probes: Vec<Vec2> = grown
        .corners()
        .into_iter()
        .chain([
            grown.centre,
            grown.point(grown.hu, 0.0),
            grown.point(-grown.hu, 0.0),
        ])
        .chain([grown.point(0.0, grown.hv), grown.point(0.0, -grown.hv)])
        .collect();
    obstacles
        .iter()
        .all(|o| probes.iter().all(|&p| o.sd(p) < 0.0) && o.corners().iter().all(|&c| grown.sd(c) < 0.0))
}

fn place_pool(rng: &mut SplitMix64, obstacles: &[Frame]) -> Option<Frame> {
    for _ in 0..12 {
        let centre = Vec2::new(rng.range(20.0, DESIGN - 20.0), rng.range(20.0, DESIGN - 20.0));
        let frame = Frame::new(
            centre,
            rng.pick(&[0.0, FRAC_PI_2]) + rng.jitter(0.2),
            rng.range(12.0, 20.0),
            rng.range(6.0, 10.0),
        );
        if clear_of(obstacles, &frame, 6.0) {
            return Some(frame);
        }
    }
    None
}

/// A house or block whose middle lies near the tile's edge, so that it is seen only in part.
fn place_neighbour(rng: &mut SplitMix64, obstacles: &[Frame], main_axis: Vec2) -> Option<Building> {
    for _ in 0..16 {
        let direction = Vec2::from_angle(rng.range(0.0, 2.0 * PI));
        let centre = CENTRE + direction * rng.range(95.0, 135.0);
        let angle = main_axis.y.atan2(main_axis.x) + rng.pick(&[0.0, FRAC_PI_2]) + rng.jitter(0.15);
        let hv = rng.range(17.0, 28.0);
        let frame = Frame::new(centre, angle, hv * rng.range(1.2, 1.9), hv);
        if !clear_of(obstacles, &frame, 6.0) {
            continue;
        }
        let (cover, shape) = if rng.chance(0.25) {
            (flat_cover(rng), Shape::Gable)
        } else {
            let shape = if rng.chance(0.3) { Shape::Hip } else { Shape::Gable };
            (pitched_cover(rng), shape)
        };
        return Some(Building {
            parts: vec![Part { frame, shape }],
            cover,
            height: rng.range(9.0, 16.0),
            fixtures: vec![],
        });
    }
    None
}

fn draw_road(canvas: &mut Canvas, road: &Road, tex: &crate::roof::Textures) {
    let zoom = canvas.zoom();
    let outer = road.frame.grown(road.sidewalk);
    let sidewalk: Rgb = [158.0, 156.0, 150.0];
    let asphalt: Rgb = [84.0, 85.0, 89.0];
    canvas.paint(outer.bounds(), |p, px| {
        let l = road.frame.local(p);
        let outer_cover = coverage(outer.sd(p) * zoom);
        if outer_cover <= 0.0 {
            return;
        }
        let grit = 1.0 + 0.07 * tex.fine.at(p) + 0.05 * tex.mid.at(p * 2.0);
        let on_road = coverage((road.frame.hv - l.y.abs()) * zoom);
        let mut colour = mix(
            scale(sidewalk, grit),
            scale(asphalt, grit + 0.06 * tex.patch.at(p)),
            on_road,
        );
        // The kerb: a thin dark line between sidewalk and roadway.
        colour = scale(
            colour,
            1.0 - 0.3 * coverage((0.6 - (road.frame.hv - l.y.abs()).abs()) * zoom),
        );
        if road.centre_line && (l.x + 400.0) % 22.0 < 11.0 {
            colour = mix(
                colour,
                [220.0, 220.0, 214.0],
                coverage((0.7 - l.y.abs()) * zoom) * 0.9,
            );
        }
        *px = mix(*px, colour, outer_cover);
    });
}

fn draw_car(canvas: &mut Canvas, car: Frame, colour: Rgb, sun: &Sun) {
    let zoom = canvas.zoom();
    let shadow = car.shifted(sun.shadow(4.0));
    cast_shadow(canvas, shadow.bounds(), |p| shadow.sd(p));
    let body = scale(colour, sun.flat_light());
    let glass = scale([38.0, 44.0, 52.0], sun.flat_light());
    // Front of the car at `u > 0`; windscreen and rear window leave the roof in between.
    let windscreen = car.sub(car.hu * 0.22, 0.0, car.hu * 0.14, car.hv * 0.8);
    let rear = car.sub(-car.hu * 0.5, 0.0, car.hu * 0.1, car.hv * 0.75);
    paint_box(canvas, car, |p, sd| {
        let glazed = coverage(windscreen.sd(p) * zoom).max(coverage(rear.sd(p) * zoom));
        let rim = 1.0 - 0.35 * (1.0 - (sd * zoom / 1.3).clamp(0.0, 1.0));
        scale(mix(body, glass, glazed), rim)
    });
}

fn draw_pool(canvas: &mut Canvas, pool: Frame, sun: &Sun, tex: &Textures) {
    let zoom = canvas.zoom();
    let coping = pool.grown(1.6);
    let water: Rgb = [72.0, 168.0, 186.0];
    let inner_shadow = sun.toward() * 2.0;
    paint_box(canvas, coping, |p, _| {
        let in_water = coverage(pool.sd(p) * zoom);
        let shaded = coverage((1.2 - pool.sd(p + inner_shadow)) * zoom) * in_water;
        let ripples = 1.0 + 0.06 * tex.fine.at(p * 0.7) + 0.05 * tex.mid.at(p);
        let colour = mix(
            scale([214.0, 210.0, 200.0], sun.flat_light()),
            scale(water, ripples),
            in_water,
        );
        scale(colour, 1.0 - 0.25 * shaded)
    });
}

fn draw_tree(canvas: &mut Canvas, tree: &Tree, sun: &Sun, tex: &Textures) {
    let zoom = canvas.zoom();
    let r = tree.radius;
    canvas.paint(Bounds::circle(tree.centre, r * 1.3), |p, px| {
        let d = p - tree.centre;
        let edge = r * (1.0 + 0.22 * tex.mid.at(p * 0.6));
        let cover = coverage((edge - d.length()) * zoom);
        if cover <= 0.0 {
            return;
        }
        // The crown as a dome: its slope at `d` lights the south-west side and darkens the north-east.
        let t = (d.length() / edge).min(0.95);
        let rise = t / (1.0 - t * t).sqrt();
        let gradient = if d.length() > 1e-3 {
            d * (-rise / d.length())
        } else {
            Vec2::new(0.0, 0.0)
        };
        let clumps = 1.0 + 0.22 * tex.fine.at(p * 0.8) + 0.12 * tex.mid.at(p * 1.8);
        let colour = scale(tree.colour, sun.light(gradient * 0.8) * clumps);
        *px = mix(*px, colour, cover);
    });
}
