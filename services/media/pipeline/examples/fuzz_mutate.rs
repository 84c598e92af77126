#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Stable-toolchain mutation loop over `fuzz_decode` (for when cargo-fuzz/nightly is not at
//! hand): `cargo run --release --example fuzz_mutate -- 20000`. Crashing inputs are written to
//! `target/crash-N.bin`.
use std::panic;

use image::ImageEncoder;
fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(10000);
    let mk = |w: u32, h: u32| -> Vec<u8> {
        (0..w * h)
            .flat_map(|i| [(i % 251) as u8, (i / w % 256) as u8, ((i * 7) % 256) as u8])
            .collect()
    };
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    let (w, h) = (2600u32, 400u32);
    let rgb = mk(w, h);
    let mut j = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut j, 80)
        .encode(&rgb, w, h, image::ExtendedColorType::Rgb8)
        .unwrap();
    seeds.push(j);
    let mut p = Vec::new();
    let mut e = jpeg_encoder::Encoder::new(&mut p, 80);
    e.set_progressive(true);
    e.encode(&rgb, w as u16, h as u16, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    seeds.push(p);
    let cmyk: Vec<u8> = rgb.chunks(3).flat_map(|c| [c[0], c[1], c[2], 0]).collect();
    let mut c = Vec::new();
    jpeg_encoder::Encoder::new(&mut c, 80)
        .encode(&cmyk, w as u16, h as u16, jpeg_encoder::ColorType::Cmyk)
        .unwrap();
    seeds.push(c);
    let small = mk(64, 48);
    let mut j2 = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut j2, 80)
        .encode(&small, 64, 48, image::ExtendedColorType::Rgb8)
        .unwrap();
    seeds.push(j2);
    let mut pn = Vec::new();
    image::codecs::png::PngEncoder::new(&mut pn)
        .write_image(&small, 64, 48, image::ExtendedColorType::Rgb8)
        .unwrap();
    seeds.push(pn);
    seeds.push(webp::Encoder::from_rgb(&small, 64, 48).encode(80.0).to_vec());
    let rgba: Vec<u8> = small.chunks(3).flat_map(|c| [c[0], c[1], c[2], c[0]]).collect();
    let mut wl = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut wl)
        .write_image(&rgba, 64, 48, image::ExtendedColorType::Rgba8)
        .unwrap();
    seeds.push(wl);
    for s in &seeds {
        portico_media_pipeline::fuzz_decode(s);
    }
    let mut st = 0x1234_5678_9abc_def1u64;
    let mut rnd = move |n: usize| {
        st ^= st << 13;
        st ^= st >> 7;
        st ^= st << 17;
        (st % n.max(1) as u64) as usize
    };
    let mut panics = 0;
    for i in 0..n {
        let seed = &seeds[i % seeds.len()];
        let mut b = seed.clone();
        for _ in 0..1 + rnd(3) {
            match rnd(6) {
                0 => {
                    for _ in 0..1 + rnd(16) {
                        let k = rnd(b.len());
                        b[k] ^= 1 << rnd(8);
                    }
                }
                1 => {
                    let k = rnd(b.len().min(600));
                    b[k] = [0, 0xFF, 0x7F, 0x80, 1][rnd(5)];
                }
                2 => {
                    let k = rnd(b.len());
                    b.truncate(k.max(1));
                }
                3 => {
                    let k = rnd(b.len());
                    let junk: Vec<u8> = (0..rnd(64)).map(|_| rnd(256) as u8).collect();
                    b.splice(k..k, junk);
                }
                4 => {
                    let k = rnd(b.len());
                    let l = (k + rnd(400)).min(b.len());
                    let part = b[k..l].to_vec();
                    let at = rnd(b.len());
                    b.splice(at..at, part);
                }
                _ => {
                    let k = rnd(b.len().min(600));
                    let l = (k + rnd(32)).min(b.len());
                    b.drain(k..l);
                }
            }
            if b.is_empty() {
                b.push(0xFF);
            }
        }
        let r = panic::catch_unwind(|| portico_media_pipeline::fuzz_decode(&b));
        if r.is_err() {
            panics += 1;
            std::fs::write(format!("target/crash-{i}.bin"), &b).unwrap();
        }
    }
    println!("{n} inputs, {panics} panics");
}
