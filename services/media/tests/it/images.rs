//! Images made in code: no fixtures.

use image::{ImageEncoder, RgbImage, codecs::jpeg::JpegEncoder, codecs::png::PngEncoder};

/// A smooth gradient with a little noise, like a photo, as a JPEG.
pub fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = photo(w, h, 3);
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 90)
        .write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

/// A PNG of pure noise: incompressible, so its size is about `w × h × 3` bytes.
pub fn noise_png(w: u32, h: u32) -> Vec<u8> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let img = RgbImage::from_fn(w, h, |_, _| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let b = state.to_le_bytes();
        image::Rgb([b[0], b[1], b[2]])
    });
    png(&img)
}

fn png(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(img.as_raw(), img.width(), img.height(), image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

fn photo(w: u32, h: u32, seed: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let n = (x.wrapping_mul(7919) ^ y.wrapping_mul(104_729) ^ seed) % 12;
        image::Rgb([
            (20 + x * 200 / w.max(1) + n) as u8,
            (40 + y * 180 / h.max(1) + n) as u8,
            (60 + (x + y) * 150 / (w + h).max(1) + n) as u8,
        ])
    })
}

/// A 1 KB PNG whose header claims 100,000 × 100,000 pixels (a decompression bomb).
pub fn png_bomb() -> Vec<u8> {
    let mut bytes = png(&RgbImage::new(8, 8));
    // IHDR data follows the 8-byte signature and the chunk's length and type.
    bytes[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    bytes[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

/// A 1×1 GIF: a real image in a format the service does not take.
pub fn gif() -> Vec<u8> {
    let mut g = b"GIF89a".to_vec();
    g.extend_from_slice(&[1, 0, 1, 0, 0x80, 0, 0]); // 1×1, global colour table of 2
    g.extend_from_slice(&[0, 0, 0, 255, 255, 255]);
    g.extend_from_slice(&[0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0]); // image descriptor
    g.extend_from_slice(&[2, 2, 0x44, 1, 0, 0x3B]); // LZW data, trailer
    g
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 { (c >> 1) ^ 0xEDB8_8320 } else { c >> 1 };
        }
    }
    !c
}

/// Width and height of encoded image bytes.
pub fn size_of(bytes: &[u8]) -> (u32, u32) {
    let img = image::load_from_memory(bytes).unwrap();
    (img.width(), img.height())
}
