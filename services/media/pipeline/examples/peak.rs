//! Process one image file and report timing (and peak RSS from /proc on Linux).
//!
//! ```text
//! cargo run --release --example peak -- photo.jpg [--jpeg-only] [--repeat N] [--out DIR]
//! /usr/bin/time -v target/release/examples/peak photo.jpg     # "Maximum resident set size"
//! cargo run --release --example peak -- --write-sample sample.jpg   # synthetic 12 MP JPEG
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use portico_media_pipeline::{Limits, Options, OutputFormat, process};

fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn write_sample(path: &str) {
    let (w, h) = (4000u32, 3000u32);
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut rgb = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let n = (s % 16) as u32;
            rgb.extend_from_slice(&[
                (20 + x * 80 / w + n) as u8,
                (40 + y * 180 / h + n) as u8,
                (60 + (x + y) * 150 / (w + h) + n) as u8,
            ]);
        }
    }
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode(&rgb, w, h, image::ExtendedColorType::Rgb8)
        .unwrap();
    std::fs::write(path, &out).unwrap();
    println!("wrote {path}: {} bytes", out.len());
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--write-sample") {
        write_sample(args.get(i + 1).map_or("sample-12mp.jpg", String::as_str));
        return;
    }
    let Some(path) = args
        .iter()
        .find(|a| !a.starts_with("--") && !a.chars().all(|c| c.is_ascii_digit()))
    else {
        eprintln!("usage: peak <image> [--jpeg-only] [--repeat N] [--out DIR] | --write-sample <path>");
        std::process::exit(2);
    };
    let repeat: usize = args
        .iter()
        .position(|a| a == "--repeat")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let out_dir = args.iter().position(|a| a == "--out").and_then(|i| args.get(i + 1));
    let mut opts = Options::default();
    if args.iter().any(|a| a == "--jpeg-only") {
        opts.formats = vec![OutputFormat::Jpeg];
    }
    let bytes = std::fs::read(path).expect("read input");
    let before = vm_hwm_kib();
    for run in 0..repeat {
        let t = Instant::now();
        match process(&bytes, &Limits::default(), &opts) {
            Ok(p) => {
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                let total: usize = p.variants.iter().map(|v| v.bytes.len()).sum();
                println!(
                    "run {run}: {ms:.1} ms  {:?} {}x{} -> oriented {}x{}, {} variants, {total} bytes",
                    p.original.format,
                    p.original.width,
                    p.original.height,
                    p.oriented_width,
                    p.oriented_height,
                    p.variants.len()
                );
                if let Some(dir) = out_dir {
                    std::fs::create_dir_all(dir).unwrap();
                    for v in &p.variants {
                        let name = format!("{dir}/{}.{}", v.name, v.format.extension());
                        std::fs::write(name, &v.bytes).unwrap();
                    }
                }
            }
            Err(e) => {
                println!(
                    "error after {:.1} ms: {} {} ({e})",
                    t.elapsed().as_secs_f64() * 1000.0,
                    e.status(),
                    e.code()
                );
                std::process::exit(1);
            }
        }
    }
    if let (Some(b), Some(a)) = (before, vm_hwm_kib()) {
        println!(
            "peak RSS {:.1} MiB (input file read: {:.1} MiB, RSS before processing {:.1} MiB)",
            a as f64 / 1024.0,
            bytes.len() as f64 / 1048576.0,
            b as f64 / 1024.0
        );
    }
}
