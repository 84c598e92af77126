//! Image generators shared by the integration tests. Everything is made in code; no fixtures.
#![allow(dead_code)]

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder};

/// Deterministic xorshift64* PRNG.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Smooth gradient plus a little noise; red kept below 110 so a pure-red marker stands out.
/// The top-left `marker` x `marker` block is pure red.
pub fn gradient_rgb(w: u32, h: u32, marker: u32) -> Vec<u8> {
    let mut rng = Rng::new(u64::from(w) << 32 | u64::from(h));
    let mut out = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            if x < marker && y < marker {
                out.extend_from_slice(&[255, 0, 0]);
                continue;
            }
            let n = (rng.next_u64() % 16) as u32;
            let r = 20 + (x * 80 / w) + n / 2;
            let g = 40 + (y * 180 / h) + n;
            let b = 60 + ((x + y) * 150 / (w + h)) + n;
            out.extend_from_slice(&[r as u8, g.min(255) as u8, b.min(255) as u8]);
        }
    }
    out
}

pub fn jpeg(rgb: &[u8], w: u32, h: u32, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality)
        .write_image(rgb, w, h, ExtendedColorType::Rgb8)
        .unwrap();
    out
}

pub fn jpeg_gray(luma: &[u8], w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 85)
        .write_image(luma, w, h, ExtendedColorType::L8)
        .unwrap();
    out
}

pub fn png(data: &[u8], w: u32, h: u32, color: ExtendedColorType) -> Vec<u8> {
    let mut out = Vec::new();
    PngEncoder::new(&mut out).write_image(data, w, h, color).unwrap();
    out
}

pub fn webp_lossy(rgb: &[u8], w: u32, h: u32) -> Vec<u8> {
    webp::Encoder::from_rgb(rgb, w, h).encode(85.0).to_vec()
}

pub fn webp_lossless_rgba(rgba: &[u8], w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut out)
        .write_image(rgba, w, h, ExtendedColorType::Rgba8)
        .unwrap();
    out
}

/// Bytes of the GPS latitude rationals used in [`exif_app1`] (52/1, 31/1, 1234/100), which
/// must not survive into any output.
pub fn gps_latitude_bytes() -> Vec<u8> {
    [52u32, 1, 31, 1, 1234, 100]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

/// A complete APP1 segment (marker included): little-endian TIFF, IFD0 with Orientation and a
/// GPSInfo pointer, and a GPS IFD with latitude/longitude and their refs.
pub fn exif_app1(orientation: u16) -> Vec<u8> {
    fn entry(t: &mut Vec<u8>, tag: u16, typ: u16, count: u32, value: [u8; 4]) {
        t.extend_from_slice(&tag.to_le_bytes());
        t.extend_from_slice(&typ.to_le_bytes());
        t.extend_from_slice(&count.to_le_bytes());
        t.extend_from_slice(&value);
    }
    const SHORT: u16 = 3;
    const LONG: u16 = 4;
    const ASCII: u16 = 2;
    const RATIONAL: u16 = 5;
    let ifd0 = 8u32;
    let gps_ifd = ifd0 + 2 + 2 * 12 + 4; // 38
    let lat = gps_ifd + 2 + 4 * 12 + 4; // 92
    let lon = lat + 24;

    let mut t = b"II\x2a\x00".to_vec();
    t.extend_from_slice(&ifd0.to_le_bytes());
    t.extend_from_slice(&2u16.to_le_bytes());
    let o = orientation.to_le_bytes();
    entry(&mut t, 0x0112, SHORT, 1, [o[0], o[1], 0, 0]);
    entry(&mut t, 0x8825, LONG, 1, gps_ifd.to_le_bytes());
    t.extend_from_slice(&0u32.to_le_bytes());
    assert_eq!(t.len() as u32, gps_ifd);
    t.extend_from_slice(&4u16.to_le_bytes());
    entry(&mut t, 0x0001, ASCII, 2, *b"N\0\0\0");
    entry(&mut t, 0x0002, RATIONAL, 3, lat.to_le_bytes());
    entry(&mut t, 0x0003, ASCII, 2, *b"E\0\0\0");
    entry(&mut t, 0x0004, RATIONAL, 3, lon.to_le_bytes());
    t.extend_from_slice(&0u32.to_le_bytes());
    assert_eq!(t.len() as u32, lat);
    t.extend_from_slice(&gps_latitude_bytes());
    for v in [13u32, 1, 24, 1, 4321, 100] {
        t.extend_from_slice(&v.to_le_bytes());
    }

    let mut seg = vec![0xFF, 0xE1];
    seg.extend_from_slice(&((2 + 6 + t.len()) as u16).to_be_bytes());
    seg.extend_from_slice(b"Exif\0\0");
    seg.extend_from_slice(&t);
    seg
}

/// Inserts an APP1 Exif segment right after SOI.
pub fn with_exif(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&exif_app1(orientation));
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// Rewrites the IHDR width/height of a PNG and fixes the chunk CRC.
pub fn patch_png_dims(png: &mut [u8], w: u32, h: u32) {
    png[16..20].copy_from_slice(&w.to_be_bytes());
    png[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32fast::hash(&png[12..29]); // "IHDR" + 13 data bytes
    png[29..33].copy_from_slice(&crc.to_be_bytes());
}

/// Marker segments (marker byte, payload) of a JPEG up to SOS.
pub fn jpeg_segments(b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    assert_eq!(&b[..2], &[0xFF, 0xD8]);
    let mut pos = 2;
    let mut out = Vec::new();
    loop {
        assert_eq!(b[pos], 0xFF, "marker expected at {pos}");
        let m = b[pos + 1];
        let len = u16::from_be_bytes([b[pos + 2], b[pos + 3]]) as usize;
        out.push((m, b[pos + 4..pos + 2 + len].to_vec()));
        if m == 0xDA {
            return out;
        }
        pos += 2 + len;
    }
}

/// Chunk FourCCs of a RIFF/WebP file.
pub fn webp_chunks(b: &[u8]) -> Vec<[u8; 4]> {
    assert_eq!(&b[..4], b"RIFF");
    assert_eq!(&b[8..12], b"WEBP");
    let mut pos = 12;
    let mut out = Vec::new();
    while pos + 8 <= b.len() {
        let fourcc: [u8; 4] = b[pos..pos + 4].try_into().unwrap();
        let len = u32::from_le_bytes(b[pos + 4..pos + 8].try_into().unwrap()) as usize;
        out.push(fourcc);
        pos += 8 + len + (len & 1);
    }
    out
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Decodes any output and returns RGBA8.
pub fn decode_rgba(bytes: &[u8]) -> image::RgbaImage {
    image::load_from_memory(bytes).unwrap().to_rgba8()
}

pub fn is_red(p: &image::Rgba<u8>) -> bool {
    p[0] > 200 && p[1] < 70 && p[2] < 70
}

/// The TIFF payload of [`exif_app1`] (what PNG `eXIf` and WebP `EXIF` chunks carry).
pub fn exif_tiff(orientation: u16) -> Vec<u8> {
    exif_app1(orientation)[10..].to_vec()
}

/// Inserts an `eXIf` chunk right after IHDR.
pub fn png_with_exif(png: &[u8], orientation: u16) -> Vec<u8> {
    let tiff = exif_tiff(orientation);
    let mut chunk = (tiff.len() as u32).to_be_bytes().to_vec();
    chunk.extend_from_slice(b"eXIf");
    chunk.extend_from_slice(&tiff);
    let crc = crc32fast::hash(&chunk[4..]);
    chunk.extend_from_slice(&crc.to_be_bytes());
    let mut out = png[..33].to_vec();
    out.extend_from_slice(&chunk);
    out.extend_from_slice(&png[33..]);
    out
}

/// Wraps a simple lossy WebP (`RIFF WEBP VP8 `) into the extended format with an EXIF chunk.
pub fn webp_with_exif(simple: &[u8], w: u32, h: u32, orientation: u16) -> Vec<u8> {
    assert_eq!(&simple[12..16], b"VP8 ");
    let mut body = b"WEBP".to_vec();
    body.extend_from_slice(b"VP8X");
    body.extend_from_slice(&10u32.to_le_bytes());
    body.extend_from_slice(&[0x08, 0, 0, 0]); // EXIF flag
    body.extend_from_slice(&(w - 1).to_le_bytes()[..3]);
    body.extend_from_slice(&(h - 1).to_le_bytes()[..3]);
    body.extend_from_slice(&simple[12..]);
    let tiff = exif_tiff(orientation);
    body.extend_from_slice(b"EXIF");
    body.extend_from_slice(&(tiff.len() as u32).to_le_bytes());
    body.extend_from_slice(&tiff);
    if tiff.len() % 2 == 1 {
        body.push(0);
    }
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}
