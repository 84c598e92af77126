//! Account erasure over the Ops service, called as the gateway calls it: rows and objects go,
//! another user's stay, a retry after a crash finishes the job, and a second erase is 0.

use portico_media::{error::MediaError, service::PENDING_GRACE_MS, store};
use portico_proto::{media::v1 as pb, ops::v1 as ops};
use portico_runtime::db::now_ms;
use tonic::Code;

use crate::{
    Ops, Service, images,
    media::{upload, variant},
    performance::{event, record, report},
    tus::{append, create, get},
};

const TABLES: [&str; 5] = ["media", "media_variants", "uploads", "upload_chunks", "perf_buckets"];

async fn erase(ops: &mut Ops, user_id: &str) -> u64 {
    ops.erase_user(ops::EraseUserRequest {
        user_id: user_id.into(),
    })
    .await
    .unwrap()
    .into_inner()
    .removed
}

async fn all_rows(svc: &Service) -> i64 {
    let mut n = 0;
    for t in TABLES {
        n += svc.rows(t).await;
    }
    n
}

/// Gives `user` two uploaded images, one image uploaded over tus, a tus upload left half done
/// (two stored chunks) and performance events; returns (media ids, the unfinished upload id).
async fn populate(svc: &Service, user: &str) -> (Vec<String>, String) {
    let mut c = svc.client.clone();
    let mut media = Vec::new();
    for (w, h) in [(320, 240), (200, 300)] {
        media.push(
            c.upload(upload(user, images::jpeg(w, h)))
                .await
                .unwrap()
                .into_inner()
                .id,
        );
    }
    let photo = images::jpeg(160, 120);
    let whole = create(&mut c, user, photo.len() as u64).await;
    let done = c
        .append_upload(append(user, &whole.id, 0, &photo, None))
        .await
        .unwrap()
        .into_inner();
    media.push(done.media.unwrap().id);
    let half = create(&mut c, user, 10_000).await;
    c.append_upload(append(user, &half.id, 0, &[1; 3000], None))
        .await
        .unwrap();
    c.append_upload(append(user, &half.id, 3000, &[2; 2000], None))
        .await
        .unwrap();
    let events: Vec<pb::ClientEvent> = (0..20)
        .map(|i| {
            event(
                "upload",
                100.0 + f64::from(i) * 37.0,
                pb::Connection::Wifi,
                "Pixel 9",
                i % 5 != 0,
            )
        })
        .collect();
    record(&mut c, user, &events).await;
    (media, half.id)
}

// Erasure removes the user's media (originals and every variant, rows and files), tus uploads
// with their stored chunks, and histogram rows; another user whose id merely starts the same
// keeps everything; the count is exactly the rows and objects that went; a second erase is 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_removes_a_users_media_uploads_and_histograms_and_nothing_else() {
    for backend in portico_testkit::backends() {
        let svc = Service::start(backend, &[]).await;
        let (mut c, mut ops) = (svc.client.clone(), svc.ops.clone());
        let (gone_media, gone_upload) = populate(&svc, "gone").await;
        let (kept_media, kept_upload) = populate(&svc, "gone-2").await;
        for id in &gone_media {
            assert_eq!(svc.media_files("gone", id).len(), 9, "original and eight variants");
        }
        assert_eq!(svc.chunk_files(&gone_upload).len(), 2);
        let (files_before, rows_before) = (svc.files(), all_rows(&svc).await);
        let kept_files: Vec<String> = files_before
            .iter()
            .filter(|f| !f.starts_with("media/gone/") && !f.starts_with(&format!("uploads/{gone_upload}/")))
            .cloned()
            .collect();

        let removed = erase(&mut ops, "gone").await;

        let (files_after, rows_after) = (svc.files(), all_rows(&svc).await);
        assert_eq!(files_after, kept_files, "only the erased user's objects went");
        assert_eq!(
            removed,
            (rows_before - rows_after) as u64 + (files_before.len() - files_after.len()) as u64,
            "{backend:?}: the count is the rows and objects removed"
        );
        // 3 items × (9 objects + 1 media row + 8 variant rows), 2 chunks × (object + row),
        // 2 upload rows, and the histogram rows.
        assert!(removed > 3 * 18 + 2 * 2 + 2, "{removed}");
        assert_eq!(svc.rows("media").await, 3);
        assert_eq!(svc.rows("uploads").await, 2);
        assert_eq!(svc.rows("upload_chunks").await, 2);

        for id in &gone_media {
            for (name, format) in [("thumbnail", "webp"), ("large", "jpeg")] {
                let e = c.get_variant(variant("gone", id, name, format)).await.unwrap_err();
                assert_eq!(e.code(), Code::NotFound, "{name}.{format}");
            }
            let e = c
                .get_media(pb::GetMediaRequest {
                    user_id: "gone".into(),
                    id: id.clone(),
                })
                .await
                .unwrap_err();
            assert_eq!(e.code(), Code::NotFound);
        }
        let e = c.get_upload(get("gone", &gone_upload)).await.unwrap_err();
        assert_eq!(e.code(), Code::NotFound);
        assert!(report(&mut c, "gone", pb::GroupBy::Connection, "").await.is_empty());

        for id in &kept_media {
            let v = c
                .get_variant(variant("gone-2", id, "large", "jpeg"))
                .await
                .unwrap()
                .into_inner();
            assert!(!v.content.is_empty());
        }
        assert_eq!(
            c.get_upload(get("gone-2", &kept_upload))
                .await
                .unwrap()
                .into_inner()
                .offset,
            5000
        );
        let kept = report(&mut c, "gone-2", pb::GroupBy::Connection, "").await;
        assert_eq!(kept.iter().map(|g| g.count).sum::<u64>(), 20);

        assert_eq!(erase(&mut ops, "gone").await, 0, "a second erase finds nothing");
        assert_eq!(erase(&mut ops, "never-seen").await, 0);
        assert_eq!(
            erase(&mut ops, "../etc").await,
            0,
            "not a user id: it cannot own anything"
        );
        assert_eq!(svc.files(), kept_files);
        eprintln!("erasure passed on {backend:?}");
    }
}

// A crash after the row transaction leaves objects no row names: the gateway's retry finishes
// the job from the user's object prefix, and without a retry the cleanup job removes them once
// they are older than the grace period. A crash after the chunk objects went is finished too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_crash_mid_erasure_finishes_the_job() {
    for backend in portico_testkit::backends() {
        let svc = Service::start(backend, &[]).await;
        let mut ops = svc.ops.clone();
        let (retried, retried_upload) = populate(&svc, "retried").await;
        let (cleaned, cleaned_upload) = populate(&svc, "cleaned").await;
        let (chunked, chunked_upload) = populate(&svc, "chunked").await;

        // Crash after steps 1 and 2 (chunk objects and rows gone, media objects left).
        for (user, upload) in [("retried", &retried_upload), ("cleaned", &cleaned_upload)] {
            std::fs::remove_dir_all(svc.media_dir.join(format!("uploads/{upload}"))).unwrap();
            let uid = user.to_string();
            svc.db
                .write(move |conn| Ok::<_, MediaError>(store::erase_user_rows(conn, &uid)?))
                .await
                .unwrap();
        }
        // Crash after step 1 only (chunk objects gone, every row left).
        std::fs::remove_dir_all(svc.media_dir.join(format!("uploads/{chunked_upload}"))).unwrap();

        assert_eq!(
            erase(&mut ops, "retried").await,
            3 * 9,
            "the retry deletes the objects left"
        );
        for id in &retried {
            assert!(svc.media_files("retried", id).is_empty());
        }
        let rows_before = all_rows(&svc).await;
        let chunked_removed = erase(&mut ops, "chunked").await;
        assert_eq!(
            chunked_removed,
            (rows_before - all_rows(&svc).await) as u64 + 3 * 9,
            "the retry deletes the rows, then the media objects"
        );
        for id in &chunked {
            assert!(svc.media_files("chunked", id).is_empty());
        }

        // Nobody retries "cleaned": its objects are strays once past the grace period.
        for id in &cleaned {
            assert_eq!(svc.media_files("cleaned", id).len(), 9);
        }
        let report = svc.app.cleanup(now_ms() + PENDING_GRACE_MS + 60_000).await.unwrap();
        assert_eq!(report.stray_objects, 3 * 9);
        assert!(svc.files().is_empty(), "{:?}", svc.files());
        for user in ["retried", "cleaned", "chunked"] {
            assert_eq!(erase(&mut ops, user).await, 0);
        }
        assert_eq!(all_rows(&svc).await, 0);
        eprintln!("crash-safe erasure passed on {backend:?}");
    }
}
