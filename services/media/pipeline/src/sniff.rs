//! Magic-byte sniffing.

use crate::Format;

/// What the first bytes of an input look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// A format the pipeline decodes.
    Supported(Format),
    /// A recognised image/media format the pipeline does not accept (short name, e.g. `"gif"`).
    Unsupported(&'static str),
    /// Nothing recognised.
    Unknown,
}

/// Returns the supported format the bytes start with, if any (JPEG, PNG or WebP). Looks at
/// magic bytes only; says nothing about whether the rest of the file is valid.
#[must_use]
pub fn sniff(bytes: &[u8]) -> Option<Format> {
    match sniff_any(bytes) {
        Sniffed::Supported(f) => Some(f),
        Sniffed::Unsupported(_) | Sniffed::Unknown => None,
    }
}

/// Like [`sniff`], but also recognises common formats that are *not* supported, so callers can
/// answer 415 instead of 400 for them.
#[must_use]
pub fn sniff_any(b: &[u8]) -> Sniffed {
    use Sniffed::{Supported, Unknown, Unsupported};
    if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Supported(Format::Jpeg);
    }
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Supported(Format::Png);
    }
    if b.len() >= 12 && b.starts_with(b"RIFF") && b.get(8..12) == Some(b"WEBP") {
        return Supported(Format::Webp);
    }
    if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        return Unsupported("gif");
    }
    if b.starts_with(b"BM") && (b.len() < 10 || b.get(6..10) == Some(&[0, 0, 0, 0])) {
        return Unsupported("bmp");
    }
    if b.starts_with(b"II*\0") || b.starts_with(b"MM\0*") || b.starts_with(b"II+\0") || b.starts_with(b"MM\0+") {
        return Unsupported("tiff");
    }
    if b.get(4..8) == Some(b"ftyp") {
        return Unsupported(match b.get(8..12) {
            Some(b"avif" | b"avis") => "avif",
            Some(b"heic" | b"heix" | b"hevc" | b"hevx" | b"heim" | b"heis" | b"mif1" | b"msf1") => "heic",
            Some(b"crx ") => "cr3",
            Some(b"jxl ") => "jxl",
            _ => "iso-bmff",
        });
    }
    if b.starts_with(&[0xFF, 0x0A]) || b.starts_with(b"\0\0\0\x0cJXL \r\n\x87\n") {
        return Unsupported("jxl");
    }
    if b.starts_with(b"\0\0\0\x0cjP  \r\n\x87\n") || b.starts_with(&[0xFF, 0x4F, 0xFF, 0x51]) {
        return Unsupported("jpeg2000");
    }
    if b.starts_with(&[0, 0, 1, 0]) || b.starts_with(&[0, 0, 2, 0]) {
        return Unsupported("ico");
    }
    if b.starts_with(b"8BPS") {
        return Unsupported("psd");
    }
    if b.starts_with(b"qoif") {
        return Unsupported("qoi");
    }
    if b.starts_with(&[0x76, 0x2F, 0x31, 0x01]) {
        return Unsupported("exr");
    }
    if b.starts_with(b"DDS ") {
        return Unsupported("dds");
    }
    if b.starts_with(b"#?RADIANCE") || b.starts_with(b"#?RGBE") {
        return Unsupported("hdr");
    }
    if b.len() >= 3 && b[0] == b'P' && (b'1'..=b'7').contains(&b[1]) && b[2].is_ascii_whitespace() {
        return Unsupported("pnm");
    }
    if b.starts_with(b"%PDF-") {
        return Unsupported("pdf");
    }
    if is_svg(b) {
        return Unsupported("svg");
    }
    Unknown
}

fn is_svg(b: &[u8]) -> bool {
    let head = &b[..b.len().min(512)];
    let head = head.strip_prefix(b"\xEF\xBB\xBF".as_slice()).unwrap_or(head);
    let trimmed = head
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .map_or(&[][..], |i| &head[i..]);
    if trimmed.starts_with(b"<svg") {
        return true;
    }
    trimmed.starts_with(b"<?xml") && head.windows(4).any(|w| w == b"<svg")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic() {
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(Format::Jpeg));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some(Format::Png));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(Format::Webp));
        assert_eq!(sniff(b"RIFF\0\0\0\0WAVEfmt "), None);
        assert_eq!(sniff_any(b"GIF89a\x01\x00"), Sniffed::Unsupported("gif"));
        assert_eq!(
            sniff_any(b"BM\x3a\0\0\0\0\0\0\0\x36\0\0\0"),
            Sniffed::Unsupported("bmp")
        );
        assert_eq!(sniff_any(b"BMW is a car brand"), Sniffed::Unknown);
        assert_eq!(sniff_any(b"II*\0\x08\0\0\0"), Sniffed::Unsupported("tiff"));
        assert_eq!(sniff_any(b"\0\0\0\x1cftypavif\0\0\0\0"), Sniffed::Unsupported("avif"));
        assert_eq!(sniff_any(b"\0\0\0\x18ftypheic"), Sniffed::Unsupported("heic"));
        assert_eq!(
            sniff_any(b"<?xml version=\"1.0\"?>\n<svg xmlns=..."),
            Sniffed::Unsupported("svg")
        );
        assert_eq!(sniff_any(b"hello world"), Sniffed::Unknown);
        assert_eq!(sniff_any(b""), Sniffed::Unknown);
        assert_eq!(sniff_any(b"\xFF"), Sniffed::Unknown);
    }
}
