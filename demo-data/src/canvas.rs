//! The pixel buffer, value noise for textures, and PNG encoding.
//!
//! Scenes are described in *design units*: a 192 × 192 square whatever the output size, so that a seed gives
//! the same picture at every resolution. The canvas maps pixel centres to design units and back.

use std::ops::Range;

use crate::geom::{Bounds, Vec2};
use crate::rng::{SplitMix64, mix64};

/// Linear-ish RGB in `0.0..=255.0`; values outside are clamped at encoding.
pub type Rgb = [f32; 3];

/// The side of the design square, in design units.
pub const DESIGN: f32 = 192.0;

pub fn mix(a: Rgb, b: Rgb, t: f32) -> Rgb {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

pub fn scale(c: Rgb, k: f32) -> Rgb {
    [c[0] * k, c[1] * k, c[2] * k]
}

pub fn tint(c: Rgb, k: Rgb) -> Rgb {
    [c[0] * k[0], c[1] * k[1], c[2] * k[2]]
}

#[expect(
    clippy::cast_precision_loss,
    reason = "picture sizes and counts stay far below 2^24"
)]
pub fn to_f32(i: usize) -> f32 {
    i as f32
}

pub struct Canvas {
    size: usize,
    /// Pixels per design unit.
    zoom: f32,
    pixels: Vec<Rgb>,
}

impl Canvas {
    pub fn new(size: usize) -> Self {
        Self {
            size,
            zoom: to_f32(size) / DESIGN,
            pixels: vec![[0.0; 3]; size * size],
        }
    }

    /// Pixels per design unit: multiply a signed distance by it before [`coverage`].
    pub fn zoom(&self) -> f32 {
        self.zoom
    }

    /// Calls `paint` with the design-unit centre of every pixel that `bounds` (design units) touches.
    pub fn paint(&mut self, bounds: Bounds, mut paint: impl FnMut(Vec2, &mut Rgb)) {
        let bounds = bounds.grown(1.0 / self.zoom);
        let xs = self.span(bounds.min.x, bounds.max.x);
        let ys = self.span(bounds.min.y, bounds.max.y);
        for y in ys {
            let row = y * self.size;
            let cy = (to_f32(y) + 0.5) / self.zoom;
            for x in xs.clone() {
                let p = Vec2::new((to_f32(x) + 0.5) / self.zoom, cy);
                paint(p, &mut self.pixels[row + x]);
            }
        }
    }

    pub fn paint_all(&mut self, paint: impl FnMut(Vec2, &mut Rgb)) {
        self.paint(
            Bounds {
                min: Vec2::new(0.0, 0.0),
                max: Vec2::new(DESIGN, DESIGN),
            },
            paint,
        );
    }

    /// Pixel indices whose centres may lie in `lo..hi` (design units), clamped to the picture.
    fn span(&self, lo: f32, hi: f32) -> Range<usize> {
        let size = to_f32(self.size);
        let lo = (lo * self.zoom).floor().clamp(0.0, size);
        let hi = (hi * self.zoom).ceil().clamp(0.0, size);
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "clamped to 0..=size"
        )]
        let range = (lo as usize)..(hi as usize);
        range
    }

    /// The finished picture as 8-bit RGB: a light blur (aerial imagery is never pixel-sharp) and sensor grain.
    pub fn into_rgb8(self, grain_seed: u64) -> Vec<u8> {
        let n = self.size;
        let at = |x: usize, y: usize| self.pixels[y * n + x];
        let mut out = Vec::with_capacity(n * n * 3);
        for y in 0..n {
            for x in 0..n {
                let centre = at(x, y);
                let neighbours = [
                    at(x.saturating_sub(1), y),
                    at((x + 1).min(n - 1), y),
                    at(x, y.saturating_sub(1)),
                    at(x, (y + 1).min(n - 1)),
                ];
                let grain = hash_unit(grain_seed, x, y) * 5.0;
                for c in 0..3 {
                    let blurred = centre[c] * 0.6 + neighbours.iter().map(|p| p[c]).sum::<f32>() * 0.1;
                    out.push(to_u8(blurred + grain));
                }
            }
        }
        out
    }
}

#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "clamped to 0..=255"
)]
fn to_u8(value: f32) -> u8 {
    // Adding one half then truncating rounds the (non-negative) value without a libm call.
    (value + 0.5).clamp(0.0, 255.0) as u8
}

/// How much of a pixel a shape covers, from its signed distance in pixels at the pixel centre.
pub fn coverage(sd_pixels: f32) -> f32 {
    (sd_pixels + 0.5).clamp(0.0, 1.0)
}

/// A stateless hash of a pixel position to `[-1, 1)`, for grain that does not consume the scene's generator.
pub fn hash_unit(seed: u64, x: usize, y: usize) -> f32 {
    let key = seed ^ (u64::try_from(x).unwrap_or(0) << 32) ^ u64::try_from(y).unwrap_or(0);
    let bits = u32::try_from(mix64(key) >> 40).unwrap_or(0);
    #[expect(clippy::cast_precision_loss, reason = "a 24-bit integer is exact in f32")]
    let unit = bits as f32 / 16_777_216.0;
    unit * 2.0 - 1.0
}

/// Smooth value noise on a square lattice, in `[-1, 1]`, wrapping so that any coordinate is valid.
pub struct Noise {
    /// Lattice side minus one; the side is a power of two so that wrapping is a mask.
    mask: u32,
    inverse_period: f32,
    lattice: Vec<f32>,
}

/// Added to lattice coordinates so that they stay positive: truncation is then `floor`, without a libm call.
const LATTICE_OFFSET: f32 = 4096.0;

impl Noise {
    pub fn new(rng: &mut SplitMix64, period: f32) -> Self {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "small positive count"
        )]
        let cells = ((DESIGN / period).ceil() as u32 + 2).next_power_of_two();
        let lattice = (0..cells * cells).map(|_| rng.jitter(1.0)).collect();
        Self {
            mask: cells - 1,
            inverse_period: 1.0 / period,
            lattice,
        }
    }

    pub fn at(&self, p: Vec2) -> f32 {
        let fx = (p.x * self.inverse_period + LATTICE_OFFSET).max(0.0);
        let fy = (p.y * self.inverse_period + LATTICE_OFFSET).max(0.0);
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "positive by the offset"
        )]
        let (x0, y0) = (fx as u32, fy as u32);
        #[expect(clippy::cast_precision_loss, reason = "lattice coordinates stay below 2^24")]
        let (tx, ty) = (smooth(fx - x0 as f32), smooth(fy - y0 as f32));
        let side = self.mask as usize + 1;
        let (ix0, iy0) = ((x0 & self.mask) as usize, (y0 & self.mask) as usize);
        let (ix1, iy1) = (((x0 + 1) & self.mask) as usize, ((y0 + 1) & self.mask) as usize);
        let v = |ix: usize, iy: usize| self.lattice[iy * side + ix];
        let top = v(ix0, iy0) + (v(ix1, iy0) - v(ix0, iy0)) * tx;
        let bottom = v(ix0, iy1) + (v(ix1, iy1) - v(ix0, iy1)) * tx;
        top + (bottom - top) * ty
    }
}

fn smooth(t: f32) -> f32 {
    t * t * (3.0 - 2.0 * t)
}

/// Several octaves of [`Noise`], halving the period and the amplitude each time; about `[-1, 1]`.
pub struct Fbm {
    octaves: Vec<Noise>,
}

impl Fbm {
    pub fn new(rng: &mut SplitMix64, period: f32, octaves: usize) -> Self {
        let mut p = period;
        let octaves = (0..octaves)
            .map(|_| {
                let noise = Noise::new(rng, p);
                p /= 2.0;
                noise
            })
            .collect();
        Self { octaves }
    }

    pub fn at(&self, p: Vec2) -> f32 {
        let mut amplitude = 0.6;
        let mut sum = 0.0;
        for noise in &self.octaves {
            sum += noise.at(p) * amplitude;
            amplitude *= 0.5;
        }
        sum
    }
}

/// Encodes 8-bit RGB as PNG, without any metadata chunk (nothing about how or from what it was made).
pub fn encode_png(size: usize, rgb: &[u8]) -> Vec<u8> {
    let edge = u32::try_from(size).unwrap_or(u32::MAX);
    let mut bytes = Vec::with_capacity(rgb.len() / 2);
    let mut encoder = png::Encoder::new(&mut bytes, edge, edge);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    // Writing into memory has no IO error, and the buffer is `size * size * 3` bytes by construction, so a
    // failure here is a bug in this crate, not a condition a caller could handle.
    let mut writer = encoder
        .write_header()
        .expect("png header for a non-empty RGB8 picture");
    writer
        .write_image_data(rgb)
        .expect("png data of the declared size");
    writer.finish().expect("png stream into memory");
    bytes
}
