//! Synthetic aerial-roof tiles for the four `OpenSolarMap` classes, and a demo labelling project made of them.
//!
//! Tiles are drawn from scratch (no third-party imagery, so the demo is licence-clean) and are a pure
//! function of `(class, seed, size)`: the generator is this crate's own `SplitMix64`, so the bytes do not
//! change when dependencies do. North is up and the sun is in the south-west, so that a citizen can read
//! the orientation from the shade of the slopes and the ridge line between them.
//!
//! ```
//! use demo_data::{RoofClass, render_tile};
//! let png = render_tile(RoofClass::EastWest, 7);
//! assert_eq!(&png[1..4], b"PNG");
//! ```

mod canvas;
mod geom;
mod project;
mod rng;
mod roof;
mod scene;

use std::fmt;
use std::str::FromStr;

pub use project::{PlannedImage, ProjectSpec, plan_project, write_project};

/// Side of a tile in pixels unless asked otherwise.
pub const TILE_SIZE: u32 = 192;

/// The `OpenSolarMap` roof classes; the label ids are the strings of [`RoofClass::id`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RoofClass {
    /// Two slopes facing north and south: the ridge runs east–west.
    NorthSouth,
    /// Two slopes facing east and west: the ridge runs north–south.
    EastWest,
    Flat,
    /// Complex roofs (pyramid, L, T, cross or U plans): no single orientation.
    Other,
}

impl RoofClass {
    pub const ALL: [RoofClass; 4] = [
        RoofClass::NorthSouth,
        RoofClass::EastWest,
        RoofClass::Flat,
        RoofClass::Other,
    ];

    /// The label id used in projects, CSV files and the protocol.
    pub const fn id(self) -> &'static str {
        match self {
            RoofClass::NorthSouth => "north_south",
            RoofClass::EastWest => "east_west",
            RoofClass::Flat => "flat",
            RoofClass::Other => "other",
        }
    }

    /// The label as a French citizen reads it in the widget.
    pub const fn label_fr(self) -> &'static str {
        match self {
            RoofClass::NorthSouth => "Pans au nord et au sud",
            RoofClass::EastWest => "Pans à l’est et à l’ouest",
            RoofClass::Flat => "Toit plat",
            RoofClass::Other => "Autre ou je ne sais pas",
        }
    }

    pub const fn label_en(self) -> &'static str {
        match self {
            RoofClass::NorthSouth => "Slopes facing north and south",
            RoofClass::EastWest => "Slopes facing east and west",
            RoofClass::Flat => "Flat roof",
            RoofClass::Other => "Other, or can’t tell",
        }
    }

    /// Mixed into the seed so that the same seed gives unrelated scenes for different classes.
    const fn salt(self) -> u64 {
        match self {
            RoofClass::NorthSouth => 0x6E6F_7274_685F_736F,
            RoofClass::EastWest => 0x6561_7374_5F77_6573,
            RoofClass::Flat => 0x666C_6174_0000_0001,
            RoofClass::Other => 0x6F74_6865_7200_0002,
        }
    }
}

impl fmt::Display for RoofClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownClass(pub String);

impl fmt::Display for UnknownClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown roof class `{}` (expected north_south, east_west, flat or other)",
            self.0
        )
    }
}

impl std::error::Error for UnknownClass {}

impl FromStr for RoofClass {
    type Err = UnknownClass;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RoofClass::ALL
            .into_iter()
            .find(|class| class.id() == s)
            .ok_or_else(|| UnknownClass(s.to_owned()))
    }
}

/// One [`TILE_SIZE`] tile of `class` as PNG bytes; the same `(class, seed)` always gives the same bytes.
pub fn render_tile(class: RoofClass, seed: u64) -> Vec<u8> {
    render_tile_sized(class, seed, TILE_SIZE)
}

/// A tile of `size` × `size` pixels (at least 16) as PNG bytes. The scene does not depend on the size.
pub fn render_tile_sized(class: RoofClass, seed: u64, size: u32) -> Vec<u8> {
    let size = usize::try_from(size.clamp(16, 4096)).unwrap_or(192);
    canvas::encode_png(size, &scene::render(class, seed, size))
}

/// The raw 8-bit RGB pixels of a tile (rows top to bottom), for callers that encode or compare themselves.
pub fn render_rgb(class: RoofClass, seed: u64, size: u32) -> Vec<u8> {
    let size = usize::try_from(size.clamp(16, 4096)).unwrap_or(192);
    scene::render(class, seed, size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(png_bytes: &[u8]) -> (png::OutputInfo, Vec<u8>) {
        let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut pixels).unwrap();
        pixels.truncate(info.buffer_size());
        (info, pixels)
    }

    #[test]
    fn the_same_seed_gives_the_same_bytes() {
        for class in RoofClass::ALL {
            assert_eq!(render_tile(class, 1234), render_tile(class, 1234), "{class}");
        }
    }

    #[test]
    fn different_seeds_and_classes_give_different_tiles() {
        let tiles: Vec<Vec<u8>> = RoofClass::ALL
            .iter()
            .flat_map(|&class| [render_tile(class, 1), render_tile(class, 2)])
            .collect();
        for (i, a) in tiles.iter().enumerate() {
            for b in &tiles[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn a_tile_decodes_as_rgb_of_the_requested_size() {
        let (info, pixels) = decode(&render_tile(RoofClass::Flat, 9));
        assert_eq!((info.width, info.height), (TILE_SIZE, TILE_SIZE));
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        assert_eq!(pixels.len(), 192 * 192 * 3);

        let (info, _) = decode(&render_tile_sized(RoofClass::Other, 9, 96));
        assert_eq!((info.width, info.height), (96, 96));
    }

    #[test]
    fn the_png_carries_no_text_metadata() {
        let png_bytes = render_tile(RoofClass::NorthSouth, 5);
        for chunk in [b"tEXt", b"zTXt", b"iTXt", b"tIME"] {
            assert!(
                !png_bytes.windows(4).any(|w| w == chunk),
                "{}",
                String::from_utf8_lossy(chunk)
            );
        }
    }

    #[test]
    fn class_ids_round_trip() {
        for class in RoofClass::ALL {
            assert_eq!(class.id().parse::<RoofClass>(), Ok(class));
        }
        assert!("south".parse::<RoofClass>().is_err());
    }

    fn luma(rgb: &[u8], size: usize, p: geom::Vec2) -> f32 {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "inside the tile"
        )]
        let (x, y) = (p.x as usize, p.y as usize);
        let i = (y.min(size - 1) * size + x.min(size - 1)) * 3;
        0.3 * f32::from(rgb[i]) + 0.59 * f32::from(rgb[i + 1]) + 0.11 * f32::from(rgb[i + 2])
    }

    fn median(mut values: Vec<f32>) -> f32 {
        values.sort_by(f32::total_cmp);
        values[values.len() / 2]
    }

    /// Median brightness of points spread over each slope (`v < 0`, then `v > 0`) of the main roof, away
    /// from what stands on it (chimney, skylights, panels).
    fn slopes(class: RoofClass, seed: u64) -> Option<(f32, f32)> {
        let building = scene::main_building(class, seed);
        let frame = building.parts[0].frame;
        let covered = |p: geom::Vec2| {
            building.fixtures.iter().any(|fixture| match *fixture {
                // A chimney's shadow reaches a few units past it; the blur, one pixel past anything.
                roof::Fixture::Chimney { frame, .. } | roof::Fixture::Unit { frame, .. } => {
                    frame.grown(7.0).sd(p) > 0.0
                }
                roof::Fixture::Skylight { frame, .. } | roof::Fixture::Panels { frame, .. } => {
                    frame.grown(2.0).sd(p) > 0.0
                }
            })
        };
        let rgb = render_rgb(class, seed, 192);
        let side = |sign: f32| {
            let mut values = Vec::new();
            for i in -6..=6_i8 {
                for v in [0.25, 0.45, 0.65] {
                    let p = frame.point(f32::from(i) * frame.hu * 0.07, sign * v * frame.hv);
                    if !covered(p) {
                        values.push(luma(&rgb, 192, p));
                    }
                }
            }
            (values.len() >= 5).then(|| median(values))
        };
        Some((side(-1.0)?, side(1.0)?))
    }

    #[test]
    fn the_sunny_slope_is_brighter_than_the_shaded_one() {
        // `v > 0` is the south slope of a north_south roof and the west slope of an east_west one: the sun is
        // in the south-west, so those are the bright ones.
        let mut measured = 0;
        for seed in 0..40 {
            if let Some((north, south)) = slopes(RoofClass::NorthSouth, seed) {
                assert!(
                    south > north * 1.2,
                    "north_south seed {seed}: north {north}, south {south}"
                );
                measured += 1;
            }
            if let Some((east, west)) = slopes(RoofClass::EastWest, seed) {
                assert!(
                    west > east * 1.1,
                    "east_west seed {seed}: east {east}, west {west}"
                );
                measured += 1;
            }
        }
        // Panels may cover a whole slope now and then; most roofs must still have been measured.
        assert!(measured >= 70, "only {measured} roofs measured");
    }
}
