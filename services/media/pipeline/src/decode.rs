//! Decoding to an 8-bit [`Raster`] in stored (un-oriented) orientation.
//!
//! * JPEG (8-bit baseline/progressive Huffman, gray or YCbCr) whose long side is at least twice
//!   the largest variant goes through `jpeg-decoder` with DCT scaling (1/2, 1/4 or 1/8): the
//!   IDCT, upsampling and colour conversion run at the reduced size, so a 12 MP photo is never
//!   materialised at full size.
//! * Every other JPEG, PNG and WebP goes through the `image` crate (zune-jpeg, png, image-webp)
//!   with its decoder limits set from [`Limits`].

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};

use crate::header::{Header, JpegFrame, jpeg_has_eoi};
use crate::raster::{Kind, Raster};
use crate::{Format, Limits, PipelineError};

pub(crate) struct Decoded {
    pub raster: Raster,
    pub orientation: Orientation,
}

/// `needed_long` is the long side the biggest variant needs; a scaled JPEG decode keeps its long
/// side at or above it.
pub(crate) fn decode(
    bytes: &[u8],
    header: &Header,
    limits: &Limits,
    needed_long: u32,
) -> Result<Decoded, PipelineError> {
    match (header.format, header.jpeg) {
        (Format::Jpeg, Some(frame)) => decode_jpeg(bytes, header, &frame, limits, needed_long),
        (Format::Jpeg, None) => Err(PipelineError::corrupt("missing JPEG frame header")),
        (Format::Png, _) => decode_generic(bytes, ImageFormat::Png, header, limits),
        (Format::Webp, _) => decode_generic(bytes, ImageFormat::WebP, header, limits),
    }
}

/// Picks the JPEG DCT scale numerator (out of 8): the smallest of 1, 2, 4 that keeps the decoded
/// long side >= `needed_long`, or 8 (full size).
pub(crate) fn jpeg_scale(width: u32, height: u32, needed_long: u32) -> u32 {
    let long = u64::from(width.max(height));
    [1u32, 2, 4]
        .into_iter()
        .find(|&s| long * u64::from(s) >= u64::from(needed_long) * 8)
        .unwrap_or(8)
}

fn scaled(len: u32, s: u32) -> u32 {
    (len * s).div_ceil(8)
}

fn decode_jpeg(
    bytes: &[u8],
    header: &Header,
    frame: &JpegFrame,
    limits: &Limits,
    needed_long: u32,
) -> Result<Decoded, PipelineError> {
    if !jpeg_has_eoi(bytes, frame.sos_offset) {
        return Err(PipelineError::Truncated);
    }
    let orientation = frame.orientation.unwrap_or(Orientation::NoTransforms);
    // jpeg-decoder: 8-bit Huffman-coded (baseline, extended, progressive), gray/YCbCr/CMYK/YCCK.
    let jd_ok = matches!(frame.sof, 0xC0..=0xC2) && frame.precision == 8 && matches!(frame.components, 1 | 3 | 4);
    let s = if jd_ok {
        jpeg_scale(header.width, header.height, needed_long)
    } else {
        8
    };
    // zune-jpeg (via `image`) is the faster full-size decoder, but 0.5.x mis-decodes two legal
    // kinds of file that jpeg-decoder and libjpeg read correctly: 4:2:0 CMYK, and sequential
    // files whose first scan is not interleaved. Those go to jpeg-decoder.
    let zune_ok =
        matches!(frame.components, 1 | 3) && (frame.sof == 0xC2 || frame.first_scan_components == frame.components);
    if !jd_ok || (s == 8 && zune_ok) {
        let raster = decode_generic(bytes, ImageFormat::Jpeg, header, limits)?.raster;
        return Ok(Decoded { raster, orientation });
    }

    let (w, h) = (scaled(header.width, s), scaled(header.height, s));
    let mut dec = jpeg_decoder::Decoder::new(bytes);
    dec.set_max_decoding_buffer_size(usize::try_from(limits.max_pixels.saturating_mul(4)).unwrap_or(usize::MAX));
    if s < 8 {
        // jpeg-decoder picks the smallest scale at which *either* side reaches the request. Ask
        // for the exact scaled long side and an unreachable short side, so only the long side
        // decides and exactly `s` is selected (a tiny short side would otherwise win at 1/8).
        let landscape = header.width >= header.height;
        let long = u16::try_from(if landscape { w } else { h })
            .map_err(|_| PipelineError::corrupt("JPEG dimensions out of range"))?;
        let got = if landscape {
            dec.scale(long, u16::MAX)?
        } else {
            dec.scale(u16::MAX, long)?
        };
        if (u32::from(got.0), u32::from(got.1)) != (w, h) {
            return Err(PipelineError::corrupt("JPEG decoder disagrees with the frame header"));
        }
    }
    let data = dec.decode()?;
    let raster = match frame.components {
        1 => Raster::new(w, h, Kind::Gray, data)?,
        3 => Raster::new(w, h, Kind::Rgb, data)?,
        _ => Raster::new(w, h, Kind::Rgb, cmyk_to_rgb(data, w, h)?)?,
    };
    Ok(Decoded { raster, orientation })
}

/// Naive CMYK -> RGB (no ICC), in place: R = (255 - C) * (255 - K) / 255. jpeg-decoder has
/// already undone Adobe's inverted storage and the YCCK transform.
fn cmyk_to_rgb(mut data: Vec<u8>, w: u32, h: u32) -> Result<Vec<u8>, PipelineError> {
    let pixels = w as usize * h as usize;
    if data.len() != pixels * 4 {
        return Err(PipelineError::corrupt(
            "decoded CMYK buffer does not match the image dimensions",
        ));
    }
    for i in 0..pixels {
        let k = 255 - u32::from(data[i * 4 + 3]);
        for c in 0..3 {
            let v = 255 - u32::from(data[i * 4 + c]);
            data[i * 3 + c] = ((v * k + 127) / 255) as u8;
        }
    }
    data.truncate(pixels * 3);
    Ok(data)
}

fn decode_generic(
    bytes: &[u8],
    format: ImageFormat,
    header: &Header,
    limits: &Limits,
) -> Result<Decoded, PipelineError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut l = image::Limits::no_limits();
    l.max_image_width = Some(header.width);
    l.max_image_height = Some(header.height);
    // Worst case is 16-bit RGBA; leave headroom for decoder-internal buffers.
    l.max_alloc = Some(limits.max_pixels.saturating_mul(8).saturating_add(64 << 20));
    reader.limits(l);
    let mut dec = reader.into_decoder()?;
    if dec.dimensions() != (header.width, header.height) {
        return Err(PipelineError::corrupt("decoder disagrees with the header dimensions"));
    }
    // A broken EXIF block is not worth rejecting the image for.
    let orientation = dec.orientation().unwrap_or(Orientation::NoTransforms);
    let img = DynamicImage::from_decoder(dec)?;
    Ok(Decoded {
        raster: Raster::from_dynamic(img)?,
        orientation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_choice() {
        assert_eq!(jpeg_scale(4000, 3000, 1280), 4); // 2000x1500
        assert_eq!(jpeg_scale(2560, 1920, 1280), 4); // exactly 1280 at 1/2
        assert_eq!(jpeg_scale(2559, 1920, 1280), 8);
        assert_eq!(jpeg_scale(12000, 9000, 1280), 1); // 1500
        assert_eq!(jpeg_scale(6000, 8000, 1280), 2); // 2000 long side
        assert_eq!(jpeg_scale(800, 600, 800), 8);
        assert_eq!(scaled(4000, 4), 2000);
        assert_eq!(scaled(4001, 4), 2001);
        assert_eq!(scaled(4001, 1), 501);
    }

    #[test]
    fn cmyk() {
        let out = cmyk_to_rgb(vec![0, 255, 255, 0, 0, 0, 0, 255, 0, 0, 0, 0], 3, 1).unwrap();
        assert_eq!(out, vec![255, 0, 0, 0, 0, 0, 255, 255, 255]);
        assert!(cmyk_to_rgb(vec![0; 7], 2, 1).is_err());
    }
}
