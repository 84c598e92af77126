//! Mobile media through the gateway: upload config, optimised uploads and their variants,
//! hostile files, tus resumable uploads, and mobile performance analytics.

use std::io::Cursor;

use base64::Engine;
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Digest;

use crate::{
    each_backend,
    support::{Options, Stack, png, reply, upload},
};

/// A JPEG of `w`×`h` with a gradient, so it compresses like a photo rather than a flat fill.
fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    });
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, image::ImageFormat::Jpeg)
        .unwrap();
    out.into_inner()
}

/// A tiny PNG whose header claims 100,000 × 100,000 pixels.
fn pixel_bomb() -> Vec<u8> {
    let mut bytes = png(1, 1);
    // IHDR data starts at byte 16: width, height (big-endian), then the chunk's CRC at 29.
    bytes[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    bytes[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

each_backend!(upload_config_answers_each_network_and_names_unknown_ones, |backend| {
    let s = Stack::start(backend).await;
    let mut chunks = Vec::new();
    for c in ["slow-2g", "2g", "3g", "4g", "wifi"] {
        let r = s.get(&format!("/v1/mobile/upload-config?connection={c}"), None).await;
        assert_eq!(r.status, StatusCode::OK, "{c}: {:?}", r.body);
        let d = r.data();
        for key in [
            "maxFileBytes",
            "maxDimension",
            "jpegQuality",
            "chunkBytes",
            "parallelChunks",
            "timeoutMs",
            "preferredFormat",
            "resumable",
        ] {
            assert!(!d[key].is_null(), "{c}: {key} missing in {d}");
        }
        chunks.push(d["chunkBytes"].as_u64().unwrap());
    }
    assert!(
        chunks.windows(2).all(|w| w[0] <= w[1]),
        "faster networks get larger chunks: {chunks:?}"
    );
    let r = s.get("/v1/mobile/upload-config?connection=5g", None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.fields(), vec!["connection"]);
    assert!(
        r.body["error"]["details"]["fields"]["connection"]
            .as_str()
            .unwrap()
            .contains("5g")
    );
    let r = s.get("/v1/mobile/upload-config", None).await;
    assert_eq!(r.fields(), vec!["connection"]);
    let r = s
        .get("/v1/mobile/upload-config?connection=3g&downlinkMbps=-1", None)
        .await;
    assert_eq!(r.fields(), vec!["downlinkMbps"]);
});

each_backend!(uploads_produce_variants_served_with_caching_headers, |backend| {
    let s = Stack::start(backend).await;
    let (alice, _, _) = s.signup("alice@example.com").await;
    let (bob, _, _) = s.signup("bob@example.com").await;
    let original = jpeg(1600, 1200);
    let r = upload(&s, &alice, original.clone(), &[("connection", "3g")]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let d = r.data().clone();
    let id = d["mediaId"].as_str().unwrap().to_string();
    assert_eq!(
        d["original"],
        json!({"bytes": original.len(), "width": 1600, "height": 1200, "format": "jpeg"})
    );
    let variants = d["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 8);
    for (name, w, h) in [
        ("thumbnail", 150, 113),
        ("small", 320, 240),
        ("medium", 640, 480),
        ("large", 1280, 960),
    ] {
        for format in ["jpeg", "webp"] {
            let v = variants
                .iter()
                .find(|v| v["name"] == name && v["format"] == format)
                .unwrap_or_else(|| panic!("{name}/{format} missing"));
            assert_eq!(
                (v["width"].as_u64().unwrap(), v["height"].as_u64().unwrap()),
                (w, h),
                "{v}"
            );
            assert!(v["bytes"].as_u64().unwrap() > 0);
            assert_eq!(v["url"], format!("/v1/media/{id}/{name}?format={format}"));
        }
    }
    let large = variants
        .iter()
        .find(|v| v["name"] == "large" && v["format"] == "jpeg")
        .unwrap()["bytes"]
        .as_f64()
        .unwrap();
    let ratio = d["compressionRatio"].as_f64().unwrap();
    assert!((ratio - (1.0 - large / original.len() as f64)).abs() < 1e-6, "{ratio}");
    let estimates = d["estimatedUploadMs"].as_object().unwrap();
    for c in ["slow-2g", "2g", "3g", "4g", "wifi"] {
        assert!(estimates[c].as_u64().is_some(), "{c} in {estimates:?}");
    }
    assert!(estimates["slow-2g"].as_u64() > estimates["wifi"].as_u64());
    assert!(d["processingMs"].as_u64().is_some());

    let r = s.get(&format!("/v1/media/{id}"), Some(&alice)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.data()["variants"], d["variants"]);

    // WebP when the client accepts it, JPEG when it asks.
    let url = s.url(&format!("/v1/media/{id}/medium"));
    let webp = s
        .http
        .get(&url)
        .bearer_auth(&alice)
        .header("accept", "image/webp,image/*")
        .send()
        .await
        .unwrap();
    assert_eq!(webp.status(), StatusCode::OK);
    assert_eq!(webp.headers()["content-type"], "image/webp");
    let etag = webp.headers()["etag"].to_str().unwrap().to_string();
    assert!(etag.starts_with('"') && !etag.starts_with("W/"), "{etag}");
    let cache = webp.headers()["cache-control"].to_str().unwrap().to_string();
    assert!(
        cache.contains("immutable") && cache.contains("max-age=31536000"),
        "{cache}"
    );
    assert!(webp.headers()["vary"].to_str().unwrap().contains("Accept"));
    let bytes = webp.bytes().await.unwrap();
    let decoded = image::load_from_memory(&bytes).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (640, 480));

    let jpeg_res = s
        .http
        .get(format!("{url}?format=jpeg"))
        .bearer_auth(&alice)
        .header("accept", "image/webp")
        .send()
        .await
        .unwrap();
    assert_eq!(jpeg_res.headers()["content-type"], "image/jpeg");
    let plain = s.http.get(&url).bearer_auth(&alice).send().await.unwrap();
    assert_eq!(plain.headers()["content-type"], "image/jpeg", "no Accept: JPEG");
    let jpeg_bytes = jpeg_res.bytes().await.unwrap();
    assert!(
        !jpeg_bytes.windows(6).any(|w| w == b"Exif\0\0"),
        "metadata is stripped from variants"
    );

    let again = s
        .http
        .get(&url)
        .bearer_auth(&alice)
        .header("accept", "image/webp")
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
    assert!(again.bytes().await.unwrap().is_empty());

    let r = s.get(&format!("/v1/media/{id}/huge"), Some(&alice)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = s.get(&format!("/v1/media/{id}/small?format=gif"), Some(&alice)).await;
    assert_eq!(r.fields(), vec!["format"]);

    // Only the owner sees or deletes it.
    for path in [format!("/v1/media/{id}"), format!("/v1/media/{id}/small")] {
        assert_eq!(s.get(&path, Some(&bob)).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    let path = format!("/v1/media/{id}");
    assert_eq!(
        s.send(Method::DELETE, &path, Some(&bob), None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(s.get(&path, None).await.status, StatusCode::UNAUTHORIZED);
    let r = s.send(Method::DELETE, &path, Some(&alice), None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(s.get(&path, Some(&alice)).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        s.get(&format!("/v1/media/{id}/small"), Some(&alice)).await.status,
        StatusCode::NOT_FOUND
    );
});

each_backend!(hostile_uploads_get_a_clear_4xx, |backend| {
    let s = Stack::with(Options::new(backend).var("PORTICO_MEDIA_MAX_BYTES", "200000")).await;
    let (token, _, _) = s.signup("hostile@example.com").await;
    let cases: Vec<(&str, Vec<u8>, StatusCode)> = vec![
        ("text", b"definitely not an image".to_vec(), StatusCode::BAD_REQUEST),
        ("truncated", jpeg(400, 300)[..2000].to_vec(), StatusCode::BAD_REQUEST),
        (
            "gif",
            b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        ("bomb", pixel_bomb(), StatusCode::PAYLOAD_TOO_LARGE),
        ("over the byte cap", vec![0xFF; 300_000], StatusCode::PAYLOAD_TOO_LARGE),
    ];
    for (what, bytes, status) in cases {
        let r = upload(&s, &token, bytes, &[]).await;
        assert_eq!(r.status, status, "{what}: {:?}", r.body);
        assert!(!r.code().is_empty(), "{what}: an error code");
    }
    let r = upload(&s, &token, png(64, 48), &[("connection", "6g")]).await;
    assert_eq!(r.fields(), vec!["connection"]);
    let r = upload(&s, &token, png(64, 48), &[("caption", "hi")]).await;
    assert_eq!(r.fields(), vec!["caption"]);
    let form = reqwest::multipart::Form::new().text("connection", "wifi");
    let res = s
        .http
        .post(s.url("/v1/mobile/upload-optimized"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let r = reply(res).await;
    assert_eq!(r.fields(), vec!["file"]);
    let r = s
        .post("/v1/mobile/upload-optimized", Some(&token), json!({"file": "x"}))
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // A small PNG still works under the small cap, and is the only thing stored.
    let r = upload(&s, &token, png(64, 48), &[]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.data()["original"]["format"], "png");
    assert_eq!(r.data()["variants"][0]["width"], 64, "never upscaled");
});

fn tus(req: reqwest::RequestBuilder, token: &str) -> reqwest::RequestBuilder {
    req.bearer_auth(token).header("tus-resumable", "1.0.0")
}

async fn patch(s: &Stack, token: &str, location: &str, offset: usize, chunk: Vec<u8>) -> reqwest::Response {
    tus(s.http.patch(s.url(location)), token)
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", offset.to_string())
        .body(chunk)
        .send()
        .await
        .unwrap()
}

async fn head_offset(s: &Stack, token: &str, location: &str) -> usize {
    let res = tus(s.http.head(s.url(location)), token).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    res.headers()["upload-offset"].to_str().unwrap().parse().unwrap()
}

each_backend!(tus_uploads_resume_after_a_drop_without_losing_bytes, |backend| {
    let s = Stack::start(backend).await;
    let (token, _, _) = s.signup("tus@example.com").await;
    let (other, _, _) = s.signup("other@example.com").await;

    let res = s
        .http
        .request(Method::OPTIONS, s.url("/v1/mobile/uploads"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(res.headers()["tus-version"], "1.0.0");
    let ext = res.headers()["tus-extension"].to_str().unwrap();
    for e in ["creation", "termination", "expiration", "checksum"] {
        assert!(ext.contains(e), "{ext}");
    }

    let file = jpeg(900, 600);
    let res = s
        .http
        .post(s.url("/v1/mobile/uploads"))
        .bearer_auth(&token)
        .header("upload-length", file.len().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::PRECONDITION_FAILED,
        "Tus-Resumable is required"
    );

    let res = tus(s.http.post(s.url("/v1/mobile/uploads")), &token)
        .header("upload-length", file.len().to_string())
        .header("upload-metadata", "filename cGhvdG8uanBn")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert!(res.headers().contains_key("upload-expires"));
    let location = res.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with("/v1/mobile/uploads/"), "{location}");

    let third = file.len() / 3;
    let res = patch(&s, &token, &location, 0, file[..third].to_vec()).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(res.headers()["upload-offset"].to_str().unwrap(), third.to_string());

    // A stale offset is refused and told the real one.
    let res = patch(&s, &token, &location, 0, file[..third].to_vec()).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(res.headers()["upload-offset"].to_str().unwrap(), third.to_string());

    // A checksum that does not match stores nothing.
    let res = tus(s.http.patch(s.url(&location)), &token)
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", third.to_string())
        .header(
            "upload-checksum",
            format!(
                "sha256 {}",
                base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(b"other bytes"))
            ),
        )
        .body(file[third..2 * third].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 460);
    assert_eq!(head_offset(&s, &token, &location).await, third);

    // The connection drops halfway through the second chunk: what arrived is kept.
    let half = third / 2;
    let first_part = bytes::Bytes::copy_from_slice(&file[third..third + half]);
    let stream = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(first_part)]).chain(
        futures_util::stream::once(async {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            Err(std::io::Error::other("radio lost"))
        }),
    );
    let dropped = tus(s.http.patch(s.url(&location)), &token)
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", third.to_string())
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await;
    assert!(dropped.is_err(), "the client saw its own connection fail");
    let mut resumed_at = third;
    for _ in 0..50 {
        resumed_at = head_offset(&s, &token, &location).await;
        if resumed_at > third {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(resumed_at, third + half, "the bytes before the drop were kept");

    // Another user cannot see or touch it.
    let res = tus(s.http.head(s.url(&location)), &other).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = patch(&s, &other, &location, resumed_at, file[resumed_at..].to_vec()).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // Resume with a verified chunk and finish.
    let rest = file[resumed_at..].to_vec();
    let res = tus(s.http.patch(s.url(&location)), &token)
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", resumed_at.to_string())
        .header(
            "upload-checksum",
            format!(
                "sha256 {}",
                base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&rest))
            ),
        )
        .body(rest)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(res.headers()["upload-offset"].to_str().unwrap(), file.len().to_string());
    let media_id = res.headers()["portico-media-id"].to_str().unwrap().to_string();
    let r = s.get(&format!("/v1/media/{media_id}"), Some(&token)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.data()["original"]["bytes"], file.len(), "every byte once, none twice");
    assert_eq!(r.data()["original"]["width"], 900);
    let status = s.get(&location, Some(&token)).await;
    assert_eq!(status.data()["mediaId"], media_id.as_str());

    // Termination.
    let res = tus(s.http.post(s.url("/v1/mobile/uploads")), &token)
        .header("upload-length", "1000")
        .send()
        .await
        .unwrap();
    let doomed = res.headers()["location"].to_str().unwrap().to_string();
    let res = tus(s.http.delete(s.url(&doomed)), &token).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = tus(s.http.head(s.url(&doomed)), &token).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // Bad creation requests are named.
    let res = tus(s.http.post(s.url("/v1/mobile/uploads")), &token)
        .header("upload-length", "lots")
        .send()
        .await
        .unwrap();
    let r = reply(res).await;
    assert_eq!(r.fields(), vec!["Upload-Length"]);
});

each_backend!(performance_percentiles_by_connection_and_device, |backend| {
    let s = Stack::start(backend).await;
    let admin = s.admin().await;
    let (alice, _, _) = s.signup("perf-a@example.com").await;
    let (bob, _, _) = s.signup("perf-b@example.com").await;
    let events = |connection: &str, device: &str, base: f64| -> Value {
        let list: Vec<Value> = (1..=100)
            .map(|i| {
                json!({"type": "upload", "durationMs": base * f64::from(i), "bytes": 1000, "connection": connection,
                       "device": device, "os": "android", "appVersion": "1.2.3", "success": i % 10 != 0})
            })
            .collect();
        json!({ "events": list })
    };
    let r = s
        .post("/v1/mobile/analytics", Some(&alice), events("3g", "pixel", 10.0))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.data()["accepted"], 100);
    let r = s
        .post("/v1/mobile/analytics", Some(&alice), events("wifi", "iphone", 1.0))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = s
        .post("/v1/mobile/analytics", Some(&bob), events("3g", "pixel", 100.0))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);

    let r = s
        .post(
            "/v1/mobile/analytics",
            Some(&alice),
            json!({"events": [{"type": "upload", "durationMs": 5}, {"type": "nap", "durationMs": -1, "connection": "5g"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let mut fields = r.fields();
    fields.sort();
    assert_eq!(
        fields,
        vec!["events[1].connection", "events[1].durationMs", "events[1].type"]
    );

    let r = s.get("/v1/mobile/performance?groupBy=connection", Some(&alice)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let groups = r.data()["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{groups:?}");
    let g3 = groups.iter().find(|g| g["key"] == "3g").unwrap();
    assert_eq!(g3["count"], 100, "alice's own events only");
    let near = |v: &Value, expected: f64| (v.as_f64().unwrap() - expected).abs() <= expected * 0.03;
    assert!(near(&g3["p50"], 500.0), "{g3}");
    assert!(near(&g3["p95"], 950.0), "{g3}");
    assert!(near(&g3["p99"], 990.0), "{g3}");
    assert!((g3["successRate"].as_f64().unwrap() - 0.9).abs() < 1e-9, "{g3}");

    let r = s.get("/v1/mobile/performance?groupBy=device", Some(&alice)).await;
    let keys: Vec<&str> = r.data()["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["key"].as_str().unwrap())
        .collect();
    assert!(keys.contains(&"pixel") && keys.contains(&"iphone"), "{keys:?}");

    // Admins see everyone's.
    let r = s.get("/v1/mobile/performance?groupBy=connection", Some(&admin)).await;
    let g3 = r.data()["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["key"] == "3g")
        .unwrap()
        .clone();
    assert_eq!(g3["count"], 200);

    let r = s.get("/v1/mobile/performance?groupBy=os", Some(&alice)).await;
    assert_eq!(r.fields(), vec!["groupBy"]);
    let r = s.get("/v1/mobile/performance?from=yesterday", Some(&alice)).await;
    assert_eq!(r.fields(), vec!["from"]);
    let r = s.get("/v1/mobile/performance?userId=someone", Some(&alice)).await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "another user's data is the admins': {}",
        r.body
    );
    let r = s
        .get(
            "/v1/mobile/performance?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            Some(&alice),
        )
        .await;
    assert_eq!(r.fields(), vec!["from"], "the service's range rule answers");
});
