#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use image::ExtendedColorType;
use portico_media_pipeline::{
    Format, Limits, Options, OutputFormat, PipelineError, Processed, VARIANTS, fuzz_decode, probe, process, sniff,
};

fn dims(p: &Processed, name: &str, format: OutputFormat) -> (u32, u32) {
    let v = p
        .variants
        .iter()
        .find(|v| v.name == name && v.format == format)
        .unwrap();
    (v.width, v.height)
}

/// Every variant decodes, has the advertised size and carries no metadata.
fn check_outputs(p: &Processed) {
    for v in &p.variants {
        let img = decode_rgba(&v.bytes);
        assert_eq!((img.width(), img.height()), (v.width, v.height), "{v:?}");
        assert!(!contains(&v.bytes, b"Exif"), "{v:?} has Exif");
        assert!(!contains(&v.bytes, b"http://ns.adobe.com/xap"), "{v:?} has XMP");
        match v.format {
            OutputFormat::Jpeg => {
                for (marker, _) in jpeg_segments(&v.bytes) {
                    // Only JFIF APP0 is allowed among APPn/COM segments.
                    assert!(
                        marker == 0xE0 || !(0xE1..=0xEF).contains(&marker) && marker != 0xFE,
                        "{v:?} {marker:x}"
                    );
                }
            }
            OutputFormat::Webp => {
                for c in webp_chunks(&v.bytes) {
                    assert!(matches!(&c, b"VP8 " | b"VP8L" | b"VP8X" | b"ALPH"), "{v:?} chunk {c:?}");
                }
            }
        }
    }
}

#[test]
fn decodes_jpeg_png_webp() {
    let (w, h) = (640, 480);
    let rgb = gradient_rgb(w, h, 40);
    let inputs = [
        (Format::Jpeg, jpeg(&rgb, w, h, 90)),
        (Format::Png, png(&rgb, w, h, ExtendedColorType::Rgb8)),
        (Format::Webp, webp_lossy(&rgb, w, h)),
    ];
    for (format, bytes) in inputs {
        assert_eq!(sniff(&bytes), Some(format));
        let pr = probe(&bytes, &Limits::default()).unwrap();
        assert_eq!((pr.format, pr.width, pr.height), (format, w, h));
        let out = process(&bytes, &Limits::default(), &Options::default()).unwrap();
        assert_eq!(out.original, pr);
        assert_eq!((out.oriented_width, out.oriented_height), (w, h));
        assert_eq!(out.variants.len(), 8);
        let names: Vec<_> = out.variants.iter().map(|v| (v.name, v.format)).collect();
        let mut expected = Vec::new();
        for s in VARIANTS {
            expected.push((s.name, OutputFormat::Jpeg));
            expected.push((s.name, OutputFormat::Webp));
        }
        assert_eq!(names, expected);
        for f in [OutputFormat::Jpeg, OutputFormat::Webp] {
            assert_eq!(dims(&out, "large", f), (640, 480), "never upscaled");
            assert_eq!(dims(&out, "medium", f), (640, 480));
            assert_eq!(dims(&out, "small", f), (320, 240));
            assert_eq!(dims(&out, "thumbnail", f), (150, 113));
        }
        check_outputs(&out);
        // The marker survives resizing in the right place (top-left, unrotated).
        let large = decode_rgba(&out.variants[6].bytes);
        assert!(is_red(large.get_pixel(10, 10)), "{format:?}");
        assert!(!is_red(large.get_pixel(600, 400)), "{format:?}");
    }
}

#[test]
fn format_option_and_quality() {
    let rgb = gradient_rgb(400, 300, 0);
    let bytes = jpeg(&rgb, 400, 300, 90);
    let only_jpeg = Options {
        formats: vec![OutputFormat::Jpeg, OutputFormat::Jpeg],
        ..Options::default()
    };
    let out = process(&bytes, &Limits::default(), &only_jpeg).unwrap();
    assert_eq!(out.variants.len(), 4);
    assert!(
        out.variants
            .iter()
            .all(|v| v.format == OutputFormat::Jpeg && v.bytes.starts_with(&[0xFF, 0xD8]))
    );
    let only_webp = Options {
        formats: vec![OutputFormat::Webp],
        ..Options::default()
    };
    let out = process(&bytes, &Limits::default(), &only_webp).unwrap();
    assert!(
        out.variants
            .iter()
            .all(|v| v.format == OutputFormat::Webp && v.bytes.starts_with(b"RIFF"))
    );
    let none = Options {
        formats: vec![],
        ..Options::default()
    };
    assert!(process(&bytes, &Limits::default(), &none).unwrap().variants.is_empty());
    // Lower quality -> smaller files; absurd values are clamped rather than rejected.
    let lo = Options {
        jpeg_quality: 20,
        webp_quality: 20.0,
        ..Options::default()
    };
    let hi = Options {
        jpeg_quality: 250,
        webp_quality: f32::NAN,
        ..Options::default()
    };
    let size = |o: &Options| -> usize {
        process(&bytes, &Limits::default(), o)
            .unwrap()
            .variants
            .iter()
            .map(|v| v.bytes.len())
            .sum()
    };
    assert!(size(&lo) < size(&Options::default()));
    assert!(size(&Options::default()) < size(&hi));
}

#[test]
fn not_an_image() {
    for bytes in [
        &b"hello, this is definitely not an image\n"[..],
        b"",
        b"\xFF",
        b"RIFF\0\0\0\0WAVEfmt ",
    ] {
        let err = probe(bytes, &Limits::default()).unwrap_err();
        assert_eq!(err, PipelineError::NotAnImage);
        assert_eq!((err.status(), err.code()), (400, "NOT_AN_IMAGE"));
        assert_eq!(
            process(bytes, &Limits::default(), &Options::default()).unwrap_err(),
            err
        );
    }
}

#[test]
fn unsupported_formats() {
    let gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";
    let mut bmp = b"BM".to_vec();
    bmp.extend_from_slice(&58u32.to_le_bytes());
    bmp.extend_from_slice(&[0, 0, 0, 0]);
    bmp.extend_from_slice(&54u32.to_le_bytes());
    bmp.extend_from_slice(&40u32.to_le_bytes());
    bmp.extend_from_slice(&[0; 40]);
    let cases: [(&[u8], &str); 5] = [
        (gif, "gif"),
        (&bmp, "bmp"),
        (b"II*\0\x08\0\0\0\0\0", "tiff"),
        (b"\0\0\0\x20ftypavif\0\0\0\0avifmif1miaf", "avif"),
        (b"\0\0\0\x18ftypheic\0\0\0\0mif1heic", "heic"),
    ];
    for (bytes, name) in cases {
        let err = process(bytes, &Limits::default(), &Options::default()).unwrap_err();
        assert_eq!(err, PipelineError::Unsupported { format: name.into() });
        assert_eq!((err.status(), err.code()), (415, "UNSUPPORTED_MEDIA_TYPE"));
        assert_eq!(probe(bytes, &Limits::default()).unwrap_err(), err);
    }
}

#[test]
fn truncated_inputs() {
    let rgb = gradient_rgb(320, 240, 0);
    let j = jpeg(&rgb, 320, 240, 90);
    let err = process(&j[..j.len() / 2], &Limits::default(), &Options::default()).unwrap_err();
    assert_eq!(err, PipelineError::Truncated);
    assert_eq!((err.status(), err.code()), (400, "IMAGE_TRUNCATED"));
    // The header is intact, so probe still answers: only decoding notices.
    assert!(probe(&j[..j.len() / 2], &Limits::default()).is_ok());
    // Cut inside the header.
    assert_eq!(
        probe(&j[..40], &Limits::default()).unwrap_err(),
        PipelineError::Truncated
    );

    let p = png(&rgb, 320, 240, ExtendedColorType::Rgb8);
    let err = process(&p[..p.len() / 2], &Limits::default(), &Options::default()).unwrap_err();
    assert_eq!(err.status(), 400, "{err:?}");
    assert!(
        matches!(err, PipelineError::Truncated | PipelineError::Corrupt(_)),
        "{err:?}"
    );

    let w = webp_lossy(&rgb, 320, 240);
    let err = process(&w[..w.len() / 2], &Limits::default(), &Options::default()).unwrap_err();
    assert_eq!(err, PipelineError::Truncated);
}

#[test]
fn over_byte_cap() {
    let rgb = gradient_rgb(320, 240, 0);
    let j = jpeg(&rgb, 320, 240, 90);
    let limits = Limits {
        max_bytes: 1000,
        ..Limits::default()
    };
    let err = probe(&j, &limits).unwrap_err();
    assert_eq!(
        err,
        PipelineError::TooLarge {
            bytes: j.len() as u64,
            max: 1000
        }
    );
    assert_eq!((err.status(), err.code()), (413, "IMAGE_TOO_LARGE"));
    assert_eq!(process(&j, &limits, &Options::default()).unwrap_err(), err);
    // The byte cap is checked first, even for non-images.
    assert!(matches!(
        probe(&[b'x'; 2000], &limits),
        Err(PipelineError::TooLarge { .. })
    ));
}

#[test]
fn pixel_bomb_png() {
    let mut bomb = png(&[0u8; 16 * 16 * 3], 16, 16, ExtendedColorType::Rgb8);
    patch_png_dims(&mut bomb, 100_000, 100_000);
    assert!(bomb.len() < 1024, "{}", bomb.len());
    let err = probe(&bomb, &Limits::default()).unwrap_err();
    assert_eq!(
        err,
        PipelineError::TooManyPixels {
            width: 100_000,
            height: 100_000,
            max: 50_000_000
        }
    );
    assert_eq!((err.status(), err.code()), (413, "IMAGE_TOO_MANY_PIXELS"));
    assert_eq!(
        process(&bomb, &Limits::default(), &Options::default()).unwrap_err(),
        err
    );
    // Within the pixel cap but lying about its size: the decoder fails cleanly.
    patch_png_dims(&mut bomb, 4000, 4000);
    let err = process(&bomb, &Limits::default(), &Options::default()).unwrap_err();
    assert_eq!(err.status(), 400, "{err:?}");
}

#[test]
fn pixel_cap_applies_to_all_formats() {
    let rgb = gradient_rgb(200, 100, 0);
    let limits = Limits {
        max_pixels: 19_999,
        ..Limits::default()
    };
    for bytes in [
        jpeg(&rgb, 200, 100, 80),
        png(&rgb, 200, 100, ExtendedColorType::Rgb8),
        webp_lossy(&rgb, 200, 100),
    ] {
        let err = process(&bytes, &limits, &Options::default()).unwrap_err();
        assert_eq!(
            err,
            PipelineError::TooManyPixels {
                width: 200,
                height: 100,
                max: 19_999
            }
        );
    }
}

#[test]
fn twelve_megapixel_exif_orientation_6_with_gps() {
    let (w, h) = (4000, 3000);
    let rgb = gradient_rgb(w, h, 400);
    let src = with_exif(&jpeg(&rgb, w, h, 85), 6);
    drop(rgb);
    assert!(contains(&src, b"Exif\0\0") && contains(&src, &gps_latitude_bytes()));
    let out = process(&src, &Limits::default(), &Options::default()).unwrap();
    assert_eq!(
        (out.original.width, out.original.height),
        (4000, 3000),
        "probe reports stored dims"
    );
    assert_eq!((out.oriented_width, out.oriented_height), (3000, 4000));
    for f in [OutputFormat::Jpeg, OutputFormat::Webp] {
        assert_eq!(dims(&out, "large", f), (960, 1280));
        assert_eq!(dims(&out, "medium", f), (480, 640));
        assert_eq!(dims(&out, "small", f), (240, 320));
        assert_eq!(dims(&out, "thumbnail", f), (113, 150));
    }
    for v in &out.variants {
        assert!(v.height > v.width, "{v:?} is not portrait");
        assert!(!contains(&v.bytes, b"Exif\0\0"), "{v:?}");
        assert!(!contains(&v.bytes, &gps_latitude_bytes()), "{v:?}");
        assert!(!contains(&v.bytes, b"GPS"), "{v:?}");
    }
    check_outputs(&out);
    // 90° clockwise: the red top-left block lands top-right (128 px wide in the 960-wide large).
    for v in out.variants.iter().filter(|v| v.name == "large") {
        let img = decode_rgba(&v.bytes);
        assert!(is_red(img.get_pixel(960 - 40, 40)), "{v:?}");
        assert!(!is_red(img.get_pixel(40, 40)), "{v:?}");
        assert!(!is_red(img.get_pixel(40, 1280 - 40)), "{v:?}");
        assert!(!is_red(img.get_pixel(960 - 40, 1280 - 40)), "{v:?}");
    }
}

/// Where the red top-left marker of the stored image must appear for each EXIF orientation:
/// (right side?, bottom side?).
const CORNERS: [(u16, bool, bool); 8] = [
    (1, false, false),
    (2, true, false),
    (3, true, true),
    (4, false, true),
    (5, false, false),
    (6, true, false),
    (7, true, true),
    (8, false, true),
];

fn assert_corner(bytes: &[u8], right: bool, bottom: bool, what: &str) {
    let img = decode_rgba(bytes);
    let (w, h) = (img.width(), img.height());
    let at = |r: bool, b: bool| {
        let x = if r { w - 1 - w / 20 } else { w / 20 };
        let y = if b { h - 1 - h / 20 } else { h / 20 };
        is_red(img.get_pixel(x, y))
    };
    for r in [false, true] {
        for b in [false, true] {
            assert_eq!(
                at(r, b),
                (r, b) == (right, bottom),
                "{what}: corner right={r} bottom={b}"
            );
        }
    }
}

#[test]
fn all_eight_orientations_small() {
    let (w, h) = (300, 200);
    let base = jpeg(&gradient_rgb(w, h, 50), w, h, 92);
    for (o, right, bottom) in CORNERS {
        let src = with_exif(&base, o);
        let out = process(&src, &Limits::default(), &Options::default()).unwrap();
        let want = if o >= 5 { (200, 300) } else { (300, 200) };
        assert_eq!((out.oriented_width, out.oriented_height), want, "orientation {o}");
        for v in &out.variants {
            assert!(!contains(&v.bytes, b"Exif"));
            if v.name == "large" || v.name == "small" {
                assert_corner(&v.bytes, right, bottom, &format!("orientation {o} {v:?}"));
            }
        }
    }
}

#[test]
fn all_eight_orientations_scaled_decode() {
    // 2600x1800: long side >= 2*1280, so the JPEG is decoded at 1/2 scale (1300x900).
    let (w, h) = (2600, 1800);
    let base = jpeg(&gradient_rgb(w, h, 300), w, h, 85);
    for (o, right, bottom) in CORNERS {
        let src = with_exif(&base, o);
        let opts = Options {
            formats: vec![OutputFormat::Jpeg],
            ..Options::default()
        };
        let out = process(&src, &Limits::default(), &opts).unwrap();
        let large = out.variants.iter().find(|v| v.name == "large").unwrap();
        let want = if o >= 5 { (886, 1280) } else { (1280, 886) };
        assert_eq!((large.width, large.height), want, "orientation {o}");
        assert_corner(&large.bytes, right, bottom, &format!("orientation {o}"));
    }
}

#[test]
fn progressive_and_cmyk_and_gray_jpeg() {
    let (w, h) = (2700, 1500);
    let rgb = gradient_rgb(w, h, 200);
    // Progressive, large enough for the scaled path.
    let mut prog = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut prog, 85);
    enc.set_progressive(true);
    enc.encode(&rgb, w as u16, h as u16, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    // CMYK (4 components) takes the full-size path.
    let cmyk: Vec<u8> = rgb
        .chunks_exact(3)
        .flat_map(|p| [255 - p[0], 255 - p[1], 255 - p[2], 0])
        .collect();
    let mut cmyk_jpeg = Vec::new();
    jpeg_encoder::Encoder::new(&mut cmyk_jpeg, 85)
        .encode(&cmyk, w as u16, h as u16, jpeg_encoder::ColorType::Cmyk)
        .unwrap();
    // Grayscale, both small (full path) and large (scaled path).
    let luma: Vec<u8> = rgb.chunks_exact(3).map(|p| p[1]).collect();
    let gray_big = jpeg_gray(&luma, w, h);
    let small_luma: Vec<u8> = luma.iter().step_by(9).take(300 * 200).copied().collect();
    let gray_small = jpeg_gray(&small_luma, 300, 200);

    for (what, bytes) in [("progressive", &prog), ("cmyk", &cmyk_jpeg), ("gray big", &gray_big)] {
        let out = process(bytes, &Limits::default(), &Options::default()).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(dims(&out, "large", OutputFormat::Jpeg), (1280, 711), "{what}");
        check_outputs(&out);
        if what != "gray big" {
            let img = decode_rgba(&out.variants[6].bytes);
            assert!(is_red(img.get_pixel(20, 20)), "{what}: {:?}", img.get_pixel(20, 20));
        }
    }
    let out = process(&gray_small, &Limits::default(), &Options::default()).unwrap();
    assert_eq!(dims(&out, "large", OutputFormat::Webp), (300, 200));
    check_outputs(&out);
}

/// Small JPEGs decoded at full size: progressive (zune-jpeg), CMYK and non-interleaved
/// sequential scans (routed to jpeg-decoder because zune-jpeg 0.5 gets them wrong).
#[test]
fn unusual_small_jpegs_keep_their_colours() {
    let (w, h) = (600u32, 400u32);
    let rgb = gradient_rgb(w, h, 60);
    let encode = |data: &[u8], color, progressive, optimize| {
        let mut out = Vec::new();
        let mut enc = jpeg_encoder::Encoder::new(&mut out, 85);
        enc.set_progressive(progressive);
        enc.set_optimized_huffman_tables(optimize);
        enc.encode(data, w as u16, h as u16, color).unwrap();
        out
    };
    let cmyk: Vec<u8> = rgb
        .chunks_exact(3)
        .flat_map(|p| [255 - p[0], 255 - p[1], 255 - p[2], 0])
        .collect();
    let cases = [
        ("progressive", encode(&rgb, jpeg_encoder::ColorType::Rgb, true, false)),
        (
            "non-interleaved",
            encode(&rgb, jpeg_encoder::ColorType::Rgb, false, true),
        ),
        ("cmyk", encode(&cmyk, jpeg_encoder::ColorType::Cmyk, false, false)),
    ];
    for (what, bytes) in cases {
        let out = process(&bytes, &Limits::default(), &Options::default()).unwrap_or_else(|e| panic!("{what}: {e}"));
        let large = out.variants.iter().find(|v| v.name == "large").unwrap();
        assert_eq!((large.width, large.height), (600, 400));
        let img = decode_rgba(&large.bytes);
        assert!(is_red(img.get_pixel(20, 20)), "{what}");
        // Compare a gradient pixel on an odd row with the source (catches black-row bugs).
        for (x, y) in [(301u32, 201u32), (500, 333), (100, 399)] {
            let got = img.get_pixel(x, y);
            let i = ((y * w + x) * 3) as usize;
            for c in 0..3 {
                let d = (i32::from(got[c]) - i32::from(rgb[i + c])).abs();
                assert!(d < 20, "{what} at ({x},{y}): got {got:?}, source {:?}", &rgb[i..i + 3]);
            }
        }
    }
}

#[test]
fn alpha_composited_for_jpeg_kept_for_webp() {
    let (w, h) = (200, 100);
    // Left half opaque blue, right half fully transparent (black).
    let mut rgba = Vec::new();
    for _y in 0..h {
        for x in 0..w {
            rgba.extend_from_slice(if x < w / 2 { &[0, 0, 255, 255] } else { &[0, 0, 0, 0] });
        }
    }
    for bytes in [
        png(&rgba, w, h, ExtendedColorType::Rgba8),
        webp_lossless_rgba(&rgba, w, h),
    ] {
        let out = process(&bytes, &Limits::default(), &Options::default()).unwrap();
        check_outputs(&out);
        let j = out
            .variants
            .iter()
            .find(|v| v.name == "large" && v.format == OutputFormat::Jpeg)
            .unwrap();
        let img = decode_rgba(&j.bytes);
        let p = img.get_pixel(190, 50);
        assert!(
            p[0] > 245 && p[1] > 245 && p[2] > 245,
            "transparent -> white, got {p:?}"
        );
        let p = img.get_pixel(10, 50);
        assert!(p[2] > 200 && p[0] < 40, "opaque blue stays blue, got {p:?}");
        let wv = out
            .variants
            .iter()
            .find(|v| v.name == "large" && v.format == OutputFormat::Webp)
            .unwrap();
        assert!(webp_chunks(&wv.bytes).contains(b"ALPH"));
        let img = decode_rgba(&wv.bytes);
        assert!(img.get_pixel(190, 50)[3] < 10, "alpha kept in WebP");
        assert_eq!(img.get_pixel(10, 50)[3], 255);
    }
    // A fully opaque RGBA input loses its (useless) alpha channel.
    let opaque: Vec<u8> = rgba.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2], 255]).collect();
    let out = process(
        &png(&opaque, w, h, ExtendedColorType::Rgba8),
        &Limits::default(),
        &Options::default(),
    )
    .unwrap();
    for v in out.variants.iter().filter(|v| v.format == OutputFormat::Webp) {
        assert!(!webp_chunks(&v.bytes).contains(b"ALPH"));
    }
}

#[test]
fn other_png_colour_types() {
    let (w, h) = (180, 120);
    let rgb = gradient_rgb(w, h, 20);
    let gray: Vec<u8> = rgb.chunks_exact(3).map(|p| p[1]).collect();
    let gray_alpha: Vec<u8> = rgb.chunks_exact(3).flat_map(|p| [p[1], 128]).collect();
    let rgb16: Vec<u8> = rgb.iter().flat_map(|&c| (u16::from(c) * 257).to_be_bytes()).collect();
    let inputs = [
        png(&gray, w, h, ExtendedColorType::L8),
        png(&gray_alpha, w, h, ExtendedColorType::La8),
        png(&rgb16, w, h, ExtendedColorType::Rgb16),
    ];
    for bytes in inputs {
        let out = process(&bytes, &Limits::default(), &Options::default()).unwrap();
        assert_eq!(dims(&out, "large", OutputFormat::Jpeg), (180, 120));
        assert_eq!(dims(&out, "thumbnail", OutputFormat::Webp), (150, 100));
        check_outputs(&out);
    }
}

#[test]
fn tiny_and_extreme_aspect() {
    let one = png(&[9, 8, 7], 1, 1, ExtendedColorType::Rgb8);
    let out = process(&one, &Limits::default(), &Options::default()).unwrap();
    assert!(out.variants.iter().all(|v| (v.width, v.height) == (1, 1)));
    check_outputs(&out);

    let strip = png(&vec![200u8; 3000 * 3], 3000, 1, ExtendedColorType::Rgb8);
    let out = process(&strip, &Limits::default(), &Options::default()).unwrap();
    assert_eq!(dims(&out, "large", OutputFormat::Jpeg), (1280, 1));
    assert_eq!(dims(&out, "thumbnail", OutputFormat::Webp), (150, 1));
    check_outputs(&out);

    // Scaled-decode path (long side >= 2560) with a 1-3 px short side.
    for (w, h) in [(2600, 1), (3, 2600), (5200, 2)] {
        let bytes = jpeg(&gradient_rgb(w, h, 0), w, h, 80);
        let out = process(&bytes, &Limits::default(), &Options::default()).unwrap_or_else(|e| panic!("{w}x{h}: {e}"));
        let want = if w > h { (1280, 1) } else { (1, 1280) };
        assert_eq!(dims(&out, "large", OutputFormat::Jpeg), want, "{w}x{h}");
        check_outputs(&out);
    }

    let tall = jpeg(&gradient_rgb(10, 2000, 0), 10, 2000, 80);
    let out = process(&tall, &Limits::default(), &Options::default()).unwrap();
    assert_eq!(dims(&out, "large", OutputFormat::Jpeg), (6, 1280));
    assert_eq!(dims(&out, "thumbnail", OutputFormat::Jpeg), (1, 150));
    check_outputs(&out);
}

#[test]
fn fuzz_decode_survives_mutations() {
    let (w, h) = (64, 48);
    let rgb = gradient_rgb(w, h, 8);
    let rgba: Vec<u8> = rgb.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], p[0]]).collect();
    // 2600x400 stays under fuzz_decode's 1 MP cap but is wide enough for the 1/2-scale path.
    let wide = gradient_rgb(2600, 400, 30);
    let mut progressive = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut progressive, 80);
    enc.set_progressive(true);
    enc.encode(&rgb, w as u16, h as u16, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    let seeds = [
        with_exif(&jpeg(&rgb, w, h, 80), 6),
        with_exif(&jpeg(&wide, 2600, 400, 80), 8),
        progressive,
        png(&rgb, w, h, ExtendedColorType::Rgb8),
        png(&rgba, w, h, ExtendedColorType::Rgba8),
        webp_lossy(&rgb, w, h),
        webp_lossless_rgba(&rgba, w, h),
    ];
    for s in &seeds {
        fuzz_decode(s);
    }
    let mut rng = Rng::new(0x5EED);
    let mut runs = 0;
    for seed in &seeds {
        for _ in 0..60 {
            let mut b = seed.clone();
            match rng.below(5) {
                0 => {
                    // Flip a few random bytes.
                    for _ in 0..1 + rng.below(8) {
                        let i = rng.below(b.len());
                        b[i] ^= 1 << rng.below(8);
                    }
                }
                1 => {
                    // Overwrite a byte in the header region with an extreme value.
                    let i = rng.below(b.len().min(64));
                    b[i] = [0x00, 0xFF, 0x7F, 0x80][rng.below(4)];
                }
                2 => b.truncate(rng.below(b.len())),
                3 => {
                    // Splice random garbage into the middle.
                    let i = rng.below(b.len());
                    let junk: Vec<u8> = (0..rng.below(64)).map(|_| rng.next_u64() as u8).collect();
                    b.splice(i..i, junk);
                }
                _ => {
                    // Duplicate a chunk of the file.
                    let i = rng.below(b.len());
                    let j = (i + rng.below(200)).min(b.len());
                    let part = b[i..j].to_vec();
                    b.extend_from_slice(&part);
                }
            }
            fuzz_decode(&b);
            runs += 1;
        }
    }
    // Pure noise, including inputs with a valid magic prefix.
    for i in 0..100 {
        let mut b: Vec<u8> = (0..rng.below(300)).map(|_| rng.next_u64() as u8).collect();
        let prefix: &[u8] = [
            &b"\xFF\xD8\xFF"[..],
            b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR",
            b"RIFF\0\x01\0\0WEBPVP8X",
            b"",
        ][i % 4];
        b.splice(0..0, prefix.iter().copied());
        fuzz_decode(&b);
        runs += 1;
    }
    assert_eq!(runs, seeds.len() * 60 + 100);
}

#[test]
fn png_and_webp_exif_orientation() {
    let (w, h) = (300, 200);
    let rgb = gradient_rgb(w, h, 50);
    let plain_png = png(&rgb, w, h, ExtendedColorType::Rgb8);
    let plain_webp = webp_lossy(&rgb, w, h);
    for (o, right, bottom) in CORNERS {
        let inputs = [
            ("png", png_with_exif(&plain_png, o)),
            ("webp", webp_with_exif(&plain_webp, w, h, o)),
        ];
        for (what, bytes) in inputs {
            let out =
                process(&bytes, &Limits::default(), &Options::default()).unwrap_or_else(|e| panic!("{what}: {e}"));
            let want = if o >= 5 { (200, 300) } else { (300, 200) };
            assert_eq!(
                (out.oriented_width, out.oriented_height),
                want,
                "{what} orientation {o}"
            );
            assert_eq!((out.original.width, out.original.height), (300, 200));
            check_outputs(&out);
            for v in out.variants.iter().filter(|v| v.name == "large") {
                assert_corner(&v.bytes, right, bottom, &format!("{what} orientation {o} {v:?}"));
                assert!(!contains(&v.bytes, &gps_latitude_bytes()));
            }
        }
    }
}

#[test]
fn animated_webp_uses_the_first_frame() {
    let (w, h) = (120u32, 80u32);
    let red: Vec<u8> = (0..w * h).flat_map(|_| [255u8, 0, 0, 255]).collect();
    let blue: Vec<u8> = (0..w * h).flat_map(|_| [0u8, 0, 255, 255]).collect();
    let config = webp::WebPConfig::new().unwrap();
    let mut enc = webp::AnimEncoder::new(w, h, &config);
    enc.add_frame(webp::AnimFrame::from_rgba(&red, w, h, 0));
    enc.add_frame(webp::AnimFrame::from_rgba(&blue, w, h, 100));
    let anim = enc.encode().to_vec();
    match process(&anim, &Limits::default(), &Options::default()) {
        Ok(out) => {
            assert_eq!(dims(&out, "large", OutputFormat::Jpeg), (120, 80));
            check_outputs(&out);
            assert!(is_red(decode_rgba(&out.variants[0].bytes).get_pixel(60, 40)));
        }
        Err(e) => panic!("animated WebP: {e:?}"),
    }
}
