//! Encoders: `jpeg-encoder` for JPEG (pure Rust, AVX2 with runtime detection) and libwebp (via
//! the `webp` crate) for lossy WebP. Neither writes any metadata: JPEG output is SOI, JFIF APP0,
//! tables, frame, scan, EOI; WebP output is a simple `VP8 ` (or `VP8X` + `ALPH` + `VP8 `) file.

use jpeg_encoder::{ColorType, Encoder};

use crate::PipelineError;
use crate::raster::{Kind, Raster};

pub(crate) fn jpeg(r: &Raster, quality: u8) -> Result<Vec<u8>, PipelineError> {
    let err = |e: &dyn std::fmt::Display| PipelineError::Encode(format!("jpeg: {e}"));
    let (Ok(w), Ok(h)) = (u16::try_from(r.width), u16::try_from(r.height)) else {
        return Err(err(&"dimensions exceed 65535"));
    };
    let mut out = Vec::with_capacity(r.data.len() / 8 + 1024);
    let mut enc = Encoder::new(&mut out, quality.clamp(1, 100));
    // Standard Huffman tables, one interleaved scan. jpeg-encoder's optimised-table mode writes
    // one scan per component, which is valid but mis-decoded by zune-jpeg 0.5 (the `image`
    // crate's decoder); libjpeg-turbo reads it fine. Compatibility wins over ~5-10% size.
    enc.set_optimized_huffman_tables(false);
    match r.kind {
        Kind::Gray => enc.encode(&r.data, w, h, ColorType::Luma),
        Kind::Rgb | Kind::Rgba => enc.encode(&r.rgb(), w, h, ColorType::Rgb),
    }
    .map_err(|e| err(&e))?;
    Ok(out)
}

pub(crate) fn webp(r: &Raster, quality: f32, method: u8) -> Result<Vec<u8>, PipelineError> {
    let err = |e: &dyn std::fmt::Debug| PipelineError::Encode(format!("webp: {e:?}"));
    let quality = if quality.is_finite() {
        quality.clamp(0.0, 100.0)
    } else {
        80.0
    };
    let mut config = webp::WebPConfig::new().map_err(|()| err(&"config init failed"))?;
    config.quality = quality;
    config.method = i32::from(method.min(6));
    config.alpha_compression = 1;
    let rgb;
    let encoder = match r.kind {
        Kind::Rgba => webp::Encoder::from_rgba(&r.data, r.width, r.height),
        Kind::Rgb | Kind::Gray => {
            rgb = r.rgb();
            webp::Encoder::from_rgb(&rgb, r.width, r.height)
        }
    };
    let mem = encoder.encode_advanced(&config).map_err(|e| err(&e))?;
    Ok(mem.to_vec())
}
