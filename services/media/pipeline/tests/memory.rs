//! Heap accounting with a counting global allocator (`peak_alloc`: the workspace forbids
//! `unsafe`, tests included). Counts every allocation made through Rust's allocator, including
//! those of the decoder threads; libwebp's C `malloc`s are not seen (use `examples/peak.rs`
//! under `/usr/bin/time -v` for whole-process RSS). The tests in this file take a lock so the
//! counters are not shared between concurrently running tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Mutex;

use common::*;
use image::ExtendedColorType;
use peak_alloc::PeakAlloc;
use portico_media_pipeline::{Limits, Options, OutputFormat, PipelineError, probe, process};

#[global_allocator]
static GLOBAL: PeakAlloc = PeakAlloc;

static LOCK: Mutex<()> = Mutex::new(());

/// Runs `f` and returns its result with the peak heap growth (bytes above the level at entry).
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    GLOBAL.reset_peak_usage();
    let base = GLOBAL.current_usage();
    let out = f();
    (out, GLOBAL.peak_usage().saturating_sub(base))
}

#[test]
fn pixel_bomb_is_rejected_without_allocating() {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut bomb = png(&[0u8; 8 * 8 * 3], 8, 8, ExtendedColorType::Rgb8);
    patch_png_dims(&mut bomb, 100_000, 100_000);
    let (res, peak) = peak_during(|| process(&bomb, &Limits::default(), &Options::default()));
    assert!(matches!(res, Err(PipelineError::TooManyPixels { .. })));
    assert!(peak < 4096, "rejecting the bomb allocated {peak} bytes");
    let (res, peak) = peak_during(|| probe(&bomb, &Limits::default()));
    assert!(res.is_err());
    assert!(peak < 4096, "probe allocated {peak} bytes");
}

#[test]
fn twelve_megapixel_peak_heap_is_below_twice_the_decoded_size() {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let (w, h) = (4000u32, 3000u32);
    let decoded_size = (w * h * 3) as usize; // 36 MB of RGB
    let src = with_exif(&jpeg(&gradient_rgb(w, h, 0), w, h, 90), 6);
    for formats in [vec![OutputFormat::Jpeg], vec![OutputFormat::Jpeg, OutputFormat::Webp]] {
        let opts = Options {
            formats: formats.clone(),
            ..Options::default()
        };
        let (res, peak) = peak_during(|| process(&src, &Limits::default(), &opts));
        let out = res.unwrap();
        assert_eq!(out.variants.len(), 4 * formats.len());
        println!(
            "{formats:?}: peak heap {:.1} MB (decoded original would be {:.1} MB)",
            peak as f64 / 1e6,
            decoded_size as f64 / 1e6
        );
        assert!(peak < 2 * decoded_size, "peak {peak}");
    }
    // A PNG cannot be decoded at reduced scale: the bound must still hold with the full-size
    // decode alive (decoded + large variant + encoder buffers).
    let (pw, ph) = (3000u32, 2000u32);
    let png_src = png(&gradient_rgb(pw, ph, 0), pw, ph, ExtendedColorType::Rgb8);
    let decoded_size = (pw * ph * 3) as usize;
    let (res, peak) = peak_during(|| process(&png_src, &Limits::default(), &Options::default()));
    res.unwrap();
    println!(
        "PNG 3000x2000: peak heap {:.1} MB (decoded {:.1} MB)",
        peak as f64 / 1e6,
        decoded_size as f64 / 1e6
    );
    assert!(peak < 2 * decoded_size, "peak {peak}");
}
