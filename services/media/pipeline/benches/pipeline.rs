//! `cargo bench --bench pipeline` — 12 MP (4000x3000) JPEG through `process`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use image::codecs::jpeg::JpegEncoder;
use image::{ExtendedColorType, ImageEncoder};
use portico_media_pipeline::{Limits, Options, OutputFormat, process};

/// Smooth gradient plus per-pixel noise, encoded at quality 90 (camera-like file, ~2.7 MB).
fn sample_12mp() -> Vec<u8> {
    let (w, h) = (4000u32, 3000u32);
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut rgb = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let n = (s % 16) as u32;
            rgb.push((20 + x * 80 / w + n) as u8);
            rgb.push((40 + y * 180 / h + n) as u8);
            rgb.push((60 + (x + y) * 150 / (w + h) + n) as u8);
        }
    }
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 90)
        .write_image(&rgb, w, h, ExtendedColorType::Rgb8)
        .unwrap();
    out
}

fn bench(c: &mut Criterion) {
    let jpeg = sample_12mp();
    let limits = Limits::default();
    let mut group = c.benchmark_group("process_12mp");
    group.sample_size(20).measurement_time(Duration::from_secs(12));
    let cases = [
        ("jpeg_only", vec![OutputFormat::Jpeg]),
        ("jpeg_and_webp", vec![OutputFormat::Jpeg, OutputFormat::Webp]),
        ("webp_only", vec![OutputFormat::Webp]),
        ("decode_only", vec![]),
    ];
    for (name, formats) in cases {
        let opts = Options {
            formats,
            ..Options::default()
        };
        group.bench_function(name, |b| b.iter(|| process(black_box(&jpeg), &limits, &opts).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
