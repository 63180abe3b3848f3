//! Strict intake of an uploaded image: what an owner sends becomes a small, metadata-free tile, or a
//! refusal that names its reason.
//!
//! The owner API and the folder import both call [`accept`]. The steps, in order, each cheap before the
//! next costly one:
//! 1. the file size (`empty`, `too-large`);
//! 2. the format, sniffed from the magic numbers and never from a file name: JPEG, PNG and WebP pass,
//!    anything else is refused saying what it looks like (SVG, HTML, ZIP, GIF, PDF...);
//! 3. the dimensions, read from the header only, so a decompression bomb is refused before a single pixel
//!    buffer is allocated (`too-many-pixels`, `side-too-long`); `image::Limits` are set as well, as a second
//!    line of defence;
//! 4. the decoding, where every error (truncated, corrupt) is a refusal and never a panic;
//! 5. the EXIF orientation is applied (a phone photo must not come out rotated), the image is scaled down
//!    so that its longer side is at most `Limits::tile`, transparency is flattened onto white, and it is
//!    re-encoded from its pixels as an RGB8 JPEG (quality 85; see [`encode`] for why not PNG). Re-encoding from pixels is what guarantees that nothing of
//!    the upload's metadata survives: EXIF, GPS, XMP, ICC profiles, text chunks.
//!
//! This module does no IO: bytes in, bytes out.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder as _, ImageError, ImageFormat, ImageReader, error::LimitErrorKind};

use crate::token::hex;

/// What the intake refuses above. `Default` suits aerial tiles and phone photos alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest file accepted, in bytes.
    pub max_file_bytes: usize,
    /// The longest side accepted, in pixels, before scaling down.
    pub max_side: u32,
    /// The most pixels (width × height) accepted, before scaling down.
    pub max_pixels: u64,
    /// The longest side of the normalised tile: larger images are scaled down to it, smaller ones kept.
    pub tile: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_file_bytes: 20 * 1024 * 1024,
            max_side: 8192,
            max_pixels: 40_000_000,
            tile: 512,
        }
    }
}

/// The formats the intake decodes, as sniffed from the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceFormat {
    Jpeg,
    Png,
    WebP,
}

impl SourceFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jpeg => "jpeg",
            Self::Png => "png",
            Self::WebP => "webp",
        }
    }

    fn image_format(self) -> ImageFormat {
        match self {
            Self::Jpeg => ImageFormat::Jpeg,
            Self::Png => ImageFormat::Png,
            Self::WebP => ImageFormat::WebP,
        }
    }
}

/// What a refused file looks like, when its first bytes say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unsupported {
    Svg,
    Xml,
    Html,
    Gif,
    Pdf,
    Zip,
    Bmp,
    Tiff,
    Heic,
    Avif,
    Unknown,
}

impl Unsupported {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Svg => "svg",
            Self::Xml => "xml",
            Self::Html => "html",
            Self::Gif => "gif",
            Self::Pdf => "pdf",
            Self::Zip => "zip",
            Self::Bmp => "bmp",
            Self::Tiff => "tiff",
            Self::Heic => "heic",
            Self::Avif => "avif",
            Self::Unknown => "unknown",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Svg => "an svg drawing",
            Self::Xml => "an xml document",
            Self::Html => "an html page",
            Self::Gif => "a gif image",
            Self::Pdf => "a pdf document",
            Self::Zip => "a zip archive (or an office document)",
            Self::Bmp => "a bmp image",
            Self::Tiff => "a tiff image",
            Self::Heic => "a heic image",
            Self::Avif => "an avif image",
            Self::Unknown => "no known format",
        }
    }
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

/// Why a file is refused. [`Rejection::code`] is the stable machine code; the message is for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("the file is empty")]
    Empty,
    #[error("the file is {size} bytes, more than the {max} allowed")]
    TooLarge { size: usize, max: usize },
    #[error("unsupported format: this looks like {0}; only jpeg, png and webp images are accepted")]
    UnsupportedFormat(Unsupported),
    #[error("the image is {width} × {height} pixels, more than the {max} pixels allowed")]
    TooManyPixels { width: u32, height: u32, max: u64 },
    #[error("the image is {width} × {height} pixels, a side longer than the {max} allowed")]
    SideTooLong { width: u32, height: u32, max: u32 },
    #[error("the {format} image is truncated or corrupt: {detail}")]
    TruncatedOrCorrupt { format: &'static str, detail: String },
    #[error("the {format} image uses a feature the decoder does not support: {detail}")]
    UnsupportedEncoding { format: &'static str, detail: String },
    #[error("decoding the {format} image would need more memory than allowed")]
    MemoryLimit { format: &'static str },
    /// Re-encoding pixels held in memory: not the file's fault, but it still stores nothing.
    #[error("cannot re-encode the image: {0}")]
    Internal(String),
}

impl Rejection {
    /// A stable code for the API and the logs (kebab-case, never reworded).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::TooLarge { .. } => "too-large",
            Self::UnsupportedFormat(_) => "unsupported-format",
            Self::TooManyPixels { .. } => "too-many-pixels",
            Self::SideTooLong { .. } => "side-too-long",
            Self::TruncatedOrCorrupt { .. } => "truncated-or-corrupt",
            Self::UnsupportedEncoding { .. } => "unsupported-encoding",
            Self::MemoryLimit { .. } => "memory-limit",
            Self::Internal(_) => "internal",
        }
    }

    /// For `unsupported-format`, what the file looks like (`svg`, `zip`, `gif`, `pdf`, ..., `unknown`).
    pub fn looks_like(&self) -> Option<&'static str> {
        match self {
            Self::UnsupportedFormat(what) => Some(what.as_str()),
            _ => None,
        }
    }
}

/// An image that passed the intake, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The normalised tile: RGB8, longer side at most `Limits::tile`, no metadata.
    pub bytes: Vec<u8>,
    /// The media type of `bytes`.
    pub content_type: &'static str,
    /// The tile's width, after orientation and scaling.
    pub width: u32,
    /// The tile's height, after orientation and scaling.
    pub height: u32,
    /// Hex SHA-256 of `bytes`. Two uploads with the same hash normalised to the very same tile: this is
    /// exact-duplicate detection of the tile (the same picture sent again, even as another format or with
    /// other metadata, as long as its pixels come out the same), not a perceptual similarity. The hash
    /// depends on the encoder, so an upgrade of the `image` or `png` crate may change it for new uploads.
    pub content_hash: String,
    /// The format the upload was sniffed as.
    pub source_format: SourceFormat,
}

/// The quality of the normalised JPEG tile: no visible loss on photos at a sixth of the PNG size.
const JPEG_QUALITY: u8 = 85;
/// Memory the decoders may use besides the decoded image itself (JPEG coefficient buffers, PNG rows).
const DECODER_WORKSPACE: u64 = 64 * 1024 * 1024;
/// The most bytes a decoded pixel takes (RGBA, 16 bits a channel).
const MAX_BYTES_PER_PIXEL: u64 = 8;

/// Runs the whole intake on one uploaded file.
pub fn accept(bytes: &[u8], limits: &Limits) -> Result<Accepted, Rejection> {
    if bytes.is_empty() {
        return Err(Rejection::Empty);
    }
    if bytes.len() > limits.max_file_bytes {
        return Err(Rejection::TooLarge {
            size: bytes.len(),
            max: limits.max_file_bytes,
        });
    }
    let format = sniff(bytes).map_err(Rejection::UnsupportedFormat)?;
    let name = format.as_str();
    let corrupt = |error: ImageError| decoding_rejection(name, error);
    if format == SourceFormat::Jpeg && !jpeg_is_complete(bytes) {
        // The JPEG decoder tolerates a missing end and fills the rest of the picture with grey: a half
        // image must not become a label's question.
        return Err(Rejection::TruncatedOrCorrupt {
            format: name,
            detail: "no end-of-image marker after the image data".into(),
        });
    }

    // First only the header: the decoders read the dimensions without allocating the pixels, so that a
    // bomb is refused here. `max_alloc` already bounds what reading the header may allocate.
    let max_alloc = limits
        .max_pixels
        .saturating_mul(MAX_BYTES_PER_PIXEL)
        .saturating_add(DECODER_WORKSPACE);
    let mut header_limits = image::Limits::default();
    header_limits.max_alloc = Some(max_alloc);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.image_format());
    reader.limits(header_limits);
    let mut decoder = reader.into_decoder().map_err(corrupt)?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(Rejection::TooManyPixels {
            width,
            height,
            max: limits.max_pixels,
        });
    }
    if width.max(height) > limits.max_side {
        return Err(Rejection::SideTooLong {
            width,
            height,
            max: limits.max_side,
        });
    }

    // The second line of defence: the decoder itself refuses larger sizes, and the pixel buffer counts
    // against the allocation budget, as `ImageReader::decode` does.
    let mut decode_limits = image::Limits::default();
    decode_limits.max_image_width = Some(limits.max_side);
    decode_limits.max_image_height = Some(limits.max_side);
    decode_limits.max_alloc = Some(max_alloc);
    decode_limits.reserve(decoder.total_bytes()).map_err(corrupt)?;
    decoder.set_limits(decode_limits).map_err(corrupt)?;
    // An unreadable orientation is not worth refusing a picture for: it is then shown as stored.
    let orientation = decoder.orientation().ok();
    let mut image = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    if let Some(orientation) = orientation {
        image.apply_orientation(orientation);
    }

    let (width, height) = tile_size(image.width(), image.height(), limits.tile);
    if (width, height) != (image.width(), image.height()) {
        image = image.thumbnail_exact(width, height);
    }
    let bytes = encode(&flatten(&image))?;
    let content_hash = hex(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref());
    Ok(Accepted {
        bytes,
        content_type: "image/jpeg",
        width,
        height,
        content_hash,
        source_format: format,
    })
}

/// The format from the magic numbers, or what the bytes look like when they are not an accepted image.
fn sniff(bytes: &[u8]) -> Result<SourceFormat, Unsupported> {
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.starts_with(PNG) {
        return Ok(SourceFormat::Png);
    }
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Ok(SourceFormat::Jpeg);
    }
    if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
        return Ok(SourceFormat::WebP);
    }
    Err(recognise(bytes))
}

fn recognise(bytes: &[u8]) -> Unsupported {
    if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        return Unsupported::Gif;
    }
    if bytes.starts_with(b"%PDF-") {
        return Unsupported::Pdf;
    }
    // Local file header, empty archive, spanned archive: also every .docx, .odt, .xlsx.
    if [b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"]
        .iter()
        .any(|magic| bytes.starts_with(*magic))
    {
        return Unsupported::Zip;
    }
    if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        return Unsupported::Tiff;
    }
    if bytes.starts_with(b"BM") && bytes.len() >= 14 {
        return Unsupported::Bmp;
    }
    // ISO base media (HEIF, AVIF): a box size, then `ftyp` and the major brand.
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        return match &bytes[8..12] {
            b"avif" | b"avis" => Unsupported::Avif,
            b"heic" | b"heix" | b"hevc" | b"hevx" | b"mif1" | b"msf1" => Unsupported::Heic,
            _ => Unsupported::Unknown,
        };
    }
    recognise_markup(bytes)
}

/// SVG, HTML and other XML: text starting with `<`, after an optional byte order mark and blank space.
fn recognise_markup(bytes: &[u8]) -> Unsupported {
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    let head = &text[start..text.len().min(start + 4096)];
    if !head.starts_with(b"<") {
        return Unsupported::Unknown;
    }
    let head = head.to_ascii_lowercase();
    let contains = |needle: &[u8]| head.windows(needle.len()).any(|w| w == needle);
    if contains(b"<svg") {
        Unsupported::Svg
    } else if contains(b"<html") || contains(b"<!doctype html") {
        Unsupported::Html
    } else {
        Unsupported::Xml
    }
}

/// Whether a JPEG has an end-of-image marker after its first scan. Inside entropy-coded data a 0xFF byte is
/// always followed by 0x00 or a restart marker, so an `FF D9` past the first start-of-scan is the end (an
/// embedded EXIF thumbnail's own end marker comes before it). Data after the end (a phone's motion photo)
/// is allowed.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let Some(scan) = first_scan(bytes) else {
        return false;
    };
    bytes[scan..].windows(2).any(|w| w == [0xFF, 0xD9])
}

/// The offset of the first start-of-scan segment, walking the marker segments from the start of the file.
fn first_scan(bytes: &[u8]) -> Option<usize> {
    let mut at = 2; // after SOI
    loop {
        // Markers may be preceded by any number of fill bytes 0xFF.
        while bytes.get(at) == Some(&0xFF) && bytes.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        if *bytes.get(at)? != 0xFF {
            return None;
        }
        let marker = *bytes.get(at + 1)?;
        match marker {
            0xDA => return Some(at),
            // Markers without a length: TEM, RSTn.
            0x01 | 0xD0..=0xD7 => at += 2,
            _ => {
                let length = usize::from(u16::from_be_bytes([*bytes.get(at + 2)?, *bytes.get(at + 3)?]));
                at += 2 + length;
            }
        }
    }
}

fn decoding_rejection(format: &'static str, error: ImageError) -> Rejection {
    match error {
        ImageError::Limits(limit) => match limit.kind() {
            LimitErrorKind::DimensionError => Rejection::TruncatedOrCorrupt {
                format,
                detail: "the decoder found larger dimensions than the header".into(),
            },
            _ => Rejection::MemoryLimit { format },
        },
        ImageError::Unsupported(unsupported) => Rejection::UnsupportedEncoding {
            format,
            detail: unsupported.to_string().to_lowercase(),
        },
        // Decoding errors, and IO errors, which from an in-memory buffer all mean "it ended too soon".
        other => Rejection::TruncatedOrCorrupt {
            format,
            detail: other.to_string().to_lowercase(),
        },
    }
}

/// The tile's size: the longer side at most `tile`, the aspect ratio kept, never scaled up.
fn tile_size(width: u32, height: u32, tile: u32) -> (u32, u32) {
    let long = width.max(height);
    if long <= tile {
        return (width, height);
    }
    let scale = |side: u32| {
        let scaled = (u64::from(side) * u64::from(tile) + u64::from(long) / 2) / u64::from(long);
        u32::try_from(scaled).unwrap_or(tile).max(1)
    };
    (scale(width), scale(height))
}

/// RGB8, transparency composed onto white (dropping alpha would show what transparent pixels hide,
/// usually black).
fn flatten(image: &DynamicImage) -> image::RgbImage {
    if !image.color().has_alpha() {
        return image.to_rgb8();
    }
    let rgba = image.to_rgba8();
    image::RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [red, green, blue, alpha] = rgba.get_pixel(x, y).0;
        let over_white = |channel: u8| {
            let (channel, alpha) = (u16::from(channel), u16::from(alpha));
            u8::try_from((channel * alpha + 255 * (255 - alpha) + 127) / 255).unwrap_or(u8::MAX)
        };
        image::Rgb([over_white(red), over_white(green), over_white(blue)])
    })
}

/// JPEG at quality 85: the tiles are aerial photos, which PNG keeps 4 to 8 times larger (363 kB against
/// 85 kB for a 512 × 339 photo, 339 kB against 45 kB for a 512 × 512 demo roof tile), and every citizen
/// downloads two per challenge. Only flat drawings come out larger than as PNG, and still small (14 kB).
/// The encoder writes a bare JFIF header: no EXIF, no ICC profile.
fn encode(image: &image::RgbImage) -> Result<Vec<u8>, Rejection> {
    use image::ImageEncoder as _;
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY)
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| Rejection::Internal(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageEncoder as _, Rgb, RgbImage, Rgba, RgbaImage};

    /// A lossy (VP8) 16 × 8 WebP, left half red, right half blue, made during development with Debian's
    /// `cwebp` 1.2.4: `cwebp -q 80 -metadata none two.ppm -o two.webp` (the `image` crate encodes only
    /// lossless WebP, which the tests make themselves).
    const LOSSY_WEBP: [u8; 68] = [
        0x52, 0x49, 0x46, 0x46, 0x3c, 0x00, 0x00, 0x00, 0x57, 0x45, 0x42, 0x50, 0x56, 0x50, 0x38, 0x20, 0x30,
        0x00, 0x00, 0x00, 0xb0, 0x01, 0x00, 0x9d, 0x01, 0x2a, 0x10, 0x00, 0x08, 0x00, 0x01, 0x40, 0x26, 0x25,
        0xa0, 0x02, 0x74, 0xba, 0x00, 0x04, 0x30, 0x00, 0x00, 0xfe, 0xf6, 0x7b, 0xff, 0xfd, 0x22, 0x31, 0xff,
        0x01, 0xff, 0xbb, 0x05, 0xc5, 0xbf, 0xde, 0x93, 0xff, 0x7b, 0x02, 0x43, 0xff, 0x7a, 0xff, 0x50, 0x00,
    ];

    /// A text that must not survive the intake.
    const SECRET: &[u8] = b"rue-des-secrets-48.8566N-2.3522E";

    /// A smooth picture with some texture, a different colour in each quadrant so orientation shows.
    fn picture(width: u32, height: u32) -> RgbImage {
        RgbImage::from_fn(width, height, |x, y| {
            let texture = u8::try_from((x * 7 + y * 13) % 32).unwrap();
            let (left, top) = (x < width / 2, y < height / 2);
            match (left, top) {
                (true, true) => Rgb([200 + texture / 2, 20, 20]),
                (false, true) => Rgb([20, 20, 200 + texture / 2]),
                (true, false) => Rgb([20, 200 + texture / 2, 20]),
                (false, false) => Rgb([200, 200, texture]),
            }
        })
    }

    fn png(image: &RgbImage) -> Vec<u8> {
        let mut out = Vec::new();
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(
                image.as_raw(),
                image.width(),
                image.height(),
                image::ExtendedColorType::Rgb8,
            )
            .unwrap();
        out
    }

    fn jpeg(image: &RgbImage) -> Vec<u8> {
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .write_image(
                image.as_raw(),
                image.width(),
                image.height(),
                image::ExtendedColorType::Rgb8,
            )
            .unwrap();
        out
    }

    fn webp(image: &RgbImage) -> Vec<u8> {
        let mut out = Vec::new();
        image::codecs::webp::WebPEncoder::new_lossless(&mut out)
            .write_image(
                image.as_raw(),
                image.width(),
                image.height(),
                image::ExtendedColorType::Rgb8,
            )
            .unwrap();
        out
    }

    fn accept_default(bytes: &[u8]) -> Result<Accepted, Rejection> {
        accept(bytes, &Limits::default())
    }

    fn code(bytes: &[u8]) -> &'static str {
        accept_default(bytes).unwrap_err().code()
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    fn decode_tile(bytes: &[u8]) -> RgbImage {
        image::load_from_memory_with_format(bytes, ImageFormat::Jpeg)
            .unwrap()
            .to_rgb8()
    }

    fn crc32(bytes: &[u8]) -> u32 {
        !bytes.iter().fold(u32::MAX, |crc, &b| {
            (0..8).fold(crc ^ u32::from(b), |c, _| {
                if c & 1 == 1 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                }
            })
        })
    }

    fn png_chunk(kind: [u8; 4], data: &[u8]) -> Vec<u8> {
        let mut chunk = u32::try_from(data.len()).unwrap().to_be_bytes().to_vec();
        chunk.extend_from_slice(&kind);
        chunk.extend_from_slice(data);
        chunk.extend_from_slice(&crc32(&chunk[4..]).to_be_bytes());
        chunk
    }

    /// The PNG with `chunk` inserted right after IHDR (8 bytes of signature, 25 of IHDR).
    fn with_png_chunk(png: &[u8], chunk: &[u8]) -> Vec<u8> {
        [&png[..33], chunk, &png[33..]].concat()
    }

    /// A big-endian TIFF structure as EXIF holds it: IFD0 with the orientation, a description and a
    /// pointer to a GPS IFD giving a latitude.
    fn exif(orientation: u16, description: &[u8]) -> Vec<u8> {
        let entry = |tag: u16, kind: u16, count: u32, value: u32| {
            [
                &tag.to_be_bytes()[..],
                &kind.to_be_bytes(),
                &count.to_be_bytes(),
                &value.to_be_bytes(),
            ]
            .concat()
        };
        let ifd0_len = 2 + 3 * 12 + 4;
        let description_at = 8 + ifd0_len;
        let gps_at = description_at + u32::try_from(description.len()).unwrap() + 1;
        let gps_len = 2 + 12 + 4;
        let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec();
        tiff.extend_from_slice(&3u16.to_be_bytes());
        tiff.extend(entry(
            0x010E,
            2,
            u32::try_from(description.len()).unwrap() + 1,
            description_at,
        ));
        tiff.extend(entry(0x0112, 3, 1, u32::from(orientation) << 16));
        tiff.extend(entry(0x8825, 4, 1, gps_at));
        tiff.extend_from_slice(&0u32.to_be_bytes());
        tiff.extend_from_slice(description);
        tiff.push(0);
        tiff.extend_from_slice(&1u16.to_be_bytes());
        tiff.extend(entry(0x0001, 2, 2, u32::from_be_bytes(*b"N\0\0\0")));
        tiff.extend_from_slice(&0u32.to_be_bytes());
        assert_eq!(tiff.len(), usize::try_from(gps_at + gps_len).unwrap());
        tiff
    }

    /// The JPEG with an APP1 EXIF segment right after its SOI marker, as cameras write it.
    fn with_exif(jpeg: &[u8], tiff: &[u8]) -> Vec<u8> {
        let payload = [&b"Exif\0\0"[..], tiff].concat();
        let length = u16::try_from(payload.len() + 2).unwrap().to_be_bytes();
        [&jpeg[..2], &[0xFF, 0xE1], &length, &payload, &jpeg[2..]].concat()
    }

    /// A PNG whose IHDR says 50,000 × 50,000 grey pixels (2.5 GB decoded) over a small IDAT of zeros: a real
    /// 50,000 × 16 image of zeros, its height then rewritten in IHDR, CRC included.
    fn png_bomb() -> Vec<u8> {
        let zeros = image::GrayImage::new(50_000, 16);
        let mut bomb = Vec::new();
        image::codecs::png::PngEncoder::new_with_quality(
            &mut bomb,
            image::codecs::png::CompressionType::Best,
            image::codecs::png::FilterType::NoFilter,
        )
        .write_image(zeros.as_raw(), 50_000, 16, image::ExtendedColorType::L8)
        .unwrap();
        bomb[20..24].copy_from_slice(&50_000u32.to_be_bytes());
        let crc = crc32(&bomb[12..29]);
        bomb[29..33].copy_from_slice(&crc.to_be_bytes());
        bomb
    }

    #[test]
    fn png_jpeg_and_webp_are_accepted_and_normalised_to_jpeg() {
        let image = picture(64, 48);
        for (bytes, format) in [
            (png(&image), SourceFormat::Png),
            (jpeg(&image), SourceFormat::Jpeg),
            (webp(&image), SourceFormat::WebP),
            (LOSSY_WEBP.to_vec(), SourceFormat::WebP),
        ] {
            let accepted = accept_default(&bytes).unwrap();
            assert_eq!(accepted.source_format, format);
            assert_eq!(accepted.content_type, "image/jpeg");
            assert!(accepted.bytes.starts_with(&[0xFF, 0xD8, 0xFF]));
            let tile = decode_tile(&accepted.bytes);
            assert_eq!((accepted.width, accepted.height), tile.dimensions(), "{format:?}");
            assert_eq!(
                accepted.content_hash,
                hex(ring::digest::digest(&ring::digest::SHA256, &accepted.bytes).as_ref())
            );
            assert_eq!(accepted.content_hash.len(), 64);
        }
        let lossy = decode_tile(&accept_default(&LOSSY_WEBP).unwrap().bytes);
        assert_eq!(lossy.dimensions(), (16, 8));
        let (left, right) = (lossy.get_pixel(2, 4).0, lossy.get_pixel(13, 4).0);
        assert!(left[0] > 150 && left[2] < 100, "{left:?}");
        assert!(right[2] > 150 && right[0] < 100, "{right:?}");
    }

    #[test]
    fn the_format_is_sniffed_from_the_bytes_whatever_the_upload_claims() {
        // No name reaches the intake: only the magic numbers decide.
        assert_eq!(sniff(&jpeg(&picture(8, 8))), Ok(SourceFormat::Jpeg));
        assert_eq!(sniff(&png(&picture(8, 8))), Ok(SourceFormat::Png));
        assert_eq!(sniff(&webp(&picture(8, 8))), Ok(SourceFormat::WebP));
        assert_eq!(sniff(&LOSSY_WEBP), Ok(SourceFormat::WebP));
        // A RIFF that is not a WebP (a WAV sound) is not taken for one.
        assert_eq!(sniff(b"RIFF\x24\0\0\0WAVEfmt "), Err(Unsupported::Unknown));
    }

    #[test]
    fn other_formats_are_refused_saying_what_they_look_like() {
        let cases: [(&[u8], &str); 12] = [
            (
                b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>",
                "svg",
            ),
            (
                b"\xEF\xBB\xBF\n  <?xml version=\"1.0\"?>\n<!-- made by hand -->\n<svg width=\"10\"/>",
                "svg",
            ),
            (b"<?xml version=\"1.0\"?><kml></kml>", "xml"),
            (b"<!DOCTYPE html><html><body>not an image</body></html>", "html"),
            (b"<html>not an image</html>", "html"),
            (b"PK\x03\x04\x14\0\0\0\x08\0", "zip"),
            (b"GIF89a\x01\0\x01\0\x80\0\0\xff\xff\xff\0\0\0!", "gif"),
            (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "pdf"),
            (b"II*\0\x08\0\0\0", "tiff"),
            (b"\0\0\0\x1cftypheic\0\0\0\0mif1heic", "heic"),
            (b"\0\0\0\x1cftypavif\0\0\0\0avifmif1", "avif"),
            (b"just some text, no picture at all", "unknown"),
        ];
        for (bytes, looks_like) in cases {
            let rejection = accept_default(bytes).unwrap_err();
            assert_eq!(rejection.code(), "unsupported-format", "{looks_like}");
            assert_eq!(rejection.looks_like(), Some(looks_like));
        }
        let message = accept_default(b"<svg/>").unwrap_err().to_string();
        assert_eq!(
            message,
            "unsupported format: this looks like an svg drawing; only jpeg, png and webp images are accepted"
        );
    }

    #[test]
    fn an_empty_or_oversized_file_is_refused_before_anything_else() {
        assert_eq!(code(b""), "empty");
        // Size comes before the format: 20 MiB and one byte of anything is too large.
        let huge = vec![0u8; 20 * 1024 * 1024 + 1];
        assert_eq!(
            accept_default(&huge),
            Err(Rejection::TooLarge {
                size: huge.len(),
                max: 20 * 1024 * 1024
            })
        );
        let small = Limits {
            max_file_bytes: 100,
            ..Limits::default()
        };
        let photo = png(&picture(64, 64));
        assert!(photo.len() > 100);
        assert_eq!(accept(&photo, &small).unwrap_err().code(), "too-large");
    }

    #[test]
    fn truncated_files_are_refused_never_decoded_in_part() {
        let image = picture(64, 48);
        for bytes in [png(&image), jpeg(&image), webp(&image), LOSSY_WEBP.to_vec()] {
            for keep in [bytes.len() / 3, bytes.len() * 2 / 3, bytes.len() - 12] {
                let truncated = &bytes[..keep];
                assert_eq!(
                    code(truncated),
                    "truncated-or-corrupt",
                    "{keep} of {} bytes",
                    bytes.len()
                );
            }
        }
    }

    #[test]
    fn garbage_after_a_valid_signature_is_refused_as_corrupt() {
        let garbage: Vec<u8> = (0..200u8).map(|i| i.wrapping_mul(37)).collect();
        for magic in [
            &b"\x89PNG\r\n\x1a\n"[..],
            &[0xFF, 0xD8, 0xFF, 0xE0],
            b"RIFF\x40\0\0\0WEBPVP8 ",
        ] {
            let bytes = [magic, &garbage].concat();
            let rejection = accept_default(&bytes).unwrap_err();
            assert_eq!(rejection.code(), "truncated-or-corrupt", "{rejection}");
        }
        // A corrupted image body (the header intact) is refused too.
        let mut bytes = png(&picture(64, 48));
        let body = bytes.len() / 2;
        bytes[body..body + 16].fill(0x55);
        assert_eq!(code(&bytes), "truncated-or-corrupt");
    }

    #[test]
    fn a_decompression_bomb_is_refused_from_its_header() {
        let bomb = png_bomb();
        assert!(bomb.len() < 4096, "the bomb is {} bytes", bomb.len());
        assert_eq!(
            accept_default(&bomb),
            Err(Rejection::TooManyPixels {
                width: 50_000,
                height: 50_000,
                max: 40_000_000
            })
        );
        // Under the pixel limit but with too long a side.
        let strip = png(&RgbImage::new(9000, 2));
        assert_eq!(
            accept_default(&strip),
            Err(Rejection::SideTooLong {
                width: 9000,
                height: 2,
                max: 8192
            })
        );
    }

    #[test]
    fn exif_and_gps_are_stripped_from_a_jpeg() {
        let bytes = with_exif(&jpeg(&picture(64, 48)), &exif(1, SECRET));
        assert!(contains(&bytes, b"Exif\0\0") && contains(&bytes, SECRET));
        let accepted = accept_default(&bytes).unwrap();
        assert!(!contains(&accepted.bytes, b"Exif"));
        assert!(!contains(&accepted.bytes, b"MM\0\x2a"));
        assert!(!contains(&accepted.bytes, SECRET));
        assert!(!contains(&accepted.bytes, b"eXIf"));
    }

    #[test]
    fn text_chunks_are_stripped_from_a_png_and_do_not_change_the_hash() {
        let plain = png(&picture(64, 48));
        let text = png_chunk(*b"tEXt", &[&b"Comment\0"[..], SECRET].concat());
        let annotated = with_png_chunk(&plain, &text);
        assert!(contains(&annotated, b"tEXt") && contains(&annotated, SECRET));
        let accepted = accept_default(&annotated).unwrap();
        assert!(!contains(&accepted.bytes, b"tEXt"));
        assert!(!contains(&accepted.bytes, SECRET));
        assert_eq!(
            accepted.content_hash,
            accept_default(&plain).unwrap().content_hash
        );
    }

    #[test]
    fn the_same_pixels_as_png_and_as_lossless_webp_are_one_duplicate() {
        let image = picture(300, 200);
        let from_png = accept_default(&png(&image)).unwrap();
        let from_webp = accept_default(&webp(&image)).unwrap();
        assert_eq!(from_png.content_hash, from_webp.content_hash);
        assert_ne!(
            from_png.content_hash,
            accept_default(&png(&picture(300, 201))).unwrap().content_hash
        );
    }

    #[test]
    fn the_exif_orientation_is_applied() {
        // Stored landscape, red on the top left; orientation 6 says "turn 90° clockwise to view".
        let stored = picture(80, 40);
        let accepted = accept_default(&with_exif(&jpeg(&stored), &exif(6, b"phone"))).unwrap();
        assert_eq!((accepted.width, accepted.height), (40, 80));
        let tile = decode_tile(&accepted.bytes);
        // Turned clockwise, the stored top-left quadrant (red) is now the top right, the bottom-left
        // (green) the top left.
        let top_right = tile.get_pixel(30, 10).0;
        let top_left = tile.get_pixel(10, 10).0;
        assert!(top_right[0] > 150 && top_right[1] < 100, "{top_right:?}");
        assert!(top_left[1] > 150 && top_left[0] < 100, "{top_left:?}");
    }

    #[test]
    fn large_images_are_scaled_down_keeping_their_shape_small_ones_are_not_scaled_up() {
        for ((width, height), expected) in [
            ((2000, 1000), (512, 256)),
            ((1000, 3000), (171, 512)),
            ((513, 512), (512, 511)),
            ((8000, 3), (512, 1)),
            ((100, 60), (100, 60)),
            ((512, 512), (512, 512)),
            ((1, 1), (1, 1)),
        ] {
            let accepted = accept_default(&png(&picture(width, height))).unwrap();
            assert_eq!((accepted.width, accepted.height), expected, "{width} × {height}");
            assert_eq!(decode_tile(&accepted.bytes).dimensions(), expected);
        }
    }

    #[test]
    fn transparency_is_flattened_onto_white() {
        // Transparent black on the left, opaque blue on the right.
        let rgba = RgbaImage::from_fn(32, 16, |x, _| {
            if x < 16 {
                Rgba([0, 0, 0, 0])
            } else {
                Rgba([0, 0, 255, 255])
            }
        });
        let mut bytes = Vec::new();
        image::codecs::png::PngEncoder::new(&mut bytes)
            .write_image(rgba.as_raw(), 32, 16, image::ExtendedColorType::Rgba8)
            .unwrap();
        let tile = decode_tile(&accept_default(&bytes).unwrap().bytes);
        let (left, right) = (tile.get_pixel(4, 8).0, tile.get_pixel(28, 8).0);
        assert!(left.iter().all(|&c| c > 245), "{left:?}");
        assert!(right[2] > 230 && right[0] < 25 && right[1] < 25, "{right:?}");
    }

    #[test]
    fn a_jpeg_with_data_after_its_end_is_accepted() {
        // Phones append a video (motion photos) or a second picture after the end-of-image marker.
        let bytes = [
            jpeg(&picture(64, 48)),
            b"\0\0\0\x18ftypmp42 trailer video".to_vec(),
        ]
        .concat();
        assert_eq!(accept_default(&bytes).unwrap().source_format, SourceFormat::Jpeg);
    }
}
