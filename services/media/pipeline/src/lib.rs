//! Portico media pipeline: validates an uploaded image, applies its EXIF orientation, strips all
//! metadata and produces resized JPEG / WebP variants.
//!
//! Pure: no I/O beyond the byte slice it is handed, no global state. CPU-bound — call it from a
//! blocking thread pool (e.g. `tokio::task::spawn_blocking`, which also turns an unexpected panic
//! in a codec into a `JoinError` instead of taking the worker down).
//!
//! ```no_run
//! use portico_media_pipeline::{Limits, Options, probe, process};
//! # fn upload(body: &[u8]) -> Result<(), portico_media_pipeline::PipelineError> {
//! let limits = Limits::default();
//! let info = probe(body, &limits)?; // cheap: magic bytes + header only
//! let out = process(body, &limits, &Options::default())?;
//! for v in &out.variants {
//!     println!("{}.{} {}x{} {} bytes", v.name, v.format.extension(), v.width, v.height, v.bytes.len());
//! }
//! # let _ = info; Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod decode;
mod encode;
mod error;
mod header;
mod raster;
mod sniff;

pub use error::PipelineError;
pub use sniff::{Sniffed, sniff, sniff_any};

use fast_image_resize::Resizer;

use crate::raster::{fit_long_side, transposes};
use crate::sniff::Sniffed as S;

/// Caps enforced before anything is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum input size in bytes. Default 25 MiB.
    pub max_bytes: u64,
    /// Maximum `width * height` declared by the header. Default 50,000,000.
    pub max_pixels: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 25 * 1024 * 1024,
            max_pixels: 50_000_000,
        }
    }
}

/// Accepted input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// JPEG / JFIF / EXIF.
    Jpeg,
    /// PNG (APNG: the default image only).
    Png,
    /// WebP, lossy or lossless (animated: first frame only).
    Webp,
}

impl Format {
    /// `"jpeg"`, `"png"` or `"webp"`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jpeg => "jpeg",
            Self::Png => "png",
            Self::Webp => "webp",
        }
    }

    /// MIME type.
    #[must_use]
    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Webp => "image/webp",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Result of [`probe`]: format and dimensions as stored (before EXIF orientation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Detected format.
    pub format: Format,
    /// Width as stored in the file.
    pub width: u32,
    /// Height as stored in the file.
    pub height: u32,
}

/// A named output size: the long side of the (oriented) image, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VariantSpec {
    /// Variant name, used as a file-name stem.
    pub name: &'static str,
    /// Target long side in pixels.
    pub long_side: u32,
}

/// The variants produced by [`process`], smallest first.
pub const VARIANTS: [VariantSpec; 4] = [
    VariantSpec {
        name: "thumbnail",
        long_side: 150,
    },
    VariantSpec {
        name: "small",
        long_side: 320,
    },
    VariantSpec {
        name: "medium",
        long_side: 640,
    },
    VariantSpec {
        name: "large",
        long_side: 1280,
    },
];

/// Output encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    /// Baseline JPEG, 4:2:0, optimised Huffman tables, no metadata. Alpha is composited on white.
    Jpeg,
    /// Lossy WebP (libwebp), alpha kept.
    Webp,
}

impl OutputFormat {
    /// `"jpeg"` or `"webp"`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jpeg => "jpeg",
            Self::Webp => "webp",
        }
    }

    /// MIME type.
    #[must_use]
    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Webp => "image/webp",
        }
    }

    /// Conventional file extension without the dot: `"jpg"` or `"webp"`.
    #[must_use]
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            Self::Webp => "webp",
        }
    }
}

/// Encoding options for [`process`].
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// JPEG quality 1..=100 (clamped). Default 80.
    pub jpeg_quality: u8,
    /// WebP quality 0.0..=100.0 (clamped; NaN means 80). Default 80.
    pub webp_quality: f32,
    /// libwebp `method` (speed/size trade-off) 0..=6, clamped. Default 4, libwebp's and sharp's
    /// default. On a 1280x960 variant 4 takes ~3x as long as 2 for ~10-20% smaller files.
    pub webp_method: u8,
    /// Formats to produce for every variant, in this order (duplicates ignored). Default JPEG
    /// and WebP. Empty means "validate and decode only": no variants are produced.
    pub formats: Vec<OutputFormat>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            jpeg_quality: 80,
            webp_quality: 80.0,
            webp_method: 4,
            formats: vec![OutputFormat::Jpeg, OutputFormat::Webp],
        }
    }
}

/// One encoded output image.
#[derive(Clone, PartialEq, Eq)]
pub struct Variant {
    /// Name from [`VARIANTS`].
    pub name: &'static str,
    /// Encoding.
    pub format: OutputFormat,
    /// Width (oriented).
    pub width: u32,
    /// Height (oriented).
    pub height: u32,
    /// Encoded file contents.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Variant")
            .field("name", &self.name)
            .field("format", &self.format)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("bytes", &format_args!("<{} bytes>", self.bytes.len()))
            .finish()
    }
}

/// Output of [`process`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed {
    /// Format and stored dimensions of the input.
    pub original: Probe,
    /// Width after applying EXIF orientation.
    pub oriented_width: u32,
    /// Height after applying EXIF orientation.
    pub oriented_height: u32,
    /// Every entry of [`VARIANTS`] (smallest first) × every requested format (in
    /// [`Options::formats`] order).
    pub variants: Vec<Variant>,
}

/// Checks the byte cap, sniffs the format and reads the dimensions from the header, then checks
/// the pixel cap. Nothing is decoded and nothing proportional to the pixel count is allocated.
///
/// # Errors
/// [`PipelineError::TooLarge`], [`PipelineError::NotAnImage`], [`PipelineError::Unsupported`],
/// [`PipelineError::Truncated`] / [`PipelineError::Corrupt`] (header), [`PipelineError::TooManyPixels`].
pub fn probe(bytes: &[u8], limits: &Limits) -> Result<Probe, PipelineError> {
    inspect(bytes, limits).map(|h| Probe {
        format: h.format,
        width: h.width,
        height: h.height,
    })
}

fn inspect(bytes: &[u8], limits: &Limits) -> Result<header::Header, PipelineError> {
    let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if len > limits.max_bytes {
        return Err(PipelineError::TooLarge {
            bytes: len,
            max: limits.max_bytes,
        });
    }
    let format = match sniff_any(bytes) {
        S::Supported(f) => f,
        S::Unsupported(name) => return Err(PipelineError::unsupported(name)),
        S::Unknown => return Err(PipelineError::NotAnImage),
    };
    let h = header::parse(format, bytes)?;
    if u64::from(h.width) * u64::from(h.height) > limits.max_pixels {
        return Err(PipelineError::TooManyPixels {
            width: h.width,
            height: h.height,
            max: limits.max_pixels,
        });
    }
    Ok(h)
}

/// Validates, decodes, orients and re-encodes `bytes` into every [`VARIANTS`] size.
///
/// * Sizes: each variant's long side is `min(spec.long_side, original long side)` — images are
///   never upscaled, so a small original yields all four variants, some at the original size.
///   Aspect ratio is preserved, the short side rounded to nearest, at least 1 px.
/// * Resize chain: large from the decoded image, medium from large, small from medium,
///   thumbnail from small (Lanczos3). At most the decoded image and one variant are alive at once.
/// * EXIF orientation is applied (all eight values); outputs carry no metadata at all.
/// * Alpha: kept in WebP, composited on white for JPEG; a fully opaque alpha channel is dropped.
///
/// # Errors
/// Everything [`probe`] returns, plus decode failures ([`PipelineError::Truncated`],
/// [`PipelineError::Corrupt`], [`PipelineError::Unsupported`]) and [`PipelineError::Encode`].
pub fn process(bytes: &[u8], limits: &Limits, opts: &Options) -> Result<Processed, PipelineError> {
    let header = inspect(bytes, limits)?;
    let original = Probe {
        format: header.format,
        width: header.width,
        height: header.height,
    };
    let long = header.width.max(header.height);
    let largest = VARIANTS.iter().map(|v| v.long_side).max().unwrap_or(long);
    let decoded = decode::decode(bytes, &header, limits, largest.min(long))?;
    let orientation = decoded.orientation;
    let swap = transposes(orientation);
    let (ow, oh) = if swap {
        (header.height, header.width)
    } else {
        (header.width, header.height)
    };

    let mut formats: Vec<OutputFormat> = Vec::with_capacity(opts.formats.len());
    for f in &opts.formats {
        if !formats.contains(f) {
            formats.push(*f);
        }
    }

    if formats.is_empty() {
        // Validate-and-decode only.
        return Ok(Processed {
            original,
            oriented_width: ow,
            oriented_height: oh,
            variants: Vec::new(),
        });
    }

    let mut specs = VARIANTS;
    specs.sort_by_key(|s| std::cmp::Reverse(s.long_side));
    let mut resizer = Resizer::new();
    let mut source = Some(decoded.raster);
    let mut current: Option<raster::Raster> = None;
    let mut variants = Vec::with_capacity(VARIANTS.len() * formats.len());
    for spec in specs {
        let (tw, th) = fit_long_side(ow, oh, spec.long_side.min(long));
        let next = match (current.take(), source.take()) {
            (Some(prev), _) => prev.resized(tw, th, &mut resizer)?,
            (None, Some(src)) => {
                // Resize in stored orientation, then orient the (much smaller) result.
                let (sw, sh) = if swap { (th, tw) } else { (tw, th) };
                src.resized(sw, sh, &mut resizer)?
                    .drop_opaque_alpha()
                    .oriented(orientation)?
            }
            (None, None) => return Err(PipelineError::Encode("internal: resize chain lost its source".into())),
        };
        for &format in &formats {
            let bytes = match format {
                OutputFormat::Jpeg => encode::jpeg(&next, opts.jpeg_quality)?,
                OutputFormat::Webp => encode::webp(&next, opts.webp_quality, opts.webp_method)?,
            };
            variants.push(Variant {
                name: spec.name,
                format,
                width: next.width,
                height: next.height,
                bytes,
            });
        }
        current = Some(next);
    }
    // Smallest first, formats in request order (the sort is stable).
    variants.sort_by_key(|v| VARIANTS.iter().position(|s| s.name == v.name));
    Ok(Processed {
        original,
        oriented_width: ow,
        oriented_height: oh,
        variants,
    })
}

/// Fuzzing entry point: runs [`probe`] and [`process`] with small limits (1 MiB, 1 MP) on
/// arbitrary bytes. Errors are expected and ignored; it must never panic, and it asserts a few
/// invariants of successful results (a failed assertion is a bug in this crate).
pub fn fuzz_decode(bytes: &[u8]) {
    let limits = Limits {
        max_bytes: 1 << 20,
        max_pixels: 1 << 20,
    };
    let Ok(p) = probe(bytes, &limits) else {
        return;
    };
    assert!(sniff(bytes) == Some(p.format));
    let opts = Options {
        jpeg_quality: 50,
        webp_quality: 50.0,
        webp_method: 0,
        formats: vec![OutputFormat::Jpeg, OutputFormat::Webp],
    };
    let Ok(out) = process(bytes, &limits, &opts) else {
        return;
    };
    assert!(out.original == p);
    assert!(out.variants.len() == VARIANTS.len() * 2);
    for v in &out.variants {
        assert!(v.width >= 1 && v.height >= 1 && v.width.max(v.height) <= 1280);
        assert!(!v.bytes.is_empty());
    }
}
