//! tus 1.0 resumable uploads: creation, appends, offset conflicts, checksums, completion,
//! termination and expiry.

use std::collections::HashMap;

use portico_proto::media::v1 as pb;
use portico_runtime::db::now_ms;
use tonic::Code;

use crate::{Client, Service, code, details, images, sha256};

pub(crate) async fn create(client: &mut Client, user: &str, length: u64) -> pb::UploadState {
    client
        .create_upload(pb::CreateUploadRequest {
            user_id: user.to_string(),
            length,
            metadata: HashMap::from([("filename".to_string(), "beach.jpg".to_string())]),
        })
        .await
        .unwrap()
        .into_inner()
}

pub(crate) fn append(
    user: &str,
    id: &str,
    offset: u64,
    content: &[u8],
    checksum: Option<Vec<u8>>,
) -> pb::AppendUploadRequest {
    pb::AppendUploadRequest {
        user_id: user.to_string(),
        id: id.to_string(),
        offset,
        content: content.to_vec().into(),
        sha256: checksum.unwrap_or_default().into(),
    }
}

pub(crate) fn get(user: &str, id: &str) -> pb::GetUploadRequest {
    pb::GetUploadRequest {
        user_id: user.to_string(),
        id: id.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_upload_survives_conflicts_bad_checksums_and_a_drop_then_becomes_media() {
    for backend in portico_testkit::backends() {
        let svc = Service::start(backend, &[]).await;
        let mut client = svc.client.clone();
        let photo = images::jpeg(640, 480);
        let len = photo.len() as u64;
        let before = now_ms();
        let state = create(&mut client, "alice", len).await;
        assert_eq!((state.offset, state.length), (0, len));
        assert_eq!(state.metadata.get("filename").map(String::as_str), Some("beach.jpg"));
        assert!(state.expires_at_ms >= before + 24 * 3_600_000 - 1000);
        assert!(state.media_id.is_none());
        let id = state.id.clone();

        let third = photo.len() / 3;
        let (one, rest) = photo.split_at(third);
        let (two, three) = rest.split_at(third);

        // Chunk 1, with a checksum.
        let r = client
            .append_upload(append("alice", &id, 0, one, Some(sha256(one))))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.state.unwrap().offset, third as u64);
        assert!(r.media.is_none());

        // A retried chunk 1 (its response was lost) is refused with the offset to resume from.
        let e = client
            .append_upload(append("alice", &id, 0, one, None))
            .await
            .unwrap_err();
        assert_eq!(
            (e.code(), code(&e).as_str()),
            (Code::FailedPrecondition, "UPLOAD_OFFSET_MISMATCH")
        );
        assert_eq!(details(&e)["offset"], third as u64);
        assert_eq!(details(&e)["requested"], 0);

        // Chunk 2 damaged in transit: 460, and nothing stored.
        let mut damaged = two.to_vec();
        damaged[10] ^= 0xff;
        let e = client
            .append_upload(append("alice", &id, third as u64, &damaged, Some(sha256(two))))
            .await
            .unwrap_err();
        assert_eq!(
            (e.code(), code(&e).as_str()),
            (Code::InvalidArgument, "CHECKSUM_MISMATCH")
        );
        assert_eq!(details(&e)["algorithm"], "sha256");
        let e = client
            .append_upload(append("alice", &id, third as u64, two, Some(vec![1, 2, 3])))
            .await
            .unwrap_err();
        assert!(details(&e)["fields"]["sha256"].is_string());
        let head = client.get_upload(get("alice", &id)).await.unwrap().into_inner();
        assert_eq!(head.offset, third as u64);
        assert_eq!(svc.chunk_files(&id).len(), 1);

        // The connection drops mid-chunk 2: the gateway appends what arrived; the client asks
        // for the offset (HEAD) and resumes from there.
        let arrived = &two[..two.len() / 2];
        client
            .append_upload(append("alice", &id, third as u64, arrived, None))
            .await
            .unwrap();
        let resume_at = client.get_upload(get("alice", &id)).await.unwrap().into_inner().offset;
        assert_eq!(resume_at, (third + arrived.len()) as u64);
        let remainder = &photo[resume_at as usize..2 * third];
        client
            .append_upload(append("alice", &id, resume_at, remainder, Some(sha256(remainder))))
            .await
            .unwrap();

        // An empty append is a no-op; a chunk past the end is refused.
        let r = client
            .append_upload(append("alice", &id, 2 * third as u64, &[], None))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.state.unwrap().offset, 2 * third as u64);
        let too_long = [three, b"extra"].concat();
        let e = client
            .append_upload(append("alice", &id, 2 * third as u64, &too_long, None))
            .await
            .unwrap_err();
        assert_eq!(code(&e), "PAYLOAD_TOO_LARGE");
        assert_eq!(details(&e)["remaining"], three.len() as u64);

        // The last chunk completes the upload into media.
        let done = client
            .append_upload(append("alice", &id, 2 * third as u64, three, None))
            .await
            .unwrap()
            .into_inner();
        let media = done.media.unwrap();
        let state = done.state.unwrap();
        assert_eq!(state.offset, len);
        assert_eq!(state.media_id.as_deref(), Some(media.id.as_str()));
        assert_eq!(media.original.clone().unwrap().bytes, len);
        assert_eq!(media.variants.len(), 8);
        assert!(svc.chunk_files(&id).is_empty(), "chunks are deleted once processed");
        assert_eq!(svc.rows("upload_chunks").await, 0);
        // The stored original is the uploaded file, byte for byte.
        let stored = std::fs::read(svc.media_dir.join(format!("media/alice/{}/original.jpeg", media.id))).unwrap();
        assert_eq!(stored, photo);
        let head = client.get_upload(get("alice", &id)).await.unwrap().into_inner();
        assert_eq!(head.media_id.as_deref(), Some(media.id.as_str()));
        let got = client
            .get_media(pb::GetMediaRequest {
                user_id: "alice".to_string(),
                id: media.id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.id, media.id);
        let e = client
            .append_upload(append("alice", &id, len, b"x", None))
            .await
            .unwrap_err();
        assert_eq!(code(&e), "PAYLOAD_TOO_LARGE");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_at_one_offset_let_exactly_one_win() {
    for backend in portico_testkit::backends() {
        let svc = Service::start(backend, &[]).await;
        let mut client = svc.client.clone();
        let state = create(&mut client, "alice", 100_000).await;
        let tasks: Vec<_> = (0..8u8)
            .map(|i| {
                let mut c = svc.client.clone();
                let req = append("alice", &state.id, 0, &[i; 1000], None);
                tokio::spawn(async move { c.append_upload(req).await })
            })
            .collect();
        let mut won = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(r) => {
                    won += 1;
                    assert_eq!(r.into_inner().state.unwrap().offset, 1000);
                }
                Err(e) => {
                    assert_eq!(code(&e), "UPLOAD_OFFSET_MISMATCH");
                    assert_eq!(details(&e)["offset"], 1000);
                }
            }
        }
        assert_eq!(won, 1, "{backend:?}");
        // The losers deleted their chunk objects: one chunk, one row.
        assert_eq!(svc.chunk_files(&state.id).len(), 1);
        assert_eq!(svc.rows("upload_chunks").await, 1);
        let head = client.get_upload(get("alice", &state.id)).await.unwrap().into_inner();
        assert_eq!(head.offset, 1000);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creation_termination_and_ownership() {
    for backend in portico_testkit::backends() {
        let svc = Service::start(backend, &[("PORTICO_MEDIA_MAX_BYTES", "1000000")]).await;
        let mut client = svc.client.clone();
        let e = client
            .create_upload(pb::CreateUploadRequest {
                user_id: "alice".to_string(),
                length: 1_000_001,
                metadata: HashMap::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(code(&e), "PAYLOAD_TOO_LARGE");
        assert!(details(&e)["fields"]["Upload-Length"].is_string());
        assert_eq!(details(&e)["maxBytes"], 1_000_000);
        let e = client
            .create_upload(pb::CreateUploadRequest {
                user_id: "alice".to_string(),
                length: 0,
                metadata: HashMap::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(code(&e), "VALIDATION_ERROR");
        assert!(details(&e)["fields"]["Upload-Length"].is_string());

        let state = create(&mut client, "alice", 1_000_000).await;
        client
            .append_upload(append("alice", &state.id, 0, &[7; 5000], None))
            .await
            .unwrap();
        // Another user's upload is not found, for every call.
        let e = client.get_upload(get("mallory", &state.id)).await.unwrap_err();
        assert_eq!(e.code(), Code::NotFound);
        let e = client
            .append_upload(append("mallory", &state.id, 5000, &[1], None))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::NotFound);
        let e = client
            .delete_upload(pb::DeleteUploadRequest {
                user_id: "mallory".to_string(),
                id: state.id.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::NotFound);
        let e = client.get_upload(get("alice", "nonsense")).await.unwrap_err();
        assert_eq!(e.code(), Code::NotFound);

        // Termination removes the row and the chunks.
        assert_eq!(svc.chunk_files(&state.id).len(), 1);
        client
            .delete_upload(pb::DeleteUploadRequest {
                user_id: "alice".to_string(),
                id: state.id.clone(),
            })
            .await
            .unwrap();
        assert!(svc.chunk_files(&state.id).is_empty());
        assert_eq!(svc.rows("uploads").await, 0);
        assert_eq!(svc.rows("upload_chunks").await, 0);
        let e = client.get_upload(get("alice", &state.id)).await.unwrap_err();
        assert_eq!(e.code(), Code::NotFound);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_file_uploaded_in_chunks_is_refused_and_removed() {
    for backend in portico_testkit::backends() {
        let svc = Service::start(backend, &[]).await;
        let mut client = svc.client.clone();
        let gif = images::gif();
        let state = create(&mut client, "alice", gif.len() as u64).await;
        client
            .append_upload(append("alice", &state.id, 0, &gif[..10], None))
            .await
            .unwrap();
        let e = client
            .append_upload(append("alice", &state.id, 10, &gif[10..], None))
            .await
            .unwrap_err();
        assert_eq!(code(&e), "UNSUPPORTED_MEDIA_TYPE");
        let e = client.get_upload(get("alice", &state.id)).await.unwrap_err();
        assert_eq!(e.code(), Code::NotFound);
        assert_eq!(svc.files(), Vec::<String>::new());
        assert_eq!(svc.rows("media").await, 0);
        assert_eq!(svc.rows("uploads").await, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_uploads_are_gone_and_cleanup_removes_their_chunks() {
    for backend in portico_testkit::backends() {
        let svc = Service::start(backend, &[("PORTICO_MEDIA_UPLOAD_TTL_SECS", "3600")]).await;
        let mut client = svc.client.clone();
        let state = create(&mut client, "alice", 10_000).await;
        client
            .append_upload(append("alice", &state.id, 0, &[3; 4000], None))
            .await
            .unwrap();
        // A stray chunk from an append that died before claiming its offset.
        let stray = svc.media_dir.join(format!("uploads/{}/stray", state.id));
        std::fs::write(&stray, b"lost").unwrap();
        // An hour passes (the clock is moved by ageing the row rather than by sleeping).
        let id = state.id.clone();
        svc.db
            .write(move |conn| {
                use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
                use portico_media::store::schema::uploads;
                diesel::update(uploads::table.filter(uploads::id.eq(id)))
                    .set(uploads::expires_at.eq(now_ms() - 1))
                    .execute(conn)?;
                Ok::<_, portico_media::error::MediaError>(())
            })
            .await
            .unwrap();
        assert!(state.expires_at_ms > now_ms() + 3_500_000, "the TTL setting is applied");

        let e = client.get_upload(get("alice", &state.id)).await.unwrap_err();
        assert_eq!(
            (e.code(), code(&e).as_str()),
            (Code::FailedPrecondition, "UPLOAD_EXPIRED")
        );
        let e = client
            .append_upload(append("alice", &state.id, 4000, &[3; 10], None))
            .await
            .unwrap_err();
        assert_eq!(code(&e), "UPLOAD_EXPIRED");

        let report = svc.app.cleanup(now_ms()).await.unwrap();
        assert_eq!(report.expired_uploads, 1);
        assert!(svc.chunk_files(&state.id).is_empty());
        assert_eq!(svc.rows("uploads").await, 0);
        assert_eq!(svc.rows("upload_chunks").await, 0);
        let e = client.get_upload(get("alice", &state.id)).await.unwrap_err();
        assert_eq!(e.code(), Code::NotFound);
    }
}

// An append over PORTICO_MEDIA_MAX_CHUNK_BYTES is refused with PAYLOAD_TOO_LARGE before
// anything is stored, and so is one longer than what remains of the upload (even under the
// cap); upload configs never recommend chunks above the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_over_the_cap_or_past_the_length_are_refused_and_nothing_is_stored() {
    for backend in portico_testkit::backends() {
        let svc = Service::start(backend, &[("PORTICO_MEDIA_MAX_CHUNK_BYTES", "4096")]).await;
        let mut client = svc.client.clone();
        let state = create(&mut client, "alice", 100_000).await;

        let e = client
            .append_upload(append("alice", &state.id, 0, &[1; 4097], None))
            .await
            .unwrap_err();
        assert_eq!(
            (e.code(), code(&e).as_str()),
            (Code::InvalidArgument, "PAYLOAD_TOO_LARGE")
        );
        assert_eq!(details(&e)["maxChunkBytes"], 4096);
        assert_eq!(details(&e)["chunk"], 4097);
        assert_eq!(svc.files(), Vec::<String>::new(), "nothing stored");
        assert_eq!(svc.rows("upload_chunks").await, 0);
        assert_eq!(
            client
                .get_upload(get("alice", &state.id))
                .await
                .unwrap()
                .into_inner()
                .offset,
            0
        );
        // Another user's chunk over the cap is refused the same way, before the lookup.
        let e = client
            .append_upload(append("mallory", &state.id, 0, &[1; 5000], None))
            .await
            .unwrap_err();
        assert_eq!(code(&e), "PAYLOAD_TOO_LARGE");

        // At the cap it lands.
        let r = client
            .append_upload(append("alice", &state.id, 0, &[1; 4096], None))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.state.unwrap().offset, 4096);

        // Under the cap but past what remains: refused, nothing stored, offset unchanged.
        let short = create(&mut client, "alice", 1000).await;
        let e = client
            .append_upload(append("alice", &short.id, 0, &[1; 1001], None))
            .await
            .unwrap_err();
        assert_eq!(code(&e), "PAYLOAD_TOO_LARGE");
        assert_eq!(details(&e)["remaining"], 1000);
        assert!(svc.chunk_files(&short.id).is_empty());
        client
            .append_upload(append("alice", &short.id, 0, &[1; 600], None))
            .await
            .unwrap();
        let e = client
            .append_upload(append("alice", &short.id, 600, &[1; 401], None))
            .await
            .unwrap_err();
        assert_eq!(details(&e)["remaining"], 400);
        assert_eq!(svc.chunk_files(&short.id).len(), 1);
        assert_eq!(svc.rows("upload_chunks").await, 2);
        assert_eq!(
            client
                .get_upload(get("alice", &short.id))
                .await
                .unwrap()
                .into_inner()
                .offset,
            600
        );

        let wifi = client
            .get_upload_config(pb::GetUploadConfigRequest {
                connection: pb::Connection::Wifi as i32,
                downlink_mbps: None,
                rtt_ms: None,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(wifi.chunk_bytes, 4096);
    }
}
