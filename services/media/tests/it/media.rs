//! Optimised uploads: variants, storage, ownership, deletion, hostile files, crash safety.

use portico_media::{
    domain,
    error::MediaError,
    store::{MediaRow, PENDING},
};
use portico_proto::media::v1 as pb;
use portico_runtime::db::now_ms;
use tonic::Code;

use crate::{Service, code, details, images, sha256};

pub(crate) fn upload(user: &str, content: Vec<u8>) -> pb::UploadRequest {
    pb::UploadRequest {
        user_id: user.to_string(),
        content: content.into(),
        filename: "photo.jpg".to_string(),
        connection: pb::Connection::Connection4g as i32,
    }
}

pub(crate) fn variant(user: &str, id: &str, name: &str, format: &str) -> pb::GetVariantRequest {
    pb::GetVariantRequest {
        user_id: user.to_string(),
        id: id.to_string(),
        variant: name.to_string(),
        format: format.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_stores_the_original_and_eight_variants() {
    for backend in portico_testkit::backends() {
        let svc = Service::start(backend, &[]).await;
        let mut client = svc.client.clone();
        let original = images::jpeg(800, 600);
        let m = client
            .upload(upload("alice", original.clone()))
            .await
            .unwrap()
            .into_inner();

        assert!(uuid::Uuid::parse_str(&m.id).is_ok_and(|u| u.get_version_num() == 7));
        let o = m.original.clone().unwrap();
        assert_eq!(
            (o.bytes, o.width, o.height, o.format.as_str()),
            (original.len() as u64, 800, 600, "jpeg")
        );
        let names: Vec<(&str, &str)> = m
            .variants
            .iter()
            .map(|v| (v.name.as_str(), v.format.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("thumbnail", "jpeg"),
                ("thumbnail", "webp"),
                ("small", "jpeg"),
                ("small", "webp"),
                ("medium", "jpeg"),
                ("medium", "webp"),
                ("large", "jpeg"),
                ("large", "webp"),
            ]
        );
        for v in &m.variants {
            // Long side of the spec, never upscaled past the original's 800 px.
            let long = match v.name.as_str() {
                "thumbnail" => 150,
                "small" => 320,
                "medium" => 640,
                _ => 800,
            };
            assert_eq!(v.width, long, "{v:?}");
            assert!(v.height.abs_diff(long * 3 / 4) <= 1, "{v:?}");
            assert!(v.etag.starts_with('"') && v.etag.ends_with('"') && v.etag.len() == 66);
        }
        let large_jpeg = m
            .variants
            .iter()
            .find(|v| v.name == "large" && v.format == "jpeg")
            .unwrap();
        let ratio = 1.0 - large_jpeg.bytes as f64 / original.len() as f64;
        assert!((m.compression_ratio - ratio).abs() < 1e-9);
        let estimates: Vec<(i32, u64)> = m.estimated_upload_ms.iter().map(|e| (e.connection, e.millis)).collect();
        assert_eq!(estimates.len(), 5);
        assert_eq!(estimates[0].0, pb::Connection::Slow2g as i32);
        assert!(estimates.windows(2).all(|w| w[0].1 > w[1].1), "{estimates:?}");
        assert!(m.created_at_ms > 0);

        // The original and every variant are files in the media directory.
        let files = svc.media_files("alice", &m.id);
        let mut expected: Vec<String> = ["thumbnail", "small", "medium", "large"]
            .iter()
            .flat_map(|n| [format!("{n}.jpg"), format!("{n}.webp")])
            .chain(["original.jpeg".to_string()])
            .map(|f| format!("media/alice/{}/{f}", m.id))
            .collect();
        expected.sort();
        assert_eq!(files, expected);
        let on_disk = std::fs::read(svc.media_dir.join(format!("media/alice/{}/original.jpeg", m.id))).unwrap();
        assert_eq!(on_disk, original);

        // Metadata reads back the same.
        let again = client
            .get_media(pb::GetMediaRequest {
                user_id: "alice".to_string(),
                id: m.id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(again, m);

        // Variant bytes decode to the advertised size; the ETag is their SHA-256.
        for v in &m.variants {
            let c = client
                .get_variant(variant("alice", &m.id, &v.name, &v.format))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(images::size_of(&c.content), (v.width, v.height));
            assert_eq!(c.content.len() as u64, v.bytes);
            assert_eq!(c.etag, v.etag);
            assert_eq!(c.etag, format!("\"{}\"", hex::encode(sha256(&c.content))));
            let mime = if v.format == "jpeg" { "image/jpeg" } else { "image/webp" };
            assert_eq!(c.content_type, mime);
        }
        // No format means JPEG.
        let c = client
            .get_variant(variant("alice", &m.id, "small", ""))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(c.content_type, "image/jpeg");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owner_sees_or_deletes_media() {
    for backend in portico_testkit::backends() {
        let svc = Service::start(backend, &[]).await;
        let mut client = svc.client.clone();
        let m = client
            .upload(upload("alice", images::jpeg(200, 100)))
            .await
            .unwrap()
            .into_inner();
        let missing = uuid::Uuid::now_v7().to_string();
        for id in [m.id.as_str(), missing.as_str(), "not-a-uuid", "../alice"] {
            let e = client
                .get_media(pb::GetMediaRequest {
                    user_id: "mallory".to_string(),
                    id: id.to_string(),
                })
                .await
                .unwrap_err();
            assert_eq!((e.code(), code(&e).as_str()), (Code::NotFound, "NOT_FOUND"), "{id}");
            let e = client
                .get_variant(variant("mallory", id, "large", "jpeg"))
                .await
                .unwrap_err();
            assert_eq!(e.code(), Code::NotFound, "{id}");
            let e = client
                .delete_media(pb::DeleteMediaRequest {
                    user_id: "mallory".to_string(),
                    id: id.to_string(),
                })
                .await
                .unwrap_err();
            assert_eq!(e.code(), Code::NotFound, "{id}");
        }
        // Another user's media answers exactly like a missing one.
        let theirs = client
            .get_media(pb::GetMediaRequest {
                user_id: "mallory".to_string(),
                id: m.id.clone(),
            })
            .await
            .unwrap_err();
        let nothing = client
            .get_media(pb::GetMediaRequest {
                user_id: "mallory".to_string(),
                id: missing,
            })
            .await
            .unwrap_err();
        assert_eq!(theirs.message(), nothing.message());
        assert_eq!(
            svc.media_files("alice", &m.id).len(),
            9,
            "mallory's delete removed nothing"
        );

        // Unknown variants are not found; unknown formats are named.
        let e = client
            .get_variant(variant("alice", &m.id, "huge", "jpeg"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::NotFound);
        let e = client
            .get_variant(variant("alice", &m.id, "large", "gif"))
            .await
            .unwrap_err();
        assert_eq!(code(&e), "VALIDATION_ERROR");
        assert!(details(&e)["fields"]["format"].is_string());
        let e = client.upload(upload("", images::jpeg(10, 10))).await.unwrap_err();
        assert!(details(&e)["fields"]["userId"].is_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_media_removes_its_rows_and_files() {
    for backend in portico_testkit::backends() {
        let svc = Service::start(backend, &[]).await;
        let mut client = svc.client.clone();
        let keep = client
            .upload(upload("alice", images::jpeg(120, 90)))
            .await
            .unwrap()
            .into_inner();
        let gone = client
            .upload(upload("alice", images::jpeg(90, 120)))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(svc.rows("media").await, 2);
        client
            .delete_media(pb::DeleteMediaRequest {
                user_id: "alice".to_string(),
                id: gone.id.clone(),
            })
            .await
            .unwrap();
        assert!(svc.media_files("alice", &gone.id).is_empty());
        assert_eq!(svc.media_files("alice", &keep.id).len(), 9);
        assert_eq!(svc.rows("media").await, 1);
        assert_eq!(svc.rows("media_variants").await, 8);
        let e = client
            .get_media(pb::GetMediaRequest {
                user_id: "alice".to_string(),
                id: gone.id.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::NotFound);
        let e = client
            .get_variant(variant("alice", &gone.id, "thumbnail", "webp"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::NotFound);
        let e = client
            .delete_media(pb::DeleteMediaRequest {
                user_id: "alice".to_string(),
                id: gone.id,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::NotFound);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_files_are_refused_and_nothing_is_stored() {
    for backend in portico_testkit::backends() {
        let svc = Service::start(backend, &[("PORTICO_MEDIA_MAX_BYTES", "300000")]).await;
        let mut client = svc.client.clone();
        let photo = images::jpeg(320, 240);
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("text", b"hello, I am not an image".to_vec(), "NOT_AN_IMAGE"),
            ("empty", Vec::new(), "NOT_AN_IMAGE"),
            ("truncated", photo[..photo.len() / 2].to_vec(), "IMAGE_TRUNCATED"),
            ("pixel bomb", images::png_bomb(), "IMAGE_TOO_MANY_PIXELS"),
            ("gif", images::gif(), "UNSUPPORTED_MEDIA_TYPE"),
            ("over the byte cap", images::noise_png(400, 300), "PAYLOAD_TOO_LARGE"),
        ];
        for (what, bytes, want) in cases {
            let e = client.upload(upload("alice", bytes)).await.unwrap_err();
            assert_eq!(code(&e), want, "{what}: {e:?}");
            assert_eq!(e.code(), Code::InvalidArgument, "{what}");
        }
        let e = client.upload(upload("alice", images::png_bomb())).await.unwrap_err();
        assert_eq!(details(&e)["width"], 100_000);
        assert_eq!(details(&e)["maxPixels"], 50_000_000);
        let e = client.upload(upload("alice", images::gif())).await.unwrap_err();
        assert_eq!(details(&e)["format"], "gif");
        assert_eq!(svc.rows("media").await, 0);
        assert_eq!(svc.rows("media_variants").await, 0);
        assert_eq!(svc.files(), Vec::<String>::new());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_over_grpcs_default_message_size_are_taken() {
    let svc = Service::start(portico_testkit::Backend::Sqlite, &[]).await;
    // About 5.8 MB of noise: over tonic's 4 MiB default, under the 25 MiB cap.
    let big = images::noise_png(1400, 1380);
    assert!(big.len() > 5 * 1024 * 1024);
    let m = svc
        .client
        .clone()
        .upload(upload("alice", big.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(m.original.unwrap().bytes, big.len() as u64);
    // A noise PNG re-encoded as JPEG is far smaller: the ratio is positive here.
    assert!(m.compression_ratio > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_left_pending_by_a_crash_is_never_visible_and_is_cleaned_up() {
    for backend in portico_testkit::backends() {
        let svc = Service::start(backend, &[]).await;
        let mut client = svc.client.clone();
        let ready = client
            .upload(upload("alice", images::jpeg(64, 48)))
            .await
            .unwrap()
            .into_inner();

        // A crash after the pending row and some objects were written, before "ready".
        let crashed = uuid::Uuid::now_v7().to_string();
        let row = MediaRow {
            id: crashed.clone(),
            user_id: "alice".to_string(),
            status: PENDING.to_string(),
            filename: None,
            original_format: "jpeg".to_string(),
            original_bytes: 10,
            original_width: 64,
            original_height: 48,
            original_key: domain::original_key("alice", &crashed, "jpeg"),
            processing_ms: 0,
            created_at: now_ms(),
        };
        svc.db
            .write(move |conn| Ok::<_, MediaError>(row.insert_pending(&[], conn)?))
            .await
            .unwrap();
        let dir = svc.media_dir.join(format!("media/alice/{crashed}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("original.jpeg"), b"half").unwrap();
        std::fs::write(dir.join("large.jpg"), b"half").unwrap();
        // An object no row names (a delete that failed half-way).
        let orphan = uuid::Uuid::now_v7().to_string();
        let orphan_dir = svc.media_dir.join(format!("media/bob/{orphan}"));
        std::fs::create_dir_all(&orphan_dir).unwrap();
        std::fs::write(orphan_dir.join("small.webp"), b"stray").unwrap();

        let e = client
            .get_media(pb::GetMediaRequest {
                user_id: "alice".to_string(),
                id: crashed.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::NotFound, "a pending item is invisible");
        let e = client
            .get_variant(variant("alice", &crashed, "large", "jpeg"))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::NotFound);

        // Within the grace period nothing is touched (it could be an upload in flight).
        let report = svc.app.cleanup(now_ms()).await.unwrap();
        assert_eq!((report.pending_media, report.stray_objects), (0, 0));
        assert_eq!(svc.media_files("alice", &crashed).len(), 2);

        // An hour later the pending row, its objects and the stray go; ready media stays.
        let report = svc.app.cleanup(now_ms() + 2 * 3_600_000).await.unwrap();
        assert_eq!(report.pending_media, 1);
        assert_eq!(report.stray_objects, 1);
        assert!(svc.media_files("alice", &crashed).is_empty());
        assert!(svc.media_files("bob", &orphan).is_empty());
        assert_eq!(svc.rows("media").await, 1);
        assert_eq!(svc.media_files("alice", &ready.id).len(), 9);
        client
            .get_variant(variant("alice", &ready.id, "large", "webp"))
            .await
            .unwrap();
    }
}
