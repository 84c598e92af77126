//! Header-only parsing: dimensions (and, for JPEG, frame details and EXIF orientation) read
//! straight from the container, without touching pixel data. Every read is bounds-checked; a
//! header that runs past the end of the input is reported as truncated.

use image::metadata::Orientation;

use crate::{Format, PipelineError};

/// Facts about a JPEG frame that decide which decoder path is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JpegFrame {
    /// SOFn marker byte (0xC0 baseline, 0xC1 extended, 0xC2 progressive, ...).
    pub sof: u8,
    pub precision: u8,
    pub components: u8,
    /// EXIF orientation from the first APP1 `Exif` segment, if any.
    pub orientation: Option<Orientation>,
    /// Offset of the first SOS segment.
    pub sos_offset: usize,
    /// Number of components in the first scan (less than `components` for a non-interleaved
    /// scan).
    pub first_scan_components: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub format: Format,
    pub width: u32,
    pub height: u32,
    pub jpeg: Option<JpegFrame>,
}

pub(crate) fn parse(format: Format, b: &[u8]) -> Result<Header, PipelineError> {
    let header = match format {
        Format::Png => png(b)?,
        Format::Jpeg => jpeg(b)?,
        Format::Webp => webp(b)?,
    };
    if header.width == 0 || header.height == 0 {
        return Err(PipelineError::corrupt("image has a zero dimension"));
    }
    Ok(header)
}

fn be16(b: &[u8], at: usize) -> Result<u16, PipelineError> {
    let s = b.get(at..at + 2).ok_or(PipelineError::Truncated)?;
    Ok(u16::from_be_bytes([s[0], s[1]]))
}

fn be32(b: &[u8], at: usize) -> Result<u32, PipelineError> {
    let s = b.get(at..at + 4).ok_or(PipelineError::Truncated)?;
    Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn le16(b: &[u8], at: usize) -> Result<u16, PipelineError> {
    let s = b.get(at..at + 2).ok_or(PipelineError::Truncated)?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}

fn le24(b: &[u8], at: usize) -> Result<u32, PipelineError> {
    let s = b.get(at..at + 3).ok_or(PipelineError::Truncated)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], 0]))
}

fn le32(b: &[u8], at: usize) -> Result<u32, PipelineError> {
    let s = b.get(at..at + 4).ok_or(PipelineError::Truncated)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// PNG: signature, then the IHDR chunk must come first.
fn png(b: &[u8]) -> Result<Header, PipelineError> {
    let len = be32(b, 8)?;
    let kind = b.get(12..16).ok_or(PipelineError::Truncated)?;
    if kind != b"IHDR" || len != 13 {
        return Err(PipelineError::corrupt("PNG does not start with an IHDR chunk"));
    }
    let width = be32(b, 16)?;
    let height = be32(b, 20)?;
    // The PNG spec caps each dimension at 2^31 - 1.
    if width > i32::MAX as u32 || height > i32::MAX as u32 {
        return Err(PipelineError::corrupt("PNG dimension out of range"));
    }
    Ok(Header {
        format: Format::Png,
        width,
        height,
        jpeg: None,
    })
}

/// WebP: RIFF container; the first chunk is `VP8 `, `VP8L` or `VP8X`.
fn webp(b: &[u8]) -> Result<Header, PipelineError> {
    let riff_size = le32(b, 4)? as usize;
    if riff_size < 4 {
        return Err(PipelineError::corrupt("RIFF size too small"));
    }
    if riff_size.saturating_add(8) > b.len() {
        return Err(PipelineError::Truncated);
    }
    let fourcc = b.get(12..16).ok_or(PipelineError::Truncated)?;
    let payload = 20;
    let (width, height) = match fourcc {
        b"VP8 " => {
            // 3-byte frame tag, start code 9d 01 2a, then 14-bit width / height.
            if b.get(payload + 3..payload + 6) != Some(&[0x9d, 0x01, 0x2a]) {
                return Err(PipelineError::corrupt("bad VP8 start code"));
            }
            let w = le16(b, payload + 6)? & 0x3FFF;
            let h = le16(b, payload + 8)? & 0x3FFF;
            (u32::from(w), u32::from(h))
        }
        b"VP8L" => {
            if b.get(payload) != Some(&0x2F) {
                return Err(PipelineError::corrupt("bad VP8L signature"));
            }
            let bits = le32(b, payload + 1)?;
            ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
        }
        b"VP8X" => {
            let w = le24(b, payload + 4)? + 1;
            let h = le24(b, payload + 7)? + 1;
            (w, h)
        }
        _ => return Err(PipelineError::corrupt("unknown first WebP chunk")),
    };
    Ok(Header {
        format: Format::Webp,
        width,
        height,
        jpeg: None,
    })
}

/// JPEG: walk the marker segments from SOI up to the first SOS, picking up the frame header
/// (SOFn) and the first APP1 `Exif` segment.
fn jpeg(b: &[u8]) -> Result<Header, PipelineError> {
    let mut pos = 2; // after SOI
    let mut frame: Option<(u8, u8, u32, u32, u8)> = None;
    let mut orientation = None;
    let mut seen_exif = false;
    loop {
        // Markers may be preceded by any number of 0xFF fill bytes.
        if *b.get(pos).ok_or(PipelineError::Truncated)? != 0xFF {
            return Err(PipelineError::corrupt("expected a JPEG marker"));
        }
        while b.get(pos) == Some(&0xFF) {
            pos += 1;
        }
        let marker = *b.get(pos).ok_or(PipelineError::Truncated)?;
        pos += 1;
        match marker {
            // Standalone markers without a length.
            0x01 | 0xD0..=0xD7 => continue,
            0xD8 => return Err(PipelineError::corrupt("unexpected SOI")),
            0xD9 => return Err(PipelineError::corrupt("JPEG ends before any image data")),
            0x00 => return Err(PipelineError::corrupt("invalid JPEG marker")),
            _ => {}
        }
        let len = usize::from(be16(b, pos)?);
        if len < 2 {
            return Err(PipelineError::corrupt("JPEG segment length too small"));
        }
        let body = b.get(pos + 2..pos + len).ok_or(PipelineError::Truncated)?;
        match marker {
            0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                if frame.is_some() {
                    return Err(PipelineError::corrupt("more than one JPEG frame header"));
                }
                if body.len() < 6 {
                    return Err(PipelineError::corrupt("JPEG frame header too short"));
                }
                let precision = body[0];
                let height = u32::from(u16::from_be_bytes([body[1], body[2]]));
                let width = u32::from(u16::from_be_bytes([body[3], body[4]]));
                let components = body[5];
                if height == 0 {
                    // Height defined later by a DNL marker: legal but vanishingly rare.
                    return Err(PipelineError::unsupported("jpeg (DNL height)"));
                }
                frame = Some((marker, precision, width, height, components));
            }
            0xE1 if !seen_exif && body.starts_with(b"Exif\0\0") => {
                seen_exif = true;
                orientation = Orientation::from_exif_chunk(&body[6..]);
            }
            0xDA => {
                let (sof, precision, width, height, components) =
                    frame.ok_or_else(|| PipelineError::corrupt("JPEG scan before frame header"))?;
                return Ok(Header {
                    format: Format::Jpeg,
                    width,
                    height,
                    jpeg: Some(JpegFrame {
                        sof,
                        precision,
                        components,
                        orientation,
                        sos_offset: pos - 2,
                        first_scan_components: body.first().copied().unwrap_or(0),
                    }),
                });
            }
            _ => {}
        }
        pos += len;
    }
}

/// True when an EOI marker follows the first scan. Entropy-coded data never contains `FF D9`
/// (0xFF is always stuffed or a restart marker), so its absence means the upload was cut off.
/// Searches backwards because EOI is normally at or near the very end.
pub(crate) fn jpeg_has_eoi(b: &[u8], sos_offset: usize) -> bool {
    b.get(sos_offset..)
        .is_some_and(|tail| tail.windows(2).rev().any(|w| w == [0xFF, 0xD9]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_header() {
        let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        b.extend_from_slice(&640u32.to_be_bytes());
        b.extend_from_slice(&480u32.to_be_bytes());
        let h = parse(Format::Png, &b).unwrap();
        assert_eq!((h.width, h.height), (640, 480));
        assert_eq!(parse(Format::Png, &b[..20]), Err(PipelineError::Truncated));
    }

    #[test]
    fn jpeg_header_walk() {
        // SOI, APP0 (len 4), fill bytes, SOF0 for 300x200x3, SOS.
        let mut b = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0xAA, 0xBB, 0xFF, 0xFF];
        b.extend_from_slice(&[0xC0, 0x00, 0x11, 8, 0x00, 200, 0x01, 0x2C, 3]);
        b.extend_from_slice(&[0; 9]);
        b.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x03, 0x03]);
        let h = parse(Format::Jpeg, &b).unwrap();
        assert_eq!((h.width, h.height), (300, 200));
        let f = h.jpeg.unwrap();
        assert_eq!((f.sof, f.precision, f.components, f.orientation), (0xC0, 8, 3, None));
        assert_eq!(f.first_scan_components, 3);
        assert!(!jpeg_has_eoi(&b, f.sos_offset));
        for cut in 2..b.len() - 5 {
            assert!(parse(Format::Jpeg, &b[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn webp_headers() {
        let mut lossless = b"RIFF\x0d\0\0\0WEBPVP8L\x05\0\0\0\x2f".to_vec();
        // width 100 -> 99, height 50 -> 49: bits = 99 | 49 << 14
        lossless.extend_from_slice(&(99u32 | (49 << 14)).to_le_bytes());
        lossless.truncate(25);
        lossless[4..8].copy_from_slice(&17u32.to_le_bytes());
        let h = parse(Format::Webp, &lossless).unwrap();
        assert_eq!((h.width, h.height), (100, 50));
        let mut short = lossless.clone();
        short[4..8].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(parse(Format::Webp, &short), Err(PipelineError::Truncated));
    }
}
